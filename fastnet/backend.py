"""Variables, automatic names and session state shared by layers and models."""
from __future__ import annotations

import re
import sys
import threading
from typing import TYPE_CHECKING

import numpy as np

from fastnet import config

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

    from fastnet._typing import ArrayLike, ConstraintLike, DTypeLike
    from fastnet.regularizers import Regularizer

__all__ = ["Variable", "clear_session", "unique_name", "to_snake_case", "floatx", "epsilon"]

floatx = config.floatx
epsilon = config.epsilon

_NAME_LOCK = threading.Lock()
_NAME_COUNTS: dict[str, int] = {}


def to_snake_case(name: str) -> str:
    """Keras's automatic layer-name stem: ``BatchNormalization`` -> ``batch_normalization``."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    name = re.sub("([a-z])([A-Z])", r"\1_\2", name)
    return name.lower()


def unique_name(stem: str) -> str:
    """``stem`` the first time in this process (or since clear_session), then ``stem_1``, ..."""
    with _NAME_LOCK:
        n = _NAME_COUNTS.get(stem, 0)
        _NAME_COUNTS[stem] = n + 1
    return stem if n == 0 else f"{stem}_{n}"


def clear_session() -> None:
    """Resets the automatic layer and model names, as Keras's ``clear_session`` does."""
    with _NAME_LOCK:
        _NAME_COUNTS.clear()


class Variable:
    """A weight: a numpy array plus what training needs to know about it.

    ``value`` is the live array that kernels read and optimizers update in place;
    during training it is a view into the model's flat parameter buffer, so code
    must read ``var.value`` each time rather than keep the array. ``grad`` is the
    matching gradient array, filled by the owning layer's backward pass.
    """

    __slots__ = ("value", "grad", "name", "path", "trainable", "regularizer", "constraint",
                 "__weakref__")

    def __init__(self, value: ArrayLike, name: str = "variable", trainable: bool = True,
                 regularizer: Regularizer | Callable[..., Any] | None = None, constraint: ConstraintLike | None = None,
                 path: str | None = None) -> None:
        # np.asarray(order='C'), not ascontiguousarray: a scalar weight keeps its shape ().
        self.value = np.asarray(value, order="C")
        self.grad: np.ndarray | None = None
        self.name = name
        self.path = path or name
        self.trainable = trainable
        self.regularizer = regularizer
        self.constraint = constraint

    @property
    def shape(self) -> tuple[int, ...]:
        return self.value.shape

    @property
    def dtype(self) -> np.dtype:
        return self.value.dtype

    @property
    def size(self) -> int:
        return self.value.size

    def numpy(self) -> np.ndarray:
        return self.value.copy()

    def assign(self, value: ArrayLike) -> None:
        """Copies ``value`` into the variable (same shape; cast to its dtype)."""
        ad = sys.modules.get("fastnet.ops.autodiff")
        if ad is not None and getattr(ad._TLS, "stack", None):
            ad.note_escape(f"variable '{self.path}' was assigned (a replay would not assign it)")
        value = np.asarray(_ops_value(value))
        if value.shape != self.value.shape:
            raise ValueError(f"Cannot assign a value of shape {value.shape} to variable "
                             f"'{self.path}' of shape {self.value.shape}")
        np.copyto(self.value, value, casting="unsafe")

    def zero_grad(self) -> np.ndarray:
        """The gradient array (allocated on first use), filled with zeros."""
        if self.grad is None or self.grad.shape != self.value.shape:
            self.grad = np.zeros_like(self.value)
        else:
            self.grad.fill(0)
        return self.grad

    def grad_buffer(self) -> np.ndarray:
        """The gradient array, allocated on first use; its contents are to be overwritten."""
        if self.grad is None or self.grad.shape != self.value.shape or self.grad.dtype != self.value.dtype:
            self.grad = np.empty_like(self.value)
        return self.grad

    def assign_add(self, value: ArrayLike) -> None:
        """Adds ``value`` to the variable in place."""
        self.assign(self.value + np.asarray(_ops_value(value), dtype=self.value.dtype))

    def assign_sub(self, value: ArrayLike) -> None:
        """Subtracts ``value`` from the variable in place."""
        self.assign(self.value - np.asarray(_ops_value(value), dtype=self.value.dtype))

    def __array__(self, dtype=None, copy=None):
        ad = sys.modules.get("fastnet.ops.autodiff")
        if ad is not None and getattr(ad._TLS, "stack", None):
            ad.note_escape(f"variable '{self.path}' was converted to a numpy array (a replay would fix its value)")
        return np.asarray(self.value, dtype=dtype)

    # Arithmetic goes through fastnet.ops, so that inside a recorded call the variable
    # becomes a leaf of the tape: ``ops.matmul(x, self.kernel) + self.bias`` trains.
    # (No __eq__ and no __len__: variables stay hashable, comparable by identity in
    # lists, and always true in ``if var:``.)
    __array_priority__ = 100

    @property
    def ndim(self) -> int:
        return self.value.ndim

    @property
    def T(self) -> Any:  # noqa: N802
        return _ops().transpose(self)

    def __getitem__(self, idx):
        return _ops().get_item(self, idx)

    def __add__(self, o):
        return _ops().add(self, o)

    def __radd__(self, o):
        return _ops().add(o, self)

    def __sub__(self, o):
        return _ops().subtract(self, o)

    def __rsub__(self, o):
        return _ops().subtract(o, self)

    def __mul__(self, o):
        return _ops().multiply(self, o)

    def __rmul__(self, o):
        return _ops().multiply(o, self)

    def __truediv__(self, o):
        return _ops().divide(self, o)

    def __rtruediv__(self, o):
        return _ops().divide(o, self)

    def __pow__(self, o):
        return _ops().power(self, o)

    def __rpow__(self, o):
        return _ops().power(o, self)

    def __matmul__(self, o):
        return _ops().matmul(self, o)

    def __rmatmul__(self, o):
        return _ops().matmul(o, self)

    def __neg__(self):
        return _ops().negative(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return _ops().abs(self)

    def __lt__(self, o):
        return _ops().less(self, o)

    def __le__(self, o):
        return _ops().less_equal(self, o)

    def __gt__(self, o):
        return _ops().greater(self, o)

    def __ge__(self, o):
        return _ops().greater_equal(self, o)

    def __float__(self) -> float:
        return float(self.value)

    def __int__(self) -> int:
        return int(self.value)

    def __repr__(self):
        return f"<Variable path={self.path} shape={self.shape} dtype={self.dtype}>"


_OPS = None


def _ops():
    global _OPS
    if _OPS is None:
        from fastnet.ops import numpy as m
        _OPS = m
    return _OPS


def _ops_value(value):
    """The array behind a traced value (assigning one stores its current value)."""
    v = getattr(value, "value", None)
    return v if isinstance(v, np.ndarray) else value


def pack(variables: Sequence[Variable], dtype: DTypeLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Moves ``variables`` into one flat value buffer and one flat gradient buffer.

    Afterwards each variable's ``value`` and ``grad`` are views of the flat arrays,
    so one fused kernel can update every weight in a single pass.
    Returns (values, grads, offsets) with offsets[i]:offsets[i+1] the slice of var i.
    """
    sizes = [v.size for v in variables]
    offsets = np.zeros(len(variables) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    total = int(offsets[-1])
    values = np.empty(total, dtype=dtype)
    grads = np.zeros(total, dtype=dtype)
    for v, lo, hi in zip(variables, offsets[:-1], offsets[1:]):
        values[lo:hi] = v.value.ravel()
        v.value = values[lo:hi].reshape(v.value.shape)
        v.grad = grads[lo:hi].reshape(v.value.shape)
    return values, grads, offsets
