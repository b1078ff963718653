/* Inner loops of the Winograd transforms (fastnet/_kernels/conv.pyx): F(2x2, 3x3) by
 * its add/subtract steps, the 1-D F(m, r) by small dense maps (fn_tf_*).
 *
 * Written in C for one reason: ``restrict``. Each step reads four runs of values and
 * writes four (or two); without a no-overlap promise the compiler either checks
 * every pair of pointers at run time or, past its limit, leaves the loop scalar.
 * The callers guarantee that outputs never overlap inputs.
 */
#ifndef FASTNET_WINOGRAD_H
#define FASTNET_WINOGRAD_H

#include <stddef.h>

#if defined(_MSC_VER)
#define FN_RESTRICT __restrict
#else
#define FN_RESTRICT __restrict__
#endif

/* B^T step: (a0 - a2, a1 + a2, a2 - a1, a1 - a3). */
#define FN_DEFINE_BT4(T, NAME)                                                        \
    static inline void NAME(const T *FN_RESTRICT a0, const T *FN_RESTRICT a1,          \
                            const T *FN_RESTRICT a2, const T *FN_RESTRICT a3,          \
                            T *FN_RESTRICT o0, T *FN_RESTRICT o1, T *FN_RESTRICT o2,   \
                            T *FN_RESTRICT o3, ptrdiff_t n) {                          \
        for (ptrdiff_t c = 0; c < n; c++) {                                            \
            T x0 = a0[c], x1 = a1[c], x2 = a2[c], x3 = a3[c];                          \
            o0[c] = x0 - x2;                                                           \
            o1[c] = x1 + x2;                                                           \
            o2[c] = x2 - x1;                                                           \
            o3[c] = x1 - x3;                                                           \
        }                                                                              \
    }

/* A^T step: (a0 + a1 + a2, a1 - a2 - a3). */
#define FN_DEFINE_AT4(T, NAME)                                                        \
    static inline void NAME(const T *FN_RESTRICT a0, const T *FN_RESTRICT a1,          \
                            const T *FN_RESTRICT a2, const T *FN_RESTRICT a3,          \
                            T *FN_RESTRICT o0, T *FN_RESTRICT o1, ptrdiff_t n) {       \
        for (ptrdiff_t c = 0; c < n; c++) {                                            \
            T x1 = a1[c], x2 = a2[c];                                                  \
            o0[c] = a0[c] + x1 + x2;                                                   \
            o1[c] = x1 - x2 - a3[c];                                                   \
        }                                                                              \
    }

/* The column step of the input transform for a run of tiles along a row: tile q
 * (0 <= q < run) reads columns 2q .. 2q + 3 of the four combined rows r0..r3
 * (row stride ``ld``, ``c`` values per column) and writes its 16 values to
 * v[k * vs + q * c], k = 4 i + j. */
#define FN_DEFINE_COLS(T, NAME)                                                       \
    static inline void NAME(const T *FN_RESTRICT r, ptrdiff_t ld, T *FN_RESTRICT v,    \
                            ptrdiff_t vs, ptrdiff_t run, ptrdiff_t c) {                \
        for (ptrdiff_t i = 0; i < 4; i++) {                                            \
            const T *ri = r + i * ld;                                                  \
            T *o0 = v + (4 * i) * vs, *o1 = v + (4 * i + 1) * vs;                      \
            T *o2 = v + (4 * i + 2) * vs, *o3 = v + (4 * i + 3) * vs;                  \
            for (ptrdiff_t q = 0; q < run; q++) {                                      \
                const T *p = ri + 2 * q * c;                                           \
                T *w0 = o0 + q * c, *w1 = o1 + q * c, *w2 = o2 + q * c,                \
                  *w3 = o3 + q * c;                                                    \
                for (ptrdiff_t k = 0; k < c; k++) {                                    \
                    T x0 = p[k], x1 = p[c + k], x2 = p[2 * c + k], x3 = p[3 * c + k];  \
                    w0[k] = x0 - x2;                                                   \
                    w1[k] = x1 + x2;                                                   \
                    w2[k] = x2 - x1;                                                   \
                    w3[k] = x1 - x3;                                                   \
                }                                                                      \
            }                                                                          \
        }                                                                              \
    }

FN_DEFINE_BT4(float, fn_bt4_f)
FN_DEFINE_BT4(double, fn_bt4_d)
FN_DEFINE_AT4(float, fn_at4_f)
FN_DEFINE_AT4(double, fn_at4_d)
FN_DEFINE_COLS(float, fn_cols_f)
FN_DEFINE_COLS(double, fn_cols_d)

/* 1-D transforms: y[b * ys + k] (=|+=) a * x[b * xs + k] for nb blocks of n values. */
#define FN_DEFINE_AXPY(T, NAME)                                                       \
    static inline void NAME(T a, const T *FN_RESTRICT x, ptrdiff_t xs,                 \
                            T *FN_RESTRICT y, ptrdiff_t ys, ptrdiff_t nb, ptrdiff_t n, \
                            int accumulate) {                                          \
        for (ptrdiff_t b = 0; b < nb; b++) {                                           \
            const T *xb = x + b * xs;                                                  \
            T *yb = y + b * ys;                                                        \
            if (accumulate)                                                            \
                for (ptrdiff_t k = 0; k < n; k++) yb[k] += a * xb[k];                  \
            else                                                                       \
                for (ptrdiff_t k = 0; k < n; k++) yb[k] = a * xb[k];                   \
        }                                                                              \
    }

FN_DEFINE_AXPY(float, fn_axpy_f)
FN_DEFINE_AXPY(double, fn_axpy_d)

/* A small linear map applied to nb blocks, each of ``cols`` runs of c values:
 *     y[q * yq + k * yk + j] = sum_i M[k][i] x[q * xq + i * xi + j]
 * for k < rows, i < cols (both <= 8), j < c; M is mat (rows x cols, row-major), or the
 * transpose of mat (cols x rows) when ``trans``. A vector of lanes of each input run
 * is loaded once into registers and every output is built there and written once,
 * where a pass per coefficient (FN_DEFINE_AXPY) reads and writes the whole output
 * again for each of them. The vector lanes multiply zero coefficients too (no branch
 * between the multiply-adds); the scalar tail skips them. Sums run in increasing i,
 * as those passes do. */
#if defined(__GNUC__) || defined(__clang__)
#define FN_TF_VECTOR 1
typedef float fn_vf __attribute__((vector_size(32), aligned(4), may_alias));
typedef double fn_vd __attribute__((vector_size(32), aligned(8), may_alias));
#define FN_ALWAYS_INLINE __attribute__((always_inline)) inline
#else
#define FN_ALWAYS_INLINE __forceinline
#endif

#define FN_DEFINE_TF(T, VT, NAME)                                                     \
    static FN_ALWAYS_INLINE void NAME##_body(const T *m, int rows, const int cols,    \
            const T *FN_RESTRICT xb, ptrdiff_t xi, T *FN_RESTRICT yb, ptrdiff_t yk,    \
            ptrdiff_t c) {                                                             \
        const int L = (int)(sizeof(VT) / sizeof(T));                                   \
        ptrdiff_t j = 0;                                                               \
        for (; j + L <= c; j += L) {                                                   \
            VT in[8];                                                                  \
            for (int i = 0; i < cols; i++) in[i] = *(const VT *)(xb + i * xi + j);   \
            for (int k = 0; k < rows; k++) {                                           \
                VT acc = m[k * cols] * in[0];                                          \
                for (int i = 1; i < cols; i++) acc += m[k * cols + i] * in[i];         \
                *(VT *)(yb + k * yk + j) = acc;                                        \
            }                                                                          \
        }                                                                              \
        for (; j < c; j++) {                                                           \
            for (int k = 0; k < rows; k++) {                                           \
                T acc = 0;                                                             \
                for (int i = 0; i < cols; i++) {                                       \
                    T a = m[k * cols + i];                                             \
                    if (a != 0) acc += a * xb[i * xi + j];                             \
                }                                                                      \
                yb[k * yk + j] = acc;                                                  \
            }                                                                          \
        }                                                                              \
    }                                                                                  \
    static inline void NAME(const double *mat, int rows, int cols, int trans,          \
                            const T *FN_RESTRICT x, ptrdiff_t xi, ptrdiff_t xq,        \
                            T *FN_RESTRICT y, ptrdiff_t yk, ptrdiff_t yq, ptrdiff_t nb, \
                            ptrdiff_t c) {                                             \
        T m[64];                                                                       \
        for (int k = 0; k < rows; k++)                                                 \
            for (int i = 0; i < cols; i++)                                             \
                m[k * cols + i] = (T)(trans ? mat[i * rows + k] : mat[k * cols + i]);  \
        for (ptrdiff_t q = 0; q < nb; q++) {                                           \
            const T *xb = x + q * xq;                                                  \
            T *yb = y + q * yq;                                                        \
            /* A constant input count lets the compiler keep the inputs in registers. */ \
            switch (cols) {                                                            \
            case 8: NAME##_body(m, rows, 8, xb, xi, yb, yk, c); break;                 \
            case 6: NAME##_body(m, rows, 6, xb, xi, yb, yk, c); break;                 \
            case 4: NAME##_body(m, rows, 4, xb, xi, yb, yk, c); break;                 \
            case 2: NAME##_body(m, rows, 2, xb, xi, yb, yk, c); break;                 \
            default: NAME##_body(m, rows, cols, xb, xi, yb, yk, c); break;             \
            }                                                                          \
        }                                                                              \
    }

#ifdef FN_TF_VECTOR
FN_DEFINE_TF(float, fn_vf, fn_tf_f)
FN_DEFINE_TF(double, fn_vd, fn_tf_d)
#else
/* No vector extensions: one lane (the same loops, scalar). */
FN_DEFINE_TF(float, float, fn_tf_f)
FN_DEFINE_TF(double, double, fn_tf_d)
#endif

#endif
