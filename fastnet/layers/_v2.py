"""Shared pieces of the layers written to the per-call-context contract.

``call`` runs ``forward`` with a throw-away context (Keras's ``layer.call``);
``new_context`` gives that context: the base module's ``CallContext`` where it
exists, else a plain stand-in with the same fields (every array from ``np.empty``).
The activation helpers apply a layer's activation after a linear kernel and
take its derivative, fused in the compiled activation kernels where possible.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from fastnet import config
from fastnet._kernels import _activations as _act_kernels
from fastnet.layers import base as _base

if TYPE_CHECKING:
    from typing import Any

__all__ = ["CallContext", "SimpleContext", "new_context", "ContextCallMixin", "apply_activation", "activation_grad",
           "to_last", "to_first"]


class SimpleContext:
    """A call record: what ``forward`` keeps for ``backward`` (any attribute), plus the
    flags the contract defines."""

    def __init__(self, record: bool = True, need_dx: bool = True) -> None:
        self.record = record
        self.need_dx = need_dx
        self.keep_logits = False
        self.logits_grad = False
        self.defer_updates = False

    def buf(self, key, shape, dtype):
        return np.empty(shape, dtype=dtype)


# The context type layers receive: the base module's where it exists.
CallContext = getattr(_base, "CallContext", SimpleContext)


def new_context(record: bool = True) -> CallContext:
    ctx_cls = getattr(_base, "CallContext", None)
    if ctx_cls is None:
        return SimpleContext(record=record)
    ctx = ctx_cls()
    ctx.record = record
    return ctx


class ContextCallMixin:
    """``call(inputs, training)``: ``forward`` with a fresh context that records nothing.

    Only while the base class has no per-call-context machinery of its own; once
    ``fastnet.layers.base`` defines ``CallContext``, its ``Layer.call`` is used instead.
    """

    if not hasattr(_base, "CallContext"):
        def call(self, inputs: np.ndarray, training: bool = False, **kwargs) -> Any:
            return self.forward(new_context(record=False), inputs, training=training, **kwargs)


def to_last(x, data_format):
    if data_format == "channels_first":
        return np.ascontiguousarray(np.moveaxis(x, 1, -1))
    return np.ascontiguousarray(x)


def to_first(x, data_format):
    if data_format == "channels_first":
        return np.ascontiguousarray(np.moveaxis(x, -1, 1))
    return x


def apply_activation(ctx, act, z, key="y"):
    """act(z) for a (..., channels) array z; z itself when the activation is linear."""
    if not act.fused:
        return act.apply_python(z)
    if act.code == 0:
        return z
    y = ctx.buf(key, z.shape, z.dtype)
    if z.size:
        shp = (-1, z.shape[-1])
        _act_kernels.forward(act.code, z.reshape(shp), y.reshape(shp), act.alpha, config._n_threads)
    return y


def activation_grad(ctx, act, dy, y, z, layer, key="dz"):
    """dL/dz from dL/dy through the activation (dy itself when it is linear)."""
    if not act.fused:
        return act.gradient_python(dy, y, z, layer)
    if act.code == 0:
        return dy
    dz = ctx.buf(key, y.shape, y.dtype)
    if y.size:
        shp = (-1, y.shape[-1])
        _act_kernels.backward(act.code, dy.reshape(shp), y.reshape(shp),
                              z.reshape(shp) if act.needs_input else None, dz.reshape(shp),
                              act.alpha, config._n_threads)
    return dz
