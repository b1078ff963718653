"""Compiled pooling kernels against their numpy twins (fastnet/_reference/pooling.py),
in float32 and float64, with 1 and 2 threads."""
import numpy as np
import pytest

from fastnet._kernels import pooling as P
from fastnet._reference import pooling as R
from fastnet.utils.shape_utils import pool_geometry

# (n, h, w, c, pool, strides, padding)
CASES = [
    (2, 7, 5, 3, (2, 2), (2, 2), "valid"),
    (2, 7, 5, 3, (2, 2), (2, 2), "same"),
    (2, 7, 8, 2, (3, 3), (2, 2), "same"),      # overlapping windows
    (2, 7, 8, 2, (3, 3), (1, 1), "valid"),
    (3, 1, 9, 4, (1, 3), (1, 2), "same"),      # 1-D
    (2, 4, 4, 3, (4, 4), (4, 4), "valid"),     # one window per image
    (16, 26, 26, 32, (2, 2), (2, 2), "valid"),  # the MNIST convnet's first pool
    (3, 6, 8, 5, (2, 2), (2, 2), "valid"),      # exact 2x2 tiling
]


def _data(rng, dt, n, h, w, c):
    # Distinct values: a max is never tied, so the gradient is well defined.
    return (rng.permutation(n * h * w * c).reshape(n, h, w, c) / (n * h * w * c)).astype(dt)


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("nt", [1, 2])
@pytest.mark.parametrize("case", CASES)
def test_max_pool(case, nt, dt):
    n, h, w, c, pool, strides, padding = case
    rng = np.random.default_rng(0)
    g = pool_geometry((h, w) if h > 1 else (w,), pool if h > 1 else pool[1:],
                      strides if h > 1 else strides[1:], padding)
    x = _data(rng, dt, n, h, w, c)
    y = np.full((n, g.oh, g.ow, c), np.nan, dt)
    arg = np.empty(y.shape, np.int32)
    P.max_forward(x, y, arg, g, nt)
    y_ref, arg_ref = R.max_forward(x, g)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(arg, arg_ref)
    dy = rng.standard_normal(y.shape).astype(dt)
    dx = np.full_like(x, np.nan)
    P.max_backward(dy, arg, dx, nt)
    want = R.max_backward(dy, x, g)
    np.testing.assert_allclose(dx, want, rtol=1e-6, atol=1e-6)
    # With the geometry (the layer's call): exact 2x2 tilings write windows whole.
    dx2 = np.full_like(x, np.nan)
    P.max_backward(dy, arg, dx2, nt, g)
    np.testing.assert_allclose(dx2, want, rtol=1e-6, atol=1e-6)
    # Without argmax (inference) the output is the same.
    y2 = np.empty_like(y)
    P.max_forward(x, y2, None, g, nt)
    np.testing.assert_array_equal(y2, y)


def test_max_pool_ties_go_to_the_first_position():
    g = pool_geometry((2, 2), (2, 2), (2, 2), "valid")
    x = np.zeros((1, 2, 2, 1), np.float32)
    y = np.empty((1, 1, 1, 1), np.float32)
    arg = np.empty(y.shape, np.int32)
    P.max_forward(x, y, arg, g, 1)
    assert arg.item() == 0


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("nt", [1, 2])
@pytest.mark.parametrize("case", CASES)
def test_average_pool(case, nt, dt):
    n, h, w, c, pool, strides, padding = case
    rng = np.random.default_rng(1)
    g = pool_geometry((h, w) if h > 1 else (w,), pool if h > 1 else pool[1:],
                      strides if h > 1 else strides[1:], padding)
    x = rng.standard_normal((n, h, w, c)).astype(dt)
    y = np.full((n, g.oh, g.ow, c), np.nan, dt)
    P.avg_forward(x, y, g, nt)
    tol = dict(rtol=1e-5, atol=1e-6) if dt == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(y, R.avg_forward(x, g), **tol)
    dy = rng.standard_normal(y.shape).astype(dt)
    dx = np.full_like(x, np.nan)
    P.avg_backward(dy, dx, g, nt)
    np.testing.assert_allclose(dx, R.avg_backward(dy, g, n, c), **tol)


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("nt", [1, 2])
@pytest.mark.parametrize("shape", [(2, 20, 3), (64, 49, 32), (3, 1, 5)])
def test_global_pools(shape, nt, dt):
    rng = np.random.default_rng(2)
    n, s, c = shape
    x = _data(rng, dt, n, 1, s, c).reshape(n, s, c)
    y = np.empty((n, c), dt)
    arg = np.empty((n, c), np.int32)
    P.global_max_forward(x, y, arg, nt)
    y_ref, arg_ref = R.global_max_forward(x)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(arg, arg_ref)
    dy = rng.standard_normal((n, c)).astype(dt)
    dx = np.full_like(x, np.nan)
    P.global_max_backward(dy, arg, dx, nt)
    np.testing.assert_array_equal(dx, R.global_max_backward(dy, x))
    P.global_avg_forward(x, y, nt)
    tol = dict(rtol=1e-5, atol=1e-7) if dt == np.float32 else dict(rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(y, R.global_avg_forward(x), **tol)
    P.global_avg_backward(dy, dx, nt)
    np.testing.assert_allclose(dx, R.global_avg_backward(dy, s), **tol)


def test_pool_kernels_reject_mismatched_buffers():
    g = pool_geometry((4, 4), (2, 2), (2, 2), "valid")
    x = np.zeros((1, 4, 4, 2), np.float32)
    with pytest.raises(ValueError, match="do not match the geometry"):
        P.max_forward(x, np.zeros((1, 3, 2, 2), np.float32), None, g, 1)
    with pytest.raises(ValueError, match="argmax"):
        P.max_forward(x, np.zeros((1, 2, 2, 2), np.float32), np.zeros((1, 2, 2, 1), np.int32), g, 1)
