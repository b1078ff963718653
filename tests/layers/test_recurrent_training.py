"""End to end: the Keras reference models simplernn_small, lstm_small and gru_small
trained for their two epochs through a Sequential model's forward and backward, with
Adam and sparse categorical cross-entropy written out here, must land on Keras's
weights, losses and predictions (the full fit() replay lives with the model tests)."""
import json
import os

import numpy as np
import pytest
from helpers import backprop

from fastnet import layers as L
from fastnet.models import Sequential

REF = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "keras_reference")


def _adam(variables, state, t, lr=1e-3, b1=0.9, b2=0.999, eps=1e-7):
    alpha = lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
    for var, (m, v) in zip(variables, state):
        g = var.grad.astype(np.float64)
        m += (g - m) * (1 - b1)
        v += (g * g - v) * (1 - b2)
        var.value -= (alpha * m / (np.sqrt(v) + eps)).astype(var.value.dtype)


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("case", ["simplernn_small", "lstm_small", "gru_small"])
def test_two_epochs_match_keras(case):
    d = np.load(os.path.join(REF, "models", case + ".npz"))
    meta = json.loads(str(d["meta"]))
    spec = meta["spec"]
    layers = [L.Input(shape=tuple(spec["input_shape"]))]
    for cls, kw in spec["layers"]:
        kw = dict(kw)
        if cls == "Dense":
            kw["activation"] = None   # softmax applied below, on the logits, as Keras's loss does
        layers.append(getattr(L, cls)(**kw))
    model = Sequential(layers)
    model.set_weights([d[f"w0_{i}"] for i in range(meta["n_weights"])])
    x, y = d["x"].astype(np.float32), d["y"].astype(np.int64)
    variables = model.trainable_weights
    state = [(np.zeros(v.shape), np.zeros(v.shape)) for v in variables]
    bs, t = spec["fit"]["batch_size"], 0
    for epoch in range(spec["fit"]["epochs"]):
        losses, correct = [], 0
        for lo in range(0, len(x), bs):
            xb, yb = x[lo:lo + bs], y[lo:lo + bs]
            p = _softmax(model(xb, training=True).astype(np.float64))
            losses.append(-np.log(p[np.arange(len(yb)), yb]).mean() * len(yb))
            correct += int((p.argmax(1) == yb).sum())
            dz = p.copy()
            dz[np.arange(len(yb)), yb] -= 1
            backprop(model, (dz / len(yb)).astype(np.float32), need_dx=False)
            t += 1
            _adam(variables, state, t)
        np.testing.assert_allclose(sum(losses) / len(x), d["history_loss"][epoch], rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(correct / len(x), d["history_accuracy"][epoch], atol=1e-6)
    for i, w in enumerate(model.get_weights()):
        np.testing.assert_allclose(w, d[f"w_final_{i}"], rtol=1e-3, atol=1e-4, err_msg=f"weight {i}")
    pred = _softmax(model.call(x, training=False).astype(np.float64))
    np.testing.assert_allclose(pred, d["predict"], rtol=1e-3, atol=1e-4)


def test_masks_flow_through_a_sequential_model():
    model = Sequential([L.Input(shape=(5,)), L.Embedding(10, 4, mask_zero=True),
                        L.LSTM(3, return_sequences=True), L.GRU(2)])
    tokens = np.array([[3, 4, 0, 0, 0], [1, 2, 3, 4, 5]])
    out = model.call(tokens.astype(np.float32))
    emb, lstm, gru = model.layers
    e = emb(tokens)
    want = gru(lstm(e[:1, :2]))
    np.testing.assert_allclose(out[0], want[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", ["simplernn_small", "lstm_small", "gru_small"])
def test_fit_replays_keras(case):
    """The same cases through compile/fit/evaluate/predict, as check_models.py replays them."""
    import fastnet

    d = np.load(os.path.join(REF, "models", case + ".npz"))
    meta = json.loads(str(d["meta"]))
    spec = meta["spec"]
    model = fastnet.Sequential([fastnet.Input(shape=tuple(spec["input_shape"]))]
                               + [getattr(fastnet.layers, c)(**kw) for c, kw in spec["layers"]])
    model.compile(optimizer=spec["compile"]["optimizer"], loss=spec["compile"]["loss"],
                  metrics=spec["compile"]["metrics"])
    model.set_weights([d[f"w0_{i}"] for i in range(meta["n_weights"])])
    hist = model.fit(d["x"], d["y"], shuffle=False, verbose=0, **spec["fit"])
    for key in meta["history_keys"]:
        np.testing.assert_allclose(hist.history[key], d[f"history_{key}"], rtol=1e-3, atol=1e-4)
    for i, w in enumerate(model.get_weights()):
        np.testing.assert_allclose(w, d[f"w_final_{i}"], rtol=1e-3, atol=1e-4)
    ev = model.evaluate(d["x"], d["y"], verbose=0, return_dict=True)
    for key, v in meta["evaluate"].items():
        np.testing.assert_allclose(ev[key], v, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(model.predict(d["x"], verbose=0), d["predict"], rtol=1e-3, atol=1e-4)
