"""Weight regularizers (L1, L2, L1L2) whose penalties join the training loss.

Example:
    >>> import numpy as np
    >>> from fastnet.regularizers import L2
    >>> round(float(L2(0.01)(np.ones((2, 2), dtype=np.float32))), 6)
    0.04
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from fastnet._typing import ArrayLike, Config, CustomObjects, RegularizerLike

__all__ = ["Regularizer", "L1", "L2", "L1L2", "get", "serialize", "deserialize", "l1", "l2", "l1_l2"]


class Regularizer:
    """``regularizer(w)`` is the penalty; ``gradient(w)`` its derivative with respect to w."""

    def __call__(self, x: ArrayLike) -> float | np.floating:
        raise NotImplementedError

    def gradient(self, x: ArrayLike) -> np.ndarray:
        raise NotImplementedError

    def get_config(self) -> Config:
        return {}

    @classmethod
    def from_config(cls, config_dict: Config) -> Regularizer:
        return cls(**config_dict)

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(f'{k}={v}' for k, v in self.get_config().items())})"


class L1L2(Regularizer):
    """``l1 * sum(|x|) + l2 * sum(x**2)``."""

    def __init__(self, l1: float = 0.0, l2: float = 0.0) -> None:
        for name, v in (("l1", l1), ("l2", l2)):
            if not np.isfinite(v) or v < 0:
                raise ValueError(f"{type(self).__name__} {name} must be a non-negative finite "
                                 f"number, received {v}")
        self.l1 = float(l1)
        self.l2 = float(l2)

    def __call__(self, x: ArrayLike) -> float | np.floating:
        x = np.asarray(x)
        out = 0.0
        if self.l1:
            out += self.l1 * float(np.abs(x).sum(dtype=np.float64))
        if self.l2:
            out += self.l2 * float(np.square(x).sum(dtype=np.float64))
        return np.float32(out) if x.dtype == np.float32 else out

    def gradient(self, x: ArrayLike) -> np.ndarray:
        x = np.asarray(x)
        g = np.zeros_like(x)
        if self.l1:
            g += self.l1 * np.sign(x)
        if self.l2:
            g += (2 * self.l2) * x
        return g

    def get_config(self) -> Config:
        return {"l1": self.l1, "l2": self.l2}


class L1(L1L2):
    def __init__(self, l1: float = 0.01) -> None:
        super().__init__(l1=l1)

    def get_config(self) -> Config:
        return {"l1": self.l1}


class L2(L1L2):
    def __init__(self, l2: float = 0.01) -> None:
        super().__init__(l2=l2)

    def get_config(self) -> Config:
        return {"l2": self.l2}


l1, l2, l1_l2 = L1, L2, L1L2
_CLASSES = {"L1": L1, "L2": L2, "L1L2": L1L2}
_ALIASES = {"l1": L1, "l2": L2, "l1_l2": L1L2, "l1l2": L1L2}


def get(identifier: RegularizerLike | None) -> Regularizer | Callable[..., Any] | None:
    if identifier is None:
        return None
    if isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, str):
        cls = _ALIASES.get(identifier) or _CLASSES.get(identifier)
        if cls is None:
            raise ValueError(f"Unknown regularizer {identifier!r}. Valid names: "
                             f"{sorted(set(_ALIASES) | set(_CLASSES))}")
        return cls()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if callable(identifier):
        return identifier
    raise ValueError(f"Could not interpret regularizer identifier {identifier!r}")


def serialize(regularizer: Regularizer) -> Config:
    return {"module": "keras.regularizers", "class_name": type(regularizer).__name__,
            "config": regularizer.get_config(), "registered_name": None}


def deserialize(config_dict: Config | str, custom_objects: CustomObjects | None = None) -> Regularizer:
    if isinstance(config_dict, str):  # a class name or alias alone: its defaults
        config_dict = {"class_name": config_dict, "config": {}}
    name = config_dict["class_name"]
    cls = (custom_objects or {}).get(name) or _CLASSES.get(name) or _ALIASES.get(name)
    if cls is None:
        raise ValueError(f"Unknown regularizer class {name!r}. Valid names: {sorted(_CLASSES)}")
    return cls.from_config(config_dict.get("config", {}))
