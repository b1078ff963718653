"""Counting kernels behind the stateful metrics (float32 and float64 inputs).

Accuracy kernels work on ``R`` positions (rows of a 2-D view of y_pred) and add
``scale * sum_r w_r * match_r`` to ``state[0]`` and ``scale * sum_r w_r`` to
``state[1]`` (the total and count of a Mean metric); ``w`` is an optional float64
weight per position. Argmax takes the first maximum. Top-k counts a target as a
hit when fewer than k classes score strictly higher and its own score is finite.

Confusion kernels add weighted true/false positive/negative counts per threshold to
``out`` (rows tp, fp, tn, fn): a prediction is positive when it is strictly above
the threshold; a label is positive when nonzero. ``confusion_buckets`` does this in
O(N + T) for the evenly spaced thresholds i / (T - 1): the prediction, clipped to
[0, 1], falls into bucket ceil(p * (T - 1)) - 1 (computed in the input's type), and
a reverse cumulative sum gives the counts for every threshold.
"""
from cython cimport floating
from libc.math cimport ceil, ceilf
from libc.stdint cimport int64_t


cdef inline bint _finite(floating x) noexcept nogil:
    return x == x and x - x == 0


# ---------------------------------------------------------------- accuracy family
cdef void _binary(const floating[:, ::1] t, const floating[:, ::1] p, double threshold,
                  const double[::1] w, double scale, double *state) noexcept nogil:
    cdef Py_ssize_t R = p.shape[0], C = p.shape[1], r, c, hits
    cdef floating thr = <floating>threshold
    cdef floating one = 1, zero = 0
    cdef double tot = 0.0, cnt = 0.0, wr
    cdef bint has_w = w is not None
    for r in range(R):
        hits = 0
        for c in range(C):
            if (one if p[r, c] > thr else zero) == t[r, c]:
                hits += 1
        wr = w[r] if has_w else 1.0
        tot += wr * hits / C
        cnt += wr
    state[0] += tot * scale
    state[1] += cnt * scale


cdef inline Py_ssize_t _argmax(const floating *x, Py_ssize_t C) noexcept nogil:
    cdef Py_ssize_t c, k = 0
    for c in range(1, C):
        if x[c] > x[k]:
            k = c
    return k


cdef void _categorical(const floating[:, ::1] t, const floating[:, ::1] p, const double[::1] w,
                       double scale, double *state) noexcept nogil:
    cdef Py_ssize_t R = p.shape[0], C = p.shape[1], r
    cdef double tot = 0.0, cnt = 0.0, wr
    cdef bint has_w = w is not None
    for r in range(R):
        wr = w[r] if has_w else 1.0
        if _argmax(&t[r, 0], C) == _argmax(&p[r, 0], C):
            tot += wr
        cnt += wr
    state[0] += tot * scale
    state[1] += cnt * scale


cdef void _sparse(const double[::1] labels, const floating[:, ::1] p, const double[::1] w,
                  double scale, double *state) noexcept nogil:
    cdef Py_ssize_t R = p.shape[0], C = p.shape[1], r
    cdef double tot = 0.0, cnt = 0.0, wr
    cdef bint has_w = w is not None
    for r in range(R):
        wr = w[r] if has_w else 1.0
        if <double>_argmax(&p[r, 0], C) == labels[r]:
            tot += wr
        cnt += wr
    state[0] += tot * scale
    state[1] += cnt * scale


cdef inline bint _in_top_k(const floating *x, Py_ssize_t C, int64_t target, Py_ssize_t k) noexcept nogil:
    cdef Py_ssize_t c, above = 0
    cdef floating v
    if target < 0 or target >= C:
        return False
    v = x[target]
    if not _finite(v):
        return False
    for c in range(C):
        if x[c] > v:
            above += 1
            if above >= k:
                return False
    return True


cdef void _topk(const floating[:, ::1] t, const int64_t[::1] labels, const floating[:, ::1] p,
                Py_ssize_t k, const double[::1] w, double scale, double *state) noexcept nogil:
    cdef Py_ssize_t R = p.shape[0], C = p.shape[1], r
    cdef int64_t target
    cdef double tot = 0.0, cnt = 0.0, wr
    cdef bint has_w = w is not None, has_t = t is not None
    for r in range(R):
        wr = w[r] if has_w else 1.0
        if has_t:
            target = _argmax(&t[r, 0], t.shape[1])
        else:
            target = labels[r]
        if _in_top_k(&p[r, 0], C, target, k):
            tot += wr
        cnt += wr
    state[0] += tot * scale
    state[1] += cnt * scale


# ---------------------------------------------------------------- confusion counts
cdef void _confusion(const floating[::1] t, const floating[::1] p, const double[::1] w,
                     Py_ssize_t per_w, const double[::1] thresholds, Py_ssize_t L,
                     double[:, ::1] out) noexcept nogil:
    cdef Py_ssize_t n = p.shape[0], T = thresholds.shape[0], i, j, l
    cdef double wi
    cdef bint pos, has_w = w is not None
    cdef floating v
    for i in range(n):
        wi = w[i // per_w] if has_w else 1.0
        pos = t[i] != 0
        v = p[i]
        l = i % L
        for j in range(T):
            if v > <floating>thresholds[j]:
                if pos:
                    out[0, j * L + l] += wi
                else:
                    out[1, j * L + l] += wi
            else:
                if pos:
                    out[3, j * L + l] += wi
                else:
                    out[2, j * L + l] += wi


cdef void _buckets(const floating[::1] t, const floating[::1] p, const double[::1] w,
                   Py_ssize_t per_w, Py_ssize_t T, bint with_eps, Py_ssize_t L,
                   double[:, ::1] totals, double[:, ::1] scratch) noexcept nogil:
    """scratch (2, T * L): positive / negative weight per bucket and label;
    totals (2, L): all positive / negative weight per label."""
    cdef Py_ssize_t n = p.shape[0], i, b, l
    cdef double wi
    cdef floating v, tm1 = <floating>(T - 1), one = 1, zero = 0
    cdef bint has_w = w is not None
    for i in range(n):
        wi = w[i // per_w] if has_w else 1.0
        l = i % L
        v = p[i]
        if v < zero:
            v = zero
        elif v > one:
            v = one
        if v == v:
            if floating is float:
                b = <Py_ssize_t>ceilf(v * tm1) - 1
            else:
                b = <Py_ssize_t>ceil(v * tm1) - 1
        else:
            b = -1
        if with_eps and b < 0:
            b = 0
        if t[i] != 0:
            if b >= 0:
                scratch[0, b * L + l] += wi
            totals[0, l] += wi
        else:
            if b >= 0:
                scratch[1, b * L + l] += wi
            totals[1, l] += wi


cdef void _buckets_finish(Py_ssize_t T, Py_ssize_t L, double[:, ::1] totals, double[:, ::1] scratch,
                          double[:, ::1] acc) noexcept nogil:
    """Reverse cumulative sums of the buckets added to acc (4, T * L): tp, fp, tn, fn."""
    cdef Py_ssize_t j, l
    cdef double cp, cn, tot_p, tot_n
    for l in range(L):
        tot_p = totals[0, l]
        tot_n = totals[1, l]
        cp = 0.0
        cn = 0.0
        j = T - 1
        while j >= 0:
            cp += scratch[0, j * L + l]
            cn += scratch[1, j * L + l]
            acc[0, j * L + l] += cp
            acc[1, j * L + l] += cn
            acc[2, j * L + l] += tot_n - cn
            acc[3, j * L + l] += tot_p - cp
            j -= 1


# ---------------------------------------------------------------- entry points
cdef _check_rows(Py_ssize_t R, Py_ssize_t C, Py_ssize_t tR, Py_ssize_t tC, const double[::1] w,
                 double[::1] state):
    if tR != R or (tC >= 0 and tC != C):
        raise ValueError("accuracy: targets and predictions differ in shape")
    if w is not None and w.shape[0] != R:
        raise ValueError("accuracy: one weight per row is needed")
    if state.shape[0] < 2:
        raise ValueError("accuracy: state must hold (total, count)")


def binary_f32(const float[:, ::1] t, const float[:, ::1] p, double threshold, const double[::1] w,
               double scale, double[::1] state):
    """state += scale * (sum_r w_r mean_c[(p > threshold) == t], sum_r w_r)."""
    _check_rows(p.shape[0], p.shape[1], t.shape[0], t.shape[1], w, state)
    _binary(t, p, threshold, w, scale, &state[0])


def binary_f64(const double[:, ::1] t, const double[:, ::1] p, double threshold, const double[::1] w,
               double scale, double[::1] state):
    _check_rows(p.shape[0], p.shape[1], t.shape[0], t.shape[1], w, state)
    _binary(t, p, threshold, w, scale, &state[0])


def categorical_f32(const float[:, ::1] t, const float[:, ::1] p, const double[::1] w, double scale,
                    double[::1] state):
    """state += scale * (sum_r w_r [argmax t_r == argmax p_r], sum_r w_r)."""
    _check_rows(p.shape[0], p.shape[1], t.shape[0], t.shape[1], w, state)
    if p.shape[1] == 0:
        raise ValueError("categorical accuracy needs at least one class")
    _categorical(t, p, w, scale, &state[0])


def categorical_f64(const double[:, ::1] t, const double[:, ::1] p, const double[::1] w, double scale,
                    double[::1] state):
    _check_rows(p.shape[0], p.shape[1], t.shape[0], t.shape[1], w, state)
    if p.shape[1] == 0:
        raise ValueError("categorical accuracy needs at least one class")
    _categorical(t, p, w, scale, &state[0])


def sparse_f32(const double[::1] labels, const float[:, ::1] p, const double[::1] w, double scale,
               double[::1] state):
    """state += scale * (sum_r w_r [argmax p_r == labels_r], sum_r w_r)."""
    _check_rows(p.shape[0], p.shape[1], labels.shape[0], -1, w, state)
    if p.shape[1] == 0:
        raise ValueError("sparse categorical accuracy needs at least one class")
    _sparse(labels, p, w, scale, &state[0])


def sparse_f64(const double[::1] labels, const double[:, ::1] p, const double[::1] w, double scale,
               double[::1] state):
    _check_rows(p.shape[0], p.shape[1], labels.shape[0], -1, w, state)
    if p.shape[1] == 0:
        raise ValueError("sparse categorical accuracy needs at least one class")
    _sparse(labels, p, w, scale, &state[0])


def topk_f32(const float[:, ::1] t, const int64_t[::1] labels, const float[:, ::1] p, Py_ssize_t k,
             const double[::1] w, double scale, double[::1] state):
    """Top-k hits; t: one-hot targets (argmax taken), or None with labels: int64 classes."""
    if t is not None:
        _check_rows(p.shape[0], p.shape[1], t.shape[0], t.shape[1], w, state)
    else:
        _check_rows(p.shape[0], p.shape[1], labels.shape[0], -1, w, state)
    if p.shape[1] == 0:
        raise ValueError("top-k accuracy needs at least one class")
    _topk(t, labels, p, k, w, scale, &state[0])


def topk_f64(const double[:, ::1] t, const int64_t[::1] labels, const double[:, ::1] p, Py_ssize_t k,
             const double[::1] w, double scale, double[::1] state):
    if t is not None:
        _check_rows(p.shape[0], p.shape[1], t.shape[0], t.shape[1], w, state)
    else:
        _check_rows(p.shape[0], p.shape[1], labels.shape[0], -1, w, state)
    if p.shape[1] == 0:
        raise ValueError("top-k accuracy needs at least one class")
    _topk(t, labels, p, k, w, scale, &state[0])


def confusion_f32(const float[::1] t, const float[::1] p, const double[::1] w, Py_ssize_t per_w,
                  const double[::1] thresholds, Py_ssize_t n_labels, double[:, ::1] out):
    """Adds tp, fp, tn, fn per threshold to out (4, T * L); w[i // per_w] weighs element i,
    which counts for label i % L."""
    _check_confusion(t.shape[0], p.shape[0], w, per_w, thresholds.shape[0], n_labels, out)
    _confusion(t, p, w, per_w, thresholds, n_labels, out)


def confusion_f64(const double[::1] t, const double[::1] p, const double[::1] w, Py_ssize_t per_w,
                  const double[::1] thresholds, Py_ssize_t n_labels, double[:, ::1] out):
    _check_confusion(t.shape[0], p.shape[0], w, per_w, thresholds.shape[0], n_labels, out)
    _confusion(t, p, w, per_w, thresholds, n_labels, out)


cdef _check_confusion(Py_ssize_t nt, Py_ssize_t n, const double[::1] w, Py_ssize_t per_w, Py_ssize_t T,
                      Py_ssize_t L, double[:, ::1] out):
    if nt != n:
        raise ValueError("confusion: labels and predictions differ in size")
    if per_w < 1 or L < 1 or (w is not None and w.shape[0] * per_w < n):
        raise ValueError("confusion: the weights do not cover the predictions")
    if out.shape[0] != 4 or out.shape[1] != T * L:
        raise ValueError("confusion: the accumulator must have shape (4, T * L)")


def confusion_buckets_f32(const float[::1] t, const float[::1] p, const double[::1] w, Py_ssize_t per_w,
                          Py_ssize_t n_thresholds, bint with_eps, Py_ssize_t n_labels, double[:, ::1] acc):
    """Adds tp, fp, tn, fn for the thresholds i / (T - 1) to acc (4, T * L), element i
    counting for label i % L."""
    _run_buckets(t, p, w, per_w, n_thresholds, with_eps, n_labels, acc)


def confusion_buckets_f64(const double[::1] t, const double[::1] p, const double[::1] w, Py_ssize_t per_w,
                          Py_ssize_t n_thresholds, bint with_eps, Py_ssize_t n_labels, double[:, ::1] acc):
    _run_buckets(t, p, w, per_w, n_thresholds, with_eps, n_labels, acc)


cdef _run_buckets(const floating[::1] t, const floating[::1] p, const double[::1] w, Py_ssize_t per_w,
                  Py_ssize_t T, bint with_eps, Py_ssize_t L, double[:, ::1] acc):
    import numpy as np
    if T < 1 or L < 1 or acc.shape[0] != 4 or acc.shape[1] != T * L:
        raise ValueError("confusion_buckets: the accumulator must have shape (4, T * L)")
    _check_confusion(t.shape[0], p.shape[0], w, per_w, T, L, acc)
    cdef double[:, ::1] scratch = np.zeros((2, T * L))
    cdef double[:, ::1] totals = np.zeros((2, L))
    with nogil:
        _buckets(t, p, w, per_w, T, with_eps, L, totals, scratch)
        _buckets_finish(T, L, totals, scratch, acc)
