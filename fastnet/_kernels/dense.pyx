"""Dense (fully connected) layer kernels: one GEMM plus a fused bias/activation pass.

Forward:  z = x @ w + b, y = act(z)          x (n, in), w (in, units), y (n, units)
Backward: dz = dy * act'(.), dw = x^T dz, db = sum_rows(dz), dx = dz w^T

The forward splits the work into one block per thread; each thread runs a
single-threaded GEMM on its block and then adds the bias and applies the
activation while the block is still in cache. The blocks are rows, or columns
(units) when there are fewer rows than units and the activation works element by
element: each thread then packs only its share of w (the larger operand) instead
of all of it. Small problems run on the calling thread alone.

The input gradient of a layer with few units (dz @ w^T with an inner dimension of
at most SMALL_UNITS, such as a Dense(1) or Dense(10) head) is a sum of a few
scaled rows of w^T; a plain vectorised loop writes it in one pass, where a BLAS
call spends more on setting up than on the arithmetic.
Entry points take float32 or float64 ndarrays (all of one dtype).
"""
cimport numpy as cnp
from cython cimport floating
from cython.parallel cimport prange
from libc.stdlib cimport free, malloc

from fastnet._kernels cimport _arrays as A
from fastnet._kernels._activations cimport (act_grad_row, act_row, needs_input, ACT_LINEAR,
                                            ACT_LOG_SOFTMAX, ACT_SOFTMAX)
from fastnet._kernels._blas cimport gemm, gemm_parallel
from fastnet._kernels._openmp cimport omp_get_thread_num

cdef extern from *:
    """
    /* the packed float32 GEMM: fn_gemm_kblocked for the weight gradient x^T g */
    #include "_packed_gemm.h"
    """
    int fn_wide_tiles
    int fn_wide_tiles_init() noexcept nogil
    Py_ssize_t fn_kblocked_scratch(Py_ssize_t M, Py_ssize_t N, Py_ssize_t KB) noexcept nogil
    void fn_gemm_kblocked(Py_ssize_t M1, const float *A1, Py_ssize_t M2, const float *A2,
                          Py_ssize_t N, Py_ssize_t K, const float *B, Py_ssize_t ldb,
                          float *C, Py_ssize_t ldc, float *scratch, Py_ssize_t KB,
                          float *csum) noexcept nogil
    void fn_pack_b(const float *B, Py_ssize_t ldb, Py_ssize_t K, Py_ssize_t N, int trans,
                   float *Bp) noexcept nogil
    void fn_gemm_packed(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K, const float *A,
                        Py_ssize_t lda, const float *Bp, float *C, Py_ssize_t ldc,
                        int accumulate, const float *bias) noexcept nogil

cnp.import_array()

# Whether this CPU runs the packed GEMM's 512-bit micro-kernel (AVX-512).
cdef bint _WIDE_OK = fn_wide_tiles_init() != 0
# float32 products of tall inputs (many rows: a Dense on every position of a sequence)
# through the packed GEMM: see _tall, _rows_packed and _wgrad_packed.
cdef bint PACKED_WGRAD = True
# Rows of x and g packed at a time by fn_gemm_kblocked.
cdef Py_ssize_t WGRAD_KB = 256
# Most partial sums of a row-split weight gradient (see _wgrad_packed).
cdef Py_ssize_t WGRAD_MAX_CHUNKS = 16

cdef Py_ssize_t PARALLEL_MIN_WORK = 1 << 17
# Largest inner dimension (units) for which the input gradient is a direct loop.
cdef Py_ssize_t SMALL_UNITS = 16
# Whether the forward may split units (columns) across threads; see _split_columns.
cdef bint SPLIT_COLUMNS = True


def set_tuning(split_columns=None, packed_weight_grad=None, wide_tiles=None):
    """Benchmark and test knobs: allow the column split of the forward (True by default);
    float32 products of tall inputs (forward, input and weight gradients) through the packed
    GEMM (True by default);
    its 512-bit micro-kernel where the CPU has AVX-512 (True by default, False elsewhere).
    Returns the settings."""
    global SPLIT_COLUMNS, PACKED_WGRAD, fn_wide_tiles
    if split_columns is not None:
        SPLIT_COLUMNS = bool(split_columns)
    if packed_weight_grad is not None:
        PACKED_WGRAD = bool(packed_weight_grad)
    if wide_tiles is not None:
        fn_wide_tiles = 1 if (wide_tiles and _WIDE_OK) else 0
    return dict(split_columns=SPLIT_COLUMNS, packed_weight_grad=PACKED_WGRAD,
                wide_tiles=fn_wide_tiles != 0)


def wide_tiles_available():
    """True when this CPU and build can run the packed GEMM's 512-bit micro-kernel."""
    return _WIDE_OK


cdef inline int _threads_for(Py_ssize_t work, Py_ssize_t rows, int n_threads) noexcept nogil:
    if n_threads <= 1 or work < PARALLEL_MIN_WORK or rows < 2 * n_threads:
        return 1
    return n_threads


cdef void _forward_rows(const floating *x, const floating *w, const floating *b, floating *z,
                        floating *y, Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t k,
                        Py_ssize_t units, int act, double alpha) noexcept nogil:
    cdef Py_ssize_t r, j
    cdef floating *zr
    gemm(False, False, hi - lo, units, k, <floating>1, x + lo * k, k, w, units,
         <floating>0, z + lo * units, units)
    for r in range(lo, hi):
        zr = z + r * units
        if b != NULL:
            for j in range(units):
                zr[j] = zr[j] + b[j]
        act_row(act, zr, y + r * units, units, alpha)


cdef void _forward_cols(const floating *x, const floating *w, const floating *b, floating *z,
                        floating *y, Py_ssize_t n, Py_ssize_t c0, Py_ssize_t c1, Py_ssize_t k,
                        Py_ssize_t units, int act, double alpha) noexcept nogil:
    """Columns c0:c1 of every row (an element-wise activation only)."""
    cdef Py_ssize_t r, j, m = c1 - c0
    cdef floating *zr
    gemm(False, False, n, m, k, <floating>1, x, k, w + c0, units, <floating>0, z + c0, units)
    for r in range(n):
        zr = z + r * units + c0
        if b != NULL:
            for j in range(m):
                zr[j] = zr[j] + b[c0 + j]
        act_row(act, zr, y + r * units + c0, m, alpha)


cdef inline bint _split_columns(Py_ssize_t n, Py_ssize_t units, int act, int nt) noexcept nogil:
    # A row split makes every thread pack all of w (k x units), a column split all of
    # x (n x k): the smaller copy wins. Softmax needs whole rows.
    return (SPLIT_COLUMNS and n < units and units >= 32 * nt and act != ACT_SOFTMAX
            and act != ACT_LOG_SOFTMAX)


cdef Py_ssize_t TALL_MIN_WORK = 16384   # multiply-adds below which the tall path is not worth its packing


cdef inline bint _tall(Py_ssize_t n, Py_ssize_t k, Py_ssize_t units) noexcept nogil:
    # Tall inputs: rows at least twice the larger weight dimension, as a Dense applied to
    # every position of a sequence (6400 rows into 32 x 192 weights). There BLAS packs the
    # small w again for every call and thread and its products measured 15-35% slower
    # than the packed GEMM (w packed once, shared by the threads); on short wide inputs
    # (an MLP batch of 128 rows into 784 x 512 weights) BLAS stays, as it does for tiny
    # products (32 rows into 3 x 4 weights: packing cost 0.7 of the call's 1.8 us).
    return PACKED_WGRAD and k > 0 and units > 0 and n >= 2 * max(k, units) and n * k * units >= TALL_MIN_WORK


cdef int _rows_packed(const float *a, const float *w, int trans, Py_ssize_t n, Py_ssize_t kdim,
                      Py_ssize_t ncols, const float *bias, float *c, float *y, int act, double alpha,
                      int nt) noexcept nogil:
    """c (n x ncols) = a (n x kdim) op(w) [+ bias] for tall inputs, then y = act(c) row by row
    when y is given, while the rows are in cache. op(w) is w (kdim x ncols, contiguous) or,
    with trans, the transpose of w (ncols x kdim, contiguous): the forward's x w and the
    input gradient's g w^T of the same Dense weights. op(w) is packed once and shared by the threads' rows,
    the bias starts the accumulators; each row's sums run the same way however rows are
    split. Returns -1 (nothing written) when scratch is unavailable."""
    cdef float *wp = <float *>malloc(((ncols + 15) // 16) * 16 * kdim * sizeof(float))
    cdef Py_ssize_t chunk = (n + nt - 1) // nt, t, lo, hi, r
    if wp == NULL:
        return -1
    fn_pack_b(w, kdim if trans else ncols, kdim, ncols, trans, wp)
    if nt <= 1:
        nt = 1
        chunk = n
    for t in prange(nt, num_threads=nt, schedule="static"):
        lo = t * chunk
        hi = min(n, lo + chunk)
        if lo < hi:
            fn_gemm_packed(hi - lo, ncols, kdim, a + lo * kdim, kdim, wp, c + lo * ncols, ncols, 0, bias)
            if y != NULL:
                for r in range(lo, hi):
                    act_row(act, c + r * ncols, y + r * ncols, ncols, alpha)
    free(wp)
    return 0


cdef void _forward(const floating *x, const floating *w, const floating *b, floating *z,
                   floating *y, Py_ssize_t n, Py_ssize_t k, Py_ssize_t units, int act,
                   double alpha, int nt) noexcept nogil:
    cdef Py_ssize_t chunk = (n + nt - 1) // nt
    cdef Py_ssize_t n_chunks = (n + chunk - 1) // chunk
    cdef Py_ssize_t t, lo
    if floating is float:
        if _tall(n, k, units) and _rows_packed(x, w, 0, n, k, units, b, z, y, act, alpha, nt) == 0:
            return
    if nt == 1:
        # Entering an OpenMP region costs ~0.5 us even for one thread: skip it.
        _forward_rows(x, w, b, z, y, 0, n, k, units, act, alpha)
        return
    if _split_columns(n, units, act, nt):
        # Blocks of whole 16-column panels (the GEMM micro-kernels' width).
        chunk = ((units + nt - 1) // nt + 15) // 16 * 16
        n_chunks = (units + chunk - 1) // chunk
        for t in prange(n_chunks, num_threads=nt, schedule="static"):
            lo = t * chunk
            _forward_cols(x, w, b, z, y, n, lo, min(units, lo + chunk), k, units, act, alpha)
        return
    for t in prange(n_chunks, num_threads=nt, schedule="static"):
        lo = t * chunk
        _forward_rows(x, w, b, z, y, lo, min(n, lo + chunk), k, units, act, alpha)


def forward(x, w, b, z, y, int act, double alpha=0.0, int n_threads=1):
    """y = act(x @ w + b). ``b`` may be None; ``z`` receives the pre-activation
    (required when the activation's derivative needs it; None computes it in y)."""
    cdef int t = A.float_type(x, b"x")
    cdef int nd = -1
    cdef Py_ssize_t n, k, units
    cdef char *px = A.data(x, t, 2, False, b"x")
    cdef char *pw = A.data(w, t, 2, False, b"w")
    cdef char *py = A.data(y, t, 2, True, b"y")
    cdef char *pb = NULL
    cdef char *pz = NULL
    n, k, units = A.dim(x, 0), A.dim(x, 1), A.dim(w, 1)
    if A.dim(w, 0) != k or A.dim(y, 0) != n or A.dim(y, 1) != units:
        raise ValueError(f"dense forward: x {(n, k)}, w {(A.dim(w, 0), units)}, y {(A.dim(y, 0), A.dim(y, 1))}")
    if b is not None:
        pb = A.data(b, t, 1, False, b"b")
        if A.dim(b, 0) != units:
            raise ValueError("dense forward: bias size differs from units")
    if z is not None:
        pz = A.data(z, t, 2, True, b"z")
        if A.dim(z, 0) != n or A.dim(z, 1) != units:
            raise ValueError("dense forward: z must have the output's shape")
    elif needs_input(act):
        raise ValueError("dense forward: this activation needs a z buffer")
    if n == 0 or units == 0:
        return
    if pz == NULL:
        pz = py
    cdef int nt = _threads_for(n * k * units, n, n_threads)
    with nogil:
        if t == cnp.NPY_FLOAT32:
            _forward(<float *>px, <float *>pw, <float *>pb, <float *>pz, <float *>py,
                     n, k, units, act, alpha, nt)
        else:
            _forward(<double *>px, <double *>pw, <double *>pb, <double *>pz, <double *>py,
                     n, k, units, act, alpha, nt)


cdef void _column_sums(const floating *g, floating *db, Py_ssize_t n, Py_ssize_t units,
                       Py_ssize_t c0, Py_ssize_t c1) noexcept nogil:
    cdef Py_ssize_t r, j
    for j in range(c0, c1):
        db[j] = 0
    for r in range(n):
        for j in range(c0, c1):
            db[j] = db[j] + g[r * units + j]


cdef void _dx_rows(const floating *g, const floating *wt, floating *dx, Py_ssize_t lo,
                   Py_ssize_t hi, Py_ssize_t k, Py_ssize_t units) noexcept nogil:
    """dx[r] = sum_u g[r, u] * wt[u] for rows lo:hi; wt is w transposed (units, k)."""
    cdef Py_ssize_t r, u, j
    cdef floating a
    cdef floating *d
    cdef const floating *v
    for r in range(lo, hi):
        d = dx + r * k
        a = g[r * units]
        for j in range(k):
            d[j] = a * wt[j]
        for u in range(1, units):
            a = g[r * units + u]
            v = wt + u * k
            for j in range(k):
                d[j] = d[j] + a * v[j]


cdef int _dx_small(const floating *g, const floating *w, floating *dx, Py_ssize_t n,
                   Py_ssize_t k, Py_ssize_t units, int n_threads) noexcept nogil:
    """dx = g @ w^T for units <= SMALL_UNITS. Returns -1 if scratch is unavailable."""
    cdef floating *wt = NULL
    cdef const floating *src = w
    cdef Py_ssize_t j, u, chunk, t, lo
    cdef int nt = _threads_for(n * k * 4, n, n_threads)
    if units > 1:
        wt = <floating *>malloc(<size_t>(k * units) * sizeof(floating))
        if wt == NULL:
            return -1
        for j in range(k):
            for u in range(units):
                wt[u * k + j] = w[j * units + u]
        src = wt
    if nt == 1:
        _dx_rows(g, src, dx, 0, n, k, units)
    else:
        chunk = (n + nt - 1) // nt
        for t in prange(nt, num_threads=nt, schedule="static"):
            lo = t * chunk
            if lo < n:
                _dx_rows(g, src, dx, lo, min(n, lo + chunk), k, units)
    free(wt)
    return 0


cdef int _wgrad_packed(const float *g, const float *x, float *dw, float *db, Py_ssize_t n,
                       Py_ssize_t k, Py_ssize_t units, int n_threads) noexcept nogil:
    """dw = x^T g (and db = column sums of g, or NULL) through fn_gemm_kblocked, which packs
    x's and g's rows a block at a time and adds their products into dw in registers.

    Work is split by columns of g when there are 64 or more (16-column panels: each
    column's sums run the same way whatever the split), else by chunks of rows with partial
    sums added in chunk order. Neither depends on the number of threads, so neither do the
    results. Returns -1 if scratch is unavailable (nothing written)."""
    cdef Py_ssize_t per, n_chunks, c, lo, hi, i, chunk, stride, c0
    cdef Py_ssize_t kb = WGRAD_KB
    cdef int nt
    cdef float *scratch
    cdef float *part
    cdef float *src
    cdef float acc
    if units >= 64:
        chunk = ((units + n_threads - 1) // n_threads + 15) // 16 * 16
        chunk = max(chunk, <Py_ssize_t>32)
        n_chunks = (units + chunk - 1) // chunk
        nt = <int>min(<Py_ssize_t>n_threads, n_chunks)
        per = fn_kblocked_scratch(k, chunk, kb)
        scratch = <float *>malloc(nt * per * sizeof(float))
        if scratch == NULL:
            return -1
        if nt <= 1:
            fn_gemm_kblocked(0, NULL, k, x, units, n, g, units, dw, units, scratch, kb, db)
        else:
            for c in prange(n_chunks, num_threads=nt, schedule="static"):
                c0 = c * chunk
                fn_gemm_kblocked(0, NULL, k, x, min(chunk, units - c0), n, g + c0, units, dw + c0, units,
                                 scratch + omp_get_thread_num() * per, kb,
                                 db + c0 if db != NULL else NULL)
        free(scratch)
        return 0
    n_chunks = max(<Py_ssize_t>1, min(WGRAD_MAX_CHUNKS, n // 512))
    nt = <int>min(<Py_ssize_t>n_threads, n_chunks)
    per = fn_kblocked_scratch(k, units, kb)
    if n_chunks == 1:
        scratch = <float *>malloc(per * sizeof(float))
        if scratch == NULL:
            return -1
        fn_gemm_kblocked(0, NULL, k, x, units, n, g, units, dw, units, scratch, kb, db)
        free(scratch)
        return 0
    chunk = (n + n_chunks - 1) // n_chunks
    stride = k * units + units
    scratch = <float *>malloc(nt * per * sizeof(float))
    part = <float *>malloc(n_chunks * stride * sizeof(float))
    if scratch == NULL or part == NULL:
        free(scratch)
        free(part)
        return -1
    if nt <= 1:
        for c in range(n_chunks):
            lo = c * chunk
            hi = min(n, lo + chunk)
            fn_gemm_kblocked(0, NULL, k, x + lo * k, units, hi - lo, g + lo * units, units,
                             part + c * stride, units, scratch, kb, part + c * stride + k * units)
    else:
        for c in prange(n_chunks, num_threads=nt, schedule="dynamic"):
            lo = c * chunk
            hi = min(n, lo + chunk)
            fn_gemm_kblocked(0, NULL, k, x + lo * k, units, hi - lo, g + lo * units, units,
                             part + c * stride, units, scratch + omp_get_thread_num() * per, kb,
                             part + c * stride + k * units)
    free(scratch)
    # the chunks' sums, added in chunk order (dw's entries, then db's)
    for i in range(stride if db != NULL else k * units):
        acc = part[i]
        for c in range(1, n_chunks):
            acc = acc + part[c * stride + i]
        if i < k * units:
            dw[i] = acc
        else:
            db[i - k * units] = acc
    free(part)
    return 0


cdef void _backward(const floating *dy, const floating *x, const floating *w,
                    const floating *y, const floating *z, floating *dz, floating *dw,
                    floating *db, floating *dx, Py_ssize_t n, Py_ssize_t k, Py_ssize_t units,
                    int act, double alpha, int n_threads) noexcept nogil:
    cdef Py_ssize_t r, c0, blk
    cdef const floating *g
    cdef int nt = _threads_for(n * units * 8, n, n_threads)
    if act == ACT_LINEAR:
        g = dy
    else:
        if nt == 1:
            for r in range(n):
                act_grad_row(act, dy + r * units, y + r * units,
                             z + r * units if z != NULL else NULL, dz + r * units, units, alpha)
        else:
            for r in prange(n, num_threads=nt, schedule="static"):
                act_grad_row(act, dy + r * units, y + r * units,
                             z + r * units if z != NULL else NULL, dz + r * units, units, alpha)
        g = dz
    cdef bint wgrad_done = False
    if floating is float:
        if dw != NULL and _tall(n, k, units):
            wgrad_done = _wgrad_packed(g, x, dw, db, n, k, units,
                                       _threads_for(n * k * units, n, n_threads)) == 0
    if db != NULL and not wgrad_done:
        # Column blocks per thread: each sums its columns over all rows.
        nt = _threads_for(n * units * 8, units, n_threads)
        if nt == 1:
            _column_sums(g, db, n, units, 0, units)
        else:
            blk = (units + nt - 1) // nt
            for c0 in prange(0, units, blk, num_threads=nt, schedule="static"):
                _column_sums(g, db, n, units, c0, min(units, c0 + blk))
    if dw != NULL and k > 0 and not wgrad_done:
        gemm_parallel(True, False, k, units, n, <floating>1, x, k, g, units,
                      <floating>0, dw, units, n_threads)
    if dx != NULL and k > 0:
        if floating is float:
            if units > SMALL_UNITS and _tall(n, k, units):
                if _rows_packed(g, w, 1, n, units, k, NULL, dx, NULL, 0, 0.0,
                                _threads_for(n * k * units, n, n_threads)) == 0:
                    return
        if units > SMALL_UNITS or _dx_small(g, w, dx, n, k, units, n_threads) != 0:
            gemm_parallel(False, True, n, k, units, <floating>1, g, units, w, units,
                          <floating>0, dx, k, n_threads)


def backward(dy, x, w, y, z, dz, dw, db, dx, int act, double alpha=0.0, int n_threads=1):
    """Gradients of a dense layer.

    ``dz`` is scratch of dy's shape (may be None for a linear activation, or the
    same array as ``dy`` when dy may be overwritten). ``z`` is needed only when the
    activation's derivative reads its input. ``dw``/``db``/``dx`` may be None to
    skip them (frozen weights, no bias, first layer).
    """
    cdef int t = A.float_type(x, b"x")
    cdef Py_ssize_t n = A.dim(x, 0), k = A.dim(x, 1), units = A.dim(w, 1)
    cdef char *pdy = A.data(dy, t, 2, False, b"dy")
    cdef char *px = A.data(x, t, 2, False, b"x")
    cdef char *pw = A.data(w, t, 2, False, b"w")
    cdef char *py = A.data(y, t, 2, False, b"y")
    cdef char *pz = NULL
    cdef char *pdz = NULL
    cdef char *pdw = NULL
    cdef char *pdb = NULL
    cdef char *pdx = NULL
    if A.dim(dy, 0) != n or A.dim(dy, 1) != units or A.dim(w, 0) != k \
            or A.dim(y, 0) != n or A.dim(y, 1) != units:
        raise ValueError("dense backward: shapes of dy, x, w and y do not agree")
    if act != ACT_LINEAR:
        if dz is None:
            raise ValueError("dense backward: dz scratch is needed for a non-linear activation")
        pdz = A.data(dz, t, 2, True, b"dz")
        if A.dim(dz, 0) != n or A.dim(dz, 1) != units:
            raise ValueError("dense backward: dz scratch must have dy's shape")
        if needs_input(act):
            if z is None:
                raise ValueError("dense backward: this activation needs z")
            pz = A.data(z, t, 2, False, b"z")
            if A.dim(z, 0) != n or A.dim(z, 1) != units:
                raise ValueError("dense backward: z must have dy's shape")
    if dw is not None:
        pdw = A.data(dw, t, 2, True, b"dw")
        if A.dim(dw, 0) != k or A.dim(dw, 1) != units:
            raise ValueError("dense backward: dw must have w's shape")
    if db is not None:
        pdb = A.data(db, t, 1, True, b"db")
        if A.dim(db, 0) != units:
            raise ValueError("dense backward: db must have one value per unit")
    if dx is not None:
        pdx = A.data(dx, t, 2, True, b"dx")
        if A.dim(dx, 0) != n or A.dim(dx, 1) != k:
            raise ValueError("dense backward: dx must have x's shape")
    if n == 0:
        if dw is not None:
            dw[...] = 0
        if db is not None:
            db[...] = 0
        return
    with nogil:
        if t == cnp.NPY_FLOAT32:
            _backward(<float *>pdy, <float *>px, <float *>pw, <float *>py, <float *>pz,
                      <float *>pdz, <float *>pdw, <float *>pdb, <float *>pdx,
                      n, k, units, act, alpha, n_threads)
        else:
            _backward(<double *>pdy, <double *>px, <double *>pw, <double *>py, <double *>pz,
                      <double *>pdz, <double *>pdw, <double *>pdb, <double *>pdx,
                      n, k, units, act, alpha, n_threads)
