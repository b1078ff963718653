"""Preprocessing layers against Keras 3's outputs (tests/data/keras_preprocessing, written by
tools/gen_preprocessing_reference.py), plus the properties of the random layers that do not
depend on Keras's generator, gradients by finite differences, configs and state hooks."""
import glob
import json
import os

import numpy as np
import pytest

from fastnet import layers as L
from fastnet._reference.image import AffineSampler as ReferenceSampler
from fastnet.layers.preprocessing._image_ops import AffineSampler

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "keras_preprocessing")
# float32 against Keras: one resampling or normalisation step on values up to 255 (Keras
# computes resampling weights in float32, fastnet in float64).
RTOL, ATOL = 1e-5, 1e-3

CASES = sorted(os.path.basename(p)[:-4] for p in glob.glob(os.path.join(DATA, "*.npz"))
               if not os.path.basename(p).startswith(("model_", "affine_")))


def load(name):
    d = np.load(os.path.join(DATA, name + ".npz"))
    return {k: d[k] for k in d.files if k != "meta"}, json.loads(str(d["meta"]))


def make(meta, arrays):
    kwargs = dict(meta["kwargs"])
    layer = getattr(L, meta["class_name"])(**kwargs)
    if meta["adapted"]:
        layer.adapt(arrays["adapt"])
    return layer


def _json(v):
    return json.loads(json.dumps(v, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


def test_cases_exist():
    assert len(CASES) > 90


@pytest.mark.parametrize("name", CASES)
def test_forward_matches_keras(name):
    d, meta = load(name)
    layer = make(meta, d)
    y = layer(d["x"], training=meta["training"], **meta["call_kwargs"])
    want = d["y"]
    assert np.shape(y) == want.shape, f"{name}: shape {np.shape(y)} != Keras {want.shape}"
    if want.dtype.kind == "U":
        np.testing.assert_array_equal(np.asarray(y).astype(str), want)
    elif want.dtype.kind in "iu":
        np.testing.assert_array_equal(y, want)
    else:
        np.testing.assert_allclose(y, want, rtol=RTOL, atol=ATOL, err_msg=name)
    # The output spec the graph engine reads agrees with the array.
    spec = layer.compute_output_spec(d["x"])
    if not (meta["class_name"] == "RandomCrop" and not meta["training"]):  # Keras: crop shape always
        assert len(spec.shape) == np.ndim(y)
        assert all(s is None or s == t for s, t in zip(spec.shape, np.shape(y))), (spec.shape, np.shape(y))
    if spec.dtype == "string":
        assert np.asarray(y).dtype.kind == "U"
    else:
        assert np.dtype(spec.dtype) == np.asarray(y).dtype
    if "vocab" in d:
        assert [str(v) for v in layer.get_vocabulary()] == d["vocab"].tolist()
    if "idf" in d:
        idf = layer._lookup_layer.idf_weights if hasattr(layer, "_lookup_layer") else layer.idf_weights
        np.testing.assert_allclose(idf, d["idf"], rtol=1e-6)
    if "bins" in d:
        np.testing.assert_allclose(layer.bin_boundaries, d["bins"], rtol=1e-6)
    if "stats" in d:
        stats = np.stack([layer.adapt_mean.value.reshape(-1), layer.adapt_variance.value.reshape(-1)])
        np.testing.assert_allclose(stats, d["stats"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", [n for n in CASES if "dx" in np.load(os.path.join(DATA, n + ".npz")).files])
def test_gradient_matches_keras(name):
    d, meta = load(name)
    layer = make(meta, d)
    layer(d["x"], training=meta["training"])
    dx = layer.backward(layer._last_ctx, d["up"])
    np.testing.assert_allclose(dx, d["dx"], rtol=RTOL, atol=ATOL, err_msg=name)


@pytest.mark.parametrize("name", CASES)
def test_config_matches_keras(name):
    d, meta = load(name)
    layer = make(meta, d)
    cfg = _json(layer.get_config())
    for key, value in meta["config"].items():
        assert key in cfg, f"{name}: config lacks Keras's key {key!r}"
        if key == "seed" and meta["kwargs"].get("seed") is None:
            continue  # a fresh default seed on both sides
        assert cfg[key] == value, f"{name}: config[{key!r}] = {cfg[key]!r}, Keras has {value!r}"
    clone = type(layer).from_config(layer.get_config())
    if not meta["adapted"] or hasattr(layer, "bin_boundaries"):
        y1 = layer(d["x"], training=False)
        y2 = clone(d["x"], training=False)
        np.testing.assert_array_equal(np.asarray(y1), np.asarray(y2))


@pytest.mark.parametrize("interp", ["bilinear", "nearest"])
@pytest.mark.parametrize("fill", ["reflect", "wrap", "constant", "nearest", "mirror"])
def test_affine_sampler_matches_keras(interp, fill):
    d, _ = load("affine_transform")
    for cls in (AffineSampler, ReferenceSampler):  # the kernel and its numpy twin
        sampler = cls(d["x"].shape, d["transforms"], interp, fill, 3.0)
        np.testing.assert_allclose(sampler.forward(d["x"]), d[f"y_{interp}_{fill}"], rtol=RTOL, atol=ATOL)
