/* Inner loop of the 2x2 stride-2 max-pooling backward (fastnet/_kernels/pooling.pyx).
 *
 * In C for ``restrict``: the loop reads three streams and writes four, more than a
 * compiler checks for overlap at run time, and scalar it is several times slower.
 * Each of the window's four taps gets dy where it held the maximum (offset k within
 * the image: 0, 1, w or w + 1 from the window's corner), 0 elsewhere; with ``y`` (the
 * pooled output of ReLU values) dy is also dropped where y is not positive (y * 0:
 * a NaN output keeps a NaN derivative).
 */
#ifndef FASTNET_POOLING_H
#define FASTNET_POOLING_H

#include <stddef.h>

#if defined(_MSC_VER)
#define FNP_RESTRICT __restrict
#else
#define FNP_RESTRICT __restrict__
#endif

#define FNP_DEFINE_BACK2X2(T, NAME)                                                   \
    static inline void NAME(const T *FNP_RESTRICT g, const int *FNP_RESTRICT a,        \
                            const T *FNP_RESTRICT y, T *FNP_RESTRICT d0,               \
                            T *FNP_RESTRICT d1, T *FNP_RESTRICT d2, T *FNP_RESTRICT d3, \
                            int base, int w, ptrdiff_t n) {                            \
        for (ptrdiff_t c = 0; c < n; c++) {                                            \
            int k = a[c] - base;                                                       \
            T v = y ? (y[c] > 0 ? g[c] : y[c] * (T)0) : g[c];                          \
            d0[c] = v * (T)(k == 0);                                                   \
            d1[c] = v * (T)(k == 1);                                                   \
            d2[c] = v * (T)(k == w);                                                   \
            d3[c] = v * (T)(k == w + 1);                                               \
        }                                                                              \
    }

FNP_DEFINE_BACK2X2(float, fnp_back2x2_f)
FNP_DEFINE_BACK2X2(double, fnp_back2x2_d)

/* Max-pooling forward inner loops, NaN-propagating as np.maximum: a tap v replaces the
 * running maximum m when v > m or v is NaN (a NaN m is kept against numbers), and
 * the position follows through a bit mask. Ties keep the earlier tap. Written as
 * single-comparison selects, which GCC vectorises; folding two comparisons into one
 * condition (v > m || v != v ? v : m) it does not.
 *
 * fnp_maxupd: fold one tap row ``src`` (position ``idx``) into ``out``/``arg``.
 * fnp_max2x2: the four taps a b / c d of 2x2 windows, in window order. */
#define FNP_DEFINE_MAX(T, UPD, TWO)                                                      \
    static inline void UPD(const T *FNP_RESTRICT src, T *FNP_RESTRICT out,                \
                           int *FNP_RESTRICT arg, int idx, ptrdiff_t n) {                 \
        if (arg) {                                                                        \
            for (ptrdiff_t c = 0; c < n; c++) {                                           \
                T v = src[c], m = out[c];                                                 \
                int mk = -(int)(v > m) | -(int)(v != v);                                  \
                T r = v > m ? v : m;                                                      \
                out[c] = v != v ? v : r;                                                  \
                arg[c] = (idx & mk) | (arg[c] & ~mk);                                     \
            }                                                                             \
        } else {                                                                          \
            for (ptrdiff_t c = 0; c < n; c++) {                                           \
                T v = src[c], m = out[c];                                                 \
                T r = v > m ? v : m;                                                      \
                out[c] = v != v ? v : r;                                                  \
            }                                                                             \
        }                                                                                 \
    }                                                                                     \
    static inline void TWO(const T *FNP_RESTRICT pa, const T *FNP_RESTRICT pb,            \
                           const T *FNP_RESTRICT pc, const T *FNP_RESTRICT pd,            \
                           T *FNP_RESTRICT out, int *FNP_RESTRICT arg, int base, int w,   \
                           ptrdiff_t n) {                                                 \
        if (arg) {                                                                        \
            for (ptrdiff_t c = 0; c < n; c++) {                                           \
                T m = pa[c], v, r;                                                        \
                int a = base, mk;                                                         \
                v = pb[c]; mk = -(int)(v > m) | -(int)(v != v);                           \
                r = v > m ? v : m; m = v != v ? v : r; a = ((base + 1) & mk) | (a & ~mk); \
                v = pc[c]; mk = -(int)(v > m) | -(int)(v != v);                           \
                r = v > m ? v : m; m = v != v ? v : r; a = ((base + w) & mk) | (a & ~mk); \
                v = pd[c]; mk = -(int)(v > m) | -(int)(v != v);                           \
                r = v > m ? v : m; m = v != v ? v : r;                                    \
                a = ((base + w + 1) & mk) | (a & ~mk);                                    \
                out[c] = m;                                                               \
                arg[c] = a;                                                               \
            }                                                                             \
        } else {                                                                          \
            for (ptrdiff_t c = 0; c < n; c++) {                                           \
                T m = pa[c], v, r;                                                        \
                v = pb[c]; r = v > m ? v : m; m = v != v ? v : r;                         \
                v = pc[c]; r = v > m ? v : m; m = v != v ? v : r;                         \
                v = pd[c]; r = v > m ? v : m; m = v != v ? v : r;                         \
                out[c] = m;                                                               \
            }                                                                             \
        }                                                                                 \
    }

FNP_DEFINE_MAX(float, fnp_maxupd_f, fnp_max2x2_f)
FNP_DEFINE_MAX(double, fnp_maxupd_d, fnp_max2x2_d)

#endif
