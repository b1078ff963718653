/* Vectorisable float32 exp, tanh and sigmoid for the kernels' elementwise loops (the
 * activations and the recurrent layers' gates: one implementation for all).
 *
 * libm's expf/tanhf are scalar calls the compiler cannot vectorise; these are
 * branch-free (selects only), so loops that call them vectorise. exp uses
 * Cody-Waite range reduction and a degree-6 polynomial (about 1 ulp on
 * [ln FLT_MIN, ln FLT_MAX], zero below, FLT_MAX above); tanh uses an odd polynomial
 * for |x| < 0.625 and 1 - 2/(e^2|x| + 1) beyond (about 1.3 ulp), sigmoid 1/(1 + e^-x)
 * (about 2.5 ulp). Measured against float64 in tests/kernels/test_fastmath.py.
 */
#ifndef FASTNET_FASTMATH_H
#define FASTNET_FASTMATH_H
#include <math.h>
#include <stdint.h>
#include <string.h>

static inline float fn_expf(float x0) {
    /* clamped to [ln FLT_MIN, ln FLT_MAX]: every result is a normal float, never inf */
    float x = x0 < -87.33654f ? -87.33654f : x0;
    x = x > 88.72283f ? 88.72283f : x;
    /* n = round(x / ln 2) by adding and removing 1.5 * 2^23: no floorf call, which the
       baseline x86-64 instruction set (no roundps) would make a libm call per element;
       t's low mantissa bits then hold n + 2^22 */
    float t = x * 1.44269504088896341f + 12582912.0f;
    float n = t - 12582912.0f;
    float r = x - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    /* times 2^n: n added to p's exponent bits. p = e^r is in [2^-0.5, 2^0.5], so after
       the clamps the exponent stays normal (n = -126 only with r >= 0, p >= 1; n = 128
       only with r < 0, p < 1). */
    int32_t ti, pi;
    memcpy(&ti, &t, sizeof ti);
    memcpy(&pi, &p, sizeof pi);
    pi += (ti - 0x4B400000) * (1 << 23);
    memcpy(&p, &pi, sizeof p);
    return x0 < -87.33654f ? 0.0f : p;  /* below the smallest normal: flush to zero */
}

static inline float fn_tanhf(float x) {
    float a = fabsf(x), z = x * x;
    /* small |x|: odd polynomial */
    float s = -5.70498872745e-3f;
    s = s * z + 2.06390887954e-2f;
    s = s * z - 5.37397155531e-2f;
    s = s * z + 1.33314422036e-1f;
    s = s * z - 3.33332819422e-1f;
    s = s * z * x + x;
    /* large |x|: 1 - 2 / (e^{2|x|} + 1), sign restored (fn_expf never returns inf) */
    float big = copysignf(1.0f - 2.0f / (fn_expf(2.0f * a) + 1.0f), x);
    return a < 0.625f ? s : big;
}

static inline float fn_sigmoidf(float x) {
    /* 1 / (1 + e^-x); fn_expf saturates at FLT_MAX, so 1 + e^-x stays finite */
    return 1.0f / (1.0f + fn_expf(-x));
}

#endif
