"""Elementwise activation kernels and their derivatives (float32 and float64).

Formulas and constants follow Keras 3: ``hard_sigmoid(x) = relu6(x + 3) / 6``,
``leaky_relu`` with slope ``alpha`` (0.2 by default), ``gelu`` exact (erf) or the
tanh approximation, SELU's alpha 1.67326324 and scale 1.05070098. Where a
derivative can be taken from the output alone (relu, sigmoid, tanh, softmax, elu,
selu, softplus, softsign, relu6, hard_sigmoid, exponential, leaky_relu) the
backward pass reads ``y``; gelu, silu, hard_silu and mish read the input ``z``.

NaN propagates, as ``np.maximum`` does: every select is written so that a NaN
input takes the branch that keeps it (``0 if v < 0 else v``, not ``v if v > 0 else
0``), and a derivative taken where the output is NaN is NaN (``y * 0`` instead of a
literal 0 for the clipped side). A NaN in the data then reaches the loss, where
TerminateOnNaN sees it, instead of vanishing into a zero.
"""
from cython cimport floating
cimport numpy as cnp
from cython.parallel cimport prange

from fastnet._kernels cimport _arrays as A
from fastnet._kernels._openmp cimport fn_expf, fn_sigmoidf, fn_tanhf
from libc.math cimport (erf, erff, exp, expf, expm1, expm1f, fabs, fabsf, log, log1p,
                        log1pf, logf, sqrt, tanh, tanhf)

cnp.import_array()

cdef double SELU_ALPHA = 1.6732632423543772848170429916717
cdef double SELU_SCALE = 1.0507009873554804934193349852946
cdef double SQRT_2_OVER_PI = 0.7978845608028654
cdef double INV_SQRT_2 = 0.7071067811865476
cdef double INV_SQRT_2PI = 0.3989422804014327


cdef inline floating _exp(floating x) noexcept nogil:
    if floating is float:
        return fn_expf(x)
    else:
        return exp(x)


cdef inline floating _tanh(floating x) noexcept nogil:
    if floating is float:
        return fn_tanhf(x)
    else:
        return tanh(x)


cdef inline floating _log1p(floating x) noexcept nogil:
    if floating is float:
        return log1pf(x)
    else:
        return log1p(x)


cdef inline floating _expm1(floating x) noexcept nogil:
    if floating is float:
        return expm1f(x)
    else:
        return expm1(x)


cdef inline floating _erf(floating x) noexcept nogil:
    if floating is float:
        return erff(x)
    else:
        return erf(x)


cdef inline floating _sigmoid(floating x) noexcept nogil:
    # Both branches avoid overflow of exp for large |x|.
    cdef floating e
    if floating is float:
        return fn_sigmoidf(x)
    if x >= 0:
        return 1 / (1 + _exp(-x))
    e = _exp(x)
    return e / (1 + e)


cdef inline floating _softplus(floating x) noexcept nogil:
    # log(1 + e^x) = max(x, 0) + log1p(e^-|x|)
    if x > 0:
        return x + _log1p(_exp(-x))
    return _log1p(_exp(x))


cdef bint needs_input(int code) noexcept nogil:
    return (code == ACT_GELU or code == ACT_GELU_TANH or code == ACT_SILU
            or code == ACT_HARD_SILU or code == ACT_MISH)


cdef void act_row(int code, const floating *z, floating *y, Py_ssize_t n,
                  double alpha) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating v, m, s, a = <floating>alpha
    if code == ACT_LINEAR:
        if y != z:
            for i in range(n):
                y[i] = z[i]
    elif code == ACT_RELU:
        for i in range(n):
            v = z[i]
            y[i] = 0 if v < 0 else v  # NaN passes (a max that keeps NaN, one instruction)
    elif code == ACT_SIGMOID:
        for i in range(n):
            y[i] = _sigmoid(z[i])
    elif code == ACT_TANH:
        for i in range(n):
            y[i] = _tanh(z[i])
    elif code == ACT_SOFTMAX or code == ACT_LOG_SOFTMAX:
        if n == 0:
            return
        m = z[0]
        for i in range(1, n):
            if z[i] > m:
                m = z[i]
        s = 0
        if code == ACT_SOFTMAX:
            for i in range(n):
                v = _exp(z[i] - m)
                y[i] = v
                s = s + v
            s = 1 / s
            for i in range(n):
                y[i] = y[i] * s
        else:
            for i in range(n):
                s = s + _exp(z[i] - m)
            if floating is float:
                s = logf(s)
            else:
                s = log(s)
            for i in range(n):
                y[i] = z[i] - m - s
    elif code == ACT_ELU:
        for i in range(n):
            v = z[i]
            y[i] = v if v > 0 else a * _expm1(v)
    elif code == ACT_SELU:
        for i in range(n):
            v = z[i]
            y[i] = <floating>SELU_SCALE * v if v > 0 else <floating>(SELU_SCALE * SELU_ALPHA) * _expm1(v)
    elif code == ACT_SOFTPLUS:
        for i in range(n):
            y[i] = _softplus(z[i])
    elif code == ACT_SOFTSIGN:
        for i in range(n):
            v = z[i]
            y[i] = v / (1 + (v if v >= 0 else -v))
    elif code == ACT_SILU:
        for i in range(n):
            v = z[i]
            y[i] = v * _sigmoid(v)
    elif code == ACT_GELU:
        for i in range(n):
            v = z[i]
            y[i] = <floating>0.5 * v * (1 + _erf(v * <floating>INV_SQRT_2))
    elif code == ACT_GELU_TANH:
        for i in range(n):
            v = z[i]
            y[i] = <floating>0.5 * v * (1 + _tanh(<floating>SQRT_2_OVER_PI * (v + <floating>0.044715 * v * v * v)))
    elif code == ACT_HARD_SIGMOID:
        for i in range(n):
            v = z[i] + 3
            v = 0 if v < 0 else (6 if v > 6 else v)
            y[i] = v / 6
    elif code == ACT_HARD_SILU:
        for i in range(n):
            v = z[i] + 3
            v = 0 if v < 0 else (6 if v > 6 else v)
            y[i] = z[i] * v / 6
    elif code == ACT_RELU6:
        for i in range(n):
            v = z[i]
            y[i] = 0 if v < 0 else (6 if v > 6 else v)
    elif code == ACT_LEAKY_RELU:
        for i in range(n):
            v = z[i]
            y[i] = v if v > 0 else a * v
    elif code == ACT_EXPONENTIAL:
        for i in range(n):
            y[i] = _exp(z[i])
    elif code == ACT_MISH:
        for i in range(n):
            v = z[i]
            y[i] = v * _tanh(_softplus(v))


cdef void act_grad_row(int code, const floating *dy, const floating *y, const floating *z,
                       floating *dz, Py_ssize_t n, double alpha) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating v, s, t, sp, a = <floating>alpha
    if code == ACT_LINEAR:
        if dz != dy:
            for i in range(n):
                dz[i] = dy[i]
    elif code == ACT_RELU:
        for i in range(n):
            # Load dy first: written this way the select compiles branch-free. The
            # clipped side is y * 0: zero for y == 0, NaN where y is NaN.
            v = dy[i]
            s = y[i]
            dz[i] = v if s > 0 else s * 0
    elif code == ACT_SIGMOID:
        for i in range(n):
            v = y[i]
            dz[i] = dy[i] * v * (1 - v)
    elif code == ACT_TANH:
        for i in range(n):
            v = y[i]
            dz[i] = dy[i] * (1 - v * v)
    elif code == ACT_SOFTMAX:
        s = 0
        for i in range(n):
            s = s + dy[i] * y[i]
        for i in range(n):
            dz[i] = y[i] * (dy[i] - s)
    elif code == ACT_LOG_SOFTMAX:
        s = 0
        for i in range(n):
            s = s + dy[i]
        for i in range(n):
            dz[i] = dy[i] - _exp(y[i]) * s
    elif code == ACT_ELU:
        for i in range(n):
            v = y[i]
            dz[i] = dy[i] if v > 0 else dy[i] * (v + a)
    elif code == ACT_SELU:
        for i in range(n):
            v = y[i]
            dz[i] = dy[i] * <floating>SELU_SCALE if v > 0 else dy[i] * (v + <floating>(SELU_SCALE * SELU_ALPHA))
    elif code == ACT_SOFTPLUS:
        for i in range(n):
            dz[i] = -dy[i] * _expm1(-y[i])
    elif code == ACT_SOFTSIGN:
        for i in range(n):
            v = 1 - (y[i] if y[i] >= 0 else -y[i])
            dz[i] = dy[i] * v * v
    elif code == ACT_SILU:
        for i in range(n):
            v = z[i]
            s = _sigmoid(v)
            dz[i] = dy[i] * s * (1 + v * (1 - s))
    elif code == ACT_GELU:
        for i in range(n):
            v = z[i]
            dz[i] = dy[i] * (<floating>0.5 * (1 + _erf(v * <floating>INV_SQRT_2))
                             + v * <floating>INV_SQRT_2PI * _exp(<floating>-0.5 * v * v))
    elif code == ACT_GELU_TANH:
        for i in range(n):
            v = z[i]
            # With u = e^{-2|a|}: tanh(a) = sign(a)(1-u)/(1+u), 1 - tanh^2 = 4u/(1+u)^2;
            # the second form keeps its precision where tanh saturates.
            t = <floating>SQRT_2_OVER_PI * (v + <floating>0.044715 * v * v * v)
            sp = _exp(-2 * (t if t >= 0 else -t))
            s = 4 * sp / ((1 + sp) * (1 + sp))
            t = (1 - sp) / (1 + sp) if t >= 0 else (sp - 1) / (1 + sp)
            dz[i] = dy[i] * (<floating>0.5 * (1 + t) + <floating>0.5 * v * s
                             * <floating>SQRT_2_OVER_PI * (1 + <floating>0.134145 * v * v))
    elif code == ACT_HARD_SIGMOID:
        for i in range(n):
            v = y[i]
            dz[i] = dy[i] / 6 if (v > 0 and v < 1) else v * 0  # y in [0, 1], or NaN
    elif code == ACT_HARD_SILU:
        for i in range(n):
            v = z[i]
            if v <= -3:
                dz[i] = 0
            elif v >= 3:
                dz[i] = dy[i]
            else:
                dz[i] = dy[i] * (2 * v + 3) / 6
    elif code == ACT_RELU6:
        for i in range(n):
            v = y[i]
            dz[i] = dy[i] if (v > 0 and v < 6) else v * 0  # y in [0, 6], or NaN
    elif code == ACT_LEAKY_RELU:
        for i in range(n):
            # Two single-comparison selects (NaN where y is NaN): they vectorise.
            v = y[i]
            s = dy[i] if v > 0 else dy[i] * a
            dz[i] = v if v != v else s
    elif code == ACT_EXPONENTIAL:
        for i in range(n):
            dz[i] = dy[i] * y[i]
    elif code == ACT_MISH:
        for i in range(n):
            v = z[i]
            sp = _softplus(v)
            t = _tanh(sp)
            dz[i] = dy[i] * (t + v * (1 - t * t) * _sigmoid(v))


# ----------------------------------------------------------------- array entry points

cdef void _forward_rows(int code, const floating *z, floating *y, Py_ssize_t rows,
                        Py_ssize_t cols, double alpha, int nt) noexcept nogil:
    cdef Py_ssize_t r
    if nt == 1:
        for r in range(rows):
            act_row(code, z + r * cols, y + r * cols, cols, alpha)
    else:
        for r in prange(rows, num_threads=nt, schedule="static"):
            act_row(code, z + r * cols, y + r * cols, cols, alpha)


cdef void _backward_rows(int code, const floating *dy, const floating *y, const floating *z,
                         floating *dz, Py_ssize_t rows, Py_ssize_t cols, double alpha,
                         int nt) noexcept nogil:
    cdef Py_ssize_t r
    if nt == 1:
        for r in range(rows):
            act_grad_row(code, dy + r * cols, y + r * cols, z + r * cols if z != NULL else NULL,
                         dz + r * cols, cols, alpha)
    else:
        for r in prange(rows, num_threads=nt, schedule="static"):
            act_grad_row(code, dy + r * cols, y + r * cols, z + r * cols if z != NULL else NULL,
                         dz + r * cols, cols, alpha)


cdef inline void _same_shape(object a, object b, const char *what) except *:
    if A.dim(a, 0) != A.dim(b, 0) or A.dim(a, 1) != A.dim(b, 1):
        raise ValueError(f"activation: {what.decode()} shape {b.shape} differs from {a.shape}")


def forward(int code, z, y, double alpha=0.0, int n_threads=1):
    """y = act(z) row by row (softmax over each row); z and y (rows, cols) may be the same array."""
    cdef int t = A.float_type(z, b"z")
    cdef char *pz = A.data(z, t, 2, False, b"z")
    cdef char *py = A.data(y, t, 2, True, b"y")
    _same_shape(z, y, b"y")
    cdef Py_ssize_t rows = A.dim(z, 0), cols = A.dim(z, 1)
    cdef int nt = 1 if rows * cols < 16384 else n_threads
    if code < 0 or code >= ACT_COUNT:
        raise ValueError(f"unknown activation code {code}")
    with nogil:
        if t == cnp.NPY_FLOAT32:
            _forward_rows(code, <float *>pz, <float *>py, rows, cols, alpha, nt)
        else:
            _forward_rows(code, <double *>pz, <double *>py, rows, cols, alpha, nt)


def backward(int code, dy, y, z, dz, double alpha=0.0, int n_threads=1):
    """dz = dy * act'(.) row by row; z (the input) is read only when the code needs it."""
    cdef int t = A.float_type(dy, b"dy")
    cdef char *pdy = A.data(dy, t, 2, False, b"dy")
    cdef char *py = A.data(y, t, 2, False, b"y")
    cdef char *pdz = A.data(dz, t, 2, True, b"dz")
    cdef char *pz = NULL
    _same_shape(dy, y, b"y")
    _same_shape(dy, dz, b"dz")
    if needs_input(code):
        if z is None:
            raise ValueError("activation backward: this activation needs its input z")
        pz = A.data(z, t, 2, False, b"z")
        _same_shape(dy, z, b"z")
    cdef Py_ssize_t rows = A.dim(dy, 0), cols = A.dim(dy, 1)
    cdef int nt = 1 if rows * cols < 16384 else n_threads
    with nogil:
        if t == cnp.NPY_FLOAT32:
            _backward_rows(code, <float *>pdy, <float *>py, <float *>pz, <float *>pdz,
                           rows, cols, alpha, nt)
        else:
            _backward_rows(code, <double *>pdy, <double *>py, <double *>pz, <double *>pdz,
                           rows, cols, alpha, nt)


cdef Py_ssize_t ADD_BLOCK = 8192   # elements per task of add_relu


cdef void _add_relu(const floating *a, const floating *b, floating *y, Py_ssize_t n,
                    int nt) noexcept nogil:
    cdef Py_ssize_t blk, nb = (n + ADD_BLOCK - 1) // ADD_BLOCK, i, lo, hi
    cdef floating v
    for blk in prange(nb, num_threads=nt, schedule="static"):
        lo = blk * ADD_BLOCK
        hi = lo + ADD_BLOCK
        if hi > n:
            hi = n
        for i in range(lo, hi):
            v = a[i] + b[i]
            y[i] = 0 if v < 0 else v  # (as the ReLU above: NaN passes)


def add_relu(a, b, y, int n_threads=1):
    """y = relu(a + b) in one pass over C-contiguous arrays of one float dtype and one
    size (y may be a or b): a residual sum and the ReLU after it."""
    cdef int t = A.float_type(a, b"a")
    cdef char *pa = A.data(a, t, 2, False, b"a")
    cdef char *pb = A.data(b, t, 2, False, b"b")
    cdef char *py = A.data(y, t, 2, True, b"y")
    _same_shape(a, b, b"b")
    _same_shape(a, y, b"y")
    cdef Py_ssize_t n = A.dim(a, 0) * A.dim(a, 1)
    cdef int nt = 1 if n < 32768 else n_threads
    with nogil:
        if t == cnp.NPY_FLOAT32:
            _add_relu(<float *>pa, <float *>pb, <float *>py, n, nt)
        else:
            _add_relu(<double *>pa, <double *>pb, <double *>py, n, nt)
