"""Noise/dropout layers (training-only, seeded), ActivityRegularization, RepeatVector,
Permute, Masking and Identity.

Keras parity (float32, rtol 1e-4 / atol 1e-5): inference outputs and gradients of the noise
layers (the identity), and everything of the shape layers and ActivityRegularization (its
penalty included). Training draws differ from Keras's generator by design, so they are
checked by their properties: what is dropped, the scale, moments, seeding.
"""
import numpy as np
import pytest
from v2_helpers import case_names, check_gradients, check_keras_case, run_backward, run_forward

from fastnet import layers
from fastnet import random as fn_random
from fastnet.layers.regularization import SELU_ALPHA, SELU_SCALE

CASES = case_names(["spatialdropout", "gaussian", "alphadropout", "activityreg", "repeatvector", "permute",
                    "masking", "identity"])


def test_cases_present():
    assert len(CASES) == 12


@pytest.mark.parametrize("name", CASES)
def test_matches_keras(name):
    check_keras_case(name)


@pytest.mark.parametrize("cls,shape,axes", [
    (layers.SpatialDropout1D, (64, 5, 32), (1,)),
    (layers.SpatialDropout2D, (32, 4, 3, 32), (1, 2)),
    (layers.SpatialDropout3D, (16, 2, 3, 2, 32), (1, 2, 3)),
])
def test_spatial_dropout_drops_whole_maps(cls, shape, axes):
    layer = cls(0.4, seed=7)
    x = np.random.default_rng(0).uniform(1, 2, shape).astype(np.float32)
    y, ctx = run_forward(layer, x, training=True)
    kept = y != 0
    # One decision per (sample, channel): every position of a map agrees.
    assert np.all(kept == kept.any(axis=axes, keepdims=True))
    frac = 1 - kept.any(axis=axes).mean()
    assert 0.3 < frac < 0.5
    np.testing.assert_allclose(y[kept], x[kept] / 0.6, rtol=1e-6)
    dy = np.ones_like(x)
    np.testing.assert_allclose(run_backward(layer, ctx, dy), np.where(kept, 1 / 0.6, 0), rtol=1e-6)


def test_spatial_dropout_channels_first():
    layer = layers.SpatialDropout2D(0.5, data_format="channels_first", seed=3)
    y, _ = run_forward(layer, np.ones((8, 16, 3, 3), np.float32), training=True)
    kept = y != 0
    assert np.all(kept == kept[:, :, :1, :1])


def test_seeded_layers_repeat_and_vary():
    x = np.ones((4, 6), np.float32)
    a, b = layers.GaussianNoise(1.0, seed=11), layers.GaussianNoise(1.0, seed=11)
    ya1, yb1 = run_forward(a, x, training=True)[0], run_forward(b, x, training=True)[0]
    np.testing.assert_array_equal(ya1, yb1)  # same seed, same draws
    ya2 = run_forward(a, x, training=True)[0]
    assert not np.array_equal(ya1, ya2)  # a new draw on every call
    fn_random.set_seed(5)
    u1 = run_forward(layers.GaussianDropout(0.3), x, training=True)[0]
    fn_random.set_seed(5)
    u2 = run_forward(layers.GaussianDropout(0.3), x, training=True)[0]
    np.testing.assert_array_equal(u1, u2)  # unseeded layers follow fastnet.random.set_seed


@pytest.mark.parametrize("layer", [layers.GaussianNoise(0.5, seed=1), layers.GaussianDropout(0.5, seed=1),
                                   layers.AlphaDropout(0.5, seed=1), layers.SpatialDropout1D(0.5, seed=1)])
def test_identity_at_inference(layer):
    x = np.random.default_rng(0).standard_normal((3, 4, 5)).astype(np.float32)
    y, ctx = run_forward(layer, x, training=False)
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(run_backward(layer, ctx, x), x)


def test_gaussian_noise_and_dropout_moments():
    x = np.full((200, 500), 2.0, np.float32)
    y, ctx = run_forward(layers.GaussianNoise(0.5, seed=2), x, training=True)
    assert abs((y - x).mean()) < 0.01 and abs((y - x).std() - 0.5) < 0.01
    np.testing.assert_array_equal(run_backward(layers.GaussianNoise(0.5), ctx, x), x)
    layer = layers.GaussianDropout(0.2, seed=2)
    y, ctx = run_forward(layer, x, training=True)
    noise = y / x
    assert abs(noise.mean() - 1) < 0.01 and abs(noise.std() - np.sqrt(0.2 / 0.8)) < 0.01
    np.testing.assert_allclose(run_backward(layer, ctx, np.ones_like(x)), noise, rtol=1e-6)


def test_alpha_dropout_values_and_moments():
    rate = 0.2
    layer = layers.AlphaDropout(rate, seed=4)
    x = np.random.default_rng(1).standard_normal((400, 500)).astype(np.float32)
    y, ctx = run_forward(layer, x, training=True)
    alpha_p = -SELU_ALPHA * SELU_SCALE
    a = ((1 - rate) * (1 + rate * alpha_p ** 2)) ** -0.5
    b = -a * alpha_p * rate
    # The gradient is a where kept, 0 where dropped: it tells the mask the output must agree with.
    dx = run_backward(layer, ctx, np.ones_like(x))
    dropped = dx == 0
    np.testing.assert_allclose(dx[~dropped], a, rtol=1e-6)
    np.testing.assert_allclose(y, np.where(dropped, a * alpha_p + b, a * x + b), rtol=1e-5, atol=1e-6)
    assert abs(dropped.mean() - rate) < 0.01
    # Zero mean, unit variance inputs keep (about) zero mean and unit variance.
    assert abs(y.mean()) < 0.02 and abs(y.var() - 1) < 0.03


def test_alpha_dropout_noise_shape():
    y, _ = run_forward(layers.AlphaDropout(0.5, noise_shape=(None, 1, 4), seed=0),
                       np.random.default_rng(0).standard_normal((6, 5, 4)).astype(np.float32), training=True)
    assert y.shape == (6, 5, 4)
    with pytest.raises(ValueError, match="noise_shape"):
        run_forward(layers.AlphaDropout(0.5, noise_shape=(None, 4)), np.zeros((2, 3, 4), np.float32), training=True)


@pytest.mark.parametrize("make,shape", [
    (lambda: layers.ActivityRegularization(l1=0.3, l2=0.2, dtype="float64"), (3, 4)),
    (lambda: layers.RepeatVector(3, dtype="float64"), (2, 4)),
    (lambda: layers.Permute((3, 1, 2), dtype="float64"), (2, 3, 4, 2)),
    (lambda: layers.Masking(dtype="float64"), (3, 4, 2)),
])
def test_gradients_finite_differences(make, shape):
    layer = make()
    x = np.random.default_rng(6).standard_normal(shape) + 0.1
    if isinstance(layer, layers.ActivityRegularization):
        # d/dx of sum(y * u) + penalty: compare against the penalty included.
        rng = np.random.default_rng(0)
        y, ctx = run_forward(layer, x)
        u = rng.standard_normal(y.shape)
        dx = run_backward(layer, ctx, u)
        eps = 1e-6
        num = np.zeros_like(x)
        for i in np.ndindex(x.shape):
            xp, xm = x.copy(), x.copy()
            xp[i] += eps
            xm[i] -= eps
            fp = float(np.sum(xp * u)) + layer.penalty(xp)
            fm = float(np.sum(xm * u)) + layer.penalty(xm)
            num[i] = (fp - fm) / (2 * eps)
        np.testing.assert_allclose(dx, num, rtol=1e-6, atol=1e-8)
    else:
        # (Masking: no masked step here, where the output jumps as soon as a value leaves the
        # mask value; the masked gradient is checked against Keras's.)
        check_gradients(layer, x, rtol=1e-6, atol=1e-8)


def test_masking_mask_and_output():
    x = np.array([[[1.0, 0.0], [0.0, 0.0], [2.0, 3.0]]], np.float32)
    layer = layers.Masking()
    np.testing.assert_array_equal(layer.compute_mask(x), [[True, False, True]])
    y, _ = run_forward(layer, x)
    np.testing.assert_array_equal(y, x)
    layer = layers.Masking(mask_value=1.0)
    y, _ = run_forward(layer, np.ones((1, 2, 3), np.float32))
    np.testing.assert_array_equal(y, 0)
    np.testing.assert_array_equal(layer.compute_mask(np.ones((1, 2, 3))), [[False, False]])


def test_shapes_configs_errors():
    assert layers.RepeatVector(4).compute_output_shape((None, 7)) == (None, 4, 7)
    assert layers.Permute((2, 1)).compute_output_shape((None, 3, 5)) == (None, 5, 3)
    assert layers.Permute((2, 1)).get_config()["dims"] == (2, 1)
    assert layers.RepeatVector(2).get_config()["n"] == 2
    assert layers.Masking(0.5).get_config()["mask_value"] == 0.5
    assert layers.SpatialDropout2D(0.3, seed=2).get_config()["data_format"] == "channels_last"
    assert "data_format" not in layers.SpatialDropout1D(0.3).get_config()
    assert layers.AlphaDropout(0.1, noise_shape=(None, 1)).get_config()["noise_shape"] == [None, 1]
    assert layers.ActivityRegularization(0.1, 0.2).get_config()["l2"] == 0.2
    assert layers.Identity().compute_output_shape((None, 3)) == (None, 3)
    with pytest.raises(ValueError, match="consecutive and start from 1"):
        layers.Permute((0, 1))
    with pytest.raises(TypeError, match="integer value for `n`"):
        layers.RepeatVector(2.0)
    with pytest.raises(ValueError, match="positive integer"):
        layers.RepeatVector(0)
    with pytest.raises(ValueError, match=r"rate.*\[0, 1\)"):
        layers.SpatialDropout2D(1.0)
    with pytest.raises(ValueError, match="stddev"):
        layers.GaussianNoise(-1.0)
    with pytest.raises(ValueError, match="l1"):
        layers.ActivityRegularization(l1=-0.1)
    with pytest.raises(ValueError, match="rank 3"):
        run_forward(layers.SpatialDropout1D(0.2), np.zeros((2, 3), np.float32))
