"""Pooling layers: max and average pooling in 1-D and 2-D, and their global forms."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from fastnet import config
from fastnet._kernels import pooling as _pool
from fastnet.layers.base import CallContext, InputSpec, _shape_str
from fastnet.layers.convolutional import _SpatialLayer, _to_first, _to_last
from fastnet.utils import shape_utils

if TYPE_CHECKING:
    from fastnet._typing import ArrayLike, Config, IntOrTuple, Shape, ShapeLike

__all__ = [
    "BasePooling", "MaxPooling1D", "MaxPooling2D", "AveragePooling1D", "AveragePooling2D",
    "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalMaxPooling1D",
    "GlobalMaxPooling2D",
]


class BasePooling(_SpatialLayer):
    """Max or average pooling over windows (rank 1 or 2).

    Args:
        pool_size: int or tuple of ``rank`` ints, the window.
        strides: int or tuple of ``rank`` ints; None (default) uses ``pool_size``.
        padding: ``"valid"`` or ``"same"`` (output ``ceil(input / stride)``; padding
            taps never win a max and are not counted in an average).
        data_format: ``"channels_last"`` (default) or ``"channels_first"``.
    """

    _mode = None  # "max" or "average"

    def __init__(self, rank: int, pool_size: IntOrTuple, strides: IntOrTuple | None = None, padding: str = "valid",
                 data_format: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        cls = type(self).__name__
        self.rank = rank
        self.pool_size = shape_utils.normalize_tuple(pool_size, rank, "pool_size", cls)
        self.strides = (self.pool_size if strides is None
                        else shape_utils.normalize_tuple(strides, rank, "strides", cls))
        self.padding = shape_utils.normalize_padding(padding, cls)
        self.data_format = shape_utils.normalize_data_format(data_format, cls)
        self.input_spec = InputSpec(ndim=rank + 2)
        self._geoms = {}

    def _output_spatial(self, spatial, input_shape):
        out = [shape_utils.pool_output_length(n, p, self.padding, s)
               for n, p, s in zip(spatial, self.pool_size, self.strides)]
        if any(o is not None and o <= 0 for o in out):
            raise ValueError(
                f'Layer "{self.name}" ({type(self).__name__}): the pool size {self.pool_size} '
                f"is larger than the input's spatial size {tuple(spatial)} with "
                f"padding='valid' (input shape {_shape_str(input_shape)})")
        return out

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape:
        spatial, channels = self._spatial_layout(input_shape)
        return self._out_shape(input_shape[0], self._output_spatial(spatial, input_shape),
                               channels)

    def build(self, input_shape: ShapeLike) -> None:
        spatial, _ = self._spatial_layout(input_shape)
        self._output_spatial(spatial, input_shape)
        self.built = True

    def _geometry(self, spatial):
        g = self._geoms.get(spatial)
        if g is None:
            g = shape_utils.pool_geometry(spatial, self.pool_size, self.strides, self.padding)
            if len(self._geoms) > 16:
                self._geoms.clear()
            self._geoms[spatial] = g
        return g

    def forward(self, ctx: CallContext, inputs: ArrayLike, training: bool = False) -> np.ndarray:
        x = _to_last(inputs, self.data_format)
        spatial = tuple(x.shape[1:-1])
        out_spatial = self._output_spatial(spatial, inputs.shape)
        g = self._geometry(spatial)
        x4 = self._as4d(x)
        n, c = x.shape[0], x.shape[-1]
        y = ctx.buf("y", (n, g.oh, g.ow, c), x.dtype)
        if self._mode == "max":
            arg = ctx.buf("argmax", y.shape, np.int32) if ctx.record else None
            _pool.max_forward(x4, y, arg, g, config._n_threads)
            if ctx.record:
                ctx.arg, ctx.y4 = arg, y
        else:
            _pool.avg_forward(x4, y, g, config._n_threads)
        if ctx.record:
            ctx.in_shape, ctx.g = x4.shape, g
        out = y.reshape((n,) + tuple(out_spatial) + (c,))
        return _to_first(out, self.data_format)

    def backward(self, ctx: CallContext, dy: np.ndarray) -> np.ndarray | None:
        need_dx = ctx.need_dx
        if not need_dx:
            return None
        shape4, g = ctx.in_shape, ctx.g
        dy = _to_last(np.asarray(dy), self.data_format)
        dy4 = np.ascontiguousarray(dy).reshape(shape4[0], g.oh, g.ow, shape4[3])
        dx = ctx.buf("dx", shape4, dy4.dtype)
        if self._mode == "max":
            _pool.max_backward(dy4, ctx.arg, dx, config._n_threads, g,
                               ctx.y4 if ctx.relu_input else None)
        else:
            _pool.avg_backward(dy4, dx, g, config._n_threads)
        if self.rank == 1:
            dx = dx.reshape(shape4[0], shape4[2], shape4[3])
        return _to_first(dx, self.data_format)

    def get_config(self) -> Config:
        cfg = super().get_config()
        cfg.update({"pool_size": self.pool_size, "padding": self.padding,
                    "strides": self.strides, "data_format": self.data_format})
        return cfg


class MaxPooling1D(BasePooling):
    """Max over windows of steps: ``(batch, steps, channels) -> (batch, new_steps, channels)``.

    Example:
        >>> import numpy as np
        >>> from fastnet.layers import MaxPooling1D
        >>> MaxPooling1D(2)(np.arange(8.0).reshape(1, 4, 2))[0]
        array([[2., 3.],
               [6., 7.]], dtype=float32)
    """

    _mode = "max"

    def __init__(self, pool_size: IntOrTuple = 2, strides: IntOrTuple | None = None, padding: str = "valid",
                 data_format: str | None = None, **kwargs) -> None:
        super().__init__(1, pool_size, strides, padding, data_format, **kwargs)


class MaxPooling2D(BasePooling):
    """Max over 2-D windows: ``(batch, rows, cols, channels) -> (batch, new_rows, new_cols,
    channels)``; arguments as :class:`BasePooling` (pool_size (2, 2) by default)."""

    _mode = "max"

    def __init__(self, pool_size: IntOrTuple = (2, 2), strides: IntOrTuple | None = None, padding: str = "valid",
                 data_format: str | None = None, **kwargs) -> None:
        super().__init__(2, pool_size, strides, padding, data_format, **kwargs)


class AveragePooling1D(BasePooling):
    """Mean over windows of steps; arguments as :class:`BasePooling` (pool_size 2)."""

    _mode = "average"

    def __init__(self, pool_size: IntOrTuple = 2, strides: IntOrTuple | None = None, padding: str = "valid",
                 data_format: str | None = None, **kwargs) -> None:
        super().__init__(1, pool_size, strides, padding, data_format, **kwargs)


class AveragePooling2D(BasePooling):
    """Mean over 2-D windows; arguments as :class:`BasePooling` (pool_size (2, 2))."""

    _mode = "average"

    def __init__(self, pool_size: IntOrTuple = (2, 2), strides: IntOrTuple | None = None, padding: str = "valid",
                 data_format: str | None = None, **kwargs) -> None:
        super().__init__(2, pool_size, strides, padding, data_format, **kwargs)


class _GlobalPooling(_SpatialLayer):
    """Max or mean over every spatial axis (rank 1 or 2).

    Args:
        data_format: ``"channels_last"`` (default) or ``"channels_first"``.
        keepdims: keep the spatial axes with size 1 (default False: ``(batch, channels)``).
    """

    _mode = None

    def __init__(self, rank: int, data_format: str | None = None, keepdims: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.rank = rank
        self.data_format = shape_utils.normalize_data_format(data_format, type(self).__name__)
        self.keepdims = bool(keepdims)
        self.input_spec = InputSpec(ndim=rank + 2)

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape:
        spatial, channels = self._spatial_layout(input_shape)
        if self.keepdims:
            return self._out_shape(input_shape[0], (1,) * self.rank, channels)
        return (input_shape[0], channels)

    def _pool(self, ctx, x3, mask):
        n, s, c = x3.shape
        y = ctx.buf("y", (n, c), x3.dtype)
        if self._mode == "max":
            if s == 0:
                raise ValueError(f'Layer "{self.name}" ({type(self).__name__}) cannot take a '
                                 f"max over an empty input of shape {_shape_str(x3.shape)}")
            arg = ctx.buf("argmax", (n, c), np.int32)
            _pool.global_max_forward(x3, y, arg, config._n_threads)
            return y, arg
        if mask is None:
            _pool.global_avg_forward(x3, y, config._n_threads)
            return y, None
        m = mask.astype(x3.dtype)[:, :, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            y = (x3 * m).sum(axis=1) / m.sum(axis=1)
        return y.astype(x3.dtype, copy=False), m

    def forward(self, ctx: CallContext, inputs: ArrayLike, training: bool = False,
                mask: ArrayLike | None = None) -> np.ndarray:
        x = _to_last(inputs, self.data_format)
        n, c = x.shape[0], x.shape[-1]
        x3 = x.reshape(n, -1, c)
        if mask is not None:
            mask = np.asarray(mask).reshape(n, -1)
            if mask.shape[1] != x3.shape[1]:
                raise ValueError(f'Layer "{self.name}" ({type(self).__name__}): mask of shape '
                                 f"{_shape_str(np.shape(mask))} does not match the input's "
                                 f"steps {x3.shape[1]}")
        y, aux = self._pool(ctx, x3, mask)
        if ctx.record:
            ctx.in_shape, ctx.x3_shape, ctx.aux = x.shape, x3.shape, aux
        if self.keepdims:
            return _to_first(y.reshape((n,) + (1,) * self.rank + (c,)), self.data_format)
        return y

    def backward(self, ctx: CallContext, dy: np.ndarray) -> np.ndarray | None:
        need_dx = ctx.need_dx
        if not need_dx:
            return None
        n, s, c = ctx.x3_shape
        dy = np.asarray(dy)
        if self.keepdims:
            dy = _to_last(dy, self.data_format)
        dy = np.ascontiguousarray(dy).reshape(n, c)
        dx = ctx.buf("dx", (n, s, c), dy.dtype)
        if self._mode == "max":
            _pool.global_max_backward(dy, ctx.aux, dx, config._n_threads)
        elif ctx.aux is None:
            _pool.global_avg_backward(dy, dx, config._n_threads)
        else:
            m = ctx.aux
            with np.errstate(invalid="ignore", divide="ignore"):
                dx[...] = dy[:, None, :] * (m / m.sum(axis=1, keepdims=True))
        return _to_first(dx.reshape(ctx.in_shape), self.data_format)

    def get_config(self) -> Config:
        cfg = super().get_config()
        cfg.update({"data_format": self.data_format, "keepdims": self.keepdims})
        return cfg


class GlobalAveragePooling1D(_GlobalPooling):
    """Mean over steps: ``(batch, steps, channels) -> (batch, channels)``.

    With a mask (from ``Embedding(mask_zero=True)``), only unmasked steps are averaged.
    """

    _mode = "average"
    _call_takes_mask = True

    def __init__(self, data_format: str | None = None, keepdims: bool = False, **kwargs) -> None:
        super().__init__(1, data_format, keepdims, **kwargs)


class GlobalAveragePooling2D(_GlobalPooling):
    """Mean over rows and cols: ``(batch, rows, cols, channels) -> (batch, channels)``."""

    _mode = "average"

    def __init__(self, data_format: str | None = None, keepdims: bool = False, **kwargs) -> None:
        super().__init__(2, data_format, keepdims, **kwargs)


class GlobalMaxPooling1D(_GlobalPooling):
    """Max over steps: ``(batch, steps, channels) -> (batch, channels)``."""

    _mode = "max"

    def __init__(self, data_format: str | None = None, keepdims: bool = False, **kwargs) -> None:
        super().__init__(1, data_format, keepdims, **kwargs)


class GlobalMaxPooling2D(_GlobalPooling):
    """Max over rows and cols: ``(batch, rows, cols, channels) -> (batch, channels)``."""

    _mode = "max"

    def __init__(self, data_format: str | None = None, keepdims: bool = False, **kwargs) -> None:
        super().__init__(2, data_format, keepdims, **kwargs)
