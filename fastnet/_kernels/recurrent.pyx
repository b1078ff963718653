"""Recurrent kernels: SimpleRNN, LSTM and GRU over a whole sequence in one call.

Layout: time-major and in processing order (a layer with ``go_backwards`` reverses
its input first). ``xt`` (T, B, D); gate buffers (T, B, G*U) with the gates in
Keras's order (LSTM i, f, c, o; GRU z, r, h); states ``hs``/``cs`` (T+1, B, U)
with slot 0 the initial state and slot s+1 the state after step s.

Forward: one GEMM projects the whole sequence (xt @ W + b) into the gate buffer;
then each thread takes a block of batch rows and runs the time loop on it alone
(rows never interact), per step one GEMM for its rows' recurrent projection and
one pass per row that applies every gate activation, updates the cell and the
hidden state and leaves in place what backpropagation needs (gate activations,
act(c), the GRU's recurrent candidate). No barrier is needed between steps.

Backward through time runs the same way per row block: per step one pass per row
computes every gate derivative (stored per step) and one GEMM gives the gradient
of the previous state. The weight gradients then come from single GEMMs over all
steps at once (xt^T dG, H^T dG, dG W^T for the input gradient), split across threads.

A step masked out (mask 0) carries the state through unchanged and gets no gradient.
Recurrent dropout multiplies the previous state by one (B, U) keep mask per gate
before that gate's recurrent product (the GRU's carry term z * h uses the undropped
state).

float32 specifics (float64, used for gradient checks, goes through BLAS and libm):
* The per-step products are too small for BLAS to amortise its packing of the
  recurrent kernel on every call, so the kernel is packed once per sequence into
  16-column panels and an FMA micro-kernel (fn_gemm_packed: 6 x 16 tiles in
  256-bit registers, 8 x 16 in 512-bit ones on AVX-512 CPUs) runs each step;
  the input projection and the [dW; dR] = [X | H]^T dG product use the same kernel
  (the latter K-blocked: each block of dG packed into panels, and of [X | H] into
  the micro-kernel's row tiles, so that both stream from cache in order).
* Sigmoid and tanh are _fastmath.h's (polynomial exp, <= 3 ulp), and the default
  activations run as one fused, vectorised pass per row (fn_lstm_fwd_rowf ...). The C
  helpers are compiled for AVX2+FMA and a baseline, chosen at load time.
* Inference (keep=False) of LSTM and SimpleRNN computes each step's gates with one
  product [x_s | h_s-1] [W; R] (K = D + U), in cache, without a gate buffer for the
  whole sequence.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.stdint cimport uint8_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

from fastnet._kernels._activations cimport (act_grad_row, act_row, needs_input, ACT_SIGMOID,
                                            ACT_TANH)
from fastnet._kernels._blas cimport gemm, gemm_parallel

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    #include <math.h>
    /* the packed GEMM; also defines restrict (MSVC) and FN_KERNEL_CLONES */
    #include "_packed_gemm.h"
    /* fn_expf, fn_sigmoidf, fn_tanhf: the vectorisable float32 functions every kernel uses */
    #include "_fastmath.h"

    FN_KERNEL_CLONES
    static void fn_rnn_sigmoid_rowf(const float *z, float *y, Py_ssize_t n) {
        Py_ssize_t i;
        for (i = 0; i < n; i++) y[i] = fn_sigmoidf(z[i]);
    }

    FN_KERNEL_CLONES
    static void fn_rnn_tanh_rowf(const float *z, float *y, Py_ssize_t n) {
        Py_ssize_t i;
        for (i = 0; i < n; i++) y[i] = fn_tanhf(z[i]);
    }

    /* Fused rows for the default activations (tanh, sigmoid) in float32: one pass
       per batch row computes every gate, the cell and the state (forward), or every
       gate derivative (backward). dys may be NULL (no upstream gradient per step). */
    FN_KERNEL_CLONES
    static void fn_lstm_fwd_rowf(float *restrict z, const float *restrict cp,
                                 float *restrict cn, float *restrict tc, float *restrict h,
                                 Py_ssize_t U) {
        Py_ssize_t j;
        for (j = 0; j < U; j++) {
            float i = fn_sigmoidf(z[j]), f = fn_sigmoidf(z[U + j]);
            float g = fn_tanhf(z[2 * U + j]), o = fn_sigmoidf(z[3 * U + j]);
            float c = f * cp[j] + i * g, t = fn_tanhf(c);
            z[j] = i; z[U + j] = f; z[2 * U + j] = g; z[3 * U + j] = o;
            cn[j] = c; tc[j] = t; h[j] = o * t;
        }
    }

    FN_KERNEL_CLONES
    static void fn_lstm_bwd_rowf(float *restrict dhc, const float *restrict dys,
                                 const float *restrict gt, const float *restrict tc,
                                 const float *restrict cp, float *restrict dcc,
                                 float *restrict gr, Py_ssize_t U) {
        Py_ssize_t j;
        /* Two copies of the loop (with and without dys) so that each vectorises
           without a select on a possibly-NULL pointer: compiled as a masked load, that
           select costs a microcode assist per vector when the pointer is NULL. */
        #define FN_LSTM_BWD_BODY(DY) { \
            float dh = dhc[j] + (DY); \
            float i = gt[j], f = gt[U + j], g = gt[2 * U + j], o = gt[3 * U + j], t = tc[j]; \
            float dct = dh * o * (1.0f - t * t) + dcc[j]; \
            gr[j] = dct * g * i * (1.0f - i); \
            gr[U + j] = dct * cp[j] * f * (1.0f - f); \
            gr[2 * U + j] = dct * i * (1.0f - g * g); \
            gr[3 * U + j] = dh * t * o * (1.0f - o); \
            dcc[j] = dct * f; \
            dhc[j] = 0.0f; }
        if (dys) {
            for (j = 0; j < U; j++) FN_LSTM_BWD_BODY(dys[j])
        } else {
            for (j = 0; j < U; j++) FN_LSTM_BWD_BODY(0.0f)
        }
        #undef FN_LSTM_BWD_BODY
    }

    FN_KERNEL_CLONES
    static void fn_gru_fwd_rowf(float *restrict z, const float *restrict rr,
                                const float *restrict rb, float *restrict ax,
                                const float *restrict hp, float *restrict hn, Py_ssize_t U) {
        Py_ssize_t j;
        /* Two copies of the loop (with and without the recurrent bias) so that each
           vectorises: a select on a possibly-NULL pointer would not. */
        #define FN_GRU_FWD_BODY(BZ, BR, BH) { \
            float zg = fn_sigmoidf(z[j] + rr[j] + (BZ)); \
            float rg = fn_sigmoidf(z[U + j] + rr[U + j] + (BR)); \
            float rh = rr[2 * U + j] + (BH); \
            float hh = fn_tanhf(z[2 * U + j] + rg * rh); \
            z[j] = zg; z[U + j] = rg; z[2 * U + j] = hh; ax[j] = rh; \
            hn[j] = zg * hp[j] + (1.0f - zg) * hh; }
        if (rb) {
            for (j = 0; j < U; j++) FN_GRU_FWD_BODY(rb[j], rb[U + j], rb[2 * U + j])
        } else {
            for (j = 0; j < U; j++) FN_GRU_FWD_BODY(0.0f, 0.0f, 0.0f)
        }
        #undef FN_GRU_FWD_BODY
    }

    FN_KERNEL_CLONES
    static void fn_gru_bwd_rowf(float *restrict dhc, const float *restrict dys,
                                const float *restrict gt, const float *restrict ax,
                                const float *restrict hp, float *restrict dgx,
                                float *restrict gr, Py_ssize_t U) {
        Py_ssize_t j;
        #define FN_GRU_BWD_BODY(DY) { \
            float dh = dhc[j] + (DY); \
            float zg = gt[j], rg = gt[U + j], hh = gt[2 * U + j]; \
            float dhh = dh * (1.0f - zg) * (1.0f - hh * hh); \
            gr[j] = dh * (hp[j] - hh) * zg * (1.0f - zg); \
            gr[U + j] = dhh * ax[j] * rg * (1.0f - rg); \
            gr[2 * U + j] = dhh * rg; \
            dgx[j] = dhh; \
            dhc[j] = dh * zg; }
        if (dys) {
            for (j = 0; j < U; j++) FN_GRU_BWD_BODY(dys[j])
        } else {
            for (j = 0; j < U; j++) FN_GRU_BWD_BODY(0.0f)
        }
        #undef FN_GRU_BWD_BODY
    }

    FN_KERNEL_CLONES
    static void fn_rnn_fwd_rowf(float *restrict z, float *restrict h, Py_ssize_t U) {
        Py_ssize_t j;
        for (j = 0; j < U; j++) { float t = fn_tanhf(z[j]); z[j] = t; h[j] = t; }
    }

    FN_KERNEL_CLONES
    static void fn_rnn_bwd_rowf(float *restrict dhc, const float *restrict dys,
                                const float *restrict y, float *restrict gr, Py_ssize_t U) {
        Py_ssize_t j;
        if (dys) {
            for (j = 0; j < U; j++) {
                float dh = dhc[j] + dys[j];
                gr[j] = dh * (1.0f - y[j] * y[j]);
                dhc[j] = 0.0f;
            }
        } else {
            for (j = 0; j < U; j++) {
                gr[j] = dhc[j] * (1.0f - y[j] * y[j]);
                dhc[j] = 0.0f;
            }
        }
    }
    """
    void fn_rnn_sigmoid_rowf(const float *z, float *y, Py_ssize_t n) noexcept nogil
    void fn_rnn_tanh_rowf(const float *z, float *y, Py_ssize_t n) noexcept nogil
    void fn_lstm_fwd_rowf(float *z, const float *cp, float *cn, float *tc, float *h,
                          Py_ssize_t U) noexcept nogil
    void fn_lstm_bwd_rowf(float *dhc, const float *dys, const float *gt, const float *tc,
                          const float *cp, float *dcc, float *gr, Py_ssize_t U) noexcept nogil
    void fn_gru_fwd_rowf(float *z, const float *rr, const float *rb, float *ax,
                         const float *hp, float *hn, Py_ssize_t U) noexcept nogil
    void fn_gru_bwd_rowf(float *dhc, const float *dys, const float *gt, const float *ax,
                         const float *hp, float *dgx, float *gr, Py_ssize_t U) noexcept nogil
    void fn_rnn_fwd_rowf(float *z, float *h, Py_ssize_t U) noexcept nogil
    void fn_pack_b(const float *B, Py_ssize_t ldb, Py_ssize_t K, Py_ssize_t N, int trans,
                   float *Bp) noexcept nogil
    void fn_pack_bt_panels(const float *B, Py_ssize_t ldb, Py_ssize_t K, Py_ssize_t N,
                           Py_ssize_t p0, Py_ssize_t p1, float *Bp) noexcept nogil
    void fn_pack_b_rows(const float *B, Py_ssize_t ldb, Py_ssize_t k0, Py_ssize_t K,
                        Py_ssize_t Ktot, Py_ssize_t N, float *Bp) noexcept nogil
    void fn_gemm_kblocked(Py_ssize_t M1, const float *A1, Py_ssize_t M2, const float *A2,
                          Py_ssize_t N, Py_ssize_t K, const float *B, Py_ssize_t ldb,
                          float *C, Py_ssize_t ldc, float *scratch, Py_ssize_t KB,
                          float *csum) noexcept nogil
    Py_ssize_t fn_kblocked_scratch(Py_ssize_t M, Py_ssize_t N, Py_ssize_t KB) noexcept nogil
    int fn_wide_tiles
    int fn_wide_tiles_init() noexcept nogil
    void fn_gemm_packed(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K, const float *A,
                        Py_ssize_t lda, const float *Bp, float *C, Py_ssize_t ldc,
                        int accumulate, const float *bias) noexcept nogil
    void fn_rnn_bwd_rowf(float *dhc, const float *dys, const float *y, float *gr,
                         Py_ssize_t U) noexcept nogil

cdef enum:
    SIMPLE_RNN = 0
    LSTM = 1
    GRU = 2

# Below this much recurrent work (multiply-adds over the sequence) or with fewer than
# MIN_ROWS batch rows per thread, the time loop runs on one thread.
cdef Py_ssize_t PARALLEL_MIN_WORK = 1 << 18
cdef Py_ssize_t MIN_ROWS = 4


cdef inline void _act(int code, floating *z, floating *y, Py_ssize_t n,
                      double alpha) noexcept nogil:
    if floating is float:
        if code == ACT_SIGMOID:
            fn_rnn_sigmoid_rowf(z, y, n)
            return
        if code == ACT_TANH:
            fn_rnn_tanh_rowf(z, y, n)
            return
    act_row(code, z, y, n, alpha)


cdef inline void _act_grad(int code, floating *g, const floating *y, const floating *z,
                           Py_ssize_t n, double alpha) noexcept nogil:
    """g *= act'(.) in place, from the output y (and the input z where needed)."""
    cdef Py_ssize_t j
    if code == ACT_SIGMOID:
        for j in range(n):
            g[j] = g[j] * y[j] * (1 - y[j])
    elif code == ACT_TANH:
        for j in range(n):
            g[j] = g[j] * (1 - y[j] * y[j])
    else:
        act_grad_row(code, g, y, z, g, n, alpha)


cdef inline void _rgemm(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const floating *a,
                        Py_ssize_t lda, const float *packed, const floating *b, Py_ssize_t ldb,
                        bint trans_b, floating beta, floating *c, Py_ssize_t ldc) noexcept nogil:
    """c = a op(b) + beta c; through the packed copy of op(b) when there is one (float32)."""
    if floating is float:
        if packed != NULL:
            fn_gemm_packed(m, n, k, a, lda, packed, c, ldc, beta != 0, NULL)
            return
    gemm(False, trans_b, m, n, k, <floating>1, a, lda, b, ldb, beta, c, ldc)


cdef int _threads(Py_ssize_t n, Py_ssize_t work, int n_threads) noexcept nogil:
    if n_threads <= 1 or work < PARALLEL_MIN_WORK or n < 2 * MIN_ROWS:
        return 1
    return <int>min(<Py_ssize_t>n_threads, n // MIN_ROWS)


cdef bint _USE_PACKED = True


def use_packed_gemm(bint flag):
    """Whether float32 time loops use the packed small GEMM (True) or BLAS (for
    benchmarks and tests). Returns the previous setting."""
    global _USE_PACKED
    cdef bint old = _USE_PACKED
    _USE_PACKED = flag
    return old


# Whether this CPU runs the packed GEMM's 512-bit micro-kernel (AVX-512); on by default
# where it does.
cdef bint _WIDE_OK = fn_wide_tiles_init() != 0


def use_wide_tiles(bint flag):
    """Whether the packed GEMM uses its 512-bit micro-kernel (8-row tiles) where the CPU
    has AVX-512 (True, the default) or the 256-bit one (6-row tiles) everywhere (for
    tests and timing). Returns the previous setting; stays False on CPUs without it."""
    global fn_wide_tiles
    cdef bint old = fn_wide_tiles != 0
    fn_wide_tiles = 1 if (flag and _WIDE_OK) else 0
    return old


def wide_tiles_available():
    """True when this CPU and build can run the 512-bit micro-kernel."""
    return _WIDE_OK


cdef enum:
    MAX_TASKS = 256


cdef inline bint _whole_tiles(Py_ssize_t m) noexcept nogil:
    """Row counts the packed GEMM covers with full-speed tiles only: 8k, 8k + 4 or
    8k + 6 with the 512-bit micro-kernel; 6k or 6k + 4 with the 256-bit one. A 1- or
    2-row tail tile has too few independent accumulators to keep the FMA pipes busy."""
    if fn_wide_tiles:
        return m % 8 == 0 or m % 8 == 4 or m % 8 == 6
    return m % 6 == 0 or m % 6 == 4


cdef Py_ssize_t _row_split(Py_ssize_t B, int nt, Py_ssize_t *bounds) noexcept nogil:
    """Splits the batch rows into time-loop tasks: task k takes rows bounds[k] to
    bounds[k + 1]; returns the number of tasks.

    With several threads: one task per thread when an even share is a size the
    packed GEMM tiles without a narrow tail (6k or 6k + 4 rows: B = 32 on two
    threads gives 16 + 16); otherwise two tasks per thread, taken dynamically (B = 64
    on two threads: four of 16, not 30 + 34). Each task's size is the one nearest an
    even share that tiles without a narrow tail (B = 40 on two threads: 10, 10, 10,
    10). One task per thread streams the packed kernel through each core once per
    step instead of twice: LSTM inference on batches of 32 took 9% less time (pairs
    of alternating predict calls, 2 threads) and training 1% less; with two tasks
    per thread a thread slowed down by other work takes fewer."""
    cdef Py_ssize_t n, k, lo = 0, rem, left, target, m, d, cand
    if nt <= 1:
        n = 1
    elif B % nt == 0 and _whole_tiles(B // nt) and B // nt >= MIN_ROWS:
        n = nt
    else:
        n = min(2 * <Py_ssize_t>nt, max(B // MIN_ROWS, 1), <Py_ssize_t>MAX_TASKS)
    bounds[0] = 0
    for k in range(n):
        rem = B - lo
        left = n - k
        m = rem
        if left > 1:
            target = (rem + left - 1) // left
            m = target
            for d in range(3):
                cand = target + d
                if (_whole_tiles(cand) and cand >= MIN_ROWS
                        and rem - cand >= (left - 1) * MIN_ROWS):
                    m = cand
                    break
                cand = target - d - 1
                if (_whole_tiles(cand) and cand >= MIN_ROWS
                        and rem - cand >= (left - 1) * MIN_ROWS):
                    m = cand
                    break
        lo = lo + m
        bounds[k + 1] = m
    # Larger tasks first: taken dynamically, the small ones then fill the gaps.
    for k in range(2, n + 1):
        m = bounds[k]
        d = k - 1
        while d >= 1 and bounds[d] < m:
            bounds[d + 1] = bounds[d]
            d = d - 1
        bounds[d + 1] = m
    for k in range(1, n + 1):
        bounds[k] = bounds[k] + bounds[k - 1]
    return n


def row_split(Py_ssize_t B, int n_threads):
    """The time loop's task boundaries for a batch of B rows (for tests)."""
    cdef Py_ssize_t bounds[MAX_TASKS + 1]
    cdef Py_ssize_t n = _row_split(B, n_threads, bounds)
    return [bounds[i] for i in range(n + 1)]


def n_gates(int cell):
    return 1 if cell == SIMPLE_RNN else (4 if cell == LSTM else 3)


def fast_activation(int code, float[::1] z, float[::1] y):
    """The float32 activation the gate loops use (sigmoid and tanh are the inline ones)."""
    if z.shape[0] != y.shape[0]:
        raise ValueError("fast_activation: z and y sizes differ")
    if z.shape[0]:
        with nogil:
            _act(code, &z[0], &y[0], z.shape[0], 0.0)


cdef void _masked_rec(Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t B, Py_ssize_t U, Py_ssize_t GU,
                      Py_ssize_t g0, Py_ssize_t g1, const floating *hp, const floating *rmask,
                      const floating *r, floating *scratch, Py_ssize_t sld, floating *c,
                      Py_ssize_t ldc, floating beta) noexcept nogil:
    """c[rows, gate g] (+)= (h * rmask[g]) @ r[:, gate g] for g in [g0, g1): recurrent
    dropout draws one mask per gate, so each gate has its own product."""
    cdef Py_ssize_t g, b, j
    cdef floating *hd
    for g in range(g0, g1):
        for b in range(lo, hi):
            hd = scratch + b * sld + GU
            for j in range(U):
                hd[j] = hp[b * U + j] * rmask[(g * B + b) * U + j]
        gemm(False, False, hi - lo, U, U, <floating>1, scratch + lo * sld + GU, sld, r + g * U,
             GU, beta, c + lo * ldc + g * U, ldc)


cdef void _masked_rec_bwd(Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t B, Py_ssize_t U,
                          Py_ssize_t GU, Py_ssize_t g0, Py_ssize_t g1, const floating *dgs,
                          const floating *rmask, const floating *r, floating *scratch,
                          Py_ssize_t sld, floating *dhc) noexcept nogil:
    """dhc[rows] += sum over g in [g0, g1) of rmask[g] * (dG[rows, gate g] @ r[:, gate g]^T)."""
    cdef Py_ssize_t g, b, j
    for g in range(g0, g1):
        gemm(False, True, hi - lo, U, U, <floating>1, dgs + lo * GU + g * U, GU, r + g * U, GU,
             <floating>0, scratch + lo * sld, sld)
        for b in range(lo, hi):
            for j in range(U):
                dhc[b * U + j] = dhc[b * U + j] + scratch[b * sld + j] * rmask[(g * B + b) * U + j]


cdef inline void _xh_product(Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t s, Py_ssize_t B,
                             Py_ssize_t U, Py_ssize_t D, Py_ssize_t GU, const float *xt,
                             const float *hp, float *xh, const float *wrpk, const float *bias,
                             float *out, Py_ssize_t ldo) noexcept nogil:
    """out[lo:hi] = [x_s | h_s-1] [W; R] + bias for rows lo:hi of step s: the rows of
    [x | h] gathered into xh (B, D + U), then one packed product with wrpk
    (_packed_stack); bias may be NULL."""
    cdef Py_ssize_t b, KD = D + U
    for b in range(lo, hi):
        memcpy(xh + b * KD, xt + (s * B + b) * D, D * sizeof(float))
        memcpy(xh + b * KD + D, hp + b * U, U * sizeof(float))
    fn_gemm_packed(hi - lo, GU, KD, xh + lo * KD, KD, wrpk, out + lo * ldo, ldo, 0, bias)


cdef void _infer_rows(int cell, Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t T, Py_ssize_t B,
                      Py_ssize_t U, Py_ssize_t D, const float *xt, const float *wrpk,
                      const float *bias, float *xh, const uint8_t *mask, float *hs,
                      float *cs, float *aux, float *scratch, Py_ssize_t sld) noexcept nogil:
    """Inference (nothing kept for backward), float32, default activations, SimpleRNN or
    LSTM: each step's gates come from one product [x_s | h_s-1] [W; R] (wrpk packed,
    rows of xh (B, D + U) gathered per step), into a per-row scratch that stays in
    cache, instead of a gate buffer for the whole sequence and a second pass over it."""
    cdef Py_ssize_t GU = (4 if cell == LSTM else 1) * U, m = hi - lo, s, b, j
    cdef float *hp
    cdef float *hn
    cdef float *zr
    if m <= 0:
        return
    for s in range(T):
        hp = hs + s * B * U
        hn = hs + (s + 1) * B * U
        _xh_product(lo, hi, s, B, U, D, GU, xt, hp, xh, wrpk, bias, scratch, sld)
        for b in range(lo, hi):
            zr = scratch + b * sld
            if cell == LSTM:
                fn_lstm_fwd_rowf(zr, cs + s * B * U + b * U, cs + (s + 1) * B * U + b * U,
                                 aux + s * B * U + b * U, hn + b * U, U)
            else:
                fn_rnn_fwd_rowf(zr, hn + b * U, U)
            if mask != NULL and not mask[b * T + s]:
                memcpy(hn + b * U, hp + b * U, U * sizeof(float))
                if cell == LSTM:
                    memcpy(cs + (s + 1) * B * U + b * U, cs + s * B * U + b * U,
                           U * sizeof(float))


cdef void _fwd_rows(int cell, Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t T, Py_ssize_t B,
                    Py_ssize_t U, const floating *r, const floating *rb, const uint8_t *mask,
                    const floating *rmask, floating *gates, floating *hs, floating *cs,
                    floating *aux, floating *zpre, floating *scratch, Py_ssize_t sld,
                    int act, int rec_act, double aa, double ra, bint reset_after,
                    const float *pk1, const float *pk2, Py_ssize_t D=0,
                    const float *xt=NULL, const float *wrpk=NULL, const float *bias=NULL,
                    float *xh=NULL) noexcept nogil:
    """The training time loop over rows lo:hi. With ``wrpk`` (float32 LSTM or SimpleRNN,
    default activations, no recurrent dropout), each step's gates come from one product
    [x_s | h_s-1] [W; R] written straight into the gate buffer (rows of xh gathered per
    step), the bias starting the product's accumulators; the input projection was not
    done beforehand."""
    cdef Py_ssize_t G = 1 if cell == SIMPLE_RNN else (4 if cell == LSTM else 3)
    cdef Py_ssize_t GU = G * U, m = hi - lo, s, b, j
    cdef floating *hp
    cdef floating *hn
    cdef floating *gz
    cdef floating *zr
    cdef floating *rr
    cdef floating *hd
    cdef floating *cp
    cdef floating *cn
    cdef floating *tc
    cdef floating *ax
    cdef const floating *A
    cdef Py_ssize_t lda
    cdef floating zz
    # float32 with the default activations: the fused C rows (vectorised, inline exp).
    cdef bint fast = (floating is float and zpre == NULL and act == ACT_TANH
                      and (cell == SIMPLE_RNN or rec_act == ACT_SIGMOID)
                      and (cell != GRU or reset_after))
    if m <= 0:
        return
    for s in range(T):
        hp = hs + s * B * U
        hn = hs + (s + 1) * B * U
        gz = gates + s * B * GU
        A = hp + lo * U
        lda = U
        if cell == SIMPLE_RNN or cell == LSTM:
            if floating is float and wrpk != NULL:
                _xh_product(lo, hi, s, B, U, D, GU, xt, hp, xh, wrpk, bias, gz, GU)
            elif rmask != NULL:
                _masked_rec(lo, hi, B, U, GU, 0, G, hp, rmask, r, scratch, sld, gz, GU,
                            <floating>1)
            else:
                _rgemm(m, GU, U, A, lda, pk1, r, GU, False, <floating>1, gz + lo * GU, GU)
            for b in range(lo, hi):
                zr = gz + b * GU
                if fast:
                    if floating is float:
                        if cell == SIMPLE_RNN:
                            fn_rnn_fwd_rowf(zr, hn + b * U, U)
                        else:
                            fn_lstm_fwd_rowf(zr, cs + s * B * U + b * U,
                                             cs + (s + 1) * B * U + b * U,
                                             aux + s * B * U + b * U, hn + b * U, U)
                    if mask != NULL and not mask[b * T + s]:
                        memcpy(hn + b * U, hp + b * U, U * sizeof(floating))
                        if cell == LSTM:
                            memcpy(cs + (s + 1) * B * U + b * U, cs + s * B * U + b * U,
                                   U * sizeof(floating))
                    continue
                if zpre != NULL:
                    memcpy(zpre + s * B * GU + b * GU, zr, GU * sizeof(floating))
                if cell == SIMPLE_RNN:
                    _act(act, zr, zr, U, aa)
                    memcpy(hn + b * U, zr, U * sizeof(floating))
                else:
                    _act(rec_act, zr, zr, 2 * U, ra)
                    _act(act, zr + 2 * U, zr + 2 * U, U, aa)
                    _act(rec_act, zr + 3 * U, zr + 3 * U, U, ra)
                    cp = cs + s * B * U + b * U
                    cn = cs + (s + 1) * B * U + b * U
                    tc = aux + s * B * U + b * U
                    for j in range(U):
                        cn[j] = zr[U + j] * cp[j] + zr[j] * zr[2 * U + j]
                    _act(act, cn, tc, U, aa)
                    for j in range(U):
                        hn[b * U + j] = zr[3 * U + j] * tc[j]
                    if mask != NULL and not mask[b * T + s]:
                        memcpy(cn, cp, U * sizeof(floating))
                if mask != NULL and not mask[b * T + s]:
                    memcpy(hn + b * U, hp + b * U, U * sizeof(floating))
        elif reset_after:
            if rmask != NULL:
                _masked_rec(lo, hi, B, U, GU, 0, 3, hp, rmask, r, scratch, sld, scratch, sld,
                            <floating>0)
            else:
                _rgemm(m, GU, U, A, lda, pk1, r, GU, False, <floating>0, scratch + lo * sld, sld)
            for b in range(lo, hi):
                zr = gz + b * GU
                rr = scratch + b * sld
                ax = aux + s * B * U + b * U
                if fast:
                    if floating is float:
                        fn_gru_fwd_rowf(zr, rr, rb, ax, hp + b * U, hn + b * U, U)
                    if mask != NULL and not mask[b * T + s]:
                        memcpy(hn + b * U, hp + b * U, U * sizeof(floating))
                    continue
                if rb != NULL:
                    for j in range(2 * U):
                        zr[j] = zr[j] + rr[j] + rb[j]
                    for j in range(U):
                        ax[j] = rr[2 * U + j] + rb[2 * U + j]
                else:
                    for j in range(2 * U):
                        zr[j] = zr[j] + rr[j]
                    memcpy(ax, rr + 2 * U, U * sizeof(floating))
                if zpre != NULL:
                    memcpy(zpre + s * B * GU + b * GU, zr, 2 * U * sizeof(floating))
                _act(rec_act, zr, zr, 2 * U, ra)
                for j in range(U):
                    zr[2 * U + j] = zr[2 * U + j] + zr[U + j] * ax[j]
                if zpre != NULL:
                    memcpy(zpre + s * B * GU + b * GU + 2 * U, zr + 2 * U, U * sizeof(floating))
                _act(act, zr + 2 * U, zr + 2 * U, U, aa)
                if mask != NULL and not mask[b * T + s]:
                    memcpy(hn + b * U, hp + b * U, U * sizeof(floating))
                else:
                    for j in range(U):
                        zz = zr[j]
                        hn[b * U + j] = zz * hp[b * U + j] + (1 - zz) * zr[2 * U + j]
        else:
            if rmask != NULL:
                _masked_rec(lo, hi, B, U, GU, 0, 2, hp, rmask, r, scratch, sld, scratch, sld,
                            <floating>0)
            else:
                _rgemm(m, 2 * U, U, A, lda, pk1, r, GU, False, <floating>0, scratch + lo * sld,
                       sld)
            for b in range(lo, hi):
                zr = gz + b * GU
                rr = scratch + b * sld
                for j in range(2 * U):
                    zr[j] = zr[j] + rr[j]
                if zpre != NULL:
                    memcpy(zpre + s * B * GU + b * GU, zr, 2 * U * sizeof(floating))
                _act(rec_act, zr, zr, 2 * U, ra)
                ax = aux + s * B * U + b * U
                if rmask != NULL:
                    for j in range(U):
                        ax[j] = zr[U + j] * hp[b * U + j] * rmask[(2 * B + b) * U + j]
                else:
                    for j in range(U):
                        ax[j] = zr[U + j] * hp[b * U + j]
            _rgemm(m, U, U, aux + s * B * U + lo * U, U, pk2, r + 2 * U, GU, False,
                   <floating>1, gz + lo * GU + 2 * U, GU)
            for b in range(lo, hi):
                zr = gz + b * GU
                if zpre != NULL:
                    memcpy(zpre + s * B * GU + b * GU + 2 * U, zr + 2 * U, U * sizeof(floating))
                _act(act, zr + 2 * U, zr + 2 * U, U, aa)
                if mask != NULL and not mask[b * T + s]:
                    memcpy(hn + b * U, hp + b * U, U * sizeof(floating))
                else:
                    for j in range(U):
                        zz = zr[j]
                        hn[b * U + j] = zz * hp[b * U + j] + (1 - zz) * zr[2 * U + j]


cdef void _bwd_rows(int cell, Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t T, Py_ssize_t B,
                    Py_ssize_t U, const floating *dys, const floating *r, const uint8_t *mask,
                    const floating *rmask, const floating *gates, const floating *hs,
                    const floating *cs, const floating *aux, const floating *zpre,
                    floating *dg, floating *dgx, floating *dhc, floating *dcc,
                    floating *scratch, Py_ssize_t sld, int act, int rec_act, double aa,
                    double ra, bint reset_after, const float *pk1,
                    const float *pk2) noexcept nogil:
    cdef Py_ssize_t G = 1 if cell == SIMPLE_RNN else (4 if cell == LSTM else 3)
    cdef Py_ssize_t GU = G * U, m = hi - lo, s, b, j
    cdef floating *dh
    cdef floating *gr
    cdef floating *drh
    cdef const floating *gt
    cdef const floating *zp
    cdef const floating *hp
    cdef const floating *ax
    cdef floating v, dct
    cdef bint masked
    cdef bint fast = (floating is float and zpre == NULL and act == ACT_TANH
                      and (cell == SIMPLE_RNN or rec_act == ACT_SIGMOID)
                      and (cell != GRU or reset_after))
    if m <= 0:
        return
    for s in range(T - 1, -1, -1):
        for b in range(lo, hi):
            if fast and (mask == NULL or mask[b * T + s]):
                if floating is float:
                    gr = dg + s * B * GU + b * GU
                    gt = gates + s * B * GU + b * GU
                    if cell == LSTM:
                        fn_lstm_bwd_rowf(dhc + b * U, (dys + (b * T + s) * U) if dys != NULL else NULL,
                                         gt, aux + s * B * U + b * U, cs + s * B * U + b * U,
                                         dcc + b * U, gr, U)
                    elif cell == GRU:
                        fn_gru_bwd_rowf(dhc + b * U, (dys + (b * T + s) * U) if dys != NULL else NULL,
                                        gt, aux + s * B * U + b * U, hs + s * B * U + b * U,
                                        dgx + s * B * U + b * U, gr, U)
                    else:
                        fn_rnn_bwd_rowf(dhc + b * U, (dys + (b * T + s) * U) if dys != NULL else NULL,
                                        gt, gr, U)
                continue
            dh = scratch + b * sld
            if dys != NULL:
                for j in range(U):
                    dh[j] = dhc[b * U + j] + dys[(b * T + s) * U + j]
            else:
                memcpy(dh, dhc + b * U, U * sizeof(floating))
            gr = dg + s * B * GU + b * GU
            masked = mask != NULL and not mask[b * T + s]
            if masked:
                memset(gr, 0, GU * sizeof(floating))
                if dgx != NULL:
                    memset(dgx + s * B * U + b * U, 0, U * sizeof(floating))
                memcpy(dhc + b * U, dh, U * sizeof(floating))
                continue
            gt = gates + s * B * GU + b * GU
            zp = (zpre + s * B * GU + b * GU) if zpre != NULL else NULL
            if cell == SIMPLE_RNN:
                memcpy(gr, dh, U * sizeof(floating))
                _act_grad(act, gr, gt, zp, U, aa)
                memset(dhc + b * U, 0, U * sizeof(floating))
            elif cell == LSTM:
                ax = aux + s * B * U + b * U      # act(c)
                for j in range(U):
                    gr[3 * U + j] = dh[j] * ax[j]
                    gr[2 * U + j] = dh[j] * gt[3 * U + j]
                _act_grad(act, gr + 2 * U, ax, cs + (s + 1) * B * U + b * U, U, aa)
                hp = cs + s * B * U + b * U       # previous cell state
                for j in range(U):
                    dct = gr[2 * U + j] + dcc[b * U + j]
                    gr[j] = dct * gt[2 * U + j]
                    gr[U + j] = dct * hp[j]
                    gr[2 * U + j] = dct * gt[j]
                    dcc[b * U + j] = dct * gt[U + j]
                _act_grad(rec_act, gr, gt, zp, 2 * U, ra)
                _act_grad(act, gr + 2 * U, gt + 2 * U, (zp + 2 * U) if zp != NULL else NULL, U, aa)
                _act_grad(rec_act, gr + 3 * U, gt + 3 * U, (zp + 3 * U) if zp != NULL else NULL, U, ra)
                memset(dhc + b * U, 0, U * sizeof(floating))
            else:
                hp = hs + s * B * U + b * U
                for j in range(U):
                    v = gt[j]
                    gr[2 * U + j] = dh[j] * (1 - v)
                    gr[j] = dh[j] * (hp[j] - gt[2 * U + j])
                    dhc[b * U + j] = dh[j] * v
                _act_grad(act, gr + 2 * U, gt + 2 * U, (zp + 2 * U) if zp != NULL else NULL, U, aa)
                _act_grad(rec_act, gr, gt, zp, U, ra)
                if reset_after:
                    ax = aux + s * B * U + b * U      # recurrent candidate before the reset gate
                    for j in range(U):
                        v = gr[2 * U + j]
                        dgx[s * B * U + b * U + j] = v
                        gr[U + j] = v * ax[j]
                        gr[2 * U + j] = v * gt[U + j]
                    _act_grad(rec_act, gr + U, gt + U, (zp + U) if zp != NULL else NULL, U, ra)
        if cell == GRU and not reset_after:
            # d(r * h) = dG_h R_h^T, needed before the reset gate's derivative.
            _rgemm(m, U, U, dg + s * B * GU + lo * GU + 2 * U, GU, pk2, r + 2 * U, GU, True,
                   <floating>0, scratch + lo * sld + U, sld)
            for b in range(lo, hi):
                if mask != NULL and not mask[b * T + s]:
                    continue
                gr = dg + s * B * GU + b * GU
                gt = gates + s * B * GU + b * GU
                zp = (zpre + s * B * GU + b * GU) if zpre != NULL else NULL
                hp = hs + s * B * U + b * U
                drh = scratch + b * sld + U
                if rmask != NULL:
                    for j in range(U):
                        v = drh[j]
                        gr[U + j] = v * hp[j] * rmask[(2 * B + b) * U + j]
                        drh[j] = v * gt[U + j]
                else:
                    for j in range(U):
                        v = drh[j]
                        gr[U + j] = v * hp[j]
                        drh[j] = v * gt[U + j]
                _act_grad(rec_act, gr + U, gt + U, (zp + U) if zp != NULL else NULL, U, ra)
            if rmask != NULL:
                for b in range(lo, hi):
                    if mask != NULL and not mask[b * T + s]:
                        continue
                    drh = scratch + b * sld + U
                    for j in range(U):
                        dhc[b * U + j] = dhc[b * U + j] + drh[j] * rmask[(2 * B + b) * U + j]
                _masked_rec_bwd(lo, hi, B, U, GU, 0, 2, dg + s * B * GU, rmask, r, scratch, sld,
                                dhc)
            else:
                _rgemm(m, U, 2 * U, dg + s * B * GU + lo * GU, GU, pk1, r, GU, True,
                       <floating>1, scratch + lo * sld + U, sld)
                for b in range(lo, hi):
                    if mask != NULL and not mask[b * T + s]:
                        continue
                    drh = scratch + b * sld + U
                    for j in range(U):
                        dhc[b * U + j] = dhc[b * U + j] + drh[j]
        elif rmask != NULL:
            _masked_rec_bwd(lo, hi, B, U, GU, 0, G, dg + s * B * GU, rmask, r, scratch, sld, dhc)
        else:
            _rgemm(m, U, GU, dg + s * B * GU + lo * GU, GU, pk1, r, GU, True,
                   <floating>1, dhc + lo * U, U)


cdef void _colsum(const floating *src, Py_ssize_t ld, Py_ssize_t rows, Py_ssize_t cols,
                  floating *out, int n_threads) noexcept nogil:
    cdef Py_ssize_t c0, c1, blk, i, j
    cdef int nt = n_threads if (rows * cols >= (1 << 16) and cols >= 32) else 1
    blk = (cols + nt - 1) // nt
    for c0 in prange(0, cols, blk, num_threads=nt, schedule="static"):
        c1 = min(cols, c0 + blk)
        for j in range(c0, c1):
            out[j] = 0
        for i in range(rows):
            for j in range(c0, c1):
                out[j] = out[j] + src[i * ld + j]


def packed_gemm(const float[:, ::1] a, const float[:, ::1] b, float[:, ::1] c,
                bint trans_b=False, bint accumulate=False, int repeat=1,
                const float[::1] bias=None):
    """c = [c +] a op(b) [+ bias] through the packed small-GEMM the time loops use (tests,
    timing)."""
    cdef Py_ssize_t m = a.shape[0], k = a.shape[1]
    cdef Py_ssize_t n = b.shape[0] if trans_b else b.shape[1]
    cdef Py_ssize_t kb = b.shape[1] if trans_b else b.shape[0], i
    if kb != k or c.shape[0] != m or c.shape[1] != n:
        raise ValueError("packed_gemm: shapes do not match")
    if m == 0 or n == 0 or k == 0:
        raise ValueError("packed_gemm: empty operands")
    if bias is not None and bias.shape[0] != n:
        raise ValueError("packed_gemm: bias must have one entry per column of the product")
    cdef const float *bz = &bias[0] if bias is not None else NULL
    cdef float *p = _packed(&b[0, 0], b.shape[1], k, n, trans_b)
    with nogil:
        for i in range(repeat):
            fn_gemm_packed(m, n, k, &a[0, 0], k, p, &c[0, 0], n, accumulate, bz)
    free(p)


cdef inline Py_ssize_t _pad16(Py_ssize_t n) noexcept nogil:
    return (n + 15) // 16 * 16


def packed_size(int cell, Py_ssize_t units, bint reset_after=True, Py_ssize_t input_dim=0):
    """Floats of the ``packbuf`` that lets forward/backward pack the recurrent kernel
    (and, given ``input_dim``, the stacked [W; R] of the fused forward) into a reused
    buffer instead of a fresh allocation per call."""
    cdef Py_ssize_t u = units, gu = n_gates(cell) * units
    if cell == GRU and not reset_after:
        return max(_pad16(2 * u) * u + _pad16(u) * u, 3 * _pad16(u) * u)
    if cell == GRU:
        return max(_pad16(gu) * u, _pad16(u) * gu)
    return max(_pad16(gu) * u, _pad16(u) * gu, _pad16(gu) * (input_dim + u))


def weight_grad_gemm(const float[:, ::1] a1, const float[:, ::1] a2, const float[:, ::1] b,
                     float[:, ::1] c, float[::1] colsum=None):
    """c = [a1 | a2]^T b through the K-blocked packed GEMM the backward pass uses for
    [dW; dR] (tests, timing); one thread. ``colsum`` (N) also receives b's column sums,
    as the bias gradient does there."""
    cdef Py_ssize_t K = b.shape[0], N = b.shape[1], M1 = a1.shape[1], M2 = a2.shape[1], i
    if a1.shape[0] != K or a2.shape[0] != K or c.shape[0] != M1 + M2 or c.shape[1] != N:
        raise ValueError("weight_grad_gemm: shapes do not match")
    if K == 0 or N == 0 or M2 == 0:
        raise ValueError("weight_grad_gemm: empty operands")
    if colsum is not None and colsum.shape[0] != N:
        raise ValueError("weight_grad_gemm: colsum must have one entry per column of b")
    cdef float *bp = <float *>malloc(fn_kblocked_scratch(M1 + M2, N, 256) * sizeof(float))
    if bp == NULL:
        raise MemoryError()
    with nogil:
        fn_gemm_kblocked(M1, &a1[0, 0] if M1 else NULL, M2, &a2[0, 0], N, K, &b[0, 0], N,
                         &c[0, 0], N, bp, 256, &colsum[0] if colsum is not None else NULL)
    free(bp)


cdef float *_packed(const float *b, Py_ssize_t ldb, Py_ssize_t k, Py_ssize_t n,
                    bint trans, float *dest=NULL) except? NULL:
    """A copy of op(b) (k x n) packed for fn_gemm_packed, in ``dest`` when given (else
    allocated: the caller frees it)."""
    cdef float *p = dest
    if p == NULL:
        p = <float *>malloc(_pad16(n) * max(k, 1) * sizeof(float))
        if p == NULL:
            raise MemoryError()
    fn_pack_b(b, ldb, k, n, trans, p)
    return p


cdef float *_packed_stack(const float *w, Py_ssize_t D, const float *r, Py_ssize_t U,
                          Py_ssize_t n, float *dest=NULL) except? NULL:
    """[w; r] ((D + U) x n, both with row stride n) packed for fn_gemm_packed, in
    ``dest`` when given (else allocated: the caller frees it)."""
    cdef Py_ssize_t K = D + U
    cdef float *p = dest
    if p == NULL:
        p = <float *>malloc(_pad16(n) * K * sizeof(float))
        if p == NULL:
            raise MemoryError()
    fn_pack_b_rows(w, n, 0, D, K, n, p)
    fn_pack_b_rows(r, n, D, U, K, n, p)
    return p


cdef float *_packbuf(object buf, Py_ssize_t need) except? NULL:
    """The caller's reusable packing buffer when it is a large enough float32 array."""
    cdef float[::1] v
    if buf is None:
        return NULL
    v = buf
    if v.shape[0] < need:
        raise ValueError(f"recurrent kernel: packbuf holds {v.shape[0]} floats, needs {need}")
    return &v[0]


def _check(arr, shape, what):
    if arr is None:
        raise ValueError(f"recurrent kernel: {what} is required")
    got = tuple(arr.shape[:len(shape)])
    if got != tuple(shape):
        raise ValueError(f"recurrent kernel: {what} has shape {got}, expected {tuple(shape)}")


cdef void _time_major_rows(Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t T, Py_ssize_t B,
                           Py_ssize_t D, const floating *x, floating *xt,
                           bint reverse) noexcept nogil:
    """xt[s, b] = x[b, s] (x[b, T - 1 - s] with reverse) for batch rows lo to hi - 1:
    x (B, T, D) batch-major as the layer receives it, xt (T, B, D) time-major."""
    cdef Py_ssize_t b, s
    for b in range(lo, hi):
        for s in range(T):
            memcpy(xt + (s * B + b) * D, x + (b * T + ((T - 1 - s) if reverse else s)) * D,
                   D * sizeof(floating))


def forward(int cell, floating[:, :, ::1] xt, const floating[:, ::1] w,
            const floating[:, ::1] r, const floating[::1] b, const floating[::1] rb,
            const floating[:, ::1] h0, const floating[:, ::1] c0, const uint8_t[:, ::1] mask,
            const floating[:, :, ::1] rmask, floating[:, :, ::1] gates, floating[:, :, ::1] hs,
            floating[:, :, ::1] cs, floating[:, :, ::1] aux, floating[:, :, ::1] zpre,
            floating[:, ::1] scratch, int act, int rec_act, double act_alpha=0.0,
            double rec_alpha=0.0, bint reset_after=True, int n_threads=1, bint project=True,
            packbuf=None, bint keep=True, const floating[:, :, ::1] x=None,
            bint reverse=False):
    """Runs a recurrent layer over the whole sequence.

    xt (T, B, D); w (D, G*U); r (U, G*U); b (G*U) or None; rb (G*U) the GRU's
    recurrent bias (reset_after) or None; h0, c0 (B, U) (c0 for LSTM only); mask
    (B, T) uint8 or None; rmask (G, B, U) recurrent dropout keep-masks, one per gate,
    or None. With ``project=False`` the gate buffer already holds the input
    projection (bias included) and xt, w and b are not read for it. ``packbuf``: an
    optional float32 array of ``packed_size(...)`` floats reused for the packed
    recurrent kernel (float32 only). ``keep=False`` (inference): the gate buffers may
    be left unwritten (only hs, cs and aux are filled). ``x`` (B, T, D), when given, is
    the input as the layer received it: the kernel writes xt from it (reversed in time
    with ``reverse``), each thread the rows it runs, instead of a serial transposing
    copy before the call.
    Outputs: gates (T, B, G*U) gate activations; hs, cs (T+1, B, U) states; aux
    (T, B, U) for LSTM and GRU; zpre (T, B, G*U) pre-activations, only when an
    activation's derivative needs its input (else None); scratch (B, G*U + 2U).
    """
    cdef Py_ssize_t T = xt.shape[0], B = xt.shape[1], D = xt.shape[2], U = r.shape[0]
    cdef Py_ssize_t G = n_gates(cell), GU = G * U, i, j, k, lo, hi, nchunks
    cdef Py_ssize_t bounds[MAX_TASKS + 1]
    cdef int nt
    cdef const floating *bp = NULL
    cdef const floating *rbp = NULL
    cdef const uint8_t *mp = NULL
    cdef const floating *rmp = NULL
    cdef floating *csp = NULL
    cdef floating *axp = NULL
    cdef floating *zpp = NULL
    cdef floating *gp
    if cell not in (SIMPLE_RNN, LSTM, GRU):
        raise ValueError(f"recurrent kernel: unknown cell {cell}")
    _check(w, (D, GU), "w")
    _check(r, (U, GU), "r")
    _check(h0, (B, U), "h0")
    _check(gates, (T, B, GU), "gates")
    _check(hs, (T + 1, B, U), "hs")
    _check(scratch, (B, GU + 2 * U), "scratch")
    if b is not None:
        _check(b, (GU,), "b")
        bp = &b[0]
    if rb is not None:
        _check(rb, (GU,), "rb")
        rbp = &rb[0]
    if mask is not None:
        _check(mask, (B, T), "mask")
        if B * T:
            mp = &mask[0, 0]
    if rmask is not None:
        _check(rmask, (G, B, U), "rmask")
        if B * U:
            rmp = &rmask[0, 0, 0]
    if cell == LSTM:
        _check(c0, (B, U), "c0")
        _check(cs, (T + 1, B, U), "cs")
    if cell != SIMPLE_RNN:
        _check(aux, (T, B, U), "aux")
    cdef const floating *xsp = NULL
    if x is not None:
        _check(x, (B, T, D), "x")
        if B * T * D:
            xsp = &x[0, 0, 0]
    if zpre is not None:
        _check(zpre, (T, B, GU), "zpre")
    if needs_input(act) or needs_input(rec_act):
        if zpre is None:
            raise ValueError("recurrent kernel: this activation needs a zpre buffer")
    if B == 0 or U == 0:
        if xsp != NULL:
            _time_major_rows(0, B, T, B, D, xsp, &xt[0, 0, 0], reverse)
        return
    hs[0, :, :] = h0
    if cell == LSTM:
        cs[0, :, :] = c0
        csp = &cs[0, 0, 0]
    if cell != SIMPLE_RNN and T > 0:
        axp = &aux[0, 0, 0]
    if zpre is not None and T > 0:
        zpp = &zpre[0, 0, 0]
    if T == 0:
        return
    nt = _threads(B, T * B * U * GU, n_threads)
    nchunks = _row_split(B, nt, bounds)
    gp = &gates[0, 0, 0]
    cdef float *pk1 = NULL
    cdef float *pk2 = NULL
    cdef float *pbuf = NULL
    cdef float *wpk = NULL
    cdef float *wrpk = NULL
    cdef float *xh = NULL
    cdef bint infer = False
    cdef bint fuse = False
    cdef bint own_wrpk = False
    if floating is float:
        # One [x | h] [W; R] product per step (see _fwd_rows and _infer_rows).
        fuse = (_USE_PACKED and project and D > 0 and rmask is None
                and zpre is None and (cell == SIMPLE_RNN or cell == LSTM) and act == ACT_TANH
                and (cell == SIMPLE_RNN or rec_act == ACT_SIGMOID))
        infer = fuse and not keep
        pbuf = _packbuf(packbuf, packed_size(cell, U, reset_after))
        if fuse:
            # The caller's buffer when it has room for the stack (packed_size with
            # input_dim), else an allocation of our own.
            own_wrpk = pbuf == NULL or packbuf.shape[0] < packed_size(cell, U, reset_after, D)
            wrpk = _packed_stack(&w[0, 0], D, &r[0, 0], U, GU, NULL if own_wrpk else pbuf)
            xh = <float *>malloc(B * (D + U) * sizeof(float))
            if xh == NULL:
                if own_wrpk:
                    free(wrpk)
                raise MemoryError()
        elif _USE_PACKED and project and D > 0:
            wpk = _packed(&w[0, 0], GU, D, GU, False)
        if not _USE_PACKED or fuse:
            pass
        elif cell == GRU and not reset_after:
            pk1 = _packed(&r[0, 0], GU, U, 2 * U, False, pbuf)
            pk2 = _packed(&r[0, 2 * U], GU, U, U, False,
                          (pbuf + _pad16(2 * U) * U) if pbuf != NULL else NULL)
        else:
            pk1 = _packed(&r[0, 0], GU, U, GU, False, pbuf)
    with nogil:
        if xsp != NULL and not fuse:
            # every step's rows before the projection (the fused time loop copies its
            # own rows as it starts)
            for k in prange(nchunks, num_threads=nt, schedule="static"):
                _time_major_rows(bounds[k], bounds[k + 1], T, B, D, xsp, &xt[0, 0, 0], reverse)
        if fuse:
            pass
        elif not project:
            pass
        elif wpk != NULL:
            # Input projection of every step through the packed GEMM, the bias starting
            # its accumulators.
            for k in prange((T * B + 95) // 96, num_threads=nt, schedule="static"):
                lo = k * 96
                hi = min(T * B, lo + 96)
                if floating is float:
                    fn_gemm_packed(hi - lo, GU, D, &xt[0, 0, 0] + lo * D, D, wpk, gp + lo * GU,
                                   GU, 0, bp)
        elif D > 0:
            gemm_parallel(False, False, T * B, GU, D, <floating>1, &xt[0, 0, 0], D, &w[0, 0], GU,
                          <floating>0, &gates[0, 0, 0], GU, n_threads)
        else:
            memset(&gates[0, 0, 0], 0, T * B * GU * sizeof(floating))
        if wpk != NULL or fuse:
            pass
        elif bp != NULL and project:
            for i in prange(T * B, num_threads=nt, schedule="static"):
                for j in range(GU):
                    gp[i * GU + j] = gp[i * GU + j] + bp[j]
        for k in prange(nchunks, num_threads=nt, schedule="dynamic", chunksize=1):
            lo = bounds[k]
            hi = bounds[k + 1]
            if xsp != NULL and fuse:
                _time_major_rows(lo, hi, T, B, D, xsp, &xt[0, 0, 0], reverse)
            if infer:
                if floating is float:
                    _infer_rows(cell, lo, hi, T, B, U, D, &xt[0, 0, 0], wrpk, bp, xh, mp,
                                &hs[0, 0, 0], csp, axp, &scratch[0, 0], GU + 2 * U)
                continue
            if floating is float:
                _fwd_rows(cell, lo, hi, T, B, U, &r[0, 0], rbp, mp, rmp, &gates[0, 0, 0],
                          &hs[0, 0, 0], csp, axp, zpp, &scratch[0, 0], GU + 2 * U, act,
                          rec_act, act_alpha, rec_alpha, reset_after, pk1, pk2, D,
                          &xt[0, 0, 0], wrpk, bp, xh)
            else:
                _fwd_rows(cell, lo, hi, T, B, U, &r[0, 0], rbp, mp, rmp, &gates[0, 0, 0],
                          &hs[0, 0, 0], csp, axp, zpp, &scratch[0, 0], GU + 2 * U, act,
                          rec_act, act_alpha, rec_alpha, reset_after, pk1, pk2)
    free(wpk)
    if own_wrpk:
        free(wrpk)
    free(xh)
    if pbuf == NULL:
        free(pk1)
        free(pk2)


def backward(int cell, const floating[:, :, ::1] xt, const floating[:, ::1] w,
             const floating[:, ::1] r, const floating[:, :, ::1] dys,
             const floating[:, ::1] dh_last, const floating[:, ::1] dc_last,
             const uint8_t[:, ::1] mask,
             const floating[:, :, ::1] rmask, const floating[:, :, ::1] gates,
             const floating[:, :, ::1] hs, const floating[:, :, ::1] cs,
             const floating[:, :, ::1] aux, const floating[:, :, ::1] zpre,
             floating[:, :, ::1] dg, floating[:, :, ::1] dgx, floating[:, :, ::1] hd_buf,
             floating[:, :, ::1] dxt, floating[:, ::1] dw, floating[:, ::1] dr,
             floating[::1] db, floating[::1] drb, floating[:, ::1] dh0, floating[:, ::1] dc0,
             floating[:, ::1] scratch, int act, int rec_act, double act_alpha=0.0,
             double rec_alpha=0.0, bint reset_after=True, int n_threads=1, packbuf=None):
    """Backpropagation through time for :func:`forward`'s recorded sequence.

    xt, w, r as in forward (the first fused argument is never None, which selects
    the float type); dys (B, T, U) upstream gradient of the output sequence (processing order) or
    None; dh_last, dc_last (B, U) gradients of the final states or None.
    Scratch/outputs: dg (T, B, G*U) per-step gate gradients (for the recurrent
    side); dgx (T, B, U) the GRU (reset_after) candidate's input-side gradient;
    hd_buf (T, B, U) needed with rmask; dxt (T, B, D), dw, dr, db, drb (the GRU's
    recurrent bias) may each be None to skip them; dh0, dc0 (B, U) receive the
    initial states' gradients; scratch (B, G*U + 2U).
    """
    cdef Py_ssize_t T = xt.shape[0], B = xt.shape[1], D = xt.shape[2], U = r.shape[0]
    cdef Py_ssize_t G = n_gates(cell), GU = G * U, TB, i, j, k, lo, hi, nchunks
    cdef Py_ssize_t bounds[MAX_TASKS + 1]
    cdef int nt
    cdef const floating *dysp = NULL
    cdef const uint8_t *mp = NULL
    cdef const floating *rmp = NULL
    cdef const floating *csp = NULL
    cdef const floating *axp = NULL
    cdef const floating *zpp = NULL
    cdef floating *dgxp = NULL
    cdef floating *dccp = NULL
    cdef floating *hbp
    cdef Py_ssize_t g
    cdef const floating *hsp
    cdef bint gru_after = cell == GRU and reset_after
    cdef bint gru_before = cell == GRU and not reset_after
    _check(w, (D, GU), "w")
    _check(r, (U, GU), "r")
    _check(gates, (T, B, GU), "gates")
    _check(hs, (T + 1, B, U), "hs")
    _check(dg, (T, B, GU), "dg")
    _check(dh0, (B, U), "dh0")
    _check(scratch, (B, GU + 2 * U), "scratch")
    if dys is not None:
        _check(dys, (B, T, U), "dys")
        if B * T * U:
            dysp = &dys[0, 0, 0]
    if mask is not None:
        _check(mask, (B, T), "mask")
        if B * T:
            mp = &mask[0, 0]
    if rmask is not None:
        _check(rmask, (G, B, U), "rmask")
        _check(hd_buf, (T, B, U), "hd_buf")
        if B * U:
            rmp = &rmask[0, 0, 0]
    if cell == LSTM:
        _check(cs, (T + 1, B, U), "cs")
        _check(dc0, (B, U), "dc0")
        dccp = &dc0[0, 0] if B * U else NULL
    if cell != SIMPLE_RNN:
        _check(aux, (T, B, U), "aux")
        if T * B * U:
            axp = &aux[0, 0, 0]
    if gru_after:
        _check(dgx, (T, B, U), "dgx")
        if T * B * U:
            dgxp = &dgx[0, 0, 0]
    if needs_input(act) or needs_input(rec_act):
        _check(zpre, (T, B, GU), "zpre")
    if zpre is not None and T * B:
        zpp = &zpre[0, 0, 0]
    if cell == LSTM and T * B * U:
        csp = &cs[0, 0, 0]
    if dxt is not None:
        _check(dxt, (T, B, D), "dxt")
    if dw is not None:
        _check(dw, (D, GU), "dw")
    if dr is not None:
        _check(dr, (U, GU), "dr")
    if db is not None:
        _check(db, (GU,), "db")
    if drb is not None:
        _check(drb, (GU,), "drb")
    if dh_last is not None:
        dh0[:, :] = dh_last
    else:
        dh0[:, :] = 0
    if cell == LSTM:
        if dc_last is not None:
            dc0[:, :] = dc_last
        else:
            dc0[:, :] = 0
    TB = T * B
    hsp = &hs[0, 0, 0]
    if TB == 0 or U == 0:
        if dw is not None:
            dw[:, :] = 0
        if dr is not None:
            dr[:, :] = 0
        if db is not None:
            db[:] = 0
        if drb is not None:
            drb[:] = 0
        return
    nt = _threads(B, T * B * U * GU, n_threads)
    nchunks = _row_split(B, nt, bounds)
    cdef float *pk1 = NULL
    cdef float *pk2 = NULL
    cdef float *pbuf = NULL
    if floating is float:
        pbuf = _packbuf(packbuf, packed_size(cell, U, reset_after))
        if not _USE_PACKED:
            pass
        elif gru_before:
            pk1 = _packed(&r[0, 0], GU, 2 * U, U, True, pbuf)
            pk2 = _packed(&r[0, 2 * U], GU, U, U, True,
                          (pbuf + _pad16(U) * 2 * U) if pbuf != NULL else NULL)
        elif pbuf != NULL:
            pk1 = pbuf  # packed below, the threads splitting the panels
        else:
            pk1 = <float *>malloc(_pad16(U) * GU * sizeof(float))
            if pk1 == NULL:
                raise MemoryError()
    cdef bint pack_rt = pk1 != NULL and not gru_before
    cdef Py_ssize_t DU = D + U
    cdef Py_ssize_t ncomb = 2 * U if gru_after else GU
    cdef floating *xhp = NULL
    cdef floating *wrp = NULL
    cdef bint combined = (dw is not None and dr is not None and D > 0 and rmask is None
                          and not gru_before)
    cdef Py_ssize_t KBLK = 256
    cdef int nparts = 1
    cdef bint fused_db = False
    cdef Py_ssize_t pcols = ncomb
    cdef Py_ssize_t pscr = 0
    cdef floating *bpp = NULL
    if combined:
        if n_threads > 1 and ncomb >= 32 and TB * DU * ncomb >= PARALLEL_MIN_WORK:
            nparts = <int>min(<Py_ssize_t>n_threads, _pad16(ncomb) // 16)
        pcols = _pad16((ncomb + nparts - 1) // nparts)
        if floating is float and _USE_PACKED:
            # [dW; dR] (wrp) and each part's packing scratch
            pscr = fn_kblocked_scratch(DU, pcols, KBLK)
            xhp = <floating *>malloc((DU * ncomb + nparts * pscr) * sizeof(floating))
            wrp = xhp
            bpp = wrp + DU * ncomb
            # The bias gradient (dG's column sums) comes out of the packing of dG.
            fused_db = db is not None and not gru_after
        else:
            # [X | H] copied together (xhp), then [dW; dR] (wrp)
            xhp = <floating *>malloc((TB * DU + DU * ncomb) * sizeof(floating))
            wrp = xhp + TB * DU
        if xhp == NULL:
            raise MemoryError()
    with nogil:
        if pack_rt:
            # R^T into 16-column panels (a 16 x GU block of R each)
            for k in prange(_pad16(U) // 16, num_threads=nt, schedule="static"):
                if floating is float:
                    fn_pack_bt_panels(&r[0, 0], GU, GU, U, k, k + 1, pk1)
        for k in prange(nchunks, num_threads=nt, schedule="dynamic", chunksize=1):
            lo = bounds[k]
            hi = bounds[k + 1]
            _bwd_rows(cell, lo, hi, T, B, U, dysp, &r[0, 0], mp, rmp, &gates[0, 0, 0],
                      &hs[0, 0, 0], csp, axp, zpp, &dg[0, 0, 0], dgxp, &dh0[0, 0], dccp,
                      &scratch[0, 0], GU + 2 * U, act, rec_act, act_alpha, rec_alpha,
                      reset_after, pk1, pk2)
        if pbuf == NULL:
            free(pk1)
            free(pk2)
        if combined:
            # dW and dR from one GEMM, [dW; dR] = [X | H]^T dG: a (D+U)-row product runs
            # faster than a D-row and a U-row one (D is often small).
            if floating is float and _USE_PACKED:
                # X, H and dG packed a block of K rows at a time: threads split the
                # output columns, each packing its own.
                for k in prange(nparts, num_threads=nt, schedule="static"):
                    lo = k * pcols
                    hi = min(ncomb, lo + pcols)
                    if lo < hi:
                        fn_gemm_kblocked(D, &xt[0, 0, 0], U, hsp, hi - lo, TB,
                                         &dg[0, 0, 0] + lo, GU, wrp + lo, ncomb,
                                         bpp + k * pscr, KBLK,
                                         (&db[0] + lo) if fused_db else NULL)
            else:
                for i in prange(TB, num_threads=nt, schedule="static"):
                    memcpy(xhp + i * DU, &xt[0, 0, 0] + i * D, D * sizeof(floating))
                    memcpy(xhp + i * DU + D, hsp + i * U, U * sizeof(floating))
                gemm_parallel(True, False, DU, ncomb, TB, <floating>1, xhp, DU, &dg[0, 0, 0],
                              GU, <floating>0, wrp, ncomb, n_threads)
            for i in range(D):
                memcpy(&dw[i, 0], wrp + i * ncomb, ncomb * sizeof(floating))
            for i in range(U):
                memcpy(&dr[i, 0], wrp + (D + i) * ncomb, ncomb * sizeof(floating))
            if gru_after:
                gemm_parallel(True, False, D, U, TB, <floating>1, &xt[0, 0, 0], D,
                              dgxp, U, <floating>0, &dw[0, 2 * U], GU, n_threads)
                gemm_parallel(True, False, U, U, TB, <floating>1, hsp, U, &dg[0, 0, 2 * U], GU,
                              <floating>0, &dr[0, 2 * U], GU, n_threads)
            free(xhp)
        elif dw is not None and D > 0:
            if gru_after:
                gemm_parallel(True, False, D, 2 * U, TB, <floating>1, &xt[0, 0, 0], D,
                              &dg[0, 0, 0], GU, <floating>0, &dw[0, 0], GU, n_threads)
                gemm_parallel(True, False, D, U, TB, <floating>1, &xt[0, 0, 0], D,
                              dgxp, U, <floating>0, &dw[0, 2 * U], GU, n_threads)
            else:
                gemm_parallel(True, False, D, GU, TB, <floating>1, &xt[0, 0, 0], D,
                              &dg[0, 0, 0], GU, <floating>0, &dw[0, 0], GU, n_threads)
        if combined:
            pass
        elif dr is not None and rmp != NULL:
            # One recurrent mask per gate: dR[:, gate g] = (h * rmask[g])^T dG[:, gate g].
            hbp = &hd_buf[0, 0, 0]
            for g in range(2 if gru_before else G):
                for i in prange(TB, num_threads=nt, schedule="static"):
                    for j in range(U):
                        hbp[i * U + j] = hsp[i * U + j] * rmp[(g * B + i % B) * U + j]
                gemm_parallel(True, False, U, U, TB, <floating>1, hbp, U, &dg[0, 0, g * U], GU,
                              <floating>0, &dr[0, g * U], GU, n_threads)
            if gru_before:
                gemm_parallel(True, False, U, U, TB, <floating>1, axp, U, &dg[0, 0, 2 * U], GU,
                              <floating>0, &dr[0, 2 * U], GU, n_threads)
        elif dr is not None:
            if gru_before:
                gemm_parallel(True, False, U, 2 * U, TB, <floating>1, hsp, U, &dg[0, 0, 0], GU,
                              <floating>0, &dr[0, 0], GU, n_threads)
                gemm_parallel(True, False, U, U, TB, <floating>1, axp, U, &dg[0, 0, 2 * U], GU,
                              <floating>0, &dr[0, 2 * U], GU, n_threads)
            else:
                gemm_parallel(True, False, U, GU, TB, <floating>1, hsp, U, &dg[0, 0, 0], GU,
                              <floating>0, &dr[0, 0], GU, n_threads)
        if db is not None and not fused_db:
            if gru_after:
                _colsum(&dg[0, 0, 0], GU, TB, 2 * U, &db[0], n_threads)
                _colsum(dgxp, U, TB, U, &db[2 * U], n_threads)
            else:
                _colsum(&dg[0, 0, 0], GU, TB, GU, &db[0], n_threads)
        if drb is not None:
            _colsum(&dg[0, 0, 0], GU, TB, GU, &drb[0], n_threads)
        if dxt is not None and D > 0:
            if gru_after:
                gemm_parallel(False, True, TB, D, 2 * U, <floating>1, &dg[0, 0, 0], GU,
                              &w[0, 0], GU, <floating>0, &dxt[0, 0, 0], D, n_threads)
                gemm_parallel(False, True, TB, D, U, <floating>1, dgxp, U, &w[0, 2 * U], GU,
                              <floating>1, &dxt[0, 0, 0], D, n_threads)
            else:
                gemm_parallel(False, True, TB, D, GU, <floating>1, &dg[0, 0, 0], GU, &w[0, 0], GU,
                              <floating>0, &dxt[0, 0, 0], D, n_threads)
