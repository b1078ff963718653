"""BLAS for fastnet's kernels, bound at import time from SciPy's BLAS.

The function pointers come from ``scipy.linalg.cython_blas`` (the same table a
``cimport`` would use). The module file is loaded directly rather than through
``import scipy.linalg``, which would pull in all of SciPy's linear algebra and
cost about 0.2 s of ``import fastnet``; when that fails (an unusual SciPy
layout), the ordinary import is used.
"""
import importlib.machinery
import importlib.util
import os
import sys

from cpython.pycapsule cimport PyCapsule_GetName, PyCapsule_GetPointer
from cython.parallel cimport prange


ctypedef void (*sgemm_t)(char *ta, char *tb, int *m, int *n, int *k, float *alpha,
                         float *a, int *lda, float *b, int *ldb, float *beta,
                         float *c, int *ldc) noexcept nogil
ctypedef void (*dgemm_t)(char *ta, char *tb, int *m, int *n, int *k, double *alpha,
                         double *a, int *lda, double *b, int *ldb, double *beta,
                         double *c, int *ldc) noexcept nogil
ctypedef void (*sgemv_t)(char *trans, int *m, int *n, float *alpha, float *a, int *lda,
                         float *x, int *incx, float *beta, float *y, int *incy) noexcept nogil
ctypedef void (*dgemv_t)(char *trans, int *m, int *n, double *alpha, double *a, int *lda,
                         double *x, int *incx, double *beta, double *y, int *incy) noexcept nogil

cdef sgemm_t _sgemm = NULL
cdef dgemm_t _dgemm = NULL
cdef sgemv_t _sgemv = NULL
cdef dgemv_t _dgemv = NULL

# Below this many multiply-adds a GEMM runs on one thread: splitting costs more
# than it saves (docs/kernels.rst, "Measurements behind the kernels' choices").
cdef Py_ssize_t PARALLEL_MIN_WORK = 1 << 18


def _load_cython_blas():
    mod = sys.modules.get("scipy.linalg.cython_blas")
    if mod is not None:
        return mod
    try:
        spec = importlib.util.find_spec("scipy")
        folder = os.path.join(os.path.dirname(spec.origin), "linalg")
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = os.path.join(folder, "cython_blas" + suffix)
            if os.path.exists(path):
                fspec = importlib.util.spec_from_file_location("scipy.linalg.cython_blas", path)
                mod = importlib.util.module_from_spec(fspec)
                fspec.loader.exec_module(mod)
                return mod
    except Exception:
        pass
    import scipy.linalg.cython_blas as mod
    return mod


cdef void *_capsule(dict capi, str name) except NULL:
    cap = capi[name]
    return PyCapsule_GetPointer(cap, PyCapsule_GetName(cap))


def _bind():
    global _sgemm, _dgemm, _sgemv, _dgemv
    capi = _load_cython_blas().__pyx_capi__
    _sgemm = <sgemm_t>_capsule(capi, "sgemm")
    _dgemm = <dgemm_t>_capsule(capi, "dgemm")
    _sgemv = <sgemv_t>_capsule(capi, "sgemv")
    _dgemv = <dgemv_t>_capsule(capi, "dgemv")


_bind()


cdef inline int _as_int(Py_ssize_t v) noexcept nogil:
    return <int>(v if v > 1 else 1)


cdef void gemm(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
               floating alpha, const floating *a, Py_ssize_t lda,
               const floating *b, Py_ssize_t ldb,
               floating beta, floating *c, Py_ssize_t ldc) noexcept nogil:
    # Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap the operands.
    cdef char ta = b'T' if trans_b else b'N'
    cdef char tb = b'T' if trans_a else b'N'
    cdef int im = <int>n, jn = <int>m, kk = <int>k
    cdef int ilda = _as_int(ldb), ildb = _as_int(lda), ildc = _as_int(ldc)
    cdef Py_ssize_t i, j
    if m <= 0 or n <= 0:
        return
    if k <= 0:
        for i in range(m):
            for j in range(n):
                c[i * ldc + j] = 0 if beta == 0 else beta * c[i * ldc + j]
        return
    if floating is float:
        _sgemm(&ta, &tb, &im, &jn, &kk, &alpha, <float *>b, &ilda, <float *>a, &ildb,
               &beta, c, &ildc)
    else:
        _dgemm(&ta, &tb, &im, &jn, &kk, &alpha, <double *>b, &ilda, <double *>a, &ildb,
               &beta, c, &ildc)


cdef void gemm_parallel(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                        floating alpha, const floating *a, Py_ssize_t lda,
                        const floating *b, Py_ssize_t ldb,
                        floating beta, floating *c, Py_ssize_t ldc,
                        int n_threads) noexcept nogil:
    cdef Py_ssize_t chunk, n_chunks, t, lo, size
    if n_threads <= 1 or m * n * k < PARALLEL_MIN_WORK or (m < 32 and n < 32):
        gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
        return
    if m >= n:
        # One block of rows of C per thread, rounded to 16 rows for the micro-kernels.
        chunk = ((m + n_threads - 1) // n_threads + 15) // 16 * 16
        n_chunks = (m + chunk - 1) // chunk
        for t in prange(n_chunks, num_threads=n_threads, schedule="static", nogil=True):
            lo = t * chunk
            size = min(chunk, m - lo)
            gemm(trans_a, trans_b, size, n, k, alpha,
                 a + (lo if trans_a else lo * lda), lda, b, ldb, beta, c + lo * ldc, ldc)
    else:
        chunk = ((n + n_threads - 1) // n_threads + 15) // 16 * 16
        n_chunks = (n + chunk - 1) // chunk
        for t in prange(n_chunks, num_threads=n_threads, schedule="static", nogil=True):
            lo = t * chunk
            size = min(chunk, n - lo)
            gemm(trans_a, trans_b, m, size, k, alpha,
                 a, lda, b + (lo * ldb if trans_b else lo), ldb, beta, c + lo, ldc)


cdef void gemv(bint trans_a, Py_ssize_t m, Py_ssize_t n, floating alpha,
               const floating *a, Py_ssize_t lda, const floating *x,
               floating beta, floating *y) noexcept nogil:
    # Row-major A (m x n) is column-major A^T (n x m): flip the transpose flag.
    # y = alpha * op(A) x + beta * y.
    cdef char tr = b'N' if trans_a else b'T'
    cdef int im = <int>n, jn = <int>m, ilda = _as_int(lda), one = 1
    if m <= 0 or n <= 0:
        return
    if floating is float:
        _sgemv(&tr, &im, &jn, &alpha, <float *>a, &ilda, <float *>x, &one, &beta, y, &one)
    else:
        _dgemv(&tr, &im, &jn, &alpha, <double *>a, &ilda, <double *>x, &one, &beta, y, &one)


def gemm_py(floating[:, ::1] a, floating[:, ::1] b, floating[:, ::1] c,
            bint trans_a=False, bint trans_b=False, floating alpha=1, floating beta=0,
            int n_threads=1):
    """Python twin of gemm/gemm_parallel for tests: c = alpha op(a) op(b) + beta c."""
    cdef Py_ssize_t m = a.shape[1] if trans_a else a.shape[0]
    cdef Py_ssize_t k = a.shape[0] if trans_a else a.shape[1]
    cdef Py_ssize_t kb = b.shape[1] if trans_b else b.shape[0]
    cdef Py_ssize_t n = b.shape[0] if trans_b else b.shape[1]
    if k != kb or c.shape[0] != m or c.shape[1] != n:
        raise ValueError(f"gemm shapes do not match: op(a) {(m, k)}, op(b) {(kb, n)}, c {(c.shape[0], c.shape[1])}")
    cdef floating *pa = &a[0, 0] if a.shape[0] * a.shape[1] else NULL
    cdef floating *pb = &b[0, 0] if b.shape[0] * b.shape[1] else NULL
    cdef floating *pc = &c[0, 0] if c.shape[0] * c.shape[1] else NULL
    with nogil:
        gemm_parallel(trans_a, trans_b, m, n, k, alpha, pa, a.shape[1], pb, b.shape[1], beta,
                      pc, c.shape[1], n_threads)
