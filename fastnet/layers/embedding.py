"""Embedding: turns integer indices into dense vectors (rows of a trainable table)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from fastnet import config, initializers, regularizers
from fastnet._kernels import embedding as _ek
from fastnet.layers.base import CallContext, Layer
from fastnet.layers.core import _serialize_initializer, _serialize_regularizer, positive_int

if TYPE_CHECKING:
    from collections.abc import Sequence

    from fastnet._typing import ArrayLike, Config, ConstraintLike, InitializerLike, RegularizerLike, Shape, ShapeLike

__all__ = ["Embedding"]


class Embedding(Layer):
    """Maps each integer index in [0, input_dim) to a row of a (input_dim, output_dim) table.

    Args:
        input_dim: size of the vocabulary (largest index + 1).
        output_dim: size of each embedding vector.
        embeddings_initializer: default ``"uniform"`` (uniform in [-0.05, 0.05]).
        embeddings_regularizer, embeddings_constraint: optional.
        mask_zero: index 0 is padding: the layer produces a mask (``inputs != 0``) that
            the recurrent layers after it use to skip those steps (then index 0 cannot be
            a real token, so input_dim should be the vocabulary size + 1).
        weights: optional initial ``[embeddings]``.

    Input shape: integer array of any shape (batch, ...).
    Output shape: (batch, ..., output_dim).

    An index outside [0, input_dim) raises an IndexError naming it.

    Example:
        >>> import numpy as np
        >>> from fastnet.layers import Embedding
        >>> Embedding(1000, 64)(np.array([[4, 20, 7]])).shape
        (1, 3, 64)
    """

    _cast_inputs = False

    def __init__(self, input_dim: int, output_dim: int, embeddings_initializer: InitializerLike = "uniform",
                 embeddings_regularizer: RegularizerLike | None = None,
                 embeddings_constraint: ConstraintLike | None = None, mask_zero: bool = False,
                 weights: Sequence[ArrayLike] | None = None, lora_rank: int | None = None,
                 activity_regularizer: RegularizerLike | None = None, **kwargs) -> None:
        kwargs.pop("lora_alpha", None)
        if lora_rank:
            raise NotImplementedError(f"Embedding does not support LoRA (low-rank adaptation) yet, received "
                                      f"lora_rank={lora_rank}; build it with lora_rank=None")
        super().__init__(**kwargs)
        self.input_dim = positive_int(input_dim, "input_dim", "Embedding")
        self.output_dim = positive_int(output_dim, "output_dim", "Embedding")
        self.embeddings_initializer = initializers.get(embeddings_initializer)
        self.embeddings_regularizer = regularizers.get(embeddings_regularizer)
        self.activity_regularizer = regularizers.get(activity_regularizer)
        self.embeddings_constraint = embeddings_constraint
        self.mask_zero = bool(mask_zero)
        self.supports_masking = self.mask_zero
        self._produces_mask = self.mask_zero   # models pass masks along only when some layer makes one
        self._initial_weights = weights
        self.embeddings = None

    def build(self, input_shape: ShapeLike | None = None) -> None:
        self.embeddings = self.add_weight("embeddings", (self.input_dim, self.output_dim),
                                          self.embeddings_initializer,
                                          self.embeddings_regularizer,
                                          constraint=self.embeddings_constraint)
        self.built = True
        if self._initial_weights is not None:
            self.set_weights(self._initial_weights)
            self._initial_weights = None

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape:
        return tuple(input_shape) + (self.output_dim,)

    def compute_mask(self, inputs: ArrayLike, mask: ArrayLike | None = None) -> np.ndarray | None:
        if not self.mask_zero:
            return None
        return np.asarray(inputs) != 0

    def _indices(self, inputs):
        x = np.asarray(inputs)
        if x.dtype.kind in "iu":
            idx = x.astype(np.int64, copy=False)
        elif x.dtype.kind in "fb":
            idx = x.astype(np.int64)
            if x.dtype.kind == "f" and x.size and not np.array_equal(idx, x):
                bad = x.reshape(-1)[np.flatnonzero(idx.reshape(-1) != x.reshape(-1))[0]]
                raise ValueError(f'Layer "{self.name}" (Embedding) expects integer indices, '
                                 f"received the non-integer value {bad}")
        else:
            raise TypeError(f'Layer "{self.name}" (Embedding) expects integer indices, '
                            f"received dtype {x.dtype}")
        return np.ascontiguousarray(idx.reshape(-1))

    def forward(self, ctx: CallContext, inputs: ArrayLike, training: bool = False) -> np.ndarray:
        idx = self._indices(inputs)
        table = self.embeddings.value
        out = ctx.buf("y", (idx.shape[0], self.output_dim), table.dtype)
        try:
            _ek.forward(idx, table, out, config._n_threads)
        except IndexError:
            pos = _ek.first_bad_index(idx, self.input_dim)
            raise IndexError(
                f'Layer "{self.name}" (Embedding): index {int(idx[pos])} is out of range '
                f"[0, {self.input_dim}) (input_dim={self.input_dim}); every index must be "
                f">= 0 and < input_dim") from None
        if ctx.record:
            ctx.idx = idx
        return out.reshape(np.shape(inputs) + (self.output_dim,))

    def backward(self, ctx: CallContext, dy: np.ndarray) -> np.ndarray | None:
        if self.trainable and self.embeddings.trainable:
            dy = np.ascontiguousarray(dy, dtype=self.embeddings.dtype).reshape(-1, self.output_dim)
            _ek.backward(ctx.idx, dy, self.embeddings.grad_buffer(), config._n_threads)
        return None

    def get_config(self) -> Config:
        cfg = super().get_config()
        cfg.update({
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            "embeddings_initializer": _serialize_initializer(self.embeddings_initializer),
            "embeddings_regularizer": _serialize_regularizer(self.embeddings_regularizer),
            "activity_regularizer": _serialize_regularizer(self.activity_regularizer),
            "embeddings_constraint": None,
            "mask_zero": self.mask_zero,
        })
        return cfg
