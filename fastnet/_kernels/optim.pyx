"""Fused optimizer updates over a flat parameter buffer.

``FlatUpdate.run`` (bound once per model) and ``step`` update every variable of a
model in one call: the weights ``w``, the
gradients ``g`` and the optimizer slots (moment estimates, accumulators) are
flat arrays, and ``offsets`` gives variable i the slice offsets[i]:offsets[i+1].
Gradient clipping by value is fused into the update; clipping by norm (one norm
per variable, or one global norm) first computes the squared norms in the same
call. Weight decay (``w -= w * wd * lr`` before the update, as Keras does) is
applied to the variables whose ``decay_mask`` entry is nonzero.

Scalars derived from the step count (bias corrections) are computed in the
precision of the weights and in the order Keras computes them, so float32
results match Keras's to rounding (bit for bit on the recorded reference cases).

Large buffers are split into one contiguous chunk per thread. Each element's
update is independent of the others, so results do not depend on the thread
count (norm sums only up to rounding).
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport sqrt, sqrtf, pow, powf, fabs, fabsf, INFINITY, NAN, isfinite
from libc.stdint cimport int64_t, uint8_t
from libc.stdlib cimport calloc, free

from fastnet._kernels._openmp cimport fastnet_denormals_flush, fastnet_denormals_restore

# Below this many elements a step runs on the calling thread only.
cdef Py_ssize_t PARALLEL_MIN_WORK = 1 << 15

# Algorithms (fastnet.optimizers.base uses the same numbers).
cdef enum:
    ALG_SGD = 0
    ALG_RMSPROP = 1
    ALG_ADAM = 2
    ALG_ADAGRAD = 3
    ALG_ADADELTA = 4
    ALG_ADAMAX = 5
    ALG_NADAM = 6

# Flags.
cdef enum:
    FLAG_NESTEROV = 1      # SGD
    FLAG_AMSGRAD = 2       # Adam: slot 2 keeps the running maximum of slot 1
    FLAG_CENTERED = 4      # RMSprop: slot 2 keeps the mean gradient
    FLAG_MOMENTUM = 8      # SGD, RMSprop: a momentum slot is kept
    FLAG_ADVANCE = 16      # Nadam: advance the running product of momentum factors first

# Gradient clipping modes.
cdef enum:
    CLIP_NONE = 0
    CLIP_VALUE = 1         # g = clip(g, -clip, clip)
    CLIP_NORM = 2          # per variable: g *= clip / max(||g||, clip)
    CLIP_GLOBAL_NORM = 3   # all variables: g *= clip * min(1 / ||G||, 1 / clip)
    CLIP_SCALE = 4         # g *= scale (a global-norm factor computed by the caller)

# Slots each algorithm reads (rows of the slots array).
#   SGD: 0 momentum | RMSprop: 0 velocity, then momentum (if kept), then average gradient
#   (if centered)
#   Adam: 0 m, 1 v, 2 v_hat | Adagrad: 0 accumulator | Adadelta: 0 E[g^2], 1 E[dx^2]
#   Adamax: 0 m, 1 u | Nadam: 0 m, 1 v (state[0]: running product of momentum factors)


cdef struct Consts:
    # Every value is computed in the weights' precision and stored (exactly) as a double.
    double lr, wd, lo, hi
    double k0, k1, k2, k3, k4, k5, k6, k7
    int algo, flags
    int row1, row2          # slot rows of the second and third slot


cdef inline floating _sqrt(floating x) noexcept nogil:
    if floating is float:
        return sqrtf(x)
    else:
        return sqrt(x)


cdef inline floating _pow(floating x, floating y) noexcept nogil:
    if floating is float:
        return powf(x, y)
    else:
        return pow(x, y)


cdef inline floating _abs(floating x) noexcept nogil:
    if floating is float:
        return fabsf(x)
    else:
        return fabs(x)


# --------------------------------------------------------------------------- per-step constants

cdef void _prepare(Consts* c, floating* state, int algo, int flags, double lr, double wd,
                   int64_t t, double h0, double h1, double h2, double clip,
                   int clip_mode) noexcept nogil:
    """Fills c with the constants of this step; t is the number of steps already taken."""
    cdef floating one = 1, half = 0.5
    cdef floating step = <floating>(t + 1), nxt = <floating>(t + 2)
    cdef floating lr_f = <floating>lr
    cdef floating b1, b2, p1, p2, decay, u_t, u_t1, up
    c.algo = algo
    c.flags = flags
    c.row1 = 1
    c.row2 = 2
    if algo == ALG_RMSPROP and not flags & FLAG_MOMENTUM:
        c.row2 = 1          # no momentum slot: the average gradient is the second row
    c.lr = lr_f
    c.wd = <floating>wd
    if clip_mode == CLIP_VALUE:
        c.lo = -<floating>clip
        c.hi = <floating>clip
    else:
        c.lo = -INFINITY
        c.hi = INFINITY
    c.k0 = c.k1 = c.k2 = c.k3 = c.k4 = c.k5 = c.k6 = c.k7 = 0
    if algo == ALG_SGD:
        c.k0 = <floating>h0                                  # momentum
    elif algo == ALG_RMSPROP or algo == ALG_ADADELTA:
        c.k0 = <floating>h0                                  # rho
        c.k1 = <floating>(1.0 - h0)                          # 1 - rho
        c.k2 = <floating>h2                                  # epsilon
        c.k3 = <floating>h1                                  # momentum (RMSprop)
    elif algo == ALG_ADAM:
        p1 = _pow(<floating>h0, step)
        p2 = _pow(<floating>h1, step)
        c.k0 = <floating>(1.0 - h0)
        c.k1 = <floating>(1.0 - h1)
        c.k2 = <floating>h2
        c.k3 = lr_f * _sqrt(one - p2) / (one - p1)          # step size with bias corrections
    elif algo == ALG_ADAGRAD:
        c.k2 = <floating>h2
    elif algo == ALG_ADAMAX:
        p1 = _pow(<floating>h0, step)
        c.k0 = <floating>(1.0 - h0)
        c.k1 = <floating>h1
        c.k2 = <floating>h2
        c.k3 = one - p1
    elif algo == ALG_NADAM:
        b1 = <floating>h0
        b2 = <floating>h1
        decay = <floating>0.96
        if flags & FLAG_ADVANCE:
            state[0] = state[0] * b1 * (one - half * _pow(decay, step))
        u_t = b1 * (one - half * _pow(decay, step))
        u_t1 = b1 * (one - half * _pow(decay, nxt))
        up = state[0]
        c.k0 = one - b1
        c.k1 = one - b2
        c.k2 = <floating>h2
        c.k3 = u_t1
        c.k4 = one - up * u_t1
        c.k5 = one - u_t
        c.k6 = one - up
        c.k7 = one - _pow(b2, step)


# --------------------------------------------------------------------------- element loops

cdef inline floating _grad(const floating* g, Py_ssize_t i, floating scale, floating lo,
                           floating hi) noexcept nogil:
    cdef floating x = g[i] * scale
    x = hi if x > hi else x
    return lo if x < lo else x


cdef void _update(const Consts* c, floating* w, const floating* g, floating* s0, floating* s1,
                  floating* s2, Py_ssize_t n, floating scale, bint decay) noexcept nogil:
    """Updates n elements of one variable (pointers already at the first element)."""
    cdef Py_ssize_t i
    cdef floating lr = <floating>c.lr, wd = <floating>c.wd
    cdef floating lo = <floating>c.lo, hi = <floating>c.hi
    cdef floating k0 = <floating>c.k0, k1 = <floating>c.k1, k2 = <floating>c.k2
    cdef floating k3 = <floating>c.k3, k4 = <floating>c.k4, k5 = <floating>c.k5
    cdef floating k6 = <floating>c.k6, k7 = <floating>c.k7
    cdef floating gi, wi, m, v, a, d, mh
    cdef int algo = c.algo, flags = c.flags

    if decay and wd != 0:
        for i in range(n):
            wi = w[i]
            w[i] = wi - wi * wd * lr

    if algo == ALG_SGD:
        if flags & FLAG_MOMENTUM:
            if flags & FLAG_NESTEROV:
                for i in range(n):
                    gi = _grad(g, i, scale, lo, hi)
                    m = s0[i] * k0 - gi * lr
                    s0[i] = m
                    w[i] = w[i] + (m * k0 - gi * lr)
            else:
                for i in range(n):
                    gi = _grad(g, i, scale, lo, hi)
                    m = s0[i] * k0 - gi * lr
                    s0[i] = m
                    w[i] = w[i] + m
        else:
            for i in range(n):
                gi = _grad(g, i, scale, lo, hi)
                w[i] = w[i] - gi * lr

    elif algo == ALG_RMSPROP:
        # k0 rho, k1 1 - rho, k2 epsilon, k3 momentum
        if flags & FLAG_CENTERED:
            for i in range(n):
                gi = _grad(g, i, scale, lo, hi)
                v = k0 * s0[i] + k1 * (gi * gi)
                s0[i] = v
                a = k0 * s2[i] + k1 * gi
                s2[i] = a
                d = (lr * gi) / _sqrt(v - a * a + k2)
                if flags & FLAG_MOMENTUM:
                    d = k3 * s1[i] + d
                    s1[i] = d
                w[i] = w[i] - d
        else:
            for i in range(n):
                gi = _grad(g, i, scale, lo, hi)
                v = k0 * s0[i] + k1 * (gi * gi)
                s0[i] = v
                d = (lr * gi) / _sqrt(v + k2)
                if flags & FLAG_MOMENTUM:
                    d = k3 * s1[i] + d
                    s1[i] = d
                w[i] = w[i] - d

    elif algo == ALG_ADAM:
        # k0 1 - beta_1, k1 1 - beta_2, k2 epsilon, k3 step size
        if flags & FLAG_AMSGRAD:
            for i in range(n):
                gi = _grad(g, i, scale, lo, hi)
                m = s0[i] + (gi - s0[i]) * k0
                s0[i] = m
                v = s1[i] + (gi * gi - s1[i]) * k1
                s1[i] = v
                v = s2[i] if s2[i] > v else v
                s2[i] = v
                w[i] = w[i] - (m * k3) / (_sqrt(v) + k2)
        else:
            for i in range(n):
                gi = _grad(g, i, scale, lo, hi)
                m = s0[i] + (gi - s0[i]) * k0
                s0[i] = m
                v = s1[i] + (gi * gi - s1[i]) * k1
                s1[i] = v
                w[i] = w[i] - (m * k3) / (_sqrt(v) + k2)

    elif algo == ALG_ADAGRAD:
        for i in range(n):
            gi = _grad(g, i, scale, lo, hi)
            a = s0[i] + gi * gi
            s0[i] = a
            w[i] = w[i] - (lr * gi) / _sqrt(a + k2)

    elif algo == ALG_ADADELTA:
        # k0 rho, k1 1 - rho, k2 epsilon
        for i in range(n):
            gi = _grad(g, i, scale, lo, hi)
            a = k0 * s0[i] + k1 * (gi * gi)
            s0[i] = a
            d = -((_sqrt(s1[i] + k2) * gi) / _sqrt(a + k2))
            s1[i] = k0 * s1[i] + k1 * (d * d)
            w[i] = w[i] + lr * d

    elif algo == ALG_ADAMAX:
        # k0 1 - beta_1, k1 beta_2, k2 epsilon, k3 1 - beta_1 ** t
        for i in range(n):
            gi = _grad(g, i, scale, lo, hi)
            m = s0[i] + (gi - s0[i]) * k0
            s0[i] = m
            a = k1 * s1[i]
            d = _abs(gi)
            a = a if a > d else d
            s1[i] = a
            w[i] = w[i] - (lr * m) / (k3 * (a + k2))

    elif algo == ALG_NADAM:
        # k0 1 - beta_1, k1 1 - beta_2, k2 epsilon, k3 u_{t+1}, k4 1 - prod_{t+1},
        # k5 1 - u_t, k6 1 - prod_t, k7 1 - beta_2 ** t
        for i in range(n):
            gi = _grad(g, i, scale, lo, hi)
            m = s0[i] + (gi - s0[i]) * k0
            s0[i] = m
            v = s1[i] + (gi * gi - s1[i]) * k1
            s1[i] = v
            mh = (k3 * m) / k4 + (k5 * gi) / k6
            w[i] = w[i] - (mh * lr) / (_sqrt(v / k7) + k2)


cdef inline Py_ssize_t _segment_of(const int64_t* off, Py_ssize_t nseg, Py_ssize_t pos) noexcept nogil:
    """The last segment s with off[s] <= pos (binary search)."""
    cdef Py_ssize_t lo = 0, hi = nseg, mid
    while hi - lo > 1:
        mid = (lo + hi) >> 1
        if off[mid] <= pos:
            lo = mid
        else:
            hi = mid
    return lo


cdef void _update_range(const Consts* c, floating* w, const floating* g, floating* slots,
                        Py_ssize_t row, int nrows, const int64_t* off, Py_ssize_t nseg,
                        const uint8_t* mask, const double* seg_scale, floating scale,
                        Py_ssize_t start, Py_ssize_t stop) noexcept nogil:
    """Updates elements start:stop, which may span several variables. In float32,
    subnormal values are flushed to zero meanwhile (see fastnet_denormals_flush)."""
    cdef Py_ssize_t s = _segment_of(off, nseg, start), end
    cdef floating* p0 = slots
    cdef floating* p1 = slots
    cdef floating* p2 = slots
    cdef unsigned int fp_mode = 0
    if floating is float:
        fp_mode = fastnet_denormals_flush()
    if nrows > c.row1:
        p1 = slots + c.row1 * row
    if nrows > c.row2:
        p2 = slots + c.row2 * row
    while start < stop and s < nseg:
        end = off[s + 1]
        if end > stop:
            end = stop
        if end > start:
            _update(c, w + start, g + start, p0 + start, p1 + start, p2 + start, end - start,
                    <floating>seg_scale[s] if seg_scale != NULL else scale, mask[s] != 0)
            start = end
        s += 1
    if floating is float:
        fastnet_denormals_restore(fp_mode)


cdef void _sq_norms_range(const floating* g, const int64_t* off, Py_ssize_t nseg,
                          double* out, Py_ssize_t start, Py_ssize_t stop) noexcept nogil:
    """Adds the squares of g[start:stop] to out[s] of the segment s each element lies in."""
    cdef Py_ssize_t s = _segment_of(off, nseg, start), end
    while start < stop and s < nseg:
        end = off[s + 1]
        if end > stop:
            end = stop
        if end > start:
            out[s] += _sum_squares(g + start, end - start)
            start = end
        s += 1


cdef double _sum_squares(const floating* x, Py_ssize_t n) noexcept nogil:
    """Sum of squares in double with eight independent partial sums (vectorisable)."""
    cdef double acc[8]
    cdef double total = 0, a
    cdef Py_ssize_t i, j, m = n - n % 8
    for j in range(8):
        acc[j] = 0
    for i in range(0, m, 8):
        for j in range(8):
            a = <double>x[i + j]
            acc[j] += a * a
    for i in range(m, n):
        a = <double>x[i]
        total += a * a
    for j in range(8):
        total += acc[j]
    return total


cdef inline Py_ssize_t _chunk(Py_ssize_t n, int nt) noexcept nogil:
    # Per-thread chunk, a multiple of 16 elements so threads never share a cache line.
    return (((n + nt - 1) // nt) + 15) & ~(<Py_ssize_t>15)


cdef int _sq_norms(const floating* g, const int64_t* off, Py_ssize_t nseg, Py_ssize_t n,
                   double* out, int nt) noexcept nogil:
    """out[s] = sum of squares of segment s. Returns -1 when out of memory."""
    cdef Py_ssize_t chunk, lo, hi, s
    cdef int tid, k
    cdef double* part
    for s in range(nseg):
        out[s] = 0
    if nt <= 1:
        _sq_norms_range(g, off, nseg, out, 0, n)
        return 0
    part = <double*>calloc(<size_t>(nt * nseg), sizeof(double))
    if part == NULL:
        return -1
    chunk = _chunk(n, nt)
    for tid in prange(nt, nogil=True, num_threads=nt, schedule="static", chunksize=1):
        lo = tid * chunk
        hi = lo + chunk
        if hi > n:
            hi = n
        if lo < hi:
            _sq_norms_range(g, off, nseg, part + tid * nseg, lo, hi)
    for k in range(nt):
        for s in range(nseg):
            out[s] += part[k * nseg + s]
    free(part)
    return 0


cdef int _run(floating* w, const floating* g, const int64_t* off, Py_ssize_t nseg, Py_ssize_t n,
              floating* slots, Py_ssize_t row, int nrows, floating* state, const uint8_t* mask,
              int algo, int flags, double lr, double wd, int64_t t, double h0, double h1,
              double h2, int clip_mode, double clip, double scale, int n_threads) noexcept nogil:
    """The whole step on validated pointers; slots points at the first element's column.
    Returns 0, or -1 when scratch memory could not be allocated."""
    cdef Consts c
    cdef Py_ssize_t s, chunk, lo, hi
    cdef int tid, nt = n_threads if n >= PARALLEL_MIN_WORK else 1
    cdef floating f_scale = 1, norm, cf = <floating>clip, one = 1
    cdef double* seg = NULL
    cdef double total
    _prepare(&c, state, algo, flags, lr, wd, t, h0, h1, h2, clip, clip_mode)
    if n == 0 or nseg == 0:
        return 0
    if clip_mode == CLIP_SCALE:
        f_scale = <floating>scale
    elif clip_mode == CLIP_NORM or clip_mode == CLIP_GLOBAL_NORM:
        seg = <double*>calloc(<size_t>nseg, sizeof(double))
        if seg == NULL or _sq_norms(g, off, nseg, n, seg, nt) != 0:
            free(seg)
            return -1
        if clip_mode == CLIP_NORM:
            for s in range(nseg):
                norm = _sqrt(<floating>seg[s])
                seg[s] = cf / (norm if norm > cf else cf)
        else:
            total = 0
            for s in range(nseg):
                total = total + seg[s]
            norm = _sqrt(<floating>total)
            if isfinite(norm):
                f_scale = cf * ((one / norm) if one / norm < one / cf else (one / cf))
            else:
                f_scale = <floating>NAN
            free(seg)
            seg = NULL
    if nt <= 1:
        _update_range(&c, w, g, slots, row, nrows, off, nseg, mask, seg, f_scale, 0, n)
    else:
        chunk = _chunk(n, nt)
        for tid in prange(nt, num_threads=nt, schedule="static", chunksize=1):
            lo = tid * chunk
            hi = lo + chunk
            if hi > n:
                hi = n
            if lo < hi:
                _update_range(&c, w, g, slots, row, nrows, off, nseg, mask, seg, f_scale, lo, hi)
    free(seg)
    return 0


cdef int _slots_needed(int algo, int flags):
    if algo == ALG_SGD:
        return 1 if flags & FLAG_MOMENTUM else 0
    if algo == ALG_RMSPROP:
        return 1 + (1 if flags & FLAG_MOMENTUM else 0) + (1 if flags & FLAG_CENTERED else 0)
    if algo == ALG_ADAM:
        return 3 if flags & FLAG_AMSGRAD else 2
    if algo == ALG_ADAGRAD:
        return 1
    return 2


cdef _check_offsets(const int64_t[::1] offsets, Py_ssize_t n):
    cdef Py_ssize_t s, nseg = offsets.shape[0] - 1
    if nseg < 0:
        raise ValueError("optim: offsets needs at least one entry")
    if offsets[0] != 0 or offsets[nseg] != n:
        raise ValueError(f"optim: offsets must run from 0 to {n}, received "
                         f"{offsets[0]}..{offsets[nseg]}")
    for s in range(nseg):
        if offsets[s + 1] < offsets[s]:
            raise ValueError("optim: offsets must be non-decreasing")


def step(int algo, int flags, floating[::1] w, const floating[::1] g,
         const int64_t[::1] offsets, floating[:, ::1] slots, Py_ssize_t slot_start,
         floating[::1] state, const uint8_t[::1] decay_mask, double lr, double wd,
         int64_t t, double h0, double h1, double h2, int clip_mode, double clip,
         double scale, int n_threads=1):
    """One optimizer step on every variable of a flat buffer.

    Args:
        algo, flags: the algorithm and its options (constants at the top of this module).
        w, g: flat weights (updated in place) and gradients, same length n.
        offsets: int64 (nseg + 1,), offsets[0] == 0, offsets[-1] == n, non-decreasing.
        slots: (k, N) optimizer state; element i of w pairs with column slot_start + i.
        state: scalar state (Nadam: [running product]); at least one element.
        decay_mask: uint8 (nseg,), weight decay applies to segment s when nonzero.
        lr, wd: learning rate and weight decay (0 for none).
        t: steps already taken (the bias corrections use t + 1).
        h0, h1, h2: hyperparameters (see ``_prepare``).
        clip_mode, clip: gradient clipping; scale: the factor for CLIP_SCALE.
        n_threads: threads for large buffers.
    """
    cdef Py_ssize_t n = w.shape[0], nseg = offsets.shape[0] - 1
    cdef Py_ssize_t row = slots.strides[0] // sizeof(floating) if slots.shape[0] > 0 else 0
    cdef int nrows = slots.shape[0], need = _slots_needed(algo, flags), rc
    cdef floating* sp = NULL
    if g.shape[0] != n:
        raise ValueError(f"optim.step: weights ({n}) and gradients ({g.shape[0]}) differ in size")
    if not 0 <= algo <= ALG_NADAM:
        raise ValueError(f"optim.step: unknown algorithm {algo}")
    _check_offsets(offsets, n)
    if decay_mask.shape[0] < nseg:
        raise ValueError(f"optim.step: decay_mask has {decay_mask.shape[0]} entries for {nseg} variables")
    if state.shape[0] < 1:
        raise ValueError("optim.step: state needs one element")
    if n > 0 and nrows < need:
        raise ValueError(f"optim.step: algorithm {algo} needs {need} slot rows, received {nrows}")
    if nrows > 0 and n > 0:
        if slot_start < 0 or slot_start + n > slots.shape[1]:
            raise ValueError(f"optim.step: slot columns {slot_start}:{slot_start + n} out of "
                             f"range for slots of width {slots.shape[1]}")
        sp = &slots[0, 0] + slot_start
    with nogil:
        rc = _run(&w[0] if n > 0 else NULL, &g[0] if n > 0 else NULL, &offsets[0], nseg, n, sp,
                  row, nrows, &state[0], &decay_mask[0] if nseg > 0 else NULL, algo, flags, lr,
                  wd, t, h0, h1, h2, clip_mode, clip, scale, n_threads)
    if rc != 0:
        raise MemoryError("optim.step: could not allocate the norm scratch")


cdef class FlatUpdate:
    """A prepared ``step`` for one packed model: the slots, offsets, decay mask, state and
    iteration counter are bound once, so each ``run`` only passes the flat buffers, the
    learning rate and the weight decay. ``run`` increments the iteration counter."""

    cdef object _keep, _values, _grads
    cdef bint _double
    cdef void* _slots
    cdef void* _state
    cdef void* _w
    cdef const void* _g
    cdef const int64_t* _off
    cdef const uint8_t* _mask
    cdef int64_t* _iters
    cdef Py_ssize_t _n, _nseg, _row
    cdef int _nrows, _algo, _flags, _clip_mode
    cdef double _h0, _h1, _h2, _clip
    cdef object _dtype

    def __init__(self, int algo, int flags, slots, state, offsets, decay_mask, iterations,
                 double h0, double h1, double h2, int clip_mode, double clip):
        import numpy as np

        cdef float[:, ::1] s32
        cdef double[:, ::1] s64
        cdef float[::1] st32
        cdef double[::1] st64
        cdef const int64_t[::1] off = offsets
        cdef const uint8_t[::1] mask = decay_mask
        cdef int64_t[::1] it = iterations.reshape(1)
        self._dtype = np.dtype(slots.dtype)
        self._double = self._dtype == np.float64
        if not self._double and self._dtype != np.float32:
            raise ValueError(f"FlatUpdate: slots must be float32 or float64, received {self._dtype}")
        if np.dtype(state.dtype) != self._dtype or state.shape[0] < 1:
            raise ValueError("FlatUpdate: state must be a 1-element array of the slots' dtype")
        self._n = offsets[offsets.shape[0] - 1] if offsets.shape[0] > 0 else 0
        _check_offsets(off, self._n)
        self._nseg = off.shape[0] - 1
        if mask.shape[0] < self._nseg:
            raise ValueError(f"FlatUpdate: decay_mask has {mask.shape[0]} entries for "
                             f"{self._nseg} variables")
        if slots.ndim != 2 or (slots.shape[0] > 0 and slots.shape[1] != self._n):
            raise ValueError(f"FlatUpdate: slots must have shape (k, {self._n}), received "
                             f"{slots.shape}")
        if self._n > 0 and slots.shape[0] < _slots_needed(algo, flags):
            raise ValueError(f"FlatUpdate: algorithm {algo} needs {_slots_needed(algo, flags)} "
                             f"slot rows, received {slots.shape[0]}")
        self._nrows = slots.shape[0]
        self._row = self._n
        self._slots = NULL
        if self._double:
            s64 = slots
            st64 = state
            if self._nrows > 0 and self._n > 0:
                self._slots = &s64[0, 0]
            self._state = &st64[0]
        else:
            s32 = slots
            st32 = state
            if self._nrows > 0 and self._n > 0:
                self._slots = &s32[0, 0]
            self._state = &st32[0]
        self._off = &off[0]
        self._mask = &mask[0] if self._nseg > 0 else NULL
        self._iters = &it[0]
        self._keep = (slots, state, offsets, decay_mask, iterations, off, mask, it)
        if not 0 <= algo <= ALG_NADAM:
            raise ValueError(f"FlatUpdate: unknown algorithm {algo}")
        self._algo, self._flags = algo, flags
        self._h0, self._h1, self._h2 = h0, h1, h2
        self._clip_mode, self._clip = clip_mode, clip
        self._values = None
        self._grads = None

    cdef _bind(self, values, bint writable):
        cdef float[::1] v32
        cdef const float[::1] c32
        cdef double[::1] v64
        cdef const double[::1] c64
        cdef Py_ssize_t size
        if getattr(values, "dtype", None) != self._dtype:
            raise ValueError(f"FlatUpdate: expected a flat {self._dtype} array, received "
                             f"{getattr(values, 'dtype', type(values).__name__)}")
        if self._double:
            if writable:
                v64 = values
                size = v64.shape[0]
            else:
                c64 = values
                size = c64.shape[0]
        else:
            if writable:
                v32 = values
                size = v32.shape[0]
            else:
                c32 = values
                size = c32.shape[0]
        if size != self._n:
            raise ValueError(f"FlatUpdate: expected {self._n} elements, received {size}")
        if size == 0:
            return None
        if self._double:
            return <size_t>(&v64[0] if writable else &c64[0])
        return <size_t>(&v32[0] if writable else &c32[0])

    def run(self, values, grads, double lr, double wd, int n_threads=1):
        """One step: values (updated in place) and grads are the flat buffers."""
        cdef int rc
        cdef int64_t t
        if values is not self._values:
            p = self._bind(values, True)
            self._w = <void*><size_t>p if p is not None else NULL
            self._values = values
        if grads is not self._grads:
            p = self._bind(grads, False)
            self._g = <const void*><size_t>p if p is not None else NULL
            self._grads = grads
        t = self._iters[0]
        with nogil:
            if self._double:
                rc = _run(<double*>self._w, <const double*>self._g, self._off, self._nseg, self._n,
                          <double*>self._slots, self._row, self._nrows, <double*>self._state,
                          self._mask, self._algo, self._flags | FLAG_ADVANCE, lr, wd, t, self._h0,
                          self._h1, self._h2, self._clip_mode, self._clip, 1.0, n_threads)
            else:
                rc = _run(<float*>self._w, <const float*>self._g, self._off, self._nseg, self._n,
                          <float*>self._slots, self._row, self._nrows, <float*>self._state,
                          self._mask, self._algo, self._flags | FLAG_ADVANCE, lr, wd, t, self._h0,
                          self._h1, self._h2, self._clip_mode, self._clip, 1.0, n_threads)
        if rc != 0:
            raise MemoryError("optim: could not allocate the norm scratch")
        self._iters[0] = t + 1

    def run_segment(self, Py_ssize_t i, w, g, double lr, double wd, int n_threads, bint first,
                    int clip_mode, double scale):
        """Updates variable i alone, with its own flat weights ``w`` and gradient ``g`` (the
        per-variable path); slots, state and decay mask are the bound ones. ``first`` marks
        the first variable of a step (Nadam advances its product then). The iteration
        counter is not incremented."""
        cdef float[::1] w32
        cdef const float[::1] g32
        cdef double[::1] w64
        cdef const double[::1] g64
        cdef int64_t off[2]
        cdef Py_ssize_t size
        cdef int rc, flags = self._flags | (FLAG_ADVANCE if first else 0)
        cdef int64_t t = self._iters[0]
        cdef void* wp = NULL
        cdef const void* gp = NULL
        cdef void* sp = NULL
        if not 0 <= i < self._nseg:
            raise ValueError(f"FlatUpdate: variable index {i} out of range for {self._nseg} variables")
        size = self._off[i + 1] - self._off[i]
        if getattr(w, "dtype", None) != self._dtype or getattr(g, "dtype", None) != self._dtype:
            raise ValueError(f"FlatUpdate: weights and gradient must be {self._dtype} arrays")
        if self._double:
            w64 = w
            g64 = g
            if w64.shape[0] != size or g64.shape[0] != size:
                raise ValueError(f"FlatUpdate: variable {i} has {size} elements, received "
                                 f"{w64.shape[0]} weights and {g64.shape[0]} gradients")
            if size > 0:
                wp = &w64[0]
                gp = &g64[0]
        else:
            w32 = w
            g32 = g
            if w32.shape[0] != size or g32.shape[0] != size:
                raise ValueError(f"FlatUpdate: variable {i} has {size} elements, received "
                                 f"{w32.shape[0]} weights and {g32.shape[0]} gradients")
            if size > 0:
                wp = &w32[0]
                gp = &g32[0]
        off[0] = 0
        off[1] = size
        with nogil:
            if self._double:
                if self._slots != NULL:
                    sp = <double*>self._slots + self._off[i]
                rc = _run(<double*>wp, <const double*>gp, off, 1, size, <double*>sp, self._row,
                          self._nrows, <double*>self._state, self._mask + i, self._algo, flags,
                          lr, wd, t, self._h0, self._h1, self._h2, clip_mode, self._clip, scale,
                          n_threads)
            else:
                if self._slots != NULL:
                    sp = <float*>self._slots + self._off[i]
                rc = _run(<float*>wp, <const float*>gp, off, 1, size, <float*>sp, self._row,
                          self._nrows, <float*>self._state, self._mask + i, self._algo, flags,
                          lr, wd, t, self._h0, self._h1, self._h2, clip_mode, self._clip, scale,
                          n_threads)
        if rc != 0:
            raise MemoryError("optim: could not allocate the norm scratch")


def sum_squares(const floating[::1] x, int n_threads=1):
    """Sum of x ** 2, accumulated in double."""
    cdef Py_ssize_t n = x.shape[0]
    cdef int64_t off[2]
    cdef double out = 0
    cdef int nt = n_threads if n >= PARALLEL_MIN_WORK else 1
    if n == 0:
        return 0.0
    off[0] = 0
    off[1] = n
    with nogil:
        if _sq_norms(&x[0], off, 1, n, &out, nt) != 0:
            with gil:
                raise MemoryError()
    return out

