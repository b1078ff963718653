"""Callbacks: hooks into ``fit``, ``evaluate`` and ``predict``, as in ``keras.callbacks``.

A callback subclasses :class:`Callback` and overrides the hooks it needs; the
model's loops call every hook of a :class:`CallbackList`. Batch-level hooks are
dispatched only to the callbacks that override them, so a list without any costs
nothing per step (``CallbackList.needs_batch_logs`` tells the loop whether to
build per-batch logs at all).

How the model's loops drive a list (``params``: ``verbose``, ``epochs``, ``steps``)::

    cbs = CallbackList(callbacks, add_history=True, add_progbar=verbose != 0,
                       model=model, verbose=verbose, epochs=epochs, steps=steps)
    model.stop_training = False
    cbs.on_train_begin()
    for epoch in range(initial_epoch, epochs):
        cbs.on_epoch_begin(epoch)
        for step in range(steps):
            cbs.on_train_batch_begin(step)
            ...                                    # one training step
            cbs.on_train_batch_end(step, running_averages if cbs.needs_batch_logs else None)
            if model.stop_training:
                break
        logs = {...epoch averages..., **{"val_" + k: v for validation results}}
        cbs.on_epoch_end(epoch, logs)              # validation runs on_test_* on cbs first
        if model.stop_training:
            break
    cbs.on_train_end(logs)
    return model.history

Logged values are Python floats; callbacks may add entries to an epoch's logs
(``learning_rate``) before later callbacks (History, added last) see them.

Example:
    >>> from fastnet.callbacks import EarlyStopping
    >>> stop = EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True)
    >>> # model.fit(x, y, validation_split=0.2, epochs=100, callbacks=[stop])
"""
from __future__ import annotations

import collections.abc
import csv
import inspect
import io
import math
import numbers
import os
import warnings
from typing import TYPE_CHECKING

import numpy as np

from fastnet.utils import progbar as _progbar

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from typing import IO, Any

    from fastnet._typing import Logs
    from fastnet.models.model import Model

__all__ = [
    "Callback", "CallbackList", "History", "ProgbarLogger", "EarlyStopping",
    "LearningRateScheduler", "ReduceLROnPlateau", "CSVLogger", "LambdaCallback",
    "TerminateOnNaN", "ModelCheckpoint",  # noqa: F822 (loaded on first use by __getattr__)
]


def _default(fn):
    """Marks a base-class hook as doing nothing, so overrides can be detected."""
    fn._is_default = True
    return fn


def _overrides(callback, name):
    """Whether ``callback.<name>`` is anything but the base class's empty hook."""
    method = getattr(callback, name, None)
    return method is not None and not getattr(method, "_is_default", False)


def _noop(batch, logs=None):
    """Stands in for a batch hook no callback of the list implements."""


def _print(message):
    _progbar._write(message + "\n")


class Callback:
    """Base class of callbacks: every hook does nothing until overridden.

    Attributes:
        model: the model being trained, evaluated or run (set by ``set_model``).
        params: dict of the loop's parameters: ``verbose``, ``epochs``, ``steps``.
    """

    def __init__(self) -> None:
        self.params: Mapping[str, Any] | None = None
        self._model: Model | None = None

    def set_params(self, params: Mapping[str, Any]) -> None:
        self.params = params

    def set_model(self, model: Model | None) -> None:
        self._model = model

    @property
    def model(self) -> Model | None:
        return self._model

    @model.setter
    def model(self, model: Model | None) -> None:
        self._model = model

    def _set_model(self) -> Model:
        """The model, in a hook that runs only once a loop has set it."""
        if self._model is None:
            raise RuntimeError(f"{type(self).__name__} has no model yet: fit, evaluate and predict set it "
                               "(or call set_model) before any hook runs")
        return self._model

    # Which batch hooks this callback needs called. The defaults say "those it
    # overrides"; a callback whose needs depend on its settings (the progress bar)
    # refines them.
    def _implements_train_batch_hooks(self):
        return (_overrides(self, "on_train_batch_begin") or _overrides(self, "on_train_batch_end")
                or _overrides(self, "on_batch_begin") or _overrides(self, "on_batch_end"))

    def _implements_test_batch_hooks(self):
        return _overrides(self, "on_test_batch_begin") or _overrides(self, "on_test_batch_end")

    def _implements_predict_batch_hooks(self):
        return _overrides(self, "on_predict_batch_begin") or _overrides(self, "on_predict_batch_end")

    @_default
    def on_batch_begin(self, batch: int, logs: Logs | None = None) -> None:
        """Alias of ``on_train_batch_begin`` (older name)."""

    @_default
    def on_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        """Alias of ``on_train_batch_end`` (older name)."""

    @_default
    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None:
        """Called at the start of epoch ``epoch`` (0-based) of ``fit``."""

    @_default
    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        """Called at the end of an epoch; ``logs`` holds the epoch's averaged metrics,
        validation ones prefixed with ``val_``."""

    @_default
    def on_train_batch_begin(self, batch: int, logs: Logs | None = None) -> None:
        """Called before training step ``batch`` (0-based within the epoch)."""
        self.on_batch_begin(batch, logs=logs)

    @_default
    def on_train_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        """Called after a training step; ``logs`` holds the epoch's running averages."""
        self.on_batch_end(batch, logs=logs)

    @_default
    def on_test_batch_begin(self, batch: int, logs: Logs | None = None) -> None:
        """Called before a batch of ``evaluate`` (and of validation in ``fit``)."""

    @_default
    def on_test_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        """Called after a batch of ``evaluate``; ``logs`` holds the running averages."""

    @_default
    def on_predict_batch_begin(self, batch: int, logs: Logs | None = None) -> None:
        """Called before a batch of ``predict``."""

    @_default
    def on_predict_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        """Called after a batch of ``predict``."""

    @_default
    def on_train_begin(self, logs: Logs | None = None) -> None:
        """Called when ``fit`` starts."""

    @_default
    def on_train_end(self, logs: Logs | None = None) -> None:
        """Called when ``fit`` ends; ``logs`` holds the last epoch's logs."""

    @_default
    def on_test_begin(self, logs: Logs | None = None) -> None:
        """Called when ``evaluate`` (or a validation pass) starts."""

    @_default
    def on_test_end(self, logs: Logs | None = None) -> None:
        """Called when ``evaluate`` ends; ``logs`` holds its results."""

    @_default
    def on_predict_begin(self, logs: Logs | None = None) -> None:
        """Called when ``predict`` starts."""

    @_default
    def on_predict_end(self, logs: Logs | None = None) -> None:
        """Called when ``predict`` ends."""


def _flatten(callbacks):
    out = []
    for cb in callbacks:
        if isinstance(cb, (list, tuple)):
            out.extend(_flatten(cb))
        elif isinstance(cb, CallbackList):
            out.extend(cb.callbacks)
        elif cb is not None:
            if not isinstance(cb, Callback):
                raise TypeError(
                    "callbacks must be instances of fastnet.callbacks.Callback, "
                    f"received {type(cb).__name__}: {cb!r}")
            out.append(cb)
    return out


class CallbackList(Callback):
    """Calls the same hook on a list of callbacks.

    Args:
        callbacks: list of :class:`Callback` instances.
        add_history: add a :class:`History` unless the list has one.
        add_progbar: add a :class:`ProgbarLogger` unless the list has one.
        model: the model the callbacks see.
        **params: the loop's parameters (``verbose``, ``epochs``, ``steps``), passed to
            every callback's ``set_params``.

    Batch hooks (``on_train_batch_begin/end`` and the test/predict ones) reach only
    the callbacks that implement them; when none does, they do nothing at all.
    ``needs_batch_logs`` (and ``needs_test_batch_logs``, ``needs_predict_batch_logs``)
    tell the loop whether any callback reads the logs of a batch's end.
    """

    def __init__(self, callbacks: Iterable[Callback] | None = None, add_history: bool = False,
                 add_progbar: bool = False, model: Model | None = None, **params) -> None:
        super().__init__()
        self.callbacks = _flatten(callbacks) if callbacks else []
        self._history = None
        self._progbar = None
        for cb in self.callbacks:
            if isinstance(cb, ProgbarLogger):
                self._progbar = cb
            elif isinstance(cb, History):
                self._history = cb
        if self._history is None and add_history:
            self._history = History()
            self.callbacks.append(self._history)
        if self._progbar is None and add_progbar:
            self._progbar = ProgbarLogger()
            self.callbacks.append(self._progbar)
        self.params = None
        self.set_model(model)
        self.set_params(params)

    # ------------------------------------------------------------ configuration
    def append(self, callback: Callback) -> None:
        if not isinstance(callback, Callback):
            raise TypeError(
                "callbacks must be instances of fastnet.callbacks.Callback, "
                f"received {type(callback).__name__}: {callback!r}")
        self.callbacks.append(callback)
        if self.params:
            callback.set_params(self.params)
        if self._model is not None:
            callback.set_model(self._model)
        self._build_dispatch()

    def set_params(self, params: Mapping[str, Any]) -> None:
        self.params = params
        if params:
            for cb in self.callbacks:
                cb.set_params(params)
        self._build_dispatch()

    def set_model(self, model: Model | None) -> None:
        if model is None:
            return
        self._model = model
        if self._history is not None:
            model.history = self._history
        for cb in self.callbacks:
            cb.set_model(model)
        self._build_dispatch()

    def _build_dispatch(self):
        """Binds each batch hook to exactly the callbacks that implement it."""
        train = [cb for cb in self.callbacks if cb._implements_train_batch_hooks()]
        test = [cb for cb in self.callbacks if cb._implements_test_batch_hooks()]
        predict = [cb for cb in self.callbacks if cb._implements_predict_batch_hooks()]

        def pick(cbs, *names):
            return [cb for cb in cbs if any(_overrides(cb, n) for n in names)]

        tb = pick(train, "on_train_batch_begin", "on_batch_begin")
        te = pick(train, "on_train_batch_end", "on_batch_end")
        vb = pick(test, "on_test_batch_begin")
        ve = pick(test, "on_test_batch_end")
        pb = pick(predict, "on_predict_batch_begin")
        pe = pick(predict, "on_predict_batch_end")
        self.on_train_batch_begin = self._dispatcher(tb, "on_train_batch_begin")
        self.on_train_batch_end = self._dispatcher(te, "on_train_batch_end")
        self.on_test_batch_begin = self._dispatcher(vb, "on_test_batch_begin")
        self.on_test_batch_end = self._dispatcher(ve, "on_test_batch_end")
        self.on_predict_batch_begin = self._dispatcher(pb, "on_predict_batch_begin")
        self.on_predict_batch_end = self._dispatcher(pe, "on_predict_batch_end")
        self.needs_batch_logs = bool(te)
        self.needs_test_batch_logs = bool(ve)
        self.needs_predict_batch_logs = bool(pe)

    @staticmethod
    def _dispatcher(cbs, name):
        if not cbs:
            return _noop
        methods = [getattr(cb, name) for cb in cbs]
        if len(methods) == 1:
            method = methods[0]

            def dispatch_one(batch, logs=None):
                method(batch, logs=logs if logs is not None else {})
            return dispatch_one

        def dispatch(batch, logs=None):
            if logs is None:
                logs = {}
            for m in methods:
                m(batch, logs=logs)
        return dispatch

    # -------------------------------------------------------------------- hooks
    # Batch hooks are instance attributes bound by _build_dispatch; these class
    # methods document them and serve a list whose dispatch was never built.
    def on_train_batch_begin(self, batch: int, logs: Logs | None = None) -> None:
        for cb in self.callbacks:
            cb.on_train_batch_begin(batch, logs=logs or {})

    def on_train_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        for cb in self.callbacks:
            cb.on_train_batch_end(batch, logs=logs or {})

    def on_test_batch_begin(self, batch: int, logs: Logs | None = None) -> None:
        for cb in self.callbacks:
            cb.on_test_batch_begin(batch, logs=logs or {})

    def on_test_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        for cb in self.callbacks:
            cb.on_test_batch_end(batch, logs=logs or {})

    def on_predict_batch_begin(self, batch: int, logs: Logs | None = None) -> None:
        for cb in self.callbacks:
            cb.on_predict_batch_begin(batch, logs=logs or {})

    def on_predict_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        for cb in self.callbacks:
            cb.on_predict_batch_end(batch, logs=logs or {})

    def on_batch_begin(self, batch: int, logs: Logs | None = None) -> None:
        for cb in self.callbacks:
            cb.on_batch_begin(batch, logs=logs or {})

    def on_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        for cb in self.callbacks:
            cb.on_batch_end(batch, logs=logs or {})

    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None:
        logs = {} if logs is None else logs
        for cb in self.callbacks:
            cb.on_epoch_begin(epoch, logs)

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        logs = {} if logs is None else logs
        for cb in self.callbacks:
            cb.on_epoch_end(epoch, logs)

    def on_train_begin(self, logs: Logs | None = None) -> None:
        logs = {} if logs is None else logs
        for cb in self.callbacks:
            cb.on_train_begin(logs)
        # Some callbacks (the progress bar) need fewer hooks once training started.
        self._build_dispatch()

    def on_train_end(self, logs: Logs | None = None) -> None:
        logs = {} if logs is None else logs
        for cb in self.callbacks:
            cb.on_train_end(logs)
        self._build_dispatch()

    def on_test_begin(self, logs: Logs | None = None) -> None:
        logs = {} if logs is None else logs
        for cb in self.callbacks:
            cb.on_test_begin(logs)

    def on_test_end(self, logs: Logs | None = None) -> None:
        logs = {} if logs is None else logs
        for cb in self.callbacks:
            cb.on_test_end(logs)

    def on_predict_begin(self, logs: Logs | None = None) -> None:
        logs = {} if logs is None else logs
        for cb in self.callbacks:
            cb.on_predict_begin(logs)

    def on_predict_end(self, logs: Logs | None = None) -> None:
        logs = {} if logs is None else logs
        for cb in self.callbacks:
            cb.on_predict_end(logs)

    def __iter__(self):
        return iter(self.callbacks)

    def __len__(self):
        return len(self.callbacks)

    def __repr__(self):
        return f"CallbackList({self.callbacks!r})"


class History(Callback):
    """Records each epoch's logs; ``fit`` returns it and sets ``model.history``.

    Attributes:
        history: dict mapping each logged name (``loss``, ``val_loss``, ...) to the
            list of its values, one per epoch.
        epoch: list of the epoch indices recorded.
        params: the loop's parameters.
    """

    def __init__(self) -> None:
        super().__init__()
        self.history: dict[str, list[Any]] = {}
        self.epoch: list[int] = []

    def set_model(self, model: Model | None) -> None:
        super().set_model(model)
        if model is not None:
            model.history = self

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self.epoch = []

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        self.epoch.append(epoch)
        for name, value in (logs or {}).items():
            self.history.setdefault(name, []).append(value)
        if self._model is not None:
            self._model.history = self

    def __repr__(self):
        return f"<History: {len(self.epoch)} epochs, keys {list(self.history)}>"


class ProgbarLogger(Callback):
    """Prints the progress bar of ``fit`` (each epoch), ``evaluate`` and ``predict``.

    ``fit``, ``evaluate`` and ``predict`` add one when ``verbose`` is not 0. The
    values shown are those of the logs, as given: the loop passes running averages.

    Args:
        count_mode: ``"steps"``: the bar counts batches.
        stateful_metrics: accepted for compatibility; every logged value is shown
            as given (none is averaged again).
    """

    def __init__(self, count_mode: str = "steps", stateful_metrics: Iterable[str] | None = None) -> None:
        super().__init__()
        if count_mode != "steps":
            raise ValueError(
                f"ProgbarLogger count_mode must be 'steps' (the bar counts batches), "
                f"received {count_mode!r}")
        self.count_mode = count_mode
        self.stateful_metrics = set(stateful_metrics) if stateful_metrics else set()
        self.seen = 0
        self.progbar = None
        self.target = None
        self.verbose = 1
        self.epochs = 1
        self._called_in_fit = False
        self._call_batch_hooks = True

    def set_params(self, params: Mapping[str, Any]) -> None:
        super().set_params(params)
        verbose = params.get("verbose", 1)
        if verbose == "auto":
            verbose = 1
        if verbose not in (0, 1, 2):
            raise ValueError(f"verbose must be 0, 1, 2 or 'auto', received {verbose!r}")
        self.verbose = verbose
        self.epochs = params.get("epochs", 1)
        self.target = params.get("steps")
        # Per-batch updates are only drawn on a terminal, or counted when the
        # number of steps is unknown.
        self._call_batch_hooks = self.verbose != 0 and (
            self.target is None or (self.verbose == 1 and _progbar.dynamic_display()))

    def _implements_train_batch_hooks(self):
        return self._call_batch_hooks

    def _implements_test_batch_hooks(self):
        return self._call_batch_hooks and not self._called_in_fit

    def _implements_predict_batch_hooks(self):
        return self._call_batch_hooks

    def on_train_begin(self, logs: Logs | None = None) -> None:
        # Validation inside fit is silent.
        self._called_in_fit = True

    def on_train_end(self, logs: Logs | None = None) -> None:
        self._called_in_fit = False

    def on_test_begin(self, logs: Logs | None = None) -> None:
        if not self._called_in_fit:
            self._reset_progbar()
            self._maybe_init_progbar()

    def on_predict_begin(self, logs: Logs | None = None) -> None:
        self._reset_progbar()
        self._maybe_init_progbar()

    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None:
        self._reset_progbar()
        self._maybe_init_progbar()
        if self.verbose and self.epochs > 1:
            _print(f"Epoch {epoch + 1}/{self.epochs}")

    def on_train_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        self._update_progbar(batch, logs)

    def on_test_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        if not self._called_in_fit:
            self._update_progbar(batch, logs)

    def on_predict_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        self._update_progbar(batch, None)  # predictions are not shown

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        self._finalize_progbar(logs)

    def on_test_end(self, logs: Logs | None = None) -> None:
        if not self._called_in_fit:
            self._finalize_progbar(logs)

    def on_predict_end(self, logs: Logs | None = None) -> None:
        self._finalize_progbar(logs)

    def _reset_progbar(self):
        self.seen = 0
        self.progbar = None

    def _maybe_init_progbar(self):
        if self.progbar is None:
            self.progbar = _progbar.Progbar(
                target=self.target, verbose=self.verbose, unit_name="step",
                stateful_metrics=self.stateful_metrics)

    def _update_progbar(self, batch, logs):
        self._maybe_init_progbar()
        self.seen = batch + 1
        if self.verbose == 1:
            if logs:
                self.progbar.stateful_metrics.update(logs)
                self.progbar.update(self.seen, list(logs.items()), finalize=False)
            else:
                self.progbar.update(self.seen, None, finalize=False)

    def _finalize_progbar(self, logs):
        logs = logs or {}
        self._maybe_init_progbar()
        if self.target is None:
            self.target = self.seen
            self.progbar.target = self.target
        self.progbar.stateful_metrics.update(logs)
        self.progbar.update(self.target, list(logs.items()), finalize=True)


# ---------------------------------------------------------------- monitoring
_VALID_MODES = ("auto", "min", "max")
# Names of quantities that improve upward; anything loss- or error-like improves downward.
_UP_NAMES = {
    "acc", "accuracy", "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy",
    "top_k_categorical_accuracy", "sparse_top_k_categorical_accuracy", "auc", "prc",
    "precision", "recall", "f1_score", "fbeta_score", "r2_score", "iou", "mean_iou",
    "binary_iou", "one_hot_iou", "one_hot_mean_iou", "cosine_similarity", "true_positives",
    "true_negatives", "precision_at_recall", "recall_at_precision",
    "sensitivity_at_specificity", "specificity_at_sensitivity",
}
_DOWN_NAMES = {
    "loss", "mse", "mae", "mape", "msle", "mean_squared_error", "mean_absolute_error",
    "mean_absolute_percentage_error", "mean_squared_logarithmic_error",
    "root_mean_squared_error", "rmse", "logcosh", "log_cosh", "log_cosh_error", "hinge",
    "squared_hinge", "categorical_hinge", "kl_divergence", "kld", "kullback_leibler_divergence",
    "poisson", "binary_crossentropy", "categorical_crossentropy",
    "sparse_categorical_crossentropy", "false_positives", "false_negatives",
}


def _check_mode(mode):
    if mode not in _VALID_MODES:
        raise ValueError(f"Unknown mode {mode!r}; expected one of {list(_VALID_MODES)}")
    return mode


def _direction_from_name(monitor, model):
    """'max', 'min' or None when the name tells nothing."""
    name = monitor[4:] if monitor.startswith("val_") else monitor
    if name == "loss" or name.endswith("_loss"):
        return "min"
    for metric in getattr(model, "metrics", None) or ():
        direction = getattr(metric, "_direction", None)
        if getattr(metric, "name", None) == name and direction in ("up", "down"):
            return "max" if direction == "up" else "min"
    if name in _UP_NAMES or name.endswith("accuracy") or name.endswith("_acc"):
        return "max"
    if name in _DOWN_NAMES or name.endswith("_error") or name.endswith("crossentropy"):
        return "min"
    return None


def _missing_monitor_warning(what, monitor, logs, end=""):
    warnings.warn(
        f"{what} conditioned on metric `{monitor}` which is not available. "
        f"Available metrics are: {','.join(logs.keys())}{end}",
        stacklevel=3)


class EarlyStopping(Callback):
    """Stops training when a monitored quantity has stopped improving.

    Args:
        monitor: the logged quantity to watch (``"val_loss"``).
        min_delta: an improvement must beat the best value by more than this.
        patience: epochs without improvement before stopping.
        verbose: 1 prints a line when stopping and when restoring weights.
        mode: ``"min"``, ``"max"`` or ``"auto"`` (the direction follows from the name:
            losses and errors go down, accuracies and the like go up).
        baseline: training stops if the quantity does not beat this within ``patience``
            epochs.
        restore_best_weights: at the end of training (stopped early or not), set the
            weights of the best epoch.
        start_from_epoch: epochs of warm-up before monitoring begins.

    Attributes:
        stopped_epoch: 0-based epoch at which training was stopped (0 if it was not).
        best, best_epoch: the best value seen and its epoch.
    """

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0, patience: int = 0, verbose: int = 0,
                 mode: str = "auto", baseline: float | None = None, restore_best_weights: bool = False,
                 start_from_epoch: int = 0) -> None:
        super().__init__()
        self.monitor = monitor
        self.patience = int(patience)
        self.verbose = verbose
        self.baseline = baseline
        self.min_delta = abs(min_delta)
        self.mode = _check_mode(mode)
        self.restore_best_weights = restore_best_weights
        self.start_from_epoch = int(start_from_epoch)
        self.wait = 0
        self.stopped_epoch = 0
        self.best: float | None = None
        self.best_epoch = 0
        self.best_weights: list[np.ndarray] | None = None
        self._direction: str | None = None

    def _resolve_direction(self):
        if self.mode != "auto":
            return self.mode
        direction = _direction_from_name(self.monitor, self._model)
        if direction is None:
            raise ValueError(
                f"EarlyStopping callback received monitor={self.monitor} but cannot tell "
                "whether that metric should be maximized or minimized. Pass mode='max' to "
                "stop on the highest value, or mode='min' to stop on the lowest.")
        return direction

    def _is_improvement(self, value, reference):
        if reference is None:
            return True
        if self._direction == "min":
            return value + self.min_delta < reference
        return value - self.min_delta > reference

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_epoch = 0
        self.best_weights = None

    def get_monitor_value(self, logs: Logs | None) -> float | None:
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is None:
            _missing_monitor_warning("Early stopping", self.monitor, logs)
        return value

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        if self._direction is None:
            self._direction = self._resolve_direction()
        current = self.get_monitor_value(logs)
        if current is None or epoch < self.start_from_epoch:
            return
        current = float(current)
        improved = self._is_improvement(current, self.best)
        if self.restore_best_weights and self.best_weights is None and not improved:
            # Nothing better seen yet: this epoch's weights are the best so far.
            self.best_weights = self._copy_weights()
            self.best_epoch = epoch
        self.wait += 1
        if improved:
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self._copy_weights()
            # The wait restarts only when the baseline is beaten too.
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self._set_model().stop_training = True

    def on_train_end(self, logs: Logs | None = None) -> None:
        if self.stopped_epoch > 0 and self.verbose > 0:
            _print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                _print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self._set_model().set_weights(self.best_weights)

    def _copy_weights(self):
        return [np.array(w, copy=True) for w in self._set_model().get_weights()]


def _optimizer_of(model: Model) -> Any:
    """The model's optimizer, or None before compile: _get_lr then says what is missing."""
    return model.optimizer


def _get_lr(optimizer):
    if not hasattr(optimizer, "learning_rate"):
        raise ValueError('Optimizer must have a "learning_rate" attribute.')
    return float(np.asarray(optimizer.learning_rate))


def _takes_two_args(fn):
    """Whether ``fn`` can be called as fn(epoch, lr); None when it cannot be told."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    positional = 0
    for p in sig.parameters.values():
        if p.kind == p.VAR_POSITIONAL:
            return True
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            positional += 1
    return positional >= 2


class LearningRateScheduler(Callback):
    """Sets the learning rate at the start of every epoch from ``schedule``.

    Args:
        schedule: ``schedule(epoch, lr) -> new_lr`` (epoch 0-based, lr the current rate),
            or ``schedule(epoch) -> new_lr``.
        verbose: 1 prints the rate set at each epoch.
    """

    def __init__(self, schedule: Callable[..., Any], verbose: int = 0) -> None:
        super().__init__()
        if not callable(schedule):
            raise TypeError(f"schedule must be callable, received {schedule!r}")
        self.schedule = schedule
        self.verbose = verbose
        self._two_args = _takes_two_args(schedule)

    def _new_lr(self, epoch, lr):
        if self._two_args is None:
            try:
                return self.schedule(epoch, lr)
            except TypeError:
                return self.schedule(epoch)
        return self.schedule(epoch, lr) if self._two_args else self.schedule(epoch)

    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None:
        optimizer = _optimizer_of(self._set_model())
        lr = self._new_lr(epoch, _get_lr(optimizer))
        if isinstance(lr, np.ndarray) and lr.ndim == 0:
            lr = lr[()]
        if isinstance(lr, bool) or not isinstance(lr, numbers.Real):
            raise ValueError(f"The output of the `schedule` function should be a float. Got: {lr!r}")
        lr = float(lr)
        optimizer.learning_rate = lr
        if self.verbose > 0:
            _print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {lr}.")

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        if logs is not None:
            logs["learning_rate"] = _get_lr(_optimizer_of(self._set_model()))


class ReduceLROnPlateau(Callback):
    """Multiplies the learning rate by ``factor`` when a quantity stops improving.

    Args:
        monitor: the logged quantity to watch.
        factor: ``new_lr = lr * factor`` (must be < 1).
        patience: epochs without improvement before reducing.
        verbose: 1 prints a line at each reduction.
        mode: ``"min"``, ``"max"`` or ``"auto"`` (from the name).
        min_delta: an improvement must beat the best value by more than this.
        cooldown: epochs to wait after a reduction before counting again.
        min_lr: the rate is never reduced below this.
    """

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10, verbose: int = 0,
                 mode: str = "auto", min_delta: float = 1e-4, cooldown: int = 0, min_lr: float = 0.0, **kwargs) -> None:
        super().__init__()
        if "epsilon" in kwargs:  # the older name of min_delta
            min_delta = kwargs.pop("epsilon")
            warnings.warn("ReduceLROnPlateau: `epsilon` is deprecated, use `min_delta` instead.",
                          stacklevel=2)
        if kwargs:
            raise TypeError(f"ReduceLROnPlateau got unexpected keyword arguments {sorted(kwargs)}")
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau does not support a factor >= 1.0. Received factor={factor}")
        self.monitor = monitor
        self.factor = factor
        self.min_lr = min_lr
        self.min_delta = min_delta
        self.patience = patience
        self.verbose = verbose
        self.cooldown = cooldown
        self.mode = _check_mode(mode)
        self.cooldown_counter = 0
        self.wait = 0
        self._reset()

    def _reset(self):
        direction = self.mode
        if direction == "auto":
            direction = _direction_from_name(self.monitor, self._model)
            if direction is None:
                direction = "max" if "acc" in self.monitor else "min"
        self._direction = direction
        self.best = math.inf if direction == "min" else -math.inf
        self.cooldown_counter = 0
        self.wait = 0

    def _is_improvement(self, value, best):
        if self._direction == "min":
            return value < best - self.min_delta
        return value > best + self.min_delta

    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self._reset()

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        logs = {} if logs is None else logs
        optimizer = _optimizer_of(self._set_model())
        logs["learning_rate"] = _get_lr(optimizer)
        current = logs.get(self.monitor)
        if current is None:
            _missing_monitor_warning("Learning rate reduction is", self.monitor, logs, ".")
            return
        current = float(current)
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self._is_improvement(current, self.best):
            self.best = current
            self.wait = 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience:
                old_lr = _get_lr(optimizer)
                if old_lr > np.float32(self.min_lr):
                    new_lr = max(old_lr * self.factor, self.min_lr)
                    optimizer.learning_rate = new_lr
                    if self.verbose > 0:
                        _print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new_lr}.")
                    self.cooldown_counter = self.cooldown
                    self.wait = 0


class CSVLogger(Callback):
    """Writes one CSV row per epoch: ``epoch`` then the logged values, by name.

    Columns are ``epoch`` followed by the first epoch's log names in sorted order
    (plus any ``val_`` names the model reports); a value missing later is written
    ``NA``. Rows end with ``\\r\\n``. Each row is written whole and flushed, so an
    interrupted run leaves only complete rows.

    Args:
        filename: path of the CSV file.
        separator: the field separator.
        append: append to an existing file (its header is kept) instead of
            overwriting it.
    """

    def __init__(self, filename: str | os.PathLike[str], separator: str = ",", append: bool = False) -> None:
        super().__init__()
        self.sep = separator
        self.filename = os.fspath(filename)
        self.append = append
        self.keys: list[str] | None = None
        self.append_header = True
        self.csv_file: IO[str] | None = None
        self._dialect: type[csv.Dialect] | None = None

    def on_train_begin(self, logs: Logs | None = None) -> None:
        if self.append:
            if os.path.exists(self.filename):
                with open(self.filename, newline="") as f:
                    self.append_header = not bool(len(f.readline()))
            else:
                self.append_header = True
            mode = "a"
        else:
            self.append_header = True
            mode = "w"
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.csv_file = open(self.filename, mode, newline="")
        self.keys = None

        class _Dialect(csv.excel):
            delimiter = self.sep

        self._dialect = _Dialect

    @staticmethod
    def _handle_value(value):
        if isinstance(value, str):
            return value
        if isinstance(value, np.ndarray) and value.ndim == 0:
            return value[()]
        if isinstance(value, collections.abc.Iterable):
            return f'"[{", ".join(map(str, value))}]"'
        return value

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        logs = logs or {}
        if self.csv_file is None or self.csv_file.closed:
            raise RuntimeError("CSVLogger: on_epoch_end called outside training (no open file)")
        buffer = io.StringIO()
        writer = csv.writer(buffer, dialect=self._dialect or csv.excel)
        if self.keys is None:
            self.keys = sorted(logs.keys())
            for name in getattr(self.model, "metrics_names", None) or ():
                if name.startswith("val_") and name not in self.keys:
                    self.keys.append(name)
            if self.append_header:
                writer.writerow(["epoch"] + self.keys)
        writer.writerow([epoch] + [self._handle_value(logs.get(k, "NA")) for k in self.keys])
        # One write per epoch, then flush: a crash leaves whole rows only.
        self.csv_file.write(buffer.getvalue())
        self.csv_file.flush()

    def on_train_end(self, logs: Logs | None = None) -> None:
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()


class LambdaCallback(Callback):
    """A callback made of plain functions, given by hook name.

    ``on_epoch_begin``/``on_epoch_end`` take ``(epoch, logs)``, ``on_train_begin``/
    ``on_train_end`` take ``(logs)``, batch hooks take ``(batch, logs)``; any other
    hook of :class:`Callback` can be given by keyword (``on_test_end=...``).
    """

    _HOOKS = (
        "on_epoch_begin", "on_epoch_end", "on_train_begin", "on_train_end",
        "on_train_batch_begin", "on_train_batch_end", "on_batch_begin", "on_batch_end",
        "on_test_begin", "on_test_end", "on_test_batch_begin", "on_test_batch_end",
        "on_predict_begin", "on_predict_end", "on_predict_batch_begin", "on_predict_batch_end",
    )

    def __init__(self, on_epoch_begin: Callable[..., Any] | None = None, on_epoch_end: Callable[..., Any] | None = None,
                 on_train_begin: Callable[..., Any] | None = None, on_train_end: Callable[..., Any] | None = None,
                 on_train_batch_begin: Callable[..., Any] | None = None,
                 on_train_batch_end: Callable[..., Any] | None = None, **kwargs) -> None:
        super().__init__()
        unknown = [k for k in kwargs if k not in self._HOOKS]
        if unknown:
            raise ValueError(
                f"LambdaCallback got unknown hooks {unknown}; valid hooks are {list(self._HOOKS)}")
        given = dict(on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end,
                     on_train_begin=on_train_begin, on_train_end=on_train_end,
                     on_train_batch_begin=on_train_batch_begin,
                     on_train_batch_end=on_train_batch_end, **kwargs)
        for name, fn in given.items():
            if fn is None:
                continue
            if not callable(fn):
                raise TypeError(f"LambdaCallback {name} must be callable, received {fn!r}")
            setattr(self, name, fn)


class TerminateOnNaN(Callback):
    """Stops training when a batch's loss is NaN or infinite.

    Args:
        raise_error: raise ``RuntimeError`` at once instead of stopping gracefully
            (``model.stop_training = True``, after which ``on_train_end`` still runs).
    """

    def __init__(self, raise_error: bool = False) -> None:
        super().__init__()
        self.raise_error = raise_error

    def on_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is None:
            return
        loss = float(loss)
        if math.isnan(loss) or math.isinf(loss):
            if self.raise_error:
                raise RuntimeError(
                    f"NaN or Inf loss encountered at batch {batch}. Loss value: {loss}. "
                    "Terminating training immediately.")
            _print(f"Batch {batch}: Invalid loss, terminating training")
            self._set_model().stop_training = True


def __getattr__(name):
    # ModelCheckpoint lives with the saving code and subclasses Callback; importing it on
    # first use keeps the two modules free of an import cycle.
    if name == "ModelCheckpoint":
        from fastnet.callbacks_checkpoint import ModelCheckpoint

        return ModelCheckpoint
    raise AttributeError(f"module 'fastnet.callbacks' has no attribute {name!r}")
