"""BatchNormalization."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from fastnet import config, initializers, regularizers
from fastnet._kernels import normalization as _bn
from fastnet.layers.base import CallContext, InputSpec, Layer, _shape_str
from fastnet.layers.core import _serialize_initializer, _serialize_regularizer

if TYPE_CHECKING:
    from collections.abc import Sequence

    from fastnet._typing import ArrayLike, Config, ConstraintLike, InitializerLike, RegularizerLike, ShapeLike

__all__ = ["BatchNormalization", "LayerNormalization"]


class BatchNormalization(Layer):
    """Normalises each feature (channel) to zero mean and unit variance, then scales by
    ``gamma`` and shifts by ``beta``.

    In training (``training=True``) the batch's own mean and (biased) variance are
    used and the moving statistics are updated:
    ``moving = moving * momentum + batch * (1 - momentum)``. At inference the moving
    statistics are used.

    Args:
        axis: the feature axis (default -1, channels last).
        momentum: momentum of the moving statistics (0.99).
        epsilon: added to the variance (1e-3).
        center: learn ``beta``; scale: learn ``gamma``.

    Input shape:
        any rank >= 2, e.g. ``(batch, features)`` or ``(batch, rows, cols, channels)``.
    Output shape:
        same as the input.
    """

    def __init__(self, axis: int | Sequence[int] = -1, momentum: float = 0.99, epsilon: float = 1e-3,
                 center: bool = True, scale: bool = True, beta_initializer: InitializerLike = "zeros",
                 gamma_initializer: InitializerLike = "ones", moving_mean_initializer: InitializerLike = "zeros",
                 moving_variance_initializer: InitializerLike = "ones", beta_regularizer: RegularizerLike | None = None,
                 gamma_regularizer: RegularizerLike | None = None, beta_constraint: ConstraintLike | None = None,
                 gamma_constraint: ConstraintLike | None = None, synchronized: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        if isinstance(axis, (list, tuple)):
            if len(axis) != 1:
                raise ValueError(f"BatchNormalization supports one feature axis, received axis={axis}")
            axis = axis[0]
        self.axis = int(axis)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        if self.epsilon <= 0:
            raise ValueError(f"BatchNormalization epsilon must be positive, received {epsilon}")
        self.center = bool(center)
        self.scale = bool(scale)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.synchronized = bool(synchronized)
        self.input_spec = InputSpec(min_ndim=2)
        self.gamma = self.beta = None

    def build(self, input_shape: ShapeLike) -> None:
        axis = self.axis % len(input_shape)
        ch = input_shape[axis]
        if ch is None:
            raise ValueError(f'Layer "{self.name}" (BatchNormalization) needs axis {self.axis} of its '
                             f"input to be defined, received input shape {_shape_str(input_shape)}")
        if self.scale:
            self.gamma = self.add_weight("gamma", (ch,), self.gamma_initializer, self.gamma_regularizer)
        if self.center:
            self.beta = self.add_weight("beta", (ch,), self.beta_initializer, self.beta_regularizer)
        self.moving_mean = self.add_weight("moving_mean", (ch,), self.moving_mean_initializer,
                                           trainable=False)
        self.moving_variance = self.add_weight("moving_variance", (ch,),
                                               self.moving_variance_initializer, trainable=False)
        self._axis = axis
        self._channels = ch
        self.input_spec = InputSpec(ndim=len(input_shape), axes={axis: ch})
        self.built = True

    def _to_rows(self, x):
        """(rows, channels) view (a copy when the feature axis is not last)."""
        if self._axis == x.ndim - 1:
            return x.reshape(-1, self._channels)
        return np.ascontiguousarray(np.moveaxis(x, self._axis, -1)).reshape(-1, self._channels)

    def _from_rows(self, rows, like_shape):
        if self._axis == len(like_shape) - 1:
            return rows.reshape(like_shape)
        moved = tuple(d for i, d in enumerate(like_shape) if i != self._axis) + (self._channels,)
        return np.ascontiguousarray(np.moveaxis(rows.reshape(moved), -1, self._axis))

    def _gamma_beta(self, dt):
        ch = self._channels
        g = self.gamma.value if self.scale else np.ones(ch, dtype=dt)
        b = self.beta.value if self.center else np.zeros(ch, dtype=dt)
        return g, b

    def forward(self, ctx: CallContext, inputs: ArrayLike, training: bool = False) -> np.ndarray:
        x = self._to_rows(inputs)
        dt = x.dtype
        gamma, beta = self._gamma_beta(dt)
        y = ctx.buf("y", x.shape, dt)
        nt = config._n_threads
        relu = ctx.fuse_relu
        if training:
            ch = self._channels
            mean = np.empty(ch, dt)
            var = np.empty(ch, dt)
            invstd = np.empty(ch, dt)
            # Statistics over every process's rows when the training loop says so (synchronised
            # BatchNormalization in data-parallel training).
            sync = getattr(ctx.defer_updates, "sync", None) if ctx.defer_updates else None
            ctx.sync = sync(self) if sync is not None else None
            if ctx.sync is None:
                _bn.forward_train(x, gamma, beta, mean, var, invstd, y, self.epsilon, nt, relu)
            else:
                ctx.sync.forward(x, gamma, beta, mean, var, invstd, y, self.epsilon, nt)
                if relu:
                    np.maximum(y, 0, out=y)
            # In a training loop the update waits for the optimizer step (the loop's
            # DeferredUpdates); called on its own the layer updates at once.
            if ctx.defer_updates:
                ctx.defer_updates.add(self._apply_update, (mean, var), reducible=ctx.sync is None)
            else:
                self._apply_update((mean, var))
        else:
            mean = self.moving_mean.value
            invstd = (1.0 / np.sqrt(self.moving_variance.value + dt.type(self.epsilon))).astype(dt)
            scale = gamma * invstd
            _bn.forward_infer(x, scale, (beta - mean * scale).astype(dt), y, nt, relu)
        if ctx.record:
            ctx.x, ctx.mean, ctx.invstd, ctx.training = x, mean.copy(), invstd, training
            ctx.in_shape = inputs.shape
            ctx.y = y if relu else None
        return self._from_rows(y, inputs.shape)

    def _apply_update(self, stats):
        """Moves the moving statistics toward a training batch's (mean, variance)."""
        mean, var = stats
        m = mean.dtype.type(self.momentum)
        mm, mv = self.moving_mean.value, self.moving_variance.value
        mm *= m
        mm += (1 - m) * mean
        mv *= m
        mv += (1 - m) * var

    def backward(self, ctx: CallContext, dy: np.ndarray) -> np.ndarray | None:
        need_dx = ctx.need_dx
        x = ctx.x
        dt = x.dtype
        dy = self._to_rows(np.ascontiguousarray(dy, dtype=dt))
        gamma, _ = self._gamma_beta(dt)
        train = self.trainable
        dgamma = self.gamma.grad_buffer() if (train and self.scale) else None
        dbeta = self.beta.grad_buffer() if (train and self.center) else None
        dx = ctx.buf("dx", x.shape, dt) if need_dx else None
        relu_out = ctx.y if ctx.fuse_relu else None  # the fused ReLU's output: its derivative
        if ctx.training and ctx.sync is not None:
            if relu_out is not None:
                dy = dy * (relu_out > 0)
            ctx.sync.backward(dy, x, ctx.mean, ctx.invstd, gamma, dx, dgamma, dbeta, config._n_threads)
        else:
            fn = _bn.backward_train if ctx.training else _bn.backward_infer
            fn(dy, x, ctx.mean, ctx.invstd, gamma, dx, dgamma, dbeta, config._n_threads, relu_out)
        return None if dx is None else self._from_rows(dx, ctx.in_shape)

    def get_config(self) -> Config:
        cfg = super().get_config()
        cfg.update({
            "axis": self.axis, "momentum": self.momentum, "epsilon": self.epsilon,
            "center": self.center, "scale": self.scale,
            "beta_initializer": _serialize_initializer(self.beta_initializer),
            "gamma_initializer": _serialize_initializer(self.gamma_initializer),
            "moving_mean_initializer": _serialize_initializer(self.moving_mean_initializer),
            "moving_variance_initializer": _serialize_initializer(self.moving_variance_initializer),
            "beta_regularizer": _serialize_regularizer(self.beta_regularizer),
            "gamma_regularizer": _serialize_regularizer(self.gamma_regularizer),
            "beta_constraint": None, "gamma_constraint": None, "synchronized": self.synchronized,
        })
        return cfg


class LayerNormalization(Layer):
    """Normalises each sample over its last axis, then scales by ``gamma`` and shifts by
    ``beta`` (per feature). The same in training and inference.

    Args:
        axis: the normalised axis (-1).
        epsilon: added to the variance (1e-3).
        center / scale: learn ``beta`` / ``gamma``.
    """

    def __init__(self, axis: int | Sequence[int] = -1, epsilon: float = 1e-3, center: bool = True, scale: bool = True,
                 rms_scaling: bool = False, beta_initializer: InitializerLike = "zeros",
                 gamma_initializer: InitializerLike = "ones", beta_regularizer: RegularizerLike | None = None,
                 gamma_regularizer: RegularizerLike | None = None, beta_constraint: ConstraintLike | None = None,
                 gamma_constraint: ConstraintLike | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        if isinstance(axis, (list, tuple)):
            if len(axis) != 1:
                raise ValueError(f"LayerNormalization supports one axis, received axis={axis}")
            axis = axis[0]
        if rms_scaling:
            raise NotImplementedError("LayerNormalization(rms_scaling=True) is not supported")
        self.axis = int(axis)
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        self.rms_scaling = False
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.input_spec = InputSpec(min_ndim=1)
        self.gamma = self.beta = None

    def build(self, input_shape: ShapeLike) -> None:
        axis = self.axis % len(input_shape)
        ch = input_shape[axis]
        if ch is None:
            raise ValueError(f'Layer "{self.name}" (LayerNormalization) needs axis {self.axis} of its '
                             f"input to be defined, received input shape {_shape_str(input_shape)}")
        if self.scale:
            self.gamma = self.add_weight("gamma", (ch,), self.gamma_initializer, self.gamma_regularizer)
        if self.center:
            self.beta = self.add_weight("beta", (ch,), self.beta_initializer, self.beta_regularizer)
        self._axis, self._channels = axis, ch
        self.input_spec = InputSpec(ndim=len(input_shape), axes={axis: ch})
        self.built = True

    _to_rows = BatchNormalization._to_rows
    _from_rows = BatchNormalization._from_rows
    _gamma_beta = BatchNormalization._gamma_beta

    def forward(self, ctx: CallContext, inputs: ArrayLike, training: bool = False) -> np.ndarray:
        x = self._to_rows(inputs)
        dt = x.dtype
        gamma, beta = self._gamma_beta(dt)
        y = ctx.buf("y", x.shape, dt)
        mean = np.empty(x.shape[0], dt)
        invstd = np.empty(x.shape[0], dt)
        _bn.layernorm_forward(x, gamma, beta, mean, invstd, y, self.epsilon, config._n_threads)
        if ctx.record:
            ctx.x, ctx.mean, ctx.invstd, ctx.in_shape = x, mean, invstd, inputs.shape
        return self._from_rows(y, inputs.shape)

    def backward(self, ctx: CallContext, dy: np.ndarray) -> np.ndarray | None:
        need_dx = ctx.need_dx
        x = ctx.x
        dt = x.dtype
        dy = self._to_rows(np.ascontiguousarray(dy, dtype=dt))
        gamma, _ = self._gamma_beta(dt)
        train = self.trainable
        dgamma = self.gamma.grad_buffer() if (train and self.scale) else None
        dbeta = self.beta.grad_buffer() if (train and self.center) else None
        dx = ctx.buf("dx", x.shape, dt) if need_dx else None
        _bn.layernorm_backward(dy, x, ctx.mean, ctx.invstd, gamma, dx, dgamma, dbeta,
                               config._n_threads)
        return None if dx is None else self._from_rows(dx, ctx.in_shape)

    def get_config(self) -> Config:
        cfg = super().get_config()
        cfg.update({
            "axis": self.axis, "epsilon": self.epsilon, "center": self.center,
            "scale": self.scale, "rms_scaling": False,
            "beta_initializer": _serialize_initializer(self.beta_initializer),
            "gamma_initializer": _serialize_initializer(self.gamma_initializer),
            "beta_regularizer": _serialize_regularizer(self.beta_regularizer),
            "gamma_regularizer": _serialize_regularizer(self.gamma_regularizer),
            "beta_constraint": None, "gamma_constraint": None,
        })
        return cfg
