# Row helpers of the convolution kernels, shared with the transposed convolution.
from cython cimport floating

# dz = dy * act'(.) over rows * F values (relu without a branch per element).
cdef void grad_rows(int act, const floating *dy, const floating *y, const floating *z,
                    floating *dz, Py_ssize_t rows, Py_ssize_t F, double alpha) noexcept nogil

# out (+)= column sums of a (rows, F); ``first`` clears out before adding.
cdef void col_sums(const floating *a, Py_ssize_t rows, Py_ssize_t F, floating *out,
                   bint first) noexcept nogil

# z (rows, F) += b; y = act(z) (y may be z when the activation's derivative reads y).
cdef void bias_act(floating *zp, floating *yp, const floating *bp, Py_ssize_t rows,
                   Py_ssize_t F, int act, double alpha) noexcept nogil
