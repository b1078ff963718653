# GEMM for the kernels, row-major, callable without the GIL.
#
# C (m x n) = alpha * op(A) (m x k) @ op(B) (k x n) + beta * C, with op(X) = X or X.T.
# ``gemm`` runs on the calling thread (BLAS is pinned to one thread: see
# fastnet.config). ``gemm_parallel`` splits C into one block of rows (or columns)
# per thread and runs ``gemm`` on each inside a prange, so a kernel gets one
# level of parallelism whichever it calls.
from cython cimport floating

cdef void gemm(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
               floating alpha, const floating *a, Py_ssize_t lda,
               const floating *b, Py_ssize_t ldb,
               floating beta, floating *c, Py_ssize_t ldc) noexcept nogil

cdef void gemm_parallel(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                        floating alpha, const floating *a, Py_ssize_t lda,
                        const floating *b, Py_ssize_t ldb,
                        floating beta, floating *c, Py_ssize_t ldc,
                        int n_threads) noexcept nogil

cdef void gemv(bint trans_a, Py_ssize_t m, Py_ssize_t n, floating alpha,
               const floating *a, Py_ssize_t lda, const floating *x,
               floating beta, floating *y) noexcept nogil
