"""Decoding a batch of 8-bit PNG files straight into a uint8 batch array.

``decode_png_files`` reads and decodes the files of one batch without the GIL: for
each file it reads the whole file, walks its chunks, inflates the image data with
zlib, undoes the row filters and writes the pixels into the file's row of the
batch. It decodes only the PNGs whose pixels are stored exactly as asked for:

* 8 bits per sample, interlaced (Adam7) or not;
* color type 0 (grey) for 1 channel, 2 (RGB) for 3, 6 (RGBA) for 4;
* the batch's width and height.

Every other file, and every file that is damaged in any way (a chunk's CRC, a
truncated or overlong data stream, an unknown critical chunk, IDAT chunks that are
not consecutive, no IEND...), is reported as not decodable here, so that the
caller can hand it to a general decoder (Pillow), which then decodes it or says
what is wrong. Ancillary chunks (tRNS, gAMA, text...) are checked only for their
CRC and skipped: they do not change the stored values of these color types. An
APNG (an ``acTL`` chunk) is left to the general decoder too.

Lengths read from a file are checked against what was read before any use, the
inflated data must be exactly as long as the header implies (``height * (1 + width *
channels)`` bytes without interlacing), and nothing is written outside the file's row
of the batch, whatever the file holds. Bytes after IEND are ignored. The decoded
pixels are the same for any number of threads.
"""
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_Check, PyBytes_GET_SIZE
from cython.parallel cimport parallel, prange
from libc.errno cimport EINTR, EIO, errno
from libc.stdint cimport int32_t, uint8_t, uint32_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memchr, memcmp, memcpy, memset
from posix.fcntl cimport O_CLOEXEC, O_RDONLY, open as c_open
from posix.stat cimport fstat, struct_stat
from posix.unistd cimport close, read

import numpy as np


cdef extern from "zlib.h" nogil:
    ctypedef struct z_stream:
        uint8_t *next_in
        unsigned int avail_in
        unsigned long total_in
        uint8_t *next_out
        unsigned int avail_out
        unsigned long total_out
    int inflateInit(z_stream *strm)
    int inflate(z_stream *strm, int flush)
    int inflateReset(z_stream *strm)
    int inflateEnd(z_stream *strm)
    unsigned long crc32(unsigned long crc, const uint8_t *buf, unsigned int length)
    const char *zlibVersion()
    enum:
        Z_OK
        Z_STREAM_END
        Z_NO_FLUSH


cdef extern from *:
    """
    /* The Paeth predictor (PNG specification, 9.4): of a (left), b (above) and c (upper
       left), the one nearest to a + b - c; ties go to a, then b. Selects, not branches on
       pixel values (mispredicted branches made it several times slower). */
    static inline int fastnet_png_paeth(int a, int b, int c) {
        int p = b - c, q = a - c;
        int pa = p < 0 ? -p : p, pb = q < 0 ? -q : q, pc = p + q < 0 ? -(p + q) : p + q;
        int best = pb < pa ? b : a;
        int least = pb < pa ? pb : pa;
        return pc < least ? c : best;
    }

    /* Undoes the Paeth filter of a row of n bytes, k bytes a pixel, above a reconstructed
       row. The left and upper-left bytes of each channel are carried in variables (not
       read back from the row just written), the channels interleaved: k independent
       chains for the processor to overlap. k is a constant in each instantiation. */
    static inline void fastnet_png_paeth_k(unsigned char *row, const unsigned char *up, size_t n, const int k) {
        int a[4] = {0, 0, 0, 0}, c[4] = {0, 0, 0, 0};
        for (size_t x = 0; x < n; x += (size_t)k) {
            for (int j = 0; j < k; j++) {
                int b = up[x + j];
                a[j] = (row[x + j] + fastnet_png_paeth(a[j], b, c[j])) & 255;
                row[x + j] = (unsigned char)a[j];
                c[j] = b;
            }
        }
    }

    /* k: 1, 3 or 4 (grey, RGB, RGBA). */
    static void fastnet_png_paeth_row(unsigned char *row, const unsigned char *up, size_t n, size_t k) {
        switch (k) {
            case 1: fastnet_png_paeth_k(row, up, n, 1); break;
            case 3: fastnet_png_paeth_k(row, up, n, 3); break;
            default: fastnet_png_paeth_k(row, up, n, 4); break;
        }
    }
    """
    void fastnet_png_paeth_row(uint8_t *row, const uint8_t *up, size_t n, size_t k) nogil


DECODED = 0
"""Status of a file decoded into its row of the batch."""
UNDECODABLE = 1
"""Status of a file read but not decoded here: not a PNG of the batch's kind and size, or damaged."""
SKIPPED = 2
"""Status of a row whose path was None: nothing was done."""
# A file that could not be opened or read has the status -errno (always negative).

ZLIB_VERSION = zlibVersion().decode("ascii")

# The bytes every accepted file starts with: the signature, then the IHDR chunk's length
# (13) and type; width, height, bit depth and color type follow (filled per call).
cdef uint8_t[16] _SIGNATURE_AND_IHDR = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A,
                                        0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52]
# Bytes of a PNG file that come before the first chunk after IHDR (signature, IHDR).
cdef Py_ssize_t _HEAD = 33
# The first read asks for at least this much: small files take one read.
cdef size_t _FIRST_READ = 1 << 16
# Adam7 interlacing: the seven passes' first column and row, and their column and row steps.
cdef size_t[7] _A7_X0 = [0, 4, 0, 2, 0, 1, 0]
cdef size_t[7] _A7_Y0 = [0, 0, 4, 0, 2, 0, 1]
cdef size_t[7] _A7_DX = [8, 8, 4, 4, 2, 2, 1]
cdef size_t[7] _A7_DY = [8, 8, 8, 4, 4, 2, 2]

cdef enum:
    _OK = 0
    _NO = 1
    _SKIP = 2


cdef struct _Worker:
    # One thread's buffers: the file's bytes, the inflated rows, the inflate state.
    uint8_t *file
    size_t cap
    uint8_t *raw
    z_stream zs
    int zs_ready


cdef inline uint32_t _be32(const uint8_t *p) noexcept nogil:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | <uint32_t>p[3]


cdef inline bint _is_type(const uint8_t *p, const char *name) noexcept nogil:
    return memcmp(p, name, 4) == 0


cdef _Worker *_worker_new(size_t cap, size_t raw_size) noexcept nogil:
    cdef _Worker *w = <_Worker *>malloc(sizeof(_Worker))
    if w == NULL:
        return NULL
    memset(w, 0, sizeof(_Worker))
    w.cap = cap
    w.file = <uint8_t *>malloc(cap)
    w.raw = <uint8_t *>malloc(raw_size)
    # zalloc, zfree, opaque and next_in are zero (Z_NULL): zlib's own allocator.
    w.zs_ready = inflateInit(&w.zs) == Z_OK
    if w.file == NULL or w.raw == NULL or not w.zs_ready:
        _worker_free(w)
        return NULL
    return w


cdef void _worker_free(_Worker *w) noexcept nogil:
    if w == NULL:
        return
    if w.zs_ready:
        inflateEnd(&w.zs)
    free(w.file)
    free(w.raw)
    free(w)


cdef inline int _read_some(int fd, uint8_t *buf, size_t n, size_t *got) noexcept nogil:
    """Reads up to n bytes; 0, or errno (a read interrupted by a signal is retried)."""
    cdef Py_ssize_t r
    while True:
        r = read(fd, buf, n)
        if r >= 0:
            got[0] = <size_t>r
            return 0
        if errno != EINTR:
            return errno if errno > 0 else EIO


cdef int _read_file(_Worker *w, const char *path, const uint8_t *head, size_t *size) noexcept nogil:
    """Reads the whole file into w.file: 0 (size set), _NO (its first bytes already show a
    file of another kind: the rest is not read) or -errno."""
    cdef int fd, err = 0
    cdef size_t n = 0, got = 0, want
    cdef uint8_t *grown
    cdef struct_stat st
    while True:
        fd = c_open(path, O_RDONLY | O_CLOEXEC)
        if fd >= 0:
            break
        if errno != EINTR:
            return -(errno if errno > 0 else EIO)
    err = _read_some(fd, w.file, w.cap, &got)
    n = got
    # A read of a regular file returns less than asked only at its end: a file smaller
    # than the buffer is whole after one read. (Were a read ever short elsewhere, the file
    # would look truncated and go to the general decoder, which reads it again.)
    if err == 0 and n == w.cap:
        if n >= 29 and memcmp(w.file, head, 26) != 0:
            close(fd)
            return _NO
        while err == 0:
            if n == w.cap:
                want = w.cap * 2
                if fstat(fd, &st) == 0 and st.st_size > 0 and <size_t>st.st_size + 4096 > want:
                    want = <size_t>st.st_size + 4096
                grown = <uint8_t *>realloc(w.file, want)
                if grown == NULL:
                    close(fd)
                    return _NO  # the general decoder will say what it can do
                w.file = grown
                w.cap = want
            err = _read_some(fd, w.file + n, w.cap - n, &got)
            if err != 0 or got == 0:
                break
            n += got
    close(fd)
    if err != 0:
        return -err
    size[0] = n
    return 0


cdef inline void _unfilter_sub(uint8_t *row, size_t row_bytes, size_t bpp) noexcept nogil:
    cdef size_t ch, x
    cdef int a
    for ch in range(bpp):
        a = 0
        x = ch
        while x < row_bytes:
            a = (row[x] + a) & 255
            row[x] = <uint8_t>a
            x += bpp


cdef int _unfilter(uint8_t *raw, size_t height, size_t row_bytes, size_t bpp) noexcept nogil:
    """Undoes the row filters in place (each row keeps its filter byte in front). 0 or _NO.

    Sub, Average and Paeth depend on the byte bpp to the left, just reconstructed: each
    channel is walked with that byte kept in a variable, not read back from the row just
    written (a chain of stores and loads, several times slower for one-channel images)."""
    cdef size_t y, x, ch, stride = row_bytes + 1
    cdef uint8_t *row
    cdef const uint8_t *up = NULL
    cdef uint8_t kind
    cdef int a
    for y in range(height):
        kind = raw[y * stride]
        row = raw + y * stride + 1
        if kind == 0:
            pass
        elif kind == 1:  # Sub: the byte bpp to the left
            _unfilter_sub(row, row_bytes, bpp)
        elif kind == 2:  # Up: the byte above (the first row has zeros above)
            if up != NULL:
                for x in range(row_bytes):
                    row[x] = <uint8_t>(row[x] + up[x])
        elif kind == 3:  # Average of left and above, rounded down
            for ch in range(bpp):
                a = 0
                x = ch
                if up != NULL:
                    while x < row_bytes:
                        a = (row[x] + ((a + up[x]) >> 1)) & 255
                        row[x] = <uint8_t>a
                        x += bpp
                else:
                    while x < row_bytes:
                        a = (row[x] + (a >> 1)) & 255
                        row[x] = <uint8_t>a
                        x += bpp
        elif kind == 4:  # Paeth: left, above or upper left, whichever predicts best
            if up != NULL:
                fastnet_png_paeth_row(row, up, row_bytes, bpp)
            else:  # zeros above: the predictor is the byte to the left, as for Sub
                _unfilter_sub(row, row_bytes, bpp)
        else:
            return _NO
        up = row
    return _OK


cdef inline size_t _pass_extent(size_t size, size_t first, size_t step) noexcept nogil:
    # Pixels of an Adam7 pass along a side of `size` pixels.
    return (size - first + step - 1) // step if size > first else 0


cdef size_t _adam7_size(size_t height, size_t width, size_t channels) noexcept nogil:
    """Bytes of inflated data of an interlaced image: each non-empty pass's filtered rows."""
    cdef size_t k, pw, ph, total = 0
    for k in range(7):
        pw = _pass_extent(width, _A7_X0[k], _A7_DX[k])
        ph = _pass_extent(height, _A7_Y0[k], _A7_DY[k])
        if pw and ph:
            total += ph * (1 + pw * channels)
    return total


cdef int _deinterlace(uint8_t *raw, size_t height, size_t width, size_t channels, uint8_t *dst,
                      bint channels_last) noexcept nogil:
    """Unfilters each Adam7 pass (a small image of its own, rows filtered as any) and puts
    its pixels in their places in dst. _OK or _NO."""
    cdef size_t k, pw, ph, y, x, ch, row_y, col, plane = height * width
    cdef uint8_t *seg = raw
    cdef const uint8_t *row
    for k in range(7):
        pw = _pass_extent(width, _A7_X0[k], _A7_DX[k])
        ph = _pass_extent(height, _A7_Y0[k], _A7_DY[k])
        if pw == 0 or ph == 0:
            continue  # an empty pass has no rows, not even filter bytes
        if _unfilter(seg, ph, pw * channels, channels) != _OK:
            return _NO
        for y in range(ph):
            row = seg + y * (1 + pw * channels) + 1
            row_y = (_A7_Y0[k] + y * _A7_DY[k]) * width
            for x in range(pw):
                col = row_y + _A7_X0[k] + x * _A7_DX[k]
                if channels_last:
                    for ch in range(channels):
                        dst[col * channels + ch] = row[x * channels + ch]
                else:
                    for ch in range(channels):
                        dst[ch * plane + col] = row[x * channels + ch]
        seg += ph * (1 + pw * channels)
    return _OK


cdef int _decode(_Worker *w, size_t size, const uint8_t *head, size_t height, size_t width, size_t channels,
                 uint8_t *dst, bint channels_last) noexcept nogil:
    """Decodes the PNG in w.file[:size] into dst (its row of the batch): _OK or _NO."""
    cdef const uint8_t *p = w.file
    cdef const uint8_t *kind
    cdef size_t pos, length, row_bytes = width * channels, stride = row_bytes + 1
    cdef size_t raw_size = height * stride, y, x, ch
    cdef int ret, idat = 0, ended = 0, palette = 0, interlaced
    cdef const uint8_t *row
    cdef uint8_t *plane
    # Signature, IHDR: length 13, size, bit depth 8, color type; compression and filter
    # methods 0, interlace method 0 (none) or 1 (Adam7). Its CRC covers the type and the data.
    if size < <size_t>_HEAD or memcmp(p, head, 26) != 0 or p[26] != 0 or p[27] != 0 or p[28] > 1:
        return _NO
    if crc32(0, p + 12, 17) != _be32(p + 29):
        return _NO
    interlaced = p[28]
    if interlaced:
        raw_size = _adam7_size(height, width, channels)
    inflateReset(&w.zs)
    w.zs.next_out = w.raw
    w.zs.avail_out = <unsigned int>raw_size
    pos = <size_t>_HEAD
    while True:
        if size - pos < 12:
            return _NO  # truncated: no IEND
        length = _be32(p + pos)
        if length > 0x7FFFFFFF or length > size - pos - 12:
            return _NO
        kind = p + pos + 4
        for x in range(4):
            if not (97 <= (kind[x] | 0x20) <= 122):  # ASCII letters only
                return _NO
        if crc32(0, kind, <unsigned int>(length + 4)) != _be32(p + pos + 8 + length):
            return _NO
        if _is_type(kind, b"IDAT"):
            if idat == 2:
                return _NO  # IDAT chunks must be consecutive
            idat = 1
            if length > 0:
                if ended:
                    return _NO  # data after the end of the stream
                w.zs.next_in = <uint8_t *>(p + pos + 8)
                w.zs.avail_in = <unsigned int>length
                ret = inflate(&w.zs, Z_NO_FLUSH)
                if ret == Z_STREAM_END:
                    ended = 1
                    if w.zs.avail_in != 0:
                        return _NO
                elif ret != Z_OK or w.zs.avail_in != 0:
                    return _NO  # corrupt, or more data than the image holds
        elif _is_type(kind, b"IEND"):
            if not ended or length != 0:
                return _NO
            break
        else:
            if idat == 1:
                idat = 2
            if not (kind[0] & 0x20):  # a critical chunk
                # PLTE, a suggested palette, may come before the data of an RGB(A) image
                if not (_is_type(kind, b"PLTE") and channels != 1 and idat == 0 and not palette):
                    return _NO
                palette = 1
            elif _is_type(kind, b"acTL"):
                return _NO  # an animated PNG: left to the general decoder
        pos += 12 + length
    if w.zs.avail_out != 0:
        return _NO
    if interlaced:
        return _deinterlace(w.raw, height, width, channels, dst, channels_last)
    if _unfilter(w.raw, height, row_bytes, channels) != _OK:
        return _NO
    if channels_last or channels == 1:
        for y in range(height):
            memcpy(dst + y * row_bytes, w.raw + y * stride + 1, row_bytes)
    else:
        for ch in range(channels):
            plane = dst + ch * height * width
            for y in range(height):
                row = w.raw + y * stride + 1 + ch
                for x in range(width):
                    plane[y * width + x] = row[x * channels]
    return _OK


cdef int _one(_Worker *w, const char *path, const uint8_t *head, size_t height, size_t width, size_t channels,
              uint8_t *dst, bint channels_last) noexcept nogil:
    cdef size_t size = 0
    cdef int r
    if path == NULL:
        return _SKIP
    if w == NULL:
        return _NO
    r = _read_file(w, path, head, &size)
    if r != 0:
        return r
    return _decode(w, size, head, height, width, channels, dst, channels_last)


def decode_png_files(paths, unsigned char[:, :, :, ::1] out not None, bint channels_last=True,
                     int num_threads=1):
    """Decodes the PNG files ``paths`` into ``out``, one file per row, without the GIL.

    Args:
        paths: a sequence of file paths as bytes (``os.fsencode``), one per row of
            ``out``; None skips the row.
        out: a C-contiguous uint8 array, ``(n, height, width, channels)`` when
            ``channels_last``, else ``(n, channels, height, width)``; channels 1, 3 or 4
            (grey, RGB, RGBA PNGs).
        channels_last: the layout of ``out``.
        num_threads: threads decoding files at once (1: the calling thread alone).

    Returns:
        An int32 array of one status per file: ``DECODED`` (its row holds the pixels),
        ``UNDECODABLE`` (not a PNG of this kind and size, or damaged: its row may have
        been written in part), ``SKIPPED`` (None), or ``-errno`` when the file could not
        be opened or read.
    """
    cdef Py_ssize_t n = out.shape[0], i
    cdef size_t height, width, channels, raw_size, interlaced_size, cap, per_image
    cdef uint8_t[32] head
    cdef _Worker *w = NULL
    cdef uint8_t *base
    cdef int nt = num_threads if num_threads > 1 else 1
    cdef const char **cpaths
    cdef int32_t[::1] st
    # A tuple of its own: the bytes (and their buffers) stay alive, unchanged, through the loop.
    paths = tuple(paths)
    if len(paths) != n:
        raise ValueError(f"decode_png_files: {len(paths)} paths for {n} rows of out")
    if channels_last:
        height, width, channels = out.shape[1], out.shape[2], out.shape[3]
    else:
        channels, height, width = out.shape[1], out.shape[2], out.shape[3]
    if channels not in (1, 3, 4):
        raise ValueError(f"decode_png_files: 1, 3 or 4 channels (grey, RGB, RGBA), received {channels}")
    for path in paths:
        if path is not None and not PyBytes_Check(path):
            raise TypeError(f"decode_png_files: paths must be bytes (os.fsencode) or None, received "
                            f"{type(path).__name__}")
        if path is not None and memchr(PyBytes_AS_STRING(path), 0, PyBytes_GET_SIZE(path)) != NULL:
            raise ValueError(f"decode_png_files: embedded null byte in path {path!r}")
    status = np.full(n, _SKIP, dtype=np.int32)
    st = status
    # No PNG has a zero or (per its specification) 2**31 or larger width or height; the
    # inflated data (interlaced: up to 2 filter bytes a row, plus 7) must fit zlib's 32-bit
    # counts.
    if (n == 0 or width == 0 or height == 0 or width > 0x7FFFFFFF or height > 0x7FFFFFFF
            or height * (width * channels + 2) + 7 > 0x7FFFFFFF):
        for i in range(n):
            if paths[i] is not None:
                st[i] = _NO
        return status
    raw_size = height * (width * channels + 1)
    interlaced_size = _adam7_size(height, width, channels)
    per_image = height * width * channels
    # A file of random pixels is about as large as its inflated rows: the first read takes
    # such files whole.
    cap = raw_size + (raw_size >> 3) + 4096
    if cap < _FIRST_READ:
        cap = _FIRST_READ
    memcpy(head, _SIGNATURE_AND_IHDR, 16)
    head[16] = (width >> 24) & 255
    head[17] = (width >> 16) & 255
    head[18] = (width >> 8) & 255
    head[19] = width & 255
    head[20] = (height >> 24) & 255
    head[21] = (height >> 16) & 255
    head[22] = (height >> 8) & 255
    head[23] = height & 255
    head[24] = 8
    head[25] = 0 if channels == 1 else (2 if channels == 3 else 6)
    if nt > n:
        nt = <int>n
    base = &out[0, 0, 0, 0]
    cpaths = <const char **>malloc(n * sizeof(char *))
    if cpaths == NULL:
        raise MemoryError()
    for i in range(n):
        cpaths[i] = NULL if paths[i] is None else PyBytes_AS_STRING(paths[i])
    with nogil:
        if nt == 1:
            w = _worker_new(cap, raw_size if raw_size > interlaced_size else interlaced_size)
            for i in range(n):
                st[i] = _one(w, cpaths[i], head, height, width, channels, base + i * per_image, channels_last)
            _worker_free(w)
        else:
            with parallel(num_threads=nt):
                w = _worker_new(cap, raw_size if raw_size > interlaced_size else interlaced_size)
                for i in prange(n, schedule="dynamic"):
                    st[i] = _one(w, cpaths[i], head, height, width, channels, base + i * per_image,
                                 channels_last)
                _worker_free(w)
    free(cpaths)
    return status
