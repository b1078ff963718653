"""Moment estimates that decay towards zero are flushed to zero instead of becoming
subnormal floats (whose arithmetic runs many times slower on x86), and the flush does
not leak out of the optimizer step."""
import numpy as np
import pytest

from fastnet import backend, optimizers

TINY = np.finfo(np.float32).tiny  # smallest normal float32, about 1.2e-38


def _subnormal_count(a):
    a = np.asarray(a)
    return int(((a != 0) & (np.abs(a) < TINY)).sum())


@pytest.mark.parametrize("n", [1000, 100_000])  # one thread, and the threaded path
def test_adam_moments_decay_to_zero_not_to_subnormals(n):
    from fastnet import config

    var = backend.Variable(np.ones(n, np.float32), name="w")
    opt = optimizers.Adam(learning_rate=1e-3)
    g = np.full(n, 1e-3, np.float32)
    zero = np.zeros(n, np.float32)
    old = config.get_num_threads()
    config.set_num_threads(2)
    try:
        opt.apply_gradients([(g, var)])
        # m decays by 0.9 a step: 1e-4 * 0.9**k drops below 1.2e-38 after about 750 steps
        # (and below the smallest subnormal, 1.4e-45, only after about 840).
        for _ in range(800):
            opt.apply_gradients([(zero, var)])
    finally:
        config.set_num_threads(old)
    m = opt._slots[0]
    assert _subnormal_count(m) == 0
    assert (m == 0).all()
    # v decays by 0.999 a step and is still a normal number: untouched by the flush.
    v = opt._slots[1]
    assert (v > TINY).all()
    np.testing.assert_allclose(v, (1 - 0.999) * 1e-6 * 0.999 ** 800, rtol=1e-3)


def test_the_flush_does_not_leak_into_the_callers_thread():
    var = backend.Variable(np.ones(10, np.float32), name="w")
    optimizers.Adam().apply_gradients([(np.ones(10, np.float32), var)])
    # numpy arithmetic on this thread still produces and reads subnormals.
    x = np.array([1e-38], np.float32) * np.float32(0.01)
    assert x[0] != 0 and _subnormal_count(x) == 1
    assert np.array([1e-40], np.float32)[0] * np.float32(2) != 0


def test_float64_updates_keep_subnormals():
    # float64 runs without the flush (the numpy reference twins' precision).
    var = backend.Variable(np.ones(4, np.float64), name="w")
    opt = optimizers.SGD(learning_rate=1.0, momentum=0.5)
    opt.apply_gradients([(np.full(4, 1e-300, np.float64), var)])
    for _ in range(40):
        opt.apply_gradients([(np.zeros(4, np.float64), var)])
    m = opt._slots[0]
    assert (m != 0).all() and (np.abs(m) < np.finfo(np.float64).tiny).all()
