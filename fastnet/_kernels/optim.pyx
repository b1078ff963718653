"""Fused optimizer updates over a flat parameter buffer.

``step`` updates every variable of a model in one call: the weights ``w``, the
gradients ``g`` and the optimizer slots (moment estimates, accumulators) are
flat arrays, and ``offsets`` gives variable i the slice offsets[i]:offsets[i+1].
Gradient clipping by value is fused into the update; clipping by norm (one norm
per variable, or one global norm) first computes the squared norms in the same
call. Weight decay (``w -= w * wd * lr`` before the update, as Keras does) is
applied to the variables whose ``decay_mask`` entry is nonzero.

Scalars derived from the step count (bias corrections) are computed in the
precision of the weights and in the order Keras computes them, so float32
results match Keras's to rounding.

Large buffers are split into one contiguous chunk per thread. Each element's
update is independent of the others, so results do not depend on the thread
count (norm sums only up to rounding).
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport sqrt, sqrtf, pow, powf, fabs, fabsf, INFINITY, NAN, isfinite
from libc.stdint cimport int64_t, uint8_t
from libc.stdlib cimport calloc, free

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
    """Updates elements start:stop, which may span several variables."""
    cdef Py_ssize_t s = _segment_of(off, nseg, start), end
    cdef floating* p0 = slots
    cdef floating* p1 = slots
    cdef floating* p2 = slots
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


cdef void _sq_norms_range(const floating* g, const int64_t* off, Py_ssize_t nseg,
                          double* out, Py_ssize_t start, Py_ssize_t stop) noexcept nogil:
    """Adds the squares of g[start:stop] to out[s] of the segment s each element lies in."""
    cdef Py_ssize_t s = _segment_of(off, nseg, start), end, i
    cdef double acc
    while start < stop and s < nseg:
        end = off[s + 1]
        if end > stop:
            end = stop
        if end > start:
            acc = 0
            for i in range(start, end):
                acc = acc + <double>g[i] * <double>g[i]
            out[s] += acc
            start = end
        s += 1


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
    cdef Py_ssize_t n = w.shape[0], nseg = offsets.shape[0] - 1, s, chunk, lo, hi
    cdef Py_ssize_t row = slots.strides[0] // sizeof(floating) if slots.shape[0] > 0 else 0
    cdef int nrows = slots.shape[0], tid
    cdef int nt = n_threads if n >= PARALLEL_MIN_WORK else 1
    cdef Consts c
    cdef floating f_scale = 1, norm, cf = <floating>clip, one = 1
    cdef double* seg = NULL
    cdef double total
    cdef floating* sp = NULL
    cdef int need = 1
    if algo == ALG_SGD:
        need = 1 if flags & FLAG_MOMENTUM else 0
    elif algo == ALG_RMSPROP:
        need = 1 + (1 if flags & FLAG_MOMENTUM else 0) + (1 if flags & FLAG_CENTERED else 0)
    elif algo == ALG_ADAM:
        need = 3 if flags & FLAG_AMSGRAD else 2
    elif algo == ALG_ADADELTA or algo == ALG_ADAMAX or algo == ALG_NADAM:
        need = 2

    if nseg < 0 or g.shape[0] != n:
        raise ValueError(f"optim.step: weights ({n}) and gradients ({g.shape[0]}) differ in size")
    if not 0 <= algo <= ALG_NADAM:
        raise ValueError(f"optim.step: unknown algorithm {algo}")
    if nseg > 0 and (offsets[0] != 0 or offsets[nseg] != n):
        raise ValueError(f"optim.step: offsets must run from 0 to {n}, "
                         f"received {offsets[0]}..{offsets[nseg]}")
    for s in range(nseg):
        if offsets[s + 1] < offsets[s]:
            raise ValueError("optim.step: offsets must be non-decreasing")
    if decay_mask.shape[0] < nseg:
        raise ValueError(f"optim.step: decay_mask has {decay_mask.shape[0]} entries for {nseg} variables")
    if state.shape[0] < 1:
        raise ValueError("optim.step: state needs one element")
    if n > 0 and nrows < need:
        raise ValueError(f"optim.step: algorithm {algo} needs {need} slot rows, received {nrows}")
    if nrows > 0 and (slot_start < 0 or slot_start + n > slots.shape[1]):
        raise ValueError(f"optim.step: slot columns {slot_start}:{slot_start + n} out of "
                         f"range for slots of width {slots.shape[1]}")
    if n == 0 or nseg == 0:
        _prepare(&c, &state[0], algo, flags, lr, wd, t, h0, h1, h2, clip, clip_mode)
        return
    if nrows > 0:
        sp = &slots[0, 0] + slot_start

    with nogil:
        _prepare(&c, &state[0], algo, flags, lr, wd, t, h0, h1, h2, clip, clip_mode)
        if clip_mode == CLIP_SCALE:
            f_scale = <floating>scale
        elif clip_mode == CLIP_NORM or clip_mode == CLIP_GLOBAL_NORM:
            seg = <double*>calloc(<size_t>nseg, sizeof(double))
            if seg == NULL or _sq_norms(&g[0], &offsets[0], nseg, n, seg, nt) != 0:
                free(seg)
                with gil:
                    raise MemoryError()
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
            _update_range(&c, &w[0], &g[0], sp, row, nrows, &offsets[0], nseg, &decay_mask[0],
                          seg, f_scale, 0, n)
        else:
            chunk = _chunk(n, nt)
            for tid in prange(nt, num_threads=nt, schedule="static", chunksize=1):
                lo = tid * chunk
                hi = lo + chunk
                if hi > n:
                    hi = n
                if lo < hi:
                    _update_range(&c, &w[0], &g[0], sp, row, nrows, &offsets[0], nseg,
                                  &decay_mask[0], seg, f_scale, lo, hi)
        free(seg)


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

