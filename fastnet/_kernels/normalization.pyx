"""Batch normalisation over the last axis, statistics and normalisation fused.

Input is viewed as (rows, channels) with channels last (a (N, H, W, C) batch is
(N*H*W, C) rows). Statistics are accumulated in double precision, one partial
sum per thread over a block of rows, then reduced in a fixed order so results do
not depend on the number of threads beyond rounding.
"""
from cython cimport floating
from cython.parallel cimport prange, parallel
from libc.math cimport sqrt
from libc.stdlib cimport calloc, free

from fastnet._kernels._openmp cimport omp_get_thread_num

cdef Py_ssize_t PARALLEL_MIN_WORK = 1 << 15


cdef inline int _nt(Py_ssize_t rows, Py_ssize_t channels, int n_threads) noexcept nogil:
    if n_threads <= 1 or rows * channels < PARALLEL_MIN_WORK or rows < 2 * n_threads:
        return 1
    return n_threads


cdef Py_ssize_t BLOCK_ROWS = 32
cdef enum:
    TILE = 64


cdef void _block_sums(const floating *a, const floating *b, const floating *mask,
                      const floating *sh, const floating *sc, Py_ssize_t r0, Py_ssize_t r1,
                      Py_ssize_t ch, double *p1, double *p2) noexcept nogil:
    """Adds rows r0..r1 into p1, p2 (see _column_sums), TILE channels at a time, summing
    the block in the input's precision in local arrays the compiler can keep in
    registers and vectorise."""
    cdef floating f1[TILE]
    cdef floating f2[TILE]
    cdef floating v
    cdef Py_ssize_t c0, c, n, r
    cdef const floating *ar
    cdef const floating *br
    cdef const floating *mr
    c0 = 0
    while c0 < ch:
        n = min(TILE, ch - c0)
        for c in range(n):
            f1[c] = 0
            f2[c] = 0
        if b == NULL:
            for r in range(r0, r1):
                ar = a + r * ch + c0
                for c in range(n):
                    v = ar[c] - sh[c0 + c]
                    f1[c] += v
                    f2[c] += v * v
        elif mask == NULL:
            for r in range(r0, r1):
                ar = a + r * ch + c0
                br = b + r * ch + c0
                for c in range(n):
                    v = ar[c]
                    f1[c] += v
                    f2[c] += v * ((br[c] - sh[c0 + c]) * sc[c0 + c])
        else:
            for r in range(r0, r1):
                ar = a + r * ch + c0
                br = b + r * ch + c0
                mr = mask + r * ch + c0
                for c in range(n):
                    v = ar[c] * <floating>(mr[c] > 0)
                    f1[c] += v
                    f2[c] += v * ((br[c] - sh[c0 + c]) * sc[c0 + c])
        for c in range(n):
            p1[c0 + c] += f1[c]
            p2[c0 + c] += f2[c]
        c0 = c0 + TILE


cdef int _column_sums(const floating *a, const floating *b, const floating *mean,
                      const floating *invstd, const floating *mask, Py_ssize_t rows, Py_ssize_t ch,
                      double *s1, double *s2, int nt) except -1 nogil:
    """s1[c] = sum_r a'[r,c]; with b: s2[c] = sum_r a'[r,c] * (b[r,c]-mean[c])*invstd[c];
    without b: s2[c] = sum_r (a[r,c]-mean[c])^2 with mean a shift (NULL: 0), and s1 the
    shifted sum too (summing around a value near the mean keeps E[x^2]-E[x]^2 from
    cancelling). a' is a, or with mask, a where mask > 0 and 0 elsewhere (the
    derivative of a ReLU applied to the normalised output).

    Each thread sums blocks of BLOCK_ROWS rows in the input's precision, then adds each
    block's sums into double-precision totals; the threads' totals are reduced in a
    fixed order."""
    cdef double *part = <double *>calloc(<size_t>(nt * 2 * ch), sizeof(double))
    cdef floating *shift = <floating *>calloc(<size_t>(2 * ch), sizeof(floating))
    cdef floating *scale
    cdef Py_ssize_t t, c, lo, hi, r0, chunk = (rows + nt - 1) // nt
    cdef double *p1
    if part == NULL or shift == NULL:
        free(part)
        free(shift)
        with gil:
            raise MemoryError()
    scale = shift + ch
    for c in range(ch):
        shift[c] = mean[c] if mean != NULL else 0
        scale[c] = invstd[c] if invstd != NULL else 1
    for t in prange(nt, num_threads=nt, schedule="static"):
        lo = t * chunk
        hi = min(rows, lo + chunk)
        p1 = part + t * 2 * ch
        r0 = lo
        while r0 < hi:
            _block_sums(a, b, mask, shift, scale, r0, min(hi, r0 + BLOCK_ROWS), ch, p1, p1 + ch)
            r0 = r0 + BLOCK_ROWS
    for c in range(ch):
        s1[c] = 0
        s2[c] = 0
    for t in range(nt):
        for c in range(ch):
            s1[c] += part[t * 2 * ch + c]
            s2[c] += part[t * 2 * ch + ch + c]
    free(part)
    free(shift)
    return 0


def forward_train(const floating[:, ::1] x, const floating[::1] gamma, const floating[::1] beta,
                  floating[::1] mean, floating[::1] var, floating[::1] invstd,
                  floating[:, ::1] y, double epsilon, int n_threads=1, bint relu=False):
    """Normalises with the batch statistics; returns them in mean, var (biased), invstd.
    With relu, y = max(normalised, 0) (a ReLU that reads only this output, fused)."""
    cdef Py_ssize_t rows = x.shape[0], ch = x.shape[1], r, c
    cdef int nt = _nt(rows, ch, n_threads)
    cdef double *s1
    cdef double *s2
    cdef double m, v
    cdef floating *k
    cdef floating o
    if y.shape[0] != rows or y.shape[1] != ch or gamma.shape[0] != ch or beta.shape[0] != ch:
        raise ValueError("batchnorm forward: shapes do not agree")
    if rows == 0:
        raise ValueError("batchnorm forward: a training batch needs at least one row")
    s1 = <double *>calloc(<size_t>(2 * ch), sizeof(double))
    k = <floating *>calloc(<size_t>(3 * ch), sizeof(floating))
    if s1 == NULL or k == NULL:
        free(s1)
        free(k)
        raise MemoryError()
    s2 = s1 + ch
    try:
        with nogil:
            # The first row as the shift: close to the mean for the data BN sees.
            for c in range(ch):
                k[c] = x[0, c]
            _column_sums(&x[0, 0], NULL, k, NULL, NULL, rows, ch, s1, s2, nt)
            for c in range(ch):
                m = s1[c] / rows
                v = s2[c] / rows - m * m
                if v < 0:
                    v = 0
                m = m + k[c]
                mean[c] = <floating>m
                var[c] = <floating>v
                invstd[c] = <floating>(1.0 / sqrt(v + epsilon))
            # y = x * scale + shift, scale = invstd * gamma, shift = beta - mean * scale
            for c in range(ch):
                k[c] = invstd[c] * gamma[c]
                k[ch + c] = beta[c] - mean[c] * k[c]
            if relu:
                for r in prange(rows, num_threads=nt, schedule="static"):
                    for c in range(ch):
                        o = x[r, c] * k[c] + k[ch + c]
                        y[r, c] = o if o > 0 else 0
            else:
                for r in prange(rows, num_threads=nt, schedule="static"):
                    for c in range(ch):
                        y[r, c] = x[r, c] * k[c] + k[ch + c]
    finally:
        free(s1)
        free(k)


def forward_infer(const floating[:, ::1] x, const floating[::1] scale, const floating[::1] shift,
                  floating[:, ::1] y, int n_threads=1, bint relu=False):
    """y = x * scale + shift per channel (scale and shift folded from the moving stats);
    with relu, max(that, 0)."""
    cdef Py_ssize_t rows = x.shape[0], ch = x.shape[1], r, c
    cdef int nt = _nt(rows, ch, n_threads)
    cdef floating o
    if y.shape[0] != rows or y.shape[1] != ch or scale.shape[0] != ch or shift.shape[0] != ch:
        raise ValueError("batchnorm forward: shapes do not agree")
    if relu:
        for r in prange(rows, nogil=True, num_threads=nt, schedule="static"):
            for c in range(ch):
                o = x[r, c] * scale[c] + shift[c]
                y[r, c] = o if o > 0 else 0
    else:
        for r in prange(rows, nogil=True, num_threads=nt, schedule="static"):
            for c in range(ch):
                y[r, c] = x[r, c] * scale[c] + shift[c]


cdef inline const floating *_mask_ptr(const floating[:, ::1] relu_out, Py_ssize_t rows,
                                      Py_ssize_t ch) except? NULL:
    if relu_out is None:
        return NULL
    if relu_out.shape[0] != rows or relu_out.shape[1] != ch:
        raise ValueError("batchnorm backward: the ReLU output's shape does not agree")
    return &relu_out[0, 0]


def backward_train(const floating[:, ::1] dy, const floating[:, ::1] x,
                   const floating[::1] mean, const floating[::1] invstd,
                   const floating[::1] gamma, floating[:, ::1] dx,
                   floating[::1] dgamma, floating[::1] dbeta, int n_threads=1,
                   const floating[:, ::1] relu_out=None):
    """Gradients through batch statistics. dx, dgamma, dbeta may be None to skip.
    relu_out: the fused ReLU's output; dy is then taken as 0 where it is not positive."""
    cdef Py_ssize_t rows = x.shape[0], ch = x.shape[1], r, c
    cdef int nt = _nt(rows, ch, n_threads)
    cdef double *s1
    cdef double *s2
    cdef floating *k1
    cdef floating *k2
    cdef floating *k3
    cdef floating d
    if dy.shape[0] != rows or dy.shape[1] != ch:
        raise ValueError("batchnorm backward: shapes do not agree")
    cdef const floating *mk = _mask_ptr(relu_out, rows, ch)
    s1 = <double *>calloc(<size_t>(2 * ch), sizeof(double))
    k1 = <floating *>calloc(<size_t>(3 * ch), sizeof(floating))
    if s1 == NULL or k1 == NULL:
        free(s1)
        free(k1)
        raise MemoryError()
    s2 = s1 + ch
    k2 = k1 + ch
    k3 = k2 + ch
    try:
        with nogil:
            _column_sums(&dy[0, 0], &x[0, 0], &mean[0], &invstd[0], mk, rows, ch, s1, s2, nt)
            for c in range(ch):
                if dbeta is not None:
                    dbeta[c] = <floating>s1[c]
                if dgamma is not None:
                    dgamma[c] = <floating>s2[c]
                # dx = gamma*invstd * (dy - s1/n - xhat * s2/n)
                k1[c] = gamma[c] * invstd[c]
                k2[c] = <floating>(s1[c] / rows)
                k3[c] = <floating>(s2[c] / rows) * invstd[c]
            if dx is not None:
                if mk == NULL:
                    for r in prange(rows, num_threads=nt, schedule="static"):
                        for c in range(ch):
                            dx[r, c] = k1[c] * (dy[r, c] - k2[c] - (x[r, c] - mean[c]) * k3[c])
                else:
                    for r in prange(rows, num_threads=nt, schedule="static"):
                        for c in range(ch):
                            d = dy[r, c] * <floating>(mk[r * ch + c] > 0)
                            dx[r, c] = k1[c] * (d - k2[c] - (x[r, c] - mean[c]) * k3[c])
    finally:
        free(s1)
        free(k1)


def backward_infer(const floating[:, ::1] dy, const floating[:, ::1] x,
                   const floating[::1] mean, const floating[::1] invstd,
                   const floating[::1] gamma, floating[:, ::1] dx,
                   floating[::1] dgamma, floating[::1] dbeta, int n_threads=1,
                   const floating[:, ::1] relu_out=None):
    """Gradients with fixed (moving) statistics: an affine map per channel. relu_out as
    in backward_train."""
    cdef Py_ssize_t rows = x.shape[0], ch = x.shape[1], r, c
    cdef int nt = _nt(rows, ch, n_threads)
    cdef double *s1
    cdef double *s2
    if dy.shape[0] != rows or dy.shape[1] != ch:
        raise ValueError("batchnorm backward: shapes do not agree")
    cdef const floating *mk = _mask_ptr(relu_out, rows, ch)
    s1 = <double *>calloc(<size_t>(2 * ch), sizeof(double))
    if s1 == NULL:
        raise MemoryError()
    s2 = s1 + ch
    try:
        with nogil:
            if dgamma is not None or dbeta is not None:
                _column_sums(&dy[0, 0], &x[0, 0], &mean[0], &invstd[0], mk, rows, ch, s1, s2, nt)
                for c in range(ch):
                    if dbeta is not None:
                        dbeta[c] = <floating>s1[c]
                    if dgamma is not None:
                        dgamma[c] = <floating>s2[c]
            if dx is not None:
                if mk == NULL:
                    for r in prange(rows, num_threads=nt, schedule="static"):
                        for c in range(ch):
                            dx[r, c] = dy[r, c] * gamma[c] * invstd[c]
                else:
                    for r in prange(rows, num_threads=nt, schedule="static"):
                        for c in range(ch):
                            dx[r, c] = dy[r, c] * <floating>(mk[r * ch + c] > 0) * gamma[c] * invstd[c]
    finally:
        free(s1)


# ---------------------------------------------------------------- layer normalisation

cdef inline double _lane_sum(const floating *v, Py_ssize_t n) noexcept nogil:
    """sum(v) in double, four independent partial sums (vectorizable; one running sum is a
    dependency chain the compiler may not split without fast-math)."""
    cdef double p[4]
    cdef Py_ssize_t c = 0, l
    cdef double s
    for l in range(4):
        p[l] = 0
    while c + 4 <= n:
        for l in range(4):
            p[l] = p[l] + v[c + l]
        c += 4
    s = (p[0] + p[1]) + (p[2] + p[3])
    while c < n:
        s = s + v[c]
        c += 1
    return s


cdef inline double _lane_sq_dev(const floating *v, Py_ssize_t n, double m) noexcept nogil:
    """sum((v - m)^2) in double, as _lane_sum."""
    cdef double p[4]
    cdef Py_ssize_t c = 0, l
    cdef double s, d
    for l in range(4):
        p[l] = 0
    while c + 4 <= n:
        for l in range(4):
            d = v[c + l] - m
            p[l] = p[l] + d * d
        c += 4
    s = (p[0] + p[1]) + (p[2] + p[3])
    while c < n:
        d = v[c] - m
        s = s + d * d
        c += 1
    return s


cdef inline void _ln_fwd_row(const floating *xr, const floating *gamma, const floating *beta, floating *yr,
                             Py_ssize_t ch, double epsilon, floating *mean_r, floating *inv_r) noexcept nogil:
    cdef double m = _lane_sum(xr, ch) / ch
    cdef double v = _lane_sq_dev(xr, ch, m) / ch
    cdef floating fm = <floating>m
    cdef floating fi = <floating>(1.0 / sqrt(v + epsilon))
    cdef Py_ssize_t c
    mean_r[0] = fm
    inv_r[0] = fi
    for c in range(ch):
        yr[c] = (xr[c] - fm) * fi * gamma[c] + beta[c]


cdef inline void _ln_dx_row(const floating *dyr, const floating *xr, const floating *gamma, floating *dxr,
                            Py_ssize_t ch, floating fm, floating fi) noexcept nogil:
    # dx = invstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * gamma; both sums in
    # four double lanes each, as _lane_sum
    cdef double pa[4]
    cdef double pb[4]
    cdef double a, b
    cdef floating g, xh, fa, fb
    cdef Py_ssize_t c = 0, l
    for l in range(4):
        pa[l] = 0
        pb[l] = 0
    while c + 4 <= ch:
        for l in range(4):
            g = dyr[c + l] * gamma[c + l]
            xh = (xr[c + l] - fm) * fi
            pa[l] = pa[l] + g
            pb[l] = pb[l] + g * xh
        c += 4
    a = (pa[0] + pa[1]) + (pa[2] + pa[3])
    b = (pb[0] + pb[1]) + (pb[2] + pb[3])
    while c < ch:
        g = dyr[c] * gamma[c]
        xh = (xr[c] - fm) * fi
        a = a + g
        b = b + g * xh
        c += 1
    fa = <floating>(a / ch)
    fb = <floating>(b / ch)
    for c in range(ch):
        dxr[c] = fi * (dyr[c] * gamma[c] - fa - (xr[c] - fm) * fi * fb)


def layernorm_forward(const floating[:, ::1] x, const floating[::1] gamma, const floating[::1] beta,
                      floating[::1] mean, floating[::1] invstd, floating[:, ::1] y,
                      double epsilon, int n_threads=1):
    """Normalises each row over its features: y = (x - mean_r) * invstd_r * gamma + beta."""
    cdef Py_ssize_t rows = x.shape[0], ch = x.shape[1], r, c
    cdef int nt = _nt(rows, ch, n_threads)
    cdef double s1, s2, m, v
    if y.shape[0] != rows or y.shape[1] != ch or gamma.shape[0] != ch or beta.shape[0] != ch \
            or mean.shape[0] != rows or invstd.shape[0] != rows:
        raise ValueError("layernorm forward: shapes do not agree")
    if ch == 0:
        return
    for r in prange(rows, nogil=True, num_threads=nt, schedule="static"):
        _ln_fwd_row(&x[r, 0], &gamma[0], &beta[0], &y[r, 0], ch, epsilon, &mean[r], &invstd[r])


def layernorm_backward(const floating[:, ::1] dy, const floating[:, ::1] x,
                       const floating[::1] mean, const floating[::1] invstd,
                       const floating[::1] gamma, floating[:, ::1] dx,
                       floating[::1] dgamma, floating[::1] dbeta, int n_threads=1):
    """Gradients of layer normalisation; dx, dgamma, dbeta may be None to skip them."""
    cdef Py_ssize_t rows = x.shape[0], ch = x.shape[1], r, c, t, lo, hi, chunk
    cdef int nt = _nt(rows, ch, n_threads)
    cdef double a, b, xh, g
    cdef double *part
    cdef double *p
    if dy.shape[0] != rows or dy.shape[1] != ch:
        raise ValueError("layernorm backward: shapes do not agree")
    if ch == 0:
        return
    if dgamma is not None or dbeta is not None:
        part = <double *>calloc(<size_t>(nt * 2 * ch), sizeof(double))
        if part == NULL:
            raise MemoryError()
        chunk = (rows + nt - 1) // nt
        with nogil:
            for t in prange(nt, num_threads=nt, schedule="static"):
                lo = t * chunk
                hi = min(rows, lo + chunk)
                p = part + t * 2 * ch
                for r in range(lo, hi):
                    for c in range(ch):
                        p[c] += dy[r, c] * (x[r, c] - mean[r]) * invstd[r]
                        p[ch + c] += dy[r, c]
            for c in range(ch):
                a = 0
                b = 0
                for t in range(nt):
                    a = a + part[t * 2 * ch + c]
                    b = b + part[t * 2 * ch + ch + c]
                if dgamma is not None:
                    dgamma[c] = <floating>a
                if dbeta is not None:
                    dbeta[c] = <floating>b
        free(part)
    if dx is not None:
        for r in prange(rows, nogil=True, num_threads=nt, schedule="static"):
            _ln_dx_row(&dy[r, 0], &x[r, 0], &gamma[0], &dx[r, 0], ch, mean[r], invstd[r])
