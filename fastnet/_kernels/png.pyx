"""PNG scanline reconstruction for the image loaders of ``fastnet.utils``.

A non-interlaced 8-bit PNG's pixel data, once inflated, is ``height`` rows of one filter
byte followed by ``width * channels`` filtered bytes. ``unfilter`` undoes the five PNG
filters (None, Sub, Up, Average, Paeth; PNG specification section 9) into a ``(height,
width * channels)`` uint8 array, without the GIL, so a loader thread decoding images
leaves the training step's thread free. Chunk parsing and inflating stay in Python
(``zlib.decompress`` also runs without the GIL): see ``fastnet/utils/image_utils.py``.
"""
from libc.stdint cimport uint8_t


cdef inline uint8_t _paeth(int a, int b, int c) noexcept nogil:
    cdef int pa = b - c
    cdef int pb = a - c
    cdef int pc = a + b - 2 * c
    if pa < 0:
        pa = -pa
    if pb < 0:
        pb = -pb
    if pc < 0:
        pc = -pc
    if pa <= pb and pa <= pc:
        return <uint8_t>a
    if pb <= pc:
        return <uint8_t>b
    return <uint8_t>c


cdef int _unfilter(const uint8_t *raw, uint8_t *out, Py_ssize_t height, Py_ssize_t stride,
                   Py_ssize_t bpp) noexcept nogil:
    """Returns -1 when done, else the row whose filter type is not one of 0..4."""
    cdef Py_ssize_t r, i
    cdef const uint8_t *src
    cdef uint8_t *cur
    cdef uint8_t *prev
    cdef uint8_t ft
    for r in range(height):
        ft = raw[r * (stride + 1)]
        src = raw + r * (stride + 1) + 1
        cur = out + r * stride
        prev = cur - stride  # only read when r > 0
        if ft == 0:
            for i in range(stride):
                cur[i] = src[i]
        elif ft == 1:
            for i in range(min(bpp, stride)):
                cur[i] = src[i]
            for i in range(bpp, stride):
                cur[i] = <uint8_t>(src[i] + cur[i - bpp])
        elif ft == 2:
            if r == 0:
                for i in range(stride):
                    cur[i] = src[i]
            else:
                for i in range(stride):
                    cur[i] = <uint8_t>(src[i] + prev[i])
        elif ft == 3:
            if r == 0:
                for i in range(min(bpp, stride)):
                    cur[i] = src[i]
                for i in range(bpp, stride):
                    cur[i] = <uint8_t>(src[i] + (cur[i - bpp] >> 1))
            else:
                for i in range(min(bpp, stride)):
                    cur[i] = <uint8_t>(src[i] + (prev[i] >> 1))
                for i in range(bpp, stride):
                    cur[i] = <uint8_t>(src[i] + ((<int>cur[i - bpp] + <int>prev[i]) >> 1))
        elif ft == 4:
            if r == 0:  # above and upper-left are 0: Paeth picks the left byte
                for i in range(min(bpp, stride)):
                    cur[i] = src[i]
                for i in range(bpp, stride):
                    cur[i] = <uint8_t>(src[i] + cur[i - bpp])
            else:
                for i in range(min(bpp, stride)):
                    cur[i] = <uint8_t>(src[i] + prev[i])
                for i in range(bpp, stride):
                    cur[i] = <uint8_t>(src[i] + _paeth(cur[i - bpp], prev[i], prev[i - bpp]))
        else:
            return <int>r
    return -1


def unfilter(const uint8_t[::1] raw, uint8_t[:, ::1] out, Py_ssize_t bpp):
    """Reconstructs inflated 8-bit PNG scanlines ``raw`` into ``out`` ``(height, width * bpp)``.

    Args:
        raw: the inflated IDAT data, ``height * (1 + width * bpp)`` bytes (extra bytes ignored).
        out: a C-contiguous uint8 array, written in place.
        bpp: bytes per pixel (the channel count at 8 bits per sample).
    """
    cdef Py_ssize_t height = out.shape[0], stride = out.shape[1]
    if bpp < 1 or stride % bpp:
        raise ValueError(f"unfilter: a row of {stride} bytes is not a whole number of {bpp}-byte pixels")
    if raw.shape[0] < height * (stride + 1):
        raise ValueError(f"unfilter: the image data holds {raw.shape[0]} bytes, fewer than the "
                         f"{height * (stride + 1)} of {height} rows of {stride} bytes")
    if height == 0 or stride == 0:
        return
    cdef int bad
    with nogil:
        bad = _unfilter(&raw[0], &out[0, 0], height, stride, bpp)
    if bad >= 0:
        raise ValueError(f"unfilter: row {bad} has filter type {raw[bad * (stride + 1)]}, not one of 0-4")
