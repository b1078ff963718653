"""fastnet._kernels.normalization_extra against its numpy twin: RMS, unit (L2) and group
normalisation, forward and backward, float32 and float64, 1 and 2 threads."""
import numpy as np
import pytest

from fastnet._kernels import normalization_extra as K
from fastnet._reference import normalization_extra as ref


def _tol(dtype):
    return (1e-5, 1e-5) if dtype == np.float32 else (1e-12, 1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows,ch", [(5, 7), (3000, 32)])
@pytest.mark.parametrize("with_scale", [True, False])
def test_rms_matches_twin(dtype, rows, ch, with_scale, n_threads, rng):
    x = (rng.standard_normal((rows, ch)) * 2).astype(dtype)
    scale = rng.standard_normal(ch).astype(dtype) if with_scale else None
    y, inv = np.empty_like(x), np.empty(rows, dtype)
    K.rms_forward(x, scale, y, inv, 1e-6, n_threads)
    wy, winv = ref.rms_forward(x, scale, 1e-6)
    rtol, atol = _tol(dtype)
    np.testing.assert_allclose(y, wy, rtol=rtol, atol=atol)
    np.testing.assert_allclose(inv, winv, rtol=rtol, atol=atol)
    dy = rng.standard_normal(x.shape).astype(dtype)
    dx, ds = np.full_like(x, np.nan), np.full(ch, np.nan, dtype)
    K.rms_backward(dy, x, scale, inv, dx, ds, n_threads)
    wdx, wds = ref.rms_backward(dy, x, scale, inv)
    np.testing.assert_allclose(dx, wdx, rtol=rtol * 10, atol=atol * 10)
    np.testing.assert_allclose(ds, wds, rtol=rtol * 10, atol=atol * 10 * np.sqrt(rows))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows,ch", [(6, 5), (3000, 24)])
def test_unit_matches_twin(dtype, rows, ch, n_threads, rng):
    x = rng.standard_normal((rows, ch)).astype(dtype)
    x[0] = 0  # the capped case: norm below epsilon
    y, inv = np.empty_like(x), np.empty(rows, dtype)
    K.unit_forward(x, y, inv, 1e-12, n_threads)
    wy, winv = ref.unit_forward(x, 1e-12)
    rtol, atol = _tol(dtype)
    np.testing.assert_allclose(y, wy, rtol=rtol, atol=atol)
    np.testing.assert_allclose(inv, winv, rtol=rtol)
    dy = rng.standard_normal(x.shape).astype(dtype)
    dx = np.empty_like(x)
    K.unit_backward(dy, x, inv, dx, 1e-12, n_threads)
    np.testing.assert_allclose(dx, ref.unit_backward(dy, x, inv, 1e-12), rtol=rtol * 10, atol=atol * 10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,s,c,groups", [(3, 5, 6, 2), (2, 7, 4, 4), (16, 256, 32, 8)])
@pytest.mark.parametrize("affine", [True, False])
def test_group_matches_twin(dtype, n, s, c, groups, affine, n_threads, rng):
    x = (rng.standard_normal((n, s, c)) * 3 + 1).astype(dtype)
    gamma = rng.standard_normal(c).astype(dtype) if affine else None
    beta = rng.standard_normal(c).astype(dtype) if affine else None
    y, mean, inv = np.empty_like(x), np.empty((n, groups), dtype), np.empty((n, groups), dtype)
    K.group_forward(x, gamma, beta, mean, inv, y, 1e-3, n_threads)
    wy, wm, wi = ref.group_forward(x, gamma, beta, groups, 1e-3)
    rtol, atol = _tol(dtype)
    np.testing.assert_allclose(y, wy, rtol=rtol * 10, atol=atol * 10)
    np.testing.assert_allclose(mean, wm, rtol=rtol, atol=atol)
    np.testing.assert_allclose(inv, wi, rtol=rtol, atol=atol)
    dy = rng.standard_normal(x.shape).astype(dtype)
    dx, dg, db = np.full_like(x, np.nan), np.full(c, np.nan, dtype), np.full(c, np.nan, dtype)
    K.group_backward(dy, x, gamma, mean, inv, dx, dg, db, n_threads)
    wdx, wdg, wdb = ref.group_backward(dy, x, gamma, mean, inv)
    np.testing.assert_allclose(dx, wdx, rtol=rtol * 100, atol=atol * 100)
    big = atol * 100 * np.sqrt(n * s)
    np.testing.assert_allclose(dg, wdg, rtol=rtol * 100, atol=big)
    np.testing.assert_allclose(db, wdb, rtol=rtol * 100, atol=big)


def test_bad_arguments_raise():
    x = np.zeros((2, 3, 6), np.float32)
    m = np.zeros((2, 4), np.float32)
    with pytest.raises(ValueError, match="4 groups do not divide 6 channels"):
        K.group_forward(x, None, None, m, m, x.copy(), 1e-3, 1)
    with pytest.raises(ValueError, match="scale has 3 values, expected 6"):
        K.rms_forward(x[0], np.ones(3, np.float32), x[0].copy(), np.zeros(3, np.float32), 1e-6, 1)
