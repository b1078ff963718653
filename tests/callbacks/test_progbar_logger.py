"""The progress text of fit / evaluate / predict, compared character by character.

The clock is frozen (the drivers advance it 0.0625 s per batch, validation
batches included), so every timing is exact.
"""
from fastnet.callbacks import ProgbarLogger

EPOCH_LOGS = [{"loss": 0.7, "accuracy": 0.5}, {"loss": 0.6, "accuracy": 0.625}]
VAL_LOGS = [{"loss": 0.75, "accuracy": 0.45}, {"loss": 0.65, "accuracy": 0.5}]


def batch_logs(epoch, step):
    return {"loss": [0.9, 0.8, 0.7][step] - 0.1 * epoch, "accuracy": 0.5}


def fit(drivers, verbose, epochs=2, val=True, **kw):
    drivers.fit(drivers.Model(), kw.pop("callbacks", None), epochs=epochs, steps=3,
                verbose=verbose, epoch_logs=EPOCH_LOGS, batch_logs=batch_logs,
                val_logs=VAL_LOGS if val else None, **kw)


def test_fit_verbose1_not_a_terminal_prints_final_lines_only(drivers, clock, no_tty, capsys):
    fit(drivers, 1, clock=clock)
    assert capsys.readouterr().out == (
        "Epoch 1/2\n"
        "3/3 [==============================] - 0s 125ms/step - loss: 0.7000 - accuracy: 0.5000"
        " - val_loss: 0.7500 - val_accuracy: 0.4500\n"
        "Epoch 2/2\n"
        "3/3 [==============================] - 0s 125ms/step - loss: 0.6000 - accuracy: 0.6250"
        " - val_loss: 0.6500 - val_accuracy: 0.5000\n")


def test_fit_verbose1_single_epoch_has_no_epoch_header(drivers, clock, no_tty, capsys):
    fit(drivers, 1, epochs=1, val=False, clock=clock)
    assert capsys.readouterr().out == (
        "3/3 [==============================] - 0s 62ms/step - loss: 0.7000 - accuracy: 0.5000\n")


def test_fit_verbose1_terminal_redraws_in_place(drivers, clock, tty, capsys):
    fit(drivers, 1, clock=clock)
    out = capsys.readouterr().out

    def epoch(lines):
        text, width = "", 0
        for line in lines:
            text += "\b" * width + "\r" + line
            width = len(line)
        return text + "\n"

    bar1 = "1/3 [=========>....................]"
    bar2 = "2/3 [===================>..........]"
    bar3 = "3/3 [==============================]"
    expected = (
        "Epoch 1/2\n" + epoch([
            bar1 + " - ETA: 0s - loss: 0.9000 - accuracy: 0.5000",
            bar2 + " - ETA: 0s - loss: 0.8000 - accuracy: 0.5000",
            bar3 + " - ETA: 0s - loss: 0.7000 - accuracy: 0.5000",
            # (0.375 s - 0.0625 s after the first step) / 2 steps = 156 ms
            bar3 + " - 0s 156ms/step - loss: 0.7000 - accuracy: 0.5000 - val_loss: 0.7500"
                   " - val_accuracy: 0.4500"])
        + "Epoch 2/2\n" + epoch([
            bar1 + " - ETA: 0s - loss: 0.8000 - accuracy: 0.5000",
            bar2 + " - ETA: 0s - loss: 0.7000 - accuracy: 0.5000",
            bar3 + " - ETA: 0s - loss: 0.6000 - accuracy: 0.5000",
            bar3 + " - 0s 156ms/step - loss: 0.6000 - accuracy: 0.6250 - val_loss: 0.6500"
                   " - val_accuracy: 0.5000"]))
    assert out == expected


def test_fit_verbose1_terminal_throttles_redraws(drivers, clock, tty, capsys):
    # 32 steps of 7.8125 ms: a redraw at most every 0.05 s (interval), so 5 redraws
    # (steps 1, 8, 15, 22, 29) and the final line.
    drivers.fit(drivers.Model(), None, epochs=1, steps=32, verbose=1, clock=clock,
                step_time=0.0078125, epoch_logs=[{"loss": 0.4972, "accuracy": 0.949}],
                batch_logs=lambda e, s: {"loss": 0.5, "accuracy": 0.9})
    out = capsys.readouterr().out
    draws = out.split("\r")[1:]
    assert [d.lstrip("\b")[:5] for d in draws[:-1]] == [" 1/32", " 8/32", "15/32", "22/32", "29/32"]
    assert draws[2].startswith("15/32 [=============>................] - ETA: 0s - loss: 0.5000")
    assert draws[-1] == ("32/32 [==============================] - 0s 8ms/step - loss: 0.4972"
                         " - accuracy: 0.9490\n")
    assert out.count("\n") == 1


def test_fit_verbose2_one_line_per_epoch(drivers, clock, tty, capsys):
    fit(drivers, 2, clock=clock)
    assert capsys.readouterr().out == (
        "Epoch 1/2\n"
        "3/3 - 0s - loss: 0.7000 - accuracy: 0.5000 - val_loss: 0.7500 - val_accuracy: 0.4500"
        " - 375ms/epoch - 125ms/step\n"
        "Epoch 2/2\n"
        "3/3 - 0s - loss: 0.6000 - accuracy: 0.6250 - val_loss: 0.6500 - val_accuracy: 0.5000"
        " - 375ms/epoch - 125ms/step\n")


def test_fit_verbose2_tutorial_line(drivers, clock, no_tty, capsys):
    drivers.fit(drivers.Model(), None, epochs=10, steps=32, verbose=2, clock=clock,
                step_time=0.0005, epoch_logs=lambda e: {"loss": 0.4972, "accuracy": 0.949})
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == ["Epoch 1/10",
                         "32/32 - 0s - loss: 0.4972 - accuracy: 0.9490 - 16ms/epoch - 500us/step"]
    assert len(lines) == 20


def test_fit_verbose0_prints_nothing(drivers, clock, tty, capsys):
    fit(drivers, 0, clock=clock)
    assert capsys.readouterr().out == ""


def test_small_and_negative_values(drivers, clock, no_tty, capsys):
    logs = [{"loss": 0.0001234, "score": -0.5, "tiny": -0.00001}]
    for verbose in (1, 2):
        drivers.fit(drivers.Model(), None, epochs=1, steps=3, verbose=verbose, clock=clock,
                    epoch_logs=logs)
    assert capsys.readouterr().out == (
        "3/3 [==============================] - 0s 62ms/step - loss: 1.2340e-04"
        " - score: -0.5000 - tiny: -1.0000e-05\n"
        # verbose=2 compares the signed value, as tf.keras 2 did: negatives print as e-notation
        "3/3 - 0s - loss: 1.2340e-04 - score: -5.0000e-01 - tiny: -1.0000e-05"
        " - 188ms/epoch - 62ms/step\n")


def test_evaluate_and_predict_show_a_bar(drivers, clock, no_tty, capsys):
    result = {"loss": 0.3, "accuracy": 0.875}
    drivers.evaluate(drivers.Model(), result, steps=3, verbose=1, clock=clock)
    drivers.predict(drivers.Model(), steps=3, verbose=1, clock=clock)
    drivers.evaluate(drivers.Model(), result, steps=3, verbose=2, clock=clock)
    drivers.evaluate(drivers.Model(), result, steps=3, verbose=0, clock=clock)
    assert capsys.readouterr().out == (
        "3/3 [==============================] - 0s 62ms/step - loss: 0.3000 - accuracy: 0.8750\n"
        "3/3 [==============================] - 0s 62ms/step\n"
        "3/3 - 0s - loss: 0.3000 - accuracy: 0.8750 - 188ms/epoch - 62ms/step\n")


def test_evaluate_terminal_bar(drivers, clock, tty, capsys):
    drivers.evaluate(drivers.Model(), {"loss": 0.3}, steps=2, verbose=1, clock=clock,
                     batch_logs=lambda s: {"loss": [0.5, 0.3][s]})
    first = "1/2 [==============>...............] - ETA: 0s - loss: 0.5000"
    second = "2/2 [==============================] - ETA: 0s - loss: 0.3000"
    assert capsys.readouterr().out == (
        "\r" + first + "\b" * len(first) + "\r" + second + "\b" * len(second) + "\r"
        + "2/2 [==============================] - 0s 62ms/step - loss: 0.3000\n")


def test_unknown_number_of_steps(drivers, clock, no_tty, capsys):
    drivers.evaluate(drivers.Model(), {"loss": 0.3}, steps=None, run_steps=3, verbose=1,
                     clock=clock)
    # The driver runs 3 steps; the bar learns the count from the batches.
    assert capsys.readouterr().out == (
        "3/3 [==============================] - 0s 62ms/step - loss: 0.3000\n")


def test_user_progbar_logger_is_used_and_validation_is_silent(drivers, clock, no_tty, capsys):
    pl = ProgbarLogger()
    model = drivers.Model()
    drivers.fit(model, [pl], epochs=1, steps=3, verbose=1, clock=clock,
                epoch_logs=[{"loss": 0.5}], val_logs=[{"loss": 0.25}])
    # Afterwards the same logger shows an evaluate bar again.
    drivers.evaluate(model, {"loss": 0.125}, callbacks=[pl], steps=3, verbose=1, clock=clock)
    assert capsys.readouterr().out == (
        "3/3 [==============================] - 0s 125ms/step - loss: 0.5000 - val_loss: 0.2500\n"
        "3/3 [==============================] - 0s 62ms/step - loss: 0.1250\n")


def test_progbar_logger_arguments():
    import pytest
    with pytest.raises(ValueError, match="count_mode must be 'steps'"):
        ProgbarLogger(count_mode="samples")
    pl = ProgbarLogger()
    with pytest.raises(ValueError, match="verbose must be 0, 1, 2 or 'auto', received 3"):
        pl.set_params({"verbose": 3, "epochs": 1, "steps": 1})
    pl.set_params({"verbose": "auto", "epochs": 4, "steps": 10})
    assert (pl.verbose, pl.epochs, pl.target) == (1, 4, 10)
