"""GroupNormalization, RMSNormalization and UnitNormalization.

Each moves its normalised axes last (a copy only when they are not last already)
and runs the fused kernels of ``fastnet._kernels.normalization_extra``: one pass
for the statistics and the output, one for all gradients.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from fastnet import config, initializers, regularizers
from fastnet._kernels import normalization_extra as _nk
from fastnet.layers._v2 import ContextCallMixin
from fastnet.layers.base import InputSpec, Layer, _shape_str
from fastnet.layers.core import _serialize_initializer, _serialize_regularizer

if TYPE_CHECKING:
    from fastnet._typing import Config, ConstraintLike, InitializerLike, RegularizerLike, Shape, ShapeLike
    from fastnet.layers._v2 import CallContext

__all__ = ["GroupNormalization", "RMSNormalization", "UnitNormalization"]


def _axes(layer, axis, rank):
    """Normalised axes as sorted non-negative ints, checked against the input rank."""
    axes = list(axis) if isinstance(axis, (list, tuple)) else [axis]
    out = []
    for a in axes:
        if isinstance(a, bool) or not isinstance(a, (int, np.integer)) or not -rank <= a < rank:
            raise ValueError(f'Layer "{layer.name}" ({type(layer).__name__}): axis {a!r} is out of bounds for '
                             f"input of rank {rank} (received axis={axis!r})")
        out.append(int(a) % rank)
    if len(set(out)) != len(out):
        raise ValueError(f'Layer "{layer.name}" ({type(layer).__name__}): repeated axis in axis={axis!r}')
    if 0 in out:
        raise ValueError(f'Layer "{layer.name}" ({type(layer).__name__}): cannot normalise over the batch '
                         f"axis (axis={axis!r})")
    return sorted(out)


class _Rows:
    """x viewed as (rows, features) with the given axes last, and the way back."""

    __slots__ = ("perm", "inv_perm", "moved_shape", "identity")

    def __init__(self, shape, axes):
        rank = len(shape)
        rest = [i for i in range(rank) if i not in axes]
        self.perm = tuple(rest + list(axes))
        self.identity = self.perm == tuple(range(rank))
        self.inv_perm = tuple(np.argsort(self.perm))
        self.moved_shape = tuple(shape[i] for i in self.perm)

    def to_rows(self, x, features):
        if not self.identity:
            x = np.transpose(x, self.perm)
        return np.ascontiguousarray(x).reshape(-1, features)

    def back(self, r):
        r = r.reshape(self.moved_shape)
        return r if self.identity else np.ascontiguousarray(np.transpose(r, self.inv_perm))


class RMSNormalization(ContextCallMixin, Layer):
    """Root-mean-square normalisation: ``x * rsqrt(mean(x^2) + epsilon) * scale`` over ``axis``.

    Args:
        axis: int or list of ints, the axes normalised together (default -1).
        epsilon: small float added to the mean square (default 1e-6).

    Input shape:
        Arbitrary (rank >= 2).

    Output shape:
        Same as the input.

    Weights: ``scale`` with the sizes of the normalised axes (initialised to ones).

    Example:
        >>> import numpy as np
        >>> from fastnet.layers import RMSNormalization
        >>> RMSNormalization()(np.full((1, 4), 2.0)).round(3)
        array([[1., 1., 1., 1.]], dtype=float32)
    """

    def __init__(self, axis: int | list[int] = -1, epsilon: float = 1e-6, **kwargs) -> None:
        super().__init__(**kwargs)
        if isinstance(axis, tuple):
            axis = list(axis)
        self.axis = axis
        self.epsilon = float(epsilon)
        self.scale = None
        self.input_spec = InputSpec(min_ndim=2)

    def build(self, input_shape: ShapeLike) -> None:
        axes = _axes(self, self.axis, len(input_shape))
        dims = tuple(input_shape[a] for a in axes)
        if any(d is None for d in dims):
            raise ValueError(f'Layer "{self.name}" (RMSNormalization) needs the normalised axes {axes} to be '
                             f"defined, received input shape {_shape_str(input_shape)}")
        self.scale = self.add_weight("scale", dims, "ones")
        # Keras keeps the axes as a list once built.
        self.axis = sorted(self.axis) if isinstance(self.axis, list) else [self.axis]
        self.input_spec = InputSpec(ndim=len(input_shape), axes={a: d for a, d in zip(axes, dims)})
        self.built = True

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape:
        _axes(self, self.axis, len(input_shape))
        return tuple(input_shape)

    def forward(self, ctx: CallContext, inputs: np.ndarray, training: bool = False) -> np.ndarray:
        axes = _axes(self, self.axis, inputs.ndim)
        view = _Rows(inputs.shape, axes)
        feats = self.scale.value.size
        x = view.to_rows(inputs, feats)
        y = ctx.buf("y", x.shape, x.dtype)
        inv = ctx.buf("inv", (x.shape[0],), x.dtype)
        _nk.rms_forward(x, self.scale.value.reshape(-1), y, inv, self.epsilon, config._n_threads)
        if ctx.record:
            ctx.x, ctx.inv, ctx.view = x, inv, view
        return view.back(y)

    def backward(self, ctx: CallContext, dy: np.ndarray) -> np.ndarray | None:
        x, inv, view = ctx.x, ctx.inv, ctx.view
        g = view.to_rows(np.asarray(dy, dtype=x.dtype), x.shape[1])
        want_w = self.trainable and self.scale.trainable
        ds = self.scale.grad_buffer().reshape(-1) if want_w else None
        dx = ctx.buf("dx", x.shape, x.dtype) if ctx.need_dx else None
        _nk.rms_backward(g, x, self.scale.value.reshape(-1), inv, dx, ds, config._n_threads)
        return None if dx is None else view.back(dx)

    def get_config(self) -> Config:
        cfg = super().get_config()
        cfg.update({"axis": self.axis, "epsilon": self.epsilon})
        return cfg


class UnitNormalization(ContextCallMixin, Layer):
    """Scales each vector along ``axis`` to unit L2 norm: ``x / max(||x||, 1e-12)``.

    Args:
        axis: int or list of ints, the axes whose values form one vector (default -1).

    Input shape:
        Arbitrary (rank >= 2).

    Output shape:
        Same as the input.

    Example:
        >>> import numpy as np
        >>> from fastnet.layers import UnitNormalization
        >>> UnitNormalization()(np.array([[3.0, 4.0]]))
        array([[0.6, 0.8]], dtype=float32)
    """

    _EPSILON = 1e-12

    def __init__(self, axis: int | list[int] = -1, **kwargs) -> None:
        super().__init__(**kwargs)
        if isinstance(axis, (list, tuple)):
            axis = list(axis)
        elif isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise TypeError(f"Invalid value for `axis` argument of UnitNormalization: expected an int or a "
                            f"list/tuple of ints, received axis={axis!r}")
        self.axis = axis
        self.supports_masking = True

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape:
        _axes(self, self.axis, len(input_shape))
        return tuple(input_shape)

    def forward(self, ctx: CallContext, inputs: np.ndarray, training: bool = False) -> np.ndarray:
        axes = _axes(self, self.axis, inputs.ndim)
        view = _Rows(inputs.shape, axes)
        feats = int(np.prod([inputs.shape[a] for a in axes]))
        x = view.to_rows(inputs, feats)
        y = ctx.buf("y", x.shape, x.dtype)
        inv = ctx.buf("inv", (x.shape[0],), x.dtype)
        _nk.unit_forward(x, y, inv, self._EPSILON, config._n_threads)
        if ctx.record:
            ctx.x, ctx.inv, ctx.view = x, inv, view
        return view.back(y)

    def backward(self, ctx: CallContext, dy: np.ndarray) -> np.ndarray | None:
        if not ctx.need_dx:
            return None
        x, inv, view = ctx.x, ctx.inv, ctx.view
        g = view.to_rows(np.asarray(dy, dtype=x.dtype), x.shape[1])
        dx = ctx.buf("dx", x.shape, x.dtype)
        _nk.unit_backward(g, x, inv, dx, self._EPSILON, config._n_threads)
        return view.back(dx)

    def get_config(self) -> Config:
        cfg = super().get_config()
        cfg["axis"] = self.axis
        return cfg


class GroupNormalization(ContextCallMixin, Layer):
    """Group normalisation: the channels along ``axis`` split into ``groups`` groups, each
    normalised by its mean and variance over the group's channels and all other non-batch axes.

    Args:
        groups: number of groups (default 32); must divide the channels. -1 gives one group
            per channel (instance normalisation).
        axis: the channel axis (default -1).
        epsilon: small float added to the variance (default 1e-3).
        center: add the learned offset ``beta`` (default True).
        scale: multiply by the learned ``gamma`` (default True).
        beta_initializer, gamma_initializer: initializers (zeros, ones).
        beta_regularizer, gamma_regularizer: optional penalties.
        beta_constraint, gamma_constraint: optional projections after updates.

    Input shape:
        Arbitrary (rank >= 2).

    Output shape:
        Same as the input.

    Weights: ``gamma`` then ``beta``, one value per channel.

    Example:
        >>> import numpy as np
        >>> from fastnet.layers import GroupNormalization
        >>> GroupNormalization(groups=2)(np.arange(8.0).reshape(1, 2, 4)).shape
        (1, 2, 4)
    """

    def __init__(self, groups: int = 32, axis: int = -1, epsilon: float = 1e-3, center: bool = True,
                 scale: bool = True, beta_initializer: InitializerLike = "zeros",
                 gamma_initializer: InitializerLike = "ones", beta_regularizer: RegularizerLike | None = None,
                 gamma_regularizer: RegularizerLike | None = None, beta_constraint: ConstraintLike | None = None,
                 gamma_constraint: ConstraintLike | None = None, **kwargs) -> None:
        if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or (groups <= 0 and groups != -1):
            raise ValueError(f"Received an invalid value for argument `groups` of GroupNormalization: expected a "
                             f"positive integer (or -1 for instance normalization), received groups={groups!r}")
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise TypeError(f"GroupNormalization axis must be an int, received axis={axis!r}")
        super().__init__(**kwargs)
        self.groups = int(groups)
        self.axis = int(axis)
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.beta_constraint = beta_constraint
        self.gamma_constraint = gamma_constraint
        self.gamma = None
        self.beta = None
        self.supports_masking = True
        self.input_spec = InputSpec(min_ndim=2)

    def build(self, input_shape: ShapeLike) -> None:
        (axis,) = _axes(self, self.axis, len(input_shape))
        dim = input_shape[axis]
        if dim is None:
            raise ValueError(f'Layer "{self.name}" (GroupNormalization): axis {self.axis} of the input should '
                             f"have a defined dimension, received input shape {_shape_str(input_shape)}")
        if self.groups == -1:
            self.groups = dim
        if dim < self.groups:
            raise ValueError(f'Layer "{self.name}" (GroupNormalization): the number of groups ({self.groups}) '
                             f"cannot be more than the number of channels ({dim})")
        if dim % self.groups:
            raise ValueError(f'Layer "{self.name}" (GroupNormalization): the number of groups ({self.groups}) '
                             f"must divide the number of channels ({dim})")
        self.input_spec = InputSpec(ndim=len(input_shape), axes={self.axis: dim})
        if self.scale:
            self.gamma = self.add_weight("gamma", (dim,), self.gamma_initializer, self.gamma_regularizer,
                                         constraint=self.gamma_constraint)
        if self.center:
            self.beta = self.add_weight("beta", (dim,), self.beta_initializer, self.beta_regularizer,
                                        constraint=self.beta_constraint)
        self.built = True

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape:
        _axes(self, self.axis, len(input_shape))
        return tuple(input_shape)

    def forward(self, ctx: CallContext, inputs: np.ndarray, training: bool = False) -> np.ndarray:
        (axis,) = _axes(self, self.axis, inputs.ndim)
        view = _Rows(inputs.shape, [axis])
        n, c = inputs.shape[0], inputs.shape[axis]
        x = view.to_rows(inputs, c).reshape(n, -1, c)
        y = ctx.buf("y", x.shape, x.dtype)
        mean = ctx.buf("mean", (n, self.groups), x.dtype)
        inv = ctx.buf("inv", (n, self.groups), x.dtype)
        _nk.group_forward(x, self.gamma.value if self.scale else None, self.beta.value if self.center else None,
                          mean, inv, y, self.epsilon, config._n_threads)
        if ctx.record:
            ctx.x, ctx.mean, ctx.inv, ctx.view = x, mean, inv, view
        return view.back(y)

    def backward(self, ctx: CallContext, dy: np.ndarray) -> np.ndarray | None:
        x, mean, inv, view = ctx.x, ctx.mean, ctx.inv, ctx.view
        g = view.to_rows(np.asarray(dy, dtype=x.dtype), x.shape[2]).reshape(x.shape)
        train = self.trainable
        dgamma = self.gamma.grad_buffer() if (train and self.scale and self.gamma.trainable) else None
        dbeta = self.beta.grad_buffer() if (train and self.center and self.beta.trainable) else None
        dx = ctx.buf("dx", x.shape, x.dtype) if ctx.need_dx else None
        _nk.group_backward(g, x, self.gamma.value if self.scale else None, mean, inv, dx, dgamma, dbeta,
                           config._n_threads)
        return None if dx is None else view.back(dx)

    def get_config(self) -> Config:
        cfg = super().get_config()
        cfg.update({
            "groups": self.groups,
            "axis": self.axis,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "beta_initializer": _serialize_initializer(self.beta_initializer),
            "gamma_initializer": _serialize_initializer(self.gamma_initializer),
            "beta_regularizer": _serialize_regularizer(self.beta_regularizer),
            "gamma_regularizer": _serialize_regularizer(self.gamma_regularizer),
            "beta_constraint": None,
            "gamma_constraint": None,
        })
        return cfg
