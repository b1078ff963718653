/* Direct float32 convolution kernels for few channels (fastnet/_kernels/conv.pyx).
 *
 * With 8 to 64 channels in and out, a 3x3 convolution's GEMMs are small: Winograd's
 * per-tile products (tiles x C) @ (C x F) and im2col's (pixels x 9C) @ (9C x F) spend
 * more time in BLAS's packing and call overhead, and in the transforms, than in
 * multiply-adds. These kernels read the input and the output gradient where they lie
 * (or a zero-padded band of a few input rows) and keep a tile of the result in
 * registers, the micro-kernel of _packed_gemm.h (6 x 16 tiles in 256-bit registers):
 *
 * fn_dconv_dw_rows   the kernel gradient dW[tap] (C x F) += X_tap^T dZ over a range of
 *                    output rows: for each tap, a 6-channel x 16-filter tile accumulates
 *                    x (broadcast) times dz (two vectors) over every pixel of a chunk of
 *                    rows, then goes back to memory once.
 * fn_dconv_taps_rows y = conv(x, W) (+ bias) over a range of output rows of one
 *                    sample: a tile of 6 output pixels of a row by 16 filters
 *                    accumulates the window's taps x channels against W packed into
 *                    16-column panels (fn_pack_b), from a zero-padded copy of the
 *                    input rows the chunk reads. The taps are lists of row and column
 *                    offsets, so one phase of a strided convolution's input gradient
 *                    (the input pixels of one parity, which only some taps reach) is
 *                    such a convolution of dz too.
 */
#ifndef FASTNET_DIRECT_CONV_H
#define FASTNET_DIRECT_CONV_H

#include "_packed_gemm.h"
#include "_geom.h"

/* Row tiles of the direct kernels: 6 while more than 8 are left, then 8 as 4 + 4 and 7
   as 4 + 3, else all that is left: a tile of 1 or 2 rows has too few accumulators to
   hide the multiply-add's latency (a 32-pixel row goes 6 6 6 6 4 4, not 6 6 6 6 6 2). */
static inline Py_ssize_t fn_dc_tile(Py_ssize_t M, Py_ssize_t i0) {
    Py_ssize_t rem = M - i0;
    return rem > 8 ? 6 : rem >= 7 ? 4 : rem;
}

#ifndef FN_SCALAR_GEMM

/* One tile of the kernel gradient: out (MR rows of 8 NV columns, row stride ldo) +=
   sum over the nr row segments k of sum over q < cnt of
       xp[k][q * xs + r] (broadcast) * dp[k][q * ds + 0 .. 8 NV - 1]. */
FN_TILE_INLINE void fn_dc_dw_tile(const int MR, const int NV, Py_ssize_t nr,
                                  const float *const *xp, const float *const *dp,
                                  Py_ssize_t xoff, Py_ssize_t doff, Py_ssize_t cnt,
                                  Py_ssize_t xs, Py_ssize_t ds, float *out, Py_ssize_t ldo) {
    fn_v8f a0[6], a1[6];
    Py_ssize_t r, k, q;
    for (r = 0; r < MR; r++) {
        memcpy(&a0[r], out + r * ldo, sizeof(fn_v8f));
        if (NV == 2) memcpy(&a1[r], out + r * ldo + 8, sizeof(fn_v8f));
    }
    for (k = 0; k < nr; k++) {
        const float *x = xp[k] + xoff, *d = dp[k] + doff;
        for (q = 0; q < cnt; q++) {
            fn_v8f b0, b1;
            memcpy(&b0, d, sizeof b0);
            if (NV == 2) memcpy(&b1, d + 8, sizeof b1);
            for (r = 0; r < MR; r++) {
                float s = x[r];
                a0[r] += s * b0;
                if (NV == 2) a1[r] += s * b1;
            }
            x += xs;
            d += ds;
        }
    }
    for (r = 0; r < MR; r++) {
        memcpy(out + r * ldo, &a0[r], sizeof(fn_v8f));
        if (NV == 2) memcpy(out + r * ldo + 8, &a1[r], sizeof(fn_v8f));
    }
}

FN_TILE_INLINE void fn_dc_dw_tiles(const int NV, Py_ssize_t C, Py_ssize_t nr,
                                   const float *const *xp, const float *const *dp,
                                   Py_ssize_t doff, Py_ssize_t cnt, Py_ssize_t xs,
                                   Py_ssize_t ds, float *out, Py_ssize_t ldo) {
    Py_ssize_t c0 = 0;
    while (c0 < C) {
        switch (fn_dc_tile(C, c0)) {
        case 6: fn_dc_dw_tile(6, NV, nr, xp, dp, c0, doff, cnt, xs, ds, out + c0 * ldo, ldo); c0 += 6; break;
        case 5: fn_dc_dw_tile(5, NV, nr, xp, dp, c0, doff, cnt, xs, ds, out + c0 * ldo, ldo); c0 += 5; break;
        case 4: fn_dc_dw_tile(4, NV, nr, xp, dp, c0, doff, cnt, xs, ds, out + c0 * ldo, ldo); c0 += 4; break;
        case 3: fn_dc_dw_tile(3, NV, nr, xp, dp, c0, doff, cnt, xs, ds, out + c0 * ldo, ldo); c0 += 3; break;
        case 2: fn_dc_dw_tile(2, NV, nr, xp, dp, c0, doff, cnt, xs, ds, out + c0 * ldo, ldo); c0 += 2; break;
        default: fn_dc_dw_tile(1, NV, nr, xp, dp, c0, doff, cnt, xs, ds, out + c0 * ldo, ldo); c0 += 1;
        }
    }
}

/* One tile of the forward: MR consecutive output pixels of a row (input pixels xs
   apart in the padded band, x pointing at the first one's window origin) by 8 NV
   filters of panel bp (16 columns, rows tap * C + c), the window's taps at offsets
   toff[tap] from x. Accumulators start at bz; nc of the columns are stored to y
   (row stride ldy). */
FN_TILE_INLINE void fn_dc_fwd_tile(const int MR, const int NV, const float *x, Py_ssize_t xs,
                                   const Py_ssize_t *toff, Py_ssize_t T, Py_ssize_t C,
                                   const float *bp, const float *bz, float *y, Py_ssize_t ldy,
                                   Py_ssize_t nc) {
    fn_v8f a0[6], a1[6], z0, z1;
    Py_ssize_t r, t, c, jj;
    memcpy(&z0, bz, sizeof z0);
    memcpy(&z1, bz + 8, sizeof z1);
    for (r = 0; r < MR; r++) { a0[r] = z0; a1[r] = z1; }
    for (t = 0; t < T; t++) {
        const float *xt = x + toff[t];
        const float *b = bp + t * C * 16;
        for (c = 0; c < C; c++) {
            fn_v8f b0, b1;
            memcpy(&b0, b + c * 16, sizeof b0);
            if (NV == 2) memcpy(&b1, b + c * 16 + 8, sizeof b1);
            for (r = 0; r < MR; r++) {
                float s = xt[r * xs + c];
                a0[r] += s * b0;
                if (NV == 2) a1[r] += s * b1;
            }
        }
    }
    for (r = 0; r < MR; r++) {
        float *yr = y + r * ldy;
        if (nc == 16) {
            memcpy(yr, &a0[r], sizeof(fn_v8f));
            memcpy(yr + 8, &a1[r], sizeof(fn_v8f));
        } else if (nc == 8) {
            memcpy(yr, &a0[r], sizeof(fn_v8f));
        } else {
            float tmp[16];
            memcpy(tmp, &a0[r], 32);
            if (NV == 2) memcpy(tmp + 8, &a1[r], 32);
            for (jj = 0; jj < nc; jj++) yr[jj] = tmp[jj];
        }
    }
}

FN_TILE_INLINE void fn_dc_fwd_tiles(const int NV, Py_ssize_t M, const float *x, Py_ssize_t xs,
                                    const Py_ssize_t *toff, Py_ssize_t T, Py_ssize_t C,
                                    const float *bp, const float *bz, float *y, Py_ssize_t ldy,
                                    Py_ssize_t nc) {
    Py_ssize_t i0 = 0;
    while (i0 < M) {
        switch (fn_dc_tile(M, i0)) {
        case 6: fn_dc_fwd_tile(6, NV, x + i0 * xs, xs, toff, T, C, bp, bz, y + i0 * ldy, ldy, nc); i0 += 6; break;
        case 5: fn_dc_fwd_tile(5, NV, x + i0 * xs, xs, toff, T, C, bp, bz, y + i0 * ldy, ldy, nc); i0 += 5; break;
        case 4: fn_dc_fwd_tile(4, NV, x + i0 * xs, xs, toff, T, C, bp, bz, y + i0 * ldy, ldy, nc); i0 += 4; break;
        case 3: fn_dc_fwd_tile(3, NV, x + i0 * xs, xs, toff, T, C, bp, bz, y + i0 * ldy, ldy, nc); i0 += 3; break;
        case 2: fn_dc_fwd_tile(2, NV, x + i0 * xs, xs, toff, T, C, bp, bz, y + i0 * ldy, ldy, nc); i0 += 2; break;
        default: fn_dc_fwd_tile(1, NV, x + i0 * xs, xs, toff, T, C, bp, bz, y + i0 * ldy, ldy, nc); i0 += 1;
        }
    }
}

#else  /* plain loops */

static void fn_dc_dw_tiles(const int NV, Py_ssize_t C, Py_ssize_t nr, const float *const *xp,
                           const float *const *dp, Py_ssize_t doff, Py_ssize_t cnt,
                           Py_ssize_t xs, Py_ssize_t ds, float *out, Py_ssize_t ldo) {
    Py_ssize_t c, k, q, j, W = 8 * NV;
    for (c = 0; c < C; c++)
        for (k = 0; k < nr; k++) {
            const float *x = xp[k] + c, *d = dp[k] + doff;
            for (q = 0; q < cnt; q++)
                for (j = 0; j < W; j++) out[c * ldo + j] += x[q * xs] * d[q * ds + j];
        }
}

static void fn_dc_fwd_tiles(const int NV, Py_ssize_t M, const float *x, Py_ssize_t xs,
                            const Py_ssize_t *toff, Py_ssize_t T, Py_ssize_t C,
                            const float *bp, const float *bz, float *y, Py_ssize_t ldy,
                            Py_ssize_t nc) {
    Py_ssize_t i, t, c, j;
    for (i = 0; i < M; i++) {
        float acc[16];
        for (j = 0; j < 16; j++) acc[j] = bz[j];
        for (t = 0; t < T; t++)
            for (c = 0; c < C; c++) {
                float s = x[i * xs + toff[t] + c];
                for (j = 0; j < 16; j++) acc[j] += s * bp[(t * C + c) * 16 + j];
            }
        for (j = 0; j < nc; j++) y[i * ldy + j] = acc[j];
    }
}
#endif

/* out (C x F, row stride F) (+)= A^T B, A (T x C) and B (T x F) contiguous rows,
   F a multiple of 8: the kernel gradient's tiles on one segment of T rows. */
FN_KERNEL_CLONES
static void fn_dc_atb(const float *A, const float *B, Py_ssize_t T, Py_ssize_t C,
                      Py_ssize_t F, float *out, int accumulate) {
    Py_ssize_t f0;
    if (!accumulate) memset(out, 0, C * F * sizeof(float));
    for (f0 = 0; f0 + 16 <= F; f0 += 16)
        fn_dc_dw_tiles(2, C, 1, &A, &B, f0, T, C, F, out + f0, F);
    if (f0 < F)
        fn_dc_dw_tiles(1, C, 1, &A, &B, f0, T, C, F, out + f0, F);
}

/* Scratch (floats) of fn_dconv_dw_rows for chunks of ``rows`` output rows. */
static inline Py_ssize_t fn_dconv_dw_scratch(const fn_geom *g, Py_ssize_t F, Py_ssize_t rows) {
    Py_ssize_t Fp = (F + 7) / 8 * 8;
    return rows * g->ow * Fp + 2 * rows * (Py_ssize_t)(sizeof(void *) / sizeof(float) + 1) + 16;
}

/* acc (kh * kw * C, Fp) += the kernel gradient of output rows r0 .. r1 - 1 (a row being
   (sample, oy), r = n * oh + oy) from x (n, h, w, C) and dz (its first row being output
   row dz_row0; (r1 - dz_row0) * ow rows of F values at least), in chunks of
   ``rows`` rows. Fp = F rounded up to 8: with F != Fp each chunk of dz is first copied
   with that row stride (zeros past F). Taps outside the input are skipped (the
   range of ox, and the rows, each tap reads inside the image). The order of the sums
   depends only on r0, r1 and rows. */
FN_KERNEL_CLONES
static void fn_dconv_dw_rows(const float *x, const float *dz, Py_ssize_t dz_row0, Py_ssize_t F,
                             const fn_geom *g, Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t rows,
                             float *acc, float *scratch) {
    Py_ssize_t C = g->c, ow = g->ow, Fp = (F + 7) / 8 * 8, q0, q1, q, i, j, nr, lo, hi;
    Py_ssize_t ds, p, f0;
    float *dzbuf = scratch;
    const float **xp = (const float **)(void *)(((size_t)(scratch + rows * ow * Fp) + 15) & ~(size_t)15);
    const float **dp = xp + rows;
    const float *dbase;
    for (q0 = r0; q0 < r1; q0 += rows) {
        q1 = q0 + rows < r1 ? q0 + rows : r1;
        if (Fp == F) {
            dbase = dz + (q0 - dz_row0) * ow * F;
        } else {
            for (p = 0; p < (q1 - q0) * ow; p++) {
                memcpy(dzbuf + p * Fp, dz + ((q0 - dz_row0) * ow + p) * F, F * sizeof(float));
                for (f0 = F; f0 < Fp; f0++) dzbuf[p * Fp + f0] = 0.0f;
            }
            dbase = dzbuf;
        }
        ds = Fp;
        for (i = 0; i < g->kh; i++)
            for (j = 0; j < g->kw; j++) {
                /* the output columns whose tap (i, j) lies inside the image */
                Py_ssize_t off = j * g->dw - g->pw;
                lo = off >= 0 ? 0 : (-off + g->sw - 1) / g->sw;
                hi = g->w - 1 - off < 0 ? 0 : (g->w - 1 - off) / g->sw + 1;
                if (hi > ow) hi = ow;
                if (hi <= lo) continue;
                nr = 0;
                for (q = q0; q < q1; q++) {
                    Py_ssize_t n = q / g->oh, oy = q - n * g->oh;
                    Py_ssize_t iy = oy * g->sh + i * g->dh - g->ph;
                    if (iy < 0 || iy >= g->h) continue;
                    xp[nr] = x + ((n * g->h + iy) * g->w + lo * g->sw + off) * C;
                    dp[nr] = dbase + ((q - q0) * ow + lo) * ds;
                    nr++;
                }
                if (nr == 0) continue;
                float *out = acc + (i * g->kw + j) * C * Fp;
                for (f0 = 0; f0 + 16 <= Fp; f0 += 16)
                    fn_dc_dw_tiles(2, C, nr, xp, dp, f0, hi - lo, g->sw * C, ds, out + f0, Fp);
                if (f0 < Fp)
                    fn_dc_dw_tiles(1, C, nr, xp, dp, f0, hi - lo, g->sw * C, ds, out + f0, Fp);
            }
    }
}

/* Scratch (floats) of fn_dconv_taps_rows: the band and the taps' offsets. */
static inline Py_ssize_t fn_dconv_taps_scratch(Py_ssize_t band_rows, Py_ssize_t band_cols,
                                               Py_ssize_t C, Py_ssize_t T) {
    return band_rows * band_cols * C + T * (Py_ssize_t)(sizeof(Py_ssize_t) / sizeof(float) + 1)
        + 16;
}

/* Output rows a0 .. a1 - 1 (nb pixels each) of a convolution of one sample x (H, W, C)
   with TI x TJ taps: output pixel (a, b) sums, over the taps (ti, tj) and channels c,
   x[a sy + e[ti], b sx + f[tj], c] (zero outside the sample) times the packed kernel
   Wp (fn_pack_b of the (TI TJ C, F) matrix, rows (ti TJ + tj) C + c), plus bias (F)
   or NULL. Pixel (a, b) is written to y + (a - a0) yrow + b ypix (F values).
   The band of input rows and columns the rows read is copied to ``scratch``
   (fn_dconv_taps_scratch floats) with the zero padding around it, so that every tile
   reads its whole window. The forward convolution is the case e = i dh - ph,
   f = j dw - pw, (sy, sx) the strides; one phase of a strided input gradient another. */
FN_KERNEL_CLONES
static void fn_dconv_taps_rows(const float *x, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C,
                               Py_ssize_t sy, Py_ssize_t sx, Py_ssize_t TI, const Py_ssize_t *e,
                               Py_ssize_t TJ, const Py_ssize_t *f, const float *Wp,
                               const float *bias, Py_ssize_t F, Py_ssize_t a0, Py_ssize_t a1,
                               Py_ssize_t nb, float *y, Py_ssize_t yrow, Py_ssize_t ypix,
                               float *scratch) {
    Py_ssize_t emin = e[0], emax = e[0], fmin = f[0], fmax = f[0], t, K = TI * TJ * C;
    Py_ssize_t BH, BW, iy0, ix0, lo, hi, r, a, p, nc;
    for (t = 1; t < TI; t++) { if (e[t] < emin) emin = e[t]; if (e[t] > emax) emax = e[t]; }
    for (t = 1; t < TJ; t++) { if (f[t] < fmin) fmin = f[t]; if (f[t] > fmax) fmax = f[t]; }
    BH = (a1 - 1 - a0) * sy + emax - emin + 1;
    BW = (nb - 1) * sx + fmax - fmin + 1;
    iy0 = a0 * sy + emin;
    ix0 = fmin;
    float *band = scratch;
    Py_ssize_t *toff = (Py_ssize_t *)(void *)(((size_t)(scratch + BH * BW * C) + 15) & ~(size_t)15);
    /* the band: rows iy0 .. iy0 + BH - 1, columns ix0 .. ix0 + BW - 1 of the input */
    lo = ix0 < 0 ? -ix0 : 0;
    hi = ix0 + BW > W ? W - ix0 : BW;
    for (r = 0; r < BH; r++) {
        float *dst = band + r * BW * C;
        Py_ssize_t iy = iy0 + r;
        if (iy < 0 || iy >= H || hi <= lo) {
            memset(dst, 0, BW * C * sizeof(float));
            continue;
        }
        if (lo > 0) memset(dst, 0, lo * C * sizeof(float));
        memcpy(dst + lo * C, x + (iy * W + ix0 + lo) * C, (hi - lo) * C * sizeof(float));
        if (hi < BW) memset(dst + hi * C, 0, (BW - hi) * C * sizeof(float));
    }
    for (r = 0; r < TI; r++)
        for (t = 0; t < TJ; t++) toff[r * TJ + t] = ((e[r] - emin) * BW + f[t] - fmin) * C;
    for (a = a0; a < a1; a++) {
        const float *xr = band + (a - a0) * sy * BW * C;
        float *yr = y + (a - a0) * yrow;
        for (p = 0; p * 16 < F; p++) {
            float bz[16] = {0};
            nc = F - p * 16 < 16 ? F - p * 16 : 16;
            if (bias) memcpy(bz, bias + p * 16, nc * sizeof(float));
            if (nc > 8)
                fn_dc_fwd_tiles(2, nb, xr, sx * C, toff, TI * TJ, C, Wp + p * K * 16, bz,
                                yr + p * 16, ypix, nc);
            else
                fn_dc_fwd_tiles(1, nb, xr, sx * C, toff, TI * TJ, C, Wp + p * K * 16, bz,
                                yr + p * 16, ypix, nc);
        }
    }
}

#endif  /* FASTNET_DIRECT_CONV_H */
