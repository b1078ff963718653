"""Dropout masks from a counter-based generator, and the masked products.

Element i of a call with key ``seed`` keeps its value when
``u(seed, i) >= rate``, where u is the splitmix64 hash of (seed, i) mapped to
[0, 1) with 24 bits. Each element's draw depends only on (seed, i), so the mask
is the same for any number of threads.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport ceil
from libc.stdint cimport uint8_t, uint64_t

cdef Py_ssize_t PARALLEL_MIN_WORK = 1 << 16


cdef inline uint64_t _mix(uint64_t z) noexcept nogil:
    z = (z ^ (z >> 30)) * <uint64_t>0xBF58476D1CE4E5B9ULL
    z = (z ^ (z >> 27)) * <uint64_t>0x94D049BB133111EBULL
    return z ^ (z >> 31)


def forward(const floating[::1] x, floating[::1] y, uint8_t[::1] mask, double rate,
            uint64_t seed, int n_threads=1):
    """y = x * keep / (1 - rate); mask receives keep (0 or 1). Arrays are flat."""
    cdef Py_ssize_t i, n = x.shape[0]
    cdef uint64_t threshold = <uint64_t>ceil(rate * 16777216.0)  # keep when u >= rate, u = h / 2^24
    cdef floating scale = <floating>(1.0 / (1.0 - rate))
    cdef uint64_t key = _mix(seed + <uint64_t>0x9E3779B97F4A7C15ULL)
    cdef uint8_t keep
    cdef int nt = n_threads if n >= PARALLEL_MIN_WORK else 1
    if y.shape[0] != n or mask.shape[0] != n:
        raise ValueError("dropout forward: x, y and mask sizes differ")
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"dropout rate must be in [0, 1), received {rate}")
    for i in prange(n, nogil=True, num_threads=nt, schedule="static"):
        keep = (_mix(key + <uint64_t>i * <uint64_t>0x9E3779B97F4A7C15ULL) >> 40) >= threshold
        mask[i] = keep
        y[i] = x[i] * scale if keep else 0


def backward(const floating[::1] dy, const uint8_t[::1] mask, floating[::1] dx, double rate,
             int n_threads=1):
    """dx = dy * mask / (1 - rate)."""
    cdef Py_ssize_t i, n = dy.shape[0]
    cdef floating scale = <floating>(1.0 / (1.0 - rate))
    cdef int nt = n_threads if n >= PARALLEL_MIN_WORK else 1
    if dx.shape[0] != n or mask.shape[0] != n:
        raise ValueError("dropout backward: sizes differ")
    for i in prange(n, nogil=True, num_threads=nt, schedule="static"):
        dx[i] = dy[i] * scale if mask[i] else 0


def uniform(floating[::1] out, uint64_t seed, int n_threads=1):
    """Fills out with the same u(seed, i) in [0, 1) that forward compares to the rate."""
    cdef Py_ssize_t i, n = out.shape[0]
    cdef uint64_t key = _mix(seed + <uint64_t>0x9E3779B97F4A7C15ULL)
    cdef int nt = n_threads if n >= PARALLEL_MIN_WORK else 1
    for i in prange(n, nogil=True, num_threads=nt, schedule="static"):
        out[i] = <floating>(<double>(_mix(key + <uint64_t>i * <uint64_t>0x9E3779B97F4A7C15ULL) >> 40) / 16777216.0)
