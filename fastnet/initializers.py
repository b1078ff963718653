"""Weight initializers with Keras 3's names, defaults and formulas.

Example:
    >>> from fastnet import initializers
    >>> w = initializers.GlorotUniform(seed=0)((3, 4))
    >>> w.shape, str(w.dtype)
    ((3, 4), 'float32')
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from fastnet import config
from fastnet import random as _random

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

    from fastnet._typing import Config, CustomObjects, DTypeLike, InitializerLike

__all__ = [
    "Initializer", "Zeros", "Ones", "Constant", "RandomUniform", "RandomNormal",
    "TruncatedNormal", "VarianceScaling", "GlorotUniform", "GlorotNormal", "HeUniform",
    "HeNormal", "LecunUniform", "LecunNormal", "Orthogonal", "Identity", "get", "serialize",
    "deserialize",
]


def compute_fans(shape: Sequence[int]) -> tuple[int, int]:
    """(fan_in, fan_out) as Keras computes them; conv kernels multiply by the receptive field."""
    shape = tuple(shape)
    if len(shape) < 1:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


class Initializer:
    """Base class: ``initializer(shape, dtype=None)`` returns a new numpy array."""

    def __call__(self, shape: Sequence[int], dtype: DTypeLike | None = None) -> np.ndarray:
        raise NotImplementedError

    def get_config(self) -> Config:
        return {}

    @classmethod
    def from_config(cls, config_dict: Config) -> Initializer:
        return cls(**config_dict)

    def _rng(self):
        seed = getattr(self, "seed", None)
        return _random.generator() if seed is None else np.random.default_rng(seed)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def _dtype(dtype):
    return np.dtype(dtype or config.floatx())


class Zeros(Initializer):
    def __call__(self, shape: Sequence[int], dtype: DTypeLike | None = None) -> np.ndarray:
        return np.zeros(shape, dtype=_dtype(dtype))


class Ones(Initializer):
    def __call__(self, shape: Sequence[int], dtype: DTypeLike | None = None) -> np.ndarray:
        return np.ones(shape, dtype=_dtype(dtype))


class Constant(Initializer):
    def __init__(self, value: Any = 0.0) -> None:
        self.value = value

    def __call__(self, shape: Sequence[int], dtype: DTypeLike | None = None) -> np.ndarray:
        return np.broadcast_to(np.asarray(self.value, dtype=_dtype(dtype)), shape).copy()

    def get_config(self) -> Config:
        return {"value": self.value}


class RandomUniform(Initializer):
    def __init__(self, minval: float = -0.05, maxval: float = 0.05, seed: int | None = None) -> None:
        self.minval, self.maxval, self.seed = minval, maxval, seed

    def __call__(self, shape: Sequence[int], dtype: DTypeLike | None = None) -> np.ndarray:
        return self._rng().uniform(self.minval, self.maxval, size=shape).astype(_dtype(dtype))

    def get_config(self) -> Config:
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed}


class RandomNormal(Initializer):
    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None) -> None:
        self.mean, self.stddev, self.seed = mean, stddev, seed

    def __call__(self, shape: Sequence[int], dtype: DTypeLike | None = None) -> np.ndarray:
        return self._rng().normal(self.mean, self.stddev, size=shape).astype(_dtype(dtype))

    def get_config(self) -> Config:
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


def _truncated_normal(rng, shape, mean, stddev):
    """Normal samples redrawn until within two standard deviations (as TF/Keras do)."""
    out = rng.standard_normal(size=shape)
    bad = np.abs(out) > 2
    while bad.any():
        out[bad] = rng.standard_normal(size=int(bad.sum()))
        bad = np.abs(out) > 2
    return mean + stddev * out


class TruncatedNormal(Initializer):
    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None) -> None:
        self.mean, self.stddev, self.seed = mean, stddev, seed

    def __call__(self, shape: Sequence[int], dtype: DTypeLike | None = None) -> np.ndarray:
        return _truncated_normal(self._rng(), shape, self.mean, self.stddev).astype(_dtype(dtype))

    def get_config(self) -> Config:
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


class VarianceScaling(Initializer):
    _MODES = ("fan_in", "fan_out", "fan_avg")
    _DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "uniform")

    def __init__(self, scale: float = 1.0, mode: str = "fan_in", distribution: str = "truncated_normal",
                 seed: int | None = None) -> None:
        if scale <= 0.0:
            raise ValueError(f"VarianceScaling scale must be positive, received {scale}")
        if mode not in self._MODES:
            raise ValueError(f"Unknown mode {mode!r}; expected one of {list(self._MODES)}")
        distribution = distribution.lower()
        if distribution == "normal":
            distribution = "truncated_normal"
        if distribution not in self._DISTRIBUTIONS:
            raise ValueError(f"Unknown distribution {distribution!r}; expected one of "
                             f"{list(self._DISTRIBUTIONS)}")
        self.scale, self.mode, self.distribution, self.seed = scale, mode, distribution, seed

    def __call__(self, shape: Sequence[int], dtype: DTypeLike | None = None) -> np.ndarray:
        fan_in, fan_out = compute_fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[self.mode]
        scale = self.scale / max(1.0, n)
        rng = self._rng()
        if self.distribution == "truncated_normal":
            # 0.8796... is the stddev of a standard normal truncated to (-2, 2).
            out = _truncated_normal(rng, shape, 0.0, math.sqrt(scale) / 0.87962566103423978)
        elif self.distribution == "untruncated_normal":
            out = rng.normal(0.0, math.sqrt(scale), size=shape)
        else:
            limit = math.sqrt(3.0 * scale)
            out = rng.uniform(-limit, limit, size=shape)
        return np.asarray(out).astype(_dtype(dtype))

    def get_config(self) -> Config:
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution,
                "seed": self.seed}


def _variance_scaling_class(name, scale, mode, distribution):
    def __init__(self, seed: int | None = None) -> None:
        VarianceScaling.__init__(self, scale, mode, distribution, seed)

    def get_config(self) -> Config:
        return {"seed": self.seed}

    return type(name, (VarianceScaling,), {"__init__": __init__, "get_config": get_config,
                                           "__doc__": f"VarianceScaling(scale={scale}, mode='{mode}', "
                                                      f"distribution='{distribution}')."})


GlorotUniform = _variance_scaling_class("GlorotUniform", 1.0, "fan_avg", "uniform")
GlorotNormal = _variance_scaling_class("GlorotNormal", 1.0, "fan_avg", "truncated_normal")
HeUniform = _variance_scaling_class("HeUniform", 2.0, "fan_in", "uniform")
HeNormal = _variance_scaling_class("HeNormal", 2.0, "fan_in", "truncated_normal")
LecunUniform = _variance_scaling_class("LecunUniform", 1.0, "fan_in", "uniform")
LecunNormal = _variance_scaling_class("LecunNormal", 1.0, "fan_in", "truncated_normal")
for _cls in (GlorotUniform, GlorotNormal, HeUniform, HeNormal, LecunUniform, LecunNormal):
    _cls.__module__ = __name__


class Orthogonal(Initializer):
    """Orthogonal matrix (QR of a normal matrix, signs fixed by R's diagonal) times gain."""

    def __init__(self, gain: float = 1.0, seed: int | None = None) -> None:
        self.gain, self.seed = gain, seed

    def __call__(self, shape: Sequence[int], dtype: DTypeLike | None = None) -> np.ndarray:
        if len(shape) < 2:
            raise ValueError(f"Orthogonal initializer needs a shape of rank >= 2, received {tuple(shape)}")
        rows = math.prod(shape[:-1])
        cols = shape[-1]
        a = self._rng().standard_normal(size=(max(rows, cols), min(rows, cols)))
        with config._blas_one_thread():  # 512 x 128: 4 ms on one thread, 14 ms on two
            q, r = np.linalg.qr(a)
        q = q * np.sign(np.diag(r))
        if rows < cols:
            q = q.T
        return (self.gain * q.reshape(shape)).astype(_dtype(dtype))

    def get_config(self) -> Config:
        return {"gain": self.gain, "seed": self.seed}


class Identity(Initializer):
    def __init__(self, gain: float = 1.0) -> None:
        self.gain = gain

    def __call__(self, shape: Sequence[int], dtype: DTypeLike | None = None) -> np.ndarray:
        if len(shape) != 2:
            raise ValueError(f"Identity initializer needs a 2-D shape, received {tuple(shape)}")
        return (self.gain * np.eye(shape[0], shape[1])).astype(_dtype(dtype))

    def get_config(self) -> Config:
        return {"gain": self.gain}


_CLASSES = {c.__name__: c for c in (
    Zeros, Ones, Constant, RandomUniform, RandomNormal, TruncatedNormal, VarianceScaling,
    GlorotUniform, GlorotNormal, HeUniform, HeNormal, LecunUniform, LecunNormal, Orthogonal,
    Identity)}
_ALIASES = {
    "zeros": Zeros, "ones": Ones, "constant": Constant, "random_uniform": RandomUniform,
    "uniform": RandomUniform, "random_normal": RandomNormal, "normal": RandomNormal,
    "truncated_normal": TruncatedNormal, "variance_scaling": VarianceScaling,
    "glorot_uniform": GlorotUniform, "glorot_normal": GlorotNormal, "he_uniform": HeUniform,
    "he_normal": HeNormal, "lecun_uniform": LecunUniform, "lecun_normal": LecunNormal,
    "orthogonal": Orthogonal, "identity": Identity,
}

# Lower-case function aliases, as in keras.initializers (e.g. ``initializers.glorot_uniform``).
zeros, ones, constant = Zeros, Ones, Constant
random_uniform, random_normal, truncated_normal = RandomUniform, RandomNormal, TruncatedNormal
glorot_uniform, glorot_normal = GlorotUniform, GlorotNormal
he_uniform, he_normal, lecun_uniform, lecun_normal = HeUniform, HeNormal, LecunUniform, LecunNormal
orthogonal, identity, variance_scaling = Orthogonal, Identity, VarianceScaling


def get(identifier: InitializerLike | None) -> Initializer | Callable[..., Any] | None:
    """Returns an initializer from a name, class name, config dict, instance or callable."""
    if identifier is None:
        return None
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, str):
        cls = _ALIASES.get(identifier) or _CLASSES.get(identifier)
        if cls is None:
            raise ValueError(f"Unknown initializer {identifier!r}. Valid names: "
                             f"{sorted(set(_ALIASES) | set(_CLASSES))}")
        return cls()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, type) and issubclass(identifier, Initializer):
        return identifier()
    if callable(identifier):
        return identifier
    raise ValueError(f"Could not interpret initializer identifier {identifier!r}")


def serialize(initializer: Initializer) -> Config:
    return {"module": "keras.initializers", "class_name": type(initializer).__name__,
            "config": initializer.get_config(), "registered_name": None}


def deserialize(config_dict: Config | str, custom_objects: CustomObjects | None = None) -> Initializer:
    if isinstance(config_dict, str):  # a class name or alias alone: its defaults
        config_dict = {"class_name": config_dict, "config": {}}
    name = config_dict["class_name"]
    cls = (custom_objects or {}).get(name) or _CLASSES.get(name) or _ALIASES.get(name)
    if cls is None:
        raise ValueError(f"Unknown initializer class {name!r}. Valid names: {sorted(_CLASSES)}")
    return cls.from_config(config_dict.get("config", {}))
