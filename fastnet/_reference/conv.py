"""Numpy twins of the convolution kernels (im2col, conv, transposed conv).

Written from the definition, one kernel tap at a time on an explicitly padded
array, so they share no indexing code with the compiled kernels. Shapes are
NHWC; a 1-D signal is passed as an image with one row. ``geometry`` is a
:class:`fastnet.utils.shape_utils.Geometry`.
"""
import numpy as np

from fastnet._reference.core import activation, activation_grad


def _pad_amounts(g):
    bottom = max(0, (g.oh - 1) * g.sh + (g.kh - 1) * g.dh + 1 - g.pad_top - g.h)
    right = max(0, (g.ow - 1) * g.sw + (g.kw - 1) * g.dw + 1 - g.pad_left - g.w)
    return ((0, 0), (g.pad_top, bottom), (g.pad_left, right), (0, 0))


def _tap(arr, g, i, j):
    """The (n, oh, ow, c) view of tap (i, j) of every window of the padded ``arr``."""
    r0, c0 = i * g.dh, j * g.dw
    return arr[:, r0:r0 + (g.oh - 1) * g.sh + 1:g.sh, c0:c0 + (g.ow - 1) * g.sw + 1:g.sw, :]


def im2col(x, g):
    """(n * oh * ow, kh * kw * c) window matrix, taps in (ky, kx, channel) order."""
    xp = np.pad(x, _pad_amounts(g))
    taps = [_tap(xp, g, i, j) for i in range(g.kh) for j in range(g.kw)]
    return np.stack(taps, axis=3).reshape(x.shape[0] * g.oh * g.ow, -1)


def col2im(cols, g, n, c):
    """Adjoint of :func:`im2col`: scatter-adds window rows back into (n, h, w, c)."""
    pads = _pad_amounts(g)
    xp = np.zeros((n, g.h + sum(pads[1]), g.w + sum(pads[2]), c), dtype=cols.dtype)
    cols = cols.reshape(n, g.oh, g.ow, g.kh, g.kw, c)
    for i in range(g.kh):
        for j in range(g.kw):
            _tap(xp, g, i, j)[...] += cols[:, :, :, i, j, :]
    return xp[:, g.pad_top:g.pad_top + g.h, g.pad_left:g.pad_left + g.w, :]


def conv_forward(x, kernel, bias, g, act="linear", alpha=0.0):
    """y = act(conv(x, kernel) + bias); kernel (kh, kw, in, F). Returns (y, z)."""
    xp = np.pad(x, _pad_amounts(g))
    z = np.zeros((x.shape[0], g.oh, g.ow, kernel.shape[-1]), dtype=x.dtype)
    for i in range(g.kh):
        for j in range(g.kw):
            z += _tap(xp, g, i, j) @ kernel[i, j]
    if bias is not None:
        z = z + bias
    return activation(act, z, alpha), z


def conv_backward(dy, x, kernel, z, g, act="linear", alpha=0.0):
    """(dx, dkernel, dbias) of :func:`conv_forward` given dL/dy."""
    dz = activation_grad(act, z, dy, alpha)
    pads = _pad_amounts(g)
    xp = np.pad(x, pads)
    dxp = np.zeros_like(xp)
    dk = np.zeros_like(kernel)
    for i in range(g.kh):
        for j in range(g.kw):
            dk[i, j] = np.einsum("nhwc,nhwf->cf", _tap(xp, g, i, j), dz)
            _tap(dxp, g, i, j)[...] += dz @ kernel[i, j].T
    dx = dxp[:, g.pad_top:g.pad_top + g.h, g.pad_left:g.pad_left + g.w, :]
    return dx, dk, dz.sum(axis=(0, 1, 2))


def conv_transpose_forward(x, kernel, bias, g, act="linear", alpha=0.0):
    """Transposed convolution; kernel (kh, kw, F, in) as Keras lays it out.

    ``g`` is the geometry of the convolution it transposes: its input size
    ``(h, w)`` is this op's output size and its output ``(oh, ow)`` this op's input.
    Output pixel ``o = i * stride + t * dilation - pad`` receives ``x[i] @ kernel[t].T``.
    """
    pads = _pad_amounts(g)
    n = x.shape[0]
    zp = np.zeros((n, g.h + sum(pads[1]), g.w + sum(pads[2]), kernel.shape[2]), dtype=x.dtype)
    for i in range(g.kh):
        for j in range(g.kw):
            _tap(zp, g, i, j)[...] += x @ kernel[i, j].T
    z = zp[:, g.pad_top:g.pad_top + g.h, g.pad_left:g.pad_left + g.w, :]
    if bias is not None:
        z = z + bias
    return activation(act, z, alpha), z


def conv_transpose_backward(dy, x, kernel, z, g, act="linear", alpha=0.0):
    """(dx, dkernel, dbias) of :func:`conv_transpose_forward`."""
    dz = activation_grad(act, z, dy, alpha)
    dzp = np.pad(dz, _pad_amounts(g))
    dx = np.zeros_like(x)
    dk = np.zeros_like(kernel)
    for i in range(g.kh):
        for j in range(g.kw):
            tap = _tap(dzp, g, i, j)
            dx += tap @ kernel[i, j]
            dk[i, j] = np.einsum("nhwf,nhwc->fc", tap, x)
    return dx, dk, dz.sum(axis=(0, 1, 2))
