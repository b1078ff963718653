"""Layers written with fastnet.ops, the way Keras users write them, compute what the
built-in layers compute: the same outputs and, through the tape, the same input and
weight gradients as the built-in layers' hand-written backward passes.

The ops layers here hold Variables and a ``call`` of ops (the Layer base class wires the
tape around ``call``; here the tape is opened explicitly)."""
import numpy as np
import pytest

from fastnet import layers, ops
from fastnet.backend import Variable
from fastnet.ops import autodiff


class OpsDense:
    def __init__(self, kernel, bias):
        self.kernel, self.bias = Variable(kernel.copy()), Variable(bias.copy())

    def call(self, x):
        return ops.relu(ops.matmul(x, self.kernel) + self.bias)

    @property
    def weights(self):
        return [self.kernel, self.bias]


class OpsGRU:
    """Keras's GRU (reset_after=True, gates z, r, h) as a cell of ops, looped over time."""

    def __init__(self, kernel, recurrent_kernel, bias):
        self.kernel = Variable(kernel.copy())
        self.recurrent_kernel = Variable(recurrent_kernel.copy())
        self.bias = Variable(bias.copy())
        self.units = recurrent_kernel.shape[0]

    def cell(self, x_t, h):
        u = self.units
        xw = ops.matmul(x_t, self.kernel) + self.bias[0]
        hu = ops.matmul(h, self.recurrent_kernel) + self.bias[1]
        z = ops.sigmoid(xw[:, :u] + hu[:, :u])
        r = ops.sigmoid(xw[:, u:2 * u] + hu[:, u:2 * u])
        hh = ops.tanh(xw[:, 2 * u:] + r * hu[:, 2 * u:])
        return z * h + (1 - z) * hh

    def call(self, x):
        h = ops.zeros((ops.shape(x)[0], self.units), dtype=x.dtype)
        for t in range(ops.shape(x)[1]):
            h = self.cell(x[:, t, :], h)
        return h

    @property
    def weights(self):
        return [self.kernel, self.recurrent_kernel, self.bias]


class OpsLayerNorm:
    def __init__(self, gamma, beta, epsilon):
        self.gamma, self.beta, self.epsilon = Variable(gamma.copy()), Variable(beta.copy()), epsilon

    def call(self, x):
        mean, var = ops.moments(x, axes=[-1], keepdims=True)
        return (x - mean) * ops.rsqrt(var + self.epsilon) * self.gamma + self.beta

    @property
    def weights(self):
        return [self.gamma, self.beta]


def _ops_forward_backward(layer, x, dy):
    tape = autodiff.Tape()
    with tape:
        tx = tape.watch(x)
        y = layer.call(tx)
    (dx,), dws = tape.gradient(y, dy, inputs=[tx], variables=layer.weights)
    return autodiff.unwrap(y), dx, dws


def _builtin_forward_backward(layer, x, dy):
    y = layer(x, training=True)
    dx = layer.backward(dy)
    return y, dx, [v.grad.copy() for v in layer.trainable_weights]


def _compare(builtin, ops_layer, x, rtol, atol):
    rng = np.random.default_rng(9)
    y_b = builtin(x, training=True)
    dy = rng.normal(size=y_b.shape).astype(x.dtype)
    y_b, dx_b, dw_b = _builtin_forward_backward(builtin, x, dy)
    y_o, dx_o, dw_o = _ops_forward_backward(ops_layer, x, dy)
    assert y_o.dtype == x.dtype and dx_o.dtype == x.dtype
    np.testing.assert_allclose(y_o, y_b, rtol=rtol, atol=atol, err_msg="outputs")
    np.testing.assert_allclose(dx_o, dx_b, rtol=rtol, atol=atol, err_msg="input gradient")
    for v, a, b in zip(ops_layer.weights, dw_o, dw_b):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=f"gradient of {v.name}")


# float32: the compiled kernels and numpy's BLAS sum in different orders
TOL = {np.float32: (2e-5, 2e-6), np.float64: (1e-11, 1e-12)}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dense_relu_written_with_ops_equals_dense(dtype):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 8)).astype(dtype)
    dense = layers.Dense(5, activation="relu", dtype=np.dtype(dtype).name)
    dense(x)
    dense.set_weights([rng.normal(size=(8, 5)).astype(dtype), rng.normal(size=(5,)).astype(dtype) * 0.1])
    _compare(dense, OpsDense(dense.kernel.value, dense.bias.value), x, *TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gru_cell_written_with_ops_equals_gru(dtype):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 6, 3)).astype(dtype)
    gru = layers.GRU(5, dtype=np.dtype(dtype).name)
    gru(x)
    gru.set_weights([rng.normal(0, 0.5, w.shape).astype(dtype) for w in gru.get_weights()])
    k, rk, b = gru.get_weights()
    _compare(gru, OpsGRU(k, rk, b), x, *TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layer_normalization_written_with_ops_equals_layer_normalization(dtype):
    rng = np.random.default_rng(2)
    x = (rng.normal(size=(8, 7)) * 3 + 1).astype(dtype)
    ln = layers.LayerNormalization(epsilon=1e-3, dtype=np.dtype(dtype).name)
    ln(x)
    ln.set_weights([rng.normal(size=(7,)).astype(dtype), rng.normal(size=(7,)).astype(dtype)])
    g, b = ln.get_weights()
    _compare(ln, OpsLayerNorm(g, b, 1e-3), x, *TOL[dtype])
