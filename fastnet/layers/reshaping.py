"""Spatial reshaping layers: ZeroPadding1D/2D, UpSampling1D/2D (nearest), Cropping1D/2D.

Each is a whole-array copy with numpy (no arithmetic to fuse); outputs and input
gradients are written into reused buffers inside a model's loop.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from fastnet.layers.base import CallContext, InputSpec, _shape_str
from fastnet.layers.convolutional import _SpatialLayer, _to_first, _to_last
from fastnet.utils import shape_utils

if TYPE_CHECKING:
    from collections.abc import Sequence

    from fastnet._typing import ArrayLike, Config, IntOrTuple, Shape, ShapeLike

__all__ = ["ZeroPadding1D", "ZeroPadding2D", "UpSampling1D", "UpSampling2D", "Cropping1D",
           "Cropping2D"]


def _pairs(value, rank, name, layer):
    """``value`` as ``rank`` (before, after) pairs of non-negative ints.

    Accepts an int (the same on every side), a tuple of ``rank`` ints (symmetric
    per axis; for rank 1 a tuple of 2 ints is (before, after)) or ``rank`` pairs.
    """
    if rank == 1:
        return (shape_utils.normalize_tuple(value, 2, name, layer, allow_zero=True),)
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        v = shape_utils.normalize_tuple(value, 1, name, layer, allow_zero=True)[0]
        return ((v, v),) * rank
    try:
        items = list(value)
    except TypeError:
        items = None
    if items is None or len(items) != rank:
        raise ValueError(f"The `{name}` argument of {layer} must be an int, a tuple of {rank} "
                         f"ints or a tuple of {rank} tuples of 2 ints, received {name}={value!r}")
    return tuple(shape_utils.normalize_tuple(v, 2, name, layer, allow_zero=True) for v in items)


class _Window(_SpatialLayer):
    """Pads (or crops, with negative amounts) each spatial axis of a channels-last input."""

    def __init__(self, rank: int, data_format: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.rank = rank
        self.data_format = shape_utils.normalize_data_format(data_format, type(self).__name__)
        self.input_spec = InputSpec(ndim=rank + 2)

    def _amounts(self):
        raise NotImplementedError

    def _out_spatial(self, spatial, input_shape):
        out = []
        for n, (a, b) in zip(spatial, self._amounts()):
            if n is None:
                out.append(None)
                continue
            m = n + a + b
            if m <= 0:
                raise ValueError(
                    f'Layer "{self.name}" ({type(self).__name__}): cropping '
                    f"{self._config_amounts()} removes the whole input of spatial size "
                    f"{tuple(spatial)} (input shape {_shape_str(input_shape)})")
            out.append(m)
        return out

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape:
        spatial, channels = self._spatial_layout(input_shape)
        return self._out_shape(input_shape[0], self._out_spatial(spatial, input_shape), channels)

    def build(self, input_shape: ShapeLike) -> None:
        spatial, _ = self._spatial_layout(input_shape)
        self._out_spatial(spatial, input_shape)
        self.built = True

    def _slices(self, spatial):
        """Where the smaller array sits in the larger one (the output when padding, the
        input when cropping), for an input of spatial size ``spatial``."""
        sl = [slice(None)]
        for n, (a, b) in zip(spatial, self._amounts()):
            sl.append(slice(a, a + n) if self._padding else slice(-a, n + b))
        return tuple(sl) + (slice(None),)

    def forward(self, ctx: CallContext, inputs: ArrayLike, training: bool = False) -> np.ndarray:
        x = _to_last(inputs, self.data_format)
        spatial = tuple(x.shape[1:-1])
        out_spatial = self._out_spatial(spatial, inputs.shape)
        out_shape = (x.shape[0],) + tuple(out_spatial) + (x.shape[-1],)
        y = ctx.buf("y", out_shape, x.dtype)
        if self._padding:
            y.fill(0)
            y[self._slices(spatial)] = x
        else:
            y[...] = x[self._slices(spatial)]
        if ctx.record:
            ctx.in_shape = x.shape
        return _to_first(y, self.data_format)

    def backward(self, ctx: CallContext, dy: np.ndarray) -> np.ndarray | None:
        need_dx = ctx.need_dx
        if not need_dx:
            return None
        dy = _to_last(np.asarray(dy), self.data_format)
        shape = ctx.in_shape
        dx = ctx.buf("dx", shape, dy.dtype)
        spatial = shape[1:-1]
        if self._padding:
            dx[...] = dy[self._slices(spatial)]
        else:
            dx.fill(0)
            dx[self._slices(spatial)] = dy
        return _to_first(dx, self.data_format)


class ZeroPadding1D(_Window):
    """Adds zero steps at the start and end: ``(batch, steps, channels)``.

    Args:
        padding: int (both ends) or tuple ``(left, right)``.
    """

    _padding = True

    def __init__(self, padding: IntOrTuple = 1, **kwargs) -> None:
        super().__init__(1, None, **kwargs)
        self.data_format = "channels_last"
        self.padding = _pairs(padding, 1, "padding", "ZeroPadding1D")[0]

    def _amounts(self):
        return (self.padding,)

    def _config_amounts(self):
        return self.padding

    def get_config(self) -> Config:
        cfg = super().get_config()
        cfg["padding"] = self.padding
        return cfg


class ZeroPadding2D(_Window):
    """Adds rows and columns of zeros around images.

    Args:
        padding: int (all sides), ``(symmetric_rows, symmetric_cols)`` or
            ``((top, bottom), (left, right))``.
        data_format: ``"channels_last"`` (default) or ``"channels_first"``.

    Example:
        >>> import numpy as np
        >>> from fastnet.layers import ZeroPadding2D
        >>> ZeroPadding2D(1)(np.ones((2, 3, 3, 2))).shape
        (2, 5, 5, 2)
    """

    _padding = True

    def __init__(self, padding: IntOrTuple | Sequence[Sequence[int]] = (1, 1), data_format: str | None = None,
                 **kwargs) -> None:
        super().__init__(2, data_format, **kwargs)
        self.padding = _pairs(padding, 2, "padding", "ZeroPadding2D")

    def _amounts(self):
        return self.padding

    def _config_amounts(self):
        return self.padding

    def get_config(self) -> Config:
        cfg = super().get_config()
        cfg.update({"padding": self.padding, "data_format": self.data_format})
        return cfg


class Cropping1D(_Window):
    """Removes steps at the start and end: ``cropping`` int or ``(start, end)``."""

    _padding = False

    def __init__(self, cropping: IntOrTuple | Sequence[Sequence[int]] = (1, 1), **kwargs) -> None:
        super().__init__(1, None, **kwargs)
        self.data_format = "channels_last"
        self.cropping = _pairs(cropping, 1, "cropping", "Cropping1D")[0]

    def _amounts(self):
        return ((-self.cropping[0], -self.cropping[1]),)

    def _config_amounts(self):
        return self.cropping

    def get_config(self) -> Config:
        cfg = super().get_config()
        cfg["cropping"] = self.cropping
        return cfg


class Cropping2D(_Window):
    """Removes rows and columns at the borders: ``cropping`` int, ``(rows, cols)``
    (symmetric) or ``((top, bottom), (left, right))``."""

    _padding = False

    def __init__(self, cropping: IntOrTuple | Sequence[Sequence[int]] = ((0, 0), (0, 0)),
                 data_format: str | None = None, **kwargs) -> None:
        super().__init__(2, data_format, **kwargs)
        self.cropping = _pairs(cropping, 2, "cropping", "Cropping2D")

    def _amounts(self):
        return tuple((-a, -b) for a, b in self.cropping)

    def _config_amounts(self):
        return self.cropping

    def get_config(self) -> Config:
        cfg = super().get_config()
        cfg.update({"cropping": self.cropping, "data_format": self.data_format})
        return cfg


class _UpSampling(_SpatialLayer):
    """Repeats every step/row/column ``size`` times (nearest neighbour)."""

    def __init__(self, rank: int, size: IntOrTuple, data_format: str | None = None, interpolation: str = "nearest",
                 **kwargs) -> None:
        super().__init__(**kwargs)
        cls = type(self).__name__
        self.rank = rank
        self.size = shape_utils.normalize_tuple(size, rank, "size", cls)
        self.data_format = shape_utils.normalize_data_format(data_format, cls)
        if interpolation != "nearest":
            raise ValueError(f"{cls} supports interpolation='nearest' only, received "
                             f"interpolation={interpolation!r}")
        self.interpolation = interpolation
        self.input_spec = InputSpec(ndim=rank + 2)

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape:
        spatial, channels = self._spatial_layout(input_shape)
        out = [None if n is None else n * s for n, s in zip(spatial, self.size)]
        return self._out_shape(input_shape[0], out, channels)

    def forward(self, ctx: CallContext, inputs: ArrayLike, training: bool = False) -> np.ndarray:
        x = _to_last(inputs, self.data_format)
        n, c = x.shape[0], x.shape[-1]
        spatial = x.shape[1:-1]
        # (n, a, 1, b, 1, c) broadcast to (n, a, sa, b, sb, c): each value repeated in place.
        view = [n]
        full = [n]
        for d, s in zip(spatial, self.size):
            view += [d, 1]
            full += [d, s]
        view.append(c)
        full.append(c)
        out_shape = (n,) + tuple(d * s for d, s in zip(spatial, self.size)) + (c,)
        y = ctx.buf("y", out_shape, x.dtype)
        y.reshape(full)[...] = x.reshape(view)
        if ctx.record:
            ctx.in_shape, ctx.full = x.shape, tuple(full)
        return _to_first(y, self.data_format)

    def backward(self, ctx: CallContext, dy: np.ndarray) -> np.ndarray | None:
        need_dx = ctx.need_dx
        if not need_dx:
            return None
        dy = _to_last(np.asarray(dy), self.data_format)
        axes = tuple(2 + 2 * i for i in range(self.rank))
        dx = ctx.buf("dx", ctx.in_shape, dy.dtype)
        np.sum(np.ascontiguousarray(dy).reshape(ctx.full), axis=axes, out=dx.reshape(
            tuple(d for i, d in enumerate(ctx.full) if i not in axes)))
        return _to_first(dx, self.data_format)


class UpSampling1D(_UpSampling):
    """Repeats each step ``size`` times: ``(batch, steps, channels) -> (batch, steps * size,
    channels)``."""

    def __init__(self, size: IntOrTuple = 2, **kwargs) -> None:
        super().__init__(1, size, None, "nearest", **kwargs)

    def get_config(self) -> Config:
        cfg = super().get_config()
        cfg["size"] = self.size[0]
        return cfg


class UpSampling2D(_UpSampling):
    """Repeats rows and columns ``size`` times (nearest neighbour).

    Args:
        size: int or ``(rows, cols)`` factors.
        data_format: ``"channels_last"`` (default) or ``"channels_first"``.
        interpolation: ``"nearest"`` (the only method supported).
    """

    def __init__(self, size: IntOrTuple = (2, 2), data_format: str | None = None, interpolation: str = "nearest",
                 **kwargs) -> None:
        super().__init__(2, size, data_format, interpolation, **kwargs)

    def get_config(self) -> Config:
        cfg = super().get_config()
        cfg.update({"size": self.size, "data_format": self.data_format,
                    "interpolation": self.interpolation})
        return cfg
