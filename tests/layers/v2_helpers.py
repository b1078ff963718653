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


def case_names(prefixes):
    """Names of the stored Keras cases starting with any of ``prefixes``."""
    names = sorted(f[:-4] for f in os.listdir(DATA) if f.endswith(".npz"))
    return [n for n in names if n.startswith(tuple(prefixes))]


def layer_for_case(meta, dtype="float32"):
    import json

    import fastnet.layers as layers

    meta = json.loads(str(meta)) if not isinstance(meta, dict) else meta
    cfg = dict(meta["config"])
    return getattr(layers, meta["class_name"])(dtype=dtype, **cfg), meta


def check_keras_case(name, rtol=1e-4, atol=1e-5, grad_atol=1e-4):
    """Replays a stored Keras case in float32: output, input gradient and weight gradients
    of sum(y * u) (plus the layer's activity penalty, where it adds one)."""
    d = load(name)
    layer, meta = layer_for_case(d["meta"])
    x = d["x"]
    layer.build(x.shape) if not layer.built else None
    layer.built = True
    weights = [d[f"w_{i}"] for i in range(meta["n_weights"])]
    assert [v.name for v in layer.weights] == meta["weight_names"], "weight names/order differ from Keras"
    layer.set_weights(weights)
    y, ctx = run_forward(layer, x, training=False)
    np.testing.assert_allclose(y, d["y"], rtol=rtol, atol=atol, err_msg=f"{name}: output")
    assert y.shape == tuple(layer.compute_output_shape(x.shape)), f"{name}: compute_output_shape"
    if meta["loss"]:
        np.testing.assert_allclose(ctx.losses[0], meta["loss"], rtol=rtol, err_msg=f"{name}: loss")
    dx = run_backward(layer, ctx, d["u"])
    np.testing.assert_allclose(dx, d["dx"], rtol=rtol, atol=grad_atol, err_msg=f"{name}: dx")
    for i, var in enumerate(layer.trainable_weights):
        np.testing.assert_allclose(var.grad, d[f"dw_{i}"], rtol=rtol, atol=grad_atol,
                                   err_msg=f"{name}: d{var.name}")
    if "mask" in d:
        np.testing.assert_array_equal(layer.compute_mask(x), d["mask"])
    return layer, d
