"""Functional models: ``Model(inputs, outputs)`` over a graph of layer calls.

Calling layers on ``keras.Input`` tensors records nodes; a functional model is the
nodes between its inputs and outputs (``fastnet.models.graph``). Inputs and outputs
may be one tensor, a list or a dict; data, targets and predictions follow the same
structure. The config is Keras's: each layer with its inbound nodes, and the
input and output layers as ``[layer name, node index, tensor index]``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from fastnet.layers.base import CallContext, InputLayer, Layer
from fastnet.layers.graph import KerasTensor
from fastnet.models.graph import DeferredUpdates
from fastnet.models.model import Model
from fastnet.ops import autodiff as _autodiff
from fastnet.utils import tree

if TYPE_CHECKING:
    from typing import Any

    from fastnet._typing import Config, CustomObjects, Shape, ShapeLike

__all__ = ["Functional"]


def _check_tensors(value, what):
    for t in tree.flatten(value):
        if not isinstance(t, KerasTensor):
            raise TypeError(f"Model {what} must be symbolic tensors (keras.Input(...) or a layer's output on "
                            f"them), received {t!r} of type {type(t).__name__}")


class Functional(Model):
    """A model defined by its input and output tensors.

    Args:
        inputs: a ``keras.Input`` tensor, or a list or dict of them.
        outputs: tensors computed from ``inputs`` by layers (one, a list or a dict).
        name: the model's name.

    Example:
        >>> import fastnet as keras
        >>> inputs = keras.Input(shape=(3,))
        >>> outputs = keras.layers.Dense(2)(keras.layers.Dense(4, activation="relu")(inputs))
        >>> keras.Model(inputs, outputs).output_shape
        (None, 2)
    """

    _is_graph_model = True
    # A nested model passes the losses its layers add (activity regularization) to the
    # graph it sits in, through ``ctx.losses``.
    _adds_losses = True

    def __init__(self, inputs: Any = None, outputs: Any = None, name: str | None = None, trainable: bool = True,
                 **kwargs) -> None:
        super().__init__(name=name, trainable=trainable, **kwargs)
        if inputs is None or outputs is None:
            raise ValueError("Model(inputs, outputs) needs both inputs and outputs")
        self._init_graph(inputs, outputs)

    def _init_graph(self, inputs, outputs):
        self._set_graph(inputs, outputs)
        self._layers = self._graph.layers
        self.built = True

    # ------------------------------------------------------------------ structure
    @property
    def layers(self) -> list[Layer]:
        """The layers of the graph in Keras's order (input layers included)."""
        return list(self._layers)

    @property
    def input(self) -> Any:
        s = self._input_structure
        return s[0] if isinstance(s, list) and len(s) == 1 else s

    @property
    def output(self) -> Any:
        s = self._output_structure
        return s[0] if isinstance(s, list) and len(s) == 1 else s

    @property
    def input_shape(self) -> Shape | list[Shape]:
        shapes = [t.shape for t in self._graph.inputs]
        return shapes[0] if len(shapes) == 1 else shapes

    @property
    def output_shape(self) -> Shape | list[Shape]:
        shapes = [t.shape for t in self._graph.outputs]
        return shapes[0] if len(shapes) == 1 else shapes

    def _layer_output_shapes(self):
        out = []
        for layer in self._layers:
            nodes = [n for n in layer._inbound_nodes if n in self._graph_nodes()]
            if not nodes:
                out.append(None)
                continue
            shapes = [tuple(t.shape) for t in nodes[0].outputs]
            out.append(shapes[0] if len(shapes) == 1 else shapes)
        return out

    def _graph_nodes(self):
        nodes = getattr(self, "_node_set", None)
        if nodes is None or nodes[0] is not self._graph:
            inputs = {id(t.node) for t in self._graph.inputs if t.node is not None}
            members = set(id(n) for n in self._graph.nodes) | inputs
            nodes = self._node_set = (self._graph, _IdSet(members))
        return nodes[1]

    def _ensure_built_for(self, x):
        pass

    # ------------------------------------------------------------------ calling
    def __call__(self, *args, **kwargs) -> Any:
        from fastnet.layers.base import _is_symbolic

        if _is_symbolic(args, kwargs):
            return Layer.__call__(self, *args, **kwargs)
        inputs = args[0] if args else kwargs.pop("inputs")
        training = bool(kwargs.pop("training", False))
        kwargs.pop("mask", None)
        if _autodiff.active_tape() is not None:
            return self._call_recorded_graph(inputs, training)
        self._ensure_built_for(inputs)
        xs = self._flatten_x(inputs, "input")
        self._check_inputs(xs)
        ctx = CallContext()
        out = self._run(ctx, xs, training)
        self._last_ctx = ctx
        return out

    def _call_recorded_graph(self, inputs, training):
        """A call inside an active recording (a ``GradientTape`` in a custom train_step, a
        model used in a ``call`` written with ops): the graph runs forward on the arrays,
        and the call is recorded with the graph's backward as its vector-Jacobian product."""
        if isinstance(inputs, dict):
            flat_in = [inputs[n] for n in self._input_names]
        elif isinstance(inputs, (list, tuple)):
            flat_in = list(inputs)
        else:
            flat_in = [inputs]
        xs = self._flatten_x([_autodiff.unwrap(v) for v in flat_in] if len(flat_in) > 1
                             else _autodiff.unwrap(flat_in[0]), "input")
        self._check_inputs(xs)
        ctx = CallContext()
        out = self._run(ctx, xs, training)
        if ctx.losses:
            object.__setattr__(self, "_losses", list(ctx.losses))

        def vjp(dy, ctx=ctx):
            ctx.need_dx = True
            return self.backward(ctx, dy)

        flat_out = tree.flatten(out)
        rec = _autodiff.record_layer(vjp, flat_in, flat_out if len(flat_out) > 1 else flat_out[0],
                                     self.trainable_weights)
        if len(flat_out) == 1:
            return self._pack_outputs([rec])
        return self._pack_outputs(list(rec))

    def _run(self, ctx, xs, training):
        state = ctx.__dict__.get("run")
        if state is None or state.graph is not self._graph:
            defer = ctx.defer_updates if isinstance(ctx.defer_updates, DeferredUpdates) else None
            state = ctx.run = self._graph.new_state(ctx.record, ctx.pool is not None, defer)
        elif state.record != ctx.record:
            state.set_record(ctx.record)
        out = self._pack_outputs(self._graph.forward(state, xs, training))
        ctx.losses = [state.extra_loss] if state.extra_loss else None
        return out

    def forward(self, ctx: CallContext, inputs: Any, training: bool = False, mask: Any = None, **kwargs) -> Any:
        """The model as a layer: runs its graph in a run state kept in ``ctx``."""
        if isinstance(inputs, dict):
            xs = [inputs[n] for n in self._input_names]
        elif isinstance(inputs, (list, tuple)):
            xs = list(inputs)
        else:
            xs = [inputs]
        if len(xs) != len(self._graph.inputs):
            raise ValueError(f"Model '{self.name}' expects {len(self._graph.inputs)} inputs, received {len(xs)}")
        return self._run(ctx, xs, training)

    def backward(self, ctx: CallContext, dy: Any) -> Any:
        state = ctx.__dict__.get("run")
        if state is None or not state.record:
            raise RuntimeError(f"Model '{self.name}': backward needs a recorded forward pass")
        if isinstance(self._output_structure, KerasTensor):
            flat = [dy]
        else:
            flat = tree.flatten(dy) if not isinstance(dy, list) or len(dy) != len(self._graph.outputs) else dy
        grads = self._graph.backward(state, flat, need_input_grads=ctx.need_dx)
        if not ctx.need_dx:
            return None
        return grads[0] if len(grads) == 1 else grads

    def compute_output_spec(self, inputs: Any, training: Any = None, mask: Any = None, **kwargs) -> Any:
        flat_in = tree.flatten(inputs)
        batch = flat_in[0].shape[0] if flat_in and isinstance(flat_in[0], KerasTensor) else None
        outs = [KerasTensor((batch,) + tuple(t.shape[1:]), t.dtype) for t in self._graph.outputs]
        return self._pack_outputs(outs)

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape | list[Shape]:
        batch = input_shape[0][0] if isinstance(input_shape, list) else input_shape[0]
        shapes = [(batch,) + tuple(t.shape[1:]) for t in self._graph.outputs]
        return shapes[0] if len(shapes) == 1 else shapes

    def build(self, input_shape: ShapeLike | None = None) -> None:
        self.built = True

    # ------------------------------------------------------------------ config
    def get_config(self) -> Config:
        """Keras's functional config: the layers with their inbound nodes, and the input
        and output layers as [layer name, node index, tensor index]."""
        from fastnet.saving.serialization import serialize_functional

        return serialize_functional(self)

    @classmethod
    def from_config(cls, config: Config, custom_objects: CustomObjects | None = None) -> Functional:
        """A functional model from ``get_config()``'s dict or Keras's."""
        from fastnet.saving.serialization import functional_from_config

        return functional_from_config(cls, config, custom_objects=custom_objects)


class _IdSet:
    """Membership by identity (nodes are compared by identity, not value)."""

    __slots__ = ("ids",)

    def __init__(self, ids):
        self.ids = ids

    def __contains__(self, item):
        return id(item) in self.ids


def is_input_tensor(t: KerasTensor) -> bool:
    return t.node is not None and isinstance(t.node.layer, InputLayer)
