"""GroupNormalization, RMSNormalization, UnitNormalization: Keras parity (float32, outputs
rtol 1e-4 / atol 1e-5, gradients rtol 1e-4 / atol 1e-4), finite differences (float64,
rtol 1e-5 / atol 1e-7), configs and errors."""
import numpy as np
import pytest
from v2_helpers import case_names, check_gradients, check_keras_case, run_backward, run_forward

from fastnet import layers

CASES = case_names(["groupnorm", "rmsnorm", "unitnorm"])


def test_cases_present():
    assert len(CASES) == 10


@pytest.mark.parametrize("name", CASES)
def test_matches_keras(name):
    check_keras_case(name)


@pytest.mark.parametrize("make,shape", [
    (lambda: layers.GroupNormalization(groups=2, dtype="float64"), (3, 4, 6)),
    (lambda: layers.GroupNormalization(groups=-1, axis=1, dtype="float64"), (2, 3, 5)),
    (lambda: layers.GroupNormalization(groups=2, center=False, dtype="float64"), (2, 2, 3, 4)),
    (lambda: layers.RMSNormalization(dtype="float64"), (4, 5)),
    (lambda: layers.RMSNormalization(axis=[1, 2], epsilon=1e-3, dtype="float64"), (2, 3, 4)),
    (lambda: layers.RMSNormalization(axis=1, dtype="float64"), (2, 4, 3)),
    (lambda: layers.UnitNormalization(dtype="float64"), (4, 5)),
    (lambda: layers.UnitNormalization(axis=[1, 2], dtype="float64"), (2, 3, 4)),
])
def test_gradients_finite_differences(make, shape):
    layer = make()
    rng = np.random.default_rng(5)
    x = rng.standard_normal(shape)
    run_forward(layer, x)
    for v in layer.weights:
        v.value[...] = 1 + 0.5 * rng.standard_normal(v.shape)
    check_gradients(layer, x, rtol=1e-5, atol=1e-7)


def test_group_norm_statistics():
    x = np.random.default_rng(0).standard_normal((2, 7, 8)) * 3 + 1
    y, _ = run_forward(layers.GroupNormalization(groups=4, epsilon=0.0, dtype="float64"), x)
    g = y.reshape(2, 7, 4, 2)
    np.testing.assert_allclose(g.mean(axis=(1, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(g.var(axis=(1, 3)), 1, rtol=1e-10)


def test_rms_and_unit_norm_values():
    x = np.array([[3.0, 4.0], [0.0, 0.0]])
    y, _ = run_forward(layers.UnitNormalization(dtype="float64"), x)
    np.testing.assert_allclose(y, [[0.6, 0.8], [0.0, 0.0]])
    y, _ = run_forward(layers.RMSNormalization(epsilon=0.0, dtype="float64"), np.array([[2.0, -2.0, 2.0, 2.0]]))
    np.testing.assert_allclose(y, [[1.0, -1.0, 1.0, 1.0]])


def test_zero_vector_unit_norm_gradient_is_finite():
    layer = layers.UnitNormalization(dtype="float64")
    y, ctx = run_forward(layer, np.zeros((1, 3)))
    dx = run_backward(layer, ctx, np.ones((1, 3)))
    assert np.all(np.isfinite(dx)) and np.allclose(dx, 1e12)


def test_weights_and_configs():
    gn = layers.GroupNormalization(groups=-1)
    run_forward(gn, np.zeros((2, 3, 4), np.float32))
    assert [(v.name, v.shape) for v in gn.weights] == [("gamma", (4,)), ("beta", (4,))]
    cfg = gn.get_config()
    assert cfg["groups"] == 4  # -1 resolved at build, as Keras does
    for key in ("axis", "epsilon", "center", "scale", "beta_initializer", "gamma_initializer",
                "beta_regularizer", "gamma_regularizer", "beta_constraint", "gamma_constraint"):
        assert key in cfg, key
    assert layers.GroupNormalization.from_config(cfg).get_config() == cfg
    rms = layers.RMSNormalization(axis=[2, 1])
    run_forward(rms, np.ones((2, 3, 4), np.float32))
    assert rms.scale.shape == (3, 4) and rms.get_config()["axis"] == [1, 2]
    assert layers.UnitNormalization(axis=(1, 2)).get_config()["axis"] == [1, 2]


def test_errors():
    with pytest.raises(ValueError, match="groups"):
        layers.GroupNormalization(groups=0)
    with pytest.raises(ValueError, match=r"number of groups \(4\) must divide the number of channels \(6\)"):
        run_forward(layers.GroupNormalization(groups=4), np.zeros((1, 2, 6), np.float32))
    with pytest.raises(ValueError, match=r"cannot be more than the number of channels \(2\)"):
        run_forward(layers.GroupNormalization(groups=4), np.zeros((1, 2, 2), np.float32))
    with pytest.raises(ValueError, match="axis 3 is out of bounds for input of rank 3"):
        run_forward(layers.RMSNormalization(axis=3), np.zeros((1, 2, 2), np.float32))
    with pytest.raises(TypeError, match="axis"):
        layers.UnitNormalization(axis="last")
