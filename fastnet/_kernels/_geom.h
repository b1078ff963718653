/* Window geometry shared by the im2col, convolution and pooling kernels.
 *
 * A C struct (not a Cython one) so that functions taking it have the same C
 * signature in the portable and the AVX2 builds of the kernels, which import each
 * other's functions at run time. Fields are documented in im2col.pxd. */
#ifndef FASTNET_GEOM_H
#define FASTNET_GEOM_H

#include <stddef.h>

typedef struct {
    ptrdiff_t n, h, w, c, oh, ow, kh, kw, sh, sw, dh, dw, ph, pw;
} fn_geom;

#endif
