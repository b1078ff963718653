"""EarlyStopping, ReduceLROnPlateau, LearningRateScheduler and TerminateOnNaN."""
import math
import warnings

import numpy as np
import pytest

from fastnet.callbacks import EarlyStopping, LambdaCallback, LearningRateScheduler, ReduceLROnPlateau, TerminateOnNaN


def logs_of(name, values):
    return lambda e: {name: values[e]}


def weights_epoch(model):
    """The stub's weights name the epoch that produced them (epoch e -> e + 1)."""
    w = model.get_weights()
    value = float(w[0].flat[0])
    assert all(np.all(x == value) for x in w)
    return value - 1


# ------------------------------------------------------------------ EarlyStopping
def test_early_stopping_stops_after_patience(model, drivers):
    es = EarlyStopping(monitor="loss", patience=2)
    hist = drivers.fit(model, [es], epochs=10, epoch_logs=logs_of("loss", [1.0, 0.9, 0.95, 0.96, 0.5]))
    assert len(hist.history["loss"]) == 4
    assert es.stopped_epoch == 3
    assert es.best == 0.9 and es.best_epoch == 1
    assert weights_epoch(model) == 3   # not restored


def test_early_stopping_restores_best_weights_when_stopping(model, drivers, capsys):
    es = EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True, verbose=1)
    drivers.fit(model, [es], epochs=10, epoch_logs=lambda e: {"loss": 1.0},
                val_logs=lambda e: {"loss": [1.0, 0.8, 0.85, 0.9, 0.1][e]})
    assert es.stopped_epoch == 3
    assert weights_epoch(model) == 1
    assert capsys.readouterr().out == (
        "Epoch 4: early stopping\nRestoring model weights from the end of the best epoch: 2.\n")


def test_early_stopping_restores_best_weights_at_the_last_epoch(model, drivers, capsys):
    es = EarlyStopping(monitor="loss", patience=5, restore_best_weights=True, verbose=1)
    hist = drivers.fit(model, [es], epochs=4, epoch_logs=logs_of("loss", [1.0, 0.5, 0.7, 0.8]))
    assert len(hist.history["loss"]) == 4 and es.stopped_epoch == 0
    assert weights_epoch(model) == 1
    assert capsys.readouterr().out == "Restoring model weights from the end of the best epoch: 2.\n"


def test_early_stopping_min_delta(model, drivers):
    es = EarlyStopping(monitor="loss", min_delta=0.1, patience=1)
    hist = drivers.fit(model, [es], epochs=10, epoch_logs=logs_of("loss", [1.0, 0.95, 0.92, 0.5]))
    assert len(hist.history["loss"]) == 2          # 0.95 is not better by more than 0.1
    es = EarlyStopping(monitor="loss", min_delta=-0.1, patience=1)   # the sign is ignored
    drivers.fit(model, [es], epochs=10, epoch_logs=logs_of("loss", [1.0, 0.85, 0.8, 0.5]))
    assert es.stopped_epoch == 2


def test_early_stopping_patience_zero_and_first_epoch(model, drivers):
    es = EarlyStopping(monitor="loss", patience=0)
    hist = drivers.fit(model, [es], epochs=10, epoch_logs=logs_of("loss", [1.0, 1.0, 0.5]))
    assert len(hist.history["loss"]) == 2 and es.stopped_epoch == 1


def test_early_stopping_baseline(model, drivers):
    values = [0.5, 0.4, 0.3, 0.2, 0.1, 0.0]
    es = EarlyStopping(monitor="val_accuracy", baseline=0.9, patience=2)
    drivers.fit(model, [es], epochs=6, epoch_logs=lambda e: {"loss": 1.0},
                val_logs=lambda e: {"accuracy": values[e]})
    # The baseline is never beaten: the wait is not reset by the first epoch.
    assert es.stopped_epoch == 1
    es = EarlyStopping(monitor="val_accuracy", patience=2)
    drivers.fit(model, [es], epochs=6, epoch_logs=lambda e: {"loss": 1.0},
                val_logs=lambda e: {"accuracy": values[e]})
    assert es.stopped_epoch == 2
    # Beating the baseline resets the wait as usual.
    es = EarlyStopping(monitor="accuracy", baseline=0.55, patience=2, mode="max")
    hist = drivers.fit(model, [es], epochs=6,
                       epoch_logs=logs_of("accuracy", [0.5, 0.6, 0.6, 0.6, 0.6, 0.6]))
    assert es.stopped_epoch == 3 and len(hist.history["accuracy"]) == 4


def test_early_stopping_start_from_epoch(model, drivers):
    losses = [1.0, 2.0, 3.0, 4.0, 5.0]
    es = EarlyStopping(monitor="loss", start_from_epoch=2, patience=0, restore_best_weights=True)
    hist = drivers.fit(model, [es], epochs=5, epoch_logs=logs_of("loss", losses))
    assert es.stopped_epoch == 3 and len(hist.history["loss"]) == 4
    assert es.best == 3.0 and weights_epoch(model) == 2
    es = EarlyStopping(monitor="loss", patience=0)
    drivers.fit(model, [es], epochs=5, epoch_logs=logs_of("loss", losses))
    assert es.stopped_epoch == 1


def test_early_stopping_max_mode_and_auto_direction(model, drivers):
    acc = [0.5, 0.7, 0.6, 0.65, 0.9]
    for es in (EarlyStopping(monitor="accuracy", patience=2),
               EarlyStopping(monitor="accuracy", patience=2, mode="max")):
        drivers.fit(model, [es], epochs=5, epoch_logs=logs_of("accuracy", acc))
        assert es.stopped_epoch == 3 and es.best == 0.7
    es = EarlyStopping(monitor="accuracy", patience=2, mode="min")
    drivers.fit(model, [es], epochs=5, epoch_logs=logs_of("accuracy", acc))
    assert es.stopped_epoch == 2 and es.best == 0.5


def test_early_stopping_direction_from_model_metrics(model, drivers):
    class Metric:
        name = "my_score"
        _direction = "up"

    model.metrics = [Metric()]
    es = EarlyStopping(monitor="val_my_score", patience=1)
    drivers.fit(model, [es], epochs=5, epoch_logs=lambda e: {"loss": 1.0},
                val_logs=lambda e: {"my_score": [1.0, 2.0, 1.5, 3.0, 4.0][e]})
    assert es.stopped_epoch == 2 and es.best == 2.0


def test_early_stopping_unknown_direction_and_bad_mode(model, drivers):
    es = EarlyStopping(monitor="my_metric")
    with pytest.raises(ValueError, match="monitor=my_metric.*mode='max'.*mode='min'"):
        drivers.fit(model, [es], epochs=2, epoch_logs=logs_of("my_metric", [1.0, 2.0]))
    with pytest.raises(ValueError, match=r"Unknown mode 'maximum'; expected one of \['auto', 'min', 'max'\]"):
        EarlyStopping(mode="maximum")


def test_early_stopping_warns_on_missing_monitor(model, drivers):
    es = EarlyStopping(monitor="val_loss", patience=0)
    with pytest.warns(UserWarning, match="Early stopping conditioned on metric `val_loss` which is "
                                         "not available. Available metrics are: loss,accuracy"):
        hist = drivers.fit(model, [es], epochs=3, epoch_logs=lambda e: {"loss": 1.0, "accuracy": 0.5})
    assert len(hist.history["loss"]) == 3 and es.stopped_epoch == 0


def test_early_stopping_is_reusable(model, drivers):
    es = EarlyStopping(monitor="loss", patience=1, restore_best_weights=True)
    drivers.fit(model, [es], epochs=5, epoch_logs=logs_of("loss", [1.0, 0.5, 0.6, 0.7, 0.8]))
    assert es.stopped_epoch == 2 and weights_epoch(model) == 1
    drivers.fit(model, [es], epochs=5, epoch_logs=logs_of("loss", [9.0, 8.0, 7.0, 6.0, 5.0]))
    assert es.stopped_epoch == 0 and es.best == 5.0 and weights_epoch(model) == 4


def test_early_stopping_best_weights_are_copies(model, drivers):
    # A model whose get_weights returns its live arrays must not corrupt the saved best.
    model.get_weights = lambda: model._weights
    es = EarlyStopping(monitor="loss", patience=1, restore_best_weights=True)
    drivers.fit(model, [es], epochs=5, epoch_logs=logs_of("loss", [1.0, 0.5, 0.6, 0.7, 0.8]))
    assert weights_epoch(model) == 1


# -------------------------------------------------------------- ReduceLROnPlateau
def lr_trace(model, drivers, cb, values, monitor="loss", epochs=None):
    epochs = epochs or len(values)
    seen = []
    rec = LambdaCallback(on_epoch_end=lambda e, logs: seen.append(model.optimizer.learning_rate))
    hist = drivers.fit(model, [cb, rec], epochs=epochs, epoch_logs=logs_of(monitor, values))
    return seen, hist


def test_reduce_lr_after_patience(model, drivers, capsys):
    model.optimizer.learning_rate = 1.0
    cb = ReduceLROnPlateau(monitor="loss", factor=0.5, patience=2, verbose=1)
    seen, hist = lr_trace(model, drivers, cb, [1.0] * 6)
    assert seen == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    # learning_rate is logged before the reduction of that epoch.
    assert hist.history["learning_rate"] == [1.0, 1.0, 1.0, 0.5, 0.5, 0.25]
    assert capsys.readouterr().out == (
        "\nEpoch 3: ReduceLROnPlateau reducing learning rate to 0.5.\n"
        "\nEpoch 5: ReduceLROnPlateau reducing learning rate to 0.25.\n")


def test_reduce_lr_improvement_resets_wait(model, drivers):
    model.optimizer.learning_rate = 1.0
    cb = ReduceLROnPlateau(monitor="loss", factor=0.5, patience=2, min_delta=0.01)
    seen, _ = lr_trace(model, drivers, cb, [1.0, 1.0, 0.9, 0.895, 0.89, 0.5])
    # 0.9 improves (by more than min_delta); 0.895 and 0.89 do not -> reduce at epoch 4.
    assert seen == [1.0, 1.0, 1.0, 1.0, 0.5, 0.5]


def test_reduce_lr_cooldown(model, drivers):
    model.optimizer.learning_rate = 1.0
    cb = ReduceLROnPlateau(monitor="loss", factor=0.5, patience=2, cooldown=2)
    seen, _ = lr_trace(model, drivers, cb, [1.0] * 8)
    assert seen == [1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25]


def test_reduce_lr_min_lr(model, drivers):
    model.optimizer.learning_rate = 1.0
    cb = ReduceLROnPlateau(monitor="loss", factor=0.1, patience=1, min_lr=0.05)
    seen, _ = lr_trace(model, drivers, cb, [1.0] * 5)
    assert seen[0] == 1.0
    assert seen[1] == pytest.approx(0.1)
    assert seen[2:] == [0.05, 0.05, 0.05]


def test_reduce_lr_max_mode_for_accuracy(model, drivers):
    model.optimizer.learning_rate = 1.0
    cb = ReduceLROnPlateau(monitor="accuracy", factor=0.5, patience=1)
    seen, _ = lr_trace(model, drivers, cb, [0.5, 0.6, 0.55, 0.7], monitor="accuracy")
    assert seen == [1.0, 1.0, 0.5, 0.5]
    model.optimizer.learning_rate = 1.0
    cb = ReduceLROnPlateau(monitor="accuracy", factor=0.5, patience=1, mode="min")
    seen, _ = lr_trace(model, drivers, cb, [0.5, 0.6, 0.55, 0.7], monitor="accuracy")
    assert seen == [1.0, 0.5, 0.25, 0.125]   # 0.5 stays the best (lowest)


def test_reduce_lr_errors_and_warnings(model, drivers):
    with pytest.raises(ValueError, match="factor >= 1.0. Received factor=1.5"):
        ReduceLROnPlateau(factor=1.5)
    with pytest.raises(ValueError, match=r"Unknown mode 'up'; expected one of \['auto', 'min', 'max'\]"):
        ReduceLROnPlateau(mode="up")
    with pytest.raises(TypeError, match="unexpected keyword arguments \\['verbosity'\\]"):
        ReduceLROnPlateau(verbosity=1)
    with pytest.warns(UserWarning, match="`epsilon` is deprecated"):
        assert ReduceLROnPlateau(epsilon=0.5).min_delta == 0.5
    cb = ReduceLROnPlateau(monitor="val_loss", patience=0)
    with pytest.warns(UserWarning, match="Learning rate reduction is conditioned on metric `val_loss` "
                                         "which is not available. Available metrics are: loss,learning_rate"):
        drivers.fit(model, [cb], epochs=2, epoch_logs=logs_of("loss", [1.0, 1.0]))
    assert model.optimizer.learning_rate == 0.01


# ---------------------------------------------------------- LearningRateScheduler
def test_scheduler_with_epoch_and_lr(model, drivers, capsys):
    model.optimizer.learning_rate = 1.0
    seen = []
    sched = LearningRateScheduler(lambda epoch, lr: lr * 0.5 if epoch > 0 else lr, verbose=1)
    rec = LambdaCallback(on_epoch_begin=lambda e, logs: seen.append(model.optimizer.learning_rate))
    hist = drivers.fit(model, [sched, rec], epochs=4, epoch_logs=lambda e: {"loss": 1.0})
    assert seen == [1.0, 0.5, 0.25, 0.125]
    assert hist.history["learning_rate"] == [1.0, 0.5, 0.25, 0.125]
    assert capsys.readouterr().out == "".join(
        f"\nEpoch {e + 1}: LearningRateScheduler setting learning rate to {lr}.\n"
        for e, lr in enumerate([1.0, 0.5, 0.25, 0.125]))


def test_scheduler_with_epoch_only(model, drivers):
    def schedule(epoch):
        return 0.1 / (epoch + 1)

    seen = []
    rec = LambdaCallback(on_epoch_begin=lambda e, logs: seen.append(model.optimizer.learning_rate))
    drivers.fit(model, [LearningRateScheduler(schedule), rec], epochs=3,
                epoch_logs=lambda e: {"loss": 1.0})
    assert seen == [0.1, 0.05, 0.1 / 3]
    # numpy scalars and ints are accepted and stored as Python floats.
    drivers.fit(model, [LearningRateScheduler(lambda e, lr: np.float32(0.5))], epochs=1,
                epoch_logs=lambda e: {"loss": 1.0})
    assert model.optimizer.learning_rate == 0.5 and type(model.optimizer.learning_rate) is float
    drivers.fit(model, [LearningRateScheduler(lambda e: 1)], epochs=1)
    assert model.optimizer.learning_rate == 1.0


def test_scheduler_errors(model, drivers):
    with pytest.raises(ValueError, match="should be a float. Got: 'fast'"):
        drivers.fit(model, [LearningRateScheduler(lambda e, lr: "fast")], epochs=1)
    with pytest.raises(TypeError, match="schedule must be callable"):
        LearningRateScheduler(0.1)

    # A TypeError raised inside a two-argument schedule is not mistaken for the
    # one-argument form.
    def bad(epoch, lr):
        return lr + "x"

    with pytest.raises(TypeError, match="unsupported operand"):
        drivers.fit(model, [LearningRateScheduler(bad)], epochs=1)

    class NoLR:
        pass

    model.optimizer = NoLR()
    with pytest.raises(ValueError, match='Optimizer must have a "learning_rate" attribute'):
        drivers.fit(model, [LearningRateScheduler(lambda e: 0.1)], epochs=1)


# ------------------------------------------------------------------ TerminateOnNaN
def test_terminate_on_nan_stops_within_the_epoch(model, drivers, capsys):
    steps_run = []
    count = LambdaCallback(on_train_batch_begin=lambda b, logs: steps_run.append(b))
    losses = {(0, 0): 1.0, (0, 1): 0.9, (0, 2): 0.8, (1, 0): 0.7, (1, 1): math.nan}
    hist = drivers.fit(model, [TerminateOnNaN(), count], epochs=5, steps=3,
                       epoch_logs=lambda e: {"loss": 0.5},
                       batch_logs=lambda e, s: {"loss": losses.get((e, s), 0.1)})
    assert model.stop_training is True
    assert steps_run == [0, 1, 2, 0, 1]
    assert len(hist.history["loss"]) == 2
    assert capsys.readouterr().out == "Batch 1: Invalid loss, terminating training\n"


def test_terminate_on_inf_and_raise_error(model, drivers):
    hist = drivers.fit(model, [TerminateOnNaN()], epochs=3, steps=2,
                       epoch_logs=lambda e: {"loss": 0.5},
                       batch_logs=lambda e, s: {"loss": math.inf if e == 2 else 1.0})
    assert len(hist.history["loss"]) == 3 and model.stop_training
    with pytest.raises(RuntimeError, match="NaN or Inf loss encountered at batch 0"):
        drivers.fit(model, [TerminateOnNaN(raise_error=True)], epochs=1, steps=2,
                    batch_logs=lambda e, s: {"loss": math.nan})
    # Finite losses never stop training.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        hist = drivers.fit(model, [TerminateOnNaN()], epochs=3, steps=2,
                           epoch_logs=lambda e: {"loss": 0.5},
                           batch_logs=lambda e, s: {"loss": 1.0})
    assert len(hist.history["loss"]) == 3 and not model.stop_training
