"""Activation layers with parameters: ReLU, LeakyReLU, PReLU, ELU, Softmax.

The plain forms run the compiled activation kernels; ReLU with a ceiling or a
threshold follows Keras's formula in numpy.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from fastnet import activations, config, initializers, regularizers
from fastnet._kernels import _activations as _act_kernels
from fastnet.layers.base import CallContext, Layer
from fastnet.layers.core import _serialize_initializer, _serialize_regularizer

if TYPE_CHECKING:
    from typing import Any

    from fastnet._typing import ArrayLike, Config, ConstraintLike, InitializerLike, RegularizerLike, ShapeLike

__all__ = ["ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax"]


def _rows(x):
    return x.reshape(-1, x.shape[-1]) if x.ndim else x.reshape(1, 1)


class _KernelActivation(Layer):
    """An activation computed by the compiled kernel ``code`` with parameter ``alpha``."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.supports_masking = True

    def _kernel_forward(self, ctx, x, code, alpha):
        y = ctx.buf("y", x.shape, x.dtype)
        if x.size:
            _act_kernels.forward(code, _rows(x), _rows(y), alpha, config._n_threads)
        if ctx.record:
            ctx.x, ctx.y = x, y
        return y

    def _kernel_backward(self, ctx, dy, code, alpha, needs_input=False):
        if not ctx.need_dx:
            return None
        y = ctx.y
        dy = np.ascontiguousarray(dy, dtype=y.dtype)
        dx = ctx.buf("dx", y.shape, y.dtype)
        if y.size:
            _act_kernels.backward(code, _rows(dy), _rows(y), _rows(ctx.x) if needs_input else None, _rows(dx),
                                  alpha, config._n_threads)
        return dx


class ReLU(_KernelActivation):
    """Rectified linear unit with Keras's options:
    ``max_value`` where ``x >= max_value``, ``x`` where ``threshold < x < max_value``, and
    ``negative_slope * (x - threshold)`` below the threshold.

    Args:
        max_value: ceiling of the output (None: none).
        negative_slope: slope below the threshold (0).
        threshold: the threshold below which values are damped (0).
    """

    def __init__(self, max_value: float | None = None, negative_slope: float = 0.0, threshold: float = 0.0,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if max_value is not None and max_value < 0:
            raise ValueError(f"ReLU max_value must be non-negative or None, received max_value={max_value}")
        if negative_slope is None or negative_slope < 0:
            raise ValueError(f"ReLU negative_slope must be non-negative, received negative_slope={negative_slope}")
        if threshold is None or threshold < 0:
            raise ValueError(f"ReLU threshold must be non-negative, received threshold={threshold}")
        self.max_value = None if max_value is None else float(max_value)
        self.negative_slope = float(negative_slope)
        self.threshold = float(threshold)

    def _plain(self):
        return self.threshold == 0 and self.max_value is None

    def _is_plain_relu(self):
        """max(x, 0) exactly: what a graph fusion may apply in the layer before."""
        return self._plain() and self.negative_slope == 0

    def forward(self, ctx: CallContext, inputs: ArrayLike, training: bool = False, **kwargs) -> np.ndarray:
        if ctx.relu_done:  # the layer before applied it (a graph fusion)
            return inputs
        x = inputs
        if self._plain():
            if self.negative_slope == 0:
                return self._kernel_forward(ctx, x, activations.relu.code, 0.0)
            return self._kernel_forward(ctx, x, activations.leaky_relu.code, self.negative_slope)
        dt = x.dtype.type
        t = dt(self.threshold)
        # Keras's formula; every step keeps NaN as NaN.
        pre = x * (x > t) if t != 0 else np.maximum(x, dt(0))
        y = np.clip(pre, dt(0), dt(self.max_value)) if self.max_value is not None else pre
        if self.negative_slope:
            y = y - dt(self.negative_slope) * np.maximum(t - x, dt(0))
        y = np.ascontiguousarray(y, dtype=x.dtype)
        if ctx.record:
            ctx.x, ctx.pre = x, pre
        return y

    def backward(self, ctx: CallContext, dy: np.ndarray) -> np.ndarray | None:
        if ctx.relu_done:
            return dy if ctx.need_dx else None
        if self._plain():
            if self.negative_slope == 0:
                return self._kernel_backward(ctx, dy, activations.relu.code, 0.0)
            return self._kernel_backward(ctx, dy, activations.leaky_relu.code, self.negative_slope, True)
        if not ctx.need_dx:
            return None
        x, pre = ctx.x, ctx.pre
        dt = x.dtype.type
        t = dt(self.threshold)
        g = (x > t) if t != 0 else (x > 0)
        if self.max_value is not None:
            g = g & (pre >= 0) & (pre <= dt(self.max_value))
        g = g.astype(x.dtype)
        if self.negative_slope:
            g += dt(self.negative_slope) * (x < t)
        return np.ascontiguousarray(np.asarray(dy) * g, dtype=x.dtype)

    def get_config(self) -> Config:
        cfg = super().get_config()
        cfg.update({"max_value": self.max_value, "negative_slope": self.negative_slope, "threshold": self.threshold})
        return cfg


class LeakyReLU(_KernelActivation):
    """``x`` for ``x >= 0``, ``negative_slope * x`` below (Keras's default slope 0.3).

    Args:
        negative_slope: the slope below zero (``alpha`` is accepted as its old name).
    """

    def __init__(self, negative_slope: float = 0.3, **kwargs) -> None:
        if "alpha" in kwargs:
            negative_slope = kwargs.pop("alpha")
        super().__init__(**kwargs)
        if negative_slope is None or negative_slope < 0:
            raise ValueError(f"LeakyReLU negative_slope must be non-negative, received {negative_slope}")
        self.negative_slope = float(negative_slope)

    def forward(self, ctx: CallContext, inputs: ArrayLike, training: bool = False, **kwargs) -> np.ndarray:
        return self._kernel_forward(ctx, inputs, activations.leaky_relu.code, self.negative_slope)

    def backward(self, ctx: CallContext, dy: np.ndarray) -> np.ndarray | None:
        return self._kernel_backward(ctx, dy, activations.leaky_relu.code, self.negative_slope, True)

    def get_config(self) -> Config:
        cfg = super().get_config()
        cfg["negative_slope"] = self.negative_slope
        return cfg


class ELU(_KernelActivation):
    """``x`` for ``x > 0``, ``alpha * (exp(x) - 1)`` below.

    Args:
        alpha: the scale of the negative part (1.0).
    """

    def __init__(self, alpha: float = 1.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.alpha = float(alpha)

    def forward(self, ctx: CallContext, inputs: ArrayLike, training: bool = False, **kwargs) -> np.ndarray:
        return self._kernel_forward(ctx, inputs, activations.elu.code, self.alpha)

    def backward(self, ctx: CallContext, dy: np.ndarray) -> np.ndarray | None:
        return self._kernel_backward(ctx, dy, activations.elu.code, self.alpha)

    def get_config(self) -> Config:
        cfg = super().get_config()
        cfg["alpha"] = self.alpha
        return cfg


class Softmax(_KernelActivation):
    """Softmax over ``axis``; masked positions (``mask`` False) get probability 0.

    Args:
        axis: the axis (or list of axes) normalised (-1).
    """

    def __init__(self, axis: int | list[int] = -1, **kwargs) -> None:
        super().__init__(**kwargs)
        self.axis = axis

    def _axes(self, ndim):
        axes = self.axis if isinstance(self.axis, (list, tuple)) else [self.axis]
        return sorted(a % ndim for a in axes)

    def forward(self, ctx: CallContext, inputs: ArrayLike, training: bool = False, mask: Any = None,
                **kwargs) -> np.ndarray:
        x = inputs
        axes = self._axes(x.ndim)
        if mask is not None:
            # As Keras: masked positions get a large negative logit before the softmax.
            x = x + (1.0 - np.asarray(mask, dtype=x.dtype)) * x.dtype.type(-1e9)
        if axes == [x.ndim - 1]:
            ctx.on_kernel = True
            return self._kernel_forward(ctx, np.ascontiguousarray(x), activations.softmax.code, 0.0)
        ctx.on_kernel = False
        ax = tuple(axes)
        m = np.max(x, axis=ax, keepdims=True)
        e = np.exp(x - m)
        y = (e / np.sum(e, axis=ax, keepdims=True)).astype(x.dtype, copy=False)
        if ctx.record:
            ctx.x, ctx.y, ctx.axes = x, y, ax
        return y

    def backward(self, ctx: CallContext, dy: np.ndarray) -> np.ndarray | None:
        if ctx.on_kernel:
            return self._kernel_backward(ctx, dy, activations.softmax.code, 0.0)
        if not ctx.need_dx:
            return None
        y = ctx.y
        dy = np.asarray(dy, dtype=y.dtype)
        return (y * (dy - np.sum(dy * y, axis=ctx.axes, keepdims=True))).astype(y.dtype, copy=False)

    def get_config(self) -> Config:
        cfg = super().get_config()
        cfg["axis"] = self.axis
        return cfg


class PReLU(Layer):
    """Parametric ReLU: ``x`` for ``x >= 0``, ``alpha * x`` below, with ``alpha`` learned
    per element (or shared along ``shared_axes``).

    Args:
        alpha_initializer: initializer of alpha ("zeros").
        alpha_regularizer, alpha_constraint: optional penalty and constraint.
        shared_axes: axes (counting the batch axis as 0) along which alpha is shared,
            e.g. ``[1, 2]`` for one alpha per channel of an image.
    """

    def __init__(self, alpha_initializer: InitializerLike = "zeros", alpha_regularizer: RegularizerLike | None = None,
                 alpha_constraint: ConstraintLike | None = None, shared_axes: int | list[int] | None = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.alpha_initializer = initializers.get(alpha_initializer)
        self.alpha_regularizer = regularizers.get(alpha_regularizer)
        self.alpha_constraint = alpha_constraint
        if shared_axes is None:
            self.shared_axes = None
        elif isinstance(shared_axes, (list, tuple)):
            self.shared_axes = [int(a) for a in shared_axes]
        else:
            self.shared_axes = [int(shared_axes)]
        self.supports_masking = True
        self.alpha = None

    def build(self, input_shape: ShapeLike) -> None:
        shape = list(input_shape[1:])
        if self.shared_axes is not None:
            for a in self.shared_axes:
                if not 1 <= a <= len(shape):
                    raise ValueError(f'Layer "{self.name}" (PReLU): shared axis {a} is out of range for input '
                                     f"shape {tuple(input_shape)}")
                shape[a - 1] = 1
        if any(d is None for d in shape):
            raise ValueError(f'Layer "{self.name}" (PReLU) needs defined sizes on the axes it does not share, '
                             f"received input shape {tuple(input_shape)}")
        self.alpha = self.add_weight("alpha", tuple(shape), self.alpha_initializer, self.alpha_regularizer,
                                     constraint=self.alpha_constraint)
        self.built = True

    def forward(self, ctx: CallContext, inputs: ArrayLike, training: bool = False, **kwargs) -> np.ndarray:
        x = inputs
        a = self.alpha.value
        y = ctx.buf("y", x.shape, x.dtype)
        np.multiply(np.minimum(x, 0), a, out=y)
        y += np.maximum(x, 0)
        if ctx.record:
            ctx.x = x
        return y

    def backward(self, ctx: CallContext, dy: np.ndarray) -> np.ndarray | None:
        x = ctx.x
        dy = np.asarray(dy, dtype=x.dtype)
        neg = x < 0
        if self.trainable and self.alpha.trainable:
            g = np.where(neg, dy * x, 0)
            reduce = tuple(i for i in range(g.ndim) if i == 0 or self.alpha.shape[i - 1] == 1)
            np.copyto(self.alpha.grad_buffer(), g.sum(axis=reduce, keepdims=True).reshape(self.alpha.shape))
        if not ctx.need_dx:
            return None
        return np.where(neg, dy * self.alpha.value, dy).astype(x.dtype, copy=False)

    def get_config(self) -> Config:
        cfg = super().get_config()
        cfg.update({"alpha_initializer": _serialize_initializer(self.alpha_initializer),
                    "alpha_regularizer": _serialize_regularizer(self.alpha_regularizer),
                    "alpha_constraint": None, "shared_axes": self.shared_axes})
        return cfg
