"""layers.Lambda: forward through the function, backward through its recorded VJP,
Keras's config format, and refusal of stored bytecode in safe mode."""
import os

import numpy as np
import pytest
from helpers import numeric_grad

import fastnet
from fastnet import layers, ops
from fastnet.layers.lambda_layer import _UNSAFE_LAMBDA


class Ctx:
    """Stands in for the executor's CallContext (the fields Lambda reads)."""

    def __init__(self, record=True, need_dx=True):
        self.record = record
        self.need_dx = need_dx


def _fb(layer, x, dy, **kw):
    ctx = Ctx()
    y = layer.forward(ctx, x, **kw)
    return y, layer.backward(ctx, dy)


def test_forward_and_backward_match_finite_differences(float64):
    layer = layers.Lambda(lambda x, scale: ops.tanh(x) * ops.sum(x * x, axis=-1, keepdims=True) * scale,
                          arguments={"scale": 0.5})
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 4))
    u = rng.normal(size=(3, 4))
    y, dx = _fb(layer, x, u)
    np.testing.assert_allclose(y, np.tanh(x) * (x * x).sum(-1, keepdims=True) * 0.5)
    np.testing.assert_allclose(dx, numeric_grad(lambda z: np.sum(layer.call(z) * u), x), rtol=1e-7, atol=1e-9)
    assert type(layer(x)) is np.ndarray


def test_several_inputs_and_integer_inputs(float64):
    layer = layers.Lambda(lambda xs: ops.take(xs[0], xs[1], axis=1) * xs[2])
    a = np.arange(6.0).reshape(2, 3)
    idx = np.array([2, 0])
    c = np.array([[1.0, 2.0], [3.0, 4.0]])
    y, (da, didx, dc) = _fb(layer, [a, idx, c], np.ones((2, 2)))
    np.testing.assert_array_equal(y, a[:, [2, 0]] * c)
    assert didx is None
    np.testing.assert_array_equal(da, [[2.0, 0.0, 1.0], [4.0, 0.0, 3.0]])
    np.testing.assert_array_equal(dc, a[:, [2, 0]])


def test_need_dx_false_and_plain_calls():
    layer = layers.Lambda(lambda x: x * 2)
    ctx = Ctx(need_dx=False)
    layer.forward(ctx, np.ones(3))
    assert layer.backward(ctx, np.ones(3)) is None
    with pytest.raises(RuntimeError, match="ctx.record"):
        layer.backward(Ctx(), np.ones(3))


def test_mask_and_training_arguments():
    seen = {}

    def fn(x, mask=None, training=None):
        seen["mask"], seen["training"] = mask, training
        return x

    layer = layers.Lambda(fn, mask=lambda inputs, mask: inputs > 0)
    layer.forward(Ctx(record=False), np.ones(2), training=True, mask=np.array([True, False]))
    assert seen["training"] is True and seen["mask"].tolist() == [True, False]
    assert layer.compute_mask(np.array([1.0, -1.0])).tolist() == [True, False]


def test_output_shape_given_or_inferred():
    assert layers.Lambda(lambda x: ops.concatenate([x, x], axis=-1)).compute_output_shape((None, 3)) == (None, 6)
    assert layers.Lambda(lambda x: ops.sum(x, axis=1)).compute_output_shape((None, 4, 5)) == (None, 5)
    assert layers.Lambda(lambda x: x, output_shape=(7,)).compute_output_shape((None, 3)) == (None, 7)
    assert layers.Lambda(lambda x: x, output_shape=lambda s: s[:1] + (1,)).compute_output_shape((8, 3)) == (8, 1)
    with pytest.raises(NotImplementedError, match="output_shape"):
        layers.Lambda(lambda x: x.reshape(5, 7)).compute_output_shape((None, 3))


def test_lambda_config_is_keras_bytecode_and_refused_in_safe_mode():
    layer = layers.Lambda(lambda x: ops.square(x) + 1, name="sq")
    cfg = layer.get_config()
    assert cfg["function"]["class_name"] == "__lambda__"
    assert set(cfg["function"]["config"]) == {"code", "defaults", "closure"}
    with pytest.raises(ValueError) as e:
        layers.Lambda.from_config(cfg)
    assert str(e.value) == _UNSAFE_LAMBDA
    again = layers.Lambda.from_config(cfg, safe_mode=False)
    np.testing.assert_array_equal(again(np.array([2.0])), [5.0])


def double(x):
    return x * 2


def test_named_function_resolves_through_custom_objects_and_registration():
    cfg = layers.Lambda(double).get_config()
    assert cfg["function"]["class_name"] == "function" and cfg["function"]["config"] == "double"
    with pytest.raises(ValueError, match="custom_objects"):
        layers.Lambda.from_config(cfg)
    layer = layers.Lambda.from_config(cfg, custom_objects={"double": double})
    assert layer.function is double

    @fastnet.saving.register_keras_serializable(package="OpsTests")
    def triple(x):
        return x * 3

    cfg = layers.Lambda(triple).get_config()
    assert cfg["function"]["registered_name"] == "OpsTests>triple"
    assert layers.Lambda.from_config(cfg).function is triple
    del fastnet.saving.get_custom_objects()["OpsTests>triple"]


def test_load_model_refuses_a_saved_lambda(tmp_path):
    model = fastnet.Sequential([fastnet.Input((3,)), layers.Dense(2), layers.Lambda(lambda x: x * 2)])
    path = os.path.join(tmp_path, "m.keras")
    model.save(path)
    with pytest.raises(Exception) as e:
        fastnet.models.load_model(path)
    assert _UNSAFE_LAMBDA in str(e.value)


def test_registered_custom_layer_loads_without_custom_objects(tmp_path):
    @fastnet.saving.register_keras_serializable(package="OpsTests")
    class Scale(layers.Layer):
        def __init__(self, factor=2.0, **kwargs):
            super().__init__(**kwargs)
            self.factor = factor

        def call(self, x, training=False):
            return x * self.factor

        def backward(self, dy, need_dx=True):
            return dy * self.factor

        def get_config(self):
            return {**super().get_config(), "factor": self.factor}

    try:
        cfg = fastnet.layers.serialize(Scale(3.0))
        assert cfg["registered_name"] == "OpsTests>Scale"
        back = fastnet.layers.deserialize(cfg)
        assert isinstance(back, Scale) and back.factor == 3.0
        with fastnet.saving.custom_object_scope({"Other": Scale}):
            assert fastnet.saving.get_registered_object("Other") is Scale
        assert fastnet.saving.get_registered_object("Other") is None
    finally:
        del fastnet.saving.get_custom_objects()["OpsTests>Scale"]
