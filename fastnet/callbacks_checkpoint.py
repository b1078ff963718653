"""ModelCheckpoint: saves the model (or its weights) during ``fit``, as Keras's does.

Every save is atomic (a temporary file in the target folder, renamed over the target),
so a checkpoint on disk is always a complete file, even if training is interrupted
while it is being written.

Example:
    >>> from fastnet.callbacks_checkpoint import ModelCheckpoint  # also fastnet.callbacks.ModelCheckpoint
    >>> ckpt = ModelCheckpoint("ckpt-{epoch:02d}-{val_loss:.3f}.keras", monitor="val_loss",
    ...                        save_best_only=True)
    >>> # model.fit(x, y, validation_split=0.2, epochs=10, callbacks=[ckpt])
"""
from __future__ import annotations

import math
import numbers
import os
import warnings
from typing import TYPE_CHECKING

import numpy as np

from fastnet.callbacks import Callback, _check_mode, _direction_from_name, _print

if TYPE_CHECKING:
    from fastnet._typing import Logs

__all__ = ["ModelCheckpoint"]


class ModelCheckpoint(Callback):
    """Saves the model or its weights at the end of every epoch or every ``save_freq`` batches.

    Args:
        filepath: where to save; may hold ``str.format`` fields filled from ``epoch``
            (1-based), ``batch`` (1-based, with an integer ``save_freq``) and the logs,
            e.g. ``"ckpt-{epoch:02d}-{val_loss:.3f}.keras"``. It must end in
            ``.weights.h5`` with ``save_weights_only=True`` and in ``.keras`` otherwise.
        monitor: the logged quantity ``save_best_only`` compares (``"val_loss"``).
        verbose: 1 prints a line for each decision.
        save_best_only: save only when ``monitor`` improves on the best value so far.
        save_weights_only: ``model.save_weights`` instead of ``model.save``.
        mode: ``"auto"``, ``"min"`` or ``"max"``: the direction of improvement (auto:
            from the name, losses go down and accuracies up).
        save_freq: ``"epoch"``, or a positive int: save every that many batches.
        initial_value_threshold: a first "best" value the monitored quantity must beat.
    """

    def __init__(self, filepath: str | os.PathLike[str], monitor: str = "val_loss", verbose: int = 0,
                 save_best_only: bool = False, save_weights_only: bool = False, mode: str = "auto",
                 save_freq: str | int = "epoch", initial_value_threshold: float | None = None) -> None:
        super().__init__()
        self.filepath = os.fspath(filepath)
        self.monitor = monitor
        self.verbose = verbose
        self.save_best_only = bool(save_best_only)
        self.save_weights_only = bool(save_weights_only)
        self.mode = _check_mode(mode)
        if save_freq != "epoch" and (isinstance(save_freq, bool) or not isinstance(save_freq, numbers.Integral)
                                     or save_freq <= 0):
            raise ValueError(f"Unrecognized save_freq: {save_freq!r}. Expected 'epoch' or a "
                             f"positive integer number of batches")
        self.save_freq = save_freq if save_freq == "epoch" else int(save_freq)
        if self.save_weights_only:
            if not self.filepath.endswith(".weights.h5"):
                raise ValueError(
                    "With save_weights_only=True the ModelCheckpoint filepath must end in "
                    f"'.weights.h5'. Received: filepath={self.filepath!r}")
        elif not self.filepath.endswith(".keras"):
            raise ValueError(
                "The ModelCheckpoint filepath must end in '.keras' (the whole model) or, with "
                f"save_weights_only=True, in '.weights.h5'. Received: filepath={self.filepath!r}")
        self.initial_value_threshold = initial_value_threshold
        self.best = None if initial_value_threshold is None else float(initial_value_threshold)
        self._direction = None
        self._current_epoch = 0
        self._batches_seen_since_last_saving = 0
        self._last_batch_seen = -1

    # The batch hooks are only needed when saving every N batches.
    def _implements_train_batch_hooks(self):
        return self.save_freq != "epoch"

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self._batches_seen_since_last_saving = 0
        self._last_batch_seen = -1

    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None:
        self._current_epoch = epoch

    def on_train_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        if not isinstance(self.save_freq, int):  # "epoch"
            return
        if batch <= self._last_batch_seen:  # a new epoch started
            self._batches_seen_since_last_saving += batch + 1
        else:
            self._batches_seen_since_last_saving += batch - self._last_batch_seen
        self._last_batch_seen = batch
        if self._batches_seen_since_last_saving >= self.save_freq:
            self._batches_seen_since_last_saving = 0
            self._save_model(self._current_epoch, batch, logs)

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        self._last_batch_seen = -1
        if self.save_freq == "epoch":
            self._save_model(epoch, None, logs)

    # ------------------------------------------------------------------ decisions
    def _resolve_direction(self):
        if self._direction is None:
            if self.mode != "auto":
                self._direction = self.mode
            else:
                direction = _direction_from_name(self.monitor, self.model)
                if direction is None:
                    raise ValueError(
                        f"ModelCheckpoint callback received monitor={self.monitor} but cannot "
                        "tell whether that metric should be maximized or minimized. Pass "
                        "mode='max' to keep the highest value, or mode='min' for the lowest.")
                self._direction = direction
        return self._direction

    def _is_improvement(self, value):
        if self.best is None:
            return True
        if self._resolve_direction() == "min":
            return value < self.best
        return value > self.best

    def _get_file_path(self, epoch, batch, logs):
        logs = dict(logs or {})
        try:
            if batch is None or "batch" in logs:
                return self.filepath.format(epoch=epoch + 1, **logs)
            return self.filepath.format(epoch=epoch + 1, batch=batch + 1, **logs)
        except KeyError as e:
            raise KeyError(f'Failed to format the ModelCheckpoint filepath "{self.filepath}": '
                           f"{e} is not among the logged values {sorted(logs)}") from None

    def _should_save(self, epoch, logs, filepath):
        if not self.save_best_only:
            if self.verbose > 0:
                _print(f"\nEpoch {epoch + 1}: saving model to {filepath}")
            return True
        current = (logs or {}).get(self.monitor)
        if current is None:
            warnings.warn(f"Can save best model only with {self.monitor} available; available: "
                          f"{sorted(logs or {})}. Saving anyway.", stacklevel=3)
            return True
        if isinstance(current, np.ndarray) and current.ndim > 0:
            warnings.warn(f"Can save best model only when {self.monitor} is a scalar, received "
                          f"shape {current.shape}. Saving anyway.", stacklevel=3)
            return True
        current = float(current)
        best_str = "None" if self.best is None else f"{self.best:.5f}"
        self._resolve_direction()
        if not math.isnan(current) and self._is_improvement(current):
            if self.verbose > 0:
                _print(f"\nEpoch {epoch + 1}: {self.monitor} improved from {best_str} to "
                       f"{current:.5f}, saving model to {filepath}")
            self.best = current
            return True
        if self.verbose > 0:
            _print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {best_str}")
        return False

    def _save_model(self, epoch, batch, logs):
        filepath = self._get_file_path(epoch, batch, logs)
        if not self._should_save(epoch, logs, filepath):
            return
        if os.path.isdir(filepath):
            raise IsADirectoryError(f"ModelCheckpoint needs a file path; {filepath!r} is an "
                                    f"existing directory")
        folder = os.path.dirname(filepath)
        if folder:
            os.makedirs(folder, exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(filepath, overwrite=True)
        else:
            self.model.save(filepath, overwrite=True)
        if self.verbose > 0:
            _print(f"\nEpoch {epoch + 1}: finished saving model to {filepath}")
