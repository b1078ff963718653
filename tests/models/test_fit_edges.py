"""fit's edges: no epochs to run, class weights, validation data checked before training."""
import numpy as np
import pytest

import fastnet as keras
from fastnet import layers
from fastnet.callbacks import History


def _model():
    m = keras.Sequential([keras.Input((4,)), layers.Dense(3, activation="softmax")])
    m.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


def _data(n=20):
    rng = np.random.default_rng(0)
    return rng.random((n, 4), dtype=np.float32), rng.integers(0, 3, n)


@pytest.mark.parametrize("kwargs", [{"epochs": 0}, {"epochs": 2, "initial_epoch": 2},
                                    {"epochs": 1, "initial_epoch": 3}])
def test_fit_with_no_epoch_to_run_returns_an_empty_history_and_keeps_the_weights(kwargs):
    m = _model()
    x, y = _data()
    w0 = m.get_weights()
    hist = m.fit(x, y, verbose=0, **kwargs)
    assert isinstance(hist, History) and hist.history == {}
    for a, b in zip(w0, m.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("bad", [{-1: 5.0}, {3: 1.0}, {1.5: 2.0}, {"a": 1.0}])
def test_class_weight_keys_must_be_class_indices(bad):
    m = _model()
    x, y = _data()
    y_onehot = np.eye(3, dtype=np.float32)[y]
    m.compile(optimizer="sgd", loss="categorical_crossentropy")
    with pytest.raises(ValueError, match="class_weight keys must be class indices"):
        m.fit(x, y_onehot, class_weight=bad, verbose=0)


def test_class_weight_weighs_the_loss_of_each_class():
    x, y = _data(30)
    full = {0: 1.0, 1: 1.0, 2: 1.0}
    a, b = _model(), _model()
    b.set_weights(a.get_weights())
    ha = a.fit(x, y, class_weight=full, epochs=1, shuffle=False, verbose=0, batch_size=30)
    hb = b.fit(x, y, class_weight={0: 3.0, 1: 1.0, 2: 1.0}, epochs=1, shuffle=False, verbose=0, batch_size=30)
    assert hb.history["loss"][0] != pytest.approx(ha.history["loss"][0])


def test_validation_data_of_the_wrong_shape_fails_before_training():
    m = _model()
    x, y = _data()
    w0 = m.get_weights()
    with pytest.raises(ValueError, match=r"validation_data does not fit model .*expected shape \(None, 4\), "
                                         r"received input with shape \(5, 7\)"):
        m.fit(x, y, validation_data=(np.zeros((5, 7), np.float32), y[:5]), epochs=3, verbose=0)
    for a, b in zip(w0, m.get_weights()):
        np.testing.assert_array_equal(a, b)
