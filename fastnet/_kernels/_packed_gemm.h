/* A small float32 GEMM against a matrix packed into panels of 16 columns, for the
 * recurrent kernels (fastnet/_kernels/recurrent.pyx).
 *
 * A micro-kernel of FMAs in registers (GCC/Clang vector extensions; plain loops
 * under MSVC): tiles of 6 x 16 in 256-bit registers, compiled for x86-64-v4, -v3 and
 * a baseline where the compiler can choose at load time, and of 8 x 16 in 512-bit
 * registers on AVX-512 CPUs (fn_wide_tiles). The recurrent kernel is packed once per sequence and its
 * panels streamed from cache at every step; BLAS would pack it on every call.
 *
 * Also used by Dense on tall inputs and by attention's backward pass (dense.pyx,
 * attention.pyx); Dense on short wide inputs stays on BLAS, where this kernel was
 * slower inside a training step (docs/kernels.rst, "Measurements behind the kernels'
 * choices", has the figures, and those of the tile choices below).
 */
#ifndef FASTNET_PACKED_GEMM_H
#define FASTNET_PACKED_GEMM_H

#include <string.h>

#if defined(_MSC_VER)
/* No GCC vector extensions there: plain loops for the packed GEMM. */
#ifndef restrict
#define restrict __restrict
#endif
#define FN_SCALAR_GEMM 1
#endif
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) \
    && !defined(FASTNET_NO_CLONES)
#define FN_KERNEL_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
/* and a 512-bit micro-kernel, chosen at run time (fn_wide_tiles) */
#define FN_HAVE_ZMM 1
#else
#define FN_KERNEL_CLONES
#endif

#ifdef FN_SCALAR_GEMM
#undef FN_HAVE_ZMM
#else
typedef float fn_v8f __attribute__((vector_size(32)));
#endif

/* Two micro-kernels. The 256-bit one holds a 16-column row in two registers, so a
   tile of 6 rows takes 12 of the 16 registers AVX2 has. Where the CPU has AVX-512
   (32 registers of 512 bits) a 16-column row fits one register and tiles have 8
   rows: a quarter of the instructions per FMA, and 32 rows tile whole (4 x 8 where 6
   x 5 + 2 left a slow 2-row tail).
   fn_wide_tiles: 1 when the 512-bit kernel runs (set by fn_wide_tiles_init from the
   CPU, or by the caller, for tests); packing of A follows it. */
static int fn_wide_tiles = 0;

static int fn_wide_tiles_init(void) {
#ifdef FN_HAVE_ZMM
    __builtin_cpu_init();
    fn_wide_tiles = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")
        && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
#else
    fn_wide_tiles = 0;
#endif
    return fn_wide_tiles;
}

/* Row tiles: 8 rows while at least 8 are left (512-bit kernel only), then 6 rows while
   at least 6 are left, then one tile of 4, 2 or 1 (tiles of 6 and 5 rows, without a
   4-row tail, were slower). The size of the tile that starts at row i0: the GEMMs' tile loops
   (fn_tiles, fn_tiles_z) and fn_pack_a_t all follow it. */
static inline Py_ssize_t fn_tile_rows(Py_ssize_t M, Py_ssize_t i0) {
    if (fn_wide_tiles && M - i0 >= 8) return 8;
    return M - i0 >= 6 ? 6 : M - i0 >= 4 ? 4 : M - i0 >= 2 ? 2 : 1;
}

/* Rows k0 to k0 + K - 1 of a packed matrix of Ktot rows: Bp[(p*Ktot + k0 + k)*16 + jj]
   = B[k, 16p + jj] (zero past N), B (K x N, row stride ldb). Two calls pack a
   stacked [B1; B2] without first copying it together. With ``csum`` (N), B's column
   sums are added to it on the way (a bias gradient). */
static void fn_pack_b_rows_sum(const float *B, Py_ssize_t ldb, Py_ssize_t k0, Py_ssize_t K,
                               Py_ssize_t Ktot, Py_ssize_t N, float *Bp, float *csum) {
    Py_ssize_t np_ = (N + 15) / 16, p, k, k1, kn, jj, nr;
    /* eight rows at a time, panel by panel: each panel gets a run of eight 64-byte
       rows in order (a store per panel per row costs a TLB walk and a partial line) */
    for (k1 = 0; k1 < K; k1 += 8) {
        kn = K - k1 < 8 ? K - k1 : 8;
        for (p = 0; p < np_; p++) {
            nr = N - p * 16 < 16 ? N - p * 16 : 16;
            float *d = Bp + (p * Ktot + k0 + k1) * 16;
            const float *src = B + k1 * ldb + p * 16;
            if (nr == 16) {
                /* a constant size: inlined as vector moves, not a libc call */
                for (k = 0; k < kn; k++)
                    memcpy(d + k * 16, src + k * ldb, 16 * sizeof(float));
            } else {
                for (k = 0; k < kn; k++) {
                    memcpy(d + k * 16, src + k * ldb, nr * sizeof(float));
                    for (jj = nr; jj < 16; jj++) d[k * 16 + jj] = 0.0f;
                }
            }
            if (csum) {
                /* from the packed copy: zeros past N, so always 16 wide */
                float acc[16] = {0};
                for (k = 0; k < kn; k++)
                    for (jj = 0; jj < 16; jj++) acc[jj] += d[k * 16 + jj];
                for (jj = 0; jj < nr; jj++) csum[p * 16 + jj] += acc[jj];
            }
        }
    }
}

static void fn_pack_b_rows(const float *B, Py_ssize_t ldb, Py_ssize_t k0, Py_ssize_t K,
                           Py_ssize_t Ktot, Py_ssize_t N, float *Bp) {
    fn_pack_b_rows_sum(B, ldb, k0, K, Ktot, N, Bp, NULL);
}

/* Panels p0 to p1 - 1 of the packed transpose of B (N x K, row stride ldb):
   Bp[(p*K + k)*16 + jj] = B[16p + jj, k] (zero past N). In 16 x 16 blocks: 16 rows
   of B read along their length into one block of the panel (1 KB, in L1), instead of
   16 rows touched per packed row. */
static void fn_pack_bt_panels(const float *B, Py_ssize_t ldb, Py_ssize_t K, Py_ssize_t N,
                              Py_ssize_t p0, Py_ssize_t p1, float *Bp) {
    Py_ssize_t p, k, k0, kn, jj, j;
    for (p = p0; p < p1; p++)
        for (k0 = 0; k0 < K; k0 += 16) {
            kn = K - k0 < 16 ? K - k0 : 16;
            float *d = Bp + (p * K + k0) * 16;
            for (jj = 0; jj < 16; jj++) {
                j = p * 16 + jj;
                if (j < N) {
                    const float *src = B + j * ldb + k0;
                    for (k = 0; k < kn; k++) d[k * 16 + jj] = src[k];
                } else {
                    for (k = 0; k < kn; k++) d[k * 16 + jj] = 0.0f;
                }
            }
        }
}

/* Bp[(p*K + k)*16 + jj] = op(B)[k, 16p + jj] (zero past N); op(B) = B (K x N, row
   stride ldb) or, with trans, the transpose of B (N x K, row stride ldb). */
static void fn_pack_b(const float *B, Py_ssize_t ldb, Py_ssize_t K, Py_ssize_t N,
                      int trans, float *Bp) {
    if (trans)
        fn_pack_bt_panels(B, ldb, K, N, 0, (N + 15) / 16, Bp);
    else
        fn_pack_b_rows(B, ldb, 0, K, K, N, Bp);
}

#ifndef FN_SCALAR_GEMM
/* Forced inline: each call passes constant MR and PA, so the tile loops unroll and
   the accumulator arrays become registers, as if written out for every size. */
#define FN_TILE_INLINE static inline __attribute__((always_inline))

static const float fn_zero16[16] = {0};

/* One tile of MR rows (6, 4, 2 or 1) by 16 columns: rows i0 to i0 + MR - 1 of C
   (already offset to the panel's first column; nr of its 16 columns are stored)
   (+)= the same rows of A times the panel bp, the accumulators started at bz (16
   values: the bias, or zeros). A: M x K with row stride lda, or (PA) packed by
   fn_pack_a_t, the tile's values at step k adjacent from A + i0*K. */
FN_TILE_INLINE void fn_tile(const int MR, const int PA, Py_ssize_t i0, Py_ssize_t K,
                            const float *A, Py_ssize_t lda, const float *bp, const float *bz,
                            float *C, Py_ssize_t ldc, Py_ssize_t nr, int accumulate) {
    fn_v8f acc0[6], acc1[6], bz0, bz1;
    const float *ap[6];
    Py_ssize_t r, k, jj;
    memcpy(&bz0, bz, sizeof bz0);
    memcpy(&bz1, bz + 8, sizeof bz1);
    for (r = 0; r < MR; r++) {
        acc0[r] = bz0; acc1[r] = bz1;
        ap[r] = PA ? A : A + (i0 + r) * lda;
    }
    for (k = 0; k < K; k++) {
        fn_v8f b0, b1;
        memcpy(&b0, bp + k * 16, sizeof b0);
        memcpy(&b1, bp + k * 16 + 8, sizeof b1);
        for (r = 0; r < MR; r++) {
            float x = PA ? A[i0 * K + k * MR + r] : ap[r][k];
            acc0[r] += x * b0; acc1[r] += x * b1;
        }
    }
    for (r = 0; r < MR; r++) {
        float *cr = C + (i0 + r) * ldc;
        if (nr == 16) {
            fn_v8f o0 = acc0[r], o1 = acc1[r], t;
            if (accumulate) {
                memcpy(&t, cr, sizeof t); o0 += t;
                memcpy(&t, cr + 8, sizeof t); o1 += t;
            }
            memcpy(cr, &o0, sizeof o0);
            memcpy(cr + 8, &o1, sizeof o1);
        } else {
            float tmp[16];
            memcpy(tmp, &acc0[r], 32);
            memcpy(tmp + 8, &acc1[r], 32);
            for (jj = 0; jj < nr; jj++) cr[jj] = (accumulate ? cr[jj] : 0.0f) + tmp[jj];
        }
    }
}

/* Every row tile of one panel, in fn_tile_rows's sizes. */
FN_TILE_INLINE void fn_tiles(const int PA, Py_ssize_t M, Py_ssize_t K, const float *A,
                             Py_ssize_t lda, const float *bp, const float *bz, float *C,
                             Py_ssize_t ldc, Py_ssize_t nr, int accumulate) {
    Py_ssize_t i0 = 0;
    while (i0 < M) {
        switch (fn_tile_rows(M, i0)) {
        case 6: fn_tile(6, PA, i0, K, A, lda, bp, bz, C, ldc, nr, accumulate); i0 += 6; break;
        case 4: fn_tile(4, PA, i0, K, A, lda, bp, bz, C, ldc, nr, accumulate); i0 += 4; break;
        case 2: fn_tile(2, PA, i0, K, A, lda, bp, bz, C, ldc, nr, accumulate); i0 += 2; break;
        default: fn_tile(1, PA, i0, K, A, lda, bp, bz, C, ldc, nr, accumulate); i0 += 1;
        }
    }
}

#ifdef FN_HAVE_ZMM
typedef float fn_v16f __attribute__((vector_size(64)));

/* The 512-bit tile: MR rows (8, 6, 4, 2 or 1) by 16 columns, one register per row;
   the arguments as for fn_tile. */
__attribute__((target("arch=x86-64-v4")))
FN_TILE_INLINE void fn_tile_z(const int MR, const int PA, Py_ssize_t i0, Py_ssize_t K,
                              const float *A, Py_ssize_t lda, const float *bp, const float *bz,
                              float *C, Py_ssize_t ldc, Py_ssize_t nr, int accumulate) {
    fn_v16f acc[8], b;
    const float *ap[8];
    Py_ssize_t r, k, jj;
    memcpy(&b, bz, sizeof b);
    for (r = 0; r < MR; r++) {
        acc[r] = b;
        ap[r] = PA ? A : A + (i0 + r) * lda;
    }
    for (k = 0; k < K; k++) {
        fn_v16f b0;
        memcpy(&b0, bp + k * 16, sizeof b0);
        for (r = 0; r < MR; r++) {
            float x = PA ? A[i0 * K + k * MR + r] : ap[r][k];
            acc[r] += x * b0;
        }
    }
    for (r = 0; r < MR; r++) {
        float *cr = C + (i0 + r) * ldc;
        if (nr == 16) {
            fn_v16f o = acc[r], t;
            if (accumulate) { memcpy(&t, cr, sizeof t); o += t; }
            memcpy(cr, &o, sizeof o);
        } else {
            float tmp[16];
            memcpy(tmp, &acc[r], sizeof tmp);
            for (jj = 0; jj < nr; jj++) cr[jj] = (accumulate ? cr[jj] : 0.0f) + tmp[jj];
        }
    }
}

__attribute__((target("arch=x86-64-v4")))
FN_TILE_INLINE void fn_tiles_z(const int PA, Py_ssize_t M, Py_ssize_t K, const float *A,
                               Py_ssize_t lda, const float *bp, const float *bz, float *C,
                               Py_ssize_t ldc, Py_ssize_t nr, int accumulate) {
    Py_ssize_t i0 = 0;
    while (i0 < M) {
        switch (fn_tile_rows(M, i0)) {
        case 8: fn_tile_z(8, PA, i0, K, A, lda, bp, bz, C, ldc, nr, accumulate); i0 += 8; break;
        case 6: fn_tile_z(6, PA, i0, K, A, lda, bp, bz, C, ldc, nr, accumulate); i0 += 6; break;
        case 4: fn_tile_z(4, PA, i0, K, A, lda, bp, bz, C, ldc, nr, accumulate); i0 += 4; break;
        case 2: fn_tile_z(2, PA, i0, K, A, lda, bp, bz, C, ldc, nr, accumulate); i0 += 2; break;
        default: fn_tile_z(1, PA, i0, K, A, lda, bp, bz, C, ldc, nr, accumulate); i0 += 1;
        }
    }
}

/* fn_gemm_packed and fn_gemm_packed_pp with the 512-bit tiles (AVX-512 CPUs only). */
__attribute__((target("arch=x86-64-v4")))
static void fn_gemm_packed_z(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K, const float *A,
                             Py_ssize_t lda, const float *Bp, float *C, Py_ssize_t ldc,
                             int accumulate, const float *bias) {
    Py_ssize_t np_ = (N + 15) / 16, p;
    for (p = 0; p < np_; p++) {
        Py_ssize_t nr = N - p * 16 < 16 ? N - p * 16 : 16;
        float bz[16] = {0};
        if (bias) memcpy(bz, bias + p * 16, nr * sizeof(float));
        fn_tiles_z(0, M, K, A, lda, Bp + p * K * 16, bz, C + p * 16, ldc, nr, accumulate);
    }
}

__attribute__((target("arch=x86-64-v4")))
static void fn_gemm_packed_pp_z(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K, const float *Ap,
                                const float *Bp, float *C, Py_ssize_t ldc, int accumulate) {
    Py_ssize_t np_ = (N + 15) / 16, p;
    for (p = 0; p < np_; p++) {
        Py_ssize_t nr = N - p * 16 < 16 ? N - p * 16 : 16;
        fn_tiles_z(1, M, K, Ap, 0, Bp + p * K * 16, fn_zero16, C + p * 16, ldc, nr, accumulate);
    }
}
#endif

/* C (M x N, row stride ldc) = [C +] A (M x K, row stride lda) op(B) [+ bias], Bp from
   fn_pack_b; bias (N) or NULL starts the accumulators (no second pass to add it).
   Rows go in the tiles of fn_tile_rows (no wasted rows). */
FN_KERNEL_CLONES
static void fn_gemm_packed(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K, const float *A,
                           Py_ssize_t lda, const float *Bp, float *C, Py_ssize_t ldc,
                           int accumulate, const float *bias) {
    Py_ssize_t np_ = (N + 15) / 16, p;
#ifdef FN_HAVE_ZMM
    if (fn_wide_tiles) {
        fn_gemm_packed_z(M, N, K, A, lda, Bp, C, ldc, accumulate, bias);
        return;
    }
#endif
    for (p = 0; p < np_; p++) {
        Py_ssize_t nr = N - p * 16 < 16 ? N - p * 16 : 16;
        float bz[16] = {0};
        if (bias) memcpy(bz, bias + p * 16, nr * sizeof(float));
        fn_tiles(0, M, K, A, lda, Bp + p * K * 16, bz, C + p * 16, ldc, nr, accumulate);
    }
}

/* The same with A packed by fn_pack_a_t: a tile's values at step k are adjacent and
   its whole K-strip is contiguous, so it streams in order and never fights for an L1
   set the way a strided column of A does. */
FN_KERNEL_CLONES
static void fn_gemm_packed_pp(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K, const float *Ap,
                              const float *Bp, float *C, Py_ssize_t ldc, int accumulate) {
    Py_ssize_t np_ = (N + 15) / 16, p;
#ifdef FN_HAVE_ZMM
    if (fn_wide_tiles) {
        fn_gemm_packed_pp_z(M, N, K, Ap, Bp, C, ldc, accumulate);
        return;
    }
#endif
    for (p = 0; p < np_; p++) {
        Py_ssize_t nr = N - p * 16 < 16 ? N - p * 16 : 16;
        fn_tiles(1, M, K, Ap, 0, Bp + p * K * 16, fn_zero16, C + p * 16, ldc, nr, accumulate);
    }
}
#else
static void fn_gemm_packed(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K, const float *A,
                           Py_ssize_t lda, const float *Bp, float *C, Py_ssize_t ldc,
                           int accumulate, const float *bias) {
    Py_ssize_t np_ = (N + 15) / 16, p, i, k, jj, nr;
    for (p = 0; p < np_; p++) {
        nr = N - p * 16 < 16 ? N - p * 16 : 16;
        for (i = 0; i < M; i++) {
            float acc[16] = {0};
            float *cr = C + i * ldc + p * 16;
            if (bias)
                for (jj = 0; jj < nr; jj++) acc[jj] = bias[p * 16 + jj];
            for (k = 0; k < K; k++) {
                float x = A[i * lda + k];
                const float *b = Bp + (p * K + k) * 16;
                for (jj = 0; jj < 16; jj++) acc[jj] += x * b[jj];
            }
            for (jj = 0; jj < nr; jj++) cr[jj] = (accumulate ? cr[jj] : 0.0f) + acc[jj];
        }
    }
}
static void fn_gemm_packed_pp(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K, const float *Ap,
                              const float *Bp, float *C, Py_ssize_t ldc, int accumulate) {
    Py_ssize_t np_ = (N + 15) / 16, p, i0 = 0, mr, i, k, jj, nr;
    /* walk the tiles of fn_pack_a_t */
    while (i0 < M) {
        mr = fn_tile_rows(M, i0);
        for (p = 0; p < np_; p++) {
            nr = N - p * 16 < 16 ? N - p * 16 : 16;
            for (i = 0; i < mr; i++) {
                float acc[16] = {0};
                float *cr = C + (i0 + i) * ldc + p * 16;
                for (k = 0; k < K; k++) {
                    float x = Ap[i0 * K + k * mr + i];
                    const float *b = Bp + (p * K + k) * 16;
                    for (jj = 0; jj < 16; jj++) acc[jj] += x * b[jj];
                }
                for (jj = 0; jj < nr; jj++) cr[jj] = (accumulate ? cr[jj] : 0.0f) + acc[jj];
            }
        }
        i0 += mr;
    }
}
#endif

/* [A1 | A2]^T (M x K with M = M1 + M2; A1 is K x M1 and A2 K x M2, contiguous rows)
   packed for fn_gemm_packed_pp: rows in the micro-kernel's tiles (fn_tile_rows),
   tile by tile, each tile K-major: Ap[i0*K + k*mr + r] = [A1 | A2][k, i0 + r]. */
static void fn_pack_a_t(Py_ssize_t M1, const float *A1, Py_ssize_t M2, const float *A2,
                        Py_ssize_t K, float *Ap) {
    Py_ssize_t M = M1 + M2, k, i0, mr, r, i;
    /* tile by tile, each written in order (its mr values per row of [A1 | A2] copied
       as one block: constant sizes for the full tiles, vector moves, not a libc call) */
    for (i0 = 0; i0 < M; i0 += mr) {
        mr = fn_tile_rows(M, i0);
        float *d = Ap + i0 * K;
        const float *src;
        Py_ssize_t ld;
        if (i0 + mr <= M1) {
            src = A1 + i0;
            ld = M1;
        } else if (i0 >= M1) {
            src = A2 + (i0 - M1);
            ld = M2;
        } else {
            /* a tile across the A1 | A2 boundary */
            for (k = 0; k < K; k++)
                for (r = 0; r < mr; r++) {
                    i = i0 + r;
                    d[k * mr + r] = i < M1 ? A1[k * M1 + i] : A2[k * M2 + i - M1];
                }
            continue;
        }
        if (mr == 8) {
            for (k = 0; k < K; k++) memcpy(d + k * 8, src + k * ld, 8 * sizeof(float));
        } else if (mr == 6) {
            for (k = 0; k < K; k++) memcpy(d + k * 6, src + k * ld, 6 * sizeof(float));
        } else {
            for (k = 0; k < K; k++)
                for (r = 0; r < mr; r++) d[k * mr + r] = src[k * ld + r];
        }
    }
}

/* Floats of the scratch fn_gemm_kblock needs for M = M1 + M2 rows, N columns and
   blocks of up to KB rows of K. */
static inline Py_ssize_t fn_kblocked_scratch(Py_ssize_t M, Py_ssize_t N, Py_ssize_t KB) {
    return ((N + 15) / 16 * 16 + M) * KB;
}

/* One block of kb rows of K: [C1; C2] (+)= [A1 | A2]^T B with A1 (kb x M1), A2 (kb x
   M2) contiguous rows and B (kb x N, row stride ldb); C has M1 + M2 rows, stride ldc.
   B's block is packed into 16-column panels and [A1 | A2]'s into the micro-kernel's
   row tiles (both in ``scratch``, fn_kblocked_scratch floats), so that every operand
   streams from cache in order. With ``csum`` (N), B's column sums (a bias gradient)
   are added up (or, without ``accumulate``, stored) along the way. */
static void fn_gemm_kblock(Py_ssize_t M1, const float *A1, Py_ssize_t M2, const float *A2,
                           Py_ssize_t N, Py_ssize_t kb, const float *B, Py_ssize_t ldb,
                           float *C, Py_ssize_t ldc, float *scratch, float *csum,
                           int accumulate) {
    Py_ssize_t j;
    float *Bp = scratch, *Ap = scratch + (N + 15) / 16 * 16 * kb;
    if (csum && !accumulate)
        for (j = 0; j < N; j++) csum[j] = 0.0f;
    fn_pack_b_rows_sum(B, ldb, 0, kb, kb, N, Bp, csum);
    fn_pack_a_t(M1, A1, M2, A2, kb, Ap);
    fn_gemm_packed_pp(M1 + M2, N, kb, Ap, Bp, C, ldc, accumulate);
}

/* The whole of K, a block of KB rows at a time (one thread). */
static void fn_gemm_kblocked(Py_ssize_t M1, const float *A1, Py_ssize_t M2,
                             const float *A2, Py_ssize_t N, Py_ssize_t K, const float *B,
                             Py_ssize_t ldb, float *C, Py_ssize_t ldc, float *scratch,
                             Py_ssize_t KB, float *csum) {
    Py_ssize_t k0, kb;
    for (k0 = 0; k0 < K; k0 += KB) {
        kb = K - k0 < KB ? K - k0 : KB;
        fn_gemm_kblock(M1, M1 ? A1 + k0 * M1 : A1, M2, A2 + k0 * M2, N, kb, B + k0 * ldb,
                       ldb, C, ldc, scratch, csum, k0 > 0);
    }
}

#endif  /* FASTNET_PACKED_GEMM_H */
