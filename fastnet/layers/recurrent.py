"""Recurrent layers: SimpleRNN, LSTM and GRU (and their cells, and the RNN wrapper).

Each layer runs its whole sequence in one compiled call (``fastnet._kernels.recurrent``):
one GEMM projects every step's input, then a time loop with one small GEMM and one
fused gate pass per step; backpropagation through time is fused the same way.

Weights live in the cell (``layer.cell.kernel`` ...), with Keras's names, shapes and
gate orders (LSTM i, f, c, o; GRU z, r, h), so ``get_weights``/``set_weights`` move
weights to and from Keras unchanged.

Dropout, as Keras applies it, only in training and with masks drawn once per batch
and held for every time step: ``dropout`` scales the inputs, ``recurrent_dropout``
the previous state before the recurrent product (the GRU's carry ``z * h`` uses the
undropped state). With ``recurrent_dropout`` every gate draws its own input and
recurrent masks; with ``dropout`` alone one input mask serves all gates.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from fastnet import activations, config, initializers, regularizers
from fastnet import random as _random
from fastnet._kernels import recurrent as _rk
from fastnet.layers.base import CallContext, InputSpec, Layer, _shape_str
from fastnet.layers.core import FusedActivation, _serialize_initializer, _serialize_regularizer, positive_int

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

    from fastnet._typing import (
        ActivationLike,
        ArrayLike,
        Config,
        ConstraintLike,
        InitializerLike,
        RegularizerLike,
        Shape,
        ShapeLike,
    )
    from fastnet.initializers import Initializer
    from fastnet.regularizers import Regularizer

__all__ = ["SimpleRNNCell", "LSTMCell", "GRUCell", "RNN", "SimpleRNN", "LSTM", "GRU"]

_SIMPLE, _LSTM, _GRU = 0, 1, 2


def _rate(value, what, owner):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ValueError(f"Invalid value for argument `{what}` of {owner}: expected a float in "
                         f"[0, 1], received {what}={value!r}")
    return min(1.0, max(0.0, float(value)))


def _fused(identifier, what, owner):
    act = FusedActivation(identifier)
    if not act.fused:
        raise ValueError(
            f"{owner} runs its `{what}` inside the compiled gate loop, which needs a built-in "
            f"activation; received {identifier!r}. Use one of {sorted(activations._BY_NAME)}")
    return act


class _Cell(Layer):
    """Shared configuration and weights of the built-in cells."""

    _kind = None
    _n_gates = 1

    def __init__(self, units: int, activation: ActivationLike = "tanh", use_bias: bool = True,
                 kernel_initializer: InitializerLike = "glorot_uniform",
                 recurrent_initializer: InitializerLike = "orthogonal", bias_initializer: InitializerLike = "zeros",
                 kernel_regularizer: RegularizerLike | None = None,
                 recurrent_regularizer: RegularizerLike | None = None, bias_regularizer: RegularizerLike | None = None,
                 kernel_constraint: ConstraintLike | None = None, recurrent_constraint: ConstraintLike | None = None,
                 bias_constraint: ConstraintLike | None = None, dropout: float = 0.0, recurrent_dropout: float = 0.0,
                 seed: int | None = None, **kwargs) -> None:
        kwargs.pop("implementation", None)
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.units = positive_int(units, "units", owner)
        self.activation = _fused(activation, "activation", owner)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = kernel_constraint
        self.recurrent_constraint = recurrent_constraint
        self.bias_constraint = bias_constraint
        self.dropout = _rate(dropout, "dropout", owner)
        self.recurrent_dropout = _rate(recurrent_dropout, "recurrent_dropout", owner)
        self.seed = seed
        self._rng = np.random.default_rng(seed) if seed is not None else None
        self.kernel = self.recurrent_kernel = self.bias = None

    @property
    def state_size(self) -> int | list[int]:
        return [self.units, self.units] if self._kind == _LSTM else self.units

    @property
    def output_size(self) -> int:
        return self.units

    def _bias_shape(self):
        return (self._n_gates * self.units,)

    def _bias_initializer(self):
        return self.bias_initializer

    def build(self, input_shape: ShapeLike) -> None:
        in_dim = input_shape[-1]
        if in_dim is None:
            raise ValueError(f'Layer "{self.name}" ({type(self).__name__}) needs the feature '
                             f"dimension to be defined, received input shape {_shape_str(input_shape)}")
        gu = self._n_gates * self.units
        self.kernel = self.add_weight("kernel", (in_dim, gu), self.kernel_initializer,
                                      self.kernel_regularizer, constraint=self.kernel_constraint)
        self.recurrent_kernel = self.add_weight(
            "recurrent_kernel", (self.units, gu), self.recurrent_initializer,
            self.recurrent_regularizer, constraint=self.recurrent_constraint)
        if self.use_bias:
            self.bias = self.add_weight("bias", self._bias_shape(), self._bias_initializer(),
                                        self.bias_regularizer, constraint=self.bias_constraint)
        self.built = True

    def _rng_gen(self):
        return self._rng if self._rng is not None else _random.generator()

    def _keep_mask(self, shape, rate, dtype):
        u = self._rng_gen().random(shape)
        return ((u >= rate) / (1.0 - rate)).astype(dtype)

    def get_config(self) -> Config:
        cfg = super().get_config()
        cfg.update({
            "units": self.units,
            "activation": self.activation.serialize(),
            "use_bias": self.use_bias,
            "kernel_initializer": _serialize_initializer(self.kernel_initializer),
            "recurrent_initializer": _serialize_initializer(self.recurrent_initializer),
            "bias_initializer": _serialize_initializer(self.bias_initializer),
            "kernel_regularizer": _serialize_regularizer(self.kernel_regularizer),
            "recurrent_regularizer": _serialize_regularizer(self.recurrent_regularizer),
            "bias_regularizer": _serialize_regularizer(self.bias_regularizer),
            "kernel_constraint": None,
            "recurrent_constraint": None,
            "bias_constraint": None,
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "seed": self.seed,
        })
        return cfg

    def forward(self, ctx: CallContext, inputs: ArrayLike, training: bool = False) -> np.ndarray:
        raise NotImplementedError(
            f"{type(self).__name__} is run by a recurrent layer over whole sequences: wrap it, "
            f"e.g. RNN({type(self).__name__}({self.units}))")


class SimpleRNNCell(_Cell):
    """The cell of :class:`SimpleRNN`: ``h = activation(x @ kernel + h_prev @ recurrent_kernel + bias)``."""

    _kind = _SIMPLE
    _n_gates = 1


class LSTMCell(_Cell):
    """The cell of :class:`LSTM` (gates i, f, c, o in the kernel's columns)."""

    _kind = _LSTM
    _n_gates = 4

    def __init__(self, units: int, activation: ActivationLike = "tanh",
                 recurrent_activation: ActivationLike = "sigmoid", unit_forget_bias: bool = True, **kwargs) -> None:
        super().__init__(units, activation=activation, **kwargs)
        self.recurrent_activation = _fused(recurrent_activation, "recurrent_activation",
                                           type(self).__name__)
        self.unit_forget_bias = bool(unit_forget_bias)

    def _bias_initializer(self):
        if not self.unit_forget_bias:
            return self.bias_initializer
        init, u = self.bias_initializer, self.units

        def forget_bias_one(shape, dtype=None):
            return np.concatenate([np.asarray(init((u,), dtype=dtype)), np.ones(u, dtype=dtype),
                                   np.asarray(init((2 * u,), dtype=dtype))]).astype(dtype)
        return forget_bias_one

    def get_config(self) -> Config:
        cfg = super().get_config()
        cfg["recurrent_activation"] = self.recurrent_activation.serialize()
        cfg["unit_forget_bias"] = self.unit_forget_bias
        return cfg


class GRUCell(_Cell):
    """The cell of :class:`GRU` (gates z, r, h; ``reset_after=True`` keeps a (2, 3*units) bias)."""

    _kind = _GRU
    _n_gates = 3

    def __init__(self, units: int, activation: ActivationLike = "tanh",
                 recurrent_activation: ActivationLike = "sigmoid", reset_after: bool = True, **kwargs) -> None:
        super().__init__(units, activation=activation, **kwargs)
        self.recurrent_activation = _fused(recurrent_activation, "recurrent_activation",
                                           type(self).__name__)
        self.reset_after = bool(reset_after)

    def _bias_shape(self):
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def get_config(self) -> Config:
        cfg = super().get_config()
        cfg["recurrent_activation"] = self.recurrent_activation.serialize()
        cfg["reset_after"] = self.reset_after
        return cfg


_CELLS = {"SimpleRNNCell": SimpleRNNCell, "LSTMCell": LSTMCell, "GRUCell": GRUCell}


class RNN(Layer):
    """A recurrent layer running a built-in cell over the time axis.

    Args:
        cell: a ``SimpleRNNCell``, ``LSTMCell`` or ``GRUCell`` (or its config dict).
        return_sequences: return every step's output (batch, timesteps, units) rather
            than the last one (batch, units).
        return_state: also return the final states: ``[output, h]`` (``[output, h, c]``
            for LSTM). ``backward`` then takes a list of upstream gradients, one per output
            (None for an output that gets no gradient).
        go_backwards: process the sequence in reverse; the returned sequence is in
            processing (reversed) order, as Keras returns it.
        stateful: the final states of a batch are the initial states of the next;
            needs a fixed batch size; ``reset_states()`` zeroes them.
        zero_output_for_mask: masked steps output zeros instead of the previous output.

    Call arguments:
        inputs: (batch, timesteps, features).
        mask: optional (batch, timesteps) booleans; a False step carries the states through.
        initial_state: optional list of initial state arrays (batch, units).
        training: applies ``dropout``/``recurrent_dropout`` when True.
    """

    _call_takes_mask = True

    def __init__(self, cell: Layer | Sequence[Layer], return_sequences: bool = False, return_state: bool = False,
                 go_backwards: bool = False, stateful: bool = False, unroll: bool = False,
                 zero_output_for_mask: bool = False, activity_regularizer: RegularizerLike | None = None,
                 **kwargs) -> None:
        if isinstance(cell, dict):
            cls = _CELLS.get(cell.get("class_name"))
            if cls is None:
                raise ValueError(f"Unknown recurrent cell {cell.get('class_name')!r}; "
                                 f"expected one of {sorted(_CELLS)}")
            cell = cls(**cell.get("config", {}))
        if not isinstance(cell, _Cell):
            raise ValueError(f"{type(self).__name__} runs compiled cells only: pass one of "
                             f"{sorted(_CELLS)}, received cell={cell!r}")
        super().__init__(**kwargs)
        self.cell = cell
        self._variables = cell._variables
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.stateful = bool(stateful)
        self.unroll = bool(unroll)
        self.zero_output_for_mask = bool(zero_output_for_mask)
        self.activity_regularizer = regularizers.get(activity_regularizer)
        self.supports_masking = True
        self.input_spec = InputSpec(ndim=3)
        self.states = None
        self._stateful_batch = None
        self._seen_batch = None

    # ---------------------------------------------------------------- config proxies
    @property
    def units(self) -> int:
        return self.cell.units

    @property
    def activation(self) -> Callable[..., Any]:
        return self.cell.activation.fn

    @property
    def use_bias(self) -> bool:
        return self.cell.use_bias

    @property
    def dropout(self) -> float:
        return self.cell.dropout

    @property
    def recurrent_dropout(self) -> float:
        return self.cell.recurrent_dropout

    @property
    def kernel_initializer(self) -> Initializer | Callable[..., Any]:
        return self.cell.kernel_initializer

    @property
    def recurrent_initializer(self) -> Initializer | Callable[..., Any]:
        return self.cell.recurrent_initializer

    @property
    def bias_initializer(self) -> Initializer | Callable[..., Any]:
        return self.cell.bias_initializer

    @property
    def kernel_regularizer(self) -> Regularizer | Callable[..., Any] | None:
        return self.cell.kernel_regularizer

    @property
    def recurrent_regularizer(self) -> Regularizer | Callable[..., Any] | None:
        return self.cell.recurrent_regularizer

    @property
    def bias_regularizer(self) -> Regularizer | Callable[..., Any] | None:
        return self.cell.bias_regularizer

    @property
    def state_size(self) -> list[int]:
        s = self.cell.state_size
        return list(s) if isinstance(s, list) else [s]

    # ---------------------------------------------------------------- shapes
    def _check_spec(self, shape):
        shape = tuple(shape)
        if len(shape) != 3:
            raise ValueError(
                f'Layer "{self.name}" ({type(self).__name__}) expects input of shape '
                f"(batch, timesteps, features), i.e. rank 3, received input with shape "
                f"{_shape_str(shape)}")
        if self.input_spec is not None:
            self.input_spec.check(self, shape, "(batch, timesteps, features)")

    def _maybe_build(self, input_shape):
        self._seen_batch = input_shape[0]
        super()._maybe_build(input_shape)

    def build(self, input_shape: ShapeLike) -> None:
        if len(input_shape) != 3:
            raise ValueError(
                f'Layer "{self.name}" ({type(self).__name__}) expects input of shape '
                f"(batch, timesteps, features), received input shape {_shape_str(input_shape)}")
        if not self.cell.built:
            self.cell.build((input_shape[0], input_shape[2]))
        for v in self.cell._variables:
            v.path = f"{self.name}/{self.cell.name}/{v.name}"
        if self.stateful:
            batch = input_shape[0]
            if batch is None and self._batch_input_shape is not None:
                batch = self._batch_input_shape[0]
            if batch is None:
                batch = self._seen_batch
            if batch is None:
                raise ValueError(
                    f'Layer "{self.name}" ({type(self).__name__}) is stateful, so it needs a fixed '
                    f"batch size, but the batch size is undefined (input shape "
                    f"{_shape_str(input_shape)}). Give one: pass `batch_input_shape=(batch, "
                    f"timesteps, features)` or `batch_size=...` to this first layer, or start "
                    f"the model with `Input(shape=(timesteps, features), batch_size=...)`.")
            self._stateful_batch = int(batch)
            self.reset_states()
        self.input_spec = InputSpec(ndim=3, axes={-1: input_shape[2]})
        self.built = True

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape | list[Shape]:
        batch, steps = input_shape[0], input_shape[1]
        out = (batch, steps, self.cell.units) if self.return_sequences else (batch, self.cell.units)
        if self.return_state:
            return [out] + [(batch, s) for s in self.state_size]
        return out

    def compute_mask(self, inputs: ArrayLike,
                     mask: ArrayLike | None = None) -> np.ndarray | list[np.ndarray | None] | None:
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        out = mask if self.return_sequences else None
        if self.return_state:
            return [out] + [None] * len(self.state_size)
        return out

    # ---------------------------------------------------------------- states
    def reset_states(self, states: Sequence[ArrayLike] | None = None) -> None:
        """Zeroes a stateful layer's states (or sets them to ``states``)."""
        if not self.stateful:
            raise AttributeError(f'Layer "{self.name}" is not stateful: reset_states() applies to '
                                 f"layers created with stateful=True")
        if self._stateful_batch is None:
            return
        n = len(self.state_size)
        shape = (self._stateful_batch, self.cell.units)
        if states is None:
            self.states = [np.zeros(shape, dtype=self.dtype) for _ in range(n)]
        else:
            states = states if isinstance(states, (list, tuple)) else [states]
            if len(states) != n:
                raise ValueError(f'Layer "{self.name}" has {n} states, received {len(states)}')
            new = []
            for s in states:
                s = np.asarray(s, dtype=self.dtype)
                if s.shape != shape:
                    raise ValueError(f'Layer "{self.name}" state shape is {shape}, received {s.shape}')
                new.append(s.copy())
            self.states = new

    reset_state = reset_states

    # ---------------------------------------------------------------- forward
    def _initial_states(self, n, initial_state, dt):
        cell, u = self.cell, self.cell.units
        count = len(self.state_size)
        if initial_state is not None:
            states = initial_state if isinstance(initial_state, (list, tuple)) else [initial_state]
            if len(states) != count:
                raise ValueError(f'Layer "{self.name}" ({type(self).__name__}) expects {count} '
                                 f"initial state(s), received {len(states)}")
            out = []
            for s in states:
                s = np.ascontiguousarray(s, dtype=dt)
                if s.shape != (n, u):
                    raise ValueError(f'Layer "{self.name}" initial state must have shape {(n, u)}, '
                                     f"received {s.shape}")
                out.append(s)
            return out
        if self.stateful:
            if n != self._stateful_batch:
                raise ValueError(
                    f'Layer "{self.name}" is stateful with batch size {self._stateful_batch}, '
                    f"received a batch of {n} samples; every batch must have that size")
            return [np.ascontiguousarray(s, dtype=dt) for s in self.states]
        del cell
        return [np.zeros((n, u), dtype=dt) for _ in range(count)]

    def forward(self, ctx: CallContext, inputs: ArrayLike, training: bool = False,
                mask: ArrayLike | None = None,
                initial_state: Sequence[ArrayLike] | None = None) -> np.ndarray | list[np.ndarray]:
        cell = self.cell
        x = inputs
        n, steps, feat = x.shape
        u = cell.units
        dt = x.dtype
        kind = cell._kind
        g = cell._n_gates
        gu = g * u
        rec_act = cell.recurrent_activation if kind != _SIMPLE else cell.activation
        act = cell.activation
        reset_after = kind == _GRU and cell.reset_after

        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        if mask is not None:
            mask = np.asarray(mask)
            if mask.shape != (n, steps):
                raise ValueError(f'Layer "{self.name}" mask must have shape {(n, steps)}, '
                                 f"received {mask.shape}")
            mask = mask.astype(bool)
            if mask.all():
                mask = None
        states = self._initial_states(n, initial_state, dt)

        # Dropout masks, drawn once per batch and held for every step. With
        # recurrent_dropout each gate gets its own masks (Keras's implementation 1),
        # otherwise one input mask serves all gates.
        in_keep = in_keep_g = rmask = None
        if training and cell.recurrent_dropout > 0:
            rmask = cell._keep_mask((g, n, u), cell.recurrent_dropout, dt)
        if training and cell.dropout > 0:
            if rmask is not None and g > 1:
                in_keep_g = cell._keep_mask((g, n, feat), cell.dropout, dt)
            else:
                in_keep = cell._keep_mask((n, feat), cell.dropout, dt)
                x = x * in_keep[:, None, :]

        xt = ctx.buf("xt", (steps, n, feat), dt)
        x_src = None
        if in_keep_g is None:
            # the kernel writes xt, each thread the rows it runs
            x_src = np.ascontiguousarray(x, dtype=dt)
        else:
            src = x.transpose(1, 0, 2)
            np.copyto(xt, src[::-1] if self.go_backwards else src)
        mask_p = None
        if mask is not None:
            mask_p = np.ascontiguousarray(mask[:, ::-1] if self.go_backwards else mask, dtype=np.uint8)

        gates = ctx.buf("gates", (steps, n, gu), dt)
        hs = ctx.buf("hs", (steps + 1, n, u), dt)
        cs = ctx.buf("cs", (steps + 1, n, u), dt) if kind == _LSTM else None
        aux = ctx.buf("aux", (steps, n, u), dt) if kind != _SIMPLE else None
        need_z = act.needs_input or (rec_act.needs_input if kind != _SIMPLE else False)
        zpre = ctx.buf("zpre", (steps, n, gu), dt) if need_z else None
        scratch = ctx.buf("scratch", (n, gu + 2 * u), dt)
        kernel = cell.kernel.value
        rkernel = cell.recurrent_kernel.value
        b = rb = None
        if cell.use_bias:
            bias = cell.bias.value
            if reset_after:
                b, rb = bias[0], bias[1]
            else:
                b = bias
        if in_keep_g is not None:
            # Per-gate input masks: each gate's projection of its own masked input.
            for k in range(g):
                cols = slice(k * u, (k + 1) * u)
                xg = (xt * in_keep_g[k][None]).reshape(-1, feat)
                proj = xg @ kernel[:, cols]
                if b is not None:
                    proj += b[cols]
                gates[:, :, cols] = proj.reshape(steps, n, u)
        _rk.forward(kind, xt, kernel, rkernel, b, rb, states[0],
                    states[1] if kind == _LSTM else None, mask_p, rmask, gates, hs, cs, aux,
                    zpre, scratch, act.code, rec_act.code, act.alpha, rec_act.alpha,
                    reset_after, config._n_threads, in_keep_g is None, self._packbuf(ctx, dt, feat),
                    ctx.record, x_src, self.go_backwards)

        h_last = hs[steps]
        finals = [h_last] + ([cs[steps]] if kind == _LSTM else [])
        zero_out = self.zero_output_for_mask and mask_p is not None
        if self.return_sequences:
            out = ctx.buf("y", (n, steps, u), dt)
            np.copyto(out, hs[1:].transpose(1, 0, 2))
            if zero_out:
                out *= mask_p[:, :, None]
        else:
            out = h_last
            if zero_out:
                out = h_last * mask_p[:, -1:]
        if self.stateful:
            self.states = [s.copy() for s in finals]
        if ctx.record:
            ctx.rec = dict(x_shape=inputs.shape, xt=xt, mask_p=mask_p, rmask=rmask,
                             in_keep=in_keep, in_keep_g=in_keep_g, gates=gates, hs=hs, cs=cs, aux=aux, zpre=zpre,
                             scratch=scratch, act=act, rec_act=rec_act, reset_after=reset_after,
                             zero_out=zero_out, initial_given=initial_state is not None)
        if self.return_state:
            return [out] + [s.copy() if ctx.pool is None else s for s in finals]
        return out

    def _packbuf(self, ctx, dt, feat):
        """Reused room for the kernel's packed copies of the recurrent kernel and of the
        stacked [kernel; recurrent kernel] (float32)."""
        if dt != np.float32 or ctx.pool is None:
            return None
        cell = self.cell
        need = _rk.packed_size(cell._kind, cell.units, cell._kind == _GRU and cell.reset_after,
                               feat)
        return ctx.buf("packbuf", (need,), np.float32)

    # ---------------------------------------------------------------- backward
    def backward(self, ctx: CallContext, dy: np.ndarray) -> np.ndarray | None:
        need_dx = ctx.need_dx
        rec = ctx.rec
        cell = self.cell
        kind = cell._kind
        n, steps, feat = rec["x_shape"]
        u = cell.units
        gu = cell._n_gates * u
        dt = rec["gates"].dtype
        if self.return_state:
            if not isinstance(dy, (list, tuple)) or len(dy) != 1 + len(self.state_size):
                raise ValueError(
                    f'Layer "{self.name}" returns {1 + len(self.state_size)} outputs '
                    f"(return_state=True): backward expects a list with one upstream gradient "
                    f"per output (None for none)")
            d_out, d_states = dy[0], list(dy[1:])
        else:
            d_out, d_states = dy, [None] * len(self.state_size)
        mask_p = rec["mask_p"]
        dys = dh_last = None
        if d_out is not None:
            d_out = np.asarray(d_out, dtype=dt)
            if self.return_sequences:
                dys = np.ascontiguousarray(d_out.reshape(n, steps, u))
                if rec["zero_out"]:
                    dys = dys * mask_p[:, :, None]
            else:
                dh_last = np.array(d_out.reshape(n, u), dtype=dt)
                if rec["zero_out"]:
                    dh_last *= mask_p[:, -1:]
        if d_states[0] is not None:
            dsh = np.asarray(d_states[0], dtype=dt).reshape(n, u)
            dh_last = dsh.copy() if dh_last is None else dh_last + dsh
        dc_last = None
        if kind == _LSTM and d_states[1] is not None:
            dc_last = np.ascontiguousarray(np.asarray(d_states[1], dtype=dt).reshape(n, u))
        if dh_last is not None:
            dh_last = np.ascontiguousarray(dh_last)

        train = self.trainable
        reset_after = rec["reset_after"]
        dw = cell.kernel.grad_buffer() if train and cell.kernel.trainable else None
        dr = cell.recurrent_kernel.grad_buffer() if train and cell.recurrent_kernel.trainable else None
        db = drb = None
        if train and cell.use_bias and cell.bias.trainable:
            gb = cell.bias.grad_buffer()
            if reset_after:
                db, drb = gb[0], gb[1]
            else:
                db = gb
        dg = ctx.buf("dg", (steps, n, gu), dt)
        dgx = ctx.buf("dgx", (steps, n, u), dt) if (kind == _GRU and reset_after) else None
        hd_buf = ctx.buf("hd", (steps, n, u), dt) if rec["rmask"] is not None else None
        in_keep_g = rec["in_keep_g"]
        dxt = ctx.buf("dxt", (steps, n, feat), dt) if need_dx else None
        dw_k, dxt_k = (None, None) if in_keep_g is not None else (dw, dxt)
        dh0 = ctx.buf("dh0", (n, u), dt)
        dc0 = ctx.buf("dc0", (n, u), dt) if kind == _LSTM else None
        act, rec_act = rec["act"], rec["rec_act"]
        _rk.backward(kind, rec["xt"], cell.kernel.value, cell.recurrent_kernel.value, dys,
                     dh_last, dc_last, mask_p, rec["rmask"], rec["gates"], rec["hs"],
                     rec["cs"], rec["aux"], rec["zpre"], dg, dgx, hd_buf, dxt_k, dw_k, dr, db, drb,
                     dh0, dc0, rec["scratch"], act.code, rec_act.code, act.alpha, rec_act.alpha,
                     reset_after, config._n_threads, self._packbuf(ctx, dt, feat))
        state_grads = [dh0] + ([dc0] if kind == _LSTM else [])
        if in_keep_g is not None:
            self._per_gate_input_grads(rec, dg, dgx, dw, dxt, in_keep_g)
        # Called in a graph with initial_state tensors, the states get their gradients too
        # (the tensors' flattened order: inputs, then the states).
        with_states = rec["initial_given"] and not getattr(ctx, "wrapped", False)
        if not need_dx:
            return [None] + state_grads if with_states else None
        dx = ctx.buf("dx", (n, steps, feat), dt)
        src = dxt.transpose(1, 0, 2)
        np.copyto(dx, src[:, ::-1] if self.go_backwards else src)
        if rec["in_keep"] is not None:
            dx *= rec["in_keep"][:, None, :]
        return [dx] + state_grads if with_states else dx

    def _per_gate_input_grads(self, rec, dg, dgx, dw, dxt, keep):
        """Kernel and input gradients of the per-gate masked input projections."""
        xt, cell = rec["xt"], self.cell
        steps, n, feat = xt.shape
        u = cell.units
        kernel = cell.kernel.value
        if dxt is not None:
            dxt.fill(0)
        for k in range(cell._n_gates):
            cols = slice(k * u, (k + 1) * u)
            dgk = (dgx if (k == 2 and dgx is not None) else dg[:, :, cols]).reshape(-1, u)
            if dw is not None:
                dw[:, cols] = (xt * keep[k][None]).reshape(-1, feat).T @ dgk
            if dxt is not None:
                dxt += (dgk @ kernel[:, cols].T).reshape(steps, n, feat) * keep[k][None]

    # ---------------------------------------------------------------- config
    def get_config(self) -> Config:
        cfg = super().get_config()
        cfg.update({
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "go_backwards": self.go_backwards,
            "stateful": self.stateful,
            "unroll": self.unroll,
            "zero_output_for_mask": self.zero_output_for_mask,
        })
        if type(self) is RNN:
            cfg["cell"] = {"module": "keras.layers", "class_name": type(self.cell).__name__,
                           "config": self.cell.get_config(), "registered_name": None}
        return cfg

    @classmethod
    def from_config(cls, config_dict: Config) -> RNN:
        return cls(**config_dict)


_RNN_KEYS = ("return_sequences", "return_state", "go_backwards", "stateful", "unroll",
             "zero_output_for_mask", "name", "trainable", "dtype", "input_shape", "input_dim",
             "batch_input_shape", "batch_size", "input_length", "autocast",
             "activity_regularizer")


def _split_kwargs(kwargs):
    layer = {k: kwargs.pop(k) for k in list(kwargs) if k in _RNN_KEYS}
    kwargs.pop("use_cudnn", None)
    if "dtype" in layer:
        kwargs["dtype"] = layer["dtype"]
    return layer, kwargs


class _Builtin(RNN):
    _cell_class = None

    def __init__(self, units: int, **kwargs) -> None:
        layer_kw, cell_kw = _split_kwargs(dict(kwargs))
        cell_kw.setdefault("name", backend_cell_name(self._cell_class))
        super().__init__(self._cell_class(units, **cell_kw), **layer_kw)

    def get_config(self) -> Config:
        cfg = super().get_config()
        cell_cfg = self.cell.get_config()
        for k in ("name", "trainable", "dtype"):
            cell_cfg.pop(k, None)
        cfg.update(cell_cfg)
        cfg["activity_regularizer"] = _serialize_regularizer(self.activity_regularizer)
        return cfg


def backend_cell_name(cls) -> str:
    from fastnet import backend
    return backend.to_snake_case(cls.__name__)


class SimpleRNN(_Builtin):
    """Fully connected RNN: ``h_t = activation(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias)``.

    Args:
        units: positive int, the state size.
        activation: default ``"tanh"``.
        use_bias, kernel_initializer ("glorot_uniform"), recurrent_initializer
            ("orthogonal"), bias_initializer ("zeros"), kernel/recurrent/bias regularizers.
        dropout, recurrent_dropout: fractions of the inputs / previous states dropped
            while training (one mask per sequence, the same at every step).
        return_sequences, return_state, go_backwards, stateful: see :class:`RNN`.

    Input shape: (batch, timesteps, features).
    Output shape: (batch, units), or (batch, timesteps, units) with return_sequences.

    Example:
        >>> import numpy as np
        >>> from fastnet.layers import SimpleRNN
        >>> SimpleRNN(4)(np.zeros((32, 10, 8))).shape
        (32, 4)
    """

    _cell_class = SimpleRNNCell


class LSTM(_Builtin):
    """Long short-term memory layer (gates i, f, c, o).

    Args:
        units: positive int.
        activation: default ``"tanh"``; recurrent_activation: default ``"sigmoid"``.
        unit_forget_bias: add 1 to the forget gate's bias at initialisation (default True).

    Other arguments as :class:`SimpleRNN`.

    With ``return_state=True`` the layer returns ``[output, h, c]``.

    Example:
        >>> import numpy as np
        >>> from fastnet.layers import LSTM
        >>> LSTM(4, return_sequences=True)(np.zeros((32, 10, 8))).shape
        (32, 10, 4)
    """

    _cell_class = LSTMCell

    @property
    def recurrent_activation(self) -> Callable[..., Any]:
        return self.cell.recurrent_activation.fn

    @property
    def unit_forget_bias(self) -> bool:
        return self.cell.unit_forget_bias


class GRU(_Builtin):
    """Gated recurrent unit layer (gates z, r, h).

    Args:
        units: positive int.
        activation: default ``"tanh"``; recurrent_activation: default ``"sigmoid"``.
        reset_after: apply the reset gate after the recurrent matrix product (default
            True, bias of shape (2, 3*units)); False applies it before (bias (3*units,)).

    Other arguments as :class:`SimpleRNN`.

    Example:
        >>> import numpy as np
        >>> from fastnet.layers import GRU
        >>> GRU(4)(np.zeros((32, 10, 8))).shape
        (32, 4)
    """

    _cell_class = GRUCell

    @property
    def recurrent_activation(self) -> Callable[..., Any]:
        return self.cell.recurrent_activation.fn

    @property
    def reset_after(self) -> bool:
        return self.cell.reset_after
