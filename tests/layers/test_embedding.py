"""Embedding: Keras reference case, gradients (repeated indices), masks and bad indices."""
import json
import os

import numpy as np
import pytest
from helpers import backprop

from fastnet._reference.recurrent import embedding_backward
from fastnet.layers import Embedding

REF = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "keras_reference")


def test_matches_keras():
    d = np.load(os.path.join(REF, "layers", "embedding.npz"))
    meta = json.loads(str(d["meta"]))
    layer = Embedding(**meta["config"])
    layer(d["x"])
    layer.set_weights([d["w_0"]])
    np.testing.assert_allclose(layer(d["x"]), d["y_infer_0"], rtol=1e-6)
    assert layer(d["x"]).shape == tuple(meta["input_shape"]) + (4,)


def test_gradient_scatter_adds_repeated_indices():
    rng = np.random.default_rng(0)
    idx = rng.integers(0, 7, (5, 9))
    layer = Embedding(7, 3)
    y = layer(idx)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    assert backprop(layer, dy) is None
    np.testing.assert_allclose(layer.embeddings.grad, embedding_backward(idx, dy, 7), rtol=1e-5,
                               atol=1e-6)


def test_out_of_range_index_is_an_error_naming_it():
    layer = Embedding(10, 4)
    with pytest.raises(IndexError, match=r"index 10 .*input_dim=10"):
        layer(np.array([[1, 2, 10]]))
    with pytest.raises(IndexError, match=r"index -1 .*input_dim=10"):
        layer(np.array([[-1, 2]]))
    with pytest.raises(IndexError, match=r"index 123456789"):
        layer(np.array([123456789]))
    with pytest.raises(ValueError, match="integer"):
        layer(np.array([1.5]))


def test_float_indices_and_masks():
    layer = Embedding(6, 2, mask_zero=True)
    x = np.array([[3.0, 0.0], [1.0, 5.0]])
    np.testing.assert_array_equal(layer(x), layer(x.astype(int)))
    np.testing.assert_array_equal(layer.compute_mask(x), [[True, False], [True, True]])
    assert Embedding(6, 2).compute_mask(x) is None


def test_config_and_weights():
    layer = Embedding(20, 5, mask_zero=True, name="emb")
    cfg = layer.get_config()
    assert cfg["input_dim"] == 20 and cfg["output_dim"] == 5 and cfg["mask_zero"] is True
    assert Embedding.from_config(cfg).get_config() == cfg
    layer.build()
    w = layer.get_weights()[0]
    assert w.shape == (20, 5) and np.abs(w).max() <= 0.05
    with pytest.raises(ValueError, match="input_dim"):
        Embedding(0, 3)
    init = np.arange(6, dtype=np.float32).reshape(3, 2)
    e = Embedding(3, 2, weights=[init])
    np.testing.assert_array_equal(e(np.array([2, 0])), init[[2, 0]])
