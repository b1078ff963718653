"""Overriding train_step / test_step / compute_loss (Keras 3's "customizing what happens
in fit"), fastnet.GradientTape, and steps written with another framework's gradient API."""
import types

import numpy as np
import pytest

import fastnet as keras
from fastnet import layers, ops


def _data(n=64, d=5, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    y = (x @ rng.standard_normal((d, 1)) + 0.1).astype(np.float32)
    return x, y


class GuideModel(keras.Model):
    """The guide's first example, with fastnet's GradientTape."""

    def train_step(self, data):
        x, y = data
        with keras.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(y=y, y_pred=y_pred)
        trainable_vars = self.trainable_variables
        gradients = tape.gradient(loss, trainable_vars)
        self.optimizer.apply(gradients, trainable_vars)
        for metric in self.metrics:
            if metric.name == "loss":
                metric.update_state(loss)
            else:
                metric.update_state(y, y_pred)
        return {m.name: m.result() for m in self.metrics}


def _functional(cls, seed=1):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=(5,))
    h = layers.Dense(8, activation="tanh")(inputs)
    return cls(inputs, layers.Dense(1)(h))


def test_overridden_train_step_on_a_functional_model_trains_like_the_built_in_step():
    x, y = _data()
    ref = _functional(keras.Model)
    custom = _functional(GuideModel)
    assert type(custom).__name__ == "GuideModel" and isinstance(custom, GuideModel)
    custom.set_weights(ref.get_weights())
    for m in (ref, custom):
        m.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse", metrics=["mae"])
    h_ref = ref.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0)
    h_cus = custom.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0)
    for a, b in zip(ref.get_weights(), custom.get_weights()):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)
    for k in ("loss", "mae"):
        np.testing.assert_allclose(h_ref.history[k], h_cus.history[k], rtol=2e-5)
    ev_ref = ref.evaluate(x, y, verbose=0, return_dict=True)
    ev_cus = custom.evaluate(x, y, verbose=0, return_dict=True)
    assert set(ev_cus) == {"loss", "mae"}
    for k in ev_ref:
        np.testing.assert_allclose(ev_ref[k], ev_cus[k], rtol=2e-5)
    assert [m.name for m in custom.metrics] == ["loss", "mae"]


def test_own_metrics_and_compile_without_a_loss():
    x, y = _data()

    class Tracked(keras.Model):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            self.loss_tracker = keras.metrics.Mean(name="loss")
            self.mae_metric = keras.metrics.MeanAbsoluteError(name="mae")

        def train_step(self, data):
            x, y = data
            with keras.GradientTape() as tape:
                y_pred = self(x, training=True)
                loss = ops.mean(ops.square(y_pred - y))
            grads = tape.gradient(loss, self.trainable_variables)
            self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
            self.loss_tracker.update_state(loss)
            self.mae_metric.update_state(y, y_pred)
            return {"loss": self.loss_tracker.result(), "mae": self.mae_metric.result()}

        @property
        def metrics(self):
            return [self.loss_tracker, self.mae_metric]

    model = _functional(Tracked)
    model.compile(optimizer="adam")
    hist = model.fit(x, y, epochs=4, batch_size=16, verbose=0).history
    assert set(hist) == {"loss", "mae"} and len(hist["loss"]) == 4
    assert hist["loss"][-1] < hist["loss"][0]
    # the metrics are reset at each epoch: the epoch value is the mean over its batches
    assert float(np.asarray(model.loss_tracker.count.value)) == 4


def test_overridden_compute_loss_is_used_by_fit_and_evaluate(float64):
    x, y = (a.astype(np.float64) for a in _data(32))

    class L1(keras.Model):
        def __init__(self):
            super().__init__()
            self.d = layers.Dense(1)

        def call(self, x):
            return self.d(x)

        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
            return ops.mean(ops.abs(y_pred - y))

    m = L1()
    m.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    m(x[:2])
    w0, b0 = (v.copy() for v in m.get_weights())
    m.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)
    r = x @ w0 + b0 - y
    grad_w = x.T @ np.sign(r) / len(x)
    np.testing.assert_allclose(m.get_weights()[0], w0 - 0.1 * grad_w, rtol=1e-10, atol=1e-12)
    pred = m.predict(x, verbose=0)
    np.testing.assert_allclose(m.evaluate(x, y, verbose=0), np.mean(np.abs(pred - y)), rtol=1e-10)


def test_overridden_test_step_is_what_evaluate_and_validation_report():
    x, y = _data()

    class Const(keras.Model):
        def test_step(self, data):
            return {"score": 7.0}

    m = _functional(Const)
    m.compile(optimizer="sgd", loss="mse")
    assert m.evaluate(x, y, verbose=0, return_dict=True) == {"score": 7.0}
    hist = m.fit(x, y, epochs=1, verbose=0, validation_data=(x, y)).history
    assert hist["val_score"] == [7.0] and "loss" in hist


def test_gradient_tape_gradients_match_finite_differences(float64):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 3))
    model = keras.Sequential([keras.Input((3,)), layers.Dense(5, activation="tanh"), layers.Dense(2)])

    class Sq(layers.Layer):
        def call(self, v):
            self.add_loss(0.3 * ops.sum(ops.square(v)))
            return v * 2.0

    sq = Sq()

    def loss_of():
        with keras.GradientTape() as tape:
            out = sq(model(x, training=True))
            loss = ops.sum(ops.sin(out)) + ops.sum(sq.losses)
        return tape, loss

    tape, loss = loss_of()
    grads = tape.gradient(loss, model.trainable_variables)
    eps = 1e-6
    for v, g in zip(model.trainable_variables, grads):
        num = np.zeros_like(v.value)
        for i in np.ndindex(v.shape):
            old = v.value[i]
            v.value[i] = old + eps
            up = float(loss_of()[1])
            v.value[i] = old - eps
            down = float(loss_of()[1])
            v.value[i] = old
            num[i] = (up - down) / (2 * eps)
        np.testing.assert_allclose(g, num, rtol=1e-6, atol=1e-8)


def test_gradient_tape_watch_structures_and_errors():
    x = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    with keras.GradientTape(persistent=True) as tape:
        tx = tape.watch(x)
        y = ops.sum(tx * tx)
    np.testing.assert_allclose(tape.gradient(y, tx), 2 * x)
    v = keras.Variable(np.ones(2, np.float32))
    unused = keras.Variable(np.ones(2, np.float32))
    with keras.GradientTape() as tape:
        z = ops.sum(v * 3.0)
    g = tape.gradient(z, {"v": v, "unused": unused})
    np.testing.assert_allclose(g["v"], [3.0, 3.0])
    assert g["unused"] is None
    with pytest.raises(RuntimeError, match="once"):
        tape.gradient(z, [v])
    with keras.GradientTape() as tape:
        c = np.sum(x)
    with pytest.raises(ValueError, match="not computed inside this tape"):
        tape.gradient(c, [v])


def _fake_module(name):
    mod = types.ModuleType(name)
    mod.GradientTape = type("GradientTape", (), {"__module__": name})
    return mod


@pytest.mark.parametrize("framework, label", [("tensorflow", "TensorFlow"), ("jax", "JAX"), ("torch", "PyTorch")])
def test_a_step_written_with_another_framework_is_refused_clearly(framework, label):
    x, y = _data(8)
    ns = {"tf": _fake_module(framework), "keras": keras}
    exec(  # a module whose global `tf` is another framework, as `import tensorflow as tf` gives
        "class Foreign(keras.Model):\n"
        "    def train_step(self, data):\n"
        "        with tf.GradientTape() as tape:\n"
        "            pass\n"
        "        return {}\n", ns)
    m = _functional(ns["Foreign"])
    m.compile(optimizer="sgd", loss="mse")
    with pytest.raises(TypeError, match=f"uses {label}.*fastnet.GradientTape"):
        m.fit(x, y, verbose=0)


def test_torch_style_backward_and_zero_grad_say_what_to_use():
    x, y = _data(8)

    class TorchStyle(keras.Model):
        def train_step(self, data):
            x, y = data
            y_pred = self(x, training=True)
            loss = self.compute_loss(y=y, y_pred=y_pred)
            self.zero_grad()
            loss.backward()
            return {}

    m = _functional(TorchStyle)
    m.compile(optimizer="sgd", loss="mse")
    with pytest.raises(TypeError, match="PyTorch.*fastnet.GradientTape"):
        m.fit(x, y, verbose=0)
    with keras.GradientTape() as tape:
        total = ops.sum(tape.watch(x))
    with pytest.raises(TypeError, match="GradientTape"):
        total.backward()


def test_train_step_must_return_a_dict():
    x, y = _data(8)

    class Bad(keras.Model):
        def train_step(self, data):
            return 3.0

    m = _functional(Bad)
    m.compile(optimizer="sgd", loss="mse")
    with pytest.raises(TypeError, match="train_step must return a dict"):
        m.fit(x, y, verbose=0)


def test_a_model_without_overrides_keeps_the_fused_step():
    m = _functional(keras.Model)
    assert not type(m)._overrides_steps()
    m.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    x, y = _data(16)
    m.fit(x, y, verbose=0)
    assert [mm.name for mm in m.metrics] == ["mae"]
