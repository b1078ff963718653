"""Numpy twins of the pooling kernels (NHWC; 1-D signals as images with one row).

Windows are read from an explicitly padded copy: -inf padding for max pooling,
and for average pooling a padded count of real taps, so padding never counts.
"""
import numpy as np

from fastnet._reference.conv import _pad_amounts, _tap


def max_forward(x, g):
    """(y, argmax): argmax is the flat position iy * w + ix of each window's first max."""
    pads = _pad_amounts(g)
    xp = np.pad(x, pads, constant_values=-np.inf)
    pos = np.pad(np.arange(g.h * g.w).reshape(1, g.h, g.w, 1), pads, constant_values=-1)
    y = np.full((x.shape[0], g.oh, g.ow, x.shape[3]), -np.inf, dtype=x.dtype)
    arg = np.zeros(y.shape, dtype=np.int64)
    for i in range(g.kh):
        for j in range(g.kw):
            v = _tap(xp, g, i, j)
            p = np.broadcast_to(_tap(pos, g, i, j), v.shape)
            better = v > y
            y = np.where(better, v, y)
            arg = np.where(better, p, arg)
    return y, arg


def max_backward(dy, x, g):
    _, arg = max_forward(x, g)
    n, c = x.shape[0], x.shape[3]
    dx = np.zeros((n, g.h * g.w, c), dtype=dy.dtype)
    ni = np.arange(n)[:, None, None, None]
    ci = np.arange(c)[None, None, None, :]
    np.add.at(dx, (np.broadcast_to(ni, arg.shape), arg, np.broadcast_to(ci, arg.shape)), dy)
    return dx.reshape(x.shape)


def avg_forward(x, g):
    pads = _pad_amounts(g)
    xp = np.pad(x, pads)
    ones = np.pad(np.ones((1, g.h, g.w, 1), dtype=x.dtype), pads)
    total = sum(_tap(xp, g, i, j) for i in range(g.kh) for j in range(g.kw))
    count = sum(_tap(ones, g, i, j) for i in range(g.kh) for j in range(g.kw))
    return total / count


def avg_backward(dy, g, n, c):
    pads = _pad_amounts(g)
    ones = np.pad(np.ones((1, g.h, g.w, 1), dtype=dy.dtype), pads)
    count = sum(_tap(ones, g, i, j) for i in range(g.kh) for j in range(g.kw))
    share = dy / count
    dxp = np.zeros((n, g.h + sum(pads[1]), g.w + sum(pads[2]), c), dtype=dy.dtype)
    for i in range(g.kh):
        for j in range(g.kw):
            _tap(dxp, g, i, j)[...] += share
    return dxp[:, g.pad_top:g.pad_top + g.h, g.pad_left:g.pad_left + g.w, :]


def global_avg_forward(x):
    """x (n, steps, c) -> (n, c)."""
    return x.mean(axis=1)


def global_avg_backward(dy, steps):
    return np.repeat((dy / steps)[:, None, :], steps, axis=1)


def global_max_forward(x):
    return x.max(axis=1), x.argmax(axis=1)


def global_max_backward(dy, x):
    dx = np.zeros_like(x)
    arg = x.argmax(axis=1)
    n, c = np.meshgrid(np.arange(x.shape[0]), np.arange(x.shape[2]), indexing="ij")
    dx[n, arg, c] = dy
    return dx
