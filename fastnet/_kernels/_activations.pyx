"""Elementwise activation kernels and their derivatives (float32 and float64).

Formulas and constants follow Keras 3: ``hard_sigmoid(x) = relu6(x + 3) / 6``,
``leaky_relu`` with slope ``alpha`` (0.2 by default), ``gelu`` exact (erf) or the
tanh approximation, SELU's alpha 1.67326324 and scale 1.05070098. Where a
derivative can be taken from the output alone (relu, sigmoid, tanh, softmax, elu,
selu, softplus, softsign, relu6, hard_sigmoid, exponential, leaky_relu) the
backward pass reads ``y``; gelu, silu, hard_silu and mish read the input ``z``.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport (erf, erff, exp, expf, expm1, expm1f, fabs, fabsf, log, log1p,
                        log1pf, logf, sqrt, tanh, tanhf)

cdef double SELU_ALPHA = 1.6732632423543772848170429916717
cdef double SELU_SCALE = 1.0507009873554804934193349852946
cdef double SQRT_2_OVER_PI = 0.7978845608028654
cdef double INV_SQRT_2 = 0.7071067811865476
cdef double INV_SQRT_2PI = 0.3989422804014327


cdef inline floating _exp(floating x) noexcept nogil:
    if floating is float:
        return expf(x)
    else:
        return exp(x)


cdef inline floating _tanh(floating x) noexcept nogil:
    if floating is float:
        return tanhf(x)
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
            y[i] = v if v > 0 else 0
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
            dz[i] = dy[i] if y[i] > 0 else 0
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
            t = _tanh(<floating>SQRT_2_OVER_PI * (v + <floating>0.044715 * v * v * v))
            dz[i] = dy[i] * (<floating>0.5 * (1 + t) + <floating>0.5 * v * (1 - t * t)
                             * <floating>SQRT_2_OVER_PI * (1 + <floating>0.134145 * v * v))
    elif code == ACT_HARD_SIGMOID:
        for i in range(n):
            v = y[i]
            dz[i] = dy[i] / 6 if (v > 0 and v < 1) else 0
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
            dz[i] = dy[i] if (v > 0 and v < 6) else 0
    elif code == ACT_LEAKY_RELU:
        for i in range(n):
            dz[i] = dy[i] if y[i] > 0 else dy[i] * a
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

def forward(int code, const floating[:, ::1] z, floating[:, ::1] y, double alpha=0.0,
            int n_threads=1):
    """y = act(z) row by row; z and y may be the same array. Shapes (rows, cols)."""
    cdef Py_ssize_t r, rows = z.shape[0], cols = z.shape[1]
    if y.shape[0] != rows or y.shape[1] != cols:
        raise ValueError("activation forward: z and y shapes differ")
    if rows * cols < 16384:
        n_threads = 1
    for r in prange(rows, nogil=True, num_threads=n_threads, schedule="static"):
        act_row(code, &z[r, 0], &y[r, 0], cols, alpha)


def backward(int code, const floating[:, ::1] dy, const floating[:, ::1] y,
             const floating[:, ::1] z, floating[:, ::1] dz, double alpha=0.0,
             int n_threads=1):
    """dz = dy * act'(.) row by row; z is read only when the code needs the input."""
    cdef Py_ssize_t r, rows = dy.shape[0], cols = dy.shape[1]
    cdef const floating *pz
    if y.shape[0] != rows or dz.shape[0] != rows or y.shape[1] != cols or dz.shape[1] != cols:
        raise ValueError("activation backward: shapes differ")
    if needs_input(code) and (z is None or z.shape[0] != rows or z.shape[1] != cols):
        raise ValueError("activation backward: this activation needs its input z")
    if rows * cols < 16384:
        n_threads = 1
    for r in prange(rows, nogil=True, num_threads=n_threads, schedule="static"):
        act_grad_row(code, &dy[r, 0], &y[r, 0], &z[r, 0] if needs_input(code) else NULL,
                     &dz[r, 0], cols, alpha)
