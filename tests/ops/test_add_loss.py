"""``add_loss`` and ``losses`` (Keras 3): added inside ``call`` with ops, summed into the
training loss with exact gradients, collected from nested layers, reset at each call;
in functional, Sequential and subclassed models."""
import numpy as np
import pytest

import fastnet as keras
from fastnet import layers, ops


class ActivityPenalty(layers.Layer):
    """The Keras guide's activity regularization layer."""

    def __init__(self, rate=1e-2, **kwargs):
        super().__init__(**kwargs)
        self.rate = rate

    def call(self, inputs):
        self.add_loss(self.rate * ops.sum(ops.square(inputs)))
        return inputs


class Block(layers.Layer):
    def __init__(self):
        super().__init__()
        self.dense = layers.Dense(3, activation="tanh")
        self.pen = ActivityPenalty(0.05)

    def call(self, x):
        return self.pen(self.dense(x))


def _xy(n=6, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 4)), rng.standard_normal((n, 2))


def _sequential():
    keras.utils.set_random_seed(4)
    return keras.Sequential([keras.Input((4,)), Block(), ActivityPenalty(0.1), layers.Dense(2)])


def _functional():
    keras.utils.set_random_seed(4)
    inputs = keras.Input((4,))
    h = Block()(inputs)
    h = ActivityPenalty(0.1)(h)
    return keras.Model(inputs, layers.Dense(2)(h))


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.block = Block()
        self.pen = ActivityPenalty(0.1)
        self.out = layers.Dense(2)

    def call(self, x):
        return self.out(self.pen(self.block(x)))


def _subclassed():
    keras.utils.set_random_seed(4)
    return Subclassed()


def _total_loss(model, x, y):
    """MSE + every added loss, from an eager call (reference by plain numpy)."""
    pred = model(x)
    added = float(sum(np.sum(v) for v in model.losses))
    return float(np.mean((pred - y) ** 2)) + added


def test_losses_are_collected_from_nested_layers_and_reset_at_each_call(float64):
    x, _ = _xy()
    model = _subclassed()
    model(x)
    assert len(model.losses) == 2
    h = np.tanh(x @ model.block.dense.kernel.value + model.block.dense.bias.value)
    np.testing.assert_allclose(sorted(float(v) for v in model.losses),
                               sorted([0.05 * np.sum(h ** 2), 0.1 * np.sum(h ** 2)]), rtol=1e-12)
    assert len(model.block.losses) == 1
    model(x[:2])
    assert len(model.losses) == 2  # reset, not accumulated
    np.testing.assert_allclose(float(model.block.losses[0]), 0.05 * np.sum(h[:2] ** 2), rtol=1e-12)


@pytest.mark.parametrize("build", [_sequential, _functional, _subclassed], ids=["sequential", "functional",
                                                                               "subclassed"])
def test_fit_adds_the_losses_with_exact_gradients(build, float64):
    x, y = _xy()
    model = build()
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    model(x)
    w0 = [w.copy() for w in model.get_weights()]
    expected = _total_loss(model, x, y)
    # finite differences of the total loss with respect to every weight
    num = []
    eps = 1e-6
    for k, w in enumerate(w0):
        g = np.zeros_like(w)
        for i in np.ndindex(w.shape):
            ws = [v.copy() for v in w0]
            ws[k][i] += eps
            model.set_weights(ws)
            up = _total_loss(model, x, y)
            ws[k][i] -= 2 * eps
            model.set_weights(ws)
            g[i] = (up - _total_loss(model, x, y)) / (2 * eps)
        num.append(g)
    model.set_weights(w0)
    hist = model.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0)
    np.testing.assert_allclose(hist.history["loss"][0], expected, rtol=1e-10)
    for w, w_new, g in zip(w0, model.get_weights(), num):
        np.testing.assert_allclose((w - w_new) / 0.1, g, rtol=1e-5, atol=1e-8)
    model.set_weights(w0)
    np.testing.assert_allclose(model.evaluate(x, y, verbose=0), expected, rtol=1e-10)


def test_a_sequential_of_a_loss_adding_layer_leaves_the_chain_fast_path():
    model = _sequential()
    model.compile(optimizer="sgd", loss="mse")
    x, y = _xy()
    model.fit(x.astype(np.float32), y.astype(np.float32), verbose=0)
    assert not model._graph.linear
    plain = keras.Sequential([keras.Input((4,)), layers.Dense(3), layers.Dense(2)])
    plain.compile(optimizer="sgd", loss="mse")
    plain.fit(x, y, verbose=0)
    assert plain._graph.linear


def test_weight_regularization_is_in_losses_and_differentiable_on_a_tape(float64):
    dense = layers.Dense(2, kernel_regularizer=keras.regularizers.L2(0.5))
    x, _ = _xy()
    dense(x)
    (pen,) = dense.losses
    np.testing.assert_allclose(pen, 0.5 * np.sum(dense.kernel.value ** 2))
    with keras.GradientTape() as tape:
        total = ops.sum(dense.losses)
    (g,) = [tape.gradient(total, [dense.kernel])[0]]
    np.testing.assert_allclose(g, dense.kernel.value, rtol=1e-12)
