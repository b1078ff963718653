# im2col / col2im for NHWC images (1-D signals are images with one row), shared by
# the convolution and transposed-convolution kernels.
#
# Rows of the column matrix are output pixels p = (n * oh + oy) * ow + ox; a row holds
# the window's taps in (ky, kx, channel) order, the order of a Keras kernel
# (kh, kw, in, out) flattened to (kh * kw * in, out). Taps outside the input are 0.
from cython cimport floating

cdef extern from "_geom.h" nogil:
    ctypedef struct Geom "fn_geom":
        Py_ssize_t n, h, w, c      # input: samples, rows, cols, channels
        Py_ssize_t oh, ow          # output rows, cols
        Py_ssize_t kh, kw          # window
        Py_ssize_t sh, sw          # strides
        Py_ssize_t dh, dw          # dilation
        Py_ssize_t ph, pw          # zero rows / cols before the input

cdef Geom make_geom(object geometry, Py_ssize_t n, Py_ssize_t c) except *

# cols[(p - p0) * K + k] = window tap k of output pixel p, for p0 <= p < p1.
cdef void im2col_rows(const floating *x, floating *cols, Py_ssize_t p0, Py_ssize_t p1,
                      const Geom *g) noexcept nogil

# x += the taps of cols scattered back to their input pixels (x is not cleared).
cdef void col2im_rows(const floating *cols, floating *x, Py_ssize_t p0, Py_ssize_t p1,
                      const Geom *g) noexcept nogil

# The same, transposed: cols_t[k * ld + (p - p0)] (tap-major; ld >= p1 - p0). For few
# channels each tap of a run of pixels is then one contiguous copy.
cdef void im2col_t_rows(const floating *x, floating *cols_t, Py_ssize_t ld, Py_ssize_t p0,
                        Py_ssize_t p1, const Geom *g) noexcept nogil

cdef void col2im_t_rows(const floating *cols_t, Py_ssize_t ld, floating *x, Py_ssize_t p0,
                        Py_ssize_t p1, const Geom *g) noexcept nogil

# True when the column matrix is the input itself (1x1 window, stride 1, no padding).
cdef bint is_pointwise(const Geom *g) noexcept nogil
