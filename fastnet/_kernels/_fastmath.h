/* Vectorisable float32 exp, tanh and sigmoid for the kernels' elementwise loops.
 *
 * libm's expf/tanhf are scalar calls the compiler cannot vectorise; these are
 * branch-free (selects only), so loops that call them vectorise. exp uses
 * Cody-Waite range reduction and a degree-6 polynomial (error about 1 ulp on
 * [-87, 88], zero below); tanh uses an odd polynomial for |x| < 0.625 and 1 - 2/(e^2|x| + 1)
 * beyond, blended without branches. Measured against float64 in the tests.
 */
#ifndef FASTNET_FASTMATH_H
#define FASTNET_FASTMATH_H
#include <stdint.h>
#include <string.h>

static inline float fn_bits_to_float(int32_t i) { float f; memcpy(&f, &i, sizeof f); return f; }

static inline float fn_expf(float x0) {
    float x = x0 < -87.33654f ? -87.33654f : x0;
    x = x > 88.72283f ? 88.72283f : x;
    /* round to nearest by adding and removing 1.5 * 2^23: no floorf call, which the
       baseline x86-64 instruction set (no roundps) would make a libm call per element */
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float y = p * r * r + r + 1.0f;
    /* 2^n through the exponent bits; n in [-126, 128] after the clamps, split so
       that 2^128 (x near 88.7) does not overflow the exponent field. */
    int32_t ni = (int32_t)n;
    int32_t half = ni >> 1;
    y = y * fn_bits_to_float((half + 127) << 23) * fn_bits_to_float((ni - half + 127) << 23);
    return x0 < -87.33654f ? 0.0f : y;  /* below the smallest normal: flush to zero */
}

static inline float fn_tanhf(float x) {
    float a = x < 0 ? -x : x;
    /* large |x|: 1 - 2 / (e^{2|x|} + 1), sign restored */
    float e = fn_expf(2.0f * (a > 9.0f ? 9.0f : a));
    float big = 1.0f - 2.0f / (e + 1.0f);
    big = x < 0 ? -big : big;
    /* small |x|: odd polynomial */
    float z = x * x;
    float p = -5.70498872745e-3f;
    p = p * z + 2.06390887954e-2f;
    p = p * z - 5.37397155531e-2f;
    p = p * z + 1.33314422036e-1f;
    p = p * z - 3.33332819422e-1f;
    float small = p * z * x + x;
    return a < 0.625f ? small : big;
}

static inline float fn_sigmoidf(float x) {
    /* 1 / (1 + e^-x), with e^-x clamped so it never overflows to inf */
    float e = fn_expf(x < -88.0f ? 88.0f : -x);
    return 1.0f / (1.0f + e);
}

#endif
