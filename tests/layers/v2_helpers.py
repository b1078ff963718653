"""Eager forward/backward for layers written to the per-call-context contract.

While ``fastnet.layers.base`` has no ``CallContext`` (the contract's executor is
not in this tree yet), ``run_forward`` builds the layer and calls ``forward`` with a
plain recorded context itself; once the base class provides ``__call__`` with
``_last_ctx``, it uses that. Tests call only these two functions, so they run
unchanged either way.
"""
import os

import numpy as np

from fastnet.layers import base
from fastnet.layers._v2 import SimpleContext

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "keras_layers_extra")
_NEW_CONTRACT = hasattr(base, "CallContext")


def run_forward(layer, x, training=False, **kwargs):
    """(outputs, ctx) of one recorded call of ``layer`` on ``x``."""
    if _NEW_CONTRACT:
        y = layer(x, training=training, **kwargs)
        return y, layer._last_ctx
    x = layer._convert(x)
    if not layer.built:
        layer._maybe_build(x.shape)
    else:
        layer._check_spec(x.shape)
    ctx = SimpleContext()
    return layer.forward(ctx, x, training=training, **kwargs), ctx


def run_backward(layer, ctx, dy, need_dx=True):
    ctx.need_dx = need_dx
    return layer.backward(ctx, dy)


def load(name):
    d = np.load(os.path.join(DATA, name + ".npz"), allow_pickle=False)
    return {k: d[k] for k in d.files}


def numeric_grad(f, x, eps=1e-6):
    x = np.array(x, dtype=np.float64)
    g = np.zeros_like(x)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        fp = f(x)
        flat[i] = old - eps
        fm = f(x)
        flat[i] = old
        gflat[i] = (fp - fm) / (2 * eps)
    return g


def check_gradients(layer, x, training=False, rtol=1e-6, atol=1e-8, seed=0):
    """Finite differences (float64) of sum(layer(x) * u) against backward(u): dx and every
    trainable weight's gradient. ``layer`` must be a float64 layer."""
    rng = np.random.default_rng(seed)
    x = np.asarray(x, dtype=np.float64)
    y, ctx = run_forward(layer, x, training)
    u = rng.standard_normal(np.shape(y))
    dx = run_backward(layer, ctx, u)
    grads = [v.grad.copy() for v in layer.trainable_weights]

    def loss_x(xv):
        return float(np.sum(run_forward(layer, xv, training)[0] * u))

    np.testing.assert_allclose(dx, numeric_grad(loss_x, x), rtol=rtol, atol=atol, err_msg="dx")
    for var, g in zip(layer.trainable_weights, grads):
        def loss_w(wv, var=var):
            old = var.value.copy()
            var.value[...] = wv
            try:
                return float(np.sum(run_forward(layer, x, training)[0] * u))
            finally:
                var.value[...] = old
        np.testing.assert_allclose(g, numeric_grad(loss_w, var.value), rtol=rtol, atol=atol,
                                   err_msg=f"d{var.name}")
