"""Core ops (``keras.ops.core``): control flow, gradient cuts, conversion, scatter/slice.

Control flow runs eagerly: inside a recorded call the values are concrete, so ``cond``
picks its branch by the predicate's value and loops run in Python, each op inside
recorded as usual; the gradient is exact for the path taken.
"""
from __future__ import annotations

import builtins
from typing import TYPE_CHECKING

import numpy as np

from fastnet.backend import Variable
from fastnet.ops import numpy as _n
from fastnet.ops.autodiff import Tracer, apply, unwrap, value_of
from fastnet.ops.numpy import cast, convert_to_numpy, convert_to_tensor, shape, unstack

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

__all__ = [
    "cond", "fori_loop", "while_loop", "scan", "map", "switch", "stop_gradient", "convert_to_tensor",
    "convert_to_numpy", "cast", "shape", "dtype", "is_tensor", "slice", "slice_update", "scatter",
    "scatter_update", "unstack", "saturate_cast", "vectorized_map", "custom_gradient", "associative_scan",
]

_py_slice = builtins.slice


def _truth(pred):
    v = value_of(pred)
    return bool(np.asarray(v))


def cond(pred: Any, true_fn: Callable[[], Any], false_fn: Callable[[], Any]) -> Any:
    """``true_fn()`` if ``pred`` else ``false_fn()``."""
    return true_fn() if _truth(pred) else false_fn()


def switch(index: Any, branches: Sequence[Callable[..., Any]], *operands: Any) -> Any:
    """``branches[index](*operands)``, the index clamped to the valid range."""
    i = int(np.clip(int(np.asarray(value_of(index))), 0, len(branches) - 1))
    return branches[i](*operands)


def fori_loop(lower: int, upper: int, body_fun: Callable[[int, Any], Any], init_val: Any) -> Any:
    """``val = body_fun(i, val)`` for i in ``range(lower, upper)``."""
    val = init_val
    for i in range(int(value_of(lower)), int(value_of(upper))):
        val = body_fun(i, val)
    return val


def while_loop(cond: Callable[..., Any], body: Callable[..., Any], loop_vars: Any,
               maximum_iterations: int | None = None) -> Any:
    """Runs ``loop_vars = body(*loop_vars)`` while ``cond(*loop_vars)`` (at most
    ``maximum_iterations`` times); a single non-sequence loop var is passed as is."""
    is_tuple = isinstance(loop_vars, (tuple, list))
    vs = tuple(loop_vars) if is_tuple else (loop_vars,)
    vs = tuple(v if isinstance(v, (Tracer, Variable, dict)) else convert_to_tensor(v) for v in vs)
    it = 0
    while _truth(cond(*vs)) and (maximum_iterations is None or it < maximum_iterations):
        vs = body(*vs)
        if not isinstance(vs, (list, tuple)):
            vs = (vs,)
        vs = tuple(vs)
        it += 1
    return vs if is_tuple else vs[0]


def scan(f: Callable[[Any, Any], tuple[Any, Any]], init: Any, xs: Any = None, length: int | None = None,
         reverse: bool = False, unroll: int = 1) -> tuple[Any, Any]:
    """``carry, y = f(carry, x)`` over the leading axis of ``xs``; returns (carry, stacked ys)."""
    if xs is None:
        if length is None:
            raise ValueError("scan needs `xs` or `length`")
        items = [None] * int(length)
    else:
        flat = xs if isinstance(xs, (list, tuple)) else None
        n = shape(flat[0] if flat is not None else xs)[0]
        if flat is not None:
            items = [type(xs)(_n.get_item(e, i) for e in flat) for i in range(n)]
        else:
            items = [_n.get_item(xs, i) for i in range(n)]
    order = range(len(items) - 1, -1, -1) if reverse else range(len(items))
    carry = init
    ys = [None] * len(items)
    for i in order:
        carry, y = f(carry, items[i])
        ys[i] = y
    if not ys or ys[0] is None:
        return carry, None
    if isinstance(ys[0], (list, tuple)):
        stacked = type(ys[0])(_n.stack([y[k] for y in ys]) for k in range(len(ys[0])))
    else:
        stacked = _n.stack(ys)
    return carry, stacked


def associative_scan(f: Callable[[Any, Any], Any], elems: Any, reverse: bool = False, axis: int = 0) -> Any:
    """Inclusive scan of the associative ``f`` along ``axis`` (sequential here)."""
    parts = unstack(elems, axis=axis)
    if reverse:
        parts = parts[::-1]
    out = [parts[0]]
    for p in parts[1:]:
        out.append(f(out[-1], p))
    if reverse:
        out = out[::-1]
    return _n.stack(out, axis=axis)


def map(f: Callable[[Any], Any], xs: Any) -> Any:  # noqa: A001
    """``stack([f(x) for x in xs])`` over the leading axis."""
    n = shape(xs)[0]
    ys = [f(_n.get_item(xs, i)) for i in range(n)]
    if isinstance(ys[0], (list, tuple)):
        return type(ys[0])(_n.stack([y[k] for y in ys]) for k in range(len(ys[0])))
    if isinstance(ys[0], dict):
        return {k: _n.stack([y[k] for y in ys]) for k in ys[0]}
    return _n.stack(ys)


def vectorized_map(function: Callable[[Any], Any], elements: Any) -> Any:
    return map(function, elements)


def stop_gradient(variable: Any) -> Any:
    """The value with no gradient path: a constant for the tape."""
    return unwrap(variable) if not isinstance(variable, Variable) else variable.value.copy()


def dtype(x: Any) -> str:
    return np.asarray(value_of(x)).dtype.name if not hasattr(x, "dtype") else np.dtype(x.dtype).name


def is_tensor(x: Any) -> bool:
    return isinstance(x, (np.ndarray, Tracer))


def saturate_cast(x: Any, dtype: Any) -> Any:
    dt = np.dtype(_n.standardize_dtype(dtype))
    if dt.kind in "iu":
        info = np.iinfo(dt)
        x = _n.clip(x, info.min, info.max)
    return cast(x, dt)


def slice(inputs: Any, start_indices: Any, shape: Any) -> Any:  # noqa: A001
    """The block of ``shape`` starting at ``start_indices`` (``-1`` in shape: to the end)."""
    starts = [int(s) for s in np.asarray(value_of(start_indices)).reshape(-1)]
    sizes = [int(s) for s in np.asarray(value_of(shape)).reshape(-1)]
    dims = _n.shape(inputs)
    idx = tuple(_py_slice(s, dims[i] if n == -1 else s + n) for i, (s, n) in enumerate(zip(starts, sizes)))
    return _n.get_item(inputs, idx)


def slice_update(inputs: Any, start_indices: Any, updates: Any) -> Any:
    """``inputs`` with the block at ``start_indices`` replaced by ``updates``."""
    starts = [int(s) for s in np.asarray(value_of(start_indices)).reshape(-1)]
    ushape = _n.shape(updates)
    idx = tuple(_py_slice(s, s + n) for s, n in zip(starts, ushape))

    def fwd(x, u):
        x, u = _n._promote(x, u)
        y = np.array(x, copy=True)
        y[idx] = u
        return y, None

    def bwd(g, _):
        gx = g.copy()
        gx[idx] = 0
        return gx, g[idx]

    return apply(fwd, bwd, (_n._a(inputs), _n._a(updates)))


def scatter_update(inputs: Any, indices: Any, updates: Any, reduction: str | None = None) -> Any:
    """``inputs`` with the entries at ``indices`` (rows of index tuples) set to ``updates``
    (or combined with them by ``reduction``: "add", "mul", "max", "min")."""
    ind = np.asarray(value_of(indices)).astype(np.int64)
    key = tuple(ind[:, k] for k in range(ind.shape[-1])) if ind.ndim > 1 else (ind,)

    def fwd(x, u):
        x, u = _n._promote(x, u)
        y = np.array(x, copy=True)
        u = np.asarray(u, dtype=y.dtype)
        if reduction is None:
            y[key] = u
        elif reduction == "add":
            np.add.at(y, key, u)
        elif reduction == "mul":
            np.multiply.at(y, key, u)
        elif reduction == "max":
            np.maximum.at(y, key, u)
        elif reduction == "min":
            np.minimum.at(y, key, u)
        else:
            raise ValueError(f"Unsupported reduction {reduction!r}: expected None, 'add', 'mul', 'max' or 'min'")
        return y, None

    def bwd(g, _):
        if reduction is None:
            gx = g.copy()
            gx[key] = 0
            return gx, g[key]
        if reduction == "add":
            return g, g[key]
        raise NotImplementedError(f"scatter_update(reduction={reduction!r}) has no gradient in fastnet")

    return apply(fwd, bwd, (_n._a(inputs), _n._a(updates)))


def scatter(indices: Any, values: Any, shape: Any) -> Any:
    """A zero array of ``shape`` with ``values`` added at ``indices`` (duplicates summed)."""
    vals = value_of(_n._a(values))
    base = np.zeros(tuple(int(d) for d in shape), np.asarray(vals).dtype)
    return scatter_update(base, indices, values, reduction="add")


def custom_gradient(f: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator: ``f(*args)`` returns ``(output, grad_fn)`` with ``grad_fn(*upstream)``
    (or ``grad_fn(upstream)``) returning the gradient of each argument."""
    def wrapped(*args):
        def fwd(*v):
            out, grad_fn = f(*v)
            return unwrap(out), grad_fn

        def bwd(g, grad_fn):
            gs = grad_fn(g)
            if not isinstance(gs, (list, tuple)):
                gs = (gs,)
            return [None if x is None else np.asarray(unwrap(x)) for x in gs]

        return apply(fwd, bwd, tuple(_n._a(a) for a in args))

    wrapped.__name__ = getattr(f, "__name__", "custom_gradient")
    return wrapped
