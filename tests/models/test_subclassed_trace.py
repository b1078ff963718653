"""A subclassed model's ``call`` is traced once into the graph when it can be (the same
executor as a Sequential), and recorded per step when it cannot: either way ``fit``
gives the recorded call's exact numbers."""
import numpy as np
import pytest

import fastnet as keras
from fastnet import layers, ops


def _data(seed=0, n=32, d=4, out=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)).astype(np.float32), rng.standard_normal((n, out)).astype(np.float32)


class Chain(keras.Model):
    def __init__(self):
        super().__init__()
        self.blocks = [layers.Dense(8, activation="tanh"), layers.Dense(8, activation="relu")]
        self.drop = layers.Dropout(0.0)
        self.out = layers.Dense(1)

    def call(self, inputs, training=None):
        h = inputs
        for b in self.blocks:
            h = b(h)
        return self.out(self.drop(h, training=training))


class BranchesOnTraining(Chain):
    def call(self, inputs, training=None):
        h = self.blocks[1](self.blocks[0](inputs))
        if training:
            h = h * 1.0
        return self.out(h)


class BranchesOnValues(Chain):
    calls = 0

    def call(self, inputs):
        type(self).calls += 1
        h = self.blocks[1](self.blocks[0](inputs))
        if float(np.asarray(ops.sum(h))) > 1e9:   # a value: only known when the batch runs
            h = -h
        return self.out(h)


class OwnWeight(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = layers.Dense(3)

    def build(self, input_shape):
        self.scale = self.add_weight(shape=(3,), initializer="ones", name="scale")

    def call(self, inputs):
        return ops.sum(self.dense(inputs) * self.scale, axis=-1, keepdims=True)


class AddsLoss(Chain):
    def call(self, inputs):
        h = self.blocks[0](inputs)
        self.add_loss(0.01 * ops.sum(ops.square(h)))
        return self.out(h)


def _sequential_like(model, x):
    model(x)
    seq = keras.Sequential([keras.Input((x.shape[1],)), layers.Dense(8, activation="tanh"),
                            layers.Dense(8, activation="relu"), layers.Dense(1)])
    seq.set_weights(model.get_weights())
    return seq


def test_a_traceable_call_becomes_the_graph_and_trains_like_the_equal_sequential():
    x, y = _data()
    sub = Chain()
    seq = _sequential_like(sub, x)
    for m in (sub, seq):
        m.compile(optimizer="adam", loss="mse")
    h_sub = sub.fit(x, y, epochs=3, batch_size=8, shuffle=False, verbose=0)
    h_seq = seq.fit(x, y, epochs=3, batch_size=8, shuffle=False, verbose=0)
    assert sub.__dict__["_traced_call"] is True
    assert [n.layer for n in sub._graph.nodes] == [*sub.blocks, sub.drop, sub.out]
    np.testing.assert_allclose(h_sub.history["loss"], h_seq.history["loss"], rtol=1e-5)
    for a, b in zip(sub.get_weights(), seq.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sub.predict(x, verbose=0), seq.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sub(x), seq.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cls", [BranchesOnTraining, BranchesOnValues])
def test_python_branches_on_training_or_values_are_recorded_per_step_with_the_same_numbers(cls):
    x, y = _data(1)
    sub = cls()
    seq = _sequential_like(sub, x)
    for m in (sub, seq):
        m.compile(optimizer="sgd", loss="mse")
    before = cls.calls if cls is BranchesOnValues else 0
    h_sub = sub.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    h_seq = seq.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    assert sub.__dict__["_traced_call"] is False
    assert len(sub._graph.nodes) == 1 and sub._graph.nodes[0].layer is sub
    # a failed trace leaves no nodes behind on the sublayers
    assert all(len(layer._inbound_nodes) <= 1 for layer in sub.blocks)
    if cls is BranchesOnValues:
        assert cls.calls - before >= 8   # call ran for every step
    np.testing.assert_allclose(h_sub.history["loss"], h_seq.history["loss"], rtol=1e-5)


def test_run_eagerly_records_call_every_step():
    x, y = _data(2)
    sub = Chain()
    seq = _sequential_like(sub, x)
    sub.compile(optimizer="sgd", loss="mse")
    sub.predict(x, verbose=0)
    assert sub.__dict__["_traced_call"] is True
    sub.compile(optimizer="sgd", loss="mse", run_eagerly=True)
    seq.compile(optimizer="sgd", loss="mse")
    h_sub = sub.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    h_seq = seq.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    assert sub.__dict__["_traced_call"] is False and sub._graph.nodes[0].layer is sub
    np.testing.assert_allclose(h_sub.history["loss"], h_seq.history["loss"], rtol=1e-5)


def test_a_weight_of_the_model_itself_is_not_traced_and_gets_exact_gradients():
    x, y = _data(3, d=2)
    m = OwnWeight()
    m.compile(optimizer="sgd", loss="mse")
    m.fit(x[:8], y[:8], epochs=1, batch_size=8, verbose=0)
    assert m.__dict__["_traced_call"] is False
    # one SGD step (lr 0.01) against the float64 finite-difference gradient of the loss
    w0 = [w.astype(np.float64) for w in m.get_weights()]

    def loss(ws):
        names = [v.name for v in m.weights]
        d = dict(zip(names, ws))
        pred = ((x[:8].astype(np.float64) @ d["kernel"] + d["bias"]) * d["scale"]).sum(-1, keepdims=True)
        return np.mean((pred - y[:8]) ** 2)

    eps = 1e-6
    grads = []
    for i, w in enumerate(w0):
        g = np.zeros_like(w)
        for j in np.ndindex(w.shape):
            up = [v.copy() for v in w0]
            dn = [v.copy() for v in w0]
            up[i][j] += eps
            dn[i][j] -= eps
            g[j] = (loss(up) - loss(dn)) / (2 * eps)
        grads.append(g)
    m.fit(x[:8], y[:8], epochs=1, batch_size=8, verbose=0)
    for w, w_before, g in zip(m.get_weights(), w0, grads):
        np.testing.assert_allclose(w, w_before - 0.01 * g, rtol=1e-4, atol=1e-5)
    assert not np.allclose(m.get_weights()[[v.name for v in m.weights].index("scale")], 1.0)


def test_a_call_that_adds_a_loss_itself_is_recorded_and_the_loss_is_trained():
    x, y = _data(4)
    m = AddsLoss()
    m.compile(optimizer="sgd", loss="mse")
    h = m.fit(x, y, epochs=1, batch_size=32, verbose=0)
    assert m.__dict__["_traced_call"] is False
    assert len(m.losses) == 1
    m2 = AddsLoss()
    m2(x)
    m2.set_weights(m.get_weights())
    m2.compile(optimizer="sgd", loss="mse")
    ev = m2.evaluate(x, y, verbose=0, batch_size=32)
    pred = m2.predict(x, verbose=0)
    h0 = np.tanh(x @ m2.blocks[0].kernel.value + m2.blocks[0].bias.value)
    np.testing.assert_allclose(ev, np.mean((pred - y) ** 2) + 0.01 * np.sum(h0 ** 2), rtol=1e-5)
    assert np.isfinite(h.history["loss"][0])
