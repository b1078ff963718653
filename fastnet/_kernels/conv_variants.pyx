"""Depthwise, grouped and 3-D convolution, and 3-D pooling (channels last).

Every kernel works on 5-D arrays ``(N, D, H, W, C)``; 2-D images are volumes with
``D = 1`` and 1-D signals have ``D = H = 1``, so one code path serves the 1-D,
2-D and 3-D layers. The window geometry is a tuple of 18 ints (see
``fastnet.layers.convolutional_variants.geometry3``): input size (d, h, w), output
size, window, strides, dilation and the zero padding before the input, each as
(d, h, w).

* Depthwise convolution is computed directly (it is memory-bound: every input
  value is used ``kd * kh * kw * depth_multiplier`` times, too few for a GEMM to
  pay off). Output channel ``c * M + m`` is input channel ``c`` convolved with
  ``w[..., c, m]``, Keras's order.
* Grouped and 3-D convolution gather each block of output pixels' windows (one
  group's channels at a time) into a column matrix and multiply it by the
  group's slice of the kernel with BLAS; the backward pass scatters the column
  gradient back (col2im).
* Pooling skips taps in the ``same`` padding: they never win a max and are not
  counted in an average.

Forward passes split the output rows among threads; backward passes split the
samples (windows overlap, so each sample's input gradient has one writer) and
give each thread its own weight-gradient partial sums, added in a fixed order.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memset

from fastnet._kernels._blas cimport gemm

cdef Py_ssize_t PARALLEL_MIN_WORK = 1 << 15
# Elements of one thread's column block (rows * window size).
cdef Py_ssize_t CHUNK_ELEMS = 1 << 16

ctypedef int index_t


cdef struct G3:
    Py_ssize_t n, c
    Py_ssize_t d, h, w
    Py_ssize_t od, oh, ow
    Py_ssize_t kd, kh, kw
    Py_ssize_t sd, sh, sw
    Py_ssize_t dd, dh, dw
    Py_ssize_t pd, ph, pw


cdef G3 _geom(object geometry, Py_ssize_t n, Py_ssize_t c) except *:
    cdef G3 g
    t = tuple(geometry)
    if len(t) != 18:
        raise ValueError(f"geometry must hold 18 ints (in, out, window, strides, dilation, "
                         f"padding, each (d, h, w)), received {len(t)}")
    if any(int(v) < 0 for v in t) or any(int(v) <= 0 for v in t[6:15]):
        raise ValueError(f"invalid geometry {t}")
    g.n, g.c = n, c
    g.d, g.h, g.w = t[0], t[1], t[2]
    g.od, g.oh, g.ow = t[3], t[4], t[5]
    g.kd, g.kh, g.kw = t[6], t[7], t[8]
    g.sd, g.sh, g.sw = t[9], t[10], t[11]
    g.dd, g.dh, g.dw = t[12], t[13], t[14]
    g.pd, g.ph, g.pw = t[15], t[16], t[17]
    return g


cdef int _check_in(tuple shape, const G3 *g, str what) except -1:
    if shape[1] != g.d or shape[2] != g.h or shape[3] != g.w:
        raise ValueError(f"{what}: input spatial size {shape[1:4]} differs from the geometry's "
                         f"{(g.d, g.h, g.w)}")
    return 0


cdef int _check_out(tuple shape, const G3 *g, Py_ssize_t ch, str what) except -1:
    if shape[0] != g.n or shape[1] != g.od or shape[2] != g.oh or shape[3] != g.ow or shape[4] != ch:
        raise ValueError(f"{what}: output shape {shape[:5]} differs from "
                         f"{(g.n, g.od, g.oh, g.ow, ch)}")
    return 0


cdef inline int _threads(Py_ssize_t work, Py_ssize_t units, int n_threads) noexcept nogil:
    if n_threads <= 1 or work < PARALLEL_MIN_WORK or units < 2:
        return 1
    return n_threads if units >= n_threads else <int>units


cdef inline Py_ssize_t _in_pos(Py_ssize_t o, Py_ssize_t s, Py_ssize_t p, Py_ssize_t k,
                               Py_ssize_t d) noexcept nogil:
    return o * s - p + k * d


# ================================================================= depthwise

cdef inline void _ox_range(const G3 *g, Py_ssize_t e, Py_ssize_t *lo, Py_ssize_t *hi) noexcept nogil:
    """Output columns [lo, hi) whose tap e falls inside the input (not in the padding)."""
    cdef Py_ssize_t a = g.pw - e * g.dw, b = g.w - 1 + g.pw - e * g.dw
    lo[0] = 0 if a <= 0 else (a + g.sw - 1) // g.sw
    hi[0] = 0 if b < 0 else b // g.sw + 1
    if hi[0] > g.ow:
        hi[0] = g.ow
    if lo[0] > hi[0]:
        lo[0] = hi[0]


cdef void _dw_row(const floating *x, const floating *w, const floating *b, floating *y,
                  const G3 *g, Py_ssize_t M, Py_ssize_t row) noexcept nogil:
    """One output row (n, od, oh): every ox, every output channel.

    Taps are the outer loops and the output columns the inner one, over the range of
    columns whose tap is inside the input, so the inner loops carry no bounds checks.
    """
    cdef Py_ssize_t C = g.c, CM = g.c * M
    cdef Py_ssize_t oh = row % g.oh, od = (row // g.oh) % g.od, n = row // (g.oh * g.od)
    cdef Py_ssize_t ox, a, bb, e, iz, iy, c, m, k, lo, hi
    cdef floating *yr = y + row * g.ow * CM
    cdef floating *out
    cdef const floating *xrow
    cdef const floating *xr
    cdef const floating *wr
    cdef floating xv
    for ox in range(g.ow):
        out = yr + ox * CM
        if b != NULL:
            for c in range(CM):
                out[c] = b[c]
        else:
            for c in range(CM):
                out[c] = 0
    for a in range(g.kd):
        iz = _in_pos(od, g.sd, g.pd, a, g.dd)
        if iz < 0 or iz >= g.d:
            continue
        for bb in range(g.kh):
            iy = _in_pos(oh, g.sh, g.ph, bb, g.dh)
            if iy < 0 or iy >= g.h:
                continue
            xrow = x + ((n * g.d + iz) * g.h + iy) * g.w * C
            for e in range(g.kw):
                _ox_range(g, e, &lo, &hi)
                wr = w + ((a * g.kh + bb) * g.kw + e) * CM
                for ox in range(lo, hi):
                    xr = xrow + (ox * g.sw - g.pw + e * g.dw) * C
                    out = yr + ox * CM
                    if M == 1:
                        for c in range(C):
                            out[c] = out[c] + xr[c] * wr[c]
                    else:
                        for c in range(C):
                            xv = xr[c]
                            k = c * M
                            for m in range(M):
                                out[k + m] = out[k + m] + xv * wr[k + m]


def depthwise_forward(const floating[:, :, :, :, ::1] x, const floating[:, ::1] w,
                      const floating[::1] b, floating[:, :, :, :, ::1] y, object geometry,
                      int n_threads=1):
    """y = depthwise_conv(x, w) + b.

    Args:
        x: (N, D, H, W, C) input.
        w: (kd * kh * kw, C * M) kernel (Keras's (..., C, M) kernel, flattened).
        b: (C * M,) bias or None.
        y: (N, OD, OH, OW, C * M) output.
    """
    cdef G3 g = _geom(geometry, x.shape[0], x.shape[4])
    cdef Py_ssize_t CM = w.shape[1], M, rows, r
    _check_in(tuple(x.shape), &g, "depthwise forward")
    if g.c == 0 or CM % g.c != 0 or w.shape[0] != g.kd * g.kh * g.kw:
        raise ValueError(f"depthwise forward: kernel {tuple(w.shape)[:2]} does not fit "
                         f"{g.c} channels and a {(g.kd, g.kh, g.kw)} window")
    M = CM // g.c
    _check_out(tuple(y.shape), &g, CM, "depthwise forward")
    if b is not None and b.shape[0] != CM:
        raise ValueError(f"depthwise forward: bias has {b.shape[0]} values, expected {CM}")
    rows = g.n * g.od * g.oh
    if rows * g.ow * CM == 0:
        return
    cdef const floating *bp = &b[0] if b is not None else NULL
    cdef int nt = _threads(rows * g.ow * CM * g.kd * g.kh * g.kw, rows, n_threads)
    for r in prange(rows, nogil=True, num_threads=nt, schedule="static"):
        _dw_row(&x[0, 0, 0, 0, 0], &w[0, 0], bp, &y[0, 0, 0, 0, 0], &g, M, r)


cdef void _dw_back_sample(const floating *dy, const floating *x, const floating *w,
                          floating *dx, floating *dw, floating *db, const G3 *g,
                          Py_ssize_t M, Py_ssize_t n) noexcept nogil:
    """Sample n's input gradient (written), kernel and bias gradients (added); loops
    ordered as in ``_dw_row``."""
    cdef Py_ssize_t C = g.c, CM = g.c * M
    cdef Py_ssize_t od, oh, ox, a, bb, e, iz, iy, c, m, k, lo, hi, row
    cdef const floating *grow
    cdef const floating *gr
    cdef const floating *xrow
    cdef const floating *xr
    cdef const floating *wr
    cdef floating *dxrow
    cdef floating *dxr
    cdef floating *dwr
    cdef floating s, xv
    if dx != NULL:
        memset(dx + n * g.d * g.h * g.w * C, 0, g.d * g.h * g.w * C * sizeof(floating))
    for od in range(g.od):
        for oh in range(g.oh):
            row = (n * g.od + od) * g.oh + oh
            grow = dy + row * g.ow * CM
            if db != NULL:
                for ox in range(g.ow):
                    gr = grow + ox * CM
                    for c in range(CM):
                        db[c] = db[c] + gr[c]
            for a in range(g.kd):
                iz = _in_pos(od, g.sd, g.pd, a, g.dd)
                if iz < 0 or iz >= g.d:
                    continue
                for bb in range(g.kh):
                    iy = _in_pos(oh, g.sh, g.ph, bb, g.dh)
                    if iy < 0 or iy >= g.h:
                        continue
                    k = ((n * g.d + iz) * g.h + iy) * g.w * C
                    xrow = x + k
                    dxrow = dx + k if dx != NULL else NULL
                    for e in range(g.kw):
                        _ox_range(g, e, &lo, &hi)
                        wr = w + ((a * g.kh + bb) * g.kw + e) * CM
                        dwr = dw + ((a * g.kh + bb) * g.kw + e) * CM if dw != NULL else NULL
                        for ox in range(lo, hi):
                            gr = grow + ox * CM
                            k = (ox * g.sw - g.pw + e * g.dw) * C
                            xr = xrow + k
                            if M == 1:
                                if dxrow != NULL:
                                    dxr = dxrow + k
                                    for c in range(C):
                                        dxr[c] = dxr[c] + gr[c] * wr[c]
                                if dwr != NULL:
                                    for c in range(C):
                                        dwr[c] = dwr[c] + gr[c] * xr[c]
                            else:
                                if dxrow != NULL:
                                    dxr = dxrow + k
                                    for c in range(C):
                                        s = 0
                                        for m in range(M):
                                            s = s + gr[c * M + m] * wr[c * M + m]
                                        dxr[c] = dxr[c] + s
                                if dwr != NULL:
                                    for c in range(C):
                                        xv = xr[c]
                                        for m in range(M):
                                            dwr[c * M + m] = dwr[c * M + m] + gr[c * M + m] * xv


def depthwise_backward(const floating[:, :, :, :, ::1] dy, const floating[:, :, :, :, ::1] x,
                       const floating[:, ::1] w, floating[:, :, :, :, ::1] dx,
                       floating[:, ::1] dw, floating[::1] db, object geometry, int n_threads=1):
    """Gradients of ``depthwise_forward``; dx, dw and db may be None to skip them.

    dw and db are overwritten (not accumulated into).
    """
    cdef G3 g = _geom(geometry, x.shape[0], x.shape[4])
    cdef Py_ssize_t CM = w.shape[1], M, K = w.shape[0], t, lo, hi, n, i, size
    _check_in(tuple(x.shape), &g, "depthwise backward")
    if g.c == 0 or CM % g.c != 0 or K != g.kd * g.kh * g.kw:
        raise ValueError("depthwise backward: kernel does not fit the input and window")
    M = CM // g.c
    _check_out(tuple(dy.shape), &g, CM, "depthwise backward")
    if dx is not None and tuple(dx.shape)[:5] != tuple(x.shape)[:5]:
        raise ValueError("depthwise backward: dx must have x's shape")
    if dw is not None and (dw.shape[0] != K or dw.shape[1] != CM):
        raise ValueError("depthwise backward: dw must have w's shape")
    if db is not None and db.shape[0] != CM:
        raise ValueError("depthwise backward: db must have one value per output channel")
    cdef floating *dxp = &dx[0, 0, 0, 0, 0] if dx is not None and dx.size else NULL
    cdef bint want_dw = dw is not None, want_db = db is not None
    cdef int nt = _threads(g.n * g.od * g.oh * g.ow * CM * K, g.n, n_threads)
    size = K * CM + CM
    cdef floating *part = <floating *>calloc(<size_t>(nt * size + 1), sizeof(floating))
    if part == NULL:
        raise MemoryError()
    cdef Py_ssize_t chunk = (g.n + nt - 1) // nt
    try:
        if g.n * g.od * g.oh * g.ow > 0:
            for t in prange(nt, nogil=True, num_threads=nt, schedule="static"):
                lo = t * chunk
                hi = min(g.n, lo + chunk)
                for n in range(lo, hi):
                    _dw_back_sample(&dy[0, 0, 0, 0, 0], &x[0, 0, 0, 0, 0], &w[0, 0], dxp,
                                    part + t * size if want_dw else NULL,
                                    part + t * size + K * CM if want_db else NULL, &g, M, n)
        elif dxp != NULL:
            memset(dxp, 0, dx.size * sizeof(floating))
        with nogil:
            for i in range(K * CM):
                if want_dw:
                    dw[i // CM, i % CM] = 0
                    for t in range(nt):
                        dw[i // CM, i % CM] += part[t * size + i]
            for i in range(CM):
                if want_db:
                    db[i] = 0
                    for t in range(nt):
                        db[i] += part[t * size + K * CM + i]
    finally:
        free(part)


# ================================================================= grouped / 3-D convolution

cdef void _im2col(const floating *x, floating *cols, Py_ssize_t p0, Py_ssize_t p1,
                  Py_ssize_t c0, Py_ssize_t cg, const G3 *g) noexcept nogil:
    """cols[(p - p0), tap * cg + j] = x[pixel's tap, c0 + j] (0 in the padding)."""
    cdef Py_ssize_t K = g.kd * g.kh * g.kw * cg, p, rem, n, od, oh, ox, a, bb, e, iz, iy, ix, j
    cdef floating *row
    cdef floating *dst
    cdef const floating *src
    for p in range(p0, p1):
        ox = p % g.ow
        rem = p // g.ow
        oh = rem % g.oh
        rem = rem // g.oh
        od = rem % g.od
        n = rem // g.od
        row = cols + (p - p0) * K
        for a in range(g.kd):
            iz = _in_pos(od, g.sd, g.pd, a, g.dd)
            for bb in range(g.kh):
                iy = _in_pos(oh, g.sh, g.ph, bb, g.dh)
                for e in range(g.kw):
                    ix = _in_pos(ox, g.sw, g.pw, e, g.dw)
                    dst = row + ((a * g.kh + bb) * g.kw + e) * cg
                    if iz < 0 or iz >= g.d or iy < 0 or iy >= g.h or ix < 0 or ix >= g.w:
                        for j in range(cg):
                            dst[j] = 0
                    else:
                        src = x + (((n * g.d + iz) * g.h + iy) * g.w + ix) * g.c + c0
                        for j in range(cg):
                            dst[j] = src[j]


cdef void _col2im(const floating *cols, floating *x, Py_ssize_t p0, Py_ssize_t p1,
                  Py_ssize_t c0, Py_ssize_t cg, const G3 *g) noexcept nogil:
    """x[pixel's tap, c0 + j] += cols[(p - p0), tap * cg + j] (padding taps dropped)."""
    cdef Py_ssize_t K = g.kd * g.kh * g.kw * cg, p, rem, n, od, oh, ox, a, bb, e, iz, iy, ix, j
    cdef const floating *row
    cdef const floating *src
    cdef floating *dst
    for p in range(p0, p1):
        ox = p % g.ow
        rem = p // g.ow
        oh = rem % g.oh
        rem = rem // g.oh
        od = rem % g.od
        n = rem // g.od
        row = cols + (p - p0) * K
        for a in range(g.kd):
            iz = _in_pos(od, g.sd, g.pd, a, g.dd)
            if iz < 0 or iz >= g.d:
                continue
            for bb in range(g.kh):
                iy = _in_pos(oh, g.sh, g.ph, bb, g.dh)
                if iy < 0 or iy >= g.h:
                    continue
                for e in range(g.kw):
                    ix = _in_pos(ox, g.sw, g.pw, e, g.dw)
                    if ix < 0 or ix >= g.w:
                        continue
                    src = row + ((a * g.kh + bb) * g.kw + e) * cg
                    dst = x + (((n * g.d + iz) * g.h + iy) * g.w + ix) * g.c + c0
                    for j in range(cg):
                        dst[j] = dst[j] + src[j]


cdef inline Py_ssize_t _chunk_rows(Py_ssize_t K) noexcept nogil:
    cdef Py_ssize_t r = CHUNK_ELEMS // (K if K > 0 else 1)
    return r if r >= 16 else 16


cdef void _gconv_block(const floating *x, const floating *w, const floating *b, floating *y,
                       floating *cols, Py_ssize_t p0, Py_ssize_t p1, Py_ssize_t groups,
                       Py_ssize_t F, const G3 *g) noexcept nogil:
    cdef Py_ssize_t cg = g.c // groups, fg = F // groups, K = g.kd * g.kh * g.kw * cg, gi, p, f
    for gi in range(groups):
        _im2col(x, cols, p0, p1, gi * cg, cg, g)
        gemm(False, False, p1 - p0, fg, K, <floating>1, cols, K, w + gi * fg, F,
             <floating>0, y + p0 * F + gi * fg, F)
    if b != NULL:
        for p in range(p0, p1):
            for f in range(F):
                y[p * F + f] = y[p * F + f] + b[f]


def grouped_forward(const floating[:, :, :, :, ::1] x, const floating[:, ::1] w,
                    const floating[::1] b, floating[:, ::1] y, object geometry, int groups,
                    int n_threads=1):
    """y = conv(x, w) + b with ``groups`` channel groups (groups=1: an ordinary convolution).

    Args:
        x: (N, D, H, W, C) input.
        w: (kd * kh * kw * C / groups, F) kernel (Keras's (..., C / groups, F) kernel
            flattened); output channels ``[i * F / groups, (i + 1) * F / groups)`` see
            input channels ``[i * C / groups, (i + 1) * C / groups)``.
        b: (F,) bias or None.
        y: (N * OD * OH * OW, F) output, one row per output pixel.
    """
    cdef G3 g = _geom(geometry, x.shape[0], x.shape[4])
    cdef Py_ssize_t F = w.shape[1], rows, K, chunk, nchunks, ci, t, p0, p1
    _check_in(tuple(x.shape), &g, "grouped conv forward")
    if groups < 1 or g.c % groups != 0 or F % groups != 0:
        raise ValueError(f"grouped conv forward: groups={groups} must divide the input channels "
                         f"({g.c}) and the filters ({F})")
    K = g.kd * g.kh * g.kw * (g.c // groups)
    if w.shape[0] != K:
        raise ValueError(f"grouped conv forward: kernel has {w.shape[0]} rows, expected {K}")
    rows = g.n * g.od * g.oh * g.ow
    if y.shape[0] != rows or y.shape[1] != F:
        raise ValueError(f"grouped conv forward: y must be ({rows}, {F}), received "
                         f"{tuple(y.shape)[:2]}")
    if b is not None and b.shape[0] != F:
        raise ValueError("grouped conv forward: bias size differs from the filters")
    if rows * F == 0:
        return
    cdef const floating *bp = &b[0] if b is not None else NULL
    chunk = _chunk_rows(K)
    nchunks = (rows + chunk - 1) // chunk
    cdef int nt = _threads(rows * K * F // groups, nchunks, n_threads)
    cdef floating *cols = <floating *>malloc(<size_t>(nt * chunk * K + 1) * sizeof(floating))
    if cols == NULL:
        raise MemoryError()
    cdef Py_ssize_t per = (nchunks + nt - 1) // nt
    try:
        for t in prange(nt, nogil=True, num_threads=nt, schedule="static"):
            for ci in range(t * per, min(nchunks, (t + 1) * per)):
                p0 = ci * chunk
                p1 = min(rows, p0 + chunk)
                _gconv_block(&x[0, 0, 0, 0, 0], &w[0, 0], bp, &y[0, 0], cols + t * chunk * K,
                             p0, p1, groups, F, &g)
    finally:
        free(cols)


cdef void _gconv_back_sample(const floating *dy, const floating *x, const floating *w,
                             floating *dx, floating *dw, floating *db, floating *cols,
                             Py_ssize_t chunk, Py_ssize_t n, Py_ssize_t groups, Py_ssize_t F,
                             const G3 *g) noexcept nogil:
    cdef Py_ssize_t cg = g.c // groups, fg = F // groups, K = g.kd * g.kh * g.kw * cg
    cdef Py_ssize_t per = g.od * g.oh * g.ow, p0, p1, gi, p, f
    if dx != NULL:
        memset(dx + n * g.d * g.h * g.w * g.c, 0, g.d * g.h * g.w * g.c * sizeof(floating))
    p0 = n * per
    while p0 < (n + 1) * per:
        p1 = min((n + 1) * per, p0 + chunk)
        if db != NULL:
            for p in range(p0, p1):
                for f in range(F):
                    db[f] = db[f] + dy[p * F + f]
        for gi in range(groups):
            if dw != NULL:
                _im2col(x, cols, p0, p1, gi * cg, cg, g)
                gemm(True, False, K, fg, p1 - p0, <floating>1, cols, K, dy + p0 * F + gi * fg, F,
                     <floating>1, dw + gi * fg, F)
            if dx != NULL:
                gemm(False, True, p1 - p0, K, fg, <floating>1, dy + p0 * F + gi * fg, F,
                     w + gi * fg, F, <floating>0, cols, K)
                _col2im(cols, dx, p0, p1, gi * cg, cg, g)
        p0 = p1


def grouped_backward(const floating[:, ::1] dy, const floating[:, :, :, :, ::1] x,
                     const floating[:, ::1] w, floating[:, :, :, :, ::1] dx, floating[:, ::1] dw,
                     floating[::1] db, object geometry, int groups, int n_threads=1):
    """Gradients of ``grouped_forward`` (dy in its (rows, F) layout); dx, dw, db may be
    None to skip them. dw and db are overwritten."""
    cdef G3 g = _geom(geometry, x.shape[0], x.shape[4])
    cdef Py_ssize_t F = w.shape[1], K, rows, chunk, t, lo, hi, n, i, size
    _check_in(tuple(x.shape), &g, "grouped conv backward")
    if groups < 1 or g.c % groups != 0 or F % groups != 0:
        raise ValueError(f"grouped conv backward: groups={groups} must divide the input channels "
                         f"({g.c}) and the filters ({F})")
    K = g.kd * g.kh * g.kw * (g.c // groups)
    rows = g.n * g.od * g.oh * g.ow
    if w.shape[0] != K or dy.shape[0] != rows or dy.shape[1] != F:
        raise ValueError("grouped conv backward: shapes of dy, x and w do not agree")
    if dx is not None and tuple(dx.shape)[:5] != tuple(x.shape)[:5]:
        raise ValueError("grouped conv backward: dx must have x's shape")
    if dw is not None and (dw.shape[0] != K or dw.shape[1] != F):
        raise ValueError("grouped conv backward: dw must have w's shape")
    if db is not None and db.shape[0] != F:
        raise ValueError("grouped conv backward: db must have one value per filter")
    cdef floating *dxp = &dx[0, 0, 0, 0, 0] if dx is not None and dx.size else NULL
    cdef bint want_dw = dw is not None, want_db = db is not None
    chunk = _chunk_rows(K)
    cdef int nt = _threads(rows * K * F // groups, g.n, n_threads)
    size = K * F + F
    cdef floating *part = <floating *>calloc(<size_t>(nt * size + 1), sizeof(floating))
    cdef floating *cols = <floating *>malloc(<size_t>(nt * chunk * K + 1) * sizeof(floating))
    if part == NULL or cols == NULL:
        free(part)
        free(cols)
        raise MemoryError()
    cdef Py_ssize_t per = (g.n + nt - 1) // nt
    try:
        if rows > 0:
            for t in prange(nt, nogil=True, num_threads=nt, schedule="static"):
                lo = t * per
                hi = min(g.n, lo + per)
                for n in range(lo, hi):
                    _gconv_back_sample(&dy[0, 0], &x[0, 0, 0, 0, 0], &w[0, 0], dxp,
                                       part + t * size if want_dw else NULL,
                                       part + t * size + K * F if want_db else NULL,
                                       cols + t * chunk * K, chunk, n, groups, F, &g)
        elif dxp != NULL:
            memset(dxp, 0, dx.size * sizeof(floating))
        with nogil:
            if want_dw:
                for i in range(K * F):
                    dw[i // F, i % F] = 0
                    for t in range(nt):
                        dw[i // F, i % F] += part[t * size + i]
            if want_db:
                for i in range(F):
                    db[i] = 0
                    for t in range(nt):
                        db[i] += part[t * size + K * F + i]
    finally:
        free(part)
        free(cols)


# ================================================================= pooling

cdef inline void _clip(Py_ssize_t o, Py_ssize_t s, Py_ssize_t p, Py_ssize_t k, Py_ssize_t size,
                       Py_ssize_t *lo, Py_ssize_t *hi) noexcept nogil:
    cdef Py_ssize_t a = o * s - p
    lo[0] = a if a > 0 else 0
    hi[0] = a + k if a + k < size else size


cdef void _max_row(const floating *x, floating *y, index_t *am, const G3 *g,
                   Py_ssize_t row) noexcept nogil:
    cdef Py_ssize_t C = g.c, oh = row % g.oh, od = (row // g.oh) % g.od, n = row // (g.oh * g.od)
    cdef Py_ssize_t z0, z1, y0, y1, x0, x1, ox, iz, iy, ix, c, o
    cdef const floating *src
    cdef floating *out
    cdef index_t *arg
    cdef index_t idx
    cdef bint first
    _clip(od, g.sd, g.pd, g.kd, g.d, &z0, &z1)
    _clip(oh, g.sh, g.ph, g.kh, g.h, &y0, &y1)
    for ox in range(g.ow):
        _clip(ox, g.sw, g.pw, g.kw, g.w, &x0, &x1)
        o = (row * g.ow + ox) * C
        out = y + o
        arg = am + o
        first = True
        for iz in range(z0, z1):
            for iy in range(y0, y1):
                for ix in range(x0, x1):
                    idx = <index_t>((iz * g.h + iy) * g.w + ix)
                    src = x + ((n * g.d * g.h * g.w) + idx) * C
                    if first:
                        for c in range(C):
                            out[c] = src[c]
                            arg[c] = idx
                        first = False
                    else:
                        for c in range(C):
                            if src[c] > out[c]:
                                out[c] = src[c]
                                arg[c] = idx


def max_pool_forward(const floating[:, :, :, :, ::1] x, floating[:, :, :, :, ::1] y,
                     index_t[:, :, :, :, ::1] argmax, object geometry, int n_threads=1):
    """y = max over each window; argmax holds the winning position ``(iz * H + iy) * W + ix``
    within the sample (the first maximum in window order on ties)."""
    cdef G3 g = _geom(geometry, x.shape[0], x.shape[4])
    cdef Py_ssize_t rows = g.n * g.od * g.oh, r
    _check_in(tuple(x.shape), &g, "max pool forward")
    _check_out(tuple(y.shape), &g, g.c, "max pool forward")
    _check_out(tuple(argmax.shape), &g, g.c, "max pool forward (argmax)")
    if rows * g.ow * g.c == 0:
        return
    cdef int nt = _threads(rows * g.ow * g.c * g.kd * g.kh * g.kw, rows, n_threads)
    for r in prange(rows, nogil=True, num_threads=nt, schedule="static"):
        _max_row(&x[0, 0, 0, 0, 0], &y[0, 0, 0, 0, 0], &argmax[0, 0, 0, 0, 0], &g, r)


def max_pool_backward(const floating[:, :, :, :, ::1] dy, const index_t[:, :, :, :, ::1] argmax,
                      floating[:, :, :, :, ::1] dx, int n_threads=1):
    """dx = dy scattered (added) into each window's recorded maximum."""
    cdef Py_ssize_t N = dx.shape[0], S = dx.shape[1] * dx.shape[2] * dx.shape[3], C = dx.shape[4]
    cdef Py_ssize_t P = dy.shape[1] * dy.shape[2] * dy.shape[3], n, p, c
    if dy.shape[0] != N or dy.shape[4] != C or tuple(argmax.shape)[:5] != tuple(dy.shape)[:5]:
        raise ValueError("max pool backward: shapes of dy, argmax and dx do not agree")
    if N * S * C == 0:
        return
    cdef const floating *g = &dy[0, 0, 0, 0, 0]
    cdef const index_t *am = &argmax[0, 0, 0, 0, 0]
    cdef floating *d = &dx[0, 0, 0, 0, 0]
    cdef int nt = _threads(N * (S + P) * C, N, n_threads)
    for n in prange(N, nogil=True, num_threads=nt, schedule="static"):
        memset(d + n * S * C, 0, S * C * sizeof(floating))
        for p in range(P):
            for c in range(C):
                d[(n * S + am[(n * P + p) * C + c]) * C + c] += g[(n * P + p) * C + c]


cdef void _avg_row(const floating *x, floating *y, const G3 *g, Py_ssize_t row) noexcept nogil:
    cdef Py_ssize_t C = g.c, oh = row % g.oh, od = (row // g.oh) % g.od, n = row // (g.oh * g.od)
    cdef Py_ssize_t z0, z1, y0, y1, x0, x1, ox, iz, iy, ix, c
    cdef const floating *src
    cdef floating *out
    cdef floating inv
    _clip(od, g.sd, g.pd, g.kd, g.d, &z0, &z1)
    _clip(oh, g.sh, g.ph, g.kh, g.h, &y0, &y1)
    for ox in range(g.ow):
        _clip(ox, g.sw, g.pw, g.kw, g.w, &x0, &x1)
        out = y + (row * g.ow + ox) * C
        for c in range(C):
            out[c] = 0
        for iz in range(z0, z1):
            for iy in range(y0, y1):
                for ix in range(x0, x1):
                    src = x + (((n * g.d + iz) * g.h + iy) * g.w + ix) * C
                    for c in range(C):
                        out[c] = out[c] + src[c]
        inv = <floating>1 / <floating>((z1 - z0) * (y1 - y0) * (x1 - x0))
        for c in range(C):
            out[c] = out[c] * inv


def avg_pool_forward(const floating[:, :, :, :, ::1] x, floating[:, :, :, :, ::1] y,
                     object geometry, int n_threads=1):
    """y = mean over each window (taps in the padding not counted)."""
    cdef G3 g = _geom(geometry, x.shape[0], x.shape[4])
    cdef Py_ssize_t rows = g.n * g.od * g.oh, r
    _check_in(tuple(x.shape), &g, "average pool forward")
    _check_out(tuple(y.shape), &g, g.c, "average pool forward")
    if rows * g.ow * g.c == 0:
        return
    cdef int nt = _threads(rows * g.ow * g.c * g.kd * g.kh * g.kw, rows, n_threads)
    for r in prange(rows, nogil=True, num_threads=nt, schedule="static"):
        _avg_row(&x[0, 0, 0, 0, 0], &y[0, 0, 0, 0, 0], &g, r)


cdef void _avg_back_sample(const floating *dy, floating *dx, const G3 *g,
                           Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t C = g.c, od, oh, ox, z0, z1, y0, y1, x0, x1, iz, iy, ix, c
    cdef const floating *src
    cdef floating *dst
    cdef floating inv
    memset(dx + n * g.d * g.h * g.w * C, 0, g.d * g.h * g.w * C * sizeof(floating))
    for od in range(g.od):
        _clip(od, g.sd, g.pd, g.kd, g.d, &z0, &z1)
        for oh in range(g.oh):
            _clip(oh, g.sh, g.ph, g.kh, g.h, &y0, &y1)
            for ox in range(g.ow):
                _clip(ox, g.sw, g.pw, g.kw, g.w, &x0, &x1)
                src = dy + (((n * g.od + od) * g.oh + oh) * g.ow + ox) * C
                inv = <floating>1 / <floating>((z1 - z0) * (y1 - y0) * (x1 - x0))
                for iz in range(z0, z1):
                    for iy in range(y0, y1):
                        for ix in range(x0, x1):
                            dst = dx + (((n * g.d + iz) * g.h + iy) * g.w + ix) * C
                            for c in range(C):
                                dst[c] = dst[c] + src[c] * inv


def avg_pool_backward(const floating[:, :, :, :, ::1] dy, floating[:, :, :, :, ::1] dx,
                      object geometry, int n_threads=1):
    """dx: each window's dy shared equally among its (unpadded) taps."""
    cdef G3 g = _geom(geometry, dx.shape[0], dx.shape[4])
    cdef Py_ssize_t n
    _check_in(tuple(dx.shape), &g, "average pool backward")
    _check_out(tuple(dy.shape), &g, g.c, "average pool backward")
    if g.n * g.d * g.h * g.w * g.c == 0:
        return
    cdef int nt = _threads(g.n * g.od * g.oh * g.ow * g.c * g.kd * g.kh * g.kw, g.n, n_threads)
    for n in prange(g.n, nogil=True, num_threads=nt, schedule="static"):
        _avg_back_sample(&dy[0, 0, 0, 0, 0], &dx[0, 0, 0, 0, 0], &g, n)
