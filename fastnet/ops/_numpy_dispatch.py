"""numpy functions and ufuncs called on traced values, routed to ``fastnet.ops``.

``np.exp(t)``, ``np.sum(t, axis=1)`` or ``t * np.float32(2)`` on a traced value record
the matching op, so code written for numpy arrays keeps its gradient. Functions
without a differentiable counterpart raise a TypeError naming the ``fastnet.ops``
function to use, rather than silently dropping the gradient.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from fastnet.ops import core as _core
from fastnet.ops import math as _math
from fastnet.ops import nn as _nn
from fastnet.ops import numpy as _n
from fastnet.ops.autodiff import unwrap

if TYPE_CHECKING:
    from typing import Any

_UFUNCS = {
    np.add: _n.add, np.subtract: _n.subtract, np.multiply: _n.multiply, np.true_divide: _n.divide,
    np.power: _n.power, np.float_power: _n.power, np.maximum: _n.maximum, np.minimum: _n.minimum,
    np.fmax: _n.maximum, np.fmin: _n.minimum, np.mod: _n.mod, np.remainder: _n.mod, np.arctan2: _n.arctan2,
    np.logaddexp: _n.logaddexp, np.hypot: _n.hypot, np.matmul: _n.matmul,
    np.exp: _n.exp, np.exp2: _n.exp2, np.expm1: _n.expm1, np.log: _n.log, np.log2: _n.log2,
    np.log10: _n.log10, np.log1p: _n.log1p, np.sqrt: _n.sqrt, np.square: _n.square, np.abs: _n.abs,
    np.absolute: _n.abs, np.negative: _n.negative, np.positive: lambda x: x, np.sin: _n.sin, np.cos: _n.cos,
    np.tan: _n.tan, np.sinh: _n.sinh, np.cosh: _n.cosh, np.tanh: _n.tanh, np.arcsin: _n.arcsin,
    np.arccos: _n.arccos, np.arctan: _n.arctan, np.arcsinh: _n.arcsinh, np.arccosh: _n.arccosh,
    np.arctanh: _n.arctanh, np.reciprocal: _n.reciprocal,
}

# ufuncs whose result carries no gradient (comparisons, rounding, predicates)
_NONDIFF_UFUNCS = {
    np.equal, np.not_equal, np.less, np.less_equal, np.greater, np.greater_equal, np.logical_and,
    np.logical_or, np.logical_xor, np.logical_not, np.isnan, np.isinf, np.isfinite, np.sign, np.floor,
    np.ceil, np.trunc, np.rint, np.floor_divide, np.signbit, np.bitwise_and, np.bitwise_or, np.bitwise_xor,
    np.invert,
}


def ufunc(uf: np.ufunc, method: str, args: tuple, kwargs: dict) -> Any:
    if method == "__call__" and not kwargs.get("out"):
        kwargs = {k: v for k, v in kwargs.items() if k not in ("dtype", "casting", "order", "subok")}
        if kwargs:
            raise TypeError(f"np.{uf.__name__} on a traced value does not accept {sorted(kwargs)}; "
                            f"use fastnet.ops.{uf.__name__}")
        op = _UFUNCS.get(uf)
        if op is not None:
            return op(*args)
        if uf in _NONDIFF_UFUNCS:
            return uf(*[np.asarray(unwrap(a)) for a in args])
    if method == "reduce" and uf in (np.add, np.maximum, np.minimum, np.multiply) and not kwargs.get("out"):
        red = {np.add: _n.sum, np.maximum: _n.max, np.minimum: _n.min, np.multiply: _n.prod}[uf]
        return red(args[0], axis=kwargs.get("axis", 0), keepdims=kwargs.get("keepdims", False))
    raise TypeError(f"np.{uf.__name__}{'' if method == '__call__' else '.' + method} has no gradient on "
                    f"traced values; use the fastnet.ops equivalent (fastnet.ops.{uf.__name__})")


def _reduction(op):
    def f(a, axis=None, dtype=None, out=None, keepdims=False, **kw):
        if out is not None:
            raise TypeError("out= is not supported on traced values")
        r = op(a, axis=axis, keepdims=bool(keepdims))
        return r if dtype is None else _n.cast(r, dtype)
    return f


_FUNCTIONS = {
    np.sum: _reduction(_n.sum), np.mean: _reduction(_n.mean), np.max: _reduction(_n.max),
    np.amax: _reduction(_n.max), np.min: _reduction(_n.min), np.amin: _reduction(_n.min),
    np.prod: _reduction(_n.prod),
    np.var: lambda a, axis=None, keepdims=False, **kw: _n.var(a, axis=axis, keepdims=keepdims),
    np.std: lambda a, axis=None, keepdims=False, **kw: _n.std(a, axis=axis, keepdims=keepdims),
    np.reshape: lambda a, newshape=None, shape=None, **kw: _n.reshape(a, shape if shape is not None else newshape),
    np.transpose: lambda a, axes=None: _n.transpose(a, axes),
    np.expand_dims: _n.expand_dims, np.squeeze: lambda a, axis=None: _n.squeeze(a, axis),
    np.concatenate: lambda arrays, axis=0, **kw: _n.concatenate(arrays, axis=axis),
    np.stack: lambda arrays, axis=0, **kw: _n.stack(arrays, axis=axis),
    np.split: _n.split, np.tile: _n.tile, np.repeat: _n.repeat, np.take: lambda a, indices, axis=None, **kw:
    _n.take(a, indices, axis), np.take_along_axis: _n.take_along_axis, np.pad: _n.pad,
    np.broadcast_to: _n.broadcast_to, np.flip: _n.flip, np.roll: _n.roll, np.cumsum: _n.cumsum,
    np.cumprod: _n.cumprod, np.where: _n.where, np.clip: lambda a, a_min=None, a_max=None, **kw:
    _n.clip(a, kw.get("min", a_min), kw.get("max", a_max)), np.dot: _n.dot, np.tensordot: _n.tensordot,
    np.einsum: _n.einsum, np.outer: _n.outer, np.swapaxes: _n.swapaxes, np.moveaxis: _n.moveaxis,
    np.ravel: lambda a, order="C": _n.reshape(a, (-1,)), np.sort: lambda a, axis=-1, **kw: _n.sort(a, axis),
    np.diff: _n.diff, np.trace: _n.trace, np.diagonal: _n.diagonal, np.tril: _n.tril, np.triu: _n.triu,
    np.average: lambda a, axis=None, weights=None, **kw: _n.average(a, axis, weights),
    np.shape: lambda a: _n.shape(a), np.ndim: lambda a: _n.ndim(a), np.size: lambda a, axis=None: (
        _n.size(a) if axis is None else _n.shape(a)[axis]),
    np.argmax: lambda a, axis=None, **kw: np.argmax(unwrap(a), axis=axis),
    np.argmin: lambda a, axis=None, **kw: np.argmin(unwrap(a), axis=axis),
    np.argsort: lambda a, axis=-1, **kw: np.argsort(unwrap(a), axis=axis),
    np.zeros_like: lambda a, dtype=None, **kw: _n.zeros_like(a, dtype),
    np.ones_like: lambda a, dtype=None, **kw: _n.ones_like(a, dtype),
    np.full_like: lambda a, fill_value, dtype=None, **kw: _n.full_like(a, fill_value, dtype),
    np.allclose: lambda a, b, **kw: np.allclose(unwrap(a), unwrap(b), **kw),
    np.isclose: lambda a, b, **kw: np.isclose(unwrap(a), unwrap(b), **kw),
    np.array_equal: lambda a, b, **kw: np.array_equal(unwrap(a), unwrap(b), **kw),
    np.any: lambda a, axis=None, **kw: np.any(unwrap(a), axis=axis, **kw),
    np.all: lambda a, axis=None, **kw: np.all(unwrap(a), axis=axis, **kw),
    np.count_nonzero: lambda a, axis=None, **kw: np.count_nonzero(unwrap(a), axis=axis, **kw),
    np.nan_to_num: lambda x, copy=True, nan=0.0, posinf=None, neginf=None: _n.nan_to_num(x, nan, posinf, neginf),
    np.linalg.norm: lambda x, ord=None, axis=None, keepdims=False: _norm(x, ord, axis, keepdims),
}


def _norm(x, ord, axis, keepdims):  # noqa: A002
    if ord not in (None, 2, "fro") or (isinstance(axis, (tuple, list)) and ord == 2):
        raise TypeError("np.linalg.norm on a traced value supports the 2-norm / Frobenius norm only")
    return _n.sqrt(_n.sum(_n.square(x), axis=axis, keepdims=keepdims))


def function(func: Any, args: tuple, kwargs: dict) -> Any:
    f = _FUNCTIONS.get(func)
    if f is None:
        raise TypeError(f"{getattr(func, '__module__', 'numpy')}.{func.__name__} is not supported on traced "
                        f"values (its gradient would be lost); use fastnet.ops instead")
    return f(*args, **kwargs)


_ = (_core, _math, _nn)
