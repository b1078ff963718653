"""Fused scaled dot-product attention: scores, masked softmax, dropout, times V, and back.

Layout (the one the projections produce, so no transposes are needed):

* q ``(B, Lq, H, dk)``, k ``(B, Lk, H, dk)``, v ``(B, Lk, H, dv)``, o ``(B, Lq, H, dv)``,
  all C-contiguous; head h of row i of batch b starts at ``((b * L + i) * H + h) * d``,
  so each head is a strided matrix with leading dimension ``H * d`` that BLAS reads as is.
* p ``(B, H, Lq, Lk)``: the softmax probabilities (before dropout), Keras's
  ``attention_scores``; kept for the backward pass.
* mask ``(Bm, Hm, Lq, Lk)`` uint8 with Bm in {1, B} and Hm in {1, H}: 1 = may attend.
  ``causal`` adds the condition key index <= query index.

Work is split into tasks of one (batch, head, block of query rows). A task computes the
block's scores with one GEMM into a block of ``nb x Lk`` values sized to stay in the
per-core cache, normalises each row in place (max, exp, sum, scale), applies dropout
and multiplies by V with a second GEMM while the block is still cached. Tasks run in a
``prange`` with single-threaded BLAS inside and per-thread scratch, so the result does
not depend on the number of threads. With a causal mask a block only reads the keys up
to its last row, which halves the work.

A row whose keys are all masked gets probabilities 0 (an output of 0 before the output
projection), as Keras's masked softmax gives.

Dropout on the probabilities draws element ``((b * H + h) * Lq + i) * Lk + j`` with the
counter-based hash of the dropout kernel (see dropout.pyx), so the backward pass
recomputes the mask from the seed instead of storing it.

Backward, per (batch, head): dPd = dO V^T, dP = dPd * keep / (1 - rate),
dS = P * (dP - D) with D_i = sum_c dO_ic O_ic (equal to sum_j dP_ij P_ij, dropout
included), dQ = scale dS K, dK = scale dS^T Q, dV = Pd^T dO (float32 through the packed GEMM
of _packed_gemm.h, float64 through BLAS: see "float32, packed" below). dK and dV gather over every
query block, so a task owns a whole (batch, head); when there are fewer (batch, head)
pairs than threads, each pair's queries are split into chunks with private dK/dV
partial sums that are added in a fixed order afterwards.
"""
cimport numpy as cnp
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport ceil, exp, tanh, INFINITY
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

from fastnet._kernels cimport _arrays as A
from fastnet._kernels._blas cimport gemm
from fastnet._kernels._openmp cimport fn_expf, fn_tanhf, omp_get_thread_num

cnp.import_array()

# Bytes of one block of scores: small enough to stay in a core's L2 cache with the block
# of queries and its share of K and V.
cdef Py_ssize_t BLOCK_BYTES = 128 * 1024

cdef extern from *:
    """
    /* the packed float32 GEMM (16-column panels, FMA micro-kernels) */
    #include "_packed_gemm.h"
    #include "_fastmath.h"

    /* Softmax of a float32 row in place: max, then exp(x - max) and its sum in one pass,
       then the scale; returns 0 (row untouched) when every entry is -inf (all masked).
       Eight lanes in a vector (GCC vector extensions): the compiler does not vectorize a
       running max or sum by itself without fast-math. exp is fn_expf's formula lane by
       lane, so the result equals the scalar loop's. */
    #if defined(__GNUC__) && !defined(FN_SCALAR_GEMM)
    typedef int32_t fn_v8i __attribute__((vector_size(32)));
    static inline fn_v8f fn_sel8(fn_v8i m, fn_v8f a, fn_v8f b) {
        return (fn_v8f)(((fn_v8i)a & m) | ((fn_v8i)b & ~m));
    }
    static inline fn_v8f fn_exp8(fn_v8f x0) {
        const fn_v8f lo = {-87.33654f, -87.33654f, -87.33654f, -87.33654f,
                           -87.33654f, -87.33654f, -87.33654f, -87.33654f};
        const fn_v8f hi = {88.72283f, 88.72283f, 88.72283f, 88.72283f,
                           88.72283f, 88.72283f, 88.72283f, 88.72283f};
        fn_v8i below = x0 < lo;
        fn_v8f x = fn_sel8(below, lo, x0);
        x = fn_sel8(x > hi, hi, x);
        fn_v8f t = x * 1.44269504088896341f + 12582912.0f;
        fn_v8f n = t - 12582912.0f;
        fn_v8f r = x - n * 0.693359375f;
        r = r + n * 2.12194440e-4f;
        fn_v8f p = r * 1.9875691500e-4f + 1.3981999507e-3f;
        p = p * r + 8.3334519073e-3f;
        p = p * r + 4.1665795894e-2f;
        p = p * r + 1.6666665459e-1f;
        p = p * r + 5.0000001201e-1f;
        p = p * r * r + r + 1.0f;
        fn_v8i pi = (fn_v8i)p + ((fn_v8i)t - 0x4B400000) * (1 << 23);
        return (fn_v8f)(pi & ~below);
    }
    #endif

    static int fn_softmax_rowf(float *row, Py_ssize_t n) {
        Py_ssize_t j = 0;
        float mx = -INFINITY, total = 0.0f, inv;
    #if defined(__GNUC__) && !defined(FN_SCALAR_GEMM)
        if (n >= 8) {
            fn_v8f vm, x, acc = {0};
            memcpy(&vm, row, sizeof vm);
            for (j = 8; j + 8 <= n; j += 8) {
                memcpy(&x, row + j, sizeof x);
                vm = fn_sel8(x > vm, x, vm);
            }
            for (int l = 0; l < 8; l++) mx = vm[l] > mx ? vm[l] : mx;
            for (; j < n; j++) mx = row[j] > mx ? row[j] : mx;
            if (mx == -INFINITY) return 0;
            for (j = 0; j + 8 <= n; j += 8) {
                memcpy(&x, row + j, sizeof x);
                x = fn_exp8(x - mx);
                memcpy(row + j, &x, sizeof x);
                acc += x;
            }
            for (int l = 0; l < 8; l++) total += acc[l];
        } else
    #endif
        {
            for (j = 0; j < n; j++) mx = row[j] > mx ? row[j] : mx;
            if (mx == -INFINITY) return 0;
            j = 0;
        }
        for (Py_ssize_t t = j; t < n; t++) {
            row[t] = fn_expf(row[t] - mx);
            total += row[t];
        }
        inv = 1.0f / total;
        for (j = 0; j < n; j++) row[j] *= inv;
        return 1;
    }
    """
    int fn_softmax_rowf(float *row, Py_ssize_t n) noexcept nogil
    int fn_wide_tiles
    int fn_wide_tiles_init() noexcept nogil
    Py_ssize_t fn_tile_rows(Py_ssize_t M, Py_ssize_t i0) noexcept nogil
    void fn_pack_b(const float *B, Py_ssize_t ldb, Py_ssize_t K, Py_ssize_t N, int trans,
                   float *Bp) noexcept nogil
    void fn_pack_b_rows(const float *B, Py_ssize_t ldb, Py_ssize_t k0, Py_ssize_t K,
                        Py_ssize_t Ktot, Py_ssize_t N, float *Bp) noexcept nogil
    void fn_gemm_packed(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K, const float *A,
                        Py_ssize_t lda, const float *Bp, float *C, Py_ssize_t ldc,
                        int accumulate, const float *bias) noexcept nogil
    void fn_gemm_packed_pp(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K, const float *Ap,
                           const float *Bp, float *C, Py_ssize_t ldc, int accumulate) noexcept nogil

# Whether this CPU runs the packed GEMM's 512-bit micro-kernel (AVX-512).
cdef bint _WIDE_OK = fn_wide_tiles_init() != 0
# float32 products through the packed GEMM (True) or BLAS (False, the float64 path).
cdef bint PACKED = True


def use_packed_gemm(bint flag):
    """Whether float32 attention multiplies through the packed GEMM where it measured faster
    (True, the default: the forward's P V, and the whole backward pass, V^T and K packed once
    per (batch, head) for every block of queries) or through BLAS as float64 does (for tests
    and timing). Returns the previous setting."""
    global PACKED
    cdef bint old = PACKED
    PACKED = flag
    return old


def use_wide_tiles(bint flag):
    """Whether the packed GEMM uses its 512-bit micro-kernel where the CPU has AVX-512
    (True, the default). Returns the previous setting; stays False on CPUs without it."""
    global fn_wide_tiles
    cdef bint old = fn_wide_tiles != 0
    fn_wide_tiles = 1 if (flag and _WIDE_OK) else 0
    return old


def wide_tiles_available():
    """True when this CPU and build can run the packed GEMM's 512-bit micro-kernel."""
    return _WIDE_OK


cdef inline uint32_t _mix32(uint32_t x) noexcept nogil:
    x ^= x >> 16
    x *= <uint32_t>0x7FEB352D
    x ^= x >> 15
    x *= <uint32_t>0x846CA68B
    x ^= x >> 16
    return x


cdef inline uint32_t _draw(Py_ssize_t i, uint32_t k1, uint32_t k2) noexcept nogil:
    # The dropout kernel's 24-bit uniform integer for element i (same hash, same keys).
    return _mix32(_mix32(<uint32_t>i ^ k1) + (<uint32_t>(<uint64_t>i >> 32) ^ k2)) >> 8


cdef inline void _keys(uint64_t seed, uint32_t *k1, uint32_t *k2) noexcept nogil:
    k1[0] = _mix32(<uint32_t>seed ^ <uint32_t>0x9E3779B9)
    k2[0] = _mix32(<uint32_t>(seed >> 32) + k1[0])


cdef inline floating _exp(floating x) noexcept nogil:
    if floating is float:
        return fn_expf(x)
    else:
        return exp(x)


cdef inline floating _tanh(floating x) noexcept nogil:
    if floating is float:
        return fn_tanhf(x)
    else:
        return tanh(x)


# Row reductions in LANES independent partial results, combined at the end: a single
# running max or sum is a dependency chain the compiler may not reorder (and so cannot
# vectorize) without fast-math; lanes give it independent chains to put in vector registers.
cdef enum:
    LANES = 8


cdef inline floating _row_max(const floating *row, Py_ssize_t n) noexcept nogil:
    cdef floating part[LANES]
    cdef floating mx = -INFINITY
    cdef Py_ssize_t j = 0, l
    for l in range(LANES):
        part[l] = -INFINITY
    while j + LANES <= n:
        for l in range(LANES):
            part[l] = row[j + l] if row[j + l] > part[l] else part[l]
        j += LANES
    for l in range(LANES):
        mx = part[l] if part[l] > mx else mx
    while j < n:
        mx = row[j] if row[j] > mx else mx
        j += 1
    return mx


cdef inline floating _row_sum(const floating *row, Py_ssize_t n) noexcept nogil:
    cdef floating part[LANES]
    cdef floating total = 0
    cdef Py_ssize_t j = 0, l
    for l in range(LANES):
        part[l] = 0
    while j + LANES <= n:
        for l in range(LANES):
            part[l] = part[l] + row[j + l]
        j += LANES
    for l in range(LANES):
        total = total + part[l]
    while j < n:
        total = total + row[j]
        j += 1
    return total


cdef struct Dims:
    Py_ssize_t B, H, Lq, Lk, dk, dv, nb, n_blocks, Bm, Hm
    Py_ssize_t ldq, ldk, ldv, ldo  # row strides (elements) of q, k, v, o and their gradients
    int causal
    double scale, rate
    uint32_t threshold, k1, k2


cdef inline Py_ssize_t _key_end(const Dims *d, Py_ssize_t i1) noexcept nogil:
    # Keys a block of query rows ending before i1 reads: all, or up to i1 when causal.
    if d.causal and i1 < d.Lk:
        return i1
    return d.Lk


cdef void _dropout_rows(const Dims *d, const floating *p, floating *out, Py_ssize_t bh,
                        Py_ssize_t i0, Py_ssize_t m, Py_ssize_t kend) noexcept nogil:
    """out[r, j] = p[r, j] * keep / (1 - rate) for the block's rows (leading dim Lk)."""
    cdef Py_ssize_t r, j, base
    cdef floating s = <floating>(1.0 / (1.0 - d.rate))
    cdef uint32_t thr = d.threshold, k1 = d.k1, k2 = d.k2
    for r in range(m):
        base = (bh * d.Lq + i0 + r) * d.Lk
        for j in range(kend):
            out[r * d.Lk + j] = p[r * d.Lk + j] * (s if _draw(base + j, k1, k2) >= thr else 0)


cdef void _forward_task(const Dims *d, const floating *q, const floating *k, const floating *v,
                        floating *o, floating *p, const uint8_t *mask, floating *scratch,
                        Py_ssize_t task) noexcept nogil:
    cdef Py_ssize_t blk = task % d.n_blocks
    cdef Py_ssize_t bh = task // d.n_blocks
    cdef Py_ssize_t b = bh // d.H, h = bh % d.H
    cdef Py_ssize_t i0 = blk * d.nb
    cdef Py_ssize_t m = min(d.nb, d.Lq - i0)
    cdef Py_ssize_t kend = _key_end(d, i0 + m)
    cdef Py_ssize_t Lk = d.Lk, ldq = d.ldq, ldk = d.ldk, ldv = d.ldv, ldo = d.ldo
    cdef Py_ssize_t r, j, jend, i
    cdef floating *s
    cdef floating *row
    cdef floating *pd
    cdef const uint8_t *mrow
    cdef floating mx, total, e, inv
    # scores go straight into the kept probabilities when there are some
    s = p + (bh * d.Lq + i0) * Lk if p != NULL else scratch
    pd = scratch + d.nb * Lk
    gemm(False, True, m, kend, d.dk, <floating>d.scale, q + (b * d.Lq + i0) * ldq + h * d.dk, ldq,
         k + b * Lk * ldk + h * d.dk, ldk, <floating>0, s, Lk)
    for r in range(m):
        i = i0 + r
        row = s + r * Lk
        jend = min(kend, i + 1) if d.causal else kend
        if mask != NULL:
            mrow = mask + (((b if d.Bm > 1 else 0) * d.Hm + (h if d.Hm > 1 else 0)) * d.Lq + i) * Lk
            for j in range(jend):
                row[j] = row[j] if mrow[j] else -INFINITY
        if floating is float:
            if not fn_softmax_rowf(row, jend):  # every key masked: probabilities 0
                memset(row, 0, Lk * sizeof(floating))
                continue
        else:
            mx = _row_max(row, jend)
            if mx == -INFINITY:  # every key masked: probabilities 0
                memset(row, 0, Lk * sizeof(floating))
                continue
            for j in range(jend):
                row[j] = _exp(row[j] - mx)
            total = _row_sum(row, jend)
            inv = 1 / total
            for j in range(jend):
                row[j] = row[j] * inv
        if jend < Lk:
            memset(row + jend, 0, (Lk - jend) * sizeof(floating))
    if d.rate > 0:
        _dropout_rows(d, s, pd, bh, i0, m, kend)
        s = pd
    cdef float *vp
    if floating is float and PACKED:  # V packed once for the block's product (see below)
        vp = <float *>(scratch + 2 * d.nb * Lk)
        fn_pack_b(v + b * Lk * ldv + h * d.dv, ldv, Lk, d.dv, 0, vp)
        _panel_gemm(m, d.dv, kend, s, Lk, vp, Lk, o + (b * d.Lq + i0) * ldo + h * d.dv, ldo)
    else:
        gemm(False, False, m, d.dv, kend, <floating>1, s, Lk, v + b * Lk * ldv + h * d.dv, ldv,
             <floating>0, o + (b * d.Lq + i0) * ldo + h * d.dv, ldo)


cdef const floating *_block_ds(const Dims *d, const floating *o, const floating *prow,
                               const floating *dob, const floating *g, floating *ds, floating *pd,
                               floating *dsum, Py_ssize_t bh, Py_ssize_t b, Py_ssize_t h, Py_ssize_t i0,
                               Py_ssize_t m, Py_ssize_t kend, floating scale) noexcept nogil:
    """A block's elementwise backward, once ds holds dPd = dO V^T for its m queries:
    D_i = sum_c dO_ic O_ic (plus sum_j g_ij P_ij with a gradient g on the probabilities),
    dropout's mask on dPd (and Pd = P with it, in pd), then ds = scale * P (dP [+ g] - D).
    Returns the probabilities dV multiplies: Pd with dropout, else P (prow)."""
    cdef Py_ssize_t Lk = d.Lk, ldo = d.ldo, r, j, col, base
    cdef const floating *grow
    cdef floating acc, s = <floating>(1.0 / (1.0 - d.rate)) if d.rate > 0 else 1
    cdef uint32_t thr = d.threshold, k1 = d.k1, k2 = d.k2
    for r in range(m):
        acc = 0
        for col in range(d.dv):
            acc = acc + dob[r * ldo + col] * o[(b * d.Lq + i0 + r) * ldo + h * d.dv + col]
        if g != NULL:  # a gradient on the probabilities themselves joins dP
            grow = g + (bh * d.Lq + i0 + r) * Lk
            for j in range(kend):
                acc = acc + grow[j] * prow[r * Lk + j]
        dsum[r] = acc
    if d.rate > 0:
        for r in range(m):
            base = (bh * d.Lq + i0 + r) * Lk
            for j in range(kend):
                if _draw(base + j, k1, k2) >= thr:
                    pd[r * Lk + j] = prow[r * Lk + j] * s
                    ds[r * Lk + j] = ds[r * Lk + j] * s
                else:
                    pd[r * Lk + j] = 0
                    ds[r * Lk + j] = 0
    for r in range(m):
        if g != NULL:
            grow = g + (bh * d.Lq + i0 + r) * Lk
            for j in range(kend):
                ds[r * Lk + j] = prow[r * Lk + j] * (ds[r * Lk + j] + grow[j] - dsum[r]) * scale
        else:
            for j in range(kend):
                ds[r * Lk + j] = prow[r * Lk + j] * (ds[r * Lk + j] - dsum[r]) * scale
    return pd if d.rate > 0 else prow


cdef void _grad_rows(const Dims *d, floating *dkey, floating *dval, floating *part, Py_ssize_t task,
                     Py_ssize_t n_chunks, Py_ssize_t b, Py_ssize_t h, floating **dka, floating **dva,
                     Py_ssize_t *ldka, Py_ssize_t *ldva) noexcept nogil:
    """Where a backward task sums its dK and dV: the head's rows of dkey and dval when it
    owns the (batch, head), else its private partial sums in part."""
    if n_chunks == 1:
        dka[0] = dkey + b * d.Lk * d.ldk + h * d.dk
        dva[0] = dval + b * d.Lk * d.ldv + h * d.dv
        ldka[0] = d.ldk
        ldva[0] = d.ldv
    else:
        dka[0] = part + task * d.Lk * (d.dk + d.dv)
        dva[0] = dka[0] + d.Lk * d.dk
        ldka[0] = d.dk
        ldva[0] = d.dv


cdef void _backward_task(const Dims *d, const floating *q, const floating *k, const floating *v,
                         const floating *o, const floating *p, const floating *do_,
                         const floating *g, floating *dq, floating *dkey, floating *dval, floating *part,
                         Py_ssize_t n_chunks, floating *scratch, Py_ssize_t task) noexcept nogil:
    cdef Py_ssize_t c = task % n_chunks
    cdef Py_ssize_t bh = task // n_chunks
    cdef Py_ssize_t b = bh // d.H, h = bh % d.H
    cdef Py_ssize_t Lk = d.Lk, ldq = d.ldq, ldk = d.ldk, ldv = d.ldv, ldo = d.ldo
    cdef Py_ssize_t per = (d.n_blocks + n_chunks - 1) // n_chunks
    cdef Py_ssize_t blk, i0, m, kend, r
    cdef Py_ssize_t ldka, ldva
    cdef floating *dka
    cdef floating *dva
    cdef floating *ds = scratch
    cdef floating *pd = scratch + d.nb * Lk
    cdef floating *dsum = scratch + 2 * d.nb * Lk
    cdef const floating *pv
    cdef const floating *dob
    _grad_rows(d, dkey, dval, part, task, n_chunks, b, h, &dka, &dva, &ldka, &ldva)
    for r in range(Lk):
        memset(dka + r * ldka, 0, d.dk * sizeof(floating))
        memset(dva + r * ldva, 0, d.dv * sizeof(floating))
    for blk in range(c * per, min(d.n_blocks, (c + 1) * per)):
        i0 = blk * d.nb
        m = min(d.nb, d.Lq - i0)
        kend = _key_end(d, i0 + m)
        dob = do_ + (b * d.Lq + i0) * ldo + h * d.dv
        # dPd = dO V^T for the block
        gemm(False, True, m, kend, d.dv, <floating>1, dob, ldo, v + b * Lk * ldv + h * d.dv, ldv,
             <floating>0, ds, Lk)
        pv = _block_ds(d, o, p + (bh * d.Lq + i0) * Lk, dob, g, ds, pd, dsum, bh, b, h, i0, m, kend, 1)
        gemm(False, False, m, d.dk, kend, <floating>d.scale, ds, Lk, k + b * Lk * ldk + h * d.dk, ldk,
             <floating>0, dq + (b * d.Lq + i0) * ldq + h * d.dk, ldq)
        gemm(True, False, kend, d.dk, m, <floating>d.scale, ds, Lk, q + (b * d.Lq + i0) * ldq + h * d.dk, ldq,
             <floating>1, dka, ldka)
        gemm(True, False, kend, d.dv, m, <floating>1, pv, Lk, dob, ldo, <floating>1, dva, ldva)


# ----------------------------------------------------------------------------- float32, packed
# The backward tasks with the packed GEMM of _packed_gemm.h. A task owns one (batch, head)
# (or a run of its query blocks) and packs the operands every block shares once: V^T for
# dP = dO V^T and K for dQ = dS K; dK and dV multiply packed copies of the block's dS^T and
# P^T. BLAS would pack V and K again at every call, and at these sizes (depth 32-64, a few
# hundred keys) its packing and setup cost about as much as the arithmetic. In the forward
# pass only P V takes the packed GEMM (P read in place, V packed): for scale Q K^T, a
# product over the depth alone, BLAS's micro-kernel measured 15-20% faster.

cdef inline Py_ssize_t _panels(Py_ssize_t n) noexcept nogil:
    return (n + 15) // 16


cdef void _pack_at(const float *a, Py_ssize_t lda, Py_ssize_t K, Py_ssize_t M, float *ap) noexcept nogil:
    """a^T (M x K; a is K x M with row stride lda) packed in the micro-kernel's row tiles
    for fn_gemm_packed_pp: ap[i0*K + k*mr + r] = a[k, i0 + r]."""
    cdef Py_ssize_t i0 = 0, mr, k, r
    cdef float *dst
    cdef const float *src
    while i0 < M:
        mr = fn_tile_rows(M, i0)
        dst = ap + i0 * K
        src = a + i0
        if mr == 8:
            for k in range(K):
                memcpy(dst + k * 8, src + k * lda, 8 * sizeof(float))
        elif mr == 6:
            for k in range(K):
                memcpy(dst + k * 6, src + k * lda, 6 * sizeof(float))
        else:
            for k in range(K):
                for r in range(mr):
                    dst[k * mr + r] = src[k * lda + r]
        i0 += mr


cdef void _panel_gemm(Py_ssize_t m, Py_ssize_t n, Py_ssize_t kdim, const float *a, Py_ssize_t lda,
                      const float *bp, Py_ssize_t ktot, float *c, Py_ssize_t ldc) noexcept nogil:
    """c (m x n) = a (m x kdim) times the first kdim rows of a matrix packed with ktot rows
    (fn_pack_b): one call per 16-column panel, so kdim may be less than ktot (causal blocks)."""
    cdef Py_ssize_t pp
    for pp in range(_panels(n)):
        fn_gemm_packed(m, min(<Py_ssize_t>16, n - pp * 16), kdim, a, lda, bp + pp * ktot * 16,
                       c + pp * 16, ldc, 0, NULL)


cdef inline Py_ssize_t _bwd_scratch_f32(const Dims *d) noexcept nogil:
    cdef Py_ssize_t w = max(_panels(d.dk), _panels(d.dv)) * 16
    return (_panels(d.Lk) * 16 * d.dv + d.Lk * _panels(d.dk) * 16 + 2 * d.nb * d.Lk + d.nb
            + d.Lk * d.nb + d.nb * w)


cdef void _backward_task_f32(const Dims *d, const float *q, const float *k, const float *v,
                             const float *o, const float *p, const float *do_, const float *g,
                             float *dq, float *dkey, float *dval, float *part, Py_ssize_t n_chunks,
                             float *scratch, Py_ssize_t task) noexcept nogil:
    cdef Py_ssize_t c = task % n_chunks
    cdef Py_ssize_t bh = task // n_chunks
    cdef Py_ssize_t b = bh // d.H, h = bh % d.H
    cdef Py_ssize_t Lk = d.Lk, ldq = d.ldq, ldk = d.ldk, ldv = d.ldv, ldo = d.ldo
    cdef Py_ssize_t per = (d.n_blocks + n_chunks - 1) // n_chunks
    cdef Py_ssize_t blk, i0, m, kend, r, col
    cdef Py_ssize_t ldka, ldva
    cdef float *dka
    cdef float *dva
    cdef float *vt = scratch
    cdef float *kp = vt + _panels(Lk) * 16 * d.dv
    cdef float *ds = kp + Lk * _panels(d.dk) * 16
    cdef float *pd = ds + d.nb * Lk
    cdef float *dsum = pd + d.nb * Lk
    cdef float *at = dsum + d.nb
    cdef float *bp = at + Lk * d.nb
    cdef const float *pv
    cdef const float *qb
    cdef const float *dob
    cdef Py_ssize_t first = c * per, last = min(d.n_blocks, (c + 1) * per)
    _grad_rows(d, dkey, dval, part, task, n_chunks, b, h, &dka, &dva, &ldka, &ldva)
    # The first block stores its dK, dV rows (no zeroing pass first); rows of keys that
    # no block of this task reads (causal attention, or an empty chunk) are zeroed.
    cdef Py_ssize_t z0 = _key_end(d, min(d.Lq, first * d.nb + d.nb)) if first < last else 0
    for r in range(z0, Lk):
        for col in range(d.dk):
            dka[r * ldka + col] = 0
        for col in range(d.dv):
            dva[r * ldva + col] = 0
    fn_pack_b(v + b * Lk * ldv + h * d.dv, ldv, d.dv, Lk, 1, vt)
    fn_pack_b(k + b * Lk * ldk + h * d.dk, ldk, Lk, d.dk, 0, kp)
    for blk in range(first, last):
        i0 = blk * d.nb
        m = min(d.nb, d.Lq - i0)
        kend = _key_end(d, i0 + m)
        qb = q + (b * d.Lq + i0) * ldq + h * d.dk
        dob = do_ + (b * d.Lq + i0) * ldo + h * d.dv
        # dPd = dO V^T for the block; then dS, times the scale (both dQ and dK carry it)
        fn_gemm_packed(m, kend, d.dv, dob, ldo, vt, ds, Lk, 0, NULL)
        pv = _block_ds(d, o, p + (bh * d.Lq + i0) * Lk, dob, g, ds, pd, dsum, bh, b, h, i0, m, kend,
                       <float>d.scale)
        _panel_gemm(m, d.dk, kend, ds, Lk, kp, Lk, dq + (b * d.Lq + i0) * ldq + h * d.dk, ldq)
        # dK += dS^T Q and dV += Pd^T dO over the block's queries
        fn_pack_b_rows(qb, ldq, 0, m, m, d.dk, bp)
        _pack_at(ds, Lk, m, kend, at)
        fn_gemm_packed_pp(kend, d.dk, m, at, bp, dka, ldka, blk > first)
        fn_pack_b_rows(dob, ldo, 0, m, m, d.dv, bp)
        _pack_at(pv, Lk, m, kend, at)
        fn_gemm_packed_pp(kend, d.dv, m, at, bp, dva, ldva, blk > first)


cdef int _forward(Dims *d, const floating *q, const floating *k, const floating *v, floating *o,
                  floating *p, const uint8_t *mask, int n_threads) except -1 nogil:
    cdef Py_ssize_t n_tasks = d.B * d.H * d.n_blocks, t
    cdef int nt = <int>min(<Py_ssize_t>n_threads, n_tasks) if n_threads > 1 else 1
    cdef Py_ssize_t per_thread = 2 * d.nb * d.Lk + d.Lk * ((d.dv + 15) // 16) * 16
    # one scratch area per thread, indexed by the thread number
    cdef floating *scratch = <floating *>malloc(nt * per_thread * sizeof(floating))
    if scratch == NULL:
        with gil:
            raise MemoryError()
    if nt <= 1:
        for t in range(n_tasks):
            _forward_task(d, q, k, v, o, p, mask, scratch, t)
    else:
        for t in prange(n_tasks, num_threads=nt, schedule="dynamic"):
            _forward_task(d, q, k, v, o, p, mask, scratch + omp_get_thread_num() * per_thread, t)
    free(scratch)
    return 0


cdef int _backward(Dims *d, const floating *q, const floating *k, const floating *v, const floating *o,
                   const floating *p, const floating *do_, const floating *g, floating *dq, floating *dkey,
                   floating *dval, int n_threads) except -1 nogil:
    cdef Py_ssize_t n_bh = d.B * d.H, t, n_chunks = 1, n_tasks, i, r, col, cc
    cdef int nt
    cdef floating *scratch
    cdef floating *part = NULL
    cdef floating *src
    cdef floating acc
    cdef Py_ssize_t per_thread = 2 * d.nb * d.Lk + d.nb
    cdef bint packed = PACKED and floating is float
    if packed:
        per_thread = _bwd_scratch_f32(d)
    cdef Py_ssize_t ldk = d.ldk, ldv = d.ldv, width = d.dk + d.dv
    if n_threads > 1 and n_bh < n_threads:
        n_chunks = min((n_threads + n_bh - 1) // n_bh, d.n_blocks)
    n_tasks = n_bh * n_chunks
    nt = <int>min(<Py_ssize_t>n_threads, n_tasks) if n_threads > 1 else 1
    if n_chunks > 1:
        part = <floating *>malloc(n_tasks * d.Lk * width * sizeof(floating))
        if part == NULL:
            with gil:
                raise MemoryError()
    scratch = <floating *>malloc(nt * per_thread * sizeof(floating))
    if scratch == NULL:
        free(part)
        with gil:
            raise MemoryError()
    if floating is float:
        if packed:
            if nt <= 1:
                for t in range(n_tasks):
                    _backward_task_f32(d, q, k, v, o, p, do_, g, dq, dkey, dval, part, n_chunks, scratch, t)
            else:
                for t in prange(n_tasks, num_threads=nt, schedule="dynamic"):
                    _backward_task_f32(d, q, k, v, o, p, do_, g, dq, dkey, dval, part, n_chunks,
                                       scratch + omp_get_thread_num() * per_thread, t)
    if not packed:
        if nt <= 1:
            for t in range(n_tasks):
                _backward_task(d, q, k, v, o, p, do_, g, dq, dkey, dval, part, n_chunks, scratch, t)
        else:
            for t in prange(n_tasks, num_threads=nt, schedule="dynamic"):
                _backward_task(d, q, k, v, o, p, do_, g, dq, dkey, dval, part, n_chunks,
                               scratch + omp_get_thread_num() * per_thread, t)
    free(scratch)
    if n_chunks > 1:
        # add the chunks' partial dK, dV in chunk order, one key row per iteration
        for i in prange(n_bh * d.Lk, num_threads=nt, schedule="static"):
            t = i // d.Lk
            r = i % d.Lk
            for col in range(width):
                acc = 0
                for cc in range(n_chunks):
                    src = part + (t * n_chunks + cc) * d.Lk * width
                    if col < d.dk:
                        acc = acc + src[r * d.dk + col]
                    else:
                        acc = acc + src[d.Lk * d.dk + r * d.dv + col - d.dk]
                if col < d.dk:
                    dkey[((t // d.H) * d.Lk + r) * ldk + (t % d.H) * d.dk + col] = acc
                else:
                    dval[((t // d.H) * d.Lk + r) * ldv + (t % d.H) * d.dv + col - d.dk] = acc
        free(part)
    return 0


cdef int _dims(Dims *d, q, k, v, mask, bint causal, double scale, double rate, uint64_t seed) except -1:
    if cnp.PyArray_NDIM(<cnp.ndarray>q) != 4 or cnp.PyArray_NDIM(<cnp.ndarray>k) != 4 \
            or cnp.PyArray_NDIM(<cnp.ndarray>v) != 4:
        raise ValueError(f"attention: q, k, v must be 4-D (batch, length, heads, depth), received "
                         f"{q.shape}, {k.shape}, {v.shape}")
    d.B = A.dim(q, 0)
    d.Lq = A.dim(q, 1)
    d.H = A.dim(q, 2)
    d.dk = A.dim(q, 3)
    d.Lk = A.dim(k, 1)
    d.dv = A.dim(v, 3)
    if A.dim(k, 0) != d.B or A.dim(k, 2) != d.H or A.dim(k, 3) != d.dk:
        raise ValueError(f"attention: k has shape {k.shape}, expected ({d.B}, Lk, {d.H}, {d.dk})")
    if A.dim(v, 0) != d.B or A.dim(v, 1) != d.Lk or A.dim(v, 2) != d.H:
        raise ValueError(f"attention: v has shape {v.shape}, expected ({d.B}, {d.Lk}, {d.H}, dv)")
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"attention dropout rate must be in [0, 1), received {rate}")
    d.causal = causal
    d.scale = scale
    d.rate = rate
    d.threshold = <uint32_t>ceil(rate * 16777216.0)
    _keys(seed, &d.k1, &d.k2)
    d.Bm = d.Hm = 0
    if mask is not None:
        A.data(mask, cnp.NPY_UINT8, 4, False, b"mask")
        d.Bm = A.dim(mask, 0)
        d.Hm = A.dim(mask, 1)
        if (d.Bm != 1 and d.Bm != d.B) or (d.Hm != 1 and d.Hm != d.H) or A.dim(mask, 2) != d.Lq \
                or A.dim(mask, 3) != d.Lk:
            raise ValueError(f"attention: mask has shape {mask.shape}, expected (1 or {d.B}, 1 or {d.H}, "
                             f"{d.Lq}, {d.Lk})")
    d.nb = block_rows(d.Lq, d.Lk, cnp.PyArray_ITEMSIZE(<cnp.ndarray>q))
    d.n_blocks = (d.Lq + d.nb - 1) // d.nb if d.Lq else 0
    return 0


def set_block_bytes(Py_ssize_t n):
    """Tuning knob: bytes of one block of scores (BLOCK_BYTES). Returns the previous value."""
    global BLOCK_BYTES
    cdef Py_ssize_t old = BLOCK_BYTES
    BLOCK_BYTES = n
    return old


def block_rows(Py_ssize_t n_queries, Py_ssize_t n_keys, Py_ssize_t itemsize):
    """Query rows per task: a block of scores of about BLOCK_BYTES, a multiple of 8 rows."""
    cdef Py_ssize_t nb = BLOCK_BYTES // max(1, n_keys * itemsize) // 8 * 8
    return max(1, min(n_queries, max(8, nb)))


cdef char *_rows(object a, int typenum, bint writable, const char *what, Py_ssize_t *ld) except NULL:
    """Data pointer and row stride (in elements) of a 4-D (batch, length, heads, depth) array
    whose (heads, depth) part is contiguous and whose batch stride is length rows: a C-contiguous
    array, or a slice of the last axis of a wider contiguous buffer (the packed projections)."""
    if not cnp.PyArray_Check(a):
        raise TypeError(f"{what.decode()} must be a numpy array, received {type(a).__name__}")
    cdef cnp.ndarray arr = <cnp.ndarray>a
    if cnp.PyArray_TYPE(arr) != typenum:
        raise TypeError(f"{what.decode()} has dtype {(<object>arr).dtype}; all arrays of a call must share one float dtype")
    if cnp.PyArray_NDIM(arr) != 4:
        raise ValueError(f"{what.decode()} must have 4 dimensions, received shape {(<object>arr).shape}")
    if writable and not cnp.PyArray_ISWRITEABLE(arr):
        raise ValueError(f"{what.decode()} must be writable")
    cdef Py_ssize_t item = cnp.PyArray_ITEMSIZE(arr)
    cdef Py_ssize_t n0 = cnp.PyArray_DIM(arr, 0), n1 = cnp.PyArray_DIM(arr, 1)
    cdef Py_ssize_t n2 = cnp.PyArray_DIM(arr, 2), n3 = cnp.PyArray_DIM(arr, 3)
    cdef Py_ssize_t s0 = cnp.PyArray_STRIDE(arr, 0), s1 = cnp.PyArray_STRIDE(arr, 1)
    cdef Py_ssize_t s2 = cnp.PyArray_STRIDE(arr, 2), s3 = cnp.PyArray_STRIDE(arr, 3)
    if cnp.PyArray_IS_C_CONTIGUOUS(arr):
        ld[0] = n2 * n3
    elif ((n3 <= 1 or s3 == item) and (n2 <= 1 or s2 == n3 * item) and s1 % item == 0
          and s1 >= n2 * n3 * item and (n0 <= 1 or s0 == n1 * s1)):
        ld[0] = s1 // item
    else:
        raise ValueError(f"{what.decode()} must be C-contiguous, or a slice of the last axis of a contiguous "
                         f"(batch, length, width) buffer; received strides {(<object>arr).strides}")
    return <char *>cnp.PyArray_DATA(arr)


def forward(q, k, v, o, p, mask, bint causal, double scale, double rate=0.0, uint64_t seed=0,
            int n_threads=1):
    """o = dropout(softmax(scale * q k^T, masked)) v per (batch, head); p (or None) receives the
    probabilities before dropout. Shapes in the module docstring. q, k, v and o may be views of
    a slice of the last axis of a wider buffer (the packed query/key/value projections)."""
    cdef Dims d
    cdef int t = A.float_type(q, b"q")
    cdef char *pq = _rows(q, t, False, b"q", &d.ldq)
    cdef char *pk = _rows(k, t, False, b"k", &d.ldk)
    cdef char *pv = _rows(v, t, False, b"v", &d.ldv)
    cdef char *po = _rows(o, t, True, b"o", &d.ldo)
    cdef char *pp = NULL
    cdef const uint8_t *pm = NULL
    _dims(&d, q, k, v, mask, causal, scale, rate, seed)
    if A.dim(o, 0) != d.B or A.dim(o, 1) != d.Lq or A.dim(o, 2) != d.H or A.dim(o, 3) != d.dv:
        raise ValueError(f"attention: o has shape {o.shape}, expected ({d.B}, {d.Lq}, {d.H}, {d.dv})")
    if p is not None:
        pp = A.data(p, t, 4, True, b"p")
        if A.dim(p, 0) != d.B or A.dim(p, 1) != d.H or A.dim(p, 2) != d.Lq or A.dim(p, 3) != d.Lk:
            raise ValueError(f"attention: p has shape {p.shape}, expected ({d.B}, {d.H}, {d.Lq}, {d.Lk})")
    if mask is not None:
        pm = <const uint8_t *>A.data(mask, cnp.NPY_UINT8, 4, False, b"mask")
    if d.Lk == 0:
        o[...] = 0
        return
    with nogil:
        if t == cnp.NPY_FLOAT32:
            _forward(&d, <float *>pq, <float *>pk, <float *>pv, <float *>po, <float *>pp, pm, n_threads)
        else:
            _forward(&d, <double *>pq, <double *>pk, <double *>pv, <double *>po, <double *>pp, pm, n_threads)


def backward(q, k, v, o, p, do, dq, dk, dv, bint causal, double scale, double rate=0.0,
             uint64_t seed=0, int n_threads=1, dp=None):
    """Gradients of the forward pass for upstream do: dq, dk, dv (same layouts as q, k, v:
    each gradient has the row stride of its input, so a packed buffer's gradient is packed too).
    p and o are the forward's probabilities and output; rate and seed must be the forward's.
    dp (or None): an upstream gradient on the probabilities p, shaped like p."""
    cdef Dims d
    cdef Py_ssize_t ld_do, ld_dq, ld_dk, ld_dv
    cdef int t = A.float_type(q, b"q")
    cdef char *pq = _rows(q, t, False, b"q", &d.ldq)
    cdef char *pk = _rows(k, t, False, b"k", &d.ldk)
    cdef char *pv = _rows(v, t, False, b"v", &d.ldv)
    cdef char *po = _rows(o, t, False, b"o", &d.ldo)
    cdef char *pp = A.data(p, t, 4, False, b"p")
    cdef char *pdo = _rows(do, t, False, b"do", &ld_do)
    cdef char *pdq = _rows(dq, t, True, b"dq", &ld_dq)
    cdef char *pdk = _rows(dk, t, True, b"dk", &ld_dk)
    cdef char *pdv = _rows(dv, t, True, b"dv", &ld_dv)
    cdef char *pg = NULL
    if ld_do != d.ldo or ld_dq != d.ldq or ld_dk != d.ldk or ld_dv != d.ldv:
        raise ValueError("attention backward: do, dq, dk, dv must have the row strides of o, q, k, v")
    _dims(&d, q, k, v, None, causal, scale, rate, seed)
    if o.shape != do.shape or o.shape != (d.B, d.Lq, d.H, d.dv):
        raise ValueError(f"attention backward: o {o.shape} and do {do.shape} must be ({d.B}, {d.Lq}, {d.H}, {d.dv})")
    if p.shape != (d.B, d.H, d.Lq, d.Lk):
        raise ValueError(f"attention backward: p has shape {p.shape}, expected ({d.B}, {d.H}, {d.Lq}, {d.Lk})")
    if dq.shape != q.shape or dk.shape != k.shape or dv.shape != v.shape:
        raise ValueError("attention backward: dq, dk, dv must have the shapes of q, k, v")
    if dp is not None:
        pg = A.data(dp, t, 4, False, b"dp")
        if dp.shape != p.shape:
            raise ValueError(f"attention backward: dp has shape {dp.shape}, expected {p.shape}")
    if d.Lk == 0 or d.Lq == 0:
        dq[...] = 0
        dk[...] = 0
        dv[...] = 0
        return
    with nogil:
        if t == cnp.NPY_FLOAT32:
            _backward(&d, <float *>pq, <float *>pk, <float *>pv, <float *>po, <float *>pp, <float *>pdo,
                      <float *>pg, <float *>pdq, <float *>pdk, <float *>pdv, n_threads)
        else:
            _backward(&d, <double *>pq, <double *>pk, <double *>pv, <double *>po, <double *>pp,
                      <double *>pdo, <double *>pg, <double *>pdq, <double *>pdk, <double *>pdv, n_threads)


# ----------------------------------------------------------------------------- additive scores
# scores[b, i, j] = sum_d w[d] * tanh(a * (q[b, i, d] + k[b, j, d])): AdditiveAttention
# (w = its scale vector, a = 1) and Attention(score_mode="concat") (w = the concat weight in
# every entry, a = its scale). tanh is recomputed in backward rather than stored: the
# (B, Tq, Tv, dim) array of it would be the largest thing in the step.

cdef void _additive_fwd_rows(const floating *q, const floating *k, const floating *w, floating a,
                             floating *out, Py_ssize_t b, Py_ssize_t Tq, Py_ssize_t Tv,
                             Py_ssize_t D) noexcept nogil:
    cdef Py_ssize_t i, j, d
    cdef const floating *qi
    cdef const floating *kj
    cdef floating acc
    for i in range(Tq):
        qi = q + (b * Tq + i) * D
        for j in range(Tv):
            kj = k + (b * Tv + j) * D
            acc = 0
            for d in range(D):
                acc = acc + w[d] * _tanh(a * (qi[d] + kj[d]))
            out[(b * Tq + i) * Tv + j] = acc


cdef void _additive_bwd_batch(const floating *q, const floating *k, const floating *w, floating a,
                              const floating *g, floating *dq, floating *dk, double *dw, double *da,
                              Py_ssize_t b, Py_ssize_t Tq, Py_ssize_t Tv, Py_ssize_t D) noexcept nogil:
    cdef Py_ssize_t i, j, d
    cdef const floating *qi
    cdef const floating *kj
    cdef floating *dqi
    cdef floating *dkj
    cdef floating gij, t, z, dz
    cdef double acc_a = 0
    memset(dk + b * Tv * D, 0, Tv * D * sizeof(floating))
    for i in range(Tq):
        qi = q + (b * Tq + i) * D
        dqi = dq + (b * Tq + i) * D
        memset(dqi, 0, D * sizeof(floating))
        for j in range(Tv):
            gij = g[(b * Tq + i) * Tv + j]
            if gij == 0:
                continue
            kj = k + (b * Tv + j) * D
            dkj = dk + (b * Tv + j) * D
            for d in range(D):
                z = qi[d] + kj[d]
                t = _tanh(a * z)
                dz = gij * w[d] * (1 - t * t)
                dqi[d] = dqi[d] + a * dz
                dkj[d] = dkj[d] + a * dz
                dw[d] += gij * t
                acc_a += dz * z
    da[0] += acc_a


def additive_forward(q, k, w, double a, out, int n_threads=1):
    """out[b, i, j] = sum_d w[d] tanh(a (q[b, i, d] + k[b, j, d])); q (B, Tq, D), k (B, Tv, D),
    w (D,), out (B, Tq, Tv)."""
    cdef int t = A.float_type(q, b"q")
    cdef char *pq = A.data(q, t, 3, False, b"q")
    cdef char *pk = A.data(k, t, 3, False, b"k")
    cdef char *pw = A.data(w, t, 1, False, b"w")
    cdef char *po = A.data(out, t, 3, True, b"out")
    cdef Py_ssize_t B = A.dim(q, 0), Tq = A.dim(q, 1), D = A.dim(q, 2), Tv = A.dim(k, 1), b
    cdef int nt = <int>min(<Py_ssize_t>n_threads, B) if n_threads > 1 else 1
    if A.dim(k, 0) != B or A.dim(k, 2) != D or A.dim(w, 0) != D:
        raise ValueError(f"additive attention: q {q.shape}, k {k.shape} and w {w.shape} do not agree")
    if out.shape != (B, Tq, Tv):
        raise ValueError(f"additive attention: out has shape {out.shape}, expected {(B, Tq, Tv)}")
    with nogil:
        if t == cnp.NPY_FLOAT32:
            for b in prange(B, num_threads=nt, schedule="static"):
                _additive_fwd_rows(<float *>pq, <float *>pk, <float *>pw, <float>a, <float *>po, b, Tq, Tv, D)
        else:
            for b in prange(B, num_threads=nt, schedule="static"):
                _additive_fwd_rows(<double *>pq, <double *>pk, <double *>pw, a, <double *>po, b, Tq, Tv, D)


def additive_backward(q, k, w, double a, g, dq, dk, dw, int n_threads=1):
    """Gradients of sum(g * scores): dq, dk (shaped as q, k) and dw (D,, float64) are filled;
    returns d scores / d a summed against g (a float)."""
    cdef int t = A.float_type(q, b"q")
    cdef char *pq = A.data(q, t, 3, False, b"q")
    cdef char *pk = A.data(k, t, 3, False, b"k")
    cdef char *pw = A.data(w, t, 1, False, b"w")
    cdef char *pg = A.data(g, t, 3, False, b"g")
    cdef char *pdq = A.data(dq, t, 3, True, b"dq")
    cdef char *pdk = A.data(dk, t, 3, True, b"dk")
    cdef double *pdw = <double *>A.data(dw, cnp.NPY_FLOAT64, 1, True, b"dw")
    cdef Py_ssize_t B = A.dim(q, 0), Tq = A.dim(q, 1), D = A.dim(q, 2), Tv = A.dim(k, 1), b, d, th
    cdef int nt = <int>min(<Py_ssize_t>n_threads, B) if n_threads > 1 else 1
    cdef double *part
    cdef double da = 0
    if A.dim(k, 0) != B or A.dim(k, 2) != D or A.dim(w, 0) != D or A.dim(dw, 0) != D:
        raise ValueError(f"additive attention: q {q.shape}, k {k.shape}, w {w.shape}, dw {dw.shape} do not agree")
    if g.shape != (B, Tq, Tv) or dq.shape != q.shape or dk.shape != k.shape:
        raise ValueError("additive attention backward: g must be (B, Tq, Tv) and dq, dk shaped as q, k")
    # per-batch-row partial sums of dw and da, added in order afterwards
    part = <double *>malloc(B * (D + 1) * sizeof(double))
    if part == NULL:
        raise MemoryError()
    memset(part, 0, B * (D + 1) * sizeof(double))
    with nogil:
        if t == cnp.NPY_FLOAT32:
            for b in prange(B, num_threads=nt, schedule="static"):
                _additive_bwd_batch(<float *>pq, <float *>pk, <float *>pw, <float>a, <float *>pg, <float *>pdq,
                                    <float *>pdk, part + b * (D + 1), part + b * (D + 1) + D, b, Tq, Tv, D)
        else:
            for b in prange(B, num_threads=nt, schedule="static"):
                _additive_bwd_batch(<double *>pq, <double *>pk, <double *>pw, a, <double *>pg, <double *>pdq,
                                    <double *>pdk, part + b * (D + 1), part + b * (D + 1) + D, b, Tq, Tv, D)
        for d in range(D):
            pdw[d] = 0
        for th in range(B):
            for d in range(D):
                pdw[d] += part[th * (D + 1) + d]
            da += part[th * (D + 1) + D]
    free(part)
    return da
