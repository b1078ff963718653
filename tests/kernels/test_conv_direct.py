"""The direct float32 convolution kernels for few channels (conv.pyx, _direct_conv.h)
against the numpy twins (fastnet/_reference/conv.py) and against the Winograd/im2col
paths they replace.

Channel counts that are not multiples of the 8-float vector or the 16-filter panel
(tails of 1 to 7 filters, tiles of 1 to 6 channels), strides 1 and 2, 'same' and
'valid' padding, dilation, one sample, 1 and 2 threads; the strided input gradient
with phases that no tap reaches. The kernel gradient sums in
slots fixed by the problem's size, so it must come out bitwise the same whatever the
thread count.
"""
import numpy as np
import pytest

from fastnet import config
from fastnet._kernels import conv as K
from fastnet._reference import conv as R
from fastnet.utils.shape_utils import conv_geometry

CODES = {"linear": 0, "relu": 1, "gelu": 10}
# float32 against the float64 twin: sums of up to 9 * 32 products per output and of
# every pixel per kernel-gradient entry.
TOL = dict(rtol=2e-4, atol=2e-4)
# every case the direct kernels can take, whatever they measured against the others
ALL_DIRECT = dict(direct_dw=True, direct_fwd=True, direct_dx=True, direct_force=True)
NO_DIRECT = dict(direct_dw=False, direct_fwd=False, direct_dx=False, direct_force=False)


@pytest.fixture(autouse=True)
def _restore_tuning():
    before_threads = config.get_num_threads()
    config.set_num_threads(2)
    old = K.set_tuning()
    yield
    K.set_tuning(**old)
    config.set_num_threads(before_threads)


# (n, h, w, c, filters, kernel, strides, padding, dilation)
CASES = [
    (2, 9, 8, 16, 16, (3, 3), (1, 1), "same", (1, 1)),
    (3, 8, 7, 5, 11, (3, 3), (2, 2), "valid", (1, 1)),     # odd C and F, stride 2
    (2, 10, 10, 12, 20, (3, 3), (2, 2), "same", (1, 1)),   # a 16 + 4 filter tail
    (1, 12, 12, 8, 24, (3, 3), (1, 1), "valid", (1, 1)),   # one sample, 16 + 8 filters
    (2, 7, 9, 6, 40, (2, 3), (1, 2), "same", (1, 1)),      # uneven window and strides
    (2, 11, 10, 9, 7, (3, 3), (1, 1), "valid", (2, 2)),    # dilated, F under 8
    (1, 5, 33, 32, 32, (3, 3), (1, 1), "same", (1, 1)),    # a row longer than a chunk
    (4, 6, 6, 7, 13, (5, 5), (1, 1), "same", (1, 1)),      # window near the image size
    (2, 32, 32, 16, 16, (3, 3), (1, 1), "same", (1, 1)),   # the ResNet block's shape
    (3, 8, 8, 3, 16, (3, 3), (1, 1), "same", (1, 1)),      # an RGB stem (dx by Winograd)
    (2, 9, 9, 1, 5, (3, 3), (2, 2), "valid", (1, 1)),      # one channel, stride 2
    (2, 6, 7, 4, 9, (3, 3), (1, 1), "valid", (1, 1)),      # dx by im2col
    (2, 7, 8, 16, 12, (1, 3), (2, 1), "valid", (1, 1)),    # input rows no tap reaches
    (2, 8, 8, 16, 8, (2, 2), (3, 3), "valid", (1, 1)),     # stride above the window
    (2, 9, 11, 32, 5, (3, 3), (2, 2), "same", (1, 1)),     # strided dx, two panels
    (2, 16, 16, 16, 32, (3, 3), (2, 2), "same", (1, 1)),   # ResNet's strided block
    (3, 9, 8, 16, 32, (1, 1), (2, 2), "valid", (1, 1)),    # a strided 1x1 projection
    (2, 7, 7, 5, 8, (1, 1), (2, 2), "same", (1, 1)),
]


def _data(rng, n, h, w, c, f, kernel):
    x = rng.standard_normal((n, h, w, c)).astype(np.float32)
    k = (rng.standard_normal(kernel + (c, f)) / np.sqrt(c * kernel[0] * kernel[1])).astype(np.float32)
    b = rng.standard_normal(f).astype(np.float32)
    return x, k, b


def _run(x, k, b, g, act, nt, dy, tuning, need=(True, True, True)):
    K.set_tuning(**tuning)
    n, f = x.shape[0], k.shape[-1]
    w = k.reshape(-1, f)
    P = n * g.oh * g.ow
    y = np.full((P, f), np.nan, np.float32)
    z = np.full((P, f), np.nan, np.float32) if act == "gelu" else None
    K.forward(x, w, b, z, y, g, CODES[act], 0.0, nt)
    dw = np.full(w.shape, np.nan, np.float32) if need[0] else None
    db = np.full(f, np.nan, np.float32) if need[1] else None
    dx = np.full(x.shape, np.nan, np.float32) if need[2] else None
    K.backward(dy, x, w, y, z, dw, db, dx, g, CODES[act], 0.0, nt)
    return y, dw, db, dx


def _case(case, seed):
    n, h, w, c, f, kernel, strides, padding, dilation = case
    rng = np.random.default_rng(seed)
    g = conv_geometry((h, w), kernel, strides, padding, dilation)
    x, k, b = _data(rng, n, h, w, c, f, kernel)
    dy = rng.standard_normal((n * g.oh * g.ow, f)).astype(np.float32)
    return g, x, k, b, dy


@pytest.mark.parametrize("nt", [1, 2])
@pytest.mark.parametrize("act", ["linear", "relu", "gelu"])
@pytest.mark.parametrize("case", CASES)
def test_direct_matches_reference(case, act, nt):
    g, x, k, b, dy = _case(case, 11)
    y, dw, db, dx = _run(x, k, b, g, act, nt, dy, ALL_DIRECT)
    y_ref, z_ref = R.conv_forward(x.astype(np.float64), k.astype(np.float64),
                                  b.astype(np.float64), g, act)
    np.testing.assert_allclose(y, y_ref.reshape(y.shape), **TOL)
    dx_ref, dk_ref, db_ref = R.conv_backward(dy.astype(np.float64).reshape(y_ref.shape),
                                             x.astype(np.float64), k.astype(np.float64),
                                             z_ref, g, act)
    np.testing.assert_allclose(dx, dx_ref, **TOL)
    np.testing.assert_allclose(dw, dk_ref.reshape(dw.shape), **TOL)
    np.testing.assert_allclose(db, db_ref, **TOL)


@pytest.mark.parametrize("case", CASES)
def test_direct_and_previous_paths_agree_closely(case):
    """Direct against Winograd / im2col: float32 rounding apart (a few ulps of the
    largest value; Winograd's transforms add a little)."""
    g, x, k, b, dy = _case(case, 12)
    new = _run(x, k, b, g, "relu", 2, dy, ALL_DIRECT)
    old = _run(x, k, b, g, "relu", 2, dy, NO_DIRECT)
    for a, o in zip(new, old):
        np.testing.assert_allclose(a, o, rtol=0, atol=4e-6 * np.abs(o).max())


@pytest.mark.parametrize("case", CASES)
def test_direct_results_do_not_depend_on_the_thread_count(case):
    """The forward computes each output on one thread, the same way; the kernel
    gradient adds fixed slots in a fixed order: bitwise equal for 1, 2 and 3 threads."""
    g, x, k, b, dy = _case(case, 13)
    runs = [_run(x, k, b, g, "linear", nt, dy, dict(ALL_DIRECT, direct_chunk_px=40))
            for nt in (1, 2, 3)]
    for other in runs[1:]:
        np.testing.assert_array_equal(other[0], runs[0][0])   # y
        np.testing.assert_array_equal(other[1], runs[0][1])   # dW
        np.testing.assert_array_equal(other[3], runs[0][3])   # dx


def test_direct_kernel_gradient_is_split_over_threads():
    """Big enough for several slots and threads: still bitwise the one-thread result."""
    g, x, k, b, dy = _case((16, 32, 32, 16, 16, (3, 3), (1, 1), "same", (1, 1)), 14)
    one = _run(x, k, b, g, "linear", 1, dy, ALL_DIRECT, need=(True, False, False))[1]
    two = _run(x, k, b, g, "linear", 2, dy, ALL_DIRECT, need=(True, False, False))[1]
    np.testing.assert_array_equal(one, two)
    dy64 = dy.astype(np.float64).reshape(16, 32, 32, 16)
    _, dk_ref, _ = R.conv_backward(dy64, x.astype(np.float64), k.astype(np.float64), dy64, g)
    np.testing.assert_allclose(one, dk_ref.reshape(one.shape), **TOL)


@pytest.mark.parametrize("nt", [1, 2])
def test_direct_backward_skips_what_is_not_asked(nt):
    g, x, k, b, dy = _case((3, 10, 10, 12, 16, (3, 3), (1, 1), "same", (1, 1)), 15)
    full = _run(x, k, b, g, "relu", nt, dy, ALL_DIRECT)
    for need in [(True, False, False), (False, True, False), (False, False, True),
                 (True, False, True)]:
        part = _run(x, k, b, g, "relu", nt, dy, ALL_DIRECT, need=need)
        for got, want in zip(part[1:], full[1:]):
            if got is not None:
                # db alone takes the other path's sum order
                np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("which", ["direct_dw", "direct_fwd", "direct_dx"])
def test_each_direct_kernel_can_be_forced_off(which):
    """One direct kernel off, the others on: the mixed paths agree with the twin."""
    g, x, k, b, dy = _case(CASES[0], 16)
    y, dw, db, dx = _run(x, k, b, g, "relu", 2, dy, dict(ALL_DIRECT, **{which: False}))
    y_ref, z_ref = R.conv_forward(x.astype(np.float64), k.astype(np.float64),
                                  b.astype(np.float64), g, "relu")
    dx_ref, dk_ref, db_ref = R.conv_backward(dy.astype(np.float64).reshape(y_ref.shape),
                                             x.astype(np.float64), k.astype(np.float64),
                                             z_ref, g, "relu")
    np.testing.assert_allclose(y, y_ref.reshape(y.shape), **TOL)
    np.testing.assert_allclose(dx, dx_ref, **TOL)
    np.testing.assert_allclose(dw, dk_ref.reshape(dw.shape), **TOL)
    np.testing.assert_allclose(db, db_ref, **TOL)


# Winograd's kernel gradient with its products on the register tiles (F a multiple of
# 8) against BLAS's: (n, h, w, c, filters, kernel); 2-D F(2x2, 3x3) and Conv1D F(m, r).
ATB_CASES = [
    (3, 13, 13, 8, 16, (3, 3)),
    (2, 14, 9, 9, 8, (3, 3)),      # C not a multiple of 6 or 8
    (2, 9, 9, 12, 24, (3, 3)),     # a 16 + 8 filter split
    (3, 1, 37, 8, 16, (1, 5)),
    (2, 1, 30, 11, 8, (1, 3)),
]


@pytest.mark.parametrize("nt", [1, 2])
@pytest.mark.parametrize("case", ATB_CASES)
def test_winograd_kernel_gradient_on_register_tiles(case, nt):
    n, h, w, c, f, kernel = case
    g = conv_geometry((h, w), kernel, (1, 1), "same", (1, 1))
    rng = np.random.default_rng(17)
    x, k, b = _data(rng, n, h, w, c, f, kernel)
    dy = rng.standard_normal((n * g.oh * g.ow, f)).astype(np.float32)
    wino = dict(NO_DIRECT, winograd=True, winograd_ratio=10.0, winograd_tiles=7)
    tiles = _run(x, k, b, g, "linear", nt, dy, dict(wino, wino_atb=True), need=(True, False, False))[1]
    blas = _run(x, k, b, g, "linear", nt, dy, dict(wino, wino_atb=False), need=(True, False, False))[1]
    np.testing.assert_allclose(tiles, blas, rtol=0, atol=4e-6 * np.abs(blas).max())
    dy64 = dy.astype(np.float64).reshape(n, g.oh, g.ow, f)
    _, dk_ref, _ = R.conv_backward(dy64, x.astype(np.float64), k.astype(np.float64), dy64, g)
    np.testing.assert_allclose(tiles, dk_ref.reshape(tiles.shape), **TOL)


@pytest.mark.parametrize("nt", [1, 2])
@pytest.mark.parametrize("case", ATB_CASES + [(2, 10, 11, 16, 20, (3, 3)), (2, 1, 29, 24, 16, (1, 5))])
def test_winograd_forward_on_the_packed_gemm(case, nt):
    """Winograd's forward and input-gradient products on the packed GEMM (16 or more
    outputs) against BLAS's, and against the twin."""
    n, h, w, c, f, kernel = case
    g = conv_geometry((h, w), kernel, (1, 1), "same", (1, 1))
    rng = np.random.default_rng(18)
    x, k, b = _data(rng, n, h, w, c, f, kernel)
    dy = rng.standard_normal((n * g.oh * g.ow, f)).astype(np.float32)
    wino = dict(NO_DIRECT, winograd=True, winograd_ratio=10.0, winograd_tiles=7)
    packed = _run(x, k, b, g, "relu", nt, dy, dict(wino, wino_packed=True))
    blas = _run(x, k, b, g, "relu", nt, dy, dict(wino, wino_packed=False))
    for a, o in zip(packed, blas):
        np.testing.assert_allclose(a, o, rtol=0, atol=4e-6 * np.abs(o).max())
    y_ref, z_ref = R.conv_forward(x.astype(np.float64), k.astype(np.float64),
                                  b.astype(np.float64), g, "relu")
    dx_ref, dk_ref, _ = R.conv_backward(dy.astype(np.float64).reshape(y_ref.shape),
                                        x.astype(np.float64), k.astype(np.float64), z_ref, g,
                                        "relu")
    np.testing.assert_allclose(packed[0], y_ref.reshape(packed[0].shape), **TOL)
    np.testing.assert_allclose(packed[3], dx_ref, **TOL)


@pytest.mark.parametrize("nt", [1, 2])
@pytest.mark.parametrize("act", ["relu", "gelu", "linear"])
@pytest.mark.parametrize("case", [CASES[0], CASES[1], CASES[10], CASES[11], CASES[16]])
def test_direct_kernel_gradient_forms_dz_chunk_by_chunk(case, act, nt):
    """Without dx (a first layer), dz = dy act'(.) is formed, and db summed, a chunk at a
    time inside the kernel gradient's loop: the same dW, bitwise, as from a dz formed
    whole; db close."""
    g, x, k, b, dy = _case(case, 19)
    fused = _run(x, k, b, g, act, nt, dy, ALL_DIRECT, need=(True, True, False))
    whole = _run(x, k, b, g, act, nt, dy, ALL_DIRECT, need=(True, True, True))
    np.testing.assert_array_equal(fused[1], whole[1])
    np.testing.assert_allclose(fused[2], whole[2], rtol=1e-6, atol=1e-5)
    y_ref, z_ref = R.conv_forward(x.astype(np.float64), k.astype(np.float64),
                                  b.astype(np.float64), g, act)
    _, dk_ref, db_ref = R.conv_backward(dy.astype(np.float64).reshape(y_ref.shape),
                                        x.astype(np.float64), k.astype(np.float64), z_ref, g,
                                        act)
    np.testing.assert_allclose(fused[1], dk_ref.reshape(fused[1].shape), **TOL)
    np.testing.assert_allclose(fused[2], db_ref, **TOL)


def test_direct_kernel_gradient_forms_dz_chunk_by_chunk_on_threads():
    """Several slots and threads, dz formed per chunk: bitwise the one-thread dW."""
    g, x, k, b, dy = _case((16, 32, 32, 16, 16, (3, 3), (1, 1), "same", (1, 1)), 20)
    one = _run(x, k, b, g, "relu", 1, dy, ALL_DIRECT, need=(True, True, False))
    two = _run(x, k, b, g, "relu", 2, dy, ALL_DIRECT, need=(True, True, False))
    whole = _run(x, k, b, g, "relu", 2, dy, ALL_DIRECT, need=(True, True, True))
    np.testing.assert_array_equal(one[1], two[1])
    np.testing.assert_array_equal(one[1], whole[1])
    np.testing.assert_allclose(two[2], whole[2], rtol=1e-5, atol=1e-4)
