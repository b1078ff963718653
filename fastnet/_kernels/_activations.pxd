# Elementwise activations shared by every kernel that fuses one (dense, conv, recurrent).
#
# A row is a contiguous run of ``n`` values; softmax and log_softmax normalise over
# it, every other code is elementwise. ``z`` is the pre-activation, ``y`` the
# output; they may be the same buffer when ``needs_input(code)`` is false, since
# then the derivative is computed from ``y`` alone.
from cython cimport floating

cdef enum:
    ACT_LINEAR = 0
    ACT_RELU = 1
    ACT_SIGMOID = 2
    ACT_TANH = 3
    ACT_SOFTMAX = 4
    ACT_ELU = 5
    ACT_SELU = 6
    ACT_SOFTPLUS = 7
    ACT_SOFTSIGN = 8
    ACT_SILU = 9
    ACT_GELU = 10
    ACT_GELU_TANH = 11
    ACT_HARD_SIGMOID = 12
    ACT_RELU6 = 13
    ACT_LEAKY_RELU = 14
    ACT_EXPONENTIAL = 15
    ACT_HARD_SILU = 16
    ACT_MISH = 17
    ACT_LOG_SOFTMAX = 18
    ACT_COUNT = 19

cdef bint needs_input(int code) noexcept nogil

cdef void act_row(int code, const floating *z, floating *y, Py_ssize_t n,
                  double alpha) noexcept nogil

cdef void act_grad_row(int code, const floating *dy, const floating *y, const floating *z,
                       floating *dz, Py_ssize_t n, double alpha) noexcept nogil

