"""Array ops with gradients, as in ``keras.ops``.

``fastnet.ops`` holds the numpy-like functions (``ops.matmul``, ``ops.sum``, ``ops.where``,
...), the neural-network ones (``ops.relu``, ``ops.softmax``, ``ops.conv``; also under
``ops.nn``), math (``ops.logsumexp``, ``ops.erf``, ``ops.top_k``) and core ones
(``ops.cond``, ``ops.fori_loop``, ``ops.stop_gradient``, ``ops.convert_to_tensor``).

On numpy arrays, Python numbers and Variables every op computes eagerly and returns a
numpy array::

    >>> import numpy as np
    >>> from fastnet import ops
    >>> ops.softmax(np.array([0.0, np.log(3.0)], dtype=np.float32))
    array([0.25, 0.75], dtype=float32)

Inside a recorded call (a :class:`fastnet.ops.autodiff.Tape`, which layers and models
open around ``call``) the ops take and return traced values and record their
vector-Jacobian products, so anything written with them trains.
"""
# ---------------------------------------------------------------------------- symbolic dispatch
import builtins as _builtins  # noqa: E402
import functools as _functools  # noqa: E402

from fastnet.ops import autodiff, core, linalg, math, nn, numpy  # noqa: F401
from fastnet.ops.core import *  # noqa: F401,F403
from fastnet.ops.core import map, slice  # noqa: F401,A004,E402
from fastnet.ops.math import *  # noqa: F401,F403
from fastnet.ops.nn import *  # noqa: F401,F403
from fastnet.ops.numpy import *  # noqa: F401,F403
from fastnet.ops.numpy import abs, all, any, max, min, round, sum  # noqa: F401,A004

_SYMBOLIC = None        # (is_symbolic, handler) once a graph engine installs itself
_WRAPPED = {}           # (module, name) -> the original function


def _any(pred, x):
    if isinstance(x, (list, tuple)):
        return _builtins.any(_any(pred, e) for e in x)   # (ops.any shadows the builtin here)
    if isinstance(x, dict):
        return _builtins.any(_any(pred, e) for e in x.values())
    return pred(x)


def _wrap(fn):
    sym = _SYMBOLIC
    kind = sym[2] if sym is not None else None
    if kind is not None:
        # The fast check: the engine's symbolic type among the arguments (or one level
        # inside a list/tuple argument); everything else calls the op at once.
        handler = sym[1]

        @_functools.wraps(fn)
        def op(*args, **kwargs):
            for a in args:
                t = type(a)
                if t is kind or ((t is list or t is tuple) and _any(lambda v: type(v) is kind, a)):
                    return handler(fn, args, kwargs)
            if kwargs:
                for a in kwargs.values():
                    t = type(a)
                    if t is kind or ((t is list or t is tuple) and _any(lambda v: type(v) is kind, a)):
                        return handler(fn, args, kwargs)
            return fn(*args, **kwargs)
    else:
        @_functools.wraps(fn)
        def op(*args, **kwargs):
            s = _SYMBOLIC
            if s is not None and (_any(s[0], args) or _any(s[0], kwargs)):
                return s[1](fn, args, kwargs)
            return fn(*args, **kwargs)

    op.__wrapped_op__ = fn
    return op


def set_symbolic_dispatch(is_symbolic, handler, symbolic_type=None) -> None:
    """Lets a graph engine take ops applied to its symbolic tensors.

    Once set, every public op checks its arguments (nested lists/tuples/dicts included)
    with ``is_symbolic(value)``; when one is symbolic the op returns
    ``handler(op_function, args, kwargs)`` (the engine typically makes a node that calls
    ``op_function(*args, **kwargs)`` on the concrete values later). Ops on arrays and
    traced values are unchanged. ``set_symbolic_dispatch(None, None)`` removes it.
    ``symbolic_type``: the engine's symbolic class, when ``is_symbolic`` is an
    ``isinstance`` test for it: ops then check argument types directly (cheaper).
    """
    global _SYMBOLIC
    import sys

    mods = [sys.modules[__name__]] + [sys.modules[f"{__name__}.{m}"] for m in ("numpy", "nn", "math", "core",
                                                                                  "linalg")]
    if is_symbolic is None:
        _SYMBOLIC = None
        for (mod, name), fn in _WRAPPED.items():
            setattr(mod, name, fn)
        _WRAPPED.clear()
        return
    _SYMBOLIC = (is_symbolic, handler, symbolic_type)
    if _WRAPPED:
        for (mod, name), fn in _WRAPPED.items():
            setattr(mod, name, _wrap(fn))
        return
    for mod in mods:
        names = getattr(mod, "__all__", None) or [n for n in dir(mod) if not n.startswith("_")]
        for name in names:
            fn = getattr(mod, name, None)
            if callable(fn) and not isinstance(fn, type) and getattr(fn, "__module__", "").startswith(__name__) \
                    and name != "set_symbolic_dispatch" and not hasattr(fn, "__wrapped_op__"):
                _WRAPPED[(mod, name)] = fn
                setattr(mod, name, _wrap(fn))
