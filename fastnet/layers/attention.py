"""Attention layers: MultiHeadAttention, Attention (dot-product) and AdditiveAttention.

The projections are GEMMs on the rows of each input (numpy matmul on views, no copies);
scaled dot-product attention, its masks, softmax, dropout and backward pass run in the
fused kernel ``fastnet._kernels.attention``. Weights are laid out as Keras lays them out
(MultiHeadAttention: ``query``/``key``/``value`` kernels ``(dim, num_heads, key_dim)``
with biases ``(num_heads, key_dim)``, ``attention_output`` kernel
``(num_heads, value_dim, *output_shape)`` with bias ``output_shape``), in Keras's order,
held by sub-layers named as Keras's (``query_dense``, ...) so that ``.keras`` files map
one to one.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from fastnet import config, initializers, regularizers
from fastnet import random as _random
from fastnet._kernels import attention as _attn
from fastnet._kernels import dense as _dense
from fastnet._kernels import dropout as _dropout
from fastnet.layers.base import KerasTensor, Layer, _shape_str

if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from fastnet._typing import (
        ArrayLike,
        Config,
        ConstraintLike,
        InitializerLike,
        RegularizerLike,
        Shape,
        ShapeLike,
    )

__all__ = ["MultiHeadAttention", "Attention", "AdditiveAttention"]

try:  # per-call records (layer contract v2)
    from fastnet.layers.base import CallContext as _CallContext
except ImportError:  # the layer base without per-call records yet: the same fields, eager only
    class _CallContext:
        """Per-call record for eager use: keeps what backward needs."""

        def __init__(self, record=True):
            self.record = record
            self.need_dx = True

        def buf(self, key, shape, dtype):
            return np.empty(shape, dtype=dtype)


def _new_ctx(record):
    ctx = _CallContext()
    ctx.record = bool(record)
    ctx.need_dx = True
    return ctx


def _is_symbolic(values):
    for v in values:
        if isinstance(v, KerasTensor):
            return True
        if isinstance(v, (list, tuple)) and any(isinstance(t, KerasTensor) for t in v):
            return True
    return False


def _serialize_initializer(init):
    return initializers.serialize(init) if isinstance(init, initializers.Initializer) else init


def _serialize_regularizer(reg):
    return regularizers.serialize(reg) if isinstance(reg, regularizers.Regularizer) else reg


def _serialize_constraint(c):
    if c is None:
        return None
    get_config = getattr(c, "get_config", None)
    return {"class_name": type(c).__name__, "config": get_config() if get_config else {}}


def _positive_int(value, what, layer, allow_none=False):
    if allow_none and value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"Received an invalid value for argument `{what}` of {layer}: expected a positive "
                         f"integer{' or None' if allow_none else ''}, received {what}={value!r}")
    return int(value)


def _rate(value, layer):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not 0 <= value < 1:
        raise ValueError(f"Invalid value received for argument `dropout` of {layer}: expected a float in "
                         f"[0, 1), received dropout={value!r}")
    return float(value)


class _Projection(Layer):
    """The weights of one of MultiHeadAttention's projections (Keras's EinsumDense sub-layers
    ``query``, ``key``, ``value``, ``attention_output``). Computation happens in the owning
    layer, which multiplies whole row blocks at once."""

    def __init__(self, name, dtype):
        super().__init__(name=name, dtype=dtype)
        self.kernel = None
        self.bias = None

    def make(self, owner, kernel_shape, bias_shape, use_bias, initializer, bias_initializer, regularizer,
             bias_regularizer, constraint, bias_constraint):
        self.kernel = self.add_weight("kernel", kernel_shape, initializers.get(initializer), regularizer,
                                      constraint=constraint)
        self.kernel.path = f"{owner.name}/{self.name}/kernel"
        if use_bias:
            self.bias = self.add_weight("bias", bias_shape, initializers.get(bias_initializer),
                                        bias_regularizer, constraint=bias_constraint)
            self.bias.path = f"{owner.name}/{self.name}/bias"
        self.built = True

    def forward(self, ctx, inputs, training=False):
        raise NotImplementedError(f"{self.name} is a part of MultiHeadAttention and is not called on its own")


class MultiHeadAttention(Layer):
    """Multi-head attention, as in "Attention is all you need".

    Each of ``num_heads`` heads projects query, key and value, computes
    ``softmax(q k^T / sqrt(key_dim))`` over the attention axes (masked), applies dropout to
    these probabilities while training, and takes the weighted sum of its values; the
    heads' results are concatenated and projected to the output.

    Args:
        num_heads: number of attention heads.
        key_dim: size of each head for query and key.
        value_dim: size of each head for value (``key_dim`` when None).
        dropout: dropout rate on the attention probabilities while training.
        use_bias: whether the projections have biases.
        output_shape: the output's trailing shape (int or tuple); the query's last dimension
            when None.
        attention_axes: the axes attention runs over (ints, batch and feature axes excluded);
            every axis between batch and features when None.
        sliding_window: optional int w: each query attends only to keys within ``w - 1``
            positions of it (one attention axis).
        flash_attention: accepted for Keras compatibility; fastnet's kernel is always the
            blocked fused one, and returns scores when asked.
        kernel_initializer, bias_initializer: initializers of the projections.
        kernel_regularizer, bias_regularizer, activity_regularizer: their penalties.
        kernel_constraint, bias_constraint: their constraints.
        use_gate: must be False (gated attention is not available in fastnet).
        seed: optional int for reproducible dropout.

    Call arguments:
        query: ``(B, T, dim)`` (or ``(B, T1, ..., Tn, dim)``).
        value: ``(B, S, dim)``.
        key: optional ``(B, S, dim)``; ``value`` when None.
        query_mask, value_mask, key_mask: optional boolean ``(B, T)`` / ``(B, S)`` masks of
            valid positions.
        attention_mask: optional boolean ``(B, T, S)`` mask (broadcast over heads and batch),
            True where a query may attend to a key.
        return_attention_scores: also return the probabilities ``(B, num_heads, T, S)``.
        training: dropout is applied only when True.
        use_causal_mask: query i attends only to keys 0..i.

    A query whose keys are all masked gets probabilities 0 (its output is the output bias).

    Input shape:
        query ``(batch, *T, query_dim)``, value ``(batch, *S, value_dim)``, key like value.

    Output shape:
        ``(batch, *T, *output_shape)``; scores ``(batch, *other axes, num_heads, *T, *S)``.
    """

    def __init__(self, num_heads: int, key_dim: int, value_dim: int | None = None, dropout: float = 0.0,
                 use_bias: bool = True, output_shape: int | ShapeLike | None = None,
                 attention_axes: int | Sequence[int] | None = None, sliding_window: int | None = None,
                 flash_attention: bool | None = None, kernel_initializer: InitializerLike = "glorot_uniform",
                 bias_initializer: InitializerLike = "zeros", kernel_regularizer: RegularizerLike | None = None,
                 bias_regularizer: RegularizerLike | None = None,
                 activity_regularizer: RegularizerLike | None = None,
                 kernel_constraint: ConstraintLike | None = None, bias_constraint: ConstraintLike | None = None,
                 use_gate: bool = False, seed: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        cls = type(self).__name__
        self._num_heads = _positive_int(num_heads, "num_heads", cls)
        self._key_dim = _positive_int(key_dim, "key_dim", cls)
        self._value_dim = _positive_int(value_dim, "value_dim", cls, allow_none=True) or self._key_dim
        self._dropout = _rate(dropout, cls)
        self._use_bias = bool(use_bias)
        if use_gate:
            raise ValueError(f"{cls}: use_gate=True (gated attention) is not available in fastnet; "
                             f"received use_gate={use_gate!r}")
        if output_shape is not None and output_shape != () and output_shape != []:
            if isinstance(output_shape, (int, np.integer)) and not isinstance(output_shape, bool):
                output_shape = (int(output_shape),)
            try:
                output_shape = tuple(_positive_int(d, "output_shape", cls) for d in output_shape)
            except TypeError:
                raise ValueError(f"Invalid `output_shape` for {cls}: expected an int, a tuple or a list, "
                                 f"received output_shape={output_shape!r}") from None
        else:
            output_shape = None
        self._output_shape = output_shape
        if isinstance(attention_axes, (int, np.integer)) and not isinstance(attention_axes, bool):
            attention_axes = (int(attention_axes),)
        elif attention_axes is not None:
            if not isinstance(attention_axes, (list, tuple)) or not all(
                    isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in attention_axes):
                raise ValueError(f"`attention_axes` of {cls} must be an int, list, or tuple of ints, received "
                                 f"attention_axes={attention_axes!r}")
            attention_axes = tuple(int(a) for a in attention_axes)
        self._attention_axes = attention_axes
        self._sliding_window = _positive_int(sliding_window, "sliding_window", cls, allow_none=True)
        self._flash_attention = flash_attention
        self._kernel_initializer = initializers.get(kernel_initializer)
        self._bias_initializer = initializers.get(bias_initializer)
        self._kernel_regularizer = regularizers.get(kernel_regularizer)
        self._bias_regularizer = regularizers.get(bias_regularizer)
        self._activity_regularizer = regularizers.get(activity_regularizer)
        self._kernel_constraint = kernel_constraint
        self._bias_constraint = bias_constraint
        self.seed = seed
        self._rng = np.random.default_rng(seed) if seed is not None else None
        self._inverse_sqrt_key_dim = 1.0 / math.sqrt(float(self._key_dim))
        self.query_dense = self.key_dense = self.value_dense = self.output_dense = None
        self._shapes = None
        self.supports_masking = True

    # ------------------------------------------------------------------ properties
    @property
    def num_heads(self) -> int:
        return self._num_heads

    @property
    def key_dim(self) -> int:
        return self._key_dim

    @property
    def value_dim(self) -> int:
        return self._value_dim

    @property
    def dropout(self) -> float:
        return self._dropout

    @property
    def use_bias(self) -> bool:
        return self._use_bias

    @property
    def attention_axes(self) -> tuple[int, ...] | None:
        return self._attention_axes

    # ------------------------------------------------------------------ build
    def build(self, query_shape: ShapeLike, value_shape: ShapeLike | None = None,
              key_shape: ShapeLike | None = None) -> None:
        cls = type(self).__name__
        if value_shape is None:
            raise ValueError(f'Layer "{self.name}" ({cls}) is built from build(query_shape, value_shape, '
                             f"key_shape=None); received no value_shape")
        query_shape = tuple(query_shape)
        value_shape = tuple(value_shape)
        key_shape = value_shape if key_shape is None else tuple(key_shape)
        for what, shape in (("query", query_shape), ("value", value_shape), ("key", key_shape)):
            if len(shape) < 3:
                raise ValueError(f'Layer "{self.name}" ({cls}) expects {what} of rank >= 3 '
                                 f"(batch, ..., features), received {what} shape {_shape_str(shape)}")
            if shape[-1] is None:
                raise ValueError(f'Layer "{self.name}" ({cls}) needs the last axis of {what} defined, '
                                 f"received {what} shape {_shape_str(shape)}")
        if value_shape[1:-1] != key_shape[1:-1]:
            raise ValueError(f"All dimensions of `value` and `key`, except the last one, must be equal. "
                             f"Received: value_shape={value_shape} and key_shape={key_shape}")
        if len(value_shape) != len(query_shape):
            raise ValueError(f'Layer "{self.name}" ({cls}) expects query and value of the same rank, received '
                             f"query_shape={query_shape} and value_shape={value_shape}")
        rank = len(query_shape)
        middle = tuple(range(1, rank - 1))
        if self._attention_axes is None:
            axes = middle
        else:
            axes = tuple(a if a >= 0 else rank + a for a in self._attention_axes)
            if any(a not in middle for a in axes) or len(set(axes)) != len(axes):
                raise ValueError(f'Layer "{self.name}" ({cls}): attention_axes must be distinct axes among '
                                 f"{list(middle)} (or negative equivalents) for inputs of rank {rank}, received "
                                 f"attention_axes={self._attention_axes}")
        self._attention_axes = axes
        others = tuple(a for a in middle if a not in axes)
        # kernel layout order: batch, the other axes, then the attention axes
        self._perm = (0,) + others + axes
        self._identity_perm = self._perm == tuple(range(rank - 1))
        self._others = others

        H, dk, dv = self._num_heads, self._key_dim, self._value_dim
        common = dict(initializer=self._kernel_initializer, bias_initializer=self._bias_initializer,
                      regularizer=self._kernel_regularizer, bias_regularizer=self._bias_regularizer,
                      constraint=self._kernel_constraint, bias_constraint=self._bias_constraint,
                      use_bias=self._use_bias)
        out_shape = self._output_shape or (query_shape[-1],)
        self._out_tail = tuple(out_shape)
        specs = (("query_dense", "query", (query_shape[-1], H, dk), (H, dk)),
                 ("key_dense", "key", (key_shape[-1], H, dk), (H, dk)),
                 ("value_dense", "value", (value_shape[-1], H, dv), (H, dv)),
                 ("output_dense", "attention_output", (H, dv) + self._out_tail, self._out_tail))
        self._variables = []
        for attr, name, kshape, bshape in specs:  # Keras's weight order: query, key, value, output
            sub = _Projection(name, self.dtype)
            sub.make(self, kshape, bshape, **common)
            setattr(self, attr, sub)
            self._variables.extend(sub._variables)
        self._shapes = {"query_shape": query_shape, "value_shape": value_shape}
        if key_shape is not value_shape:
            self._shapes["key_shape"] = key_shape
        self._build_shape = query_shape
        self.built = True

    def get_build_config(self) -> Config | None:
        if self._shapes is None:
            return None
        return {"shapes_dict": {k: list(v) for k, v in self._shapes.items()}}

    def build_from_config(self, build_config: Config) -> None:
        shapes = (build_config or {}).get("shapes_dict")
        if shapes and not self.built:
            self.build(tuple(shapes["query_shape"]), tuple(shapes["value_shape"]),
                       tuple(shapes["key_shape"]) if shapes.get("key_shape") is not None else None)

    # ------------------------------------------------------------------ shapes
    def compute_output_shape(self, query_shape: ShapeLike, value_shape: ShapeLike | None = None,
                             key_shape: ShapeLike | None = None) -> Shape:
        query_shape = tuple(query_shape)
        if value_shape is not None:
            value_shape = tuple(value_shape)
            key_shape = value_shape if key_shape is None else tuple(key_shape)
            if value_shape[1:-1] != key_shape[1:-1]:
                raise ValueError(f"All dimensions of `value` and `key`, except the last one, must be equal. "
                                 f"Received: value_shape={value_shape} and key_shape={key_shape}")
        if self._output_shape:
            return query_shape[:-1] + tuple(self._output_shape)
        return query_shape

    def compute_scores_shape(self, query_shape: ShapeLike, value_shape: ShapeLike) -> Shape:
        """Shape of the attention scores: ``(batch, *other_axes, heads, *query_axes, *key_axes)``."""
        rank = len(query_shape)
        axes = self._attention_axes if self.built else (
            tuple(range(1, rank - 1)) if self._attention_axes is None
            else tuple(a if a >= 0 else rank + a for a in self._attention_axes))
        others = tuple(a for a in range(1, rank - 1) if a not in axes)
        return ((query_shape[0],) + tuple(query_shape[a] for a in others) + (self._num_heads,)
                + tuple(query_shape[a] for a in axes) + tuple(value_shape[a] for a in axes))

    def compute_output_spec(self, query: Any, value: Any, key: Any = None, return_attention_scores: bool = False,
                            **kwargs) -> Shape | tuple[Shape, Shape]:
        """Output shapes for graph building: the output's, and the scores' when asked."""
        out = self.compute_output_shape(query.shape, value.shape, None if key is None else key.shape)
        if return_attention_scores:
            return out, self.compute_scores_shape(query.shape, value.shape)
        return out

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        """The output keeps the query's mask (``mask[0]`` when a list of masks is given)."""
        if isinstance(mask, (list, tuple)):
            return mask[0] if mask else None
        return mask

    # ------------------------------------------------------------------ helpers
    def _next_seed(self):
        rng = self._rng if self._rng is not None else _random.generator()
        return int(rng.integers(0, 2 ** 63 - 1))

    def _to_kernel(self, ctx, key, t, lead):
        """(B, *mid, H, d) -> (B * others, L, H, d): a view, or a copy when axes must move."""
        rank = t.ndim
        if self._identity_perm:
            return t.reshape((lead, -1) + t.shape[-2:])
        perm = self._perm + (rank - 2, rank - 1)
        moved = t.transpose(perm)
        out = ctx.buf(key, moved.shape, t.dtype)
        np.copyto(out, moved)
        return out.reshape((lead, -1) + t.shape[-2:])

    def _from_kernel(self, ctx, key, t, full_shape):
        """Inverse of _to_kernel: (B * others, L, H, d) -> (B, *mid, H, d) as laid out in full_shape."""
        if self._identity_perm:
            return t.reshape(full_shape)
        rank = len(full_shape)
        perm = self._perm + (rank - 2, rank - 1)
        moved_shape = tuple(full_shape[a] for a in perm)
        out = ctx.buf(key, full_shape, t.dtype)
        inverse = np.argsort(perm)
        np.copyto(out, t.reshape(moved_shape).transpose(inverse))
        return out

    def _mask_rows(self, m, shape, what):
        """A (B, *mid) mask of query or key positions, as (B * others, L) in kernel order."""
        m = np.asarray(m)
        want = tuple(shape[:-1])
        if m.shape != want:
            try:
                m = np.broadcast_to(m, want)
            except ValueError:
                raise ValueError(f'Layer "{self.name}" (MultiHeadAttention): {what} must have shape '
                                 f"{_shape_str(want)} (the input's shape without its last axis), received "
                                 f"{_shape_str(m.shape)}") from None
        m = m.astype(bool) if m.dtype.kind == "b" else (m > 0.5) if m.dtype.kind == "f" else m != 0
        m = np.transpose(m, self._perm)
        lead = shape[0] * math.prod(shape[a] for a in self._others)
        return m.reshape(lead, -1)

    def _build_mask(self, q_shape, v_shape, scores_shape, query_mask, value_mask, key_mask, attention_mask,
                    use_causal_mask, Bf, Lq, Lk):
        """The boolean mask in kernel form (Bm, Hm, Lq, Lk) uint8, or None; and the causal flag."""
        H = self._num_heads
        n_ax = len(self._attention_axes)
        causal = bool(use_causal_mask)
        if (causal or self._sliding_window is not None) and n_ax != 1:
            raise ValueError(f'Layer "{self.name}" (MultiHeadAttention): use_causal_mask and sliding_window need '
                             f"attention over one axis, the layer attends over axes {self._attention_axes}")
        mask = None

        def conj(a, b):
            return b if a is None else a & b

        if query_mask is not None:
            mask = conj(mask, self._mask_rows(query_mask, q_shape, "query_mask")[:, None, :, None])
        if value_mask is not None:
            mask = conj(mask, self._mask_rows(value_mask, v_shape, "value_mask")[:, None, None, :])
        if key_mask is not None:
            mask = conj(mask, self._mask_rows(key_mask, v_shape, "key_mask")[:, None, None, :])
        if self._sliding_window is not None:
            i = np.arange(Lq)[:, None]
            j = np.arange(Lk)[None, :]
            mask = conj(mask, (np.abs(i - j) < self._sliding_window)[None, None])
        if attention_mask is not None:
            am = np.asarray(attention_mask)
            am = am.astype(bool) if am.dtype.kind == "b" else (am > 0.5) if am.dtype.kind == "f" else am != 0
            rank = len(scores_shape)
            if am.ndim > rank:
                raise ValueError(f'Layer "{self.name}" (MultiHeadAttention): attention_mask of shape '
                                 f"{_shape_str(am.shape)} has more axes than the attention scores "
                                 f"{_shape_str(scores_shape)}")
            while am.ndim < rank:  # the head axis (and any missing leading axes) broadcast
                am = np.expand_dims(am, axis=am.ndim - 2 * n_ax)
            for md, sd in zip(am.shape, scores_shape):
                if md != 1 and md != sd:
                    raise ValueError(f'Layer "{self.name}" (MultiHeadAttention): attention_mask of shape '
                                     f"{_shape_str(np.shape(attention_mask))} does not broadcast to the attention "
                                     f"scores {_shape_str(scores_shape)} (batch, heads, query, key axes)")
            head_ax = rank - 2 * n_ax - 1
            hm = am.shape[head_ax]
            lead_shape = scores_shape[:head_ax]
            per_batch = any(d != 1 for d in am.shape[:head_ax])
            target = (lead_shape if per_batch else (1,) * head_ax) + (hm,) + tuple(scores_shape[head_ax + 1:])
            am = np.broadcast_to(am, target).reshape(Bf if per_batch else 1, hm, Lq, Lk)
            mask = conj(mask, am)
        if mask is None:
            return None, causal
        bm = Bf if mask.shape[0] != 1 else 1
        hm = H if mask.shape[1] != 1 else 1
        full = np.broadcast_to(mask, (bm, hm, Lq, Lk))
        return np.ascontiguousarray(full, dtype=np.uint8), causal

    # ------------------------------------------------------------------ forward / backward
    def _check_input(self, what, x, built_shape):
        if x.ndim != len(built_shape) or any(b is not None and b != s for b, s in zip(built_shape[1:], x.shape[1:])):
            raise ValueError(f'Layer "{self.name}" (MultiHeadAttention) was built for {what} shape '
                             f"{_shape_str(built_shape)}, received {what} of shape {_shape_str(x.shape)}")

    def _rows(self, x, dt):
        """x as C-contiguous rows (n, features) of the weights' dtype."""
        rows = x.reshape(-1, x.shape[-1])
        if rows.dtype != dt or not rows.flags.c_contiguous:
            rows = np.ascontiguousarray(rows, dtype=dt)
        return rows

    def _packed_weights(self, ctx, key, subs):
        """The kernels of ``subs`` side by side as one (dim, sum of widths) matrix, and their
        biases as one vector (or None): one GEMM then projects the same rows for all of them.
        Built at each call from the weights as stored (Keras's layout), so saved files and
        optimizers see the separate weights."""
        ws = [sub.kernel.value.reshape(sub.kernel.value.shape[0], -1) for sub in subs]
        width = sum(w.shape[1] for w in ws)
        wp = ctx.buf(key + "_w", (ws[0].shape[0], width), ws[0].dtype)
        np.concatenate(ws, axis=1, out=wp)
        if not self._use_bias:
            return wp, None
        bp = ctx.buf(key + "_b", (width,), ws[0].dtype)
        np.concatenate([sub.bias.value.reshape(-1) for sub in subs], out=bp)
        return wp, bp

    def _project(self, ctx, key, rows, subs):
        """rows @ [kernels of subs] + biases: (n, sum of widths), with the packed weights."""
        wp, bp = self._packed_weights(ctx, key, subs) if len(subs) > 1 else (
            subs[0].kernel.value.reshape(rows.shape[1], -1),
            subs[0].bias.value.reshape(-1) if subs[0].bias is not None else None)
        out = ctx.buf(key, (rows.shape[0], wp.shape[1]), rows.dtype)
        _dense.forward(rows, wp, bp, None, out, 0, 0.0, config._n_threads)
        return out, wp

    def forward(self, ctx: Any, query: np.ndarray, value: np.ndarray, key: np.ndarray | None = None,
                query_mask: ArrayLike | None = None, value_mask: ArrayLike | None = None,
                key_mask: ArrayLike | None = None, attention_mask: ArrayLike | None = None,
                return_attention_scores: bool = False, training: bool = False,
                use_causal_mask: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        given = [query is not None, value is not None, key is not None, query_mask is not None,
                 value_mask is not None, key_mask is not None, attention_mask is not None]
        # Projections that read the same rows share one GEMM: query, key and value of
        # self-attention (query is value, no separate key), or key and value.
        # (Only where the kernel's row order is the inputs': attention over the axis after batch.)
        if key is None and self._identity_perm:
            mode = "qkv" if query is value else "kv"
        else:
            mode = "sep"
        if key is None:
            key = value
        qs, vs = self._shapes["query_shape"], self._shapes["value_shape"]
        self._check_input("query", query, qs)
        self._check_input("value", value, vs)
        self._check_input("key", key, self._shapes.get("key_shape", vs))
        if query.shape[0] != value.shape[0] or key.shape[:-1] != value.shape[:-1]:
            raise ValueError(f'Layer "{self.name}" (MultiHeadAttention): value and key must share every axis but '
                             f"the last with each other and the batch axis with query, received query "
                             f"{_shape_str(query.shape)}, value {_shape_str(value.shape)}, key {_shape_str(key.shape)}")
        for a in self._others:
            if query.shape[a] != value.shape[a]:
                raise ValueError(f'Layer "{self.name}" (MultiHeadAttention): axis {a} is not an attention axis, '
                                 f"so query and value must agree on it; received query {_shape_str(query.shape)} "
                                 f"and value {_shape_str(value.shape)}")
        dt = self.query_dense.kernel.value.dtype
        H, dk, dv = self._num_heads, self._key_dim, self._value_dim
        B = query.shape[0]
        lead = B * math.prod(query.shape[a] for a in self._others)
        q_full = query.shape[:-1] + (H, dk)
        kv_mid = value.shape[:-1]
        hk, hv = H * dk, H * dv
        xq = self._rows(query, dt)
        if mode == "qkv":
            xk = xv = xq
            proj, wq = self._project(ctx, "qkv", xq, (self.query_dense, self.key_dense, self.value_dense))
            qp, kp, vp = proj[:, :hk], proj[:, hk:2 * hk], proj[:, 2 * hk:]
            wkv = None
        elif mode == "kv":
            xv = self._rows(value, dt)
            xk = xv
            qp, wq = self._project(ctx, "q", xq, (self.query_dense,))
            proj, wkv = self._project(ctx, "kv", xv, (self.key_dense, self.value_dense))
            kp, vp = proj[:, :hk], proj[:, hk:]
        else:
            xk, xv = self._rows(key, dt), self._rows(value, dt)
            qp, wq = self._project(ctx, "q", xq, (self.query_dense,))
            kp, _ = self._project(ctx, "k", xk, (self.key_dense,))
            vp, _ = self._project(ctx, "v", xv, (self.value_dense,))
            wkv = None
        qk = self._to_kernel(ctx, "qk", qp.reshape(q_full), lead)
        kk = self._to_kernel(ctx, "kk", kp.reshape(kv_mid + (H, dk)), lead)
        vk = self._to_kernel(ctx, "vk", vp.reshape(kv_mid + (H, dv)), lead)
        Lq, Lk = qk.shape[1], kk.shape[1]
        scores_shape = self.compute_scores_shape(query.shape, value.shape)
        mask, causal = self._build_mask(query.shape, value.shape, scores_shape, query_mask, value_mask, key_mask,
                                        attention_mask, use_causal_mask, lead, Lq, Lk)
        rate = self._dropout if training else 0.0
        seed = self._next_seed() if rate > 0 else 0
        o = ctx.buf("o", (lead, Lq, H, dv), dt)
        p = ctx.buf("p", (lead, H, Lq, Lk), dt) if (ctx.record or return_attention_scores) else None
        _attn.forward(qk, kk, vk, o, p, mask, causal, self._inverse_sqrt_key_dim, rate, seed, config._n_threads)
        heads = self._from_kernel(ctx, "o_full", o, query.shape[:-1] + (H, dv)).reshape(-1, hv)
        wo = self.output_dense.kernel.value
        n_out = math.prod(self._out_tail)
        y = ctx.buf("y", (heads.shape[0], n_out), dt)
        bo = self.output_dense.bias
        _dense.forward(heads, wo.reshape(hv, n_out), bo.value.reshape(-1) if bo is not None else None, None, y,
                       0, 0.0, config._n_threads)
        if ctx.record:
            ctx.given = given
            ctx.mode = mode
            ctx.shapes = (query.shape, key.shape, value.shape)
            ctx.xq, ctx.xk, ctx.xv = xq, xk, xv
            ctx.wq, ctx.wkv = wq, wkv
            ctx.qk, ctx.kk, ctx.vk, ctx.o, ctx.p, ctx.heads = qk, kk, vk, o, p, heads
            ctx.causal, ctx.rate, ctx.seed, ctx.lead = causal, rate, seed, lead
            ctx.scores_shape = scores_shape
        y = y.reshape(query.shape[:-1] + self._out_tail)
        if return_attention_scores:
            return y, p.reshape(scores_shape)
        return y

    def _packed_backward(self, ctx, key, x, g, w, subs, need_dx):
        """Weight gradients of the projections ``subs`` packed side by side (g: the gradient
        of their packed output, w: their packed kernels); returns the input gradient (the sum
        over subs) or None."""
        train = self.trainable
        dt = g.dtype
        single = len(subs) == 1
        want_w = train and any(sub.kernel.trainable for sub in subs)
        want_b = train and self._use_bias and any(sub.bias.trainable for sub in subs)
        if single:
            sub = subs[0]
            dw = sub.kernel.grad_buffer().reshape(w.shape) if want_w else None
            db = sub.bias.grad_buffer().reshape(-1) if want_b else None
        else:
            dw = ctx.buf(key + "_dw", w.shape, dt) if want_w else None
            db = ctx.buf(key + "_db", (w.shape[1],), dt) if want_b else None
        dx = ctx.buf("dx" + key, x.shape, dt) if need_dx else None
        if dw is not None or db is not None or dx is not None:
            _dense.backward(g, x, w, g, None, None, dw, db, dx, 0, 0.0, config._n_threads)
        if not single:
            c0 = 0
            for sub in subs:
                width = math.prod(sub.kernel.value.shape[1:])
                if dw is not None and sub.kernel.trainable:
                    sub.kernel.grad_buffer().reshape(w.shape[0], width)[...] = dw[:, c0:c0 + width]
                if db is not None and sub.bias.trainable:
                    sub.bias.grad_buffer().reshape(-1)[...] = db[c0:c0 + width]
                c0 += width
        return dx

    def backward(self, ctx: Any, dy: np.ndarray | Sequence[np.ndarray | None]) -> list[np.ndarray | None]:
        """Gradients for the tensor arguments forward received, in the order query, value, key,
        query_mask, value_mask, key_mask, attention_mask (None for masks); dy is the output's
        gradient, or [d output, d scores] when forward returned the scores."""
        dscores = None
        if isinstance(dy, (list, tuple)):
            dy, dscores = dy[0], (dy[1] if len(dy) > 1 else None)
        qshape, kshape, vshape = ctx.shapes
        H, dk, dv = self._num_heads, self._key_dim, self._value_dim
        hk, hv = H * dk, H * dv
        dt = ctx.heads.dtype
        n_out = math.prod(self._out_tail)
        if dy is None:
            dy2 = np.zeros((ctx.heads.shape[0], n_out), dtype=dt)
        else:
            dy2 = np.ascontiguousarray(dy, dtype=dt).reshape(-1, n_out)
        train = self.trainable
        wo, bo = self.output_dense.kernel, self.output_dense.bias
        dwo = wo.grad_buffer().reshape(hv, n_out) if train and wo.trainable else None
        dbo = bo.grad_buffer().reshape(-1) if train and bo is not None and bo.trainable else None
        dheads = ctx.buf("dheads", (dy2.shape[0], hv), dt)
        _dense.backward(dy2, ctx.heads, wo.value.reshape(hv, n_out), dy2, None, None, dwo, dbo, dheads, 0, 0.0,
                        config._n_threads)
        do = self._to_kernel(ctx, "dok", dheads.reshape(qshape[:-1] + (H, dv)), ctx.lead)
        if dscores is not None:
            dscores = np.ascontiguousarray(dscores, dtype=dt).reshape(ctx.p.shape)
        need_dx = getattr(ctx, "need_dx", True)
        mode = ctx.mode
        lead, Lq, Lk = ctx.lead, ctx.qk.shape[1], ctx.kk.shape[1]
        if mode == "qkv":  # the kernel writes the three gradients side by side, as projected
            g = ctx.buf("dqkv", (ctx.xq.shape[0], 2 * hk + hv), dt)
            dqk = g[:, :hk].reshape(lead, Lq, H, dk)
            dkk = g[:, hk:2 * hk].reshape(lead, Lk, H, dk)
            dvk = g[:, 2 * hk:].reshape(lead, Lk, H, dv)
        elif mode == "kv":
            g = ctx.buf("dkv", (ctx.xv.shape[0], hk + hv), dt)
            dqk = ctx.buf("dqk", ctx.qk.shape, dt)
            dkk = g[:, :hk].reshape(lead, Lk, H, dk)
            dvk = g[:, hk:].reshape(lead, Lk, H, dv)
        else:
            dqk = ctx.buf("dqk", ctx.qk.shape, dt)
            dkk = ctx.buf("dkk", ctx.kk.shape, dt)
            dvk = ctx.buf("dvk", ctx.vk.shape, dt)
        _attn.backward(ctx.qk, ctx.kk, ctx.vk, ctx.o, ctx.p, do, dqk, dkk, dvk, ctx.causal,
                       self._inverse_sqrt_key_dim, ctx.rate, ctx.seed, config._n_threads, dscores)
        subs = (self.query_dense, self.key_dense, self.value_dense)
        if mode == "qkv":
            # query is value (one tensor): its gradient, through all three projections, is one
            # GEMM of the packed gradient with the packed kernels, returned as query's (value's
            # is None, as the caller would only add the two).
            dq = self._packed_backward(ctx, "qkv", ctx.xq, g, ctx.wq, subs, need_dx)
            dq = None if dq is None else dq.reshape(qshape)
            dval = dkey = None
        else:
            dqf = self._from_kernel(ctx, "dq_full", dqk, qshape[:-1] + (H, dk)).reshape(-1, hk)
            dq = self._packed_backward(ctx, "q", ctx.xq, np.ascontiguousarray(dqf), ctx.wq, subs[:1], need_dx)
            dq = None if dq is None else dq.reshape(qshape)
            if mode == "kv":
                dval = self._packed_backward(ctx, "kv", ctx.xv, g, ctx.wkv, subs[1:], need_dx)
                dval = None if dval is None else dval.reshape(vshape)
                dkey = None
            else:
                grads = []
                for tag, sub, x, dker, shape, d in (("k", self.key_dense, ctx.xk, dkk, kshape, dk),
                                                    ("v", self.value_dense, ctx.xv, dvk, vshape, dv)):
                    dproj = self._from_kernel(ctx, "d" + tag + "_full", dker, shape[:-1] + (H, d)).reshape(-1, H * d)
                    w = sub.kernel.value.reshape(x.shape[1], H * d)
                    dx = self._packed_backward(ctx, tag, x, np.ascontiguousarray(dproj), w, (sub,), need_dx)
                    grads.append(None if dx is None else dx.reshape(shape))
                dkey, dval = grads
                if not ctx.given[2]:  # key was value: both gradients belong to value
                    if dval is not None:
                        dval += dkey
                    dkey = None
        full = [dq, dval, dkey, None, None, None, None]
        return [g for g, present in zip(full, ctx.given) if present]

    # ------------------------------------------------------------------ eager use
    def __call__(self, query: Any, value: Any = None, key: Any = None, query_mask: ArrayLike | None = None,
                 value_mask: ArrayLike | None = None, key_mask: ArrayLike | None = None,
                 attention_mask: ArrayLike | None = None, return_attention_scores: bool = False,
                 training: bool | None = None, use_causal_mask: bool = False, **kwargs) -> Any:
        if _is_symbolic((query, value, key)):
            if not self.built and isinstance(query, KerasTensor) and isinstance(value, KerasTensor):
                self.build(query.shape, value.shape, key.shape if isinstance(key, KerasTensor) else None)
            # ``training`` is kept in the graph only when given: otherwise the loop's applies.
            extra = {} if training is None else {"training": training}
            return super().__call__(query, value=value, key=key, query_mask=query_mask, value_mask=value_mask,
                                    key_mask=key_mask, attention_mask=attention_mask,
                                    return_attention_scores=return_attention_scores,
                                    use_causal_mask=use_causal_mask, **extra, **kwargs)
        training = bool(training)
        ctx = _new_ctx(record=True)
        out = self._eager(ctx, query, value, key, query_mask, value_mask, key_mask, attention_mask,
                          return_attention_scores, training, use_causal_mask, kwargs)
        self._last_ctx = ctx
        return out

    def call(self, query: ArrayLike, value: ArrayLike, key: ArrayLike | None = None,
             query_mask: ArrayLike | None = None, value_mask: ArrayLike | None = None,
             key_mask: ArrayLike | None = None, attention_mask: ArrayLike | None = None,
             return_attention_scores: bool = False, training: bool = False,
             use_causal_mask: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        return self._eager(_new_ctx(record=False), query, value, key, query_mask, value_mask, key_mask,
                           attention_mask, return_attention_scores, training, use_causal_mask, {})

    def _eager(self, ctx, query, value, key, query_mask, value_mask, key_mask, attention_mask,
               return_attention_scores, training, use_causal_mask, kwargs):
        if kwargs:
            raise TypeError(f'Layer "{self.name}" (MultiHeadAttention) got unexpected call arguments '
                            f"{sorted(kwargs)}; it takes query, value, key, query_mask, value_mask, key_mask, "
                            f"attention_mask, return_attention_scores, training, use_causal_mask")
        if value is None:
            raise ValueError(f'Layer "{self.name}" (MultiHeadAttention) needs query and value: '
                             f"layer(query, value, key=None, ...)")
        query, value = self._convert(query), self._convert(value)
        key = self._convert(key) if key is not None else None
        if not self.built:
            self.build((None,) + query.shape[1:], (None,) + value.shape[1:],
                       None if key is None else (None,) + key.shape[1:])
        return self.forward(ctx, query, value, key=key, query_mask=query_mask, value_mask=value_mask,
                            key_mask=key_mask, attention_mask=attention_mask,
                            return_attention_scores=bool(return_attention_scores), training=bool(training),
                            use_causal_mask=bool(use_causal_mask))

    # ------------------------------------------------------------------ config
    def get_config(self) -> Config:
        cfg = super().get_config()
        cfg.update({
            "num_heads": self._num_heads,
            "key_dim": self._key_dim,
            "value_dim": self._value_dim,
            "dropout": self._dropout,
            "use_bias": self._use_bias,
            "use_gate": False,
            "output_shape": list(self._output_shape) if self._output_shape else None,
            "attention_axes": list(self._attention_axes) if self._attention_axes is not None else None,
            "sliding_window": self._sliding_window,
            "kernel_initializer": _serialize_initializer(self._kernel_initializer),
            "bias_initializer": _serialize_initializer(self._bias_initializer),
            "kernel_regularizer": _serialize_regularizer(self._kernel_regularizer),
            "bias_regularizer": _serialize_regularizer(self._bias_regularizer),
            "activity_regularizer": _serialize_regularizer(self._activity_regularizer),
            "kernel_constraint": _serialize_constraint(self._kernel_constraint),
            "bias_constraint": _serialize_constraint(self._bias_constraint),
            "seed": self.seed,
        })
        return cfg


class Attention(Layer):
    """Dot-product attention (Luong-style): ``softmax(scores) @ value`` with
    ``scores = query @ key^T`` (times a trainable scalar ``scale`` when ``use_scale``), or
    with ``score_mode="concat"``: ``scores = concat_score_weight * sum(tanh(scale * (q_i + k_j)))``.

    Args:
        use_scale: learn a scalar that multiplies the scores (initialised to 1).
        score_mode: ``"dot"`` or ``"concat"``.
        dropout: dropout rate on the attention probabilities while training.
        seed: optional int for reproducible dropout.

    Call arguments:
        inputs: ``[query, value]`` or ``[query, value, key]`` (key defaults to value).
        mask: optional ``[query_mask, value_mask]`` boolean masks ``(B, Tq)`` and ``(B, Tv)``:
            masked values take no part; masked query rows give output 0.
        training: dropout only when True.
        return_attention_scores: also return the probabilities ``(B, Tq, Tv)``.
        use_causal_mask: query i attends only to values 0..i.

    A query whose values are all masked gets probabilities 0.

    Input shape:
        query ``(batch, Tq, dim)``, value ``(batch, Tv, dim_v)``, key ``(batch, Tv, dim)``.

    Output shape:
        ``(batch, Tq, dim_v)``.
    """

    _score_modes = ("dot", "concat")

    def __init__(self, use_scale: bool = False, score_mode: str = "dot", dropout: float = 0.0,
                 seed: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        cls = type(self).__name__
        self.use_scale = bool(use_scale)
        if score_mode not in self._score_modes:
            raise ValueError(f"Invalid value for argument score_mode of {cls}. Expected one of "
                             f"{set(self._score_modes)}. Received: score_mode={score_mode!r}")
        self.score_mode = score_mode
        self.dropout = _rate(dropout, cls)
        self.seed = seed
        self._rng = np.random.default_rng(seed) if seed is not None else None
        self.scale = None
        self.concat_score_weight = None
        self.supports_masking = True

    def _next_seed(self):
        rng = self._rng if self._rng is not None else _random.generator()
        return int(rng.integers(0, 2 ** 63 - 1))

    def _validate(self, inputs, mask=None):
        cls = type(self).__name__
        if not isinstance(inputs, (list, tuple)):
            raise ValueError(f"{cls} layer must be called on a list of inputs, namely [query, value] or "
                             f"[query, value, key]. Received: inputs of type {type(inputs).__name__}")
        if not 2 <= len(inputs) <= 3:
            raise ValueError(f"{cls} layer accepts inputs list of length 2 or 3, namely [query, value] or "
                             f"[query, value, key]. Received length: {len(inputs)}")
        if mask is not None:
            if not isinstance(mask, (list, tuple)) or not 2 <= len(mask) <= 3:
                raise ValueError(f"{cls} layer mask must be a list of length 2 or 3, namely "
                                 f"[query_mask, value_mask]. Received: mask={mask!r}")

    def build(self, input_shape: Sequence[ShapeLike]) -> None:
        self._validate(list(input_shape))
        shapes = [tuple(s) for s in input_shape]
        q, v = shapes[0], shapes[1]
        k = shapes[2] if len(shapes) > 2 else v
        cls = type(self).__name__
        for what, s in (("query", q), ("value", v), ("key", k)):
            if len(s) != 3:
                raise ValueError(f'Layer "{self.name}" ({cls}) expects {what} of rank 3 (batch, steps, dim), '
                                 f"received shape {_shape_str(s)}")
        if q[-1] != k[-1] and q[-1] is not None and k[-1] is not None:
            raise ValueError(f'Layer "{self.name}" ({cls}): query and key must have the same last dimension, '
                             f"received query {_shape_str(q)} and key {_shape_str(k)}")
        if k[1] != v[1] and k[1] is not None and v[1] is not None:
            raise ValueError(f'Layer "{self.name}" ({cls}): key and value must have the same number of steps, '
                             f"received key {_shape_str(k)} and value {_shape_str(v)}")
        self._make_weights(q)
        self._build_shape = [s for s in shapes]
        self.built = True

    def _scalar_weight(self, name):
        # Keras's scalar weights have shape (); add_weight's C-contiguous copy makes 0-d arrays
        # 1-d, so the weight is made with shape (1,) and viewed as a scalar.
        var = self.add_weight(name, (1,), "ones")
        var.value = var.value.reshape(())
        return var

    def _make_weights(self, query_shape):
        if self.use_scale:
            self.scale = self._scalar_weight("scale")
        if self.score_mode == "concat":
            self.concat_score_weight = self._scalar_weight("concat_score_weight")

    def compute_output_shape(self, input_shape: Sequence[ShapeLike]) -> Shape:
        return tuple(input_shape[0][:-1]) + (input_shape[1][-1],)

    def compute_output_spec(self, inputs: Sequence[Any], mask: Any = None, return_attention_scores: bool = False,
                            **kwargs) -> Shape | tuple[Shape, Shape]:
        shapes = [t.shape for t in inputs]
        out = self.compute_output_shape(shapes)
        if return_attention_scores:
            key = shapes[2] if len(shapes) > 2 else shapes[1]
            return out, tuple(shapes[0][:-1]) + (key[-2],)
        return out

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        if mask is None or mask[0] is None:
            return None
        return np.asarray(mask[0])

    # ------------------------------------------------------------------ additive scores
    def _additive_weights(self, dim, dtype):
        """(w, a) of the additive-scores kernel: scores = sum_d w_d tanh(a (q_id + k_jd))."""
        w = np.full(dim, self.concat_score_weight.value, dtype=dtype)
        a = float(self.scale.value) if self.scale is not None else 1.0
        return w, a

    def _scores(self, ctx, q, k):
        """Scores of the concat mode: c * sum_d tanh(s * (q_id + k_jd)), (B, Tq, Tv)."""
        w, a = self._additive_weights(q.shape[2], q.dtype)
        out = ctx.buf("scores", (q.shape[0], q.shape[1], k.shape[1]), q.dtype)
        _attn.additive_forward(q, k, w, a, out, config._n_threads)
        return out

    def _scores_backward(self, ctx, g):
        """Given dL/dscores g (B, Tq, Tv): dq, dk; writes the weights' gradients."""
        q, k = ctx.q, ctx.k
        w, a = self._additive_weights(q.shape[2], q.dtype)
        dq, dk = np.empty_like(q), np.empty_like(k)
        dw = np.empty(q.shape[2], dtype=np.float64)
        da = _attn.additive_backward(q, k, w, a, np.ascontiguousarray(g, dtype=q.dtype), dq, dk, dw,
                                     config._n_threads)
        c, s = self.concat_score_weight, self.scale
        if self.trainable and c.trainable:
            c.grad_buffer()[...] = dw.sum()  # every entry of w is c
        if self.trainable and s is not None and s.trainable:
            s.grad_buffer()[...] = da
        return dq, dk

    # ------------------------------------------------------------------ forward / backward
    def forward(self, ctx: Any, inputs: Sequence[np.ndarray], mask: Sequence[ArrayLike | None] | None = None,
                training: bool = False, return_attention_scores: bool = False,
                use_causal_mask: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        self._validate(inputs, mask)
        q, v = inputs[0], inputs[1]
        k = inputs[2] if len(inputs) > 2 else v
        cls = type(self).__name__
        if q.ndim != 3 or v.ndim != 3 or k.ndim != 3 or q.shape[0] != v.shape[0] or k.shape[:2] != v.shape[:2] \
                or q.shape[2] != k.shape[2]:
            raise ValueError(f'Layer "{self.name}" ({cls}) expects query (B, Tq, dim), value (B, Tv, dim_v) and '
                             f"key (B, Tv, dim); received query {_shape_str(q.shape)}, value "
                             f"{_shape_str(v.shape)}, key {_shape_str(k.shape)}")
        q_mask = mask[0] if mask else None
        v_mask = mask[1] if mask else None
        B, Tq, Tv = q.shape[0], q.shape[1], k.shape[1]
        dt = q.dtype
        kmask = None
        if v_mask is not None:
            vm = np.asarray(v_mask)
            vm = vm.astype(bool) if vm.dtype.kind == "b" else vm != 0
            if vm.ndim == 2:
                vm = vm[:, None, :]
            try:
                vm = np.broadcast_to(vm, (B, Tq, Tv))
            except ValueError:
                raise ValueError(f'Layer "{self.name}" ({cls}): value mask of shape {_shape_str(np.shape(v_mask))} '
                                 f"does not fit (batch, Tv) = {_shape_str((B, Tv))}") from None
            kmask = np.ascontiguousarray(vm, dtype=np.uint8).reshape(B, 1, Tq, Tv)
        rate = self.dropout if training else 0.0
        seed = self._next_seed() if rate > 0 else 0
        need_p = ctx.record or return_attention_scores
        if self.score_mode == "dot":
            s = float(self.scale.value) if self.scale is not None else 1.0
            o = ctx.buf("o", (B, Tq, 1, v.shape[2]), dt)
            p = ctx.buf("p", (B, 1, Tq, Tv), dt) if need_p else None
            _attn.forward(q.reshape(B, Tq, 1, -1), k.reshape(B, Tv, 1, -1), v.reshape(B, Tv, 1, -1), o, p, kmask,
                          bool(use_causal_mask), s, rate, seed, config._n_threads)
            out = o.reshape(B, Tq, v.shape[2])
            probs = p.reshape(B, Tq, Tv) if p is not None else None
            keep = None
        else:
            scores = self._scores(ctx, q, k)
            allowed = np.ones((B, Tq, Tv), dtype=bool) if kmask is None else kmask.reshape(B, Tq, Tv).astype(bool)
            if use_causal_mask:
                allowed &= np.tril(np.ones((Tq, Tv), dtype=bool))
            scores = np.where(allowed, scores, -np.inf)
            mx = scores.max(axis=-1, keepdims=True)
            empty = ~np.isfinite(mx)
            e = np.where(allowed, np.exp(scores - np.where(empty, 0, mx)), 0)
            total = e.sum(axis=-1, keepdims=True)
            probs = np.where(empty, 0, e / np.where(empty, 1, total)).astype(dt)
            keep = None
            pd = probs
            if rate > 0:
                flat = probs.reshape(-1)
                pd_flat = np.empty_like(flat)
                keep = np.empty(flat.shape[0], dtype=np.uint8)
                _dropout.forward(flat, pd_flat, keep, rate, seed, config._n_threads)
                pd = pd_flat.reshape(probs.shape)
            out = np.matmul(pd, v)
            o = None
        if q_mask is not None:
            qm = np.asarray(q_mask)
            qm = (qm.astype(bool) if qm.dtype.kind == "b" else qm != 0).reshape(B, Tq, 1)
            out = np.where(qm, out, 0).astype(dt)
        else:
            qm = None
        if ctx.record:
            ctx.n_inputs = len(inputs)
            ctx.q, ctx.k, ctx.v, ctx.o, ctx.probs, ctx.keep = q, k, v, o, probs, keep
            ctx.rate, ctx.seed, ctx.causal, ctx.qm = rate, seed, bool(use_causal_mask), qm
        if return_attention_scores:
            return out, probs
        return out

    def backward(self, ctx: Any, dy: np.ndarray | Sequence[np.ndarray | None]) -> list[np.ndarray]:
        """Gradients for [query, value] (or [query, value, key]); dy is the output's gradient, or
        [d output, d scores] when forward returned the scores."""
        dscores = None
        if isinstance(dy, (list, tuple)):
            dy, dscores = dy[0], (dy[1] if len(dy) > 1 else None)
        q, k, v = ctx.q, ctx.k, ctx.v
        B, Tq, Tv = q.shape[0], q.shape[1], k.shape[1]
        dt = q.dtype
        dy = np.zeros((B, Tq, v.shape[2]), dt) if dy is None else np.asarray(dy, dtype=dt)
        if ctx.qm is not None:
            dy = np.where(ctx.qm, dy, 0).astype(dt)
        dy = np.ascontiguousarray(dy)
        if dscores is not None:
            dscores = np.ascontiguousarray(dscores, dtype=dt)
        train = self.trainable
        if self.score_mode == "dot":
            q4, k4, v4 = q.reshape(B, Tq, 1, -1), k.reshape(B, Tv, 1, -1), v.reshape(B, Tv, 1, -1)
            dq = np.empty_like(q4)
            dk = np.empty_like(k4)
            dv = np.empty_like(v4)
            s = self.scale
            # with a learnt scale, run backward at scale 1: dS K and dS^T Q give both the input
            # gradients (times the scale) and the scale's gradient, sum(dS * q k^T) = sum(q * dS K)
            _attn.backward(q4, k4, v4, ctx.o, ctx.probs.reshape(B, 1, Tq, Tv), dy.reshape(B, Tq, 1, -1), dq, dk, dv,
                           ctx.causal, 1.0, ctx.rate, ctx.seed, config._n_threads,
                           None if dscores is None else dscores.reshape(B, 1, Tq, Tv))
            if s is not None:
                if train and s.trainable:
                    s.grad_buffer()[...] = np.vdot(q4, dq)
                dq *= s.value
                dk *= s.value
            dq, dk, dv = dq.reshape(q.shape), dk.reshape(k.shape), dv.reshape(v.shape)
        else:
            probs = ctx.probs
            if ctx.keep is not None:
                factor = (ctx.keep.reshape(probs.shape) * (1.0 / (1.0 - ctx.rate))).astype(dt)
                pd = probs * factor
            else:
                factor = None
                pd = probs
            dv = np.matmul(pd.transpose(0, 2, 1), dy)
            dp = np.matmul(dy, v.transpose(0, 2, 1))
            if factor is not None:
                dp = dp * factor
            if dscores is not None:
                dp = dp + dscores
            g = probs * (dp - (dp * probs).sum(axis=-1, keepdims=True))
            dq, dk = self._scores_backward(ctx, g)
            dq, dk, dv = dq.astype(dt), dk.astype(dt), dv.astype(dt)
        if ctx.n_inputs == 2:
            return [dq, dv + dk]
        return [dq, dv, dk]

    # ------------------------------------------------------------------ eager use
    def _convert_list(self, inputs):
        if not isinstance(inputs, (list, tuple)):
            self._validate(inputs)
        return [self._convert(x) for x in inputs]

    def __call__(self, inputs: Any, mask: Sequence[ArrayLike | None] | None = None, training: bool | None = None,
                 return_attention_scores: bool = False, use_causal_mask: bool = False, **kwargs) -> Any:
        if _is_symbolic((inputs,)):
            extra = {} if training is None else {"training": training}
            return super().__call__(inputs, mask=mask, return_attention_scores=return_attention_scores,
                                    use_causal_mask=use_causal_mask, **extra, **kwargs)
        if kwargs:
            raise TypeError(f'Layer "{self.name}" ({type(self).__name__}) got unexpected call arguments '
                            f"{sorted(kwargs)}; it takes inputs, mask, training, return_attention_scores, "
                            f"use_causal_mask")
        xs = self._convert_list(inputs)
        if not self.built:
            self.build([(None,) + x.shape[1:] for x in xs])
        ctx = _new_ctx(record=True)
        out = self.forward(ctx, xs, mask=mask, training=bool(training),
                           return_attention_scores=bool(return_attention_scores),
                           use_causal_mask=bool(use_causal_mask))
        self._last_ctx = ctx
        return out

    def call(self, inputs: Sequence[ArrayLike], mask: Sequence[ArrayLike | None] | None = None,
             training: bool = False, return_attention_scores: bool = False,
             use_causal_mask: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        xs = self._convert_list(inputs)
        if not self.built:
            self.build([(None,) + x.shape[1:] for x in xs])
        return self.forward(_new_ctx(record=False), xs, mask=mask, training=bool(training),
                            return_attention_scores=bool(return_attention_scores),
                            use_causal_mask=bool(use_causal_mask))

    def get_config(self) -> Config:
        cfg = super().get_config()
        cfg.update({"use_scale": self.use_scale, "score_mode": self.score_mode, "dropout": self.dropout,
                    "seed": self.seed})
        return cfg

    def get_build_config(self) -> Config | None:
        if self._build_shape is None:
            return None
        return {"input_shape": [list(s) for s in self._build_shape]}

    def build_from_config(self, build_config: Config) -> None:
        shapes = (build_config or {}).get("input_shape")
        if shapes and not self.built:
            self.build([tuple(s) for s in shapes])


class AdditiveAttention(Attention):
    """Additive (Bahdanau-style) attention: ``scores_ij = sum_d scale_d * tanh(q_id + k_jd)``,
    then ``softmax(scores) @ value``.

    Args:
        use_scale: learn the vector ``scale`` (size dim, Glorot-uniform initialised); without
            it the scale is 1.
        dropout: dropout rate on the attention probabilities while training.
        seed: optional int for reproducible dropout.

    Call arguments, input and output shapes: as ``Attention``.
    """

    def __init__(self, use_scale: bool = True, dropout: float = 0.0, **kwargs) -> None:
        kwargs.pop("score_mode", None)
        super().__init__(use_scale=use_scale, dropout=dropout, **kwargs)
        self.score_mode = "additive"

    def _make_weights(self, query_shape):
        if self.use_scale:
            self.scale = self.add_weight("scale", (query_shape[-1],), "glorot_uniform")

    def _scores(self, ctx, q, k):
        w = self.scale.value if self.scale is not None else np.ones(q.shape[2], dtype=q.dtype)
        out = ctx.buf("scores", (q.shape[0], q.shape[1], k.shape[1]), q.dtype)
        _attn.additive_forward(q, k, w, 1.0, out, config._n_threads)
        return out

    def _scores_backward(self, ctx, g):
        q, k = ctx.q, ctx.k
        s = self.scale
        w = s.value if s is not None else np.ones(q.shape[2], dtype=q.dtype)
        dq, dk = np.empty_like(q), np.empty_like(k)
        dw = np.empty(q.shape[2], dtype=np.float64)
        _attn.additive_backward(q, k, w, 1.0, np.ascontiguousarray(g, dtype=q.dtype), dq, dk, dw, config._n_threads)
        if s is not None and self.trainable and s.trainable:
            s.grad_buffer()[...] = dw
        return dq, dk

    def get_config(self) -> Config:
        cfg = super().get_config()
        del cfg["score_mode"]
        return cfg

