"""Dropout masks from a counter-based generator, and the masked products.

Element i of a call with key ``seed`` keeps its value when ``u(seed, offset + i) >= rate``,
where u takes the top 24 bits of a two-round 32-bit integer hash of
(i, seed) and maps them to [0, 1). Each element's draw depends only on
(seed, i), so the mask is the same for any number of threads, and the hash uses
32-bit multiplies only so the loop vectorises. ``offset`` (0 by default) shifts the
element index: a call on rows r0.. of a batch with ``offset = r0 * row_size`` draws
the same mask for those rows as a call on the whole batch (data-parallel training
gives each process its rows this way).
"""
cimport numpy as cnp
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport ceil
from libc.stdint cimport uint8_t, uint32_t, uint64_t

from fastnet._kernels cimport _arrays as A

cnp.import_array()

cdef Py_ssize_t PARALLEL_MIN_WORK = 1 << 17


cdef inline uint32_t _mix32(uint32_t x) noexcept nogil:
    x ^= x >> 16
    x *= <uint32_t>0x7FEB352D
    x ^= x >> 15
    x *= <uint32_t>0x846CA68B
    x ^= x >> 16
    return x


cdef inline uint32_t _draw(Py_ssize_t i, uint32_t k1, uint32_t k2) noexcept nogil:
    # 24-bit uniform integer for element i.
    return _mix32(_mix32(<uint32_t>i ^ k1) + (<uint32_t>(<uint64_t>i >> 32) ^ k2)) >> 8


cdef inline void _keys(uint64_t seed, uint32_t *k1, uint32_t *k2) noexcept nogil:
    k1[0] = _mix32(<uint32_t>seed ^ <uint32_t>0x9E3779B9)
    k2[0] = _mix32(<uint32_t>(seed >> 32) + k1[0])


cdef void _forward(const floating *x, floating *y, uint8_t *mask, Py_ssize_t lo, Py_ssize_t hi,
                   uint32_t threshold, floating scale, uint32_t k1, uint32_t k2,
                   Py_ssize_t off) noexcept nogil:
    cdef Py_ssize_t i
    cdef uint8_t keep
    for i in range(lo, hi):
        keep = _draw(i + off, k1, k2) >= threshold
        mask[i] = keep
        y[i] = x[i] * (keep * scale)


cdef void _backward(const floating *dy, const uint8_t *mask, floating *dx, Py_ssize_t lo,
                    Py_ssize_t hi, floating scale) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(lo, hi):
        dx[i] = dy[i] * (mask[i] * scale)


cdef inline Py_ssize_t _chunks(Py_ssize_t n, int n_threads, Py_ssize_t *chunk) noexcept nogil:
    cdef int nt = n_threads if n >= PARALLEL_MIN_WORK and n_threads > 1 else 1
    chunk[0] = ((n + nt - 1) // nt + 63) // 64 * 64
    return (n + chunk[0] - 1) // chunk[0] if n else 0


def forward(x, y, mask, double rate, uint64_t seed, int n_threads=1, Py_ssize_t offset=0):
    """y = x * keep / (1 - rate) elementwise; mask (uint8) receives keep. Arrays are flat;
    element i draws u(seed, offset + i)."""
    cdef int t = A.float_type(x, b"x")
    cdef char *px = A.data(x, t, 1, False, b"x")
    cdef char *py = A.data(y, t, 1, True, b"y")
    cdef uint8_t *pm = <uint8_t *>A.data(mask, cnp.NPY_UINT8, 1, True, b"mask")
    cdef Py_ssize_t n = A.dim(x, 0), chunk, n_chunks, c, lo
    cdef uint32_t k1, k2, threshold
    if A.dim(y, 0) != n or A.dim(mask, 0) != n:
        raise ValueError("dropout forward: x, y and mask sizes differ")
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"dropout rate must be in [0, 1), received {rate}")
    if offset < 0:
        raise ValueError(f"dropout offset must be non-negative, received {offset}")
    threshold = <uint32_t>ceil(rate * 16777216.0)  # keep when u >= rate, u = draw / 2^24
    _keys(seed, &k1, &k2)
    n_chunks = _chunks(n, n_threads, &chunk)
    with nogil:
        if n_chunks <= 1:
            if t == cnp.NPY_FLOAT32:
                _forward(<float *>px, <float *>py, pm, 0, n, threshold, <float>(1 / (1 - rate)), k1, k2, offset)
            else:
                _forward(<double *>px, <double *>py, pm, 0, n, threshold, 1 / (1 - rate), k1, k2, offset)
        else:
            for c in prange(n_chunks, num_threads=n_threads, schedule="static"):
                lo = c * chunk
                if t == cnp.NPY_FLOAT32:
                    _forward(<float *>px, <float *>py, pm, lo, min(n, lo + chunk), threshold,
                             <float>(1 / (1 - rate)), k1, k2, offset)
                else:
                    _forward(<double *>px, <double *>py, pm, lo, min(n, lo + chunk), threshold,
                             1 / (1 - rate), k1, k2, offset)


def backward(dy, mask, dx, double rate, int n_threads=1):
    """dx = dy * mask / (1 - rate) elementwise."""
    cdef int t = A.float_type(dy, b"dy")
    cdef char *pdy = A.data(dy, t, 1, False, b"dy")
    cdef char *pdx = A.data(dx, t, 1, True, b"dx")
    cdef uint8_t *pm = <uint8_t *>A.data(mask, cnp.NPY_UINT8, 1, False, b"mask")
    cdef Py_ssize_t n = A.dim(dy, 0), chunk, n_chunks, c, lo
    if A.dim(dx, 0) != n or A.dim(mask, 0) != n:
        raise ValueError("dropout backward: sizes differ")
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"dropout rate must be in [0, 1), received {rate}")
    n_chunks = _chunks(n, n_threads, &chunk)
    with nogil:
        if n_chunks <= 1:
            if t == cnp.NPY_FLOAT32:
                _backward(<float *>pdy, pm, <float *>pdx, 0, n, <float>(1 / (1 - rate)))
            else:
                _backward(<double *>pdy, pm, <double *>pdx, 0, n, 1 / (1 - rate))
        else:
            for c in prange(n_chunks, num_threads=n_threads, schedule="static"):
                lo = c * chunk
                if t == cnp.NPY_FLOAT32:
                    _backward(<float *>pdy, pm, <float *>pdx, lo, min(n, lo + chunk), <float>(1 / (1 - rate)))
                else:
                    _backward(<double *>pdy, pm, <double *>pdx, lo, min(n, lo + chunk), 1 / (1 - rate))


def uniform(out, uint64_t seed, int n_threads=1, Py_ssize_t offset=0):
    """Fills out (float64, flat) with the u(seed, offset + i) in [0, 1) that forward compares
    to the rate."""
    cdef double *po = <double *>A.data(out, cnp.NPY_FLOAT64, 1, True, b"out")
    cdef Py_ssize_t i, n = A.dim(out, 0)
    cdef uint32_t k1, k2
    if offset < 0:
        raise ValueError(f"dropout offset must be non-negative, received {offset}")
    _keys(seed, &k1, &k2)
    with nogil:
        for i in range(n):
            po[i] = _draw(i + offset, k1, k2) / 16777216.0
