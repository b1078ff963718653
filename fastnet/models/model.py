"""Model: a layer made of layers, with the Keras training API.

``Model(inputs, outputs)`` builds a functional model (``fastnet.models.functional``);
``Sequential`` is the linear case of the same graph. A model is itself a layer, so it
can be called inside another model.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from fastnet import backend
from fastnet.layers.base import Layer
from fastnet.models.trainer import Trainer

if TYPE_CHECKING:
    import os
    from collections.abc import Callable, Sequence
    from typing import Any

    from fastnet._typing import ArrayLike
    from fastnet.backend import Variable

__all__ = ["Model"]


class Model(Trainer, Layer):
    """Groups layers into an object with training and inference features.

    ``Model(inputs, outputs, name=None)`` with ``keras.Input`` tensors and the tensors
    computed from them (a tensor, a list or a dict on either side) builds a functional
    model; ``Sequential`` builds a stack.
    """

    def __new__(cls, *args, **kwargs):
        if cls is Model and (args or "inputs" in kwargs or "outputs" in kwargs):
            from fastnet.models.functional import Functional

            return super().__new__(Functional)
        return super().__new__(cls)

    def __init__(self, *args, name: str | None = None, trainable: bool = True, **kwargs) -> None:
        from fastnet.models.functional import Functional

        if not isinstance(self, Functional):
            raise NotImplementedError(
                "Subclassed models (a Model subclass with __init__ and call) are not supported yet; build the "
                "model with keras.Model(inputs, outputs) or keras.Sequential")
        super().__init__(name=name or backend.unique_name(backend.to_snake_case(type(self).__name__)),
                         trainable=trainable, **kwargs)
        self._init_trainer()
        self._graph = None

    # ------------------------------------------------------------------ structure
    @property
    def layers(self) -> list[Layer]:
        return []

    @property
    def weights(self) -> list[Variable]:
        out, seen = [], set()
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
        out, seen = [], set()
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

    @property
    def losses(self) -> list[float]:
        return [float(v.regularizer(v.value)) for v in self.weights if v.regularizer is not None]

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

