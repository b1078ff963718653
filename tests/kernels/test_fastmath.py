"""The one float32 exp / sigmoid / tanh of the kernels (fastnet/_kernels/_fastmath.h),
measured against float64 through both kernels that use it: the activations and the
recurrent layers' gate loops."""
import numpy as np
import pytest

from fastnet._kernels import _activations as A
from fastnet._kernels import recurrent as R

FLT_MIN = float(np.finfo(np.float32).tiny)
FLT_MAX = float(np.finfo(np.float32).max)
# Largest error in float32 ulps over the float range (the header states these).
ULPS = {"exp": 1.5, "sigmoid": 3.0, "tanh": 2.0}
REF = {"exp": np.exp, "sigmoid": lambda z: 1 / (1 + np.exp(-z)), "tanh": np.tanh}
CODES = {"sigmoid": 2, "tanh": 3, "exp": 15}


def _grid():
    return np.concatenate([np.linspace(-100, 100, 400001), np.logspace(-30, 2, 20001),
                           -np.logspace(-30, 2, 20001), [0.0, 0.625, -0.625, -87.33654, 88.72283,
                                                         np.log(FLT_MIN), np.log(FLT_MAX)]]).astype(np.float32)


def _activation_kernel(name, z):
    y = np.empty_like(z)
    A.forward(CODES[name], z.reshape(1, -1), y.reshape(1, -1), 0.0, 1)
    return y


def _gate_kernel(name, z):
    y = np.empty_like(z)
    R.fast_activation(CODES[name], z, y)
    return y


def _ulps(y, want):
    with np.errstate(over="ignore"):  # spacing at FLT_MAX (outside the ranges compared)
        ulp = np.spacing(np.minimum(np.abs(want), FLT_MAX).astype(np.float32)).astype(np.float64)
    return np.abs(y.astype(np.float64) - want) / ulp


@pytest.mark.parametrize("name", ["exp", "sigmoid", "tanh"])
def test_activation_kernel_is_float32_accurate(name):
    z = _grid()
    y = _activation_kernel(name, z)
    want = REF[name](z.astype(np.float64))
    normal = (np.abs(want) >= FLT_MIN) & (np.abs(want) <= FLT_MAX)
    assert _ulps(y, want)[normal].max() <= ULPS[name]
    assert np.all(np.isfinite(y))


@pytest.mark.parametrize("name", ["sigmoid", "tanh"])
def test_gate_loops_use_the_same_accurate_functions(name):
    z = _grid()
    y = _gate_kernel(name, z)
    want = REF[name](z.astype(np.float64))
    normal = np.abs(want) >= FLT_MIN
    assert _ulps(y, want)[normal].max() <= ULPS[name]
    assert np.all(np.isfinite(y)) and np.all(np.abs(y) <= 1)
    # one implementation: the two kernels differ at most by FMA contraction (a rounding)
    other = _activation_kernel(name, z)
    assert _ulps(y, other.astype(np.float64))[normal].max() <= 2


def test_exp_ends_flush_to_zero_and_saturate():
    z = np.array([-np.inf, -1000, -88, -87.4, np.log(FLT_MIN) * 1.0001, 88.8, 1000, np.inf],
                 np.float32)
    y = _activation_kernel("exp", z)
    np.testing.assert_array_equal(y[:5], 0.0)
    # above ln FLT_MAX: the value at the clamp (88.72283), finite, within 1e-5 of FLT_MAX
    top = _activation_kernel("exp", np.array([88.72283], np.float32))[0]
    np.testing.assert_array_equal(y[5:], top)
    assert np.isfinite(top) and abs(top / FLT_MAX - 1) < 1e-5
    # from the smallest normal result up (the lower clamp, -87.33654), still within an ulp
    z = np.float32(-87.33654) + np.arange(0, 64, dtype=np.float32) * np.float32(1e-3)
    want = np.exp(z.astype(np.float64))
    assert _ulps(_activation_kernel("exp", z), want).max() <= 1.0


def test_tanh_and_sigmoid_saturate_exactly():
    z = np.array([-1e30, -200, -50, 50, 200, 1e30], np.float32)
    np.testing.assert_array_equal(_gate_kernel("tanh", z), [-1, -1, -1, 1, 1, 1])
    np.testing.assert_array_equal(_gate_kernel("sigmoid", z[3:]), [1, 1, 1])
    assert np.all(_gate_kernel("sigmoid", z[:3]) < 1e-21)
