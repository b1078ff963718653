"""The fused attention kernel against its numpy twin (forward and backward)."""
import numpy as np
import pytest

from fastnet._kernels import attention as K
from fastnet._reference import attention as R

TOL = {np.float32: (2e-5, 2e-6), np.float64: (1e-11, 1e-13)}


def _case(rng, dt, B, Lq, Lk, H, dk, dv, mask_shape=None):
    q = rng.standard_normal((B, Lq, H, dk)).astype(dt)
    k = rng.standard_normal((B, Lk, H, dk)).astype(dt)
    v = rng.standard_normal((B, Lk, H, dv)).astype(dt)
    mask = None
    if mask_shape is not None:
        mask = (rng.random(mask_shape) > 0.3).astype(np.uint8)
    return q, k, v, mask


def _run(q, k, v, mask, causal, scale, rate, seed, n_threads, dp=None, do=None, rng=None):
    B, Lq, H, _ = q.shape
    Lk, dv = k.shape[1], v.shape[3]
    o = np.empty((B, Lq, H, dv), q.dtype)
    p = np.empty((B, H, Lq, Lk), q.dtype)
    K.forward(q, k, v, o, p, mask, causal, scale, rate, seed, n_threads)
    if do is None:
        do = rng.standard_normal(o.shape).astype(q.dtype)
    dq, dk, dvv = np.empty_like(q), np.empty_like(k), np.empty_like(v)
    K.backward(q, k, v, o, p, do, dq, dk, dvv, causal, scale, rate, seed, n_threads, dp)
    return o, p, do, (dq, dk, dvv)


CASES = [
    # B, Lq, Lk, H, dk, dv, mask shape, causal, rate
    (2, 5, 7, 3, 4, 6, None, False, 0.0),
    (2, 9, 9, 2, 4, 3, (2, 1, 9, 9), True, 0.3),
    (1, 300, 200, 1, 8, 8, None, True, 0.2),         # several query blocks, Lq > Lk with causal
    (3, 40, 600, 2, 8, 5, (1, 2, 40, 600), False, 0.0),  # per-head mask shared by the batch
    (2, 70, 70, 2, 4, 4, (2, 2, 70, 70), True, 0.5),
]


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("n_threads", [1, 2])
def test_kernel_matches_numpy_twin(dt, case, n_threads):
    B, Lq, Lk, H, dk, dv, mshape, causal, rate = case
    rng = np.random.default_rng(1)
    q, k, v, mask = _case(rng, dt, B, Lq, Lk, H, dk, dv, mshape)
    o, p, do, grads = _run(q, k, v, mask, causal, 0.7, rate, 1234, n_threads, rng=rng)
    o_ref, p_ref = R.sdpa_forward(q, k, v, mask, causal, 0.7, rate, 1234)
    rtol, atol = TOL[dt]
    np.testing.assert_allclose(p, p_ref, rtol=rtol, atol=atol, err_msg="probabilities")
    np.testing.assert_allclose(o, o_ref, rtol=rtol, atol=atol, err_msg="output")
    ref = R.sdpa_backward(q, k, v, p_ref, do, 0.7, rate, 1234)
    for name, got, want in zip(("dq", "dk", "dv"), grads, ref):
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol * 10, err_msg=name)


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_gradient_on_probabilities(dt):
    rng = np.random.default_rng(2)
    q, k, v, mask = _case(rng, dt, 2, 6, 5, 2, 3, 4, (2, 1, 6, 5))
    dp = rng.standard_normal((2, 2, 6, 5)).astype(dt)
    o, p, do, grads = _run(q, k, v, mask, False, 0.5, 0.0, 0, 1, dp=dp, rng=rng)
    ref = R.sdpa_backward(q, k, v, p, do, 0.5, dp=dp)
    rtol, atol = TOL[dt]
    for got, want in zip(grads, ref):
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol * 10)


def test_threads_do_not_change_results():
    # one (batch, head) pair and two threads: the backward pass splits the queries into
    # chunks with private dK/dV sums; only rounding may differ.
    rng = np.random.default_rng(3)
    q, k, v, _ = _case(rng, np.float64, 1, 700, 300, 1, 8, 8)
    do = rng.standard_normal((1, 700, 1, 8))
    one = _run(q, k, v, None, True, 0.3, 0.1, 9, 1, do=do)
    two = _run(q, k, v, None, True, 0.3, 0.1, 9, 2, do=do)
    np.testing.assert_array_equal(one[0], two[0])
    for a, b in zip(one[3], two[3]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)


def test_fully_masked_row_gives_zero_probabilities():
    rng = np.random.default_rng(4)
    q, k, v, _ = _case(rng, np.float32, 1, 3, 4, 1, 2, 2)
    mask = np.ones((1, 1, 3, 4), np.uint8)
    mask[0, 0, 1] = 0
    o, p, do, (dq, dk, dv) = _run(q, k, v, mask, False, 1.0, 0.0, 0, 1, rng=rng)
    assert np.all(p[0, 0, 1] == 0) and np.all(o[0, 1] == 0) and np.all(dq[0, 1] == 0)
    np.testing.assert_allclose(p[0, 0, [0, 2]].sum(axis=-1), 1, rtol=1e-6)


def test_block_rows_fit_the_cache_budget():
    assert K.block_rows(512, 512, 4) == 64
    assert K.block_rows(10, 512, 4) == 10
    assert K.block_rows(4096, 100000, 8) == 8  # never fewer than 8 rows


def test_dropout_keeps_the_expected_fraction():
    rng = np.random.default_rng(5)
    q, k, v, _ = _case(rng, np.float64, 2, 64, 64, 2, 4, 4)
    v = np.ones_like(v)
    o = np.empty((2, 64, 2, 4))
    K.forward(q, k, v, o, None, None, False, 1.0, 0.25, 77, 1)
    # with v = 1 each output is sum_j keep_ij p_ij / 0.75: about 1 on average
    assert abs(o.mean() - 1) < 0.05
    o2 = np.empty_like(o)
    K.forward(q, k, v, o2, None, None, False, 1.0, 0.25, 77, 2)
    np.testing.assert_array_equal(o, o2)


def test_bad_shapes_are_reported():
    q = np.zeros((2, 3, 2, 4), np.float32)
    k = np.zeros((2, 5, 2, 4), np.float32)
    v = np.zeros((2, 5, 2, 6), np.float32)
    o = np.zeros((2, 3, 2, 6), np.float32)
    with pytest.raises(ValueError, match="k has shape"):
        K.forward(q, np.zeros((2, 5, 1, 4), np.float32), v, o, None, None, False, 1.0)
    with pytest.raises(ValueError, match="mask has shape"):
        K.forward(q, k, v, o, None, np.ones((3, 1, 3, 5), np.uint8), False, 1.0)
    with pytest.raises(ValueError, match="o has shape"):
        K.forward(q, k, v, np.zeros((2, 2, 2, 6), np.float32), None, None, False, 1.0)
    with pytest.raises(TypeError, match="dtype"):
        K.forward(q, k.astype(np.float64), v, o, None, None, False, 1.0)
    with pytest.raises(ValueError, match="dropout rate"):
        K.forward(q, k, v, o, None, None, False, 1.0, 1.0)


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("a", [1.0, 0.6])
def test_additive_scores_match_numpy_twin(dt, n_threads, a):
    rng = np.random.default_rng(6)
    q = rng.standard_normal((3, 5, 7)).astype(dt)
    k = rng.standard_normal((3, 6, 7)).astype(dt)
    w = rng.standard_normal(7).astype(dt)
    g = rng.standard_normal((3, 5, 6)).astype(dt)
    g[0, 1, 2] = 0  # skipped entries contribute nothing
    out = np.empty((3, 5, 6), dt)
    K.additive_forward(q, k, w, a, out, n_threads)
    rtol, atol = TOL[dt]
    np.testing.assert_allclose(out, R.additive_forward(q, k, w, a), rtol=rtol * 10, atol=atol * 10)
    dq, dk, dw = np.empty_like(q), np.empty_like(k), np.empty(7)
    da = K.additive_backward(q, k, w, a, g, dq, dk, dw, n_threads)
    rq, rk, rw, ra = R.additive_backward(q, k, w, a, g)
    for got, want in ((dq, rq), (dk, rk), (dw, rw)):
        np.testing.assert_allclose(got, want, rtol=rtol * 10, atol=atol * 10)
    assert da == pytest.approx(ra, rel=rtol * 10, abs=atol * 10)


def test_additive_bad_shapes():
    q = np.zeros((2, 3, 4), np.float32)
    with pytest.raises(ValueError, match="do not agree"):
        K.additive_forward(q, np.zeros((2, 5, 3), np.float32), np.zeros(4, np.float32), 1.0,
                           np.zeros((2, 3, 5), np.float32))
    with pytest.raises(ValueError, match="out has shape"):
        K.additive_forward(q, np.zeros((2, 5, 4), np.float32), np.zeros(4, np.float32), 1.0,
                           np.zeros((2, 3, 4), np.float32))


def _packed(rng, dt, B, L, widths):
    """A (B, L, sum(widths)) buffer and 4-D views of its column blocks, each (B, L, H, d)."""
    buf = rng.standard_normal((B, L, sum(w for w, _ in widths))).astype(dt)
    views, c0 = [], 0
    for w, d in widths:
        views.append(buf[:, :, c0:c0 + w].reshape(B, L, w // d, d))
        c0 += w
    return buf, views


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("causal, rate, masked", [(False, 0.0, False), (True, 0.3, True)])
def test_packed_self_attention_views_match_contiguous(dt, n_threads, causal, rate, masked):
    # q, k, v as column blocks of one projected buffer (self-attention), the gradients
    # written into the same blocks of a gradient buffer: the values of the contiguous call
    B, L, H, dk, dv = 3, 37, 2, 5, 4
    rng = np.random.default_rng(11)
    buf, (q, k, v) = _packed(rng, dt, B, L, [(H * dk, dk), (H * dk, dk), (H * dv, dv)])
    mask = (rng.random((B, 1, L, L)) > 0.3).astype(np.uint8) if masked else None
    qc, kc, vc = (np.ascontiguousarray(a) for a in (q, k, v))
    assert not q.flags.c_contiguous
    o_ref, p_ref, do, grads_ref = _run(qc, kc, vc, mask, causal, 0.6, rate, 99, n_threads, rng=rng)
    o = np.empty_like(o_ref)
    p = np.empty_like(p_ref)
    K.forward(q, k, v, o, p, mask, causal, 0.6, rate, 99, n_threads)
    np.testing.assert_array_equal(o, o_ref)
    np.testing.assert_array_equal(p, p_ref)
    g = np.full_like(buf, np.nan)
    gq, gk, gv = (g[:, :, a:b].reshape(B, L, H, -1) for a, b in ((0, 10), (10, 20), (20, 28)))
    K.backward(q, k, v, o, p, do, gq, gk, gv, causal, 0.6, rate, 99, n_threads)
    for name, got, want in zip(("dq", "dk", "dv"), (gq, gk, gv), grads_ref):
        np.testing.assert_array_equal(got, want, err_msg=name)
    assert np.isfinite(g).all()  # every column of the gradient buffer written


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_packed_key_value_views_with_separate_query(dt):
    # cross-attention: key and value packed side by side, query and output contiguous;
    # one (batch, head) pair on two threads (the chunked dK/dV sums) too
    rng = np.random.default_rng(12)
    for B, H, n_threads in ((2, 3, 1), (1, 1, 2)):
        Lq, Lk, dk, dv = 19, 300, 4, 6
        q = rng.standard_normal((B, Lq, H, dk)).astype(dt)
        buf, (k, v) = _packed(rng, dt, B, Lk, [(H * dk, dk), (H * dv, dv)])
        o_ref, p_ref, do, grads_ref = _run(q, np.ascontiguousarray(k), np.ascontiguousarray(v), None, False,
                                           0.5, 0.0, 0, n_threads, rng=rng)
        o, p = np.empty_like(o_ref), np.empty_like(p_ref)
        K.forward(q, k, v, o, p, None, False, 0.5, 0.0, 0, n_threads)
        np.testing.assert_array_equal(o, o_ref)
        g = np.empty_like(buf)
        gk, gv = g[:, :, :H * dk].reshape(k.shape), g[:, :, H * dk:].reshape(v.shape)
        dq = np.empty_like(q)
        K.backward(q, k, v, o, p, do, dq, gk, gv, False, 0.5, 0.0, 0, n_threads)
        for got, want in zip((dq, gk, gv), grads_ref):
            np.testing.assert_allclose(got, want, rtol=1e-6 if dt == np.float32 else 1e-13, atol=1e-7)


def test_views_that_are_not_row_blocks_are_refused():
    q = np.zeros((2, 3, 2, 4), np.float32)
    o = np.zeros((2, 3, 2, 4), np.float32)
    with pytest.raises(ValueError, match="slice of the last axis"):
        K.forward(q.transpose(1, 0, 2, 3), q, q, o, None, None, False, 1.0)
    with pytest.raises(ValueError, match="slice of the last axis"):
        K.forward(q[:, :, :, :2], q[:, :, :, :2], q[:, :, :, :2], o[..., :2].copy(), None, None, False, 1.0)
    with pytest.raises(ValueError, match="row strides"):
        wide = np.zeros((2, 3, 16), np.float32)
        K.backward(q, q, q, o, np.zeros((2, 2, 3, 3), np.float32), o, wide[:, :, :8].reshape(q.shape),
                   np.empty_like(q), np.empty_like(q), False, 1.0)


@pytest.mark.parametrize("case", CASES + [(4, 200, 200, 2, 32, 32, None, False, 0.0)])
@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("wide", [False, True] if K.wide_tiles_available() else [False])
def test_packed_products_match_blas_products(case, n_threads, wide):
    # float32's forward P V and backward multiply through the packed GEMM (V^T and K packed
    # once per (batch, head)); the BLAS path float64 takes must give the same values. The
    # 512-bit micro-kernel (8-row tiles) runs too where the CPU has AVX-512.
    B, Lq, Lk, H, dk, dv, mshape, causal, rate = case
    rng = np.random.default_rng(5)
    q, k, v, mask = _case(rng, np.float32, B, Lq, Lk, H, dk, dv, mshape)
    dp = rng.standard_normal((B, H, Lq, Lk)).astype(np.float32)
    old_wide = K.use_wide_tiles(wide)
    try:
        assert K.use_packed_gemm(True) is True  # the default
        o, p, do, packed = _run(q, k, v, mask, causal, 0.6, rate, 77, n_threads, dp=dp, rng=rng)
        K.use_packed_gemm(False)
        o_blas, p_blas, _, blas = _run(q, k, v, mask, causal, 0.6, rate, 77, n_threads, dp=dp, do=do)
    finally:
        K.use_packed_gemm(True)
        K.use_wide_tiles(old_wide)
    np.testing.assert_array_equal(p, p_blas)  # the scores' product is BLAS's in both
    np.testing.assert_allclose(o, o_blas, rtol=2e-5, atol=2e-5, err_msg="output")
    for name, a, b in zip(("dq", "dk", "dv"), packed, blas):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5, err_msg=name)
    ref = R.sdpa_backward(q.astype(np.float64), k.astype(np.float64), v.astype(np.float64), p.astype(np.float64),
                          do.astype(np.float64), 0.6, rate, 77, dp=dp.astype(np.float64))
    for name, a, want in zip(("dq", "dk", "dv"), packed, ref):
        np.testing.assert_allclose(a, want, rtol=1e-4, atol=1e-4, err_msg=name)
