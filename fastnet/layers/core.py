"""Core layers: Dense, Activation, Flatten, Reshape, Dropout."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from fastnet import activations, config, initializers, regularizers
from fastnet import random as _random
from fastnet._kernels import _activations as _act_kernels
from fastnet._kernels import dense as _dense
from fastnet._kernels import dropout as _dropout
from fastnet.layers.base import CallContext, InputSpec, Layer, _shape_str

if TYPE_CHECKING:
    from typing import Any

    from fastnet._typing import (
        ActivationLike,
        ArrayLike,
        Config,
        ConstraintLike,
        InitializerLike,
        RegularizerLike,
        Shape,
        ShapeLike,
    )

__all__ = ["Dense", "Activation", "Flatten", "Reshape", "Dropout"]


def _serialize_initializer(init):
    return initializers.serialize(init) if isinstance(init, initializers.Initializer) else init


def _serialize_regularizer(reg):
    return regularizers.serialize(reg) if isinstance(reg, regularizers.Regularizer) else reg


def positive_int(value: Any, what: str, layer: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"Received an invalid value for argument `{what}` of {layer}: expected a "
                         f"positive integer, received {what}={value!r}")
    return int(value)


class FusedActivation:
    """Forward/backward of an activation for layers that fuse it into their kernel.

    Built-in activations run inside the compiled kernels; a Python callable works in
    the forward pass and, if it has a ``gradient(dy, y, z)`` method, in training.
    """

    __slots__ = ("fn", "code", "alpha", "needs_input", "fused")

    def __init__(self, identifier: ActivationLike | None) -> None:
        self.fn = activations.get(identifier)
        self.fused = isinstance(self.fn, activations.Activation)
        self.code = self.fn.code if self.fused else 0
        self.alpha = self.fn.alpha if self.fused else 0.0
        self.needs_input = self.fn.needs_input if self.fused else True

    def serialize(self) -> str | Config:
        return activations.serialize(self.fn)

    def apply_python(self, z: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(self.fn(z), dtype=z.dtype)

    def gradient_python(self, dy: np.ndarray, y: np.ndarray, z: np.ndarray | None, layer: Layer) -> np.ndarray:
        grad = getattr(self.fn, "gradient", None)
        if grad is None:
            raise NotImplementedError(
                f'Layer "{layer.name}" uses the custom activation {self.fn!r}, which has no '
                f"gradient(dy, y, z) method, so it cannot be trained; use a built-in activation "
                f"name (one of {sorted(activations._BY_NAME)})")
        return np.ascontiguousarray(grad(dy, y, z), dtype=y.dtype)


class Dense(Layer):
    """Densely connected layer: ``output = activation(inputs @ kernel + bias)``.

    Args:
        units: positive int, the output size.
        activation: activation name or function (None: linear).
        use_bias: whether to add a bias vector.
        kernel_initializer, bias_initializer: initializers (glorot_uniform, zeros).
        kernel_regularizer, bias_regularizer: optional penalties added to the loss.

    Input shape:
        N-D array ``(batch_size, ..., input_dim)``.
    Output shape:
        ``(batch_size, ..., units)``.

    Example:
        >>> import numpy as np
        >>> from fastnet.layers import Dense
        >>> Dense(4, activation="tanh")(np.zeros((2, 3))).shape
        (2, 4)
    """

    _supports_logits = True

    def __init__(self, units: int, activation: ActivationLike | None = None, use_bias: bool = True,
                 kernel_initializer: InitializerLike = "glorot_uniform", bias_initializer: InitializerLike = "zeros",
                 kernel_regularizer: RegularizerLike | None = None, bias_regularizer: RegularizerLike | None = None,
                 activity_regularizer: RegularizerLike | None = None, kernel_constraint: ConstraintLike | None = None,
                 bias_constraint: ConstraintLike | None = None, lora_rank: int | None = None, **kwargs) -> None:
        kwargs.pop("lora_alpha", None)
        if lora_rank:
            raise NotImplementedError(f"Dense does not support LoRA (low-rank adaptation) yet, received "
                                      f"lora_rank={lora_rank}; build it with lora_rank=None")
        super().__init__(**kwargs)
        self.units = positive_int(units, "units", "Dense")
        self.activation = FusedActivation(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.activity_regularizer = regularizers.get(activity_regularizer)
        self.kernel_constraint = kernel_constraint
        self.bias_constraint = bias_constraint
        self.input_spec = InputSpec(min_ndim=2)
        self.kernel = None
        self.bias = None

    def build(self, input_shape: ShapeLike) -> None:
        in_dim = input_shape[-1]
        if in_dim is None:
            raise ValueError(f'Layer "{self.name}" (Dense) needs the last input dimension to be '
                             f"defined, received input shape {_shape_str(input_shape)}")
        self.kernel = self.add_weight("kernel", (in_dim, self.units), self.kernel_initializer,
                                      self.kernel_regularizer, constraint=self.kernel_constraint)
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.units,), self.bias_initializer,
                                        self.bias_regularizer, constraint=self.bias_constraint)
        self.input_spec = InputSpec(min_ndim=2, axes={-1: in_dim})
        self.built = True

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape:
        return tuple(input_shape[:-1]) + (self.units,)

    def forward(self, ctx: CallContext, inputs: ArrayLike, training: bool = False) -> np.ndarray:
        in_dim = inputs.shape[-1]
        x = inputs.reshape(-1, in_dim)
        n = x.shape[0]
        act = self.activation
        dt = x.dtype
        y = ctx.buf("y", (n, self.units), dt)
        z = (ctx.buf("z", (n, self.units), dt)
             if act.fused and (act.needs_input or ctx.keep_logits) else None)
        kernel = self.kernel.value
        bias = self.bias.value if self.use_bias else None
        if act.fused:
            _dense.forward(x, kernel, bias, z, y, act.code, act.alpha, config._n_threads)
        else:
            z = ctx.buf("z", (n, self.units), dt)
            _dense.forward(x, kernel, bias, None, z, 0, 0.0, config._n_threads)
            y = act.apply_python(z)
        if ctx.record:
            ctx.x, ctx.y, ctx.z = x, y, z
            ctx.in_shape = inputs.shape
        if ctx.keep_logits:
            ctx.logits = z.reshape(inputs.shape[:-1] + (self.units,))
        return y.reshape(inputs.shape[:-1] + (self.units,))

    def backward(self, ctx: CallContext, dy: np.ndarray) -> np.ndarray | None:
        need_dx = ctx.need_dx
        x, y, z = ctx.x, ctx.y, ctx.z
        dy = np.ascontiguousarray(dy, dtype=y.dtype).reshape(y.shape)
        act = self.activation
        code = act.code
        if ctx.logits_grad:
            code = 0  # dy is already the gradient with respect to the logits
        elif not act.fused:
            dy = act.gradient_python(dy, y, z, self)
            code = 0
        dz = ctx.buf("dz", y.shape, y.dtype) if code != 0 else None
        train = self.trainable
        dw = self.kernel.grad_buffer() if train and self.kernel.trainable else None
        db = self.bias.grad_buffer() if (train and self.use_bias and self.bias.trainable) else None
        dx = ctx.buf("dx", x.shape, x.dtype) if need_dx else None
        _dense.backward(dy, x, self.kernel.value, y, z if act.needs_input and act.fused else None,
                        dz, dw, db, dx, code, act.alpha, config._n_threads)
        return None if dx is None else dx.reshape(ctx.in_shape)

    def get_config(self) -> Config:
        cfg = super().get_config()
        cfg.update({
            "units": self.units,
            "activation": self.activation.serialize(),
            "use_bias": self.use_bias,
            "kernel_initializer": _serialize_initializer(self.kernel_initializer),
            "bias_initializer": _serialize_initializer(self.bias_initializer),
            "kernel_regularizer": _serialize_regularizer(self.kernel_regularizer),
            "bias_regularizer": _serialize_regularizer(self.bias_regularizer),
            "kernel_constraint": None,
            "bias_constraint": None,
        })
        return cfg


class Activation(Layer):
    """Applies an activation function elementwise (softmax over the last axis).

    Args:
        activation: activation name or function, e.g. ``"relu"``.
    """

    _supports_logits = True

    def __init__(self, activation: ActivationLike, **kwargs) -> None:
        super().__init__(**kwargs)
        self.activation = FusedActivation(activation)

    def forward(self, ctx: CallContext, inputs: ArrayLike, training: bool = False) -> np.ndarray:
        if ctx.relu_done:  # the layer before applied it (a graph fusion)
            return inputs
        act = self.activation
        if not act.fused:
            y = act.apply_python(inputs)
        else:
            x2 = inputs.reshape(-1, inputs.shape[-1]) if inputs.ndim else inputs.reshape(1, 1)
            y = ctx.buf("y", inputs.shape, inputs.dtype)
            if x2.size:
                _act_kernels.forward(act.code, x2, y.reshape(x2.shape), act.alpha, config._n_threads)
        if ctx.record:
            ctx.x, ctx.y = inputs, y
        if ctx.keep_logits:
            ctx.logits = inputs
        return y

    def backward(self, ctx: CallContext, dy: np.ndarray) -> np.ndarray | None:
        need_dx = ctx.need_dx
        if ctx.relu_done:
            return dy if need_dx else None
        act, x, y = self.activation, ctx.x, ctx.y
        dy = np.ascontiguousarray(dy, dtype=y.dtype)
        if ctx.logits_grad:
            return dy if need_dx else None
        if not act.fused:
            return act.gradient_python(dy, y, x, self)
        if not need_dx:
            return None
        dx = ctx.buf("dx", y.shape, y.dtype)
        shp = (-1, y.shape[-1]) if y.ndim else (1, 1)
        if y.size:
            _act_kernels.backward(act.code, dy.reshape(shp), y.reshape(shp),
                                  x.reshape(shp) if act.needs_input else None, dx.reshape(shp),
                                  act.alpha, config._n_threads)
        return dx

    def _is_plain_relu(self):
        """max(x, 0) exactly: what a graph fusion may apply in the layer before."""
        act = self.activation
        return act.fused and act.fn.name == "relu"

    def get_config(self) -> Config:
        cfg = super().get_config()
        cfg["activation"] = self.activation.serialize()
        return cfg


class Flatten(Layer):
    """Flattens every axis but the batch axis: (batch, d1, d2, ...) -> (batch, d1*d2*...)."""

    def __init__(self, data_format: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.data_format = data_format or config.image_data_format()
        if self.data_format not in ("channels_last", "channels_first"):
            raise ValueError(f"Flatten data_format must be 'channels_last' or 'channels_first', "
                             f"received {data_format!r}")
        self.input_spec = InputSpec(min_ndim=1)

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape:
        rest = input_shape[1:]
        size = None if any(d is None for d in rest) else math.prod(rest)
        return (input_shape[0], size)

    def forward(self, ctx: CallContext, inputs: ArrayLike, training: bool = False) -> np.ndarray:
        x = inputs
        if self.data_format == "channels_first" and x.ndim > 2:
            x = np.ascontiguousarray(np.moveaxis(x, 1, -1))
        if ctx.record:
            ctx.in_shape = inputs.shape
        return x.reshape(x.shape[0], -1) if x.ndim != 1 else x.reshape(-1, 1)

    def backward(self, ctx: CallContext, dy: np.ndarray) -> np.ndarray | None:
        need_dx = ctx.need_dx
        if not need_dx:
            return None
        shp = ctx.in_shape
        if self.data_format == "channels_first" and len(shp) > 2:
            moved = (shp[0],) + tuple(shp[2:]) + (shp[1],)
            return np.ascontiguousarray(np.moveaxis(dy.reshape(moved), -1, 1))
        return dy.reshape(shp)

    def get_config(self) -> Config:
        cfg = super().get_config()
        cfg["data_format"] = self.data_format
        return cfg


class Reshape(Layer):
    """Reshapes inputs to ``target_shape`` (batch axis excluded; one entry may be -1).

    Example:
        >>> import numpy as np
        >>> from fastnet.layers import Reshape
        >>> Reshape((3, 3, 64))(np.zeros((32, 576))).shape
        (32, 3, 3, 64)
    """

    def __init__(self, target_shape: ShapeLike, **kwargs) -> None:
        super().__init__(**kwargs)
        if isinstance(target_shape, int):
            target_shape = (target_shape,)
        target_shape = tuple(int(d) for d in target_shape)
        if sum(d == -1 for d in target_shape) > 1 or any(d < -1 or d == 0 for d in target_shape):
            raise ValueError(f"Reshape target_shape may hold positive sizes and at most one -1, "
                             f"received target_shape={target_shape}")
        self.target_shape = target_shape

    def _resolve(self, input_shape):
        rest = input_shape[1:]
        if any(d is None for d in rest):
            return tuple(None if d == -1 else d for d in self.target_shape)
        size = math.prod(rest)
        known = math.prod(d for d in self.target_shape if d != -1)
        if -1 in self.target_shape:
            if known == 0 or size % known:
                raise ValueError(
                    f'Layer "{self.name}" (Reshape) cannot reshape input of shape {_shape_str(rest)} '
                    f"(size {size}) to target_shape {self.target_shape}: {size} is not a multiple of {known}")
            return tuple(size // known if d == -1 else d for d in self.target_shape)
        if known != size:
            raise ValueError(
                f'Layer "{self.name}" (Reshape) cannot reshape input of shape {_shape_str(rest)} '
                f"(size {size}) to target_shape {self.target_shape} (size {known}): the total "
                f"size must be unchanged")
        return self.target_shape

    def build(self, input_shape: ShapeLike) -> None:
        self._resolve(input_shape)
        self.built = True

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape:
        return (input_shape[0],) + self._resolve(input_shape)

    def forward(self, ctx: CallContext, inputs: ArrayLike, training: bool = False) -> np.ndarray:
        out = self._resolve(inputs.shape)
        if ctx.record:
            ctx.in_shape = inputs.shape
        return inputs.reshape((inputs.shape[0],) + out)

    def backward(self, ctx: CallContext, dy: np.ndarray) -> np.ndarray | None:
        need_dx = ctx.need_dx
        return dy.reshape(ctx.in_shape) if need_dx else None

    def get_config(self) -> Config:
        cfg = super().get_config()
        cfg["target_shape"] = list(self.target_shape)
        return cfg


class Dropout(Layer):
    """Randomly zeroes a fraction ``rate`` of inputs while training, scaling the rest by
    ``1 / (1 - rate)`` (inverted dropout); the identity at inference.

    Args:
        rate: float in [0, 1), the fraction of inputs to drop.
        noise_shape: optional shape of the mask, broadcast over the input (None: its axes).
        seed: optional int for reproducible masks.
    """

    def __init__(self, rate: float, noise_shape: ShapeLike | None = None, seed: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        if isinstance(rate, bool) or not isinstance(rate, (int, float, np.floating)) or not 0 <= rate < 1:
            raise ValueError(f"Invalid value received for argument `rate` of Dropout: expected a "
                             f"float in [0, 1), received rate={rate!r}")
        self.rate = float(rate)
        self.noise_shape = tuple(noise_shape) if noise_shape is not None else None
        self.seed = seed
        self._rng = np.random.default_rng(seed) if seed is not None else None

    def _next_seed(self):
        rng = self._rng if self._rng is not None else _random.generator()
        return int(rng.integers(0, 2 ** 63 - 1))

    # Index of this batch's first row in the whole batch: data-parallel training
    # (fastnet.distribution) gives each process some rows of the batch and sets this so that
    # their masks are those one process would draw for the same rows.
    _row_offset = 0

    def forward(self, ctx: CallContext, inputs: ArrayLike, training: bool = False) -> np.ndarray:
        if not training or self.rate == 0:
            if ctx.record:
                ctx.mask = None
            return inputs
        if self.noise_shape is None:
            flat = inputs.reshape(-1)
            y = ctx.buf("y", inputs.shape, inputs.dtype)
            mask = ctx.buf("mask", (flat.shape[0],), np.uint8)
            off = self._row_offset * (flat.shape[0] // inputs.shape[0]) if self._row_offset else 0
            _dropout.forward(flat, y.reshape(-1), mask, self.rate, self._next_seed(), config._n_threads,
                             off)
            if ctx.record:
                ctx.mask = mask
            return y
        shape = tuple(inputs.shape[i] if d is None else d for i, d in enumerate(self.noise_shape))
        u = np.empty(math.prod(shape), dtype=np.float64)
        off = (self._row_offset * (u.shape[0] // shape[0])
               if self._row_offset and self.noise_shape[0] is None else 0)
        _dropout.uniform(u, self._next_seed(), config._n_threads, off)
        keep = (u.reshape(shape) >= self.rate).astype(inputs.dtype) / inputs.dtype.type(1 - self.rate)
        if ctx.record:
            ctx.mask = keep
        return inputs * keep

    def backward(self, ctx: CallContext, dy: np.ndarray) -> np.ndarray | None:
        need_dx = ctx.need_dx
        if not need_dx:
            return None
        mask = ctx.mask
        if mask is None:
            return dy
        if self.noise_shape is not None:
            return dy * mask
        dy = np.ascontiguousarray(dy)
        dx = ctx.buf("dx", dy.shape, dy.dtype)
        _dropout.backward(dy.reshape(-1), mask, dx.reshape(-1), self.rate, config._n_threads)
        return dx

    def get_config(self) -> Config:
        cfg = super().get_config()
        cfg.update({"rate": self.rate, "seed": self.seed,
                    "noise_shape": list(self.noise_shape) if self.noise_shape else None})
        return cfg
