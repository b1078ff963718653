"""Activation functions, as in ``keras.activations``.

Each built-in activation is a callable on numpy arrays and also carries the code
of the compiled kernel that layers fuse into their forward and backward passes.

Example:
    >>> import numpy as np
    >>> from fastnet import activations
    >>> activations.relu(np.array([-1.0, 2.0], dtype=np.float32))
    array([0., 2.], dtype=float32)
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from fastnet import config

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from fastnet._typing import ActivationLike, ArrayLike, Config, CustomObjects

__all__ = [
    "get", "serialize", "deserialize", "linear", "relu", "sigmoid", "tanh", "softmax",
    "log_softmax", "elu", "selu", "softplus", "softsign", "silu", "swish", "gelu",
    "hard_sigmoid", "hard_silu", "hard_swish", "relu6", "leaky_relu", "exponential", "mish",
]

# Kernel codes (fastnet/_kernels/_activations.pxd).
_CODES = {
    "linear": 0, "relu": 1, "sigmoid": 2, "tanh": 3, "softmax": 4, "elu": 5, "selu": 6,
    "softplus": 7, "softsign": 8, "silu": 9, "gelu": 10, "gelu_tanh": 11,
    "hard_sigmoid": 12, "relu6": 13, "leaky_relu": 14, "exponential": 15, "hard_silu": 16,
    "mish": 17, "log_softmax": 18,
}


def _kernels():
    from fastnet._kernels import _activations
    return _activations


def _rows(x):
    x = np.ascontiguousarray(x)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(config.floatx())
    if x.ndim == 0:
        return x, x.reshape(1, 1)
    return x, x.reshape(-1, x.shape[-1]) if x.shape[-1] else x.reshape(0, 0)


class Activation:
    """A built-in activation: callable on arrays, fused by layers through ``code``."""

    __slots__ = ("name", "code", "alpha", "needs_input")

    def __init__(self, name: str, code: int, alpha: float = 0.0, needs_input: bool = False) -> None:
        self.name = name
        self.code = code
        self.alpha = alpha
        self.needs_input = needs_input

    def __call__(self, x: ArrayLike, axis: int = -1) -> np.ndarray:
        if axis not in (-1, None) and self.code in (4, 18):
            moved = np.moveaxis(np.asarray(x), axis, -1)
            return np.moveaxis(self(moved), -1, axis)
        x, rows = _rows(x)
        out = np.empty_like(x)
        if rows.size:
            _kernels().forward(self.code, rows, out.reshape(rows.shape), self.alpha,
                               config.get_num_threads())
        return out

    def gradient(self, dy: np.ndarray, y: np.ndarray, z: np.ndarray | None = None) -> np.ndarray:
        """dz from dy, the output y and (for gelu, silu, hard_silu, mish) the input z."""
        dy = np.ascontiguousarray(dy, dtype=y.dtype)
        dz = np.empty_like(dy)
        r = (-1, y.shape[-1]) if y.ndim else (1, 1)
        if y.size:
            _kernels().backward(self.code, dy.reshape(r), np.ascontiguousarray(y).reshape(r),
                                None if z is None else np.ascontiguousarray(z, dtype=y.dtype).reshape(r),
                                dz.reshape(r), self.alpha, config.get_num_threads())
        return dz

    def __repr__(self):
        return f"<activation {self.name}>"

    def __reduce__(self):
        return (get, (self.name,))


def _make(name, kernel_name=None, alpha=0.0):
    kn = kernel_name or name
    code = _CODES[kn]
    return Activation(name, code, alpha, kn in ("gelu", "gelu_tanh", "silu", "hard_silu", "mish"))


linear = _make("linear")
relu = _make("relu")
sigmoid = _make("sigmoid")
tanh = _make("tanh")
softmax = _make("softmax")
log_softmax = _make("log_softmax")
elu = _make("elu", alpha=1.0)
selu = _make("selu")
softplus = _make("softplus")
softsign = _make("softsign")
silu = _make("silu")
swish = _make("swish", "silu")
gelu = _make("gelu")
hard_sigmoid = _make("hard_sigmoid")
hard_silu = _make("hard_silu")
hard_swish = _make("hard_swish", "hard_silu")
relu6 = _make("relu6")
leaky_relu = _make("leaky_relu", alpha=0.2)
exponential = _make("exponential")
mish = _make("mish")

_BY_NAME = {a.name: a for a in (
    linear, relu, sigmoid, tanh, softmax, log_softmax, elu, selu, softplus, softsign, silu,
    swish, gelu, hard_sigmoid, hard_silu, hard_swish, relu6, leaky_relu, exponential, mish)}


def get(identifier: ActivationLike | None) -> Callable[..., Any]:
    """Returns the activation for a name, an activation, a callable or None (linear)."""
    if identifier is None:
        return linear
    if isinstance(identifier, Activation):
        return identifier
    if isinstance(identifier, str):
        act = _BY_NAME.get(identifier)
        if act is None:
            raise ValueError(f"Unknown activation {identifier!r}. Valid names: {sorted(_BY_NAME)}")
        return act
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if callable(identifier):
        return identifier
    raise ValueError(f"Could not interpret activation identifier {identifier!r}: expected a "
                     f"name (one of {sorted(_BY_NAME)}), a callable or None")


def serialize(activation: Callable[..., Any]) -> str:
    """The name Keras stores in a layer config."""
    act = get(activation)
    if isinstance(act, Activation):
        return act.name
    return getattr(act, "__name__", str(act))


def deserialize(config_value: str | Config, custom_objects: CustomObjects | None = None) -> Callable[..., Any]:
    if isinstance(config_value, dict):
        config_value = config_value.get("config", config_value.get("class_name"))
    if custom_objects and isinstance(config_value, str) and config_value in custom_objects:
        return custom_objects[config_value]
    return get(config_value)
