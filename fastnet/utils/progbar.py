"""The text progress bar of ``fit``/``evaluate``/``predict``, in tf.keras 2's layout.

While an epoch runs on a terminal (or a notebook) the bar is redrawn in place::

    12/32 [==========>...................] - ETA: 0s - loss: 0.5012 - accuracy: 0.9413

and the epoch ends with::

    32/32 [==============================] - 0s 1ms/step - loss: 0.4972 - accuracy: 0.9490

When standard output is not a terminal (a log file, a pipe, CI) only that final
line is written, so logs are never flooded with redraws. ``verbose=2`` writes
one summary line per epoch::

    32/32 - 0s - loss: 0.4972 - accuracy: 0.9490 - 16ms/epoch - 500us/step

Example:
    >>> bar = Progbar(target=3, verbose=1)
    >>> for step in range(3):
    ...     bar.update(step + 1, [("loss", 0.5)])  # doctest: +SKIP
"""
from __future__ import annotations

import math
import os
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from typing import Any

__all__ = ["Progbar"]

# None: detect whether stdout redraws in place (a terminal or a notebook);
# True / False: force it (tests, or a console the detection gets wrong).
FORCE_DYNAMIC_DISPLAY = None


def _now():
    """The clock of every timing shown (seconds; a module function so tests can freeze it)."""
    return time.perf_counter()


def dynamic_display() -> bool:
    """Whether standard output can redraw a line in place with ``\\r``.

    True on a terminal, in a notebook kernel and in PyCharm's console; False for a
    file or a pipe. ``FORCE_DYNAMIC_DISPLAY`` (module attribute) overrides it.
    """
    if FORCE_DYNAMIC_DISPLAY is not None:
        return bool(FORCE_DYNAMIC_DISPLAY)
    stream = sys.stdout
    try:
        if stream is not None and stream.isatty():
            return True
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        pass
    return "ipykernel" in sys.modules or "PYCHARM_HOSTED" in os.environ


def _write(message):
    stream = sys.stdout
    if stream is None:  # pythonw: no console at all
        return
    stream.write(message)
    stream.flush()


def _format_value(value, signed):
    """``%.4f``, or ``%.4e`` when the magnitude is at most 1e-3 (tf.keras 2's rule).

    tf.keras 2 compares the magnitude on a redrawn bar but the signed value in the
    verbose=2 line (so a negative value prints in e-notation there); ``signed``
    selects the latter.
    """
    test = value if signed else abs(value)
    if test > 1e-3:
        return f" {value:.4f}"
    return f" {value:.4e}"


def _format_time(seconds, unit_name):
    """`` 2s/epoch``, `` 15ms/step`` or `` 500us/step``, as tf.keras 2 shows durations."""
    if seconds >= 1 or seconds == 0:
        return f" {seconds:.0f}s/{unit_name}"
    if seconds >= 1e-3:
        return f" {seconds * 1e3:.0f}ms/{unit_name}"
    return f" {seconds * 1e6:.0f}us/{unit_name}"


def _format_eta(eta):
    if eta > 3600:
        return f"{int(eta // 3600)}:{int((eta % 3600) // 60):02d}:{int(eta % 60):02d}"
    if eta > 60:
        return f"{int(eta // 60)}:{int(eta % 60):02d}"
    return f"{int(eta)}s"


def _num_digits(n):
    return int(math.log10(n)) + 1 if n >= 1 else 1


class Progbar:
    """A progress bar with running values, written to ``sys.stdout``.

    Args:
        target: total number of steps, or None when unknown (the bar then shows
            ``<step>/Unknown``).
        width: width of the bar in characters.
        verbose: 0 (silent), 1 (the bar) or 2 (one line when the target is reached).
        interval: minimum seconds between two redraws of the bar.
        stateful_metrics: names whose values are shown as given. Other values are
            averaged over the steps seen, each step weighted by the steps it covers.
        unit_name: what a step is called in the timing (``"step"``, ``"sample"``).
    """

    def __init__(self, target: int | None, width: int = 30, verbose: int | str = 1, interval: float = 0.05,
                 stateful_metrics: Iterable[str] | None = None, unit_name: str = "step") -> None:
        if target is not None:
            target = int(target)
            if target < 0:
                raise ValueError(f"Progbar target must be >= 0 or None, received {target}")
        if verbose not in (0, 1, 2):
            raise ValueError(f"Progbar verbose must be 0, 1 or 2, received {verbose!r}")
        self.target = target
        self.width = int(width)
        self.verbose = verbose
        self.interval = float(interval)
        self.unit_name = unit_name
        self.stateful_metrics = set(stateful_metrics) if stateful_metrics else set()
        self._dynamic_display = dynamic_display()
        self._total_width = 0
        self._seen_so_far = 0
        self._values: dict[str, Any] = {}  # name -> [weighted sum, weight]
        self._values_order: list[str] = []
        self._start = _now()
        self._last_update = None
        self._time_at_epoch_start = self._start
        self._time_at_epoch_end = None
        self._time_after_first_step = None

    def update(self, current: int, values: Sequence[tuple[str, Any]] | None = None,
               finalize: bool | None = None) -> None:
        """Records step ``current`` (1-based) and redraws the bar when due.

        Args:
            current: index of the step just completed.
            values: list of ``(name, value)`` for this step (or a dict).
            finalize: whether this is the last update; by default
                ``current >= target``.
        """
        if finalize is None:
            finalize = False if self.target is None else current >= self.target
        if values:
            items = values.items() if isinstance(values, dict) else values
            for name, value in items:
                if name not in self._values:
                    self._values_order.append(name)
                if name in self.stateful_metrics:
                    self._values[name] = [value, 1]
                else:
                    # At least 1 so that an update repeating the last step still counts.
                    weight = max(current - self._seen_so_far, 1)
                    acc = self._values.get(name)
                    if acc is None:
                        self._values[name] = [value * weight, weight]
                    else:
                        acc[0] += value * weight
                        acc[1] += weight
        self._seen_so_far = current

        now = _now()
        if current == self.target:
            self._time_at_epoch_end = now
        if self.verbose == 1:
            if not self._draw(current, now, finalize):
                return  # throttled: the next update is measured from the last drawn one
        elif self.verbose == 2 and finalize:
            self._summary_line(current, now)
        self._last_update = now

    def add(self, n: int, values: Sequence[tuple[str, Any]] | None = None) -> None:
        """Advances the bar by ``n`` steps."""
        self.update(self._seen_so_far + n, values)

    # ------------------------------------------------------------------ drawing
    def _value_text(self, signed):
        text = ""
        for name in self._values_order:
            total, weight = self._values[name]
            text += f" - {name}:" + _format_value(float(total) / max(1, weight), signed)
        return text

    def _bar(self, current):
        if self.target is None:
            return f"{int(current):7d}/Unknown"
        target = self.target
        bar = f"{int(current):{_num_digits(target)}d}/{int(target)} ["
        progress = float(current) / target if target else 1.0
        filled = int(self.width * progress)
        if filled > 0:
            bar += "=" * (filled - 1)
            bar += ">" if current < target else "="
        bar += "." * (self.width - filled)
        return bar + "]"

    def _draw(self, current, now, finalize):
        if not self._dynamic_display:
            # Not a terminal: the final line only, never a redraw.
            if finalize:
                info = f" - {now - self._start:.0f}s"
                info += _format_time(self._estimate_step_duration(current, now), self.unit_name)
                _write(self._bar(current) + info + self._value_text(False) + "\n")
            else:
                self._estimate_step_duration(current, now)
            return True
        if (not finalize and self._last_update is not None
                and now - self._last_update < self.interval):
            return False
        prev_total_width = self._total_width
        message = "\b" * prev_total_width + "\r"
        bar = self._bar(current)
        self._total_width = len(bar)
        message += bar
        time_per_unit = self._estimate_step_duration(current, now)
        if self.target is None or finalize:
            info = f" - {now - self._start:.0f}s" + _format_time(time_per_unit, self.unit_name)
        else:
            info = " - ETA: " + _format_eta(time_per_unit * (self.target - current))
        info += self._value_text(False)
        self._total_width += len(info)
        if prev_total_width > self._total_width:
            info += " " * (prev_total_width - self._total_width)
        if finalize:
            info += "\n"
        _write(message + info)
        return True

    def _summary_line(self, current, now):
        target = self.target if self.target is not None else current
        info = ("%" + str(_num_digits(target)) + "d/%d") % (current, target)
        info += f" - {now - self._start:.0f}s"
        info += self._value_text(True)
        end = self._time_at_epoch_end if self._time_at_epoch_end is not None else now
        time_per_epoch = end - self._time_at_epoch_start
        info += " -" + _format_time(time_per_epoch, "epoch")
        info += " -" + _format_time(time_per_epoch / max(target, 1), self.unit_name)
        self._time_at_epoch_start = now
        self._time_at_epoch_end = None
        _write(info + "\n")

    def _estimate_step_duration(self, current, now):
        """Seconds per step, leaving out the first step (often slow) once there are more."""
        if not current:
            return 0
        if self._time_after_first_step is not None and current > 1:
            per_unit = (now - self._time_after_first_step) / (current - 1)
        else:
            per_unit = (now - self._start) / current
        if current == 1:
            self._time_after_first_step = now
        return per_unit
