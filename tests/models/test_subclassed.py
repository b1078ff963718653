"""Layers written with ``call`` and fastnet.ops, and subclassed models (``__init__`` +
``call``): they build, train through the recorded tape, and equal the built-in layers."""
import numpy as np
import pytest

import fastnet as keras
from fastnet import layers, ops


class OpsDense(layers.Layer):
    """Dense + ReLU written with ops (as the Keras guide writes its Linear layer)."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units), initializer="glorot_uniform")
        self.b = self.add_weight(shape=(self.units,), initializer="zeros")

    def call(self, inputs):
        return ops.relu(ops.matmul(inputs, self.w) + self.b)


class MLPBlock(layers.Layer):
    """Sublayers held as attributes are tracked: their weights are the block's."""

    def __init__(self):
        super().__init__()
        self.linear_1 = OpsDense(8)
        self.linear_2 = OpsDense(8)
        self.linear_3 = layers.Dense(1)

    def call(self, inputs):
        return self.linear_3(self.linear_2(self.linear_1(inputs)))


def test_a_layer_written_with_ops_equals_dense_relu_in_values_and_gradients():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 5)).astype(np.float32)
    u = rng.standard_normal((6, 4)).astype(np.float32)
    mine, builtin = OpsDense(4), layers.Dense(4, activation="relu")
    mine(x)
    builtin(x)
    mine.set_weights(builtin.get_weights())
    assert [v.name for v in mine.weights] == ["variable", "variable_1"]
    y1, y2 = mine(x, training=True), builtin(x, training=True)
    np.testing.assert_allclose(y1, y2, rtol=1e-6, atol=1e-6)
    ctx1, ctx2 = mine._last_ctx, builtin._last_ctx
    dx1, dx2 = mine.backward(ctx1, u), builtin.backward(ctx2, u)
    np.testing.assert_allclose(dx1, dx2, rtol=1e-5, atol=1e-6)
    for a, b in zip(mine.trainable_weights, builtin.trainable_weights):
        np.testing.assert_allclose(a.grad, b.grad, rtol=1e-5, atol=1e-6)


def test_sublayers_in_attributes_are_tracked_and_train_like_built_in_layers():
    block = MLPBlock()
    x = np.random.default_rng(1).standard_normal((16, 3)).astype(np.float32)
    y = block(x)
    assert y.shape == (16, 1)
    assert len(block.weights) == 6 and len(block.trainable_weights) == 6
    inputs = keras.Input((3,))
    model = keras.Model(inputs, block(inputs))
    builtin = keras.Sequential([keras.Input((3,)), layers.Dense(8, activation="relu"),
                                layers.Dense(8, activation="relu"), layers.Dense(1)])
    builtin.set_weights(model.get_weights())
    target = np.sum(x, axis=1, keepdims=True)
    hists = []
    for m in (model, builtin):
        m.compile(optimizer="adam", loss="mse")
        hists.append(m.fit(x, target, epochs=5, batch_size=8, shuffle=False, verbose=0).history["loss"])
    np.testing.assert_allclose(hists[0], hists[1], rtol=1e-5)
    assert hists[0][-1] < hists[0][0]
    for a, b in zip(model.get_weights(), builtin.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


class TwoLayerModel(keras.Model):
    def __init__(self):
        super().__init__()
        self.hidden = layers.Dense(8, activation="tanh")
        self.head = layers.Dense(1)

    def call(self, inputs, training=False):
        return self.head(self.hidden(inputs))


def test_a_subclassed_model_trains_like_the_equal_sequential_model():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((32, 4)).astype(np.float32)
    y = rng.standard_normal((32, 1)).astype(np.float32)
    sub = TwoLayerModel()
    sub(x)  # builds its layers
    seq = keras.Sequential([keras.Input((4,)), layers.Dense(8, activation="tanh"), layers.Dense(1)])
    seq.set_weights(sub.get_weights())
    np.testing.assert_allclose(sub.predict(x, verbose=0), seq.predict(x, verbose=0), rtol=1e-6)
    for m in (sub, seq):
        m.compile(optimizer="sgd", loss="mse")
    h_sub = sub.fit(x, y, epochs=3, batch_size=8, shuffle=False, verbose=0)
    h_seq = seq.fit(x, y, epochs=3, batch_size=8, shuffle=False, verbose=0)
    np.testing.assert_allclose(h_sub.history["loss"], h_seq.history["loss"], rtol=1e-5)
    for a, b in zip(sub.get_weights(), seq.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert len(sub.layers) == 2 and sub.count_params() == 4 * 8 + 8 + 8 + 1


def test_a_layer_without_a_recordable_call_says_what_to_write():
    class NumpyOnly(layers.Layer):
        def call(self, inputs):
            return np.tanh(np.asarray(inputs))  # numpy, not ops: nothing is recorded

    layer = NumpyOnly()
    x = np.ones((2, 3), np.float32)
    layer(x, training=True)
    with pytest.raises(NotImplementedError, match=r"computed outside fastnet.ops .* no gradient can flow"):
        layer.backward(layer._last_ctx, np.ones((2, 3), np.float32))


def test_a_sequential_of_layers_written_with_ops_fits_to_keras_numbers():
    """Keras fitted this model (custom Linear and layer normalization written with ops, a
    custom log-cosh loss; SGD 0.1, 3 epochs, batch 16, no shuffle): same history and
    weights (several steps: rtol 1e-4, atol 1e-5)."""
    import os
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.join(here, "..", "ops"))
    from custom_layer_defs import make

    d = np.load(os.path.join(here, "..", "data", "keras_ops", "custom_model.npz"))
    _, _, log_cosh_error, build_model, _ = make(keras, ops)
    model = build_model()
    model.set_weights([d[f"w_{i}"] for i in range(6)])
    np.testing.assert_allclose(model.predict(d["x"], verbose=0), d["out"], rtol=1e-5, atol=1e-6)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=log_cosh_error)
    hist = model.fit(d["x"], d["y"], epochs=3, batch_size=16, shuffle=False, verbose=0)
    np.testing.assert_allclose(hist.history["loss"], d["history_loss"], rtol=1e-4, atol=1e-5)
    for i, w in enumerate(model.get_weights()):
        np.testing.assert_allclose(w, d[f"w_after_{i}"], rtol=1e-4, atol=1e-5, err_msg=f"weight {i}")
