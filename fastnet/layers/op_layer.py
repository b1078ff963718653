"""``fastnet.ops`` applied to symbolic tensors: one graph node per op.

In the functional API, ``x = ops.relu(inputs) * 2`` or ``ops.mean(x, axis=1)`` on
``keras.Input`` tensors builds nodes as layers do, so the model trains (the op's
vector-Jacobian product is its backward), predicts and saves. Each node is an
:class:`OpLayer` holding the op's name and its constant arguments; the symbolic
tensors among the arguments are the node's inputs. A saved model names the op (a
function of ``fastnet.ops``), so loading it imports nothing and runs no stored code.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from fastnet.layers.base import Layer
from fastnet.layers.graph import KerasTensor

if TYPE_CHECKING:
    from typing import Any

    from fastnet._typing import Config

__all__ = ["OpLayer", "install"]

_MODULES = ("numpy", "nn", "math", "core", "linalg")


class _Slot:
    """Where the i-th symbolic input goes in an op's arguments."""

    __slots__ = ("i",)

    def __init__(self, i):
        self.i = i


def _find_op(name):
    import fastnet.ops as ops_pkg

    mod_name, _, fn_name = name.rpartition(".")
    if mod_name and mod_name not in _MODULES:
        return None
    fn = getattr(getattr(ops_pkg, mod_name) if mod_name else ops_pkg, fn_name, None)
    fn = getattr(fn, "__wrapped_op__", fn)
    if not callable(fn) or not getattr(fn, "__module__", "").startswith("fastnet.ops"):
        return None
    return fn


def _op_name(fn):
    mod = fn.__module__.rpartition(".")[2]
    return f"{mod}.{fn.__name__}" if mod in _MODULES else fn.__name__


def _to_config(v):
    if isinstance(v, _Slot):
        return {"__tensor__": v.i}
    if isinstance(v, (list, tuple)):
        return {"__tuple__": [_to_config(e) for e in v]} if isinstance(v, tuple) else [_to_config(e) for e in v]
    if isinstance(v, dict):
        return {"__dict__": {k: _to_config(e) for k, e in v.items()}}
    if isinstance(v, slice):
        return {"__slice__": [_to_config(v.start), _to_config(v.stop), _to_config(v.step)]}
    if v is Ellipsis:
        return {"__ellipsis__": True}
    if isinstance(v, (np.generic,)):
        return v.item()
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, np.ndarray) and v.size <= 64:
        return {"__array__": v.tolist(), "dtype": v.dtype.name}
    if isinstance(v, np.dtype):
        return v.name
    raise TypeError(f"cannot save an op argument of type {type(v).__name__} ({v!r:.60})")


def _from_config(v):
    if isinstance(v, list):
        return [_from_config(e) for e in v]
    if isinstance(v, dict):
        if "__tensor__" in v:
            return _Slot(int(v["__tensor__"]))
        if "__tuple__" in v:
            return tuple(_from_config(e) for e in v["__tuple__"])
        if "__dict__" in v:
            return {k: _from_config(e) for k, e in v["__dict__"].items()}
        if "__slice__" in v:
            return slice(*v["__slice__"])
        if "__ellipsis__" in v:
            return Ellipsis
        if "__array__" in v:
            return np.asarray(v["__array__"], dtype=v.get("dtype"))
    return v


class OpLayer(Layer):
    """A ``fastnet.ops`` function applied in a functional graph.

    Args:
        op: the op's name in ``fastnet.ops`` (``"relu"``, ``"numpy.mean"``), or the function.
        arguments: ``[args, kwargs]`` of the call with placeholders for the symbolic
            inputs (made by the op dispatch; given back by ``get_config``).
    """

    _cast_inputs = False
    _multi_input = True

    def __init__(self, op: Any, arguments: Any = None, **kwargs) -> None:
        fn = op if callable(op) else _find_op(str(op))
        if fn is None:
            raise ValueError(f"OpLayer: {op!r} is not a fastnet.ops function")
        fn = getattr(fn, "__wrapped_op__", fn)
        kwargs.setdefault("name", None)
        super().__init__(**kwargs)
        self.fn = fn
        self.op = _op_name(fn)
        args = _from_config(arguments) if arguments is not None else [[], {}]
        self._template = (list(args[0]), dict(args[1]))
        self.built = True

    def _fill(self, inputs):
        values = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]

        def sub(v):
            return values[v.i] if isinstance(v, _Slot) else v

        def walk(v):
            if isinstance(v, _Slot):
                return sub(v)
            if isinstance(v, list):
                return [walk(e) for e in v]
            if isinstance(v, tuple):
                return tuple(walk(e) for e in v)
            if isinstance(v, dict):
                return {k: walk(e) for k, e in v.items()}
            return v

        args, kwargs = self._template
        return walk(args), walk(kwargs)

    def call(self, inputs: Any) -> Any:
        args, kwargs = self._fill(inputs)
        return self.fn(*args, **kwargs)

    def get_config(self) -> Config:
        config = super().get_config()
        try:
            arguments = _to_config([self._template[0], self._template[1]])
        except TypeError as e:
            raise TypeError(f'Layer "{self.name}" (fastnet.ops.{self.op} in a functional model) cannot be '
                            f"saved: {e}") from None
        config.update({"op": self.op, "arguments": arguments})
        return config


def _is_symbolic(v):
    return isinstance(v, KerasTensor)


def _handler(fn, args, kwargs):
    tensors = []

    def mark(v):
        if isinstance(v, KerasTensor):
            tensors.append(v)
            return _Slot(len(tensors) - 1)
        return v

    def walk(v):
        if isinstance(v, list):
            return [walk(e) for e in v]
        if isinstance(v, tuple):
            return tuple(walk(e) for e in v)
        if isinstance(v, dict):
            return {k: walk(e) for k, e in v.items()}
        return mark(v)

    from fastnet import backend

    template = [walk(list(args)), walk(dict(kwargs))]
    layer = OpLayer(fn, None, name=backend.unique_name(fn.__name__))
    layer._template = (template[0], template[1])
    return layer(tensors)


def install() -> None:
    """Makes ``fastnet.ops`` build OpLayer nodes when given symbolic tensors."""
    from fastnet import ops

    ops.set_symbolic_dispatch(_is_symbolic, _handler, symbolic_type=KerasTensor)
