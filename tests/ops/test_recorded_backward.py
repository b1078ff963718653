"""The recorded backward of a layer written with ops: the one-output fast path equals the
general tape gradient, and a call whose input gradient was not wanted (a graph's first
layer) skips it, yet still gives it exactly when a later backward asks for it."""
import numpy as np

from fastnet import layers, ops
from fastnet.layers.base import CallContext


class OpsDense(layers.Layer):
    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units))
        self.b = self.add_weight(shape=(self.units,), initializer="random_normal")

    def call(self, inputs):
        return ops.tanh(ops.matmul(inputs, self.w) + self.b)


def _expected(layer, x, dy):
    w, b = layer.w.value.astype(np.float64), layer.b.value.astype(np.float64)
    y = np.tanh(x @ w + b)
    g = dy * (1 - y ** 2)
    return g @ w.T, x.T @ g, g.sum(0)


def _layer(x):
    layer = OpsDense(5, dtype="float64")
    layer(x)
    return layer


def test_backward_gives_exact_input_and_weight_gradients():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 3))
    dy = rng.standard_normal((6, 5))
    layer = _layer(x)
    ctx = CallContext()
    layer.forward(ctx, x, training=True)
    dx = layer.backward(ctx, dy)
    ex, ew, eb = _expected(layer, x, dy)
    np.testing.assert_allclose(dx, ex, rtol=1e-12)
    np.testing.assert_allclose(layer.w.grad, ew, rtol=1e-12)
    np.testing.assert_allclose(layer.b.grad, eb, rtol=1e-12)
    # the same against float64 central differences of sum(dy * y) in x
    eps = 1e-6
    fd = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        up, dn = x.copy(), x.copy()
        up[i] += eps
        dn[i] -= eps
        fd[i] = (np.sum(dy * layer(up)) - np.sum(dy * layer(dn))) / (2 * eps)
    np.testing.assert_allclose(dx, fd, rtol=1e-6, atol=1e-8)


def test_a_call_without_input_gradient_does_not_watch_its_inputs_but_can_still_give_it():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 3))
    dy = rng.standard_normal((4, 5))
    layer = _layer(x)
    layer.__dict__["_replay"] = None   # every call recorded (the first calls would be traced for replay,
    ex, ew, eb = _expected(layer, x, dy)   # which always watches the inputs: see test_call_replay.py)
    ctx = CallContext()
    ctx.need_dx = False            # as a graph leaves it after the previous step
    layer.forward(ctx, x, training=True)
    assert ctx.recording.inputs == []
    assert layer.backward(ctx, dy) is None
    np.testing.assert_allclose(layer.w.grad, ew, rtol=1e-12)
    np.testing.assert_allclose(layer.b.grad, eb, rtol=1e-12)
    # the next call is not watched either; a backward that now wants dx records it again
    layer.forward(ctx, x, training=True)
    ctx.need_dx = True
    dx = layer.backward(ctx, dy)
    np.testing.assert_allclose(dx, ex, rtol=1e-12)
    np.testing.assert_allclose(layer.w.grad, ew, rtol=1e-12)
