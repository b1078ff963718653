"""Pooling layers: Keras reference cases, finite differences, shapes, configs, errors."""
import glob
import os

import numpy as np
import pytest
from helpers import backprop

from fastnet import config, layers

try:
    from .test_conv_layers import REF, finite_difference_check, replay_reference
except ImportError:  # tests/ is not a package: pytest puts this folder on sys.path
    from test_conv_layers import REF, finite_difference_check, replay_reference

POOL_CASES = sorted(os.path.basename(p)[:-4] for p in glob.glob(os.path.join(REF, "*.npz"))
                    if any(s in os.path.basename(p) for s in ("pool", "globalavg", "globalmax")))


@pytest.fixture(autouse=True)
def _threads():
    before = config.get_num_threads()
    config.set_num_threads(2)
    yield
    config.set_num_threads(before)


@pytest.fixture
def float64():
    config.set_floatx("float64")
    yield
    config.set_floatx("float32")


def test_every_pool_reference_case_is_covered():
    assert len(POOL_CASES) >= 10


@pytest.mark.parametrize("name", POOL_CASES)
def test_keras_reference(name):
    replay_reference(name)


@pytest.mark.parametrize("cls,kwargs,shape", [
    ("MaxPooling2D", dict(pool_size=3, strides=2, padding="same"), (2, 7, 6, 2)),
    ("MaxPooling1D", dict(pool_size=3, strides=1), (2, 7, 3)),
    ("AveragePooling2D", dict(pool_size=(2, 3), padding="same"), (2, 5, 7, 2)),
    ("AveragePooling1D", dict(pool_size=3, strides=2, padding="same"), (2, 8, 3)),
    ("AveragePooling2D", dict(pool_size=2, data_format="channels_first"), (2, 3, 4, 5)),
    ("GlobalAveragePooling1D", dict(), (2, 5, 3)),
    ("GlobalMaxPooling2D", dict(keepdims=True), (2, 3, 4, 3)),
])
def test_finite_differences(cls, kwargs, shape, float64):
    rng = np.random.default_rng(0)
    # Well-separated values: no max tie can flip under a 1e-6 perturbation.
    x = rng.permutation(np.prod(shape)).reshape(shape) * 0.01
    finite_difference_check(getattr(layers, cls)(**kwargs), x.astype(np.float64), rng)


@pytest.mark.parametrize("cls,kwargs,in_shape,out_shape", [
    ("MaxPooling2D", dict(), (None, 26, 26, 32), (None, 13, 13, 32)),
    ("MaxPooling2D", dict(pool_size=3, strides=2, padding="same"), (None, 7, 8, 2),
     (None, 4, 4, 2)),
    ("MaxPooling1D", dict(), (None, 7, 3), (None, 3, 3)),
    ("MaxPooling1D", dict(padding="same"), (None, 7, 3), (None, 4, 3)),
    ("AveragePooling2D", dict(data_format="channels_first"), (None, 3, 9, 9), (None, 3, 4, 4)),
    ("GlobalAveragePooling2D", dict(), (None, 5, 5, 3), (None, 3)),
    ("GlobalMaxPooling1D", dict(keepdims=True), (None, 5, 3), (None, 1, 3)),
    ("GlobalAveragePooling2D", dict(keepdims=True, data_format="channels_first"),
     (None, 3, 5, 5), (None, 3, 1, 1)),
])
def test_compute_output_shape_matches_call(cls, kwargs, in_shape, out_shape):
    layer = getattr(layers, cls)(**kwargs)
    assert layer.compute_output_shape(in_shape) == out_shape
    concrete = (2,) + in_shape[1:]
    assert layer(np.random.default_rng(0).standard_normal(concrete)).shape == (2,) + out_shape[1:]


def test_strides_default_to_pool_size_and_config_keys():
    layer = layers.MaxPooling2D((3, 2))
    assert layer.strides == (3, 2)
    cfg = layer.get_config()
    assert {"name", "trainable", "dtype", "pool_size", "padding", "strides",
            "data_format"} <= set(cfg)
    assert cfg["pool_size"] == (3, 2) and cfg["strides"] == (3, 2)
    assert layers.MaxPooling2D.from_config(cfg).get_config() == cfg
    g = layers.GlobalAveragePooling1D(keepdims=True).get_config()
    assert g["keepdims"] is True and g["data_format"] == "channels_last"


def test_masked_global_average_pooling_1d():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 5, 2)).astype(np.float32)
    mask = np.array([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1], [0, 1, 0, 1, 0]], bool)
    layer = layers.GlobalAveragePooling1D()
    y = layer(x, mask=mask)
    want = np.stack([x[i][mask[i]].mean(axis=0) for i in range(3)])
    np.testing.assert_allclose(y, want, rtol=1e-6)
    u = rng.standard_normal(y.shape).astype(np.float32)
    dx = backprop(layer, u)
    want_dx = mask[:, :, None] * u[:, None, :] / mask.sum(axis=1)[:, None, None]
    np.testing.assert_allclose(dx, want_dx, rtol=1e-6)


def test_max_pool_backward_routes_gradient_to_the_max():
    x = np.array([[[[1.0], [5.0]], [[3.0], [2.0]]]], np.float32)
    layer = layers.MaxPooling2D()
    assert layer(x).item() == 5.0
    dx = backprop(layer, np.array([[[[7.0]]]], np.float32))
    np.testing.assert_array_equal(dx.reshape(-1), [0, 7, 0, 0])


def test_pool_larger_than_input_names_layer_and_sizes():
    layer = layers.MaxPooling2D((4, 4), name="pool_big")
    with pytest.raises(ValueError) as e:
        layer(np.zeros((1, 3, 5, 2)))
    msg = str(e.value)
    assert "pool_big" in msg and "(4, 4)" in msg and "(3, 5)" in msg
    with pytest.raises(ValueError, match=r"pool1.*\(5,\).*\(3,\)"):
        layers.AveragePooling1D(5, name="pool1").compute_output_shape((None, 3, 2))
    # same padding never runs out of input.
    assert layers.MaxPooling2D((4, 4), padding="same")(np.zeros((1, 3, 5, 2))).shape == (1, 1, 2, 2)


def test_pool_rank_errors_describe_expected_axes():
    with pytest.raises(ValueError, match=r"rank 4 \(batch, rows, cols, channels\).*\(2, 8, 8\)"):
        layers.MaxPooling2D()(np.zeros((2, 8, 8)))
    with pytest.raises(ValueError, match=r"rank 3 \(batch, steps, channels\)"):
        layers.GlobalAveragePooling1D()(np.zeros((2, 8, 8, 1)))


@pytest.mark.parametrize("kwargs,match", [
    (dict(pool_size=0), "pool_size"),
    (dict(pool_size=2, strides=(1, 2, 3)), "strides"),
    (dict(pool_size=2, padding="causal"), "padding"),
    (dict(pool_size=2, data_format="NHWC"), "data_format"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        layers.MaxPooling2D(**kwargs)


def test_folding_the_relu_derivative_into_max_pooling_keeps_the_gradients():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((4, 12, 12, 3)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 3, 8)).astype(np.float32) * 0.3
    bias = np.full(8, -0.4, np.float32)  # many windows of zeros after the ReLU
    u = rng.standard_normal((4, 5, 5, 8)).astype(np.float32)

    def gradients(fold):
        conv, pool = layers.Conv2D(8, 3, activation="relu"), layers.MaxPooling2D(2)
        conv(x)
        conv.set_weights([kernel, bias])
        y = pool(conv(x, training=True), training=True)
        assert (y == 0).any()
        # What the graph pass sets on the two calls' contexts (fastnet.models.graph).
        conv._last_ctx.act_grad_in_dy = pool._last_ctx.relu_input = fold
        dx = backprop(conv, backprop(pool, u))
        return dx, conv.kernel.grad.copy(), conv.bias.grad.copy()

    for a, b in zip(gradients(False), gradients(True)):
        np.testing.assert_array_equal(a, b)


def test_fold_pairs_only_relu_convolutions_read_by_max_pooling_alone():
    from fastnet.models import Model, Sequential

    chain = [layers.Conv2D(2, 3, activation="relu"), layers.MaxPooling2D(),
             layers.Conv2D(2, 3, activation="tanh"), layers.MaxPooling2D(),
             layers.Conv2D(2, 3, activation="relu"), layers.AveragePooling2D()]
    model = Sequential([layers.Input((30, 30, 1))] + chain)
    assert model._graph.relu_pool_pairs == [(0, 1)]
    # A convolution whose output is read twice keeps its own derivative.
    inp = layers.Input((8, 8, 1))
    c = layers.Conv2D(2, 3, activation="relu")(inp)
    branched = Model(inp, [layers.MaxPooling2D()(c), layers.Flatten()(c)])
    assert branched._graph.relu_pool_pairs == []
