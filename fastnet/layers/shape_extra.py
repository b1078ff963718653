"""RepeatVector, Permute, Masking and Identity."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from fastnet.layers._v2 import ContextCallMixin
from fastnet.layers.base import InputSpec, Layer, _shape_str

if TYPE_CHECKING:
    from fastnet._typing import ArrayLike, Config, Shape, ShapeLike
    from fastnet.layers._v2 import CallContext

__all__ = ["RepeatVector", "Permute", "Masking", "Identity"]


class RepeatVector(ContextCallMixin, Layer):
    """Repeats a vector ``n`` times: ``(batch, features) -> (batch, n, features)``.

    Args:
        n: positive int, the number of repetitions.

    Input shape:
        ``(batch, features)``.

    Output shape:
        ``(batch, n, features)``.

    Example:
        >>> import numpy as np
        >>> from fastnet.layers import RepeatVector
        >>> RepeatVector(3)(np.zeros((2, 5))).shape
        (2, 3, 5)
    """

    def __init__(self, n: int, **kwargs) -> None:
        super().__init__(**kwargs)
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
            raise TypeError(f"RepeatVector expects an integer value for `n`, received {n!r} ({type(n).__name__})")
        if n <= 0:
            raise ValueError(f"Argument `n` of RepeatVector should be a positive integer, received n={n}")
        self.n = int(n)
        self.input_spec = InputSpec(ndim=2)

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape:
        return (input_shape[0], self.n, input_shape[1])

    def forward(self, ctx: CallContext, inputs: np.ndarray, training: bool = False) -> np.ndarray:
        y = ctx.buf("y", (inputs.shape[0], self.n, inputs.shape[1]), inputs.dtype)
        y[...] = inputs[:, None, :]
        return y

    def backward(self, ctx: CallContext, dy: np.ndarray) -> np.ndarray | None:
        if not ctx.need_dx:
            return None
        return np.asarray(dy).sum(axis=1)

    def get_config(self) -> Config:
        cfg = super().get_config()
        cfg["n"] = self.n
        return cfg


class Permute(ContextCallMixin, Layer):
    """Permutes the non-batch axes: ``dims`` is a permutation of ``1..rank-1``.

    Args:
        dims: tuple of ints, the new order of the axes (1-indexed; the batch axis stays first).
            ``(2, 1)`` swaps the two axes of a sequence.

    Input shape:
        ``(batch, d1, ..., dk)`` with ``k == len(dims)``.

    Output shape:
        ``(batch, d_dims[0], ..., d_dims[k-1])``.

    Example:
        >>> import numpy as np
        >>> from fastnet.layers import Permute
        >>> Permute((2, 1))(np.zeros((4, 10, 64))).shape
        (4, 64, 10)
    """

    def __init__(self, dims: ShapeLike, **kwargs) -> None:
        super().__init__(**kwargs)
        dims = tuple(dims)
        if sorted(dims) != list(range(1, len(dims) + 1)):
            raise ValueError(f"Invalid permutation argument `dims` for Permute layer: the indices in `dims` must "
                             f"be consecutive and start from 1, received dims={dims}")
        self.dims = tuple(int(d) for d in dims)
        self._perm = (0,) + self.dims
        self._inverse = tuple(int(i) for i in np.argsort(self._perm))
        self.input_spec = InputSpec(ndim=len(self.dims) + 1)

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape:
        if len(input_shape) != len(self.dims) + 1:
            raise ValueError(f'Layer "{self.name}" (Permute) with dims={self.dims} expects input of rank '
                             f"{len(self.dims) + 1}, received input with shape {_shape_str(input_shape)}")
        return tuple(input_shape[d] for d in self._perm)

    def forward(self, ctx: CallContext, inputs: np.ndarray, training: bool = False) -> np.ndarray:
        return np.ascontiguousarray(np.transpose(inputs, self._perm))

    def backward(self, ctx: CallContext, dy: np.ndarray) -> np.ndarray | None:
        if not ctx.need_dx:
            return None
        return np.ascontiguousarray(np.transpose(np.asarray(dy), self._inverse))

    def get_config(self) -> Config:
        cfg = super().get_config()
        cfg["dims"] = self.dims
        return cfg


class Masking(ContextCallMixin, Layer):
    """Masks timesteps whose features all equal ``mask_value``: their outputs are zeroed
    and the mask (``compute_mask``) marks them False for the layers after it.

    Args:
        mask_value: the value that marks padding (default 0.0).

    Input shape:
        ``(batch, timesteps, features)`` (any rank >= 2; the last axis holds the features).

    Output shape:
        Same as the input; mask ``(batch, timesteps)``.

    Example:
        >>> import numpy as np
        >>> from fastnet.layers import Masking
        >>> x = np.array([[[1.0, 2.0], [0.0, 0.0]]])
        >>> Masking().compute_mask(x)
        array([[ True, False]])
    """

    def __init__(self, mask_value: float = 0.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.mask_value = mask_value
        self.supports_masking = True

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape:
        return tuple(input_shape)

    def compute_mask(self, inputs: ArrayLike, mask: ArrayLike | None = None) -> np.ndarray:
        return np.any(np.asarray(inputs) != self.mask_value, axis=-1)

    def forward(self, ctx: CallContext, inputs: np.ndarray, training: bool = False) -> np.ndarray:
        keep = np.any(inputs != self.mask_value, axis=-1, keepdims=True)
        if ctx.record:
            ctx.keep = keep
        return np.where(keep, inputs, inputs.dtype.type(0))

    def backward(self, ctx: CallContext, dy: np.ndarray) -> np.ndarray | None:
        if not ctx.need_dx:
            return None
        dy = np.asarray(dy)
        return np.where(ctx.keep, dy, dy.dtype.type(0))

    def get_config(self) -> Config:
        cfg = super().get_config()
        cfg["mask_value"] = self.mask_value
        return cfg


class Identity(ContextCallMixin, Layer):
    """Returns its input unchanged (a placeholder layer); masks pass through.

    Input shape:
        Arbitrary.

    Output shape:
        Same as the input.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.supports_masking = True

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape:
        return tuple(input_shape)

    def forward(self, ctx: CallContext, inputs: np.ndarray, training: bool = False) -> np.ndarray:
        return inputs

    def backward(self, ctx: CallContext, dy: np.ndarray) -> np.ndarray | None:
        return dy if ctx.need_dx else None
