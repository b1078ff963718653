"""Depthwise, separable, grouped and 3-D convolutions and 3-D pooling: Keras parity,
finite-difference gradients, per-call state, configs and error messages.

Keras parity (tests/data/keras_layers_extra, written by tools/gen_layers_reference_extra.py)
is checked in float32: outputs to rtol 1e-4 / atol 1e-5, gradients to rtol 1e-4 / atol 1e-4
(weight gradients sum over every output position). Finite differences in float64 to
rtol 1e-5 / atol 1e-7.
"""
import numpy as np
import pytest
from v2_helpers import case_names, check_gradients, check_keras_case, run_backward, run_forward

from fastnet import layers
from fastnet.layers.convolutional_variants import _GroupedConv

CONV_CASES = case_names(["dw", "sep", "conv3d", "conv2d_groups", "conv1d_groups"])
POOL_CASES = case_names(["maxpool3d", "avgpool3d", "gap3d", "gmp3d"])


def test_cases_present():
    assert len(CONV_CASES) >= 20 and len(POOL_CASES) >= 10


@pytest.mark.parametrize("name", CONV_CASES)
def test_conv_matches_keras(name):
    check_keras_case(name)


@pytest.mark.parametrize("name", POOL_CASES)
def test_pooling_matches_keras(name):
    check_keras_case(name)


def _rand_weights(layer, rng):
    for v in layer.weights:
        v.value[...] = rng.standard_normal(v.shape) * 0.5


@pytest.mark.parametrize("make,shape", [
    (lambda: layers.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2, activation="tanh",
                                    dtype="float64"), (2, 5, 6, 3)),
    (lambda: layers.DepthwiseConv2D((2, 3), dilation_rate=2, data_format="channels_first", dtype="float64"),
     (2, 2, 6, 7)),
    (lambda: layers.DepthwiseConv1D(3, depth_multiplier=3, padding="same", dtype="float64"), (2, 7, 2)),
    (lambda: layers.SeparableConv2D(4, 3, strides=(2, 1), depth_multiplier=2, activation="sigmoid",
                                    dtype="float64"), (2, 7, 6, 3)),
    (lambda: layers.SeparableConv1D(3, 3, dilation_rate=2, padding="same", data_format="channels_first",
                                    dtype="float64"), (2, 3, 8)),
    (lambda: layers.Conv3D(4, (2, 3, 2), strides=(1, 2, 1), padding="same", groups=2, activation="tanh",
                           dtype="float64"), (2, 3, 5, 4, 4)),
    (lambda: layers.Conv3D(2, 2, dilation_rate=2, data_format="channels_first", dtype="float64"), (1, 3, 5, 5, 4)),
    (lambda: _GroupedConv(2, 6, 3, groups=3, padding="same", dtype="float64"), (2, 5, 4, 6)),
    (lambda: _GroupedConv(1, 4, 3, groups=2, padding="causal", dtype="float64"), (2, 7, 4)),
])
def test_conv_gradients_finite_differences(make, shape):
    layer = make()
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape)
    run_forward(layer, x)
    _rand_weights(layer, rng)
    check_gradients(layer, x, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("make,shape", [
    (lambda: layers.MaxPooling3D(2, strides=1, padding="same", dtype="float64"), (2, 3, 4, 3, 2)),
    (lambda: layers.MaxPooling3D((2, 3, 2), data_format="channels_first", dtype="float64"), (2, 2, 4, 6, 4)),
    (lambda: layers.AveragePooling3D(3, strides=2, padding="same", dtype="float64"), (2, 4, 5, 4, 2)),
    (lambda: layers.GlobalAveragePooling3D(keepdims=True, dtype="float64"), (2, 2, 3, 2, 3)),
    (lambda: layers.GlobalMaxPooling3D(data_format="channels_first", dtype="float64"), (2, 3, 2, 3, 2)),
])
def test_pooling_gradients_finite_differences(make, shape):
    check_gradients(make(), np.random.default_rng(4).standard_normal(shape), rtol=1e-5, atol=1e-7)


def test_per_call_state_two_calls():
    """Two recorded calls of one layer keep separate records: each backward matches its own input."""
    rng = np.random.default_rng(0)
    layer = layers.SeparableConv2D(3, 3, padding="same", dtype="float64")
    x1, x2 = rng.standard_normal((2, 5, 5, 2)), rng.standard_normal((1, 4, 6, 2))
    _, c1 = run_forward(layer, x1)
    _, c2 = run_forward(layer, x2)
    u1 = rng.standard_normal((2, 5, 5, 3))
    dx1 = run_backward(layer, c1, u1)
    g1 = [v.grad.copy() for v in layer.trainable_weights]
    fresh = layers.SeparableConv2D(3, 3, padding="same", dtype="float64")
    run_forward(fresh, x1)
    fresh.set_weights(layer.get_weights())
    _, c = run_forward(fresh, x1)
    np.testing.assert_allclose(dx1, run_backward(fresh, c, u1), rtol=1e-12)
    for a, v in zip(g1, fresh.trainable_weights):
        np.testing.assert_allclose(a, v.grad, rtol=1e-12)
    assert c2.x5.shape == (1, 1, 4, 6, 2)


def test_need_dx_false_still_fills_weight_grads():
    rng = np.random.default_rng(1)
    layer = layers.DepthwiseConv2D(3, dtype="float64")
    x = rng.standard_normal((2, 5, 5, 2))
    y, ctx = run_forward(layer, x)
    u = rng.standard_normal(y.shape)
    assert run_backward(layer, ctx, u, need_dx=False) is None
    g = layer.kernel.grad.copy()
    _, ctx = run_forward(layer, x)
    run_backward(layer, ctx, u)
    np.testing.assert_allclose(g, layer.kernel.grad)


def test_float64_gradients_keep_dtype():
    layer = layers.Conv3D(2, 2, dtype="float64")
    y, ctx = run_forward(layer, np.ones((1, 3, 3, 3, 2)))
    dx = run_backward(layer, ctx, np.ones_like(y))
    assert y.dtype == dx.dtype == layer.kernel.grad.dtype == np.float64


def test_weights_layout_and_order():
    sep = layers.SeparableConv2D(8, (3, 2), depth_multiplier=2)
    run_forward(sep, np.zeros((1, 6, 6, 3), np.float32))
    assert [(v.name, v.shape) for v in sep.weights] == [
        ("depthwise_kernel", (3, 2, 3, 2)), ("pointwise_kernel", (1, 1, 6, 8)), ("bias", (8,))]
    dw = layers.DepthwiseConv1D(3, depth_multiplier=4, use_bias=True)
    run_forward(dw, np.zeros((1, 6, 2), np.float32))
    assert [(v.name, v.shape) for v in dw.weights] == [("kernel", (3, 2, 4)), ("bias", (8,))]
    c3 = layers.Conv3D(6, 2, groups=3)
    run_forward(c3, np.zeros((1, 3, 3, 3, 9), np.float32))
    assert [(v.name, v.shape) for v in c3.weights] == [("kernel", (2, 2, 2, 3, 6)), ("bias", (6,))]
    assert sep.count_params() == 3 * 2 * 3 * 2 + 6 * 8 + 8


def test_configs_have_keras_keys_and_round_trip():
    sep = layers.SeparableConv2D(8, 3, strides=2, padding="same", depth_multiplier=2, activation="relu")
    cfg = sep.get_config()
    for key in ("filters", "kernel_size", "strides", "padding", "data_format", "dilation_rate", "depth_multiplier",
                "activation", "use_bias", "depthwise_initializer", "pointwise_initializer", "bias_initializer",
                "depthwise_regularizer", "pointwise_regularizer", "bias_regularizer", "activity_regularizer",
                "depthwise_constraint", "pointwise_constraint", "bias_constraint"):
        assert key in cfg, key
    again = layers.SeparableConv2D.from_config(cfg)
    assert again.get_config() == cfg
    dcfg = layers.DepthwiseConv2D(3, depth_multiplier=2).get_config()
    assert dcfg["depth_multiplier"] == 2 and "depthwise_initializer" in dcfg and "filters" not in dcfg
    ccfg = layers.Conv3D(4, 3, groups=2).get_config()
    assert ccfg["groups"] == 2 and ccfg["kernel_size"] == (3, 3, 3)
    pcfg = layers.MaxPooling3D(2).get_config()
    assert pcfg["pool_size"] == (2, 2, 2) and pcfg["strides"] == (2, 2, 2) and pcfg["padding"] == "valid"
    assert layers.GlobalAveragePooling3D(keepdims=True).get_config()["keepdims"] is True


def test_inference_call_matches_recorded_forward():
    rng = np.random.default_rng(2)
    layer = layers.SeparableConv1D(4, 3, padding="same", activation="relu")
    x = rng.standard_normal((2, 6, 3)).astype(np.float32)
    y, _ = run_forward(layer, x)
    np.testing.assert_array_equal(layer(x), y)


def test_errors_name_layer_and_values():
    with pytest.raises(ValueError, match="depth_multiplier"):
        layers.DepthwiseConv2D(3, depth_multiplier=0)
    with pytest.raises(ValueError, match=r"rank 4 \(batch, rows, cols, channels\).*\((None|2), 5, 5\)"):
        run_forward(layers.DepthwiseConv2D(3), np.zeros((2, 5, 5), np.float32))
    with pytest.raises(ValueError, match="larger than the input's spatial size"):
        run_forward(layers.SeparableConv2D(2, 5), np.zeros((1, 3, 3, 1), np.float32))
    with pytest.raises(ValueError, match="divisible by the number of groups"):
        layers.Conv3D(5, 2, groups=2)
    with pytest.raises(ValueError, match=r"input channels \(3\) must be divisible by groups=2"):
        run_forward(layers.Conv3D(4, 2, groups=2), np.zeros((1, 3, 3, 3, 3), np.float32))
    with pytest.raises(ValueError, match="padding"):
        layers.SeparableConv2D(2, 3, padding="causal")
    with pytest.raises(ValueError, match="pool size"):
        run_forward(layers.MaxPooling3D(3), np.zeros((1, 2, 4, 4, 1), np.float32))
    with pytest.raises(ValueError, match="rank 5"):
        run_forward(layers.GlobalMaxPooling3D(), np.zeros((1, 4, 4, 1), np.float32))


def test_grouped_backward_honours_folded_relu_derivative():
    """With ``ctx.act_grad_in_dy`` (a max pooling applied the ReLU's derivative) the grouped
    path takes dy as the pre-activation gradient, as BaseConv does."""
    rng = np.random.default_rng(7)
    relu = _GroupedConv(2, 4, 3, groups=2, activation="relu", dtype="float64")
    lin = _GroupedConv(2, 4, 3, groups=2, dtype="float64")
    x = rng.standard_normal((2, 5, 5, 4))
    run_forward(relu, x)
    run_forward(lin, x)
    lin.set_weights(relu.get_weights())
    y, ctx = run_forward(relu, x)
    dy = rng.standard_normal(y.shape) * (y > 0)
    ctx.act_grad_in_dy = True
    dx = run_backward(relu, ctx, dy)
    _, c2 = run_forward(lin, x)
    np.testing.assert_allclose(dx, run_backward(lin, c2, dy), rtol=1e-12)
