"""Loss values and their gradients in one pass (float32 and float64).

Every built-in loss is computed on a 2-D view ``(R, C)`` of the prediction: R
per-sample losses, each reducing C values (the last axis). One call returns

    value = scale * sum_r w_r * L_r

and, when ``dy`` is given, writes ``dy[r, c] = d value / d y_pred[r, c]``; when
``per_sample`` is given it receives ``w_r * L_r``. ``w`` is an optional weight per
row (float64), ``scale`` folds the reduction (1/R for a mean, 1 for a sum).

Formulas follow fastnet.losses (the Keras 3 definitions): probabilities are
clipped to ``[eps, 1 - eps]`` with the bounds rounded to the compute type, and the
gradient is zero wherever a clip or ``maximum`` is active, as automatic
differentiation of those formulas gives. The ``*_LOGITS`` codes take logits and
are numerically stable for any magnitude.

Rows are independent, so large problems are split over rows with OpenMP; the
value is reduced in float64.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport (ceil, exp, expf, fabs, fabsf, log, log1p, log1pf, logf, sqrt, sqrtf,
                        tanh, tanhf, isnan)
from libc.stdint cimport int64_t

# ---------------------------------------------------------------- codes
# elementwise: per-sample loss = mean (KLD: sum) over the last axis of f(t, p)
cdef enum:
    MSE = 0
    MAE = 1
    MAPE = 2
    MSLE = 3
    BCE = 4
    BCE_LOGITS = 5
    HINGE = 6
    SQUARED_HINGE = 7
    HUBER = 8
    LOG_COSH = 9
    POISSON = 10
    KLD = 11
    BCE_LOGITS_P = 12   # logits plus their sigmoid (q): no exp needed
    # row-wise: the per-sample loss couples the C values of a row
    CCE = 20
    CCE_LOGITS = 21
    CATEGORICAL_HINGE = 22
    COSINE = 23
    CCE_LOGITS_P = 24   # logits plus their softmax (q)
    # sparse: integer label per row
    SCCE = 30
    SCCE_LOGITS = 31
    SCCE_LOGITS_P = 32  # logits plus their softmax (q)

cdef Py_ssize_t PARALLEL_MIN_WORK = 1 << 15
cdef double LOG2 = 0.6931471805599453


def codes():
    """Name -> kernel code, for the Python side."""
    return {
        "mse": MSE, "mae": MAE, "mape": MAPE, "msle": MSLE, "bce": BCE,
        "bce_logits": BCE_LOGITS, "hinge": HINGE, "squared_hinge": SQUARED_HINGE,
        "huber": HUBER, "log_cosh": LOG_COSH, "poisson": POISSON, "kld": KLD,
        "cce": CCE, "cce_logits": CCE_LOGITS, "categorical_hinge": CATEGORICAL_HINGE,
        "cosine": COSINE, "scce": SCCE, "scce_logits": SCCE_LOGITS,
        "bce_logits_p": BCE_LOGITS_P, "cce_logits_p": CCE_LOGITS_P, "scce_logits_p": SCCE_LOGITS_P,
    }


# ---------------------------------------------------------------- scalar helpers
cdef inline floating _log(floating x) noexcept nogil:
    if floating is float:
        return logf(x)
    else:
        return log(x)


cdef inline floating _log1p(floating x) noexcept nogil:
    if floating is float:
        return log1pf(x)
    else:
        return log1p(x)


cdef inline floating _exp(floating x) noexcept nogil:
    if floating is float:
        return expf(x)
    else:
        return exp(x)


cdef inline floating _abs(floating x) noexcept nogil:
    if floating is float:
        return fabsf(x)
    else:
        return fabs(x)


cdef inline floating _tanh(floating x) noexcept nogil:
    if floating is float:
        return tanhf(x)
    else:
        return tanh(x)


cdef inline floating _sqrt(floating x) noexcept nogil:
    if floating is float:
        return sqrtf(x)
    else:
        return sqrt(x)


cdef inline floating _sign(floating x) noexcept nogil:
    return <floating>(x > 0) - <floating>(x < 0)


cdef inline floating _sigmoid(floating x) noexcept nogil:
    cdef floating e
    if x >= 0:
        return 1 / (1 + _exp(-x))
    e = _exp(x)
    return e / (1 + e)


cdef inline floating _softplus(floating x) noexcept nogil:
    # log(1 + exp(x)) without overflow
    return (x if x > 0 else 0) + _log1p(_exp(-_abs(x)))


# ---------------------------------------------------------------- elementwise
cdef inline floating _elem(int code, floating t, floating p, floating q, floating a, floating eps,
                           floating hi, floating *d) noexcept nogil:
    """f(t, p) of an elementwise loss; d receives df/dp. ``a`` is the loss parameter
    (label smoothing for BCE, delta for Huber); for hinge losses t is already +-1."""
    cdef floating e, c, z, m
    if code == MSE:
        e = p - t
        d[0] = 2 * e
        return e * e
    if code == MAE:
        e = p - t
        d[0] = _sign(e)
        return _abs(e)
    if code == MAPE:
        m = _abs(t)
        if m < eps:
            m = eps
        e = p - t
        d[0] = 100 * _sign(e) / m
        return 100 * _abs(e / m)
    if code == MSLE:
        if p >= eps:
            c = p + 1
            d[0] = 1
        else:
            c = eps + 1
            d[0] = 0
        m = t if t >= eps else eps
        e = _log(c) - _log(m + 1)
        d[0] = d[0] * 2 * e / c
        return e * e
    if code == BCE:
        if a != 0:
            t = t * (1 - a) + a / 2
        if p < eps:
            c = eps
            m = 0
        elif p > hi:
            c = hi
            m = 0
        else:
            c = p
            m = 1
        d[0] = m * ((1 - t) / (1 - c) - t / c)
        z = 0
        if t != 0:
            z = z - t * _log(c)
        if t != 1:
            z = z - (1 - t) * _log(1 - c)
        return z
    if code == BCE_LOGITS:
        if a != 0:
            t = t * (1 - a) + a / 2
        d[0] = _sigmoid(p) - t
        return (p if p > 0 else 0) - p * t + _log1p(_exp(-_abs(p)))
    if code == BCE_LOGITS_P:
        # q = sigmoid(p): log1p(exp(-|p|)) = -log1p(-min(q, 1 - q))
        if a != 0:
            t = t * (1 - a) + a / 2
        d[0] = q - t
        m = q if q < 1 - q else 1 - q
        return (p if p > 0 else 0) - p * t - _log1p(-m)
    if code == HINGE:
        z = 1 - t * p
        if z >= 0:
            d[0] = -t
            return z
        d[0] = 0
        return 0
    if code == SQUARED_HINGE:
        z = 1 - t * p
        if z >= 0:
            d[0] = -2 * t * z
            return z * z
        d[0] = 0
        return 0
    if code == HUBER:
        e = p - t
        m = _abs(e)
        c = a * _sign(e)
        z = a * m - a * a / 2
        d[0] = e if m <= a else c
        return e * e / 2 if m <= a else z
    if code == LOG_COSH:
        e = p - t
        d[0] = _tanh(e)
        return e + _softplus(-2 * e) - <floating>LOG2
    if code == POISSON:
        c = p + eps
        d[0] = 1 - t / c
        return p - t * _log(c)
    if code == KLD:
        # both clipped to [eps, 1]
        if t < eps:
            t = eps
        elif t > 1:
            t = 1
        if p < eps:
            c = eps
            m = 0
        elif p > 1:
            c = 1
            m = 0
        else:
            c = p
            m = 1
        d[0] = -m * t / c
        return t * _log(t / c)
    d[0] = 0
    return 0


cdef inline double _elem_row_k(int code, const floating *t, const floating *p, const floating *q,
                              Py_ssize_t C, bint to_pm1, floating a, floating eps, floating hi,
                              floating *d, double gs) noexcept nogil:
    # four partial sums keep the float64 additions from serialising the loop
    cdef Py_ssize_t c, c4 = C - C % 4
    cdef floating g, tt, qq = 0
    cdef double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0
    cdef floating f[4]
    cdef floating gg[4]
    cdef int j
    for c in range(0, c4, 4):
        for j in range(4):
            tt = t[c + j]
            if to_pm1:
                tt = 2 * tt - 1
            if code == BCE_LOGITS_P:
                qq = q[c + j]
            f[j] = _elem(code, tt, p[c + j], qq, a, eps, hi, &gg[j])
        s0 += f[0]
        s1 += f[1]
        s2 += f[2]
        s3 += f[3]
        if d != NULL:
            for j in range(4):
                d[c + j] = <floating>(gs * gg[j])
    for c in range(c4, C):
        tt = t[c]
        if to_pm1:
            tt = 2 * tt - 1
        if code == BCE_LOGITS_P:
            qq = q[c]
        s0 += _elem(code, tt, p[c], qq, a, eps, hi, &g)
        if d != NULL:
            d[c] = <floating>(gs * g)
    return (s0 + s1) + (s2 + s3)


cdef double _elem_row(int code, const floating *t, const floating *p, const floating *q,
                      Py_ssize_t C, bint to_pm1, floating a, floating eps, floating hi, floating *d,
                      double gs) noexcept nogil:
    """Sum over one row of f(t, p); d (when not NULL) receives gs * df/dp. Each code gets
    its own loop (the code is a constant in each inlined copy)."""
    if code == MSE:
        return _elem_row_k(MSE, t, p, q, C, to_pm1, a, eps, hi, d, gs)
    if code == MAE:
        return _elem_row_k(MAE, t, p, q, C, to_pm1, a, eps, hi, d, gs)
    if code == MAPE:
        return _elem_row_k(MAPE, t, p, q, C, to_pm1, a, eps, hi, d, gs)
    if code == MSLE:
        return _elem_row_k(MSLE, t, p, q, C, to_pm1, a, eps, hi, d, gs)
    if code == BCE:
        return _elem_row_k(BCE, t, p, q, C, to_pm1, a, eps, hi, d, gs)
    if code == BCE_LOGITS:
        return _elem_row_k(BCE_LOGITS, t, p, q, C, to_pm1, a, eps, hi, d, gs)
    if code == HINGE:
        return _elem_row_k(HINGE, t, p, q, C, to_pm1, a, eps, hi, d, gs)
    if code == SQUARED_HINGE:
        return _elem_row_k(SQUARED_HINGE, t, p, q, C, to_pm1, a, eps, hi, d, gs)
    if code == HUBER:
        return _elem_row_k(HUBER, t, p, q, C, to_pm1, a, eps, hi, d, gs)
    if code == LOG_COSH:
        return _elem_row_k(LOG_COSH, t, p, q, C, to_pm1, a, eps, hi, d, gs)
    if code == POISSON:
        return _elem_row_k(POISSON, t, p, q, C, to_pm1, a, eps, hi, d, gs)
    if code == KLD:
        return _elem_row_k(KLD, t, p, q, C, to_pm1, a, eps, hi, d, gs)
    if code == BCE_LOGITS_P:
        return _elem_row_k(BCE_LOGITS_P, t, p, q, C, to_pm1, a, eps, hi, d, gs)
    return 0.0


cdef double _elementwise(int code, const floating[:, ::1] t, const floating[:, ::1] p,
                         const floating[:, ::1] q, const double[::1] w, double scale, floating[:, ::1] dy,
                         floating[::1] per_sample, double param, double eps_d,
                         int n_threads) noexcept nogil:
    cdef Py_ssize_t R = p.shape[0], C = p.shape[1], r, c
    cdef floating eps = <floating>eps_d
    cdef floating hi = <floating>(1.0 - eps_d)
    cdef floating a = <floating>param
    cdef floating tt
    cdef double total = 0.0, row, wr
    cdef double inv_c = 1.0 if code == KLD else 1.0 / C
    cdef bint has_w = w is not None, has_dy = dy is not None, has_ps = per_sample is not None
    cdef bint to_pm1 = code == HINGE or code == SQUARED_HINGE
    cdef bint has_q = q is not None
    cdef int nt = n_threads if R * C >= PARALLEL_MIN_WORK and R > 1 else 1
    if to_pm1:
        # binary {0, 1} labels are mapped to {-1, 1} when every label is binary
        for r in range(R):
            for c in range(C):
                tt = t[r, c]
                if tt != 0 and tt != 1:
                    to_pm1 = False
                    break
            if not to_pm1:
                break
    if nt <= 1:
        for r in range(R):
            wr = w[r] if has_w else 1.0
            row = _elem_row(code, &t[r, 0], &p[r, 0], &q[r, 0] if has_q else NULL, C, to_pm1, a, eps, hi,
                            &dy[r, 0] if has_dy else NULL, scale * wr * inv_c) * inv_c * wr
            if has_ps:
                per_sample[r] = <floating>row
            total += row
        return total * scale
    for r in prange(R, nogil=True, num_threads=nt, schedule="static"):
        wr = w[r] if has_w else 1.0
        row = _elem_row(code, &t[r, 0], &p[r, 0], &q[r, 0] if has_q else NULL, C, to_pm1, a, eps, hi,
                        &dy[r, 0] if has_dy else NULL, scale * wr * inv_c) * inv_c * wr
        if has_ps:
            per_sample[r] = <floating>row
        total += row
    return total * scale


# ---------------------------------------------------------------- row-wise
cdef double _row(int code, const floating *t, const floating *p, const floating *pr, Py_ssize_t C,
                 double param, floating eps, floating hi, floating *d, double gs) noexcept nogil:
    """Loss of one row; writes the gradient times gs into d when d is not NULL."""
    cdef Py_ssize_t c, n_tie
    cdef floating s, q, cl, tc, mx, v, z, e, inv_t, inv_p, ss_t, ss_p, dot, big
    cdef double loss = 0.0, acc, lse, tsum, gq
    cdef floating ls = <floating>param
    cdef floating lsc = <floating>(param / C) if C > 0 else 0
    if code == CCE:
        # q = p / sum(p), clipped to [eps, 1 - eps]; L = -sum t log q. Terms with t = 0
        # contribute nothing to the value nor, through dL/dq, to the gradient.
        s = 0
        for c in range(C):
            s = s + p[c]
        gq = 0.0
        for c in range(C):
            tc = t[c]
            if ls != 0:
                tc = tc * (1 - ls) + lsc
            if tc != 0:
                q = p[c] / s
                cl = eps if q < eps else (hi if q > hi else q)
                loss -= tc * _log(cl)
                if q >= eps and q <= hi:
                    gq += (-tc / cl) * q
        if d != NULL:
            for c in range(C):
                tc = t[c]
                if ls != 0:
                    tc = tc * (1 - ls) + lsc
                v = 0
                if tc != 0:
                    q = p[c] / s
                    if q >= eps and q <= hi:
                        v = -tc / q
                d[c] = <floating>(gs * (v - gq) / s)
        return loss
    if code == CCE_LOGITS:
        mx = p[0]
        for c in range(1, C):
            if p[c] > mx:
                mx = p[c]
        acc = 0.0
        for c in range(C):
            e = _exp(p[c] - mx)
            acc += e
            if d != NULL:
                d[c] = e
        lse = mx + log(acc)
        tsum = 0.0
        for c in range(C):
            tc = t[c]
            if ls != 0:
                tc = tc * (1 - ls) + lsc
            if tc != 0:
                tsum += tc
                loss += tc * (lse - p[c])
        if d != NULL:
            for c in range(C):
                tc = t[c]
                if ls != 0:
                    tc = tc * (1 - ls) + lsc
                d[c] = <floating>(gs * (tsum * d[c] / acc - tc))
        return loss
    if code == CCE_LOGITS_P:
        # pr = softmax(p): logsumexp(p) = p_k - log(pr_k) at k = argmax(q), pr_k >= 1 / C
        n_tie = 0
        for c in range(1, C):
            if pr[c] > pr[n_tie]:
                n_tie = c
        lse = p[n_tie] - log(<double>pr[n_tie])
        tsum = 0.0
        for c in range(C):
            tc = t[c]
            if ls != 0:
                tc = tc * (1 - ls) + lsc
            if tc != 0:
                tsum += tc
                loss += tc * (lse - p[c])
        if d != NULL:
            for c in range(C):
                tc = t[c]
                if ls != 0:
                    tc = tc * (1 - ls) + lsc
                d[c] = <floating>(gs * (tsum * pr[c] - tc))
        return loss
    if code == CATEGORICAL_HINGE:
        # L = max(max_c((1 - t_c) p_c) - sum_c t_c p_c + 1, 0)
        dot = 0
        mx = (1 - t[0]) * p[0]
        for c in range(C):
            dot = dot + t[c] * p[c]
            v = (1 - t[c]) * p[c]
            if v > mx:
                mx = v
        z = mx - dot + 1
        if d != NULL:
            n_tie = 0
            for c in range(C):
                if (1 - t[c]) * p[c] == mx:
                    n_tie += 1
            for c in range(C):
                if z >= 0:
                    v = -t[c]
                    if (1 - t[c]) * p[c] == mx:
                        v = v + (1 - t[c]) / n_tie
                    d[c] = <floating>(gs * v)
                else:
                    d[c] = 0
        return z if z > 0 else 0
    if code == COSINE:
        # L = -sum(t * n_t * p * n_p), n_x = min(1 / sqrt(sum x^2), 1 / eps)
        ss_t = 0
        ss_p = 0
        dot = 0
        for c in range(C):
            ss_t = ss_t + t[c] * t[c]
            ss_p = ss_p + p[c] * p[c]
            dot = dot + t[c] * p[c]
        big = 1 / eps
        inv_t = 1 / _sqrt(ss_t)
        if not inv_t <= big:
            inv_t = big
        inv_p = 1 / _sqrt(ss_p)
        e = 1
        if not inv_p <= big:
            inv_p = big
            e = 0
        if d != NULL:
            for c in range(C):
                d[c] = <floating>(gs * (-inv_t * inv_p * t[c]
                                        + e * inv_t * inv_p * inv_p * inv_p * dot * p[c]))
        return -(<double>inv_t) * inv_p * dot
    return 0.0


cdef double _rowwise(int code, const floating[:, ::1] t, const floating[:, ::1] p,
                     const floating[:, ::1] q, const double[::1] w, double scale, floating[:, ::1] dy,
                     floating[::1] per_sample, double param, double eps_d,
                     int n_threads) noexcept nogil:
    cdef Py_ssize_t R = p.shape[0], C = p.shape[1], r
    cdef floating eps = <floating>eps_d
    cdef floating hi = <floating>(1.0 - eps_d)
    cdef double total = 0.0, row, wr
    cdef bint has_w = w is not None, has_dy = dy is not None, has_ps = per_sample is not None
    cdef bint has_q = q is not None
    cdef int nt = n_threads if R * C >= PARALLEL_MIN_WORK and R > 1 else 1
    if C == 0:
        return 0.0
    if nt <= 1:
        for r in range(R):
            wr = w[r] if has_w else 1.0
            row = _row(code, &t[r, 0], &p[r, 0], &q[r, 0] if has_q else NULL, C, param, eps, hi,
                       &dy[r, 0] if has_dy else NULL, scale * wr) * wr
            if has_ps:
                per_sample[r] = <floating>row
            total += row
        return total * scale
    for r in prange(R, nogil=True, num_threads=nt, schedule="static"):
        wr = w[r] if has_w else 1.0
        row = _row(code, &t[r, 0], &p[r, 0], &q[r, 0] if has_q else NULL, C, param, eps, hi,
                   &dy[r, 0] if has_dy else NULL, scale * wr) * wr
        if has_ps:
            per_sample[r] = <floating>row
        total += row
    return total * scale


# ---------------------------------------------------------------- sparse
cdef double _sparse_row(int code, int64_t y, const floating *p, const floating *q, Py_ssize_t C,
                        floating eps, floating hi, floating *d, double gs) noexcept nogil:
    cdef Py_ssize_t c, k
    cdef floating cl, mx
    cdef double s, lse, loss
    if code == SCCE:
        # L = log(sum_c clip(p_c)) - log(clip(p_y))
        s = 0.0
        for c in range(C):
            cl = p[c]
            cl = eps if cl < eps else (hi if cl > hi else cl)
            s += cl
        cl = p[y]
        cl = eps if cl < eps else (hi if cl > hi else cl)
        loss = log(s) - log(<double>cl)
        if d != NULL:
            for c in range(C):
                if p[c] < eps or p[c] > hi:
                    d[c] = 0
                elif c == y:
                    d[c] = <floating>(gs * (1.0 / s - 1.0 / p[c]))
                else:
                    d[c] = <floating>(gs / s)
        return loss
    if code == SCCE_LOGITS_P:
        # q = softmax(p): logsumexp(p) = p_k - log(q_k) at k = argmax(q)
        k = 0
        for c in range(1, C):
            if q[c] > q[k]:
                k = c
        if d != NULL:
            for c in range(C):
                d[c] = <floating>(gs * (q[c] - (1.0 if c == y else 0.0)))
        return p[k] - log(<double>q[k]) - p[y]
    # SCCE_LOGITS: L = logsumexp(p) - p_y; d keeps exp(p - max) between the passes
    mx = p[0]
    for c in range(1, C):
        if p[c] > mx:
            mx = p[c]
    s = 0.0
    if d != NULL:
        for c in range(C):
            cl = _exp(p[c] - mx)
            d[c] = cl
            s += cl
        lse = mx + log(s)
        for c in range(C):
            d[c] = <floating>(gs * (d[c] / s - (1.0 if c == y else 0.0)))
    else:
        for c in range(C):
            s += _exp(p[c] - mx)
        lse = mx + log(s)
    return lse - p[y]


cdef double _sparse(int code, const int64_t[::1] labels, const floating[:, ::1] p,
                    const floating[:, ::1] q, const double[::1] w, double scale, floating[:, ::1] dy,
                    floating[::1] per_sample, double eps_d, bint has_ignore, int64_t ignore,
                    int n_threads, Py_ssize_t *bad) noexcept nogil:
    cdef Py_ssize_t R = p.shape[0], C = p.shape[1], r, c
    cdef floating eps = <floating>eps_d
    cdef floating hi = <floating>(1.0 - eps_d)
    cdef double total = 0.0, row, wr
    cdef int64_t y
    cdef bint has_w = w is not None, has_dy = dy is not None, has_ps = per_sample is not None
    cdef bint has_q = q is not None
    cdef int nt = n_threads if R * C >= PARALLEL_MIN_WORK and R > 1 else 1
    bad[0] = -1
    for r in range(R):
        y = labels[r]
        if (y < 0 or y >= C) and not (has_ignore and y == ignore):
            bad[0] = r
            return 0.0
    if nt <= 1:
        for r in range(R):
            y = labels[r]
            wr = w[r] if has_w else 1.0
            if has_ignore and y == ignore:
                row = 0.0
                if has_dy:
                    for c in range(C):
                        dy[r, c] = 0
            else:
                row = _sparse_row(code, y, &p[r, 0], &q[r, 0] if has_q else NULL, C, eps, hi,
                                  &dy[r, 0] if has_dy else NULL, scale * wr) * wr
            if has_ps:
                per_sample[r] = <floating>row
            total += row
        return total * scale
    for r in prange(R, nogil=True, num_threads=nt, schedule="static"):
        y = labels[r]
        wr = w[r] if has_w else 1.0
        if has_ignore and y == ignore:
            row = 0.0
            if has_dy:
                for c in range(C):
                    dy[r, c] = 0
        else:
            row = _sparse_row(code, y, &p[r, 0], &q[r, 0] if has_q else NULL, C, eps, hi,
                              &dy[r, 0] if has_dy else NULL, scale * wr) * wr
        if has_ps:
            per_sample[r] = <floating>row
        total += row
    return total * scale


# ---------------------------------------------------------------- entry points
def loss(int code, const floating[:, ::1] p, const floating[:, ::1] t, const int64_t[::1] labels,
         const double[::1] w, double scale, floating[:, ::1] dy, floating[::1] per_sample,
         double param, double eps, int n_threads=1, bint has_ignore=False, int64_t ignore=0,
         const floating[:, ::1] q=None):
    """value (float) of loss ``code`` on float32 or float64 rows; fills dy / per_sample
    when given (of p's dtype).

    p: (R, C) predictions (first: its dtype chooses the float32 or float64 code);
    t: (R, C) targets for elementwise and row-wise codes (None for sparse codes);
    labels: (R,) int64 class indices for sparse codes; w: (R,) float64 row weights
    or None; q: (R, C) sigmoid/softmax of the logits p for the ``*_LOGITS_P`` codes.
    Raises ValueError on a label outside [0, C).
    """
    cdef Py_ssize_t bad = -1
    cdef double v
    if (code == BCE_LOGITS_P or code == CCE_LOGITS_P or code == SCCE_LOGITS_P) and (
            q is None or q.shape[0] != p.shape[0] or q.shape[1] != p.shape[1]):
        raise ValueError("loss kernel: the probabilities q must have the logits' shape")
    if code >= 30:
        with nogil:
            v = _sparse(code, labels, p, q, w, scale, dy, per_sample, eps, has_ignore, ignore,
                        n_threads, &bad)
        if bad >= 0:
            raise ValueError(f"Received a label value of {labels[bad]} which is outside the "
                             f"valid range of [0, {p.shape[1]})")
        return v
    with nogil:
        if code < 20:
            v = _elementwise(code, t, p, q, w, scale, dy, per_sample, param, eps, n_threads)
        else:
            v = _rowwise(code, t, p, q, w, scale, dy, per_sample, param, eps, n_threads)
    return v
