"""fastnet.utils.Progbar used directly (the callbacks' tests cover it inside fit)."""
import io
import sys

import pytest

from fastnet.utils import Progbar
from fastnet.utils import progbar as pb


class Clock:
    def __init__(self):
        self.t = 50.0

    def __call__(self):
        return self.t


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(pb, "_now", c)
    return c


@pytest.fixture
def tty(monkeypatch):
    monkeypatch.setattr(pb, "FORCE_DYNAMIC_DISPLAY", True)


def test_values_are_averaged_over_steps_unless_stateful(clock, capsys):
    bar = Progbar(4, verbose=2, stateful_metrics=["acc"])
    clock.t += 0.5
    bar.update(2, [("loss", 1.0), ("acc", 0.25)])
    clock.t += 0.5
    bar.update(4, [("loss", 4.0), ("acc", 0.75)])
    # loss: (1 * 2 steps + 4 * 2 steps) / 4; acc shown as given.
    assert capsys.readouterr().out == "4/4 - 1s - loss: 2.5000 - acc: 0.7500 - 1s/epoch - 250ms/step\n"


def test_add_and_dict_values(clock, capsys):
    bar = Progbar(3, verbose=2)
    bar.add(1, {"loss": 3.0})
    bar.add(2, {"loss": 0.0})
    assert capsys.readouterr().out == "3/3 - 0s - loss: 1.0000 - 0s/epoch - 0s/step\n"


def test_shorter_line_is_padded_over_the_previous_one(clock, tty, capsys):
    bar = Progbar(2, stateful_metrics=["loss"])
    clock.t += 0.0625
    bar.update(1, [("loss", 1234567.0)])
    clock.t += 0.0625
    bar.update(2, [("loss", 1.0)])
    first = "1/2 [==============>...............] - ETA: 0s - loss: 1234567.0000"
    second = "2/2 [==============================] - 0s 62ms/step - loss: 1.0000"
    assert len(second) == len(first) - 1
    assert capsys.readouterr().out == (
        "\r" + first + "\b" * len(first) + "\r" + second + " " + "\n")


def test_unknown_target(clock, tty, capsys):
    bar = Progbar(None)
    clock.t += 0.0625
    bar.update(5, [("loss", 0.5)])
    assert capsys.readouterr().out == "\r      5/Unknown - 0s 12ms/step - loss: 0.5000"


def test_eta_grows_into_minutes_and_hours(clock, tty, capsys):
    bar = Progbar(100000, width=10)
    clock.t += 2.0
    bar.update(1)
    clock.t += 0.1
    bar.update(2)    # 0.1 s per step after the first
    clock.t += 0.1
    bar.update(3)
    out = capsys.readouterr().out.split("\r")
    assert out[1].startswith("     1/100000 [..........] - ETA: 55:33:18")
    assert out[2].rstrip("\b").startswith("     2/100000 [..........] - ETA: 2:46:39")
    bar = Progbar(700, width=10)
    clock.t += 1.0
    bar.update(1)
    clock.t += 0.1
    bar.update(2)
    last = capsys.readouterr().out.split("\r")[-1]
    assert last.startswith("  2/700 [..........] - ETA: 1:09")


def test_time_formats():
    assert pb._format_time(0, "step") == " 0s/step"
    assert pb._format_time(2.5, "epoch") == " 2s/epoch"
    assert pb._format_time(0.0125, "step") == " 12ms/step"
    assert pb._format_time(0.0005, "step") == " 500us/step"
    assert pb._format_eta(3661) == "1:01:01"
    assert pb._format_eta(61) == "1:01"
    assert pb._format_eta(59.9) == "59s"


def test_verbose_zero_and_bad_arguments(clock, tty, capsys):
    bar = Progbar(2, verbose=0)
    bar.update(1, [("loss", 1.0)])
    bar.update(2, [("loss", 1.0)])
    assert capsys.readouterr().out == ""
    with pytest.raises(ValueError, match="verbose must be 0, 1 or 2, received 3"):
        Progbar(2, verbose=3)
    with pytest.raises(ValueError, match="target must be >= 0 or None, received -1"):
        Progbar(-1)


def test_dynamic_display_detection(monkeypatch):
    class TTY(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(pb, "FORCE_DYNAMIC_DISPLAY", None)
    monkeypatch.delenv("PYCHARM_HOSTED", raising=False)
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    assert pb.dynamic_display() is False
    monkeypatch.setattr(sys, "stdout", TTY())
    assert pb.dynamic_display() is True
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    monkeypatch.setitem(sys.modules, "ipykernel", object())
    assert pb.dynamic_display() is True
    monkeypatch.delitem(sys.modules, "ipykernel")
    monkeypatch.setenv("PYCHARM_HOSTED", "1")
    assert pb.dynamic_display() is True
    monkeypatch.setattr(pb, "FORCE_DYNAMIC_DISPLAY", False)
    assert pb.dynamic_display() is False


def test_not_a_terminal_writes_the_final_line_only(clock, monkeypatch, capsys):
    monkeypatch.setattr(pb, "FORCE_DYNAMIC_DISPLAY", False)
    bar = Progbar(3)
    for i in range(3):
        clock.t += 0.25
        bar.update(i + 1, [("loss", 0.5)], finalize=False)
    assert capsys.readouterr().out == ""
    bar.update(3, [("loss", 0.5)], finalize=True)
    assert capsys.readouterr().out == "3/3 [==============================] - 1s 250ms/step - loss: 0.5000\n"
