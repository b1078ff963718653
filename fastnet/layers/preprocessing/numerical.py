"""Numerical and categorical preprocessing: Normalization, Rescaling, Discretization,
CategoryEncoding, Hashing."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from fastnet import config
from fastnet.layers.preprocessing._base import (
    PreprocessingLayer,
    as_string_array,
    check_output_mode,
    encode_categorical,
    encoded_shape,
    first_of,
    iter_batches,
    refuse_sparse,
)

if TYPE_CHECKING:
    from typing import Any

    from fastnet._typing import ArrayLike, Config, Shape, ShapeLike

__all__ = ["Normalization", "Rescaling", "Discretization", "CategoryEncoding", "Hashing"]


def _fill(value):
    def init(shape, dtype=None):
        return np.full(shape, value, dtype=dtype)
    return init


def _shape_list(shape):
    return [None if d is None else int(d) for d in shape]


class Normalization(PreprocessingLayer):
    """Shifts and scales inputs to zero mean and unit variance: ``(x - mean) / sqrt(var)``
    (``mean + x * sqrt(var)`` with ``invert=True``); the square root is floored at
    ``config.epsilon()``.

    The statistics are given (``mean``, ``variance``) or learned by ``adapt(data)``.

    Args:
        axis: int, tuple of ints or None: the axes that keep their own statistics (-1: one
            mean and variance per feature of the last axis; None: one scalar for all).
        mean: the mean(s) to use, broadcast to the kept axes; needs ``variance``.
        variance: the variance(s) to use; needs ``mean``.
        invert: apply the inverse transformation (turn normalized values back).

    Input shape:
        Any shape ``(batch, ...)`` whose kept axes have known sizes.

    Output shape:
        The input shape.
    """

    def __init__(self, axis: int | tuple[int, ...] | None = -1, mean: ArrayLike | None = None,
                 variance: ArrayLike | None = None, invert: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        if axis is None:
            axis = ()
        elif isinstance(axis, (int, np.integer)):
            axis = (int(axis),)
        else:
            axis = tuple(int(a) for a in axis)
        self.axis = axis
        self.input_mean = mean
        self.input_variance = variance
        self.invert = bool(invert)
        self.supports_masking = True
        if (mean is None) != (variance is None):
            raise ValueError(f"Normalization: when setting values directly, both `mean` and `variance` "
                             f"must be set. Received: mean={mean} and variance={variance}")
        if mean is not None:
            if np.shape(mean) != np.shape(variance):
                raise ValueError(f"Normalization: `mean` and `variance` must have the same shape. "
                                 f"Received: mean shape {np.shape(mean)} and variance shape "
                                 f"{np.shape(variance)}")
            if np.ndim(mean) > len(self.axis):
                raise ValueError(f"Normalization: the rank of `mean` must be at most the number of "
                                 f"axes ({len(self.axis)}). Received: mean shape {np.shape(mean)} "
                                 f"for axis {self.axis}")
        self._build_input_shape = None
        self.adapt_mean = self.adapt_variance = self.count = None
        self._fixed = None  # (mean, variance) broadcast shapes when given at construction

    def build(self, input_shape: ShapeLike) -> None:
        ndim = len(input_shape)
        self._build_input_shape = tuple(input_shape)
        if any(a < -ndim or a >= ndim for a in self.axis):
            raise ValueError(f'Layer "{self.name}" (Normalization): all `axis` values must be in the '
                             f"range [-ndim, ndim). Received inputs with ndim={ndim}, while axis={self.axis}")
        self._keep_axis = tuple(sorted(a % ndim for a in self.axis))
        for d in self._keep_axis:
            if input_shape[d] is None:
                raise ValueError(f'Layer "{self.name}" (Normalization): the kept axes must have a known '
                                 f"size. Received axis={self.axis}, input shape={tuple(input_shape)}, "
                                 f"unknown size at index {d}")
        self._reduce_axis = tuple(d for d in range(ndim) if d not in self._keep_axis)
        self._broadcast_shape = tuple(input_shape[d] if d in self._keep_axis else 1 for d in range(ndim))
        self._stat_shape = tuple(input_shape[d] for d in self._keep_axis)
        if self.input_mean is None:
            self.adapt_mean = self._stat_weight("mean", self._stat_shape, 0, None)
            self.adapt_variance = self._stat_weight("variance", self._stat_shape, 1, None)
            # Keras stores the count as a 32-bit integer scalar.
            self.count = self._stat_weight("count", (), 0, "int32")
        else:
            mean = np.asarray(self.input_mean, dtype=np.float64)
            var = np.asarray(self.input_variance, dtype=np.float64)
            if mean.ndim > 0:
                expanded = [1] * ndim
                for i in range(1, mean.ndim + 1):
                    expanded[self._keep_axis[-i]] = mean.shape[-i]
                mean = mean.reshape(expanded)
                var = var.reshape(expanded)
            try:
                mean = np.broadcast_to(mean, self._broadcast_shape)
                var = np.broadcast_to(var, self._broadcast_shape)
            except ValueError as e:
                raise ValueError(f'Layer "{self.name}" (Normalization): mean of shape '
                                 f"{np.shape(self.input_mean)} does not broadcast to the kept axes "
                                 f"{self._stat_shape} of input shape {tuple(input_shape)}") from e
            self._fixed = (mean, var)
        self.built = True

    def _stat_weight(self, name, shape, value, dtype):
        # add_weight (np.ascontiguousarray) turns a 0-d value into shape (1,): scalars are
        # created as (1,) and put back to 0-d, the shape Keras saves.
        var = self.add_weight(name, shape or (1,), initializer=_fill(value), trainable=False, dtype=dtype)
        if not shape:
            var.value = np.full((), value, dtype=var.value.dtype)
        return var

    def _stats(self, dtype):
        if self._fixed is not None:
            mean, var = self._fixed
        else:
            mean = self.adapt_mean.value.reshape(self._broadcast_shape)
            var = self.adapt_variance.value.reshape(self._broadcast_shape)
        scale = np.maximum(np.sqrt(var.astype(dtype)), dtype.type(config.epsilon()))
        return mean.astype(dtype), scale

    def adapt(self, data: Any, batch_size: int | None = None, steps: int | None = None) -> None:
        """Computes the mean and variance of ``data`` (an array, or an iterable of batches such
        as ``fastnet.data.Dataset``; ``(x, y)`` batches use x) along the reduced axes."""
        if isinstance(data, (list, tuple)) and data and np.ndim(first_of(data[0])) == 0:
            data = np.asarray(data)  # a list of numbers is one array, not batches of scalars
        batches = iter_batches(data, steps=steps, batch_size=batch_size, list_is_data=False)
        mean = m2 = None
        n = 0
        for batch in batches:
            x = np.asarray(batch, dtype=np.float64)
            if not self.built:
                self._build_for(x.shape)
                self._build_input_shape = tuple(x.shape)
            if self._fixed is not None:
                raise ValueError(f'Layer "{self.name}" (Normalization) was given `mean` and `variance`; '
                                 f"it cannot be adapted")
            if x.ndim != len(self._broadcast_shape) or any(
                    x.shape[d] != self._build_input_shape[d] for d in self._keep_axis):
                raise ValueError(f'Layer "{self.name}" (Normalization) was built with input shape '
                                 f"{self._build_input_shape}; adapt() received a batch of shape {x.shape}")
            m = math.prod(x.shape[d] for d in self._reduce_axis)
            if m == 0:
                continue
            b_mean = x.mean(axis=self._reduce_axis, keepdims=True)
            b_m2 = ((x - b_mean) ** 2).sum(axis=self._reduce_axis).reshape(self._stat_shape)
            b_mean = b_mean.reshape(self._stat_shape)
            # Chan et al.'s pairwise update: exact for any batching, no cancellation.
            if mean is None:
                mean, m2 = b_mean, b_m2
            else:
                delta = b_mean - mean
                mean = mean + delta * (m / (n + m))
                m2 = m2 + b_m2 + delta * delta * (n * m / (n + m))
            n += m
        if n == 0:
            raise ValueError(f'Layer "{self.name}" (Normalization): adapt() received no data')
        var = m2 / n
        self.adapt_mean.assign(mean)
        self.adapt_variance.assign(var)
        # Keras creates and saves ``count`` but never updates it; fastnet leaves it alone too,
        # so get_weights() and saved files hold the same values as Keras's.

    def forward(self, ctx: Any, inputs: Any, training: bool = False, **kwargs) -> Any:
        if not self.built:
            raise ValueError(f'Layer "{self.name}" (Normalization) is not built: call it on data, '
                             f"build(input_shape) or adapt(data) first")
        mean, scale = self._stats(inputs.dtype)
        if ctx.record:
            ctx.scale = scale
        out = ctx.buf("y", inputs.shape, inputs.dtype)
        if self.invert:
            np.multiply(inputs, scale, out=out)
            out += mean
        else:
            np.subtract(inputs, mean, out=out)
            out /= scale
        return out

    def backward(self, ctx: Any, dy: Any) -> Any:
        if not ctx.need_dx:
            return None
        return dy * ctx.scale if self.invert else dy / ctx.scale

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape:
        return tuple(input_shape)

    def get_config(self) -> Config:
        cfg = super().get_config()
        cfg.update({
            "axis": list(self.axis),
            "invert": self.invert,
            "mean": np.array(self.input_mean).tolist() if self.input_mean is not None else None,
            "variance": np.array(self.input_variance).tolist() if self.input_variance is not None else None,
        })
        return cfg

    def get_build_config(self) -> Config | None:
        if self._build_input_shape:
            return {"input_shape": _shape_list(self._build_input_shape)}
        return None

    def build_from_config(self, build_config: Config) -> None:
        if build_config and build_config.get("input_shape") is not None:
            shape = tuple(build_config["input_shape"])
            self._build_for(shape)
            self._build_input_shape = shape


class Rescaling(PreprocessingLayer):
    """Multiplies inputs by ``scale`` and adds ``offset``: ``x * scale + offset`` (e.g.
    ``Rescaling(1 / 255)`` maps [0, 255] to [0, 1], ``Rescaling(1 / 127.5, offset=-1)`` to
    [-1, 1]). Integer inputs are cast to the layer's float type.

    Args:
        scale: float, or an array broadcast against the input (per channel, say).
        offset: float or array, added after scaling.

    Input shape:
        Any.

    Output shape:
        The input shape.
    """

    def __init__(self, scale: float | ArrayLike, offset: float | ArrayLike = 0.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.scale = scale
        self.offset = offset
        self.supports_masking = True

    def _scale(self, dtype, ndim):
        scale = np.asarray(self.scale, dtype=dtype)
        if scale.ndim > 0 and config.image_data_format() == "channels_first":
            scale = scale.reshape(scale.shape + (1,) * (3 - scale.ndim))
        return scale

    def forward(self, ctx: Any, inputs: Any, training: bool = False, **kwargs) -> Any:
        scale = self._scale(inputs.dtype, inputs.ndim)
        offset = np.asarray(self.offset, dtype=inputs.dtype)
        if ctx.record:
            ctx.scale = scale
            ctx.in_shape = inputs.shape
        y = inputs * scale
        y += offset
        return y

    def backward(self, ctx: Any, dy: Any) -> Any:
        if not ctx.need_dx:
            return None
        dx = dy * ctx.scale
        if dx.shape != ctx.in_shape:
            extra = dx.ndim - len(ctx.in_shape)
            dx = dx.sum(axis=tuple(range(extra))) if extra > 0 else dx
            axes = tuple(i for i, (a, b) in enumerate(zip(dx.shape, ctx.in_shape)) if b == 1 and a != 1)
            if axes:
                dx = dx.sum(axis=axes, keepdims=True)
        return dx

    def get_config(self) -> Config:
        cfg = super().get_config()
        cfg.update({"scale": self.scale, "offset": self.offset})
        return cfg


# ---------------------------------------------------------------------- Discretization
def _summarize(values, epsilon):
    # A weighted quantile sketch of one batch: every step-th sorted value, weight step.
    values = np.sort(np.reshape(values, [-1]))
    step = max(values.size / (1.0 / epsilon), 1)
    boundaries = values[int(step - 1)::int(step)]
    return np.stack([boundaries, np.ones_like(boundaries) * step])


def _compress(summary, epsilon):
    if summary.shape[1] * epsilon < 1:
        return summary
    percents = epsilon + np.arange(0.0, 1.0, epsilon)
    cum = summary[1].cumsum()
    cum_pct = cum / cum[-1]
    bins = np.interp(percents, cum_pct, summary[0])
    cum_at = np.interp(percents, cum_pct, cum)
    weights = cum_at - np.concatenate((np.array([0]), cum_at[:-1]))
    return np.stack((bins, weights)).astype("float32")


def _merge(prev, new, epsilon):
    merged = np.concatenate((prev, new), axis=1)
    merged = np.take(merged, np.argsort(merged[0]), axis=1)
    return _compress(merged, epsilon)


class Discretization(PreprocessingLayer):
    """Buckets continuous values into bins: bin i holds ``boundaries[i-1] <= x < boundaries[i]``.

    Args:
        bin_boundaries: sorted list of boundaries (bins: (-inf, b0), [b0, b1), ..., [bn, inf)).
        num_bins: number of bins to learn by ``adapt`` (quantiles of the data).
        epsilon: error tolerance of the quantile sketch used by ``adapt``.
        output_mode: "int" (bin index, int32), "one_hot", "multi_hot" or "count".
        sparse: must be False.

    Input shape:
        Any; "multi_hot" and "count" reduce the last axis.

    Output shape:
        "int": the input shape; "one_hot": a trailing axis of size ``num_bins`` (replacing a
        trailing axis of size 1); "multi_hot"/"count": the last axis replaced by ``num_bins``.
    """

    def __init__(self, bin_boundaries: list[float] | None = None, num_bins: int | None = None,
                 epsilon: float = 0.01, output_mode: str = "int", sparse: bool = False, dtype: str | None = None,
                 name: str | None = None, **kwargs) -> None:
        super().__init__(name=name, dtype=dtype, **kwargs)
        refuse_sparse("Discretization", sparse)
        self.output_mode = check_output_mode("Discretization", output_mode,
                                             ("int", "one_hot", "multi_hot", "count"))
        if num_bins is not None and num_bins < 0:
            raise ValueError(f"Discretization: `num_bins` must be >= 0. Received: num_bins={num_bins}")
        if num_bins is not None and bin_boundaries is not None:
            raise ValueError(f"Discretization: set only one of `num_bins` and `bin_boundaries`. "
                             f"Received: num_bins={num_bins} and bin_boundaries={bin_boundaries}")
        if num_bins is None and bin_boundaries is None:
            raise ValueError("Discretization: set either `num_bins` or `bin_boundaries`")
        self.bin_boundaries = list(bin_boundaries) if bin_boundaries is not None else None
        self.num_bins = num_bins
        self.epsilon = epsilon
        self.sparse = False
        self.summary = None if self.bin_boundaries else np.array([[], []], dtype="float32")

    @property
    def output_dtype(self) -> str:
        return "int32" if self.output_mode == "int" else self.compute_dtype

    def _prepare(self, inputs):
        x = np.asarray(inputs)
        if x.dtype.kind not in "fiub":
            raise TypeError(f'Layer "{self.name}" (Discretization) expects numeric input, received '
                            f"dtype {x.dtype}")
        return x

    def adapt(self, data: Any, batch_size: int | None = None, steps: int | None = None) -> None:
        """Learns ``num_bins`` quantile boundaries from ``data`` (array or iterable of batches)."""
        if self.num_bins is None:
            raise ValueError("Discretization: cannot adapt a layer built with `bin_boundaries`; "
                             "use `num_bins` instead")
        self.summary = np.array([[], []], dtype="float32")
        if isinstance(data, (list, tuple)) and data and np.ndim(first_of(data[0])) == 0:
            data = np.asarray(data)  # a list of numbers is one array, not batches of scalars
        for batch in iter_batches(data, steps=steps, batch_size=batch_size, list_is_data=False):
            values = np.array(batch).astype("float32")
            self.summary = _merge(_summarize(values, self.epsilon), self.summary, self.epsilon)
        self.bin_boundaries = _compress(self.summary, 1.0 / self.num_bins)[0, :-1].tolist()

    def forward(self, ctx: Any, inputs: Any, training: bool = False, **kwargs) -> Any:
        if self.bin_boundaries is None:
            raise ValueError("Discretization: pass `bin_boundaries` or call `adapt(data)` before "
                             "using the layer")
        idx = np.digitize(inputs, np.asarray(self.bin_boundaries, dtype=np.float64))
        return encode_categorical(idx, self.output_mode, len(self.bin_boundaries) + 1, self.output_dtype,
                                  layer_name=f'Layer "{self.name}" (Discretization)')

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape:
        depth = len(self.bin_boundaries) + 1 if self.bin_boundaries is not None else self.num_bins
        return encoded_shape(input_shape, self.output_mode, depth)

    def get_config(self) -> Config:
        return {"bin_boundaries": self.bin_boundaries, "num_bins": self.num_bins, "epsilon": self.epsilon,
                "output_mode": self.output_mode, "sparse": False, "name": self.name, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config_dict: Config) -> Discretization:
        cfg = dict(config_dict)
        if cfg.get("bin_boundaries") is not None and cfg.get("num_bins") is not None:
            # An adapted layer stores both; the constructor takes one.
            bins = cfg.pop("bin_boundaries")
            layer = cls(**cfg)
            layer.bin_boundaries = list(bins)
            return layer
        return cls(**cfg)

    def load_own_variables(self, store: Any) -> None:
        # Keras keeps the boundaries in the config; very old files stored the sketch as "0".
        if hasattr(store, "keys") and len(store.keys()) == 1:
            self.summary = np.asarray(store["0"])

    def save_own_variables(self, store: Any) -> None:
        return None


# ---------------------------------------------------------------------- CategoryEncoding
class CategoryEncoding(PreprocessingLayer):
    """Encodes integer features as one-hot, multi-hot or count vectors.

    Args:
        num_tokens: number of categories; inputs must be in ``[0, num_tokens)``.
        output_mode: "one_hot", "multi_hot" (default) or "count".
        sparse: must be False.

    Call arguments:
        inputs: integer array.
        count_weights: weights per input element, summed instead of counts ("count" only).

    Input shape:
        ``(batch,)`` or ``(batch, k)`` integers (a scalar is one sample).

    Output shape:
        "one_hot": ``(batch, num_tokens)`` for ``(batch,)`` or ``(batch, 1)`` inputs,
        ``(batch, k, num_tokens)`` otherwise; "multi_hot"/"count": ``(batch, num_tokens)``
        (``(num_tokens,)`` for a rank-1 input, one sample).
    """

    def __init__(self, num_tokens: int | None = None, output_mode: str = "multi_hot", sparse: bool = False,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        refuse_sparse("CategoryEncoding", sparse)
        if output_mode == "binary":
            output_mode = "multi_hot"
        if output_mode not in ("count", "one_hot", "multi_hot"):
            raise ValueError(f"CategoryEncoding: unknown output_mode {output_mode!r}; valid values: "
                             f"['count', 'one_hot', 'multi_hot']")
        if num_tokens is None:
            raise ValueError("CategoryEncoding: num_tokens must be set (use IntegerLookup when the "
                             "number of tokens is not known beforehand)")
        if num_tokens < 1:
            raise ValueError(f"CategoryEncoding: `num_tokens` must be >= 1. Received: num_tokens={num_tokens}")
        self.num_tokens = int(num_tokens)
        self.output_mode = output_mode
        self.sparse = False

    def _prepare(self, inputs):
        x = np.asarray(inputs)
        if x.dtype.kind not in "iub" and not (x.dtype.kind == "f" and np.all(x == np.floor(x))):
            raise TypeError(f'Layer "{self.name}" (CategoryEncoding) expects integer input, received '
                            f"dtype {x.dtype}")
        return x.astype(np.int64, copy=False)

    def forward(self, ctx: Any, inputs: Any, training: bool = False, count_weights: Any = None,
                **kwargs) -> Any:
        if count_weights is not None and self.output_mode != "count":
            raise ValueError(f"CategoryEncoding: `count_weights` is used only with output_mode='count'. "
                             f"Received count_weights={count_weights}")
        if count_weights is not None:
            count_weights = np.asarray(count_weights, dtype=self.compute_dtype)
        return encode_categorical(inputs, self.output_mode, self.num_tokens, self.compute_dtype,
                                  count_weights=count_weights,
                                  layer_name=f'Layer "{self.name}" (CategoryEncoding)')

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape:
        shape = tuple(input_shape)
        if len(shape) == 0:
            return (self.num_tokens,)
        if self.output_mode == "one_hot":
            if shape[-1] != 1 or len(shape) == 1:
                return shape + (self.num_tokens,)
            return shape[:-1] + (self.num_tokens,)
        return shape[:-1] + (self.num_tokens,)

    def get_config(self) -> Config:
        cfg = super().get_config()
        cfg.update({"num_tokens": self.num_tokens, "output_mode": self.output_mode, "sparse": False})
        return cfg


# ---------------------------------------------------------------------- Hashing
def hash_strings(strings: list, num_bins: int, salt=None) -> np.ndarray:
    """Bins of strings (``str``, hashed as UTF-8, or ``bytes``): FarmHash Fingerprint64 (SipHash-2-4 keyed by ``salt``)
    modulo ``num_bins``, the bins TensorFlow's string hashing gives and Keras uses."""
    from fastnet._kernels import hashing as _hashing

    return _hashing.hash_buckets(strings, int(num_bins), None if salt is None else tuple(salt))


def values_as_bytes(x: np.ndarray) -> list:
    """The strings Keras hashes for an array (``str`` or ``bytes`` objects): strings as they
    are, integers in decimal, floats truncated to integers first."""
    if x.dtype.kind == "f":
        x = x.astype(np.int64)
    if x.dtype.kind in "iub":
        return list(map(str, x.astype(np.int64).ravel().tolist()))
    if x.dtype.kind == "S":
        return x.ravel().tolist()
    return as_string_array(x).ravel().tolist()


class Hashing(PreprocessingLayer):
    """Hashes strings or integers into ``num_bins`` bins, with Keras's hash, so the same
    values land in the same bins as under Keras: FarmHash Fingerprint64 of the value's string
    (integers in decimal, floats truncated to integers first), or SipHash-2-4 keyed by
    ``salt`` when one is given, modulo the number of bins.

    Args:
        num_bins: number of bins; with ``mask_value``, bin 0 is reserved for it.
        mask_value: a value that goes to bin 0 (others to 1..num_bins-1).
        salt: int or pair of ints: use the keyed hash.
        output_mode: "int" (bins, int64), "one_hot", "multi_hot" or "count".
        sparse: must be False.

    Input shape:
        Strings (numpy array, list) or integers, any shape.

    Output shape:
        "int": the input shape; otherwise the last axis is replaced by ``num_bins`` (a
        trailing axis of size 1 for "one_hot").
    """

    def __init__(self, num_bins: int, mask_value: Any = None, salt: int | tuple[int, int] | None = None,
                 output_mode: str = "int", sparse: bool = False, **kwargs) -> None:
        if kwargs.get("dtype") is None:
            kwargs["dtype"] = "int64" if output_mode == "int" else config.floatx()
        super().__init__(**kwargs)
        if num_bins is None or num_bins <= 0:
            raise ValueError(f"Hashing: `num_bins` must be a positive integer. Received: num_bins={num_bins}")
        if output_mode == "int" and self.dtype not in ("int32", "int64"):
            raise ValueError(f"Hashing: with output_mode='int', dtype must be 'int32' or 'int64'. "
                             f"Received: dtype={self.dtype}")
        if output_mode not in ("int", "one_hot", "multi_hot", "count"):
            raise ValueError(f"Hashing: unknown output_mode {output_mode!r}; valid values: "
                             f"['int', 'one_hot', 'multi_hot', 'count']")
        refuse_sparse("Hashing", sparse)
        self.num_bins = int(num_bins)
        self.mask_value = mask_value
        self.output_mode = output_mode
        self.sparse = False
        self.strong_hash = salt is not None
        self.salt = None
        if salt is not None:
            if isinstance(salt, (tuple, list)) and len(salt) == 2:
                self.salt = [int(salt[0]), int(salt[1])]
            elif isinstance(salt, (int, np.integer)):
                self.salt = [int(salt), int(salt)]
            else:
                raise ValueError(f"Hashing: `salt` must be an int or a pair of ints. Received: salt={salt}")

    def _prepare(self, inputs):
        x = np.asarray(inputs)
        if x.dtype.kind not in "fiubUSO":
            raise TypeError(f'Layer "{self.name}" (Hashing) expects strings or numbers, received dtype {x.dtype}')
        if x.dtype.kind == "O":
            x = as_string_array(x)
        return x

    def hash_bins(self, x: np.ndarray) -> np.ndarray:
        """The bin of every element of ``x`` (int64, same shape)."""
        bins = self.num_bins
        mask = None
        if self.mask_value is not None and bins > 1:
            bins -= 1
            mv = self.mask_value
            if x.dtype.kind in "US":
                mask = as_string_array(x) == (mv.decode() if isinstance(mv, bytes) else mv)
            else:
                mask = x == mv
        out = hash_strings(values_as_bytes(x), bins, self.salt).reshape(x.shape)
        if mask is not None:
            out += 1
            out[mask] = 0
        return out

    def forward(self, ctx: Any, inputs: Any, training: bool = False, **kwargs) -> Any:
        x = inputs
        if self.output_mode == "one_hot" and x.ndim > 0 and x.shape[-1] == 1:
            x = x[..., 0]
        idx = self.hash_bins(x)
        return encode_categorical(idx, self.output_mode, self.num_bins, self.dtype,
                                  layer_name=f'Layer "{self.name}" (Hashing)')

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape:
        shape = tuple(input_shape)
        if self.output_mode == "int":
            return shape
        if len(shape) == 0:
            return (self.num_bins,)
        return shape[:-1] + (self.num_bins,)

    @property
    def output_dtype(self) -> str:
        return self.dtype

    def get_config(self) -> Config:
        cfg = super().get_config()
        cfg.update({"num_bins": self.num_bins, "salt": self.salt, "mask_value": self.mask_value,
                    "output_mode": self.output_mode, "sparse": False})
        return cfg
