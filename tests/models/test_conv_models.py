"""End-to-end convolution models against Keras: the cnn_small, conv1d_small and
decoder_convT cases of tests/data/keras_reference/models.

Each case builds the Sequential model from its recorded spec, sets Keras's initial
weights, fits without shuffling and compares the history, the final weights,
evaluate() and predict() with what Keras recorded (rtol 1e-3, atol 1e-4), with 1
and 2 kernel threads.
"""
import json
import os

import numpy as np
import pytest

import fastnet
from fastnet import config

REF = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "keras_reference",
                   "models")
RTOL, ATOL = 1e-3, 1e-4


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def threads(request):
    old = config.get_num_threads()
    config.set_num_threads(request.param)
    yield request.param
    config.set_num_threads(old)


def build(spec):
    ks = fastnet
    layers = [ks.layers.Input(shape=tuple(spec["input_shape"]))]
    layers += [getattr(ks.layers, cls)(**kw) for cls, kw in spec["layers"]]
    model = ks.models.Sequential(layers)
    opt = spec["compile"]["optimizer"]
    if isinstance(opt, list):
        opt = getattr(ks.optimizers, opt[0])(**opt[1])
    model.compile(optimizer=opt, loss=spec["compile"]["loss"],
                  metrics=spec["compile"].get("metrics", []))
    return model


@pytest.mark.parametrize("name", ["cnn_small", "conv1d_small", "decoder_convT"])
def test_keras_reference_model(name, threads):
    d = np.load(os.path.join(REF, name + ".npz"))
    meta = json.loads(str(d["meta"]))
    model = build(meta["spec"])
    model.set_weights([d[f"w0_{i}"] for i in range(meta["n_weights"])])
    fit = dict(meta["spec"]["fit"], shuffle=False, verbose=0)
    history = model.fit(d["x"], d["y"], **fit)
    for key in meta["history_keys"]:
        np.testing.assert_allclose(history.history[key], d[f"history_{key}"], rtol=RTOL,
                                   atol=ATOL, err_msg=f"history[{key}]")
    weights = model.get_weights()
    assert len(weights) == meta["n_weights"]
    for i, w in enumerate(weights):
        np.testing.assert_allclose(w, d[f"w_final_{i}"], rtol=RTOL, atol=ATOL,
                                   err_msg=f"final weight {i}")
    ev = model.evaluate(d["x"], d["y"], verbose=0, return_dict=True)
    for key, value in meta["evaluate"].items():
        np.testing.assert_allclose(ev[key], value, rtol=RTOL, atol=ATOL, err_msg=f"evaluate[{key}]")
    np.testing.assert_allclose(model.predict(d["x"], verbose=0), d["predict"], rtol=RTOL,
                               atol=ATOL)


def test_mnist_convnet_trains_and_summarises():
    """The Keras tutorial's convnet: shapes, parameter count and a falling loss."""
    L = fastnet.layers
    model = fastnet.models.Sequential([
        L.Input((28, 28, 1)), L.Conv2D(32, 3, activation="relu"), L.MaxPooling2D(2),
        L.Conv2D(64, 3, activation="relu"), L.MaxPooling2D(2), L.Flatten(), L.Dropout(0.5),
        L.Dense(10, activation="softmax")])
    assert model.output_shape == (None, 10)
    assert model.count_params() == 34826
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 256)
    # Each class is a bright square at its own place: learnable in a few epochs.
    x = rng.random((256, 28, 28, 1), dtype=np.float32) * 0.1
    for i, c in enumerate(y):
        x[i, 2 * c:2 * c + 6, 4:10] += 1.0
    hist = model.fit(x, y, batch_size=32, epochs=6, verbose=0)
    assert hist.history["loss"][-1] < 0.5 * hist.history["loss"][0]


def test_cnn_small_with_the_relu_derivative_folded_into_max_pooling():
    """The Keras replay again, checking that the graph pass folded the ReLU derivative of
    the convolution into the max pooling after it (the pooling alone reads it)."""
    d = np.load(os.path.join(REF, "cnn_small.npz"))
    meta = json.loads(str(d["meta"]))
    model = build(meta["spec"])
    model.set_weights([d[f"w0_{i}"] for i in range(meta["n_weights"])])
    assert len(model._graph.relu_pool_pairs) == 1
    model.fit(d["x"], d["y"], **dict(meta["spec"]["fit"], shuffle=False, verbose=0))
    for i, w in enumerate(model.get_weights()):
        np.testing.assert_allclose(w, d[f"w_final_{i}"], rtol=RTOL, atol=ATOL)


def test_relu_fold_is_set_in_the_training_run_only():
    import numpy as np

    from fastnet.layers import Conv2D, Dense, Flatten, Input, MaxPooling2D
    from fastnet.models import Sequential

    model = Sequential([Input((6, 6, 1)), Conv2D(2, 3, activation="relu"), MaxPooling2D(2),
                        Flatten(), Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.random.default_rng(0).random((8, 6, 6, 1), dtype=np.float32)
    model.fit(x, np.zeros((8, 1)), batch_size=4, epochs=1, verbose=0)
    ctxs = model._train_state.ctxs
    assert (ctxs[0].act_grad_in_dy, ctxs[1].relu_input) == (True, True)
    predict_state = model._graph.new_state(record=False, pooled=True)
    assert not predict_state.ctxs[0].act_grad_in_dy and not predict_state.ctxs[1].relu_input
