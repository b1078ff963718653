"""NumPy-like ops (``keras.ops.numpy``), differentiable under a :class:`~fastnet.ops.autodiff.Tape`.

On numpy arrays, Python numbers and Variables these compute eagerly and return numpy
arrays. On traced values (inside a recorded call) they return traced values and record
their vector-Jacobian products. Dtypes follow Keras: Python floats and lists of floats
become ``floatx()`` (float32), Python ints int32; float inputs keep their dtype; an
integer array combined with a float gives that float type; float-valued functions of
integer arrays (``exp``, ``mean``, ...) compute in ``floatx()``.
"""
from __future__ import annotations

import builtins
from typing import TYPE_CHECKING

import numpy as np

from fastnet import config
from fastnet.backend import Variable
from fastnet.ops.autodiff import _TLS, Tracer, _unbroadcast, apply, value_of

if TYPE_CHECKING:
    from typing import Any

_py_slice = builtins.slice
_py_max = builtins.max
_py_min = builtins.min
_py_abs = builtins.abs
_py_round = builtins.round
_py_all = builtins.all
_py_any = builtins.any
_py_sum = builtins.sum


# ============================================================================ dtypes and conversion

def standardize_dtype(dtype: Any) -> str | None:
    """A numpy dtype name for ``dtype`` (None stays None; "float" is floatx)."""
    if dtype is None:
        return None
    if isinstance(dtype, np.dtype):
        return dtype.name
    if dtype == "float" or dtype is float:
        return config.floatx()
    if dtype == "int" or dtype is int:
        return "int32"
    if dtype == "bool" or dtype is bool:
        return "bool"
    if hasattr(dtype, "name") and not isinstance(dtype, np.dtype) and not isinstance(dtype, type):
        dtype = dtype.name
    try:
        return np.dtype(dtype).name
    except TypeError:
        raise ValueError(f"Invalid dtype: {dtype!r}") from None


def _default_array(x):
    """A Python value as an array with Keras's default dtypes (float32/int32/bool)."""
    a = np.asarray(x)
    k = a.dtype.kind
    if k == "f" and a.dtype != np.float16 and not isinstance(x, np.ndarray) and not isinstance(x, np.generic):
        return a.astype(config.floatx())
    if k in "iu" and not isinstance(x, (np.ndarray, np.generic)):
        if a.size == 0 or (a.min() >= -2 ** 31 and a.max() < 2 ** 31):
            return a.astype(np.int32)
    return a


def _a(x):
    """An op's argument: Tracers and Variables pass through; others become arrays."""
    t = type(x)
    if t is np.ndarray or t is Tracer or isinstance(x, Variable):
        return x
    return _default_array(x)


def _fval(x):
    """A value as a float array (integers and bools in floatx), for float-valued functions."""
    if type(x) is not np.ndarray:
        x = np.asarray(x) if not isinstance(x, (float, int)) else _default_array(x)
    if x.dtype.kind not in "fc":
        return x.astype(config.floatx())
    return x


def _promote(a, b):
    """Keras's binary promotion on values: Python and numpy scalars are weak; an integer
    array meets a float as that float's type; lists follow the defaults."""
    ta, tb = type(a), type(b)
    if ta is not np.ndarray:
        a = _scalar_or_array(a)
        ta = type(a)
    if tb is not np.ndarray:
        b = _scalar_or_array(b)
        tb = type(b)
    if ta is np.ndarray and tb is np.ndarray:
        ka, kb = a.dtype.kind, b.dtype.kind
        if ka == "f" and kb in "iub":
            b = b.astype(a.dtype)
        elif kb == "f" and ka in "iub":
            a = a.astype(b.dtype)
    elif ta is float and tb is np.ndarray and b.dtype.kind in "iub":
        b = b.astype(config.floatx())
    elif tb is float and ta is np.ndarray and a.dtype.kind in "iub":
        a = a.astype(config.floatx())
    elif ta is not np.ndarray and tb is not np.ndarray:
        a = _default_array(a)
    return a, b


def _scalar_or_array(x):
    if isinstance(x, np.generic):   # before float: np.float64 is a float subclass
        return x.item()
    if isinstance(x, (bool, int, float)):
        return x
    return _default_array(x)


def _shape(x):
    return x.shape if type(x) is np.ndarray else np.shape(x)


def _axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (list, tuple)):
        return tuple(sorted(int(a) % ndim if ndim else 0 for a in axis))
    return (int(axis) % ndim if ndim else 0,)


def _expand_reduced(g, shape, axis, keepdims):
    """g of a reduction's output, reshaped to broadcast against the input shape."""
    if keepdims or not shape:
        return g
    axes = _axes(axis, len(shape))
    return g.reshape([1 if i in axes else d for i, d in enumerate(shape)])


# ============================================================================ elementwise: unary

def _unary(f, dfn, uses="x", name=None):
    """A differentiable float function: dfn(g, x, y) -> dx."""
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

    if name:
        op.__name__ = name
    return op


def _nondiff(f, name=None, floatin=False):
    def op(*args, **kwargs):
        vals = [value_of(a) for a in args]
        if floatin:
            vals[0] = _fval(np.asarray(vals[0]) if not isinstance(vals[0], np.ndarray) else vals[0])
        return f(*vals, **kwargs)

    if name:
        op.__name__ = name
    return op


exp = _unary(np.exp, lambda g, x, y: g * y, "y", "exp")
exp2 = _unary(np.exp2, lambda g, x, y: g * y * np.log(2.0).astype(y.dtype), "y", "exp2")
expm1 = _unary(np.expm1, lambda g, x, y: g * (y + 1), "y", "expm1")
log = _unary(np.log, lambda g, x, y: g / x, "x", "log")
log2 = _unary(np.log2, lambda g, x, y: g / (x * np.log(2.0).astype(x.dtype)), "x", "log2")
log10 = _unary(np.log10, lambda g, x, y: g / (x * np.log(10.0).astype(x.dtype)), "x", "log10")
log1p = _unary(np.log1p, lambda g, x, y: g / (1 + x), "x", "log1p")
sqrt = _unary(np.sqrt, lambda g, x, y: g * 0.5 / y, "y", "sqrt")
sin = _unary(np.sin, lambda g, x, y: g * np.cos(x), "x", "sin")
cos = _unary(np.cos, lambda g, x, y: -g * np.sin(x), "x", "cos")
tan = _unary(np.tan, lambda g, x, y: g * (1 + y * y), "y", "tan")
sinh = _unary(np.sinh, lambda g, x, y: g * np.cosh(x), "x", "sinh")
cosh = _unary(np.cosh, lambda g, x, y: g * np.sinh(x), "x", "cosh")
tanh = _unary(np.tanh, lambda g, x, y: g * (1 - y * y), "y", "tanh")
arcsin = _unary(np.arcsin, lambda g, x, y: g / np.sqrt(1 - x * x), "x", "arcsin")
arccos = _unary(np.arccos, lambda g, x, y: -g / np.sqrt(1 - x * x), "x", "arccos")
arctan = _unary(np.arctan, lambda g, x, y: g / (1 + x * x), "x", "arctan")
arcsinh = _unary(np.arcsinh, lambda g, x, y: g / np.sqrt(x * x + 1), "x", "arcsinh")
arccosh = _unary(np.arccosh, lambda g, x, y: g / np.sqrt(x * x - 1), "x", "arccosh")
arctanh = _unary(np.arctanh, lambda g, x, y: g / (1 - x * x), "x", "arctanh")
reciprocal = _unary(np.reciprocal, lambda g, x, y: -g * y * y, "y", "reciprocal")


square = _unary(np.square, lambda g, x, y: g * 2 * x, "x", "square")


def _abs_fwd(x):
    return np.abs(x), x


def _abs_bwd(g, x):
    return (g * np.sign(x),)


def abs(x: Any) -> Any:  # noqa: A001
    """Elementwise absolute value."""
    return apply(_abs_fwd, _abs_bwd, (_a(x),))


absolute = abs


def _neg_fwd(x):
    return np.negative(x), None


def _neg_bwd(g, _):
    return (-g,)


def negative(x: Any) -> Any:
    """Elementwise negation."""
    return apply(_neg_fwd, _neg_bwd, (_a(x),))


sign = _nondiff(np.sign, "sign")
floor = _nondiff(lambda x: np.floor(_fval(x)), "floor")
ceil = _nondiff(lambda x: np.ceil(_fval(x)), "ceil")
trunc = _nondiff(np.trunc, "trunc")
isnan = _nondiff(np.isnan, "isnan")
isinf = _nondiff(np.isinf, "isinf")
isfinite = _nondiff(np.isfinite, "isfinite")
logical_not = _nondiff(np.logical_not, "logical_not")


def round(x: Any, decimals: int = 0) -> Any:  # noqa: A001
    """Rounds half to even to ``decimals`` places (no gradient)."""
    return np.round(value_of(_a(x)), decimals)


# ============================================================================ elementwise: binary

def _binary(npf, grads, name):
    """grads(g, a, b, y) -> (da, db) before un-broadcasting."""
    def fwd(a, b):
        a, b = _promote(a, b)
        y = npf(a, b)
        return y, (a, b, y)

    def bwd(g, r):
        a, b, y = r
        ga, gb = grads(g, a, b, y)
        return (None if ga is None else _unbroadcast(ga, np.shape(a)),
                None if gb is None else _unbroadcast(gb, np.shape(b)))

    def op(x1, x2):
        return apply(fwd, bwd, (_a(x1) if type(x1) is list else x1, _a(x2) if type(x2) is list else x2))

    op.__name__ = name
    return op


def _add_fwd(a, b):
    a, b = _promote(a, b)
    return a + b, (np.shape(a), np.shape(b))


def _add_bwd(g, r):
    return _unbroadcast(g, r[0]), _unbroadcast(g, r[1])


def add(x1: Any, x2: Any) -> Any:
    """Elementwise sum (broadcasting)."""
    if type(x1) is Tracer or type(x2) is Tracer:
        out = _add_bias(x1, x2)
        if out is not None:
            return out
    return apply(_add_fwd, _add_bwd, (x1, x2))


def _sub_fwd(a, b):
    a, b = _promote(a, b)
    return a - b, (np.shape(a), np.shape(b))


def _sub_bwd(g, r):
    return _unbroadcast(g, r[0]), _unbroadcast(-g, r[1])


def subtract(x1: Any, x2: Any) -> Any:
    """Elementwise difference (broadcasting)."""
    return apply(_sub_fwd, _sub_bwd, (x1, x2))


def _mul_fwd(a, b, need):
    a, b = _promote(a, b)
    if need is None:
        return a * b, None
    return a * b, (a if need[1] else None, b if need[0] else None, np.shape(a), np.shape(b))


def _mul_bwd(g, r):
    a, b, sa, sb = r
    return (None if b is None else _unbroadcast(g * b, sa)), (None if a is None else _unbroadcast(g * a, sb))


def multiply(x1: Any, x2: Any) -> Any:
    """Elementwise product (broadcasting)."""
    return apply(_mul_fwd, _mul_bwd, (x1, x2), need=True)


def _div_fwd(a, b):
    a, b = _promote(a, b)
    y = np.true_divide(a, b)
    if type(y) is np.ndarray and y.dtype.kind != "f":
        y = y.astype(config.floatx())
    elif type(y) is not np.ndarray:
        y = np.asarray(y, dtype=config.floatx())
    if y.dtype == np.float64 and _int_like(a) and _int_like(b):
        y = y.astype(config.floatx())
    return y, (a, b, y)


def _int_like(v):
    return isinstance(v, (int, bool)) or (type(v) is np.ndarray and v.dtype.kind in "iub")


def _div_bwd(g, r):
    a, b, y = r
    gb = g / b
    return _unbroadcast(gb, np.shape(a)), _unbroadcast(-gb * y, np.shape(b))


def divide(x1: Any, x2: Any) -> Any:
    """Elementwise true division; integer inputs give floatx."""
    return apply(_div_fwd, _div_bwd, (_a(x1) if type(x1) is list else x1, _a(x2) if type(x2) is list else x2))


true_divide = divide


def _pow_fwd(a, b):
    a, b = _promote(a, b)
    y = np.power(a, b)
    return y, (a, b, y)


def _pow_bwd(g, r):
    a, b, y = r
    ga = g * b * np.power(a, b - 1) if not (isinstance(b, (int, float)) and b == 0) else g * 0
    if type(b) is np.ndarray and b.dtype.kind == "f" or isinstance(b, float) and type(a) is np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            gb = g * y * np.where(a > 0, np.log(np.where(a > 0, a, 1)), 0)
    else:
        gb = None
    return _unbroadcast(ga, np.shape(a)), None if gb is None else _unbroadcast(gb, np.shape(b))


def power(x1: Any, x2: Any) -> Any:
    """Elementwise ``x1 ** x2``."""
    return apply(_pow_fwd, _pow_bwd, (x1, x2))


def _max_grads(g, a, b, y):
    # ties share the gradient equally, as the reference implementation does
    ma = (a > b).astype(g.dtype) + 0.5 * (a == b)
    return g * ma, g * (1 - ma)


def _min_grads(g, a, b, y):
    ma = (a < b).astype(g.dtype) + 0.5 * (a == b)
    return g * ma, g * (1 - ma)


maximum = _binary(np.maximum, _max_grads, "maximum")
minimum = _binary(np.minimum, _min_grads, "minimum")
mod = _binary(np.mod, lambda g, a, b, y: (g, -g * np.floor_divide(a, b)), "mod")
arctan2 = _binary(np.arctan2, lambda g, a, b, y: (g * b / (a * a + b * b), -g * a / (a * a + b * b)), "arctan2")
logaddexp = _binary(np.logaddexp, lambda g, a, b, y: (g * np.exp(a - y), g * np.exp(b - y)), "logaddexp")
hypot = _binary(np.hypot, lambda g, a, b, y: (g * a / y, g * b / y), "hypot")


def floor_divide(x1: Any, x2: Any) -> Any:
    """Elementwise floor division (no gradient)."""
    a, b = _promote(value_of(_a(x1)), value_of(_a(x2)))
    return np.floor_divide(a, b)


def _divnn_fwd(a, b):
    a, b = _promote(a, b)
    safe = np.where(b == 0, 1, b)
    y = np.where(b == 0, 0, np.true_divide(a, safe))
    if y.dtype.kind != "f":
        y = y.astype(config.floatx())
    return y, (a, b, safe)


def _divnn_bwd(g, r):
    a, b, safe = r
    z = b == 0
    ga = np.where(z, 0, g / safe)
    gb = np.where(z, 0, -g * a / (safe * safe))
    return _unbroadcast(ga, np.shape(a)), _unbroadcast(gb, np.shape(b))


def divide_no_nan(x1: Any, x2: Any) -> Any:
    """``x1 / x2`` with 0 where ``x2`` is 0."""
    return apply(_divnn_fwd, _divnn_bwd, (x1, x2))


def _cmp(npf, name):
    def op(x1, x2):
        a, b = _promote(value_of(x1), value_of(x2))
        return npf(a, b)

    op.__name__ = name
    return op


equal = _cmp(np.equal, "equal")
not_equal = _cmp(np.not_equal, "not_equal")
less = _cmp(np.less, "less")
less_equal = _cmp(np.less_equal, "less_equal")
greater = _cmp(np.greater, "greater")
greater_equal = _cmp(np.greater_equal, "greater_equal")
logical_and = _cmp(np.logical_and, "logical_and")
logical_or = _cmp(np.logical_or, "logical_or")
logical_xor = _cmp(np.logical_xor, "logical_xor")
bitwise_and = _cmp(np.bitwise_and, "bitwise_and")
bitwise_or = _cmp(np.bitwise_or, "bitwise_or")
bitwise_xor = _cmp(np.bitwise_xor, "bitwise_xor")


def isclose(x1: Any, x2: Any, rtol: float = 1e-5, atol: float = 1e-8, equal_nan: bool = False) -> np.ndarray:
    """Elementwise closeness within tolerances."""
    return np.isclose(value_of(x1), value_of(x2), rtol=rtol, atol=atol, equal_nan=equal_nan)


def allclose(x1: Any, x2: Any, rtol: float = 1e-5, atol: float = 1e-8, equal_nan: bool = False) -> bool:
    return bool(np.allclose(value_of(x1), value_of(x2), rtol=rtol, atol=atol, equal_nan=equal_nan))


def where(condition: Any, x1: Any = None, x2: Any = None) -> Any:
    """``x1`` where ``condition`` holds, else ``x2``; with one argument, the indices."""
    c = np.asarray(value_of(condition)).astype(bool, copy=False)
    if x1 is None and x2 is None:
        return np.nonzero(c)
    if x1 is None or x2 is None:
        raise ValueError("`x1` and `x2` either both should be `None` or both should have non-None value.")

    def fwd(a, b):
        a, b = _promote(a, b)
        return np.where(c, a, b), (np.shape(a), np.shape(b))

    def bwd(g, r):
        z = np.zeros((), g.dtype)
        return _unbroadcast(np.where(c, g, z), r[0]), _unbroadcast(np.where(c, z, g), r[1])

    return apply(fwd, bwd, (x1, x2))


def clip(x: Any, x_min: Any, x_max: Any) -> Any:
    """Clips values to ``[x_min, x_max]``; the gradient passes where x is inside."""
    lo, hi = value_of(x_min), value_of(x_max)

    def fwd(v):
        if type(v) is not np.ndarray:
            v = _default_array(v)
        y = np.clip(v, lo, hi)
        if y.dtype != v.dtype and v.dtype.kind == "f":
            y = y.astype(v.dtype)
        return y, v

    def bwd(g, v):
        m = np.ones(v.shape, bool)
        if lo is not None:
            m &= v >= lo
        if hi is not None:
            m &= v <= hi
        return (g * m,)

    return apply(fwd, bwd, (x,))


# ============================================================================ products

# Float matrix products run in fastnet's dense kernel (its OpenMP threads and the BLAS
# the other kernels call, one thread per caller) rather than numpy's BLAS: numpy's
# thread pool would spin against the kernels' threads on the same cores. The kernel
# takes 2-D C-contiguous operands of one float dtype; an N-D left operand times a 2-D
# right one folds its leading axes into rows. Everything else (integers, mixed dtypes,
# 1-D operands, batched right operands) stays with numpy.
_KERNEL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_ACT_RELU = 1   # the dense kernel's activation code for ReLU (fastnet/_kernels/_activations.pxd)
_DENSE = None
# A non-contiguous operand is copied for the kernel when the product costs at least
# this many times the copy (the product's other dimension), else numpy takes the call.
_COPY_RATIO = 8


def _dense():
    global _DENSE
    if _DENSE is None:
        from fastnet._kernels import dense
        _DENSE = dense
    return _DENSE


def _contig(x, ratio):
    """x C-contiguous: itself, a copy when the copy is cheap next to the product
    (``ratio``: the product's dimension that x lacks), else None."""
    if x.flags.c_contiguous:
        return x
    return np.ascontiguousarray(x) if ratio >= _COPY_RATIO else None


def _kernel_mm(a, b):
    """a @ b in the dense kernel, or None where the kernel does not apply. a: (..., k)
    with at least 2 dims, b: (k, n), both ndarrays of one float dtype."""
    dt = a.dtype
    if dt not in _KERNEL_DTYPES or b.dtype != dt or b.ndim != 2 or a.ndim < 2:
        return None
    k, n = b.shape
    if a.shape[-1] != k or n == 0 or k == 0 or a.size == 0:
        return None
    a2 = a if a.ndim == 2 else a.reshape(-1, k)
    m = a2.shape[0]
    if not a2.flags.c_contiguous:
        a2 = _contig(a2, n)
        if a2 is None:
            return None
    if not b.flags.c_contiguous:
        b = _contig(b, m)
        if b is None:
            return None
    y = np.empty((m, n), dt)
    (_DENSE or _dense()).forward(a2, b, None, None, y, 0, 0.0, config._n_threads)
    return y if a.ndim == 2 else y.reshape(a.shape[:-1] + (n,))


def _kernel_mm_bwd(g, a, b, sa, sb, y=None, want_db=False, dw_out=None, db_out=None):
    """Gradients of a @ b (plus a bias, then a ReLU when ``y``, its output, is given) in
    the dense kernel: (dA, dB, dbias) with None for an operand not kept (and for the bias
    unless ``want_db``); None where the kernel does not apply. a: the left operand or
    None, b: the right one (2-D) or None; sa, sb: their shapes."""
    dt = g.dtype
    k, n = sb
    if dt not in _KERNEL_DTYPES or n == 0 or k == 0 or g.size == 0:
        return None
    g2 = g if g.ndim == 2 else g.reshape(-1, n)
    m = g2.shape[0]
    if not g2.flags.c_contiguous:
        g2 = _contig(g2, k)
        if g2 is None:
            return None
    if a is not None:
        if a.dtype != dt:
            return None
        if a.ndim != 2:
            a = a.reshape(-1, k)
        if not a.flags.c_contiguous:
            a = _contig(a, n)
            if a is None:
                return None
    if b is not None:
        if b.dtype != dt:
            return None
        if not b.flags.c_contiguous:
            b = _contig(b, m)
            if b is None:
                return None
    elif a is None and not want_db:
        return None
    if y is None:
        y, act, dz = g2, 0, None
    else:
        if y.ndim != 2:
            y = y.reshape(-1, n)
        if y.dtype != dt or not y.flags.c_contiguous:
            return None
        act, dz = _ACT_RELU, np.empty((m, n), dt)
    da = None if b is None else np.empty((m, k), dt)
    dw = None if a is None else (np.empty((k, n), dt) if dw_out is None else dw_out)
    db = (np.empty(n, dt) if db_out is None else db_out) if want_db else None
    # The kernel reads x only for dW and w only for dX: an operand that was not kept
    # stands in by the buffer of the gradient that is not computed from it (or by a
    # scratch array when only the bias gradient is wanted).
    x = a if a is not None else (da if da is not None else np.empty((m, k), dt))
    w = b if b is not None else (dw if dw is not None else np.empty((k, n), dt))
    (_DENSE or _dense()).backward(g2, x, w, y, None, dz, dw, db, da, act, 0.0, config._n_threads)
    if da is not None and len(sa) != 2:
        da = da.reshape(sa)
    return da, dw, db


def _mm_fwd(a, b, need):
    if type(a) is not np.ndarray or type(b) is not np.ndarray or a.dtype != b.dtype:
        a, b = _promote(a, b)
        a = np.asarray(a)
        b = np.asarray(b)
    y = _kernel_mm(a, b)
    if y is None:
        y = np.matmul(a, b)
    if need is None:
        return y, None
    # dA needs B and dB needs A: keep only what the wanted gradients use
    return y, (a if need[1] else None, b if need[0] else None, a.shape, b.shape)


def _mm_bwd(g, r):
    a, b, sa, sb = r
    na, nb = len(sa), len(sb)
    ga = gb = None
    if na == 1 and nb == 1:
        return (None if b is None else g * b), (None if a is None else g * a)
    if na == 1:        # (k) @ (..., k, n) -> (..., n)
        if b is not None:
            ga = _unbroadcast(np.matmul(g[..., None, :], np.swapaxes(b, -1, -2))[..., 0, :], sa)
        if a is not None:
            gb = _unbroadcast(a[:, None] * g[..., None, :], sb)
        return ga, gb
    if nb == 1:        # (..., m, k) @ (k) -> (..., m)
        if b is not None:
            ga = _unbroadcast(g[..., :, None] * b, sa)
        if a is not None:
            gb = _unbroadcast(np.matmul(np.swapaxes(a, -1, -2), g[..., :, None])[..., 0], sb)
        return ga, gb
    if nb == 2 and type(g) is np.ndarray and g.shape[-1] == sb[1]:
        r = _kernel_mm_bwd(g, a, b, sa, sb)
        if r is not None:
            return r[0], r[1]
    if na == 2 and nb == 2:
        return (None if b is None else g @ b.T), (None if a is None else a.T @ g)
    if b is not None:
        ga = _unbroadcast(np.matmul(g, np.swapaxes(b, -1, -2)), sa)
    if a is not None:
        gb = _unbroadcast(np.matmul(np.swapaxes(a, -1, -2), g), sb)
    return ga, gb


def matmul(x1: Any, x2: Any) -> Any:
    """Matrix product with numpy's broadcasting rules (BLAS)."""
    return apply(_mm_fwd, _mm_bwd, (_a(x1), _a(x2)), need=True)


# ---------------------------------------------------------------------------- dense records
# ``ops.matmul(x, w) + b``, and a following ``ops.relu`` (a dense layer written with ops),
# are recorded as one node whose outputs are the product, the sum and the ReLU. Each value
# is computed exactly as the separate ops compute it; the node's backward, given a gradient
# for its last output alone (the usual case), runs the dense kernel once (ReLU derivative,
# bias sum and both products), and otherwise combines the separate ops' rules. (The
# kernel takes the ReLU derivative as the built-in Dense does; it differs from the
# separate ops' ``g * (y > 0)`` only where a value is NaN or infinite.)
# The record is extended only while its last output is the newest value of the one
# active tape, so nothing else can have read it yet.

def _newest_node(t):
    """(tape, node) when the traced value t is the last output of the newest record of
    the one active tape; else None."""
    s = getattr(_TLS, "stack", None)
    if not s or len(s) != 1:
        return None
    tape = s[0]
    if t._tape is not tape or t._id != tape._n - 1 or not tape._nodes:
        return None
    node = tape._nodes[-1]
    out = node[0]
    if (out if type(out) is int else out[-1]) != t._id:
        return None
    return tape, node


def _add_bias(x1, x2):
    """x1 + x2 recorded with the product that made one of them, when the other is a bias
    (one float value per column of the product, of its dtype); None otherwise."""
    found = _newest_node(x1) if type(x1) is Tracer else None
    if found is not None:
        t, b = x1, x2
    elif type(x2) is Tracer:
        found = _newest_node(x2)
        if found is None:
            return None
        t, b = x2, x1
    else:
        return None
    tape, (out_id, ids, vjp, mres) = found
    if vjp is not _mm_bwd:
        return None
    sb = mres[3]
    tv = t.value
    if len(sb) != 2 or len(mres[2]) < 2 or tv.dtype not in _KERNEL_DTYPES:
        return None
    tb = type(b)
    if tb is Tracer or tb is np.ndarray:
        bv = b.value if tb is Tracer else b
    elif isinstance(b, Variable):
        bv = b.value
    else:
        return None
    if type(bv) is not np.ndarray or bv.ndim != 1 or bv.dtype != tv.dtype or bv.shape[0] != sb[1]:
        return None
    if tb is Tracer:
        bid = b._id if b._tape is tape else -1
    elif tb is np.ndarray:
        bid = -1
    else:
        e = tape._leaves.get(id(b))
        leaf = tape._leaf(b) if e is None else e[1]
        bv, bid = leaf.value, leaf._id
    out = tv + bv if t is x1 else bv + tv
    i = tape._n
    tape._n = i + 1
    tape._nodes[-1] = ((out_id, i), [ids[0], ids[1], bid], _dense_bwd, (mres, None, bid >= 0))
    log = tape._log
    if log is not None:   # (a call traced for replay: the product's entry becomes a dense one)
        _, _, _, mids, mconsts, _, _, _ = log[-1]
        log[-1] = (1, [mids[0], mids[1], bid], [mconsts[0], mconsts[1], bv if bid < 0 else None], False,
                   (out_id, i))
    return Tracer(out, tape, i)


def _relu_of_dense(x):
    """relu(x) recorded with the product and bias that made x (see above); None when x
    is not the sum of such a record."""
    found = _newest_node(x)
    if found is None:
        return None
    tape, (out_ids, ids, vjp, r) = found
    if vjp is not _dense_bwd or r[1] is not None:
        return None
    y = np.maximum(x.value, 0)
    i = tape._n
    tape._n = i + 1
    tape._nodes[-1] = (out_ids + (i,), ids, _dense_bwd, (r[0], y, r[2]))
    log = tape._log
    if log is not None:
        e = log[-1]
        log[-1] = (1, e[1], e[2], True, out_ids + (i,))
    return Tracer(y, tape, i)


def _replay_dense(env, nodes, a, w, b, eff, relu, out, rec, fused):
    """Replays a dense record (see autodiff's replay): the product, the sum and the ReLU
    as the separate ops compute them, or (``fused``: only the last output is read) the
    last one alone in one dense kernel call, as the built-in Dense computes it."""
    need = (eff[0] >= 0, eff[1] >= 0)
    if fused and type(a) is np.ndarray and type(w) is np.ndarray and type(b) is np.ndarray \
            and a.ndim == 2 and w.ndim == 2 and b.ndim == 1 and a.dtype in _KERNEL_DTYPES \
            and a.dtype == w.dtype == b.dtype and a.shape[1] == w.shape[0] and b.shape[0] == w.shape[1] \
            and a.flags.c_contiguous and w.flags.c_contiguous and b.flags.c_contiguous and a.shape[0] and w.size:
        y = np.empty((a.shape[0], w.shape[1]), a.dtype)
        (_DENSE or _dense()).forward(a, w, b, None, y, _ACT_RELU if relu else 0, 0.0, config._n_threads)
        env[out[-1]] = y
        if rec:
            mres = (a if need[1] else None, w if need[0] else None, a.shape, w.shape)
            nodes.append((out, eff, _dense_bwd, (mres, y if relu else None, eff[2] >= 0)))
        return
    p, mres = _mm_fwd(a, w, need if rec else None)
    s = p + b
    env[out[0]] = p
    env[out[1]] = s
    y = None
    if relu:
        y = env[out[2]] = np.maximum(s, 0)
    if rec:
        nodes.append((out, eff, _dense_bwd, (mres, y, eff[2] >= 0)))


def _dense_into(rec, dy, variables, need_dx):
    """The backward of a layer call recorded as one dense record (a replayed
    ``relu(matmul(x, w) + b)``): the kernel writes the weight gradients into the
    variables' gradient buffers (zeros for trainable variables the call did not use);
    returns the input gradient (None unless ``need_dx``), or NotImplemented where this
    does not apply (the general reverse sweep then runs)."""
    tape = rec.tape
    out_ids, ids, vjp, r = tape._nodes[0]
    if vjp is not _dense_bwd or type(out_ids) is int or out_ids[-1] != rec.outputs._id:
        return NotImplemented
    mres, y, want_db = r
    a, w, sa, sb = mres
    if len(sa) != 2 or dy.dtype not in _KERNEL_DTYPES:
        return NotImplemented
    ia, iw, ib = ids
    ins = rec.inputs
    if need_dx and (len(ins) != 1 or ins[0]._id != ia or w is None):
        return NotImplemented
    leaves = tape._leaves
    wv = bv = None
    rest = []
    for v in variables:
        e = leaves.get(id(v))
        i = -1 if e is None else e[1]._id
        if i >= 0 and i == iw and wv is None:
            wv = v
        elif i >= 0 and i == ib and bv is None and want_db:
            bv = v
        elif i >= 0:
            return NotImplemented   # (a variable twice in the list, or read by the call otherwise)
        else:
            rest.append(v)
    if wv is not None and (a is None or wv.value.dtype != dy.dtype):
        return NotImplemented
    if bv is not None and bv.value.dtype != dy.dtype:
        return NotImplemented
    res = _kernel_mm_bwd(dy, None if wv is None else a, w if need_dx else None, sa, sb, y, bv is not None,
                         None if wv is None else wv.grad_buffer(), None if bv is None else bv.grad_buffer())
    if res is None:
        return NotImplemented
    for v in rest:
        v.grad_buffer().fill(0)
    return res[0]


def _dense_bwd(gs, r):
    """Gradients (product's left operand, right operand, bias) of a dense record."""
    mres, y, want_db = r
    if y is None:
        gt, go = gs
        gr = None
        last = go
    else:
        gt, go, gr = gs
        last = gr if go is None else None
    if last is not None and gt is None and type(last) is np.ndarray:
        k = _kernel_mm_bwd(last, mres[0], mres[1], mres[2], mres[3], y, want_db)
        if k is not None:
            return k
    # as the separate records: ReLU, then the sum (the bias sums over rows), then the product
    gz = None
    if gr is not None:
        gz = gr * (y > 0)
    if go is not None:
        gz = go if gz is None else gz + go
    gb = None if gz is None or not want_db else _unbroadcast(gz, (mres[3][1],))
    if gt is not None:
        gz = gt if gz is None else gz + gt
    if gz is None:
        return None, None, gb
    ga, gw = _mm_bwd(gz, mres)
    return ga, gw, gb


_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _parse_einsum(subscripts, shapes):
    s = subscripts.replace(" ", "")
    if "->" in s:
        ins, out = s.split("->")
    else:
        ins, out = s, None
    ins = ins.split(",")
    if len(ins) != len(shapes):
        raise ValueError(f"einsum: subscripts {subscripts!r} name {len(ins)} operands, received {len(shapes)}")
    used = set(c for c in s if c.isalpha())
    free = [c for c in _LETTERS if c not in used]
    n_ell = _py_max([len(shp) - (len(t) - 3) for t, shp in zip(ins, shapes) if "..." in t] or [0])
    ell = "".join(free[:n_ell])
    new_ins = []
    for t, shp in zip(ins, shapes):
        if "..." in t:
            k = len(shp) - (len(t) - 3)
            t = t.replace("...", ell[n_ell - k:] if k else "")
        new_ins.append(t)
    if out is None:
        counts = {}
        for t in new_ins:
            for c in t:
                counts[c] = counts.get(c, 0) + 1
        out = ell + "".join(sorted(c for c, n in counts.items() if n == 1 and c not in ell))
    else:
        out = out.replace("...", ell)
    return new_ins, out


def einsum(subscripts: str, *operands: Any, **kwargs) -> Any:
    """Einstein summation (numpy's grammar, ``...`` included), with gradients for every operand."""
    ops_in = [_a(o) for o in operands]
    shapes = [_shape(value_of(o)) for o in ops_in]
    ins, out = _parse_einsum(subscripts, shapes)
    for t in ins:
        if len(set(t)) != len(t):
            if _py_any(type(o) is Tracer for o in ops_in):
                raise NotImplementedError(f"einsum gradient with a repeated index within one operand ({t!r}) "
                                          f"is not supported; use ops.diagonal/ops.trace")
    spec = ",".join(ins) + "->" + out

    def fwd(*vals):
        vals = [np.asarray(v) for v in vals]
        if len(vals) == 2:
            a, b = _promote(vals[0], vals[1])
            vals = [np.asarray(a), np.asarray(b)]
        else:
            kinds = [v.dtype for v in vals]
            ft = [d for d in kinds if d.kind == "f"]
            if ft:
                dt = np.result_type(*ft)
                vals = [v.astype(dt) if v.dtype.kind != "f" else v for v in vals]
        return np.einsum(spec, *vals, optimize=len(vals) > 1), vals

    def bwd(g, vals):
        grads = []
        for i, v in enumerate(vals):
            others = [vals[j] for j in range(len(vals)) if j != i]
            other_subs = [ins[j] for j in range(len(vals)) if j != i]
            target = ins[i]
            present = set(out).union(*[set(t) for t in other_subs]) if other_subs else set(out)
            kept = "".join(c for c in target if c in present)
            gi = np.einsum(",".join([out] + other_subs) + "->" + kept, g, *others, optimize=len(others) > 0)
            if kept != target:
                shp = [v.shape[target.index(c)] if c in kept else 1 for c in target]
                gi = np.broadcast_to(gi.reshape(shp), v.shape)
            grads.append(gi)
        return grads

    return apply(fwd, bwd, tuple(ops_in))


def tensordot(x1: Any, x2: Any, axes: Any = 2) -> Any:
    """Sum of products over the given axes (numpy's ``tensordot``)."""
    a, b = _a(x1), _a(x2)
    na, nb = len(_shape(value_of(a))), len(_shape(value_of(b)))
    if isinstance(axes, int):
        ax_a = list(range(na - axes, na))
        ax_b = list(range(axes))
    else:
        ax_a, ax_b = axes
        ax_a = [ax_a] if isinstance(ax_a, int) else list(ax_a)
        ax_b = [ax_b] if isinstance(ax_b, int) else list(ax_b)
        ax_a = [i % na for i in ax_a]
        ax_b = [i % nb for i in ax_b]
    la = _LETTERS[:na]
    lb = list(_LETTERS[na:na + nb])
    for i, j in zip(ax_a, ax_b):
        lb[j] = la[i]
    lb = "".join(lb)
    out = "".join(c for i, c in enumerate(la) if i not in ax_a) + "".join(
        c for j, c in enumerate(lb) if j not in ax_b)
    return einsum(f"{la},{lb}->{out}", a, b)


def dot(x1: Any, x2: Any) -> Any:
    """numpy's ``dot``: a product for scalars, else a contraction of the last axis of x1
    with the second-to-last (or only) axis of x2."""
    a, b = _a(x1), _a(x2)
    na, nb = len(_shape(value_of(a))), len(_shape(value_of(b)))
    if na == 0 or nb == 0:
        return multiply(a, b)
    if na == 2 and nb == 2:
        return matmul(a, b)
    return tensordot(a, b, axes=([na - 1], [_py_max(nb - 2, 0)]))


def vdot(x1: Any, x2: Any) -> Any:
    return sum(multiply(reshape(x1, (-1,)), reshape(x2, (-1,))))


def inner(x1: Any, x2: Any) -> Any:
    a, b = _a(x1), _a(x2)
    na, nb = len(_shape(value_of(a))), len(_shape(value_of(b)))
    if na == 0 or nb == 0:
        return multiply(a, b)
    return tensordot(a, b, axes=([na - 1], [nb - 1]))


def outer(x1: Any, x2: Any) -> Any:
    """Outer product of the flattened inputs."""
    return multiply(expand_dims(reshape(x1, (-1,)), 1), expand_dims(reshape(x2, (-1,)), 0))


# ============================================================================ reductions

def _float_red(v):
    if type(v) is not np.ndarray:
        v = _default_array(v)
    if v.dtype.kind in "iub":
        v = v.astype(config.floatx())
    return v


def sum(x: Any, axis: Any = None, keepdims: bool = False) -> Any:  # noqa: A001
    """Sum over ``axis`` (all axes by default)."""
    ax = tuple(axis) if isinstance(axis, list) else axis

    def fwd(v):
        if type(v) is not np.ndarray:
            v = _default_array(v)
        y = np.sum(v, axis=ax, keepdims=keepdims)
        if v.dtype.kind == "b":
            y = y.astype(np.int32)
        return np.asarray(y) if type(y) is not np.ndarray else y, v.shape

    def bwd(g, shape):
        return (np.broadcast_to(_expand_reduced(g, shape, ax, keepdims), shape),)

    return apply(fwd, bwd, (x,))


def mean(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """Mean over ``axis``; integer inputs give floatx."""
    ax = tuple(axis) if isinstance(axis, list) else axis

    def fwd(v):
        v = _float_red(v)
        y = np.mean(v, axis=ax, keepdims=keepdims)
        y = np.asarray(y, dtype=v.dtype) if type(y) is not np.ndarray else y
        return y, (v.shape, v.size // _py_max(y.size, 1) if v.size else 1)

    def bwd(g, r):
        shape, n = r
        return (np.broadcast_to(_expand_reduced(g, shape, ax, keepdims) / n, shape),)

    return apply(fwd, bwd, (x,))


def _extreme(npf, name):
    def op(x, axis=None, keepdims=False, initial=None):
        ax = tuple(axis) if isinstance(axis, list) else axis

        def fwd(v):
            if type(v) is not np.ndarray:
                v = _default_array(v)
            kw = {} if initial is None else {"initial": initial}
            y = npf(v, axis=ax, keepdims=True, **kw)
            out = y if keepdims else (np.squeeze(y, axis=ax) if ax is not None else y.reshape(()))
            return np.asarray(out), (v, y)

        def bwd(g, r):
            v, y = r
            mask = v == y
            cnt = mask.sum(axis=ax, keepdims=True)
            gk = _expand_reduced(g, v.shape, ax, keepdims)
            return (np.where(mask, gk / np.maximum(cnt, 1), 0).astype(g.dtype, copy=False),)

        return apply(fwd, bwd, (x,))

    op.__name__ = name
    return op


max = _extreme(np.max, "max")  # noqa: A001
min = _extreme(np.min, "min")  # noqa: A001
amax = max
amin = min


def prod(x: Any, axis: Any = None, keepdims: bool = False, dtype: Any = None) -> Any:
    """Product over ``axis``; the gradient is exact also where entries are zero."""
    ax = tuple(axis) if isinstance(axis, list) else axis
    dt = standardize_dtype(dtype)

    def fwd(v):
        if type(v) is not np.ndarray:
            v = _default_array(v)
        if dt is not None:
            v = v.astype(dt)
        return np.asarray(np.prod(v, axis=ax, keepdims=keepdims)), v

    def bwd(g, v):
        axes = _axes(ax, v.ndim)
        rest = [i for i in range(v.ndim) if i not in axes]
        perm = rest + list(axes)
        vt = np.transpose(v, perm)
        lead = vt.shape[:len(rest)]
        flat = vt.reshape(lead + (-1,))
        ones = np.ones(lead + (1,), v.dtype)
        left = np.cumprod(np.concatenate([ones, flat[..., :-1]], axis=-1), axis=-1)
        right = np.cumprod(np.concatenate([ones, flat[..., :0:-1]], axis=-1), axis=-1)[..., ::-1]
        others = (left * right).reshape(vt.shape)
        gk = _expand_reduced(g, v.shape, ax, keepdims)
        gk = np.transpose(np.broadcast_to(gk, v.shape), perm)
        return (np.transpose(gk * others, np.argsort(perm)),)

    return apply(fwd, bwd, (x,))


def var(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """Population variance over ``axis``."""
    ax = tuple(axis) if isinstance(axis, list) else axis

    def fwd(v):
        v = _float_red(v)
        m = np.mean(v, axis=ax, keepdims=True)
        d = v - m
        y = np.mean(d * d, axis=ax, keepdims=keepdims)
        return np.asarray(y, dtype=v.dtype), (d, v.size // _py_max(np.size(y), 1) if v.size else 1)

    def bwd(g, r):
        d, n = r
        return (_expand_reduced(g, d.shape, ax, keepdims) * (2.0 / n) * d,)

    return apply(fwd, bwd, (x,))


def std(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """Population standard deviation over ``axis``."""
    return sqrt(var(x, axis=axis, keepdims=keepdims))


def average(x: Any, axis: Any = None, weights: Any = None) -> Any:
    """Weighted mean over ``axis`` (weights broadcast along it)."""
    if weights is None:
        return mean(x, axis=axis)
    xv = value_of(x)
    wv = value_of(weights)
    if axis is not None and np.ndim(wv) == 1 and np.ndim(xv) > 1:
        shp = [1] * np.ndim(xv)
        shp[int(axis) % np.ndim(xv)] = -1
        weights = reshape(weights, shp)
    return divide(sum(multiply(x, weights), axis=axis), sum(multiply(ones_like(x), weights), axis=axis))


def cumsum(x: Any, axis: Any = None, dtype: Any = None) -> Any:
    """Cumulative sum along ``axis`` (of the flattened array when None)."""
    dt = standardize_dtype(dtype)

    def fwd(v):
        if type(v) is not np.ndarray:
            v = _default_array(v)
        if dt is not None:
            v = v.astype(dt)
        return np.cumsum(v, axis=axis), v.shape

    def bwd(g, shape):
        if axis is None:
            return (np.flip(np.cumsum(np.flip(g)), 0).reshape(shape),)
        return (np.flip(np.cumsum(np.flip(g, axis), axis=axis), axis),)

    return apply(fwd, bwd, (x,))


def cumprod(x: Any, axis: Any = None, dtype: Any = None) -> Any:
    """Cumulative product along ``axis`` (gradient assumes no zero entries)."""
    dt = standardize_dtype(dtype)

    def fwd(v):
        if type(v) is not np.ndarray:
            v = _default_array(v)
        if dt is not None:
            v = v.astype(dt)
        y = np.cumprod(v, axis=axis)
        return y, (v, y)

    def bwd(g, r):
        v, y = r
        ax = axis if axis is not None else 0
        vv = v.reshape(-1) if axis is None else v
        s = np.flip(np.cumsum(np.flip(g * y, ax), axis=ax), ax)
        return ((s / vv).reshape(v.shape),)

    return apply(fwd, bwd, (x,))


def logsumexp(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """``log(sum(exp(x)))`` over ``axis``, computed stably."""
    ax = tuple(axis) if isinstance(axis, list) else axis

    def fwd(v):
        v = _fval(v)
        m = np.max(v, axis=ax, keepdims=True)
        m = np.where(np.isfinite(m), m, 0)
        e = np.exp(v - m)
        s = np.sum(e, axis=ax, keepdims=True)
        yk = np.log(s) + m
        y = yk if keepdims else (np.squeeze(yk, axis=ax) if ax is not None else yk.reshape(()))
        return y, (e / s)

    def bwd(g, p):
        return (_expand_reduced(g, p.shape, ax, keepdims) * p,)

    return apply(fwd, bwd, (x,))


def argmax(x: Any, axis: Any = None, keepdims: bool = False) -> np.ndarray:
    """Index of the largest value along ``axis`` (int32)."""
    return np.argmax(value_of(_a(x)), axis=axis, keepdims=keepdims).astype(np.int32)


def argmin(x: Any, axis: Any = None, keepdims: bool = False) -> np.ndarray:
    """Index of the smallest value along ``axis`` (int32)."""
    return np.argmin(value_of(_a(x)), axis=axis, keepdims=keepdims).astype(np.int32)


def argsort(x: Any, axis: int = -1) -> np.ndarray:
    return np.argsort(value_of(_a(x)), axis=axis, kind="stable").astype(np.int32)


def any(x: Any, axis: Any = None, keepdims: bool = False) -> np.ndarray:  # noqa: A001
    ax = tuple(axis) if isinstance(axis, list) else axis
    return np.asarray(np.any(value_of(_a(x)), axis=ax, keepdims=keepdims))


def all(x: Any, axis: Any = None, keepdims: bool = False) -> np.ndarray:  # noqa: A001
    ax = tuple(axis) if isinstance(axis, list) else axis
    return np.asarray(np.all(value_of(_a(x)), axis=ax, keepdims=keepdims))


def count_nonzero(x: Any, axis: Any = None) -> np.ndarray:
    ax = tuple(axis) if isinstance(axis, list) else axis
    return np.asarray(np.count_nonzero(value_of(_a(x)), axis=ax)).astype(np.int32)


def sort(x: Any, axis: int = -1) -> Any:
    """Sorted along ``axis``; the gradient flows back to the original positions."""
    idx = np.argsort(value_of(_a(x)), axis=axis, kind="stable")
    return take_along_axis(x, idx, axis=axis)


def median(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    return quantile(x, 0.5, axis=axis, keepdims=keepdims)


def quantile(x: Any, q: Any, axis: Any = None, method: str = "linear", keepdims: bool = False) -> Any:
    """Quantiles by linear interpolation between sorted entries (differentiable)."""
    if method != "linear":
        return np.quantile(_fval(value_of(x)), value_of(q), axis=axis, method=method, keepdims=keepdims)
    xv = value_of(_a(x))
    if axis is None:
        x = reshape(x, (-1,))
        ax = 0
    else:
        ax = int(axis) % np.ndim(xv)
    s = sort(cast(x, config.floatx()) if np.asarray(xv).dtype.kind != "f" else x, axis=ax)
    n = _shape(value_of(s))[ax]
    qv = np.asarray(value_of(q), dtype=np.float64)
    pos = qv * (n - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    frac = (pos - lo).astype(value_of(s).dtype)
    a = take(s, lo, axis=ax)
    b = take(s, hi, axis=ax)
    if qv.ndim:
        shp = [1] * np.ndim(value_of(a))
        shp[ax] = -1
        frac = frac.reshape(shp)
    out = add(a, multiply(subtract(b, a), frac))
    if qv.ndim:
        out = moveaxis(out, ax, 0)
        if keepdims:
            out = expand_dims(out, ax + 1 if axis is not None else 1)
    elif keepdims:
        if axis is None:
            out = reshape(out, (1,) * np.ndim(xv))
        else:
            out = expand_dims(out, ax)
    return out


def nan_to_num(x: Any, nan: float = 0.0, posinf: float | None = None, neginf: float | None = None) -> Any:
    def fwd(v):
        return np.nan_to_num(v, nan=nan, posinf=posinf, neginf=neginf), np.isfinite(v)

    def bwd(g, fin):
        return (g * fin,)

    return apply(fwd, bwd, (_a(x),))


# ============================================================================ shapes

def shape(x: Any) -> tuple[int, ...]:
    """The static shape as a tuple of ints."""
    return tuple(np.shape(value_of(x)))


def ndim(x: Any) -> int:
    return len(np.shape(value_of(x)))


def size(x: Any) -> int:
    return int(np.size(value_of(x)))


def _norm_shape(newshape):
    if isinstance(newshape, (int, np.integer)):
        return (int(newshape),)
    return tuple(-1 if d is None else int(d) for d in newshape)


def reshape(x: Any, newshape: Any) -> Any:
    """Same values, new shape (one entry may be -1)."""
    newshape = _norm_shape(newshape)

    def fwd(v):
        if type(v) is not np.ndarray:
            v = _default_array(v)
        return v.reshape(newshape), v.shape

    def bwd(g, s):
        return (g.reshape(s),)

    return apply(fwd, bwd, (x,))


def ravel(x: Any) -> Any:
    return reshape(x, (-1,))


def transpose(x: Any, axes: Any = None) -> Any:
    """Permutes the axes (reverses them when ``axes`` is None)."""
    perm = None if axes is None else tuple(int(a) for a in axes)

    def fwd(v):
        if type(v) is not np.ndarray:
            v = _default_array(v)
        p = perm if perm is not None else tuple(range(v.ndim))[::-1]
        return np.transpose(v, p), p

    def bwd(g, p):
        return (np.transpose(g, np.argsort(p)),)

    return apply(fwd, bwd, (x,))


def swapaxes(x: Any, axis1: int, axis2: int) -> Any:
    n = ndim(x)
    p = list(range(n))
    a, b = int(axis1) % n, int(axis2) % n
    p[a], p[b] = p[b], p[a]
    return transpose(x, p)


def moveaxis(x: Any, source: Any, destination: Any) -> Any:
    n = ndim(x)
    src = [int(s) % n for s in (source if isinstance(source, (list, tuple)) else [source])]
    dst = [int(d) % n for d in (destination if isinstance(destination, (list, tuple)) else [destination])]
    order = [i for i in range(n) if i not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return transpose(x, order)


def expand_dims(x: Any, axis: Any) -> Any:
    """Inserts size-1 axes at ``axis`` (an int or a tuple)."""
    ax = tuple(axis) if isinstance(axis, (list, tuple)) else int(axis)

    def fwd(v):
        if type(v) is not np.ndarray:
            v = _default_array(v)
        return np.expand_dims(v, ax), v.shape

    def bwd(g, s):
        return (g.reshape(s),)

    return apply(fwd, bwd, (x,))


def squeeze(x: Any, axis: Any = None) -> Any:
    """Removes size-1 axes (those at ``axis``, or all)."""
    ax = tuple(axis) if isinstance(axis, (list, tuple)) else axis

    def fwd(v):
        if type(v) is not np.ndarray:
            v = _default_array(v)
        return np.squeeze(v, axis=ax), v.shape

    def bwd(g, s):
        return (g.reshape(s),)

    return apply(fwd, bwd, (x,))


def broadcast_to(x: Any, shape: Any) -> Any:
    """Broadcasts to ``shape`` (a read-only view when eager)."""
    shp = tuple(int(d) for d in shape)

    def fwd(v):
        if type(v) is not np.ndarray:
            v = _default_array(v)
        return np.broadcast_to(v, shp), v.shape

    def bwd(g, s):
        return (_unbroadcast(g, s),)

    return apply(fwd, bwd, (x,))


def concatenate(xs: Any, axis: int = 0) -> Any:
    """Joins arrays along an existing axis."""
    xs = [_a(t) for t in xs]

    def fwd(*vals):
        vals = _common(vals)
        sizes = [v.shape[axis] if v.ndim else 1 for v in vals]
        return np.concatenate(vals, axis=axis), np.cumsum(sizes)[:-1]

    def bwd(g, cuts):
        return np.split(g, cuts, axis=axis)

    return apply(fwd, bwd, tuple(xs))


def _common(vals):
    vals = [v if type(v) is np.ndarray else np.asarray(v) for v in vals]
    fl = [v.dtype for v in vals if v.dtype.kind == "f"]
    if fl:
        dt = np.result_type(*fl)
        vals = [v if v.dtype == dt else v.astype(dt) for v in vals]
    return vals


def append(x1: Any, x2: Any, axis: Any = None) -> Any:
    if axis is None:
        return concatenate([reshape(x1, (-1,)), reshape(x2, (-1,))], axis=0)
    return concatenate([x1, x2], axis=axis)


def hstack(xs: Any) -> Any:
    return concatenate(xs, axis=1 if ndim(xs[0]) > 1 else 0)


def vstack(xs: Any) -> Any:
    return concatenate([x if ndim(x) > 1 else reshape(x, (1, -1)) for x in xs], axis=0)


def stack(x: Any, axis: int = 0) -> Any:
    """Joins arrays along a new axis."""
    xs = [_a(t) for t in x]

    def fwd(*vals):
        vals = _common(vals)
        return np.stack(vals, axis=axis), len(vals)

    def bwd(g, n):
        return [np.take(g, i, axis=axis) for i in range(n)]

    return apply(fwd, bwd, tuple(xs))


def split(x: Any, indices_or_sections: Any, axis: int = 0) -> list[Any]:
    """Splits into equal sections or at the given indices."""
    v0 = value_of(_a(x))
    n = np.shape(v0)[axis]
    if isinstance(indices_or_sections, (int, np.integer)):
        k = int(indices_or_sections)
        if n % k:
            raise ValueError(f"split: axis {axis} of size {n} does not divide into {k} equal sections")
        cuts = list(range(n // k, n, n // k))
    else:
        cuts = [int(i) for i in indices_or_sections]
    bounds = [0] + [_py_min(_py_max(c, 0), n) for c in cuts] + [n]
    out = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        idx = [_py_slice(None)] * np.ndim(v0)
        idx[axis] = _py_slice(lo, _py_max(lo, hi))
        out.append(get_item(x, tuple(idx)))
    return out


def array_split(x: Any, indices_or_sections: Any, axis: int = 0) -> list[Any]:
    v0 = value_of(_a(x))
    n = np.shape(v0)[axis]
    k = int(indices_or_sections)
    q, r = divmod(n, k)
    sizes = [q + 1] * r + [q] * (k - r)
    return split(x, list(np.cumsum(sizes)[:-1]), axis=axis)


def unstack(x: Any, num: int | None = None, axis: int = 0) -> list[Any]:
    n = shape(x)[axis]
    idx = [_py_slice(None)] * ndim(x)
    out = []
    for i in range(n):
        idx[axis] = i
        out.append(get_item(x, tuple(idx)))
    return out


def tile(x: Any, repeats: Any) -> Any:
    """Repeats the whole array ``repeats`` times along each axis."""
    reps = (int(repeats),) if isinstance(repeats, (int, np.integer)) else tuple(int(r) for r in repeats)

    def fwd(v):
        if type(v) is not np.ndarray:
            v = _default_array(v)
        return np.tile(v, reps), v.shape

    def bwd(g, s):
        nd = g.ndim
        s_full = (1,) * (nd - len(s)) + tuple(s)
        shp = []
        for i in range(nd):
            shp += [g.shape[i] // s_full[i], s_full[i]]
        gs = g.reshape(shp).sum(axis=tuple(range(0, 2 * nd, 2)))
        return (gs.reshape(s),)

    return apply(fwd, bwd, (x,))


def repeat(x: Any, repeats: Any, axis: Any = None) -> Any:
    """Repeats each element ``repeats`` times along ``axis`` (of the flattened array when None)."""
    r = value_of(repeats)

    def fwd(v):
        if type(v) is not np.ndarray:
            v = _default_array(v)
        return np.repeat(v, r, axis=axis), v.shape

    def bwd(g, s):
        ax = 0 if axis is None else int(axis) % len(s)
        n = int(np.prod(s)) if axis is None else s[ax]
        rr = np.broadcast_to(np.asarray(r, dtype=np.int64).reshape(-1), (n,))
        starts = np.concatenate([[0], np.cumsum(rr)[:-1]])
        nz = rr > 0
        gsum = np.zeros((n,) + (g.shape[:ax] + g.shape[ax + 1:] if axis is not None else ()), g.dtype)
        gm = np.moveaxis(g, ax, 0)
        if nz.any():
            red = np.add.reduceat(gm, starts[nz], axis=0)
            gsum[nz] = red
        if axis is None:
            return (gsum.reshape(s),)
        return (np.moveaxis(gsum, 0, ax),)

    return apply(fwd, bwd, (x,))


def flip(x: Any, axis: Any = None) -> Any:
    ax = tuple(axis) if isinstance(axis, list) else axis

    def fwd(v):
        if type(v) is not np.ndarray:
            v = _default_array(v)
        return np.flip(v, axis=ax), None

    def bwd(g, _):
        return (np.flip(g, axis=ax),)

    return apply(fwd, bwd, (x,))


def roll(x: Any, shift: Any, axis: Any = None) -> Any:
    sh = value_of(shift)
    ax = tuple(axis) if isinstance(axis, list) else axis

    def fwd(v):
        if type(v) is not np.ndarray:
            v = _default_array(v)
        return np.roll(v, sh, axis=ax), None

    def bwd(g, _):
        neg = -np.asarray(sh) if np.ndim(sh) else -int(sh)
        if isinstance(neg, np.ndarray):
            neg = tuple(int(s) for s in neg)
        return (np.roll(g, neg, axis=ax),)

    return apply(fwd, bwd, (x,))


def _is_basic(idx):
    items = idx if isinstance(idx, tuple) else (idx,)
    for it in items:
        if isinstance(it, (np.ndarray, list, Tracer)) or (isinstance(it, np.generic) and it.dtype == np.bool_) \
                or isinstance(it, bool):
            return False
    return True


def _clean_index(idx):
    if isinstance(idx, tuple):
        return tuple(_clean_index(i) for i in idx)
    if type(idx) is Tracer or isinstance(idx, Variable):
        return np.asarray(value_of(idx))
    if isinstance(idx, list):
        return np.asarray(idx)
    return idx


def get_item(x: Any, key: Any) -> Any:
    """``x[key]`` with numpy's indexing rules; the gradient scatters back (adding repeats)."""
    key = _clean_index(key)
    basic = _is_basic(key)

    def fwd(v):
        if type(v) is not np.ndarray:
            v = _default_array(v)
        y = v[key]
        return (y if type(y) is np.ndarray else np.asarray(y)), (v.shape, v.dtype)

    def bwd(g, r):
        z = np.zeros(r[0], g.dtype)
        if basic:
            z[key] = g
        else:
            np.add.at(z, key, g)
        return (z,)

    return apply(fwd, bwd, (x,))


def take(x: Any, indices: Any, axis: Any = None) -> Any:
    """Entries at ``indices`` along ``axis`` (of the flattened array when None)."""
    idx = np.asarray(value_of(indices))
    if idx.dtype.kind not in "iu":
        idx = idx.astype(np.int64)

    def fwd(v):
        if type(v) is not np.ndarray:
            v = _default_array(v)
        n = v.size if axis is None else v.shape[axis]
        ii = np.where(idx < 0, idx + n, idx)
        return np.take(v, ii, axis=axis), (v.shape, ii)

    def bwd(g, r):
        s, ii = r
        if axis is None:
            z = np.zeros(int(np.prod(s)), g.dtype)
            np.add.at(z, ii.reshape(-1), g.reshape(-1))
            return (z.reshape(s),)
        ax = int(axis) % len(s)
        z = np.zeros((s[ax],) + s[:ax] + s[ax + 1:], g.dtype)
        gm = np.moveaxis(g, list(range(ax, ax + ii.ndim)), list(range(ii.ndim)))
        np.add.at(z, ii, gm)
        return (np.moveaxis(z, 0, ax),)

    return apply(fwd, bwd, (x,))


def take_along_axis(x: Any, indices: Any, axis: Any = None) -> Any:
    """Entries picked per position along ``axis`` (numpy's ``take_along_axis``)."""
    idx = np.asarray(value_of(indices))
    if idx.dtype.kind not in "iu":
        idx = idx.astype(np.int64)

    def fwd(v):
        if type(v) is not np.ndarray:
            v = _default_array(v)
        vv = v.reshape(-1) if axis is None else v
        ax = 0 if axis is None else int(axis) % v.ndim
        ii = np.where(idx < 0, idx + vv.shape[ax], idx)
        if axis is not None:
            shp = list(np.broadcast_shapes(tuple(d if i != ax else 1 for i, d in enumerate(vv.shape)),
                                           tuple(d if i != ax else 1 for i, d in enumerate(ii.shape))))
            vshape = list(shp)
            vshape[ax] = vv.shape[ax]
            ishape = list(shp)
            ishape[ax] = ii.shape[ax]
            vv = np.broadcast_to(vv, vshape)
            ii = np.broadcast_to(ii, ishape)
        return np.take_along_axis(vv, ii, axis=ax), (v.shape, vv.shape, ii, ax)

    def bwd(g, r):
        s, bs, ii, ax = r
        z = np.zeros(bs, g.dtype)
        grids = np.indices(ii.shape, sparse=True)
        full = tuple(ii if i == ax else grids[i] for i in range(ii.ndim))
        np.add.at(z, full, g)
        return (_unbroadcast(z, s) if axis is not None else z.reshape(s),)

    return apply(fwd, bwd, (x,))


def pad(x: Any, pad_width: Any, mode: str = "constant", constant_values: Any = None) -> Any:
    """Pads with ``constant_values`` (or numpy's other modes; gradients for "constant",
    "reflect", "symmetric", "edge" and "wrap")."""
    pw = np.asarray(pad_width, dtype=np.int64)
    kw = {}
    if mode == "constant":
        kw["constant_values"] = 0 if constant_values is None else value_of(constant_values)
    elif constant_values is not None:
        raise ValueError(f"Argument `constant_values` can only be provided when `mode == 'constant'`. "
                         f"Received: mode={mode}")

    def fwd(v):
        if type(v) is not np.ndarray:
            v = _default_array(v)
        p = np.broadcast_to(pw, (v.ndim, 2)) if pw.ndim < 2 else pw
        return np.pad(v, p, mode=mode, **kw), (v.shape, p)

    def bwd(g, r):
        s, p = r
        if mode == "constant":
            idx = tuple(_py_slice(int(lo), int(lo) + n) for (lo, _), n in zip(p, s))
            return (g[idx],)
        # other modes: scatter through the index map of the padding
        pos = np.pad(np.arange(int(np.prod(s))).reshape(s), p, mode=mode)
        z = np.zeros(int(np.prod(s)), g.dtype)
        np.add.at(z, pos.reshape(-1), g.reshape(-1))
        return (z.reshape(s),)

    return apply(fwd, bwd, (x,))


def diagonal(x: Any, offset: int = 0, axis1: int = 0, axis2: int = 1) -> Any:
    def fwd(v):
        return np.diagonal(v, offset, axis1, axis2).copy(), v.shape

    def bwd(g, s):
        z = np.zeros(s, g.dtype)
        d = np.diagonal(z, offset, axis1, axis2)
        d.setflags(write=True)
        d[...] = g
        return (z,)

    return apply(fwd, bwd, (_a(x),))


def trace(x: Any, offset: int = 0, axis1: int = 0, axis2: int = 1) -> Any:
    return sum(diagonal(x, offset, axis1, axis2), axis=-1)


def diff(a: Any, n: int = 1, axis: int = -1) -> Any:
    out = a
    for _ in range(n):
        k = shape(out)[axis]
        idx_hi = [_py_slice(None)] * ndim(out)
        idx_lo = [_py_slice(None)] * ndim(out)
        idx_hi[axis] = _py_slice(1, k)
        idx_lo[axis] = _py_slice(0, k - 1)
        out = subtract(get_item(out, tuple(idx_hi)), get_item(out, tuple(idx_lo)))
    return out


def tril(x: Any, k: int = 0) -> Any:
    xv = value_of(_a(x))
    m = np.tril(np.ones(np.shape(xv)[-2:], bool), k)
    return where(m, x, zeros((), np.asarray(xv).dtype))


def triu(x: Any, k: int = 0) -> Any:
    xv = value_of(_a(x))
    m = np.triu(np.ones(np.shape(xv)[-2:], bool), k)
    return where(m, x, zeros((), np.asarray(xv).dtype))


def cross(x1: Any, x2: Any, axisa: int = -1, axisb: int = -1, axisc: int = -1, axis: Any = None) -> Any:
    if axis is not None:
        axisa = axisb = axisc = axis
    a = moveaxis(x1, axisa, -1)
    b = moveaxis(x2, axisb, -1)
    a0, a1, a2 = (get_item(a, (Ellipsis, i)) for i in range(3))
    b0, b1, b2 = (get_item(b, (Ellipsis, i)) for i in range(3))
    c = stack([subtract(multiply(a1, b2), multiply(a2, b1)), subtract(multiply(a2, b0), multiply(a0, b2)),
               subtract(multiply(a0, b1), multiply(a1, b0))], axis=-1)
    return moveaxis(c, -1, axisc)


def copy(x: Any) -> Any:
    if type(x) is Tracer:
        return x
    return np.array(value_of(_a(x)))


def array(x: Any, dtype: Any = None) -> Any:
    return convert_to_tensor(x, dtype=dtype)


def cast(x: Any, dtype: Any) -> Any:
    """``x`` as ``dtype``; the gradient flows back between float types."""
    dt = np.dtype(standardize_dtype(dtype))

    def fwd(v):
        if type(v) is not np.ndarray:
            v = _default_array(v)
        return (v if v.dtype == dt else v.astype(dt)), v.dtype

    def bwd(g, src):
        if src.kind not in "fc" or dt.kind not in "fc":
            return (None,)
        return (g.astype(src),)

    if dt.kind not in "fc":
        return fwd(value_of(_a(x)))[0]
    return apply(fwd, bwd, (x,))


def convert_to_tensor(x: Any, dtype: Any = None, sparse: Any = None, ragged: Any = None) -> Any:
    """An array (or the traced value itself inside a recorded call); Python values take
    Keras's default dtypes."""
    if type(x) is Tracer:
        return x if dtype is None else cast(x, dtype)
    if isinstance(x, Variable):
        from fastnet.ops.autodiff import _tape_for
        tape = _tape_for((x,))
        if tape is not None:
            t = tape._leaf(x)
            return t if dtype is None else cast(t, dtype)
        x = x.value
    if dtype is not None:
        return np.asarray(value_of(x) if not isinstance(x, (list, tuple)) else _unwrap_seq(x),
                          dtype=standardize_dtype(dtype))
    if isinstance(x, (list, tuple)) and _py_any(type(e) is Tracer for e in _flat(x)):
        return stack([convert_to_tensor(e) for e in x])
    if type(x) is np.ndarray:
        return x
    return _default_array(x)


def _flat(x):
    for e in x:
        if isinstance(e, (list, tuple)):
            yield from _flat(e)
        else:
            yield e


def _unwrap_seq(x):
    return [(_unwrap_seq(e) if isinstance(e, (list, tuple)) else value_of(e)) for e in x]


def convert_to_numpy(x: Any) -> np.ndarray:
    """A numpy array copy of ``x`` (a traced value's current array; untracked)."""
    return np.array(value_of(x))


# ============================================================================ creation

def _dt(dtype, default=None):
    d = standardize_dtype(dtype)
    return d if d is not None else (default or config.floatx())


def _shape_arg(shape):
    if isinstance(shape, (int, np.integer)):
        return (int(shape),)
    return tuple(int(d) for d in shape)


def zeros(shape: Any, dtype: Any = None) -> np.ndarray:
    return np.zeros(_shape_arg(shape), dtype=_dt(dtype))


def ones(shape: Any, dtype: Any = None) -> np.ndarray:
    return np.ones(_shape_arg(shape), dtype=_dt(dtype))


def empty(shape: Any, dtype: Any = None) -> np.ndarray:
    return np.empty(_shape_arg(shape), dtype=_dt(dtype))


def _fill_dtype(fill_value, dtype):
    if dtype is not None:
        return standardize_dtype(dtype)
    fv = value_of(fill_value)
    if isinstance(fv, bool):
        return "bool"
    if isinstance(fv, int):
        return "int32"
    if isinstance(fv, float):
        return config.floatx()
    return np.asarray(fv).dtype.name


def full(shape: Any, fill_value: Any, dtype: Any = None) -> np.ndarray:
    return np.full(_shape_arg(shape), value_of(fill_value), dtype=_fill_dtype(fill_value, dtype))


def zeros_like(x: Any, dtype: Any = None) -> np.ndarray:
    v = value_of(_a(x))
    return np.zeros(np.shape(v), dtype=standardize_dtype(dtype) or np.asarray(v).dtype)


def ones_like(x: Any, dtype: Any = None) -> np.ndarray:
    v = value_of(_a(x))
    return np.ones(np.shape(v), dtype=standardize_dtype(dtype) or np.asarray(v).dtype)


def full_like(x: Any, fill_value: Any, dtype: Any = None) -> np.ndarray:
    v = value_of(_a(x))
    return np.full(np.shape(v), value_of(fill_value), dtype=standardize_dtype(dtype) or np.asarray(v).dtype)


def empty_like(x: Any, dtype: Any = None) -> np.ndarray:
    return zeros_like(x, dtype)


def eye(N: int, M: int | None = None, k: int = 0, dtype: Any = None) -> np.ndarray:  # noqa: N803
    return np.eye(int(N), None if M is None else int(M), int(k), dtype=_dt(dtype))


def identity(n: int, dtype: Any = None) -> np.ndarray:
    return np.eye(int(n), dtype=_dt(dtype))


def tri(N: int, M: int | None = None, k: int = 0, dtype: Any = None) -> np.ndarray:  # noqa: N803
    return np.tri(int(N), None if M is None else int(M), int(k), dtype=_dt(dtype))


def arange(start: Any, stop: Any = None, step: Any = None, dtype: Any = None) -> np.ndarray:
    """Evenly spaced values; int32 for integer arguments, floatx for floats (Keras's rule)."""
    args = [a for a in (start, stop, step) if a is not None]
    if dtype is None:
        vals = [value_of(a) for a in args]
        if _py_all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in vals):
            dtype = "int32"
        else:
            dtype = config.floatx()
    if stop is None:
        start, stop = 0, start
    return np.arange(value_of(start), value_of(stop), 1 if step is None else value_of(step),
                     dtype=standardize_dtype(dtype))


def linspace(start: Any, stop: Any, num: int = 50, endpoint: bool = True, retstep: bool = False,
             dtype: Any = None, axis: int = 0) -> Any:
    return np.linspace(value_of(start), value_of(stop), int(num), endpoint=endpoint, retstep=retstep,
                       dtype=_dt(dtype), axis=axis)


def logspace(start: Any, stop: Any, num: int = 50, endpoint: bool = True, base: float = 10,
             dtype: Any = None, axis: int = 0) -> np.ndarray:
    return np.logspace(value_of(start), value_of(stop), int(num), endpoint=endpoint, base=base,
                       dtype=_dt(dtype), axis=axis)


def meshgrid(*x: Any, indexing: str = "xy") -> list[np.ndarray]:
    return list(np.meshgrid(*[value_of(e) for e in x], indexing=indexing))


def nonzero(x: Any) -> tuple[np.ndarray, ...]:
    return tuple(i.astype(np.int32) for i in np.nonzero(value_of(x)))


def digitize(x: Any, bins: Any) -> np.ndarray:
    return np.digitize(value_of(x), value_of(bins)).astype(np.int32)


def bincount(x: Any, weights: Any = None, minlength: int = 0, sparse: bool = False) -> np.ndarray:
    xv = np.asarray(value_of(x))
    w = None if weights is None else np.asarray(value_of(weights))
    if xv.ndim == 2:
        n = _py_max(int(xv.max()) + 1 if xv.size else 0, minlength)
        return np.stack([np.bincount(r, None if w is None else wr, minlength=n)
                         for r, wr in zip(xv, w if w is not None else [None] * len(xv))])
    return np.bincount(xv, w, minlength=minlength)


def unravel_index(indices: Any, shape: Any) -> tuple[np.ndarray, ...]:
    return np.unravel_index(value_of(indices), tuple(shape))


def norm(x: Any, ord: Any = None, axis: Any = None, keepdims: bool = False) -> Any:  # noqa: A002
    """Vector norms (``ord`` None/2, 1, inf, -inf or p) over ``axis``; the Frobenius norm for
    ``ord`` None or "fro" over two axes or a whole matrix."""
    xv = value_of(_a(x))
    if ord in (None, "fro") or (ord == 2 and (axis is None and np.ndim(xv) == 1 or isinstance(axis, int))):
        return sqrt(sum(square(x), axis=axis, keepdims=keepdims))
    if ord == 1:
        return sum(abs(x), axis=axis, keepdims=keepdims)
    if ord == np.inf:
        return max(abs(x), axis=axis, keepdims=keepdims)
    if ord == -np.inf:
        return min(abs(x), axis=axis, keepdims=keepdims)
    if isinstance(ord, (int, float)) and ord > 0 and not isinstance(axis, (tuple, list)):
        return power(sum(power(abs(x), ord), axis=axis, keepdims=keepdims), 1.0 / ord)
    raise ValueError(f"norm: ord={ord!r} with axis={axis!r} is not supported by fastnet.ops")


__all__ = sorted(n for n, v in list(globals().items())
                 if not n.startswith("_") and callable(v) and getattr(v, "__module__", None) == __name__)
