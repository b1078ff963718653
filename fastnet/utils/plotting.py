"""``plot_history``: the loss and metric curves of a ``fit``, as a matplotlib figure.

matplotlib is optional (``pip install fastnet[plot]``) and imported only when a
figure is drawn. The figure is a ``matplotlib.figure.Figure`` made without pyplot,
so saving it needs no GUI backend and leaves the user's backend alone.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import os
    from collections.abc import Mapping, Sequence

    from matplotlib.figure import Figure

    from fastnet.callbacks import History

__all__ = ["plot_history"]

_SKIP = ("learning_rate", "lr")


def _require_matplotlib():
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(
            "plot_history needs matplotlib, which is not installed. "
            "Install it with: pip install fastnet[plot]") from exc
    return Figure


def _title(name):
    return {"loss": "Loss", "acc": "Accuracy"}.get(name, name.replace("_", " ").capitalize())


def _final(label, values):
    return f"{label} {float(values[-1]):.4f}"


def plot_history(history: History | Mapping[str, Sequence[float]],
                 path: str | os.PathLike[str] | None = None) -> Figure:
    """Draws the training curves of ``fit``: loss on top, the first metric below.

    Each panel shows the training curve and, when present, the validation curve
    (``val_<name>``); the panel title gives the final values. Epochs are numbered
    from 1. The metric panel shows ``accuracy`` (or ``acc``) when logged, else the
    first other metric; without any metric the figure has the loss panel only.

    Args:
        history: the :class:`fastnet.callbacks.History` returned by ``fit``, or its
            ``.history`` dict.
        path: when given, the figure is also written there as a PNG.

    Returns:
        The ``matplotlib.figure.Figure``.

    Example:
        >>> history = model.fit(x, y, validation_split=0.2, epochs=10)  # doctest: +SKIP
        >>> fig = plot_history(history, "training.png")                # doctest: +SKIP
    """
    logs = getattr(history, "history", history)
    if not isinstance(logs, dict):
        raise TypeError(
            "plot_history expects a History (what fit returns) or its .history dict, "
            f"received {type(history).__name__}")
    if "loss" not in logs:
        raise ValueError(f"plot_history: the history has no 'loss'; its keys are {list(logs)}")
    if len(logs["loss"]) == 0:
        raise ValueError("plot_history: the history is empty (no epoch was recorded)")
    metrics = [k for k in logs if k != "loss" and not k.startswith("val_") and k not in _SKIP
               and len(logs[k]) > 0]
    metric = next((m for m in ("accuracy", "acc") if m in metrics), metrics[0] if metrics else None)
    panels = ["loss"] + ([metric] if metric is not None else [])

    Figure = _require_matplotlib()
    fig = Figure(figsize=(8, 3.2 * len(panels) + 0.4), layout="constrained")
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    for ax, name in zip(axes, panels):
        train = logs[name]
        epochs = range(1, len(train) + 1)
        ax.plot(epochs, train, marker="o", markersize=3, label="training")
        parts = [_final("train", train)]
        val = logs.get("val_" + name)
        if val is not None and len(val) > 0:
            ax.plot(range(1, len(val) + 1), val, marker="o", markersize=3, label="validation")
            parts.append(_final("val", val))
        ax.set_title(f"{_title(name)} (final: {', '.join(parts)})")
        ax.set_ylabel(_title(name))
        ax.grid(True, alpha=0.3)
        ax.legend()
    axes[-1].set_xlabel("Epoch")
    from matplotlib.ticker import MaxNLocator
    axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    if path is not None:
        fig.savefig(path, format="png", dpi=100)
    return fig
