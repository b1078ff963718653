"""Linear-algebra ops (``keras.ops.linalg``): norm, inv, solve, det, slogdet, cholesky,
with gradients, on numpy's LAPACK routines."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from fastnet.ops import numpy as _n
from fastnet.ops.autodiff import apply
from fastnet.ops.math import logdet
from fastnet.ops.numpy import norm

if TYPE_CHECKING:
    from typing import Any

__all__ = ["norm", "inv", "solve", "det", "logdet", "cholesky"]


def _t(a):
    return np.swapaxes(a, -1, -2)


def inv(x: Any) -> Any:
    """Inverse of (a batch of) square matrices."""
    def fwd(a):
        a = _n._fval(a)
        y = np.linalg.inv(a)
        return y, y

    def bwd(g, y):
        return (-_t(y) @ g @ _t(y),)

    return apply(fwd, bwd, (_n._a(x),))


def solve(a: Any, b: Any) -> Any:
    """The solution x of ``a @ x = b``."""
    def fwd(av, bv):
        av, bv = _n._promote(_n._fval(av), _n._fval(bv))
        vec = bv.ndim == av.ndim - 1
        x = np.linalg.solve(av, bv[..., None] if vec else bv)
        return (x[..., 0] if vec else x), (av, x, vec, np.shape(bv))

    def bwd(g, r):
        av, x, vec, bshape = r
        gb = np.linalg.solve(_t(av), g[..., None] if vec else g)
        ga = -gb @ _t(x)
        return _n._unbroadcast(ga, av.shape), (gb[..., 0] if vec else gb).reshape(bshape)

    return apply(fwd, bwd, (_n._a(a), _n._a(b)))


def det(x: Any) -> Any:
    """Determinant of (a batch of) square matrices."""
    def fwd(a):
        a = _n._fval(a)
        d = np.linalg.det(a)
        return np.asarray(d, a.dtype), (a, d)

    def bwd(g, r):
        a, d = r
        return ((g * d)[..., None, None] * _t(np.linalg.inv(a)),)

    return apply(fwd, bwd, (_n._a(x),))


def cholesky(x: Any, upper: bool = False) -> Any:
    """The lower (or upper) Cholesky factor of symmetric positive-definite matrices."""
    def fwd(a):
        a = _n._fval(a)
        L = np.linalg.cholesky(a)
        return (_t(L) if upper else L), L

    def bwd(g, L):
        # the symmetric gradient of A = L L^T (Murray 2016, "Differentiation of the Cholesky decomposition")
        gL = _t(g) if upper else g
        phi = _t(L) @ gL
        phi = np.tril(phi) - 0.5 * np.eye(L.shape[-1]) * phi
        Linv = np.linalg.inv(L)
        s = _t(Linv) @ phi @ Linv
        return (0.5 * (s + _t(s)),)

    return apply(fwd, bwd, (_n._a(x),))


_ = (norm, logdet)
