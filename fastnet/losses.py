"""Loss functions and loss classes, as in ``keras.losses``.

Functions (``losses.mean_squared_error(y_true, y_pred)``) return one loss per
sample, like Keras: the last axis is reduced, so predictions of shape ``(N, C)``
give an array of shape ``(N,)``. Classes (``losses.MeanSquaredError()``) are
callables that also weight and reduce: ``loss(y_true, y_pred, sample_weight)``
returns a float (or the per-sample array with ``reduction="none"``).

Every built-in loss is computed by one compiled kernel that returns the value and
its gradient with respect to the predictions in a single pass, which is what the
training loop calls once per batch::

    >>> import numpy as np
    >>> from fastnet import losses
    >>> loss = losses.get("binary_crossentropy")
    >>> y = np.array([[0.0], [1.0]], dtype=np.float32)
    >>> p = np.array([[0.2], [0.7]], dtype=np.float32)
    >>> value, dp = loss.value_and_grad(y, p)
    >>> round(value, 4), dp.shape
    (0.2899, (2, 1))

Probabilities are clipped to ``[epsilon, 1 - epsilon]`` (``fastnet.config.epsilon()``,
1e-7) and the gradient is zero where the clip is active. When the model's last
activation is a sigmoid (binary) or a softmax (categorical, sparse categorical),
the training loop can instead call :meth:`Loss.value_and_grad_from_logits`, which
computes these crossentropies from the logits, stably and without clipping, as
Keras does on its TensorFlow backend.

Reductions: ``"sum_over_batch_size"`` (default, alias ``"mean"``) divides the
weighted sum by the number of per-sample losses; ``"sum"``; ``"mean_with_sample_weight"``
divides by the sum of the sample weights; ``"none"``/``None`` does not reduce.
"""
from __future__ import annotations

import inspect
from typing import TYPE_CHECKING

import numpy as np

from fastnet import backend, config
from fastnet.ops import autodiff

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

    from fastnet._typing import ArrayLike, Config, CustomObjects, DTypeLike, ShapeLike

__all__ = [
    "Loss", "LossFunctionWrapper", "MeanSquaredError", "MeanAbsoluteError",
    "MeanAbsolutePercentageError", "MeanSquaredLogarithmicError", "CosineSimilarity", "Huber",
    "LogCosh", "Hinge", "SquaredHinge", "CategoricalHinge", "KLDivergence", "Poisson",
    "BinaryCrossentropy", "CategoricalCrossentropy", "SparseCategoricalCrossentropy",
    "mean_squared_error", "mean_absolute_error", "mean_absolute_percentage_error",
    "mean_squared_logarithmic_error", "cosine_similarity", "huber", "log_cosh", "hinge",
    "squared_hinge", "categorical_hinge", "kl_divergence", "poisson", "binary_crossentropy",
    "categorical_crossentropy", "sparse_categorical_crossentropy",
    "mse", "mae", "mape", "msle", "kld", "MSE", "MAE", "MAPE", "MSLE", "KLD", "logcosh",
    "kullback_leibler_divergence", "get", "serialize", "deserialize", "resolve",
]

_REDUCTIONS = ("sum_over_batch_size", "sum", None, "none", "mean", "mean_with_sample_weight")
_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)
_I64 = np.dtype(np.int64)

_K = None
_CODES = None
# The loss kernel's float32 and float64 specialisations by dtype character: calling one
# directly skips the fused function's dispatch on the arguments' types.
_LOSS: dict[str, Any] = {}


def _kernels():
    global _K, _CODES
    if _K is None:
        from fastnet._kernels import losses as k
        _CODES = k.codes()
        _LOSS.update(f=k.loss["float"], d=k.loss["double"])
        _K = k
    return _K


def _code(name):
    _kernels()
    return _CODES[name]


def _shape_str(shape):
    shape = tuple(shape)
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def standardize_reduction(reduction: str | None) -> str | None:
    if reduction not in _REDUCTIONS:
        raise ValueError(
            f"Invalid value for argument `reduction`. Expected one of {list(_REDUCTIONS)}. "
            f"Received: reduction={reduction!r}")
    return reduction


def _float_array(x, dtype):
    """x as a C-contiguous float32/float64 array (ints and lists become ``dtype``)."""
    if type(x) is np.ndarray:
        ch = x.dtype.char
        if ch == "f" or ch == "d":
            return x if x.flags.c_contiguous else np.ascontiguousarray(x)
        return np.ascontiguousarray(x, dtype=dtype)
    x = np.asarray(x)
    if x.dtype.char not in "fd":
        x = x.astype(dtype)
    return np.ascontiguousarray(x)


def _squeeze_or_expand(t, p):
    """Keras's rank matching of y_true and y_pred: when their ranks differ by one and
    the longer one ends in a size-1 axis, squeeze it (or expand a rank-1 partner)."""
    rt, rp = t.ndim, p.ndim
    if rt == rp:
        return t, p
    if rt == rp + 1 and t.shape[-1] == 1:
        if rp == 1:
            p = p.reshape(p.shape + (1,))
        else:
            t = t.reshape(t.shape[:-1])
    elif rp == rt + 1 and p.shape[-1] == 1:
        if rt == 1:
            t = t.reshape(t.shape + (1,))
        else:
            p = p.reshape(p.shape[:-1])
    return t, p


def _row_weights(loss_name, sample_weight, vshape, n_rows):
    """The sample weights as one float64 weight per per-sample loss (shape vshape)."""
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.shape == vshape:
        return w.reshape(-1) if w.ndim != 1 else (w if w.flags.c_contiguous else w.copy())
    # rank matching as Keras does it, then broadcasting aligned on the leading (batch) axes
    if w.ndim == len(vshape) + 1 and w.shape[-1] == 1:
        w = w.reshape(w.shape[:-1])
    elif len(vshape) == w.ndim + 1 and vshape[-1] == 1:
        w = w.reshape(w.shape + (1,))
    if w.ndim < len(vshape):
        w = w.reshape(w.shape + (1,) * (len(vshape) - w.ndim))
    try:
        w = np.broadcast_to(w, vshape)
    except ValueError:
        raise ValueError(
            f'Loss "{loss_name}": sample_weight of shape {_shape_str(np.shape(sample_weight))} does not '
            f"match the per-sample losses of shape {_shape_str(vshape)}") from None
    return np.ascontiguousarray(w).reshape(n_rows)


# ============================================================================ base class

class Loss:
    """Base class of losses.

    Subclasses implement ``call(y_true, y_pred)`` returning one loss per sample; the
    base class applies sample weights and the reduction. For training, a subclass may
    also implement ``call_grad(y_true, y_pred) -> (values, grads)`` where
    ``grads[i, ...]`` is the derivative of ``values[i]`` with respect to
    ``y_pred[i, ...]``; without it, :meth:`value_and_grad` records ``call`` on a
    :class:`fastnet.ops.autodiff.Tape` (y_pred traced) and takes the exact gradient,
    so ``call`` must be written with ``fastnet.ops`` (or numpy functions applied to
    y_pred, which route to them).

    Args:
        name: name of the loss instance.
        reduction: ``"sum_over_batch_size"`` (default), ``"sum"``, ``"mean"``,
            ``"mean_with_sample_weight"``, ``"none"`` or None.
        dtype: float type of the computation when the inputs are not float arrays
            (default ``fastnet.config.floatx()``).
    """

    supports_logits_fusion = False
    # The output activation whose logits the fused form takes ("sigmoid" or "softmax").
    logits_activation: str | None = None

    def __init__(self, name: str | None = None, reduction: str | None = "sum_over_batch_size",
                 dtype: DTypeLike | None = None) -> None:
        self.name = name or backend.unique_name(backend.to_snake_case(type(self).__name__))
        self.reduction = standardize_reduction(reduction)
        if dtype is not None and np.dtype(dtype).name not in ("float32", "float64"):
            raise ValueError(f"Loss dtype must be 'float32' or 'float64', received {dtype!r}")
        self._dtype = None if dtype is None else np.dtype(dtype).name

    @property
    def dtype(self) -> str:
        return self._dtype or config.floatx()

    # ------------------------------------------------------------------ public API
    def call(self, y_true: ArrayLike, y_pred: ArrayLike) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} must implement call(y_true, y_pred)")

    def __call__(self, y_true: ArrayLike, y_pred: ArrayLike, sample_weight: ArrayLike | None = None,
                 mask: ArrayLike | None = None) -> np.floating | np.ndarray:
        """The weighted, reduced loss: a float, or the per-sample array for reduction 'none'."""
        p = _float_array(y_pred, self.dtype)
        t = _float_array(y_true, p.dtype)
        values = np.asarray(self.call(t, p), dtype=np.float64)
        return _reduce_values(self, values, sample_weight, mask, p.dtype)

    def value_and_grad(self, y_true: ArrayLike, y_pred: ArrayLike, sample_weight: ArrayLike | None = None,
                       mask: ArrayLike | None = None,
                       out: np.ndarray | None = None) -> tuple[np.floating | np.ndarray, np.ndarray]:
        """(value, dy_pred): the reduced loss and its gradient w.r.t. y_pred (same shape
        and dtype as y_pred). With reduction 'none' the value is the sum of the per-sample
        losses, as a training step that sums them. ``mask`` (per-sample booleans) drops
        entries as a Keras mask does; ``out`` may receive the gradient."""
        v, dy = _generic_value_and_grad(self, y_true, y_pred, sample_weight, mask)
        if out is not None:
            np.copyto(out, dy.reshape(out.shape))
            dy = out
        return v, dy

    def value_and_grad_from_logits(self, y_true: ArrayLike, logits: np.ndarray, sample_weight: ArrayLike | None = None,
                                   mask: ArrayLike | None = None, probs: np.ndarray | None = None,
                                   out: np.ndarray | None = None) -> tuple[np.floating | np.ndarray, np.ndarray]:
        raise ValueError(
            f'Loss "{self.name}" ({type(self).__name__}) cannot be computed from logits; only '
            "BinaryCrossentropy, CategoricalCrossentropy and SparseCategoricalCrossentropy with "
            "from_logits=False support it (check `supports_logits_fusion`).")

    def validate(self, y_true: ArrayLike, y_pred_shape: ShapeLike) -> None:
        """Checks once that targets of this shape and content can be used with model
        outputs of shape ``y_pred_shape`` (batch axis may be None); raises ValueError."""
        y = _validate_common(self, y_true, y_pred_shape)
        _check_broadcastable(self, y, tuple(y_pred_shape), strict=False)

    def get_config(self) -> Config:
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config: Config) -> Loss:
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}>"


def _reduce_values(loss, values, sample_weight, mask, out_dtype):
    """Keras's weighting and reduction of per-sample values (numpy; generic path)."""
    red = loss.reduction
    n = values.size
    vshape = values.shape
    w = None
    n_valid = n
    if mask is not None:
        m = np.broadcast_to(np.asarray(mask, dtype=np.float64).reshape(
            np.shape(mask) + (1,) * max(0, values.ndim - np.ndim(mask))), vshape).reshape(-1)
        n_valid = float(m.sum())
        w = m
    if sample_weight is not None:
        sw = _row_weights(loss.name, sample_weight, vshape, n)
        w = sw if w is None else w * sw
    flat = values.reshape(-1)
    if w is not None:
        flat = flat * w
    if red is None or red == "none":
        return flat.reshape(vshape).astype(out_dtype)
    total = float(flat.sum())
    if red == "sum":
        return total
    if red == "mean_with_sample_weight" and w is not None:
        den = float(w.sum())
    else:
        den = n_valid
    return total / den if den else 0.0


def _generic_value_and_grad(loss, y_true, y_pred, sample_weight, mask):
    """value_and_grad for losses defined by Python code: call_grad when the loss has
    it, else central differences of call() in float64."""
    p_in = _float_array(y_pred, loss.dtype)
    t = _float_array(y_true, p_in.dtype)
    call_grad = getattr(loss, "call_grad", None)
    tape = traced = None
    if call_grad is not None:
        values, grads = call_grad(t, p_in)
        values = np.asarray(values, dtype=np.float64)
        grads = np.asarray(grads, dtype=np.float64).reshape(p_in.shape)
    else:
        # call() written with fastnet.ops (or numpy functions on the traced prediction):
        # record it and take the exact vector-Jacobian product below
        tape, traced, values_t = _record_call(loss, t, p_in)
        values = np.asarray(autodiff.unwrap(values_t), dtype=np.float64)
    red = loss.reduction
    vshape = values.shape
    n = values.size
    w = np.ones(n)
    n_valid = n
    if mask is not None:
        w = np.broadcast_to(np.asarray(mask, dtype=np.float64).reshape(
            np.shape(mask) + (1,) * max(0, values.ndim - np.ndim(mask))), vshape).reshape(-1).copy()
        n_valid = float(w.sum())
    if sample_weight is not None:
        w = w * _row_weights(loss.name, sample_weight, vshape, n)
    if red in ("sum", None, "none"):
        scale = 1.0
    elif red == "mean_with_sample_weight" and (sample_weight is not None or mask is not None):
        s = float(w.sum())
        scale = 1.0 / s if s else 0.0
    else:
        scale = 1.0 / n_valid if n_valid else 0.0
    value = float((values.reshape(-1) * w).sum() * scale)
    if tape is not None:
        cot = (w * scale).reshape(vshape)
        (g,), _ = tape.gradient(values_t, cot, inputs=[traced])
        return value, g.reshape(p_in.shape)
    # each per-sample loss depends on its own slice of y_pred
    if vshape == p_in.shape[:values.ndim] and values.ndim:
        g = grads.reshape(n, -1) * (w * scale)[:, None]
    else:
        g = grads * (w.sum() * scale / max(n, 1))
    return value, g.reshape(p_in.shape).astype(p_in.dtype)


def _record_call(loss, t, p_in):
    """Runs ``loss.call(y_true, y_pred)`` on a tape that traces y_pred; returns
    (tape, traced y_pred, traced per-sample values)."""
    tape = autodiff.Tape(persistent=False)
    with tape:
        traced = tape.watch(p_in)
        values_t = loss.call(t, traced)
    if not isinstance(values_t, autodiff.Tracer) and np.size(autodiff.unwrap(values_t)):
        raise TypeError(
            f'Loss "{loss.name}" ({type(loss).__name__}): call(y_true, y_pred) returned values that do not '
            "depend on y_pred through fastnet.ops, so they cannot be differentiated; write the loss with "
            "fastnet.ops (keras.ops) functions, or define call_grad(y_true, y_pred) -> (values, grads)")
    return tape, traced, values_t


# ============================================================================ built-in losses

class _Builtin(Loss):
    """A loss computed by the compiled kernel (value and gradient fused)."""

    _kind = "elem"          # "elem", "row" or "sparse"
    _strict_shape = False   # y_true must have y_pred's shape exactly (no broadcasting)

    def _setup(self, code, param=0.0, axis=-1, logits_code=None):
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise ValueError(f"`axis` must be of type `int`. Received: axis={axis!r} of type {type(axis)}")
        self._kcode = _code(code)
        self._param = float(param)
        self._kaxis = int(axis)
        self._logits_code = None if logits_code is None else _code(logits_code)
        self._logits_code_p = None if logits_code is None else _code(logits_code + "_p")

    def call(self, y_true: ArrayLike, y_pred: ArrayLike) -> np.ndarray:
        return self._per_sample(y_true, y_pred)

    # ------------------------------------------------------------------ core
    def _run(self, y_true, y_pred, sample_weight, mask, grad, values, code=None, reduce=True, q=None,
             meta=False):
        """Returns (value, dy or None, per-sample values or None), plus (per-sample shape,
        total weight of the counted per-sample losses) when meta is true."""
        p = y_pred
        if type(p) is not np.ndarray or not p.flags.c_contiguous or (p.dtype.char != "f" and p.dtype.char != "d"):
            p = _float_array(p, self.dtype)
        if p.ndim == 0:
            raise ValueError(f'Loss "{self.name}" expects predictions of rank >= 1, received a scalar')
        p_shape = p.shape
        code = self._kcode if code is None else code
        kind = "sparse" if code >= 30 else self._kind
        axis = self._kaxis
        moved = axis != -1 and axis != p.ndim - 1
        t = y_true
        if kind == "sparse":
            labels, p = self._labels(t, p, moved, axis)
            t = None
        else:
            labels = None
            if type(t) is not np.ndarray:
                t = np.asarray(t)
            if t.shape != p_shape:
                t, p = _squeeze_or_expand(t, p)
                if t.shape != p.shape:
                    t = self._broadcast_true(t, p)
            if t.dtype != p.dtype or not t.flags.c_contiguous:
                t = np.ascontiguousarray(t, dtype=p.dtype)
            if moved:
                if p.ndim == 0 or not -p.ndim <= axis < p.ndim:
                    raise ValueError(f'Loss "{self.name}": axis {axis} is out of range for predictions '
                                     f"of shape {_shape_str(p_shape)}")
                p = np.ascontiguousarray(np.moveaxis(p, axis, -1))
                t = np.ascontiguousarray(np.moveaxis(t, axis, -1))
                if q is not None:
                    q = np.ascontiguousarray(np.moveaxis(q.reshape(p_shape), axis, -1))
        vshape = p.shape[:-1]
        C = p.shape[-1]
        R = p.size // C if C else int(np.prod(vshape))
        if p.ndim != 2:
            p2 = p.reshape(R, C)
            t2 = None if t is None else t.reshape(R, C)
        else:
            p2, t2 = p, t
        if q is not None:
            q = q.reshape(R, C)
        # weights and reduction scale
        w = None
        n_valid = R
        if mask is not None:
            w = _row_weights(self.name, mask, vshape, R)
            n_valid = float(w.sum())
        if kind == "sparse" and self._ignore is not None:
            valid = labels != self._ignore
            n_valid = int(np.count_nonzero(valid)) if w is None else float((w * valid).sum())
        if sample_weight is not None:
            if not vshape and np.size(sample_weight) > 1 and mask is None:
                # one loss for the whole array (1-D predictions) times a weight per element,
                # reduced over the weights as Keras broadcasts them
                sw = np.asarray(sample_weight, dtype=np.float64).reshape(-1)
                n_valid = sw.size
                if not reduce or self.reduction in ("sum", None, "none"):
                    pass
                elif self.reduction == "mean_with_sample_weight":
                    n_valid = float(sw.sum())
                sw = np.array([sw.sum()])
            else:
                sw = _row_weights(self.name, sample_weight, vshape, R)
            w = sw if w is None else w * sw
        red = self.reduction
        if not reduce or red == "sum" or red is None or red == "none":
            scale = 1.0
        elif red == "mean_with_sample_weight" and w is not None and vshape:
            if kind == "sparse" and self._ignore is not None:
                s = float((w * (labels != self._ignore)).sum())
            else:
                s = float(w.sum())
            scale = 1.0 / s if s else 0.0
        else:
            scale = 1.0 / n_valid if n_valid else 0.0
        dy = np.empty_like(p2) if grad else None
        per = np.empty(R, dtype=p2.dtype) if values else None
        if R == 0 or C == 0:
            if dy is not None:
                dy.fill(0)
            if per is not None:
                per.fill(0)
            v = 0.0
        else:
            ig = self._ignore
            v = _LOSS[p2.dtype.char](code, p2, t2, labels, w, scale, dy, per, self._param, config._EPSILON,
                                      config._n_threads, ig is not None, 0 if ig is None else ig, q)
        if dy is not None:
            if moved:
                dy = np.ascontiguousarray(np.moveaxis(dy.reshape(p.shape), -1, axis))
            if dy.shape != p_shape:
                dy = dy.reshape(p_shape)
        if per is not None:
            per = per.reshape(vshape)
        if meta:
            if kind == "sparse" and self._ignore is not None:
                valid = labels != self._ignore
                weight = float(np.count_nonzero(valid)) if w is None else float((w * valid).sum())
            else:
                weight = float(R) if w is None else float(w.sum())
            return v, dy, per, (vshape, weight)
        return v, dy, per

    _ignore: int | None = None

    def _labels(self, t, p, moved, axis):
        if moved:
            raise ValueError(f"Only axis=-1 is currently supported. Received: axis={axis}")
        if type(t) is not np.ndarray:
            t = np.asarray(t)
        if t.ndim == p.ndim and t.ndim and t.shape[-1] == 1:
            t = t.reshape(t.shape[:-1])
        if t.shape != p.shape[:-1]:
            if t.ndim == p.ndim and t.shape[-1] == p.shape[-1] and t.shape[-1] > 1:
                raise ValueError(
                    f'Loss "{self.name}" ({type(self).__name__}) expects integer class labels of shape '
                    f"{_shape_str(p.shape[:-1])}, received y_true of shape {_shape_str(t.shape)} which looks "
                    "one-hot encoded; use categorical_crossentropy for one-hot targets")
            raise ValueError(
                f'Loss "{self.name}" ({type(self).__name__}): y_true of shape {_shape_str(t.shape)} does not '
                f"match predictions of shape {_shape_str(p.shape)} (expected labels of shape "
                f"{_shape_str(p.shape[:-1])})")
        if t.dtype != _I64 or not t.flags.c_contiguous:
            if t.dtype.kind == "f" and not np.isfinite(t).all():
                raise ValueError(f'Loss "{self.name}": y_true contains NaN or infinite labels')
            t = np.ascontiguousarray(t, dtype=np.int64)
        return t.reshape(-1), p

    def _broadcast_true(self, t, p):
        if not self._strict_shape:
            try:
                return np.broadcast_to(t, p.shape)
            except ValueError:
                pass
        raise ValueError(
            f'Loss "{self.name}" ({type(self).__name__}): y_true of shape {_shape_str(t.shape)} is '
            f"incompatible with y_pred of shape {_shape_str(p.shape)}")

    # ------------------------------------------------------------------ public API
    def __call__(self, y_true: ArrayLike, y_pred: ArrayLike, sample_weight: ArrayLike | None = None,
                 mask: ArrayLike | None = None) -> np.floating | np.ndarray:
        red = self.reduction
        if red is None or red == "none":
            _, _, per = self._run(y_true, y_pred, sample_weight, mask, False, True)
            return per
        v, _, _ = self._run(y_true, y_pred, sample_weight, mask, False, False)
        return v

    def _per_sample(self, y_true, y_pred):
        return self._run(y_true, y_pred, None, None, False, True)[2]

    def _fast(self, t, p, code, q, out):
        """The common training case in one kernel call, or None when the inputs need the
        general path: 2-D C-contiguous float y_pred, y_true of the same shape and dtype
        (int64 labels of shape (N,) for sparse codes), no weights, axis -1."""
        if type(p) is not np.ndarray or type(t) is not np.ndarray or p.ndim != 2:
            return None
        ch = p.dtype.char
        if (ch != "f" and ch != "d") or not p.flags.c_contiguous or not t.flags.c_contiguous:
            return None
        if code >= 30:
            if t.ndim != 1 or t.dtype != _I64 or t.shape[0] != p.shape[0] or self._ignore is not None:
                return None
        elif t.shape != p.shape or t.dtype != p.dtype or (self._kaxis != -1 and self._kaxis != 1):
            return None
        R, C = p.shape
        if R == 0 or C == 0:
            return None
        red = self.reduction
        scale = 1.0 / R if (red == "sum_over_batch_size" or red == "mean" or
                            red == "mean_with_sample_weight") else 1.0
        if out is None:
            dy = np.empty_like(p)
        else:
            dy = out
        if code >= 30:
            v = _LOSS[ch](
                code, p, None, t, None, scale, dy, None, self._param, config._EPSILON,
                config._n_threads, False, 0, q)
        else:
            v = _LOSS[ch](
                code, p, t, None, None, scale, dy, None, self._param, config._EPSILON,
                config._n_threads, False, 0, q)
        return v, dy

    def value_and_grad(self, y_true: ArrayLike, y_pred: ArrayLike, sample_weight: ArrayLike | None = None,
                       mask: ArrayLike | None = None,
                       out: np.ndarray | None = None) -> tuple[np.floating | np.ndarray, np.ndarray]:
        """(value, dy_pred) in one compiled pass. ``out`` may be a reusable array of
        y_pred's shape and dtype that receives the gradient."""
        if sample_weight is None and mask is None:
            r = self._fast(y_true, y_pred, self._kcode, None, out)
            if r is not None:
                return r
        v, dy, _ = self._run(y_true, y_pred, sample_weight, mask, True, False)
        if out is not None:
            np.copyto(out, dy.reshape(out.shape))
            dy = out
        return v, dy

    def value_and_grad_from_logits(self, y_true: ArrayLike, logits: np.ndarray, sample_weight: ArrayLike | None = None,
                                   mask: ArrayLike | None = None, probs: np.ndarray | None = None,
                                   out: np.ndarray | None = None) -> tuple[np.floating | np.ndarray, np.ndarray]:
        """Value and gradient w.r.t. the logits, computed from the logits as Keras does
        when the model ends in a sigmoid (binary) or softmax (categorical) activation.

        ``probs`` may pass that activation's output (same shape as logits): the kernel
        then needs no exponentials.
        """
        if not self.supports_logits_fusion:
            return Loss.value_and_grad_from_logits(self, y_true, logits, sample_weight)
        code = self._logits_code
        q = None
        if probs is not None:
            q = probs
            if (type(q) is not np.ndarray or type(logits) is not np.ndarray or q.shape != logits.shape
                    or q.dtype != logits.dtype or not q.flags.c_contiguous):
                q = np.ascontiguousarray(np.broadcast_to(np.asarray(probs, dtype=getattr(
                    logits, "dtype", None)), np.shape(logits)))
            code = self._logits_code_p
        if sample_weight is None and mask is None:
            r = self._fast(y_true, logits, code, q, out)
            if r is not None:
                return r
        v, dy, _ = self._run(y_true, logits, sample_weight, mask, True, False, code=code, q=q)
        if out is not None:
            np.copyto(out, dy.reshape(out.shape))
            dy = out
        return v, dy

    def validate(self, y_true: ArrayLike, y_pred_shape: ShapeLike) -> None:
        y = _validate_common(self, y_true, y_pred_shape)
        _check_broadcastable(self, y, tuple(y_pred_shape), strict=self._strict_shape)


def _validate_common(loss, y_true, y_pred_shape):
    y = np.asarray(y_true)
    shape = tuple(y_pred_shape)
    if y.dtype.kind not in "biuf":
        raise ValueError(
            f'Loss "{loss.name}" ({type(loss).__name__}) needs numeric targets; received y of dtype '
            f"{y.dtype} and shape {_shape_str(y.shape)} for model output shape {_shape_str(shape)}")
    if y.dtype.kind == "f":
        bad = ~np.isfinite(y)
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(
                f'Loss "{loss.name}" ({type(loss).__name__}): y of shape {_shape_str(y.shape)} contains '
                f"NaN or infinite values (first at index {idx}); model output shape {_shape_str(shape)}")
    if len(shape) == 0:
        raise ValueError(f'Loss "{loss.name}" ({type(loss).__name__}) needs a model output of rank >= 1, '
                         f"received output shape {_shape_str(shape)}")
    if y.ndim and shape[0] is not None and y.shape[0] != shape[0]:
        raise ValueError(
            f'Loss "{loss.name}" ({type(loss).__name__}): y of shape {_shape_str(y.shape)} has '
            f"{y.shape[0]} samples but the model output shape is {_shape_str(shape)}")
    return y


def _dims_match(a, b):
    return len(a) == len(b) and all(x is None or z is None or x == z for x, z in zip(a, b))


def _match_rank_shapes(t_shape, p_shape):
    """_squeeze_or_expand on shapes."""
    rt, rp = len(t_shape), len(p_shape)
    if rt == rp + 1 and t_shape[-1] == 1:
        if rp == 1:
            p_shape = p_shape + (1,)
        else:
            t_shape = t_shape[:-1]
    elif rp == rt + 1 and p_shape[-1] == 1:
        if rt == 1:
            t_shape = t_shape + (1,)
        else:
            p_shape = p_shape[:-1]
    return t_shape, p_shape


def _check_broadcastable(loss, y, p_shape, strict):
    """y must have the output's shape (sample axis first); non-strict losses also accept
    size-1 axes in y, which broadcast."""
    t_shape, q_shape = _match_rank_shapes(tuple(y.shape), tuple(p_shape))
    if len(t_shape) == len(q_shape) and all(
            b is None or a == b or (not strict and a == 1 and i > 0)
            for i, (a, b) in enumerate(zip(t_shape, q_shape))):
        return
    hint = ""
    n_out = p_shape[-1] if p_shape else None
    if isinstance(loss, (CategoricalCrossentropy, BinaryCrossentropy)) and (n_out or 0) > 1 and (
            y.ndim == len(p_shape) - 1 or (y.ndim == len(p_shape) and y.shape[-1] == 1)):
        hint = ("; y looks like integer class labels: use sparse_categorical_crossentropy, or "
                "one-hot encode y")
    raise ValueError(
        f'Loss "{loss.name}" ({type(loss).__name__}) cannot compare y of shape {_shape_str(y.shape)} '
        f"with the model output shape {_shape_str(tuple(p_shape))}{hint}")


# ---------------------------------------------------------------------------- classes

class MeanSquaredError(_Builtin):
    """mean(square(y_true - y_pred), axis=-1)."""

    def __init__(self, reduction: str | None = "sum_over_batch_size", name: str = "mean_squared_error",
                 dtype: DTypeLike | None = None) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self._setup("mse")


class MeanAbsoluteError(_Builtin):
    """mean(abs(y_true - y_pred), axis=-1)."""

    def __init__(self, reduction: str | None = "sum_over_batch_size", name: str = "mean_absolute_error",
                 dtype: DTypeLike | None = None) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self._setup("mae")


class MeanAbsolutePercentageError(_Builtin):
    """100 * mean(abs((y_true - y_pred) / maximum(abs(y_true), epsilon)), axis=-1)."""

    def __init__(self, reduction: str | None = "sum_over_batch_size", name: str = "mean_absolute_percentage_error",
                 dtype: DTypeLike | None = None) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self._setup("mape")


class MeanSquaredLogarithmicError(_Builtin):
    """mean(square(log(maximum(y_pred, eps) + 1) - log(maximum(y_true, eps) + 1)), axis=-1)."""

    def __init__(self, reduction: str | None = "sum_over_batch_size", name: str = "mean_squared_logarithmic_error",
                 dtype: DTypeLike | None = None) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self._setup("msle")


class CosineSimilarity(_Builtin):
    """-sum(l2_normalize(y_true) * l2_normalize(y_pred), axis): -1 for aligned vectors."""

    _kind = "row"

    def __init__(self, axis: int | Sequence[int] = -1, reduction: str | None = "sum_over_batch_size",
                 name: str = "cosine_similarity", dtype: DTypeLike | None = None) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.axis = axis
        self._setup("cosine", axis=axis)

    def get_config(self) -> Config:
        return {**super().get_config(), "axis": self.axis}


class Huber(_Builtin):
    """``mean(0.5 e^2 where |e| <= delta else delta |e| - 0.5 delta^2)``, ``e = y_pred - y_true``."""

    def __init__(self, delta: float = 1.0, reduction: str | None = "sum_over_batch_size", name: str = "huber_loss",
                 dtype: DTypeLike | None = None) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.delta = float(delta)
        self._setup("huber", param=delta)

    def get_config(self) -> Config:
        return {**super().get_config(), "delta": self.delta}


class LogCosh(_Builtin):
    """mean(log(cosh(y_pred - y_true)), axis=-1)."""

    def __init__(self, reduction: str | None = "sum_over_batch_size", name: str = "log_cosh",
                 dtype: DTypeLike | None = None) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self._setup("log_cosh")


class Hinge(_Builtin):
    """mean(maximum(1 - y_true * y_pred, 0), axis=-1); binary 0/1 labels become -1/1."""

    def __init__(self, reduction: str | None = "sum_over_batch_size", name: str = "hinge",
                 dtype: DTypeLike | None = None) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self._setup("hinge")


class SquaredHinge(_Builtin):
    """mean(square(maximum(1 - y_true * y_pred, 0)), axis=-1); 0/1 labels become -1/1."""

    def __init__(self, reduction: str | None = "sum_over_batch_size", name: str = "squared_hinge",
                 dtype: DTypeLike | None = None) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self._setup("squared_hinge")


class CategoricalHinge(_Builtin):
    """maximum(max((1 - y_true) * y_pred) - sum(y_true * y_pred) + 1, 0)."""

    _kind = "row"

    def __init__(self, reduction: str | None = "sum_over_batch_size", name: str = "categorical_hinge",
                 dtype: DTypeLike | None = None) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self._setup("categorical_hinge")


class KLDivergence(_Builtin):
    """sum(y_true * log(y_true / y_pred), axis=-1), both clipped to [epsilon, 1]."""

    def __init__(self, reduction: str | None = "sum_over_batch_size", name: str = "kl_divergence",
                 dtype: DTypeLike | None = None) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self._setup("kld")


class Poisson(_Builtin):
    """mean(y_pred - y_true * log(y_pred + epsilon), axis=-1)."""

    def __init__(self, reduction: str | None = "sum_over_batch_size", name: str = "poisson",
                 dtype: DTypeLike | None = None) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self._setup("poisson")


def _check_smoothing(label_smoothing):
    ls = float(label_smoothing)
    if not 0.0 <= ls <= 1.0:
        raise ValueError(f"`label_smoothing` must be in [0, 1], received {label_smoothing!r}")
    return ls


class BinaryCrossentropy(_Builtin):
    """Binary crossentropy, averaged over the last axis (``axis``).

    Args:
        from_logits: y_pred holds logits rather than probabilities.
        label_smoothing: in [0, 1]; targets become ``y * (1 - s) + s / 2``.
        axis: the axis averaged over.
    """

    _strict_shape = True

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0, axis: int | Sequence[int] = -1,
                 reduction: str | None = "sum_over_batch_size", name: str = "binary_crossentropy",
                 dtype: DTypeLike | None = None) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.from_logits = bool(from_logits)
        self.label_smoothing = _check_smoothing(label_smoothing)
        self.axis = axis
        self.supports_logits_fusion = not self.from_logits
        self.logits_activation = "sigmoid"
        self._setup("bce_logits" if self.from_logits else "bce", self.label_smoothing, axis,
                    logits_code="bce_logits")

    def get_config(self) -> Config:
        return {**super().get_config(), "from_logits": self.from_logits,
                "label_smoothing": self.label_smoothing, "axis": self.axis}


class CategoricalCrossentropy(_Builtin):
    """Categorical crossentropy between one-hot (or soft) targets and predictions.

    Probabilities are first normalised to sum to 1 along ``axis``, then clipped.

    Args:
        from_logits: y_pred holds logits rather than probabilities.
        label_smoothing: in [0, 1]; targets become ``y * (1 - s) + s / num_classes``.
        axis: the class axis.
    """

    _kind = "row"
    _strict_shape = True

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0, axis: int | Sequence[int] = -1,
                 reduction: str | None = "sum_over_batch_size", name: str = "categorical_crossentropy",
                 dtype: DTypeLike | None = None) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.from_logits = bool(from_logits)
        self.label_smoothing = _check_smoothing(label_smoothing)
        self.axis = axis
        self.supports_logits_fusion = not self.from_logits
        self.logits_activation = "softmax"
        self._setup("cce_logits" if self.from_logits else "cce", self.label_smoothing, axis,
                    logits_code="cce_logits")

    def get_config(self) -> Config:
        return {**super().get_config(), "from_logits": self.from_logits,
                "label_smoothing": self.label_smoothing, "axis": self.axis}


class SparseCategoricalCrossentropy(_Builtin):
    """Categorical crossentropy with integer class labels (shape ``(N,)`` or ``(N, 1)``).

    Args:
        from_logits: y_pred holds logits rather than probabilities.
        ignore_class: a label value whose samples contribute nothing (and are not
            counted by the 'sum_over_batch_size' reduction), e.g. -1 or 255.
    """

    _kind = "sparse"

    def __init__(self, from_logits: bool = False, ignore_class: int | None = None,
                 reduction: str | None = "sum_over_batch_size", name: str = "sparse_categorical_crossentropy",
                 dtype: DTypeLike | None = None, axis: int | Sequence[int] = -1) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.from_logits = bool(from_logits)
        self.ignore_class = None if ignore_class is None else int(ignore_class)
        self._ignore = self.ignore_class
        self.supports_logits_fusion = not self.from_logits
        self.logits_activation = "softmax"
        self._setup("scce_logits" if self.from_logits else "scce", 0.0, axis, logits_code="scce_logits")

    def get_config(self) -> Config:
        return {**super().get_config(), "from_logits": self.from_logits,
                "ignore_class": self.ignore_class}

    def validate(self, y_true: ArrayLike, y_pred_shape: ShapeLike) -> None:
        y = _validate_common(self, y_true, y_pred_shape)
        shape = tuple(y_pred_shape)
        n_classes = shape[-1]
        who = f'Loss "{self.name}" ({type(self).__name__})'
        t_shape = y.shape
        if y.ndim == len(shape) and y.ndim and t_shape[-1] == 1:
            t_shape = t_shape[:-1]
        if not _dims_match(t_shape, shape[:-1]):
            if y.ndim == len(shape) and y.ndim and y.shape[-1] == n_classes and (n_classes or 0) > 1:
                raise ValueError(
                    f"{who} expects integer class labels, but y of shape {_shape_str(y.shape)} looks "
                    f"one-hot encoded for the model output shape {_shape_str(shape)}; use "
                    "categorical_crossentropy with one-hot targets, or pass class indices")
            raise ValueError(
                f"{who}: y of shape {_shape_str(y.shape)} does not fit the model output shape "
                f"{_shape_str(shape)}; expected class labels of shape {_shape_str(shape[:-1])} "
                f"or {_shape_str(shape[:-1] + (1,))}")
        if y.size == 0:
            return
        if y.dtype.kind == "f" and not np.array_equal(y, np.floor(y)):
            raise ValueError(f"{who}: y of shape {_shape_str(y.shape)} holds non-integer values; class "
                             f"labels must be whole numbers in [0, {n_classes}) for the model output shape "
                             f"{_shape_str(shape)}")
        vals = y if self.ignore_class is None else y[y != self.ignore_class]
        if vals.size == 0:
            return
        lo, hi = vals.min(), vals.max()
        if lo < 0 or (n_classes is not None and hi >= n_classes):
            raise ValueError(
                f"{who}: y of shape {_shape_str(y.shape)} holds class labels in [{lo:g}, {hi:g}] but the "
                f"model output shape {_shape_str(shape)} has {n_classes} classes (labels must be in "
                f"[0, {n_classes}))")


class LossFunctionWrapper(Loss):
    """Wraps a function ``fn(y_true, y_pred, **kwargs)`` returning per-sample losses.

    fastnet's own loss functions keep their fused compiled value-and-gradient path;
    any other function is recorded with its y_pred traced and differentiated exactly
    (see :class:`Loss`).
    """

    def __init__(self, fn: Callable[..., Any], reduction: str | None = "sum_over_batch_size", name: str | None = None,
                 dtype: DTypeLike | None = None, **kwargs) -> None:
        super().__init__(name=name or getattr(fn, "__name__", None), reduction=reduction, dtype=dtype)
        self.fn = fn
        self._fn_kwargs = kwargs
        impl = _FUNCTION_CLASSES.get(fn)
        self._impl = None
        if impl is not None:
            cls, defaults = impl
            kw = {**defaults, **kwargs}
            self._impl = cls(reduction=reduction, name=self.name, dtype=dtype, **kw)
            self.supports_logits_fusion = self._impl.supports_logits_fusion
            self.logits_activation = getattr(self._impl, "logits_activation", None)

    def call(self, y_true: ArrayLike, y_pred: ArrayLike) -> np.ndarray:
        if self._impl is not None:
            return self._impl.call(y_true, y_pred)
        t = np.asarray(y_true)
        p = y_pred if isinstance(y_pred, autodiff.Tracer) else np.asarray(y_pred)
        t, p = _squeeze_or_expand(t, p)
        return self.fn(t, p, **self._fn_kwargs)

    def __call__(self, y_true: ArrayLike, y_pred: ArrayLike, sample_weight: ArrayLike | None = None,
                 mask: ArrayLike | None = None) -> np.floating | np.ndarray:
        if self._impl is not None:
            return self._impl(y_true, y_pred, sample_weight, mask)
        return Loss.__call__(self, y_true, y_pred, sample_weight, mask)

    def value_and_grad(self, y_true: ArrayLike, y_pred: ArrayLike, sample_weight: ArrayLike | None = None,
                       mask: ArrayLike | None = None,
                       out: np.ndarray | None = None) -> tuple[np.floating | np.ndarray, np.ndarray]:
        if self._impl is not None:
            return self._impl.value_and_grad(y_true, y_pred, sample_weight, mask, out)
        return Loss.value_and_grad(self, y_true, y_pred, sample_weight, mask, out)

    def value_and_grad_from_logits(self, y_true: ArrayLike, logits: np.ndarray, sample_weight: ArrayLike | None = None,
                                   mask: ArrayLike | None = None, probs: np.ndarray | None = None,
                                   out: np.ndarray | None = None) -> tuple[np.floating | np.ndarray, np.ndarray]:
        if self._impl is not None:
            return self._impl.value_and_grad_from_logits(y_true, logits, sample_weight, mask, probs, out)
        return Loss.value_and_grad_from_logits(self, y_true, logits, sample_weight, mask)

    def validate(self, y_true: ArrayLike, y_pred_shape: ShapeLike) -> None:
        if self._impl is not None:
            return self._impl.validate(y_true, y_pred_shape)
        return Loss.validate(self, y_true, y_pred_shape)

    @property
    def reduction(self) -> str | None:
        return self._reduction

    @reduction.setter
    def reduction(self, value: str | None) -> None:
        self._reduction = value
        impl = getattr(self, "_impl", None)
        if impl is not None:
            impl.reduction = value

    def get_config(self) -> Config:
        config = super().get_config()
        config["fn"] = serialize(self.fn) if self.fn in _FUNCTION_CLASSES else _serialize_function(self.fn)
        config.update(self._fn_kwargs)
        return config

    @classmethod
    def from_config(cls, config: Config) -> LossFunctionWrapper:
        config = dict(config)
        fn = config.pop("fn", None)
        if isinstance(fn, (dict, str)):
            fn = deserialize(fn)
            if isinstance(fn, Loss):
                fn = getattr(fn, "fn", None) or _CLASS_FUNCTIONS.get(type(fn))
        if not callable(fn):
            raise ValueError(f"{cls.__name__}.from_config: 'fn' must name a loss function, received {fn!r}")
        return cls(fn, **config)

    def __repr__(self):
        return f"<LossFunctionWrapper({getattr(self.fn, '__name__', self.fn)}, kwargs={self._fn_kwargs})>"


# ---------------------------------------------------------------------------- functions

def _fn_instance(cls, **kwargs):
    key = (cls, tuple(sorted(kwargs.items())), config.floatx())
    inst = _FN_CACHE.get(key)
    if inst is None:
        inst = cls(**kwargs)
        _FN_CACHE[key] = inst
    return inst


_FN_CACHE: dict[Any, Any] = {}


def mean_squared_error(y_true: ArrayLike, y_pred: ArrayLike) -> np.ndarray:
    """Per-sample mean squared error over the last axis."""
    return _fn_instance(MeanSquaredError)._per_sample(y_true, y_pred)


def mean_absolute_error(y_true: ArrayLike, y_pred: ArrayLike) -> np.ndarray:
    """Per-sample mean absolute error over the last axis."""
    return _fn_instance(MeanAbsoluteError)._per_sample(y_true, y_pred)


def mean_absolute_percentage_error(y_true: ArrayLike, y_pred: ArrayLike) -> np.ndarray:
    """Per-sample mean absolute percentage error over the last axis."""
    return _fn_instance(MeanAbsolutePercentageError)._per_sample(y_true, y_pred)


def mean_squared_logarithmic_error(y_true: ArrayLike, y_pred: ArrayLike) -> np.ndarray:
    """Per-sample mean squared logarithmic error over the last axis."""
    return _fn_instance(MeanSquaredLogarithmicError)._per_sample(y_true, y_pred)


def cosine_similarity(y_true: ArrayLike, y_pred: ArrayLike, axis: int | Sequence[int] = -1) -> np.ndarray:
    """Per-sample negative cosine similarity along ``axis``."""
    return _fn_instance(CosineSimilarity, axis=axis)._per_sample(y_true, y_pred)


def huber(y_true: ArrayLike, y_pred: ArrayLike, delta: float = 1.0) -> np.ndarray:
    """Per-sample Huber loss over the last axis."""
    return _fn_instance(Huber, delta=float(delta))._per_sample(y_true, y_pred)


def log_cosh(y_true: ArrayLike, y_pred: ArrayLike) -> np.ndarray:
    """Per-sample log-cosh error over the last axis."""
    return _fn_instance(LogCosh)._per_sample(y_true, y_pred)


def hinge(y_true: ArrayLike, y_pred: ArrayLike) -> np.ndarray:
    """Per-sample hinge loss over the last axis."""
    return _fn_instance(Hinge)._per_sample(y_true, y_pred)


def squared_hinge(y_true: ArrayLike, y_pred: ArrayLike) -> np.ndarray:
    """Per-sample squared hinge loss over the last axis."""
    return _fn_instance(SquaredHinge)._per_sample(y_true, y_pred)


def categorical_hinge(y_true: ArrayLike, y_pred: ArrayLike) -> np.ndarray:
    """Per-sample categorical hinge loss."""
    return _fn_instance(CategoricalHinge)._per_sample(y_true, y_pred)


def kl_divergence(y_true: ArrayLike, y_pred: ArrayLike) -> np.ndarray:
    """Per-sample Kullback-Leibler divergence over the last axis."""
    return _fn_instance(KLDivergence)._per_sample(y_true, y_pred)


def poisson(y_true: ArrayLike, y_pred: ArrayLike) -> np.ndarray:
    """Per-sample Poisson loss over the last axis."""
    return _fn_instance(Poisson)._per_sample(y_true, y_pred)


def binary_crossentropy(y_true: ArrayLike, y_pred: ArrayLike, from_logits: bool = False, label_smoothing: float = 0.0,
                        axis: int | Sequence[int] = -1) -> np.ndarray:
    """Per-sample binary crossentropy, averaged over ``axis``."""
    return _fn_instance(BinaryCrossentropy, from_logits=bool(from_logits),
                        label_smoothing=float(label_smoothing), axis=axis)._per_sample(y_true, y_pred)


def categorical_crossentropy(y_true: ArrayLike, y_pred: ArrayLike, from_logits: bool = False,
                             label_smoothing: float = 0.0, axis: int | Sequence[int] = -1) -> np.ndarray:
    """Per-sample categorical crossentropy along the class ``axis``."""
    return _fn_instance(CategoricalCrossentropy, from_logits=bool(from_logits),
                        label_smoothing=float(label_smoothing), axis=axis)._per_sample(y_true, y_pred)


def sparse_categorical_crossentropy(y_true: ArrayLike, y_pred: ArrayLike, from_logits: bool = False,
                                    ignore_class: int | None = None, axis: int | Sequence[int] = -1) -> np.ndarray:
    """Per-sample crossentropy with integer labels (ignored labels give 0)."""
    return _fn_instance(SparseCategoricalCrossentropy, from_logits=bool(from_logits),
                        ignore_class=ignore_class, axis=axis)._per_sample(y_true, y_pred)


# legacy aliases
mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error
mape = MAPE = mean_absolute_percentage_error
msle = MSLE = mean_squared_logarithmic_error
kld = KLD = kullback_leibler_divergence = kl_divergence
logcosh = log_cosh

# function -> (class, default kwargs taken from the function's signature)
_FUNCTION_CLASSES: dict[Callable[..., Any], tuple[type[Loss], dict[str, Any]]] = {
    mean_squared_error: (MeanSquaredError, {}),
    mean_absolute_error: (MeanAbsoluteError, {}),
    mean_absolute_percentage_error: (MeanAbsolutePercentageError, {}),
    mean_squared_logarithmic_error: (MeanSquaredLogarithmicError, {}),
    cosine_similarity: (CosineSimilarity, {}),
    huber: (Huber, {}),
    log_cosh: (LogCosh, {}),
    hinge: (Hinge, {}),
    squared_hinge: (SquaredHinge, {}),
    categorical_hinge: (CategoricalHinge, {}),
    kl_divergence: (KLDivergence, {}),
    poisson: (Poisson, {}),
    binary_crossentropy: (BinaryCrossentropy, {}),
    categorical_crossentropy: (CategoricalCrossentropy, {}),
    sparse_categorical_crossentropy: (SparseCategoricalCrossentropy, {}),
}
_CLASS_FUNCTIONS = {cls: fn for fn, (cls, _) in _FUNCTION_CLASSES.items()}

_CLASSES = (
    Loss, LossFunctionWrapper, KLDivergence, Poisson, BinaryCrossentropy, CategoricalCrossentropy,
    SparseCategoricalCrossentropy, MeanSquaredError, MeanAbsoluteError, MeanAbsolutePercentageError,
    MeanSquaredLogarithmicError, CosineSimilarity, LogCosh, Huber, Hinge, SquaredHinge,
    CategoricalHinge,
)

# Names to loss classes and to loss functions.
ALL_OBJECTS_DICT: dict[str, Any] = {c.__name__: c for c in _CLASSES}
ALL_OBJECTS_DICT.update({f.__name__: f for f in _FUNCTION_CLASSES})
ALL_OBJECTS_DICT.update({
    "bce": binary_crossentropy, "BCE": binary_crossentropy,
    "kld": kl_divergence, "KLD": kl_divergence,
    "mae": mean_absolute_error, "MAE": mean_absolute_error,
    "mse": mean_squared_error, "MSE": mean_squared_error,
    "mape": mean_absolute_percentage_error, "MAPE": mean_absolute_percentage_error,
    "msle": mean_squared_logarithmic_error, "MSLE": mean_squared_logarithmic_error,
    # older spellings
    "logcosh": log_cosh, "kullback_leibler_divergence": kl_divergence,
})


def _valid_names():
    return sorted(k for k in ALL_OBJECTS_DICT if k not in ("Loss", "LossFunctionWrapper"))


# ============================================================================ lookup and config

def _from_function(fn, name=None, **kwargs):
    cls, defaults = _FUNCTION_CLASSES[fn]
    return cls(**{**defaults, **kwargs}, **({"name": name} if name else {}))


def get(identifier: str | Config | Loss | type[Loss] | Callable[..., Any] | None) -> Loss | None:
    """A Loss object from a name, a class, an instance, a config dict or a callable.

    Strings name a loss function (``"mse"``, ``"binary_crossentropy"``: the object is
    named after the string, as in ``compile``) or a class (``"BinaryCrossentropy"``).
    None gives None. Unknown names raise ValueError listing the valid ones.
    """
    if identifier is None:
        return None
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, dict):
        obj = deserialize(identifier)
        return get(obj) if not isinstance(obj, Loss) else obj
    if isinstance(identifier, str):
        obj = ALL_OBJECTS_DICT.get(identifier)
        if obj is None or obj in (Loss,):
            raise ValueError(
                f"Unknown loss {identifier!r}. Valid names: {_valid_names()}")
        if inspect.isclass(obj):
            return _instance(obj)
        return _from_function(obj, name=identifier)
    if inspect.isclass(identifier) and issubclass(identifier, Loss):
        return identifier()
    if callable(identifier):
        if identifier in _FUNCTION_CLASSES:
            return _from_function(identifier, name=identifier.__name__)
        return LossFunctionWrapper(identifier, name=getattr(identifier, "__name__", None))
    raise ValueError(f"Could not interpret loss identifier: {identifier!r}. Expected a name "
                     f"(one of {_valid_names()}), a Loss, a config dict or a callable")


def is_binary_or_sparse_categorical(y_true_shape: ShapeLike, y_pred_shape: ShapeLike) -> tuple[bool, bool]:
    """(is_binary, is_sparse_categorical) as compile() decides them from the shapes of the
    targets and of the model output: binary when the output's last axis has size 1;
    sparse when the targets have a lower rank, or a last axis of 1 against a wider output."""
    t, p = tuple(y_true_shape), tuple(y_pred_shape)
    t_last = t[-1] if t else None
    p_last = p[-1] if p else None
    is_binary = p_last == 1
    is_sparse = len(t) < len(p) or (t_last == 1 and p_last is not None and p_last > 1)
    return is_binary, is_sparse


def resolve(identifier: str | Config | Loss | type[Loss] | Callable[..., Any] | None,
            y_true_shape: ShapeLike | None = None, y_pred_shape: ShapeLike | None = None) -> Loss | None:
    """The loss compile() uses for ``identifier``: like :func:`get`, and ``"crossentropy"``
    / ``"ce"`` pick binary, sparse categorical or categorical crossentropy from the
    shapes of the targets and of the model output."""
    if isinstance(identifier, str) and identifier.lower() in ("crossentropy", "ce"):
        if y_true_shape is None or y_pred_shape is None:
            raise ValueError(f"Loss {identifier!r} needs the target and output shapes to choose "
                             "between binary, sparse categorical and categorical crossentropy")
        is_binary, is_sparse = is_binary_or_sparse_categorical(y_true_shape, y_pred_shape)
        fn = binary_crossentropy if is_binary else (
            sparse_categorical_crossentropy if is_sparse else categorical_crossentropy)
        return _from_function(fn, name=identifier)
    return get(identifier)


def _serialize_function(fn):
    return {"module": getattr(fn, "__module__", None), "class_name": "function",
            "config": getattr(fn, "__name__", repr(fn)), "registered_name": "function"}


def serialize(loss: Loss | Callable[..., Any] | None) -> Config | str | None:
    """The config dict of a loss (Keras's serialized form: module, class_name, config)."""
    if loss is None:
        return None
    if isinstance(loss, Loss):
        return {"module": "keras.losses", "class_name": type(loss).__name__,
                "config": loss.get_config(), "registered_name": None}
    if loss in _FUNCTION_CLASSES:
        return {"module": "keras.losses", "class_name": "function", "config": loss.__name__,
                "registered_name": "function"}
    if isinstance(loss, str):
        return loss
    return _serialize_function(loss)


def _instance_from_config(cls: Any, config: Config) -> Any:
    return cls.from_config(config)


def _instance(obj: Any) -> Any:
    """A class's instance with its defaults, or the object itself (a function)."""
    return obj() if inspect.isclass(obj) else obj


def deserialize(config: str | Config, custom_objects: CustomObjects | None = None) -> Loss | Callable[..., Any]:
    """Inverse of :func:`serialize`; also accepts names and ``{"class_name", "config"}``."""
    custom_objects = custom_objects or {}
    if isinstance(config, str):
        if config in custom_objects:
            return _instance(custom_objects[config])
        obj = ALL_OBJECTS_DICT.get(config)
        if obj is None:
            raise ValueError(f"Unknown loss {config!r}. Valid names: {_valid_names()}")
        return _instance(obj)
    if not isinstance(config, dict):
        raise ValueError(f"Could not deserialize loss from {config!r}")
    class_name = config.get("class_name") or ""
    inner = config.get("config", {})
    if class_name == "function":
        name = inner if isinstance(inner, str) else inner.get("name")
        if name in custom_objects:
            return custom_objects[name]
        if name not in ALL_OBJECTS_DICT:
            raise ValueError(f"Unknown loss function {name!r}. Valid names: {_valid_names()}")
        return ALL_OBJECTS_DICT[name]
    cls: Any = custom_objects.get(class_name) or ALL_OBJECTS_DICT.get(class_name)
    if cls is None:
        raise ValueError(f"Unknown loss class {class_name!r}. Valid names: {_valid_names()}")
    if not inspect.isclass(cls):
        return cls
    return _instance_from_config(cls, dict(inner or {}))

