"""Numpy twin of ``fastnet/_kernels/image.pyx``: affine sampling of channels-last image
batches with Keras's fill modes, and its adjoint. Tests diff the kernel against it."""
from __future__ import annotations

import numpy as np

from fastnet.layers.preprocessing._image_ops import FILL_MODES, sample_coordinates

__all__ = ["AffineSampler"]


def _fix_index(i, size, mode):
    """Input index for (possibly outside) index i under a fill mode; with its validity."""
    if mode == "constant":
        return np.clip(i, 0, size - 1), (i >= 0) & (i < size)
    if mode == "nearest":
        return np.clip(i, 0, size - 1), None
    if mode == "wrap":
        return np.mod(i, size), None
    if mode == "mirror":  # d c b | a b c d | c b a
        if size == 1:
            return np.zeros_like(i), None
        s = size - 1
        return np.abs(np.mod(i + s, 2 * s) - s), None
    # reflect: d c b a | a b c d | d c b a (the edge pixel repeated)
    j = np.mod(i, 2 * size)
    return np.where(j >= size, 2 * size - 1 - j, j), None


class AffineSampler:
    """Samples a channels-last batch at affinely transformed coordinates.

    ``transforms`` is ``(batch, 8)``: ``[a0, a1, a2, b0, b1, b2, c0, c1]`` maps output pixel
    (x, y) to input ``(a0 x + a1 y + a2, b0 x + b1 y + b2)`` (the projective terms c0, c1 are
    zero for the layers here). Coordinates are computed in float32 as in Keras, then sampled
    bilinearly or at the nearest pixel (ties away from zero), with points outside the image taken by
    ``fill_mode``. The sampling is linear in the image, so ``backward`` scatters the same
    weights back.
    """

    def __init__(self, shape, transforms, interpolation="bilinear", fill_mode="reflect", fill_value=0.0):
        if fill_mode not in FILL_MODES:
            raise ValueError(f"unknown fill_mode {fill_mode!r}; valid values: {list(FILL_MODES)}")
        b, h, w = shape[0], shape[1], shape[2]
        yin, xin = sample_coordinates(shape, transforms)
        base = (np.arange(b) * (h * w))[:, None, None]
        self.shape = tuple(shape)
        self.fill_value = float(fill_value)
        self.corners = []  # (flat input index, weight, valid or None)
        if interpolation == "nearest":
            # Ties round away from zero, as Keras's sampler does.
            axes_y = [(np.sign(yin) * np.floor(np.abs(yin) + 0.5), np.ones_like(yin))]
            axes_x = [(np.sign(xin) * np.floor(np.abs(xin) + 0.5), np.ones_like(xin))]
        else:
            y0 = np.floor(yin)
            x0 = np.floor(xin)
            wy = yin - y0
            wx = xin - x0
            axes_y = [(y0, 1.0 - wy), (y0 + 1, wy)]
            axes_x = [(x0, 1.0 - wx), (x0 + 1, wx)]
        fixed_y = [(_fix_index(iy.astype(np.int64), h, fill_mode), wy_) for iy, wy_ in axes_y]
        fixed_x = [(_fix_index(ix.astype(np.int64), w, fill_mode), wx_) for ix, wx_ in axes_x]
        for (iy, vy), wy_ in fixed_y:
            for (ix, vx), wx_ in fixed_x:
                valid = None if vy is None else (vy & vx)
                self.corners.append(((base + iy * w + ix).ravel(), (wy_ * wx_).ravel(),
                                     None if valid is None else valid.ravel()))

    def forward(self, x: np.ndarray) -> np.ndarray:
        b, h, w, c = x.shape
        flat = x.reshape(b * h * w, c)
        out = np.zeros((b * h * w, c), dtype=x.dtype)
        for idx, wt, valid in self.corners:
            vals = flat[idx]
            if valid is not None:
                vals = np.where(valid[:, None], vals, x.dtype.type(self.fill_value))
            out += wt.astype(x.dtype)[:, None] * vals
        return out.reshape(x.shape)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        b, h, w, c = dy.shape
        g = dy.reshape(b * h * w, c)
        dx = np.zeros((b * h * w, c), dtype=dy.dtype)
        n = b * h * w
        for idx, wt, valid in self.corners:
            wt = wt if valid is None else np.where(valid, wt, 0.0)
            for ch in range(c):  # channels are few; bincount scatters each in one pass
                dx[:, ch] += np.bincount(idx, weights=wt * g[:, ch], minlength=n).astype(dy.dtype)
        return dx.reshape(dy.shape)


