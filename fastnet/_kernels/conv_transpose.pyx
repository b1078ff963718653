"""Transposed convolution kernels (1-D and 2-D, NHWC): GEMM then col2im, and back.

A transposed convolution is the input gradient of a convolution; its kernel,
laid out as Keras does (kh, kw, filters, in), is that convolution's kernel
flattened to W (kh * kw * filters, in). With ``geometry`` the convolution's
(whose input is this op's output):

Forward, per chunk of input pixels:     cols = x[chunk] @ W^T      (rows, K)
                                        z += col2im(cols);  y = act(z + b)
Backward:                               dz = dy * act'(.)          (output-sized)
    per chunk of input pixels:          cols = im2col(dz)[chunk]   (rows, K)
                                        dx[chunk] = cols @ W;  dW += cols^T x[chunk]

The forward pass splits the batch into one block of whole samples per thread
(col2im scatters within a sample); the backward pass splits input pixels freely
and reduces per-thread partial dW at the end. Scratch is a chunk per thread.
"""
import numpy as np

from cython cimport floating
from cython.parallel cimport prange
from libc.string cimport memset

from fastnet._kernels._activations cimport needs_input, ACT_LINEAR
from fastnet._kernels._blas cimport gemm, gemm_parallel
from fastnet._kernels.conv cimport bias_act, col_sums, grad_rows
from fastnet._kernels.conv import scratch
from fastnet._kernels.im2col cimport Geom, col2im_rows, im2col_rows, is_pointwise, make_geom

cdef Py_ssize_t CHUNK_ELEMS = 65536
cdef Py_ssize_t PARALLEL_MIN_WORK = 1 << 18


cdef inline Py_ssize_t _chunk_rows(Py_ssize_t K, Py_ssize_t C) noexcept nogil:
    cdef Py_ssize_t per_row = K if K > C else C
    cdef Py_ssize_t rows = CHUNK_ELEMS // (per_row if per_row > 0 else 1)
    return rows if rows >= 8 else 8


cdef inline int _threads(Py_ssize_t work, Py_ssize_t units, int n_threads) noexcept nogil:
    if n_threads <= 1 or work < PARALLEL_MIN_WORK or units < n_threads:
        return 1
    return n_threads


cdef int _check(tuple xs, tuple ys, Py_ssize_t K, Py_ssize_t C, tuple ws, const Geom *g,
                str what) except -1:
    if (xs[1] != g.oh or xs[2] != g.ow or ys[0] != xs[0] or ys[1] != g.h or ys[2] != g.w
            or ws[0] != K or ws[1] != C):
        raise ValueError(f"conv_transpose {what}: input {xs}, output {ys} and kernel {ws} do not "
                         f"match the geometry (in {(g.oh, g.ow)}, out {(g.h, g.w)}, K={K})")
    return 0


def forward(const floating[:, :, :, ::1] x, const floating[:, ::1] w, const floating[::1] b,
            floating[:, :, :, ::1] z, floating[:, :, :, ::1] y, object geometry, int act,
            double alpha=0.0, int n_threads=1):
    """y = act(conv_transpose(x, W) + b).

    x (n, h_in, w_in, in); w (kh * kw * F, in); y (n, h_out, w_out, F); ``z`` the
    pre-activation (same shape as y) when the activation's derivative needs it, else
    None. ``geometry`` is the transposed convolution's: (h_out, w_out, h_in, w_in, kh,
    kw, sh, sw, dh, dw, pad_top, pad_left).
    """
    cdef Py_ssize_t F = y.shape[3]
    cdef Geom g = make_geom(geometry, x.shape[0], F)
    cdef Py_ssize_t C = x.shape[3], K = g.kh * g.kw * F
    _check(tuple(x.shape)[:4], tuple(y.shape)[:4], K, C, tuple(w.shape)[:2], &g, "forward")
    cdef bint keep_z = needs_input(act)
    if b is not None and b.shape[0] != F:
        raise ValueError("conv_transpose forward: bias size differs from filters")
    if keep_z and (z is None or tuple(z.shape)[:4] != tuple(y.shape)[:4]):
        raise ValueError("conv_transpose forward: this activation needs a z buffer of y's shape")
    cdef Py_ssize_t P_in = g.n * g.oh * g.ow, ohw = g.oh * g.ow, hw = g.h * g.w
    if g.n * hw * F == 0:
        return
    cdef floating *yp = &y[0, 0, 0, 0]
    cdef floating *zp = &z[0, 0, 0, 0] if keep_z else yp
    cdef const floating *bp = &b[0] if b is not None else NULL
    if P_in == 0 or C == 0:
        with nogil:
            memset(zp, 0, g.n * hw * F * sizeof(floating))
            bias_act(zp, yp, bp, g.n * hw, F, act, alpha)
        return
    cdef const floating *xp = &x[0, 0, 0, 0]
    cdef const floating *wp = &w[0, 0]
    cdef bint direct = is_pointwise(&g)
    cdef Py_ssize_t rows = _chunk_rows(K, C)
    cdef int nt = _threads(P_in * K * C, g.n, n_threads)
    cdef Py_ssize_t per = (g.n + nt - 1) // nt
    cdef floating[:, ::1] work = scratch("work", (nt, 1 if direct else rows * K),
                                         np.float32 if floating is float else np.float64)
    cdef Py_ssize_t t, n0, n1, c0, c1
    cdef floating *cols
    cdef int gt = n_threads if nt == 1 else 1
    for t in prange(nt, nogil=True, num_threads=nt, schedule="static"):
        n0 = t * per
        n1 = min(g.n, n0 + per)
        if n1 <= n0:
            continue
        cols = &work[t, 0]
        if direct:
            gemm_parallel(False, True, (n1 - n0) * ohw, K, C, <floating>1, xp + n0 * ohw * C, C,
                          wp, C, <floating>0, zp + n0 * hw * F, K, gt)
        else:
            memset(zp + n0 * hw * F, 0, (n1 - n0) * hw * F * sizeof(floating))
            c0 = n0 * ohw
            while c0 < n1 * ohw:
                c1 = min(n1 * ohw, c0 + rows)
                gemm_parallel(False, True, c1 - c0, K, C, <floating>1, xp + c0 * C, C, wp, C,
                              <floating>0, cols, K, gt)
                col2im_rows(cols, zp, c0, c1, &g)
                c0 = c1
        bias_act(zp + n0 * hw * F, yp + n0 * hw * F, bp, (n1 - n0) * hw, F, act, alpha)


def backward(const floating[:, :, :, ::1] dy, const floating[:, :, :, ::1] x,
             const floating[:, ::1] w, const floating[:, :, :, ::1] y,
             const floating[:, :, :, ::1] z, floating[:, :, :, ::1] dz,
             floating[:, ::1] dw, floating[::1] db, floating[:, :, :, ::1] dx,
             object geometry, int act, double alpha=0.0, int n_threads=1):
    """Gradients of a transposed convolution.

    dy, y, z (z only for activations whose derivative needs the input) and the
    scratch ``dz`` have the output's shape; ``dz`` may be None for a linear
    activation, or dy itself when dy may be overwritten. ``dw`` (K, in), ``db``
    (F,) and ``dx`` (x's shape) may be None to skip them; they are overwritten.
    """
    cdef Py_ssize_t F = dy.shape[3]
    cdef Geom g = make_geom(geometry, x.shape[0], F)
    cdef Py_ssize_t C = x.shape[3], K = g.kh * g.kw * F
    _check(tuple(x.shape)[:4], tuple(dy.shape)[:4], K, C, tuple(w.shape)[:2], &g, "backward")
    cdef Py_ssize_t P_out = g.n * g.h * g.w, P_in = g.n * g.oh * g.ow
    if act != ACT_LINEAR:
        if y is None or tuple(y.shape)[:4] != tuple(dy.shape)[:4]:
            raise ValueError("conv_transpose backward: the activation's derivative needs y")
        if needs_input(act) and (z is None or tuple(z.shape)[:4] != tuple(dy.shape)[:4]):
            raise ValueError("conv_transpose backward: this activation needs z")
        if dz is None or tuple(dz.shape)[:4] != tuple(dy.shape)[:4]:
            raise ValueError("conv_transpose backward: dz scratch must have dy's shape")
    if dw is not None and (dw.shape[0] != K or dw.shape[1] != C):
        raise ValueError("conv_transpose backward: dw must have the kernel's shape")
    if db is not None and db.shape[0] != F:
        raise ValueError("conv_transpose backward: db must have F entries")
    if dx is not None and tuple(dx.shape)[:4] != tuple(x.shape)[:4]:
        raise ValueError("conv_transpose backward: dx must have x's shape")
    if dw is not None:
        dw[:, :] = 0
    if db is not None:
        db[:] = 0
    if dx is not None:
        dx[:, :, :, :] = 0
    if P_out * F == 0:
        return
    cdef const floating *dyp = &dy[0, 0, 0, 0]
    cdef const floating *yp = &y[0, 0, 0, 0] if y is not None else NULL
    cdef const floating *zp = &z[0, 0, 0, 0] if (z is not None and needs_input(act)) else NULL
    cdef floating *dzw = &dz[0, 0, 0, 0] if act != ACT_LINEAR else NULL
    cdef const floating *g_out = <const floating *>dzw if act != ACT_LINEAR else dyp
    cdef floating *dwp = &dw[0, 0] if (dw is not None and P_in * C > 0) else NULL
    cdef floating *dbp = &db[0] if db is not None else NULL
    cdef floating *dxp = &dx[0, 0, 0, 0] if (dx is not None and P_in * C > 0) else NULL
    dt = np.float32 if floating is float else np.float64
    cdef Py_ssize_t t, lo, hi, c0, c1, per, i
    cdef int nt
    # 1. dz = dy * act'(.) and db, one block of output rows per thread.
    nt = _threads(P_out * F * 8, P_out // 64, n_threads)
    per = (P_out + nt - 1) // nt
    cdef floating[:, ::1] dbs = np.zeros((nt, F if F > 0 else 1), dtype=dt)
    for t in prange(nt, nogil=True, num_threads=nt, schedule="static"):
        lo = t * per
        hi = min(P_out, lo + per)
        if hi > lo:
            if act != ACT_LINEAR:
                grad_rows(act, dyp + lo * F, yp + lo * F, zp + lo * F if zp != NULL else NULL,
                          dzw + lo * F, hi - lo, F, alpha)
            if dbp != NULL:
                col_sums(g_out + lo * F, hi - lo, F, &dbs[t, 0], True)
    if dbp != NULL:
        for t in range(nt):
            for i in range(F):
                dbp[i] += dbs[t, i]
    if (dwp == NULL and dxp == NULL) or K == 0:
        return
    # 2. Per chunk of input pixels: cols = im2col(dz); dx = cols W; dW += cols^T x.
    cdef const floating *xp = &x[0, 0, 0, 0]
    cdef const floating *wp = &w[0, 0]
    cdef bint direct = is_pointwise(&g)
    cdef Py_ssize_t rows = _chunk_rows(K, C)
    nt = _threads(P_in * K * C * 2, P_in // 16, n_threads)
    per = (P_in + nt - 1) // nt
    cdef Py_ssize_t s_cols = 1 if direct else rows * K
    cdef Py_ssize_t s_dw = K * C if dwp != NULL else 1
    cdef floating[:, ::1] work = scratch("work", (nt, s_cols + s_dw), dt)
    cdef floating *cols
    cdef const floating *a
    cdef floating *tdw
    cdef int gt = n_threads if nt == 1 else 1
    cdef bint first
    for t in prange(nt, nogil=True, num_threads=nt, schedule="static"):
        lo = t * per
        hi = min(P_in, lo + per)
        cols = &work[t, 0]
        tdw = cols + s_cols
        if dwp != NULL:
            memset(tdw, 0, s_dw * sizeof(floating))
        c0 = lo
        first = True
        while c0 < hi:
            c1 = min(hi, c0 + rows)
            if direct:
                a = g_out + c0 * K
            else:
                im2col_rows(g_out, cols, c0, c1, &g)
                a = cols
            if dxp != NULL:
                gemm_parallel(False, False, c1 - c0, C, K, <floating>1, a, K, wp, C,
                              <floating>0, dxp + c0 * C, C, gt)
            if dwp != NULL:
                gemm_parallel(True, False, K, C, c1 - c0, <floating>1, a, K, xp + c0 * C, C,
                              <floating>(0 if first else 1), tdw, C, gt)
            first = False
            c0 = c1
    if dwp != NULL:
        with nogil:
            for t in range(nt):
                tdw = &work[t, 0] + s_cols
                for i in range(K * C):
                    dwp[i] = dwp[i] + tdw[i]
