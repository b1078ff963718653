"""Embedding lookup: rows of a table gathered by integer index, and the scatter-add back.

Indices are checked before any row is read, so an index outside [0, input_dim)
is reported (by position) instead of reading outside the table.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.stdint cimport int64_t
from libc.string cimport memcpy

cdef Py_ssize_t PARALLEL_MIN_WORK = 1 << 16


def first_bad_index(const int64_t[::1] idx, int64_t input_dim):
    """Position of the first index outside [0, input_dim), or -1 when all are valid."""
    cdef Py_ssize_t i, n = idx.shape[0], bad = -1
    with nogil:
        for i in range(n):
            if idx[i] < 0 or idx[i] >= input_dim:
                bad = i
                break
    return bad


def forward(const int64_t[::1] idx, const floating[:, ::1] table, floating[:, ::1] out,
            int n_threads=1):
    """out[i] = table[idx[i]]; raises IndexError naming the first bad index."""
    cdef Py_ssize_t n = idx.shape[0], d = table.shape[1], i
    cdef int64_t v = table.shape[0]
    cdef Py_ssize_t bad
    cdef int nt = n_threads if n * d >= PARALLEL_MIN_WORK else 1
    if out.shape[0] != n or out.shape[1] != d:
        raise ValueError(f"embedding forward: out has shape {(out.shape[0], out.shape[1])}, "
                         f"expected {(n, d)}")
    bad = first_bad_index(idx, v)
    if bad >= 0:
        raise IndexError(f"embedding index {idx[bad]} is out of range [0, {v}) "
                         f"(input_dim={v})")
    if n == 0 or d == 0:
        return
    for i in prange(n, nogil=True, num_threads=nt, schedule="static"):
        memcpy(&out[i, 0], &table[idx[i], 0], d * sizeof(floating))


def backward(const int64_t[::1] idx, const floating[:, ::1] dy, floating[:, ::1] dtable,
             int n_threads=1):
    """dtable = 0, then dtable[idx[i]] += dy[i] (threads split the columns, so no two
    threads ever add into the same element)."""
    cdef Py_ssize_t n = idx.shape[0], d = dtable.shape[1], i, j, c0, c1, blk
    cdef int nt = n_threads if (n * d >= PARALLEL_MIN_WORK and d >= 16) else 1
    if dy.shape[0] != n or dy.shape[1] != d:
        raise ValueError("embedding backward: dy shape does not match the indices and table")
    if first_bad_index(idx, dtable.shape[0]) >= 0:
        raise IndexError("embedding backward: index out of range")
    dtable[:, :] = 0
    if n == 0 or d == 0:
        return
    blk = (d + nt - 1) // nt
    for c0 in prange(0, d, blk, nogil=True, num_threads=nt, schedule="static"):
        c1 = min(d, c0 + blk)
        for i in range(n):
            for j in range(c0, c1):
                dtable[idx[i], j] = dtable[idx[i], j] + dy[i, j]
