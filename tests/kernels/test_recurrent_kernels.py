"""Compiled recurrent kernels against their numpy twins (float32/float64, 1 and 2 threads)."""
import numpy as np
import pytest

from fastnet._kernels import recurrent as K
from fastnet._kernels._activations import forward as _act_forward  # noqa: F401  (loads codes)
from fastnet._reference import recurrent as R
from fastnet.activations import get as get_activation

B, T, D, U = 16, 8, 5, 48      # large enough that 2 threads really split the batch


def _run_kernel(cell, x, w, r, b, rb, h0, c0, mask, rmask, act, rec_act, reset_after, dys,
                dh_last, dc_last, n_threads):
    dt = x.dtype
    n, steps, feat = x.shape
    u = r.shape[0]
    gu = w.shape[1]
    xt = np.ascontiguousarray(x.transpose(1, 0, 2))
    a, ra = get_activation(act), get_activation(rec_act)
    gates = np.empty((steps, n, gu), dt)
    hs = np.empty((steps + 1, n, u), dt)
    cs = np.empty((steps + 1, n, u), dt) if cell == R.LSTM else None
    aux = np.empty((steps, n, u), dt) if cell != R.SIMPLE_RNN else None
    zpre = np.empty((steps, n, gu), dt) if (a.needs_input or ra.needs_input) else None
    scratch = np.empty((n, gu + 2 * u), dt)
    m = None if mask is None else np.ascontiguousarray(mask, dtype=np.uint8)
    K.forward(cell, xt, w, r, b, rb, h0, c0, m, rmask, gates, hs, cs, aux, zpre, scratch,
              a.code, ra.code, a.alpha, ra.alpha, reset_after, n_threads)
    dg = np.empty((steps, n, gu), dt)
    dgx = np.empty((steps, n, u), dt) if (cell == R.GRU and reset_after) else None
    hd = np.empty((steps, n, u), dt) if rmask is not None else None
    dxt = np.empty((steps, n, feat), dt)
    dw, dr = np.empty_like(w), np.empty_like(r)
    db = np.empty(gu, dt) if b is not None else None
    drb = np.empty(gu, dt) if rb is not None else None
    dh0 = np.empty((n, u), dt)
    dc0 = np.empty((n, u), dt) if cell == R.LSTM else None
    K.backward(cell, xt, w, r, dys, dh_last, dc_last, m, rmask, gates, hs, cs, aux, zpre, dg,
               dgx, hd, dxt, dw, dr, db, drb, dh0, dc0, scratch, a.code, ra.code, a.alpha,
               ra.alpha, reset_after, n_threads)
    out = dict(y=hs[1:].transpose(1, 0, 2), h=hs[steps], c=None if cs is None else cs[steps],
               dx=dxt.transpose(1, 0, 2), dw=dw, dr=dr, db=db, drb=drb, dh0=dh0, dc0=dc0)
    return out


def _case(cell, dtype, seed=0, mask=False, rmask=False, use_bias=True, reset_after=True):
    rng = np.random.default_rng(seed)
    g = R.N_GATES[cell]
    f = lambda *s: rng.standard_normal(s).astype(dtype)  # noqa: E731
    x = f(B, T, D)
    w, r = f(D, g * U) * 0.4, f(U, g * U) * 0.2
    b = f(g * U) * 0.3 if use_bias else None
    rb = f(g * U) * 0.3 if (use_bias and cell == R.GRU and reset_after) else None
    h0 = f(B, U) * 0.5
    c0 = f(B, U) * 0.5 if cell == R.LSTM else None
    m = None
    if mask:
        m = rng.random((B, T)) > 0.3
        m[0] = True
        m[1] = False
    rm = ((rng.random((g, B, U)) > 0.25) / 0.75).astype(dtype) if rmask else None
    dys = f(B, T, U)
    dh_last, dc_last = f(B, U), (f(B, U) if cell == R.LSTM else None)
    return x, w, r, b, rb, h0, c0, m, rm, dys, dh_last, dc_last


CASES = [
    (R.SIMPLE_RNN, "tanh", "sigmoid", True), (R.SIMPLE_RNN, "relu", "sigmoid", True),
    (R.LSTM, "tanh", "sigmoid", True), (R.LSTM, "relu", "hard_sigmoid", True),
    (R.GRU, "tanh", "sigmoid", True), (R.GRU, "tanh", "sigmoid", False),
    (R.GRU, "relu", "sigmoid", True), (R.LSTM, "gelu", "sigmoid", True),
]


@pytest.mark.parametrize("cell,act,rec_act,reset_after", CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("variant", ["plain", "mask", "rmask", "nobias"])
def test_kernel_matches_reference(cell, act, rec_act, reset_after, dtype, n_threads, variant):
    x, w, r, b, rb, h0, c0, m, rm, dys, dhl, dcl = _case(
        cell, dtype, mask=variant == "mask", rmask=variant == "rmask",
        use_bias=variant != "nobias", reset_after=reset_after)
    got = _run_kernel(cell, x, w, r, b, rb, h0, c0, m, rm, act, rec_act, reset_after, dys, dhl,
                      dcl, n_threads)
    f64 = lambda a: None if a is None else a.astype(np.float64)  # noqa: E731
    outs, cache = R.forward(cell, f64(x), f64(w), f64(r), f64(b), f64(rb), f64(h0), f64(c0), m,
                            f64(rm), act, rec_act, reset_after)
    want = R.backward(cache, f64(dys), f64(dhl), f64(dcl))
    want.update(y=outs, h=cache["h"], c=cache["c"])
    rtol, atol = (1e-4, 2e-5) if dtype == np.float32 else (1e-10, 1e-11)
    for key in ("y", "h", "c", "dx", "dw", "dr", "db", "drb", "dh0", "dc0"):
        if want.get(key) is None:
            assert got[key] is None or key in ("c", "dc0", "drb", "db")
            continue
        scale = np.abs(want[key]).max() + 1
        np.testing.assert_allclose(got[key], want[key], rtol=rtol, atol=atol * scale,
                                   err_msg=f"{key} (cell {cell}, {act}/{rec_act}, {variant})")


@pytest.mark.parametrize("cell,reset_after", [(R.SIMPLE_RNN, True), (R.LSTM, True),
                                              (R.GRU, True), (R.GRU, False)])
def test_thread_count_does_not_change_results(cell, reset_after):
    x, w, r, b, rb, h0, c0, m, rm, dys, dhl, dcl = _case(cell, np.float32, seed=3, mask=True,
                                                         reset_after=reset_after)
    one = _run_kernel(cell, x, w, r, b, rb, h0, c0, m, rm, "tanh", "sigmoid", reset_after, dys,
                      dhl, dcl, 1)
    two = _run_kernel(cell, x, w, r, b, rb, h0, c0, m, rm, "tanh", "sigmoid", reset_after, dys,
                      dhl, dcl, 2)
    for key, v in one.items():
        if v is not None:
            np.testing.assert_allclose(two[key], v, rtol=1e-5, atol=1e-5, err_msg=key)


@pytest.mark.parametrize("code,ref", [(2, lambda z: 1 / (1 + np.exp(-z))), (3, np.tanh)])
def test_fast_sigmoid_tanh_are_float32_accurate(code, ref):
    z = np.concatenate([np.linspace(-95, 95, 200001), np.logspace(-30, 1.6, 20001),
                        -np.logspace(-30, 1.6, 20001), [0.0, 0.625, -0.625]]).astype(np.float32)
    y = np.empty_like(z)
    K.fast_activation(code, z, y)
    want = ref(z.astype(np.float64))
    ulp = np.spacing(np.abs(want).astype(np.float32)).astype(np.float64)
    err = np.abs(y - want) / ulp
    assert err[np.abs(want) > 1e-30].max() <= 3, err.max()
    assert np.all(np.isfinite(y))
    assert np.all((y >= -1) & (y <= 1))


def test_kernel_shape_errors_are_clear():
    x, w, r, b, rb, h0, c0, m, rm, dys, dhl, dcl = _case(R.LSTM, np.float32)
    with pytest.raises(ValueError, match="r has shape"):
        _run_kernel(R.LSTM, x, w, r[:, :10].copy(), b, rb, h0, c0, m, rm, "tanh", "sigmoid",
                    True, dys, dhl, dcl, 1)


def test_embedding_kernel_checks_indices_first():
    from fastnet._kernels import embedding as E
    table = np.arange(12, dtype=np.float32).reshape(4, 3)
    out = np.empty((3, 3), np.float32)
    E.forward(np.array([3, 0, 2], np.int64), table, out)
    np.testing.assert_array_equal(out, table[[3, 0, 2]])
    with pytest.raises(IndexError, match="4"):
        E.forward(np.array([1, 4, 2], np.int64), table, out)
    assert E.first_bad_index(np.array([0, 1, -1], np.int64), 4) == 2
    idx = np.array([1, 1, 3, 0, 1] * 50, np.int64)
    dy = np.random.default_rng(0).standard_normal((idx.size, 40)).astype(np.float64)
    dt = np.empty((4, 40))
    for nt in (1, 2):
        E.backward(idx, dy, dt, nt)
        np.testing.assert_allclose(dt, R.embedding_backward(idx, dy, 4), rtol=1e-12)


@pytest.fixture(params=[False, True], ids=["256-bit", "512-bit"])
def tiles(request):
    """Runs a test with each of the packed GEMM's micro-kernels (the 512-bit one where
    the CPU has AVX-512; elsewhere both runs use the 256-bit one); yields whether the
    512-bit kernel is on."""
    old = K.use_wide_tiles(request.param)
    try:
        yield K.use_wide_tiles(request.param)
    finally:
        K.use_wide_tiles(old)


def test_wide_tiles_follow_the_cpu():
    old = K.use_wide_tiles(True)
    try:
        assert K.use_wide_tiles(True) == K.wide_tiles_available()
        K.use_wide_tiles(False)
        assert K.use_wide_tiles(True) is False
    finally:
        K.use_wide_tiles(old)


@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (5, 17, 3), (6, 16, 128), (13, 37, 21), (64, 512, 128),
                                   (7, 128, 512), (31, 40, 9), (32, 128, 512)])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("accumulate", [False, True])
def test_packed_small_gemm(m, n, k, trans_b, accumulate, tiles):
    rng = np.random.default_rng(m * 1000 + n)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(np.float32)
    c0 = rng.standard_normal((m, n)).astype(np.float32)
    c = c0.copy()
    K.packed_gemm(a, b, c, trans_b=trans_b, accumulate=accumulate)
    want = a.astype(np.float64) @ (b.T if trans_b else b).astype(np.float64)
    if accumulate:
        want += c0
    np.testing.assert_allclose(c, want, rtol=1e-5, atol=1e-5 * np.sqrt(k))


@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (5, 17, 3), (16, 512, 160), (13, 37, 21)])
def test_packed_small_gemm_bias(m, n, k, tiles):
    """The bias starts the accumulators, the tail panel (n % 16) included."""
    rng = np.random.default_rng(m + n)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    c = np.full((m, n), np.nan, np.float32)
    K.packed_gemm(a, b, c, bias=bias)
    want = a.astype(np.float64) @ b.astype(np.float64) + bias
    np.testing.assert_allclose(c, want, rtol=1e-5, atol=1e-5 * np.sqrt(k))
    with pytest.raises(ValueError, match="one entry per column"):
        K.packed_gemm(a, b, c, bias=bias[:-1] if n > 1 else np.zeros(2, np.float32))


@pytest.mark.parametrize("cell,reset_after", [(R.SIMPLE_RNN, True), (R.LSTM, True),
                                              (R.GRU, True), (R.GRU, False)])
def test_packed_and_blas_time_loops_agree(cell, reset_after, tiles):
    args = _case(cell, np.float32, seed=5, mask=True, reset_after=reset_after)
    x, w, r, b, rb, h0, c0, m, rm, dys, dhl, dcl = args
    old = K.use_packed_gemm(False)
    try:
        blas = _run_kernel(cell, x, w, r, b, rb, h0, c0, m, rm, "tanh", "sigmoid", reset_after,
                           dys, dhl, dcl, 1)
    finally:
        K.use_packed_gemm(old)
    packed = _run_kernel(cell, x, w, r, b, rb, h0, c0, m, rm, "tanh", "sigmoid", reset_after,
                         dys, dhl, dcl, 1)
    for key, v in blas.items():
        if v is not None:
            np.testing.assert_allclose(packed[key], v, rtol=1e-5, atol=1e-5, err_msg=key)


@pytest.mark.parametrize("cell,reset_after", [(R.SIMPLE_RNN, True), (R.LSTM, True),
                                              (R.GRU, True), (R.GRU, False)])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_odd_sizes_and_long_sequences(cell, reset_after, n_threads):
    """Sizes that are not multiples of the 16-column panels or 6-row tiles, and more
    steps x rows than one 256-row block of the weight-gradient GEMM."""
    rng = np.random.default_rng(9)
    n, steps, feat, u = 23, 15, 7, 19
    g = R.N_GATES[cell]
    x = rng.standard_normal((n, steps, feat)).astype(np.float32)
    w = (rng.standard_normal((feat, g * u)) * 0.4).astype(np.float32)
    r = (rng.standard_normal((u, g * u)) * 0.2).astype(np.float32)
    b = (rng.standard_normal(g * u) * 0.3).astype(np.float32)
    rb = b[::-1].copy() if (cell == R.GRU and reset_after) else None
    h0 = np.zeros((n, u), np.float32)
    c0 = np.zeros((n, u), np.float32) if cell == R.LSTM else None
    dys = rng.standard_normal((n, steps, u)).astype(np.float32)
    got = _run_kernel(cell, x, w, r, b, rb, h0, c0, None, None, "tanh", "sigmoid", reset_after,
                      dys, None, None, n_threads)
    f64 = lambda a: None if a is None else a.astype(np.float64)  # noqa: E731
    outs, cache = R.forward(cell, f64(x), f64(w), f64(r), f64(b), f64(rb), f64(h0), f64(c0),
                            None, None, "tanh", "sigmoid", reset_after)
    want = R.backward(cache, f64(dys))
    np.testing.assert_allclose(got["y"], outs, rtol=1e-4, atol=2e-5)
    for key in ("dx", "dw", "dr", "db"):
        scale = np.abs(want[key]).max() + 1
        np.testing.assert_allclose(got[key], want[key], rtol=1e-4, atol=2e-5 * scale, err_msg=key)


@pytest.mark.parametrize("k,m1,m2,n", [(300, 7, 19, 57), (256, 0, 5, 16), (1, 3, 1, 1),
                                      (2048, 32, 128, 512)])
def test_weight_grad_gemm(k, m1, m2, n, tiles):
    rng = np.random.default_rng(k + n)
    a1 = rng.standard_normal((k, m1)).astype(np.float32)
    a2 = rng.standard_normal((k, m2)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    c = np.empty((m1 + m2, n), np.float32)
    K.weight_grad_gemm(a1, a2, b, c)
    want = np.concatenate([a1, a2], axis=1).astype(np.float64).T @ b.astype(np.float64)
    np.testing.assert_allclose(c, want, rtol=1e-5, atol=1e-5 * np.sqrt(k))
    # The bias gradient rides along as column sums (K blocks of 256: k > 256 accumulates).
    c2 = np.empty_like(c)
    colsum = np.full(n, np.nan, np.float32)
    K.weight_grad_gemm(a1, a2, b, c2, colsum)
    np.testing.assert_array_equal(c2, c)
    np.testing.assert_allclose(colsum, b.astype(np.float64).sum(0), rtol=1e-5,
                               atol=1e-5 * np.sqrt(k))
    with pytest.raises(ValueError, match="colsum"):
        K.weight_grad_gemm(a1, a2, b, c2, np.empty(n + 1, np.float32))


@pytest.mark.parametrize("batch", [1, 5, 8, 16, 31, 32, 33, 64, 100, 128, 1000])
@pytest.mark.parametrize("n_threads", [1, 2, 3, 4, 16])
def test_row_split_covers_the_batch_in_tile_friendly_tasks(batch, n_threads, tiles):
    bounds = K.row_split(batch, n_threads)
    sizes = np.diff(bounds)
    assert bounds[0] == 0 and bounds[-1] == batch
    assert (sizes > 0).all()
    if n_threads == 1:
        assert list(sizes) == [batch]
        return
    assert len(sizes) <= 2 * n_threads
    # Larger tasks first (taken dynamically, the small ones fill the gaps) ...
    assert list(sizes) == sorted(sizes, reverse=True)
    # ... each within a few rows of an even share ...
    assert sizes.max() - sizes.min() <= 6
    # ... and, but for the last one placed, a size the packed GEMM tiles at full speed,
    # without a 1- or 2-row tail: 8k, 8k + 4 or 8k + 6 rows with the 512-bit kernel,
    # 6k or 6k + 4 with the 256-bit one.
    whole = (lambda s: s % 8 in (0, 4, 6)) if tiles else (lambda s: s % 6 in (0, 4))
    if len(sizes) > 1:
        assert sum(not whole(s) for s in sizes) <= 1, sizes


def test_row_split_of_the_benchmark_batches(tiles):
    # An even share that tiles whole (16 = 6 + 6 + 4 or 8 + 8): one task per thread.
    assert np.diff(K.row_split(32, 2)).tolist() == [16, 16]
    assert np.diff(K.row_split(256, 4)).tolist() == [64, 64, 64, 64]
    if tiles:
        # 32 = 4 x 8 rows; 8 = one 8-row tile
        assert np.diff(K.row_split(64, 2)).tolist() == [32, 32]
        assert np.diff(K.row_split(32, 4)).tolist() == [8] * 4
    else:
        # 32 rows would end in a 2-row tile (30 + 2), 8 in one of 2 (6 + 2): two tasks
        # per thread instead.
        assert np.diff(K.row_split(64, 2)).tolist() == [16, 16, 16, 16]
        assert np.diff(K.row_split(32, 4)).tolist() == [4] * 8


def _default_case(cell, n, steps, feat, u, seed):
    """float32 inputs, weights and initial states for a default-activation layer."""
    rng = np.random.default_rng(seed)
    g = R.N_GATES[cell]
    f = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    x, w, r, b = f(n, steps, feat), f(feat, g * u) * 0.3, f(u, g * u) * 0.2, f(g * u) * 0.3
    h0 = f(n, u) * 0.5
    c0 = f(n, u) * 0.5 if cell == R.LSTM else None
    return rng, np.ascontiguousarray(x.transpose(1, 0, 2)), w, r, b, h0, c0


def _default_forward(cell, xt, w, r, b, h0, c0, mask, n_threads, packbuf, keep):
    """hs and cs (None but for LSTM) of the float32 forward with tanh and sigmoid."""
    steps, n, _ = xt.shape
    u, gu = r.shape
    tanh, sigmoid = get_activation("tanh"), get_activation("sigmoid")
    hs = np.full((steps + 1, n, u), np.nan, np.float32)
    cs = np.full((steps + 1, n, u), np.nan, np.float32) if cell == R.LSTM else None
    aux = np.empty((steps, n, u), np.float32) if cell != R.SIMPLE_RNN else None
    K.forward(cell, xt, w, r, b, None, h0, c0, mask, None, np.empty((steps, n, gu), np.float32),
              hs, cs, aux, None, np.empty((n, gu + 2 * u), np.float32), tanh.code, sigmoid.code,
              0.0, 0.0, True, n_threads, True, packbuf, keep)
    return hs, cs


@pytest.mark.parametrize("cell", [R.SIMPLE_RNN, R.LSTM])
@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("shape", [(16, 8, 5, 48), (7, 5, 70, 20), (33, 4, 32, 128)],
                         ids=["narrow-input", "wide-input", "odd-batch"])
@pytest.mark.parametrize("mask", [False, True])
def test_inference_time_loop_matches_the_training_one(cell, n_threads, shape, mask):
    """keep=False (predict) takes its own float32 path, one [x | h] [W; R] product per
    step; its states must be those of the training path, to float32 rounding."""
    n, steps, feat, u = shape
    rng, xt, w, r, b, h0, c0 = _default_case(cell, n, steps, feat, u, 4)
    m = (rng.random((n, steps)) > 0.3).astype(np.uint8) if mask else None
    hs_train, cs_train = _default_forward(cell, xt, w, r, b, h0, c0, m, n_threads, None, True)
    hs_infer, cs_infer = _default_forward(cell, xt, w, r, b, h0, c0, m, n_threads, None, False)
    np.testing.assert_allclose(hs_infer, hs_train, rtol=1e-5, atol=1e-5)
    if cell == R.LSTM:
        np.testing.assert_allclose(cs_infer, cs_train, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cell", [R.SIMPLE_RNN, R.LSTM, R.GRU])
@pytest.mark.parametrize("keep", [True, False])
def test_forward_packbuf_sizes_give_the_same_states(cell, keep):
    """The packed kernels land in the caller's buffer when it is large enough (with
    input_dim, also the fused forward's stacked [W; R]) and in allocations otherwise;
    the states are the same bit for bit, and a buffer below packed_size is refused."""
    n, steps, feat, u = 12, 5, 7, 40
    g = R.N_GATES[cell]
    _, xt, w, r, b, h0, c0 = _default_case(cell, n, steps, feat, u, 6)
    small = K.packed_size(cell, u)
    large = K.packed_size(cell, u, True, feat)
    if cell != R.GRU:   # the fused forward packs (feat + u) rows of 4u or u columns
        assert large == max(small, (feat + u) * ((g * u + 15) // 16 * 16))

    def run(packbuf):
        return _default_forward(cell, xt, w, r, b, h0, c0, None, 1, packbuf, keep)[0]

    want = run(None)
    for size in (small, large, large + 5):
        np.testing.assert_array_equal(run(np.full(size, np.nan, np.float32)), want)
    with pytest.raises(ValueError, match="packbuf holds"):
        run(np.empty(small - 1, np.float32))


@pytest.mark.parametrize("cell", [R.SIMPLE_RNN, R.LSTM, R.GRU])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("keep", [True, False])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_forward_writes_the_time_major_input_from_the_batch_major_one(cell, dtype, keep,
                                                                      reverse, n_threads):
    """Given x (B, T, D), the kernel fills xt itself (time-reversed for go_backwards):
    the same xt and the same states as a caller-side transposing copy, on the fused
    float32 paths (SimpleRNN, LSTM) and the projected ones (GRU, float64)."""
    n, steps, feat, u = 33, 5, 7, 16
    rng, _, w, r, b, h0, c0 = _default_case(cell, n, steps, feat, u, 9)
    x = rng.standard_normal((n, steps, feat)).astype(dtype)
    w, r, b, h0 = (a.astype(dtype) for a in (w, r, b, h0))
    c0 = c0.astype(dtype) if c0 is not None else None
    g = R.N_GATES[cell]
    tanh, sigmoid = get_activation("tanh"), get_activation("sigmoid")
    want_xt = np.ascontiguousarray(x.transpose(1, 0, 2)[::-1] if reverse else x.transpose(1, 0, 2))

    def run(xt, x_src):
        hs = np.full((steps + 1, n, u), np.nan, dtype)
        cs = np.full((steps + 1, n, u), np.nan, dtype) if cell == R.LSTM else None
        aux = np.empty((steps, n, u), dtype) if cell != R.SIMPLE_RNN else None
        K.forward(cell, xt, w, r, b, None, h0, c0, None, None,
                  np.empty((steps, n, g * u), dtype), hs, cs, aux, None,
                  np.empty((n, g * u + 2 * u), dtype), tanh.code, sigmoid.code, 0.0, 0.0,
                  True, n_threads, True, None, keep, x_src, reverse)
        return hs, cs

    xt = np.full((steps, n, feat), np.nan, dtype)
    hs, cs = run(xt, x)
    np.testing.assert_array_equal(xt, want_xt)
    hs_ref, cs_ref = run(want_xt.copy(), None)
    np.testing.assert_array_equal(hs, hs_ref)
    if cell == R.LSTM:
        np.testing.assert_array_equal(cs, cs_ref)
    with pytest.raises(ValueError, match="x"):
        run(xt, np.ascontiguousarray(x[:, :-1]))
