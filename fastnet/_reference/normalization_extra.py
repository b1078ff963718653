"""Numpy twins of the group, RMS and unit normalisation kernels (fastnet._kernels.normalization_extra)."""
import numpy as np


def rms_forward(x, scale, epsilon):
    """Returns (y, inv) for x (rows, features)."""
    inv = 1.0 / np.sqrt(np.mean(np.square(x, dtype=np.float64), axis=1) + epsilon)
    y = x * inv[:, None]
    if scale is not None:
        y = y * scale
    return y.astype(x.dtype), inv.astype(x.dtype)


def rms_backward(dy, x, scale, inv):
    """Returns (dx, dscale)."""
    inv = inv.astype(np.float64)[:, None]
    g = dy * scale if scale is not None else dy
    dot = np.mean(g * x, axis=1, keepdims=True)
    dx = inv * g - x * inv ** 3 * dot
    return dx.astype(x.dtype), (dy * x * inv).sum(0).astype(x.dtype)


def unit_forward(x, epsilon):
    """Returns (y, inv): y = x * min(1 / ||x||, 1 / epsilon) row by row."""
    ss = np.sum(np.square(x, dtype=np.float64), axis=1)
    with np.errstate(divide="ignore"):
        inv = np.minimum(1.0 / np.sqrt(ss), 1.0 / epsilon)
    return (x * inv[:, None]).astype(x.dtype), inv.astype(x.dtype)


def unit_backward(dy, x, inv, epsilon):
    ss = np.sum(np.square(x, dtype=np.float64), axis=1, keepdims=True)
    inv = inv.astype(np.float64)[:, None]
    capped = ss * (1.0 / epsilon) ** 2 <= 1.0
    dot = np.sum(dy * x, axis=1, keepdims=True)
    dx = inv * dy - np.where(capped, 0.0, x * inv ** 3 * dot)
    return dx.astype(x.dtype)


def group_forward(x, gamma, beta, groups, epsilon):
    """x (N, S, C). Returns (y, mean (N, G), inv (N, G))."""
    n, s, c = x.shape
    xg = x.reshape(n, s, groups, c // groups).astype(np.float64)
    mean = xg.mean(axis=(1, 3))
    var = ((xg - mean[:, None, :, None]) ** 2).mean(axis=(1, 3))
    inv = 1.0 / np.sqrt(var + epsilon)
    y = ((xg - mean[:, None, :, None]) * inv[:, None, :, None]).reshape(n, s, c)
    if gamma is not None:
        y = y * gamma
    if beta is not None:
        y = y + beta
    return y.astype(x.dtype), mean.astype(x.dtype), inv.astype(x.dtype)


def group_backward(dy, x, gamma, mean, inv):
    """Returns (dx, dgamma, dbeta)."""
    n, s, c = x.shape
    groups = mean.shape[1]
    cg = c // groups
    xh = ((x.reshape(n, s, groups, cg) - mean[:, None, :, None]) * inv[:, None, :, None]).reshape(n, s, c)
    g = dy * gamma if gamma is not None else dy
    gg = g.reshape(n, s, groups, cg)
    xg = xh.reshape(n, s, groups, cg)
    a = gg.mean(axis=(1, 3), keepdims=True)
    b = (gg * xg).mean(axis=(1, 3), keepdims=True)
    dx = (inv[:, None, :, None] * (gg - a - xg * b)).reshape(n, s, c)
    return dx.astype(x.dtype), (dy * xh).sum(axis=(0, 1)), dy.sum(axis=(0, 1))
