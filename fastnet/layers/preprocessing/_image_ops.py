"""Image resampling for the image preprocessing layers: separable resizing (bilinear,
nearest, bicubic, Lanczos; Keras's half-pixel sampling) and affine warps sampled with
Keras's fill modes, each with its adjoint for backward.

Images here are channels-last batches ``(batch, height, width, channels)``; the layers move
channels-first inputs into this layout and back.
"""
from __future__ import annotations

import numpy as np

from fastnet import config

__all__ = ["RESIZE_METHODS", "FILL_MODES", "resize_matrix", "resize", "resize_backward", "AffineSampler",
           "crop_or_pad_box", "sample_coordinates", "rotation_transforms", "zoom_transforms", "translation_transforms"]

RESIZE_METHODS = ("bilinear", "nearest", "bicubic", "lanczos3", "lanczos5")
FILL_MODES = ("reflect", "wrap", "constant", "nearest", "mirror")


def _triangle(x):
    return np.maximum(0.0, 1.0 - np.abs(x))


def _keys_cubic(x):
    # Keys' cubic convolution kernel with a = -0.5.
    out = ((1.5 * x - 2.5) * x) * x + 1.0
    out = np.where(x >= 1.0, ((-0.5 * x + 2.5) * x - 4.0) * x + 2.0, out)
    return np.where(x >= 2.0, 0.0, out)


def _lanczos(radius):
    def kernel(x):
        y = radius * np.sin(np.pi * x) * np.sin(np.pi * x / radius)
        safe = np.where(x != 0, np.pi ** 2 * x ** 2, 1.0)
        out = np.where(x > 1e-3, y / safe, 1.0)
        return np.where(x > radius, 0.0, out)
    return kernel


_KERNELS = {"bilinear": _triangle, "bicubic": _keys_cubic, "lanczos3": _lanczos(3.0), "lanczos5": _lanczos(5.0)}


def resize_matrix(in_size: int, out_size: int, method: str, antialias: bool = False) -> np.ndarray:
    """The ``(out_size, in_size)`` matrix that resamples one axis: output sample j sits at
    ``(j + 0.5) * in/out - 0.5`` in input pixel coordinates (half-pixel centres)."""
    if method == "nearest":
        src = np.floor((np.arange(out_size, dtype=np.float32) + 0.5) * np.float32(in_size / out_size))
        src = np.minimum(src.astype(np.int64), in_size - 1)
        m = np.zeros((out_size, in_size))
        m[np.arange(out_size), src] = 1.0
        return m
    kernel = _KERNELS[method]
    scale = out_size / in_size
    inv = 1.0 / scale
    kscale = max(inv, 1.0) if antialias else 1.0
    sample = (np.arange(out_size, dtype=np.float64) + 0.5) * inv - 0.5
    x = np.abs(sample[:, None] - np.arange(in_size, dtype=np.float64)[None, :]) / kscale
    w = kernel(x)
    total = w.sum(axis=1, keepdims=True)
    w = np.where(np.abs(total) > 1000.0 * np.finfo(np.float32).eps, w / np.where(total != 0, total, 1), 0.0)
    inside = (sample >= -0.5) & (sample <= in_size - 0.5)
    return np.where(inside[:, None], w, 0.0)


def _apply_axis(x, m, axis):
    """Resamples axis ``axis`` of x with matrix m (out x in). Each output sample reads a few
    neighbours (the kernel's support), so it is a sum of a few weighted gathers, not a dense
    product over the whole axis."""
    nnz = np.count_nonzero(m, axis=1)
    taps = int(nnz.max()) if nnz.size else 0
    if taps == 0 or taps > 16:
        return np.moveaxis(np.tensordot(m, x, axes=([1], [axis])), 0, axis)
    # Column indices of each row's nonzeros first (zero weights pad short rows).
    order = np.argsort(m == 0, axis=1, kind="stable")[:, :taps]
    weights = np.take_along_axis(m, order, axis=1)
    shape = [1] * x.ndim
    shape[axis] = m.shape[0]
    out = None
    for k in range(taps):
        term = np.take(x, order[:, k], axis=axis)
        term *= weights[:, k].reshape(shape)
        if out is None:
            out = term
        else:
            out += term
    return out


def resize(x: np.ndarray, height: int, width: int, method: str, antialias: bool = False):
    """Resizes a channels-last batch; returns ``(y, (mh, mw))`` (the matrices for backward,
    None for an axis left as is)."""
    h, w = x.shape[1], x.shape[2]
    mh = resize_matrix(h, height, method, antialias).astype(x.dtype) if h != height else None
    mw = resize_matrix(w, width, method, antialias).astype(x.dtype) if w != width else None
    y = x
    if mh is not None:
        y = _apply_axis(y, mh, 1)
    if mw is not None:
        y = _apply_axis(y, mw, 2)
    return np.ascontiguousarray(y), (mh, mw)


def resize_backward(dy: np.ndarray, mats) -> np.ndarray:
    mh, mw = mats
    dx = dy
    if mw is not None:
        dx = _apply_axis(dx, mw.T, 2)
    if mh is not None:
        dx = _apply_axis(dx, mh.T, 1)
    return np.ascontiguousarray(dx)


def crop_or_pad_box(height, width, target_height, target_width, mode):
    """Keras's aspect-ratio box: for "crop", the centred crop ``(top, left, h, w)`` with the
    target's aspect ratio; for "pad", the symmetric padding ``(pad_h, pad_w)`` per side."""
    if mode == "crop":
        crop_h = max(min(height, int(float(width * target_height) / target_width)), 1)
        crop_w = max(min(width, int(float(height * target_width) / target_height)), 1)
        return int(float(height - crop_h) / 2), int(float(width - crop_w) / 2), crop_h, crop_w
    pad_h = max(height, int(float(width * target_height) / target_width))
    pad_w = max(width, int(float(height * target_width) / target_height))
    return int(float(pad_h - height) / 2), int(float(pad_w - width) / 2)


# ---------------------------------------------------------------------- affine warps
def sample_coordinates(shape, transforms):
    """Input (row, col) coordinates of every output pixel, float32 ``(batch, h, w)`` each, for
    ``(batch, 8)`` transforms ``[a0, a1, a2, b0, b1, b2, c0, c1]``: output pixel (x, y) reads
    input ``(a0 x + a1 y + a2, b0 x + b1 y + b2)`` (the projective terms c0, c1 are zero for
    the layers here). Computed in float32 as Keras computes them."""
    b, h, w = shape[0], shape[1], shape[2]
    t = np.asarray(transforms, dtype=np.float32).reshape(b, 8)
    ys, xs = np.meshgrid(np.arange(h, dtype=np.float32), np.arange(w, dtype=np.float32), indexing="ij")
    cols = t[:, 0, None, None] * xs + t[:, 1, None, None] * ys + t[:, 2, None, None]
    rows = t[:, 3, None, None] * xs + t[:, 4, None, None] * ys + t[:, 5, None, None]
    return np.ascontiguousarray(rows, dtype=np.float32), np.ascontiguousarray(cols, dtype=np.float32)


class AffineSampler:
    """Samples a channels-last batch at affinely transformed coordinates (see
    ``sample_coordinates``), bilinearly or at the nearest pixel (ties away from zero), with
    points outside the image taken by ``fill_mode``; ``backward`` scatters the same weights
    back. The compiled kernel does the sampling; ``fastnet/_reference/image.py`` is its
    numpy twin."""

    def __init__(self, shape, transforms, interpolation="bilinear", fill_mode="reflect", fill_value=0.0):
        if fill_mode not in FILL_MODES:
            raise ValueError(f"unknown fill_mode {fill_mode!r}; valid values: {list(FILL_MODES)}")
        self.shape = tuple(shape)
        self.rows, self.cols = sample_coordinates(shape, transforms)
        self.bilinear = int(interpolation != "nearest")
        self.mode = FILL_MODES.index(fill_mode)
        self.fill_value = float(fill_value)

    def forward(self, x: np.ndarray) -> np.ndarray:
        from fastnet._kernels import image as _image

        x = np.ascontiguousarray(x)
        out = np.empty(x.shape[:1] + self.rows.shape[1:] + x.shape[3:], dtype=x.dtype)
        _image.affine_forward(x, self.rows, self.cols, self.bilinear, self.mode, self.fill_value, out,
                              config._n_threads)
        return out

    def backward(self, dy: np.ndarray) -> np.ndarray:
        from fastnet._kernels import image as _image

        dy = np.ascontiguousarray(dy)
        dx = np.empty(self.shape[:3] + dy.shape[3:], dtype=dy.dtype)
        _image.affine_backward(dy, self.rows, self.cols, self.bilinear, self.mode, dx, config._n_threads)
        return dx


def rotation_transforms(angle_deg: np.ndarray, height: int, width: int) -> np.ndarray:
    """``(batch, 8)`` transforms rotating by ``angle_deg`` (degrees) about the image centre,
    in float32 as Keras computes them."""
    angle = np.asarray(angle_deg, dtype=np.float32) * np.float32(np.pi / 180.0)
    cx = np.float32(0.5) * np.float32(width - 1)
    cy = np.float32(0.5) * np.float32(height - 1)
    a0 = np.cos(angle)
    a1 = -np.sin(angle)
    b0 = np.sin(angle)
    b1 = np.cos(angle)
    a2 = cx - cx * a0 - cy * a1
    b2 = cy - cx * b0 - cy * b1
    z = np.zeros_like(a0)
    return np.stack([a0, a1, a2, b0, b1, b2, z, z], axis=1).astype(np.float32)


def zoom_transforms(zoom_x: np.ndarray, zoom_y: np.ndarray, height: int, width: int) -> np.ndarray:
    """``(batch, 8)`` transforms zooming about the image centre (factor > 1: zoom out)."""
    zx = np.asarray(zoom_x, dtype=np.float32).reshape(-1)
    zy = np.asarray(zoom_y, dtype=np.float32).reshape(-1)
    x_off = ((np.float32(width) - 1.0) / 2.0) * (1.0 - zx)
    y_off = ((np.float32(height) - 1.0) / 2.0) * (1.0 - zy)
    z = np.zeros_like(zx)
    return np.stack([zx, z, x_off, z, zy, y_off, z, z], axis=1).astype(np.float32)


def translation_transforms(dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """``(batch, 8)`` transforms shifting the image by (dx, dy) pixels."""
    dx = np.asarray(dx, dtype=np.float32).reshape(-1)
    dy = np.asarray(dy, dtype=np.float32).reshape(-1)
    one = np.ones_like(dx)
    z = np.zeros_like(dx)
    return np.stack([one, z, -dx, z, one, -dy, z, z], axis=1).astype(np.float32)
