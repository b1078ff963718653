"""Stateful metrics, as in ``keras.metrics``.

A metric accumulates over batches: ``update_state(y_true, y_pred, sample_weight=None)``
adds a batch, ``result()`` returns the value so far (a float; an array for metrics
with several thresholds), ``reset_state()`` starts again. The state lives in
``metric.variables`` (fastnet Variables, float64) so that it can be saved.

Accuracy-type metrics and the loss-based means update through small compiled kernels
(one call per batch); confusion-matrix metrics (Precision, Recall, AUC) count with
compiled kernels too, AUC in O(N + thresholds) for its evenly spaced thresholds.

Example:
    >>> import numpy as np
    >>> from fastnet import metrics
    >>> m = metrics.BinaryAccuracy()
    >>> m.update_state([[1], [1], [0], [0]], [[0.98], [1], [0], [0.6]])
    >>> m.result()
    0.75

``metrics.resolve(identifier, y_true_shape, y_pred_shape)`` gives the metric that
``compile(metrics=[...])`` uses, named as it appears in the training history:
``"accuracy"`` becomes binary, sparse categorical or categorical accuracy depending
on the shapes, and a string keeps its spelling as the name (``"mae"`` stays ``"mae"``).
"""
from __future__ import annotations

import collections.abc
import inspect
from typing import TYPE_CHECKING, cast

import numpy as np

from fastnet import backend, config
from fastnet import losses as _losses

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

    from fastnet._typing import ArrayLike, Config, CustomObjects, DTypeLike, InitializerLike, ShapeLike
    from fastnet.backend import Variable
    from fastnet.losses import Loss

__all__ = [
    "Metric", "Mean", "Sum", "MeanMetricWrapper", "Accuracy", "BinaryAccuracy", "CategoricalAccuracy",
    "SparseCategoricalAccuracy", "TopKCategoricalAccuracy", "SparseTopKCategoricalAccuracy",
    "MeanSquaredError", "MeanAbsoluteError", "MeanAbsolutePercentageError", "MeanSquaredLogarithmicError",
    "RootMeanSquaredError", "CosineSimilarity", "LogCoshError", "BinaryCrossentropy",
    "CategoricalCrossentropy", "SparseCategoricalCrossentropy", "KLDivergence", "Poisson", "Hinge",
    "SquaredHinge", "CategoricalHinge", "Precision", "Recall", "AUC", "TruePositives", "FalsePositives",
    "TrueNegatives", "FalseNegatives", "accuracy", "binary_accuracy", "categorical_accuracy",
    "sparse_categorical_accuracy", "top_k_categorical_accuracy", "sparse_top_k_categorical_accuracy",
    "get", "serialize", "deserialize", "resolve",
]

NEG_INF = -1e10

_K = None


def _kernels():
    global _K
    if _K is None:
        from fastnet._kernels import metrics as k
        _K = k
    return _K


_shape_str = _losses._shape_str
_squeeze_or_expand = _losses._squeeze_or_expand
_float_array = _losses._float_array


# ============================================================================ base classes

class Metric:
    """Base class of metrics: named state variables, update_state, result, reset_state.

    Subclasses create their state with ``self.add_variable(shape, initializer, name=...)``
    in ``__init__`` and implement ``update_state`` and ``result``.
    """

    def __init__(self, dtype: DTypeLike | None = None, name: str | None = None) -> None:
        self.name = name or backend.unique_name(backend.to_snake_case(type(self).__name__))
        if dtype is not None and np.dtype(dtype).name not in ("float16", "float32", "float64"):
            raise ValueError(f"Metric dtype must be a float type, received {dtype!r}")
        self._dtype = np.dtype(dtype).name if dtype is not None else config.floatx()
        self._variables: list[Variable] = []
        self._metrics: list[Metric] = []

    @property
    def dtype(self) -> str:
        return self._dtype

    def add_variable(self, shape: Sequence[int] | int | None, initializer: InitializerLike = "zeros",
                     dtype: DTypeLike | None = None, aggregation: str = "sum", name: str | None = None) -> Variable:
        """A non-trainable state Variable of this metric (float64 unless ``dtype``)."""
        shape = (() if shape is None else tuple(shape) if isinstance(shape, collections.abc.Sequence)
                 else (int(shape),))
        if isinstance(initializer, type):  # an Initializer class: its defaults
            initializer = initializer()
        if callable(initializer):
            value = np.asarray(initializer(shape, dtype=dtype or "float64"), dtype=dtype or np.float64)
        elif initializer in ("zeros", None):
            value = np.zeros(shape, dtype=dtype or np.float64)
        elif initializer == "ones":
            value = np.ones(shape, dtype=dtype or np.float64)
        else:
            from fastnet import initializers

            try:
                init = initializers.get(initializer)
            except ValueError as e:
                raise ValueError(f'Metric "{self.name}": unknown variable initializer {initializer!r} ({e})') from None
            value = np.asarray(init(shape, dtype=dtype or np.float64), dtype=dtype or np.float64)
        name = name or f"variable_{len(self._variables)}"
        var = backend.Variable(value, name=name, trainable=False, path=f"{self.name}/{name}")
        var.value = value  # keep 0-d shapes
        self._variables.append(var)
        return var

    add_weight = add_variable

    def _view_variable(self, array, name):
        """A Variable whose value is a view of ``array`` (kernels update the array)."""
        var = backend.Variable(np.zeros(array.shape), name=name, trainable=False, path=f"{self.name}/{name}")
        var.value = array
        self._variables.append(var)
        return var

    @property
    def variables(self) -> list[Variable]:
        out = list(self._variables)
        for m in self._metrics:
            out.extend(m.variables)
        return out

    def reset_state(self) -> None:
        for v in self.variables:
            v.value[...] = 0

    def update_state(self, *args, **kwargs) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement update_state")

    def result(self) -> float | np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} must implement result")

    def __call__(self, *args, **kwargs) -> float | np.ndarray:
        self.update_state(*args, **kwargs)
        return self.result()

    def get_config(self) -> Config:
        return {"name": self.name, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config: Config) -> Metric:
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}>"


class _Reduce(Metric):
    """Shared by Sum and Mean: ``_acc`` holds (total, count) and the variables view it."""

    _reduce_fn: staticmethod[..., Any] = staticmethod(np.mean)

    def __init__(self, name: str | None, dtype: DTypeLike | None) -> None:
        super().__init__(dtype=dtype, name=name)
        self._acc = np.zeros(2)
        self.total = self._view_variable(self._acc[0:1].reshape(()), "total")

    def _add_values(self, values, sample_weight):
        """Keras's reduction of values (and weights) to one value per sample."""
        values = np.asarray(values, dtype=np.float64)
        acc = self._acc
        if sample_weight is not None and np.ndim(sample_weight) == 0 and values.ndim == 0:
            w = float(sample_weight)
            acc[0] += float(values) * w
            acc[1] += w
            return
        red = self._reduce_fn
        if sample_weight is not None:
            sw = np.asarray(sample_weight, dtype=np.float64)
            values, sw = _squeeze_or_expand(values, sw)
            wn, vn = sw.ndim, values.ndim
            if vn > wn:
                values = red(values, axis=tuple(range(wn, vn)))
            try:
                sw = np.broadcast_to(sw, values.shape)
            except ValueError:
                raise ValueError(f'Metric "{self.name}": sample_weight of shape {_shape_str(np.shape(sample_weight))} '
                                 f"does not match values of shape {_shape_str(values.shape)}") from None
            values = values * sw
            if wn > 1:
                sw = red(sw, axis=tuple(range(1, wn)))
        if values.ndim > 1:
            values = red(values, axis=tuple(range(1, values.ndim)))
        acc[0] += float(np.sum(values))
        if sample_weight is not None:
            acc[1] += float(np.sum(sw))
        elif values.ndim >= 1:
            acc[1] += values.shape[0]
        else:
            acc[1] += 1



class Sum(_Reduce):
    """The (weighted) sum of the values given to update_state."""

    _reduce_fn = staticmethod(np.sum)

    def __init__(self, name: str = "sum", dtype: DTypeLike | None = None) -> None:
        super().__init__(name, dtype)

    def update_state(self, values: ArrayLike, sample_weight: ArrayLike | None = None) -> None:
        self._add_values(values, sample_weight)

    def result(self) -> float:
        return float(self._acc[0])


class Mean(_Reduce):
    """The (weighted) mean of the values given to update_state (total / count)."""

    def __init__(self, name: str | None = "mean", dtype: DTypeLike | None = None) -> None:
        super().__init__(name, dtype)
        self.count = self._view_variable(self._acc[1:2].reshape(()), "count")

    def update_state(self, values: ArrayLike, sample_weight: ArrayLike | None = None) -> None:
        if type(values) is float and sample_weight is not None and type(sample_weight) in (int, float):
            # the per-batch loss weighted by the batch size
            acc = self._acc
            acc[0] += values * sample_weight
            acc[1] += sample_weight
            return
        self._add_values(values, sample_weight)

    def result(self) -> float:
        c = self._acc[1]
        return float(self._acc[0] / c) if c else 0.0


def _position_weights(sample_weight, vshape):
    """(w, scale): one float64 weight per position of the per-sample values (shape vshape)
    and the factor 1/T that turns sums over positions into sums over samples; None when
    the weights need the general path."""
    R = 1
    for d in vshape:
        R *= d
    if not vshape:
        return (None, 1.0) if sample_weight is None else None
    T = R // vshape[0] if vshape[0] else 1
    scale = 1.0 / T
    if sample_weight is None:
        return None, scale
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.shape == vshape or w.shape == vshape + (1,):
        return np.ascontiguousarray(w).reshape(R), scale
    if w.ndim == 0:
        return np.full(R, float(w)), scale
    if (w.ndim == 1 or (w.ndim == 2 and w.shape[1] == 1)) and w.shape[0] == vshape[0]:
        w = w.reshape(-1)
        return (w if T == 1 else np.repeat(w, T)), scale
    return None


# As in Keras, a MeanMetricWrapper is a Mean updated from (y_true, y_pred) rather than from
# values: its update_state (and RootMeanSquaredError's) overrides Mean's with that signature.
class MeanMetricWrapper(Mean):
    """The mean of ``fn(y_true, y_pred, **kwargs)`` over all samples seen.

    fastnet's loss functions (and the accuracy functions through the accuracy classes)
    are computed by the compiled kernels; any other function runs as given and must
    return one value per sample.
    """

    def __init__(self, fn: Callable[..., Any], name: str | None = None, dtype: DTypeLike | None = None,
                 **kwargs) -> None:
        super().__init__(name=name, dtype=dtype)
        self._fn = fn
        self._fn_kwargs = kwargs
        impl = _losses._FUNCTION_CLASSES.get(fn)
        self._loss = None
        if impl is not None:
            cls, defaults = impl
            self._loss = cls(**{**defaults, **kwargs})

    def update_state(self, y_true: ArrayLike, y_pred: ArrayLike, sample_weight: ArrayLike | None = None) -> None:  # type: ignore[override]
        if self._loss is not None and self._loss_update(y_true, y_pred, sample_weight):
            return
        if not self._fast_update(y_true, y_pred, sample_weight):
            values = self._fn(y_true, y_pred, **self._fn_kwargs)
            self._add_values(values, sample_weight)

    def _fast_update(self, y_true, y_pred, sample_weight):
        return False

    def _loss_update(self, y_true, y_pred, sample_weight, sign=1.0):
        loss = self._loss
        try:
            v, _, _, (vshape, weight) = loss._run(y_true, y_pred, sample_weight, None, False, False,
                                                   reduce=False, meta=True)
        except ValueError:
            if sample_weight is None:
                raise
            return False  # weights of an unusual shape: the general path reduces them as Keras does
        if not vshape:
            if sample_weight is not None:
                return False
            self._acc[0] += sign * v
            self._acc[1] += 1
            return True
        R = 1
        for d in vshape:
            R *= d
        T = R // vshape[0] if vshape[0] else 1
        self._acc[0] += sign * v / T
        self._acc[1] += weight / T
        return True

    def get_config(self) -> Config:
        config = super().get_config()
        config["fn"] = _losses.serialize(self._fn) if self._fn in _losses._FUNCTION_CLASSES else (
            self._fn if isinstance(self._fn, str) else _losses._serialize_function(self._fn))
        config.update(self._fn_kwargs)
        return config

    @classmethod
    def from_config(cls, config: Config) -> MeanMetricWrapper:
        config = dict(config)
        if "fn" not in config:
            return cls(**config)
        fn = config.pop("fn")
        if isinstance(fn, dict):
            name = fn.get("config") if fn.get("class_name") == "function" else None
            fn = (_FUNCTIONS.get(name) if isinstance(name, str) else None) or _losses.deserialize(fn)
        elif isinstance(fn, str):
            fn = _FUNCTIONS.get(fn) or _losses.deserialize(fn)
        return cls(fn, **config)


# ============================================================================ accuracy functions

def _np(x):
    return x if isinstance(x, np.ndarray) else np.asarray(x)


def accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> np.ndarray:
    """Per-sample fraction of positions where y_pred equals y_true."""
    y_pred = _np(y_pred)
    y_true = _np(y_true).astype(y_pred.dtype)
    y_true, y_pred = _squeeze_or_expand(y_true, y_pred)
    return np.mean((y_true == y_pred).astype(config.floatx()), axis=-1)


def binary_accuracy(y_true: ArrayLike, y_pred: ArrayLike, threshold: float = 0.5) -> np.ndarray:
    """Per-sample fraction of positions where (y_pred > threshold) equals y_true."""
    y_true, y_pred = _squeeze_or_expand(_np(y_true), _np(y_pred))
    thr = np.asarray(threshold, dtype=y_pred.dtype if y_pred.dtype.kind == "f" else np.float64)
    pred = (y_pred > thr).astype(y_true.dtype)
    return np.mean((y_true == pred).astype(config.floatx()), axis=-1)


def categorical_accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> np.ndarray:
    """1 where argmax(y_true) == argmax(y_pred) along the last axis."""
    y_true, y_pred = _np(y_true), _np(y_pred)
    t = np.argmax(y_true, axis=-1)
    org = t.shape
    reshape = False
    if t.ndim == y_pred.ndim:
        t = np.squeeze(t, -1)
        reshape = True
    matches = (t == np.argmax(y_pred, axis=-1)).astype(config.floatx())
    return matches.reshape(org) if reshape else matches


def sparse_categorical_accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> np.ndarray:
    """1 where the integer label equals argmax(y_pred) along the last axis."""
    y_true, y_pred = _np(y_true), _np(y_pred)
    org = y_true.shape
    reshape = False
    if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
        y_true = np.squeeze(y_true, -1)
        reshape = True
    pred = np.argmax(y_pred, axis=-1).astype(y_true.dtype)
    matches = (y_true == pred).astype(config.floatx())
    if reshape:
        matches = matches.reshape(org)
    if matches.ndim > 1 and matches.shape[-1] == 1:
        matches = np.squeeze(matches, -1)
    return matches


def _in_top_k(targets, predictions, k):
    """targets (n,), predictions (n, C): the target scores above all but fewer than k."""
    n, c = predictions.shape
    ok = (targets >= 0) & (targets < c)
    safe = np.where(ok, targets, 0)
    score = predictions[np.arange(n), safe]
    above = (predictions > score[:, None]).sum(axis=1)
    return ok & np.isfinite(score) & (above < k)


def top_k_categorical_accuracy(y_true: ArrayLike, y_pred: ArrayLike, k: int = 5) -> np.ndarray:
    """1 where argmax(y_true) is among the k highest predictions."""
    y_true, y_pred = _np(y_true), _np(y_pred)
    t = np.argmax(y_true, axis=-1)
    org = t.shape
    matches = _in_top_k(t.reshape(-1), y_pred.reshape(-1, y_pred.shape[-1]), k)
    return matches.astype(config.floatx()).reshape(org)


def sparse_top_k_categorical_accuracy(y_true: ArrayLike, y_pred: ArrayLike, k: int = 5) -> np.ndarray:
    """1 where the integer label is among the k highest predictions."""
    y_true, y_pred = _np(y_true), _np(y_pred)
    org = y_true.shape
    t = y_true.reshape(-1).astype(np.int64)
    matches = _in_top_k(t, y_pred.reshape(-1, y_pred.shape[-1]), k)
    return matches.astype(config.floatx()).reshape(org)


# ============================================================================ accuracy classes

def _pred_array(y_pred, dtype):
    p = y_pred
    if type(p) is not np.ndarray or not p.flags.c_contiguous or (p.dtype.char != "f" and p.dtype.char != "d"):
        p = _float_array(p, dtype)
    return p


class Accuracy(MeanMetricWrapper):
    """How often y_pred equals y_true exactly."""

    def __init__(self, name: str = "accuracy", dtype: DTypeLike | None = None) -> None:
        super().__init__(accuracy, name=name, dtype=dtype)

    def get_config(self) -> Config:
        return {"name": self.name, "dtype": self.dtype}


class BinaryAccuracy(MeanMetricWrapper):
    """How often (y_pred > threshold) matches binary labels."""

    def __init__(self, name: str = "binary_accuracy", dtype: DTypeLike | None = None, threshold: float = 0.5) -> None:
        if threshold is not None and (threshold <= 0 or threshold >= 1):
            raise ValueError("Invalid value for argument `threshold`. Expected a value in interval (0, 1). "
                             f"Received: threshold={threshold}")
        super().__init__(binary_accuracy, name=name, dtype=dtype, threshold=threshold)
        self.threshold = threshold

    def _fast_update(self, y_true, y_pred, sample_weight):
        p = _pred_array(y_pred, self.dtype)
        t = y_true if type(y_true) is np.ndarray else np.asarray(y_true)
        if t.shape != p.shape:
            t, p = _squeeze_or_expand(t, p)
            if t.shape != p.shape:
                return False
        if p.ndim == 0 or p.shape[-1] == 0:
            return False
        if t.dtype != p.dtype or not t.flags.c_contiguous:
            if t.dtype.kind not in "biuf":
                return False
            t = np.ascontiguousarray(t, dtype=p.dtype)
        vshape = p.shape[:-1]
        pw = _position_weights(sample_weight, vshape)
        if pw is None:
            return False
        w, scale = pw
        if p.ndim != 2:
            C = p.shape[-1]
            p = p.reshape(-1, C)
            t = t.reshape(-1, C)
        (_K.binary_f32 if p.dtype.char == "f" else _K.binary_f64)(
            t, p, 0.5 if self.threshold is None else self.threshold, w, scale, self._acc)
        return True

    def get_config(self) -> Config:
        return {"name": self.name, "dtype": self.dtype, "threshold": self.threshold}


class CategoricalAccuracy(MeanMetricWrapper):
    """How often argmax(y_pred) matches argmax of one-hot labels."""

    def __init__(self, name: str = "categorical_accuracy", dtype: DTypeLike | None = None) -> None:
        super().__init__(categorical_accuracy, name=name, dtype=dtype)

    def _fast_update(self, y_true, y_pred, sample_weight):
        p = _pred_array(y_pred, self.dtype)
        t = y_true if type(y_true) is np.ndarray else np.asarray(y_true)
        if t.shape != p.shape or p.ndim == 0 or p.shape[-1] == 0 or t.dtype.kind not in "biuf":
            return False
        if t.dtype != p.dtype or not t.flags.c_contiguous:
            t = np.ascontiguousarray(t, dtype=p.dtype)
        pw = _position_weights(sample_weight, p.shape[:-1])
        if pw is None:
            return False
        w, scale = pw
        if p.ndim != 2:
            C = p.shape[-1]
            p = p.reshape(-1, C)
            t = t.reshape(-1, C)
        (_K.categorical_f32 if p.dtype.char == "f" else _K.categorical_f64)(t, p, w, scale, self._acc)
        return True

    def get_config(self) -> Config:
        return {"name": self.name, "dtype": self.dtype}


def _sparse_labels(y_true, p):
    """Labels as a flat array for predictions p, or None when the shapes do not fit."""
    t = y_true if type(y_true) is np.ndarray else np.asarray(y_true)
    if t.ndim == p.ndim and t.ndim and t.shape[-1] == 1:
        t = t.reshape(t.shape[:-1])
    if t.shape != p.shape[:-1] or t.dtype.kind not in "biuf":
        return None
    return t


class SparseCategoricalAccuracy(MeanMetricWrapper):
    """How often argmax(y_pred) matches integer labels."""

    def __init__(self, name: str = "sparse_categorical_accuracy", dtype: DTypeLike | None = None) -> None:
        super().__init__(sparse_categorical_accuracy, name=name, dtype=dtype)

    def _fast_update(self, y_true, y_pred, sample_weight):
        p = _pred_array(y_pred, self.dtype)
        if p.ndim == 0 or p.shape[-1] == 0:
            return False
        t = _sparse_labels(y_true, p)
        if t is None:
            return False
        pw = _position_weights(sample_weight, p.shape[:-1])
        if pw is None:
            return False
        w, scale = pw
        labels = np.ascontiguousarray(t, dtype=np.float64).reshape(-1)
        if p.ndim != 2:
            p = p.reshape(-1, p.shape[-1])
        (_K.sparse_f32 if p.dtype.char == "f" else _K.sparse_f64)(labels, p, w, scale, self._acc)
        return True

    def get_config(self) -> Config:
        return {"name": self.name, "dtype": self.dtype}


class TopKCategoricalAccuracy(MeanMetricWrapper):
    """How often the one-hot target is among the k highest predictions."""

    def __init__(self, k: int = 5, name: str = "top_k_categorical_accuracy", dtype: DTypeLike | None = None) -> None:
        super().__init__(top_k_categorical_accuracy, name=name, dtype=dtype, k=k)
        self.k = int(k)

    def _fast_update(self, y_true, y_pred, sample_weight):
        p = _pred_array(y_pred, self.dtype)
        t = y_true if type(y_true) is np.ndarray else np.asarray(y_true)
        if t.ndim != p.ndim or t.shape[:-1] != p.shape[:-1] or p.ndim == 0 or t.shape[-1] == 0 \
                or p.shape[-1] == 0 or t.dtype.kind not in "biuf":
            return False
        if t.dtype != p.dtype or not t.flags.c_contiguous:
            t = np.ascontiguousarray(t, dtype=p.dtype)
        pw = _position_weights(sample_weight, p.shape[:-1])
        if pw is None:
            return False
        w, scale = pw
        if p.ndim != 2:
            p = p.reshape(-1, p.shape[-1])
            t = t.reshape(-1, t.shape[-1])
        (_K.topk_f32 if p.dtype.char == "f" else _K.topk_f64)(t, None, p, self.k, w, scale, self._acc)
        return True

    def get_config(self) -> Config:
        return {"name": self.name, "dtype": self.dtype, "k": self.k}


class SparseTopKCategoricalAccuracy(MeanMetricWrapper):
    """How often the integer target is among the k highest predictions."""

    def __init__(self, k: int = 5, name: str = "sparse_top_k_categorical_accuracy",
                 dtype: DTypeLike | None = None) -> None:
        super().__init__(sparse_top_k_categorical_accuracy, name=name, dtype=dtype, k=k)
        self.k = int(k)

    def _fast_update(self, y_true, y_pred, sample_weight):
        p = _pred_array(y_pred, self.dtype)
        if p.ndim != 2 or p.shape[-1] == 0:
            return False
        t = y_true if type(y_true) is np.ndarray else np.asarray(y_true)
        if t.shape != p.shape[:1] or t.dtype.kind not in "biuf":
            return False
        pw = _position_weights(sample_weight, p.shape[:-1])
        if pw is None:
            return False
        w, scale = pw
        if t.dtype.kind == "f" and not np.isfinite(t).all():
            return False
        labels = np.ascontiguousarray(t, dtype=np.int64)
        (_K.topk_f32 if p.dtype.char == "f" else _K.topk_f64)(None, labels, p, self.k, w, scale, self._acc)
        return True

    def get_config(self) -> Config:
        return {"name": self.name, "dtype": self.dtype, "k": self.k}


# ============================================================================ loss-based means

class MeanSquaredError(MeanMetricWrapper):
    """Mean of the per-sample mean squared error."""

    def __init__(self, name: str = "mean_squared_error", dtype: DTypeLike | None = None) -> None:
        super().__init__(_losses.mean_squared_error, name=name, dtype=dtype)

    def get_config(self) -> Config:
        return {"name": self.name, "dtype": self.dtype}


class MeanAbsoluteError(MeanMetricWrapper):
    """Mean of the per-sample mean absolute error."""

    def __init__(self, name: str = "mean_absolute_error", dtype: DTypeLike | None = None) -> None:
        super().__init__(_losses.mean_absolute_error, name=name, dtype=dtype)

    def get_config(self) -> Config:
        return {"name": self.name, "dtype": self.dtype}


class MeanAbsolutePercentageError(MeanMetricWrapper):
    """Mean of the per-sample mean absolute percentage error."""

    def __init__(self, name: str = "mean_absolute_percentage_error", dtype: DTypeLike | None = None) -> None:
        super().__init__(_losses.mean_absolute_percentage_error, name=name, dtype=dtype)

    def get_config(self) -> Config:
        return {"name": self.name, "dtype": self.dtype}


class MeanSquaredLogarithmicError(MeanMetricWrapper):
    """Mean of the per-sample mean squared logarithmic error."""

    def __init__(self, name: str = "mean_squared_logarithmic_error", dtype: DTypeLike | None = None) -> None:
        super().__init__(_losses.mean_squared_logarithmic_error, name=name, dtype=dtype)

    def get_config(self) -> Config:
        return {"name": self.name, "dtype": self.dtype}


class RootMeanSquaredError(Mean):
    """sqrt of the mean of the squared errors."""

    def __init__(self, name: str = "root_mean_squared_error", dtype: DTypeLike | None = None) -> None:
        super().__init__(name=name, dtype=dtype)
        self._mse = _losses.MeanSquaredError()

    def update_state(self, y_true: ArrayLike, y_pred: ArrayLike, sample_weight: ArrayLike | None = None) -> None:  # type: ignore[override]
        p = _pred_array(y_pred, self.dtype)
        t = y_true if type(y_true) is np.ndarray else np.asarray(y_true)
        t, p = _squeeze_or_expand(t, p)
        if p.ndim == 1 and t.ndim <= 1:
            # one error per sample: the squared errors are the per-sample values
            p = p.reshape(-1, 1)
            t = t.reshape(-1, 1) if t.ndim == 1 else t
        if p.ndim >= 2 and t.shape == p.shape:
            try:
                v, _, _, (vshape, weight) = self._mse._run(t, p, sample_weight, None, False, False,
                                                           reduce=False, meta=True)
            except ValueError:
                v = None
            if v is not None:
                R = 1
                for d in vshape:
                    R *= d
                T = R // vshape[0] if vshape[0] else 1
                self._acc[0] += v / T
                self._acc[1] += weight / T
                return
        t64 = np.asarray(t, dtype=np.float64)
        self._add_values((np.asarray(p, np.float64) - t64) ** 2, sample_weight)

    def result(self) -> float:
        return float(np.sqrt(super().result()))


def _cosine_similarity_metric(y_true, y_pred, axis=-1):
    return -_losses.cosine_similarity(y_true, y_pred, axis=axis)


class CosineSimilarity(MeanMetricWrapper):
    """Mean cosine similarity between labels and predictions (1 for aligned vectors)."""

    def __init__(self, name: str = "cosine_similarity", dtype: DTypeLike | None = None,
                 axis: int | Sequence[int] = -1) -> None:
        super().__init__(_cosine_similarity_metric, name=name, dtype=dtype, axis=axis)
        self.axis = axis
        self._loss = _losses.CosineSimilarity(axis=axis)

    def _loss_update(self, y_true, y_pred, sample_weight, sign=-1.0):
        return MeanMetricWrapper._loss_update(self, y_true, y_pred, sample_weight, sign=-1.0)

    def get_config(self) -> Config:
        return {"name": self.name, "dtype": self.dtype, "axis": self.axis}


class LogCoshError(MeanMetricWrapper):
    """Mean of the per-sample log-cosh error."""

    def __init__(self, name: str = "logcosh", dtype: DTypeLike | None = None) -> None:
        super().__init__(_losses.log_cosh, name=name, dtype=dtype)

    def get_config(self) -> Config:
        return {"name": self.name, "dtype": self.dtype}


class BinaryCrossentropy(MeanMetricWrapper):
    """Mean binary crossentropy."""

    def __init__(self, name: str = "binary_crossentropy", dtype: DTypeLike | None = None, from_logits: bool = False,
                 label_smoothing: float = 0) -> None:
        super().__init__(_losses.binary_crossentropy, name=name, dtype=dtype, from_logits=from_logits,
                         label_smoothing=label_smoothing)
        self.from_logits = from_logits
        self.label_smoothing = label_smoothing

    def get_config(self) -> Config:
        return {"name": self.name, "dtype": self.dtype, "from_logits": self.from_logits,
                "label_smoothing": self.label_smoothing}


class CategoricalCrossentropy(MeanMetricWrapper):
    """Mean categorical crossentropy."""

    def __init__(self, name: str = "categorical_crossentropy", dtype: DTypeLike | None = None,
                 from_logits: bool = False, label_smoothing: float = 0, axis: int | Sequence[int] = -1) -> None:
        super().__init__(_losses.categorical_crossentropy, name=name, dtype=dtype, from_logits=from_logits,
                         label_smoothing=label_smoothing, axis=axis)
        self.from_logits = from_logits
        self.label_smoothing = label_smoothing
        self.axis = axis

    def get_config(self) -> Config:
        return {"name": self.name, "dtype": self.dtype, "from_logits": self.from_logits,
                "label_smoothing": self.label_smoothing, "axis": self.axis}


class SparseCategoricalCrossentropy(MeanMetricWrapper):
    """Mean crossentropy with integer labels (ignored labels are not counted)."""

    def __init__(self, name: str = "sparse_categorical_crossentropy", dtype: DTypeLike | None = None,
                 from_logits: bool = False, ignore_class: int | None = None, axis: int | Sequence[int] = -1) -> None:
        super().__init__(_losses.sparse_categorical_crossentropy, name=name, dtype=dtype,
                         from_logits=from_logits, ignore_class=ignore_class, axis=axis)
        self.from_logits = from_logits
        self.ignore_class = ignore_class
        self.axis = axis

    def get_config(self) -> Config:
        return {"name": self.name, "dtype": self.dtype, "from_logits": self.from_logits,
                "ignore_class": self.ignore_class, "axis": self.axis}


class KLDivergence(MeanMetricWrapper):
    """Mean Kullback-Leibler divergence."""

    def __init__(self, name: str = "kl_divergence", dtype: DTypeLike | None = None) -> None:
        super().__init__(_losses.kl_divergence, name=name, dtype=dtype)

    def get_config(self) -> Config:
        return {"name": self.name, "dtype": self.dtype}


class Poisson(MeanMetricWrapper):
    """Mean Poisson loss."""

    def __init__(self, name: str = "poisson", dtype: DTypeLike | None = None) -> None:
        super().__init__(_losses.poisson, name=name, dtype=dtype)

    def get_config(self) -> Config:
        return {"name": self.name, "dtype": self.dtype}


class Hinge(MeanMetricWrapper):
    """Mean hinge loss."""

    def __init__(self, name: str = "hinge", dtype: DTypeLike | None = None) -> None:
        super().__init__(_losses.hinge, name=name, dtype=dtype)

    def get_config(self) -> Config:
        return {"name": self.name, "dtype": self.dtype}


class SquaredHinge(MeanMetricWrapper):
    """Mean squared hinge loss."""

    def __init__(self, name: str = "squared_hinge", dtype: DTypeLike | None = None) -> None:
        super().__init__(_losses.squared_hinge, name=name, dtype=dtype)

    def get_config(self) -> Config:
        return {"name": self.name, "dtype": self.dtype}


class CategoricalHinge(MeanMetricWrapper):
    """Mean categorical hinge loss."""

    def __init__(self, name: str = "categorical_hinge", dtype: DTypeLike | None = None) -> None:
        super().__init__(_losses.categorical_hinge, name=name, dtype=dtype)

    def get_config(self) -> Config:
        return {"name": self.name, "dtype": self.dtype}


# ============================================================================ confusion matrix

def _to_list(x):
    if isinstance(x, (list, tuple)):
        return list(x)
    if isinstance(x, np.ndarray):
        return x.tolist() if x.ndim else [x.item()]
    return [x]


def _parse_thresholds(thresholds, default):
    if thresholds is not None:
        bad = [t for t in _to_list(thresholds) if t is None or t < 0 or t > 1]
        if bad:
            raise ValueError(f"Threshold values must be in [0, 1]. Received: {bad}")
    return [float(t) for t in _to_list(default if thresholds is None else thresholds)]


def _evenly_spaced(thresholds):
    n = len(thresholds)
    if n < 3:
        return False
    even = np.arange(n, dtype=np.float32) / (n - 1)
    return bool(np.allclose(thresholds, even, atol=config.epsilon()))


class _Confusion(Metric):
    """Counts true/false positives/negatives per threshold into ``_acc`` (4, T * L)."""

    def _init_confusion(self, thresholds, evenly, n_labels=1, shape=None):
        self._thr = np.asarray(thresholds, dtype=np.float64)
        self._evenly = evenly
        self._with_eps = evenly and (thresholds[0] < 0.0 or thresholds[-1] > 1.0)
        self._n_labels = n_labels
        T = len(thresholds)
        self._acc = np.zeros((4, T * n_labels))
        shape = shape or (T,)
        self.true_positives = self._view_variable(self._acc[0].reshape(shape), "true_positives")
        self.false_positives = self._view_variable(self._acc[1].reshape(shape), "false_positives")
        self.true_negatives = self._view_variable(self._acc[2].reshape(shape), "true_negatives")
        self.false_negatives = self._view_variable(self._acc[3].reshape(shape), "false_negatives")

    def reset_state(self) -> None:
        self._acc[...] = 0

    def _count(self, y_true, y_pred, sample_weight, top_k=None, class_id=None, label_weights=None,
               multi_label=False):
        p = np.asarray(y_pred)
        if p.dtype.kind != "f":
            p = p.astype(config.floatx())
        t = np.asarray(y_true)
        p, t = _squeeze_or_expand(p, t)
        if t.shape != p.shape:
            try:
                t = np.broadcast_to(t, p.shape)
            except ValueError:
                raise ValueError(f'Metric "{self.name}": y_true of shape {_shape_str(np.shape(y_true))} does not '
                                 f"match y_pred of shape {_shape_str(np.shape(y_pred))}") from None
        sw = None
        if sample_weight is not None:
            sw = np.asarray(sample_weight, dtype=np.float64)
            sw = sw.reshape(sw.shape + (1,))
            if sw.ndim == t.ndim + 1 and sw.shape[-1] == 1:
                sw = sw.reshape(sw.shape[:-1])
        if top_k is not None:
            p = _filter_top_k(p, top_k)
        if class_id is not None:
            if p.ndim == 1:
                raise ValueError("When class_id is provided, y_pred must be a 2D array with shape "
                                 f"(num_samples, num_classes), found shape: {p.shape}")
            if not -p.shape[-1] <= class_id < p.shape[-1]:
                raise ValueError(f'Metric "{self.name}": class_id {class_id} is out of range for y_pred of '
                                 f"shape {_shape_str(p.shape)}")
            p = p[..., class_id, None]
            t = t[..., class_id, None]
        p = np.ascontiguousarray(p)
        t = np.ascontiguousarray(t, dtype=p.dtype)
        if multi_label:
            if p.ndim != 2 or p.shape[1] != self._n_labels:
                raise ValueError(f'Metric "{self.name}" (multi_label) expects y_pred of shape (N, '
                                 f"{self._n_labels}), received {_shape_str(p.shape)}")
            L = self._n_labels
        else:
            L = 1
        n = p.size
        w = None
        per_w = 1
        if sw is not None or label_weights is not None:
            try:
                if sw is not None and sw.ndim == p.ndim and sw.shape[:-1] == p.shape[:-1] and sw.shape[-1] == 1 \
                        and label_weights is None:
                    w = np.ascontiguousarray(sw).reshape(-1)
                    per_w = p.shape[-1] if p.ndim else 1
                else:
                    full = np.ones(p.shape) if sw is None else np.broadcast_to(sw, p.shape)
                    if label_weights is not None:
                        full = full * np.broadcast_to(label_weights, p.shape)
                    w = np.ascontiguousarray(full, dtype=np.float64).reshape(-1)
            except ValueError:
                raise ValueError(f'Metric "{self.name}": sample_weight of shape '
                                 f"{_shape_str(np.shape(sample_weight))} cannot be broadcast to y_pred of shape "
                                 f"{_shape_str(p.shape)}") from None
        pf, tf = p.reshape(n), t.reshape(n)
        k = _kernels()
        if self._evenly:
            (k.confusion_buckets_f32 if p.dtype.char == "f" else k.confusion_buckets_f64)(
                tf, pf, w, per_w, len(self._thr), self._with_eps, L, self._acc)
        else:
            if p.dtype.char not in "fd":
                pf = pf.astype(np.float64)
                tf = tf.astype(np.float64)
            (k.confusion_f32 if pf.dtype.char == "f" else k.confusion_f64)(
                tf, pf, w, per_w, self._thr, L, self._acc)


def _filter_top_k(x, k):
    """x with everything but the k largest values of the last axis set to NEG_INF
    (ties keep the lower index)."""
    order = np.argsort(-x, axis=-1, kind="stable")[..., :k]
    mask = np.zeros(x.shape, bool)
    np.put_along_axis(mask, order, True, axis=-1)
    return np.where(mask, x, x.dtype.type(NEG_INF))


def _divide_no_nan(a, b):
    out = np.zeros(np.broadcast(a, b).shape)
    np.divide(a, b, out=out, where=b != 0)
    return out


class _ThresholdCount(_Confusion):
    _which = 0

    def __init__(self, thresholds: float | Sequence[float] | None = None, name: str | None = None,
                 dtype: DTypeLike | None = None) -> None:
        super().__init__(dtype=dtype, name=name)
        self.init_thresholds = thresholds
        self.thresholds = _parse_thresholds(thresholds, 0.5)
        self._init_confusion(self.thresholds, _evenly_spaced(self.thresholds))
        acc = self._variables[self._which]
        acc.name, acc.path = "accumulator", f"{self.name}/accumulator"
        self._variables = [acc]
        self.accumulator = acc

    def update_state(self, y_true: ArrayLike, y_pred: ArrayLike, sample_weight: ArrayLike | None = None) -> None:
        self._count(y_true, y_pred, sample_weight)

    def result(self) -> float | np.ndarray:
        r = self._acc[self._which]
        return float(r[0]) if len(self.thresholds) == 1 else r.copy()

    def get_config(self) -> Config:
        return {**super().get_config(), "thresholds": self.init_thresholds}


class TruePositives(_ThresholdCount):
    """Weighted count of true positives (one value per threshold)."""
    _which = 0


class FalsePositives(_ThresholdCount):
    """Weighted count of false positives."""
    _which = 1


class TrueNegatives(_ThresholdCount):
    """Weighted count of true negatives."""
    _which = 2


class FalseNegatives(_ThresholdCount):
    """Weighted count of false negatives."""
    _which = 3


class _PrecisionRecall(_Confusion):
    # Row of the confusion counts in the denominator, and that count's variable:
    # false positives (Precision) or false negatives (Recall).
    _den_row: int

    def _other(self) -> Variable:
        raise NotImplementedError
    def __init__(self, thresholds: float | Sequence[float] | None = None, top_k: int | None = None,
                 class_id: int | None = None, name: str | None = None, dtype: DTypeLike | None = None) -> None:
        super().__init__(dtype=dtype, name=name)
        self.init_thresholds = thresholds
        self.top_k = top_k
        self.class_id = class_id
        default = 0.5 if top_k is None else NEG_INF
        self.thresholds = _parse_thresholds(thresholds, default)
        self._init_confusion(self.thresholds, _evenly_spaced(self.thresholds))
        keep = [self.true_positives, self._other()]
        self._variables = keep

    def update_state(self, y_true: ArrayLike, y_pred: ArrayLike, sample_weight: ArrayLike | None = None) -> None:
        self._count(y_true, y_pred, sample_weight, top_k=self.top_k, class_id=self.class_id)

    def result(self) -> float | np.ndarray:
        tp = self._acc[0]
        r = _divide_no_nan(tp, tp + self._acc[self._den_row])
        return float(r[0]) if len(self.thresholds) == 1 else r

    def get_config(self) -> Config:
        return {**super().get_config(), "thresholds": self.init_thresholds, "top_k": self.top_k,
                "class_id": self.class_id}


class Precision(_PrecisionRecall):
    """true_positives / (true_positives + false_positives), per threshold.

    Args:
        thresholds: a float or list of floats in [0, 1] (default 0.5; with ``top_k``
            every top-k prediction counts as positive).
        top_k: only the k highest predictions of each sample can be positive.
        class_id: compute the metric for this class only.
    """

    _den_row = 1

    def _other(self):
        return self.false_positives


class Recall(_PrecisionRecall):
    """true_positives / (true_positives + false_negatives), per threshold (see Precision)."""

    _den_row = 3

    def _other(self):
        return self.false_negatives


class AUC(_Confusion):
    """Area under the ROC or precision-recall curve, from confusion counts at thresholds.

    Args:
        num_thresholds: number of evenly spaced thresholds (> 1), default 200.
        curve: ``"ROC"`` or ``"PR"``.
        summation_method: ``"interpolation"``, ``"minoring"`` or ``"majoring"``.
        thresholds: explicit thresholds in [0, 1] (then num_thresholds is ignored).
        multi_label: one curve per label column, averaged (else data are flattened).
        num_labels: number of labels with multi_label (else taken from the first batch).
        label_weights: weights of the labels (averaging weights with multi_label).
        from_logits: apply a sigmoid to y_pred first.
    """

    def __init__(self, num_thresholds: int = 200, curve: str = "ROC", summation_method: str = "interpolation",
                 name: str | None = None, dtype: DTypeLike | None = None,
                 thresholds: float | Sequence[float] | None = None, multi_label: bool = False,
                 num_labels: int | None = None, label_weights: ArrayLike | None = None,
                 from_logits: bool = False) -> None:
        curve_s = getattr(curve, "value", curve)
        if curve_s in ("roc", "ROC"):
            curve_s = "ROC"
        elif curve_s in ("pr", "PR"):
            curve_s = "PR"
        else:
            raise ValueError(f'Invalid AUC curve value: "{curve}". Expected values are ["PR", "ROC"]')
        sm = getattr(summation_method, "value", summation_method)
        sm = {"interpolation": "interpolation", "Interpolation": "interpolation", "majoring": "majoring",
              "Majoring": "majoring", "minoring": "minoring", "Minoring": "minoring"}.get(sm)
        if sm is None:
            raise ValueError(f'Invalid AUC summation method value: "{summation_method}". Expected values are '
                             '["interpolation", "majoring", "minoring"]')
        super().__init__(dtype=dtype, name=name)
        self._init_from_thresholds = thresholds is not None
        eps = config.epsilon()
        if thresholds is not None:
            inner = sorted(float(t) for t in _to_list(thresholds))
            self.num_thresholds = len(inner) + 2
            evenly = _evenly_spaced([0.0] + inner + [1.0])
        else:
            if num_thresholds <= 1:
                raise ValueError("Argument `num_thresholds` must be an integer > 1. "
                                 f"Received: num_thresholds={num_thresholds}")
            self.num_thresholds = int(num_thresholds)
            inner = [(i + 1) * 1.0 / (num_thresholds - 1) for i in range(num_thresholds - 2)]
            evenly = True
        self._thresholds_list = [0.0 - eps] + inner + [1.0 + eps]
        self.curve = curve_s
        self.summation_method = sm
        self.multi_label = bool(multi_label)
        self.num_labels = num_labels
        self.label_weights = None if label_weights is None else np.asarray(label_weights, dtype=np.float64)
        self._from_logits = bool(from_logits)
        self._evenly_init = evenly
        self._built = False
        if self.multi_label:
            if num_labels:
                self._build(int(num_labels))
        else:
            if num_labels:
                raise ValueError("`num_labels` is needed only when `multi_label` is True.")
            self._build(1)

    @property
    def thresholds(self) -> list[float]:
        return list(self._thresholds_list)

    def _build(self, n_labels):
        shape = (self.num_thresholds, n_labels) if self.multi_label else (self.num_thresholds,)
        self._init_confusion(self._thresholds_list, self._evenly_init, n_labels, shape)
        self._built = True

    def update_state(self, y_true: ArrayLike, y_pred: ArrayLike, sample_weight: ArrayLike | None = None) -> None:
        p = np.asarray(y_pred)
        if not self._built:
            if p.ndim != 2:
                raise ValueError(f"`y_pred` must have rank 2 when `multi_label=True`. Found rank {p.ndim}. "
                                 f"Full shape received for `y_pred`: {p.shape}")
            self._build(p.shape[1])
        if self._from_logits:
            p = 1.0 / (1.0 + np.exp(-p.astype(p.dtype if p.dtype.kind == "f" else np.float64)))
        self._count(y_true, p, sample_weight, multi_label=self.multi_label,
                    label_weights=None if self.multi_label else self.label_weights)

    def reset_state(self) -> None:
        if self._built:
            self._acc[...] = 0

    def _stats(self):
        T = self.num_thresholds
        L = self._n_labels
        shape = (T, L) if self.multi_label else (T,)
        return [self._acc[i].reshape(shape) for i in range(4)]

    def _average(self, by_label):
        if not self.multi_label:
            return float(by_label)
        if self.label_weights is None:
            return float(np.mean(by_label))
        lw = self.label_weights
        s = lw.sum()
        return float(np.sum(by_label * lw) / s) if s else 0.0

    def interpolate_pr_auc(self) -> float | np.ndarray:
        tp, fp, tn, fn = self._stats()
        T = self.num_thresholds
        dtp = tp[:T - 1] - tp[1:]
        p = tp + fp
        dp = p[:T - 1] - p[1:]
        prec_slope = _divide_no_nan(dtp, np.maximum(dp, 0))
        intercept = tp[1:] - prec_slope * p[1:]
        both = (p[:T - 1] > 0) & (p[1:] > 0)
        ratio = np.where(both, _divide_no_nan(p[:T - 1], np.maximum(p[1:], 0)), 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_ratio = np.log(np.where(both, ratio, 1.0))
        inc = _divide_no_nan(prec_slope * (dtp + intercept * log_ratio), np.maximum(tp[1:] + fn[1:], 0))
        return self._average(np.sum(inc, axis=0))

    def result(self) -> float | np.ndarray:
        if not self._built:
            return 0.0
        if self.curve == "PR" and self.summation_method == "interpolation":
            return self.interpolate_pr_auc()
        tp, fp, tn, fn = self._stats()
        T = self.num_thresholds
        recall = _divide_no_nan(tp, tp + fn)
        if self.curve == "ROC":
            x = _divide_no_nan(fp, fp + tn)
            y = recall
        else:
            x = recall
            y = _divide_no_nan(tp, tp + fp)
        if self.summation_method == "interpolation":
            heights = (y[:T - 1] + y[1:]) / 2.0
        elif self.summation_method == "minoring":
            heights = np.minimum(y[:T - 1], y[1:])
        else:
            heights = np.maximum(y[:T - 1], y[1:])
        return self._average(np.sum((x[:T - 1] - x[1:]) * heights, axis=0))

    def get_config(self) -> Config:
        config = {
            **super().get_config(),
            "num_thresholds": self.num_thresholds, "curve": self.curve,
            "summation_method": self.summation_method, "multi_label": self.multi_label,
            "num_labels": self.num_labels,
            "label_weights": None if self.label_weights is None else self.label_weights.tolist(),
            "from_logits": self._from_logits,
        }
        if self._init_from_thresholds:
            config["thresholds"] = self.thresholds[1:-1]
        return config


# ============================================================================ lookup

_CLASSES = (
    Metric, Mean, Sum, MeanMetricWrapper, MeanSquaredError, RootMeanSquaredError, MeanAbsoluteError,
    MeanAbsolutePercentageError, MeanSquaredLogarithmicError, CosineSimilarity, LogCoshError, AUC,
    FalseNegatives, FalsePositives, Precision, Recall, TrueNegatives, TruePositives, Hinge, SquaredHinge,
    CategoricalHinge, KLDivergence, Poisson, BinaryCrossentropy, CategoricalCrossentropy,
    SparseCategoricalCrossentropy, Accuracy, BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy,
    TopKCategoricalAccuracy, SparseTopKCategoricalAccuracy,
)

ALL_OBJECTS_DICT = {c.__name__: c for c in _CLASSES}
ALL_OBJECTS_DICT.update({backend.to_snake_case(c.__name__): c for c in _CLASSES})
ALL_OBJECTS_DICT.update({
    "bce": BinaryCrossentropy, "BCE": BinaryCrossentropy,
    "mse": MeanSquaredError, "MSE": MeanSquaredError,
    "mae": MeanAbsoluteError, "MAE": MeanAbsoluteError,
    "mape": MeanAbsolutePercentageError, "MAPE": MeanAbsolutePercentageError,
    "msle": MeanSquaredLogarithmicError, "MSLE": MeanSquaredLogarithmicError,
})

# metric functions (per-sample values), also accepted by get() and MeanMetricWrapper configs
_FUNCTIONS = {f.__name__: f for f in (
    accuracy, binary_accuracy, categorical_accuracy, sparse_categorical_accuracy,
    top_k_categorical_accuracy, sparse_top_k_categorical_accuracy)}
# the loss functions, as keras.metrics also exports them
for _fn in _losses._FUNCTION_CLASSES:
    _FUNCTIONS[_fn.__name__] = _fn
    globals()[_fn.__name__] = _fn
    __all__.append(_fn.__name__)
del _fn

# functions that have a kernel-backed class
_FUNCTION_METRICS = {
    binary_accuracy: BinaryAccuracy, categorical_accuracy: CategoricalAccuracy,
    sparse_categorical_accuracy: SparseCategoricalAccuracy,
    top_k_categorical_accuracy: TopKCategoricalAccuracy,
    sparse_top_k_categorical_accuracy: SparseTopKCategoricalAccuracy, accuracy: Accuracy,
}


def _valid_names():
    return sorted(k for k in ALL_OBJECTS_DICT if k not in ("Metric", "metric", "MeanMetricWrapper",
                                                           "mean_metric_wrapper"))


def get(identifier: str | Config | Metric | type[Metric] | Callable[..., Any] | None) -> Metric | None:
    """A fresh Metric from a name, a class, a config dict or a callable (an instance is
    returned as is). A string keeps its spelling as the metric's name, as in compile:
    ``get("mae").name == "mae"``. Unknown names raise ValueError listing the valid ones.
    """
    if identifier is None:
        return None
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, dict):
        obj = deserialize(identifier)
        return obj if isinstance(obj, Metric) else get(obj)
    if isinstance(identifier, str):
        cls = ALL_OBJECTS_DICT.get(identifier)
        if cls is None or cls in (Metric, MeanMetricWrapper):
            fn = _FUNCTIONS.get(identifier) if cls is None else None
            if fn is not None:
                m = _from_function(fn)
                m.name = identifier
                return m
            raise ValueError(f"Unknown metric {identifier!r}. Valid names: {_valid_names()}")
        m = cls()  # type: ignore[call-arg]  # not MeanMetricWrapper (its fn): excluded above
        m.name = identifier
        return m
    if inspect.isclass(identifier) and issubclass(identifier, Metric):
        return identifier()
    if callable(identifier):
        return _from_function(identifier)
    raise ValueError(f"Could not interpret metric identifier: {identifier!r}. Expected a name (one of "
                     f"{_valid_names()}), a Metric, a config dict or a callable")


def _from_function(fn):
    cls = _FUNCTION_METRICS.get(fn)
    if cls is not None:
        m = cls()
        m.name = fn.__name__
        return m
    return MeanMetricWrapper(fn, name=getattr(fn, "__name__", None))


def resolve(identifier: str | Config | Metric | type[Metric] | Callable[..., Any] | None,
            y_true_shape: ShapeLike | None = None, y_pred_shape: ShapeLike | None = None,
            loss: Loss | None = None) -> Metric | None:
    """The metric ``compile(metrics=[identifier])`` creates, named as in the history.

    ``"accuracy"``/``"acc"`` (any case) become BinaryAccuracy when the output's last axis
    is 1, SparseCategoricalAccuracy when the targets have a lower rank (or a last axis of
    1 against a wider output), else CategoricalAccuracy. Without shapes, the loss
    decides (sparse categorical crossentropy -> sparse, binary losses -> binary).
    Other strings go through :func:`get` and keep their spelling as the name.
    """
    if identifier is None:
        return None
    if isinstance(identifier, str) and identifier.lower() in ("accuracy", "acc"):
        if y_true_shape is not None and y_pred_shape is not None:
            is_binary, is_sparse = _losses.is_binary_or_sparse_categorical(y_true_shape, y_pred_shape)
        else:
            lobj = _losses.get(loss) if loss is not None else None
            lobj = getattr(lobj, "_impl", None) or lobj
            if lobj is None:
                raise ValueError(f"Metric {identifier!r} needs the target and output shapes (or the loss) to "
                                 "choose between binary, sparse categorical and categorical accuracy")
            is_sparse = isinstance(lobj, _losses.SparseCategoricalCrossentropy)
            is_binary = isinstance(lobj, (_losses.BinaryCrossentropy, _losses.Hinge, _losses.SquaredHinge))
        cls = BinaryAccuracy if is_binary else (SparseCategoricalAccuracy if is_sparse else CategoricalAccuracy)
        return cls(name=identifier)
    m = get(identifier)
    if m is not None and isinstance(identifier, str):
        m.name = identifier
    return m


def serialize(metric: Metric | Callable[..., Any] | str) -> Config | str:
    """Keras's serialized form of a metric: module, class_name, config."""
    if isinstance(metric, Metric):
        return {"module": "keras.metrics", "class_name": type(metric).__name__,
                "config": metric.get_config(), "registered_name": None}
    if callable(metric):
        name = getattr(metric, "__name__", repr(metric))
        return {"module": "keras.metrics", "class_name": "function", "config": name,
                "registered_name": "function"}
    return metric


def deserialize(config: str | Config, custom_objects: CustomObjects | None = None) -> Metric | Callable[..., Any]:
    """Inverse of :func:`serialize`; also accepts names."""
    custom_objects = custom_objects or {}
    if isinstance(config, str):
        if config in custom_objects:
            obj = custom_objects[config]
            made: Any = obj() if inspect.isclass(obj) else obj
            return made
        return cast("Metric", get(config))  # None only for None
    if not isinstance(config, dict):
        raise ValueError(f"Could not deserialize metric from {config!r}")
    class_name = config.get("class_name") or ""
    inner = config.get("config", {})
    if class_name == "function":
        name = inner if isinstance(inner, str) else inner.get("name")
        fn = (custom_objects.get(name) or _FUNCTIONS.get(name)) if isinstance(name, str) else None
        if fn is None:
            raise ValueError(f"Unknown metric function {name!r}. Valid names: {sorted(_FUNCTIONS)}")
        return fn
    cls = custom_objects.get(class_name) or ALL_OBJECTS_DICT.get(class_name)
    if cls is None:
        raise ValueError(f"Unknown metric class {class_name!r}. Valid names: {_valid_names()}")
    return cls.from_config(dict(inner or {}))


_kernels()
