"""Model: a layer made of layers, with the Keras training API.

``Model(inputs, outputs)`` builds a functional model (``fastnet.models.functional``);
``Sequential`` is the linear case of the same graph. A model is itself a layer, so it
can be called inside another model.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from fastnet import backend, config
from fastnet.layers.base import CallContext, Layer, _shape_str
from fastnet.layers.graph import KerasTensor
from fastnet.models.trainer import Trainer
from fastnet.utils import tree

try:
    from fastnet.ops import autodiff as _autodiff
except ImportError:  # pragma: no cover
    _autodiff = None

if TYPE_CHECKING:
    import os
    from collections.abc import Callable, Sequence
    from typing import Any

    from fastnet._typing import ArrayLike
    from fastnet.backend import Variable

__all__ = ["Model"]

_FUNCTIONAL_SUBCLASSES = {}


def _functional_args(args, kwargs):
    first = args[0] if args else kwargs.get("inputs")
    return bool(first is not None and any(isinstance(t, KerasTensor) for t in tree.flatten(first)))


def _functional_subclass(cls, functional):
    sub = _FUNCTIONAL_SUBCLASSES.get(cls)
    if sub is None:
        sub = _FUNCTIONAL_SUBCLASSES[cls] = type(cls.__name__, (cls, functional),
                                                 {"__module__": cls.__module__, "__qualname__": cls.__qualname__})
    return sub


class Model(Trainer, Layer):
    """Groups layers into an object with training and inference features.

    ``Model(inputs, outputs, name=None)`` with ``keras.Input`` tensors and the tensors
    computed from them (a tensor, a list or a dict on either side) builds a functional
    model; ``Sequential`` builds a stack.
    """

    def __new__(cls, *args, **kwargs):
        if args or "inputs" in kwargs or "outputs" in kwargs:
            from fastnet.models.functional import Functional

            if cls is Model:
                return super().__new__(Functional)
            if not issubclass(cls, Functional) and _functional_args(args, kwargs):
                # A Model subclass built as Model(inputs, outputs) (to override train_step, say):
                # a functional model of that class, as in Keras.
                return super().__new__(_functional_subclass(cls, Functional))
        return super().__new__(cls)

    def __init__(self, *args, name: str | None = None, trainable: bool = True, **kwargs) -> None:
        super().__init__(name=name or backend.unique_name(backend.to_snake_case(type(self).__name__)),
                         trainable=trainable, **kwargs)
        self._init_trainer()
        self._graph = None
        self._input_structure = self._output_structure = None

    # ------------------------------------------------------------------ graph
    def _set_graph(self, inputs, outputs):
        """The model's graph from its input and output tensors (any structure)."""
        from fastnet.models.graph import Graph

        for what, value in (("inputs", inputs), ("outputs", outputs)):
            for t in tree.flatten(value):
                if not isinstance(t, KerasTensor):
                    raise TypeError(f"Model {what} must be symbolic tensors (keras.Input(...) or a layer's output "
                                    f"on them), received {t!r} of type {type(t).__name__}")
        if isinstance(inputs, tuple):
            inputs = list(inputs)
        if isinstance(outputs, tuple):
            outputs = list(outputs)
        self._input_structure = inputs
        self._output_structure = outputs
        flat_in, flat_out = tree.flatten(inputs), tree.flatten(outputs)
        if len({id(t) for t in flat_in}) != len(flat_in):
            raise ValueError(f"Model '{self.name}': the same input tensor is given twice in inputs")
        self._graph = Graph(flat_in, flat_out)
        if isinstance(inputs, dict):
            self._input_names = sorted(inputs)
        else:
            self._input_names = [t.node.layer.name if t.node is not None and t.node.is_input
                                 else (t.name or f"input_{i}") for i, t in enumerate(flat_in)]
        if isinstance(outputs, dict):
            self._output_names = sorted(outputs)
        else:
            self._output_names = [t._keras_history[0].name for t in flat_out]
        shapes = [t.shape for t in flat_in]
        self._build_shape = shapes[0] if len(shapes) == 1 else shapes
        self._packed = None
        self._train_state = None
        self._outputs_cfg = None

    @property
    def inputs(self) -> list[KerasTensor] | None:
        return list(self._graph.inputs) if self._graph is not None else None

    @property
    def outputs(self) -> list[KerasTensor] | None:
        return list(self._graph.outputs) if self._graph is not None else None

    @property
    def input_names(self) -> list[str]:
        self._require_graph()
        return list(self._input_names)

    @property
    def output_names(self) -> list[str]:
        self._require_graph()
        return list(self._output_names)

    def _require_graph(self):
        if self._graph is None:
            raise ValueError(f"Model '{self.name}' has not been called on data yet, so its inputs and outputs are "
                             f"unknown: call it on a batch, or fit/predict")

    def _check_inputs(self, xs):
        for t, x, name in zip(self._graph.inputs, xs, self._input_names):
            want = t.shape
            got = np.shape(x)
            if len(want) != len(got) or any(w is not None and w != g for w, g in zip(want[1:], got[1:])):
                raise ValueError(f'Input "{name}" of model "{self.name}" is incompatible: expected shape '
                                 f"{_shape_str((None,) + tuple(want[1:]))}, received input with shape "
                                 f"{_shape_str(got)}")

    def _pack_outputs(self, flat):
        s = self._output_structure
        if isinstance(s, KerasTensor):
            return flat[0]
        return tree.pack_sequence_as(s, list(flat))

    # ------------------------------------------------------------------ subclassed models
    def _ensure_built_for(self, x):
        """A subclassed model (``__init__`` + ``call``) gets its graph from the first data:
        one input per array of ``x``. ``call`` is traced once on those symbolic inputs
        (as ``tf.function`` or ``jax.jit`` would): the layers and ops it calls become the
        graph's nodes, run by the same executor as a Sequential, and Python control flow
        in ``call`` is fixed at trace time. When ``call`` cannot be traced (it branches on
        a tensor's value or on ``training``, adds a loss itself, computes with numpy, or
        uses the model's own weights through ops) or the model was compiled with
        ``run_eagerly=True``, the graph is one node, the model's own call, recorded on a
        tape each step so that its Python code runs anew every step."""
        eager = bool(getattr(self, "run_eagerly", False))
        if self._graph is not None:
            if not (eager and self.__dict__.get("_traced_call")):
                return
            self._graph = None   # compiled with run_eagerly=True after a trace: record instead
        from fastnet.layers.base import Input

        def spec(v, name):
            a = np.asarray(v)
            if a.ndim == 0:
                raise ValueError(f"Model '{self.name}' needs inputs with a batch axis, received a scalar")
            dt = a.dtype if a.dtype.kind in "iub" else config.floatx()
            return Input(shape=a.shape[1:], dtype=np.dtype(dt).name, name=name)

        def make():
            if isinstance(x, dict):
                return {k: spec(v, k) for k, v in x.items()}
            if isinstance(x, (list, tuple)) and x and not isinstance(x[0], (int, float, np.number)):
                return [spec(v, None) for v in x]
            return spec(x, None)

        traced = None if eager or type(self).call is Layer.call else _trace_call(self, make())
        self.__dict__["_traced_call"] = traced is not None
        if traced is not None:
            inputs, outputs = traced
        else:
            inputs = make()
            outputs = self(inputs)
        self._set_graph(inputs, outputs)

    def __call__(self, *args, **kwargs) -> Any:
        from fastnet.layers.base import _is_symbolic

        if type(self)._is_graph_model or _is_symbolic(args, kwargs) or (
                _autodiff is not None and _autodiff.active_tape() is not None):
            return Layer.__call__(self, *args, **kwargs)
        inputs = args[0] if args else kwargs.pop("inputs")
        training = bool(kwargs.pop("training", False))
        x = tree.map_structure(self._convert_one, inputs)
        if not self.built:
            shapes = tree.map_structure(np.shape, x)
            self.build(shapes if not isinstance(shapes, tuple) or not shapes or isinstance(shapes[0], int)
                       else list(shapes))
            self.built = True
        ctx = CallContext()
        out = self.forward(ctx, x, *args[1:], training=training, **kwargs)
        self._last_ctx = ctx
        return out

    _is_graph_model = False

    # ------------------------------------------------------------------ structure
    @property
    def layers(self) -> list[Layer]:
        """A subclassed model's layers: those held in its attributes, in assignment order."""
        return list(self._sublayers())

    @property
    def weights(self) -> list[Variable]:
        out, seen = list(self._variables), {id(v) for v in self._variables}
        for layer in self.layers:
            for w in layer.weights:
                if id(w) not in seen:
                    seen.add(id(w))
                    out.append(w)
        return out

    @property
    def trainable_weights(self) -> list[Variable]:
        if not self.trainable:
            return []
        out = [v for v in self._variables if v.trainable]
        seen = {id(v) for v in self._variables}
        for layer in self.layers:
            for w in layer.trainable_weights:
                if id(w) not in seen:
                    seen.add(id(w))
                    out.append(w)
        return out

    @property
    def non_trainable_weights(self) -> list[Variable]:
        ids = {id(v) for v in self.trainable_weights}
        return [w for w in self.weights if id(w) not in ids]

    def _all_variables(self):
        return self.weights

    def _all_trainable(self):
        return self.trainable_weights

    def get_weights(self) -> list[np.ndarray]:
        return [w.value.copy() for w in self.weights]

    def set_weights(self, weights: Sequence[ArrayLike]) -> None:
        params = self.weights
        weights = list(weights)
        if len(weights) != len(params):
            raise ValueError(f"Model '{self.name}' expects {len(params)} weight arrays, "
                             f"received {len(weights)}")
        for var, w in zip(params, weights):
            if np.shape(w) != var.shape:
                raise ValueError(f"Weight '{var.path}' of model '{self.name}' has shape {var.shape}, "
                                 f"received a value of shape {np.shape(w)}")
        for var, w in zip(params, weights):
            var.assign(w)

    def count_params(self) -> int:
        if not self.built:
            raise ValueError(f"Model '{self.name}' is not built yet: call build(input_shape), "
                             f"fit or predict on data, or give the first layer input_shape=")
        return int(sum(w.size for w in self.weights))

    def _layer_output_shapes(self) -> list[Any]:
        """Each layer's output shape for summary() (unknown for a model without a graph)."""
        return [None] * len(self.layers)

    def get_layer(self, name: str | None = None, index: int | None = None) -> Layer:
        """A layer by name or by index (exactly one of the two)."""
        if (name is None) == (index is None):
            raise ValueError("Provide exactly one of name= or index= to get_layer")
        layers = self.layers
        if index is not None:
            if not -len(layers) <= index < len(layers):
                raise ValueError(f"Model '{self.name}' has {len(layers)} layers; index {index} is out of range")
            return layers[index]
        for layer in layers:
            if layer.name == name:
                return layer
        raise ValueError(f"No layer named '{name}' in model '{self.name}'. Layers: "
                         f"{[l.name for l in layers]}")

    def summary(self, line_length: int | None = None, positions: Sequence[float] | None = None,
                print_fn: Callable[..., Any] | None = None, expand_nested: bool = False,
                show_trainable: bool = False, **kwargs) -> None:
        """Prints the layers, their output shapes and parameter counts (tf.keras 2 layout;
        functional models get the "Connected to" column)."""
        from fastnet.utils.summary import print_summary

        if not self.built:
            raise ValueError(
                f"Model '{self.name}' has not been built yet, so its summary is unknown. Build it by "
                f"giving the first layer an input shape (e.g. Dense(4, input_shape=(3,))), by starting "
                f"with Input(shape=...), by calling model.build(input_shape), or by calling it on data.")
        print_summary(self, line_length=line_length, positions=positions, print_fn=print_fn)

    @classmethod
    def from_config(cls, config: Any, custom_objects: Any = None) -> Model:
        """A functional model from its config (``Model.from_config`` as in Keras)."""
        from fastnet.models.functional import Functional

        if cls is Model:
            return Functional.from_config(config, custom_objects=custom_objects)
        return super().from_config(config)

    # ------------------------------------------------------------------ saving hooks
    def save(self, filepath: str | os.PathLike[str], overwrite: bool = True, **kwargs) -> None:
        from fastnet.models import saving

        return saving.save_model(self, filepath, overwrite=overwrite, **kwargs)

    def save_weights(self, filepath: str | os.PathLike[str], overwrite: bool = True) -> None:
        from fastnet.models import saving

        return saving.save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath: str | os.PathLike[str], skip_mismatch: bool = False) -> None:
        from fastnet.models import saving

        return saving.load_weights(self, filepath, skip_mismatch=skip_mismatch)

    def to_json(self, **kwargs) -> str:
        from fastnet.models import saving

        return saving.model_to_json(self, **kwargs)


class _TraceAbort(Exception):
    """A subclassed model's ``call`` cannot be traced into a graph."""


class _TracedTraining:
    """The ``training`` argument while a subclassed model's ``call`` is traced: passed on
    to layers it is the run's flag (each graph node receives it); branching on it in
    Python cannot be traced."""

    def __bool__(self):
        raise _TraceAbort("call() branches on `training`")

    def __repr__(self):
        return "<training flag of the run>"


def _trace_call(model, inputs):
    """``(inputs, outputs)`` of ``model.call`` traced on symbolic ``inputs``, or None when
    the call cannot be traced exactly (the nodes made by a failed trace are dropped)."""
    from fastnet.layers.base import _flatten_layers, _takes_training

    layers = _flatten_layers(model)
    marks = [(lay, len(lay._inbound_nodes)) for lay in layers]
    kwargs = {"training": _TracedTraining()} if _takes_training(type(model)) else {}
    try:
        outputs = model.call(inputs, **kwargs)
        flat = tree.flatten(outputs)
        if not flat or not all(isinstance(t, KerasTensor) and t.node is not None for t in flat):
            raise _TraceAbort("call() did not return symbolic tensors")
        if isinstance(outputs, tuple):
            outputs = list(outputs)
        _check_trace(model, inputs, flat)
        return inputs, outputs
    except Exception:  # noqa: BLE001 (any failure means: run call eagerly on a tape instead)
        for lay, n in marks:
            del lay._inbound_nodes[n:]
        return None


def _check_trace(model, inputs, outputs):
    """The traced graph must compute what the recorded call computes, with every
    trainable weight updated by its nodes: no weight used as a constant op argument,
    no weight of the model outside the graph's layers, no loss added by the model."""
    from fastnet.backend import Variable

    if model.__dict__.get("_losses"):
        raise _TraceAbort("call() adds losses to the model itself")
    ins = {id(t) for t in tree.flatten(inputs)}
    seen, stack, owned = set(), list(outputs), set()
    while stack:
        t = stack.pop()
        node = t.node
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if node.is_input:
            if id(t) not in ins:
                raise _TraceAbort("the outputs depend on a symbolic input that is not the model's")
            continue
        for v in tree.flatten([list(node.args), node.kwargs]):
            if isinstance(v, Variable):
                raise _TraceAbort("a weight is used as an op argument")
        owned.update(id(v) for v in node.layer.weights)
        stack.extend(node.inputs)
    if any(id(v) not in owned for v in model.weights):
        raise _TraceAbort("a weight of the model is not used by the traced layers")
