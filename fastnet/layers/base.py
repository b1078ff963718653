"""The layer contract: build, call, backward, shapes, weights and config.

A layer computes on numpy arrays. ``layer(x, training=...)`` converts x to the
float type, builds the layer on first use, checks the input shape and runs
``call``; ``backward(dy)`` then returns dx and writes the weight gradients into
each variable's ``grad``. Subclasses implement ``build``, ``call``, ``backward``,
``compute_output_shape`` and ``get_config``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from fastnet import backend, config

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

    from fastnet._typing import (
        ArrayLike,
        Config,
        ConstraintLike,
        DTypeLike,
        InitializerLike,
        RegularizerLike,
        Shape,
        ShapeLike,
    )
    from fastnet.backend import Variable

__all__ = ["Layer", "InputSpec", "InputLayer", "Input"]


def _shape_str(shape):
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + (",)" if len(shape) == 1 else ")")


class InputSpec:
    """What a layer accepts: rank (``ndim``/``min_ndim``) and fixed sizes per axis."""

    __slots__ = ("ndim", "min_ndim", "axes", "shape")

    def __init__(self, ndim: int | None = None, min_ndim: int | None = None, axes: Mapping[int, int] | None = None,
                 shape: ShapeLike | None = None) -> None:
        self.ndim = ndim
        self.min_ndim = min_ndim
        self.axes = dict(axes or {})
        self.shape = tuple(shape) if shape is not None else None

    def check(self, layer: Layer | str, shape: ShapeLike, expected_desc: str | None = None) -> None:
        rank = len(shape)
        if self.ndim is not None and rank != self.ndim:
            raise ValueError(
                f'Layer "{layer.name}" ({type(layer).__name__}) expects input of rank {self.ndim}'
                f"{' ' + expected_desc if expected_desc else ''}, received input with shape {_shape_str(shape)}")
        if self.min_ndim is not None and rank < self.min_ndim:
            raise ValueError(
                f'Layer "{layer.name}" ({type(layer).__name__}) expects input of rank >= {self.min_ndim}'
                f"{' ' + expected_desc if expected_desc else ''}, received input with shape {_shape_str(shape)}")
        for axis, size in self.axes.items():
            if size is None:
                continue
            if -rank <= axis < rank and shape[axis] is not None and shape[axis] != size:
                want = [None] * rank
                want[axis] = size
                raise ValueError(
                    f'Layer "{layer.name}" ({type(layer).__name__}) expects input shape '
                    f"{_shape_str(self.shape or tuple(want))} (axis {axis} of size {size}), "
                    f"received input with shape {_shape_str(shape)}")
        if self.shape is not None:
            if rank != len(self.shape) or any(
                    w is not None and g is not None and w != g for w, g in zip(self.shape[1:], shape[1:])):
                raise ValueError(
                    f'Layer "{layer.name}" ({type(layer).__name__}) expects input shape '
                    f"{_shape_str(self.shape)}, received input with shape {_shape_str(shape)}")


class Layer:
    """Base class of every fastnet layer.

    Args:
        name: layer name; unique automatic names (``dense``, ``dense_1``, ...) otherwise.
        trainable: whether the layer's trainable weights are updated by training.
        dtype: the float type of weights and outputs (``config.floatx()`` by default).
        input_shape / input_dim / batch_input_shape / batch_size: the input shape of
            the first layer of a Sequential model, batch excluded (Keras's keywords).
    """

    # Subclasses that accept integer inputs (Embedding) set this to False.
    _cast_inputs = True
    # Layers whose ``call`` takes a ``mask=`` keyword (recurrent layers) set this to True;
    # models then pass the mask produced by the previous layer (Embedding(mask_zero=True)).
    _call_takes_mask = False
    # Layers with a fused output activation that can hand its logits to the loss
    # (softmax/sigmoid + crossentropy computed from logits, as Keras's TF backend does).
    _supports_logits = False
    _keep_logits = False     # set by models: keep the pre-activation in ``self._logits``
    _logits_grad = False     # set by models: backward receives d loss / d logits
    _defer_updates = False   # set by models: state updates wait for ``_commit_updates``

    def __init__(self, name: str | None = None, trainable: bool = True, dtype: DTypeLike | None = None,
                 input_shape: ShapeLike | None = None, input_dim: int | None = None,
                 batch_input_shape: ShapeLike | None = None, batch_size: int | None = None, **kwargs) -> None:
        kwargs.pop("autocast", None)
        input_length = kwargs.pop("input_length", None)
        if kwargs:
            raise TypeError(f"Unrecognized keyword arguments passed to {type(self).__name__}: {kwargs}")
        if name is not None and (not isinstance(name, str) or not name or "/" in name):
            raise ValueError(f"Layer name must be a non-empty string without '/', received {name!r}")
        self.name = name or backend.unique_name(backend.to_snake_case(type(self).__name__))
        self.trainable = bool(trainable)
        if isinstance(dtype, dict):  # a Keras DTypePolicy config
            dtype = dtype.get("config", {}).get("name", None)
        self._dtype = np.dtype(dtype).name if dtype is not None else None
        self.built = False
        self._variables = []
        self.input_spec = None
        self._build_shape = None
        self._buffers = {}
        self._reuse = False   # set by models inside their loops: reuse output buffers
        self._record = True   # keep what backward needs (models turn this off in predict)
        self.supports_masking = False

        if batch_input_shape is not None:
            self._batch_input_shape = tuple(batch_input_shape)
        elif input_shape is not None:
            if isinstance(input_shape, int):
                input_shape = (input_shape,)
            self._batch_input_shape = (batch_size,) + tuple(input_shape)
        elif input_dim is not None:
            self._batch_input_shape = (batch_size,) + ((input_length, input_dim) if input_length else (input_dim,))
        else:
            self._batch_input_shape = None

    # ------------------------------------------------------------------ dtype
    @property
    def dtype(self) -> str:
        return self._dtype or config.floatx()

    @property
    def compute_dtype(self) -> str:
        return self.dtype

    # ------------------------------------------------------------------ weights
    def add_weight(self, name: str, shape: ShapeLike, initializer: InitializerLike = "glorot_uniform",
                   regularizer: RegularizerLike | None = None, trainable: bool = True,
                   constraint: ConstraintLike | None = None, dtype: DTypeLike | None = None) -> Variable:
        """Creates a weight, initialised now, and registers it with the layer."""
        from fastnet import initializers, regularizers

        shape = tuple(int(d) for d in shape)
        init = initializers.get(initializer)
        dtype = np.dtype(dtype or self.dtype)
        value = np.ascontiguousarray(init(shape, dtype=dtype), dtype=dtype)
        if value.shape != shape:
            raise ValueError(f"Initializer for weight '{self.name}/{name}' returned shape "
                             f"{value.shape}, expected {shape}")
        var = backend.Variable(value, name=name, trainable=trainable,
                               regularizer=regularizers.get(regularizer), constraint=constraint,
                               path=f"{self.name}/{name}")
        self._variables.append(var)
        return var

    @property
    def weights(self) -> list[Variable]:
        """Trainable weights, then non-trainable ones (Keras's order)."""
        return ([v for v in self._variables if v.trainable]
                + [v for v in self._variables if not v.trainable])

    @property
    def variables(self) -> list[Variable]:
        return self.weights

    @property
    def trainable_weights(self) -> list[Variable]:
        return [v for v in self._variables if v.trainable] if self.trainable else []

    @property
    def non_trainable_weights(self) -> list[Variable]:
        if not self.trainable:
            return self.weights
        return [v for v in self._variables if not v.trainable]

    trainable_variables = trainable_weights
    non_trainable_variables = non_trainable_weights

    def get_weights(self) -> list[np.ndarray]:
        return [v.value.copy() for v in self.weights]

    def set_weights(self, weights: Sequence[ArrayLike]) -> None:
        params = self.weights
        weights = list(weights)
        if len(weights) != len(params):
            raise ValueError(f'Layer "{self.name}" expects {len(params)} weights '
                             f"({[v.name for v in params]}), received {len(weights)}")
        for var, w in zip(params, weights):
            w = np.asarray(w)
            if w.shape != var.shape:
                raise ValueError(f'Layer "{self.name}" weight "{var.name}" has shape {var.shape}, '
                                 f"received a value of shape {w.shape}")
        for var, w in zip(params, weights):
            var.assign(w)

    def count_params(self) -> int:
        if not self.built:
            raise ValueError(f'Layer "{self.name}" is not built yet: call it on data or call '
                             f"build(input_shape) before count_params()")
        return int(sum(v.size for v in self.weights))

    @property
    def losses(self) -> list[float]:
        """Regularisation penalties of this layer's weights, as floats."""
        return [float(v.regularizer(v.value)) for v in self._variables if v.regularizer is not None]

    # ------------------------------------------------------------------ build / call
    def build(self, input_shape: ShapeLike) -> None:
        """Creates the weights for inputs of ``input_shape`` (batch axis first, may be None)."""
        self.built = True

    def _maybe_build(self, input_shape):
        if not self.built:
            input_shape = (None,) + tuple(input_shape[1:])
            self._check_spec(input_shape)
            self.build(input_shape)
            self.built = True
            self._build_shape = input_shape

    def _check_spec(self, shape):
        if self.input_spec is not None:
            self.input_spec.check(self, tuple(shape))

    def _convert(self, inputs):
        if isinstance(inputs, KerasTensor) or (
                isinstance(inputs, (list, tuple)) and any(isinstance(t, KerasTensor) for t in inputs)):
            raise NotImplementedError(
                f'Layer "{self.name}" was called on a symbolic keras.Input: fastnet builds models '
                f"with Sequential (Sequential([Input(shape), {type(self).__name__}(...), ...])); "
                f"the functional API is not supported yet")
        x = np.asarray(inputs)
        if self._cast_inputs:
            dt = self.dtype
            if x.dtype != dt:
                if x.dtype.kind not in "fiub":
                    raise TypeError(f'Layer "{self.name}" expects numeric input, received dtype {x.dtype}')
                x = x.astype(dt)
        if not x.flags.c_contiguous:
            x = np.ascontiguousarray(x)
        return x

    def __call__(self, inputs: ArrayLike, training: bool = False, **kwargs) -> Any:
        x = self._convert(inputs)
        if not self.built:
            self._maybe_build(x.shape)
        else:
            self._check_spec(x.shape)
        return self.call(x, training=bool(training), **kwargs)

    def call(self, inputs: ArrayLike, training: bool = False) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__}.call is not implemented")

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
        """Returns dL/dx for the last recorded call and fills the weights' ``grad``.

        ``need_dx=False`` lets a model's first layer skip its input gradient.
        """
        raise NotImplementedError(f"{type(self).__name__} has no backward pass")

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape:
        return tuple(input_shape)

    def compute_mask(self, inputs: ArrayLike, mask: ArrayLike | None = None) -> np.ndarray | None:
        """The mask for the next layer: passed through when ``supports_masking``, else dropped."""
        return mask if self.supports_masking else None

    # ------------------------------------------------------------------ buffers
    def _buf(self, key, shape, dtype):
        """An uninitialised array; inside a model's loop the same one is reused for each
        (key, shape, dtype), so a last partial batch does not evict the full-batch buffer."""
        if self._reuse:
            k = (key, shape, dtype)
            b = self._buffers.get(k)
            if b is None:
                if len(self._buffers) > 64:
                    self._buffers.clear()
                b = self._buffers[k] = np.empty(shape, dtype=dtype)
            return b
        return np.empty(shape, dtype=dtype)

    def _free_buffers(self):
        self._buffers = {}

    # ------------------------------------------------------------------ config
    def get_config(self) -> Config:
        cfg = {"name": self.name, "trainable": self.trainable, "dtype": self.dtype}
        if self._batch_input_shape is not None:
            cfg["batch_input_shape"] = list(self._batch_input_shape)
        return cfg

    @classmethod
    def from_config(cls, config_dict: Config) -> Layer:
        return cls(**config_dict)

    def get_build_config(self) -> Config | None:
        if self._build_shape is not None:
            return {"input_shape": list(self._build_shape)}
        return None

    def build_from_config(self, build_config: Config) -> None:
        if build_config and build_config.get("input_shape") is not None:
            self._maybe_build(tuple(build_config["input_shape"]))

    @property
    def input_shape(self) -> Shape | None:
        if self._build_shape is None:
            raise AttributeError(f'Layer "{self.name}" has no defined input shape yet (not built)')
        return self._build_shape

    @property
    def output_shape(self) -> Shape:
        return self.compute_output_shape(self.input_shape)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"


class InputLayer(Layer):
    """Declares a model's input shape (batch excluded); the identity on data.

    Args:
        shape: the input shape without the batch axis, e.g. ``(3,)``.
        batch_size: optional fixed batch size.
    """

    def __init__(self, shape: ShapeLike | None = None, batch_size: int | None = None, dtype: DTypeLike | None = None,
                 name: str | None = None, batch_shape: ShapeLike | None = None, input_shape: ShapeLike | None = None,
                 batch_input_shape: ShapeLike | None = None, sparse: bool | None = None, **kwargs) -> None:
        if shape is None and input_shape is not None:
            shape = input_shape
        if batch_shape is None and batch_input_shape is not None:
            batch_shape = batch_input_shape
        if shape is None and batch_shape is None:
            raise ValueError("InputLayer needs a shape, e.g. InputLayer(shape=(3,))")
        if batch_shape is None:
            if isinstance(shape, int):
                shape = (shape,)
            batch_shape = (batch_size,) + tuple(shape)
        batch_shape = tuple(None if d is None else int(d) for d in batch_shape)
        for d in batch_shape[1:]:
            if d is not None and d < 0:
                raise ValueError(f"InputLayer shape dimensions must be non-negative, received {batch_shape[1:]}")
        super().__init__(name=name, dtype=dtype, **kwargs)
        self._batch_input_shape = batch_shape
        self.batch_shape = batch_shape
        self._build_shape = (None,) + batch_shape[1:]
        self.built = True

    @property
    def shape(self) -> Shape:
        return self.batch_shape

    def call(self, inputs: ArrayLike, training: bool = False) -> np.ndarray:
        return inputs

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
        return dy

    def get_config(self) -> Config:
        return {"batch_shape": list(self.batch_shape), "dtype": self.dtype, "sparse": False,
                "name": self.name}


class KerasTensor:
    """The symbolic input returned by ``Input``: a shape and the layer that declares it."""

    def __init__(self, layer: InputLayer) -> None:
        self._keras_layer = layer

    @property
    def shape(self) -> Shape:
        return self._keras_layer.batch_shape

    @property
    def dtype(self) -> str:
        return self._keras_layer.dtype

    @property
    def name(self) -> str:
        return self._keras_layer.name

    def __repr__(self):
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype}, name={self.name}>"


def Input(shape: ShapeLike | None = None, batch_size: int | None = None, dtype: DTypeLike | None = None,
          name: str | None = None, batch_shape: ShapeLike | None = None, **kwargs) -> KerasTensor:
    """Declares a model input, as ``keras.Input``: ``Sequential([Input((3,)), Dense(4)])``."""
    layer = InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, name=name,
                       batch_shape=batch_shape, **kwargs)
    return KerasTensor(layer)
