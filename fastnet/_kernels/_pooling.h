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

#endif
