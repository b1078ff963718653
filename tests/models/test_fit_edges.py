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


def test_activity_regularizer_adds_its_penalty_and_gradient():
    """Keras 3: the penalty of each layer's outputs divided by the batch size joins the
    loss; its gradient flows back through the layer (float64 finite differences)."""
    from helpers import numeric_grad

    from fastnet import regularizers

    rng = np.random.default_rng(3)
    x = rng.standard_normal((8, 4))
    y = rng.standard_normal((8, 2))
    inp = keras.Input((4,), dtype="float64")
    h = layers.Dense(3, activation="tanh", activity_regularizer=regularizers.L2(0.1), dtype="float64")(inp)
    model = keras.Model(inp, layers.Dense(2, dtype="float64")(h))
    model.compile(optimizer=keras.optimizers.SGD(1.0), loss="mse")
    k1, b1, k2, b2 = [w.copy() for w in model.get_weights()]

    def total_loss(kernel):
        hh = np.tanh(x @ kernel + b1)
        out = hh @ k2 + b2
        return float(np.mean((out - y) ** 2) + 0.1 * np.sum(hh ** 2) / len(x))

    assert model.evaluate(x, y, verbose=0, batch_size=8) == pytest.approx(total_loss(k1), rel=1e-7)
    model.train_on_batch(x, y)
    np.testing.assert_allclose(k1 - model.get_weights()[0], numeric_grad(total_loss, k1), rtol=1e-6, atol=1e-9)


def test_every_layer_takes_an_activity_regularizer():
    """Keras 3's base Layer takes ``activity_regularizer``: on a layer without its own
    (BatchNormalization, ReLU) the penalty of its output joins the loss too, and the
    option survives get_config."""
    from fastnet import regularizers

    rng = np.random.default_rng(5)
    x = rng.standard_normal((8, 4))
    y = rng.standard_normal((8, 4))
    bn = layers.BatchNormalization(activity_regularizer=regularizers.L2(0.1), dtype="float64")
    relu = layers.ReLU(activity_regularizer="l1", dtype="float64")
    model = keras.Sequential([keras.Input((4,), dtype="float64"), bn, relu])
    model.compile(optimizer="sgd", loss="mse")
    z = model.layers[0](x, training=False)
    r = np.maximum(z, 0)
    want = np.mean((r - y) ** 2) + (0.1 * np.sum(z ** 2) + 0.01 * np.sum(np.abs(r))) / len(x)
    assert model.evaluate(x, y, verbose=0, batch_size=8) == pytest.approx(want, rel=1e-7)
    assert bn.get_config()["activity_regularizer"]["config"]["l2"] == pytest.approx(0.1)
    again = layers.BatchNormalization.from_config(bn.get_config())
    assert again.activity_regularizer.l2 == pytest.approx(0.1)
    assert model._graph.relu_fusions == []  # the penalty must see BN's output before the ReLU
