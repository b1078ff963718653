"""The optimizer contract shared by every fastnet optimizer.

An optimizer is built on a list of trainable :class:`fastnet.backend.Variable`;
``build`` allocates its slots (moment estimates, accumulators) as flat arrays
the size of all variables together, in the order of the list, so that

* ``apply_flat(values, grads, offsets)`` updates every variable of a model whose
  weights were packed into one flat buffer (``fastnet.backend.pack``) with ONE
  compiled kernel call, and
* ``apply_gradients([(grad, var), ...])`` / ``apply(grads, vars)`` (Keras's API)
  update the variables one by one with the same kernel and the same state.

Each step clips the gradients (``clipnorm`` per variable, ``global_clipnorm`` over
all of them, or ``clipvalue``), applies weight decay (``w -= w * wd * lr``, as
Keras does for every optimizer given a ``weight_decay``), then the update rule,
and increments ``iterations``.

``variables`` lists the state as numpy views in Keras's order: the iteration
count, the learning rate (unless it is a schedule), then the slots in the order
Keras's ``build`` creates them; that is what Keras writes under
``optimizer/vars/<i>`` in a ``.keras`` file. ``set_variables`` restores it.
"""
from __future__ import annotations

import re
import warnings
from typing import TYPE_CHECKING

import numpy as np

from fastnet import backend
from fastnet import config as _config
from fastnet.optimizers import schedules as _schedules

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from typing import Any

    from fastnet._typing import ArrayLike, Config, CustomObjects
    from fastnet.backend import Variable
    from fastnet.optimizers.schedules import LearningRateSchedule

__all__ = ["Optimizer"]

# Kernel algorithm numbers and flags (fastnet/_kernels/optim.pyx).
ALG_SGD, ALG_RMSPROP, ALG_ADAM, ALG_ADAGRAD, ALG_ADADELTA, ALG_ADAMAX, ALG_NADAM = range(7)
FLAG_NESTEROV, FLAG_AMSGRAD, FLAG_CENTERED, FLAG_MOMENTUM, FLAG_ADVANCE = 1, 2, 4, 8, 16
CLIP_NONE, CLIP_VALUE, CLIP_NORM, CLIP_GLOBAL_NORM, CLIP_SCALE = range(5)

_KERNEL = None


def _kernel_module():
    global _KERNEL
    if _KERNEL is None:
        from fastnet._kernels import optim as _KERNEL_mod

        _KERNEL = _KERNEL_mod
    return _KERNEL


def _is_number(x):
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_))


def check_number(owner: str, arg: str, value: Any, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False, allow_none: bool = False) -> float | None:
    """Validates a numeric hyperparameter; returns it as a python float (or None)."""
    if value is None and allow_none:
        return None
    lo_b = "(" if low_open else "["
    hi_b = ")" if high_open else "]"
    rng = ""
    if low is not None or high is not None:
        rng = f" in {lo_b}{'-inf' if low is None else low}, {'inf' if high is None else high}{hi_b}"
    if not _is_number(value) or not np.isfinite(value):
        raise ValueError(f"{owner}: argument `{arg}` must be a finite number{rng}; "
                         f"received {arg}={value!r}")
    value = float(value)
    bad = ((low is not None and (value < low or (low_open and value == low)))
           or (high is not None and (value > high or (high_open and value == high))))
    if bad:
        raise ValueError(f"{owner}: argument `{arg}` must be{rng}; received {arg}={value!r}")
    return value


class Optimizer:
    """Base class of fastnet's optimizers (Keras 3's optimizer API).

    Args:
        learning_rate: a non-negative float, a
            :class:`fastnet.optimizers.schedules.LearningRateSchedule`, or a callable
            taking no argument that returns the learning rate.
        weight_decay: if set, ``w -= w * weight_decay * learning_rate`` before each update.
        clipnorm: clip each variable's gradient to this L2 norm.
        clipvalue: clip every gradient element to ``[-clipvalue, clipvalue]``.
        global_clipnorm: clip all gradients together to this global L2 norm.
            At most one of ``clipnorm``, ``clipvalue`` and ``global_clipnorm``.
        use_ema, ema_momentum, ema_overwrite_frequency, loss_scale_factor, gradient_accumulation_steps:
            accepted for Keras compatibility; only their default values are
            supported (others raise NotImplementedError).
        name: the optimizer's name; unique automatic names otherwise.
    """

    _algo: int | None = None
    _dtype_of_build = None

    def __init__(self, learning_rate: float | LearningRateSchedule | Callable[[], float],
                 weight_decay: float | None = None, clipnorm: float | None = None, clipvalue: float | None = None,
                 global_clipnorm: float | None = None, use_ema: bool = False, ema_momentum: float = 0.99,
                 ema_overwrite_frequency: int | None = None, loss_scale_factor: float | None = None,
                 gradient_accumulation_steps: int | None = None, name: str | None = None, **kwargs) -> None:
        cls = type(self).__name__
        if kwargs.pop("decay", None) is not None:
            warnings.warn(f"{cls}: argument `decay` is no longer supported and is ignored; "
                          "use a learning-rate schedule instead.", stacklevel=2)
        if kwargs:
            raise ValueError(f"{cls}: argument(s) not recognized: {kwargs}")
        unsupported = [
            ("use_ema", use_ema, False), ("ema_momentum", ema_momentum, 0.99),
            ("ema_overwrite_frequency", ema_overwrite_frequency, None),
            ("loss_scale_factor", loss_scale_factor, None),
            ("gradient_accumulation_steps", gradient_accumulation_steps, None),
        ]
        for arg, value, default in unsupported:
            if value is not default and value != default:
                raise NotImplementedError(
                    f"{cls}: `{arg}={value!r}` is not supported by fastnet; only the default "
                    f"{arg}={default!r} is.")
        if name is None:
            name = backend.unique_name(backend.to_snake_case(cls))
        if not isinstance(name, str):
            raise ValueError(f"{cls}: argument `name` must be a string; received name={name!r}")
        self.name = name
        self.weight_decay = check_number(cls, "weight_decay", weight_decay, low=0.0, allow_none=True)
        self.clipnorm = check_number(cls, "clipnorm", clipnorm, low=0.0, allow_none=True)
        self.clipvalue = check_number(cls, "clipvalue", clipvalue, low=0.0, allow_none=True)
        self.global_clipnorm = check_number(cls, "global_clipnorm", global_clipnorm, low=0.0,
                                            allow_none=True)
        if sum(a is not None for a in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError(
                f"{cls}: only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set; "
                f"received clipnorm={clipnorm}, clipvalue={clipvalue}, "
                f"global_clipnorm={global_clipnorm}")
        self.use_ema = False
        self.ema_momentum = 0.99
        self.ema_overwrite_frequency = None
        self.loss_scale_factor = None
        self.gradient_accumulation_steps = None

        self._iterations = np.zeros((), dtype=np.int64)
        self._lr_var: Any = None  # 0-d array when the learning rate is a number
        self._lr_fn: Any = None  # schedule or callable otherwise
        self._lr_is_schedule = False
        self._set_initial_learning_rate(learning_rate)

        self.built = False
        self._trainable_variables: list[Variable] = []
        self._index: dict[int, int] = {}
        self._slot_views: list[np.ndarray] = []
        self._slot_names: list[str] = []
        self._extra_views: list[np.ndarray] = []
        self._extra_names: list[str] = []
        self._exclude_ids: set[int] = set()
        self._exclude_pattern: re.Pattern[str] | None = None
        self._shapes: list[tuple[int, ...]] = []
        self._flat_offsets = None
        self._plan: Any = None

    # ------------------------------------------------------------------ hyperparameters

    def _slot_layout(self):
        """Groups of (kernel row, slot name); Keras creates each group variable by variable."""
        return []

    def _kernel_params(self):
        """(flags, h0, h1, h2) passed to the kernel."""
        return 0, 0.0, 0.0, 0.0

    def _init_slots(self, slots):
        """Initial slot values (zeros by default)."""

    def _extra_variables(self, dtype):
        """(name, array) scalar state kept after the slots (Nadam's momentum product)."""
        return []

    # ------------------------------------------------------------------ learning rate

    def _set_initial_learning_rate(self, learning_rate):
        cls = type(self).__name__
        if isinstance(learning_rate, _schedules.LearningRateSchedule):
            self._lr_fn = learning_rate
            self._lr_is_schedule = True
        elif callable(learning_rate):
            self._lr_fn = learning_rate
        else:
            lr = check_number(cls, "learning_rate", learning_rate, low=0.0)
            self._lr_var = np.array(lr, dtype=_config.floatx())

    @property
    def learning_rate(self) -> float:
        """The current learning rate (a schedule is evaluated at ``iterations``)."""
        if self._lr_var is not None:
            return self._lr_var[()]
        if self._lr_is_schedule:
            return self._lr_fn(int(self._iterations))
        return self._lr_fn()

    @learning_rate.setter
    def learning_rate(self, learning_rate: float | LearningRateSchedule | Callable[[], float]) -> None:
        if isinstance(learning_rate, _schedules.LearningRateSchedule):
            self._lr_fn = learning_rate
            self._lr_is_schedule = True
            self._lr_var = None
        elif callable(learning_rate):
            self._lr_fn = learning_rate
            self._lr_is_schedule = False
            self._lr_var = None
        else:
            if self._lr_var is None:
                raise TypeError(
                    f"{type(self).__name__} '{self.name}' has a schedule or a callable as its "
                    "learning rate, so the learning rate cannot be set to a number; create "
                    "the optimizer with a float learning_rate to make it settable.")
            lr = check_number(type(self).__name__, "learning_rate", learning_rate, low=0.0)
            self._lr_var[...] = lr

    def _current_lr(self, t):
        if self._lr_var is not None:
            return float(self._lr_var)
        if self._lr_is_schedule:
            return float(self._lr_fn(t))
        return float(self._lr_fn())

    @property
    def iterations(self) -> int:
        """Number of steps taken."""
        return int(self._iterations)

    # ------------------------------------------------------------------ build and state

    def exclude_from_weight_decay(self, var_list: Sequence[Variable] | None = None,
                                  var_names: Sequence[str] | None = None) -> None:
        """Leaves variables out of weight decay: those in ``var_list``, and those whose name
        contains one of the strings in ``var_names``. Call before ``build``."""
        if self.built:
            raise ValueError(f"{type(self).__name__} '{self.name}': exclude_from_weight_decay() "
                             "must be called before the optimizer is built.")
        self._exclude_ids = {id(v) for v in (var_list or [])}
        names = list(var_names or [])
        self._exclude_pattern = re.compile("|".join(map(re.escape, names))) if names else None

    def _use_weight_decay(self, variable):
        if id(variable) in self._exclude_ids:
            return False
        if self._exclude_pattern is not None and self._exclude_pattern.search(str(variable.name)):
            return False
        return True

    def build(self, variables: Sequence[Variable]) -> None:
        """Allocates the optimizer state for ``variables`` (trainable Variables, in order).

        Building again with the same variables keeps the state; with a different list
        the slots are allocated afresh (the iteration count is kept).
        """
        variables = list(variables)
        cls = type(self).__name__
        for i, v in enumerate(variables):
            if not isinstance(getattr(v, "value", None), np.ndarray):
                raise ValueError(f"{cls}.build expects fastnet Variables; item {i} is {v!r}")
        if (self.built and len(variables) == len(self._trainable_variables)
                and all(a is b and a.shape == s for a, b, s in
                        zip(variables, self._trainable_variables, self._shapes))):
            return
        dtypes = {np.dtype(v.dtype) for v in variables}
        if len(dtypes) > 1:
            raise ValueError(f"{cls}: all variables must have the same float dtype; received "
                             f"{sorted(str(d) for d in dtypes)}")
        dtype = dtypes.pop() if dtypes else np.dtype(_config.floatx())
        if dtype not in (np.float32, np.float64):
            raise ValueError(f"{cls}: variables must be float32 or float64; received {dtype}")
        self._dtype = dtype
        self._trainable_variables = variables
        self._shapes = [v.shape for v in variables]
        self._index = {id(v): i for i, v in enumerate(variables)}
        sizes = [int(v.size) for v in variables]
        offsets = np.zeros(len(variables) + 1, dtype=np.int64)
        np.cumsum(sizes, out=offsets[1:])
        self._offsets = offsets
        total = int(offsets[-1])

        layout = self._slot_layout()
        n_rows = max((row + 1 for group in layout for row, _ in group), default=0)
        self._slots = np.zeros((n_rows, total), dtype=dtype)
        self._init_slots(self._slots)
        self._slot_views, self._slot_names = [], []
        for group in layout:
            for v, lo, hi in zip(variables, offsets[:-1], offsets[1:]):
                stem = str(v.path).replace("/", "_")
                for row, slot in group:
                    self._slot_views.append(self._slots[row, lo:hi].reshape(v.shape))
                    self._slot_names.append(f"{stem}_{slot}")
        self._state = np.zeros(1, dtype=dtype)
        extra = self._extra_variables(dtype)
        self._extra_names = [n for n, _ in extra]
        for _, value in extra:
            self._state[0] = value
        self._extra_views = [self._state[0:1].reshape(()) for _ in extra]

        self._decay_mask = np.array([self._use_weight_decay(v) for v in variables], dtype=np.uint8)
        self._var_offsets = [np.array([0, s], dtype=np.int64) for s in sizes]
        self._var_masks = [self._decay_mask[i:i + 1] for i in range(len(variables))]
        self._constrained = [v for v in variables if getattr(v, "constraint", None) is not None]
        self._flat_offsets = None
        self.built = True
        self._make_plan()

    def _set_clip(self):
        if self.clipnorm:
            self._clip_mode, self._clip = CLIP_NORM, self.clipnorm
        elif self.global_clipnorm:
            self._clip_mode, self._clip = CLIP_GLOBAL_NORM, self.global_clipnorm
        elif self.clipvalue:
            self._clip_mode, self._clip = CLIP_VALUE, self.clipvalue
        else:
            self._clip_mode, self._clip = CLIP_NONE, 0.0

    @property
    def variables(self) -> list[np.ndarray]:
        """The optimizer state as numpy views, in Keras's order (see the module docstring)."""
        out = [self._iterations]
        if self._lr_var is not None:
            out.append(self._lr_var)
        return out + list(self._slot_views) + list(self._extra_views)

    @property
    def variable_names(self) -> list[str]:
        """Names of ``variables`` (Keras's variable names)."""
        out = ["iteration"]
        if self._lr_var is not None:
            out.append("learning_rate")
        return out + list(self._slot_names) + list(self._extra_names)

    def set_variables(self, values: Sequence[ArrayLike]) -> None:
        """Restores ``variables`` (same order, count and shapes), e.g. from a saved file."""
        cls = type(self).__name__
        if not self.built:
            raise ValueError(f"{cls} '{self.name}' is not built: call build(variables) before "
                             "set_variables().")
        values = list(values)
        current = self.variables
        names = self.variable_names
        if len(values) != len(current):
            raise ValueError(f"{cls} '{self.name}' has {len(current)} variables ({names}); "
                             f"received {len(values)} arrays")
        arrays = []
        for i, (dst, src, nm) in enumerate(zip(current, values, names)):
            src = np.asarray(src)
            if src.shape != dst.shape:
                raise ValueError(f"{cls} '{self.name}': variable {i} ('{nm}') has shape "
                                 f"{dst.shape}; received an array of shape {src.shape}")
            arrays.append(src)
        for dst, src in zip(current, arrays):
            np.copyto(dst, src, casting="unsafe")

    def set_weights(self, weights: Sequence[ArrayLike]) -> None:
        """Same as :meth:`set_variables` (Keras's name)."""
        self.set_variables(weights)

    # ------------------------------------------------------------------ updates

    def _check_flat(self, values, grads, offsets):
        cls = type(self).__name__
        if not self.built:
            raise ValueError(f"{cls} '{self.name}' is not built: call build(variables) with the "
                             "packed variables before apply_flat().")
        offsets = np.asarray(offsets)
        if offsets.dtype != np.int64 or offsets.ndim != 1:
            raise ValueError(f"{cls}.apply_flat: offsets must be a 1-D int64 array; received "
                             f"dtype {offsets.dtype}, shape {offsets.shape}")
        if offsets.shape != self._offsets.shape or not np.array_equal(offsets, self._offsets):
            raise ValueError(
                f"{cls}.apply_flat: offsets do not match the {len(self._trainable_variables)} "
                f"variables the optimizer was built with (expected {self._offsets.tolist()[:8]}"
                f"{'...' if len(self._offsets) > 8 else ''}, received "
                f"{offsets.tolist()[:8]}{'...' if len(offsets) > 8 else ''})")
        for arr, what in ((values, "values"), (grads, "grads")):
            if not isinstance(arr, np.ndarray) or arr.ndim != 1 or not arr.flags.c_contiguous:
                raise ValueError(f"{cls}.apply_flat: {what} must be a 1-D contiguous array")
            if arr.dtype != self._dtype:
                raise ValueError(f"{cls}.apply_flat: {what} has dtype {arr.dtype}, the variables "
                                 f"{self._dtype}")
            if arr.shape[0] != self._offsets[-1]:
                raise ValueError(f"{cls}.apply_flat: {what} has {arr.shape[0]} elements, the "
                                 f"variables {int(self._offsets[-1])}")
        self._flat_offsets = offsets

    def apply_flat(self, values: np.ndarray, grads: np.ndarray, offsets: np.ndarray) -> None:
        """One step on a packed model: ``values``/``grads`` are the flat buffers of
        ``fastnet.backend.pack`` and ``offsets`` its int64 offsets (one kernel call)."""
        if offsets is not self._flat_offsets:
            self._check_flat(values, grads, offsets)
        plan = self._plan
        if plan is None:
            plan = self._make_plan()
        if self._lr_var is not None:
            lr = float(self._lr_var)
        else:
            lr = self._current_lr(int(self._iterations))
        plan.run(values, grads, lr, self.weight_decay or 0.0, _config._n_threads)
        if self._constrained:
            self._apply_constraints(self._constrained)

    def _make_plan(self):
        flags, h0, h1, h2 = self._kernel_params()
        self._set_clip()
        self._plan = _kernel_module().FlatUpdate(
            self._algo, flags, self._slots, self._state, self._offsets, self._decay_mask,
            self._iterations, float(h0), float(h1), float(h2), self._clip_mode, self._clip)
        return self._plan

    # Attributes whose change after build must rebuild the prepared kernel call.
    _PLAN_KEYS = frozenset(["clipnorm", "clipvalue", "global_clipnorm", "momentum", "nesterov",
                            "rho", "epsilon", "centered", "beta_1", "beta_2", "amsgrad"])

    def __setattr__(self, name, value):
        object.__setattr__(self, name, value)
        if name in Optimizer._PLAN_KEYS and getattr(self, "built", False):
            object.__setattr__(self, "_plan", None)

    def apply_gradients(self, grads_and_vars: Iterable[tuple[ArrayLike, Variable]]) -> int:
        """Keras's API: ``[(gradient, variable), ...]``; builds on first use."""
        pairs = list(grads_and_vars)
        if pairs:
            grads, variables = zip(*pairs)
            self.apply(grads, variables)
        return self.iterations

    def apply(self, grads: Sequence[ArrayLike], trainable_variables: Sequence[Variable] | None = None) -> None:
        """Keras 3's API: gradients for ``trainable_variables`` (or for the variables the
        optimizer was built with, in that order)."""
        cls = type(self).__name__
        grads = list(grads)
        if not grads:
            return
        if trainable_variables is None:
            if not self.built:
                raise ValueError(f"{cls} '{self.name}': when passing gradients without "
                                 "variables, call build(trainable_variables) first.")
            if len(grads) != len(self._trainable_variables):
                raise ValueError(f"{cls} '{self.name}': received {len(grads)} gradients for the "
                                 f"{len(self._trainable_variables)} variables it was built with")
            variables = self._trainable_variables
        else:
            variables = list(trainable_variables)
            if len(variables) != len(grads):
                raise ValueError(f"{cls} '{self.name}': received {len(grads)} gradients and "
                                 f"{len(variables)} variables")
            if not self.built:
                self.build(variables)
        index = self._index
        items = []
        missing: list[str] = []
        for g, v in zip(grads, variables):
            i = index.get(id(v))
            if i is None:
                raise ValueError(f"{cls} '{self.name}': unknown variable {v!r}; this optimizer "
                                 "was built for other variables (build it with the new list).")
            if g is None:
                missing.append(getattr(v, "name", str(v)))
                continue
            g = np.asarray(g)
            if g.shape != v.shape:
                raise ValueError(f"{cls} '{self.name}': gradient of shape {g.shape} for variable "
                                 f"'{getattr(v, 'path', v)}' of shape {v.shape}")
            items.append((i, v, np.ascontiguousarray(g, dtype=self._dtype).reshape(-1)))
        if not items:
            raise ValueError(f"{cls} '{self.name}': no gradients provided for any variable")
        if missing:
            warnings.warn(f"Gradients do not exist for variables {missing} when minimizing the "
                          "loss.", stacklevel=2)
        if self._plan is None:
            self._make_plan()
        t = int(self._iterations)
        lr = self._current_lr(t)
        mode, scale = self._clip_mode, 1.0
        n_threads = _config._n_threads
        k = _kernel_module()
        if mode == CLIP_GLOBAL_NORM:
            total = sum(k.sum_squares(g, n_threads) for _, _, g in items)
            scale = self._global_scale(total)
            mode = CLIP_SCALE
        wd = self.weight_decay or 0.0
        plan = self._plan
        for n, (i, v, g) in enumerate(items):
            w = v.value
            if w.dtype != self._dtype or not w.flags.c_contiguous:
                raise ValueError(f"{cls} '{self.name}': variable '{v.path}' must hold a contiguous "
                                 f"{self._dtype} array; it holds {w.dtype}")
            plan.run_segment(i, w.reshape(-1), g, lr, wd, n_threads, n == 0, mode, scale)
        self._iterations += 1
        constrained = [v for _, v, _ in items if getattr(v, "constraint", None) is not None]
        if constrained:
            self._apply_constraints(constrained)

    def _global_scale(self, total):
        dt = self._dtype.type
        norm = np.sqrt(dt(total))
        if not np.isfinite(norm):
            return float("nan")
        c = dt(self._clip)
        one = dt(1)
        with np.errstate(divide="ignore"):
            return float(c * min(one / norm, one / c))

    @staticmethod
    def _apply_constraints(variables):
        for v in variables:
            v.value[...] = v.constraint(v.value)

    def finalize_variable_values(self, var_list: Sequence[Variable]) -> None:
        """Called at the end of training (nothing to do without moving averages)."""

    def scale_loss(self, loss: Any) -> Any:
        """The loss unchanged (no loss scaling)."""
        return loss

    # ------------------------------------------------------------------ config

    def get_config(self) -> Config:
        if self._lr_var is not None:
            lr = float(self._lr_var)
        elif self._lr_is_schedule:
            lr = _schedules.serialize(self._lr_fn)
        else:
            lr = self._lr_fn
        return {
            "name": self.name,
            "learning_rate": lr,
            "weight_decay": self.weight_decay,
            "clipnorm": self.clipnorm,
            "global_clipnorm": self.global_clipnorm,
            "clipvalue": self.clipvalue,
            "use_ema": self.use_ema,
            "ema_momentum": self.ema_momentum,
            "ema_overwrite_frequency": self.ema_overwrite_frequency,
            "loss_scale_factor": self.loss_scale_factor,
            "gradient_accumulation_steps": self.gradient_accumulation_steps,
        }

    @classmethod
    def from_config(cls, config: Config, custom_objects: CustomObjects | None = None) -> Optimizer:
        config = dict(config)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = _schedules.deserialize(config["learning_rate"],
                                                             custom_objects=custom_objects)
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r} learning_rate={self.learning_rate}>"
