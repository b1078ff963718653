"""Compiled convolution kernels against their numpy twins (fastnet/_reference/conv.py).

Every case runs in float32 and float64 with 1 and 2 threads. Sizes are chosen so
that the multi-threaded paths (split by pixels, by samples, and the
fewer-samples-than-threads path) and chunk boundaries inside a sample are hit.
"""
import numpy as np
import pytest

from fastnet import config
from fastnet._kernels import conv as K
from fastnet._kernels import conv_transpose as KT
from fastnet._kernels import im2col as I
from fastnet._reference import conv as R
from fastnet.utils.shape_utils import conv_geometry, conv_transpose_geometry

CODES = {"linear": 0, "relu": 1, "tanh": 3, "gelu": 10}
TOL = {np.float32: dict(rtol=2e-4, atol=2e-4), np.float64: dict(rtol=1e-10, atol=1e-10)}


@pytest.fixture(autouse=True)
def _pinned_blas():
    """Kernels call BLAS from their own threads: pin it as fastnet.config does."""
    before = config.get_num_threads()
    config.set_num_threads(2)
    yield
    config.set_num_threads(before)


@pytest.fixture
def small_chunks():
    """Chunks of a few rows, so chunk boundaries fall inside samples."""
    old = K.set_tuning()
    K.set_tuning(chunk_elems=1024)
    yield
    K.set_tuning(**old)


# (n, h, w, c, filters, kernel, strides, padding, dilation)
CASES = [
    (4, 9, 8, 3, 5, (3, 3), (1, 1), "same", (1, 1)),
    (3, 8, 7, 3, 5, (3, 3), (2, 2), "valid", (1, 1)),
    (2, 9, 9, 2, 3, (3, 3), (1, 1), "valid", (2, 2)),
    (5, 6, 7, 2, 3, (2, 3), (1, 2), "same", (1, 1)),
    (4, 5, 4, 3, 6, (1, 1), (1, 1), "valid", (1, 1)),    # pointwise: no im2col
    (3, 1, 11, 4, 6, (1, 3), (1, 1), "causal", (1, 2)),  # Conv1D causal, dilated
    (6, 1, 10, 3, 4, (1, 4), (1, 3), "same", (1, 1)),    # Conv1D strided
    (1, 12, 12, 4, 8, (3, 3), (1, 1), "same", (1, 1)),   # one sample, several threads
    (2, 4, 4, 3, 4, (5, 5), (1, 1), "same", (1, 1)),     # window larger than the image
]
# Large enough for the multi-threaded paths: (n, h, w, c, filters)
BIG = [(8, 14, 14, 16, 24), (1, 30, 30, 8, 16)]


def _geometry(h, w, kernel, strides, padding, dilation):
    if padding == "causal":
        g = conv_geometry((w,), (kernel[1],), (strides[1],), "causal", (dilation[1],))
        return g
    return conv_geometry((h, w), kernel, strides, padding, dilation)


def _data(rng, dt, n, h, w, c, f, kernel):
    x = rng.standard_normal((n, h, w, c)).astype(dt)
    k = (rng.standard_normal(kernel + (c, f)) / np.sqrt(c * kernel[0] * kernel[1])).astype(dt)
    b = rng.standard_normal(f).astype(dt)
    return x, k, b


def _run_conv(x, k, b, g, act, nt, need=(True, True, True), dy=None, rng=None):
    n, f = x.shape[0], k.shape[-1]
    w = k.reshape(-1, f)
    P = n * g.oh * g.ow
    y = np.empty((P, f), x.dtype)
    z = np.empty((P, f), x.dtype) if act == "gelu" else None
    K.forward(x, w, b, z, y, g, CODES[act], 0.0, nt)
    if dy is None:
        dy = rng.standard_normal(y.shape).astype(x.dtype)
    dw = np.full(w.shape, np.nan, x.dtype) if need[0] else None
    db = np.full(f, np.nan, x.dtype) if need[1] else None
    dx = np.full(x.shape, np.nan, x.dtype) if need[2] else None
    K.backward(dy, x, w, y, z, dw, db, dx, g, CODES[act], 0.0, nt)
    return y, dy, dw, db, dx


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("nt", [1, 2])
@pytest.mark.parametrize("case", CASES)
def test_im2col_col2im_match_reference(case, nt, dt):
    n, h, w, c, f, kernel, strides, padding, dilation = case
    rng = np.random.default_rng(1)
    g = _geometry(h, w, kernel, strides, padding, dilation)
    x = rng.standard_normal((n, g.h, g.w, c)).astype(dt)
    cols = np.full((n * g.oh * g.ow, g.kh * g.kw * c), np.nan, dt)
    I.im2col(x, cols, g, nt)
    np.testing.assert_array_equal(cols, R.im2col(x, g))
    back = np.full_like(x, np.nan)
    I.col2im(cols, back, g, nt)
    np.testing.assert_allclose(back, R.col2im(cols, g, n, c), **TOL[dt])
    # col2im is the adjoint of im2col: <im2col(x), c> == <x, col2im(c)>.
    c2 = rng.standard_normal(cols.shape).astype(dt)
    I.col2im(c2, back, g, nt)
    assert np.isclose(np.vdot(cols, c2), np.vdot(x, back), rtol=1e-4 if dt == np.float32 else 1e-12)


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("nt", [1, 2])
@pytest.mark.parametrize("act", ["relu", "linear", "gelu"])
@pytest.mark.parametrize("case", CASES)
def test_conv_matches_reference(case, act, nt, dt):
    n, h, w, c, f, kernel, strides, padding, dilation = case
    rng = np.random.default_rng(2)
    g = _geometry(h, w, kernel, strides, padding, dilation)
    x, k, b = _data(rng, dt, n, g.h, g.w, c, f, kernel)
    y, dy, dw, db, dx = _run_conv(x, k, b, g, act, nt, rng=rng)
    y_ref, z_ref = R.conv_forward(x, k, b, g, act)
    np.testing.assert_allclose(y, y_ref.reshape(y.shape), **TOL[dt])
    dx_ref, dk_ref, db_ref = R.conv_backward(dy.reshape(y_ref.shape), x, k, z_ref, g, act)
    np.testing.assert_allclose(dx, dx_ref, **TOL[dt])
    np.testing.assert_allclose(dw, dk_ref.reshape(dw.shape), **TOL[dt])
    np.testing.assert_allclose(db, db_ref, **TOL[dt])


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("dw_mode", [0, 1])
@pytest.mark.parametrize("shape", BIG)
def test_conv_parallel_paths_agree(shape, dw_mode, dt, small_chunks):
    """1 and 2 threads, small chunks, both dW formulations: same numbers as the twin."""
    n, h, w, c, f = shape
    K.set_tuning(dw_mode=dw_mode)
    rng = np.random.default_rng(3)
    g = conv_geometry((h, w), (3, 3), (1, 1), "same", (1, 1))
    x, k, b = _data(rng, dt, n, h, w, c, f, (3, 3))
    dy = rng.standard_normal((n * h * w, f)).astype(dt)
    out = [_run_conv(x, k, b, g, "relu", nt, dy=dy) for nt in (1, 2)]
    y_ref, z_ref = R.conv_forward(x, k, b, g, "relu")
    dx_ref, dk_ref, db_ref = R.conv_backward(dy.reshape(y_ref.shape), x, k, z_ref, g, "relu")
    for y, _, dw, db, dx in out:
        np.testing.assert_allclose(y, y_ref.reshape(y.shape), **TOL[dt])
        np.testing.assert_allclose(dx, dx_ref, **TOL[dt])
        np.testing.assert_allclose(dw, dk_ref.reshape(dw.shape), **TOL[dt])
        np.testing.assert_allclose(db, db_ref, **TOL[dt])


@pytest.mark.parametrize("nt", [1, 2])
def test_conv_backward_skips_what_is_not_asked(nt):
    rng = np.random.default_rng(4)
    g = conv_geometry((10, 10), (3, 3), (1, 1), "valid", (1, 1))
    x, k, b = _data(rng, np.float32, 6, 10, 10, 4, 8, (3, 3))
    _, dy, dw, db, dx = _run_conv(x, k, b, g, "relu", nt, rng=rng)
    for need in [(True, False, False), (False, True, False), (False, False, True)]:
        _, _, dw2, db2, dx2 = _run_conv(x, k, b, g, "relu", nt, need=need, dy=dy)
        for got, want in zip((dw2, db2, dx2), (dw, db, dx)):
            if got is not None:
                np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_conv_kernel_rejects_mismatched_buffers():
    g = conv_geometry((5, 5), (3, 3), (1, 1), "valid", (1, 1))
    x = np.zeros((2, 5, 5, 3), np.float32)
    w = np.zeros((27, 4), np.float32)
    with pytest.raises(ValueError, match="do not match"):
        K.forward(x, w, None, None, np.zeros((17, 4), np.float32), g, 0, 0.0, 1)
    with pytest.raises(ValueError, match="input spatial size"):
        K.forward(np.zeros((2, 6, 5, 3), np.float32), w, None, None,
                  np.zeros((18, 4), np.float32), g, 0, 0.0, 1)
    with pytest.raises(ValueError, match="needs a z buffer"):
        K.forward(x, w, None, None, np.zeros((18, 4), np.float32), g, CODES["gelu"], 0.0, 1)


# ------------------------------------------------------------------ transposed convolution

# (n, h_in, w_in, c, filters, kernel, strides, padding, output_padding, dilation)
T_CASES = [
    (2, 4, 5, 3, 4, (3, 3), (2, 2), "same", None, (1, 1)),
    (2, 4, 5, 3, 4, (3, 3), (3, 3), "valid", None, (1, 1)),
    (3, 2, 2, 1, 12, (3, 3), (2, 2), "valid", None, (1, 1)),
    (2, 4, 4, 3, 2, (3, 3), (2, 2), "same", (0, 1), (1, 1)),
    (2, 3, 4, 3, 2, (2, 2), (1, 1), "valid", None, (2, 2)),
    (2, 5, 4, 3, 5, (1, 1), (1, 1), "same", None, (1, 1)),    # pointwise
    (2, 3, 3, 2, 3, (1, 1), (2, 2), "valid", None, (1, 1)),   # window smaller than stride
    (8, 7, 7, 16, 12, (3, 3), (2, 2), "same", None, (1, 1)),  # multi-threaded sizes
]


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("nt", [1, 2])
@pytest.mark.parametrize("act", ["relu", "linear", "gelu"])
@pytest.mark.parametrize("case", T_CASES)
def test_conv_transpose_matches_reference(case, act, nt, dt):
    n, h, w, c, f, kernel, strides, padding, op, dilation = case
    rng = np.random.default_rng(5)
    g = conv_transpose_geometry((h, w), kernel, strides, padding, op, dilation)
    x = rng.standard_normal((n, h, w, c)).astype(dt)
    k = (rng.standard_normal(kernel + (f, c)) / np.sqrt(c)).astype(dt)
    b = rng.standard_normal(f).astype(dt)
    wm = k.reshape(-1, c)
    y = np.full((n, g.h, g.w, f), np.nan, dt)
    z = np.full_like(y, np.nan) if act == "gelu" else None
    KT.forward(x, wm, b, z, y, g, CODES[act], 0.0, nt)
    y_ref, z_ref = R.conv_transpose_forward(x, k, b, g, act)
    np.testing.assert_allclose(y, y_ref, **TOL[dt])
    dy = rng.standard_normal(y.shape).astype(dt)
    dz = np.empty_like(y) if act != "linear" else None
    dw = np.full(wm.shape, np.nan, dt)
    db = np.full(f, np.nan, dt)
    dx = np.full_like(x, np.nan)
    KT.backward(dy, x, wm, y, z, dz, dw, db, dx, g, CODES[act], 0.0, nt)
    dx_ref, dk_ref, db_ref = R.conv_transpose_backward(dy, x, k, z_ref, g, act)
    np.testing.assert_allclose(dx, dx_ref, **TOL[dt])
    np.testing.assert_allclose(dw, dk_ref.reshape(dw.shape), **TOL[dt])
    np.testing.assert_allclose(db, db_ref, **TOL[dt])


def test_conv_transpose_is_the_adjoint_of_conv():
    """<conv(x), u> == <x, conv_transpose(u)> with the same kernel and geometry."""
    rng = np.random.default_rng(6)
    g = conv_geometry((9, 8), (3, 3), (2, 2), "same", (1, 1))
    x = rng.standard_normal((2, 9, 8, 3))
    k = rng.standard_normal((3, 3, 3, 4))
    y = np.empty((2 * g.oh * g.ow, 4))
    K.forward(x, k.reshape(-1, 4), None, None, y, g, 0, 0.0, 1)
    u = rng.standard_normal((2, g.oh, g.ow, 4))
    # Transposed conv kernel (kh, kw, filters=3, in=4) is the conv kernel as is.
    back = np.empty_like(x)
    KT.forward(u, k.reshape(-1, 4), None, None, back, g, 0, 0.0, 1)
    assert np.isclose(np.vdot(y, u), np.vdot(x, back), rtol=1e-12)


# ------------------------------------------------------------------ Winograd F(2x2, 3x3)

@pytest.fixture
def winograd_everywhere():
    """Winograd for every 3x3 stride-1 convolution that can take it (ratio check off;
    the direct kernels, which take float32 ones with few channels first, off)."""
    old = K.set_tuning()
    K.set_tuning(winograd=True, winograd_ratio=10.0, winograd_tiles=7, direct_dw=False,
                 direct_fwd=False, direct_dx=False)
    yield
    K.set_tuning(**old)


# (n, h, w, c, filters, padding): odd and even sizes, both paddings, tile-chunk edges.
W_CASES = [
    (3, 13, 13, 8, 16, "valid"),
    (2, 14, 9, 9, 8, "same"),
    (2, 5, 6, 12, 10, "valid"),
    (1, 3, 3, 8, 8, "same"),
    (5, 8, 8, 16, 8, "same"),
]


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("nt", [1, 2])
@pytest.mark.parametrize("act", ["relu", "gelu", "linear"])
@pytest.mark.parametrize("case", W_CASES)
def test_winograd_matches_reference(case, act, nt, dt, winograd_everywhere):
    n, h, w, c, f, padding = case
    rng = np.random.default_rng(7)
    g = conv_geometry((h, w), (3, 3), (1, 1), padding, (1, 1))
    x, k, b = _data(rng, dt, n, h, w, c, f, (3, 3))
    y, dy, dw, db, dx = _run_conv(x, k, b, g, act, nt, rng=rng)
    y_ref, z_ref = R.conv_forward(x, k, b, g, act)
    np.testing.assert_allclose(y, y_ref.reshape(y.shape), **TOL[dt])
    dx_ref, dk_ref, db_ref = R.conv_backward(dy.reshape(y_ref.shape), x, k, z_ref, g, act)
    np.testing.assert_allclose(dx, dx_ref, **TOL[dt])
    np.testing.assert_allclose(dw, dk_ref.reshape(dw.shape), **TOL[dt])
    np.testing.assert_allclose(db, db_ref, **TOL[dt])


def test_winograd_and_im2col_agree_closely():
    """The two paths differ only by float32 rounding (a few ulps of the outputs)."""
    rng = np.random.default_rng(8)
    g = conv_geometry((13, 13), (3, 3), (1, 1), "valid", (1, 1))
    x, k, b = _data(rng, np.float32, 16, 13, 13, 32, 64, (3, 3))
    dy = rng.standard_normal((16 * 11 * 11, 64)).astype(np.float32)
    old = K.set_tuning()
    try:
        K.set_tuning(winograd=False, direct_dw=False, direct_fwd=False, direct_dx=False)
        plain = _run_conv(x, k, b, g, "relu", 2, dy=dy)
        K.set_tuning(winograd=True, winograd_ratio=10.0)
        wino = _run_conv(x, k, b, g, "relu", 2, dy=dy)
    finally:
        K.set_tuning(**old)
    for a, bb in zip(plain, wino):
        scale = np.abs(a).max()
        np.testing.assert_allclose(bb, a, rtol=0, atol=2e-6 * scale)


# (n, length, c, filters, kernel, padding): F(4, 3), F(4, 5) and F(2, 7); lengths that
# are not multiples of the tile, causal padding (r - 1 before).
W1_CASES = [
    (3, 100, 16, 8, 5, "valid"),
    (2, 37, 8, 12, 5, "same"),
    (2, 23, 9, 8, 3, "same"),
    (4, 30, 8, 8, 3, "valid"),
    (2, 19, 8, 10, 7, "causal"),
    (2, 5, 8, 8, 5, "same"),
    (1, 13, 12, 8, 7, "valid"),
]


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("nt", [1, 2])
@pytest.mark.parametrize("act", ["relu", "gelu"])
@pytest.mark.parametrize("case", W1_CASES)
def test_winograd_1d_matches_reference(case, act, nt, dt, winograd_everywhere):
    n, length, c, f, r, padding = case
    rng = np.random.default_rng(9)
    g = conv_geometry((length,), (r,), (1,), padding, (1,))
    x, k, b = _data(rng, dt, n, 1, length, c, f, (1, r))
    y, dy, dw, db, dx = _run_conv(x, k, b, g, act, nt, rng=rng)
    y_ref, z_ref = R.conv_forward(x, k, b, g, act)
    tol = dict(rtol=1e-4, atol=1e-4) if dt == np.float32 else TOL[dt]
    np.testing.assert_allclose(y, y_ref.reshape(y.shape), **tol)
    dx_ref, dk_ref, db_ref = R.conv_backward(dy.reshape(y_ref.shape), x, k, z_ref, g, act)
    np.testing.assert_allclose(dx, dx_ref, **tol)
    np.testing.assert_allclose(dw, dk_ref.reshape(dw.shape), **tol)
    np.testing.assert_allclose(db, db_ref, **tol)


def test_winograd_1d_matrices_compute_a_correlation():
    """A^T [(G g) * (B^T d)] == the correlation of d with g, exactly in rationals."""
    from fractions import Fraction

    for m, r in [(4, 3), (4, 5), (2, 7)]:
        at, gm, bt = K._cook_toom(m, r)
        n = m + r - 1
        d = [Fraction(i * i - 3 * i + 1, i + 2) for i in range(n)]
        w = [Fraction(2 * i - 5, i + 1) for i in range(r)]
        gg = [sum(gm[k][i] * w[i] for i in range(r)) for k in range(n)]
        bd = [sum(bt[k][i] * d[i] for i in range(n)) for k in range(n)]
        y = [sum(at[j][k] * gg[k] * bd[k] for k in range(n)) for j in range(m)]
        assert y == [sum(d[j + i] * w[i] for i in range(r)) for j in range(m)]
