"""Convolution kernels (1-D and 2-D, NHWC), bias and activation fused.

Three algorithms, chosen per pass (forward, kernel gradient, input gradient):

* im2col + GEMM, for every geometry. Forward, for each chunk of output pixels:
      cols = im2col(x)[chunk]             (rows, K)   K = kh * kw * in
      y[chunk] = act(cols @ W + b)        (rows, F)   W = kernel as (K, F)
  Backward, for each chunk:
      dz = dy * act'(.)                   (rows, F)   never stored whole
      db += colsum(dz);  dW += cols^T dz  per-thread partial sums, reduced at the end
      dx += col2im(dz @ W^T)
  Inputs with fewer than TAP_MAJOR_C channels use a tap-major column matrix; a 1x1
  stride-1 unpadded convolution uses the input itself.
* Winograd, for stride-1 undilated windows with enough channels: F(2x2, 3x3) for
  3x3 images, F(4, 3), F(4, 5), F(2, 7) for Conv1D. The GEMM work drops to 16/36
  (2-D) or n/(m r) (1-D) of im2col's; it is used where that ratio, counted per
  pixel of the forward output, is at most WINO_RATIO (the transforms take the
  rest). The input gradient of a stride-1 convolution is itself a convolution of
  dz with the kernel reversed and transposed, so it can take the same path.
* Direct float32 kernels (_direct_conv.h) for few channels, where the GEMMs of the
  two above are too small for BLAS and Winograd's transforms cost what it saves:
  register tiles over x and dz read in place; see "direct kernels" below.

Chunks are sized so that a chunk's columns (or transformed tiles) stay in a core's
cache; the scratch of a call is a few chunks per thread, whatever the batch (the
Winograd backward also forms dz, output-sized, since the input gradient reads it
across chunks). Scratch is reused between calls, per Python thread. Work is split
into one contiguous block of pixels (or tiles) per thread, each running
single-threaded GEMMs (one level of parallelism); the im2col backward splits by
whole samples so that col2im never writes a pixel another thread writes, and with
fewer samples than threads runs its chunks in order with a multi-threaded GEMM.
"""
import threading

import numpy as np

from cython cimport floating
from cython.parallel cimport prange
from libc.string cimport memcpy, memset

from fastnet._kernels._activations cimport (act_grad_row, act_row, needs_input, ACT_LINEAR,
                                           ACT_LOG_SOFTMAX, ACT_RELU, ACT_SOFTMAX)
from fastnet._kernels._blas cimport gemm, gemm_parallel
cdef extern from "_winograd.h" nogil:
    void fn_bt4_f(const float *a0, const float *a1, const float *a2, const float *a3,
                  float *o0, float *o1, float *o2, float *o3, Py_ssize_t n)
    void fn_bt4_d(const double *a0, const double *a1, const double *a2, const double *a3,
                  double *o0, double *o1, double *o2, double *o3, Py_ssize_t n)
    void fn_at4_f(const float *a0, const float *a1, const float *a2, const float *a3,
                  float *o0, float *o1, Py_ssize_t n)
    void fn_at4_d(const double *a0, const double *a1, const double *a2, const double *a3,
                  double *o0, double *o1, Py_ssize_t n)
    void fn_cols_f(const float *r, Py_ssize_t ld, float *v, Py_ssize_t vs, Py_ssize_t run,
                   Py_ssize_t c)
    void fn_cols_d(const double *r, Py_ssize_t ld, double *v, Py_ssize_t vs, Py_ssize_t run,
                   Py_ssize_t c)
    void fn_axpy_f(float a, const float *x, Py_ssize_t xs, float *y, Py_ssize_t ys,
                   Py_ssize_t nb, Py_ssize_t n, int accumulate)
    void fn_axpy_d(double a, const double *x, Py_ssize_t xs, double *y, Py_ssize_t ys,
                   Py_ssize_t nb, Py_ssize_t n, int accumulate)
    void fn_tf_f(const double *mat, int rows, int cols, int trans, const float *x,
                 Py_ssize_t xi, Py_ssize_t xq, float *y, Py_ssize_t yk, Py_ssize_t yq,
                 Py_ssize_t nb, Py_ssize_t c)
    void fn_tf_d(const double *mat, int rows, int cols, int trans, const double *x,
                 Py_ssize_t xi, Py_ssize_t xq, double *y, Py_ssize_t yk, Py_ssize_t yq,
                 Py_ssize_t nb, Py_ssize_t c)

from fastnet._kernels.im2col cimport (Geom, col2im_rows, col2im_t_rows, im2col_rows,
                                     im2col_t_rows, is_pointwise, make_geom)
cdef extern from *:
    """
    /* the direct float32 kernels for few channels (and fn_pack_b) */
    #include "_direct_conv.h"
    """
    void fn_pack_b(const float *B, Py_ssize_t ldb, Py_ssize_t K, Py_ssize_t N, int trans,
                   float *Bp) noexcept nogil
    void fn_gemm_packed(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K, const float *A,
                        Py_ssize_t lda, const float *Bp, float *C, Py_ssize_t ldc,
                        int accumulate, const float *bias) noexcept nogil
    void fn_dc_atb(const float *A, const float *B, Py_ssize_t T, Py_ssize_t C, Py_ssize_t F,
                   float *out, int accumulate) noexcept nogil
    Py_ssize_t fn_dconv_dw_scratch(const Geom *g, Py_ssize_t F, Py_ssize_t rows) noexcept nogil
    void fn_dconv_dw_rows(const float *x, const float *dz, Py_ssize_t dz_row0, Py_ssize_t F,
                          const Geom *g, Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t rows,
                          float *acc, float *scratch) noexcept nogil
    Py_ssize_t fn_dconv_taps_scratch(Py_ssize_t band_rows, Py_ssize_t band_cols, Py_ssize_t C,
                                     Py_ssize_t T) noexcept nogil
    void fn_dconv_taps_rows(const float *x, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C,
                            Py_ssize_t sy, Py_ssize_t sx, Py_ssize_t TI, const Py_ssize_t *e,
                            Py_ssize_t TJ, const Py_ssize_t *f, const float *Wp,
                            const float *bias, Py_ssize_t F, Py_ssize_t a0, Py_ssize_t a1,
                            Py_ssize_t nb, float *y, Py_ssize_t yrow, Py_ssize_t ypix,
                            float *scratch) noexcept nogil

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


# ----------------------------------------------------------------- scratch memory
#
# Scratch arrays are kept per Python thread and key and reused while big enough:
# allocating a few MB per kernel call meant fresh pages (page faults) on every step.
# Requests above SCRATCH_KEEP_BYTES are allocated per call and not kept.
_tls = threading.local()
SCRATCH_KEEP_BYTES = 64 << 20


cpdef object scratch(str key, tuple shape, object dtype):
    """A reused, uninitialised array of ``shape`` (thread-local, one per key and dtype)."""
    cdef Py_ssize_t n = 1, d
    for d in shape:
        n *= d
    if n * np.dtype(dtype).itemsize > SCRATCH_KEEP_BYTES:
        return np.empty(shape, dtype=dtype)
    cache = getattr(_tls, "bufs", None)
    if cache is None:
        cache = _tls.bufs = {}
    k = (key, dtype)
    a = cache.get(k)
    if a is None or a.shape[0] < n:
        a = np.empty(max(n, 1), dtype=dtype)
        cache[k] = a
    return a[:n].reshape(shape)


def set_tuning(chunk_elems=None, dw_mode=None, winograd=None, winograd_tiles=None,
               winograd_ratio=None, direct_dw=None, direct_fwd=None, direct_dx=None,
               direct_min_c=None, direct_max_c=None, direct_max_cf=None, direct_force=None,
               direct_chunk_px=None, wino_atb=None, wino_packed=None, winograd_pad=None):
    """Development hook for tests and benchmarks: chunk size (elements), dW
    formulation, Winograd on/off and its tiles per chunk; the direct float32 kernels
    for few channels (kernel gradient, forward, stride-1 input gradient; each on/off),
    the fewest input and the most input and output channels they take, the largest
    channel product at stride 1, whether they take every case they can (tests) and the
    output pixels per chunk; Winograd's float32 kernel-gradient products on the direct
    kernels' register tiles (``wino_atb``) and forward products on the packed GEMM
    (``wino_packed``) rather than BLAS, and the gap (floats) between its blocks.
    Returns the settings."""
    global CHUNK_ELEMS, DW_MODE, WINOGRAD, WINO_TILES, WINO_RATIO
    global DIRECT_DW, DIRECT_FWD, DIRECT_DX, DIRECT_MIN_C, DIRECT_MAX_C, DIRECT_CHUNK_PX
    global DIRECT_MAX_CF, DIRECT_FORCE, WINO_ATB, WINO_PACKED, WPAD
    if winograd_pad is not None:
        WPAD = max(0, int(winograd_pad))
    if wino_packed is not None:
        WINO_PACKED = bool(wino_packed)
    if wino_atb is not None:
        WINO_ATB = bool(wino_atb)
    if direct_max_cf is not None:
        DIRECT_MAX_CF = int(direct_max_cf)
    if direct_force is not None:
        DIRECT_FORCE = bool(direct_force)
    if direct_min_c is not None:
        DIRECT_MIN_C = max(1, int(direct_min_c))
    if direct_dw is not None:
        DIRECT_DW = bool(direct_dw)
    if direct_fwd is not None:
        DIRECT_FWD = bool(direct_fwd)
    if direct_dx is not None:
        DIRECT_DX = bool(direct_dx)
    if direct_max_c is not None:
        DIRECT_MAX_C = int(direct_max_c)
    if direct_chunk_px is not None:
        DIRECT_CHUNK_PX = max(1, int(direct_chunk_px))
    if chunk_elems is not None:
        CHUNK_ELEMS = max(1024, int(chunk_elems))
    if dw_mode is not None:
        DW_MODE = int(dw_mode)
    if winograd is not None:
        WINOGRAD = bool(winograd)
    if winograd_tiles is not None:
        WINO_TILES = max(1, int(winograd_tiles))
    if winograd_ratio is not None:
        WINO_RATIO = float(winograd_ratio)
    return dict(chunk_elems=CHUNK_ELEMS, dw_mode=DW_MODE, winograd=WINOGRAD,
                winograd_tiles=WINO_TILES, winograd_ratio=WINO_RATIO, direct_dw=DIRECT_DW,
                direct_fwd=DIRECT_FWD, direct_dx=DIRECT_DX, direct_min_c=DIRECT_MIN_C,
                direct_max_c=DIRECT_MAX_C, direct_max_cf=DIRECT_MAX_CF,
                direct_force=DIRECT_FORCE, wino_atb=WINO_ATB, wino_packed=WINO_PACKED,
                winograd_pad=WPAD,
                direct_chunk_px=DIRECT_CHUNK_PX)


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
            # ``0 if v < 0 else v``: a NaN passes through (as in _activations).
            if bp != NULL and zr == yr:
                for j in range(F):
                    v = zr[j] + bp[j]
                    yr[j] = 0 if v < 0 else v
            elif bp != NULL:
                for j in range(F):
                    v = zr[j] + bp[j]
                    zr[j] = v
                    yr[j] = 0 if v < 0 else v
            else:
                for j in range(F):
                    v = zr[j]
                    yr[j] = 0 if v < 0 else v
        return
    if bp != NULL:
        for r in range(rows):
            zr = zp + r * F
            for j in range(F):
                zr[j] = zr[j] + bp[j]
    if act == ACT_LINEAR and zp == yp:
        return
    if act == ACT_SOFTMAX or act == ACT_LOG_SOFTMAX:
        for r in range(rows):
            act_row(act, zp + r * F, yp + r * F, F, alpha)
    else:
        # Elementwise: one call over the block (a call per row of a few filters, one
        # filter for an image decoder's last layer, cost more than the work).
        act_row(act, zp, yp, rows * F, alpha)

# ----------------------------------------------------------------- Winograd F(2x2, 3x3)
#
# For 3x3 windows with stride 1 and no dilation, each 2x2 block of outputs (a tile)
# is computed from its 4x4 input patch d as  Y = A^T [ (G g G^T) (.) (B^T d B) ] A,
# which needs 16 multiplications per (tile, in, out) instead of 36. Per chunk of
# tiles: the 16 transformed patches (B^T d B) of every tile and channel are laid
# out as 16 matrices V_k (tiles, in); 16 GEMMs V_k @ U_k with the transformed
# kernel U_k (in, out) give M_k (tiles, out); the output transform A^T M A, bias
# and activation then write the tile's (up to) four output pixels. Only sums,
# differences and halves appear in the transforms, so float32 results stay within
# a few ulps of the direct GEMM's.
#     B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]   G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1]
#     A^T = [1 1 1 0; 0 1 -1 -1]

cdef bint WINOGRAD = True
# Winograd's kernel-gradient products dU_k += V_k^T D_k in float32 (F a multiple of 8)
# on the direct kernel gradient's register tiles (fn_dc_atb), not BLAS: these GEMMs
# ((C x 128) @ (128 x F) per chunk) spent most of their time in BLAS's packing
# (16 -> 16 channels at 32x32: 9.1 -> 5.2 ms; 32 -> 32 at 16x16: 4.9 -> 3.1 ms;
# 64 -> 64 at 8x8: 3.2 -> 2.6 ms, one thread).
cdef bint WINO_ATB = True
# ... up to this many C F: from 128 x 128 BLAS's blocking wins (9.2 against 10.9 ms at
# 16x16, batch 16; 96 x 96: 11.2 against 9.5 ms for the tiles, batch 32).
cdef Py_ssize_t WINO_ATB_MAX_CF = 96 * 96
# Winograd's float32 forward products M_k = V_k U_k ((128 x C) @ (C x F)) on the packed
# GEMM of _packed_gemm.h, U_k packed once per call, not on BLAS, from 16 filters (with 8,
# half of each 16-column panel is padding: 4.8 -> 6.0 ms for an 8-channel input gradient).
cdef bint WINO_PACKED = True
# Tiles per chunk: V (16 x tiles x in) and M (16 x tiles x out) stay in cache.
cdef Py_ssize_t WINO_TILES = 128
# The 16 blocks V_k (tiles x C), M_k and D_k (tiles x F) of a chunk lie WPAD values more
# than a block apart: at a multiple of 4 KiB (128 tiles of 8, 16, 32 or 64 floats) the
# 16 streams the transforms read and write at once all fall in one L1 set (8 ways).
cdef Py_ssize_t WPAD = 16
# Below these channel counts the 16 small GEMMs cost more than one im2col GEMM.
cdef Py_ssize_t WINO_MIN_C = 8
cdef Py_ssize_t WINO_MIN_F = 8
# Largest Winograd/im2col GEMM work ratio at which Winograd is used: below it the
# smaller GEMMs outweigh the transforms (docs/kernels.rst, "Measurements").
cdef double WINO_RATIO = 0.75


cdef bint winograd_ok(const Geom *g, Py_ssize_t F, Py_ssize_t im2col_rows) noexcept nogil:
    """Whether Winograd pays for this 3x3 stride-1 convolution (per image).

    Its 16 GEMMs have one row per 2x2 output tile; the im2col GEMM it replaces has 9
    rows' worth of work per pixel of ``im2col_rows`` (the forward convolution's
    output pixels, also for the input gradient). Winograd is used when its GEMM
    work is at most WINO_RATIO of that, leaving room for the transforms."""
    cdef Py_ssize_t tiles
    if not (WINOGRAD and g.kh == 3 and g.kw == 3 and g.sh == 1 and g.sw == 1 and g.dh == 1
            and g.dw == 1 and g.c >= WINO_MIN_C and F >= WINO_MIN_F and g.ph <= 2
            and g.pw <= 2 and g.oh >= 2 and g.ow >= 2):
        return False
    tiles = ((g.oh + 1) // 2) * ((g.ow + 1) // 2)
    return 16 * tiles <= WINO_RATIO * 9 * im2col_rows


cdef void wino_kernel(const floating *w, floating *u, Py_ssize_t C, Py_ssize_t F,
                      bint flip) noexcept nogil:
    """u (16, C, F) = G g G^T of w (3, 3, C, F); with ``flip``, of the kernel of the
    input gradient instead: g'[i][j][f][c] = w[2 - i][2 - j][c][f] (u is (16, F, C))."""
    cdef Py_ssize_t a, b, i, k, CF = C * F
    cdef floating g[9]
    cdef floating t[12]
    cdef floating h = <floating>0.5
    for a in range(C):
        for b in range(F):
            for i in range(9):
                if flip:
                    g[i] = w[(8 - i) * CF + a * F + b]
                else:
                    g[i] = w[i * CF + a * F + b]
            # t = G g (4 x 3)
            for i in range(3):
                t[i] = g[i]
                t[3 + i] = h * (g[i] + g[3 + i] + g[6 + i])
                t[6 + i] = h * (g[i] - g[3 + i] + g[6 + i])
                t[9 + i] = g[6 + i]
            # u = t G^T (4 x 4)
            for i in range(4):
                k = (i * 4) * CF + (b * C + a if flip else a * F + b)
                u[k] = t[i * 3]
                u[k + CF] = h * (t[i * 3] + t[i * 3 + 1] + t[i * 3 + 2])
                u[k + 2 * CF] = h * (t[i * 3] - t[i * 3 + 1] + t[i * 3 + 2])
                u[k + 3 * CF] = t[i * 3 + 2]


cdef inline void _bt4(const floating *a0, const floating *a1, const floating *a2,
                      const floating *a3, floating *o0, floating *o1, floating *o2,
                      floating *o3, Py_ssize_t n) noexcept nogil:
    """One B^T step on four runs of n values: (a0 - a2, a1 + a2, a2 - a1, a1 - a3)."""
    if floating is float:
        fn_bt4_f(a0, a1, a2, a3, o0, o1, o2, o3, n)
    else:
        fn_bt4_d(a0, a1, a2, a3, o0, o1, o2, o3, n)


cdef void wino_input(const floating *x, floating *v, Py_ssize_t t0, Py_ssize_t t1,
                     const Geom *g, Py_ssize_t TH, Py_ssize_t TW, const floating *zeros,
                     floating *tmp) noexcept nogil:
    """v[k][t - t0][c] = (B^T d B)[k] of tile t's 4x4 patch d, channel c (16 x T x C).

    Tiles come in runs along a row of tiles. The row step B^T of a run is done once
    over the 2 run + 2 input columns the run reads (zeros outside the image), then
    the column step for all the run's tiles. ``tmp`` holds 4 rows of (w + 8) * C."""
    cdef Py_ssize_t C = g.c, TC = (t1 - t0) * g.c + WPAD, t, n, r, a, b, i, iy
    cdef Py_ssize_t xv0, ncol, lo, hi, left, right, run, ld
    cdef const floating *row[4]
    cdef floating *R[4]
    t = t0
    while t < t1:
        n = t // (TH * TW)
        r = t - n * TH * TW
        a = r // TW
        b = r - a * TW
        run = TW - b if TW - b < t1 - t else t1 - t
        xv0 = 2 * b - g.pw
        ncol = 2 * run + 2
        ld = ncol * C
        lo = xv0 if xv0 > 0 else 0
        hi = xv0 + ncol if xv0 + ncol < g.w else g.w
        left = (lo - xv0) * C
        right = (xv0 + ncol - hi) * C if hi > lo else ld - left
        for i in range(4):
            iy = 2 * a - g.ph + i
            R[i] = tmp + i * ld
            if iy < 0 or iy >= g.h or hi <= lo:
                row[i] = NULL
            else:
                row[i] = x + ((n * g.h + iy) * g.w + lo) * C
            if left > 0:
                memset(R[i], 0, left * sizeof(floating))
            if right > 0:
                memset(R[i] + ld - right, 0, right * sizeof(floating))
        if hi > lo:
            _rows_bt(row[0], row[1], row[2], row[3], R[0] + left, R[1] + left, R[2] + left,
                     R[3] + left, (hi - lo) * C)
        if floating is float:
            fn_cols_f(R[0], ld, v + (t - t0) * C, TC, run, C)
        else:
            fn_cols_d(R[0], ld, v + (t - t0) * C, TC, run, C)
        t = t + run


cdef void _rows_bt(const floating *d0, const floating *d1, const floating *d2,
                   const floating *d3, floating *o0, floating *o1, floating *o2, floating *o3,
                   Py_ssize_t n) noexcept nogil:
    """B^T over four input rows, NULL rows being zeros."""
    cdef Py_ssize_t c
    if d0 != NULL and d1 != NULL and d2 != NULL and d3 != NULL:
        _bt4(d0, d1, d2, d3, o0, o1, o2, o3, n)
        return
    if d0 != NULL and d2 != NULL:
        for c in range(n):
            o0[c] = d0[c] - d2[c]
    elif d0 != NULL:
        for c in range(n):
            o0[c] = d0[c]
    elif d2 != NULL:
        for c in range(n):
            o0[c] = -d2[c]
    else:
        memset(o0, 0, n * sizeof(floating))
    if d1 != NULL and d2 != NULL:
        for c in range(n):
            o1[c] = d1[c] + d2[c]
        for c in range(n):
            o2[c] = d2[c] - d1[c]
    elif d1 != NULL:
        for c in range(n):
            o1[c] = d1[c]
        for c in range(n):
            o2[c] = -d1[c]
    elif d2 != NULL:
        for c in range(n):
            o1[c] = d2[c]
        for c in range(n):
            o2[c] = d2[c]
    else:
        memset(o1, 0, n * sizeof(floating))
        memset(o2, 0, n * sizeof(floating))
    if d1 != NULL and d3 != NULL:
        for c in range(n):
            o3[c] = d1[c] - d3[c]
    elif d1 != NULL:
        for c in range(n):
            o3[c] = d1[c]
    elif d3 != NULL:
        for c in range(n):
            o3[c] = -d3[c]
    else:
        memset(o3, 0, n * sizeof(floating))


cdef inline void _at4(const floating *a0, const floating *a1, const floating *a2,
                      const floating *a3, floating *o0, floating *o1, Py_ssize_t n) noexcept nogil:
    """One A^T step on four runs of n values: (a0 + a1 + a2, a1 - a2 - a3)."""
    if floating is float:
        fn_at4_f(a0, a1, a2, a3, o0, o1, n)
    else:
        fn_at4_d(a0, a1, a2, a3, o0, o1, n)


cdef void wino_output(floating *m, Py_ssize_t t0, Py_ssize_t t1, const Geom *g,
                      Py_ssize_t TH, Py_ssize_t TW, Py_ssize_t F, floating *zp, floating *yp,
                      bint keep_z, const floating *bp, int act, double alpha,
                      floating *sbuf) noexcept nogil:
    """Output transform A^T M A of tiles t0..t1, bias, activation, written to y (and z).

    M_k (tiles x F, k = 4 i + j) are contiguous over the chunk's tiles, so both steps
    of the transform run as long loops over all tiles; ``sbuf`` holds 8 of those
    blocks, and the four output blocks overwrite M_0..M_3."""
    cdef Py_ssize_t TF = (t1 - t0) * F + WPAD, t, n, r, a, b, j, f, q, oy, ox, row
    cdef floating *zr
    # A^T M over rows: S_j = M_j + M_4+j + M_8+j, S_4+j = M_4+j - M_8+j - M_12+j.
    for j in range(4):
        _at4(m + j * TF, m + (4 + j) * TF, m + (8 + j) * TF, m + (12 + j) * TF,
             sbuf + j * TF, sbuf + (4 + j) * TF, TF)
    # (A^T M) A over columns: the four output pixels of every tile, O_q = M_q.
    _at4(sbuf, sbuf + TF, sbuf + 2 * TF, sbuf + 3 * TF, m, m + TF, TF)
    _at4(sbuf + 4 * TF, sbuf + 5 * TF, sbuf + 6 * TF, sbuf + 7 * TF, m + 2 * TF, m + 3 * TF, TF)
    for t in range(t0, t1):
        n = t // (TH * TW)
        r = t - n * TH * TW
        a = r // TW
        b = r - a * TW
        for q in range(4):
            oy = 2 * a + q // 2
            ox = 2 * b + q % 2
            if oy >= g.oh or ox >= g.ow:
                continue
            row = (n * g.oh + oy) * g.ow + ox
            if keep_z:
                zr = zp + row * F
                for f in range(F):
                    zr[f] = m[q * TF + (t - t0) * F + f]
                bias_act(zr, yp + row * F, bp, 1, F, act, alpha)
            else:
                bias_act(m + q * TF + (t - t0) * F, yp + row * F, bp, 1, F, act, alpha)


cdef void wino_conv(const floating *xp, const floating *u, const floating *bp, floating *zp,
                    floating *yp, bint keep_z, const Geom *g, Py_ssize_t F, int act,
                    double alpha, floating *scratch, Py_ssize_t stride_t, int nt,
                    floating *upk=NULL) noexcept nogil:
    """y = act(conv3x3(x) + b) by Winograd F(2x2, 3x3); u from wino_kernel. With ``upk``
    (float32: 16 (F + 15) // 16 * 16 C floats) the products run on the packed GEMM of
    _packed_gemm.h against u packed there, not on BLAS."""
    cdef Py_ssize_t C = g.c, TH = (g.oh + 1) // 2, TW = (g.ow + 1) // 2
    cdef Py_ssize_t n_tiles = g.n * TH * TW, per = (n_tiles + nt - 1) // nt
    cdef Py_ssize_t Tc = WINO_TILES, t, lo, hi, c0, c1, k, T
    cdef Py_ssize_t KP = (F + 15) // 16 * 16 * C
    if floating is float:
        if upk != NULL:
            for k in range(16):
                fn_pack_b(u + k * C * F, F, C, F, 0, upk + k * KP)
    cdef floating *base
    cdef floating *v
    cdef floating *m
    for t in prange(nt, nogil=True, num_threads=nt, schedule="static"):
        base = scratch + t * stride_t
        v = base
        m = base + 16 * (Tc * C + WPAD)
        memset(m + 24 * (Tc * F + WPAD), 0, C * sizeof(floating))  # the zero row
        lo = t * per
        hi = min(n_tiles, lo + per)
        c0 = lo
        while c0 < hi:
            c1 = min(hi, c0 + Tc)
            T = c1 - c0
            wino_input(xp, v, c0, c1, g, TH, TW, m + 24 * (Tc * F + WPAD),
                       m + 24 * (Tc * F + WPAD) + C)
            for k in range(16):
                if floating is float:
                    if upk != NULL:
                        fn_gemm_packed(T, F, C, v + k * (T * C + WPAD), C, upk + k * KP,
                                       m + k * (T * F + WPAD), F, 0, NULL)
                        continue
                gemm(False, False, T, F, C, <floating>1, v + k * (T * C + WPAD), C,
                     u + k * C * F, F, <floating>0, m + k * (T * F + WPAD), F)
            wino_output(m, c0, c1, g, TH, TW, F, zp, yp, keep_z, bp, act, alpha,
                        m + 16 * (Tc * F + WPAD))
            c0 = c1


cdef inline void _lin2(const floating *a, const floating *b, floating *o, floating sa,
                       floating sb, Py_ssize_t n) noexcept nogil:
    """o = sa * a + sb * b over n values (sa, sb in {-1, 0, 1})."""
    cdef Py_ssize_t c
    if sb == 0:
        for c in range(n):
            o[c] = sa * a[c]
    else:
        for c in range(n):
            o[c] = sa * a[c] + sb * b[c]


cdef void wino_grad_out(const floating *dz, floating *d, Py_ssize_t t0, Py_ssize_t t1,
                        const Geom *g, Py_ssize_t TH, Py_ssize_t TW, Py_ssize_t F,
                        const floating *zeros, floating *tmp) noexcept nogil:
    """d[k][t - t0][f] = (A dz A^T)[k] of tile t's 2x2 output gradient (16 x T x F);
    outputs past the image edge count as 0. A = [1 0; 1 1; 1 -1; 0 -1]."""
    cdef Py_ssize_t TF = (t1 - t0) * F + WPAD, t, n, r, a, b, i, oy, ox
    cdef const floating *q[4]
    cdef floating *dt
    cdef floating *rr
    for t in range(t0, t1):
        n = t // (TH * TW)
        r = t - n * TH * TW
        a = r // TW
        b = r - a * TW
        for i in range(4):
            oy = 2 * a + i // 2
            ox = 2 * b + i % 2
            if oy < g.oh and ox < g.ow:
                q[i] = dz + ((n * g.oh + oy) * g.ow + ox) * F
            else:
                q[i] = zeros
        # A z: four rows (u, w) of two values each, rows R0..R3 in tmp (8 runs of F).
        _lin2(q[0], q[0], tmp, 1, 0, F)
        _lin2(q[1], q[1], tmp + F, 1, 0, F)
        _lin2(q[0], q[2], tmp + 2 * F, 1, 1, F)
        _lin2(q[1], q[3], tmp + 3 * F, 1, 1, F)
        _lin2(q[0], q[2], tmp + 4 * F, 1, -1, F)
        _lin2(q[1], q[3], tmp + 5 * F, 1, -1, F)
        _lin2(q[2], q[2], tmp + 6 * F, -1, 0, F)
        _lin2(q[3], q[3], tmp + 7 * F, -1, 0, F)
        # (A z) A^T: each row (u, w) -> (u, u + w, u - w, -w).
        dt = d + (t - t0) * F
        for i in range(4):
            rr = tmp + 2 * i * F
            _lin2(rr, rr, dt + (4 * i) * TF, 1, 0, F)
            _lin2(rr, rr + F, dt + (4 * i + 1) * TF, 1, 1, F)
            _lin2(rr, rr + F, dt + (4 * i + 2) * TF, 1, -1, F)
            _lin2(rr + F, rr + F, dt + (4 * i + 3) * TF, -1, 0, F)


cdef void wino_kernel_grad(const floating *du, floating *dw, Py_ssize_t C,
                           Py_ssize_t F) noexcept nogil:
    """dw (3, 3, C, F) = G^T dU G of the accumulated du (16, C, F)."""
    cdef Py_ssize_t c, f, i, j, CF = C * F
    cdef floating u[16]
    cdef floating t[12]
    cdef floating h = <floating>0.5
    for c in range(C):
        for f in range(F):
            for i in range(16):
                u[i] = du[i * CF + c * F + f]
            # t = G^T dU (3 x 4)
            for j in range(4):
                t[j] = u[j] + h * (u[4 + j] + u[8 + j])
                t[4 + j] = h * (u[4 + j] - u[8 + j])
                t[8 + j] = h * (u[4 + j] + u[8 + j]) + u[12 + j]
            # dg = t G (3 x 3)
            for i in range(3):
                dw[(i * 3) * CF + c * F + f] = t[4 * i] + h * (t[4 * i + 1] + t[4 * i + 2])
                dw[(i * 3 + 1) * CF + c * F + f] = h * (t[4 * i + 1] - t[4 * i + 2])
                dw[(i * 3 + 2) * CF + c * F + f] = h * (t[4 * i + 1] + t[4 * i + 2]) + t[4 * i + 3]


cdef Py_ssize_t wino_grad_scratch(Py_ssize_t C, Py_ssize_t F, Py_ssize_t w) noexcept nogil:
    """Scratch per thread of the kernel gradient: V, D, dU, a zero row, tmp."""
    return (16 * (WINO_TILES * (C + F) + 2 * WPAD) + 16 * C * F + (C + F) + 4 * (w + 8) * C
            + 8 * F + 1)


cdef void wino_weight_grad(const floating *xp, const floating *dz, floating *dwp,
                           const Geom *g, Py_ssize_t F, floating *scratch, Py_ssize_t stride_t,
                           int nt) noexcept nogil:
    """dw (9 C, F) of a 3x3 stride-1 convolution from x and dz (n * oh * ow, F)."""
    cdef Py_ssize_t C = g.c, TH = (g.oh + 1) // 2, TW = (g.ow + 1) // 2, CF = g.c * F
    cdef Py_ssize_t n_tiles = g.n * TH * TW, per = (n_tiles + nt - 1) // nt
    cdef Py_ssize_t Tc = WINO_TILES, t, lo, hi, c0, c1, k, T, i
    cdef floating *base
    cdef floating *v
    cdef floating *d
    cdef floating *du
    cdef floating *zeros
    cdef bint first
    for t in prange(nt, nogil=True, num_threads=nt, schedule="static"):
        base = scratch + t * stride_t
        v = base
        d = v + 16 * (Tc * C + WPAD)
        du = d + 16 * (Tc * F + WPAD)
        zeros = du + 16 * CF
        memset(zeros, 0, (F if F > C else C) * sizeof(floating))
        memset(du, 0, 16 * CF * sizeof(floating))
        lo = t * per
        hi = min(n_tiles, lo + per)
        c0 = lo
        first = True
        while c0 < hi:
            c1 = min(hi, c0 + Tc)
            T = c1 - c0
            wino_input(xp, v, c0, c1, g, TH, TW, zeros, zeros + (F if F > C else C))
            wino_grad_out(dz, d, c0, c1, g, TH, TW, F, zeros, zeros + (F if F > C else C))
            for k in range(16):
                if floating is float:
                    if WINO_ATB and F % 8 == 0 and C * F <= WINO_ATB_MAX_CF:
                        fn_dc_atb(v + k * (T * C + WPAD), d + k * (T * F + WPAD), T, C, F,
                                  du + k * CF, not first)
                        continue
                gemm(True, False, C, F, T, <floating>1, v + k * (T * C + WPAD), C,
                     d + k * (T * F + WPAD), F, <floating>(0 if first else 1), du + k * CF, F)
            first = False
            c0 = c1
    with nogil:
        # Reduce the per-thread dU into thread 0's, then transform back to the kernel.
        du = scratch + 16 * (Tc * (C + F) + 2 * WPAD)
        for t in range(1, nt):
            d = scratch + t * stride_t + 16 * (Tc * (C + F) + 2 * WPAD)
            for i in range(16 * CF):
                du[i] = du[i] + d[i]
        wino_kernel_grad(du, dwp, C, F)


cdef Py_ssize_t wino_scratch(Py_ssize_t C, Py_ssize_t F, Py_ssize_t w) noexcept nogil:
    """Scratch per thread of wino_conv: V, M, S (8 blocks), a zero row, 4 image rows."""
    return (16 * (WINO_TILES * (C + F) + 2 * WPAD) + 8 * (WINO_TILES * F + WPAD) + C
            + 4 * (w + 8) * C + 1)


# ----------------------------------------------------------------- 1-D Winograd F(m, r)
#
# Conv1D with stride 1: m consecutive outputs (a tile) come from n = m + r - 1 inputs d
# as y = A^T [ (G g) (.) (B^T d) ]: n multiplications per (tile, in, out) instead of
# m r. The matrices are built by Cook-Toom with the points 0, 1, -1, 2, -2, 1/2, -1/2
# (exact rational arithmetic at import): F(4, 3), F(4, 5) and F(2, 7), whose float32
# error stays near 1e-6 of the output's scale. The pipeline is the 2-D one's: per
# chunk of tiles, input transform, n GEMMs, output transform with bias and activation;
# the kernel gradient by the adjoint transforms; the input gradient as a convolution.

cdef struct W1:
    int m, r, n
    double at[64]   # A^T, m x n
    double gm[64]   # G, n x r
    double bt[64]   # B^T, n x n

cdef W1 W1D[8]      # by kernel size; n == 0 where there is none


def _cook_toom(m, r):
    """(A^T, G, B^T) of F(m, r) as lists of Fractions (y = A^T [(G g) * (B^T d)])."""
    from fractions import Fraction as Fr

    n = m + r - 1
    pts = [Fr(0), Fr(1), Fr(-1), Fr(2), Fr(-2), Fr(1, 2), Fr(-1, 2)][:n - 1]

    def mul(a, b):
        out = [Fr(0)] * (len(a) + len(b) - 1)
        for i, u in enumerate(a):
            for j, v in enumerate(b):
                out[i + j] += u * v
        return out

    at = [[p ** i for p in pts] + [Fr(1 if i == m - 1 else 0)] for i in range(m)]
    gm = []
    bt = []
    for j, p in enumerate(pts):
        f = Fr(1)
        poly = [Fr(1)]
        for q in pts[:j] + pts[j + 1:]:
            f *= p - q
            poly = mul(poly, [-q, Fr(1)])
        gm.append([p ** k / f for k in range(r)])
        bt.append(poly + [Fr(0)] * (n - len(poly)))
    gm.append([Fr(0)] * (r - 1) + [Fr(1)])
    poly = [Fr(1)]
    for q in pts:
        poly = mul(poly, [-q, Fr(1)])
    bt.append(poly)
    return at, gm, bt


def _init_w1():
    cdef int k, i, j
    for k in range(8):
        W1D[k].n = 0
    for m, r in ((4, 3), (4, 5), (2, 7)):
        at, gm, bt = _cook_toom(m, r)
        n = m + r - 1
        W1D[r].m, W1D[r].r, W1D[r].n = m, r, n
        for i in range(m):
            for j in range(n):
                W1D[r].at[i * n + j] = float(at[i][j])
        for i in range(n):
            for j in range(r):
                W1D[r].gm[i * r + j] = float(gm[i][j])
            for j in range(n):
                W1D[r].bt[i * n + j] = float(bt[i][j])


_init_w1()


cdef inline void _axpy(double a, const floating *x, Py_ssize_t xs, floating *y, Py_ssize_t ys,
                       Py_ssize_t nb, Py_ssize_t n, bint accumulate) noexcept nogil:
    if floating is float:
        fn_axpy_f(<float>a, x, xs, y, ys, nb, n, accumulate)
    else:
        fn_axpy_d(a, x, xs, y, ys, nb, n, accumulate)


cdef inline void _tf(const double *mat, int rows, int cols, bint trans, const floating *x,
                     Py_ssize_t xi, Py_ssize_t xq, floating *y, Py_ssize_t yk, Py_ssize_t yq,
                     Py_ssize_t nb, Py_ssize_t c) noexcept nogil:
    if floating is float:
        fn_tf_f(mat, rows, cols, trans, x, xi, xq, y, yk, yq, nb, c)
    else:
        fn_tf_d(mat, rows, cols, trans, x, xi, xq, y, yk, yq, nb, c)


cdef bint w1_ok(const Geom *g, Py_ssize_t F, Py_ssize_t im2col_px) noexcept nogil:
    """Whether 1-D Winograd pays: as winograd_ok, per sample, with n GEMM rows per tile
    of m outputs against r per output pixel of im2col."""
    cdef Py_ssize_t r = g.kw, tiles
    if not (WINOGRAD and g.h == 1 and g.oh == 1 and g.kh == 1 and r < 8 and g.sw == 1
            and g.dw == 1 and g.c >= WINO_MIN_C and F >= WINO_MIN_F and g.ow >= 1):
        return False
    if W1D[r].n == 0 or g.pw > r - 1:
        return False
    tiles = (g.ow + W1D[r].m - 1) // W1D[r].m
    return W1D[r].n * tiles <= WINO_RATIO * r * im2col_px


cdef void w1_kernel(const floating *w, floating *u, Py_ssize_t C, Py_ssize_t F, int r,
                    bint flip) noexcept nogil:
    """u (n, C, F) = G w of w (r, C, F); with ``flip``, of the input gradient's kernel
    w'[i][f][c] = w[r - 1 - i][c][f] (u is then (n, F, C))."""
    cdef const W1 *s = &W1D[r]
    cdef Py_ssize_t k, i, a, b, CF = C * F
    cdef double coef
    cdef bint first
    for k in range(s.n):
        first = True
        if not flip:
            for i in range(r):
                coef = s.gm[k * r + i]
                if coef != 0:
                    _axpy(coef, w + i * CF, 0, u + k * CF, 0, 1, CF, not first)
                    first = False
            if first:
                memset(u + k * CF, 0, CF * sizeof(floating))
        else:
            memset(u + k * CF, 0, CF * sizeof(floating))
            for i in range(r):
                coef = s.gm[k * r + i]
                if coef != 0:
                    for a in range(C):
                        for b in range(F):
                            u[k * CF + b * C + a] += <floating>coef * w[(r - 1 - i) * CF + a * F + b]


cdef void _w1_pad_row(const floating *x, floating *buf, Py_ssize_t lo, Py_ssize_t count,
                      Py_ssize_t length, Py_ssize_t C) noexcept nogil:
    """buf = positions lo .. lo + count - 1 of a row of ``length`` positions (C values
    each), zeros outside it."""
    cdef Py_ssize_t a = lo if lo > 0 else 0
    cdef Py_ssize_t b = lo + count if lo + count < length else length
    if b <= a:
        memset(buf, 0, count * C * sizeof(floating))
        return
    if a > lo:
        memset(buf, 0, (a - lo) * C * sizeof(floating))
    memcpy(buf + (a - lo) * C, x + a * C, (b - a) * C * sizeof(floating))
    if lo + count > b:
        memset(buf + (b - lo) * C, 0, (lo + count - b) * C * sizeof(floating))


cdef void w1_input(const floating *x, floating *v, Py_ssize_t t0, Py_ssize_t t1,
                   const Geom *g, Py_ssize_t TW, floating *buf) noexcept nogil:
    """v[k][t - t0][c] = (B^T d)[k] of tile t's n inputs (n x T x C), a run of tiles of
    one sample at a time from a zero-padded copy of its inputs."""
    cdef const W1 *s = &W1D[g.kw]
    cdef Py_ssize_t C = g.c, T = t1 - t0, t = t0, n_s, b, run, m = s.m, n = s.n
    while t < t1:
        n_s = t // TW
        b = t - n_s * TW
        run = TW - b if TW - b < t1 - t else t1 - t
        _w1_pad_row(x + n_s * g.w * C, buf, b * m - g.pw, (run - 1) * m + n, g.w, C)
        # Tile q reads positions q m .. q m + n - 1 of buf; V_k gets (B^T d)_k.
        _tf(s.bt, <int>n, <int>n, False, buf, C, m * C, v + (t - t0) * C, T * C, C, run, C)
        t = t + run


cdef void w1_output(floating *mm, Py_ssize_t t0, Py_ssize_t t1, const Geom *g, Py_ssize_t TW,
                    Py_ssize_t F, floating *zp, floating *yp, bint keep_z, const floating *bp,
                    int act, double alpha, floating *o) noexcept nogil:
    """y rows of tiles t0..t1 from M (n x T x F): A^T M into o (m x T x F), then bias,
    activation, written to y (and z)."""
    cdef const W1 *s = &W1D[g.kw]
    cdef Py_ssize_t T = t1 - t0, TF = (t1 - t0) * F, t, n_s, b, j, f, ox, row
    cdef floating *zr
    _tf(s.at, s.m, s.n, False, mm, TF, 0, o, TF, 0, 1, TF)
    for t in range(t0, t1):
        n_s = t // TW
        b = t - n_s * TW
        for j in range(s.m):
            ox = b * s.m + j
            if ox >= g.ow:
                break
            row = n_s * g.ow + ox
            if keep_z:
                zr = zp + row * F
                for f in range(F):
                    zr[f] = o[j * TF + (t - t0) * F + f]
                bias_act(zr, yp + row * F, bp, 1, F, act, alpha)
            else:
                bias_act(o + j * TF + (t - t0) * F, yp + row * F, bp, 1, F, act, alpha)


cdef Py_ssize_t w1_scratch(Py_ssize_t C, Py_ssize_t F, Py_ssize_t w) noexcept nogil:
    """Scratch per thread of w1_conv and w1_weight_grad: V, M (or D), O, dU, a row."""
    return (8 * WINO_TILES * (C + F) + 4 * WINO_TILES * F + 8 * C * F
            + (w + 32) * (C if C > F else F) + 1)


cdef void w1_conv(const floating *xp, const floating *u, const floating *bp, floating *zp,
                  floating *yp, bint keep_z, const Geom *g, Py_ssize_t F, int act,
                  double alpha, floating *scratch, Py_ssize_t stride_t, int nt,
                  floating *upk=NULL) noexcept nogil:
    """y = act(conv1d(x) + b) by Winograd F(m, r); u from w1_kernel; ``upk`` as in
    wino_conv (n (F + 15) // 16 * 16 C floats)."""
    cdef const W1 *sp = &W1D[g.kw]
    cdef Py_ssize_t C = g.c, n = sp.n, TW = (g.ow + sp.m - 1) // sp.m
    cdef Py_ssize_t n_tiles = g.n * TW, per = (n_tiles + nt - 1) // nt
    cdef Py_ssize_t Tc = WINO_TILES, t, lo, hi, c0, c1, k, T
    cdef Py_ssize_t KP = (F + 15) // 16 * 16 * C
    if floating is float:
        if upk != NULL:
            for k in range(n):
                fn_pack_b(u + k * C * F, F, C, F, 0, upk + k * KP)
    cdef floating *v
    cdef floating *mm
    for t in prange(nt, nogil=True, num_threads=nt, schedule="static"):
        v = scratch + t * stride_t
        mm = v + 8 * Tc * C
        lo = t * per
        hi = min(n_tiles, lo + per)
        c0 = lo
        while c0 < hi:
            c1 = min(hi, c0 + Tc)
            T = c1 - c0
            w1_input(xp, v, c0, c1, g, TW, mm + 8 * Tc * F + 4 * Tc * F + 8 * C * F)
            for k in range(n):
                if floating is float:
                    if upk != NULL:
                        fn_gemm_packed(T, F, C, v + k * T * C, C, upk + k * KP, mm + k * T * F,
                                       F, 0, NULL)
                        continue
                gemm(False, False, T, F, C, <floating>1, v + k * T * C, C, u + k * C * F, F,
                     <floating>0, mm + k * T * F, F)
            w1_output(mm, c0, c1, g, TW, F, zp, yp, keep_z, bp, act, alpha, mm + 8 * Tc * F)
            c0 = c1


cdef void w1_grad_out(const floating *dz, floating *d, Py_ssize_t t0, Py_ssize_t t1,
                      const Geom *g, Py_ssize_t TW, Py_ssize_t F, floating *buf) noexcept nogil:
    """d[k][t - t0][f] = (A dz)[k] of tile t's m output gradients (n x T x F), outputs
    past the end counting as 0."""
    cdef const W1 *s = &W1D[g.kw]
    cdef Py_ssize_t T = t1 - t0, t = t0, n_s, b, run, m = s.m
    while t < t1:
        n_s = t // TW
        b = t - n_s * TW
        run = TW - b if TW - b < t1 - t else t1 - t
        _w1_pad_row(dz + n_s * g.ow * F, buf, b * m, run * m, g.ow, F)
        # D_k = (A dz)_k: the output transform's adjoint, A = (A^T)^T.
        _tf(s.at, s.n, <int>m, True, buf, F, m * F, d + (t - t0) * F, T * F, F, run, F)
        t = t + run


cdef void w1_weight_grad(const floating *xp, const floating *dz, floating *dwp, const Geom *g,
                         Py_ssize_t F, floating *scratch, Py_ssize_t stride_t,
                         int nt) noexcept nogil:
    """dw (r C, F) of a stride-1 Conv1D from x and dz (n * ow, F): dU_k = V_k^T D_k
    summed over tiles, then dW = G^T dU."""
    cdef const W1 *sp = &W1D[g.kw]
    cdef Py_ssize_t C = g.c, n = sp.n, r = sp.r, CF = g.c * F, TW = (g.ow + sp.m - 1) // sp.m
    cdef Py_ssize_t n_tiles = g.n * TW, per = (n_tiles + nt - 1) // nt
    cdef Py_ssize_t Tc = WINO_TILES, t, lo, hi, c0, c1, k, T, i
    cdef floating *v
    cdef floating *d
    cdef floating *du
    cdef floating *buf
    cdef bint first
    cdef double coef
    for t in prange(nt, nogil=True, num_threads=nt, schedule="static"):
        v = scratch + t * stride_t
        d = v + 8 * Tc * C
        du = d + 12 * Tc * F
        buf = du + 8 * CF
        memset(du, 0, n * CF * sizeof(floating))
        lo = t * per
        hi = min(n_tiles, lo + per)
        c0 = lo
        first = True
        while c0 < hi:
            c1 = min(hi, c0 + Tc)
            T = c1 - c0
            w1_input(xp, v, c0, c1, g, TW, buf)
            w1_grad_out(dz, d, c0, c1, g, TW, F, buf)
            for k in range(n):
                if floating is float:
                    if WINO_ATB and F % 8 == 0 and C * F <= WINO_ATB_MAX_CF:
                        fn_dc_atb(v + k * T * C, d + k * T * F, T, C, F, du + k * CF, not first)
                        continue
                gemm(True, False, C, F, T, <floating>1, v + k * T * C, C, d + k * T * F, F,
                     <floating>(0 if first else 1), du + k * CF, F)
            first = False
            c0 = c1
    with nogil:
        du = scratch + 8 * Tc * C + 12 * Tc * F
        for t in range(1, nt):
            d = scratch + t * stride_t + 8 * Tc * C + 12 * Tc * F
            for i in range(n * CF):
                du[i] = du[i] + d[i]
        for i in range(r):
            first = True
            for k in range(n):
                coef = sp.gm[k * r + i]
                if coef != 0:
                    _axpy(coef, du + k * CF, 0, dwp + i * CF, 0, 1, CF, not first)
                    first = False


# ----------------------------------------------------------------- direct kernels
#
# float32 convolutions with few channels (direct_use says which) run on the
# register-tiled loops of _direct_conv.h, which read x and dz in place: their GEMMs
# are too small for BLAS (packing and calls cost more than the multiply-adds) and
# Winograd's transforms cost as much as its products.
#
# The kernel gradient sums over every output pixel. The output rows (sample, oy) are
# cut into slots that depend only on the problem's size, never on the thread count;
# each slot's partial dW is summed in a fixed order and the slots are added in order,
# so dW is the same bitwise whatever the number of threads.

cdef bint DIRECT_DW = True
cdef bint DIRECT_FWD = True
cdef bint DIRECT_DX = True
cdef Py_ssize_t DIRECT_MIN_C = 1
# The stride-1 input gradient only from this many input channels (its outputs): with
# fewer, most of a tile's 8 or 16 lanes would be idle (4 channels: 2.6 -> 2.8 ms,
# 6: 3.8 -> 3.1 ms, batch 64 of 32x32, 16 filters, one thread).
cdef Py_ssize_t DIRECT_DX_MIN_C = 6
# Most input and output channels the direct kernels take (a hard limit; direct_use
# applies the measured ones below it), and the largest C F product at stride 1.
cdef Py_ssize_t DIRECT_MAX_C = 64
cdef Py_ssize_t DIRECT_MAX_CF = 1024
# ... and where Winograd can take it (with its products on register tiles).
cdef Py_ssize_t DIRECT_WINO_CF = 256
# Tests: every convolution the direct kernels can take goes to them.
cdef bint DIRECT_FORCE = False
# Output pixels per chunk (rounded to whole rows): x, dz and y of a chunk stay in L1/L2.
cdef Py_ssize_t DIRECT_CHUNK_PX = 256
# Most slots of the kernel gradient, and fewest output pixels per slot.
cdef Py_ssize_t DW_SLOTS = 64
cdef Py_ssize_t DW_SLOT_MIN_PX = 512


cdef bint direct_use(const Geom *g, Py_ssize_t F, int which) noexcept nogil:
    """Whether direct kernel ``which`` (0 the forward, 1 dW, 2 dx) takes this float32
    convolution: where it measured faster than Winograd or im2col (batch 64, one
    thread; docs/kernels.rst). Stride 1 up to C F = DIRECT_MAX_CF (16 x 64; 32 x 64 and
    48 x 48 were slower than Winograd, which does 16/36 of the multiply-adds); strided
    (against im2col) the forward up to 64 x 64, dW up to 32 filters (64 filters: 2.5 ->
    2.6 ms for 32 channels at 16x16). dx writes C channels per pixel: below 16 of them a
    tile's vector is part idle (8 channels, 64 filters, stride 1: 9.5 -> 10.5 ms)."""
    cdef Py_ssize_t C = g.c
    cdef bint strided = g.sh > 1 or g.sw > 1
    if (which == 0 and not DIRECT_FWD) or (which == 1 and not DIRECT_DW) or (
            which == 2 and not DIRECT_DX):
        return False
    if C < DIRECT_MIN_C or C > DIRECT_MAX_C or F < 1 or F > DIRECT_MAX_C or is_pointwise(g):
        return False
    if DIRECT_FORCE:
        return True
    if which == 2:
        if C < DIRECT_DX_MIN_C:
            return False
        if strided:
            # phase by phase, rows of every other pixel: only with whole 16-channel panels
            # (12 channels, 24 filters: 2.5 -> 2.7 ms; 16 and 32: 2.8 -> 2.3 ms) and
            # not too many filters per channel (16 and 64: 5.1 -> 5.3 ms)
            return C % 16 == 0 and F <= 2 * C
        if C < 16 and F > 32:
            return False
    if not strided:
        if w1_ok(g, F, g.ow) if (g.h == 1 and g.kh == 1) else winograd_ok(g, F, g.oh * g.ow):
            # Against Winograd with its products on register tiles (WINO_ATB, WINO_PACKED),
            # which does 16/36 of them: direct wins up to C F = 256 (16 x 16 at 32x32:
            # dW 3.8 against 5.3 ms, forward 3.5 against 4.0), ties around 512, loses at
            # 1024 (32 x 32 at 16x16: dW 4.2 against 3.1, forward 3.3 against 2.6); the
            # same for Conv1D's kernel gradient. Winograd's GEMMs with an inner size under 16
            # (C for the forward, F for dx) run far below their rate: direct then still
            # wins (8 -> 64 forward: 7.9 against 10.4 ms).
            if which == 1 and WINO_ATB and F % 8 == 0 and C * F <= WINO_ATB_MAX_CF:
                return C * F <= DIRECT_WINO_CF
            # Conv1D's forward and dx stay direct up to 1024 (16 -> 64, k5: forward 0.84
            # against 0.96 ms; 32 -> 32, k3: dx 0.71 against 0.85 ms).
            if which == 0 and WINO_PACKED and F >= 16 and g.h > 1:
                return C * F <= DIRECT_WINO_CF or (C < 16 and C * F <= DIRECT_MAX_CF)
            if which == 2 and WINO_PACKED and C >= 16 and g.h > 1:
                return C * F <= DIRECT_WINO_CF or (F < 16 and C * F <= DIRECT_MAX_CF)
        return C * F <= DIRECT_MAX_CF
    if which == 1:
        # a strided 1x1 (a residual block's projection) gathers no window: 32 -> 64 at
        # 16x16, 0.44 -> 0.33 ms
        return F <= 32 or g.kh * g.kw == 1
    return True


cdef inline Py_ssize_t _direct_rows(Py_ssize_t ow) noexcept nogil:
    cdef Py_ssize_t r = DIRECT_CHUNK_PX // ow
    return r if r > 0 else 1


cdef int direct_weight_grad(const float *xp, const float *dz, float *dwp, const Geom *g,
                            Py_ssize_t F, int n_threads, const float *dyp=NULL,
                            const float *yp=NULL, const float *zp=NULL, int act=ACT_LINEAR,
                            double alpha=0.0, float *dbp=NULL) except -1:
    """dw (kh kw C, F) from x and dz (n oh ow, F); see the section's comment. With
    ``dz`` NULL, dz = dy act'(.) is formed a chunk at a time from dyp, yp, zp (as
    grad_rows) just before its products. ``dbp`` (if not NULL) gets dz's column sums,
    taken chunk by chunk too: no pass over the whole of dz when nothing else needs it."""
    cdef Py_ssize_t R = g.n * g.oh, P = R * g.ow, T = g.kh * g.kw, C = g.c, ow = g.ow
    cdef Py_ssize_t Fp = (F + 7) // 8 * 8, KFp = T * C * Fp, rows = _direct_rows(g.ow)
    cdef Py_ssize_t S = min(DW_SLOTS, max(1, P // DW_SLOT_MIN_PX), R)
    cdef Py_ssize_t srows = (R + S - 1) // S
    S = (R + srows - 1) // srows
    cdef int nt = _threads(P * T * C * F, S, n_threads)
    cdef bint fused = dz == NULL
    cdef Py_ssize_t s_scr = fn_dconv_dw_scratch(g, F, rows)
    cdef Py_ssize_t s_dz = rows * ow * F if fused else 0
    cdef float[:, ::1] part = scratch("dw_slots", (S, KFp), np.float32)
    cdef float[:, ::1] scr = scratch("work", (nt, s_scr + s_dz + F + 1), np.float32)
    cdef Py_ssize_t per = (S + nt - 1) // nt, kper = (T * C + nt - 1) // nt, t, s, k, f, k0, k1
    cdef Py_ssize_t q0, q1
    cdef float *pp
    cdef float *dzc
    cdef float *dbt
    for t in prange(nt, nogil=True, num_threads=nt, schedule="static"):
        dzc = &scr[t, 0] + s_scr
        dbt = dzc + s_dz
        for f in range(F):
            dbt[f] = 0
        for s in range(t * per, min(S, (t + 1) * per)):
            pp = &part[s, 0]
            memset(pp, 0, KFp * sizeof(float))
            if not fused and dbp == NULL:
                fn_dconv_dw_rows(xp, dz, 0, F, g, s * srows, min(R, (s + 1) * srows), rows, pp,
                                 &scr[t, 0])
                continue
            # the slot's chunks as fn_dconv_dw_rows cuts them: the same sums
            q0 = s * srows
            while q0 < min(R, (s + 1) * srows):
                q1 = min(min(R, (s + 1) * srows), q0 + rows)
                if fused:
                    grad_rows(act, dyp + q0 * ow * F, yp + q0 * ow * F,
                              zp + q0 * ow * F if zp != NULL else NULL, dzc, (q1 - q0) * ow,
                              F, alpha)
                    if dbp != NULL:
                        col_sums(dzc, (q1 - q0) * ow, F, dbt, False)
                    fn_dconv_dw_rows(xp, dzc, q0, F, g, q0, q1, rows, pp, &scr[t, 0])
                else:
                    col_sums(dz + q0 * ow * F, (q1 - q0) * ow, F, dbt, False)
                    fn_dconv_dw_rows(xp, dz, 0, F, g, q0, q1, rows, pp, &scr[t, 0])
                q0 = q1
    # The slots added in order, each thread a block of dW's rows (the sums do not
    # depend on the split).
    for t in prange(nt, nogil=True, num_threads=nt, schedule="static"):
        k0 = t * kper
        k1 = min(T * C, k0 + kper)
        for k in range(k0, k1):
            for f in range(F):
                dwp[k * F + f] = part[0, k * Fp + f]
        for s in range(1, S):
            pp = &part[s, 0]
            for k in range(k0, k1):
                for f in range(F):
                    dwp[k * F + f] += pp[k * Fp + f]
    if dbp != NULL:
        with nogil:
            for f in range(F):
                dbp[f] = 0
                for t in range(nt):
                    dbp[f] += scr[t, s_scr + s_dz + f]
    return 0


cdef int direct_conv(const float *xp, const float *wp, const float *bp, float *zp, float *yp,
                     const Geom *g, Py_ssize_t F, int act, double alpha,
                     int n_threads) except -1:
    """y = act(conv(x, W) + b) by the direct kernel, chunks of output rows of a sample
    split over threads."""
    cdef Py_ssize_t C = g.c, T = g.kh * g.kw, K = T * C, NP = (F + 15) // 16
    cdef Py_ssize_t rows = _direct_rows(g.ow)
    cdef Py_ssize_t cps = (g.oh + rows - 1) // rows, nch = g.n * cps
    cdef int nt = _threads(g.n * g.oh * g.ow * K * F, nch, n_threads)
    cdef float[::1] wpk = scratch("wp", (NP * 16 * K,), np.float32)
    cdef Py_ssize_t[::1] ev = np.arange(g.kh, dtype=np.intp) * g.dh - g.ph
    cdef Py_ssize_t[::1] fv = np.arange(g.kw, dtype=np.intp) * g.dw - g.pw
    cdef Py_ssize_t s_scr = fn_dconv_taps_scratch((rows - 1) * g.sh + (g.kh - 1) * g.dh + 1,
                                                  (g.ow - 1) * g.sw + (g.kw - 1) * g.dw + 1,
                                                  C, T)
    cdef float[:, ::1] scr = scratch("work", (nt, s_scr), np.float32)
    cdef Py_ssize_t per = (nch + nt - 1) // nt, t, q, n, oy0, oy1, r0
    with nogil:
        fn_pack_b(wp, F, K, F, 0, &wpk[0])
    for t in prange(nt, nogil=True, num_threads=nt, schedule="static"):
        for q in range(t * per, min(nch, (t + 1) * per)):
            n = q // cps
            oy0 = (q - n * cps) * rows
            oy1 = min(g.oh, oy0 + rows)
            r0 = (n * g.oh + oy0) * g.ow
            fn_dconv_taps_rows(xp + n * g.h * g.w * C, g.h, g.w, C, g.sh, g.sw, g.kh, &ev[0],
                               g.kw, &fv[0], &wpk[0], bp, F, oy0, oy1, g.ow, zp + r0 * F,
                               g.ow * F, F, &scr[t, 0])
            bias_act(zp + r0 * F, yp + r0 * F, <float *>NULL, (oy1 - oy0) * g.ow, F, act,
                     alpha)
    return 0


cdef int direct_input_grad(const float *dz, const float *wp, float *dxp, const Geom *g,
                           Py_ssize_t F, int n_threads) except -1:
    """dx (n, h, w, C) from dz (n oh ow, F) by the direct kernel, one phase at a time.

    Input pixel (iy, ix) gets dz[oy] W[i] where iy = oy sh + i dh - ph: the pixels of
    one phase (iy = ry + sh a, ix = rx + sw b) are reached by the taps with
    (ry + ph - i dh) divisible by sh, from dz row a + (ry + ph - i dh) / sh: a
    stride-1 convolution of dz with those taps (all of them at stride 1: dz with
    the flipped kernel). A phase no tap reaches gets zeros."""
    cdef Py_ssize_t C = g.c, kh = g.kh, kw = g.kw, sh = g.sh, sw = g.sw, NPH = sh * sw
    cdef Py_ssize_t NP = (C + 15) // 16, T = kh * kw, ph, ry, rx, i, j, f, c, ti, tj
    cdef Py_ssize_t row0, kp, na, nb, rows, nitems, s_scr, emn, emx, fmn, fmx
    cdef bint empty = False
    # per phase: TI, TJ, offset of e, of f, first kernel row, na, nb, rows per chunk
    cdef Py_ssize_t[:, ::1] info = np.zeros((NPH, 8), dtype=np.intp)
    cdef Py_ssize_t[::1] ev = np.zeros(NPH * kh + 1, dtype=np.intp)
    cdef Py_ssize_t[::1] fv = np.zeros(NPH * kw + 1, dtype=np.intp)
    cdef float[::1] wpk = scratch("wp", (NP * 16 * T * F,), np.float32)
    cdef float[:, ::1] wt = scratch("wflip", (T * F, C), np.float32)
    row0 = 0
    nitems = 0
    s_scr = 0
    for ph in range(NPH):
        ry = ph // sw
        rx = ph - ry * sw
        info[ph, 2] = ph * kh
        info[ph, 3] = ph * kw
        for i in range(kh):
            if (ry + g.ph - i * g.dh) % sh == 0:
                ev[ph * kh + info[ph, 0]] = (ry + g.ph - i * g.dh) // sh
                info[ph, 0] += 1
        for j in range(kw):
            if (rx + g.pw - j * g.dw) % sw == 0:
                fv[ph * kw + info[ph, 1]] = (rx + g.pw - j * g.dw) // sw
                info[ph, 1] += 1
        na = (g.h - ry + sh - 1) // sh if ry < g.h else 0
        nb = (g.w - rx + sw - 1) // sw if rx < g.w else 0
        info[ph, 5] = na
        info[ph, 6] = nb
        if na == 0 or nb == 0:
            continue
        if info[ph, 0] == 0 or info[ph, 1] == 0:
            empty = True
            info[ph, 5] = 0
            continue
        rows = _direct_rows(nb)
        info[ph, 7] = rows
        info[ph, 4] = row0
        # the phase's kernel: rows (ti TJ + tj) F + f, columns c = W[i, j, c, f]
        kp = 0
        for i in range(kh):
            if (ry + g.ph - i * g.dh) % sh != 0:
                continue
            for j in range(kw):
                if (rx + g.pw - j * g.dw) % sw != 0:
                    continue
                for f in range(F):
                    for c in range(C):
                        wt[row0 + kp * F + f, c] = wp[((i * kw + j) * C + c) * F + f]
                kp += 1
        with nogil:
            fn_pack_b(&wt[row0, 0], C, kp * F, C, 0, &wpk[NP * 16 * row0])
        row0 += kp * F
        nitems += g.n * ((na + rows - 1) // rows)
        emn = min([ev[ph * kh + ti] for ti in range(info[ph, 0])])
        emx = max([ev[ph * kh + ti] for ti in range(info[ph, 0])])
        fmn = min([fv[ph * kw + tj] for tj in range(info[ph, 1])])
        fmx = max([fv[ph * kw + tj] for tj in range(info[ph, 1])])
        s_scr = max(s_scr, fn_dconv_taps_scratch(rows + emx - emn, nb + fmx - fmn, F,
                                                 info[ph, 0] * info[ph, 1]))
    # work items: (phase, sample, first row), sample by sample: phases differ in work
    # (4, 2, 2 and 1 taps for 3x3 at stride 2), so a thread's block of items gets each
    # in proportion (split by phase, one of two threads had twice the other's work)
    cdef Py_ssize_t[:, ::1] items = np.empty((max(nitems, 1), 3), dtype=np.intp)
    cdef Py_ssize_t q = 0, n, a0
    for n in range(g.n):
        for ph in range(NPH):
            if info[ph, 5] == 0:
                continue
            for a0 in range(0, info[ph, 5], info[ph, 7]):
                items[q, 0] = ph
                items[q, 1] = n
                items[q, 2] = a0
                q += 1
    cdef int nt = _threads(g.n * g.h * g.w * C * F * T // NPH, nitems, n_threads)
    cdef float[:, ::1] scr = scratch("work", (nt, s_scr + 1), np.float32)
    cdef Py_ssize_t per = (nitems + nt - 1) // nt, t, a1
    if empty:
        with nogil:
            memset(dxp, 0, g.n * g.h * g.w * C * sizeof(float))
    for t in prange(nt, nogil=True, num_threads=nt, schedule="static"):
        for q in range(t * per, min(nitems, (t + 1) * per)):
            ph = items[q, 0]
            n = items[q, 1]
            a0 = items[q, 2]
            a1 = min(info[ph, 5], a0 + info[ph, 7])
            ry = ph // sw
            rx = ph - ry * sw
            fn_dconv_taps_rows(dz + n * g.oh * g.ow * F, g.oh, g.ow, F, 1, 1, info[ph, 0],
                               &ev[info[ph, 2]], info[ph, 1], &fv[info[ph, 3]],
                               &wpk[NP * 16 * info[ph, 4]], NULL, C, a0, a1, info[ph, 6],
                               dxp + ((n * g.h + ry + sh * a0) * g.w + rx) * C,
                               sh * g.w * C, sw * C, &scr[t, 0])
    return 0


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
    dt = np.float32 if floating is float else np.float64
    cdef floating[::1] u
    cdef floating[::1] upk = None
    cdef floating[:, ::1] wscr
    if floating is float:
        if direct_use(&g, F, 0):
            direct_conv(xp, wp, bp, zp, yp, &g, F, act, alpha, n_threads)
            return
    if winograd_ok(&g, F, g.oh * g.ow):
        u = scratch("u", (16 * g.c * F,), dt)
        wscr = scratch("work", (nt, wino_scratch(g.c, F, g.w)), dt)
        if floating is float and WINO_PACKED and F >= 16:
            upk = scratch("upk", (16 * ((F + 15) // 16) * 16 * g.c,), dt)
        with nogil:
            wino_kernel(wp, &u[0], g.c, F, False)
            wino_conv(xp, &u[0], bp, zp, yp, keep_z, &g, F, act, alpha, &wscr[0, 0],
                      wscr.shape[1], nt, &upk[0] if upk is not None else NULL)
        return
    if w1_ok(&g, F, g.ow):
        u = scratch("u", (8 * g.c * F,), dt)
        wscr = scratch("work", (nt, w1_scratch(g.c, F, g.w)), dt)
        if floating is float and WINO_PACKED and F >= 16:
            upk = scratch("upk", (8 * ((F + 15) // 16) * 16 * g.c,), dt)
        with nogil:
            w1_kernel(wp, &u[0], g.c, F, g.kw, False)
            w1_conv(xp, &u[0], bp, zp, yp, keep_z, &g, F, act, alpha, &wscr[0, 0],
                    wscr.shape[1], nt, &upk[0] if upk is not None else NULL)
        return
    cdef Py_ssize_t per = (P + nt - 1) // nt
    # Without a z output the GEMM writes a cache-resident chunk that the bias and
    # activation pass then reads once, writing y once rather than twice (GEMM, then
    # activation); docs/kernels.rst ("Measurements") has what that saves.
    cdef bint via_scratch = not keep_z
    cdef Py_ssize_t s_cols = 0 if direct else rows * K
    cdef floating[:, ::1] work = scratch("work", (nt, s_cols + (rows * F if via_scratch else 0) + 1),
                                          np.float32 if floating is float else np.float64)
    cdef Py_ssize_t t, lo, hi, c0, c1
    cdef floating *cols
    cdef floating *zc
    for t in prange(nt, nogil=True, num_threads=nt, schedule="static"):
        lo = t * per
        hi = min(P, lo + per)
        cols = &work[t, 0]
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
    cdef floating v, s
    if act == ACT_RELU:
        for i in range(n):
            v = dy[i]
            s = y[i]
            dz[i] = v if s > 0 else s * 0  # 0 where clipped, NaN where y is NaN
    elif act == ACT_SOFTMAX or act == ACT_LOG_SOFTMAX:
        for r in range(rows):
            act_grad_row(act, dy + r * F, y + r * F, z + r * F if z != NULL else NULL,
                         dz + r * F, F, alpha)
    else:
        act_grad_row(act, dy, y, z, dz, n, alpha)


cdef void col_sums(const floating *a, Py_ssize_t rows, Py_ssize_t F, floating *out,
                   bint first) noexcept nogil:
    """out (+)= the column sums of a (rows, F)."""
    cdef Py_ssize_t r, j
    cdef floating acc
    if first:
        for j in range(F):
            out[j] = 0
    if F == 1:
        acc = 0
        for r in range(rows):
            acc = acc + a[r]
        out[0] = out[0] + acc
        return
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

cdef int _wino_backward(const floating *dyp, const floating *yp, const floating *zp,
                        const floating *xp, const floating *wp, floating *dwp, floating *dbp,
                        floating *dxp, const Geom *g, const Geom *gx, Py_ssize_t F, int act,
                        double alpha, bint wino_dw, bint wino_dx, bint one_d,
                        int n_threads) except -1:
    """Backward of a 3x3 stride-1 convolution by Winograd F(2x2, 3x3).

    dz (output-sized) is formed first, since the input gradient is a convolution of
    it; then dW from the transformed input and dz tiles, dx by a Winograd convolution.
    """
    cdef Py_ssize_t C = g.c, P = g.n * g.oh * g.ow, K = 9 * g.c, t, lo, hi, per, i
    dt = np.float32 if floating is float else np.float64
    cdef int nt = _threads(P * K * F * 2, g.n, n_threads)
    cdef floating[:, ::1] dzb
    cdef floating[:, ::1] dbs = np.zeros((nt, F), dtype=dt)
    cdef const floating *dz = dyp
    cdef floating *dzw = NULL
    if act != ACT_LINEAR:
        dzb = scratch("dz", (P, F), dt)
        dzw = &dzb[0, 0]
        dz = dzw
    per = (P + nt - 1) // nt
    for t in prange(nt, nogil=True, num_threads=nt, schedule="static"):
        lo = t * per
        hi = min(P, lo + per)
        if hi > lo:
            if dzw != NULL:
                grad_rows(act, dyp + lo * F, yp + lo * F, zp + lo * F if zp != NULL else NULL,
                          dzw + lo * F, hi - lo, F, alpha)
            if dbp != NULL:
                col_sums(dz + lo * F, hi - lo, F, &dbs[t, 0], True)
    if dbp != NULL:
        for i in range(F):
            dbp[i] = 0
            for t in range(nt):
                dbp[i] += dbs[t, i]
    cdef floating[:, ::1] scr
    cdef floating[::1] u
    cdef floating[::1] upk = None
    if not (wino_dw and wino_dx) and (dwp != NULL or dxp != NULL):
        # The other gradient by im2col, from the dz just formed.
        _im2col_backward(dz, NULL, NULL, xp, wp, NULL if wino_dw else dwp, NULL,
                         NULL if wino_dx else dxp, g, F, ACT_LINEAR, 0.0, n_threads)
    if dwp != NULL and wino_dw:
        if one_d:
            scr = scratch("work", (nt, w1_scratch(C, F, g.w)), dt)
            with nogil:
                w1_weight_grad(xp, dz, dwp, g, F, &scr[0, 0], scr.shape[1], nt)
        else:
            scr = scratch("work", (nt, wino_grad_scratch(C, F, g.w)), dt)
            with nogil:
                wino_weight_grad(xp, dz, dwp, g, F, &scr[0, 0], scr.shape[1], nt)
    if dxp != NULL and wino_dx:
        u = scratch("u", (16 * C * F,), dt)
        if one_d:
            scr = scratch("work", (nt, w1_scratch(F, C, gx.w)), dt)
            if floating is float and WINO_PACKED and C >= 16:
                upk = scratch("upk", (8 * ((C + 15) // 16) * 16 * F,), dt)
            with nogil:
                w1_kernel(wp, &u[0], C, F, g.kw, True)
                w1_conv(dz, &u[0], NULL, NULL, dxp, False, gx, C, ACT_LINEAR, 0.0, &scr[0, 0],
                        scr.shape[1], nt, &upk[0] if upk is not None else NULL)
        else:
            scr = scratch("work", (nt, wino_scratch(F, C, gx.w)), dt)
            if floating is float and WINO_PACKED and C >= 16:
                upk = scratch("upk", (16 * ((C + 15) // 16) * 16 * F,), dt)
            with nogil:
                wino_kernel(wp, &u[0], C, F, True)
                wino_conv(dz, &u[0], NULL, NULL, dxp, False, gx, C, ACT_LINEAR, 0.0,
                          &scr[0, 0], scr.shape[1], nt, &upk[0] if upk is not None else NULL)
    return 0


cdef int _im2col_backward(const floating *dyp, const floating *yp, const floating *zp,
                          const floating *xp, const floating *wp, floating *dwp, floating *dbp,
                          floating *dxp, const Geom *gp, Py_ssize_t F, int act, double alpha,
                          int n_threads) except -1:
    """Backward by chunked im2col and GEMMs; see the module docstring."""
    cdef Geom g = gp[0]
    cdef Py_ssize_t P = g.n * g.oh * g.ow, K = g.kh * g.kw * g.c
    cdef Py_ssize_t ohw = g.oh * g.ow, img = g.h * g.w * g.c
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
    cdef floating[:, ::1] work = scratch("work", (nt, stride_t), dt)
    cdef Py_ssize_t t, n0, n1, c0, c1, per, i, j
    cdef floating *base
    cdef floating *tdw
    cdef floating *tdb
    cdef bint first
    if nt == 1:
        # One thread: chunks in order; GEMMs may still use every thread when the
        # batch is too small to split by samples.
        base = &work[0, 0]
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
        return 0
    per = (g.n + nt - 1) // nt
    for t in prange(nt, nogil=True, num_threads=nt, schedule="static"):
        n0 = t * per
        n1 = min(g.n, n0 + per)
        base = &work[t, 0]
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
                tdw = &work[t, 0] + s_cols + s_dz + s_dcols
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
                tdb = &work[t, 0] + s_cols + s_dz + s_dcols + s_dw
                for j in range(F):
                    dbp[j] = dbp[j] + tdb[j]
    return 0


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
    cdef bint d_dw = False
    cdef bint d_dx = False
    if floating is float:
        d_dw = dwp != NULL and direct_use(&g, F, 1)
        d_dx = dxp != NULL and direct_use(&g, F, 2)
        if d_dw or d_dx:
            _direct_backward(dyp, yp, zp, xp, wp, dwp, dbp, dxp, &g, F, act, alpha, d_dw,
                             d_dx, n_threads)
            return
    _backward_dispatch(dyp, yp, zp, xp, wp, dwp, dbp, dxp, &g, F, act, alpha, n_threads)


cdef int _direct_backward(const float *dyp, const float *yp, const float *zp, const float *xp,
                          const float *wp, float *dwp, float *dbp, float *dxp, const Geom *g,
                          Py_ssize_t F, int act, double alpha, bint d_dw, bint d_dx,
                          int n_threads) except -1:
    """Backward with the direct kernels for dW (``d_dw``) and/or dx (``d_dx``); the other
    gradient takes the usual path. db comes from the kernel gradient's chunks when it
    runs first; dz is formed whole only when dx needs it and the activation has a
    derivative."""
    cdef Py_ssize_t P = g.n * g.oh * g.ow, lo, hi, per, i, t
    cdef bint dw_done = False
    if d_dw and (act == ACT_LINEAR or dxp == NULL):
        # dz (= dy, or formed a chunk at a time inside the loop when only dW needs it)
        # and db's column sums taken in cache, chunk by chunk, not in passes of their
        # own over the whole of dz (1 -> 32 channels, 26x26, batch 128, two threads:
        # ReLU 2.2 -> 1.6 ms, linear 1.7 -> 2.1 ms with the passes)
        direct_weight_grad(xp, dyp if act == ACT_LINEAR else NULL, dwp, g, F, n_threads, dyp,
                           yp, zp, act, alpha, dbp)
        if dxp == NULL:
            return 0
        dw_done = True
        dbp = NULL
    cdef int nt = _threads(P * F * 64, P // 64, n_threads)
    cdef float[:, ::1] dzb
    cdef float[:, ::1] dbs = np.zeros((nt, F), dtype=np.float32)
    cdef const float *dz = dyp
    cdef float *dzw = NULL
    if act != ACT_LINEAR:
        dzb = scratch("dz", (P, F), np.float32)
        dzw = &dzb[0, 0]
        dz = dzw
    if dzw != NULL or dbp != NULL:
        per = (P + nt - 1) // nt
        for t in prange(nt, nogil=True, num_threads=nt, schedule="static"):
            lo = t * per
            hi = min(P, lo + per)
            if hi > lo:
                if dzw != NULL:
                    grad_rows(act, dyp + lo * F, yp + lo * F,
                              zp + lo * F if zp != NULL else NULL, dzw + lo * F, hi - lo, F,
                              alpha)
                if dbp != NULL:
                    col_sums(dz + lo * F, hi - lo, F, &dbs[t, 0], True)
        if dbp != NULL:
            for i in range(F):
                dbp[i] = 0
                for t in range(nt):
                    dbp[i] += dbs[t, i]
    if d_dw and not dw_done:
        direct_weight_grad(xp, dz, dwp, g, F, n_threads)
    if d_dx:
        direct_input_grad(dz, wp, dxp, g, F, n_threads)
    if (dwp != NULL and not d_dw) or (dxp != NULL and not d_dx):
        _backward_dispatch(dz, NULL, NULL, xp, wp, NULL if d_dw else dwp, NULL,
                           NULL if d_dx else dxp, g, F, ACT_LINEAR, 0.0, n_threads)
    return 0


cdef int _backward_dispatch(const floating *dyp, const floating *yp, const floating *zp,
                            const floating *xp, const floating *wp, floating *dwp,
                            floating *dbp, floating *dxp, const Geom *gp, Py_ssize_t F,
                            int act, double alpha, int n_threads) except -1:
    """The backward by Winograd or im2col, whichever each gradient takes."""
    cdef Geom g = gp[0]
    cdef Geom gx
    cdef bint one_d = g.h == 1 and g.kh == 1
    cdef bint wino_dw = False
    cdef bint wino_dx = False
    if one_d:
        wino_dw = dwp != NULL and w1_ok(&g, F, g.ow)
        if dxp != NULL and w1_ok(&g, F, g.ow):
            # The input gradient of a stride-1 Conv1D is a Conv1D of dz with the kernel
            # reversed and transposed, padded by r - 1 - pad.
            gx = g
            gx.w, gx.c, gx.ow = g.ow, F, g.w
            gx.pw = g.kw - 1 - g.pw
            wino_dx = w1_ok(&gx, g.c, g.ow)
    elif dwp != NULL and winograd_ok(&g, F, g.oh * g.ow):
        wino_dw = True
    if not one_d and dxp != NULL and winograd_ok(&g, F, g.oh * g.ow):
        # The input gradient of a 3x3 stride-1 convolution is itself one: of dz, with
        # the kernel flipped and transposed, padded by 2 - pad.
        gx = g
        gx.h, gx.w, gx.c, gx.oh, gx.ow = g.oh, g.ow, F, g.h, g.w
        gx.ph, gx.pw = 2 - g.ph, 2 - g.pw
        wino_dx = winograd_ok(&gx, g.c, g.oh * g.ow)
    if wino_dw or wino_dx:
        _wino_backward(dyp, yp, zp, xp, wp, dwp, dbp, dxp, &g, &gx, F, act, alpha, wino_dw,
                       wino_dx, one_d, n_threads)
    else:
        _im2col_backward(dyp, yp, zp, xp, wp, dwp, dbp, dxp, &g, F, act, alpha, n_threads)
    return 0
