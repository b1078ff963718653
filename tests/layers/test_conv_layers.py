"""Conv1D, Conv2D, Conv1DTranspose and Conv2DTranspose layers.

Keras parity on every conv case in tests/data/keras_reference/layers (outputs,
input and weight gradients), finite differences in float64, the tutorial's
shapes, configs and the bad-input errors.
"""
import glob
import json
import os

import numpy as np
import pytest
from helpers import backprop

from fastnet import config, layers

HERE = os.path.dirname(os.path.abspath(__file__))
REF = os.path.join(HERE, "..", "data", "keras_reference", "layers")
CONV_CASES = sorted(os.path.basename(p)[:-4] for p in glob.glob(os.path.join(REF, "conv*.npz")))


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


def replay_reference(name, rtol=1e-4, atol=1e-5):
    """Builds the recorded layer, checks outputs and gradients against Keras's."""
    d = np.load(os.path.join(REF, name + ".npz"))
    meta = json.loads(str(d["meta"]))
    layer = getattr(layers, meta["class_name"])(**meta["config"])
    x = d["x"]
    layer(x)  # build
    layer.set_weights([d[f"w_{i}"] for i in range(meta["n_weights"])])
    y = layer(x, training=False)
    np.testing.assert_allclose(y, d["y_infer_0"], rtol=rtol, atol=atol)
    if meta["grads"]:
        dx = backprop(layer, d["upstream_infer_0"])
        np.testing.assert_allclose(dx, d["dx_infer"], rtol=rtol, atol=atol)
        for i, v in enumerate(layer.trainable_weights):
            np.testing.assert_allclose(v.grad, d[f"dw_infer_{i}"], rtol=rtol, atol=atol)
    return layer


def test_every_conv_reference_case_is_covered():
    assert len(CONV_CASES) >= 20


@pytest.mark.parametrize("name", CONV_CASES)
def test_keras_reference(name):
    replay_reference(name)


# ------------------------------------------------------------------ finite differences

def finite_difference_check(layer, x, rng, eps=1e-6, tol=1e-6):
    """Analytic gradients of sum(layer(x) * u) against central differences (float64)."""
    y = layer(x, training=True)
    u = rng.standard_normal(y.shape)
    dx = backprop(layer, u)
    grads = [v.grad.copy() for v in layer.trainable_weights]

    def loss():
        return float(np.sum(layer(x, training=True) * u))

    flat = x.reshape(-1)
    num = np.empty_like(flat)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        hi = loss()
        flat[i] = old - eps
        lo = loss()
        flat[i] = old
        num[i] = (hi - lo) / (2 * eps)
    np.testing.assert_allclose(dx.reshape(-1), num, rtol=tol, atol=tol)
    for v, g in zip(layer.trainable_weights, grads):
        w = v.value.reshape(-1)
        num = np.empty_like(w)
        for i in range(w.size):
            old = w[i]
            w[i] = old + eps
            hi = loss()
            w[i] = old - eps
            lo = loss()
            w[i] = old
            num[i] = (hi - lo) / (2 * eps)
        np.testing.assert_allclose(g.reshape(-1), num, rtol=tol, atol=tol)


FD_CASES = [
    ("Conv1D", dict(filters=3, kernel_size=3, padding="causal", dilation_rate=2,
                    activation="tanh"), (2, 9, 2)),
    ("Conv1D", dict(filters=3, kernel_size=4, strides=3, padding="same", activation="gelu"),
     (2, 10, 2)),
    ("Conv2D", dict(filters=3, kernel_size=3, strides=2, padding="same", activation="sigmoid"),
     (2, 7, 6, 2)),
    ("Conv2D", dict(filters=2, kernel_size=(2, 3), dilation_rate=(2, 1), use_bias=False),
     (2, 6, 5, 3)),
    ("Conv2D", dict(filters=2, kernel_size=3, padding="same", activation="elu",
                    data_format="channels_first"), (2, 3, 5, 4)),
    ("Conv2DTranspose", dict(filters=2, kernel_size=3, strides=2, padding="same",
                             activation="tanh"), (2, 3, 4, 2)),
    ("Conv2DTranspose", dict(filters=2, kernel_size=3, strides=2, padding="valid",
                             output_padding=1, activation="softplus"), (2, 3, 3, 2)),
    ("Conv2DTranspose", dict(filters=3, kernel_size=2, dilation_rate=2, activation="silu"),
     (1, 3, 3, 2)),
    ("Conv1DTranspose", dict(filters=2, kernel_size=3, strides=2, padding="same"), (2, 4, 3)),
]


@pytest.mark.parametrize("cls,kwargs,shape", FD_CASES)
def test_finite_differences(cls, kwargs, shape, float64):
    rng = np.random.default_rng(0)
    layer = getattr(layers, cls)(bias_initializer="random_normal", **kwargs)
    x = rng.standard_normal(shape)
    finite_difference_check(layer, x, rng)


# ------------------------------------------------------------------ shapes and behaviour

def test_tutorial_shapes():
    assert layers.Conv1D(32, 3, padding="valid")(np.zeros((4, 10, 128))).shape == (4, 8, 32)
    y = layers.Conv2DTranspose(12, (3, 3), strides=2, padding="valid")(np.zeros((32, 2, 2, 1)))
    assert y.shape == (32, 5, 5, 12)


@pytest.mark.parametrize("cls,kwargs,in_shape,out_shape", [
    ("Conv2D", dict(filters=8, kernel_size=3), (None, 28, 28, 1), (None, 26, 26, 8)),
    ("Conv2D", dict(filters=8, kernel_size=3, strides=2, padding="same"), (None, 7, 8, 3),
     (None, 4, 4, 8)),
    ("Conv2D", dict(filters=8, kernel_size=3, data_format="channels_first"), (None, 3, 9, 9),
     (None, 8, 7, 7)),
    ("Conv1D", dict(filters=4, kernel_size=5, padding="causal", dilation_rate=4),
     (None, 100, 16), (None, 100, 4)),
    ("Conv1D", dict(filters=4, kernel_size=5), (None, None, 16), (None, None, 4)),
    ("Conv2DTranspose", dict(filters=4, kernel_size=3, strides=2, padding="same"),
     (None, 7, 7, 32), (None, 14, 14, 4)),
    ("Conv2DTranspose", dict(filters=4, kernel_size=3, strides=2, padding="same",
                             output_padding=0), (None, 7, 7, 32), (None, 13, 13, 4)),
    ("Conv2DTranspose", dict(filters=4, kernel_size=2, strides=3), (None, 4, 4, 1),
     (None, 12, 12, 4)),
    ("Conv1DTranspose", dict(filters=4, kernel_size=3, strides=2), (None, 6, 2), (None, 13, 4)),
])
def test_compute_output_shape_matches_call(cls, kwargs, in_shape, out_shape):
    layer = getattr(layers, cls)(**kwargs)
    assert layer.compute_output_shape(in_shape) == out_shape
    concrete = tuple(5 if d is None else d for d in in_shape)
    y = layer(np.random.default_rng(0).standard_normal(concrete))
    want = layer.compute_output_shape(concrete)
    assert y.shape == want


def test_weight_layouts_are_keras():
    conv = layers.Conv2D(6, (2, 3))
    conv(np.zeros((1, 5, 5, 4)))
    assert [w.shape for w in conv.get_weights()] == [(2, 3, 4, 6), (6,)]
    convt = layers.Conv2DTranspose(6, (2, 3))
    convt(np.zeros((1, 5, 5, 4)))
    assert [w.shape for w in convt.get_weights()] == [(2, 3, 6, 4), (6,)]
    c1 = layers.Conv1D(6, 5, use_bias=False)
    c1(np.zeros((1, 9, 4)))
    assert [w.shape for w in c1.get_weights()] == [(5, 4, 6)]


def test_channels_first_equals_transposed_channels_last():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 9, 8, 3)).astype(np.float32)
    last = layers.Conv2D(4, 3, strides=2, padding="same", activation="relu")
    first = layers.Conv2D(4, 3, strides=2, padding="same", activation="relu",
                          data_format="channels_first")
    y_last = last(x)
    first(np.moveaxis(x, -1, 1))
    first.set_weights(last.get_weights())
    y_first = first(np.moveaxis(x, -1, 1))
    np.testing.assert_allclose(np.moveaxis(y_first, 1, -1), y_last, rtol=1e-6, atol=1e-6)
    u = rng.standard_normal(y_last.shape).astype(np.float32)
    dx_last = backprop(last, u)
    dx_first = backprop(first, np.moveaxis(u, -1, 1))
    np.testing.assert_allclose(np.moveaxis(dx_first, 1, -1), dx_last, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(first.kernel.grad, last.kernel.grad, rtol=1e-5, atol=1e-5)


def test_frozen_layer_leaves_weight_gradients_alone_and_skips_dx():
    rng = np.random.default_rng(2)
    layer = layers.Conv2D(3, 3, activation="relu")
    x = rng.standard_normal((2, 6, 6, 2)).astype(np.float32)
    y = layer(x, training=True)
    layer.trainable = False
    backprop(layer, np.ones_like(y))
    assert layer.kernel.grad is None and layer.bias.grad is None
    layer.trainable = True
    assert backprop(layer, np.ones_like(y), need_dx=False) is None
    assert layer.kernel.grad.shape == (3, 3, 2, 3)


def test_custom_activation_without_gradient_runs_forward():
    layer = layers.Conv1D(2, 3, activation=lambda z: z * 2)
    lin = layers.Conv1D(2, 3)
    x = np.random.default_rng(3).standard_normal((2, 6, 3)).astype(np.float32)
    y = layer(x)
    lin(x)
    lin.set_weights(layer.get_weights())
    np.testing.assert_allclose(y, 2 * lin(x), rtol=1e-6)
    with pytest.raises(NotImplementedError, match="gradient"):
        backprop(layer, np.ones_like(y))


def test_get_config_has_keras_keys_and_round_trips():
    conv = layers.Conv2D(4, 3, padding="same", activation="relu", name="c")
    keys = {"name", "trainable", "dtype", "filters", "kernel_size", "strides", "padding",
            "data_format", "dilation_rate", "groups", "activation", "use_bias",
            "kernel_initializer", "bias_initializer", "kernel_regularizer", "bias_regularizer",
            "activity_regularizer", "kernel_constraint", "bias_constraint"}
    cfg = conv.get_config()
    assert keys <= set(cfg)
    assert cfg["kernel_size"] == (3, 3) and cfg["strides"] == (1, 1)
    assert cfg["activation"] == "relu" and cfg["padding"] == "same"
    clone = layers.Conv2D.from_config(cfg)
    assert clone.get_config() == cfg
    convt = layers.Conv2DTranspose(4, 3, strides=2, output_padding=1)
    cfgt = convt.get_config()
    assert (keys - {"groups"}) | {"output_padding"} <= set(cfgt) and "groups" not in cfgt
    assert cfgt["output_padding"] == (1, 1)
    assert layers.Conv2DTranspose.from_config(cfgt).output_padding == (1, 1)


def test_default_names_are_keras():
    from fastnet import backend
    backend.clear_session()
    assert layers.Conv2D(1, 1).name == "conv2d"
    assert layers.Conv2D(1, 1).name == "conv2d_1"
    assert layers.Conv2DTranspose(1, 1).name == "conv2d_transpose"
    assert layers.Conv1D(1, 1).name == "conv1d"


# ------------------------------------------------------------------ bad input

def test_kernel_larger_than_valid_input_names_layer_and_sizes():
    layer = layers.Conv2D(4, (5, 5), name="big_kernel")
    with pytest.raises(ValueError) as e:
        layer(np.zeros((2, 3, 4, 1)))
    msg = str(e.value)
    assert "big_kernel" in msg and "(5, 5)" in msg and "(3, 4)" in msg
    with pytest.raises(ValueError, match=r"big_kernel.*\(5, 5\).*\(3, 4\)"):
        layer.compute_output_shape((None, 3, 4, 1))
    dil = layers.Conv1D(2, 3, dilation_rate=4, name="dil")
    with pytest.raises(ValueError, match=r"dil.*\(3,\).*dilated to \(9,\).*\(8,\)"):
        dil(np.zeros((1, 8, 1)))


def test_conv2d_rank3_input_says_what_it_expects():
    layer = layers.Conv2D(4, 3, name="img")
    with pytest.raises(ValueError) as e:
        layer(np.zeros((2, 28, 28)))
    msg = str(e.value)
    assert "img" in msg and "(batch, rows, cols, channels)" in msg and "(2, 28, 28)" in msg
    with pytest.raises(ValueError, match=r"\(batch, steps, channels\)"):
        layers.Conv1D(4, 3)(np.zeros((2, 5, 5, 1)))


def test_changed_channels_are_refused():
    layer = layers.Conv2D(4, 3, name="c3")
    layer(np.zeros((1, 5, 5, 3)))
    with pytest.raises(ValueError, match=r"c3.*\(1, 5, 5, 2\)"):
        layer(np.zeros((1, 5, 5, 2)))


@pytest.mark.parametrize("cls", ["Conv1D", "Conv2D", "Conv2DTranspose"])
def test_strides_with_dilation_refused(cls):
    with pytest.raises(ValueError, match=r"strides > 1.*dilation_rate > 1"):
        getattr(layers, cls)(4, 3, strides=2, dilation_rate=2)


def test_output_padding_must_be_smaller_than_strides():
    with pytest.raises(ValueError, match=r"output_padding.*smaller than.*strides.*\(2, 2\).*\(2, 2\)"):
        layers.Conv2DTranspose(4, 3, strides=2, output_padding=2)
    with pytest.raises(ValueError, match="output_padding"):
        layers.Conv2DTranspose(4, 3, strides=(2, 1), output_padding=(1, 1))


@pytest.mark.parametrize("kwargs,match", [
    (dict(filters=0, kernel_size=3), "filters"),
    (dict(filters=4, kernel_size=0), "kernel_size"),
    (dict(filters=4, kernel_size=(3, 3, 3)), "kernel_size"),
    (dict(filters=4, kernel_size=3, padding="causal"), r"padding.*\['valid', 'same'\]"),
    (dict(filters=4, kernel_size=3, padding="full"), "padding"),
    (dict(filters=4, kernel_size=3, data_format="nhwc"), "data_format"),
    (dict(filters=4, kernel_size=3, activation="nope"), "nope"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        layers.Conv2D(**kwargs)


def test_groups_that_do_not_divide_filters_or_channels_are_refused_clearly():
    with pytest.raises(ValueError, match=r"of Conv2D must be divisible by groups, received filters=4, groups=3"):
        layers.Conv2D(4, 3, groups=3)
    with pytest.raises(ValueError, match=r"input has 5 channels, which groups=2 does not divide"):
        layers.Conv2D(4, 3, groups=2)(np.zeros((1, 6, 6, 5), np.float32))
