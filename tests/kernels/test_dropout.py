import numpy as np
import pytest

from fastnet._kernels import dropout as K
from fastnet._reference import core as ref


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rate", [0.0, 0.2, 0.5, 0.9])
def test_dropout_mask_matches_twin_for_any_thread_count(dtype, rate, n_threads, rng):
    x = rng.standard_normal(200_003).astype(dtype)  # odd size, above the parallel threshold
    y = np.empty_like(x)
    mask = np.empty(x.size, np.uint8)
    K.forward(x, y, mask, rate, 987654321, n_threads)
    want, keep = ref.dropout_forward(x, rate, 987654321)
    np.testing.assert_array_equal(mask.astype(bool), keep)
    np.testing.assert_allclose(y, want, rtol=1e-6)
    if rate:
        assert abs((1 - keep.mean()) - rate) < 0.01
    dy = rng.standard_normal(x.size).astype(dtype)
    dx = np.empty_like(dy)
    K.backward(dy, mask, dx, rate, n_threads)
    np.testing.assert_allclose(dx, np.where(keep, dy / (1 - rate), 0), rtol=1e-6)


def test_uniform_is_in_unit_interval_and_reproducible():
    a = np.empty(10_000)
    b = np.empty(10_000)
    K.uniform(a, 42)
    K.uniform(b, 42)
    np.testing.assert_array_equal(a, b)
    assert a.min() >= 0 and a.max() < 1
    assert abs(a.mean() - 0.5) < 0.02
    np.testing.assert_array_equal(a, ref.dropout_uniform(10_000, 42))


def test_dropout_kernel_refuses_rate_one():
    x = np.ones(4, np.float32)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        K.forward(x, x.copy(), np.empty(4, np.uint8), 1.0, 1)
