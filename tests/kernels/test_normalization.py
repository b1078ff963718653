import numpy as np
import pytest

from fastnet._kernels import normalization as K
from fastnet._reference import core as ref


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows,ch", [(8, 5), (4096, 48)])
def test_batchnorm_train_matches_twin(dtype, rows, ch, n_threads, rng):
    x = (rng.standard_normal((rows, ch)) * 3 + 1).astype(dtype)
    gamma = rng.standard_normal(ch).astype(dtype)
    beta = rng.standard_normal(ch).astype(dtype)
    mean, var, invstd = (np.empty(ch, dtype) for _ in range(3))
    y = np.empty_like(x)
    K.forward_train(x, gamma, beta, mean, var, invstd, y, 1e-3, n_threads)
    x64 = x.astype(np.float64)
    want_y, want_m, want_v = ref.batchnorm_forward_train(x64, gamma.astype(np.float64), beta.astype(np.float64), 1e-3)
    tol = 1e-5 if dtype == np.float32 else 1e-11
    np.testing.assert_allclose(y, want_y, rtol=tol * 10, atol=tol * 10)
    np.testing.assert_allclose(mean, want_m, rtol=tol, atol=tol)
    np.testing.assert_allclose(var, want_v, rtol=tol, atol=tol)
    dy = rng.standard_normal(x.shape).astype(dtype)
    dx, dg, db = np.empty_like(x), np.empty_like(gamma), np.empty_like(beta)
    K.backward_train(dy, x, mean, invstd, gamma, dx, dg, db, n_threads)
    wdx, wdg, wdb = ref.batchnorm_backward_train(dy.astype(np.float64), x64, gamma.astype(np.float64), 1e-3)
    np.testing.assert_allclose(dx, wdx, rtol=tol * 100, atol=tol * 100)
    np.testing.assert_allclose(dg, wdg, rtol=tol * 100, atol=tol * 100 * np.sqrt(rows))
    np.testing.assert_allclose(db, wdb, rtol=tol * 100, atol=tol * 100 * np.sqrt(rows))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batchnorm_infer_matches_twin(dtype, n_threads, rng):
    rows, ch = 2000, 16
    x = rng.standard_normal((rows, ch)).astype(dtype)
    gamma, beta = rng.standard_normal(ch).astype(dtype), rng.standard_normal(ch).astype(dtype)
    mm, mv = rng.standard_normal(ch).astype(dtype), rng.uniform(0.5, 2, ch).astype(dtype)
    invstd = (1 / np.sqrt(mv + 1e-3)).astype(dtype)
    y = np.empty_like(x)
    K.forward_infer(x, (gamma * invstd).astype(dtype), (beta - mm * gamma * invstd).astype(dtype), y, n_threads)
    f64 = lambda a: a.astype(np.float64)  # noqa: E731
    want = ref.batchnorm_forward_infer(f64(x), f64(gamma), f64(beta), f64(mm), f64(mv), 1e-3)
    tol = 1e-5 if dtype == np.float32 else 1e-11
    np.testing.assert_allclose(y, want, rtol=tol, atol=tol)
    dy = rng.standard_normal(x.shape).astype(dtype)
    dx, dg, db = np.empty_like(x), np.empty_like(gamma), np.empty_like(beta)
    K.backward_infer(dy, x, mm, invstd, gamma, dx, dg, db, n_threads)
    wdx, wdg, wdb = ref.batchnorm_backward_infer(f64(dy), f64(x), f64(gamma), f64(mm), f64(mv), 1e-3)
    np.testing.assert_allclose(dx, wdx, rtol=tol, atol=tol)
    np.testing.assert_allclose(dg, wdg, rtol=tol * 100, atol=tol * 100)
    np.testing.assert_allclose(db, wdb, rtol=tol * 100, atol=tol * 100)


def test_batchnorm_empty_training_batch_is_refused():
    x = np.zeros((0, 3), np.float32)
    z = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="at least one row"):
        K.forward_train(x, z, z, z.copy(), z.copy(), z.copy(), x.copy(), 1e-3)
