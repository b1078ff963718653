"""fastnet._kernels.conv_variants against its numpy twin (fastnet._reference.conv_variants):
depthwise, grouped/3-D convolution and 3-D pooling, float32 and float64, 1 and 2 threads,
sizes below and above the threading threshold."""
import numpy as np
import pytest

from fastnet._kernels import conv_variants as K
from fastnet._reference import conv_variants as ref
from fastnet.layers.convolutional_variants import geometry3

# (input spatial, window, strides, padding, dilation)
GEOMS = [
    ((1, 1, 9), (1, 1, 3), (1, 1, 1), "valid", (1, 1, 1)),
    ((1, 7, 8), (1, 3, 3), (1, 2, 2), "same", (1, 1, 1)),
    ((1, 9, 7), (1, 3, 2), (1, 1, 2), "same", (1, 2, 1)),
    ((4, 5, 6), (2, 3, 2), (2, 1, 2), "same", (1, 1, 1)),
    ((5, 6, 5), (3, 2, 3), (1, 1, 1), "valid", (2, 1, 1)),
    ((1, 16, 16), (1, 3, 3), (1, 1, 1), "same", (1, 1, 1)),
]


def _tol(dtype):
    return (2e-5, 2e-5) if dtype == np.float32 else (1e-12, 1e-12)


def _geometry(case):
    spatial, k, s, p, d = case
    return geometry3(spatial, k, s, p, d)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", GEOMS)
@pytest.mark.parametrize("m,c", [(1, 5), (3, 5), (1, 16), (2, 8)])
def test_depthwise_matches_twin(dtype, case, m, c, n_threads, rng):
    g = _geometry(case)
    n = 3
    x = rng.standard_normal((n,) + case[0] + (c,)).astype(dtype)
    taps = int(np.prod(case[1]))
    w = rng.standard_normal((taps, c * m)).astype(dtype)
    b = rng.standard_normal(c * m).astype(dtype)
    y = np.empty((n,) + g[3:6] + (c * m,), dtype)
    K.depthwise_forward(x, w, b, y, g, n_threads)
    rtol, atol = _tol(dtype)
    np.testing.assert_allclose(y, ref.depthwise_forward(x, w, b, g), rtol=rtol, atol=atol)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx, dw, db = np.full_like(x, np.nan), np.full_like(w, np.nan), np.full_like(b, np.nan)
    K.depthwise_backward(dy, x, w, dx, dw, db, g, n_threads)
    wdx, wdw, wdb = ref.depthwise_backward(dy, x, w, g)
    np.testing.assert_allclose(dx, wdx, rtol=rtol, atol=atol * 10)
    np.testing.assert_allclose(dw, wdw, rtol=rtol * 10, atol=atol * 100)
    np.testing.assert_allclose(db, wdb, rtol=rtol * 10, atol=atol * 100)
    # Skipping outputs leaves them untouched and does not change the others.
    dw2 = np.full_like(w, np.nan)
    K.depthwise_backward(dy, x, w, None, dw2, None, g, n_threads)
    np.testing.assert_array_equal(dw2, dw)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", GEOMS)
@pytest.mark.parametrize("groups", [1, 2])
def test_grouped_conv_matches_twin(dtype, case, groups, n_threads, rng):
    g = _geometry(case)
    n, c, f = 2, 4, 6
    x = rng.standard_normal((n,) + case[0] + (c,)).astype(dtype)
    taps = int(np.prod(case[1]))
    w = rng.standard_normal((taps * c // groups, f)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype)
    rows = n * g[3] * g[4] * g[5]
    y = np.empty((rows, f), dtype)
    K.grouped_forward(x, w, b, y, g, groups, n_threads)
    rtol, atol = _tol(dtype)
    np.testing.assert_allclose(y, ref.grouped_forward(x, w, b, g, groups), rtol=rtol * 10, atol=atol * 10)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx, dw, db = np.full_like(x, np.nan), np.full_like(w, np.nan), np.full_like(b, np.nan)
    K.grouped_backward(dy, x, w, dx, dw, db, g, groups, n_threads)
    wdx, wdw, wdb = ref.grouped_backward(dy, x, w, g, groups)
    np.testing.assert_allclose(dx, wdx, rtol=rtol * 10, atol=atol * 10)
    np.testing.assert_allclose(dw, wdw, rtol=rtol * 10, atol=atol * 100)
    np.testing.assert_allclose(db, wdb, rtol=rtol * 10, atol=atol * 100)


def test_grouped_conv_large_uses_many_blocks(n_threads, rng):
    """More output pixels than one column block: blocks and threads tile the rows exactly."""
    g = geometry3((1, 40, 40), (1, 3, 3), (1, 1, 1), "same", (1, 1, 1))
    x = rng.standard_normal((4, 1, 40, 40, 8)).astype(np.float32)
    w = rng.standard_normal((9 * 4, 8)).astype(np.float32)
    y = np.empty((4 * 1600, 8), np.float32)
    K.grouped_forward(x, w, None, y, g, 2, n_threads)
    np.testing.assert_allclose(y, ref.grouped_forward(x, w, None, g, 2), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("spatial,pool,strides,padding", [
    ((4, 5, 6), (2, 2, 2), (2, 2, 2), "valid"),
    ((5, 6, 5), (3, 3, 3), (2, 2, 2), "same"),
    ((3, 4, 4), (2, 3, 1), (1, 1, 1), "same"),
    ((8, 16, 16), (2, 2, 2), (2, 2, 2), "valid"),
])
def test_pooling_matches_twin(dtype, spatial, pool, strides, padding, n_threads, rng):
    g = geometry3(spatial, pool, strides, padding, (1, 1, 1))
    x = rng.standard_normal((2,) + spatial + (3,)).astype(dtype)
    out = (2,) + g[3:6] + (3,)
    y, am = np.empty(out, dtype), np.empty(out, np.int32)
    K.max_pool_forward(x, y, am, g, n_threads)
    wy, wam = ref.max_pool_forward(x, g)
    np.testing.assert_array_equal(y, wy)
    np.testing.assert_array_equal(am, wam)
    dy = rng.standard_normal(out).astype(dtype)
    dx = np.full_like(x, np.nan)
    K.max_pool_backward(dy, am, dx, n_threads)
    np.testing.assert_allclose(dx, ref.max_pool_backward(dy, am, x.shape), rtol=1e-12, atol=1e-6)
    ya = np.empty(out, dtype)
    K.avg_pool_forward(x, ya, g, n_threads)
    rtol, atol = _tol(dtype)
    np.testing.assert_allclose(ya, ref.avg_pool_forward(x, g), rtol=rtol, atol=atol)
    K.avg_pool_backward(dy, dx, g, n_threads)
    np.testing.assert_allclose(dx, ref.avg_pool_backward(dy, x.shape, g), rtol=rtol, atol=atol)


def test_threads_agree_with_one_thread(rng):
    g = geometry3((1, 32, 32), (1, 3, 3), (1, 1, 1), "same", (1, 1, 1))
    x = rng.standard_normal((8, 1, 32, 32, 16)).astype(np.float32)
    w = rng.standard_normal((9, 16)).astype(np.float32)
    y1, y2 = np.empty((8, 1, 32, 32, 16), np.float32), np.empty((8, 1, 32, 32, 16), np.float32)
    K.depthwise_forward(x, w, None, y1, g, 1)
    K.depthwise_forward(x, w, None, y2, g, 2)
    np.testing.assert_array_equal(y1, y2)
    dx1, dx2 = np.empty_like(x), np.empty_like(x)
    K.depthwise_backward(y1, x, w, dx1, None, None, g, 1)
    K.depthwise_backward(y1, x, w, dx2, None, None, g, 2)
    np.testing.assert_array_equal(dx1, dx2)


def test_bad_arguments_raise():
    g = geometry3((1, 5, 5), (1, 3, 3), (1, 1, 1), "valid", (1, 1, 1))
    x = np.zeros((1, 1, 5, 5, 4), np.float32)
    with pytest.raises(ValueError, match="output shape"):
        K.depthwise_forward(x, np.zeros((9, 4), np.float32), None, np.zeros((1, 1, 5, 5, 4), np.float32), g, 1)
    with pytest.raises(ValueError, match="groups=3 must divide"):
        K.grouped_forward(x, np.zeros((12, 6), np.float32), None, np.zeros((9, 6), np.float32), g, 3, 1)
    with pytest.raises(ValueError, match="18 ints"):
        K.avg_pool_forward(x, np.zeros((1, 1, 3, 3, 4), np.float32), g[:12], 1)
    with pytest.raises(ValueError, match="Buffer dtype mismatch"):
        K.depthwise_forward(x, np.zeros((9, 4)), None, np.zeros((1, 1, 3, 3, 4), np.float32), g, 1)
