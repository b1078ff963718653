"""Layer wrappers: Bidirectional (a recurrent layer run both ways) and TimeDistributed."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from fastnet.layers.base import CallContext, Layer, _shape_str

if TYPE_CHECKING:
    from collections.abc import Sequence

    from fastnet._typing import ArrayLike, Config, Shape, ShapeLike

__all__ = ["Bidirectional", "TimeDistributed"]

_MERGE_MODES = ("concat", "sum", "mul", "ave", None)


def _recreate(layer, **changes):
    cfg = layer.get_config()
    cfg.update(changes)
    for k in ("batch_input_shape",):
        cfg.pop(k, None)
    return type(layer).from_config(cfg)


class Bidirectional(Layer):
    """Runs a recurrent layer forwards and a copy of it backwards, and merges the outputs.

    Args:
        layer: a recurrent layer (SimpleRNN, LSTM, GRU or RNN).
        merge_mode: how the two outputs are combined: ``"concat"`` (default), ``"sum"``,
            ``"mul"``, ``"ave"``, or None for the list ``[forward, backward]``.
        backward_layer: optional layer for the backward direction (it must have
            ``go_backwards=True`` opposite to ``layer``).

    With return_sequences the backward output is flipped back to the forward time
    order before merging; masked steps output zeros in both directions.
    With return_state the outputs are ``[merged, *forward_states, *backward_states]``.

    Example:
        >>> import numpy as np
        >>> from fastnet.layers import Bidirectional, LSTM
        >>> Bidirectional(LSTM(4, return_sequences=True))(np.zeros((2, 5, 3))).shape
        (2, 5, 8)
    """

    _call_takes_mask = True

    def __init__(self, layer: Layer, merge_mode: str | None = "concat", weights: Sequence[ArrayLike] | None = None,
                 backward_layer: Layer | None = None, **kwargs) -> None:
        from fastnet.layers.recurrent import RNN

        if not isinstance(layer, RNN):
            raise ValueError(f"Bidirectional wraps a recurrent layer (SimpleRNN, LSTM, GRU, RNN); "
                             f"received layer={layer!r}")
        if backward_layer is not None and not isinstance(backward_layer, RNN):
            raise ValueError(f"Bidirectional backward_layer must be a recurrent layer, received "
                             f"{backward_layer!r}")
        if merge_mode not in _MERGE_MODES:
            raise ValueError(f"Invalid merge_mode {merge_mode!r}; expected one of "
                             f"{list(_MERGE_MODES)}")
        if layer._batch_input_shape is not None and "batch_input_shape" not in kwargs \
                and "input_shape" not in kwargs:
            kwargs["batch_input_shape"] = layer._batch_input_shape
        super().__init__(**kwargs)
        base = layer.name[len("forward_"):] if layer.name.startswith("forward_") else layer.name
        self.forward_layer = _recreate(layer, name="forward_" + base)
        if backward_layer is None:
            self.backward_layer = _recreate(layer, name="backward_" + base,
                                            go_backwards=not layer.go_backwards)
        else:
            self.backward_layer = backward_layer
        f, b = self.forward_layer, self.backward_layer
        if f.go_backwards == b.go_backwards:
            raise ValueError(f"Bidirectional: the forward and backward layers must have different "
                             f"go_backwards, both have go_backwards={f.go_backwards}")
        for attr in ("stateful", "return_sequences", "return_state"):
            if getattr(f, attr) != getattr(b, attr):
                raise ValueError(f'Bidirectional: forward and backward layers must agree on "{attr}", '
                                 f"received {getattr(f, attr)} and {getattr(b, attr)}")
        for sub in (f, b):
            sub.zero_output_for_mask = sub.return_sequences
        self.merge_mode = merge_mode
        self.stateful = layer.stateful
        self.return_sequences = layer.return_sequences
        self.return_state = layer.return_state
        self.supports_masking = True
        self.input_spec = layer.input_spec
        self._initial_weights = weights

    @property
    def layer(self) -> Layer:
        return self.forward_layer

    def _check_spec(self, shape):
        self.forward_layer._check_spec(shape)

    def _maybe_build(self, input_shape):
        for sub in (self.forward_layer, self.backward_layer):
            sub._seen_batch = input_shape[0]
        super()._maybe_build(input_shape)

    def build(self, input_shape: ShapeLike) -> None:
        for sub in (self.forward_layer, self.backward_layer):
            if not sub.built:
                sub._maybe_build(tuple(input_shape))
        self._variables = self.forward_layer._variables + self.backward_layer._variables
        self.built = True
        if self._initial_weights:
            self.set_weights(self._initial_weights)
            self._initial_weights = None

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape | list[Shape]:
        out = self.forward_layer.compute_output_shape(input_shape)
        states = []
        if self.return_state:
            out, states = out[0], list(out[1:])
        if self.merge_mode == "concat":
            out = tuple(out[:-1]) + (None if out[-1] is None else out[-1] * 2,)
        elif self.merge_mode is None:
            out = [tuple(out), tuple(out)]
        if self.return_state:
            head = out if self.merge_mode is None else [out]
            return head + states + states
        return out

    def compute_mask(self, inputs: ArrayLike,
                     mask: ArrayLike | None = None) -> np.ndarray | list[np.ndarray | None] | None:
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        out = mask if self.return_sequences else None
        if self.merge_mode is None:
            out = [out, out]
        if self.return_state:
            n_states = len(self.forward_layer.state_size)
            head = out if isinstance(out, list) else [out]
            return head + [None] * (2 * n_states)
        return out

    def reset_states(self) -> None:
        if not self.stateful:
            raise AttributeError(f'Layer "{self.name}" is not stateful: reset_states() applies to '
                                 f"stateful layers")
        self.forward_layer.reset_states()
        self.backward_layer.reset_states()

    reset_state = reset_states

    @property
    def states(self) -> tuple[np.ndarray, ...] | None:
        f, b = self.forward_layer.states, self.backward_layer.states
        return tuple(f + b) if f and b else None

    def forward(self, ctx: CallContext, inputs: ArrayLike, training: bool = False,
                mask: ArrayLike | None = None,
                initial_state: Sequence[ArrayLike] | None = None) -> np.ndarray | list[np.ndarray]:
        f, b = self.forward_layer, self.backward_layer
        fs = bs = None
        if initial_state is not None:
            half = len(initial_state) // 2
            fs, bs = list(initial_state[:half]), list(initial_state[half:])
        ctx.child("forward").wrapped = ctx.child("backward").wrapped = True
        y = f.forward(ctx.child("forward"), inputs, training=training, mask=mask, initial_state=fs)
        y_rev = b.forward(ctx.child("backward"), inputs, training=training, mask=mask, initial_state=bs)
        states = []
        if self.return_state:
            states = list(y[1:]) + list(y_rev[1:])
            y, y_rev = y[0], y_rev[0]
        if self.return_sequences:
            y_rev = y_rev[:, ::-1]
        mode = self.merge_mode
        if mode == "concat":
            out = np.concatenate([y, y_rev], axis=-1)
        elif mode == "sum":
            out = y + y_rev
        elif mode == "ave":
            out = (y + y_rev) / y.dtype.type(2)
        elif mode == "mul":
            out = y * y_rev
        else:
            out = [y, np.ascontiguousarray(y_rev)]
        if ctx.record:
            ctx.y, ctx.y_rev = (y.copy(), y_rev.copy()) if mode == "mul" else (None, None)
        if self.return_state:
            return (out if mode is None else [out]) + states
        return out

    def backward(self, ctx: CallContext, dy: np.ndarray) -> np.ndarray | None:
        need_dx = ctx.need_dx
        f, b = self.forward_layer, self.backward_layer
        n_states = len(f.state_size)
        mode = self.merge_mode
        if self.return_state or mode is None:
            dy = list(dy)
        if mode is None:
            d_f, d_b = dy[0], dy[1]
            rest = dy[2:]
        else:
            d = dy[0] if self.return_state else dy
            rest = dy[1:] if self.return_state else []
            if d is None:
                d_f = d_b = None
            else:
                d = np.asarray(d)
                if mode == "concat":
                    u = d.shape[-1] // 2
                    d_f, d_b = d[..., :u], d[..., u:]
                elif mode == "sum":
                    d_f = d_b = d
                elif mode == "ave":
                    d_f = d_b = d / d.dtype.type(2)
                else:
                    d_f, d_b = d * ctx.y_rev, d * ctx.y
        if d_b is not None and self.return_sequences:
            d_b = np.asarray(d_b)[:, ::-1]
        if d_f is not None:
            d_f = np.ascontiguousarray(d_f)
        if d_b is not None:
            d_b = np.ascontiguousarray(d_b)
        cf, cb = ctx.child("forward"), ctx.child("backward")
        cf.need_dx = cb.need_dx = need_dx
        if self.return_state:
            rest = list(rest) + [None] * (2 * n_states - len(rest))
            dx_f = f.backward(cf, [d_f] + rest[:n_states])
            dx_b = b.backward(cb, [d_b] + rest[n_states:])
        else:
            dx_f = f.backward(cf, d_f)
            dx_b = b.backward(cb, d_b)
        if not need_dx:
            return None
        return dx_f + dx_b

    def get_config(self) -> Config:
        cfg = super().get_config()
        cfg["merge_mode"] = self.merge_mode
        cfg["layer"] = _serialize_layer(self.forward_layer)
        cfg["backward_layer"] = _serialize_layer(self.backward_layer)
        return cfg

    @classmethod
    def from_config(cls, config_dict: Config) -> Bidirectional:
        cfg = dict(config_dict)
        cfg["layer"] = _deserialize_layer(cfg["layer"])
        if cfg.get("backward_layer") is not None:
            cfg["backward_layer"] = _deserialize_layer(cfg["backward_layer"])
        return cls(**cfg)


def _serialize_layer(layer):
    return {"module": "keras.layers", "class_name": type(layer).__name__,
            "config": layer.get_config(), "registered_name": None}


def _deserialize_layer(obj):
    if not isinstance(obj, dict):
        return obj
    from fastnet import layers as _layers

    name = obj.get("class_name")
    cls = getattr(_layers, name, None)
    if cls is None:
        raise ValueError(f"Unknown layer class {name!r} in a wrapper's config")
    return cls.from_config(obj.get("config", {}))


class TimeDistributed(Layer):
    """Applies a layer to every time step (axis 1) of its input, with the same weights.

    Args:
        layer: the layer to apply to each (batch, ...) slice.

    Input shape: ``(batch, timesteps, ...)``. Output shape: ``(batch, timesteps, *layer output)``.

    Example:
        >>> import numpy as np
        >>> from fastnet.layers import Dense, TimeDistributed
        >>> TimeDistributed(Dense(8))(np.zeros((32, 10, 16))).shape
        (32, 10, 8)
    """

    def __init__(self, layer: Layer, **kwargs) -> None:
        if not isinstance(layer, Layer):
            raise ValueError(f"TimeDistributed wraps a layer instance, received layer={layer!r}")
        super().__init__(**kwargs)
        self.layer = layer
        self._variables = layer._variables
        self.supports_masking = True

    def _check_spec(self, shape):
        if len(shape) < 3:
            raise ValueError(
                f'Layer "{self.name}" (TimeDistributed) expects input of shape (batch, timesteps, '
                f"...) with rank >= 3, received input with shape {_shape_str(shape)}")

    def build(self, input_shape: ShapeLike) -> None:
        if len(input_shape) < 3:
            self._check_spec(input_shape)
        inner = (None,) + tuple(input_shape[2:])
        if not self.layer.built:
            self.layer._maybe_build(inner)
        self.built = True

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape:
        inner = self.layer.compute_output_shape((None,) + tuple(input_shape[2:]))
        return (input_shape[0], input_shape[1]) + tuple(inner[1:])

    def compute_mask(self, inputs: ArrayLike, mask: ArrayLike | None = None) -> np.ndarray | None:
        return mask

    def forward(self, ctx: CallContext, inputs: ArrayLike, training: bool = False) -> np.ndarray:
        n, steps = inputs.shape[0], inputs.shape[1]
        y = self.layer.forward(ctx.child("layer"), inputs.reshape((n * steps,) + inputs.shape[2:]),
                               training=training)
        if ctx.record:
            ctx.in_shape = inputs.shape
        return y.reshape((n, steps) + y.shape[1:])

    def backward(self, ctx: CallContext, dy: np.ndarray) -> np.ndarray | None:
        need_dx = ctx.need_dx
        n, steps = ctx.in_shape[0], ctx.in_shape[1]
        dy = np.ascontiguousarray(dy)
        inner = ctx.child("layer")
        inner.need_dx = need_dx
        dx = self.layer.backward(inner, dy.reshape((n * steps,) + dy.shape[2:]))
        if dx is None:
            return None
        return dx.reshape(ctx.in_shape)

    def get_config(self) -> Config:
        cfg = super().get_config()
        cfg["layer"] = _serialize_layer(self.layer)
        return cfg

    @classmethod
    def from_config(cls, config_dict: Config) -> TimeDistributed:
        cfg = dict(config_dict)
        cfg["layer"] = _deserialize_layer(cfg["layer"])
        return cls(**cfg)
