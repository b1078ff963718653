"""Convolution layers: Conv1D, Conv2D, Conv1DTranspose, Conv2DTranspose.

All of them share :class:`BaseConv` (a ``rank`` of 1 or 2); the kernels work on
channels-last arrays, so ``data_format="channels_first"`` inputs are transposed
on the way in and the outputs on the way out. Output sizes and padding come from
:mod:`fastnet.utils.shape_utils`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from fastnet import config, initializers, regularizers
from fastnet._kernels import conv as _conv
from fastnet._kernels import conv_transpose as _convt
from fastnet.layers.base import CallContext, InputSpec, KerasTensor, Layer, _shape_str
from fastnet.layers.core import FusedActivation, _serialize_initializer, _serialize_regularizer, positive_int
from fastnet.utils import shape_utils

if TYPE_CHECKING:
    from typing import Any

    from fastnet._typing import (
        ActivationLike,
        ArrayLike,
        Config,
        ConstraintLike,
        InitializerLike,
        IntOrTuple,
        RegularizerLike,
        Shape,
        ShapeLike,
    )

__all__ = ["BaseConv", "Conv1D", "Conv2D", "Conv1DTranspose", "Conv2DTranspose"]

_AXES_DESC = {
    (1, "channels_last"): "(batch, steps, channels)",
    (1, "channels_first"): "(batch, channels, steps)",
    (2, "channels_last"): "(batch, rows, cols, channels)",
    (2, "channels_first"): "(batch, channels, rows, cols)",
}


def _to_last(x, data_format):
    if data_format == "channels_first":
        return np.ascontiguousarray(np.moveaxis(x, 1, -1))
    return x


def _to_first(x, data_format):
    if data_format == "channels_first":
        return np.ascontiguousarray(np.moveaxis(x, -1, 1))
    return x


class _SpatialLayer(Layer):
    """Shared by convolution and pooling layers: rank, data format, input checks."""

    rank = None

    def _spatial_layout(self, input_shape):
        """(spatial dims, channels) of an input shape, checking its rank."""
        input_shape = tuple(input_shape)
        want = self.rank + 2
        if len(input_shape) != want:
            raise ValueError(
                f'Layer "{self.name}" ({type(self).__name__}) expects input of rank {want} '
                f"{_AXES_DESC[(self.rank, self.data_format)]}, received input with shape "
                f"{_shape_str(input_shape)}")
        if self.data_format == "channels_last":
            return input_shape[1:-1], input_shape[-1]
        return input_shape[2:], input_shape[1]

    def _check_spec(self, shape):
        self._spatial_layout(shape)
        super()._check_spec(shape)

    def __call__(self, inputs: ArrayLike, training: bool = False, **kwargs) -> Any:
        # Checked here too, so that the message shows the batch size actually received.
        if not self.built:
            self._spatial_layout(inputs.shape if isinstance(inputs, KerasTensor) else np.shape(inputs))
        return super().__call__(inputs, training=training, **kwargs)

    def _out_shape(self, batch, spatial, channels):
        if self.data_format == "channels_last":
            return (batch,) + tuple(spatial) + (channels,)
        return (batch, channels) + tuple(spatial)

    def _as4d(self, x):
        """Channels-last (n, h, w, c) view of a rank-1 or rank-2 spatial input."""
        if self.rank == 1:
            return x.reshape(x.shape[0], 1, x.shape[1], x.shape[2])
        return x


class BaseConv(_SpatialLayer):
    """N-D convolution (cross-correlation) with bias and activation (rank 1 or 2).

    Args:
        rank: 1 or 2.
        filters: the number of output channels.
        kernel_size: int or tuple of ``rank`` ints, the window.
        strides: int or tuple of ``rank`` ints (default 1). ``strides > 1`` cannot be
            combined with ``dilation_rate > 1``.
        padding: ``"valid"`` (none), ``"same"`` (output size ``ceil(input / stride)``,
            the extra padding row/column at the end) or, for Conv1D, ``"causal"``.
        data_format: ``"channels_last"`` (default) or ``"channels_first"``.
        dilation_rate: int or tuple of ``rank`` ints (default 1).
        groups: split the input channels (and the filters) into this many groups, each
            convolved with its own filters (1: an ordinary convolution).
        activation: activation name or function (None: linear), fused into the kernel.
        use_bias: whether to add a bias vector.
        kernel_initializer, bias_initializer: initializers (glorot_uniform, zeros).
        kernel_regularizer, bias_regularizer: optional penalties added to the loss.
        kernel_constraint, bias_constraint: optional projections applied after updates.
    """

    def __init__(self, rank: int, filters: int, kernel_size: IntOrTuple, strides: IntOrTuple = 1,
                 padding: str = "valid", data_format: str | None = None, dilation_rate: IntOrTuple = 1, groups: int = 1,
                 activation: ActivationLike | None = None, use_bias: bool = True,
                 kernel_initializer: InitializerLike = "glorot_uniform", bias_initializer: InitializerLike = "zeros",
                 kernel_regularizer: RegularizerLike | None = None, bias_regularizer: RegularizerLike | None = None,
                 activity_regularizer: RegularizerLike | None = None, kernel_constraint: ConstraintLike | None = None,
                 bias_constraint: ConstraintLike | None = None, lora_rank: int | None = None,
                 lora_alpha: float | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        cls = type(self).__name__
        self.rank = rank
        self.filters = positive_int(filters, "filters", cls)
        self.kernel_size = shape_utils.normalize_tuple(kernel_size, rank, "kernel_size", cls)
        self.strides = shape_utils.normalize_tuple(strides, rank, "strides", cls)
        self.dilation_rate = shape_utils.normalize_tuple(dilation_rate, rank, "dilation_rate", cls)
        self.padding = shape_utils.normalize_padding(padding, cls, allow_causal=self._allow_causal)
        self.data_format = shape_utils.normalize_data_format(data_format, cls)
        if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
            raise ValueError(f"The number of groups of {cls} must be a positive integer, "
                             f"received groups={groups!r}")
        if filters % groups:
            raise ValueError(f"The number of filters of {cls} must be divisible by groups, received "
                             f"filters={filters}, groups={groups}")
        self.groups = int(groups)
        if lora_rank:
            raise NotImplementedError(f"{cls} does not support LoRA, received lora_rank={lora_rank}")
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(f"{cls}: `strides > 1` is not supported together with "
                             f"`dilation_rate > 1`, received strides={self.strides} and "
                             f"dilation_rate={self.dilation_rate}")
        self.activation = FusedActivation(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.activity_regularizer = regularizers.get(activity_regularizer)
        self.kernel_constraint = kernel_constraint
        self.bias_constraint = bias_constraint
        self.input_spec = InputSpec(ndim=rank + 2)
        self.kernel = None
        self.bias = None
        self._geoms = {}

    _allow_causal = False

    # ------------------------------------------------------------------ shapes
    def _kernel_shape(self, in_channels):
        if in_channels % self.groups:
            raise ValueError(f'Layer "{self.name}" ({type(self).__name__}): its input has {in_channels} channels, '
                             f"which groups={self.groups} does not divide")
        return self.kernel_size + (in_channels // self.groups, self.filters)

    def _geometry(self, spatial):
        g = self._geoms.get(spatial)
        if g is None:
            g = self._make_geometry(spatial)
            if len(self._geoms) > 16:
                self._geoms.clear()
            self._geoms[spatial] = g
        return g

    def _make_geometry(self, spatial):
        return shape_utils.conv_geometry(spatial, self.kernel_size, self.strides, self.padding,
                                         self.dilation_rate)

    def _output_spatial(self, spatial, input_shape):
        out = [shape_utils.conv_output_length(n, k, self.padding, s, d)
               for n, k, s, d in zip(spatial, self.kernel_size, self.strides, self.dilation_rate)]
        if any(o is not None and o <= 0 for o in out):
            eff = tuple(shape_utils.effective_kernel(k, d)
                        for k, d in zip(self.kernel_size, self.dilation_rate))
            dil = f" (dilated to {eff})" if eff != self.kernel_size else ""
            raise ValueError(
                f'Layer "{self.name}" ({type(self).__name__}): the kernel size '
                f"{self.kernel_size}{dil} is larger than the input's spatial size "
                f"{tuple(spatial)} with padding='valid' (input shape {_shape_str(input_shape)})")
        return out

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape:
        spatial, _ = self._spatial_layout(input_shape)
        return self._out_shape(input_shape[0], self._output_spatial(spatial, input_shape),
                               self.filters)

    # ------------------------------------------------------------------ build
    def build(self, input_shape: ShapeLike) -> None:
        spatial, channels = self._spatial_layout(input_shape)
        if channels is None:
            raise ValueError(f'Layer "{self.name}" ({type(self).__name__}) needs the channel '
                             f"dimension of its input to be defined, received input shape "
                             f"{_shape_str(input_shape)}")
        self._output_spatial(spatial, input_shape)
        self.kernel = self.add_weight("kernel", self._kernel_shape(channels),
                                      self.kernel_initializer, self.kernel_regularizer,
                                      constraint=self.kernel_constraint)
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.filters,), self.bias_initializer,
                                        self.bias_regularizer, constraint=self.bias_constraint)
        axis = -1 if self.data_format == "channels_last" else 1
        self.input_spec = InputSpec(ndim=self.rank + 2, axes={axis: channels})
        self.built = True

    # ------------------------------------------------------------------ compute
    def forward(self, ctx: CallContext, inputs: ArrayLike, training: bool = False) -> np.ndarray:
        if self.groups > 1:
            from fastnet.layers.convolutional_variants import grouped_conv_forward

            x = _to_last(inputs, self.data_format)
            self._output_spatial(x.shape[1:-1], inputs.shape)
            ctx.grouped = True
            return grouped_conv_forward(self, ctx, inputs)
        x = _to_last(inputs, self.data_format)
        spatial = x.shape[1:-1]
        out_spatial = self._output_spatial(spatial, inputs.shape)
        g = self._geometry(tuple(spatial))
        x4 = self._as4d(x)
        n, F = x.shape[0], self.filters
        rows = n * g.oh * g.ow
        act = self.activation
        dt = x.dtype
        y = ctx.buf("y", (rows, F), dt)
        z = ctx.buf("z", (rows, F), dt) if (act.fused and act.needs_input) else None
        w = self.kernel.value.reshape(-1, F)
        b = self.bias.value if self.use_bias else None
        if act.fused:
            _conv.forward(x4, w, b, z, y, g, act.code, act.alpha, config._n_threads)
        else:
            z = ctx.buf("z", (rows, F), dt)
            _conv.forward(x4, w, b, None, z, g, 0, 0.0, config._n_threads)
            y = act.apply_python(z)
        if ctx.record:
            ctx.x4, ctx.y, ctx.z, ctx.g = x4, y, z, g
        out = y.reshape((n,) + tuple(out_spatial) + (F,))
        return _to_first(out, self.data_format)

    def _upstream(self, ctx, dy):
        """The recorded forward state, and the upstream gradient in the kernels' layout
        (channels last, one row per output position). A non-fused activation's
        derivative is applied here; the returned code says which one the kernel still
        applies (0: none, already in dy)."""
        x4, y, z, g = ctx.x4, ctx.y, ctx.z, ctx.g
        dy = _to_last(np.asarray(dy), self.data_format)
        dy = np.ascontiguousarray(dy, dtype=y.dtype).reshape(y.shape)
        act = self.activation
        code = act.code
        if not act.fused:
            dy = act.gradient_python(dy, y, z, self)
            code = 0
        elif ctx.act_grad_in_dy:
            code = 0
        return x4, y, z, g, dy, code

    def _input_grad(self, dx4):
        """The kernels' (N, H, W, C) input gradient in the layer's input shape and layout."""
        if dx4 is None:
            return None
        dx = dx4.reshape((dx4.shape[0],) + ((dx4.shape[2],) if self.rank == 1 else dx4.shape[1:3])
                         + (dx4.shape[3],))
        return _to_first(dx, self.data_format)

    def backward(self, ctx: CallContext, dy: np.ndarray) -> np.ndarray | None:
        if self.groups > 1:
            from fastnet.layers.convolutional_variants import grouped_conv_backward

            return grouped_conv_backward(self, ctx, dy)
        need_dx = ctx.need_dx
        x4, y, z, g, dy, code = self._upstream(ctx, dy)
        act = self.activation
        train = self.trainable
        F = self.filters
        dw = (self.kernel.grad_buffer().reshape(-1, F)
              if train and self.kernel.trainable else None)
        db = self.bias.grad_buffer() if (train and self.use_bias and self.bias.trainable) else None
        dx4 = ctx.buf("dx", x4.shape, x4.dtype) if need_dx else None
        _conv.backward(dy, x4, self.kernel.value.reshape(-1, F), y, z if act.fused else None,
                       dw, db, dx4, g, code, act.alpha, config._n_threads)
        return self._input_grad(dx4)

    # ------------------------------------------------------------------ config
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


class Conv1D(BaseConv):
    """1-D convolution over steps: ``(batch, steps, channels) -> (batch, new_steps, filters)``.

    Arguments as :class:`BaseConv`; ``padding`` may also be ``"causal"`` (left
    padding of ``dilation_rate * (kernel_size - 1)``: output t sees inputs <= t).
    Kernel shape ``(kernel_size, channels, filters)``.

    Example:
        >>> import numpy as np
        >>> from fastnet.layers import Conv1D
        >>> Conv1D(32, 3, padding="valid")(np.zeros((4, 10, 128))).shape
        (4, 8, 32)
    """

    _allow_causal = True

    def __init__(self, filters: int, kernel_size: IntOrTuple, strides: IntOrTuple = 1, padding: str = "valid",
                 data_format: str | None = None, dilation_rate: IntOrTuple = 1, groups: int = 1,
                 activation: ActivationLike | None = None, use_bias: bool = True,
                 kernel_initializer: InitializerLike = "glorot_uniform", bias_initializer: InitializerLike = "zeros",
                 kernel_regularizer: RegularizerLike | None = None, bias_regularizer: RegularizerLike | None = None,
                 activity_regularizer: RegularizerLike | None = None, kernel_constraint: ConstraintLike | None = None,
                 bias_constraint: ConstraintLike | None = None, **kwargs) -> None:
        super().__init__(1, filters, kernel_size, strides=strides, padding=padding,
                         data_format=data_format, dilation_rate=dilation_rate, groups=groups,
                         activation=activation, use_bias=use_bias,
                         kernel_initializer=kernel_initializer, bias_initializer=bias_initializer,
                         kernel_regularizer=kernel_regularizer, bias_regularizer=bias_regularizer,
                         activity_regularizer=activity_regularizer,
                         kernel_constraint=kernel_constraint, bias_constraint=bias_constraint,
                         **kwargs)


class Conv2D(BaseConv):
    """2-D convolution: ``(batch, rows, cols, channels) -> (batch, new_rows, new_cols, filters)``.

    Arguments as :class:`BaseConv`. Kernel shape ``(kh, kw, channels, filters)``.

    Example:
        >>> import numpy as np
        >>> from fastnet.layers import Conv2D
        >>> Conv2D(32, 3, activation="relu")(np.zeros((2, 28, 28, 1))).shape
        (2, 26, 26, 32)
    """

    def __init__(self, filters: int, kernel_size: IntOrTuple, strides: IntOrTuple = (1, 1), padding: str = "valid",
                 data_format: str | None = None, dilation_rate: IntOrTuple = (1, 1), groups: int = 1,
                 activation: ActivationLike | None = None, use_bias: bool = True,
                 kernel_initializer: InitializerLike = "glorot_uniform", bias_initializer: InitializerLike = "zeros",
                 kernel_regularizer: RegularizerLike | None = None, bias_regularizer: RegularizerLike | None = None,
                 activity_regularizer: RegularizerLike | None = None, kernel_constraint: ConstraintLike | None = None,
                 bias_constraint: ConstraintLike | None = None, **kwargs) -> None:
        super().__init__(2, filters, kernel_size, strides=strides, padding=padding,
                         data_format=data_format, dilation_rate=dilation_rate, groups=groups,
                         activation=activation, use_bias=use_bias,
                         kernel_initializer=kernel_initializer, bias_initializer=bias_initializer,
                         kernel_regularizer=kernel_regularizer, bias_regularizer=bias_regularizer,
                         activity_regularizer=activity_regularizer,
                         kernel_constraint=kernel_constraint, bias_constraint=bias_constraint,
                         **kwargs)


class BaseConvTranspose(BaseConv):
    """Transposed convolution (the input gradient of a convolution), rank 1 or 2.

    Args (besides :class:`BaseConv`'s, without groups):
        output_padding: int or tuple of ``rank`` ints, extra rows/cols at the end of
            the output (each smaller than its stride); None lets Keras's rule pick
            the output size: ``input * stride`` for ``same``, ``(input - 1) * stride +
            max(kernel, stride)`` for ``valid``.

    Kernel shape ``(*kernel_size, filters, channels)``.
    """

    def __init__(self, rank: int, filters: int, kernel_size: IntOrTuple, strides: IntOrTuple = 1,
                 padding: str = "valid", output_padding: IntOrTuple | None = None, data_format: str | None = None,
                 dilation_rate: IntOrTuple = 1, activation: ActivationLike | None = None, use_bias: bool = True,
                 kernel_initializer: InitializerLike = "glorot_uniform", bias_initializer: InitializerLike = "zeros",
                 kernel_regularizer: RegularizerLike | None = None, bias_regularizer: RegularizerLike | None = None,
                 activity_regularizer: RegularizerLike | None = None, kernel_constraint: ConstraintLike | None = None,
                 bias_constraint: ConstraintLike | None = None, **kwargs) -> None:
        super().__init__(rank, filters, kernel_size, strides=strides, padding=padding,
                         data_format=data_format, dilation_rate=dilation_rate,
                         activation=activation, use_bias=use_bias,
                         kernel_initializer=kernel_initializer, bias_initializer=bias_initializer,
                         kernel_regularizer=kernel_regularizer, bias_regularizer=bias_regularizer,
                         activity_regularizer=activity_regularizer,
                         kernel_constraint=kernel_constraint, bias_constraint=bias_constraint,
                         **kwargs)
        cls = type(self).__name__
        if output_padding is None:
            self.output_padding = None
        else:
            self.output_padding = shape_utils.normalize_tuple(output_padding, rank,
                                                              "output_padding", cls,
                                                              allow_zero=True)
            for op, s in zip(self.output_padding, self.strides):
                if op >= s:
                    raise ValueError(f"{cls}: `output_padding` must be smaller than `strides` "
                                     f"along every axis, received output_padding="
                                     f"{self.output_padding} and strides={self.strides}")

    def _kernel_shape(self, in_channels):
        return self.kernel_size + (self.filters, in_channels)

    def _make_geometry(self, spatial):
        return shape_utils.conv_transpose_geometry(spatial, self.kernel_size, self.strides,
                                                   self.padding, self.output_padding,
                                                   self.dilation_rate)

    def _output_spatial(self, spatial, input_shape):
        ops_ = self.output_padding or (None,) * self.rank
        return [shape_utils.conv_transpose_output_length(n, k, self.padding, op, s, d)
                for n, k, op, s, d in zip(spatial, self.kernel_size, ops_, self.strides,
                                          self.dilation_rate)]

    def forward(self, ctx: CallContext, inputs: ArrayLike, training: bool = False) -> np.ndarray:
        x = _to_last(inputs, self.data_format)
        spatial = tuple(x.shape[1:-1])
        out_spatial = self._output_spatial(spatial, inputs.shape)
        g = self._geometry(spatial)
        x4 = self._as4d(x)
        n, F, C = x.shape[0], self.filters, x.shape[-1]
        act = self.activation
        dt = x.dtype
        shape4 = (n, g.h, g.w, F)
        y = ctx.buf("y", shape4, dt)
        z = ctx.buf("z", shape4, dt) if (act.fused and act.needs_input) else None
        w = self.kernel.value.reshape(-1, C)
        b = self.bias.value if self.use_bias else None
        if act.fused:
            _convt.forward(x4, w, b, z, y, g, act.code, act.alpha, config._n_threads)
        else:
            z = ctx.buf("z", shape4, dt)
            _convt.forward(x4, w, b, None, z, g, 0, 0.0, config._n_threads)
            y = act.apply_python(z)
        if ctx.record:
            ctx.x4, ctx.y, ctx.z, ctx.g = x4, y, z, g
        out = y.reshape((n,) + tuple(out_spatial) + (F,))
        return _to_first(out, self.data_format)

    def backward(self, ctx: CallContext, dy: np.ndarray) -> np.ndarray | None:
        need_dx = ctx.need_dx
        x4, y, z, g, dy, code = self._upstream(ctx, dy)
        act = self.activation
        train = self.trainable
        C = x4.shape[3]
        dw = (self.kernel.grad_buffer().reshape(-1, C)
              if train and self.kernel.trainable else None)
        db = self.bias.grad_buffer() if (train and self.use_bias and self.bias.trainable) else None
        dx4 = ctx.buf("dx", x4.shape, x4.dtype) if need_dx else None
        dz = ctx.buf("dz", y.shape, y.dtype) if code != 0 else None
        _convt.backward(dy, x4, self.kernel.value.reshape(-1, C), y, z if act.fused else None,
                        dz, dw, db, dx4, g, code, act.alpha, config._n_threads)
        return self._input_grad(dx4)

    def get_config(self) -> Config:
        cfg = super().get_config()
        del cfg["groups"]
        cfg["output_padding"] = self.output_padding
        return cfg


class Conv1DTranspose(BaseConvTranspose):
    """1-D transposed convolution: ``(batch, steps, channels) -> (batch, new_steps, filters)``.

    Kernel shape ``(kernel_size, filters, channels)``; arguments as
    :class:`BaseConvTranspose`.
    """

    def __init__(self, filters: int, kernel_size: IntOrTuple, strides: IntOrTuple = 1, padding: str = "valid",
                 output_padding: IntOrTuple | None = None, data_format: str | None = None,
                 dilation_rate: IntOrTuple = 1, activation: ActivationLike | None = None, use_bias: bool = True,
                 kernel_initializer: InitializerLike = "glorot_uniform", bias_initializer: InitializerLike = "zeros",
                 kernel_regularizer: RegularizerLike | None = None, bias_regularizer: RegularizerLike | None = None,
                 activity_regularizer: RegularizerLike | None = None, kernel_constraint: ConstraintLike | None = None,
                 bias_constraint: ConstraintLike | None = None, **kwargs) -> None:
        super().__init__(1, filters, kernel_size, strides=strides, padding=padding,
                         output_padding=output_padding, data_format=data_format,
                         dilation_rate=dilation_rate, activation=activation, use_bias=use_bias,
                         kernel_initializer=kernel_initializer, bias_initializer=bias_initializer,
                         kernel_regularizer=kernel_regularizer, bias_regularizer=bias_regularizer,
                         activity_regularizer=activity_regularizer,
                         kernel_constraint=kernel_constraint, bias_constraint=bias_constraint,
                         **kwargs)


class Conv2DTranspose(BaseConvTranspose):
    """2-D transposed convolution: ``(batch, rows, cols, channels) -> (batch, new_rows,
    new_cols, filters)``, e.g. to upsample in a decoder.

    Kernel shape ``(kh, kw, filters, channels)``; arguments as :class:`BaseConvTranspose`.

    Example:
        >>> import numpy as np
        >>> from fastnet.layers import Conv2DTranspose
        >>> Conv2DTranspose(12, (3, 3), strides=2, padding="valid")(np.zeros((32, 2, 2, 1))).shape
        (32, 5, 5, 12)
    """

    def __init__(self, filters: int, kernel_size: IntOrTuple, strides: IntOrTuple = (1, 1), padding: str = "valid",
                 output_padding: IntOrTuple | None = None, data_format: str | None = None,
                 dilation_rate: IntOrTuple = (1, 1), activation: ActivationLike | None = None, use_bias: bool = True,
                 kernel_initializer: InitializerLike = "glorot_uniform", bias_initializer: InitializerLike = "zeros",
                 kernel_regularizer: RegularizerLike | None = None, bias_regularizer: RegularizerLike | None = None,
                 activity_regularizer: RegularizerLike | None = None, kernel_constraint: ConstraintLike | None = None,
                 bias_constraint: ConstraintLike | None = None, **kwargs) -> None:
        super().__init__(2, filters, kernel_size, strides=strides, padding=padding,
                         output_padding=output_padding, data_format=data_format,
                         dilation_rate=dilation_rate, activation=activation, use_bias=use_bias,
                         kernel_initializer=kernel_initializer, bias_initializer=bias_initializer,
                         kernel_regularizer=kernel_regularizer, bias_regularizer=bias_regularizer,
                         activity_regularizer=activity_regularizer,
                         kernel_constraint=kernel_constraint, bias_constraint=bias_constraint,
                         **kwargs)
