"""im2col and col2im for NHWC images and 1-D signals, with strides, dilation and padding.

``im2col`` lays the receptive field of every output pixel out as one row, so a
convolution becomes one GEMM with the kernel reshaped to ``(kh * kw * in, out)``;
``col2im`` is its adjoint (scatter-add), used for input gradients and transposed
convolutions. The row-range functions work on any block of output pixels, so
the convolution kernels can stream bounded chunks through them.

A row is filled one kernel row at a time: with dilation 1 and the window inside
the image, the ``kw * channels`` values of a kernel row are contiguous in the
input and move as one block.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.string cimport memcpy, memset


cdef Geom make_geom(object geometry, Py_ssize_t n, Py_ssize_t c) except *:
    cdef Geom g
    h, w, oh, ow, kh, kw, sh, sw, dh, dw, ph, pw = geometry
    g.n = n
    g.c = c
    g.h, g.w, g.oh, g.ow = h, w, oh, ow
    g.kh, g.kw, g.sh, g.sw = kh, kw, sh, sw
    g.dh, g.dw, g.ph, g.pw = dh, dw, ph, pw
    if min(h, w, oh, ow, kh, kw, sh, sw, dh, dw) < 1 or min(ph, pw) < 0:
        raise ValueError(f"invalid window geometry {tuple(geometry)}")
    return g


cdef bint is_pointwise(const Geom *g) noexcept nogil:
    return (g.kh == 1 and g.kw == 1 and g.sh == 1 and g.sw == 1 and g.ph == 0 and g.pw == 0
            and g.oh == g.h and g.ow == g.w)


cdef inline void _copy(const floating *src, floating *dst, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    if n >= 16:
        memcpy(dst, src, n * sizeof(floating))
    else:
        for i in range(n):
            dst[i] = src[i]


cdef inline void _zero(floating *dst, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    if n >= 16:
        memset(dst, 0, n * sizeof(floating))
    else:
        for i in range(n):
            dst[i] = 0


cdef inline void _add(const floating *src, floating *dst, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        dst[i] = dst[i] + src[i]


# Below this many channels, rows are filled one window tap at a time over a run of
# output pixels: per-pixel copies of a few values cost more in loop overhead than
# the strided stores of this order.
cdef Py_ssize_t SMALL_C = 4


cdef inline Py_ssize_t _ceil_div(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    # b > 0; rounds toward +infinity for either sign of a.
    return -((-a) // b) if a < 0 else (a + b - 1) // b


cdef inline void _tap_range(const Geom *g, Py_ssize_t ox0, Py_ssize_t cnt, Py_ssize_t j,
                            Py_ssize_t *qa, Py_ssize_t *qb) noexcept nogil:
    """Pixels q in [qa, qb) of the run ox0 .. ox0 + cnt - 1 whose tap j is inside the row."""
    cdef Py_ssize_t off = j * g.dw - g.pw
    # 0 <= (ox0 + q) * sw + off < w
    cdef Py_ssize_t lo = _ceil_div(-off, g.sw) - ox0
    cdef Py_ssize_t hi = _ceil_div(g.w - off, g.sw) - ox0
    qa[0] = lo if lo > 0 else 0
    qb[0] = hi if hi < cnt else cnt
    if qb[0] < qa[0]:
        qb[0] = qa[0]


cdef void _im2col_small(const floating *x, floating *cols, Py_ssize_t p0, Py_ssize_t p1,
                        const Geom *g) noexcept nogil:
    cdef Py_ssize_t c = g.c, K = g.kh * g.kw * g.c, ohw = g.oh * g.ow
    cdef Py_ssize_t p = p0, n, rem, oy, ox0, cnt, i, j, q, qa, qb, iy, ch, sx
    cdef floating *dst
    cdef const floating *src
    while p < p1:
        n = p // ohw
        rem = p - n * ohw
        oy = rem // g.ow
        ox0 = rem - oy * g.ow
        cnt = g.ow - ox0 if g.ow - ox0 < p1 - p else p1 - p
        for i in range(g.kh):
            iy = oy * g.sh - g.ph + i * g.dh
            for j in range(g.kw):
                dst = cols + (p - p0) * K + (i * g.kw + j) * c
                if iy < 0 or iy >= g.h:
                    qa = 0
                    qb = 0
                else:
                    _tap_range(g, ox0, cnt, j, &qa, &qb)
                for q in range(qa):
                    for ch in range(c):
                        dst[q * K + ch] = 0
                if qb > qa:
                    src = x + ((n * g.h + iy) * g.w + (ox0 + qa) * g.sw + j * g.dw - g.pw) * c
                    sx = g.sw * c
                    if c == 1:
                        for q in range(qa, qb):
                            dst[q * K] = src[(q - qa) * sx]
                    else:
                        for q in range(qa, qb):
                            for ch in range(c):
                                dst[q * K + ch] = src[(q - qa) * sx + ch]
                for q in range(qb, cnt):
                    for ch in range(c):
                        dst[q * K + ch] = 0
        p = p + cnt


cdef void _col2im_small(const floating *cols, floating *x, Py_ssize_t p0, Py_ssize_t p1,
                        const Geom *g) noexcept nogil:
    cdef Py_ssize_t c = g.c, K = g.kh * g.kw * g.c, ohw = g.oh * g.ow
    cdef Py_ssize_t p = p0, n, rem, oy, ox0, cnt, i, j, q, qa, qb, iy, ch, sx
    cdef const floating *src
    cdef floating *dst
    while p < p1:
        n = p // ohw
        rem = p - n * ohw
        oy = rem // g.ow
        ox0 = rem - oy * g.ow
        cnt = g.ow - ox0 if g.ow - ox0 < p1 - p else p1 - p
        for i in range(g.kh):
            iy = oy * g.sh - g.ph + i * g.dh
            if iy < 0 or iy >= g.h:
                continue
            for j in range(g.kw):
                _tap_range(g, ox0, cnt, j, &qa, &qb)
                if qb <= qa:
                    continue
                src = cols + (p - p0) * K + (i * g.kw + j) * c
                dst = x + ((n * g.h + iy) * g.w + (ox0 + qa) * g.sw + j * g.dw - g.pw) * c
                sx = g.sw * c
                if c == 1:
                    for q in range(qa, qb):
                        dst[(q - qa) * sx] += src[q * K]
                else:
                    for q in range(qa, qb):
                        for ch in range(c):
                            dst[(q - qa) * sx + ch] += src[q * K + ch]
        p = p + cnt


cdef void im2col_t_rows(const floating *x, floating *cols_t, Py_ssize_t ld, Py_ssize_t p0,
                        Py_ssize_t p1, const Geom *g) noexcept nogil:
    cdef Py_ssize_t c = g.c, ohw = g.oh * g.ow
    cdef Py_ssize_t p = p0, n, rem, oy, ox0, cnt, i, j, q, qa, qb, iy, ch, sx, k
    cdef floating *dst
    cdef const floating *src
    while p < p1:
        n = p // ohw
        rem = p - n * ohw
        oy = rem // g.ow
        ox0 = rem - oy * g.ow
        cnt = g.ow - ox0 if g.ow - ox0 < p1 - p else p1 - p
        for i in range(g.kh):
            iy = oy * g.sh - g.ph + i * g.dh
            for j in range(g.kw):
                if iy < 0 or iy >= g.h:
                    qa = 0
                    qb = 0
                else:
                    _tap_range(g, ox0, cnt, j, &qa, &qb)
                src = x + ((n * g.h + iy) * g.w + (ox0 + qa) * g.sw + j * g.dw - g.pw) * c
                sx = g.sw * c
                for ch in range(c):
                    k = (i * g.kw + j) * c + ch
                    dst = cols_t + k * ld + (p - p0)
                    for q in range(qa):
                        dst[q] = 0
                    if qb > qa:
                        if sx == 1:
                            _copy(src, dst + qa, qb - qa)
                        else:
                            for q in range(qa, qb):
                                dst[q] = src[(q - qa) * sx + ch]
                    for q in range(qb, cnt):
                        dst[q] = 0
        p = p + cnt


cdef void col2im_t_rows(const floating *cols_t, Py_ssize_t ld, floating *x, Py_ssize_t p0,
                        Py_ssize_t p1, const Geom *g) noexcept nogil:
    cdef Py_ssize_t c = g.c, ohw = g.oh * g.ow
    cdef Py_ssize_t p = p0, n, rem, oy, ox0, cnt, i, j, q, qa, qb, iy, ch, sx, k
    cdef const floating *src
    cdef floating *dst
    while p < p1:
        n = p // ohw
        rem = p - n * ohw
        oy = rem // g.ow
        ox0 = rem - oy * g.ow
        cnt = g.ow - ox0 if g.ow - ox0 < p1 - p else p1 - p
        for i in range(g.kh):
            iy = oy * g.sh - g.ph + i * g.dh
            if iy < 0 or iy >= g.h:
                continue
            for j in range(g.kw):
                _tap_range(g, ox0, cnt, j, &qa, &qb)
                if qb <= qa:
                    continue
                dst = x + ((n * g.h + iy) * g.w + (ox0 + qa) * g.sw + j * g.dw - g.pw) * c
                sx = g.sw * c
                for ch in range(c):
                    k = (i * g.kw + j) * c + ch
                    src = cols_t + k * ld + (p - p0)
                    if sx == 1:
                        for q in range(qa, qb):
                            dst[q - qa] += src[q]
                    else:
                        for q in range(qa, qb):
                            dst[(q - qa) * sx + ch] += src[q]
        p = p + cnt


cdef void im2col_rows(const floating *x, floating *cols, Py_ssize_t p0, Py_ssize_t p1,
                      const Geom *g) noexcept nogil:
    cdef Py_ssize_t c = g.c, kw = g.kw, span = g.kw * g.c, K = g.kh * g.kw * g.c
    cdef Py_ssize_t ohw = g.oh * g.ow, img = g.h * g.w * g.c
    cdef Py_ssize_t p, n, oy, ox, i, j, iy, ix, ix0
    cdef bint inside
    cdef floating *row
    cdef const floating *xs
    if p0 >= p1:
        return
    if c < SMALL_C:
        _im2col_small(x, cols, p0, p1, g)
        return
    n = p0 // ohw
    oy = (p0 - n * ohw) // g.ow
    ox = p0 - n * ohw - oy * g.ow
    for p in range(p0, p1):
        row = cols + (p - p0) * K
        xs = x + n * img
        ix0 = ox * g.sw - g.pw
        inside = g.dw == 1 and ix0 >= 0 and ix0 + kw <= g.w
        for i in range(g.kh):
            iy = oy * g.sh - g.ph + i * g.dh
            if iy < 0 or iy >= g.h:
                _zero(row + i * span, span)
            elif inside:
                _copy(xs + (iy * g.w + ix0) * c, row + i * span, span)
            else:
                for j in range(kw):
                    ix = ix0 + j * g.dw
                    if ix < 0 or ix >= g.w:
                        _zero(row + i * span + j * c, c)
                    else:
                        _copy(xs + (iy * g.w + ix) * c, row + i * span + j * c, c)
        ox = ox + 1
        if ox == g.ow:
            ox = 0
            oy = oy + 1
            if oy == g.oh:
                oy = 0
                n = n + 1


cdef void col2im_rows(const floating *cols, floating *x, Py_ssize_t p0, Py_ssize_t p1,
                      const Geom *g) noexcept nogil:
    cdef Py_ssize_t c = g.c, kw = g.kw, span = g.kw * g.c, K = g.kh * g.kw * g.c
    cdef Py_ssize_t ohw = g.oh * g.ow, img = g.h * g.w * g.c
    cdef Py_ssize_t p, n, oy, ox, i, j, iy, ix, ix0
    cdef bint inside
    cdef const floating *row
    cdef floating *xs
    if p0 >= p1:
        return
    if c < SMALL_C:
        _col2im_small(cols, x, p0, p1, g)
        return
    n = p0 // ohw
    oy = (p0 - n * ohw) // g.ow
    ox = p0 - n * ohw - oy * g.ow
    for p in range(p0, p1):
        row = cols + (p - p0) * K
        xs = x + n * img
        ix0 = ox * g.sw - g.pw
        inside = g.dw == 1 and ix0 >= 0 and ix0 + kw <= g.w
        for i in range(g.kh):
            iy = oy * g.sh - g.ph + i * g.dh
            if iy < 0 or iy >= g.h:
                continue
            if inside:
                _add(row + i * span, xs + (iy * g.w + ix0) * c, span)
            else:
                for j in range(kw):
                    ix = ix0 + j * g.dw
                    if ix >= 0 and ix < g.w:
                        _add(row + i * span + j * c, xs + (iy * g.w + ix) * c, c)
        ox = ox + 1
        if ox == g.ow:
            ox = 0
            oy = oy + 1
            if oy == g.oh:
                oy = 0
                n = n + 1


# ----------------------------------------------------------------- array entry points

def im2col(const floating[:, :, :, ::1] x, floating[:, ::1] cols, object geometry,
           int n_threads=1):
    """cols (n * oh * ow, kh * kw * c) = the windows of x (n, h, w, c).

    ``geometry`` is ``(h, w, oh, ow, kh, kw, sh, sw, dh, dw, pad_top, pad_left)``
    (a :class:`fastnet.utils.shape_utils.Geometry`).
    """
    cdef Geom g = make_geom(geometry, x.shape[0], x.shape[3])
    cdef Py_ssize_t P = g.n * g.oh * g.ow, K = g.kh * g.kw * g.c, n
    if x.shape[1] != g.h or x.shape[2] != g.w or cols.shape[0] != P or cols.shape[1] != K:
        raise ValueError(f"im2col: x {tuple(x.shape)[:4]} and cols {tuple(cols.shape)[:2]} "
                         f"do not match geometry {tuple(geometry)}")
    if P == 0 or K == 0:
        return
    cdef int nt = n_threads if P * K >= 65536 else 1
    cdef Py_ssize_t ohw = g.oh * g.ow
    for n in prange(g.n, nogil=True, num_threads=nt, schedule="static"):
        im2col_rows(&x[0, 0, 0, 0], &cols[0, 0] + n * ohw * K, n * ohw, (n + 1) * ohw, &g)


def col2im(const floating[:, ::1] cols, floating[:, :, :, ::1] x, object geometry,
           int n_threads=1):
    """x (n, h, w, c) = the adjoint of im2col applied to cols (x is overwritten)."""
    cdef Geom g = make_geom(geometry, x.shape[0], x.shape[3])
    cdef Py_ssize_t P = g.n * g.oh * g.ow, K = g.kh * g.kw * g.c, n
    if x.shape[1] != g.h or x.shape[2] != g.w or cols.shape[0] != P or cols.shape[1] != K:
        raise ValueError(f"col2im: cols {tuple(cols.shape)[:2]} and x {tuple(x.shape)[:4]} "
                         f"do not match geometry {tuple(geometry)}")
    cdef Py_ssize_t img = g.h * g.w * g.c, ohw = g.oh * g.ow
    if g.n * img == 0:
        return
    cdef int nt = n_threads if P * K >= 65536 else 1
    for n in prange(g.n, nogil=True, num_threads=nt, schedule="static"):
        memset(&x[0, 0, 0, 0] + n * img, 0, img * sizeof(floating))
        if K > 0:
            col2im_rows(&cols[0, 0] + n * ohw * K, &x[0, 0, 0, 0], n * ohw, (n + 1) * ohw, &g)
