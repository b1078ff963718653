"""Sequential: a plain stack of layers, each feeding the next."""
from __future__ import annotations

from typing import TYPE_CHECKING

from fastnet.layers.base import InputLayer, KerasTensor, Layer, _shape_str
from fastnet.models.model import Model

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np

    from fastnet._typing import ArrayLike, Config, CustomObjects, Shape, ShapeLike

__all__ = ["Sequential"]


class Sequential(Model):
    """A linear stack of layers.

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
        super().__init__(name=name, trainable=trainable, **kwargs)
        self._layers = []
        self._input_layer = None
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
            layer = layer._keras_layer
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
    def input_shape(self) -> Shape:
        if self._input_layer is not None:
            return self._input_layer.batch_shape
        return super().input_shape

    @property
    def output_shape(self) -> Shape:
        if not self.built:
            raise AttributeError(f"Model '{self.name}' is not built, so its output shape is unknown")
        return self._layer_output_shapes()[-1] if self._layers else self._build_shape

    @property
    def inputs(self) -> list[KerasTensor]:
        return [KerasTensor(self._input_layer)] if self._input_layer is not None else None

    # ------------------------------------------------------------------ forward / backward
    def _ensure_built_for(self, x):
        if not self.built or (self._layers and not all(l.built for l in self._layers)):
            self.build((None,) + tuple(x.shape[1:]))

    def _check_input(self, x):
        if self._input_layer is not None:
            want = self._input_layer.batch_shape
            if len(want) != x.ndim or any(w is not None and w != g for w, g in zip(want[1:], x.shape[1:])):
                raise ValueError(f'Input of model "{self.name}" is incompatible: expected shape '
                                 f"{_shape_str((None,) + tuple(want[1:]))}, received input with shape "
                                 f"{_shape_str(x.shape)}")

    def call(self, inputs: ArrayLike, training: bool = False, mask: ArrayLike | None = None) -> np.ndarray:
        x = inputs
        for layer in self._layers:
            if layer._call_takes_mask:
                out = layer.call(x, training=training, mask=mask)
            else:
                out = layer.call(x, training=training)
            if self._uses_masks:
                mask = layer.compute_mask(x, mask)
            x = out
        return x

    def _backward(self, dy):
        layers = self._layers
        stop = self._bw_stop  # set by _prepare_training for this loop
        dist = self._dist
        for i in range(len(layers) - 1, stop - 1, -1):
            dy = layers[i].backward(dy, i > stop)
            if dist is not None:  # gradients of layers i.. are complete: may start their allreduce
                dist.backward_done(i)
        return dy

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
        layers = self._layers
        for i in range(len(layers) - 1, -1, -1):
            dy = layers[i].backward(dy, need_dx or i > 0)
        return dy

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
