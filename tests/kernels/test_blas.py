import numpy as np
import pytest

from fastnet._kernels import _blas


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)])
@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (7, 5, 3), (130, 70, 90), (300, 20, 513)])
def test_gemm_matches_numpy(dtype, ta, tb, m, n, k, n_threads, rng):
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
    c = rng.standard_normal((m, n)).astype(dtype)
    want = 0.5 * (a.T if ta else a) @ (b.T if tb else b) + 2.0 * c
    _blas.gemm_py(a, b, c, ta, tb, 0.5, 2.0, n_threads)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(c, want, rtol=tol, atol=tol * 10)


def test_gemm_zero_inner_dimension_scales_c():
    a = np.zeros((3, 0), np.float32)
    b = np.zeros((0, 4), np.float32)
    c = np.ones((3, 4), np.float32)
    _blas.gemm_py(a, b, c, beta=0.5)
    np.testing.assert_array_equal(c, np.full((3, 4), 0.5, np.float32))


def test_gemm_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="shapes do not match"):
        _blas.gemm_py(np.zeros((2, 3)), np.zeros((4, 2)), np.zeros((2, 2)))


def test_parallel_split_equals_single_thread(rng):
    # Splitting C across threads must not change any element beyond rounding.
    a = rng.standard_normal((517, 301)).astype(np.float32)
    b = rng.standard_normal((301, 129)).astype(np.float32)
    c1 = np.zeros((517, 129), np.float32)
    c2 = np.zeros_like(c1)
    _blas.gemm_py(a, b, c1, n_threads=1)
    _blas.gemm_py(a, b, c2, n_threads=2)
    # Each part may be blocked differently, so sums run in another order: the bound is the
    # float32 rounding of a length-K dot product, K * eps * sum |a_ik b_kj| per element.
    bound = a.shape[1] * np.finfo(np.float32).eps * (np.abs(a) @ np.abs(b))
    assert np.all(np.abs(c1 - c2) <= bound)
    assert np.abs(c1 - c2).max() < 1e-3
