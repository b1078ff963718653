"""Depthwise, separable, grouped and 3-D convolutions; 3-D pooling.

``DepthwiseConv1D/2D``, ``SeparableConv1D/2D``, ``Conv3D``, ``MaxPooling3D``,
``AveragePooling3D``, ``GlobalAveragePooling3D`` and ``GlobalMaxPooling3D``, with
Keras 3's arguments, weight names, shapes and order. The compute runs in
``fastnet._kernels.conv_variants`` on channels-last volumes ``(N, D, H, W, C)``
(a 2-D image is a volume of depth 1, a 1-D signal one of depth and height 1);
``channels_first`` inputs are transposed on the way in and out.

Grouped convolution (``groups > 1``) is :func:`grouped_conv_forward` /
:func:`grouped_conv_backward`, which take any layer with Conv1D/2D/3D's
attributes, so that those layers can hand their grouped case to it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from fastnet import config, initializers, regularizers
from fastnet._kernels import conv_variants as _cv
from fastnet._kernels import dense as _dense
from fastnet._kernels import pooling as _pool
from fastnet.layers._v2 import ContextCallMixin, activation_grad, apply_activation, to_first, to_last
from fastnet.layers.base import InputSpec, Layer, _shape_str
from fastnet.layers.core import FusedActivation, _serialize_initializer, _serialize_regularizer, positive_int
from fastnet.utils import shape_utils

if TYPE_CHECKING:
    from fastnet._typing import (
        ActivationLike,
        Config,
        ConstraintLike,
        InitializerLike,
        IntOrTuple,
        RegularizerLike,
        Shape,
        ShapeLike,
    )
    from fastnet.layers._v2 import CallContext

__all__ = ["DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D", "Conv3D",
           "MaxPooling3D", "AveragePooling3D", "GlobalAveragePooling3D", "GlobalMaxPooling3D",
           "geometry3", "grouped_conv_forward", "grouped_conv_backward"]

_AXES = {1: "steps", 2: "rows, cols", 3: "depth, rows, cols"}


def geometry3(spatial, kernel, strides, padding, dilation):
    """The 18-int window geometry of the ``conv_variants`` kernels for a 1-, 2- or 3-D window.

    Returns (in d, h, w, out d, h, w, window, strides, dilation, padding before),
    lower ranks padded with leading 1s (0 padding).
    """
    rank = len(spatial)
    lead = 3 - rank
    outs = [shape_utils.conv_output_length(n, k, padding, s, d)
            for n, k, s, d in zip(spatial, kernel, strides, dilation)]
    pads = [shape_utils.conv_padding(n, k, padding, s, d)[0]
            for n, k, s, d in zip(spatial, kernel, strides, dilation)]
    one, zero = (1,) * lead, (0,) * lead
    return tuple(int(v) for v in (one + tuple(spatial) + one + tuple(outs) + one + tuple(kernel)
                                  + one + tuple(strides) + one + tuple(dilation) + zero + tuple(pads)))


def _as5d(x):
    """(N, D, H, W, C) view of a channels-last rank-1, 2 or 3 spatial array."""
    n, c = x.shape[0], x.shape[-1]
    sp = x.shape[1:-1]
    return x.reshape((n,) + (1,) * (3 - len(sp)) + tuple(sp) + (c,))


class _Spatial(ContextCallMixin, Layer):
    """Rank, data format and input-shape checks shared by this module's layers."""

    rank = None

    def _layout(self, input_shape):
        """(spatial dims, channels) of an input shape, checking its rank."""
        input_shape = tuple(input_shape)
        want = self.rank + 2
        if len(input_shape) != want:
            order = (f"(batch, {_AXES[self.rank]}, channels)" if self.data_format == "channels_last"
                     else f"(batch, channels, {_AXES[self.rank]})")
            raise ValueError(f'Layer "{self.name}" ({type(self).__name__}) expects input of rank {want} '
                             f"{order}, received input with shape {_shape_str(input_shape)}")
        if self.data_format == "channels_last":
            return tuple(input_shape[1:-1]), input_shape[-1]
        return tuple(input_shape[2:]), input_shape[1]

    def _check_spec(self, shape):
        self._layout(shape)
        super()._check_spec(shape)

    def _out_shape(self, batch, spatial, channels):
        if self.data_format == "channels_last":
            return (batch,) + tuple(spatial) + (channels,)
        return (batch, channels) + tuple(spatial)


class _WindowConv(_Spatial):
    """Window arguments and output sizes shared by the convolutions."""

    _allow_causal = False

    def _init_window(self, rank, kernel_size, strides, padding, data_format, dilation_rate):
        cls = type(self).__name__
        self.rank = rank
        self.kernel_size = shape_utils.normalize_tuple(kernel_size, rank, "kernel_size", cls)
        self.strides = shape_utils.normalize_tuple(strides, rank, "strides", cls)
        self.dilation_rate = shape_utils.normalize_tuple(dilation_rate, rank, "dilation_rate", cls)
        self.padding = shape_utils.normalize_padding(padding, cls, allow_causal=self._allow_causal)
        self.data_format = shape_utils.normalize_data_format(data_format, cls)
        self.input_spec = InputSpec(ndim=rank + 2)

    def _output_spatial(self, spatial, input_shape):
        out = [shape_utils.conv_output_length(n, k, self.padding, s, d)
               for n, k, s, d in zip(spatial, self.kernel_size, self.strides, self.dilation_rate)]
        if any(o is not None and o <= 0 for o in out):
            eff = tuple(shape_utils.effective_kernel(k, d) for k, d in zip(self.kernel_size, self.dilation_rate))
            dil = f" (dilated to {eff})" if eff != self.kernel_size else ""
            raise ValueError(
                f'Layer "{self.name}" ({type(self).__name__}): the kernel size {self.kernel_size}{dil} is '
                f"larger than the input's spatial size {tuple(spatial)} with padding='valid' "
                f"(input shape {_shape_str(input_shape)})")
        return out

    def _geometry(self, spatial):
        return geometry3(spatial, self.kernel_size, self.strides, self.padding, self.dilation_rate)

    def _channels_or_raise(self, input_shape):
        spatial, channels = self._layout(input_shape)
        if channels is None:
            raise ValueError(f'Layer "{self.name}" ({type(self).__name__}) needs the channel dimension of '
                             f"its input to be defined, received input shape {_shape_str(input_shape)}")
        self._output_spatial(spatial, input_shape)
        axis = -1 if self.data_format == "channels_last" else 1
        self.input_spec = InputSpec(ndim=self.rank + 2, axes={axis: channels})
        return spatial, channels


# ============================================================================ depthwise

def _positive_multiplier(value, cls):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"Invalid value for argument `depth_multiplier` of {cls}: expected a strictly "
                         f"positive integer, received depth_multiplier={value!r}")
    return int(value)


class _DepthwiseConv(_WindowConv):
    """Depthwise convolution of rank 1 or 2: each input channel convolved with its own
    ``depth_multiplier`` filters; output channel ``c * depth_multiplier + m``."""

    def __init__(self, rank: int, depth_multiplier: int, kernel_size: IntOrTuple, strides: IntOrTuple = 1,
                 padding: str = "valid", data_format: str | None = None, dilation_rate: IntOrTuple = 1,
                 activation: ActivationLike | None = None, use_bias: bool = True,
                 depthwise_initializer: InitializerLike = "glorot_uniform",
                 bias_initializer: InitializerLike = "zeros",
                 depthwise_regularizer: RegularizerLike | None = None,
                 bias_regularizer: RegularizerLike | None = None,
                 activity_regularizer: RegularizerLike | None = None,
                 depthwise_constraint: ConstraintLike | None = None,
                 bias_constraint: ConstraintLike | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        cls = type(self).__name__
        self.depth_multiplier = _positive_multiplier(depth_multiplier, cls)
        self._init_window(rank, kernel_size, strides, padding, data_format, dilation_rate)
        self.activation = FusedActivation(activation)
        self.use_bias = bool(use_bias)
        self.depthwise_initializer = initializers.get(depthwise_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.depthwise_regularizer = regularizers.get(depthwise_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.activity_regularizer = regularizers.get(activity_regularizer)
        self.depthwise_constraint = depthwise_constraint
        self.bias_constraint = bias_constraint
        self.kernel = None
        self.bias = None

    def build(self, input_shape: ShapeLike) -> None:
        _, channels = self._channels_or_raise(input_shape)
        self.kernel = self.add_weight("kernel", self.kernel_size + (channels, self.depth_multiplier),
                                      self.depthwise_initializer, self.depthwise_regularizer,
                                      constraint=self.depthwise_constraint)
        if self.use_bias:
            self.bias = self.add_weight("bias", (channels * self.depth_multiplier,), self.bias_initializer,
                                        self.bias_regularizer, constraint=self.bias_constraint)
        self.built = True

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape:
        spatial, channels = self._layout(input_shape)
        return self._out_shape(input_shape[0], self._output_spatial(spatial, input_shape),
                               None if channels is None else channels * self.depth_multiplier)

    def forward(self, ctx: CallContext, inputs: np.ndarray, training: bool = False) -> np.ndarray:
        x = to_last(inputs, self.data_format)
        spatial = tuple(x.shape[1:-1])
        out_sp = self._output_spatial(spatial, inputs.shape)
        g = self._geometry(spatial)
        x5 = _as5d(x)
        n, cm = x.shape[0], x.shape[-1] * self.depth_multiplier
        z = ctx.buf("z", (n,) + g[3:6] + (cm,), x.dtype)
        _cv.depthwise_forward(x5, self.kernel.value.reshape(-1, cm),
                              self.bias.value if self.use_bias else None, z, g, config._n_threads)
        y = apply_activation(ctx, self.activation, z)
        if ctx.record:
            ctx.x5, ctx.z, ctx.y, ctx.geom, ctx.in_shape = x5, z, y, g, x.shape
        return to_first(y.reshape((n,) + tuple(out_sp) + (cm,)), self.data_format)

    def backward(self, ctx: CallContext, dy: np.ndarray) -> np.ndarray | None:
        x5, z, y, g = ctx.x5, ctx.z, ctx.y, ctx.geom
        dy = to_last(np.asarray(dy, dtype=y.dtype), self.data_format).reshape(y.shape)
        dz = activation_grad(ctx, self.activation, dy, y, z, self)
        cm = y.shape[-1]
        train = self.trainable
        dw = self.kernel.grad_buffer().reshape(-1, cm) if train and self.kernel.trainable else None
        db = self.bias.grad_buffer() if (train and self.use_bias and self.bias.trainable) else None
        dx5 = ctx.buf("dx", x5.shape, x5.dtype) if ctx.need_dx else None
        _cv.depthwise_backward(np.ascontiguousarray(dz), x5, self.kernel.value.reshape(-1, cm), dx5, dw, db, g,
                               config._n_threads)
        if dx5 is None:
            return None
        return to_first(dx5.reshape(ctx.in_shape), self.data_format)

    def get_config(self) -> Config:
        cfg = super().get_config()
        cfg.update({
            "depth_multiplier": self.depth_multiplier,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "data_format": self.data_format,
            "dilation_rate": self.dilation_rate,
            "activation": self.activation.serialize(),
            "use_bias": self.use_bias,
            "depthwise_initializer": _serialize_initializer(self.depthwise_initializer),
            "bias_initializer": _serialize_initializer(self.bias_initializer),
            "depthwise_regularizer": _serialize_regularizer(self.depthwise_regularizer),
            "bias_regularizer": _serialize_regularizer(self.bias_regularizer),
            "activity_regularizer": _serialize_regularizer(self.activity_regularizer),
            "depthwise_constraint": None,
            "bias_constraint": None,
        })
        return cfg


class DepthwiseConv1D(_DepthwiseConv):
    """1-D depthwise convolution: each channel filtered on its own by ``depth_multiplier`` kernels.

    Args:
        kernel_size: int or tuple of 1 int, the window length.
        strides: int or tuple of 1 int (default 1).
        padding: ``"valid"`` or ``"same"``.
        depth_multiplier: output channels per input channel (default 1).
        data_format: ``"channels_last"`` (default) or ``"channels_first"``.
        dilation_rate: int or tuple of 1 int (default 1).
        activation: activation name or function (None: linear).
        use_bias: whether to add a bias vector.
        depthwise_initializer, bias_initializer: initializers (glorot_uniform, zeros).
        depthwise_regularizer, bias_regularizer, activity_regularizer: optional penalties.
        depthwise_constraint, bias_constraint: optional projections after updates.

    Input shape:
        ``(batch, steps, channels)`` (channels_last) or ``(batch, channels, steps)``.

    Output shape:
        ``(batch, new_steps, channels * depth_multiplier)`` (or channels first).

    Weights: ``kernel`` of shape ``(kernel_size, channels, depth_multiplier)``, ``bias`` of
    shape ``(channels * depth_multiplier,)``.

    Example:
        >>> import numpy as np
        >>> from fastnet.layers import DepthwiseConv1D
        >>> DepthwiseConv1D(3, depth_multiplier=2)(np.zeros((4, 10, 5))).shape
        (4, 8, 10)
    """

    def __init__(self, kernel_size: IntOrTuple, strides: IntOrTuple = 1, padding: str = "valid",
                 depth_multiplier: int = 1, data_format: str | None = None, dilation_rate: IntOrTuple = 1,
                 activation: ActivationLike | None = None, use_bias: bool = True, **kwargs) -> None:
        super().__init__(1, depth_multiplier, kernel_size, strides=strides, padding=padding,
                         data_format=data_format, dilation_rate=dilation_rate, activation=activation,
                         use_bias=use_bias, **kwargs)


class DepthwiseConv2D(_DepthwiseConv):
    """2-D depthwise convolution: each channel filtered on its own by ``depth_multiplier`` kernels.

    Args:
        kernel_size: int or tuple of 2 ints, the window.
        strides: int or tuple of 2 ints (default 1).
        padding: ``"valid"`` or ``"same"``.
        depth_multiplier: output channels per input channel (default 1).
        data_format: ``"channels_last"`` (default) or ``"channels_first"``.
        dilation_rate: int or tuple of 2 ints (default 1).
        activation, use_bias, initializers, regularizers, constraints: as DepthwiseConv1D.

    Input shape:
        ``(batch, rows, cols, channels)`` (channels_last) or ``(batch, channels, rows, cols)``.

    Output shape:
        ``(batch, new_rows, new_cols, channels * depth_multiplier)`` (or channels first).

    Weights: ``kernel`` ``(kh, kw, channels, depth_multiplier)``, ``bias``
    ``(channels * depth_multiplier,)``.

    Example:
        >>> import numpy as np
        >>> from fastnet.layers import DepthwiseConv2D
        >>> DepthwiseConv2D(3, padding="same")(np.zeros((2, 8, 8, 4))).shape
        (2, 8, 8, 4)
    """

    def __init__(self, kernel_size: IntOrTuple, strides: IntOrTuple = (1, 1), padding: str = "valid",
                 depth_multiplier: int = 1, data_format: str | None = None, dilation_rate: IntOrTuple = (1, 1),
                 activation: ActivationLike | None = None, use_bias: bool = True, **kwargs) -> None:
        super().__init__(2, depth_multiplier, kernel_size, strides=strides, padding=padding,
                         data_format=data_format, dilation_rate=dilation_rate, activation=activation,
                         use_bias=use_bias, **kwargs)


# ============================================================================ separable

class _SeparableConv(_WindowConv):
    """Depthwise convolution (no bias) followed by a pointwise (1x1) convolution with bias and
    activation; the pointwise step is one GEMM over all output pixels."""

    def __init__(self, rank: int, filters: int, kernel_size: IntOrTuple, strides: IntOrTuple = 1,
                 padding: str = "valid", data_format: str | None = None, dilation_rate: IntOrTuple = 1,
                 depth_multiplier: int = 1, activation: ActivationLike | None = None, use_bias: bool = True,
                 depthwise_initializer: InitializerLike = "glorot_uniform",
                 pointwise_initializer: InitializerLike = "glorot_uniform",
                 bias_initializer: InitializerLike = "zeros",
                 depthwise_regularizer: RegularizerLike | None = None,
                 pointwise_regularizer: RegularizerLike | None = None,
                 bias_regularizer: RegularizerLike | None = None,
                 activity_regularizer: RegularizerLike | None = None,
                 depthwise_constraint: ConstraintLike | None = None,
                 pointwise_constraint: ConstraintLike | None = None,
                 bias_constraint: ConstraintLike | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        cls = type(self).__name__
        self.filters = positive_int(filters, "filters", cls)
        self.depth_multiplier = _positive_multiplier(depth_multiplier, cls)
        self._init_window(rank, kernel_size, strides, padding, data_format, dilation_rate)
        self.activation = FusedActivation(activation)
        self.use_bias = bool(use_bias)
        self.depthwise_initializer = initializers.get(depthwise_initializer)
        self.pointwise_initializer = initializers.get(pointwise_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.depthwise_regularizer = regularizers.get(depthwise_regularizer)
        self.pointwise_regularizer = regularizers.get(pointwise_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.activity_regularizer = regularizers.get(activity_regularizer)
        self.depthwise_constraint = depthwise_constraint
        self.pointwise_constraint = pointwise_constraint
        self.bias_constraint = bias_constraint
        self.depthwise_kernel = None
        self.pointwise_kernel = None
        self.bias = None

    def build(self, input_shape: ShapeLike) -> None:
        _, channels = self._channels_or_raise(input_shape)
        cm = channels * self.depth_multiplier
        self.depthwise_kernel = self.add_weight(
            "depthwise_kernel", self.kernel_size + (channels, self.depth_multiplier),
            self.depthwise_initializer, self.depthwise_regularizer, constraint=self.depthwise_constraint)
        self.pointwise_kernel = self.add_weight(
            "pointwise_kernel", (1,) * self.rank + (cm, self.filters), self.pointwise_initializer,
            self.pointwise_regularizer, constraint=self.pointwise_constraint)
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.filters,), self.bias_initializer, self.bias_regularizer,
                                        constraint=self.bias_constraint)
        self.built = True

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape:
        spatial, _ = self._layout(input_shape)
        return self._out_shape(input_shape[0], self._output_spatial(spatial, input_shape), self.filters)

    def forward(self, ctx: CallContext, inputs: np.ndarray, training: bool = False) -> np.ndarray:
        x = to_last(inputs, self.data_format)
        spatial = tuple(x.shape[1:-1])
        out_sp = self._output_spatial(spatial, inputs.shape)
        g = self._geometry(spatial)
        x5 = _as5d(x)
        n, cm, F = x.shape[0], x.shape[-1] * self.depth_multiplier, self.filters
        dt = x.dtype
        t = ctx.buf("t", (n,) + g[3:6] + (cm,), dt)
        _cv.depthwise_forward(x5, self.depthwise_kernel.value.reshape(-1, cm), None, t, g, config._n_threads)
        rows = t.size // cm
        t2 = t.reshape(rows, cm)
        act = self.activation
        pw = self.pointwise_kernel.value.reshape(cm, F)
        b = self.bias.value if self.use_bias else None
        y = ctx.buf("y", (rows, F), dt)
        z = None
        if act.fused:
            z = ctx.buf("z", (rows, F), dt) if act.needs_input else None
            _dense.forward(t2, pw, b, z, y, act.code, act.alpha, config._n_threads)
        else:
            z = ctx.buf("z", (rows, F), dt)
            _dense.forward(t2, pw, b, None, z, 0, 0.0, config._n_threads)
            y = act.apply_python(z)
        if ctx.record:
            ctx.x5, ctx.t2, ctx.y, ctx.z, ctx.geom, ctx.in_shape = x5, t2, y, z, g, x.shape
        return to_first(y.reshape((n,) + tuple(out_sp) + (F,)), self.data_format)

    def backward(self, ctx: CallContext, dy: np.ndarray) -> np.ndarray | None:
        x5, t2, y, z, g = ctx.x5, ctx.t2, ctx.y, ctx.z, ctx.geom
        dy = np.ascontiguousarray(to_last(np.asarray(dy, dtype=y.dtype), self.data_format).reshape(y.shape))
        act = self.activation
        code = act.code
        if not act.fused:
            dy = act.gradient_python(dy, y, z, self)
            code = 0
        cm, F = t2.shape[1], self.filters
        train = self.trainable
        dpw = (self.pointwise_kernel.grad_buffer().reshape(cm, F)
               if train and self.pointwise_kernel.trainable else None)
        db = self.bias.grad_buffer() if (train and self.use_bias and self.bias.trainable) else None
        ddw = (self.depthwise_kernel.grad_buffer().reshape(-1, cm)
               if train and self.depthwise_kernel.trainable else None)
        need_t = ctx.need_dx or ddw is not None
        dt_ = ctx.buf("dt", t2.shape, t2.dtype) if need_t else None
        dz = ctx.buf("dz", y.shape, y.dtype) if code != 0 else None
        _dense.backward(dy, t2, self.pointwise_kernel.value.reshape(cm, F), y,
                        z if (act.fused and act.needs_input) else None, dz, dpw, db, dt_, code, act.alpha,
                        config._n_threads)
        if not need_t:
            return None
        dx5 = ctx.buf("dx", x5.shape, x5.dtype) if ctx.need_dx else None
        _cv.depthwise_backward(dt_.reshape((x5.shape[0],) + g[3:6] + (cm,)), x5,
                               self.depthwise_kernel.value.reshape(-1, cm), dx5, ddw, None, g,
                               config._n_threads)
        if dx5 is None:
            return None
        return to_first(dx5.reshape(ctx.in_shape), self.data_format)

    def get_config(self) -> Config:
        cfg = super().get_config()
        cfg.update({
            "depth_multiplier": self.depth_multiplier,
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "data_format": self.data_format,
            "dilation_rate": self.dilation_rate,
            "activation": self.activation.serialize(),
            "use_bias": self.use_bias,
            "depthwise_initializer": _serialize_initializer(self.depthwise_initializer),
            "pointwise_initializer": _serialize_initializer(self.pointwise_initializer),
            "bias_initializer": _serialize_initializer(self.bias_initializer),
            "depthwise_regularizer": _serialize_regularizer(self.depthwise_regularizer),
            "pointwise_regularizer": _serialize_regularizer(self.pointwise_regularizer),
            "bias_regularizer": _serialize_regularizer(self.bias_regularizer),
            "activity_regularizer": _serialize_regularizer(self.activity_regularizer),
            "depthwise_constraint": None,
            "pointwise_constraint": None,
            "bias_constraint": None,
        })
        return cfg


class SeparableConv1D(_SeparableConv):
    """1-D depthwise-separable convolution: a depthwise convolution, then a pointwise one.

    Args:
        filters: output channels.
        kernel_size: int or tuple of 1 int, the depthwise window.
        strides, padding (``"valid"``/``"same"``), data_format, dilation_rate: as Conv1D.
        depth_multiplier: depthwise output channels per input channel (default 1).
        activation, use_bias: as Conv1D.
        depthwise_initializer, pointwise_initializer, bias_initializer: initializers.
        depthwise_regularizer, pointwise_regularizer, bias_regularizer, activity_regularizer:
            optional penalties.
        depthwise_constraint, pointwise_constraint, bias_constraint: optional projections.

    Input shape:
        ``(batch, steps, channels)`` (channels_last) or ``(batch, channels, steps)``.

    Output shape:
        ``(batch, new_steps, filters)`` (or channels first).

    Weights: ``depthwise_kernel`` ``(kernel_size, channels, depth_multiplier)``,
    ``pointwise_kernel`` ``(1, channels * depth_multiplier, filters)``, ``bias`` ``(filters,)``.

    Example:
        >>> import numpy as np
        >>> from fastnet.layers import SeparableConv1D
        >>> SeparableConv1D(8, 3, padding="same")(np.zeros((2, 10, 4))).shape
        (2, 10, 8)
    """

    def __init__(self, filters: int, kernel_size: IntOrTuple, strides: IntOrTuple = 1, padding: str = "valid",
                 data_format: str | None = None, dilation_rate: IntOrTuple = 1, depth_multiplier: int = 1,
                 activation: ActivationLike | None = None, use_bias: bool = True, **kwargs) -> None:
        super().__init__(1, filters, kernel_size, strides=strides, padding=padding, data_format=data_format,
                         dilation_rate=dilation_rate, depth_multiplier=depth_multiplier,
                         activation=activation, use_bias=use_bias, **kwargs)


class SeparableConv2D(_SeparableConv):
    """2-D depthwise-separable convolution: a depthwise convolution, then a pointwise one.

    Args:
        filters: output channels.
        kernel_size: int or tuple of 2 ints, the depthwise window.
        strides, padding (``"valid"``/``"same"``), data_format, dilation_rate: as Conv2D.
        depth_multiplier: depthwise output channels per input channel (default 1).
        Other arguments as SeparableConv1D.

    Input shape:
        ``(batch, rows, cols, channels)`` (channels_last) or ``(batch, channels, rows, cols)``.

    Output shape:
        ``(batch, new_rows, new_cols, filters)`` (or channels first).

    Weights: ``depthwise_kernel`` ``(kh, kw, channels, depth_multiplier)``,
    ``pointwise_kernel`` ``(1, 1, channels * depth_multiplier, filters)``, ``bias`` ``(filters,)``.

    Example:
        >>> import numpy as np
        >>> from fastnet.layers import SeparableConv2D
        >>> SeparableConv2D(16, 3, padding="same", activation="relu")(np.zeros((2, 8, 8, 3))).shape
        (2, 8, 8, 16)
    """

    def __init__(self, filters: int, kernel_size: IntOrTuple, strides: IntOrTuple = (1, 1),
                 padding: str = "valid", data_format: str | None = None, dilation_rate: IntOrTuple = (1, 1),
                 depth_multiplier: int = 1, activation: ActivationLike | None = None, use_bias: bool = True,
                 **kwargs) -> None:
        super().__init__(2, filters, kernel_size, strides=strides, padding=padding, data_format=data_format,
                         dilation_rate=dilation_rate, depth_multiplier=depth_multiplier,
                         activation=activation, use_bias=use_bias, **kwargs)


# ============================================================================ grouped / 3-D

def grouped_conv_forward(layer, ctx, inputs):
    """Forward pass of a (possibly grouped) convolution of rank 1, 2 or 3.

    ``layer`` needs Conv1D/2D/3D's attributes: ``rank``, ``filters``, ``kernel_size``,
    ``strides``, ``padding``, ``dilation_rate``, ``data_format``, ``groups``, ``activation``
    (a FusedActivation), ``use_bias``, ``kernel`` (Keras's ``(*kernel_size, channels /
    groups, filters)``) and ``bias``. What backward needs goes on ``ctx``.
    """
    x = to_last(inputs, layer.data_format)
    spatial = tuple(x.shape[1:-1])
    out_sp = [shape_utils.conv_output_length(s, k, layer.padding, st, d)
              for s, k, st, d in zip(spatial, layer.kernel_size, layer.strides, layer.dilation_rate)]
    g = geometry3(spatial, layer.kernel_size, layer.strides, layer.padding, layer.dilation_rate)
    x5 = _as5d(x)
    n, F = x.shape[0], layer.filters
    rows = n * g[3] * g[4] * g[5]
    z = ctx.buf("z", (rows, F), x.dtype)
    _cv.grouped_forward(x5, layer.kernel.value.reshape(-1, F), layer.bias.value if layer.use_bias else None,
                        z, g, layer.groups, config._n_threads)
    y = apply_activation(ctx, layer.activation, z)
    if ctx.record:
        ctx.x5, ctx.z, ctx.y, ctx.geom, ctx.in_shape = x5, z, y, g, x.shape
    return to_first(y.reshape((n,) + tuple(out_sp) + (F,)), layer.data_format)


def grouped_conv_backward(layer, ctx, dy):
    """Backward pass matching :func:`grouped_conv_forward`: returns dx (None when
    ``ctx.need_dx`` is False) and writes the kernel and bias gradients."""
    x5, z, y, g = ctx.x5, ctx.z, ctx.y, ctx.geom
    dy = np.ascontiguousarray(to_last(np.asarray(dy, dtype=y.dtype), layer.data_format).reshape(y.shape))
    if getattr(ctx, "act_grad_in_dy", False) and layer.activation.fused:
        # A max pooling after this layer has applied the ReLU's derivative already.
        dz = dy
    else:
        dz = np.ascontiguousarray(activation_grad(ctx, layer.activation, dy, y, z, layer))
    F = layer.filters
    train = layer.trainable
    dw = layer.kernel.grad_buffer().reshape(-1, F) if train and layer.kernel.trainable else None
    db = layer.bias.grad_buffer() if (train and layer.use_bias and layer.bias.trainable) else None
    dx5 = ctx.buf("dx", x5.shape, x5.dtype) if ctx.need_dx else None
    _cv.grouped_backward(dz, x5, layer.kernel.value.reshape(-1, F), dx5, dw, db, g, layer.groups,
                         config._n_threads)
    if dx5 is None:
        return None
    return to_first(dx5.reshape(ctx.in_shape), layer.data_format)


class _GroupedConv(_WindowConv):
    """Convolution of rank 1, 2 or 3 with ``groups`` channel groups (im2col + GEMM per group).

    Args as Conv1D/Conv2D/Conv3D; ``groups`` must divide both the input channels and
    ``filters``. Kernel shape ``(*kernel_size, channels // groups, filters)``.
    """

    def __init__(self, rank: int, filters: int, kernel_size: IntOrTuple, strides: IntOrTuple = 1,
                 padding: str = "valid", data_format: str | None = None, dilation_rate: IntOrTuple = 1,
                 groups: int = 1, activation: ActivationLike | None = None, use_bias: bool = True,
                 kernel_initializer: InitializerLike = "glorot_uniform", bias_initializer: InitializerLike = "zeros",
                 kernel_regularizer: RegularizerLike | None = None, bias_regularizer: RegularizerLike | None = None,
                 activity_regularizer: RegularizerLike | None = None, kernel_constraint: ConstraintLike | None = None,
                 bias_constraint: ConstraintLike | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        cls = type(self).__name__
        self._allow_causal = rank == 1
        self.filters = positive_int(filters, "filters", cls)
        self.groups = positive_int(groups, "groups", cls)
        if self.filters % self.groups:
            raise ValueError(f"The number of filters of {cls} must be divisible by the number of groups, "
                             f"received filters={self.filters} and groups={self.groups}")
        self._init_window(rank, kernel_size, strides, padding, data_format, dilation_rate)
        self.activation = FusedActivation(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.activity_regularizer = regularizers.get(activity_regularizer)
        self.kernel_constraint = kernel_constraint
        self.bias_constraint = bias_constraint
        self.kernel = None
        self.bias = None

    def build(self, input_shape: ShapeLike) -> None:
        _, channels = self._channels_or_raise(input_shape)
        if channels % self.groups:
            raise ValueError(f'Layer "{self.name}" ({type(self).__name__}): the number of input channels '
                             f"({channels}) must be divisible by groups={self.groups}, received input shape "
                             f"{_shape_str(input_shape)}")
        self.kernel = self.add_weight("kernel", self.kernel_size + (channels // self.groups, self.filters),
                                      self.kernel_initializer, self.kernel_regularizer,
                                      constraint=self.kernel_constraint)
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.filters,), self.bias_initializer, self.bias_regularizer,
                                        constraint=self.bias_constraint)
        self.built = True

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape:
        spatial, _ = self._layout(input_shape)
        return self._out_shape(input_shape[0], self._output_spatial(spatial, input_shape), self.filters)

    def forward(self, ctx: CallContext, inputs: np.ndarray, training: bool = False) -> np.ndarray:
        self._output_spatial(tuple(to_last(inputs, self.data_format).shape[1:-1]), inputs.shape)
        return grouped_conv_forward(self, ctx, inputs)

    def backward(self, ctx: CallContext, dy: np.ndarray) -> np.ndarray | None:
        return grouped_conv_backward(self, ctx, dy)

    def get_config(self) -> Config:
        cfg = super().get_config()
        cfg.update({
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "data_format": self.data_format,
            "dilation_rate": self.dilation_rate,
            "groups": self.groups,
            "activation": self.activation.serialize(),
            "use_bias": self.use_bias,
            "kernel_initializer": _serialize_initializer(self.kernel_initializer),
            "bias_initializer": _serialize_initializer(self.bias_initializer),
            "kernel_regularizer": _serialize_regularizer(self.kernel_regularizer),
            "bias_regularizer": _serialize_regularizer(self.bias_regularizer),
            "activity_regularizer": _serialize_regularizer(self.activity_regularizer),
            "kernel_constraint": None,
            "bias_constraint": None,
        })
        return cfg


class Conv3D(_GroupedConv):
    """3-D convolution over volumes: ``(batch, d, h, w, channels) -> (batch, d', h', w', filters)``.

    Args:
        filters: output channels.
        kernel_size: int or tuple of 3 ints.
        strides: int or tuple of 3 ints (default 1).
        padding: ``"valid"`` or ``"same"``.
        data_format: ``"channels_last"`` (default) or ``"channels_first"``.
        dilation_rate: int or tuple of 3 ints (default 1).
        groups: channel groups (default 1); must divide the input channels and ``filters``.
        activation, use_bias, kernel/bias initializers, regularizers and constraints: as Conv2D.

    Input shape:
        ``(batch, depth, rows, cols, channels)`` or, channels first,
        ``(batch, channels, depth, rows, cols)``.

    Output shape:
        ``(batch, new_depth, new_rows, new_cols, filters)`` (or channels first).

    Weights: ``kernel`` ``(kd, kh, kw, channels // groups, filters)``, ``bias`` ``(filters,)``.

    Example:
        >>> import numpy as np
        >>> from fastnet.layers import Conv3D
        >>> Conv3D(4, 3)(np.zeros((2, 5, 6, 7, 2))).shape
        (2, 3, 4, 5, 4)
    """

    def __init__(self, filters: int, kernel_size: IntOrTuple, strides: IntOrTuple = (1, 1, 1),
                 padding: str = "valid", data_format: str | None = None, dilation_rate: IntOrTuple = (1, 1, 1),
                 groups: int = 1, activation: ActivationLike | None = None, use_bias: bool = True,
                 **kwargs) -> None:
        super().__init__(3, filters, kernel_size, strides=strides, padding=padding, data_format=data_format,
                         dilation_rate=dilation_rate, groups=groups, activation=activation, use_bias=use_bias,
                         **kwargs)


# ============================================================================ 3-D pooling

class _Pooling3D(_Spatial):
    rank = 3
    _mode = None

    def __init__(self, pool_size: IntOrTuple = (2, 2, 2), strides: IntOrTuple | None = None,
                 padding: str = "valid", data_format: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        cls = type(self).__name__
        self.pool_size = shape_utils.normalize_tuple(pool_size, 3, "pool_size", cls)
        self.strides = (self.pool_size if strides is None
                        else shape_utils.normalize_tuple(strides, 3, "strides", cls))
        self.padding = shape_utils.normalize_padding(padding, cls)
        self.data_format = shape_utils.normalize_data_format(data_format, cls)
        self.input_spec = InputSpec(ndim=5)

    def _output_spatial(self, spatial, input_shape):
        out = [shape_utils.pool_output_length(n, k, self.padding, s)
               for n, k, s in zip(spatial, self.pool_size, self.strides)]
        if any(o is not None and o <= 0 for o in out):
            raise ValueError(f'Layer "{self.name}" ({type(self).__name__}): the pool size {self.pool_size} is '
                             f"larger than the input's spatial size {tuple(spatial)} with padding='valid' "
                             f"(input shape {_shape_str(input_shape)})")
        return out

    def build(self, input_shape: ShapeLike) -> None:
        spatial, _ = self._layout(input_shape)
        self._output_spatial(spatial, input_shape)
        self.built = True

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape:
        spatial, channels = self._layout(input_shape)
        return self._out_shape(input_shape[0], self._output_spatial(spatial, input_shape), channels)

    def forward(self, ctx: CallContext, inputs: np.ndarray, training: bool = False) -> np.ndarray:
        x = to_last(inputs, self.data_format)
        spatial = tuple(x.shape[1:-1])
        self._output_spatial(spatial, inputs.shape)
        g = geometry3(spatial, self.pool_size, self.strides, self.padding, (1, 1, 1))
        n, c = x.shape[0], x.shape[-1]
        y = ctx.buf("y", (n,) + g[3:6] + (c,), x.dtype)
        if self._mode == "max":
            am = ctx.buf("argmax", y.shape, np.int32)
            _cv.max_pool_forward(x, y, am, g, config._n_threads)
            if ctx.record:
                ctx.argmax = am
        else:
            _cv.avg_pool_forward(x, y, g, config._n_threads)
        if ctx.record:
            ctx.geom, ctx.in_shape, ctx.dtype = g, x.shape, x.dtype
        return to_first(y, self.data_format)

    def backward(self, ctx: CallContext, dy: np.ndarray) -> np.ndarray | None:
        if not ctx.need_dx:
            return None
        g = ctx.geom
        dy = np.ascontiguousarray(to_last(np.asarray(dy, dtype=ctx.dtype), self.data_format))
        dx = ctx.buf("dx", ctx.in_shape, ctx.dtype)
        if self._mode == "max":
            _cv.max_pool_backward(dy, ctx.argmax, dx, config._n_threads)
        else:
            _cv.avg_pool_backward(dy, dx, g, config._n_threads)
        return to_first(dx, self.data_format)

    def get_config(self) -> Config:
        cfg = super().get_config()
        cfg.update({"pool_size": self.pool_size, "padding": self.padding, "strides": self.strides,
                    "data_format": self.data_format})
        return cfg


class MaxPooling3D(_Pooling3D):
    """Max over 3-D windows of a volume, per channel.

    Args:
        pool_size: int or tuple of 3 ints (default (2, 2, 2)).
        strides: int or tuple of 3 ints; None (default) uses pool_size.
        padding: ``"valid"`` or ``"same"`` (padding never wins the max).
        data_format: ``"channels_last"`` (default) or ``"channels_first"``.

    Input shape:
        ``(batch, depth, rows, cols, channels)`` or ``(batch, channels, depth, rows, cols)``.

    Output shape:
        ``(batch, pooled_depth, pooled_rows, pooled_cols, channels)`` (or channels first).

    Example:
        >>> import numpy as np
        >>> from fastnet.layers import MaxPooling3D
        >>> MaxPooling3D()(np.zeros((1, 4, 4, 4, 2))).shape
        (1, 2, 2, 2, 2)
    """

    _mode = "max"


class AveragePooling3D(_Pooling3D):
    """Mean over 3-D windows of a volume, per channel (``same`` padding not counted).

    Args:
        pool_size: int or tuple of 3 ints (default (2, 2, 2)).
        strides: int or tuple of 3 ints; None (default) uses pool_size.
        padding: ``"valid"`` or ``"same"``.
        data_format: ``"channels_last"`` (default) or ``"channels_first"``.

    Input shape:
        ``(batch, depth, rows, cols, channels)`` or ``(batch, channels, depth, rows, cols)``.

    Output shape:
        ``(batch, pooled_depth, pooled_rows, pooled_cols, channels)`` (or channels first).

    Example:
        >>> import numpy as np
        >>> from fastnet.layers import AveragePooling3D
        >>> AveragePooling3D(2, padding="same")(np.zeros((1, 3, 3, 3, 2))).shape
        (1, 2, 2, 2, 2)
    """

    _mode = "avg"


class _GlobalPooling3D(_Spatial):
    rank = 3
    _mode = None

    def __init__(self, data_format: str | None = None, keepdims: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.data_format = shape_utils.normalize_data_format(data_format, type(self).__name__)
        self.keepdims = bool(keepdims)
        self.input_spec = InputSpec(ndim=5)

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape:
        _, channels = self._layout(input_shape)
        if self.keepdims:
            return self._out_shape(input_shape[0], (1, 1, 1), channels)
        return (input_shape[0], channels)

    def forward(self, ctx: CallContext, inputs: np.ndarray, training: bool = False) -> np.ndarray:
        x = to_last(inputs, self.data_format)
        n, c = x.shape[0], x.shape[-1]
        x3 = x.reshape(n, -1, c)
        y = ctx.buf("y", (n, c), x.dtype)
        if self._mode == "max":
            am = ctx.buf("argmax", (n, c), np.int32)
            _pool.global_max_forward(x3, y, am, config._n_threads)
            if ctx.record:
                ctx.argmax = am
        else:
            _pool.global_avg_forward(x3, y, config._n_threads)
        if ctx.record:
            ctx.in_shape, ctx.dtype = x.shape, x.dtype
        if self.keepdims:
            return to_first(y.reshape(n, 1, 1, 1, c), self.data_format)
        return y

    def backward(self, ctx: CallContext, dy: np.ndarray) -> np.ndarray | None:
        if not ctx.need_dx:
            return None
        shp = ctx.in_shape
        n, c = shp[0], shp[-1]
        dy = np.ascontiguousarray(np.asarray(dy, dtype=ctx.dtype).reshape(n, c))
        dx = ctx.buf("dx", shp, ctx.dtype)
        dx3 = dx.reshape(n, -1, c)
        if self._mode == "max":
            _pool.global_max_backward(dy, ctx.argmax, dx3, config._n_threads)
        else:
            _pool.global_avg_backward(dy, dx3, config._n_threads)
        return to_first(dx, self.data_format)

    def get_config(self) -> Config:
        cfg = super().get_config()
        cfg.update({"data_format": self.data_format, "keepdims": self.keepdims})
        return cfg


class GlobalAveragePooling3D(_GlobalPooling3D):
    """Mean over the three spatial axes of a volume, per channel.

    Args:
        data_format: ``"channels_last"`` (default) or ``"channels_first"``.
        keepdims: keep the spatial axes with size 1 (default False).

    Input shape:
        ``(batch, depth, rows, cols, channels)`` or ``(batch, channels, depth, rows, cols)``.

    Output shape:
        ``(batch, channels)``; with keepdims ``(batch, 1, 1, 1, channels)`` (or channels first).

    Example:
        >>> import numpy as np
        >>> from fastnet.layers import GlobalAveragePooling3D
        >>> GlobalAveragePooling3D()(np.ones((2, 3, 4, 5, 6))).shape
        (2, 6)
    """

    _mode = "avg"


class GlobalMaxPooling3D(_GlobalPooling3D):
    """Max over the three spatial axes of a volume, per channel.

    Args:
        data_format: ``"channels_last"`` (default) or ``"channels_first"``.
        keepdims: keep the spatial axes with size 1 (default False).

    Input shape:
        ``(batch, depth, rows, cols, channels)`` or ``(batch, channels, depth, rows, cols)``.

    Output shape:
        ``(batch, channels)``; with keepdims ``(batch, 1, 1, 1, channels)`` (or channels first).

    Example:
        >>> import numpy as np
        >>> from fastnet.layers import GlobalMaxPooling3D
        >>> GlobalMaxPooling3D(keepdims=True)(np.ones((2, 3, 4, 5, 6))).shape
        (2, 1, 1, 1, 6)
    """

    _mode = "max"
