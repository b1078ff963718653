"""plot_history: the figure, the PNG, and the message when matplotlib is missing."""
import subprocess
import sys
from pathlib import Path

import pytest

from fastnet.callbacks import History
from fastnet.utils import plot_history

HIST = {
    "loss": [0.9, 0.5, 0.31234],
    "accuracy": [0.6, 0.8, 0.9],
    "val_loss": [1.0, 0.7, 0.45678],
    "val_accuracy": [0.55, 0.7, 0.85],
    "learning_rate": [0.01, 0.01, 0.001],
}


def test_two_panels_with_training_and_validation(tmp_path):
    path = tmp_path / "history.png"
    fig = plot_history(HIST, path)
    from matplotlib.figure import Figure
    assert isinstance(fig, Figure)
    top, bottom = fig.axes
    assert top.get_title() == "Loss (final: train 0.3123, val 0.4568)"
    assert bottom.get_title() == "Accuracy (final: train 0.9000, val 0.8500)"
    assert [line.get_label() for line in top.lines] == ["training", "validation"]
    assert [line.get_label() for line in bottom.lines] == ["training", "validation"]
    assert list(top.lines[0].get_xdata()) == [1, 2, 3]
    assert list(top.lines[1].get_ydata()) == HIST["val_loss"]
    assert list(bottom.lines[0].get_ydata()) == HIST["accuracy"]
    assert bottom.get_xlabel() == "Epoch"
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 10_000


def test_accepts_a_history_object_and_training_only_curves():
    h = History()
    h.history = {"loss": [1.0, 0.5], "mae": [0.8, 0.4]}
    fig = plot_history(h)
    top, bottom = fig.axes
    assert top.get_title() == "Loss (final: train 0.5000)"
    assert bottom.get_title() == "Mae (final: train 0.4000)"
    assert len(top.lines) == 1 and len(bottom.lines) == 1


def test_loss_only_and_metric_choice():
    fig = plot_history({"loss": [1.0], "val_loss": [2.0]})
    assert len(fig.axes) == 1
    assert fig.axes[0].get_title() == "Loss (final: train 1.0000, val 2.0000)"
    # accuracy is preferred over other metrics
    fig = plot_history({"loss": [1.0], "mse": [0.3], "accuracy": [0.5]})
    assert fig.axes[1].get_title() == "Accuracy (final: train 0.5000)"


def test_bad_input():
    with pytest.raises(ValueError, match=r"has no 'loss'; its keys are \['accuracy'\]"):
        plot_history({"accuracy": [0.5]})
    with pytest.raises(ValueError, match="history is empty"):
        plot_history({"loss": []})
    with pytest.raises(TypeError, match="expects a History .* received list"):
        plot_history([0.5, 0.4])


def test_missing_matplotlib(monkeypatch):
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)   # makes `import matplotlib` fail
    with pytest.raises(ImportError, match=r"pip install fastnet\[plot\]"):
        plot_history(HIST)


def test_importing_fastnet_utils_loads_no_matplotlib_and_plotting_no_pyplot(tmp_path):
    code = (
        "import sys\n"
        "import fastnet.utils, fastnet.callbacks\n"
        "assert 'matplotlib' not in sys.modules\n"
        f"fastnet.utils.plot_history({{'loss': [1.0, 0.5]}}, {str(tmp_path / 'h.png')!r})\n"
        "assert 'matplotlib' in sys.modules\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])
    assert (tmp_path / "h.png").stat().st_size > 1000
