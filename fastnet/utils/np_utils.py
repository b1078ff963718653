"""Array helpers: one-hot encoding and normalization, as ``keras.utils`` has them."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from fastnet._typing import ArrayLike, DTypeLike

__all__ = ["to_categorical", "normalize"]


def to_categorical(y: ArrayLike, num_classes: int | None = None, dtype: DTypeLike = "float64") -> np.ndarray:
    """One-hot encodes integer class labels; the class axis is placed last.

    A trailing axis of size 1 (labels of shape ``(n, 1)``) is dropped first, so both
    ``(n,)`` and ``(n, 1)`` give ``(n, num_classes)``.

    Args:
        y: array-like of class indices in ``[0, num_classes)``.
        num_classes: number of classes; ``max(y) + 1`` when None.
        dtype: type of the result (float64, as Keras returns; ``"float32"`` halves memory).

    Example:
        >>> to_categorical([0, 2, 1], num_classes=3)
        array([[1., 0., 0.],
               [0., 0., 1.],
               [0., 1., 0.]])
    """
    y_in = np.asarray(y)
    if y_in.dtype == bool or not (np.issubdtype(y_in.dtype, np.integer)
                                  or np.issubdtype(y_in.dtype, np.floating)):
        raise ValueError(f"to_categorical expects integer class labels, received dtype {y_in.dtype}")
    if np.issubdtype(y_in.dtype, np.floating):
        if not np.all(np.isfinite(y_in)) or np.any(y_in != np.floor(y_in)):
            raise ValueError("to_categorical expects integer class labels, received non-integer values")
    labels = y_in.astype(np.int64)
    shape = labels.shape
    if len(shape) > 1 and shape[-1] == 1:
        shape = shape[:-1]
    labels = labels.reshape(-1)
    if num_classes is None:
        if labels.size == 0:
            raise ValueError("to_categorical needs num_classes when y is empty")
        num_classes = int(labels.max()) + 1
    else:
        num_classes = int(num_classes)
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, received {num_classes}")
    if labels.size:
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high >= num_classes:
            raise ValueError(
                f"to_categorical: class labels must lie in [0, {num_classes}), "
                f"received values in [{low}, {high}]")
    out = np.zeros((labels.size, num_classes), dtype=dtype)
    out[np.arange(labels.size), labels] = 1
    return out.reshape(shape + (num_classes,))


def normalize(x: ArrayLike, axis: int = -1, order: int = 2) -> np.ndarray:
    """Divides ``x`` by its ``order``-norm along ``axis`` (zero norms are left as 1).

    Args:
        x: array to normalize.
        axis: axis along which to take the norm; None for the whole array.
        order: order of the norm (2 for L2, 1 for L1, ``np.inf`` for max).

    Returns:
        A normalized copy of ``x`` (float).
    """
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    if axis is None:
        norm = np.linalg.norm(x.reshape(-1), order)
        return x / (norm if norm != 0 else 1)
    if x.ndim == 0:
        raise ValueError("normalize expects an array of rank >= 1, received a scalar")
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"normalize: axis {axis} is out of range for an array of rank {x.ndim}")
    norm = np.linalg.norm(x, order, axis=axis, keepdims=True)
    norm[norm == 0] = 1
    return x / norm
