"""String hashes of Keras's ``Hashing`` and lookup layers, on byte strings.

``fingerprint64`` is FarmHash's 64-bit fingerprint (its ``farmhashna`` variant): an unsalted
``Hashing`` layer puts a string in bin ``fingerprint64(s) % num_bins``, so the same strings
land in the same bins as under Keras. With a salt the bin is ``siphash24(s, salt) % num_bins``
(SipHash-2-4 keyed by the two salt words). Each string is hashed without the GIL; the loop
over strings itself needs it to read the Python ``bytes`` objects. The plain-Python twin is
``fastnet/_reference/hashing.py``.
"""
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_Check, PyBytes_GET_SIZE
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.string cimport memcpy


cdef extern from "Python.h":
    const char *PyUnicode_AsUTF8AndSize(object s, Py_ssize_t *size) except NULL

cdef uint64_t K0 = 0xC3A5C85C97CB3127ULL
cdef uint64_t K1 = 0xB492B66FBE98F273ULL
cdef uint64_t K2 = 0x9AE16A3B2F90404FULL


cdef inline uint64_t _f64(const uint8_t *p) noexcept nogil:
    # Little-endian load (every platform fastnet builds for is little-endian).
    cdef uint64_t v
    memcpy(&v, p, 8)
    return v


cdef inline uint64_t _f32(const uint8_t *p) noexcept nogil:
    cdef uint32_t v
    memcpy(&v, p, 4)
    return v


cdef inline uint64_t _rot(uint64_t v, int r) noexcept nogil:
    if r == 0:
        return v
    return (v >> r) | (v << (64 - r))


cdef inline uint64_t _mix(uint64_t v) noexcept nogil:
    return v ^ (v >> 47)


cdef inline uint64_t _len16(uint64_t u, uint64_t v, uint64_t mul) noexcept nogil:
    cdef uint64_t a = (u ^ v) * mul
    a ^= a >> 47
    cdef uint64_t b = (v ^ a) * mul
    b ^= b >> 47
    return b * mul


cdef uint64_t _len0to16(const uint8_t *s, uint64_t n) noexcept nogil:
    cdef uint64_t mul, a, b, c, d
    cdef uint32_t y, z
    if n >= 8:
        mul = K2 + n * 2
        a = _f64(s) + K2
        b = _f64(s + n - 8)
        c = _rot(b, 37) * mul + a
        d = (_rot(a, 25) + b) * mul
        return _len16(c, d, mul)
    if n >= 4:
        mul = K2 + n * 2
        return _len16(n + (_f32(s) << 3), _f32(s + n - 4), mul)
    if n > 0:
        y = <uint32_t>s[0] + (<uint32_t>s[n >> 1] << 8)
        z = <uint32_t>n + (<uint32_t>s[n - 1] << 2)
        return _mix(<uint64_t>y * K2 ^ <uint64_t>z * K0) * K2
    return K2


cdef uint64_t _len17to32(const uint8_t *s, uint64_t n) noexcept nogil:
    cdef uint64_t mul = K2 + n * 2
    cdef uint64_t a = _f64(s) * K1
    cdef uint64_t b = _f64(s + 8)
    cdef uint64_t c = _f64(s + n - 8) * mul
    cdef uint64_t d = _f64(s + n - 16) * K2
    return _len16(_rot(a + b, 43) + _rot(c, 30) + d, a + _rot(b + K2, 18) + c, mul)


cdef uint64_t _len33to64(const uint8_t *s, uint64_t n) noexcept nogil:
    cdef uint64_t mul = K2 + n * 2
    cdef uint64_t a = _f64(s) * K2
    cdef uint64_t b = _f64(s + 8)
    cdef uint64_t c = _f64(s + n - 8) * mul
    cdef uint64_t d = _f64(s + n - 16) * K2
    cdef uint64_t y = _rot(a + b, 43) + _rot(c, 30) + d
    cdef uint64_t z = _len16(y, a + _rot(b + K2, 18) + c, mul)
    cdef uint64_t e = _f64(s + 16) * mul
    cdef uint64_t f = _f64(s + 24)
    cdef uint64_t g = (y + _f64(s + n - 32)) * mul
    cdef uint64_t h = (z + _f64(s + n - 24)) * mul
    return _len16(_rot(e + f, 43) + _rot(g, 30) + h, e + _rot(f + a, 18) + g, mul)


cdef inline void _weak32(const uint8_t *s, uint64_t a, uint64_t b, uint64_t *o0, uint64_t *o1) noexcept nogil:
    cdef uint64_t w = _f64(s), x = _f64(s + 8), y = _f64(s + 16), z = _f64(s + 24), c
    a += w
    b = _rot(b + a + z, 21)
    c = a
    a += x
    a += y
    b += _rot(a, 44)
    o0[0] = a + z
    o1[0] = b + c


cdef uint64_t fingerprint64_c(const uint8_t *s, uint64_t n) noexcept nogil:
    if n <= 16:
        return _len0to16(s, n)
    if n <= 32:
        return _len17to32(s, n)
    if n <= 64:
        return _len33to64(s, n)
    cdef uint64_t seed = 81
    cdef uint64_t x = seed
    cdef uint64_t y = seed * K1 + 113
    cdef uint64_t z = _mix(y * K2 + 113) * K2
    cdef uint64_t v0 = 0, v1 = 0, w0 = 0, w1 = 0, t, mul
    x = x * K2 + _f64(s)
    cdef const uint8_t *end = s + ((n - 1) // 64) * 64
    cdef const uint8_t *last = end + ((n - 1) & 63) - 63
    while True:
        x = _rot(x + y + v0 + _f64(s + 8), 37) * K1
        y = _rot(y + v1 + _f64(s + 48), 42) * K1
        x ^= w1
        y += v0 + _f64(s + 40)
        z = _rot(z + w0, 33) * K1
        _weak32(s, v1 * K1, x + w0, &v0, &v1)
        _weak32(s + 32, z + w1, y + _f64(s + 16), &w0, &w1)
        t = z
        z = x
        x = t
        s += 64
        if s == end:
            break
    mul = K1 + ((z & 0xFF) << 1)
    s = last
    w0 += (n - 1) & 63
    v0 += w0
    w0 += v0
    x = _rot(x + y + v0 + _f64(s + 8), 37) * mul
    y = _rot(y + v1 + _f64(s + 48), 42) * mul
    x ^= w1 * 9
    y += v0 * 9 + _f64(s + 40)
    z = _rot(z + w0, 33) * mul
    _weak32(s, v1 * mul, x + w0, &v0, &v1)
    _weak32(s + 32, z + w1, y + _f64(s + 16), &w0, &w1)
    t = z
    z = x
    x = t
    return _len16(_len16(v0, w0, mul) + _mix(y) * K0 + z, _len16(v1, w1, mul) + x, mul)


cdef inline void _sipround(uint64_t *v) noexcept nogil:
    v[0] += v[1]
    v[1] = _rot(v[1], 64 - 13) ^ v[0]
    v[0] = _rot(v[0], 32)
    v[2] += v[3]
    v[3] = _rot(v[3], 64 - 16) ^ v[2]
    v[0] += v[3]
    v[3] = _rot(v[3], 64 - 21) ^ v[0]
    v[2] += v[1]
    v[1] = _rot(v[1], 64 - 17) ^ v[2]
    v[2] = _rot(v[2], 32)


cdef uint64_t siphash24_c(const uint8_t *s, uint64_t n, uint64_t k0, uint64_t k1) noexcept nogil:
    cdef uint64_t v[4]
    v[0] = k0 ^ 0x736F6D6570736575ULL
    v[1] = k1 ^ 0x646F72616E646F6DULL
    v[2] = k0 ^ 0x6C7967656E657261ULL
    v[3] = k1 ^ 0x7465646279746573ULL
    cdef uint64_t full = n - (n % 8), i, m = 0
    cdef uint8_t tail[8]
    i = 0
    while i < full:
        m = _f64(s + i)
        v[3] ^= m
        _sipround(v)
        _sipround(v)
        v[0] ^= m
        i += 8
    for i in range(8):
        tail[i] = 0
    for i in range(n - full):
        tail[i] = s[full + i]
    m = _f64(tail) | ((n & 0xFF) << 56)
    v[3] ^= m
    _sipround(v)
    _sipround(v)
    v[0] ^= m
    v[2] ^= 0xFF
    _sipround(v)
    _sipround(v)
    _sipround(v)
    _sipround(v)
    return v[0] ^ v[1] ^ v[2] ^ v[3]


def hash_buckets(list strings, int64_t num_bins, salt=None, int64_t[::1] out=None):
    """Bins in [0, num_bins) of a list of ``str`` (hashed as UTF-8) or ``bytes``: FarmHash
    Fingerprint64 modulo ``num_bins``, or SipHash-2-4 keyed by ``salt = (k0, k1)`` when a salt
    is given. Writes into ``out`` (int64, one per string) and returns it."""
    cdef Py_ssize_t i, n = len(strings), size
    cdef object item
    cdef const char *data
    cdef uint64_t k0 = 0, k1 = 0, h
    cdef bint strong = salt is not None
    if num_bins <= 0:
        raise ValueError(f"hash_buckets: num_bins must be positive, received {num_bins}")
    if strong:
        k0 = <uint64_t>(int(salt[0]) & 0xFFFFFFFFFFFFFFFF)
        k1 = <uint64_t>(int(salt[1]) & 0xFFFFFFFFFFFFFFFF)
    if out is None:
        import numpy as np
        out = np.empty(n, dtype=np.int64)
    if out.shape[0] != n:
        raise ValueError(f"hash_buckets: out has {out.shape[0]} entries for {n} strings")
    for i in range(n):
        item = strings[i]
        if PyBytes_Check(item):
            data = PyBytes_AS_STRING(item)
            size = PyBytes_GET_SIZE(item)
        elif isinstance(item, str):
            # The UTF-8 form Python caches with the string: no new object per string.
            data = PyUnicode_AsUTF8AndSize(item, &size)
        else:
            raise TypeError(f"hash_buckets: expected str or bytes, received {type(item).__name__}")
        if strong:
            h = siphash24_c(<const uint8_t *>data, <uint64_t>size, k0, k1)
        else:
            h = fingerprint64_c(<const uint8_t *>data, <uint64_t>size)
        out[i] = <int64_t>(h % <uint64_t>num_bins)
    return out.base if out.base is not None else out


def fingerprint64(bytes s):
    """FarmHash Fingerprint64 of one byte string (a Python int in [0, 2**64))."""
    return fingerprint64_c(<const uint8_t *>PyBytes_AS_STRING(s), PyBytes_GET_SIZE(s))


def siphash24(bytes s, k0, k1):
    """SipHash-2-4 of one byte string under the key (k0, k1)."""
    return siphash24_c(<const uint8_t *>PyBytes_AS_STRING(s), PyBytes_GET_SIZE(s),
                       <uint64_t>(int(k0) & 0xFFFFFFFFFFFFFFFF), <uint64_t>(int(k1) & 0xFFFFFFFFFFFFFFFF))
