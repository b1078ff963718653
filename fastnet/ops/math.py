"""Math ops (``keras.ops.math``): erf, rsqrt, top_k, segment reductions, logsumexp, ..."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from fastnet.ops import numpy as _n
from fastnet.ops.autodiff import apply, value_of
from fastnet.ops.numpy import logsumexp

if TYPE_CHECKING:
    from typing import Any

__all__ = ["erf", "erfinv", "erfc", "rsqrt", "logsumexp", "top_k", "in_top_k", "segment_sum", "segment_max",
           "segment_min", "segment_prod", "extract_sequences", "logdet"]


def _special():
    from scipy import special
    return special


def _erf_fwd(x):
    x = _n._fval(x)
    return _special().erf(x).astype(x.dtype, copy=False), x


def _erf_bwd(g, x):
    return (g * (2.0 / np.sqrt(np.pi)) * np.exp(-x * x),)


def erf(x: Any) -> Any:
    """The Gauss error function."""
    return apply(_erf_fwd, _erf_bwd, (_n._a(x),))


def erfc(x: Any) -> Any:
    return _n.subtract(1.0, erf(x))


def _erfinv_fwd(x):
    x = _n._fval(x)
    y = _special().erfinv(x).astype(x.dtype, copy=False)
    return y, y


def _erfinv_bwd(g, y):
    return (g * (np.sqrt(np.pi) / 2.0) * np.exp(y * y),)


def erfinv(x: Any) -> Any:
    """The inverse error function."""
    return apply(_erfinv_fwd, _erfinv_bwd, (_n._a(x),))


def _rsqrt_fwd(x):
    x = _n._fval(x)
    y = 1.0 / np.sqrt(x)
    return y, y


def _rsqrt_bwd(g, y):
    return (-0.5 * g * y * y * y,)


def rsqrt(x: Any) -> Any:
    """``1 / sqrt(x)``."""
    return apply(_rsqrt_fwd, _rsqrt_bwd, (_n._a(x),))


def top_k(x: Any, k: int, sorted: bool = True) -> tuple[Any, np.ndarray]:  # noqa: A002
    """The ``k`` largest values along the last axis and their indices (int32); the values
    carry gradients."""
    v = np.asarray(value_of(x))
    k = int(k)
    idx = np.argsort(-v, axis=-1, kind="stable")[..., :k]
    return _n.take_along_axis(x, idx, axis=-1), idx.astype(np.int32)


def in_top_k(targets: Any, predictions: Any, k: int) -> np.ndarray:
    """Whether each target class is among the ``k`` largest predictions of its row (ties count)."""
    p = np.asarray(value_of(predictions))
    t = np.asarray(value_of(targets)).astype(np.int64)
    tv = np.take_along_axis(p, t[:, None], axis=-1)
    return (p > tv).sum(axis=-1) < int(k)


def _segments(data, segment_ids, num_segments):
    ids = np.asarray(value_of(segment_ids)).astype(np.int64)
    n = int(num_segments) if num_segments is not None else (int(ids.max()) + 1 if ids.size else 0)
    return ids, n


def segment_sum(data: Any, segment_ids: Any, num_segments: int | None = None, sorted: bool = False  # noqa: A002
                ) -> Any:
    """Sums of the rows of ``data`` per segment id (ids outside [0, num_segments) are dropped)."""
    ids, n = _segments(data, segment_ids, num_segments)
    keep = (ids >= 0) & (ids < n)

    def fwd(d):
        out = np.zeros((n,) + d.shape[1:], d.dtype)
        np.add.at(out, ids[keep], d[keep])
        return out, d.shape

    def bwd(g, s):
        z = np.zeros(s, g.dtype)
        z[keep] = g[ids[keep]]
        return (z,)

    return apply(fwd, bwd, (_n._a(data),))


def _segment_extreme(data, segment_ids, num_segments, ufunc, init):
    ids, n = _segments(data, segment_ids, num_segments)
    keep = (ids >= 0) & (ids < n)

    def fwd(d):
        out = np.full((n,) + d.shape[1:], init, d.dtype if d.dtype.kind == "f" else np.float64)
        ufunc.at(out, ids[keep], d[keep])
        out = out.astype(d.dtype, copy=False)
        return out, (d, out)

    def bwd(g, r):
        d, out = r
        z = np.zeros(d.shape, g.dtype)
        sel = np.zeros(d.shape, bool)
        sel[keep] = d[keep] == out[ids[keep]]
        cnt = np.zeros(out.shape, np.float64)
        np.add.at(cnt, ids[keep], sel[keep])
        z[keep] = np.where(sel[keep], g[ids[keep]] / np.maximum(cnt[ids[keep]], 1), 0)
        return (z,)

    return apply(fwd, bwd, (_n._a(data),))


def segment_max(data: Any, segment_ids: Any, num_segments: int | None = None, sorted: bool = False  # noqa: A002
                ) -> Any:
    return _segment_extreme(data, segment_ids, num_segments, np.maximum, -np.inf)


def segment_min(data: Any, segment_ids: Any, num_segments: int | None = None, sorted: bool = False  # noqa: A002
                ) -> Any:
    return _segment_extreme(data, segment_ids, num_segments, np.minimum, np.inf)


def segment_prod(data: Any, segment_ids: Any, num_segments: int | None = None, sorted: bool = False  # noqa: A002
                ) -> Any:
    ids, n = _segments(data, segment_ids, num_segments)
    d = np.asarray(value_of(data))
    out = np.ones((n,) + d.shape[1:], d.dtype)
    keep = (ids >= 0) & (ids < n)
    np.multiply.at(out, ids[keep], d[keep])
    return out


def extract_sequences(x: Any, sequence_length: int, sequence_stride: int) -> Any:
    """Frames of ``sequence_length`` along the last axis, ``sequence_stride`` apart."""
    n = _n.shape(x)[-1]
    starts = np.arange(0, n - sequence_length + 1, sequence_stride)
    idx = starts[:, None] + np.arange(sequence_length)[None, :]
    return _n.take(x, idx, axis=-1)


def logdet(x: Any) -> Any:
    def fwd(v):
        sign, ld = np.linalg.slogdet(v)
        return ld.astype(v.dtype), v

    def bwd(g, v):
        return (g[..., None, None] * np.swapaxes(np.linalg.inv(v), -1, -2),)

    return apply(fwd, bwd, (_n._a(x),))


_ = logsumexp
