"""Neural-network ops (``keras.ops.nn``): activations, softmax, convolution, pooling,
normalization, crossentropies, one-hot. Differentiable under a tape like every op."""
from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import numpy as np

from fastnet import config
from fastnet.ops import numpy as _n
from fastnet.ops.autodiff import Tracer, apply, value_of

if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "relu", "relu6", "sigmoid", "softplus", "softsign", "silu", "swish", "log_sigmoid", "leaky_relu",
    "hard_sigmoid", "hard_silu", "hard_swish", "elu", "selu", "gelu", "celu", "glu", "tanh_shrink",
    "hard_tanh", "soft_shrink", "hard_shrink", "threshold", "sparse_plus", "squareplus", "softmax",
    "log_softmax", "conv", "conv_transpose", "depthwise_conv", "separable_conv", "max_pool", "average_pool", "one_hot",
    "multi_hot", "binary_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy",
    "moments", "batch_normalization", "normalize", "layer_normalization", "rms_normalization",
    "dot_product_attention", "mish",
]

_fval = _n._fval
_a = _n._a


def _act(f, dfn, uses="x", name=None):
    if uses == "y":
        def fwd(x):
            x = _fval(x)
            y = f(x)
            return y, y

        def bwd(g, y):
            return (dfn(g, None, y),)
    elif uses == "xy":
        def fwd(x):
            x = _fval(x)
            y = f(x)
            return y, (x, y)

        def bwd(g, r):
            return (dfn(g, r[0], r[1]),)
    else:
        def fwd(x):
            x = _fval(x)
            return f(x), x

        def bwd(g, x):
            return (dfn(g, x, None),)

    def op(x):
        return apply(fwd, bwd, (_a(x),))

    op.__name__ = name
    return op


def _sigmoid(x):
    # exp of a non-positive number only: no overflow warnings for large |x|
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


def _softplus(x):
    return (np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))).astype(x.dtype, copy=False)


def _relu_fwd(x):
    if type(x) is not np.ndarray or x.dtype.kind != "f":
        x = _fval(x)
    y = np.maximum(x, 0)
    return y, y


def _relu_bwd(g, y):
    return (g * (y > 0),)


def relu(x: Any) -> Any:
    """``max(x, 0)``."""
    if type(x) is Tracer:
        y = _n._relu_of_dense(x)   # x = matmul + bias: one record with them
        if y is not None:
            return y
    return apply(_relu_fwd, _relu_bwd, (x,))


relu6 = _act(lambda x: np.clip(x, 0, 6), lambda g, x, y: g * ((x > 0) & (x < 6)), "x", "relu6")
sigmoid = _act(_sigmoid, lambda g, x, y: g * y * (1 - y), "y", "sigmoid")
softplus = _act(_softplus, lambda g, x, y: g * _sigmoid(x), "x", "softplus")
softsign = _act(lambda x: x / (1 + np.abs(x)), lambda g, x, y: g / (1 + np.abs(x)) ** 2, "x", "softsign")
log_sigmoid = _act(lambda x: -_softplus(-x), lambda g, x, y: g * _sigmoid(-x), "x", "log_sigmoid")


def _silu_d(g, x, y):
    s = _sigmoid(x)
    return g * (s * (1 + x * (1 - s)))


silu = _act(lambda x: x * _sigmoid(x), _silu_d, "x", "silu")
swish = silu


def leaky_relu(x: Any, negative_slope: float = 0.2) -> Any:
    """``x`` for x >= 0, ``negative_slope * x`` otherwise."""
    a = negative_slope

    def fwd(v):
        v = _fval(v)
        return np.where(v >= 0, v, v * np.asarray(a, v.dtype)), v

    def bwd(g, v):
        return (np.where(v >= 0, g, g * np.asarray(a, g.dtype)),)

    return apply(fwd, bwd, (_a(x),))


def hard_sigmoid(x: Any) -> Any:
    """``relu6(x + 3) / 6``."""
    def fwd(v):
        v = _fval(v)
        return np.clip(v / 6 + 0.5, 0, 1).astype(v.dtype, copy=False), v

    def bwd(g, v):
        return (g * ((v > -3) & (v < 3)) / 6,)

    return apply(fwd, bwd, (_a(x),))


def hard_silu(x: Any) -> Any:
    """``x * hard_sigmoid(x)``."""
    return _n.multiply(x, hard_sigmoid(x))


hard_swish = hard_silu


def elu(x: Any, alpha: float = 1.0) -> Any:
    """``x`` for x > 0, ``alpha * (exp(x) - 1)`` otherwise."""
    def fwd(v):
        v = _fval(v)
        em = np.expm1(np.minimum(v, 0))
        return np.where(v > 0, v, alpha * em).astype(v.dtype, copy=False), (v, em)

    def bwd(g, r):
        v, em = r
        return (np.where(v > 0, g, g * alpha * (em + 1)),)

    return apply(fwd, bwd, (_a(x),))


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def selu(x: Any) -> Any:
    """``scale * elu(x, alpha)`` with the self-normalising constants."""
    return _n.multiply(elu(x, _SELU_ALPHA), _SELU_SCALE)


def celu(x: Any, alpha: float = 1.0) -> Any:
    """``max(x, 0) + alpha * min(exp(x / alpha) - 1, 0)``."""
    return _n.multiply(elu(_n.divide(x, alpha), 1.0), alpha) if alpha != 1.0 else elu(x, 1.0)


_GELU_C = np.sqrt(2.0 / np.pi)


def gelu(x: Any, approximate: bool = True) -> Any:
    """Gaussian error linear unit; the tanh approximation by default (as ``keras.ops.gelu``)."""
    if approximate:
        def fwd(v):
            v = _fval(v)
            c = np.asarray(_GELU_C, v.dtype)
            t = np.tanh(c * (v + 0.044715 * v ** 3))
            return 0.5 * v * (1 + t), (v, t)

        def bwd(g, r):
            v, t = r
            c = np.asarray(_GELU_C, v.dtype)
            dt = (1 - t * t) * c * (1 + 3 * 0.044715 * v * v)
            return (g * (0.5 * (1 + t) + 0.5 * v * dt),)
    else:
        def fwd(v):
            from scipy import special
            v = _fval(v)
            cdf = (0.5 * (1 + special.erf(v / np.sqrt(2.0)))).astype(v.dtype, copy=False)
            return v * cdf, (v, cdf)

        def bwd(g, r):
            v, cdf = r
            pdf = np.exp(-0.5 * v * v) / np.sqrt(2 * np.pi)
            return (g * (cdf + v * pdf),)

    return apply(fwd, bwd, (_a(x),))


def mish(x: Any) -> Any:
    return _n.multiply(x, _n.tanh(softplus(x)))


def glu(x: Any, axis: int = -1) -> Any:
    """``a * sigmoid(b)`` where a and b are the halves of x along ``axis``."""
    a, b = _n.split(x, 2, axis=axis)
    return _n.multiply(a, sigmoid(b))


def tanh_shrink(x: Any) -> Any:
    return _n.subtract(x, _n.tanh(x))


def hard_tanh(x: Any) -> Any:
    return _n.clip(x, -1.0, 1.0)


def soft_shrink(x: Any, threshold: float = 0.5) -> Any:
    xv = value_of(_a(x))
    return _n.where(np.abs(xv) > threshold, _n.subtract(x, _n.multiply(np.sign(xv), threshold)),
                    np.zeros((), np.asarray(_fval(xv)).dtype))


def hard_shrink(x: Any, threshold: float = 0.5) -> Any:
    xv = value_of(_a(x))
    return _n.where(np.abs(xv) > threshold, x, np.zeros((), np.asarray(_fval(xv)).dtype))


def threshold(x: Any, threshold: float, default_value: float) -> Any:  # noqa: F811
    xv = value_of(_a(x))
    return _n.where(xv > threshold, x, np.asarray(default_value, np.asarray(_fval(xv)).dtype))


def sparse_plus(x: Any) -> Any:
    xv = np.asarray(value_of(_a(x)))
    mid = _n.multiply(_n.square(_n.add(x, 1.0)), 0.25)
    zero = np.zeros((), _fval(xv).dtype)
    return _n.where(xv <= -1, zero, _n.where(xv >= 1, x, mid))


def squareplus(x: Any, b: float = 4) -> Any:
    return _n.multiply(_n.add(x, _n.sqrt(_n.add(_n.square(x), float(b)))), 0.5)


def softmax(x: Any, axis: Any = -1) -> Any:
    """``exp(x) / sum(exp(x))`` along ``axis`` (stable)."""
    ax = tuple(axis) if isinstance(axis, list) else axis

    def fwd(v):
        v = _fval(v)
        e = np.exp(v - np.max(v, axis=ax, keepdims=True))
        y = e / np.sum(e, axis=ax, keepdims=True)
        return y, y

    def bwd(g, y):
        gy = g * y
        return (gy - y * np.sum(gy, axis=ax, keepdims=True),)

    return apply(fwd, bwd, (_a(x),))


def log_softmax(x: Any, axis: Any = -1) -> Any:
    """``x - logsumexp(x)`` along ``axis``."""
    ax = tuple(axis) if isinstance(axis, list) else axis

    def fwd(v):
        v = _fval(v)
        s = v - np.max(v, axis=ax, keepdims=True)
        y = s - np.log(np.sum(np.exp(s), axis=ax, keepdims=True))
        return y, y

    def bwd(g, y):
        return (g - np.exp(y) * np.sum(g, axis=ax, keepdims=True),)

    return apply(fwd, bwd, (_a(x),))


# ============================================================================ windows (conv / pool)

def _tuple(v, n, what):
    if isinstance(v, (int, np.integer)):
        return (int(v),) * n
    v = tuple(int(e) for e in v)
    if len(v) != n:
        raise ValueError(f"`{what}` must have {n} entries for {n}-D inputs, received {v}")
    return v


def _padding_amounts(size, k, s, d, padding):
    """(out, pad_before, pad_after) per spatial axis, as Keras/TF compute "same" and "valid"."""
    eff = (k - 1) * d + 1
    if padding == "valid":
        out = (size - eff) // s + 1 if size >= eff else 0
        return out, 0, 0
    out = -(-size // s)
    total = max((out - 1) * s + eff - size, 0)
    return out, total // 2, total - total // 2


def _window_plan(spatial, ksize, strides, dilation, padding):
    padding = padding.lower()
    if padding not in ("valid", "same"):
        raise ValueError(f"`padding` must be 'valid' or 'same', received {padding!r}")
    plan = [_padding_amounts(n, k, s, d, padding) for n, k, s, d in zip(spatial, ksize, strides, dilation)]
    return [p[0] for p in plan], [(p[1], p[2]) for p in plan]


def _window_slices(out, ksize, strides, dilation):
    """For each kernel offset, the strided slice of the padded input it meets."""
    nd = len(out)
    slices = []
    for off in itertools.product(*[range(k) for k in ksize]):
        idx = [slice(None)]
        for i in range(nd):
            lo = off[i] * dilation[i]
            idx.append(slice(lo, lo + (out[i] - 1) * strides[i] + 1, strides[i]))
        idx.append(slice(None))
        slices.append(tuple(idx))
    return slices


def _windows(xp, out, ksize, strides, dilation):
    """(N, *out, K, C): every kernel offset's strided slice of the padded input."""
    slices = _window_slices(out, ksize, strides, dilation)
    return np.stack([xp[s] for s in slices], axis=-2), slices


def _scatter_windows(dcols, slices, padded_shape, pads, dtype):
    dxp = np.zeros(padded_shape, dtype)
    for j, s in enumerate(slices):
        dxp[s] += dcols[..., j, :]
    idx = (slice(None),) + tuple(slice(lo, padded_shape[i + 1] - hi) for i, (lo, hi) in enumerate(pads)) + (
        slice(None),)
    return dxp[idx]


def _to_last(x, data_format, nd):
    df = data_format or config.image_data_format()
    if df == "channels_first":
        return _n.moveaxis(x, 1, -1), True
    if df != "channels_last":
        raise ValueError(f"`data_format` must be 'channels_last' or 'channels_first', received {data_format!r}")
    return x, False


def _from_last(y, moved):
    return _n.moveaxis(y, -1, 1) if moved else y


def conv(inputs: Any, kernel: Any, strides: Any = 1, padding: str = "valid", data_format: str | None = None,
         dilation_rate: Any = 1) -> Any:
    """N-D convolution (cross-correlation, as Keras): inputs ``(batch, *spatial, channels)``,
    kernel ``(*kernel_size, channels // groups, filters)``; a product of the windows with
    the kernel through one BLAS matrix product."""
    xv = value_of(_a(inputs))
    nd = np.ndim(xv) - 2
    if nd < 1:
        raise ValueError(f"conv expects inputs of rank >= 3 (batch, spatial..., channels), received shape "
                         f"{np.shape(xv)}")
    x, moved = _to_last(inputs, data_format, nd)
    xshape = np.shape(value_of(x))
    kshape = np.shape(value_of(kernel))
    if len(kshape) != nd + 2:
        raise ValueError(f"conv kernel must have rank {nd + 2} for inputs of rank {nd + 2}, received kernel "
                         f"shape {kshape}")
    ksize = kshape[:nd]
    st = _tuple(strides, nd, "strides")
    dil = _tuple(dilation_rate, nd, "dilation_rate")
    C, Cg, F = xshape[-1], kshape[-2], kshape[-1]
    if C % Cg:
        raise ValueError(f"conv: input channels ({C}) must be a multiple of the kernel's input channels ({Cg})")
    G = C // Cg
    out, pads = _window_plan(xshape[1:-1], ksize, st, dil, padding)
    if G == 1 and nd <= 2 and min(out, default=1) > 0:
        y = _compiled_conv(x, kernel, ksize, st, dil, padding.lower(), out)
        if y is not None:
            return _from_last(y, moved)

    def fwd(v, w):
        v, w = _n._promote(v, w)
        v, w = np.asarray(v), np.asarray(w)
        xp = np.pad(v, [(0, 0)] + pads + [(0, 0)]) if any(p != (0, 0) for p in pads) else v
        cols, slices = _windows(xp, out, ksize, st, dil)
        K = cols.shape[-2]
        if G == 1:
            y = cols.reshape(-1, K * C) @ w.reshape(K * C, F)
            y = y.reshape(cols.shape[:-2] + (F,))
        else:
            cg = cols.reshape(cols.shape[:-1] + (G, Cg))
            wg = w.reshape(K, Cg, G, F // G)
            y = np.einsum("...kgc,kcgf->...gf", cg, wg, optimize=True).reshape(cols.shape[:-2] + (F,))
        # keep the padded input, not the K-times larger window stack: backward rebuilds it
        return y, (xp, w)

    def bwd(g, r):
        xp, w = r
        cols, slices = _windows(xp, out, ksize, st, dil)
        pshape = xp.shape
        K = cols.shape[-2]
        if G == 1:
            g2 = g.reshape(-1, F)
            dw = (cols.reshape(-1, K * C).T @ g2).reshape(w.shape)
            dcols = (g2 @ w.reshape(K * C, F).T).reshape(cols.shape)
        else:
            cg = cols.reshape(cols.shape[:-1] + (G, Cg))
            wg = w.reshape(K, Cg, G, F // G)
            gg = g.reshape(g.shape[:-1] + (G, F // G))
            dw = np.einsum("...kgc,...gf->kcgf", cg, gg, optimize=True).reshape(w.shape)
            dcols = np.einsum("...gf,kcgf->...kgc", gg, wg, optimize=True).reshape(cols.shape)
        dx = _scatter_windows(dcols, slices, pshape, pads, g.dtype)
        return dx, dw

    return _from_last(apply(fwd, bwd, (x, _a(kernel))), moved)


def _compiled_conv(x, kernel, ksize, st, dil, padding, out):
    """1-D/2-D channels-last convolution through fastnet's compiled conv kernel (the one
    Conv1D/Conv2D use), or None when the dtypes do not fit it."""
    xv, wv = value_of(x), value_of(kernel)
    if not (isinstance(xv, np.ndarray) and isinstance(wv, np.ndarray)) or xv.dtype != wv.dtype \
            or xv.dtype.char not in "fd":
        return None
    from fastnet._kernels import conv as _conv
    from fastnet.utils import shape_utils

    n, F = xv.shape[0], wv.shape[-1]
    geom = shape_utils.conv_geometry(tuple(xv.shape[1:-1]), tuple(ksize), tuple(st), padding, tuple(dil))
    rows = n * int(np.prod(out))

    def as4d(v):
        v = np.ascontiguousarray(v)
        return v.reshape(v.shape[0], 1, v.shape[1], v.shape[2]) if v.ndim == 3 else v

    def fwd(v, w, need):
        x4 = as4d(v)
        w2 = np.ascontiguousarray(w).reshape(-1, F)
        y = np.empty((rows, F), v.dtype)
        _conv.forward(x4, w2, None, None, y, geom, 0, 0.0, config._n_threads)
        return y.reshape((n,) + tuple(out) + (F,)), (None if need is None else (x4, w2, v.shape, w.shape, need))

    def bwd(g, r):
        x4, w2, vshape, wshape, need = r
        dy = np.ascontiguousarray(g, dtype=x4.dtype).reshape(rows, F)
        dw = np.empty(w2.shape, x4.dtype) if need[1] else None
        dx = np.empty(x4.shape, x4.dtype) if need[0] else None
        _conv.backward(dy, x4, w2, None, None, dw, None, dx, geom, 0, 0.0, config._n_threads)
        return (None if dx is None else dx.reshape(vshape)), (None if dw is None else dw.reshape(wshape))

    return apply(fwd, bwd, (x, kernel if not isinstance(kernel, (list, tuple)) else _a(kernel)), need=True)


def conv_transpose(inputs: Any, kernel: Any, strides: Any = 1, padding: str = "valid", output_padding: Any = None,
                   data_format: str | None = None, dilation_rate: Any = 1) -> Any:
    """Transposed convolution (the input gradient of a convolution): inputs
    ``(batch, *spatial, in_channels)``, kernel ``(*kernel_size, out_channels, in_channels)``;
    output sizes as Keras computes them."""
    from fastnet.utils import shape_utils

    xv = value_of(_a(inputs))
    nd = np.ndim(xv) - 2
    if nd < 1:
        raise ValueError(f"conv_transpose expects inputs of rank >= 3, received shape {np.shape(xv)}")
    x, moved = _to_last(inputs, data_format, nd)
    xshape = np.shape(value_of(x))
    kshape = np.shape(value_of(kernel))
    if len(kshape) != nd + 2 or kshape[-1] != xshape[-1]:
        raise ValueError(f"conv_transpose: kernel of shape {kshape} does not fit inputs of shape {xshape} (expected "
                         f"(*kernel_size, out_channels, {xshape[-1]}))")
    ksize = kshape[:nd]
    st = _tuple(strides, nd, "strides")
    dil = _tuple(dilation_rate, nd, "dilation_rate")
    opad = (None,) * nd if output_padding is None else _tuple(output_padding, nd, "output_padding")
    padding = padding.lower()
    if padding not in ("valid", "same"):
        raise ValueError(f"`padding` must be 'valid' or 'same', received {padding!r}")
    xs = xshape[1:-1]
    outs = [shape_utils.conv_transpose_output_length(n, k, padding, o, s_, d)
            for n, k, o, s_, d in zip(xs, ksize, opad, st, dil)]
    pads = []
    for n, L, k, s_, d in zip(xs, outs, ksize, st, dil):
        before = shape_utils.conv_transpose_padding(n, L, k, padding, s_, d)
        total = max(before + L, (n - 1) * s_ + (k - 1) * d + 1)
        pads.append((before, total - before - L))
    slices = _window_slices(xs, ksize, st, dil)
    Cout, Cin = kshape[-2], kshape[-1]
    K = int(np.prod(ksize))

    def fwd(v, w):
        v, w = _n._promote(v, w)
        v, w = np.asarray(v), np.asarray(w)
        w2 = w.reshape(K * Cout, Cin)
        dcols = (v.reshape(-1, Cin) @ w2.T).reshape(v.shape[:-1] + (K, Cout))
        padded = (v.shape[0],) + tuple(L + lo + hi for L, (lo, hi) in zip(outs, pads)) + (Cout,)
        return _scatter_windows(dcols, slices, padded, pads, dcols.dtype), (v, w2, w.shape)

    def bwd(g, r):
        v, w2, wshape = r
        gp = np.pad(g, [(0, 0)] + pads + [(0, 0)])
        cols = np.stack([gp[s_] for s_ in slices], axis=-2).reshape(-1, K * Cout)
        dx = (cols @ w2).reshape(v.shape)
        dw = (cols.T @ v.reshape(-1, Cin)).reshape(wshape)
        return dx, dw

    return _from_last(apply(fwd, bwd, (x, _a(kernel))), moved)


def depthwise_conv(inputs: Any, kernel: Any, strides: Any = 1, padding: str = "valid",
                   data_format: str | None = None, dilation_rate: Any = 1) -> Any:
    """Depthwise convolution: kernel ``(*kernel_size, channels, multiplier)``, output
    channels ``channels * multiplier``."""
    xv = value_of(_a(inputs))
    nd = np.ndim(xv) - 2
    x, moved = _to_last(inputs, data_format, nd)
    xshape = np.shape(value_of(x))
    kshape = np.shape(value_of(kernel))
    ksize = kshape[:nd]
    st = _tuple(strides, nd, "strides")
    dil = _tuple(dilation_rate, nd, "dilation_rate")
    C, M = kshape[-2], kshape[-1]
    out, pads = _window_plan(xshape[1:-1], ksize, st, dil, padding)

    def fwd(v, w):
        v, w = _n._promote(v, w)
        v, w = np.asarray(v), np.asarray(w)
        xp = np.pad(v, [(0, 0)] + pads + [(0, 0)]) if any(p != (0, 0) for p in pads) else v
        cols, slices = _windows(xp, out, ksize, st, dil)
        wk = w.reshape(-1, C, M)
        y = np.einsum("...kc,kcm->...cm", cols, wk, optimize=True)
        return y.reshape(y.shape[:-2] + (C * M,)), (xp, wk, w.shape)

    def bwd(g, r):
        xp, wk, wshape = r
        cols, slices = _windows(xp, out, ksize, st, dil)
        pshape = xp.shape
        gg = g.reshape(g.shape[:-1] + (C, M))
        dw = np.einsum("...kc,...cm->kcm", cols, gg, optimize=True).reshape(wshape)
        dcols = np.einsum("...cm,kcm->...kc", gg, wk, optimize=True)
        return _scatter_windows(dcols, slices, pshape, pads, g.dtype), dw

    return _from_last(apply(fwd, bwd, (x, _a(kernel))), moved)


def separable_conv(inputs: Any, depthwise_kernel: Any, pointwise_kernel: Any, strides: Any = 1,
                   padding: str = "valid", data_format: str | None = None, dilation_rate: Any = 1) -> Any:
    """A depthwise convolution followed by a 1x1 convolution."""
    y = depthwise_conv(inputs, depthwise_kernel, strides, padding, data_format, dilation_rate)
    return conv(y, pointwise_kernel, 1, "valid", data_format, 1)


def _pool(inputs, pool_size, strides, padding, data_format, kind):
    xv = value_of(_a(inputs))
    nd = np.ndim(xv) - 2
    if nd < 1:
        raise ValueError(f"{kind}_pool expects inputs of rank >= 3 (batch, spatial..., channels), "
                         f"received shape {np.shape(xv)}")
    x, moved = _to_last(inputs, data_format, nd)
    xshape = np.shape(value_of(x))
    ps = _tuple(pool_size, nd, "pool_size")
    st = ps if strides is None else _tuple(strides, nd, "strides")
    dil = (1,) * nd
    out, pads = _window_plan(xshape[1:-1], ps, st, dil, padding)
    padded = any(p != (0, 0) for p in pads)

    if kind == "max":
        def fwd(v):
            v = _fval(v)
            xp = np.pad(v, [(0, 0)] + pads + [(0, 0)], constant_values=-np.inf) if padded else v
            cols, slices = _windows(xp, out, ps, st, dil)
            arg = np.argmax(cols, axis=-2)
            y = np.take_along_axis(cols, arg[..., None, :], axis=-2)[..., 0, :]
            return y, (arg, cols.shape, slices, xp.shape)

        def bwd(g, r):
            arg, cshape, slices, pshape = r
            dcols = np.zeros(cshape, g.dtype)
            np.put_along_axis(dcols, arg[..., None, :], g[..., None, :], axis=-2)
            return (_scatter_windows(dcols, slices, pshape, pads, g.dtype),)
    else:
        if padded:
            ones = np.pad(np.ones((1,) + tuple(xshape[1:-1]) + (1,)), [(0, 0)] + pads + [(0, 0)])
            count = _windows(ones, out, ps, st, dil)[0].sum(axis=-2)
        else:
            count = float(np.prod(ps))

        def fwd(v):
            v = _fval(v)
            xp = np.pad(v, [(0, 0)] + pads + [(0, 0)]) if padded else v
            cols, slices = _windows(xp, out, ps, st, dil)
            y = (cols.sum(axis=-2) / count).astype(v.dtype, copy=False)
            return y, (cols.shape, slices, xp.shape)

        def bwd(g, r):
            cshape, slices, pshape = r
            gc = (g / count).astype(g.dtype, copy=False)
            dcols = np.broadcast_to(gc[..., None, :], cshape)
            return (_scatter_windows(dcols, slices, pshape, pads, g.dtype),)

    return _from_last(apply(fwd, bwd, (x,)), moved)


def max_pool(inputs: Any, pool_size: Any, strides: Any = None, padding: str = "valid",
             data_format: str | None = None) -> Any:
    """Max pooling over windows of ``pool_size`` (strides default to the pool size)."""
    return _pool(inputs, pool_size, strides, padding, data_format, "max")


def average_pool(inputs: Any, pool_size: Any, strides: Any = None, padding: str = "valid",
                 data_format: str | None = None) -> Any:
    """Average pooling; with "same" padding the padded positions are not counted."""
    return _pool(inputs, pool_size, strides, padding, data_format, "average")


# ============================================================================ encodings

def one_hot(x: Any, num_classes: int, axis: int = -1, dtype: Any = None, sparse: bool = False) -> np.ndarray:
    """One-hot vectors of integer labels (out-of-range labels give all zeros)."""
    if sparse:
        raise ValueError("fastnet computes dense arrays: one_hot(sparse=True) is not supported")
    xv = np.asarray(value_of(x)).astype(np.int64)
    n = int(num_classes)
    out = (xv[..., None] == np.arange(n)).astype(_n._dt(dtype))
    if axis != -1 and axis != out.ndim - 1:
        out = np.moveaxis(out, -1, axis)
    return out


def multi_hot(inputs: Any, num_classes: int | None = None, axis: int = -1, dtype: Any = None,
              sparse: bool = False, **kwargs) -> np.ndarray:
    if num_classes is None:
        num_classes = kwargs.pop("num_tokens", None)
    oh = one_hot(inputs, num_classes, axis=-1, dtype=dtype)
    v = np.asarray(value_of(inputs))
    out = oh.max(axis=-2) if v.ndim >= 1 else oh
    if axis != -1:
        out = np.moveaxis(out, -1, axis)
    return out


# ============================================================================ losses

def binary_crossentropy(target: Any, output: Any, from_logits: bool = False) -> Any:
    """Elementwise binary crossentropy (no reduction); probabilities are clipped to
    ``[epsilon, 1 - epsilon]``."""
    ts, os_ = _n.shape(target), _n.shape(output)
    if ts != os_:
        raise ValueError(f"Arguments `target` and `output` must have the same shape. Received: "
                         f"target.shape={ts}, output.shape={os_}")
    if from_logits:
        return _n.subtract(_n.multiply(_n.negative(target), log_sigmoid(output)),
                           _n.multiply(_n.subtract(1.0, target), log_sigmoid(_n.negative(output))))
    eps = config.epsilon()
    p = _n.clip(output, eps, 1.0 - eps)
    return _n.negative(_n.add(_n.multiply(target, _n.log(p)),
                              _n.multiply(_n.subtract(1.0, target), _n.log(_n.subtract(1.0, p)))))


def categorical_crossentropy(target: Any, output: Any, from_logits: bool = False, axis: int = -1) -> Any:
    """Crossentropy of one-hot (or soft) targets, reduced over ``axis``."""
    ts, os_ = _n.shape(target), _n.shape(output)
    if ts != os_:
        raise ValueError(f"Arguments `target` and `output` must have the same shape. Received: "
                         f"target.shape={ts}, output.shape={os_}")
    if len(ts) < 1:
        raise ValueError(f"Arguments `target` and `output` must be at least rank 1. Received: "
                         f"target.shape={ts}, output.shape={os_}")
    if from_logits:
        logp = log_softmax(output, axis=axis)
    else:
        eps = config.epsilon()
        p = _n.divide(output, _n.sum(output, axis=axis, keepdims=True))
        logp = _n.log(_n.clip(p, eps, 1.0 - eps))
    return _n.negative(_n.sum(_n.multiply(target, logp), axis=axis))


def sparse_categorical_crossentropy(target: Any, output: Any, from_logits: bool = False, axis: int = -1) -> Any:
    """Crossentropy of integer labels against probabilities (or logits) along ``axis``."""
    t = np.asarray(value_of(target)).astype(np.int64)
    os_ = _n.shape(output)
    if t.ndim == len(os_) and t.ndim and t.shape[-1] == 1:
        t = t[..., 0]
    if len(os_) < 1:
        raise ValueError(f"Argument `output` must be at least rank 1. Received: output.shape={os_}")
    if t.shape != tuple(os_[:-1]):
        raise ValueError(f"Arguments `target` and `output` must have the same shape up until the last "
                         f"dimension: target.shape={t.shape}, output.shape={os_}")
    if from_logits:
        logp = log_softmax(output, axis=axis)
    else:
        eps = config.epsilon()
        p = _n.divide(output, _n.sum(output, axis=axis, keepdims=True))
        logp = _n.log(_n.clip(p, eps, 1.0 - eps))
    oh = one_hot(t, os_[axis], axis=axis, dtype=np.asarray(value_of(logp)).dtype)
    return _n.negative(_n.sum(_n.multiply(oh, logp), axis=axis))


# ============================================================================ normalization

def moments(x: Any, axes: Any, keepdims: bool = False, synchronized: bool = False) -> tuple[Any, Any]:
    """(mean, variance) over ``axes``."""
    axes = list(axes) if isinstance(axes, (list, tuple)) else [axes]
    m = _n.mean(x, axis=axes, keepdims=True)
    v = _n.var(x, axis=axes, keepdims=True)
    if not keepdims:
        m = _n.squeeze(m, axis=axes)
        v = _n.squeeze(v, axis=axes)
    return m, v


def batch_normalization(x: Any, mean: Any, variance: Any, axis: int, offset: Any = None, scale: Any = None,
                        epsilon: float = 1e-3) -> Any:
    """``(x - mean) * rsqrt(variance + epsilon) * scale + offset``, statistics along ``axis``."""
    nd = _n.ndim(x)
    shp = [1] * nd
    shp[int(axis) % nd] = _n.shape(mean)[0]
    mean = _n.reshape(mean, shp)
    inv = _n.divide(1.0, _n.sqrt(_n.add(_n.reshape(variance, shp), epsilon)))
    if scale is not None:
        inv = _n.multiply(inv, _n.reshape(scale, shp))
    res = _n.negative(_n.multiply(mean, inv))
    if offset is not None:
        res = _n.add(res, _n.reshape(offset, shp))
    return _n.add(_n.multiply(x, inv), res)


def normalize(x: Any, axis: int = -1, order: int = 2, epsilon: float | None = None) -> Any:
    """``x / max(norm(x), epsilon)`` along ``axis`` (L2: ``x * min(rsqrt(sum x^2), 1/eps)``)."""
    if not isinstance(order, int) or order < 1:
        raise ValueError(f"Argument `order` must be an int >= 1. Received: order={order}")
    if _n.ndim(x) == 0:
        x = _n.expand_dims(x, 0)
    eps = config.epsilon() if epsilon is None else epsilon
    if order == 2:
        ss = _n.sum(_n.square(x), axis=axis, keepdims=True)
        inv = _n.minimum(_n.divide(1.0, _n.sqrt(ss)), 1.0 / eps)
        return _n.multiply(x, inv)
    if order == 1:
        norm = _n.sum(_n.abs(x), axis=axis, keepdims=True)
    else:
        norm = _n.power(_n.sum(_n.power(_n.abs(x), order), axis=axis, keepdims=True), 1.0 / order)
    return _n.divide(x, _n.maximum(norm, eps))


def layer_normalization(x: Any, gamma: Any = None, beta: Any = None, axis: int = -1, epsilon: float | None = None,
                        **kwargs) -> Any:
    """Normalises over ``axis`` then scales by ``gamma`` and shifts by ``beta``."""
    eps = config.epsilon() if epsilon is None else epsilon
    m, v = moments(x, [axis], keepdims=True)
    y = _n.multiply(_n.subtract(x, m), _n.divide(1.0, _n.sqrt(_n.add(v, eps))))
    if gamma is not None:
        y = _n.multiply(y, gamma)
    if beta is not None:
        y = _n.add(y, beta)
    return y


def rms_normalization(x: Any, scale: Any = None, axis: int = -1, epsilon: float | None = None) -> Any:
    eps = config.epsilon() if epsilon is None else epsilon
    y = _n.multiply(x, _n.divide(1.0, _n.sqrt(_n.add(_n.mean(_n.square(x), axis=axis, keepdims=True), eps))))
    return y if scale is None else _n.multiply(y, scale)


def dot_product_attention(query: Any, key: Any, value: Any, bias: Any = None, mask: Any = None,
                          scale: float | None = None, is_causal: bool = False, flash_attention: Any = None,
                          attn_logits_soft_cap: Any = None) -> Any:
    """Scaled dot-product attention on ``(batch, seq, heads, dim)`` inputs."""
    d = _n.shape(query)[-1]
    s = 1.0 / np.sqrt(d) if scale is None else scale
    logits = _n.einsum("BTNH,BSNH->BNTS", query, key)
    logits = _n.multiply(logits, s)
    if bias is not None:
        logits = _n.add(logits, bias)
    T, S = _n.shape(logits)[-2:]
    m = None
    if mask is not None:
        m = np.asarray(value_of(mask)).astype(bool)
    if is_causal:
        c = np.tril(np.ones((T, S), bool))
        m = c if m is None else (m & c)
    if m is not None:
        big = np.asarray(np.finfo(np.asarray(value_of(logits)).dtype).min / 2, np.asarray(value_of(logits)).dtype)
        logits = _n.where(m, logits, big)
    p = softmax(logits, axis=-1)
    return _n.einsum("BNTS,BSNH->BTNH", p, value)
