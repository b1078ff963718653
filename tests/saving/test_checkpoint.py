"""ModelCheckpoint: filepath templates, monitor/mode/save_best_only, weights-only, save_freq."""
import os

import numpy as np
import pytest

from fastnet import initializers, layers, optimizers
from fastnet.callbacks_checkpoint import ModelCheckpoint
from fastnet.models import Sequential, load_model


def _model():
    model = Sequential([layers.Input(shape=(3,)),
                        layers.Dense(4, activation="tanh", kernel_initializer=initializers.GlorotUniform(seed=3)),
                        layers.Dense(1, kernel_initializer=initializers.GlorotUniform(seed=4))])
    model.compile(optimizer=optimizers.SGD(learning_rate=0.05), loss="mse")
    return model


def _drive(cb, model, epoch_logs, steps=0):
    """Runs the callback through fit's hook sequence with the given per-epoch logs."""
    cb.set_model(model)
    cb.on_train_begin()
    for epoch, logs in enumerate(epoch_logs):
        cb.on_epoch_begin(epoch)
        for step in range(steps):
            cb.on_train_batch_begin(step)
            cb.on_train_batch_end(step, {"loss": logs["loss"]})
        cb.on_epoch_end(epoch, logs)
    cb.on_train_end()


def test_filepath_template_every_epoch(tmp_path):
    cb = ModelCheckpoint(str(tmp_path / "ckpt-{epoch:02d}-{val_loss:.3f}.keras"))
    _drive(cb, _model(), [{"loss": 1.0, "val_loss": 0.5}, {"loss": 0.9, "val_loss": 0.75}])
    assert sorted(os.listdir(tmp_path)) == ["ckpt-01-0.500.keras", "ckpt-02-0.750.keras"]
    assert load_model(tmp_path / "ckpt-02-0.750.keras").compiled


@pytest.mark.parametrize("monitor,mode,values,saved", [
    ("val_loss", "auto", [0.5, 0.7, 0.4, 0.45], [1, 3]),
    ("val_accuracy", "auto", [0.5, 0.7, 0.4, 0.8], [1, 2, 4]),
    ("val_score", "max", [1.0, 0.5, 2.0, 2.0], [1, 3]),
    ("val_score", "min", [1.0, 0.5, 2.0, 0.5], [1, 2]),
])
def test_save_best_only(tmp_path, monitor, mode, values, saved):
    cb = ModelCheckpoint(str(tmp_path / "m-{epoch}.keras"), monitor=monitor, mode=mode,
                         save_best_only=True)
    _drive(cb, _model(), [{"loss": 1.0, monitor: v} for v in values])
    assert sorted(os.listdir(tmp_path)) == sorted(f"m-{e}.keras" for e in saved)


def test_save_best_only_overwrites_one_file_with_the_best_weights(tmp_path):
    model = _model()
    target = tmp_path / "best.weights.h5"
    cb = ModelCheckpoint(str(target), save_best_only=True, save_weights_only=True)
    cb.set_model(model)
    best = None
    for epoch, v in enumerate([0.5, 0.3, 0.9]):
        model.set_weights([w + 1.0 for w in model.get_weights()])
        if best is None or v < 0.31:
            best = model.get_weights()
        cb.on_epoch_begin(epoch)
        cb.on_epoch_end(epoch, {"val_loss": v})
    fresh = _model()
    fresh.load_weights(target)
    for a, b in zip(fresh.get_weights(), best):
        np.testing.assert_array_equal(a, b)
    assert cb.best == 0.3


def test_initial_value_threshold(tmp_path):
    cb = ModelCheckpoint(str(tmp_path / "m-{epoch}.keras"), save_best_only=True,
                         initial_value_threshold=0.4)
    _drive(cb, _model(), [{"val_loss": 0.5}, {"val_loss": 0.3}])
    assert os.listdir(tmp_path) == ["m-2.keras"]


def test_save_freq_in_batches(tmp_path):
    cb = ModelCheckpoint(str(tmp_path / "m-{epoch}-{batch}.weights.h5"), save_weights_only=True,
                         save_freq=3)
    _drive(cb, _model(), [{"loss": 1.0}, {"loss": 0.5}], steps=4)
    # 8 batches: saves after the 3rd (epoch 1, batch 3) and the 6th (epoch 2, batch 2).
    assert sorted(os.listdir(tmp_path)) == ["m-1-3.weights.h5", "m-2-2.weights.h5"]


def test_unknown_direction_and_bad_arguments(tmp_path):
    cb = ModelCheckpoint(str(tmp_path / "m.keras"), monitor="val_score", save_best_only=True)
    with pytest.raises(ValueError, match="maximized or minimized"):
        _drive(cb, _model(), [{"val_score": 1.0}])
    with pytest.raises(ValueError, match=r"\.weights\.h5"):
        ModelCheckpoint(str(tmp_path / "m.keras"), save_weights_only=True)
    with pytest.raises(ValueError, match=r"\.keras"):
        ModelCheckpoint(str(tmp_path / "m.h5"))
    with pytest.raises(ValueError, match="save_freq"):
        ModelCheckpoint(str(tmp_path / "m.keras"), save_freq="batch")
    with pytest.raises(ValueError, match="mode"):
        ModelCheckpoint(str(tmp_path / "m.keras"), mode="up")
    cb = ModelCheckpoint(str(tmp_path / "m-{val_missing}.keras"))
    with pytest.raises(KeyError, match="val_missing"):
        _drive(cb, _model(), [{"loss": 1.0}])


def test_missing_monitor_warns_and_saves(tmp_path):
    cb = ModelCheckpoint(str(tmp_path / "m.keras"), save_best_only=True)
    with pytest.warns(UserWarning, match="val_loss"):
        _drive(cb, _model(), [{"loss": 1.0}])
    assert os.listdir(tmp_path) == ["m.keras"]


def test_creates_the_folder_and_prints_when_verbose(tmp_path, capsys):
    cb = ModelCheckpoint(str(tmp_path / "sub" / "dir" / "m.keras"), verbose=1, save_best_only=True)
    _drive(cb, _model(), [{"val_loss": 0.5}, {"val_loss": 0.6}])
    out = capsys.readouterr().out
    assert "Epoch 1: val_loss improved from None to 0.50000, saving model to" in out
    assert "Epoch 2: val_loss did not improve from 0.50000" in out
    assert os.listdir(tmp_path / "sub" / "dir") == ["m.keras"]


def test_checkpoints_during_fit(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 3)).astype(np.float32)
    y = x.sum(axis=1, keepdims=True)
    model = _model()
    cb = ModelCheckpoint(str(tmp_path / "ckpt-{epoch:02d}-{val_loss:.3f}.keras"), save_best_only=True)
    history = model.fit(x, y, epochs=3, batch_size=8, validation_split=0.25, shuffle=False,
                        callbacks=[cb], verbose=0)
    best_epoch = int(np.argmin(history.history["val_loss"]))
    name = f"ckpt-{best_epoch + 1:02d}-{history.history['val_loss'][best_epoch]:.3f}.keras"
    assert name in os.listdir(tmp_path)
    again = load_model(tmp_path / name)
    assert again.optimizer.iterations == 3 * (best_epoch + 1)
