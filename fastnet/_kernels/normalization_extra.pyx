"""Group, RMS and unit (L2) normalisation, forward and backward fused.

Inputs are viewed channels last: RMS and unit normalisation work on (rows,
features) with one statistic per row; group normalisation on (N, S, C) with one
mean and variance per sample and group of ``C / G`` consecutive channels, taken
over the S positions and the group's channels. Statistics are accumulated in
double precision. Weight gradients are summed per thread over a block of rows
(or samples), then the partial sums are added in a fixed order.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport sqrt
from libc.stdlib cimport calloc, free

cdef Py_ssize_t PARALLEL_MIN_WORK = 1 << 15


cdef inline int _nt(Py_ssize_t units, Py_ssize_t work, int n_threads) noexcept nogil:
    if n_threads <= 1 or work < PARALLEL_MIN_WORK or units < 2:
        return 1
    return n_threads if units >= n_threads else <int>units


# ---------------------------------------------------------------- RMS normalisation

def rms_forward(const floating[:, ::1] x, const floating[::1] scale, floating[:, ::1] y,
                floating[::1] inv, double epsilon, int n_threads=1):
    """y = x * inv_r * scale with inv_r = 1 / sqrt(mean(x_r^2) + epsilon); scale may be None."""
    cdef Py_ssize_t rows = x.shape[0], ch = x.shape[1], r, c
    cdef double s, v
    if y.shape[0] != rows or y.shape[1] != ch or inv.shape[0] != rows:
        raise ValueError("rms_norm forward: shapes of x, y and inv do not agree")
    if scale is not None and scale.shape[0] != ch:
        raise ValueError(f"rms_norm forward: scale has {scale.shape[0]} values, expected {ch}")
    if rows == 0 or ch == 0:
        return
    cdef bint has_scale = scale is not None
    cdef int nt = _nt(rows, rows * ch, n_threads)
    for r in prange(rows, nogil=True, num_threads=nt, schedule="static"):
        s = 0
        for c in range(ch):
            s = s + <double>x[r, c] * x[r, c]
        v = 1.0 / sqrt(s / ch + epsilon)
        inv[r] = <floating>v
        if has_scale:
            for c in range(ch):
                y[r, c] = x[r, c] * inv[r] * scale[c]
        else:
            for c in range(ch):
                y[r, c] = x[r, c] * inv[r]


def rms_backward(const floating[:, ::1] dy, const floating[:, ::1] x, const floating[::1] scale,
                 const floating[::1] inv, floating[:, ::1] dx, floating[::1] dscale,
                 int n_threads=1):
    """Gradients of ``rms_forward``; dx and dscale may be None to skip them.

    dx_r = inv_r * (g_r - x_r * inv_r^2 * mean(g_r * x_r)), g = dy * scale;
    dscale = sum over rows of dy * x * inv.
    """
    cdef Py_ssize_t rows = x.shape[0], ch = x.shape[1], r, c, t, lo, hi, chunk
    cdef double a, k
    cdef bint has_scale = scale is not None
    cdef double *part
    cdef double *p
    if dy.shape[0] != rows or dy.shape[1] != ch or inv.shape[0] != rows:
        raise ValueError("rms_norm backward: shapes do not agree")
    if dx is not None and (dx.shape[0] != rows or dx.shape[1] != ch):
        raise ValueError("rms_norm backward: dx must have x's shape")
    if dscale is not None and dscale.shape[0] != ch:
        raise ValueError("rms_norm backward: dscale must have one value per feature")
    if ch == 0:
        return
    cdef int nt = _nt(rows, rows * ch, n_threads)
    if dscale is not None:
        part = <double *>calloc(<size_t>(nt * ch), sizeof(double))
        if part == NULL:
            raise MemoryError()
        chunk = (rows + nt - 1) // nt
        with nogil:
            for t in prange(nt, num_threads=nt, schedule="static"):
                lo = t * chunk
                hi = min(rows, lo + chunk)
                p = part + t * ch
                for r in range(lo, hi):
                    for c in range(ch):
                        p[c] += <double>dy[r, c] * x[r, c] * inv[r]
            for c in range(ch):
                a = 0
                for t in range(nt):
                    a = a + part[t * ch + c]
                dscale[c] = <floating>a
        free(part)
    if dx is not None and rows > 0:
        for r in prange(rows, nogil=True, num_threads=nt, schedule="static"):
            a = 0
            if has_scale:
                for c in range(ch):
                    a = a + <double>dy[r, c] * scale[c] * x[r, c]
            else:
                for c in range(ch):
                    a = a + <double>dy[r, c] * x[r, c]
            k = <double>inv[r] * inv[r] * inv[r] * a / ch
            if has_scale:
                for c in range(ch):
                    dx[r, c] = <floating>(inv[r] * dy[r, c] * scale[c] - x[r, c] * k)
            else:
                for c in range(ch):
                    dx[r, c] = <floating>(inv[r] * dy[r, c] - x[r, c] * k)


# ---------------------------------------------------------------- unit (L2) normalisation

def unit_forward(const floating[:, ::1] x, floating[:, ::1] y, floating[::1] inv,
                 double epsilon, int n_threads=1):
    """y = x * min(1 / ||x_r||, 1 / epsilon), row by row."""
    cdef Py_ssize_t rows = x.shape[0], ch = x.shape[1], r, c
    cdef double s, v, cap = 1.0 / epsilon
    if y.shape[0] != rows or y.shape[1] != ch or inv.shape[0] != rows:
        raise ValueError("unit_norm forward: shapes of x, y and inv do not agree")
    if rows == 0:
        return
    cdef int nt = _nt(rows, rows * ch, n_threads)
    for r in prange(rows, nogil=True, num_threads=nt, schedule="static"):
        s = 0
        for c in range(ch):
            s = s + <double>x[r, c] * x[r, c]
        v = 1.0 / sqrt(s) if s * cap * cap > 1.0 else cap
        inv[r] = <floating>v
        for c in range(ch):
            y[r, c] = x[r, c] * inv[r]


def unit_backward(const floating[:, ::1] dy, const floating[:, ::1] x, const floating[::1] inv,
                  floating[:, ::1] dx, double epsilon, int n_threads=1):
    """dx_r = inv_r * (dy_r - x_r * inv_r^2 * <dy_r, x_r>); where the norm was capped at
    epsilon the scale is a constant and dx_r = inv_r * dy_r."""
    cdef Py_ssize_t rows = x.shape[0], ch = x.shape[1], r, c
    cdef double s, a, k, cap = 1.0 / epsilon
    if dy.shape[0] != rows or dy.shape[1] != ch or inv.shape[0] != rows \
            or dx.shape[0] != rows or dx.shape[1] != ch:
        raise ValueError("unit_norm backward: shapes do not agree")
    if rows == 0:
        return
    cdef int nt = _nt(rows, rows * ch, n_threads)
    for r in prange(rows, nogil=True, num_threads=nt, schedule="static"):
        s = 0
        a = 0
        for c in range(ch):
            s = s + <double>x[r, c] * x[r, c]
            a = a + <double>x[r, c] * dy[r, c]
        if s * cap * cap > 1.0:
            k = <double>inv[r] * inv[r] * inv[r] * a
        else:
            k = 0
        for c in range(ch):
            dx[r, c] = <floating>(inv[r] * dy[r, c] - x[r, c] * k)


# ---------------------------------------------------------------- group normalisation

cdef void _gn_stats(const floating *x, floating *mean, floating *inv, Py_ssize_t S,
                    Py_ssize_t C, Py_ssize_t G, Py_ssize_t n, Py_ssize_t gi,
                    double epsilon) noexcept nogil:
    cdef Py_ssize_t cg = C // G, s, j
    cdef const floating *row
    cdef double m = 0, v = 0, d
    for s in range(S):
        row = x + (n * S + s) * C + gi * cg
        for j in range(cg):
            m += row[j]
    m = m / (S * cg)
    for s in range(S):
        row = x + (n * S + s) * C + gi * cg
        for j in range(cg):
            d = row[j] - m
            v += d * d
    v = v / (S * cg)
    mean[n * G + gi] = <floating>m
    inv[n * G + gi] = <floating>(1.0 / sqrt(v + epsilon))


def group_forward(const floating[:, :, ::1] x, const floating[::1] gamma,
                  const floating[::1] beta, floating[:, ::1] mean, floating[:, ::1] inv,
                  floating[:, :, ::1] y, double epsilon, int n_threads=1):
    """Group normalisation of x (N, S, C) in G = mean.shape[1] groups of channels.

    mean, inv (N, G) receive each group's mean and 1 / sqrt(var + epsilon);
    y = (x - mean) * inv * gamma + beta (gamma, beta per channel; either may be None).
    """
    cdef Py_ssize_t N = x.shape[0], S = x.shape[1], C = x.shape[2], G = mean.shape[1]
    cdef Py_ssize_t u, n, s, c, cg
    if G <= 0 or C % G != 0:
        raise ValueError(f"group_norm forward: {G} groups do not divide {C} channels")
    if mean.shape[0] != N or inv.shape[0] != N or inv.shape[1] != G:
        raise ValueError("group_norm forward: mean and inv must be (N, groups)")
    if y.shape[0] != N or y.shape[1] != S or y.shape[2] != C:
        raise ValueError("group_norm forward: y must have x's shape")
    if (gamma is not None and gamma.shape[0] != C) or (beta is not None and beta.shape[0] != C):
        raise ValueError("group_norm forward: gamma and beta need one value per channel")
    if N * S * C == 0:
        return
    cg = C // G
    cdef bint has_g = gamma is not None, has_b = beta is not None
    cdef floating sc, sh
    cdef floating *mp = &mean[0, 0]
    cdef floating *ip = &inv[0, 0]
    cdef int nt = _nt(N * G, N * S * C, n_threads)
    for u in prange(N * G, nogil=True, num_threads=nt, schedule="static"):
        _gn_stats(&x[0, 0, 0], mp, ip, S, C, G, u // G, u % G, epsilon)
    nt = _nt(N * S, N * S * C, n_threads)
    for u in prange(N * S, nogil=True, num_threads=nt, schedule="static"):
        n = u // S
        s = u % S
        for c in range(C):
            sc = ip[n * G + c // cg]
            sh = -mp[n * G + c // cg] * sc
            if has_g:
                sc = sc * gamma[c]
                sh = sh * gamma[c]
            if has_b:
                sh = sh + beta[c]
            y[n, s, c] = x[n, s, c] * sc + sh


cdef void _gn_back_sample(const floating *dy, const floating *x, const floating *gamma,
                          const floating *mean, const floating *inv, floating *dx,
                          double *pg, double *pb, double *acc, Py_ssize_t S, Py_ssize_t C,
                          Py_ssize_t G, Py_ssize_t n) noexcept nogil:
    """Sample n: dx written; pg, pb (per-channel dgamma, dbeta partials) added to.
    acc is scratch of 2 * G doubles."""
    cdef Py_ssize_t cg = C // G, s, c, gi, o
    cdef double xh, gg, m, iv
    for gi in range(2 * G):
        acc[gi] = 0
    for s in range(S):
        o = (n * S + s) * C
        for c in range(C):
            gi = c // cg
            xh = (x[o + c] - mean[n * G + gi]) * <double>inv[n * G + gi]
            gg = dy[o + c] * (<double>gamma[c] if gamma != NULL else 1.0)
            acc[gi] += gg
            acc[G + gi] += gg * xh
            if pg != NULL:
                pg[c] += dy[o + c] * xh
            if pb != NULL:
                pb[c] += dy[o + c]
    if dx == NULL:
        return
    m = <double>(S * cg)
    for gi in range(2 * G):
        acc[gi] = acc[gi] / m
    for s in range(S):
        o = (n * S + s) * C
        for c in range(C):
            gi = c // cg
            iv = inv[n * G + gi]
            xh = (x[o + c] - mean[n * G + gi]) * iv
            gg = dy[o + c] * (<double>gamma[c] if gamma != NULL else 1.0)
            dx[o + c] = <floating>(iv * (gg - acc[gi] - xh * acc[G + gi]))


def group_backward(const floating[:, :, ::1] dy, const floating[:, :, ::1] x,
                   const floating[::1] gamma, const floating[:, ::1] mean,
                   const floating[:, ::1] inv, floating[:, :, ::1] dx, floating[::1] dgamma,
                   floating[::1] dbeta, int n_threads=1):
    """Gradients of ``group_forward``; dx, dgamma, dbeta may be None to skip them."""
    cdef Py_ssize_t N = x.shape[0], S = x.shape[1], C = x.shape[2], G = mean.shape[1]
    cdef Py_ssize_t t, lo, hi, n, c, chunk, size
    cdef double acc
    if G <= 0 or C % G != 0 or mean.shape[0] != N or inv.shape[0] != N or inv.shape[1] != G:
        raise ValueError("group_norm backward: mean and inv must be (N, groups), groups dividing C")
    if dy.shape[0] != N or dy.shape[1] != S or dy.shape[2] != C:
        raise ValueError("group_norm backward: dy must have x's shape")
    if dx is not None and (dx.shape[0] != N or dx.shape[1] != S or dx.shape[2] != C):
        raise ValueError("group_norm backward: dx must have x's shape")
    if (dgamma is not None and dgamma.shape[0] != C) or (dbeta is not None and dbeta.shape[0] != C):
        raise ValueError("group_norm backward: dgamma and dbeta need one value per channel")
    if gamma is not None and gamma.shape[0] != C:
        raise ValueError("group_norm backward: gamma needs one value per channel")
    if C == 0:
        return
    cdef int nt = _nt(N, N * S * C, n_threads)
    size = 2 * C + 2 * G
    cdef double *part = <double *>calloc(<size_t>(nt * size), sizeof(double))
    if part == NULL:
        raise MemoryError()
    cdef const floating *gp = &gamma[0] if gamma is not None else NULL
    cdef floating *dxp = &dx[0, 0, 0] if dx is not None and N * S > 0 else NULL
    cdef bint want_g = dgamma is not None, want_b = dbeta is not None
    chunk = (N + nt - 1) // nt
    try:
        if N * S > 0:
            for t in prange(nt, nogil=True, num_threads=nt, schedule="static"):
                lo = t * chunk
                hi = min(N, lo + chunk)
                for n in range(lo, hi):
                    _gn_back_sample(&dy[0, 0, 0], &x[0, 0, 0], gp, &mean[0, 0], &inv[0, 0], dxp,
                                    part + t * size if want_g else NULL,
                                    part + t * size + C if want_b else NULL,
                                    part + t * size + 2 * C, S, C, G, n)
        with nogil:
            for c in range(C):
                if want_g:
                    acc = 0
                    for t in range(nt):
                        acc = acc + part[t * size + c]
                    dgamma[c] = <floating>acc
                if want_b:
                    acc = 0
                    for t in range(nt):
                        acc = acc + part[t * size + C + c]
                    dbeta[c] = <floating>acc
    finally:
        free(part)
