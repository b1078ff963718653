"""Affine image sampling for the random image layers: each output pixel reads the input at
given (row, col) coordinates, bilinearly or at the nearest pixel, with points outside the
image taken by a fill mode; and the adjoint (backward) that scatters the same weights.

Coordinates come in precomputed (float32, as Keras computes them), so every discrete choice
(floor, rounding, which neighbours are inside) matches the numpy twin
(``fastnet/_reference/image.py``) exactly. Images are channels-last ``(batch, h, w, c)``.
Forward runs rows in parallel; backward runs images in parallel (each image's scatter is
its own).
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport fabs, floor

# Fill modes, in the order of FILL_MODES in fastnet/layers/preprocessing/_image_ops.py.
cdef enum:
    REFLECT = 0
    WRAP = 1
    CONSTANT = 2
    NEAREST = 3
    MIRROR = 4


cdef inline Py_ssize_t _fix(Py_ssize_t i, Py_ssize_t n, int mode, bint *valid) noexcept nogil:
    """The input index that stands for index i under the fill mode; valid is False for a
    point outside the image in "constant" mode."""
    cdef Py_ssize_t r, s
    valid[0] = True
    if mode == CONSTANT:
        if i < 0 or i >= n:
            valid[0] = False
            return 0
        return i
    if mode == NEAREST:
        return 0 if i < 0 else (n - 1 if i >= n else i)
    if mode == WRAP:
        r = i % n
        return r + n if r < 0 else r
    if mode == MIRROR:  # d c b | a b c d | c b a
        if n == 1:
            return 0
        s = n - 1
        r = (i + s) % (2 * s)
        if r < 0:
            r += 2 * s
        return r - s if r >= s else s - r
    # REFLECT: d c b a | a b c d | d c b a
    r = i % (2 * n)
    if r < 0:
        r += 2 * n
    return 2 * n - 1 - r if r >= n else r


cdef inline Py_ssize_t _round_away(float v) noexcept nogil:
    # Ties away from zero, as Keras's sampler rounds.
    if v >= 0:
        return <Py_ssize_t>floor(v + 0.5)
    return -<Py_ssize_t>floor(fabs(v) + 0.5)


def affine_forward(floating[:, :, :, ::1] x, float[:, :, ::1] rows, float[:, :, ::1] cols, int bilinear,
                   int fill_mode, double fill_value, floating[:, :, :, ::1] out, int n_threads=1):
    """out[b, i, j, :] = x sampled at (rows[b, i, j], cols[b, i, j])."""
    cdef Py_ssize_t B = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef Py_ssize_t Ho = rows.shape[1], Wo = rows.shape[2]
    cdef Py_ssize_t t, b, i, j, c, y0, x0, iy, ix
    cdef float yc, xc, wy1, wx1, wy0, wx0, w
    cdef bint vy, vx
    cdef floating cval = <floating>fill_value
    cdef int k
    if rows.shape[0] != B or cols.shape[0] != B or cols.shape[1] != Ho or cols.shape[2] != Wo:
        raise ValueError("affine_forward: the coordinate arrays do not match the batch")
    if out.shape[0] != B or out.shape[1] != Ho or out.shape[2] != Wo or out.shape[3] != C:
        raise ValueError("affine_forward: out has the wrong shape")
    for t in prange(B * Ho, nogil=True, schedule="static", num_threads=n_threads if B * Ho * Wo > 4096 else 1):
        b = t // Ho
        i = t % Ho
        for j in range(Wo):
            yc = rows[b, i, j]
            xc = cols[b, i, j]
            for c in range(C):
                out[b, i, j, c] = 0
            if not bilinear:
                iy = _fix(_round_away(yc), H, fill_mode, &vy)
                ix = _fix(_round_away(xc), W, fill_mode, &vx)
                for c in range(C):
                    out[b, i, j, c] = x[b, iy, ix, c] if (vy and vx) else cval
                continue
            y0 = <Py_ssize_t>floor(yc)
            x0 = <Py_ssize_t>floor(xc)
            wy1 = yc - <float>y0
            wx1 = xc - <float>x0
            wy0 = <float>1.0 - wy1
            wx0 = <float>1.0 - wx1
            for k in range(4):
                iy = _fix(y0 + (k >> 1), H, fill_mode, &vy)
                ix = _fix(x0 + (k & 1), W, fill_mode, &vx)
                w = (wy1 if k >> 1 else wy0) * (wx1 if k & 1 else wx0)
                for c in range(C):
                    out[b, i, j, c] += <floating>w * (x[b, iy, ix, c] if (vy and vx) else cval)


def affine_backward(floating[:, :, :, ::1] dy, float[:, :, ::1] rows, float[:, :, ::1] cols, int bilinear,
                    int fill_mode, floating[:, :, :, ::1] dx, int n_threads=1):
    """dx (zeroed here) receives the adjoint of affine_forward applied to dy."""
    cdef Py_ssize_t B = dx.shape[0], H = dx.shape[1], W = dx.shape[2], C = dx.shape[3]
    cdef Py_ssize_t Ho = dy.shape[1], Wo = dy.shape[2]
    cdef Py_ssize_t b, i, j, c, y0, x0, iy, ix
    cdef float yc, xc, wy1, wx1, wy0, wx0, w
    cdef bint vy, vx
    cdef int k
    if dy.shape[0] != B or dy.shape[3] != C or rows.shape[0] != B or rows.shape[1] != Ho or rows.shape[2] != Wo:
        raise ValueError("affine_backward: shapes do not match")
    for b in prange(B, nogil=True, schedule="static", num_threads=n_threads if B * Ho * Wo > 4096 else 1):
        for i in range(H):
            for j in range(W):
                for c in range(C):
                    dx[b, i, j, c] = 0
        for i in range(Ho):
            for j in range(Wo):
                yc = rows[b, i, j]
                xc = cols[b, i, j]
                if not bilinear:
                    iy = _fix(_round_away(yc), H, fill_mode, &vy)
                    ix = _fix(_round_away(xc), W, fill_mode, &vx)
                    if vy and vx:
                        for c in range(C):
                            dx[b, iy, ix, c] += dy[b, i, j, c]
                    continue
                y0 = <Py_ssize_t>floor(yc)
                x0 = <Py_ssize_t>floor(xc)
                wy1 = yc - <float>y0
                wx1 = xc - <float>x0
                wy0 = <float>1.0 - wy1
                wx0 = <float>1.0 - wx1
                for k in range(4):
                    iy = _fix(y0 + (k >> 1), H, fill_mode, &vy)
                    ix = _fix(x0 + (k & 1), W, fill_mode, &vx)
                    if vy and vx:
                        w = (wy1 if k >> 1 else wy0) * (wx1 if k & 1 else wx0)
                        for c in range(C):
                            dx[b, iy, ix, c] += <floating>w * dy[b, i, j, c]
