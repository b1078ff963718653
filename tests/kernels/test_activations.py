import numpy as np
import pytest
from helpers import numeric_grad

from fastnet import activations
from fastnet._kernels import _activations as K
from fastnet._reference import core as ref

NAMES = ["linear", "relu", "sigmoid", "tanh", "softmax", "log_softmax", "elu", "selu",
         "softplus", "softsign", "silu", "gelu", "gelu_tanh", "hard_sigmoid", "hard_silu", "relu6",
         "leaky_relu", "exponential", "mish"]


def _code_alpha(name):
    act = activations._make(name)
    return act.code, (0.2 if name == "leaky_relu" else 1.0 if name == "elu" else 0.0)


def _inputs(rng, dtype, shape=(37, 29)):
    z = rng.standard_normal(shape) * 3
    z[0, :6] = [0.0, -3.0, 3.0, 6.0, -40.0, 40.0]   # kinks and saturation
    return z.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", NAMES)
def test_forward_and_backward_match_twin(name, dtype, n_threads, rng):
    code, alpha = _code_alpha(name)
    z = _inputs(rng, dtype, (300, 120))  # large enough for the parallel path
    if name == "exponential":
        z = np.clip(z, -20, 20)
    y = np.empty_like(z)
    K.forward(code, z, y, alpha, n_threads)
    tol = 2e-6 if dtype == np.float32 else 1e-12
    want = ref.activation(name, z.astype(np.float64), alpha)
    np.testing.assert_allclose(y, want, rtol=tol * 5, atol=tol)
    dy = rng.standard_normal(z.shape).astype(dtype)
    dz = np.empty_like(z)
    K.backward(code, dy, y, z, dz, alpha, n_threads)
    want_dz = ref.activation_grad(name, z.astype(np.float64), dy.astype(np.float64), alpha)
    mask = np.ones(z.shape, bool)
    if name in ("relu", "relu6", "hard_sigmoid", "leaky_relu", "hard_silu"):
        mask = ~np.isin(z, [0.0, 6.0, -3.0, 3.0])  # kinks: one-sided derivatives differ
    np.testing.assert_allclose(dz[mask], want_dz[mask], rtol=tol * 50, atol=tol * 10)


@pytest.mark.parametrize("name", NAMES)
def test_twin_gradients_by_finite_differences(name, rng):
    _, alpha = _code_alpha(name)
    z = rng.standard_normal((3, 5)) * 2
    z[np.abs(z - np.round(z)) < 0.05] += 0.1  # keep away from kinks at integers
    u = rng.standard_normal(z.shape)
    num = numeric_grad(lambda v: float(np.sum(ref.activation(name, v, alpha) * u)), z)
    np.testing.assert_allclose(ref.activation_grad(name, z, u, alpha), num, rtol=1e-6, atol=1e-8)


def test_softmax_rows_sum_to_one_and_survive_large_logits():
    z = np.array([[1000.0, 1000.0, -1000.0], [0.0, 1.0, 2.0]], np.float32)
    y = activations.softmax(z)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(y[0], [0.5, 0.5, 0.0])


def test_public_functions_take_any_shape_and_axis():
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4) - 12
    np.testing.assert_array_equal(activations.relu(x), np.maximum(x, 0))
    s = activations.softmax(x, axis=1)
    np.testing.assert_allclose(s.sum(axis=1), 1.0, rtol=1e-6)


def test_unknown_activation_lists_valid_names():
    with pytest.raises(ValueError, match=r"Unknown activation 'rellu'.*'relu'"):
        activations.get("rellu")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("rows", [3, 5000])   # (5000 x 16: enough to split over threads)
def test_add_relu_is_the_relu_of_the_sum(dtype, threads, rows):
    from fastnet._kernels import _activations as A

    rng = np.random.default_rng(rows)
    a = rng.standard_normal((rows, 16)).astype(dtype)
    b = rng.standard_normal((rows, 16)).astype(dtype)
    a[0, 0], b[1, 1] = np.nan, np.inf
    want = a + b
    want = np.where(want < 0, 0, want)   # NaN passes, as the ReLU kernel's
    y = np.empty_like(a)
    A.add_relu(a, b, y, threads)
    np.testing.assert_array_equal(y, want)
    A.add_relu(a, b, a, threads)         # in place
    np.testing.assert_array_equal(a, want)
    with pytest.raises(ValueError, match="shape"):
        A.add_relu(a, b[:-1], y, threads)
