"""Merge layers: combine a list of tensors (Add, Subtract, Multiply, Average, Maximum,
Minimum, Concatenate, Dot) and their function forms (``layers.add([a, b])``, ...).

Elementwise merges broadcast as numpy does (so a (batch, 1) tensor merges with a
(batch, n) one); their backward passes sum each gradient back to its input's shape.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from fastnet import activations, config
from fastnet._kernels import _activations as _act_kernels
from fastnet.layers.base import CallContext, Layer, _shape_str

if TYPE_CHECKING:
    from typing import Any

    from fastnet._typing import Config, Shape

__all__ = ["Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate", "Dot",
           "add", "subtract", "multiply", "average", "maximum", "minimum", "concatenate", "dot"]


def _unbroadcast(g, shape):
    """``g`` summed over the axes along which an input of ``shape`` was broadcast."""
    if g.shape == tuple(shape):
        return g
    extra = g.ndim - len(shape)
    if extra:
        g = g.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, d in enumerate(shape) if d == 1 and g.shape[i] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g


class _Merge(Layer):
    """Base of the merge layers: a list of at least two tensors in, one tensor out."""

    _multi_input = True
    _min_inputs = 2
    _max_inputs = None

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.supports_masking = True

    def _check_inputs(self, shapes):
        name = type(self).__name__
        if not isinstance(shapes, list):
            raise ValueError(f'Layer "{self.name}" ({name}) must be called on a list of tensors, received one '
                             f"tensor of shape {_shape_str(shapes)}")
        if len(shapes) < self._min_inputs or (self._max_inputs is not None and len(shapes) > self._max_inputs):
            want = (f"exactly {self._min_inputs}" if self._max_inputs == self._min_inputs
                    else f"at least {self._min_inputs}")
            raise ValueError(f'Layer "{self.name}" ({name}) must be called on a list of {want} tensors, '
                             f"received {len(shapes)}")

    def build(self, input_shape: Any) -> None:
        self._check_inputs(input_shape)
        self.compute_output_shape(input_shape)
        self.built = True

    def compute_output_shape(self, input_shape: list[Shape]) -> Shape:
        self._check_inputs(input_shape)
        rank = max(len(s) for s in input_shape)
        out = []
        for i in range(rank):
            dims = [s[len(s) - rank + i] for s in input_shape if len(s) - rank + i >= 0]
            known = {d for d in dims if d is not None and d != 1}
            if len(known) > 1:
                raise ValueError(f'Layer "{self.name}" ({type(self).__name__}) cannot merge inputs of shapes '
                                 f"{', '.join(_shape_str(s) for s in input_shape)}: they differ along axis "
                                 f"{i} ({sorted(known)})")
            if known:
                out.append(known.pop())
            elif any(d is None for d in dims):
                out.append(None)
            else:
                out.append(1)
        return tuple(out)

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        if mask is None:
            return None
        masks = [m for m in (mask if isinstance(mask, (list, tuple)) else [mask]) if m is not None]
        if not masks:
            return None
        out = masks[0]
        for m in masks[1:]:
            out = np.logical_and(out, m)
        return out

    def _as_list(self, inputs):
        if not isinstance(inputs, (list, tuple)):
            raise ValueError(f'Layer "{self.name}" ({type(self).__name__}) must be called on a list of tensors')
        self._check_inputs([np.shape(x) for x in inputs])
        return [np.asarray(x) for x in inputs]

    def _out(self, ctx, xs):
        shape = np.broadcast_shapes(*[x.shape for x in xs])
        return ctx.buf("y", shape, np.result_type(*xs))

    def forward(self, ctx: CallContext, inputs: list[np.ndarray], training: bool = False, mask: Any = None,
                **kwargs) -> np.ndarray:
        xs = self._as_list(inputs)
        y = self._merge(ctx, xs)
        if ctx.record:
            ctx.shapes = [x.shape for x in xs]
        return y

    def backward(self, ctx: CallContext, dy: np.ndarray) -> list[np.ndarray | None]:
        if not ctx.need_dx:
            return [None] * len(ctx.shapes)
        dy = np.asarray(dy)
        return [_unbroadcast(g, s) for g, s in zip(self._grads(ctx, dy), ctx.shapes)]

    def _merge(self, ctx, xs):
        raise NotImplementedError

    def _grads(self, ctx, dy):
        raise NotImplementedError


def _rows(x):
    return x.reshape(-1, x.shape[-1]) if x.ndim else x.reshape(1, 1)


class Add(_Merge):
    """Sums a list of tensors of the same shape (numpy broadcasting allowed)."""

    def _merge(self, ctx, xs):
        y = self._out(ctx, xs)
        a, b = xs[0], xs[1]
        if (ctx.fuse_relu and len(xs) == 2 and y.dtype.kind == "f" and y.size and a.shape == b.shape == y.shape
                and a.dtype == b.dtype == y.dtype and a.flags.c_contiguous and b.flags.c_contiguous):
            # (a residual block's sum and ReLU: one threaded pass instead of two)
            _act_kernels.add_relu(_rows(a), _rows(b), _rows(y), config._n_threads)
            if ctx.record:
                ctx.y = y
            return y
        np.add(a, b, out=y)
        for x in xs[2:]:
            y += x
        if ctx.fuse_relu:  # a ReLU reading only this sum (a graph fusion), in place
            if y.dtype.kind != "f":
                np.maximum(y, 0, out=y)
            elif y.size:
                r = _rows(y)
                _act_kernels.forward(activations.relu.code, r, r, 0.0, config._n_threads)
            if ctx.record:
                ctx.y = y
        return y

    def _grads(self, ctx, dy):
        if ctx.fuse_relu:
            y = ctx.y
            if y.dtype.kind != "f":
                return [dy * (y > 0)] * len(ctx.shapes)
            dy = np.ascontiguousarray(dy, dtype=y.dtype)
            g = ctx.buf("dx", y.shape, y.dtype)
            if y.size:
                _act_kernels.backward(activations.relu.code, _rows(dy), _rows(y), None, _rows(g), 0.0,
                                      config._n_threads)
            dy = g
        return [dy] * len(ctx.shapes)


class Subtract(_Merge):
    """``inputs[0] - inputs[1]`` (exactly two tensors)."""

    _max_inputs = 2

    def _merge(self, ctx, xs):
        return np.subtract(xs[0], xs[1], out=self._out(ctx, xs))

    def _grads(self, ctx, dy):
        return [dy, -dy]


class Multiply(_Merge):
    """Elementwise product of a list of tensors."""

    def _merge(self, ctx, xs):
        y = self._out(ctx, xs)
        np.multiply(xs[0], xs[1], out=y)
        for x in xs[2:]:
            y *= x
        if ctx.record:
            ctx.xs = xs
        return y

    def _grads(self, ctx, dy):
        xs = ctx.xs
        out = []
        for i in range(len(xs)):
            g = dy
            for j, x in enumerate(xs):
                if j != i:
                    g = g * x
            out.append(g)
        return out


class Average(_Merge):
    """Elementwise mean of a list of tensors."""

    def _merge(self, ctx, xs):
        y = self._out(ctx, xs)
        np.add(xs[0], xs[1], out=y)
        for x in xs[2:]:
            y += x
        y *= y.dtype.type(1.0 / len(xs))
        return y

    def _grads(self, ctx, dy):
        g = dy * dy.dtype.type(1.0 / len(ctx.shapes))
        return [g] * len(ctx.shapes)


class _Extremum(_Merge):
    _fn = None

    def _merge(self, ctx, xs):
        y = self._out(ctx, xs)
        self._fn(xs[0], xs[1], out=y)
        for x in xs[2:]:
            self._fn(y, x, out=y)
        if ctx.record:
            ctx.xs, ctx.y = xs, y
        return y

    def _grads(self, ctx, dy):
        # As Keras computes it (pairwise, left to right): ties go to the earlier input.
        taken = np.zeros(dy.shape, dtype=bool)
        out = []
        for x in ctx.xs:
            hit = np.equal(x, ctx.y) & ~taken
            hit |= np.isnan(ctx.y) & np.isnan(x) & ~taken
            taken |= hit
            out.append(np.where(hit, dy, dy.dtype.type(0)))
        return out


class Maximum(_Extremum):
    """Elementwise maximum of a list of tensors."""

    _fn = staticmethod(np.maximum)


class Minimum(_Extremum):
    """Elementwise minimum of a list of tensors."""

    _fn = staticmethod(np.minimum)


class Concatenate(_Merge):
    """Concatenates a list of tensors along ``axis`` (the other axes must match).

    Args:
        axis: the concatenation axis (-1 by default).
    """

    def __init__(self, axis: int = -1, **kwargs) -> None:
        super().__init__(**kwargs)
        self.axis = int(axis)

    def compute_output_shape(self, input_shape: list[Shape]) -> Shape:
        self._check_inputs(input_shape)
        ranks = {len(s) for s in input_shape}
        if len(ranks) != 1:
            raise ValueError(f'Layer "{self.name}" (Concatenate) needs inputs of one rank, received shapes '
                             f"{', '.join(_shape_str(s) for s in input_shape)}")
        rank = ranks.pop()
        axis = self.axis % rank
        out = list(input_shape[0])
        for s in input_shape[1:]:
            for i, (a, b) in enumerate(zip(out, s)):
                if i == axis:
                    continue
                if a is not None and b is not None and a != b:
                    raise ValueError(
                        f'Layer "{self.name}" (Concatenate) needs inputs whose shapes match except along the '
                        f"concatenation axis {self.axis}, received shapes "
                        f"{', '.join(_shape_str(t) for t in input_shape)}")
                if a is None:
                    out[i] = b
        sizes = [s[axis] for s in input_shape]
        out[axis] = None if any(d is None for d in sizes) else sum(sizes)
        return tuple(out)

    def _merge(self, ctx, xs):
        shape = self.compute_output_shape([x.shape for x in xs])
        y = ctx.buf("y", shape, np.result_type(*xs))
        np.concatenate(xs, axis=self.axis, out=y)
        return y

    def forward(self, ctx: CallContext, inputs: list[np.ndarray], training: bool = False, mask: Any = None,
                **kwargs) -> np.ndarray:
        xs = self._as_list(inputs)
        y = self._merge(ctx, xs)
        if ctx.record:
            ctx.sizes = [x.shape[self.axis] for x in xs]
            ctx.shapes = [x.shape for x in xs]
        return y

    def backward(self, ctx: CallContext, dy: np.ndarray) -> list[np.ndarray | None]:
        if not ctx.need_dx:
            return [None] * len(ctx.sizes)
        cuts = np.cumsum(ctx.sizes)[:-1]
        return list(np.split(np.asarray(dy), cuts, axis=self.axis))

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        if mask is None or all(m is None for m in mask):
            return None
        rank = np.ndim(inputs[0])
        if self.axis % rank != rank - 1:
            return super().compute_mask(inputs, mask)
        full = [np.ones(np.shape(x)[:-1], dtype=bool) if m is None else np.asarray(m, dtype=bool)
                for x, m in zip(inputs, mask)]
        out = full[0]
        for m in full[1:]:
            out = out & m
        return out

    def get_config(self) -> Config:
        cfg = super().get_config()
        cfg["axis"] = self.axis
        return cfg


class Dot(_Merge):
    """Dot product of two tensors along ``axes``, batch by batch.

    For inputs of shapes ``(batch, n)`` and ``(batch, n)`` with ``axes=1`` the output is
    ``(batch, 1)``; for ``(batch, n, d)`` and ``(batch, m, d)`` with ``axes=2``, ``(batch, n, m)``.

    Args:
        axes: int or pair of ints, the axis of each input to contract (batch axis excluded).
        normalize: L2-normalise each input along its axis first (the output is then the
            cosine similarity).
    """

    _max_inputs = 2

    def __init__(self, axes: int | tuple[int, int], normalize: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        if isinstance(axes, (list, tuple)):
            if len(axes) != 2:
                raise ValueError(f"Dot axes must be an int or a pair of ints, received axes={axes!r}")
            self.axes = tuple(int(a) for a in axes)
        else:
            self.axes = int(axes)
        self.normalize = bool(normalize)
        self.supports_masking = False

    def _pair_axes(self, shapes):
        axes = self.axes if isinstance(self.axes, tuple) else (self.axes, self.axes)
        out = []
        for a, s in zip(axes, shapes):
            r = len(s)
            if r not in (2, 3):
                raise ValueError(f'Layer "{self.name}" (Dot) takes inputs of rank 2 or 3, received shapes '
                                 f"{', '.join(_shape_str(t) for t in shapes)}")
            a = a % r
            if a == 0:
                raise ValueError(f'Layer "{self.name}" (Dot) cannot contract the batch axis (axes={self.axes})')
            out.append(a)
        return out

    def compute_output_shape(self, input_shape: list[Shape]) -> Shape:
        self._check_inputs(input_shape)
        a, b = input_shape
        ax, bx = self._pair_axes(input_shape)
        if a[ax] is not None and b[bx] is not None and a[ax] != b[bx]:
            raise ValueError(f'Layer "{self.name}" (Dot) contracts axis {ax} of {_shape_str(a)} with axis {bx} of '
                             f"{_shape_str(b)}: sizes {a[ax]} and {b[bx]} differ")
        rest = [d for i, d in enumerate(a) if i not in (0, ax)] + [d for i, d in enumerate(b) if i not in (0, bx)]
        return (a[0],) + (tuple(rest) if rest else (1,))

    def _normalized(self, x, axis):
        sq = np.sum(x * x, axis=axis, keepdims=True)
        inv = 1.0 / np.sqrt(np.maximum(sq, x.dtype.type(1e-12)))
        return x * inv, inv, sq

    def forward(self, ctx: CallContext, inputs: list[np.ndarray], training: bool = False, mask: Any = None,
                **kwargs) -> np.ndarray:
        a, b = self._as_list(inputs)
        ax, bx = self._pair_axes([a.shape, b.shape])
        an = bn = None
        if self.normalize:
            an, ainv, asq = self._normalized(a, ax)
            bn, binv, bsq = self._normalized(b, bx)
        u, v = (an, bn) if self.normalize else (a, b)
        # (batch, rest_a, k) @ (batch, k, rest_b)
        u3 = np.moveaxis(u, ax, -1).reshape(u.shape[0], -1, u.shape[ax])
        v3 = np.moveaxis(v, bx, 1).reshape(v.shape[0], v.shape[bx], -1)
        y = np.matmul(u3, v3)
        out_shape = self.compute_output_shape([a.shape, b.shape])
        if ctx.record:
            ctx.a, ctx.b, ctx.ax, ctx.bx, ctx.u3, ctx.v3 = a, b, ax, bx, u3, v3
            if self.normalize:
                ctx.norm = (an, ainv, asq, bn, binv, bsq)
        return y.reshape(out_shape)

    def backward(self, ctx: CallContext, dy: np.ndarray) -> list[np.ndarray | None]:
        if not ctx.need_dx:
            return [None, None]
        a, b, ax, bx, u3, v3 = ctx.a, ctx.b, ctx.ax, ctx.bx, ctx.u3, ctx.v3
        dy3 = np.asarray(dy).reshape(u3.shape[0], u3.shape[1], v3.shape[2])
        du3 = np.matmul(dy3, np.swapaxes(v3, 1, 2))
        dv3 = np.matmul(np.swapaxes(u3, 1, 2), dy3)
        ua_shape = np.moveaxis(a, ax, -1).shape
        vb_shape = np.moveaxis(b, bx, 1).shape
        du = np.moveaxis(du3.reshape(ua_shape), -1, ax)
        dv = np.moveaxis(dv3.reshape(vb_shape), 1, bx)
        if self.normalize:
            an, ainv, asq, bn, binv, bsq = ctx.norm
            du = self._normalize_grad(du, an, ainv, asq, ax)
            dv = self._normalize_grad(dv, bn, binv, bsq, bx)
        return [np.ascontiguousarray(du), np.ascontiguousarray(dv)]

    @staticmethod
    def _normalize_grad(dn, xn, inv, sq, axis):
        # xn = x * inv with inv = 1 / sqrt(max(sum(x^2), eps)): where the norm is above
        # eps, dx = inv * (dn - xn * sum(dn * xn)); below it, inv is a constant.
        proj = np.sum(dn * xn, axis=axis, keepdims=True)
        live = sq > 1e-12
        return inv * (dn - np.where(live, xn * proj, 0))

    def get_config(self) -> Config:
        cfg = super().get_config()
        cfg.update({"axes": list(self.axes) if isinstance(self.axes, tuple) else self.axes,
                    "normalize": self.normalize})
        return cfg


def add(inputs: list[Any], **kwargs) -> Any:
    """``Add(**kwargs)(inputs)``."""
    return Add(**kwargs)(inputs)


def subtract(inputs: list[Any], **kwargs) -> Any:
    """``Subtract(**kwargs)(inputs)``."""
    return Subtract(**kwargs)(inputs)


def multiply(inputs: list[Any], **kwargs) -> Any:
    """``Multiply(**kwargs)(inputs)``."""
    return Multiply(**kwargs)(inputs)


def average(inputs: list[Any], **kwargs) -> Any:
    """``Average(**kwargs)(inputs)``."""
    return Average(**kwargs)(inputs)


def maximum(inputs: list[Any], **kwargs) -> Any:
    """``Maximum(**kwargs)(inputs)``."""
    return Maximum(**kwargs)(inputs)


def minimum(inputs: list[Any], **kwargs) -> Any:
    """``Minimum(**kwargs)(inputs)``."""
    return Minimum(**kwargs)(inputs)


def concatenate(inputs: list[Any], axis: int = -1, **kwargs) -> Any:
    """``Concatenate(axis, **kwargs)(inputs)``."""
    return Concatenate(axis=axis, **kwargs)(inputs)


def dot(inputs: list[Any], axes: int | tuple[int, int] = -1, normalize: bool = False, **kwargs) -> Any:
    """``Dot(axes, normalize, **kwargs)(inputs)``."""
    return Dot(axes=axes, normalize=normalize, **kwargs)(inputs)
