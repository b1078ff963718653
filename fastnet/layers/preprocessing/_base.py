"""What the preprocessing layers share: eager calls on numpy arrays, lists and strings,
output specs (shape and dtype), adapt's batch iteration and categorical encoding."""
from __future__ import annotations

import functools
import itertools
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from fastnet import config
from fastnet.layers.base import Layer

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from typing import Any

    from fastnet._typing import Shape, ShapeLike

__all__ = ["PreprocessingLayer", "OutputSpec", "EagerContext"]

OUTPUT_MODES = ("int", "one_hot", "multi_hot", "count", "tf_idf")


class OutputSpec(NamedTuple):
    """The shape and dtype of a layer's output, as ``compute_output_spec`` returns them."""

    shape: tuple
    dtype: str


class EagerContext:
    """The per-call record of an eager call (``layer(x)`` on arrays): what backward needs
    is kept on it as attributes, as on the executor's ``CallContext``."""

    def __init__(self, record: bool = True) -> None:
        self.record = record
        self.need_dx = True

    def buf(self, key: Any, shape: ShapeLike, dtype: Any) -> np.ndarray:
        return np.empty(shape, dtype=dtype)


def _is_symbolic(inputs):
    # Graph tensors (keras.Input and what layers return on it) carry a shape but are not arrays.
    if isinstance(inputs, (np.ndarray, np.generic, list, tuple, str, bytes, int, float)):
        return False
    return hasattr(inputs, "shape") and hasattr(inputs, "dtype") and not hasattr(inputs, "__array__")


def as_string_array(inputs: Any) -> np.ndarray:
    """Python strings, bytes, lists of them or numpy string/object arrays as a numpy array of
    ``str`` (bytes decoded as UTF-8), keeping the shape."""
    if isinstance(inputs, (list, tuple)):
        # Through object: numpy would decode bytes mixed with str as ASCII.
        inputs = np.asarray(inputs, dtype=object)
    x = np.asarray(inputs)
    if x.dtype.kind == "U":
        return x
    if x.dtype.kind == "S":
        return np.char.decode(x, "utf-8")
    if x.dtype.kind == "O":
        flat = [v.decode("utf-8") if isinstance(v, bytes) else v for v in x.ravel().tolist()]
        if any(not isinstance(v, str) for v in flat):
            bad = next(v for v in flat if not isinstance(v, str))
            raise TypeError(f"expected strings, received an element {bad!r} of type {type(bad).__name__}")
        if not flat:
            return np.zeros(x.shape, dtype="<U1")
        return np.array(flat, dtype=str).reshape(x.shape)
    raise TypeError(f"expected strings, received an array of dtype {x.dtype}")


class PreprocessingLayer(Layer):
    """Base of the preprocessing layers: ``layer(x)`` takes numpy arrays, Python lists and
    strings (no cast to float unless the layer asks for it), runs ``forward`` with a fresh
    recorded context kept as ``layer._last_ctx``, and returns numpy arrays.

    Subclasses implement ``forward(ctx, inputs, training=False)``, ``_prepare(inputs)`` (the
    conversion of raw inputs), ``compute_output_shape`` and ``output_dtype``.
    """

    _cast_inputs = False

    def __init_subclass__(cls, **kwargs):
        # The graph executor calls ``forward`` with the raw input (a string array, a list, an
        # integer array): every ``forward`` converts its input first. The conversion is a no-op
        # on an input already converted (the eager path converts once to build).
        super().__init_subclass__(**kwargs)
        fwd = cls.__dict__.get("forward")
        if fwd is not None and not getattr(fwd, "_converts_input", False):
            @functools.wraps(fwd)
            def forward(self, ctx, inputs, *args, **kw):
                return fwd(self, ctx, self._prepare(inputs), *args, **kw)

            forward._converts_input = True
            cls.forward = forward

    def _prepare(self, inputs):
        """Converts a raw input (array, list, scalar) to the array ``forward`` expects."""
        x = np.asarray(inputs)
        if x.dtype.kind not in "fiub":
            raise TypeError(f'Layer "{self.name}" ({type(self).__name__}) expects numeric input, '
                            f"received dtype {x.dtype}")
        dt = self.compute_dtype
        if x.dtype != dt:
            x = x.astype(dt)
        return np.ascontiguousarray(x)

    def _build_for(self, shape):
        if not self.built:
            shape = tuple(shape)
            self._check_spec(shape)
            self.build(shape)
            self.built = True
            self._build_shape = (None,) + shape[1:] if shape else shape

    def __call__(self, inputs: Any, training: bool | None = None, **kwargs) -> Any:
        if _is_symbolic(inputs):
            # In a graph, ``training`` is kept only when given: otherwise the loop's applies.
            if training is not None:
                kwargs["training"] = training
            return super().__call__(inputs, **kwargs)
        x = self._prepare(inputs)
        self._build_for(np.shape(x))
        ctx = EagerContext(record=True)
        out = self.forward(ctx, x, training=bool(training), **kwargs)
        self._last_ctx = ctx
        return out

    def call(self, inputs: Any, training: bool = False, **kwargs) -> Any:
        x = self._prepare(inputs)
        self._build_for(np.shape(x))
        return self.forward(EagerContext(record=False), x, training=bool(training), **kwargs)

    def forward(self, ctx: Any, inputs: Any, training: bool = False, **kwargs) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__}.forward is not implemented")

    def backward(self, ctx: Any, dy: Any) -> Any:
        """Integer and string inputs have no gradient: None (the contract's answer for a
        non-differentiable input)."""
        return None

    # ------------------------------------------------------------------ specs
    @property
    def output_dtype(self) -> str:
        return self.compute_dtype

    def output_dtype_for(self, input_dtype: Any) -> str:
        """The output dtype for inputs of ``input_dtype`` (most layers: ``output_dtype``)."""
        return self.output_dtype

    def compute_output_spec(self, inputs: Any) -> OutputSpec:
        """Shape and dtype of the output for ``inputs`` (anything with ``.shape`` and
        ``.dtype``, such as an array or a symbolic tensor, or a bare shape)."""
        shape = getattr(inputs, "shape", inputs)
        in_dtype = getattr(inputs, "dtype", None)
        dtype = self.output_dtype_for(in_dtype) if in_dtype is not None else self.output_dtype
        return OutputSpec(tuple(self.compute_output_shape(tuple(shape))), dtype)

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape:
        return tuple(input_shape)

    # ------------------------------------------------------------------ state hooks
    def save_own_variables(self, store: Any) -> None:
        """Writes the layer's variables into ``store`` (a mapping) as Keras does: keys
        "0", "1", ... in ``weights`` order."""
        for i, v in enumerate(self.weights):
            store[str(i)] = np.asarray(v.value)

    def load_own_variables(self, store: Any) -> None:
        """Reads what ``save_own_variables`` wrote (a file written by Keras has the same keys)."""
        params = self.weights
        keys = sorted(store.keys(), key=lambda k: (len(k), k)) if hasattr(store, "keys") else []
        if len(keys) != len(params):
            raise ValueError(f'Layer "{self.name}" ({type(self).__name__}) expects {len(params)} variables '
                             f"{[v.name for v in params]}, the file holds {len(keys)} ({keys})")
        for i, var in enumerate(params):
            value = np.asarray(store[str(i)])
            if value.shape != tuple(var.shape):
                raise ValueError(f'Layer "{self.name}" ({type(self).__name__}) variable "{var.name}" has '
                                 f"shape {tuple(var.shape)}, the file holds shape {value.shape}")
            var.assign(value)
        self._after_load()

    def _after_load(self):
        pass


# ---------------------------------------------------------------------- adapt's data
def first_of(batch):
    """``x`` of an ``(x, y)`` or ``(x, y, sample_weight)`` batch."""
    return batch[0] if isinstance(batch, tuple) else batch


def iter_batches(data: Any, steps: int | None = None, batch_size: int | None = None,
                 list_is_data: bool = True) -> Iterator[Any]:
    """The batches ``adapt`` reads: an array (or a list/tuple when ``list_is_data``) is one
    dataset, split into ``batch_size`` rows when given; any other iterable yields batches
    (``(x, y)`` tuples give x), read up to ``steps`` of them."""
    if isinstance(data, (np.ndarray, str, bytes)) or (list_is_data and isinstance(data, (list, tuple))):
        arr = data
        if batch_size is not None and not isinstance(data, (str, bytes)):
            arr = np.asarray(data)
            if arr.ndim == 0:
                yield arr
                return
            starts = range(0, len(arr), int(batch_size))
            if steps is not None:
                starts = itertools.islice(starts, int(steps))
            for s in starts:
                yield arr[s:s + int(batch_size)]
            return
        yield arr
        return
    if not hasattr(data, "__iter__"):
        raise TypeError(f"adapt() expects a numpy array, a list, or an iterable of batches (such as "
                        f"fastnet.data.Dataset), received {type(data).__name__}")
    it = iter(data)
    if steps is not None:
        it = itertools.islice(it, int(steps))
    for batch in it:
        yield first_of(batch)


def check_output_mode(layer_name: str, output_mode: str, allowed: Iterable[str]) -> str:
    if output_mode == "binary":
        output_mode = "multi_hot"
    if output_mode == "tf-idf":
        output_mode = "tf_idf"
    allowed = tuple(allowed)
    if output_mode not in allowed:
        raise ValueError(f"{layer_name}: unknown output_mode {output_mode!r}; valid values: {list(allowed)}")
    return output_mode


def refuse_sparse(layer_name: str, sparse: bool, ragged: bool = False) -> None:
    if sparse:
        raise ValueError(f"{layer_name}: sparse=True is not supported by fastnet (sparse tensors "
                         f"exist only in Keras's TensorFlow backend); use sparse=False")
    if ragged:
        raise ValueError(f"{layer_name}: ragged=True is not supported by fastnet (ragged tensors "
                         f"exist only in Keras's TensorFlow backend); use ragged=False and "
                         f"output_sequence_length to pad")


# ---------------------------------------------------------------------- categorical encoding
def encode_categorical(indices: np.ndarray, output_mode: str, depth: int, dtype: Any,
                       count_weights: np.ndarray | None = None, idf_weights: np.ndarray | None = None,
                       valid: np.ndarray | None = None, layer_name: str = "layer") -> np.ndarray:
    """One-hot, multi-hot, count or tf-idf encoding of integer ``indices`` in ``[0, depth)``.

    one_hot encodes every element (a trailing axis of size 1 is replaced by ``depth``); the
    other modes reduce the last axis (a rank-1 input is one sample) into ``depth`` bins.
    ``valid`` (bool, same shape) marks the entries to count; others (mask tokens) are dropped.
    """
    idx = np.asarray(indices)
    if output_mode == "int":
        return idx.astype(dtype)
    dtype = np.dtype(dtype)
    if idx.ndim == 0:
        idx = idx.reshape(1)
        if valid is not None:
            valid = np.asarray(valid).reshape(1)
    keep = np.ones(idx.shape, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    if keep.any():
        lo, hi = idx[keep].min(), idx[keep].max()
        if lo < 0 or hi >= depth:
            raise ValueError(f"{layer_name}: values must be in the range [0, {depth}) for "
                             f"output_mode={output_mode!r}, received values from {lo} to {hi}")
    if output_mode == "one_hot":
        if idx.ndim > 1 and idx.shape[-1] == 1:
            idx = idx[..., 0]
            keep = keep[..., 0]
        out = np.zeros(idx.shape + (depth,), dtype=dtype)
        flat = out.reshape(-1, depth)
        rows = np.flatnonzero(keep.ravel())
        flat[rows, idx.ravel()[rows]] = 1
        return out
    lead = idx.shape[:-1]
    n_rows = int(np.prod(lead)) if lead else 1
    width = idx.shape[-1]
    rows = np.repeat(np.arange(n_rows), width)
    cols = idx.reshape(-1)
    k = keep.reshape(-1)
    flat = np.zeros((n_rows, depth), dtype=np.float64)
    if output_mode == "multi_hot":
        flat[rows[k], cols[k]] = 1
    else:
        w = None
        if count_weights is not None:
            w = np.broadcast_to(np.asarray(count_weights, dtype=np.float64), idx.shape).reshape(-1)[k]
        np.add.at(flat, (rows[k], cols[k]), 1.0 if w is None else w)
        if output_mode == "tf_idf":
            flat *= np.asarray(idf_weights, dtype=np.float64)[:depth]
    out_dtype = dtype if count_weights is None else np.result_type(dtype, np.asarray(count_weights).dtype)
    return flat.reshape(lead + (depth,)).astype(out_dtype)


def encoded_shape(input_shape: ShapeLike, output_mode: str, depth: int | None) -> Shape:
    """The output shape of ``encode_categorical`` for ``input_shape`` (Keras's rules)."""
    shape = tuple(input_shape)
    if output_mode == "int":
        return shape
    if len(shape) == 0:
        return (depth,)
    if output_mode == "one_hot":
        if len(shape) > 1 and shape[-1] == 1:
            return shape[:-1] + (depth,)
        return shape + (depth,)
    return shape[:-1] + (depth,)


def floatx() -> str:
    return config.floatx()
