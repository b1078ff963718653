"""Numpy twin of the fused attention kernel (fastnet/_kernels/attention.pyx).

Written the plain way (whole score matrices, einsum, the softmax gradient from its
definition) so that tests can diff the blocked kernel against it.
"""
import numpy as np

from fastnet._reference.core import dropout_uniform


def _allowed(shape_bhqk, mask, causal):
    B, H, Lq, Lk = shape_bhqk
    allowed = np.ones((B, H, Lq, Lk), dtype=bool)
    if mask is not None:
        allowed &= np.broadcast_to(mask.astype(bool), (B, H, Lq, Lk))
    if causal:
        allowed &= np.tril(np.ones((Lq, Lk), dtype=bool))
    return allowed


def _keep(shape, rate, seed):
    if rate <= 0:
        return None
    n = int(np.prod(shape))
    return dropout_uniform(n, seed).reshape(shape) >= rate


def sdpa_forward(q, k, v, mask=None, causal=False, scale=1.0, rate=0.0, seed=0):
    """q (B, Lq, H, dk), k (B, Lk, H, dk), v (B, Lk, H, dv); mask (Bm, Hm, Lq, Lk) or None.

    Returns (o, p): o (B, Lq, H, dv) and the probabilities p (B, H, Lq, Lk) before dropout;
    rows whose keys are all masked get probabilities 0."""
    s = np.einsum("bqhd,bkhd->bhqk", q, k) * q.dtype.type(scale)
    allowed = _allowed(s.shape, mask, causal)
    s = np.where(allowed, s, -np.inf)
    mx = s.max(axis=-1, keepdims=True)
    empty = ~np.isfinite(mx)
    e = np.exp(s - np.where(empty, 0, mx))
    e = np.where(allowed, e, 0)
    total = e.sum(axis=-1, keepdims=True)
    p = np.where(empty, 0, e / np.where(empty, 1, total)).astype(q.dtype)
    keep = _keep(p.shape, rate, seed)
    pd = p if keep is None else np.where(keep, p / q.dtype.type(1 - rate), 0).astype(q.dtype)
    o = np.einsum("bhqk,bkhd->bqhd", pd, v).astype(q.dtype)
    return o, p


def sdpa_backward(q, k, v, p, do, scale=1.0, rate=0.0, seed=0, dp=None):
    """Gradients (dq, dk, dv) of sum(o * do) + sum(p * dp) for the forward above, from its
    probabilities p (dp: an optional gradient on p itself)."""
    keep = _keep(p.shape, rate, seed)
    factor = None if keep is None else np.where(keep, 1 / (1 - rate), 0)
    pd = p if factor is None else p * factor
    dpd = np.einsum("bqhd,bkhd->bhqk", do, v)
    dptot = dpd if factor is None else dpd * factor
    if dp is not None:
        dptot = dptot + dp
    ds = p * (dptot - (dptot * p).sum(axis=-1, keepdims=True))
    dq = np.einsum("bhqk,bkhd->bqhd", ds, k) * scale
    dk = np.einsum("bhqk,bqhd->bkhd", ds, q) * scale
    dv = np.einsum("bhqk,bqhd->bkhd", pd, do)
    return dq.astype(q.dtype), dk.astype(q.dtype), dv.astype(q.dtype)


def additive_forward(q, k, w, a=1.0):
    """scores[b, i, j] = sum_d w[d] * tanh(a * (q[b, i, d] + k[b, j, d]))."""
    t = np.tanh(a * (q[:, :, None, :] + k[:, None, :, :]))
    return (t * w).sum(axis=-1).astype(q.dtype)


def additive_backward(q, k, w, a, g):
    """Gradients of sum(g * scores): (dq, dk, dw, da)."""
    z = q[:, :, None, :] + k[:, None, :, :]
    t = np.tanh(a * z)
    dz = g[..., None] * w * (1 - t * t)
    dw = np.einsum("bij,bijd->d", g, t)
    da = float(np.sum(dz * z))
    return (a * dz.sum(axis=2)).astype(q.dtype), (a * dz.sum(axis=1)).astype(q.dtype), dw, da
