"""Pooling kernels (NHWC; 1-D signals are images with one row): max, average, global.

Max pooling records, for every output value, the position of its maximum
(``iy * w + ix`` within the sample; the first maximum in window order on ties).
A NaN in a window makes its maximum NaN, as ``np.maximum`` does, and the recorded
position is a NaN tap: a tap v replaces the running maximum m when ``v > m`` or v
is NaN (the inner loops, in ``_pooling.h``, are written so they vectorise). The
backward pass is a scatter of dy into the recorded
positions. Taps that fall in
the ``same`` padding are skipped: they never win a max and are not counted in an
average (as Keras does). Work is split by output rows (forward) and by samples
(backward: windows may overlap, so a sample's input gradient has one writer).
Windows are walked with the channel axis innermost, so every inner loop is a
contiguous run of ``channels`` values.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.string cimport memset

from fastnet._kernels.im2col cimport Geom, make_geom

cdef extern from "_pooling.h" nogil:
    void fnp_back2x2_f(const float *g, const int *a, const float *y, float *d0, float *d1,
                       float *d2, float *d3, int base, int w, Py_ssize_t n)
    void fnp_back2x2_d(const double *g, const int *a, const double *y, double *d0,
                       double *d1, double *d2, double *d3, int base, int w, Py_ssize_t n)
    void fnp_maxupd_f(const float *src, float *out, int *arg, int idx, Py_ssize_t n)
    void fnp_maxupd_d(const double *src, double *out, int *arg, int idx, Py_ssize_t n)
    void fnp_max2x2_f(const float *pa, const float *pb, const float *pc, const float *pd,
                      float *out, int *arg, int base, int w, Py_ssize_t n)
    void fnp_max2x2_d(const double *pa, const double *pb, const double *pc, const double *pd,
                      double *out, int *arg, int base, int w, Py_ssize_t n)

ctypedef int index_t

cdef Py_ssize_t PARALLEL_MIN_WORK = 1 << 16


cdef inline int _threads(Py_ssize_t work, Py_ssize_t units, int n_threads) noexcept nogil:
    if n_threads <= 1 or work < PARALLEL_MIN_WORK or units < n_threads:
        return 1
    return n_threads


cdef int _check(tuple xs, tuple ys, const Geom *g, str what) except -1:
    if (xs[0] != ys[0] or xs[3] != ys[3] or xs[1] != g.h or xs[2] != g.w or ys[1] != g.oh
            or ys[2] != g.ow):
        raise ValueError(f"{what}: input {xs} and output {ys} do not match the geometry "
                         f"(in {(g.h, g.w)}, out {(g.oh, g.ow)})")
    return 0


cdef inline void _window(const Geom *g, Py_ssize_t oy, Py_ssize_t ox, Py_ssize_t *y0,
                         Py_ssize_t *y1, Py_ssize_t *x0, Py_ssize_t *x1) noexcept nogil:
    """Input rows [y0, y1) and cols [x0, x1) of an output pixel's window, clipped."""
    cdef Py_ssize_t a = oy * g.sh - g.ph, b = ox * g.sw - g.pw
    y0[0] = a if a > 0 else 0
    y1[0] = a + g.kh if a + g.kh < g.h else g.h
    x0[0] = b if b > 0 else 0
    x1[0] = b + g.kw if b + g.kw < g.w else g.w


cdef void _max_row(const floating *x, floating *y, index_t *am, const Geom *g, Py_ssize_t n,
                   Py_ssize_t oy) noexcept nogil:
    cdef Py_ssize_t C = g.c, ox, iy, ix, c, y0, y1, x0, x1
    cdef const floating *src
    cdef floating *out
    cdef index_t *arg
    cdef index_t idx
    cdef bint first
    for ox in range(g.ow):
        _window(g, oy, ox, &y0, &y1, &x0, &x1)
        out = y + ((n * g.oh + oy) * g.ow + ox) * C
        arg = am + ((n * g.oh + oy) * g.ow + ox) * C if am != NULL else NULL
        first = True
        for iy in range(y0, y1):
            for ix in range(x0, x1):
                src = x + ((n * g.h + iy) * g.w + ix) * C
                idx = <index_t>(iy * g.w + ix)
                if first:
                    for c in range(C):
                        out[c] = src[c]
                    if arg != NULL:
                        for c in range(C):
                            arg[c] = idx
                    first = False
                # (_pooling.h picks the index with a bit mask rather than a select:
                # the baseline x86-64 target has no float-to-int blend, and a branch
                # per value, mispredicted half the time, made this loop 10x slower.)
                elif floating is float:
                    fnp_maxupd_f(src, out, arg, idx, C)
                else:
                    fnp_maxupd_d(src, out, arg, idx, C)


cdef void _max_row_2x2(const floating *x, floating *y, index_t *am, const Geom *g, Py_ssize_t n,
                       Py_ssize_t oy) noexcept nogil:
    """2x2 windows with stride 2 inside the image (valid padding): the four taps a b / c d
    of a window are folded in window order, the position picked with masks (first
    maximum on ties, as in the general path; see _pooling.h)."""
    cdef Py_ssize_t C = g.c, ox, W = g.w
    cdef const floating *pa
    cdef const floating *pb
    cdef const floating *pc
    cdef const floating *pd
    cdef floating *out
    cdef index_t *arg
    cdef index_t base
    for ox in range(g.ow):
        pa = x + ((n * g.h + 2 * oy) * W + 2 * ox) * C
        pb = pa + C
        pc = pa + W * C
        pd = pc + C
        out = y + ((n * g.oh + oy) * g.ow + ox) * C
        base = <index_t>(2 * oy * W + 2 * ox)
        arg = am + ((n * g.oh + oy) * g.ow + ox) * C if am != NULL else NULL
        if floating is float:
            fnp_max2x2_f(pa, pb, pc, pd, out, arg, base, <index_t>W, C)
        else:
            fnp_max2x2_d(pa, pb, pc, pd, out, arg, base, <index_t>W, C)


def max_forward(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] y,
                index_t[:, :, :, ::1] argmax, object geometry, int n_threads=1):
    """y = max over each window of x; ``argmax`` (y's shape, int32, or None) receives
    the position ``iy * w + ix`` of each maximum."""
    cdef Geom g = make_geom(geometry, x.shape[0], x.shape[3])
    _check(tuple(x.shape)[:4], tuple(y.shape)[:4], &g, "max_pool forward")
    if argmax is not None and tuple(argmax.shape)[:4] != tuple(y.shape)[:4]:
        raise ValueError("max_pool forward: argmax must have the output's shape")
    cdef Py_ssize_t rows = g.n * g.oh, r
    if rows * g.ow * g.c == 0:
        return
    cdef const floating *xp = &x[0, 0, 0, 0]
    cdef floating *yp = &y[0, 0, 0, 0]
    cdef index_t *ap = &argmax[0, 0, 0, 0] if argmax is not None else NULL
    cdef int nt = _threads(rows * g.ow * g.c * g.kh * g.kw, rows, n_threads)
    cdef bint two = (g.kh == 2 and g.kw == 2 and g.sh == 2 and g.sw == 2 and g.ph == 0
                     and g.pw == 0 and 2 * g.oh <= g.h and 2 * g.ow <= g.w)
    for r in prange(rows, nogil=True, num_threads=nt, schedule="static"):
        if two:
            _max_row_2x2(xp, yp, ap, &g, r // g.oh, r % g.oh)
        else:
            _max_row(xp, yp, ap, &g, r // g.oh, r % g.oh)


cdef void _max_back_row_2x2(const floating *dy, const index_t *am, const floating *ym,
                            floating *dx, Py_ssize_t W, Py_ssize_t oh, Py_ssize_t ow,
                            Py_ssize_t C, Py_ssize_t r) noexcept nogil:
    """Writes input rows 2 oy, 2 oy + 1 of output row r = n * oh + oy of an exact 2x2
    stride-2 tiling: each tap gets dy where it was the maximum and 0 elsewhere (a
    product with the 0/1 match, which vectorises where a select would not)."""
    cdef Py_ssize_t ox, c, oy = r % oh
    cdef floating *da
    cdef floating *db
    cdef floating *dc
    cdef floating *dd
    cdef const floating *gp
    cdef const floating *yp
    cdef const index_t *ap
    cdef floating gv
    cdef index_t base, k, iw = <index_t>W
    for ox in range(ow):
        da = dx + (2 * r * W + 2 * ox) * C
        db = da + C
        dc = da + W * C
        dd = dc + C
        gp = dy + (r * ow + ox) * C
        ap = am + (r * ow + ox) * C
        base = <index_t>(2 * oy * W + 2 * ox)
        yp = ym + (r * ow + ox) * C if ym != NULL else NULL
        if floating is float:
            fnp_back2x2_f(gp, ap, yp, da, db, dc, dd, base, iw, C)
        else:
            fnp_back2x2_d(gp, ap, yp, da, db, dc, dd, base, iw, C)


def max_backward(const floating[:, :, :, ::1] dy, const index_t[:, :, :, ::1] argmax,
                 floating[:, :, :, ::1] dx, int n_threads=1, object geometry=None,
                 const floating[:, :, :, ::1] relu_of=None):
    """dx = dy scattered (added) into the positions recorded in ``argmax``.

    With the pooling ``geometry`` of an exact 2x2 stride-2 tiling, each window is
    written whole in one pass instead of clearing dx and scattering into it.
    ``relu_of``, the pooling's output when its input is a ReLU's output, also applies
    the ReLU's derivative: a window's maximum is 0 exactly when its whole window is,
    so dy is dropped where the output is not positive (the convolution before the
    pool then skips its own derivative pass)."""
    cdef Py_ssize_t N = dx.shape[0], C = dx.shape[3], hw = dx.shape[1] * dx.shape[2]
    cdef Py_ssize_t pix = dy.shape[1] * dy.shape[2], per = pix * C, n, i, c, r
    if tuple(argmax.shape)[:4] != tuple(dy.shape)[:4] or dy.shape[0] != N or dy.shape[3] != C:
        raise ValueError("max_pool backward: dy, argmax and dx shapes do not agree")
    if relu_of is not None and tuple(relu_of.shape)[:4] != tuple(dy.shape)[:4]:
        raise ValueError("max_pool backward: relu_of must have dy's shape")
    if N * hw * C == 0:
        return
    cdef const floating *g
    cdef const floating *ym = &relu_of[0, 0, 0, 0] if relu_of is not None and per > 0 else NULL
    cdef const index_t *a
    cdef floating *d
    cdef floating yv
    cdef int nt = _threads(N * (hw * C + per), N, n_threads)
    cdef Geom geo
    if geometry is not None:
        geo = make_geom(geometry, N, C)
        if (geo.kh == 2 and geo.kw == 2 and geo.sh == 2 and geo.sw == 2 and geo.ph == 0
                and geo.pw == 0 and 2 * geo.oh == geo.h and 2 * geo.ow == geo.w
                and geo.h == dx.shape[1] and geo.w == dx.shape[2] and geo.oh == dy.shape[1]
                and geo.ow == dy.shape[2]):
            for r in prange(N * geo.oh, nogil=True, num_threads=nt, schedule="static"):
                _max_back_row_2x2(&dy[0, 0, 0, 0], &argmax[0, 0, 0, 0], ym, &dx[0, 0, 0, 0],
                                  geo.w, geo.oh, geo.ow, C, r)
            return
    for n in prange(N, nogil=True, num_threads=nt, schedule="static"):
        d = &dx[0, 0, 0, 0] + n * hw * C
        memset(d, 0, hw * C * sizeof(floating))
        if per > 0:
            g = &dy[0, 0, 0, 0] + n * per
            a = &argmax[0, 0, 0, 0] + n * per
            if ym != NULL:
                for i in range(pix):
                    for c in range(C):
                        yv = ym[n * per + i * C + c]
                        if yv > 0:
                            d[a[i * C + c] * C + c] += g[i * C + c]
                        elif yv != yv:  # a NaN output keeps a NaN derivative
                            d[a[i * C + c] * C + c] += yv
            else:
                for i in range(pix):
                    for c in range(C):
                        d[a[i * C + c] * C + c] += g[i * C + c]


cdef void _avg_row(const floating *x, floating *y, const Geom *g, Py_ssize_t n,
                   Py_ssize_t oy) noexcept nogil:
    cdef Py_ssize_t C = g.c, ox, iy, ix, c, y0, y1, x0, x1
    cdef const floating *src
    cdef floating *out
    cdef floating inv
    for ox in range(g.ow):
        _window(g, oy, ox, &y0, &y1, &x0, &x1)
        out = y + ((n * g.oh + oy) * g.ow + ox) * C
        for c in range(C):
            out[c] = 0
        for iy in range(y0, y1):
            for ix in range(x0, x1):
                src = x + ((n * g.h + iy) * g.w + ix) * C
                for c in range(C):
                    out[c] = out[c] + src[c]
        inv = <floating>1 / <floating>((y1 - y0) * (x1 - x0))
        for c in range(C):
            out[c] = out[c] * inv


def avg_forward(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] y, object geometry,
                int n_threads=1):
    """y = mean over each window of x (padding taps are not counted)."""
    cdef Geom g = make_geom(geometry, x.shape[0], x.shape[3])
    _check(tuple(x.shape)[:4], tuple(y.shape)[:4], &g, "average_pool forward")
    cdef Py_ssize_t rows = g.n * g.oh, r
    if rows * g.ow * g.c == 0:
        return
    cdef const floating *xp = &x[0, 0, 0, 0]
    cdef floating *yp = &y[0, 0, 0, 0]
    cdef int nt = _threads(rows * g.ow * g.c * g.kh * g.kw, rows, n_threads)
    for r in prange(rows, nogil=True, num_threads=nt, schedule="static"):
        _avg_row(xp, yp, &g, r // g.oh, r % g.oh)


cdef void _avg_back_sample(const floating *dy, floating *dx, const Geom *g,
                           Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t C = g.c, oy, ox, iy, ix, c, y0, y1, x0, x1
    cdef const floating *src
    cdef floating *d
    cdef floating v
    memset(dx + n * g.h * g.w * C, 0, g.h * g.w * C * sizeof(floating))
    for oy in range(g.oh):
        for ox in range(g.ow):
            _window(g, oy, ox, &y0, &y1, &x0, &x1)
            src = dy + ((n * g.oh + oy) * g.ow + ox) * C
            v = <floating>1 / <floating>((y1 - y0) * (x1 - x0))
            for iy in range(y0, y1):
                for ix in range(x0, x1):
                    d = dx + ((n * g.h + iy) * g.w + ix) * C
                    for c in range(C):
                        d[c] = d[c] + src[c] * v


def avg_backward(const floating[:, :, :, ::1] dy, floating[:, :, :, ::1] dx, object geometry,
                 int n_threads=1):
    """dx = each dy / window count spread over its window's (unpadded) taps."""
    cdef Geom g = make_geom(geometry, dx.shape[0], dx.shape[3])
    _check(tuple(dx.shape)[:4], tuple(dy.shape)[:4], &g, "average_pool backward")
    cdef Py_ssize_t n
    if g.n * g.h * g.w * g.c == 0:
        return
    cdef const floating *dyp = &dy[0, 0, 0, 0]
    cdef floating *dxp = &dx[0, 0, 0, 0]
    cdef int nt = _threads(g.n * g.oh * g.ow * g.c * g.kh * g.kw, g.n, n_threads)
    # The per-sample work lives in a function: window bounds written through
    # pointers inside a prange body would be shared between threads.
    for n in prange(g.n, nogil=True, num_threads=nt, schedule="static"):
        _avg_back_sample(dyp, dxp, &g, n)


# ----------------------------------------------------------------- global pooling

def global_avg_forward(const floating[:, :, ::1] x, floating[:, ::1] y, int n_threads=1):
    """y (n, c) = mean of x (n, steps, c) over the steps axis."""
    cdef Py_ssize_t N = x.shape[0], S = x.shape[1], C = x.shape[2], n, s, c
    if y.shape[0] != N or y.shape[1] != C:
        raise ValueError("global_avg_pool forward: x and y shapes do not agree")
    if N * C == 0:
        return
    cdef floating inv = <floating>1 / <floating>S if S > 0 else <floating>0
    cdef int nt = _threads(N * S * C, N, n_threads)
    for n in prange(N, nogil=True, num_threads=nt, schedule="static"):
        for c in range(C):
            y[n, c] = 0
        for s in range(S):
            for c in range(C):
                y[n, c] += x[n, s, c]
        for c in range(C):
            y[n, c] = y[n, c] * inv


def global_avg_backward(const floating[:, ::1] dy, floating[:, :, ::1] dx, int n_threads=1):
    cdef Py_ssize_t N = dx.shape[0], S = dx.shape[1], C = dx.shape[2], n, s, c
    if dy.shape[0] != N or dy.shape[1] != C:
        raise ValueError("global_avg_pool backward: dy and dx shapes do not agree")
    if N * S * C == 0:
        return
    cdef floating inv = <floating>1 / <floating>S
    cdef int nt = _threads(N * S * C, N, n_threads)
    for n in prange(N, nogil=True, num_threads=nt, schedule="static"):
        for s in range(S):
            for c in range(C):
                dx[n, s, c] = dy[n, c] * inv


def global_max_forward(const floating[:, :, ::1] x, floating[:, ::1] y, index_t[:, ::1] argmax,
                       int n_threads=1):
    """y (n, c) = max of x (n, steps, c) over steps; argmax (n, c) its first position."""
    cdef Py_ssize_t N = x.shape[0], S = x.shape[1], C = x.shape[2], n, s, c
    if y.shape[0] != N or y.shape[1] != C or argmax.shape[0] != N or argmax.shape[1] != C:
        raise ValueError("global_max_pool forward: x, y and argmax shapes do not agree")
    if S == 0 and N * C > 0:
        raise ValueError("global_max_pool forward: the input has no steps to take a max over")
    if N * C == 0:
        return
    cdef int nt = _threads(N * S * C, N, n_threads)
    for n in prange(N, nogil=True, num_threads=nt, schedule="static"):
        for c in range(C):
            y[n, c] = x[n, 0, c]
            argmax[n, c] = 0
        for s in range(1, S):  # NaN wins, as in the windowed max
            if floating is float:
                fnp_maxupd_f(&x[n, s, 0], &y[n, 0], &argmax[n, 0], <index_t>s, C)
            else:
                fnp_maxupd_d(&x[n, s, 0], &y[n, 0], &argmax[n, 0], <index_t>s, C)


def global_max_backward(const floating[:, ::1] dy, const index_t[:, ::1] argmax,
                        floating[:, :, ::1] dx, int n_threads=1):
    cdef Py_ssize_t N = dx.shape[0], S = dx.shape[1], C = dx.shape[2], n, c
    if dy.shape[0] != N or dy.shape[1] != C or argmax.shape[0] != N or argmax.shape[1] != C:
        raise ValueError("global_max_pool backward: dy, argmax and dx shapes do not agree")
    if N * S * C == 0:
        return
    cdef int nt = _threads(N * S * C, N, n_threads)
    for n in prange(N, nogil=True, num_threads=nt, schedule="static"):
        memset(&dx[n, 0, 0], 0, S * C * sizeof(floating))
        for c in range(C):
            dx[n, argmax[n, c], c] = dy[n, c]
