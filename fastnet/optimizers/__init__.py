"""Optimizers and learning-rate schedules, as in ``keras.optimizers``.

Example:
    >>> from fastnet import optimizers
    >>> opt = optimizers.get("adam")
    >>> type(opt).__name__, float(opt.learning_rate) == 0.0010000000474974513
    ('Adam', True)
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from fastnet.optimizers import schedules
from fastnet.optimizers.algorithms import (
    SGD,
    Adadelta,
    Adagrad,
    Adam,
    Adamax,
    AdamW,
    Nadam,
    RMSprop,
)
from fastnet.optimizers.base import Optimizer

if TYPE_CHECKING:
    from fastnet._typing import Config, CustomObjects

__all__ = [
    "Optimizer", "SGD", "RMSprop", "Adam", "AdamW", "Adagrad", "Adadelta", "Nadam", "Adamax",
    "schedules", "get", "serialize", "deserialize",
]

ALL_OBJECTS = (SGD, RMSprop, Adam, AdamW, Adagrad, Adadelta, Nadam, Adamax)
ALL_OBJECTS_DICT = {cls.__name__.lower(): cls for cls in ALL_OBJECTS}


def serialize(optimizer: Optimizer) -> Config:
    """The optimizer as Keras's serialized dict (``module``, ``class_name``, ``config``)."""
    if not isinstance(optimizer, Optimizer):
        raise ValueError(f"serialize expects an Optimizer; received {optimizer!r}")
    return {"module": "keras.optimizers", "class_name": type(optimizer).__name__,
            "config": optimizer.get_config(), "registered_name": None}


def _valid_names():
    return sorted(ALL_OBJECTS_DICT) + sorted(c.__name__ for c in ALL_OBJECTS)


def deserialize(config: Config, custom_objects: CustomObjects | None = None) -> Optimizer:
    """An optimizer from ``{"class_name": ..., "config": {...}}`` (class names match
    case-insensitively, as in Keras)."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError("deserialize expects a dict with 'class_name' and 'config'; "
                         f"received {config!r}")
    name = config["class_name"]
    cls = (custom_objects or {}).get(name)
    if cls is None and isinstance(name, str):
        cls = ALL_OBJECTS_DICT.get(name.lower())
    if cls is None:
        raise ValueError(f"Unknown optimizer {name!r}; expected one of {_valid_names()}")
    return cls.from_config(dict(config.get("config") or {}), custom_objects=custom_objects)


def get(identifier: str | Config | Optimizer | type[Optimizer] | None) -> Optimizer | None:
    """An optimizer from a name (``"adam"``), a class name, a config dict or an instance.

    Returns None for None; raises ValueError (listing the valid names) otherwise.
    """
    if identifier is None:
        return None
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        cls = ALL_OBJECTS_DICT.get(identifier.lower())
        if cls is None:
            raise ValueError(f"Unknown optimizer {identifier!r}; expected one of {_valid_names()}")
        return cls()
    if isinstance(identifier, type) and issubclass(identifier, Optimizer):
        return identifier()  # type: ignore[call-arg]  # a subclass: the base alone needs a learning rate
    raise ValueError(f"Could not interpret optimizer identifier: {identifier!r}; expected a "
                     f"name ({_valid_names()}), a config dict or an Optimizer instance")
