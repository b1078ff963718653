import numpy as np
import pytest

from fastnet import activations
from fastnet._kernels import dense as K
from fastnet._reference import core as ref

ACTS = ["linear", "relu", "tanh", "softmax", "gelu", "silu"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("act", ACTS)
# "columns": fewer rows than units, so the forward splits units across threads (rows
# for softmax); "head1"/"head10": few units, so dx is the direct loop, in parallel.
# "tall*": many rows for the weights (a Dense on every position of a sequence): float32
# goes through the packed GEMM, the weight gradient split by columns (tall) or by chunks
# of rows (tall_rows, tall_head).
@pytest.mark.parametrize("shape", [(6, 7, 5), (256, 300, 130), (40, 200, 288), (300, 700, 1),
                                   (200, 400, 10), (200, 400, 17), (1200, 32, 192), (1100, 40, 24),
                                   (1600, 16, 10)],
                         ids=["small", "parallel", "columns", "head1", "head10", "head17", "tall",
                              "tall_rows", "tall_head"])
def test_dense_kernel_matches_twin(act, dtype, shape, n_threads, rng):
    n, k, u = shape
    code = activations.get(act).code
    x = rng.standard_normal((n, k)).astype(dtype)
    w = (rng.standard_normal((k, u)) / np.sqrt(k)).astype(dtype)
    b = rng.standard_normal(u).astype(dtype)
    y = np.empty((n, u), dtype)
    z = np.empty((n, u), dtype)
    K.forward(x, w, b, z, y, code, 0.0, n_threads)
    want_y, want_z = ref.dense_forward(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), act)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(y, want_y, rtol=tol, atol=tol)
    np.testing.assert_allclose(z, want_z, rtol=tol, atol=tol)

    dy = rng.standard_normal((n, u)).astype(dtype)
    dz, dw, db, dx = np.empty_like(dy), np.empty_like(w), np.empty_like(b), np.empty_like(x)
    K.backward(dy, x, w, y, z, dz, dw, db, dx, code, 0.0, n_threads)
    want_dx, want_dw, want_db = ref.dense_backward(dy.astype(np.float64), x.astype(np.float64),
                                                   w.astype(np.float64), want_z, act)
    np.testing.assert_allclose(dx, want_dx, rtol=tol * 10, atol=tol * 10)
    np.testing.assert_allclose(dw, want_dw, rtol=tol * 10, atol=tol * 10)
    np.testing.assert_allclose(db, want_db, rtol=tol * 10, atol=tol * 10)


def test_dense_kernel_optional_outputs_and_errors(rng):
    x = rng.standard_normal((4, 3)).astype(np.float32)
    w = rng.standard_normal((3, 2)).astype(np.float32)
    y = np.empty((4, 2), np.float32)
    K.forward(x, w, None, None, y, 0)
    np.testing.assert_allclose(y, x @ w, rtol=1e-6)
    dy = np.ones((4, 2), np.float32)
    dw = np.empty_like(w)
    K.backward(dy, x, w, y, None, None, dw, None, None, 0)  # only dw
    np.testing.assert_allclose(dw, x.T @ dy, rtol=1e-6)
    with pytest.raises(ValueError, match="dense forward"):
        K.forward(x, w[:2], None, None, y, 0)
    with pytest.raises(ValueError, match="needs a z buffer"):
        K.forward(x, w, None, None, y, activations.gelu.code)


@pytest.mark.parametrize("shape", [(1200, 32, 192), (1100, 40, 24), (6400, 64, 32), (1600, 16, 10)])
@pytest.mark.parametrize("wide", [False, True] if K.wide_tiles_available() else [False])
def test_tall_inputs_packed_path_matches_blas_path(shape, wide, rng):
    # the packed products give BLAS's values, and the same bits with one thread or two
    n, k, u = shape
    code = activations.get("relu").code
    x = rng.standard_normal((n, k)).astype(np.float32)
    w = (rng.standard_normal((k, u)) / np.sqrt(k)).astype(np.float32)
    b = rng.standard_normal(u).astype(np.float32)
    dy = rng.standard_normal((n, u)).astype(np.float32)

    def run(n_threads):
        y, z = np.empty((n, u), np.float32), np.empty((n, u), np.float32)
        K.forward(x, w, b, z, y, code, 0.0, n_threads)
        dz, dw, db, dx = np.empty_like(dy), np.empty_like(w), np.empty_like(b), np.empty_like(x)
        K.backward(dy, x, w, y, z, dz, dw, db, dx, code, 0.0, n_threads)
        return y, dw, db, dx

    old = K.set_tuning(wide_tiles=wide)
    try:
        assert old["packed_weight_grad"] is True  # the default
        packed1, packed2 = run(1), run(2)
        K.set_tuning(packed_weight_grad=False)
        blas = run(2)
    finally:
        K.set_tuning(packed_weight_grad=True, wide_tiles=old["wide_tiles"])
    for name, a, b2, c in zip(("y", "dw", "db", "dx"), packed1, packed2, blas):
        np.testing.assert_array_equal(a, b2, err_msg=name + ": one thread vs two")
        np.testing.assert_allclose(a, c, rtol=1e-4, atol=1e-4 * np.sqrt(n), err_msg=name + ": packed vs BLAS")
