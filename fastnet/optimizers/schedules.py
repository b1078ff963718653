"""Learning-rate schedules, as in ``keras.optimizers.schedules``.

A schedule is called with the optimizer's step count (the number of updates
already applied) and returns the learning rate for the next update, as a numpy
scalar of the default float type (an array for an array of steps). Pass one as
an optimizer's ``learning_rate``.

Example:
    >>> from fastnet.optimizers import schedules
    >>> s = schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    >>> float(s(10))
    0.05000000074505806
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from fastnet import config as _config

if TYPE_CHECKING:
    from collections.abc import Sequence

    from fastnet._typing import ArrayLike, Config, CustomObjects

__all__ = [
    "LearningRateSchedule", "ExponentialDecay", "PiecewiseConstantDecay", "PolynomialDecay",
    "InverseTimeDecay", "CosineDecay", "CosineDecayRestarts", "serialize", "deserialize",
]


def _out(x):
    out = np.asarray(x, dtype=_config.floatx())
    return out[()] if out.ndim == 0 else out


def _step(step):
    return np.asarray(step, dtype=np.float64)


def _finite(owner, arg, value, positive=False, allow_none=False):
    if value is None and allow_none:
        return value
    ok = (isinstance(value, (int, float, np.integer, np.floating))
          and not isinstance(value, (bool, np.bool_)) and np.isfinite(value))
    if not ok or (positive and value <= 0):
        want = "a number > 0" if positive else "a finite number"
        raise ValueError(f"{owner}: argument `{arg}` must be {want}; received {arg}={value!r}")
    return value


class LearningRateSchedule:
    """Base class: subclasses implement ``__call__(step)`` and ``get_config()``."""

    def __call__(self, step: int | ArrayLike) -> np.floating | np.ndarray:
        raise NotImplementedError(f"Learning rate schedule '{type(self).__name__}' must "
                                  "override `__call__(self, step)`.")

    def get_config(self) -> Config:
        raise NotImplementedError(f"Learning rate schedule '{type(self).__name__}' must "
                                  "override `get_config()` in order to be serializable.")

    @classmethod
    def from_config(cls, config: Config) -> LearningRateSchedule:
        return cls(**config)

    def __repr__(self):
        try:
            cfg = self.get_config()
        except NotImplementedError:
            cfg = {}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in cfg.items())})"


class ExponentialDecay(LearningRateSchedule):
    """``initial_learning_rate * decay_rate ** (step / decay_steps)``; with ``staircase``
    the exponent is ``floor(step / decay_steps)``."""

    def __init__(self, initial_learning_rate: float, decay_steps: int, decay_rate: float, staircase: bool = False,
                 name: str = "ExponentialDecay") -> None:
        cls = type(self).__name__
        self.initial_learning_rate = _finite(cls, "initial_learning_rate", initial_learning_rate)
        self.decay_steps = _finite(cls, "decay_steps", decay_steps, positive=True)
        self.decay_rate = _finite(cls, "decay_rate", decay_rate)
        self.staircase = bool(staircase)
        self.name = name

    def __call__(self, step: int | ArrayLike) -> np.floating | np.ndarray:
        p = _step(step) / self.decay_steps
        if self.staircase:
            p = np.floor(p)
        return _out(self.initial_learning_rate * np.power(float(self.decay_rate), p))

    def get_config(self) -> Config:
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "decay_rate": self.decay_rate,
                "staircase": self.staircase, "name": self.name}


class PiecewiseConstantDecay(LearningRateSchedule):
    """``values[0]`` while ``step <= boundaries[0]``, ``values[1]`` while
    ``boundaries[0] < step <= boundaries[1]``, ..., ``values[-1]`` after the last boundary."""

    def __init__(self, boundaries: Sequence[int], values: Sequence[float], name: str = "PiecewiseConstant") -> None:
        cls = type(self).__name__
        boundaries, values = list(boundaries), list(values)
        if len(boundaries) != len(values) - 1:
            raise ValueError(
                f"{cls}: the length of boundaries should be 1 less than the length of values; "
                f"received boundaries={boundaries} of length {len(boundaries)}, and "
                f"values={values} of length {len(values)}.")
        for i, b in enumerate(boundaries):
            _finite(cls, f"boundaries[{i}]", b)
        for i, v in enumerate(values):
            _finite(cls, f"values[{i}]", v)
        if any(b1 >= b2 for b1, b2 in zip(boundaries, boundaries[1:])):
            raise ValueError(f"{cls}: boundaries must be strictly increasing; received {boundaries}")
        self.boundaries = boundaries
        self.values = values
        self.name = name

    def __call__(self, step: int | ArrayLike) -> np.floating | np.ndarray:
        s = _step(step)
        # index of the first boundary >= step: values[i] applies.
        idx = np.searchsorted(np.asarray(self.boundaries, dtype=np.float64), s, side="left")
        return _out(np.asarray(self.values, dtype=np.float64)[idx])

    def get_config(self) -> Config:
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


class PolynomialDecay(LearningRateSchedule):
    """``(initial - end) * (1 - min(step, decay_steps) / decay_steps) ** power + end``; with
    ``cycle`` the horizon grows to the first multiple of ``decay_steps`` above the step."""

    def __init__(self, initial_learning_rate: float, decay_steps: int, end_learning_rate: float = 0.0001,
                 power: float = 1.0, cycle: bool = False, name: str = "PolynomialDecay") -> None:
        cls = type(self).__name__
        self.initial_learning_rate = _finite(cls, "initial_learning_rate", initial_learning_rate)
        self.decay_steps = _finite(cls, "decay_steps", decay_steps, positive=True)
        self.end_learning_rate = _finite(cls, "end_learning_rate", end_learning_rate)
        self.power = _finite(cls, "power", power)
        self.cycle = bool(cycle)
        self.name = name

    def __call__(self, step: int | ArrayLike) -> np.floating | np.ndarray:
        s = _step(step)
        steps = float(self.decay_steps)
        if self.cycle:
            mult = np.where(s == 0, 1.0, np.ceil(s / steps))
            steps = steps * mult
        else:
            s = np.minimum(s, steps)
        p = s / steps
        return _out((self.initial_learning_rate - self.end_learning_rate)
                    * np.power(1.0 - p, float(self.power)) + self.end_learning_rate)

    def get_config(self) -> Config:
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "end_learning_rate": self.end_learning_rate,
                "power": self.power, "cycle": self.cycle, "name": self.name}


class InverseTimeDecay(LearningRateSchedule):
    """``initial_learning_rate / (1 + decay_rate * step / decay_steps)``; with ``staircase``
    ``step / decay_steps`` is floored."""

    def __init__(self, initial_learning_rate: float, decay_steps: int, decay_rate: float, staircase: bool = False,
                 name: str = "InverseTimeDecay") -> None:
        cls = type(self).__name__
        self.initial_learning_rate = _finite(cls, "initial_learning_rate", initial_learning_rate)
        self.decay_steps = _finite(cls, "decay_steps", decay_steps, positive=True)
        self.decay_rate = _finite(cls, "decay_rate", decay_rate)
        self.staircase = bool(staircase)
        self.name = name

    def __call__(self, step: int | ArrayLike) -> np.floating | np.ndarray:
        p = _step(step) / self.decay_steps
        if self.staircase:
            p = np.floor(p)
        return _out(self.initial_learning_rate / (1.0 + self.decay_rate * p))

    def get_config(self) -> Config:
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "decay_rate": self.decay_rate,
                "staircase": self.staircase, "name": self.name}


class CosineDecay(LearningRateSchedule):
    """Cosine decay with an optional linear warmup.

    Without ``warmup_target``: ``lr = initial * ((1 - alpha) * c + alpha)`` with
    ``c = 0.5 * (1 + cos(pi * min(step, decay_steps) / decay_steps))``.
    With ``warmup_target``: the rate rises linearly from ``initial_learning_rate`` to
    ``warmup_target`` over ``warmup_steps``, then decays from ``warmup_target`` as above
    over ``decay_steps``.
    """

    def __init__(self, initial_learning_rate: float, decay_steps: int, alpha: float = 0.0, name: str = "CosineDecay",
                 warmup_target: float | None = None, warmup_steps: int = 0) -> None:
        cls = type(self).__name__
        self.initial_learning_rate = _finite(cls, "initial_learning_rate", initial_learning_rate)
        self.decay_steps = _finite(cls, "decay_steps", decay_steps, positive=True)
        self.alpha = _finite(cls, "alpha", alpha)
        self.name = name
        self.warmup_target = _finite(cls, "warmup_target", warmup_target, allow_none=True)
        self.warmup_steps = _finite(cls, "warmup_steps", warmup_steps)
        if self.warmup_steps < 0:
            raise ValueError(f"{cls}: argument `warmup_steps` must be >= 0; "
                             f"received warmup_steps={warmup_steps!r}")

    def _decay(self, s, start):
        frac = s / float(self.decay_steps)
        cosine = 0.5 * (1.0 + np.cos(math.pi * frac))
        return start * ((1.0 - self.alpha) * cosine + self.alpha)

    def __call__(self, step: int | ArrayLike) -> np.floating | np.ndarray:
        s = _step(step)
        if self.warmup_target is None:
            return _out(self._decay(np.minimum(s, float(self.decay_steps)),
                                    self.initial_learning_rate))
        ws = float(self.warmup_steps)
        s = np.minimum(s, float(self.decay_steps) + ws)
        with np.errstate(divide="ignore", invalid="ignore"):
            warm = (self.warmup_target - self.initial_learning_rate) * (s / ws) \
                + self.initial_learning_rate
        decayed = self._decay(s - ws, self.warmup_target)
        return _out(np.where(s < ws, warm, decayed))

    def get_config(self) -> Config:
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "alpha": self.alpha, "name": self.name,
                "warmup_target": self.warmup_target, "warmup_steps": self.warmup_steps}


class CosineDecayRestarts(LearningRateSchedule):
    """Cosine decay with warm restarts (SGDR): the first period lasts
    ``first_decay_steps``, each next one ``t_mul`` times longer and starting ``m_mul``
    times lower; within a period the rate falls from its start to ``alpha`` times
    ``initial_learning_rate`` along a half cosine."""

    def __init__(self, initial_learning_rate: float, first_decay_steps: int, t_mul: float = 2.0, m_mul: float = 1.0,
                 alpha: float = 0.0, name: str = "SGDRDecay") -> None:
        cls = type(self).__name__
        self.initial_learning_rate = _finite(cls, "initial_learning_rate", initial_learning_rate)
        self.first_decay_steps = _finite(cls, "first_decay_steps", first_decay_steps,
                                         positive=True)
        self._t_mul = _finite(cls, "t_mul", t_mul, positive=True)
        self._m_mul = _finite(cls, "m_mul", m_mul)
        self.alpha = _finite(cls, "alpha", alpha)
        self.name = name

    def __call__(self, step: int | ArrayLike) -> np.floating | np.ndarray:
        frac = _step(step) / float(self.first_decay_steps)
        t_mul = float(self._t_mul)
        if t_mul == 1.0:
            i_restart = np.floor(frac)
            frac = frac - i_restart
        else:
            i_restart = np.floor(np.log(1.0 - frac * (1.0 - t_mul)) / math.log(t_mul))
            sum_r = (1.0 - t_mul ** i_restart) / (1.0 - t_mul)
            frac = (frac - sum_r) / t_mul ** i_restart
        m_fac = float(self._m_mul) ** i_restart
        cosine = 0.5 * m_fac * (1.0 + np.cos(math.pi * frac))
        return _out(self.initial_learning_rate * ((1.0 - self.alpha) * cosine + self.alpha))

    def get_config(self) -> Config:
        return {"initial_learning_rate": self.initial_learning_rate,
                "first_decay_steps": self.first_decay_steps, "t_mul": self._t_mul,
                "m_mul": self._m_mul, "alpha": self.alpha, "name": self.name}


_ALL = {c.__name__: c for c in (ExponentialDecay, PiecewiseConstantDecay, PolynomialDecay,
                                InverseTimeDecay, CosineDecay, CosineDecayRestarts)}


def serialize(schedule: LearningRateSchedule) -> Config:
    """The schedule as Keras's serialized dict (``module``, ``class_name``, ``config``)."""
    if not isinstance(schedule, LearningRateSchedule):
        raise ValueError(f"serialize expects a LearningRateSchedule; received {schedule!r}")
    return {"module": "keras.optimizers.schedules", "class_name": type(schedule).__name__,
            "config": schedule.get_config(), "registered_name": None}


def deserialize(config: Config, custom_objects: CustomObjects | None = None) -> LearningRateSchedule:
    """A schedule from ``{"class_name": ..., "config": {...}}`` (Keras's format)."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError("deserialize expects a dict with 'class_name' and 'config'; "
                         f"received {config!r}")
    name = config["class_name"]
    table = dict(_ALL)
    table.update(custom_objects or {})
    cls = table.get(name)
    if cls is None:
        raise ValueError(f"Unknown learning rate schedule {name!r}; expected one of "
                         f"{sorted(_ALL)}")
    return cls.from_config(dict(config.get("config", {})))
