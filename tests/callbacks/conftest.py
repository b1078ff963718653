"""A stub model and drivers that call the hooks exactly as fastnet's loops do.

The drivers follow the loop contract of fastnet.callbacks: one CallbackList per
call of fit/evaluate/predict (History always, ProgbarLogger when verbose != 0),
batch logs built only when the list asks for them, ``stop_training`` checked
after every batch and every epoch.
"""
import numpy as np
import pytest

from fastnet.callbacks import CallbackList
from fastnet.utils import progbar as progbar_module


class StubOptimizer:
    def __init__(self, learning_rate=0.01):
        self.learning_rate = learning_rate


class StubModel:
    """What callbacks use of a model: stop_training, optimizer.learning_rate,
    get_weights/set_weights, history."""

    def __init__(self, learning_rate=0.01):
        self.stop_training = False
        self.optimizer = StubOptimizer(learning_rate)
        self.history = None
        self._weights = [np.zeros((2, 2), np.float32), np.zeros(2, np.float32)]
        self.metrics_names = ["loss"]

    def get_weights(self):
        return [w.copy() for w in self._weights]

    def set_weights(self, weights):
        self._weights = [np.array(w, np.float32) for w in weights]

    def train_epoch(self, epoch):
        # The weights after epoch e are all e + 1: restored weights name their epoch.
        for w in self._weights:
            w[...] = epoch + 1


class Clock:
    """A frozen clock for the progress bar; the drivers advance it per step."""

    def __init__(self, start=1000.0):
        self.t = start

    def __call__(self):
        return self.t

    def advance(self, seconds):
        self.t += seconds


def _value(source, *args):
    return source(*args) if callable(source) else source[args[0]]


def run_fit(model, callbacks=None, epochs=1, steps=3, epoch_logs=None, batch_logs=None,
            val_logs=None, verbose=0, clock=None, step_time=0.0625):
    """Drives the hooks as Model.fit does.

    epoch_logs: list (per epoch) of dicts or a function epoch -> dict.
    batch_logs: function (epoch, step) -> dict of running averages.
    val_logs: list / function giving the validation results (keys without val_).
    """
    cbl = CallbackList(callbacks, add_history=True, add_progbar=verbose != 0, model=model,
                       verbose=verbose, epochs=epochs, steps=steps)
    model.stop_training = False
    cbl.on_train_begin()
    logs = None
    for epoch in range(epochs):
        cbl.on_epoch_begin(epoch)
        for step in range(steps):
            cbl.on_train_batch_begin(step)
            if clock is not None:
                clock.advance(step_time)
            if cbl.needs_batch_logs:
                cbl.on_train_batch_end(step, dict(batch_logs(epoch, step)) if batch_logs else {})
            else:
                cbl.on_train_batch_end(step)
            if model.stop_training:
                break
        model.train_epoch(epoch)
        logs = dict(_value(epoch_logs, epoch)) if epoch_logs is not None else {}
        if val_logs is not None:
            vl = _run_test_loop(cbl, _value(val_logs, epoch), steps, clock, step_time)
            logs.update({"val_" + k: v for k, v in vl.items()})
        cbl.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    cbl.on_train_end(logs)
    return model.history


def _run_test_loop(cbl, result, steps, clock, step_time, batch_logs=None):
    cbl.on_test_begin()
    for step in range(steps):
        cbl.on_test_batch_begin(step)
        if clock is not None:
            clock.advance(step_time)
        if cbl.needs_test_batch_logs:
            cbl.on_test_batch_end(step, dict(batch_logs(step)) if batch_logs else dict(result))
        else:
            cbl.on_test_batch_end(step)
    cbl.on_test_end(dict(result))
    return dict(result)


def run_evaluate(model, result, callbacks=None, steps=3, verbose=1, clock=None,
                 step_time=0.0625, batch_logs=None, run_steps=None):
    """steps: what params announce (None: unknown); run_steps: batches actually run."""
    cbl = CallbackList(callbacks, add_progbar=verbose != 0, model=model,
                       verbose=verbose, epochs=1, steps=steps)
    return _run_test_loop(cbl, result, run_steps or steps, clock, step_time, batch_logs)


def run_predict(model, callbacks=None, steps=3, verbose=1, clock=None, step_time=0.0625):
    cbl = CallbackList(callbacks, add_progbar=verbose != 0, model=model,
                       verbose=verbose, epochs=1, steps=steps)
    cbl.on_predict_begin()
    for step in range(steps):
        cbl.on_predict_batch_begin(step)
        if clock is not None:
            clock.advance(step_time)
        cbl.on_predict_batch_end(step, {"outputs": np.zeros((2, 1))})
    cbl.on_predict_end()


@pytest.fixture
def model():
    return StubModel()


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(progbar_module, "_now", c)
    return c


@pytest.fixture
def tty(monkeypatch):
    """Makes the progress bar believe stdout is a terminal."""
    monkeypatch.setattr(progbar_module, "FORCE_DYNAMIC_DISPLAY", True)


@pytest.fixture
def no_tty(monkeypatch):
    monkeypatch.setattr(progbar_module, "FORCE_DYNAMIC_DISPLAY", False)


@pytest.fixture
def drivers():
    class D:
        fit = staticmethod(run_fit)
        evaluate = staticmethod(run_evaluate)
        predict = staticmethod(run_predict)
        Model = StubModel
    return D
