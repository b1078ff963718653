"""CallbackList dispatch, History and LambdaCallback, driven as fit drives them."""
import time

import pytest

from fastnet import callbacks as cbm
from fastnet.callbacks import Callback, CallbackList, History, LambdaCallback, ProgbarLogger, ReduceLROnPlateau


class Recorder(Callback):
    """Overrides every hook and records (hook, index) in call order."""

    def __init__(self):
        super().__init__()
        self.calls = []


def _recording_hook(name, indexed):
    if indexed:
        def hook(self, index, logs=None):
            self.calls.append((name, index))
    else:
        def hook(self, logs=None):
            self.calls.append((name,))
    return hook


for _name in ("on_train_begin", "on_train_end", "on_test_begin", "on_test_end",
              "on_predict_begin", "on_predict_end"):
    setattr(Recorder, _name, _recording_hook(_name, False))
for _name in ("on_epoch_begin", "on_epoch_end", "on_train_batch_begin", "on_train_batch_end",
              "on_test_batch_begin", "on_test_batch_end", "on_predict_batch_begin",
              "on_predict_batch_end"):
    setattr(Recorder, _name, _recording_hook(_name, True))


class EpochOnly(Callback):
    def __init__(self):
        super().__init__()
        self.epochs = []

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(epoch)


def test_hook_order_of_fit(model, drivers):
    rec = Recorder()
    drivers.fit(model, [rec], epochs=2, steps=2, epoch_logs=lambda e: {"loss": 1.0},
                batch_logs=lambda e, s: {"loss": 1.0}, val_logs=lambda e: {"loss": 2.0})
    assert rec.calls == [
        ("on_train_begin",),
        ("on_epoch_begin", 0), ("on_train_batch_begin", 0), ("on_train_batch_end", 0),
        ("on_train_batch_begin", 1), ("on_train_batch_end", 1),
        ("on_test_begin",), ("on_test_batch_begin", 0), ("on_test_batch_end", 0),
        ("on_test_batch_begin", 1), ("on_test_batch_end", 1), ("on_test_end",),
        ("on_epoch_end", 0),
        ("on_epoch_begin", 1), ("on_train_batch_begin", 0), ("on_train_batch_end", 0),
        ("on_train_batch_begin", 1), ("on_train_batch_end", 1),
        ("on_test_begin",), ("on_test_batch_begin", 0), ("on_test_batch_end", 0),
        ("on_test_batch_begin", 1), ("on_test_batch_end", 1), ("on_test_end",),
        ("on_epoch_end", 1),
        ("on_train_end",),
    ]
    assert rec.model is model
    assert rec.params == {"verbose": 0, "epochs": 2, "steps": 2}


def test_unused_batch_hooks_are_free(model):
    cbl = CallbackList([EpochOnly()], add_history=True, model=model, verbose=0, epochs=1, steps=1)
    assert cbl.needs_batch_logs is False
    assert cbl.needs_test_batch_logs is False
    assert cbl.needs_predict_batch_logs is False
    for name in ("on_train_batch_begin", "on_train_batch_end", "on_test_batch_begin",
                 "on_test_batch_end", "on_predict_batch_begin", "on_predict_batch_end"):
        assert getattr(cbl, name) is cbm._noop, name
    # Cost per step: a call of an empty function (well under a microsecond).
    n = 200_000
    begin, end = cbl.on_train_batch_begin, cbl.on_train_batch_end
    t0 = time.perf_counter()
    for i in range(n):
        begin(i)
        end(i, None)
    per_step = (time.perf_counter() - t0) / n
    assert per_step < 5e-6


def test_batch_hooks_reach_only_the_callbacks_that_implement_them(model):
    class EndOnly(Callback):
        def __init__(self):
            super().__init__()
            self.seen = []

        def on_train_batch_end(self, batch, logs=None):
            self.seen.append((batch, dict(logs)))

    class BeginOnly(Callback):
        def __init__(self):
            super().__init__()
            self.seen = []

        def on_train_batch_begin(self, batch, logs=None):
            self.seen.append(batch)

    end, begin, other = EndOnly(), BeginOnly(), EpochOnly()
    cbl = CallbackList([end, begin, other], model=model, verbose=0, epochs=1, steps=2)
    assert cbl.needs_batch_logs is True
    assert cbl.needs_test_batch_logs is False
    cbl.on_train_batch_begin(0)
    cbl.on_train_batch_end(0, {"loss": 0.5})
    cbl.on_train_batch_end(1)
    assert begin.seen == [0]
    assert end.seen == [(0, {"loss": 0.5}), (1, {})]

    cbl2 = CallbackList([BeginOnly()], model=model)
    assert cbl2.needs_batch_logs is False
    assert cbl2.on_train_batch_end is cbm._noop
    assert cbl2.on_train_batch_begin is not cbm._noop


def test_old_batch_aliases_are_called_for_training_batches(model):
    class Old(Callback):
        def __init__(self):
            super().__init__()
            self.seen = []

        def on_batch_begin(self, batch, logs=None):
            self.seen.append(("begin", batch))

        def on_batch_end(self, batch, logs=None):
            self.seen.append(("end", batch, logs.get("loss")))

    old = Old()
    cbl = CallbackList([old], model=model)
    assert cbl.needs_batch_logs is True
    cbl.on_train_batch_begin(3)
    cbl.on_train_batch_end(3, {"loss": 0.25})
    assert old.seen == [("begin", 3), ("end", 3, 0.25)]


def test_test_and_predict_batch_hooks(model):
    class T(Callback):
        def __init__(self):
            super().__init__()
            self.seen = []

        def on_test_batch_end(self, batch, logs=None):
            self.seen.append(("test", batch))

        def on_predict_batch_end(self, batch, logs=None):
            self.seen.append(("predict", batch))

    t = T()
    cbl = CallbackList([t], model=model)
    assert (cbl.needs_batch_logs, cbl.needs_test_batch_logs, cbl.needs_predict_batch_logs) == (
        False, True, True)
    cbl.on_test_batch_end(0, {})
    cbl.on_predict_batch_end(1, {})
    cbl.on_test_batch_begin(0)
    assert t.seen == [("test", 0), ("predict", 1)]


def test_append_rebinds_dispatch_and_passes_model_and_params(model):
    cbl = CallbackList([], model=model, verbose=0, epochs=3, steps=4)
    assert cbl.needs_batch_logs is False
    lam = LambdaCallback(on_train_batch_end=lambda batch, logs: seen.append(batch))
    seen = []
    cbl.append(lam)
    assert cbl.needs_batch_logs is True
    assert lam.model is model and lam.params == {"verbose": 0, "epochs": 3, "steps": 4}
    cbl.on_train_batch_end(7, {})
    assert seen == [7]
    with pytest.raises(TypeError, match="instances of fastnet.callbacks.Callback"):
        cbl.append(lambda: None)


def test_default_callbacks_are_added_once(model):
    h, p = History(), ProgbarLogger()
    cbl = CallbackList([h, p], add_history=True, add_progbar=True, model=model,
                       verbose=1, epochs=1, steps=1)
    assert cbl.callbacks == [h, p]
    assert model.history is h
    cbl2 = CallbackList(None, add_history=True, add_progbar=True, model=model,
                        verbose=1, epochs=1, steps=1)
    assert [type(c) for c in cbl2.callbacks] == [History, ProgbarLogger]
    assert model.history is cbl2.callbacks[0]
    # Nested lists are flattened.
    e1, e2 = EpochOnly(), EpochOnly()
    assert CallbackList([e1, [e2]]).callbacks == [e1, e2]
    with pytest.raises(TypeError, match="received str"):
        CallbackList(["early_stopping"])


def test_progbar_needs_batch_logs_only_when_it_draws(model, monkeypatch):
    from fastnet.utils import progbar as pb
    monkeypatch.setattr(pb, "FORCE_DYNAMIC_DISPLAY", True)
    cbl = CallbackList(None, add_progbar=True, model=model, verbose=1, epochs=1, steps=5)
    assert cbl.needs_batch_logs is True
    assert cbl.needs_test_batch_logs is True          # evaluate(verbose=1) draws a bar
    cbl.on_train_begin()
    assert cbl.needs_test_batch_logs is False         # validation inside fit is silent
    cbl.on_train_end()
    assert cbl.needs_test_batch_logs is True
    for verbose in (0, 2):
        cbl = CallbackList(None, add_progbar=True, model=model, verbose=verbose, epochs=1, steps=5)
        assert cbl.needs_batch_logs is False
    monkeypatch.setattr(pb, "FORCE_DYNAMIC_DISPLAY", False)
    cbl = CallbackList(None, add_progbar=True, model=model, verbose=1, epochs=1, steps=5)
    assert cbl.needs_batch_logs is False              # a log file gets the final line only
    cbl = CallbackList(None, add_progbar=True, model=model, verbose=1, epochs=1, steps=None)
    assert cbl.needs_batch_logs is True               # unknown steps: the bar counts them


def test_epoch_logs_are_shared_between_callbacks(model, drivers):
    # ReduceLROnPlateau adds learning_rate to the logs; History (added last) records it.
    hist = drivers.fit(model, [ReduceLROnPlateau(monitor="loss", patience=1, factor=0.5)],
                       epochs=3, epoch_logs=lambda e: {"loss": 1.0})
    assert hist.history["learning_rate"] == [0.01, 0.01, 0.005]


def test_history(model, drivers):
    logs = [{"loss": 0.9, "accuracy": 0.5}, {"loss": 0.5, "accuracy": 0.7},
            {"loss": 0.25, "accuracy": 0.875}]
    hist = drivers.fit(model, None, epochs=3, steps=2, epoch_logs=logs,
                       val_logs=[{"loss": 1.0}, {"loss": 0.75}, {"loss": 0.5}])
    assert isinstance(hist, History)
    assert model.history is hist
    assert hist.epoch == [0, 1, 2]
    assert hist.history == {"loss": [0.9, 0.5, 0.25], "accuracy": [0.5, 0.7, 0.875],
                            "val_loss": [1.0, 0.75, 0.5]}
    assert hist.params == {"verbose": 0, "epochs": 3, "steps": 2}
    assert "3 epochs" in repr(hist)


def test_history_passed_by_the_user_is_the_one_returned(model, drivers):
    h = History()
    out = drivers.fit(model, [h], epochs=2, epoch_logs=lambda e: {"loss": float(e)})
    assert out is h and model.history is h
    assert h.history == {"loss": [0.0, 1.0]}
    # A second fit with the same History: the epochs restart, the values accumulate.
    drivers.fit(model, [h], epochs=1, epoch_logs=lambda e: {"loss": 5.0})
    assert h.epoch == [0]
    assert h.history == {"loss": [0.0, 1.0, 5.0]}


def test_lambda_callback(model, drivers):
    seen = []
    lam = LambdaCallback(
        on_train_begin=lambda logs: seen.append("train_begin"),
        on_epoch_begin=lambda epoch, logs: seen.append(("epoch_begin", epoch)),
        on_train_batch_begin=lambda batch, logs: seen.append(("batch_begin", batch)),
        on_train_batch_end=lambda batch, logs: seen.append(("batch_end", batch, logs["loss"])),
        on_epoch_end=lambda epoch, logs: seen.append(("epoch_end", epoch, logs["loss"])),
        on_train_end=lambda logs: seen.append(("train_end", logs["loss"])),
        on_test_end=lambda logs: seen.append(("test_end", logs["loss"])),
    )
    drivers.fit(model, [lam], epochs=1, steps=2, epoch_logs=[{"loss": 0.5}],
                batch_logs=lambda e, s: {"loss": 0.1 * (s + 1)}, val_logs=[{"loss": 0.7}])
    assert seen == ["train_begin", ("epoch_begin", 0), ("batch_begin", 0), ("batch_end", 0, 0.1),
                    ("batch_begin", 1), ("batch_end", 1, 0.2), ("test_end", 0.7),
                    ("epoch_end", 0, 0.5), ("train_end", 0.5)]
    with pytest.raises(ValueError, match="unknown hooks \\['on_epoch_finish'\\]"):
        LambdaCallback(on_epoch_finish=print)
    with pytest.raises(TypeError, match="on_epoch_end must be callable"):
        LambdaCallback(on_epoch_end=3)


def test_callback_base_defaults():
    cb = Callback()
    assert cb.model is None and cb.params is None
    # Every hook exists with Keras's signature and does nothing.
    calls = [
        (cb.on_train_begin, ()), (cb.on_train_end, ()), (cb.on_epoch_begin, (0,)),
        (cb.on_epoch_end, (0,)), (cb.on_train_batch_begin, (0,)), (cb.on_train_batch_end, (0,)),
        (cb.on_batch_begin, (0,)), (cb.on_batch_end, (0,)), (cb.on_test_begin, ()),
        (cb.on_test_end, ()), (cb.on_test_batch_begin, (0,)), (cb.on_test_batch_end, (0,)),
        (cb.on_predict_begin, ()), (cb.on_predict_end, ()), (cb.on_predict_batch_begin, (0,)),
        (cb.on_predict_batch_end, (0,)),
    ]
    for hook, args in calls:
        assert hook(*args, logs={}) is None
        assert hook(*args) is None
    assert not cb._implements_train_batch_hooks()
    cb.set_model("m")
    cb.set_params({"epochs": 1})
    assert cb.model == "m" and cb.params == {"epochs": 1}
