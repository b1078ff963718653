"""Sequential: a plain stack of layers, each feeding the next."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from fastnet.layers.base import InputLayer, KerasTensor, Layer
from fastnet.models.functional import Functional
from fastnet.models.model import Model

if TYPE_CHECKING:
    from collections.abc import Sequence

    from fastnet._typing import Config, CustomObjects, Shape, ShapeLike

__all__ = ["Sequential"]


class Sequential(Functional):
    """A linear stack of layers: the linear case of a functional model's graph.

    Args:
        layers: optional list of layers (the first may be ``Input(shape=...)``).
        name: model name (``sequential``, ``sequential_1``, ... by default).

    Example:
        >>> from fastnet.models import Sequential
        >>> from fastnet.layers import Dense
        >>> model = Sequential()
        >>> model.add(Dense(4, activation="tanh", input_shape=(3,)))
        >>> model.add(Dense(1, activation="sigmoid"))
        >>> model.output_shape
        (None, 1)
    """

    def __init__(self, layers: Sequence[Layer | KerasTensor] | None = None, name: str | None = None,
                 trainable: bool = True, **kwargs) -> None:
        Model.__init__(self, name=name, trainable=trainable, **kwargs)
        self._layers = []
        self._input_layer = None
        self._input_structure = self._output_structure = None
        if layers is not None:
            if isinstance(layers, (Layer, KerasTensor)):
                layers = [layers]
            for layer in layers:
                self.add(layer)

    # ------------------------------------------------------------------ structure
    @property
    def layers(self) -> list[Layer]:
        """The model's layers (the input declaration excluded, as in Keras)."""
        return list(self._layers)

    def add(self, layer: Layer | KerasTensor) -> None:
        """Appends a layer; builds the model as soon as the input shape is known."""
        if isinstance(layer, KerasTensor):
            node = layer.node
            if node is None or not node.is_input:
                raise TypeError(f"Sequential.add takes layers or keras.Input(...), received the tensor {layer!r}")
            layer = node.layer
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add expects a Layer instance, received {layer!r} "
                            f"of type {type(layer).__name__}")
        if isinstance(layer, InputLayer):
            if self._layers or self._input_layer is not None:
                raise ValueError(f"Sequential model '{self.name}': an Input/InputLayer can only be "
                                 f"the first layer, but the model already has layers")
            self._input_layer = layer
            self._invalidate()
            return
        if any(l is layer for l in self._layers):
            raise ValueError(f"Layer '{layer.name}' is already in model '{self.name}'")
        names = {l.name for l in self._layers}
        if layer.name in names:
            raise ValueError(f"All layers added to a Sequential model should have unique names. "
                             f"Name '{layer.name}' is already the name of a layer in this model.")
        if not self._layers and self._input_layer is None and layer._batch_input_shape is not None:
            self._input_layer = InputLayer(batch_shape=layer._batch_input_shape)
        self._layers.append(layer)
        self._invalidate()
        if self._input_layer is not None:
            try:
                self._build_layers(self._input_layer.batch_shape)
            except Exception:
                self._layers.pop()
                self._invalidate()
                raise

    def pop(self) -> Layer:
        """Removes and returns the last layer."""
        if not self._layers:
            raise TypeError(f"There are no layers in model '{self.name}' to pop")
        layer = self._layers.pop()
        self._invalidate()
        if self.built and self._input_layer is not None and self._layers:
            self._make_graph()
        return layer

    def _build_layers(self, batch_shape):
        # The batch size travels too: a stateful recurrent layer needs it to size its state.
        shape = tuple(batch_shape)
        for layer in self._layers:
            if not layer.built:
                layer._maybe_build(shape)
            else:
                layer._check_spec(shape)
            shape = layer.compute_output_shape(shape)
        self.built = True
        self._build_shape = tuple(batch_shape)
        self._make_graph()

    def _make_graph(self):
        """The graph of the stack: each layer called on the previous one's output."""
        if self._input_layer is None or not self._layers:
            self._graph = None
            return
        x = self._input_layer.output
        inp = x
        for layer in self._layers:
            x = layer(x)
            if isinstance(x, list):
                x = x[0] if len(x) == 1 else x
        stack = list(self._layers)
        input_layer = self._input_layer
        self._init_graph(inp, x)
        # Sequential lists its layers in the order they were added, without the input layer.
        self._layers = stack
        self._input_layer = input_layer

    def build(self, input_shape: ShapeLike | None = None) -> None:
        """Builds every layer for inputs of ``input_shape`` (batch axis first, may be None)."""
        if input_shape is None:
            if self._input_layer is None:
                raise ValueError(f"Model '{self.name}' cannot be built without an input shape: "
                                 f"call build(input_shape), or give the first layer input_shape=, "
                                 f"or start with Input(shape=...)")
            input_shape = self._input_layer.batch_shape
        input_shape = tuple(input_shape)
        if self._input_layer is None:
            self._input_layer = InputLayer(batch_shape=(None,) + input_shape[1:])
        self._build_layers(input_shape)

    def _layer_output_shapes(self):
        shapes = []
        if self._build_shape is None:
            return [None] * len(self._layers)
        shape = self._build_shape
        for layer in self._layers:
            shape = layer.compute_output_shape(shape)
            shapes.append(shape)
        return shapes

    @property
    def input_names(self) -> list[str]:
        if self._graph is None:
            return [self._input_layer.name] if self._input_layer is not None else ["input"]
        return super().input_names

    @property
    def output_names(self) -> list[str]:
        if self._graph is None:
            return [self._layers[-1].name] if self._layers else ["output"]
        return super().output_names

    @property
    def inputs(self) -> list[KerasTensor]:
        return [self._input_layer.output] if self._input_layer is not None else None

    @property
    def outputs(self) -> list[KerasTensor]:
        return list(self._graph.outputs) if self._graph is not None else None

    @property
    def input(self) -> KerasTensor:
        if self._input_layer is None:
            raise AttributeError(f"Sequential model '{self.name}' has no defined input yet (not built)")
        return self._input_layer.output

    @property
    def output(self) -> KerasTensor:
        if self._graph is None:
            raise AttributeError(f"Sequential model '{self.name}' has no defined output yet (not built)")
        return self._graph.outputs[0]

    @property
    def input_shape(self) -> Shape:
        if self._input_layer is not None:
            return self._input_layer.batch_shape
        raise AttributeError(f"Sequential model '{self.name}' has no defined input shape yet (not built)")

    @property
    def output_shape(self) -> Shape:
        if not self.built:
            raise AttributeError(f"Model '{self.name}' is not built, so its output shape is unknown")
        return self._layer_output_shapes()[-1] if self._layers else self._build_shape

    def _invalidate(self):
        self._graph = None
        self._packed = None
        self._train_state = None
        self._outputs_cfg = None

    def _ensure_built_for(self, x):
        if self._graph is None or not self.built or (self._layers and not all(l.built for l in self._layers)):
            if isinstance(x, dict) or (isinstance(x, (list, tuple)) and len(x) != 1):
                raise ValueError(f"Sequential model '{self.name}' takes one input array, received "
                                 f"{type(x).__name__} of {len(x)}")
            if isinstance(x, (list, tuple)):
                x = x[0]
            shape = np.shape(x)
            if len(shape) == 0:
                raise ValueError("x must have a batch axis, received a scalar")
            if self._input_layer is not None and self.built:
                self.build(self._input_layer.batch_shape)
            else:
                self.build((None,) + tuple(shape[1:]))
        if self._graph is None:
            raise ValueError(f"Sequential model '{self.name}' has no layers")

    def _flatten_x(self, x, what="x"):
        if isinstance(x, (list, tuple)) and len(x) > 1 and isinstance(x[0], np.ndarray):
            raise ValueError(f"fastnet Sequential models take one {what} array, received a list of "
                             f"{len(x)} arrays")
        return super()._flatten_x(x, what)

    def _flatten_y(self, y, what="y"):
        if isinstance(y, (list, tuple)) and len(y) > 1 and isinstance(y[0], np.ndarray):
            raise ValueError(f"fastnet Sequential models take one {what} array, received a list of "
                             f"{len(y)} arrays")
        return super()._flatten_y(y, what)

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape:
        shape = tuple(input_shape)
        for layer in self._layers:
            shape = layer.compute_output_shape(shape)
        return shape

    # ------------------------------------------------------------------ config
    def get_config(self) -> Config:
        """Keras's Sequential config: name, trainable, dtype policy, the serialized layers
        (the input declaration first) and build_input_shape."""
        from fastnet.saving.serialization import dtype_policy

        layers = []
        if self._input_layer is not None:
            layers.append(_layer_config(self._input_layer))
        layers.extend(_layer_config(l) for l in self._layers)
        cfg = {"name": self.name, "trainable": self.trainable, "dtype": dtype_policy(self.dtype),
               "layers": layers}
        if self.built and self._build_shape is not None:
            cfg["build_input_shape"] = list(self._build_shape)
        return cfg

    @classmethod
    def from_config(cls, config: Config, custom_objects: CustomObjects | None = None) -> Sequential:
        """A model from ``get_config()``'s dict (or Keras's); class names are looked up among
        fastnet's layers and in ``custom_objects`` only."""
        from fastnet.layers import deserialize as deserialize_layer

        model = cls(name=config.get("name"), trainable=config.get("trainable", True))
        for entry in config["layers"]:
            model.add(deserialize_layer(entry, custom_objects=custom_objects))
        shape = config.get("build_input_shape")
        if shape is not None and not model.built and model.layers:
            model.build(tuple(shape))
        return model


def _layer_config(layer):
    from fastnet.layers import serialize

    return serialize(layer)
