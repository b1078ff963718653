"""fastnet.ops on keras.Input tensors: op nodes (OpLayer) in functional models that
train with exact gradients, predict, and save by the op's name."""
import numpy as np
import pytest

import fastnet as keras
from fastnet import layers, ops


def _model():
    keras.utils.set_random_seed(2)
    inputs = keras.Input(shape=(4,))
    h = layers.Dense(5)(inputs)
    x = ops.relu(h) * 2
    y = ops.mean(x, axis=1, keepdims=True)
    z = ops.concatenate([y, ops.square(h)[:, :2], 1.0 - ops.tanh(h) / 3.0], axis=-1)
    return keras.Model(inputs, z)


def _numpy_forward(model, x):
    k, b = model.get_weights()
    h = x @ k + b
    y = np.mean(np.maximum(h, 0) * 2, axis=1, keepdims=True)
    return np.concatenate([y, np.square(h)[:, :2], 1.0 - np.tanh(h) / 3.0], axis=-1)


def test_ops_on_inputs_build_op_nodes_with_inferred_shapes():
    model = _model()
    assert model.output_shape == (None, 8)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds.count("OpLayer") >= 6 and "Dense" in kinds
    assert not model.layers[-1].weights


def test_predict_and_gradients_match_numpy_and_finite_differences(float64):
    model = _model()
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((6, 4)), rng.standard_normal((6, 8))
    np.testing.assert_allclose(model.predict(x, verbose=0), _numpy_forward(model, x), rtol=1e-12)
    w0 = [w.copy() for w in model.get_weights()]

    def loss(ws):
        model.set_weights(ws)
        return np.mean((_numpy_forward(model, x) - y) ** 2)

    num = []
    for k, w in enumerate(w0):
        g = np.zeros_like(w)
        for i in np.ndindex(w.shape):
            up = [v.copy() for v in w0]
            up[k][i] += 1e-6
            down = [v.copy() for v in w0]
            down[k][i] -= 1e-6
            g[i] = (loss(up) - loss(down)) / 2e-6
        num.append(g)
    model.set_weights(w0)
    model.compile(optimizer=keras.optimizers.SGD(1.0), loss="mse")
    model.fit(x, y, batch_size=6, epochs=1, shuffle=False, verbose=0)
    for w, new, g in zip(w0, model.get_weights(), num):
        np.testing.assert_allclose(w - new, g, rtol=1e-5, atol=1e-9)


def test_save_and_load_round_trip(tmp_path):
    model = _model()
    x = np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32)
    path = tmp_path / "ops.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
    cfg = model.get_config()
    ops_cfg = [entry["config"] for entry in cfg["layers"] if entry["class_name"] == "OpLayer"]
    mean_cfg = next(c for c in ops_cfg if c["op"] == "numpy.mean")
    assert mean_cfg["arguments"] == [[{"__tensor__": 0}], {"__dict__": {"axis": 1, "keepdims": True}}]


def test_an_op_with_an_argument_that_cannot_be_saved_says_so(tmp_path):
    inputs = keras.Input(shape=(100,))
    out = ops.where(inputs > 0, inputs, np.full((1, 100), -1.0, np.float32))  # a large constant array
    model = keras.Model(inputs, out)
    x = np.linspace(-1, 1, 200, dtype=np.float32).reshape(2, 100)
    np.testing.assert_array_equal(model.predict(x, verbose=0), np.where(x > 0, x, -1.0))
    with pytest.raises(TypeError, match="fastnet.ops.*cannot be saved"):
        model.save(tmp_path / "m.keras")


def test_op_layer_refuses_names_outside_fastnet_ops():
    with pytest.raises(ValueError, match="not a fastnet.ops function"):
        layers.OpLayer("os.system")
    with pytest.raises(ValueError, match="not a fastnet.ops function"):
        layers.OpLayer("numpy.__class__")
