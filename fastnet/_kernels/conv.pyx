"""Convolution kernels (1-D and 2-D, NHWC): chunked im2col + GEMM, bias and activation fused.

Forward, for each chunk of output pixels (rows of the column matrix):
    cols = im2col(x)[chunk]                 (rows, K)   K = kh * kw * in
    z[chunk] = cols @ W + b                 (rows, F)   W = kernel as (K, F)
    y[chunk] = act(z[chunk])
Backward, for each chunk:
    dz = dy * act'(.)                       (rows, F)   never stored whole
    db += colsum(dz);  dW += cols^T dz      per-thread partial sums, reduced at the end
    dx += col2im(dz @ W^T)

Chunks are sized so that a chunk's columns fit in a core's cache; the scratch
memory of a call is a few chunks per thread, whatever the batch. The pixel range
is split into one contiguous block per thread and each thread runs
single-threaded GEMMs on its chunks (one level of parallelism). The backward
pass splits by whole samples so that col2im never writes a pixel another thread
writes; when there are fewer samples than threads, chunks run one after another
with a multi-threaded GEMM instead. A 1x1 convolution with stride 1 and no
padding uses the input itself as its column matrix.
"""
import numpy as np

from cython cimport floating
from cython.parallel cimport parallel, prange
from libc.string cimport memset

from fastnet._kernels._activations cimport (act_grad_row, act_row, needs_input, ACT_LINEAR,
                                           ACT_RELU)
from fastnet._kernels._blas cimport gemm, gemm_parallel
from fastnet._kernels._openmp cimport omp_get_thread_num
from fastnet._kernels.im2col cimport (Geom, col2im_rows, col2im_t_rows, im2col_rows,
                                     im2col_t_rows, is_pointwise, make_geom)

# Elements of a chunk's column matrix (per thread): about 256 KiB in float32,
# which keeps columns, dz and the GEMM's packed panels inside a 1-2 MiB L2.
cdef Py_ssize_t CHUNK_ELEMS = 65536
# Below this many multiply-adds a call runs on the calling thread alone.
cdef Py_ssize_t PARALLEL_MIN_WORK = 1 << 18
# How dW is formed per chunk: 0: dW += cols^T dz ; 1: dW^T += dz^T cols.
cdef int DW_MODE = 0
# Inputs with fewer channels than this use a tap-major (transposed) column matrix:
# a window tap of a run of pixels is then one contiguous copy instead of a few
# values per pixel (the first layer of an image model has 1 or 3 channels).
cdef Py_ssize_t TAP_MAJOR_C = 4


def set_tuning(chunk_elems=None, dw_mode=None):
    """Development hook for benchmarks: chunk size (elements) and dW formulation."""
    global CHUNK_ELEMS, DW_MODE
    if chunk_elems is not None:
        CHUNK_ELEMS = max(1024, int(chunk_elems))
    if dw_mode is not None:
        DW_MODE = int(dw_mode)
    return CHUNK_ELEMS, DW_MODE


cdef inline Py_ssize_t _chunk_rows(Py_ssize_t K, Py_ssize_t F) noexcept nogil:
    cdef Py_ssize_t per_row = K if K > F else F
    cdef Py_ssize_t rows = CHUNK_ELEMS // (per_row if per_row > 0 else 1)
    if rows < 8:
        rows = 8
    return rows


cdef inline int _threads(Py_ssize_t work, Py_ssize_t units, int n_threads) noexcept nogil:
    if n_threads <= 1 or work < PARALLEL_MIN_WORK or units < n_threads:
        return 1
    return n_threads


cdef int _check_x(tuple shape, const Geom *g, str what) except -1:
    if shape[1] != g.h or shape[2] != g.w:
        raise ValueError(f"conv {what}: input spatial size {shape[1:3]} does not match "
                         f"the geometry ({g.h}, {g.w})")
    return 0


cdef void bias_act(floating *zp, floating *yp, const floating *bp, Py_ssize_t rows,
                   Py_ssize_t F, int act, double alpha) noexcept nogil:
    cdef Py_ssize_t r, j
    cdef floating *zr
    cdef floating *yr
    cdef floating v
    if act == ACT_RELU:
        # One flat pass (a call per row of a few filters costs more than the work).
        for r in range(rows):
            zr = zp + r * F
            yr = yp + r * F
            if bp != NULL and zr == yr:
                for j in range(F):
                    v = zr[j] + bp[j]
                    yr[j] = v if v > 0 else 0
            elif bp != NULL:
                for j in range(F):
                    v = zr[j] + bp[j]
                    zr[j] = v
                    yr[j] = v if v > 0 else 0
            else:
                for j in range(F):
                    v = zr[j]
                    yr[j] = v if v > 0 else 0
        return
    for r in range(rows):
        zr = zp + r * F
        if bp != NULL:
            for j in range(F):
                zr[j] = zr[j] + bp[j]
        if act != ACT_LINEAR or zr != yp + r * F:
            act_row(act, zr, yp + r * F, F, alpha)

def forward(const floating[:, :, :, ::1] x, const floating[:, ::1] w, const floating[::1] b,
            floating[:, ::1] z, floating[:, ::1] y, object geometry, int act,
            double alpha=0.0, int n_threads=1):
    """y = act(conv(x, W) + b).

    x (n, h, w, in); w (kh * kw * in, F); b (F,) or None; y (n * oh * ow, F).
    ``z`` receives the pre-activation when the activation's derivative needs it
    (else None). ``geometry`` = (h, w, oh, ow, kh, kw, sh, sw, dh, dw, pad_top, pad_left).
    """
    cdef Geom g = make_geom(geometry, x.shape[0], x.shape[3])
    _check_x(tuple(x.shape)[:4], &g, "forward")
    cdef Py_ssize_t P = g.n * g.oh * g.ow, K = g.kh * g.kw * g.c, F = w.shape[1]
    cdef bint keep_z = needs_input(act)
    if w.shape[0] != K or y.shape[0] != P or y.shape[1] != F:
        raise ValueError(f"conv forward: kernel {(w.shape[0], F)} and output "
                         f"{(y.shape[0], y.shape[1])} do not match (K={K}, pixels={P})")
    if b is not None and b.shape[0] != F:
        raise ValueError("conv forward: bias size differs from filters")
    if keep_z and (z is None or z.shape[0] != P or z.shape[1] != F):
        raise ValueError("conv forward: this activation needs a z buffer of the output's shape")
    if P == 0 or F == 0:
        return
    cdef const floating *xp = &x[0, 0, 0, 0]
    cdef const floating *wp = &w[0, 0]
    cdef const floating *bp = &b[0] if b is not None else NULL
    cdef floating *yp = &y[0, 0]
    cdef floating *zp = &z[0, 0] if keep_z else yp
    cdef bint direct = is_pointwise(&g)
    cdef bint tmajor = g.c < TAP_MAJOR_C
    cdef Py_ssize_t rows = _chunk_rows(K, F)
    cdef int nt = _threads(P * K * F, P // 16, n_threads)
    cdef Py_ssize_t per = (P + nt - 1) // nt
    # Without a z output the GEMM writes a cache-resident chunk that the bias and
    # activation pass then reads once, writing y once (writing y twice, GEMM then
    # activation, cost ~1 ms more on the MNIST convnet's first layer).
    cdef bint via_scratch = not keep_z
    cdef Py_ssize_t s_cols = 0 if direct else rows * K
    cdef floating[:, ::1] scratch = np.empty((nt, s_cols + (rows * F if via_scratch else 0) + 1),
                                             dtype=np.float32 if floating is float else np.float64)
    cdef Py_ssize_t t, lo, hi, c0, c1
    cdef floating *cols
    cdef floating *zc
    for t in prange(nt, nogil=True, num_threads=nt, schedule="static"):
        lo = t * per
        hi = min(P, lo + per)
        cols = &scratch[t, 0]
        c0 = lo
        while c0 < hi:
            c1 = min(hi, c0 + rows)
            zc = cols + s_cols if via_scratch else zp + c0 * F
            if direct:
                gemm(False, False, c1 - c0, F, K, <floating>1, xp + c0 * K, K, wp, F,
                     <floating>0, zc, F)
            elif tmajor:
                im2col_t_rows(xp, cols, c1 - c0, c0, c1, &g)
                gemm(True, False, c1 - c0, F, K, <floating>1, cols, c1 - c0, wp, F,
                     <floating>0, zc, F)
            else:
                im2col_rows(xp, cols, c0, c1, &g)
                gemm(False, False, c1 - c0, F, K, <floating>1, cols, K, wp, F, <floating>0,
                     zc, F)
            bias_act(zc, yp + c0 * F, bp, c1 - c0, F, act, alpha)
            c0 = c1


cdef void grad_rows(int act, const floating *dy, const floating *y, const floating *z,
                    floating *dz, Py_ssize_t rows, Py_ssize_t F, double alpha) noexcept nogil:
    """dz = dy * act'(.) for ``rows`` rows of F values (relu branch-free: half its
    signs are unpredictable, and a branch per element costs more than the pass)."""
    cdef Py_ssize_t i, r, n = rows * F
    cdef floating v
    if act == ACT_RELU:
        for i in range(n):
            v = dy[i]
            dz[i] = v if y[i] > 0 else 0
    else:
        for r in range(rows):
            act_grad_row(act, dy + r * F, y + r * F, z + r * F if z != NULL else NULL,
                         dz + r * F, F, alpha)


cdef void col_sums(const floating *a, Py_ssize_t rows, Py_ssize_t F, floating *out,
                   bint first) noexcept nogil:
    """out (+)= the column sums of a (rows, F)."""
    cdef Py_ssize_t r, j
    if first:
        for j in range(F):
            out[j] = 0
    for r in range(rows):
        for j in range(F):
            out[j] = out[j] + a[r * F + j]


cdef void _chunk_backward(const floating *dyp, const floating *yp, const floating *zp,
                          const floating *xp, const floating *wp, floating *dwp, floating *dbp,
                          floating *dxp, Py_ssize_t c0, Py_ssize_t c1, const Geom *g,
                          Py_ssize_t F, int act, double alpha, bint direct, bint tmajor,
                          bint first,
                          floating *cols, floating *dzbuf, floating *dcols,
                          int gemm_threads) noexcept nogil:
    """One chunk of the backward pass; dW and db accumulate unless ``first``."""
    cdef Py_ssize_t K = g.kh * g.kw * g.c, n = c1 - c0, r, j, k
    cdef const floating *dz
    cdef const floating *a
    cdef floating beta = 0 if first else 1
    if act == ACT_LINEAR:
        dz = dyp + c0 * F
    else:
        grad_rows(act, dyp + c0 * F, yp + c0 * F, zp + c0 * F if zp != NULL else NULL,
                  dzbuf, n, F, alpha)
        dz = dzbuf
    if dbp != NULL:
        col_sums(dz, n, F, dbp, first)
    if dwp != NULL:
        if tmajor and not direct:
            im2col_t_rows(xp, cols, n, c0, c1, g)
            if DW_MODE == 0:
                gemm_parallel(False, False, K, F, n, <floating>1, cols, n, dz, F, beta, dwp, F,
                              gemm_threads)
            else:
                gemm_parallel(True, True, F, K, n, <floating>1, dz, F, cols, n, beta, dwp, K,
                              gemm_threads)
        else:
            if direct:
                a = xp + c0 * K
            else:
                im2col_rows(xp, cols, c0, c1, g)
                a = cols
            if DW_MODE == 0:
                gemm_parallel(True, False, K, F, n, <floating>1, a, K, dz, F, beta, dwp, F,
                              gemm_threads)
            else:
                gemm_parallel(True, False, F, K, n, <floating>1, dz, F, a, K, beta, dwp, K,
                              gemm_threads)
    if dxp != NULL:
        if direct:
            gemm_parallel(False, True, n, K, F, <floating>1, dz, F, wp, F, <floating>0,
                          dxp + c0 * K, K, gemm_threads)
        elif tmajor:
            gemm_parallel(False, True, K, n, F, <floating>1, wp, F, dz, F, <floating>0,
                          dcols, n, gemm_threads)
            col2im_t_rows(dcols, n, dxp, c0, c1, g)
        else:
            gemm_parallel(False, True, n, K, F, <floating>1, dz, F, wp, F, <floating>0,
                          dcols, K, gemm_threads)
            col2im_rows(dcols, dxp, c0, c1, g)

def backward(const floating[:, ::1] dy, const floating[:, :, :, ::1] x,
             const floating[:, ::1] w, const floating[:, ::1] y, const floating[:, ::1] z,
             floating[:, ::1] dw, floating[::1] db, floating[:, :, :, ::1] dx,
             object geometry, int act, double alpha=0.0, int n_threads=1):
    """Gradients of a convolution.

    dy, y, z: (n * oh * ow, F) (z only for activations whose derivative needs the
    input). ``dw`` (K, F), ``db`` (F,) and ``dx`` (x's shape) may be None to skip
    them (frozen weights, no bias, first layer); they are overwritten.
    """
    cdef Geom g = make_geom(geometry, x.shape[0], x.shape[3])
    _check_x(tuple(x.shape)[:4], &g, "backward")
    cdef Py_ssize_t P = g.n * g.oh * g.ow, K = g.kh * g.kw * g.c, F = w.shape[1]
    cdef Py_ssize_t ohw = g.oh * g.ow, img = g.h * g.w * g.c
    if w.shape[0] != K or dy.shape[0] != P or dy.shape[1] != F:
        raise ValueError(f"conv backward: dy {(dy.shape[0], dy.shape[1])} and kernel "
                         f"{(w.shape[0], F)} do not match (K={K}, pixels={P})")
    if act != ACT_LINEAR and (y is None or y.shape[0] != P or y.shape[1] != F):
        raise ValueError("conv backward: the activation's derivative needs y")
    if needs_input(act) and (z is None or z.shape[0] != P or z.shape[1] != F):
        raise ValueError("conv backward: this activation needs z")
    if dw is not None and (dw.shape[0] != K or dw.shape[1] != F):
        raise ValueError("conv backward: dw must have the kernel's shape")
    if db is not None and db.shape[0] != F:
        raise ValueError("conv backward: db must have F entries")
    if dx is not None and (dx.shape[0] != g.n or dx.shape[1] != g.h or dx.shape[2] != g.w
                           or dx.shape[3] != g.c):
        raise ValueError("conv backward: dx must have x's shape")
    cdef floating *dwp = &dw[0, 0] if dw is not None else NULL
    cdef floating *dbp = &db[0] if db is not None else NULL
    cdef floating *dxp = &dx[0, 0, 0, 0] if (dx is not None and g.n * img > 0) else NULL
    if P == 0 or F == 0 or K == 0:
        if dw is not None:
            dw[:, :] = 0
        if db is not None:
            db[:] = 0
        if dx is not None:
            dx[:, :, :, :] = 0
        return
    cdef const floating *dyp = &dy[0, 0]
    cdef const floating *yp = &y[0, 0] if y is not None else NULL
    cdef const floating *zp = &z[0, 0] if (z is not None and needs_input(act)) else NULL
    cdef const floating *xp = &x[0, 0, 0, 0]
    cdef const floating *wp = &w[0, 0]
    cdef bint direct = is_pointwise(&g)
    cdef bint tmajor = g.c < TAP_MAJOR_C
    cdef Py_ssize_t rows = _chunk_rows(K, F)
    cdef int nt = _threads(P * K * F * (2 if dxp != NULL else 1), g.n, n_threads)
    dt = np.float32 if floating is float else np.float64
    # Per thread: cols (rows*K), dz (rows*F), dcols (rows*K), partial dW^(T) (K*F), db (F).
    cdef Py_ssize_t s_cols = 0 if direct else rows * K
    cdef Py_ssize_t s_dz = 0 if act == ACT_LINEAR else rows * F
    cdef Py_ssize_t s_dcols = rows * K if (dxp != NULL and not direct) else 0
    cdef Py_ssize_t s_dw = K * F if (dwp != NULL and (nt > 1 or DW_MODE == 1)) else 0
    cdef Py_ssize_t s_db = F if (dbp != NULL and nt > 1) else 0
    cdef Py_ssize_t stride_t = s_cols + s_dz + s_dcols + s_dw + s_db + 1
    cdef floating[:, ::1] scratch = np.empty((nt, stride_t), dtype=dt)
    cdef Py_ssize_t t, n0, n1, c0, c1, per, i, j
    cdef floating *base
    cdef floating *tdw
    cdef floating *tdb
    cdef bint first
    if nt == 1:
        # One thread: chunks in order; GEMMs may still use every thread when the
        # batch is too small to split by samples.
        base = &scratch[0, 0]
        tdw = base + s_cols + s_dz + s_dcols if s_dw > 0 else dwp
        with nogil:
            if dxp != NULL:
                memset(dxp, 0, g.n * img * sizeof(floating))
            c0 = 0
            first = True
            while c0 < P:
                c1 = min(P, c0 + rows)
                _chunk_backward(dyp, yp, zp, xp, wp, tdw, dbp, dxp, c0, c1, &g, F, act, alpha,
                                direct, tmajor, first, base, base + s_cols, base + s_cols + s_dz,
                                n_threads if n_threads > 1 else 1)
                first = False
                c0 = c1
            if DW_MODE == 1 and dwp != NULL:
                for i in range(K):
                    for j in range(F):
                        dwp[i * F + j] = tdw[j * K + i]
        return
    per = (g.n + nt - 1) // nt
    for t in prange(nt, nogil=True, num_threads=nt, schedule="static"):
        n0 = t * per
        n1 = min(g.n, n0 + per)
        base = &scratch[t, 0]
        tdw = base + s_cols + s_dz + s_dcols
        tdb = tdw + s_dw
        if dxp != NULL and n1 > n0:
            memset(dxp + n0 * img, 0, (n1 - n0) * img * sizeof(floating))
        if s_dw > 0:
            memset(tdw, 0, s_dw * sizeof(floating))
        if s_db > 0:
            memset(tdb, 0, s_db * sizeof(floating))
        c0 = n0 * ohw
        first = True
        while c0 < n1 * ohw:
            c1 = min(n1 * ohw, c0 + rows)
            _chunk_backward(dyp, yp, zp, xp, wp, tdw if dwp != NULL else NULL,
                            tdb if dbp != NULL else NULL, dxp, c0, c1, &g, F, act, alpha,
                            direct, tmajor, first, base, base + s_cols, base + s_cols + s_dz, 1)
            first = False
            c0 = c1
    # Reduce the per-thread partial sums (small: K * F per thread).
    with nogil:
        if dwp != NULL:
            for i in range(K * F):
                dwp[i] = 0
            for t in range(nt):
                tdw = &scratch[t, 0] + s_cols + s_dz + s_dcols
                if DW_MODE == 0:
                    for i in range(K * F):
                        dwp[i] = dwp[i] + tdw[i]
                else:
                    for i in range(K):
                        for j in range(F):
                            dwp[i * F + j] = dwp[i * F + j] + tdw[j * K + i]
        if dbp != NULL:
            for j in range(F):
                dbp[j] = 0
            for t in range(nt):
                tdb = &scratch[t, 0] + s_cols + s_dz + s_dcols + s_dw
                for j in range(F):
                    dbp[j] = dbp[j] + tdb[j]
