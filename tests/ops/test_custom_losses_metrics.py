"""Custom losses (functions and Loss subclasses written with ops) get exact gradients
from the tape; custom Metric subclasses work in fit's metric loop."""
import numpy as np
import pytest
from helpers import numeric_grad

import fastnet
from fastnet import losses, metrics, ops


def quartic(y_true, y_pred):
    return ops.mean(ops.power(y_true - y_pred, 4), axis=-1)


class Huberish(losses.Loss):
    """A Loss subclass whose call uses ops.where, ops.abs and Python operators."""

    def __init__(self, delta=0.5, **kwargs):
        super().__init__(**kwargs)
        self.delta = delta

    def call(self, y_true, y_pred):
        err = ops.abs(y_true - y_pred)
        quad = 0.5 * ops.square(err)
        lin = self.delta * err - 0.5 * self.delta ** 2
        return ops.sum(ops.where(err <= self.delta, quad, lin), axis=-1)


@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum", "mean_with_sample_weight", "none"])
def test_custom_function_loss_gradient_is_exact(float64, reduction):
    rng = np.random.default_rng(0)
    t, p = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    sw = rng.uniform(0.2, 1.0, size=6)
    loss = losses.LossFunctionWrapper(quartic, reduction=reduction)
    v, dy = loss.value_and_grad(t, p, sample_weight=sw)
    per = np.mean((t - p) ** 4, axis=-1) * sw
    scale = {"sum_over_batch_size": 1 / 6, "sum": 1.0, "none": 1.0, "mean_with_sample_weight": 1 / sw.sum()}[reduction]
    assert v == pytest.approx(per.sum() * scale, rel=1e-12)
    want = 4 * (p - t) ** 3 / 3 * sw[:, None] * scale
    np.testing.assert_allclose(dy, want, rtol=1e-12, atol=1e-15)
    assert dy.dtype == np.float64


def test_loss_subclass_written_with_ops_matches_finite_differences(float64):
    rng = np.random.default_rng(1)
    t, p = rng.normal(size=(5, 4)), rng.normal(size=(5, 4))
    sw = rng.uniform(0.2, 1.0, size=5)
    loss = Huberish(delta=0.5, name="huberish")
    v, dy = loss.value_and_grad(t, p, sample_weight=sw)
    assert v == pytest.approx(loss(t, p, sample_weight=sw), rel=1e-12)
    np.testing.assert_allclose(dy, numeric_grad(lambda z: loss(t, z, sample_weight=sw), p), rtol=1e-7, atol=1e-9)


def test_custom_loss_in_float32_keeps_the_dtype():
    t = np.zeros((2, 2), np.float32)
    p = np.array([[1.0, 2.0], [3.0, -1.0]], np.float32)
    v, dy = losses.get(quartic).value_and_grad(t, p)
    assert dy.dtype == np.float32
    np.testing.assert_allclose(dy, 4 * p ** 3 / 2 / 2, rtol=1e-6)


def test_a_loss_that_is_not_differentiable_says_so():
    def detached(y_true, y_pred):
        return np.asarray(np.mean(np.asarray(y_pred) - y_true, axis=-1))

    with pytest.raises(TypeError, match="fastnet.ops"):
        losses.get(detached).value_and_grad(np.zeros((2, 2)), np.ones((2, 2)))


def test_custom_loss_trains_exactly_like_the_builtin():
    """fit with mse written with ops gives the weights fit with "mse" gives."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(32, 4)).astype(np.float32)
    y = rng.normal(size=(32, 2)).astype(np.float32)

    def my_mse(y_true, y_pred):
        return ops.mean(ops.square(y_true - y_pred), axis=-1)

    weights = []
    for loss in ("mse", my_mse):
        fastnet.random.set_seed(5)
        model = fastnet.Sequential([fastnet.Input((4,)), fastnet.layers.Dense(3, activation="tanh"),
                                    fastnet.layers.Dense(2)])
        model.compile(optimizer="adam", loss=loss)
        h = model.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
        weights.append((model.get_weights(), h.history["loss"]))
    for a, b in zip(weights[0][0], weights[1][0]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(weights[0][1], weights[1][1], rtol=1e-5)


class TruePositives(metrics.Metric):
    """A Keras-style custom metric: add_variable, update_state with ops, result."""

    def __init__(self, threshold=0.5, name="tp", **kwargs):
        super().__init__(name=name, **kwargs)
        self.threshold = threshold
        self.tp = self.add_variable(shape=(), initializer="zeros", name="tp")
        self.seen = self.add_variable(shape=(), initializer="zeros", name="seen")

    def update_state(self, y_true, y_pred, sample_weight=None):
        hit = ops.logical_and(ops.cast(y_true, "bool"), ops.greater(y_pred, self.threshold))
        hit = ops.cast(hit, "float32")
        if sample_weight is not None:
            hit = ops.multiply(hit, ops.reshape(sample_weight, (-1, 1)))
        self.tp.assign_add(ops.sum(hit))
        self.seen.assign_add(ops.cast(ops.shape(y_true)[0], "float32"))

    def result(self):
        return self.tp / self.seen


def test_custom_metric_update_result_reset():
    m = TruePositives()
    m.update_state(np.array([[1], [0], [1]]), np.array([[0.9], [0.8], [0.2]]))
    m.update_state(np.array([[1]]), np.array([[0.7]]))
    assert float(m.result()) == pytest.approx(2 / 4)
    assert [v.name for v in m.variables] == ["tp", "seen"]
    m.reset_state()
    assert float(m.tp.value) == 0.0 and float(m.seen.value) == 0.0


def test_custom_metric_in_fit_and_evaluate():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(20, 3)).astype(np.float32)
    y = (rng.uniform(size=(20, 1)) > 0.5).astype(np.float32)
    model = fastnet.Sequential([fastnet.Input((3,)), fastnet.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="sgd", loss="binary_crossentropy", metrics=[TruePositives()])
    h = model.fit(x, y, epochs=1, batch_size=20, verbose=0)
    # one batch: the metric saw the predictions of the step's forward pass
    assert "tp" in h.history and 0.0 <= h.history["tp"][0] <= 1.0
    res = model.evaluate(x, y, verbose=0, return_dict=True)
    p = model.predict(x, verbose=0)
    assert res["tp"] == pytest.approx(float(np.sum((y > 0) & (p > 0.5))) / 20)
