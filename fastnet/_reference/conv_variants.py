"""Numpy twins of the depthwise, grouped/3-D convolution and 3-D pooling kernels.

Same layouts as ``fastnet._kernels.conv_variants``: x is (N, D, H, W, C), the
geometry an 18-tuple (input, output, window, strides, dilation, padding before,
each as (d, h, w)). Written tap by tap with strided slices of a padded input.
"""
import numpy as np


def _unpack(geometry):
    g = tuple(int(v) for v in geometry)
    return g[0:3], g[3:6], g[6:9], g[9:12], g[12:15], g[15:18]


def _padded(x, geometry, value=0.0):
    """x padded so that every tap of every window is inside it."""
    size, out, k, s, d, p = _unpack(geometry)
    after = [max(0, (o - 1) * st + (kk - 1) * dl + 1 - pp - n)
             for n, o, kk, st, dl, pp in zip(size, out, k, s, d, p)]
    pads = [(0, 0)] + [(pp, a) for pp, a in zip(p, after)] + [(0, 0)]
    return np.pad(x, pads, constant_values=value)


def _taps(geometry):
    _, out, k, s, d, _ = _unpack(geometry)
    for a in range(k[0]):
        for b in range(k[1]):
            for e in range(k[2]):
                sl = tuple(slice(t * dl, t * dl + st * (o - 1) + 1, st)
                           for t, dl, st, o in zip((a, b, e), d, s, out))
                yield (a * k[1] + b) * k[2] + e, (slice(None),) + sl


def depthwise_forward(x, w, b, geometry):
    """w: (taps, C * M). Returns (N, OD, OH, OW, C * M)."""
    n, c = x.shape[0], x.shape[-1]
    m = w.shape[1] // c
    _, out, _, _, _, _ = _unpack(geometry)
    xp = _padded(x, geometry)
    y = np.zeros((n,) + out + (c, m), dtype=x.dtype)
    for tap, sl in _taps(geometry):
        y += xp[sl][..., None] * w[tap].reshape(c, m)
    y = y.reshape((n,) + out + (c * m,))
    return y + b if b is not None else y


def depthwise_backward(dy, x, w, geometry):
    """Returns (dx, dw, db)."""
    n, c = x.shape[0], x.shape[-1]
    m = w.shape[1] // c
    size, out, _, _, _, p = _unpack(geometry)
    xp = _padded(x, geometry)
    dxp = np.zeros_like(xp)
    g = dy.reshape((n,) + out + (c, m))
    dw = np.zeros_like(w)
    for tap, sl in _taps(geometry):
        dxp[sl] += (g * w[tap].reshape(c, m)).sum(-1)
        dw[tap] = np.einsum("nabcz,nabczm->zm", xp[sl], g).reshape(-1)
    dx = dxp[:, p[0]:p[0] + size[0], p[1]:p[1] + size[1], p[2]:p[2] + size[2]]
    return np.ascontiguousarray(dx), dw, dy.reshape(-1, c * m).sum(0)


def grouped_forward(x, w, b, geometry, groups):
    """w: (taps * C / groups, F). Returns (N * OD * OH * OW, F)."""
    c = x.shape[-1]
    cg, f = c // groups, w.shape[1]
    fg = f // groups
    _, out, k, _, _, _ = _unpack(geometry)
    xp = _padded(x, geometry)
    wt = w.reshape(k[0] * k[1] * k[2], cg, f)
    y = np.zeros((x.shape[0],) + out + (f,), dtype=x.dtype)
    for tap, sl in _taps(geometry):
        xs = xp[sl]
        for gi in range(groups):
            y[..., gi * fg:(gi + 1) * fg] += xs[..., gi * cg:(gi + 1) * cg] @ wt[tap, :, gi * fg:(gi + 1) * fg]
    y = y.reshape(-1, f)
    return y + b if b is not None else y


def grouped_backward(dy, x, w, geometry, groups):
    """dy: (rows, F). Returns (dx, dw, db)."""
    c = x.shape[-1]
    cg, f = c // groups, w.shape[1]
    fg = f // groups
    size, out, k, _, _, p = _unpack(geometry)
    xp = _padded(x, geometry)
    dxp = np.zeros_like(xp)
    wt = w.reshape(k[0] * k[1] * k[2], cg, f)
    dwt = np.zeros_like(wt)
    g = dy.reshape((x.shape[0],) + out + (f,))
    for tap, sl in _taps(geometry):
        xs = xp[sl]
        for gi in range(groups):
            gg = g[..., gi * fg:(gi + 1) * fg]
            cs = slice(gi * cg, (gi + 1) * cg)
            dxp[sl + (cs,)] += gg @ wt[tap, :, gi * fg:(gi + 1) * fg].T
            dwt[tap, :, gi * fg:(gi + 1) * fg] = np.einsum("nabcz,nabcf->zf", xs[..., cs], gg)
    dx = dxp[:, p[0]:p[0] + size[0], p[1]:p[1] + size[1], p[2]:p[2] + size[2]]
    return np.ascontiguousarray(dx), dwt.reshape(w.shape), dy.sum(0)


def max_pool_forward(x, geometry):
    """Returns (y, argmax) with argmax the position (iz * H + iy) * W + ix in the sample."""
    size, out, _, _, _, p = _unpack(geometry)
    xp = _padded(x, geometry, value=-np.inf)
    pos = np.arange(np.prod(size)).reshape((1,) + size + (1,))
    pos = _padded(pos.astype(np.float64), geometry, value=-1)
    best = None
    arg = None
    for _, sl in _taps(geometry):
        v = xp[sl]
        a = np.broadcast_to(pos[sl], v.shape)
        if best is None:
            best, arg = v.copy(), a.copy()
        else:
            better = v > best
            best = np.where(better, v, best)
            arg = np.where(better, a, arg)
    return best.astype(x.dtype), arg.astype(np.int32)


def max_pool_backward(dy, argmax, x_shape):
    n, c = x_shape[0], x_shape[-1]
    s = int(np.prod(x_shape[1:-1]))
    dx = np.zeros((n, s, c), dtype=dy.dtype)
    ni = np.arange(n)[:, None, None]
    ci = np.arange(c)[None, None, :]
    np.add.at(dx, (ni, argmax.reshape(n, -1, c), ci), dy.reshape(n, -1, c))
    return dx.reshape(x_shape)


def _counts(x_shape, geometry):
    ones = np.ones((1,) + tuple(x_shape[1:-1]) + (1,))
    op = _padded(ones, geometry)
    cnt = 0
    for _, sl in _taps(geometry):
        cnt = cnt + op[sl]
    return cnt


def avg_pool_forward(x, geometry):
    xp = _padded(x, geometry)
    tot = 0
    for _, sl in _taps(geometry):
        tot = tot + xp[sl]
    return (tot / _counts(x.shape, geometry)).astype(x.dtype)


def avg_pool_backward(dy, x_shape, geometry):
    size, _, _, _, _, p = _unpack(geometry)
    g = dy / _counts(x_shape, geometry)
    dxp = _padded(np.zeros(x_shape, dtype=dy.dtype), geometry)
    for _, sl in _taps(geometry):
        dxp[sl] += g
    return np.ascontiguousarray(dxp[:, p[0]:p[0] + size[0], p[1]:p[1] + size[1], p[2]:p[2] + size[2]])
