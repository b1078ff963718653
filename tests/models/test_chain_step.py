"""The training step of a one-output chain (``Trainer._chain_train_step``) against the
general step (``Trainer._train_step``), and the backward plan kept between fits."""
import numpy as np
import pytest

import fastnet as K
from fastnet.models.trainer import Trainer

L = K.layers


def _data(n=70, dim=5, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim)).astype(np.float32)
    y = (x[:, :1] + 0.5 * x[:, 1:2] > 0).astype(np.float32)
    return x, y


def _model(kind):
    K.utils.set_random_seed(3)
    if kind == "bn_reg":
        layers = [L.Dense(8, activation="relu", kernel_regularizer=K.regularizers.L2(0.01)),
                  L.BatchNormalization(), L.Dropout(0.3), L.Dense(1, activation="sigmoid")]
    elif kind == "plain_loss":  # not fused with the last layer's logits
        layers = [L.Dense(6, activation="tanh"), L.Dense(1)]
    else:
        layers = [L.Dense(6, activation="tanh"), L.Dense(4, activation="tanh"), L.Dense(1, activation="sigmoid")]
    return K.Sequential([K.Input((5,))] + layers)


CASES = [
    ("mlp", dict(loss="binary_crossentropy", metrics=["accuracy"]), {}),
    ("bn_reg", dict(loss="binary_crossentropy", metrics=["accuracy", "auc"]), {}),
    ("plain_loss", dict(loss="mse", metrics=["mae"], weighted_metrics=["mse"], loss_weights=0.5), {}),
    ("mlp", dict(loss="binary_crossentropy", weighted_metrics=["accuracy"]), {"class_weight": {0: 1.0, 1: 3.0}}),
    ("mlp", dict(loss="binary_crossentropy", metrics=["accuracy"]), {"sample_weight": "rows"}),
]


def _fit(kind, compile_kw, fit_kw, general, monkeypatch):
    x, y = _data()
    fit_kw = dict(fit_kw)
    if fit_kw.get("sample_weight") == "rows":
        fit_kw["sample_weight"] = np.linspace(0.2, 2.0, len(x)).astype(np.float32)
    m = _model(kind)
    m.compile(optimizer="adam", **compile_kw)
    calls = {"chain": 0}
    with monkeypatch.context() as mp:
        if general:
            def general_step(self, xb, yb, swb):
                calls["chain"] += 1
                return self._train_step([xb], [yb], [swb])[0]
            mp.setattr(Trainer, "_chain_train_step", general_step)
        hist = m.fit(x, y, batch_size=16, epochs=3, verbose=0, **fit_kw)
    return m, hist.history, calls["chain"]


@pytest.mark.parametrize("kind,compile_kw,fit_kw", CASES)
def test_chain_step_equals_general_step(kind, compile_kw, fit_kw, monkeypatch):
    a, ha, _ = _fit(kind, compile_kw, fit_kw, general=False, monkeypatch=monkeypatch)
    b, hb, n_calls = _fit(kind, compile_kw, fit_kw, general=True, monkeypatch=monkeypatch)
    assert n_calls == 3 * 5  # the chain step was taken for every batch (70 rows, batch 16)
    assert ha.keys() == hb.keys()
    for k in ha:
        np.testing.assert_allclose(ha[k], hb[k], rtol=1e-6, atol=1e-7, err_msg=k)
    for wa, wb in zip(a.weights, b.weights):
        np.testing.assert_array_equal(wa.numpy(), wb.numpy())


def test_functional_branches_take_the_general_step(monkeypatch):
    inp = K.Input((5,))
    h = L.Dense(4, activation="relu")(inp)
    out = L.Dense(1, activation="sigmoid")(L.concatenate([h, L.Dense(3)(inp)]))
    m = K.Model(inp, out)
    m.compile(optimizer="sgd", loss="binary_crossentropy")
    assert not m._graph.linear

    def fail(*a):
        raise AssertionError("a graph with branches has no chain step")
    monkeypatch.setattr(Trainer, "_chain_train_step", fail)
    x, y = _data()
    h = m.fit(x, y, batch_size=32, epochs=1, verbose=0)
    assert np.isfinite(h.history["loss"][0])


def test_freezing_between_fits_changes_the_backward_plan():
    x, y = _data()
    m = _model("mlp")
    m.compile(optimizer="sgd", loss="binary_crossentropy")
    m.fit(x, y, batch_size=16, epochs=1, verbose=0)
    first, second = m.layers[0], m.layers[1]

    first.trainable = False
    m.compile(optimizer="sgd", loss="binary_crossentropy")
    before = [w.numpy().copy() for w in first.weights + second.weights]
    m.fit(x, y, batch_size=16, epochs=1, verbose=0)
    for w, b in zip(first.weights, before[:2]):
        np.testing.assert_array_equal(w.numpy(), b)   # frozen: untouched
    assert not np.array_equal(second.weights[0].numpy(), before[2])
    assert not m._graph.steps[0].needs_backward

    # Thawed without compiling again: fit reads the trainable weights anew, and the
    # plan follows (Keras asks for compile() here; fastnet does not need it).
    first.trainable = True
    kept = first.weights[0].numpy().copy()
    m.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert m._graph.steps[0].needs_backward
    assert not np.array_equal(first.weights[0].numpy(), kept)


def test_freezing_a_weightless_layer_keeps_the_plan():
    x, y = _data()
    m = K.Sequential([K.Input((5,)), L.Dense(4, activation="relu"), L.Dropout(0.1), L.Dense(1)])
    m.compile(optimizer="sgd", loss="mse")
    m.fit(x, y, batch_size=16, epochs=1, verbose=0)
    m.layers[1].trainable = False   # Dropout: no weights, still passes the gradient back
    w0 = m.layers[0].weights[0].numpy().copy()
    m.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert not np.array_equal(m.layers[0].weights[0].numpy(), w0)
