"""Symbolic tensors and nodes: what calling a layer on ``keras.Input`` builds.

A ``KerasTensor`` stands for an array that does not exist yet: a shape (batch axis
first, None where unknown), a dtype, and the node that will produce it. A ``Node`` is
one call of a layer: the arguments it was called with (symbolic tensors inside any
structure, plus constants) and the tensors it returns. A functional model is the nodes
between its inputs and outputs, run in order by ``fastnet.models.graph``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from fastnet.utils import tree

if TYPE_CHECKING:
    from typing import Any

    from fastnet._typing import Shape
    from fastnet.layers.base import Layer

__all__ = ["KerasTensor", "Node", "symbolic_call"]


def _shape_str(shape):
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + (",)" if len(shape) == 1 else ")")


class KerasTensor:
    """A symbolic array: ``.shape`` (batch first), ``.dtype``, ``.name``, and the layer
    call that produces it (``_keras_history``: layer, node index, tensor index)."""

    __slots__ = ("shape", "dtype", "name", "_keras_history", "sparse", "__weakref__")

    def __init__(self, shape: Shape, dtype: str = "float32", name: str | None = None,
                 history: tuple[Layer, int, int] | None = None) -> None:
        self.shape = tuple(None if d is None else int(d) for d in shape)
        self.dtype = np.dtype(dtype).name if dtype != "string" else "string"
        self.name = name
        self._keras_history = history
        self.sparse = False

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def node(self) -> Node | None:
        if self._keras_history is None:
            return None
        layer, node_index, _ = self._keras_history
        return layer._inbound_nodes[node_index]

    def __repr__(self):
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype}, name={self.name}>"

    def __len__(self):
        if not self.shape or self.shape[0] is None:
            raise TypeError(f"len() of a symbolic tensor of shape {_shape_str(self.shape)} is unknown")
        return self.shape[0]

    def __bool__(self):
        raise TypeError("A symbolic tensor (keras.Input or a layer's output) has no truth value: it holds "
                        "no data yet. Python `if`/`and`/`or` on it cannot be traced into a model; use "
                        "layers or fastnet.ops instead")

    __hash__ = object.__hash__

    # Arithmetic between symbolic tensors builds merge-layer nodes; with a constant (and
    # the other operators) it builds op nodes (fastnet.layers.op_layer), as in Keras.
    def _merge(self, other, cls, swap=False):
        from fastnet.layers import merging

        if not isinstance(other, KerasTensor):
            op = {"Add": "add", "Subtract": "subtract", "Multiply": "multiply"}[cls]
            return self._op(other, op, swap)
        a, b = (other, self) if swap else (self, other)
        return getattr(merging, cls)()([a, b])

    def _op(self, other, name, swap=False):
        from fastnet import ops

        if not isinstance(other, (KerasTensor, int, float, np.ndarray, np.generic)):
            return NotImplemented
        a, b = (other, self) if swap else (self, other)
        return getattr(ops, name)(a, b)

    def __truediv__(self, other):
        return self._op(other, "divide")

    def __rtruediv__(self, other):
        return self._op(other, "divide", swap=True)

    def __pow__(self, other):
        return self._op(other, "power")

    def __rpow__(self, other):
        return self._op(other, "power", swap=True)

    def __matmul__(self, other):
        return self._op(other, "matmul")

    def __rmatmul__(self, other):
        return self._op(other, "matmul", swap=True)

    def __lt__(self, other):
        return self._op(other, "less")

    def __le__(self, other):
        return self._op(other, "less_equal")

    def __gt__(self, other):
        return self._op(other, "greater")

    def __ge__(self, other):
        return self._op(other, "greater_equal")

    def __neg__(self):
        from fastnet import ops

        return ops.negative(self)

    def __getitem__(self, key):
        from fastnet import ops

        return ops.numpy.get_item(self, key)

    def __add__(self, other):
        return self._merge(other, "Add")

    def __radd__(self, other):
        return self._merge(other, "Add", swap=True)

    def __sub__(self, other):
        return self._merge(other, "Subtract")

    def __rsub__(self, other):
        return self._merge(other, "Subtract", swap=True)

    def __mul__(self, other):
        return self._merge(other, "Multiply")

    def __rmul__(self, other):
        return self._merge(other, "Multiply", swap=True)


class Node:
    """One call of ``layer`` in a graph.

    ``args``/``kwargs`` are the call's arguments as given (symbolic tensors inside);
    ``inputs`` are the symbolic tensors among them, flattened in order (positional then
    keyword); ``outputs`` the flattened outputs and ``output_structure`` their structure.
    """

    __slots__ = ("layer", "args", "kwargs", "inputs", "outputs", "output_structure", "index")

    def __init__(self, layer: Layer, args: tuple, kwargs: dict, output_structure: Any) -> None:
        self.layer = layer
        self.args = args
        self.kwargs = kwargs
        self.inputs = [t for t in tree.flatten([list(args), kwargs]) if isinstance(t, KerasTensor)]
        self.output_structure = output_structure
        self.outputs = tree.flatten(output_structure)
        self.index = len(layer._inbound_nodes)
        layer._inbound_nodes.append(self)
        for i, t in enumerate(self.outputs):
            t._keras_history = (layer, self.index, i)

    @property
    def input_structure(self) -> Any:
        """What the layer was called on (its first argument)."""
        return self.args[0] if self.args else self.kwargs.get("inputs")

    @property
    def is_input(self) -> bool:
        return not self.inputs and not self.args

    @property
    def parent_nodes(self) -> list[Node]:
        return [t.node for t in self.inputs if t.node is not None]

    def __repr__(self):
        return f"<Node {self.layer.name}#{self.index}>"


def _spec_to_tensors(shapes, dtype):
    """KerasTensors for a compute_output_shape result (a shape or a list of shapes)."""
    if isinstance(shapes, list) or (isinstance(shapes, tuple) and shapes and
                                    isinstance(shapes[0], (tuple, list))):
        return [_spec_to_tensors(s, dtype) for s in shapes]
    if isinstance(shapes, dict):
        return {k: _spec_to_tensors(v, dtype) for k, v in shapes.items()}
    return KerasTensor(tuple(shapes), dtype)


def infer_output_shape(layer: Layer, args: tuple, kwargs: dict) -> Any:
    """Output shapes of a layer whose class does not define compute_output_shape, by
    running it on zeros: undefined sizes are tried with two values, and the output
    sizes that change with them are undefined too."""
    from fastnet.layers.base import CallContext

    results = []
    for fill in (2, 3):
        def concrete(t, fill=fill):
            if isinstance(t, KerasTensor):
                shape = tuple(fill if d is None else d for d in t.shape)
                dt = t.dtype if t.dtype != "string" else object
                return np.zeros(shape, dtype=dt)
            return t
        cargs = tree.map_structure(concrete, list(args))
        ckw = tree.map_structure(concrete, dict(kwargs))
        ckw.pop("training", None)
        out = layer.forward(CallContext(record=False), *cargs, training=False, **ckw)
        results.append(out)
    a, b = results
    fa, fb = tree.flatten(a), tree.flatten(b)
    tensors = []
    for u, v in zip(fa, fb):
        su, sv = np.shape(u), np.shape(v)
        shape = tuple(None if x != y else x for x, y in zip(su, sv))
        tensors.append(KerasTensor(shape, np.asarray(u).dtype.name))
    return tree.pack_sequence_as(a, tensors)


def symbolic_call(layer: Layer, args: tuple, kwargs: dict) -> Any:
    """Builds ``layer`` for the symbolic inputs' shapes and adds a node; returns the
    symbolic outputs."""
    from fastnet.layers.base import Layer

    kwargs = dict(kwargs)
    first = args[0] if args else kwargs.get("inputs")
    shape = tree.map_structure(lambda t: t.shape if isinstance(t, KerasTensor) else np.shape(t), first)
    if isinstance(shape, tuple) and shape and isinstance(shape[0], tuple):
        shape = list(shape)
    if not layer.built:
        layer._maybe_build(shape)
    else:
        layer._check_spec(shape)
    spec = getattr(layer, "compute_output_spec", None)
    if spec is not None:
        out = _as_tensors(spec(*args, **{k: v for k, v in kwargs.items() if k != "training"}),
                          _output_dtype(layer))
    elif (type(layer).compute_output_shape is Layer.compute_output_shape
          and type(layer).call is not Layer.call):
        out = infer_output_shape(layer, args, kwargs)
    else:
        out = _spec_to_tensors(layer.compute_output_shape(shape), _output_dtype(layer))
    if isinstance(out, tuple):
        out = list(out)
    Node(layer, tuple(args), kwargs, out)
    return out


def _is_shape(v):
    return isinstance(v, (tuple, list)) and all(d is None or isinstance(d, (int, np.integer)) for d in v)


def _as_tensors(out, dtype):
    """compute_output_spec's result as KerasTensors: it may give tensors, objects with
    ``shape`` and ``dtype``, or plain shapes."""
    if isinstance(out, KerasTensor):
        return out
    if _is_shape(out):
        return KerasTensor(tuple(out), dtype)
    if hasattr(out, "shape") and hasattr(out, "dtype") and not isinstance(out, np.ndarray):
        return KerasTensor(tuple(out.shape), str(getattr(out.dtype, "name", out.dtype)))
    if isinstance(out, dict):
        return {k: _as_tensors(v, dtype) for k, v in out.items()}
    if isinstance(out, (list, tuple)):
        return [_as_tensors(v, dtype) for v in out]
    raise TypeError(f"compute_output_spec returned {out!r}; expected tensors or shapes")


def _output_dtype(layer):
    dt = getattr(layer, "_output_dtype", None)
    return dt if dt is not None else layer.compute_dtype
