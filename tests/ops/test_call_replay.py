"""Replaying a layer's call: once two consecutive recorded calls with the same input
signature make the same records from the same constants, the call is replayed without
its Python (as ``jax.jit`` or ``tf.function`` would run it). These tests check that a
replay computes what the eager call computes (values, input and weight gradients, whole
training runs), that it happens only when it is safe (no branch on a value, no random
draw, no variable assignment, no added loss, no Python state that changes the records),
and that ``run_eagerly=True`` keeps every call eager.

Tolerances: float64 comparisons use rtol 1e-12 (a replayed matmul + bias + ReLU runs as
one dense kernel call, which may round differently from the separate ops); float32
training runs compare weights with rtol 1e-5 after a few steps.
"""
import numpy as np
import pytest

import fastnet as K
from fastnet import layers, ops
from fastnet.layers.base import CallContext


class CountingDense(layers.Layer):
    """relu(x @ w + b), counting how often its Python runs."""

    def __init__(self, units, relu=True, **kwargs):
        super().__init__(**kwargs)
        self.units, self.relu, self.calls = units, relu, 0

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units), initializer="glorot_uniform")
        self.b = self.add_weight(shape=(self.units,), initializer="random_normal")

    def call(self, x):
        self.calls += 1
        y = ops.matmul(x, self.w) + self.b
        return ops.relu(y) if self.relu else y


class OpsNorm(layers.Layer):
    """Layer normalization written with ops (a chain of generic records)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.calls = 0

    def build(self, input_shape):
        self.g = self.add_weight(shape=(input_shape[-1],), initializer="random_normal")
        self.beta = self.add_weight(shape=(input_shape[-1],), initializer="random_normal")

    def call(self, x):
        self.calls += 1
        mu = ops.mean(x, axis=-1, keepdims=True)
        var = ops.mean(ops.square(x - mu), axis=-1, keepdims=True)
        return (x - mu) / ops.sqrt(var + 1e-3) * self.g + self.beta


def _fd_check(layer, x, dy, dx, eps=1e-6):
    fd = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        up, dn = x.copy(), x.copy()
        up[i] += eps
        dn[i] -= eps
        fd[i] = (np.sum(dy * np.asarray(layer(up))) - np.sum(dy * np.asarray(layer(dn)))) / (2 * eps)
    np.testing.assert_allclose(dx, fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("make", [lambda: CountingDense(4, dtype="float64"),
                                  lambda: CountingDense(4, relu=False, dtype="float64"),
                                  lambda: OpsNorm(dtype="float64")])
def test_replayed_call_gives_the_recorded_values_and_gradients(make):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 5))
    dy = rng.standard_normal((6, 4 if not isinstance(make(), OpsNorm) else 5))
    layer = make()
    layer(x)
    got = []
    for step in range(4):     # two traced calls, then replays
        ctx = CallContext()
        xs = x + 0.1 * step
        y = layer.forward(ctx, xs, training=True)
        dx = layer.backward(ctx, dy)
        got.append((xs, y, dx, [v.grad.copy() for v in layer.trainable_weights]))
    assert layer.calls == 1 + 2     # the build call and two traces: the last two calls replayed
    ref = make()
    ref(x)
    ref.set_weights(layer.get_weights())
    ref.__dict__["_replay"] = None     # (as compile(run_eagerly=True) sets it: every call recorded)
    for xs, y, dx, grads in got:
        ctx = CallContext()
        np.testing.assert_allclose(y, ref.forward(ctx, xs, training=True), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(dx, ref.backward(ctx, dy), rtol=1e-12, atol=1e-14)
        for g, v in zip(grads, ref.trainable_weights):
            np.testing.assert_allclose(g, v.grad, rtol=1e-12, atol=1e-14)
    # the replayed input gradient against float64 central differences
    _fd_check(layer, got[-1][0], dy, got[-1][2])


def test_replay_without_input_gradient_then_with_it():
    """A first layer's call does not watch its inputs; a later backward that wants the
    input gradient after all still gets it exactly."""
    rng = np.random.default_rng(1)
    x, dy = rng.standard_normal((5, 3)), rng.standard_normal((5, 4))
    layer = CountingDense(4, dtype="float64")
    layer(x)
    ctx = CallContext()
    ctx.need_dx = False
    for _ in range(3):
        layer.forward(ctx, x, training=True)
        assert layer.backward(ctx, dy) is None
    w, b = layer.w.value, layer.b.value
    z = x @ w + b
    g = dy * (z > 0)
    np.testing.assert_allclose(layer.w.grad, x.T @ g, rtol=1e-12)
    np.testing.assert_allclose(layer.b.grad, g.sum(0), rtol=1e-12)
    layer.forward(ctx, x, training=True)
    ctx.need_dx = True
    np.testing.assert_allclose(layer.backward(ctx, dy), g @ w.T, rtol=1e-12)


def _fit(make_layers, run_eagerly, epochs=3, n=100, dtype="float32"):
    K.utils.set_random_seed(3)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 8)).astype(dtype)
    y = rng.integers(0, 3, n)
    m = K.Sequential([K.Input((8,))] + make_layers())
    m.compile(optimizer="adam", loss=K.losses.SparseCategoricalCrossentropy(from_logits=True),
              run_eagerly=run_eagerly)
    for layer in m.layers:
        layer.calls = 0
    h = m.fit(x, y, batch_size=32, epochs=epochs, verbose=0, shuffle=False)   # (last batch of 4: its own trace)
    return m, h.history["loss"]


def test_training_with_replayed_layers_matches_eager_training():
    def make():
        return [CountingDense(16), OpsNorm(), CountingDense(16), CountingDense(3, relu=False)]

    eager, le = _fit(make, True)
    fast, lf = _fit(make, False)
    np.testing.assert_allclose(lf, le, rtol=1e-5)
    for a, b in zip(fast.get_weights(), eager.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    steps = 3 * 4
    assert [l.calls for l in eager.layers] == [steps] * 4       # every call ran its Python
    assert [l.calls for l in fast.layers] == [4] * 4            # two traces for each batch size (32 and 4)


def test_run_eagerly_after_a_fast_compile_stops_replaying():
    m, _ = _fit(lambda: [CountingDense(4), CountingDense(3, relu=False)], False, epochs=2)
    before = [l.calls for l in m.layers]
    m.compile(optimizer="adam", loss=K.losses.SparseCategoricalCrossentropy(from_logits=True), run_eagerly=True)
    x = np.zeros((64, 8), "float32")
    m.fit(x, np.zeros(64, int), batch_size=32, epochs=1, verbose=0)
    assert [l.calls - c for l, c in zip(m.layers, before)] == [2, 2]


class BranchOnValue(CountingDense):
    def call(self, x):
        self.calls += 1
        y = ops.matmul(x, self.w)
        if ops.sum(y) > 0:        # Python branch on a value: never replayed
            return y + self.b
        return y - self.b


class RandomNoise(CountingDense):
    def __init__(self, units, **kwargs):
        super().__init__(units, **kwargs)
        self.seed = K.random.SeedGenerator(1)

    def call(self, x):
        self.calls += 1
        return ops.matmul(x, self.w) + K.random.normal(ops.shape(x)[:1] + (self.units,), seed=self.seed)


class ChangingConstant(CountingDense):
    def call(self, x):
        self.calls += 1
        return ops.matmul(x, self.w) * float(self.calls)     # Python state read by every call


class RunningMean(CountingDense):
    def build(self, input_shape):
        super().build(input_shape)
        self.mean = self.add_weight(shape=(self.units,), initializer="zeros", trainable=False)

    def call(self, x):
        self.calls += 1
        y = ops.matmul(x, self.w)
        self.mean.assign(0.5 * self.mean + 0.5 * ops.mean(y, axis=0))
        return y


class AddsLoss(CountingDense):
    def call(self, x):
        self.calls += 1
        y = ops.matmul(x, self.w)
        self.add_loss(0.1 * ops.sum(ops.square(self.w)))
        return y


@pytest.mark.parametrize("cls", [BranchOnValue, RandomNoise, ChangingConstant, RunningMean, AddsLoss])
def test_calls_a_replay_would_change_stay_eager(cls):
    rng = np.random.default_rng(2)
    x, dy = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    layer = cls(2, dtype="float64")
    layer(x)
    outs = []
    for _ in range(6):
        ctx = CallContext()
        outs.append(layer.forward(ctx, x, training=True))
        layer.backward(ctx, dy)
    assert layer.calls == 1 + 6
    if cls is ChangingConstant:
        np.testing.assert_allclose(outs[5], outs[0] * 7 / 2, rtol=1e-12)
    if cls is RandomNoise:
        assert not np.allclose(outs[4], outs[5])
    if cls is RunningMean:
        y = x @ layer.w.value
        np.testing.assert_allclose(layer.mean.value, y.mean(0) * (1 - 0.5 ** 7), rtol=1e-12)   # (the build call too)


def test_added_loss_still_trains_as_eager():
    eager, le = _fit(lambda: [AddsLoss(3)], True, epochs=2)
    fast, lf = _fit(lambda: [AddsLoss(3)], False, epochs=2)
    np.testing.assert_allclose(lf, le, rtol=1e-6)
    assert fast.layers[0].calls == eager.layers[0].calls


def test_a_nested_builtin_layer_keeps_the_call_eager():
    class Wrapper(layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.inner = layers.Dense(3, dtype="float64")
            self.calls = 0

        def call(self, x):
            self.calls += 1
            return ops.relu(self.inner(x))

    rng = np.random.default_rng(4)
    x, dy = rng.standard_normal((4, 5)), rng.standard_normal((4, 3))
    layer = Wrapper(dtype="float64")
    layer(x)
    for _ in range(4):
        ctx = CallContext()
        layer.forward(ctx, x, training=True)
        dx = layer.backward(ctx, dy)
    assert layer.calls == 5
    w, b = layer.inner.kernel.value, layer.inner.bias.value
    g = dy * ((x @ w + b) > 0)
    np.testing.assert_allclose(dx, g @ w.T, rtol=1e-12)


class ReadsVariableWithNumpy(CountingDense):
    def build(self, input_shape):
        super().build(input_shape)
        self.scale = self.add_weight(shape=(), initializer="ones", trainable=False)

    def call(self, x):
        self.calls += 1
        return ops.matmul(x, self.w) * np.asarray(self.scale)    # numpy reads the variable: stays eager


def test_a_variable_read_with_numpy_keeps_the_call_eager():
    x = np.ones((2, 3))
    layer = ReadsVariableWithNumpy(2, dtype="float64")
    layer(x)
    outs = []
    for step in range(4):
        layer.scale.assign(float(step + 1))
        ctx = CallContext()
        outs.append(layer.forward(ctx, x, training=True))
        layer.backward(ctx, np.ones((2, 2)))
    assert layer.calls == 5
    np.testing.assert_allclose(outs[3], outs[0] * 4, rtol=1e-12)
