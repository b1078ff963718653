"""Noise and dropout layers active in training only, and ActivityRegularization.

``SpatialDropout1D/2D/3D``, ``GaussianNoise``, ``GaussianDropout`` and
``AlphaDropout`` draw their noise from their own generator when given ``seed``
(the same sequence of masks run after run), else from fastnet's global one
(``fastnet.random.set_seed``); at inference they return their input unchanged.
The mask or noise of a call is kept on the call's context for its backward pass.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from fastnet import random as _random
from fastnet.layers._v2 import ContextCallMixin
from fastnet.layers.base import InputSpec, Layer
from fastnet.utils import shape_utils

if TYPE_CHECKING:
    from fastnet._typing import ArrayLike, Config, Shape, ShapeLike
    from fastnet.layers._v2 import CallContext

__all__ = ["SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise", "GaussianDropout",
           "AlphaDropout", "ActivityRegularization"]

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def _rate(value, cls, name="rate"):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) \
            or not 0 <= value < 1:
        raise ValueError(f"Invalid value received for argument `{name}` of {cls}: expected a float in [0, 1), "
                         f"received {name}={value!r}")
    return float(value)


class _Noisy(ContextCallMixin, Layer):
    """A layer drawing random numbers in training: its own generator when seeded."""

    def __init__(self, seed: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise ValueError(f"{type(self).__name__} seed must be an int or None, received seed={seed!r}")
        self.seed = None if seed is None else int(seed)
        self._rng = np.random.default_rng(self.seed) if self.seed is not None else None
        self.supports_masking = True

    def _generator(self):
        return self._rng if self._rng is not None else _random.generator()

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape:
        return tuple(input_shape)

    def _normal(self, shape, dtype):
        dt = np.dtype(dtype)
        if dt in (np.float32, np.float64):
            return self._generator().standard_normal(shape, dtype=dt)
        return self._generator().standard_normal(shape).astype(dt)

    def _uniform(self, shape):
        return self._generator().random(shape, dtype=np.float32)

    def backward(self, ctx: CallContext, dy: np.ndarray) -> np.ndarray | None:
        if not ctx.need_dx:
            return None
        scale = getattr(ctx, "scale", None)
        dy = np.asarray(dy)
        return dy if scale is None else dy * scale


class _SpatialDropout(_Noisy):
    """Dropout of whole feature maps: one keep/drop draw per sample and channel."""

    rank = None

    def __init__(self, rate: float, data_format: str | None = None, seed: int | None = None, **kwargs) -> None:
        super().__init__(seed=seed, **kwargs)
        cls = type(self).__name__
        self.rate = _rate(rate, cls)
        self.data_format = shape_utils.normalize_data_format(data_format, cls)
        self.input_spec = InputSpec(ndim=self.rank + 2)

    def _noise_shape(self, shape):
        ones = (1,) * self.rank
        if self.data_format == "channels_first":
            return (shape[0], shape[1]) + ones
        return (shape[0],) + ones + (shape[-1],)

    def forward(self, ctx: CallContext, inputs: np.ndarray, training: bool = False) -> np.ndarray:
        if ctx.record:
            ctx.scale = None
        if not training or self.rate == 0:
            return inputs
        keep = self._uniform(self._noise_shape(inputs.shape)) >= self.rate
        scale = keep.astype(inputs.dtype) * inputs.dtype.type(1.0 / (1.0 - self.rate))
        if ctx.record:
            ctx.scale = scale
        return inputs * scale

    def get_config(self) -> Config:
        cfg = super().get_config()
        cfg.update({"rate": self.rate, "seed": self.seed})
        if self.rank > 1:
            cfg["data_format"] = self.data_format
        return cfg


class SpatialDropout1D(_SpatialDropout):
    """Drops whole channels of a sequence in training: ``(batch, steps, channels)``, one draw per
    sample and channel, kept values scaled by ``1 / (1 - rate)``.

    Args:
        rate: float in [0, 1), the fraction of channels to drop.
        seed: optional int for reproducible masks.

    Input shape:
        ``(batch, steps, channels)``.

    Output shape:
        Same as the input.

    Example:
        >>> import numpy as np
        >>> from fastnet.layers import SpatialDropout1D
        >>> SpatialDropout1D(0.5, seed=1)(np.ones((2, 3, 4))).shape
        (2, 3, 4)
    """

    rank = 1

    def __init__(self, rate: float, seed: int | None = None, **kwargs) -> None:
        super().__init__(rate, data_format="channels_last", seed=seed, **kwargs)


class SpatialDropout2D(_SpatialDropout):
    """Drops whole feature maps of an image in training (one draw per sample and channel).

    Args:
        rate: float in [0, 1), the fraction of channels to drop.
        data_format: ``"channels_last"`` (default) or ``"channels_first"``.
        seed: optional int for reproducible masks.

    Input shape:
        ``(batch, rows, cols, channels)`` or ``(batch, channels, rows, cols)``.

    Output shape:
        Same as the input.
    """

    rank = 2


class SpatialDropout3D(_SpatialDropout):
    """Drops whole feature maps of a volume in training (one draw per sample and channel).

    Args:
        rate: float in [0, 1), the fraction of channels to drop.
        data_format: ``"channels_last"`` (default) or ``"channels_first"``.
        seed: optional int for reproducible masks.

    Input shape:
        ``(batch, depth, rows, cols, channels)`` or ``(batch, channels, depth, rows, cols)``.

    Output shape:
        Same as the input.
    """

    rank = 3


class GaussianNoise(_Noisy):
    """Adds zero-mean Gaussian noise of standard deviation ``stddev`` in training.

    Args:
        stddev: float >= 0, the noise's standard deviation.
        seed: optional int for reproducible noise.

    Input shape:
        Arbitrary.

    Output shape:
        Same as the input.

    Example:
        >>> import numpy as np
        >>> from fastnet.layers import GaussianNoise
        >>> GaussianNoise(0.1)(np.ones((2, 3)), training=False)
        array([[1., 1., 1.],
               [1., 1., 1.]], dtype=float32)
    """

    def __init__(self, stddev: float, seed: int | None = None, **kwargs) -> None:
        super().__init__(seed=seed, **kwargs)
        if isinstance(stddev, bool) or not isinstance(stddev, (int, float, np.floating, np.integer)) \
                or not stddev >= 0:
            raise ValueError(f"Invalid value received for argument `stddev` of GaussianNoise: expected a "
                             f"float >= 0, received stddev={stddev!r}")
        self.stddev = float(stddev)

    def forward(self, ctx: CallContext, inputs: np.ndarray, training: bool = False) -> np.ndarray:
        if ctx.record:
            ctx.scale = None
        if not training or self.stddev == 0:
            return inputs
        noise = self._normal(inputs.shape, inputs.dtype)
        noise *= inputs.dtype.type(self.stddev)
        noise += inputs
        return noise

    def get_config(self) -> Config:
        cfg = super().get_config()
        cfg.update({"stddev": self.stddev, "seed": self.seed})
        return cfg


class GaussianDropout(_Noisy):
    """Multiplies inputs by Gaussian noise of mean 1 and standard deviation
    ``sqrt(rate / (1 - rate))`` in training.

    Args:
        rate: float in [0, 1), the equivalent dropout rate.
        seed: optional int for reproducible noise.

    Input shape:
        Arbitrary.

    Output shape:
        Same as the input.
    """

    def __init__(self, rate: float, seed: int | None = None, **kwargs) -> None:
        super().__init__(seed=seed, **kwargs)
        self.rate = _rate(rate, "GaussianDropout")

    def forward(self, ctx: CallContext, inputs: np.ndarray, training: bool = False) -> np.ndarray:
        if ctx.record:
            ctx.scale = None
        if not training or self.rate == 0:
            return inputs
        noise = self._normal(inputs.shape, inputs.dtype)
        noise *= inputs.dtype.type(math.sqrt(self.rate / (1.0 - self.rate)))
        noise += inputs.dtype.type(1)
        if ctx.record:
            ctx.scale = noise
        return inputs * noise

    def get_config(self) -> Config:
        cfg = super().get_config()
        cfg.update({"rate": self.rate, "seed": self.seed})
        return cfg


class AlphaDropout(_Noisy):
    """Dropout that keeps the mean and variance of SELU activations: dropped values are set
    to ``-SELU_scale * SELU_alpha``, then an affine map ``a * x + b`` restores the moments
    (``a = ((1 - rate) * (1 + rate * alpha'^2)) ** -0.5``, ``b = -a * alpha' * rate``).

    Args:
        rate: float in [0, 1), the fraction of inputs to drop.
        noise_shape: optional shape of the keep mask, broadcast over the input (None entries
            take the input's size).
        seed: optional int for reproducible masks.

    Input shape:
        Arbitrary.

    Output shape:
        Same as the input.
    """

    def __init__(self, rate: float, noise_shape: ShapeLike | None = None, seed: int | None = None,
                 **kwargs) -> None:
        super().__init__(seed=seed, **kwargs)
        self.rate = _rate(rate, "AlphaDropout")
        self.noise_shape = tuple(noise_shape) if noise_shape is not None else None

    def _constants(self):
        alpha_p = -SELU_ALPHA * SELU_SCALE
        a = ((1 - self.rate) * (1 + self.rate * alpha_p ** 2)) ** -0.5
        return alpha_p, a, -a * alpha_p * self.rate

    def forward(self, ctx: CallContext, inputs: np.ndarray, training: bool = False) -> np.ndarray:
        if ctx.record:
            ctx.scale = None
        if not training or self.rate == 0:
            return inputs
        shape = inputs.shape
        if self.noise_shape is not None:
            if len(self.noise_shape) != inputs.ndim:
                raise ValueError(f'Layer "{self.name}" (AlphaDropout): noise_shape {self.noise_shape} must have '
                                 f"the input's rank {inputs.ndim} (input shape {inputs.shape})")
            shape = tuple(shape[i] if d is None else int(d) for i, d in enumerate(self.noise_shape))
        keep = (self._uniform(shape) >= self.rate).astype(inputs.dtype)
        alpha_p, a, b = self._constants()
        dt = inputs.dtype.type
        y = inputs * keep + dt(alpha_p) * (dt(1) - keep)
        y = dt(a) * y + dt(b)
        if ctx.record:
            ctx.scale = dt(a) * keep
        return y

    def get_config(self) -> Config:
        cfg = super().get_config()
        cfg.update({"rate": self.rate, "seed": self.seed,
                    "noise_shape": list(self.noise_shape) if self.noise_shape is not None else None})
        return cfg


class ActivityRegularization(ContextCallMixin, Layer):
    """The identity, adding ``(l1 * sum(|x|) + l2 * sum(x^2)) / batch_size`` to the loss.

    The penalty of a call is ``ctx.losses`` (a one-element list, as Keras's
    ``layer.losses``); its gradient is added to the input gradient in ``backward``.

    Args:
        l1: L1 factor (float >= 0).
        l2: L2 factor (float >= 0).

    Input shape:
        Arbitrary.

    Output shape:
        Same as the input.
    """

    # The penalty goes through ctx.losses and backward adds its gradient: the executor
    # must not apply ``activity_regularizer`` again.
    _adds_losses = True
    _applies_own_activity = True

    def __init__(self, l1: float = 0.0, l2: float = 0.0, **kwargs) -> None:
        super().__init__(**kwargs)
        for name, v in (("l1", l1), ("l2", l2)):
            if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)) or not v >= 0:
                raise ValueError(f"Invalid value received for argument `{name}` of ActivityRegularization: "
                                 f"expected a float >= 0, received {name}={v!r}")
        self.l1 = float(l1)
        self.l2 = float(l2)
        self.supports_masking = True

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape:
        return tuple(input_shape)

    def penalty(self, x: ArrayLike) -> float:
        """The loss this layer adds for an output x."""
        x = np.asarray(x)
        batch = x.shape[0] if x.ndim else 1
        total = 0.0
        if self.l1:
            total += self.l1 * float(np.abs(x).sum(dtype=np.float64))
        if self.l2:
            total += self.l2 * float(np.square(x, dtype=np.float64).sum())
        return total / batch if batch else 0.0

    def forward(self, ctx: CallContext, inputs: np.ndarray, training: bool = False) -> np.ndarray:
        ctx.losses = [self.penalty(inputs)]
        if ctx.record:
            ctx.x = inputs
        return inputs

    def backward(self, ctx: CallContext, dy: np.ndarray) -> np.ndarray | None:
        if not ctx.need_dx:
            return None
        x = ctx.x
        dt = x.dtype.type
        batch = x.shape[0] if x.ndim else 1
        dx = np.array(dy, dtype=x.dtype, copy=True)
        if batch == 0:
            return dx
        if self.l1:
            dx += dt(self.l1 / batch) * np.sign(x)
        if self.l2:
            dx += dt(2 * self.l2 / batch) * x
        return dx

    def get_config(self) -> Config:
        cfg = super().get_config()
        cfg.update({"l1": self.l1, "l2": self.l2})
        return cfg
