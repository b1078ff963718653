"""The layer contract: build, forward, backward, shapes, weights and config.

A layer computes on numpy arrays. ``forward(ctx, x, training)`` returns the output
and keeps what the backward pass needs in ``ctx``, a record of that one call (see
``CallContext``); ``backward(ctx, dy)`` returns dx and writes the weight gradients
into each variable's ``grad``. Nothing about a call is kept on the layer, so one
layer can be called several times in a step (shared layers) and from several threads.
``layer(x, training=...)`` on arrays converts x to the float type, builds the layer on
first use, checks the input shape and runs ``forward``; on ``keras.Input`` tensors it
adds a node to a graph (``fastnet.layers.graph``).
"""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import numpy as np

from fastnet import backend, config
from fastnet.layers.graph import KerasTensor

try:
    from fastnet.ops import autodiff as _autodiff
except ImportError:  # pragma: no cover - ops are part of fastnet; kept for partial installs
    _autodiff = None
from fastnet.utils import tree

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

    from fastnet._typing import (
        ArrayLike,
        Config,
        ConstraintLike,
        DTypeLike,
        InitializerLike,
        RegularizerLike,
        Shape,
        ShapeLike,
    )
    from fastnet.backend import Variable

__all__ = ["Layer", "CallContext", "InputSpec", "InputLayer", "Input", "KerasTensor"]


def _shape_str(shape):
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + (",)" if len(shape) == 1 else ")")


class InputSpec:
    """What a layer accepts: rank (``ndim``/``min_ndim``) and fixed sizes per axis."""

    __slots__ = ("ndim", "min_ndim", "axes", "shape")

    def __init__(self, ndim: int | None = None, min_ndim: int | None = None, axes: Mapping[int, int] | None = None,
                 shape: ShapeLike | None = None) -> None:
        self.ndim = ndim
        self.min_ndim = min_ndim
        self.axes = dict(axes or {})
        self.shape = tuple(shape) if shape is not None else None

    def check(self, layer: Layer | str, shape: ShapeLike, expected_desc: str | None = None) -> None:
        rank = len(shape)
        if self.ndim is not None and rank != self.ndim:
            raise ValueError(
                f'Layer "{layer.name}" ({type(layer).__name__}) expects input of rank {self.ndim}'
                f"{' ' + expected_desc if expected_desc else ''}, received input with shape {_shape_str(shape)}")
        if self.min_ndim is not None and rank < self.min_ndim:
            raise ValueError(
                f'Layer "{layer.name}" ({type(layer).__name__}) expects input of rank >= {self.min_ndim}'
                f"{' ' + expected_desc if expected_desc else ''}, received input with shape {_shape_str(shape)}")
        for axis, size in self.axes.items():
            if size is None:
                continue
            if -rank <= axis < rank and shape[axis] is not None and shape[axis] != size:
                want = [None] * rank
                want[axis] = size
                raise ValueError(
                    f'Layer "{layer.name}" ({type(layer).__name__}) expects input shape '
                    f"{_shape_str(self.shape or tuple(want))} (axis {axis} of size {size}), "
                    f"received input with shape {_shape_str(shape)}")
        if self.shape is not None:
            if rank != len(self.shape) or any(
                    w is not None and g is not None and w != g for w, g in zip(self.shape[1:], shape[1:])):
                raise ValueError(
                    f'Layer "{layer.name}" ({type(layer).__name__}) expects input shape '
                    f"{_shape_str(self.shape)}, received input with shape {_shape_str(shape)}")


class CallContext:
    """One call of a layer: what its backward needs, and the buffers it may reuse.

    The executor keeps one context per call site (graph node) and per run (a fit, an
    evaluate, a predict, one eager call), so a layer called twice in a step, or from two
    threads at once, keeps two records. Inside a loop the same context comes back step
    after step with its buffer pool, which keeps the training step free of allocations.

    Layers read the flags and store what their backward needs as attributes of the
    context (``ctx.x = x``); the executor sets the flags:

    - ``record``: backward will be called, keep what it needs.
    - ``need_dx`` (before backward): the input gradient is wanted.
    - ``keep_logits`` / ``logits_grad``: keep the pre-activation in ``ctx.logits`` /
      backward receives the gradient with respect to it (loss computed from logits).
    - ``defer_updates``: state updates (moving statistics) wait for ``commit_updates``.
    - ``relu_input`` / ``act_grad_in_dy``: a max pooling applies the ReLU derivative of
      the convolution feeding it, which then skips its own.
    - ``fuse_relu`` / ``relu_done``: a ReLU that alone reads a layer's output is applied
      by that layer (``fuse_relu``: its output is already rectified and its backward
      applies the ReLU's derivative); the ReLU's own call (``relu_done``) passes its
      input and gradient through.
    """

    record = True
    need_dx = True
    keep_logits = False
    logits_grad = False
    defer_updates = False
    relu_input = False
    act_grad_in_dy = False
    fuse_relu = False
    relu_done = False
    pool = None

    def __init__(self, record: bool = True, pooled: bool = False) -> None:
        self.record = record
        if pooled:
            self.pool = {}

    def buf(self, key: str, shape: tuple[int, ...], dtype: DTypeLike) -> np.ndarray:
        """An uninitialised array; a pooled context returns the same one for the same
        (key, shape, dtype), so a last partial batch does not evict the full-batch one."""
        pool = self.pool
        if pool is None:
            return np.empty(shape, dtype=dtype)
        k = (key, shape, dtype)
        b = pool.get(k)
        if b is None:
            if len(pool) > 64:
                pool.clear()
            b = pool[k] = np.empty(shape, dtype=dtype)
        return b

    def child(self, key: Any) -> CallContext:
        """The context of a sub-call (a wrapped layer, a nested model's node), kept with
        this one so that its buffers are reused too; it takes this context's ``record``."""
        children = self.__dict__.get("_children")
        if children is None:
            children = self._children = {}
        c = children.get(key)
        if c is None:
            c = children[key] = CallContext(self.record, self.pool is not None)
        else:
            c.record = self.record
        return c


def _is_symbolic(args, kwargs):
    for v in args:
        if isinstance(v, KerasTensor):
            return True
        if isinstance(v, (list, tuple, dict)) and any(isinstance(t, KerasTensor) for t in tree.flatten(v)):
            return True
    for v in kwargs.values():
        if isinstance(v, KerasTensor):
            return True
        if isinstance(v, (list, tuple, dict)) and any(isinstance(t, KerasTensor) for t in tree.flatten(v)):
            return True
    return False


class Layer:
    """Base class of every fastnet layer.

    Args:
        name: layer name; unique automatic names (``dense``, ``dense_1``, ...) otherwise.
        trainable: whether the layer's trainable weights are updated by training.
        dtype: the float type of weights and outputs (``config.floatx()`` by default).
        input_shape / input_dim / batch_input_shape / batch_size: the input shape of
            the first layer of a Sequential model, batch excluded (Keras's keywords).

    The contract (see ``CallContext``): ``build(input_shape)`` creates the weights;
    ``forward(ctx, inputs, training)`` returns the outputs and keeps in ``ctx`` what
    ``backward(ctx, dy)`` needs; ``backward`` returns the input gradient and writes each
    trainable weight's gradient (the executor sums them when a layer is called several
    times in one step). ``call(inputs, training)`` is Keras's name for the forward pass
    without a record. Called on ``keras.Input`` tensors, a layer adds a node to a graph.
    """

    # Subclasses that accept integer inputs (Embedding) set this to False.
    _cast_inputs = True
    # Layers whose ``forward`` takes a ``mask=`` keyword (recurrent layers) set this to True;
    # models then pass the mask produced by the layer before (Embedding(mask_zero=True)).
    _call_takes_mask = False
    # Layers with a fused output activation that can hand its logits to the loss
    # (softmax/sigmoid + crossentropy computed from logits, as Keras's TF backend does).
    _supports_logits = False

    def __init__(self, name: str | None = None, trainable: bool = True, dtype: DTypeLike | None = None,
                 input_shape: ShapeLike | None = None, input_dim: int | None = None,
                 batch_input_shape: ShapeLike | None = None, batch_size: int | None = None, **kwargs) -> None:
        kwargs.pop("autocast", None)
        input_length = kwargs.pop("input_length", None)
        # Every layer takes an activity regularizer (Keras 3): the executor adds its
        # penalty of the layer's output (divided by the batch size) to the loss.
        activity_regularizer = kwargs.pop("activity_regularizer", None)
        if kwargs:
            raise TypeError(f"Unrecognized keyword arguments passed to {type(self).__name__}: {kwargs}")
        if name is not None and (not isinstance(name, str) or not name or "/" in name):
            raise ValueError(f"Layer name must be a non-empty string without '/', received {name!r}")
        object.__setattr__(self, "_tracked", [])
        self.name = name or backend.unique_name(backend.to_snake_case(type(self).__name__))
        self.trainable = bool(trainable)
        if isinstance(dtype, dict):  # a Keras DTypePolicy config
            dtype = dtype.get("config", {}).get("name", None)
        self._dtype = np.dtype(dtype).name if dtype is not None else None
        self.built = False
        self._variables = []
        if activity_regularizer is not None or not hasattr(self, "activity_regularizer"):
            from fastnet import regularizers

            self.activity_regularizer = regularizers.get(activity_regularizer)
        self.input_spec = None
        self._build_shape = None
        self._inbound_nodes = []
        self._last_ctx = None
        self.supports_masking = False

        if batch_input_shape is not None:
            self._batch_input_shape = tuple(batch_input_shape)
        elif input_shape is not None:
            if isinstance(input_shape, int):
                input_shape = (input_shape,)
            self._batch_input_shape = (batch_size,) + tuple(input_shape)
        elif input_dim is not None:
            self._batch_input_shape = (batch_size,) + ((input_length, input_dim) if input_length else (input_dim,))
        else:
            self._batch_input_shape = None

    # ------------------------------------------------------------------ tracking
    def __setattr__(self, name: str, value: Any) -> None:
        # Sublayers held as attributes (also in lists and dicts) contribute their weights,
        # as in Keras; the private attributes of built-in layers are not scanned.
        if not name.startswith("_") and name != "input_spec":
            tracked = self.__dict__.get("_tracked")
            if tracked is not None:
                for v in (value,) if isinstance(value, Layer) else (
                        tree.flatten(value) if isinstance(value, (list, tuple, dict)) else ()):
                    if isinstance(v, Layer) and v is not self and not any(v is t for t in tracked):
                        tracked.append(v)
        object.__setattr__(self, name, value)

    def _sublayers(self):
        return self.__dict__.get("_tracked", [])

    # ------------------------------------------------------------------ dtype
    @property
    def dtype(self) -> str:
        return self._dtype or config.floatx()

    @property
    def compute_dtype(self) -> str:
        return self.dtype

    @property
    def variable_dtype(self) -> str:
        return self.dtype

    # ------------------------------------------------------------------ weights
    def add_weight(self, name: str | None = None, shape: ShapeLike = (), initializer: InitializerLike = None,
                   regularizer: RegularizerLike | None = None, trainable: bool = True,
                   constraint: ConstraintLike | None = None, dtype: DTypeLike | None = None,
                   **kwargs) -> Variable:
        """Creates a weight, initialised now, and registers it with the layer.

        As in Keras the name is optional and the initializer defaults to glorot_uniform
        for float weights ("zeros" for others)."""
        from fastnet import initializers, regularizers

        kwargs.pop("autocast", None)
        kwargs.pop("aggregation", None)
        kwargs.pop("overwrite_with_gradient", None)
        if kwargs:
            raise TypeError(f"add_weight() got unexpected keyword arguments {sorted(kwargs)}")
        if name is None:
            name = f"variable_{len(self._variables)}" if self._variables else "variable"
        shape = () if shape is None else tuple(int(d) for d in shape)
        dtype = np.dtype(dtype or self.variable_dtype)
        if initializer is None:
            initializer = "glorot_uniform" if dtype.kind == "f" else "zeros"
        init = initializers.get(initializer)
        value = np.asarray(init(shape, dtype=dtype), dtype=dtype, order="C")
        if value.shape != shape:
            raise ValueError(f"Initializer for weight '{self.name}/{name}' returned shape "
                             f"{value.shape}, expected {shape}")
        var = backend.Variable(value, name=name, trainable=trainable,
                               regularizer=regularizers.get(regularizer), constraint=constraint,
                               path=f"{self.name}/{name}")
        self._variables.append(var)
        return var

    def _all_variables(self):
        own = self._variables
        subs = self._sublayers()
        if not subs:
            return own
        seen = {id(v) for v in own}
        out = list(own)
        for layer in subs:
            for v in layer._all_variables():
                if id(v) not in seen:
                    seen.add(id(v))
                    out.append(v)
        return out

    def _all_trainable(self):
        if not self.trainable:
            return []
        own = [v for v in self._variables if v.trainable]
        subs = self._sublayers()
        if not subs:
            return own
        seen = {id(v) for v in self._variables}
        for layer in subs:
            for v in layer._all_trainable():
                if id(v) not in seen:
                    seen.add(id(v))
                    own.append(v)
        return own

    @property
    def weights(self) -> list[Variable]:
        """Trainable weights, then non-trainable ones (Keras's order)."""
        trainable = self._all_trainable()
        ids = {id(v) for v in trainable}
        return trainable + [v for v in self._all_variables() if id(v) not in ids]

    @property
    def variables(self) -> list[Variable]:
        return self.weights

    @property
    def trainable_weights(self) -> list[Variable]:
        return self._all_trainable()

    @property
    def non_trainable_weights(self) -> list[Variable]:
        ids = {id(v) for v in self._all_trainable()}
        return [v for v in self._all_variables() if id(v) not in ids]

    @property
    def trainable_variables(self) -> list[Variable]:
        return self.trainable_weights

    @property
    def non_trainable_variables(self) -> list[Variable]:
        return self.non_trainable_weights

    def get_weights(self) -> list[np.ndarray]:
        return [v.value.copy() for v in self.weights]

    def set_weights(self, weights: Sequence[ArrayLike]) -> None:
        params = self.weights
        weights = list(weights)
        if len(weights) != len(params):
            raise ValueError(f'Layer "{self.name}" expects {len(params)} weights '
                             f"({[v.name for v in params]}), received {len(weights)}")
        for var, w in zip(params, weights):
            w = np.asarray(w)
            if w.shape != var.shape:
                raise ValueError(f'Layer "{self.name}" weight "{var.name}" has shape {var.shape}, '
                                 f"received a value of shape {w.shape}")
        for var, w in zip(params, weights):
            var.assign(w)

    def count_params(self) -> int:
        if not self.built:
            raise ValueError(f'Layer "{self.name}" is not built yet: call it on data or call '
                             f"build(input_shape) before count_params()")
        return int(sum(v.size for v in self.weights))

    @property
    def losses(self) -> list[Any]:
        """The losses of the last call: those added with :meth:`add_loss` by this layer
        and its sublayers (nested ones included), then the regularisation penalties of
        the weights. Inside a recording (a ``GradientTape``) the values are traced, so
        their gradients flow; elsewhere they are floats or arrays. As in Keras, the
        added losses are reset when the outermost layer call begins."""
        out = []
        for layer in [self] + _flatten_layers(self):
            own = layer.__dict__.get("_losses")
            if own:
                out.extend(v if _autodiff is None or _autodiff.is_traced(v) else _autodiff.value_of(v) for v in own)
        on_tape = _autodiff is not None and _autodiff.active_tape() is not None
        for v in self._all_variables():
            if v.regularizer is not None:
                out.append(_regularization_loss(v) if on_tape else float(v.regularizer(v.value)))
        return out

    def add_loss(self, loss: Any) -> None:
        """Adds a loss (a scalar, or an array that is summed) to the training loss; call it
        inside ``call`` with a value computed with ``fastnet.ops`` so that its gradient
        flows. The losses of a call are listed in ``layer.losses`` (and in the enclosing
        model's); ``fit`` adds them to the compiled loss, ``evaluate`` reports them."""
        own = self.__dict__.get("_losses")
        if own is None:
            own = []
            object.__setattr__(self, "_losses", own)
        own.append(loss)
        self.__dict__["_adds_losses_seen"] = True
        stack = getattr(_CALLS, "scopes", None)
        if stack:
            stack[-1].append(loss)

    @property
    def _adds_losses(self) -> bool:
        """Whether a call may add losses (the graph executor then collects ``ctx.losses``):
        a layer class whose methods call ``add_loss``, one that has added one, or one with
        such a sublayer."""
        if self.__dict__.get("_adds_losses_seen") or _class_adds_losses(type(self)):
            return True
        return any(getattr(layer, "_adds_losses", False) for layer in self._sublayers())

    # ------------------------------------------------------------------ build
    def build(self, input_shape: ShapeLike) -> None:
        """Creates the weights for inputs of ``input_shape`` (batch axis first, may be None)."""
        self.built = True

    def _maybe_build(self, input_shape):
        if not self.built:
            if isinstance(input_shape, dict):
                input_shape = {k: (None,) + tuple(v[1:]) for k, v in input_shape.items()}
            elif isinstance(input_shape, list):
                input_shape = [(None,) + tuple(s[1:]) for s in input_shape]
            else:
                input_shape = (None,) + tuple(input_shape[1:])
                self._check_spec(input_shape)
            self.build(input_shape)
            self.built = True
            self._build_shape = input_shape

    def _check_spec(self, shape):
        if self.input_spec is not None and not isinstance(shape, (list, dict)):
            self.input_spec.check(self, tuple(shape))

    # Layers that take a list of tensors (merge layers) set this to True.
    _multi_input = False

    def _convert(self, inputs):
        if self._multi_input and isinstance(inputs, (list, tuple)):
            return [self._convert_one(v) for v in inputs]
        return self._convert_one(inputs)

    def _convert_one(self, inputs):
        if inputs is None:
            return None
        if isinstance(inputs, backend.Variable):
            inputs = inputs.value
        x = np.asarray(inputs)
        if self._cast_inputs:
            dt = self.dtype
            if x.dtype != dt:
                if x.dtype.kind not in "fiub":
                    raise TypeError(f'Layer "{self.name}" expects numeric input, received dtype {x.dtype}')
                x = x.astype(dt)
        if not x.flags.c_contiguous:
            x = np.ascontiguousarray(x)
        return x

    # ------------------------------------------------------------------ calling
    def __call__(self, *args, **kwargs) -> Any:
        """On arrays: the layer's output (built on first use; the call's record is kept in
        ``self._last_ctx`` for ``backward``). On ``keras.Input`` tensors: a graph node."""
        if _is_symbolic(args, kwargs):
            from fastnet.layers.graph import symbolic_call

            return symbolic_call(self, args, kwargs)
        if args:
            inputs, rest = args[0], args[1:]
        elif "inputs" in kwargs:
            inputs, rest = kwargs.pop("inputs"), ()
        else:
            raise TypeError(f'Layer "{self.name}" was called without inputs')
        training = kwargs.pop("training", False)
        if _autodiff is not None and _autodiff.active_tape() is not None:
            cls = type(self)
            if cls.forward is Layer.forward and cls.backward is Layer.backward:
                return self._call_direct(inputs, rest, kwargs, bool(training))
            return self._call_on_tape(inputs, rest, kwargs, bool(training))
        x = self._convert(inputs)
        shape = [v.shape for v in x] if isinstance(x, list) else x.shape
        if not self.built:
            self._maybe_build(shape)
        else:
            self._check_spec(shape)
        ctx = CallContext()
        out = self.forward(ctx, x, *rest, training=bool(training), **kwargs)
        self._last_ctx = ctx
        return out

    def _call_on_tape(self, inputs, rest, kwargs, training):
        """A call inside an active recording (a layer used in another layer's or a model's
        ``call`` written with ops): the forward runs on the arrays, and the call is
        recorded on the tape with this layer's backward as its vector-Jacobian product."""
        unwrapped = _autodiff.unwrap(inputs)
        x = self._convert(unwrapped)
        shape = [v.shape for v in x] if isinstance(x, list) else x.shape
        if not self.built:
            self._maybe_build(shape)
        else:
            self._check_spec(shape)
        ctx = CallContext()
        out = self.forward(ctx, x, *[_autodiff.unwrap(a) for a in rest], training=training, **kwargs)
        flat_in = [t for t in tree.flatten([inputs, list(rest)]) if not isinstance(t, (int, float, str))]
        added = ctx.__dict__.get("losses")
        if added:  # (their gradients come from this layer's own backward)
            object.__setattr__(self, "_losses", list(added))
            stack = getattr(_CALLS, "scopes", None)
            if stack:
                stack[-1].extend(float(v) for v in added)

        def vjp(dy, ctx=ctx):
            ctx.need_dx = True
            return self.backward(ctx, dy)

        return _autodiff.record_layer(vjp, flat_in, out, self.trainable_weights)

    def _call_direct(self, inputs, rest, kwargs, training):
        """A call of a layer written with ``call`` inside an active recording: ``call``
        runs on the recording itself, so its ops (and the losses it adds) are traced
        there with this layer's weights as leaves."""
        def conv(a):
            if a is None or type(a) is _autodiff.Tracer or isinstance(a, (backend.Variable, str, bytes)):
                return a
            return self._convert_one(a)

        x = tree.map_structure(conv, inputs)
        if not self.built:
            if isinstance(x, dict):
                shape = {k: np.shape(v) for k, v in x.items()}
            elif isinstance(x, (list, tuple)):
                shape = [np.shape(v) for v in x]
            else:
                shape = np.shape(x)
            self._maybe_build(shape)
        depth = getattr(_CALLS, "depth", 0)
        if depth == 0:
            _clear_losses(self)
        _CALLS.depth = depth + 1
        try:
            return self._call_user(None, x, rest, kwargs, training)
        finally:
            _CALLS.depth = depth

    def forward(self, ctx: CallContext, inputs: Any, *args, training: bool = False, **kwargs) -> Any:
        """Computes the outputs; keeps in ``ctx`` what ``backward`` needs when ``ctx.record``.

        The base version runs ``call``. A layer written with ``call`` alone (and no
        ``backward`` of its own) trains when ``call`` is built from ``fastnet.ops`` and
        layers: the call is recorded on a tape and its vector-Jacobian products give the
        backward pass."""
        if type(self).call is Layer.call:
            raise NotImplementedError(f"{type(self).__name__} defines neither forward nor call")
        depth = getattr(_CALLS, "depth", 0)
        if depth == 0:
            d = self.__dict__
            if d.get("_losses") or d.get("_tracked") or hasattr(type(self), "layers"):
                _clear_losses(self)
        scopes = getattr(_CALLS, "scopes", None)
        if scopes is None:
            scopes = _CALLS.scopes = []
        scope = []
        scopes.append(scope)
        _CALLS.depth = depth + 1
        try:
            if ctx.record and type(self).backward is Layer.backward and _autodiff is not None:
                def run(traced, *a, **k):
                    return self._call_user(ctx, traced, a, k, training)
                # ``ctx.need_dx`` still holds the last backward's answer (a graph reuses a
                # node's ctx every step): when no input gradient was wanted, the inputs are
                # not watched, so their gradient (a first layer's matmul, say) is never
                # computed; backward records the call again should one be wanted after all.
                watch = ctx.need_dx
                d = self.__dict__
                cache = d.get("_replay", _NO_REPLAY)
                if cache is _NO_REPLAY:
                    cache = d["_replay"] = {}
                if cache is not None and not args and not kwargs and depth == 0 and not getattr(_autodiff._TLS,
                                                                                              "stack", None):
                    out, rec, watch = _autodiff.call_replayed(cache, run, inputs, bool(training), watch)
                else:
                    out, rec = _autodiff.call_recorded(run, inputs, *args, _watch=watch, **kwargs)
                ctx.recording = rec
                ctx.rerecord = None if watch else (inputs, args, kwargs, training)
                tape = rec.tape
            else:
                out = self._call_user(ctx, inputs, args, kwargs, training)
                if _autodiff is not None:
                    out = _autodiff.unwrap(out)
                tape = None
        finally:
            _CALLS.depth = depth
            scopes.pop()
        if scope or ctx.__dict__.get("losses") is not None:
            if scope and tape is not None:
                cache = self.__dict__.get("_replay")
                if cache:   # a call that adds losses is never replayed (the replay would not add them)
                    for k, v in list(cache.items()):
                        if k != "why" and v is not False:
                            cache[k] = False
            _finish_losses(ctx, scope, tape, scopes)
        return out

    def _call_user(self, ctx, inputs, args, kwargs, training):
        if _takes_training(type(self)):
            kwargs["training"] = training
        return self.call(inputs, *args, **kwargs)

    def call(self, inputs: Any, *args, training: bool = False, **kwargs) -> Any:
        """Keras's forward pass without a record (the base version runs ``forward``)."""
        return self.forward(CallContext(record=False), inputs, *args, training=bool(training), **kwargs)

    def backward(self, ctx: CallContext, dy: Any) -> Any:
        """Returns the input gradient for the call recorded in ``ctx`` (None where
        ``ctx.need_dx`` is False) and writes each trainable weight's gradient.

        The base version replays the recording of a ``call`` written with ops."""
        rec = ctx.__dict__.get("recording")
        if rec is None:
            raise NotImplementedError(
                f'Layer "{self.name}" ({type(self).__name__}) has no backward pass: define backward(ctx, dy), or '
                f"write call() with fastnet.ops and layers so that it is recorded")
        if type(rec.outputs) is not _autodiff.Tracer and not any(
                isinstance(o, _autodiff.Tracer) for o in tree.flatten(rec.outputs)):
            raise NotImplementedError(
                f'Layer "{self.name}" ({type(self).__name__}): its call() returned values computed outside '
                f"fastnet.ops (numpy functions, for instance), so no gradient can flow through it. Write call() "
                f"with fastnet.ops (keras.ops) and layers, or define backward(ctx, dy)")
        again = ctx.__dict__.get("rerecord")
        if again is not None and ctx.need_dx:   # the forward did not watch the inputs: record it anew
            inputs, args, kwargs, training = again
            rec.tape.release()
            self.forward(ctx, inputs, *args, training=training, **kwargs)
            rec = ctx.recording
        variables = self.trainable_weights
        out = rec.outputs
        if (type(out) is _autodiff.Tracer and type(dy) is np.ndarray and dy.shape == out.value.shape
                and dy.dtype == out.value.dtype and out._tape is rec.tape and not ctx.__dict__.get("added")):
            if len(rec.tape._nodes) == 1:   # one dense record (matmul + bias + ReLU): one kernel call
                dx = _ops_numpy()._dense_into(rec, dy, variables, ctx.need_dx)
                if dx is not NotImplemented:
                    ctx.recording = None
                    rec.tape.release()
                    return dx
            grads_in, grads_vars = rec._backward_one(dy, variables, ctx.need_dx, True)   # (what backward does here)
        else:
            grads_in, grads_vars = rec.backward(dy, variables=variables, need_dx=ctx.need_dx,
                                                added=ctx.__dict__.get("added") or ())
        ctx.recording = None
        for v, g in zip(variables, grads_vars):
            buf = v.grad_buffer()
            if g is None:
                buf.fill(0)
            else:
                np.copyto(buf, g, casting="unsafe")
        if not ctx.need_dx:
            return None
        return grads_in[0] if len(grads_in) == 1 else grads_in

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape:
        """The output shape for ``input_shape``: the same shape for built-in layers that do
        not say otherwise; found by running ``call`` on zeros for a layer written with
        ``call`` alone (as Keras infers it by tracing)."""
        if type(self).call is not Layer.call and type(self).compute_output_shape is Layer.compute_output_shape:
            from fastnet.layers.graph import KerasTensor, infer_output_shape

            def is_shape(v):
                return isinstance(v, (tuple, list)) and all(d is None or isinstance(d, (int, np.integer)) for d in v)
            dt = self.compute_dtype
            if is_shape(input_shape):
                arg = KerasTensor(tuple(input_shape), dt)
            else:
                arg = [KerasTensor(tuple(s), dt) for s in input_shape]
            out = infer_output_shape(self, (arg,), {})
            if isinstance(out, KerasTensor):
                return out.shape
            return [t.shape for t in tree.flatten(out)]
        return tuple(input_shape)

    def compute_mask(self, inputs: ArrayLike, mask: ArrayLike | None = None) -> np.ndarray | None:
        """The mask for the next layer: passed through when ``supports_masking``, else dropped."""
        return mask if self.supports_masking else None

    # ------------------------------------------------------------------ graph
    def _get_node_attribute(self, attr, what):
        # As in Keras: the tensors of the layer's first call.
        nodes = self._inbound_nodes
        if not nodes:
            raise AttributeError(f'Layer "{self.name}" has never been called on a symbolic tensor, '
                                 f"so it has no defined {what}")
        return getattr(nodes[0], attr)

    @property
    def input(self) -> Any:
        """The symbolic input of the layer's (first) call in a graph."""
        return self._get_node_attribute("input_structure", "input")

    @property
    def output(self) -> Any:
        """The symbolic output of the layer's (first) call in a graph."""
        return self._get_node_attribute("output_structure", "output")

    def get_input_at(self, node_index: int) -> Any:
        return self._inbound_nodes[node_index].input_structure

    def get_output_at(self, node_index: int) -> Any:
        return self._inbound_nodes[node_index].output_structure

    # ------------------------------------------------------------------ config
    def get_config(self) -> Config:
        cfg = {"name": self.name, "trainable": self.trainable, "dtype": self.dtype}
        if self._batch_input_shape is not None:
            cfg["batch_input_shape"] = list(self._batch_input_shape)
        reg = getattr(self, "activity_regularizer", None)
        if reg is not None:
            from fastnet.layers.core import _serialize_regularizer

            cfg["activity_regularizer"] = _serialize_regularizer(reg)
        return cfg

    @classmethod
    def from_config(cls, config_dict: Config) -> Layer:
        return cls(**config_dict)

    def get_build_config(self) -> Config | None:
        if self._build_shape is not None:
            shape = self._build_shape
            return {"input_shape": [list(s) for s in shape] if isinstance(shape, list) else list(shape)}
        return None

    def build_from_config(self, build_config: Config) -> None:
        if build_config and build_config.get("input_shape") is not None:
            shape = build_config["input_shape"]
            if shape and isinstance(shape[0], (list, tuple)):
                self._maybe_build([tuple(s) for s in shape])
            else:
                self._maybe_build(tuple(shape))

    @property
    def input_shape(self) -> Shape | None:
        if self._inbound_nodes and len(self._inbound_nodes) == 1:
            s = self._inbound_nodes[0].input_structure
            return tree.map_structure(lambda t: t.shape, s)
        if self._build_shape is None:
            raise AttributeError(f'Layer "{self.name}" has no defined input shape yet (not built)')
        return self._build_shape

    @property
    def output_shape(self) -> Shape:
        if self._inbound_nodes and len(self._inbound_nodes) == 1:
            s = self._inbound_nodes[0].output_structure
            return tree.map_structure(lambda t: t.shape, s)
        return self.compute_output_shape(self.input_shape)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"


_TAKES_TRAINING = {}

# The calls in progress on this thread: ``depth`` (nesting of layer calls; the outermost
# one resets the added losses) and ``scopes`` (one list per recorded call, receiving the
# losses added during it).
_CALLS = threading.local()
_NO_REPLAY = object()   # (a layer's "_replay" entry before its first recorded call)
_OPS_NUMPY = None


def _ops_numpy():
    global _OPS_NUMPY
    if _OPS_NUMPY is None:
        from fastnet.ops import numpy as m
        _OPS_NUMPY = m
    return _OPS_NUMPY


def _flatten_layers(layer):
    """Every layer nested in ``layer`` (depth first, each once), itself excluded."""
    out, seen = [], {id(layer)}

    def visit(lay):
        subs = lay.layers if isinstance(getattr(type(lay), "layers", None), property) else lay._sublayers()
        for s in subs:
            if id(s) not in seen:
                seen.add(id(s))
                out.append(s)
                visit(s)

    visit(layer)
    return out


def _clear_losses(layer):
    if layer.__dict__.get("_losses"):
        layer.__dict__["_losses"] = []
    for s in _flatten_layers(layer) if layer.__dict__.get("_tracked") or hasattr(type(layer), "layers") else ():
        if s.__dict__.get("_losses"):
            s.__dict__["_losses"] = []


def _finish_losses(ctx, scope, tape, scopes):
    """The losses a call added: their sum enters the step's loss (``ctx.losses``), those
    traced on the call's own recording get a unit cotangent in backward (``ctx.added``),
    and an enclosing recorded call receives their values."""
    added, values = [], []
    for v in scope:
        if type(v) is _autodiff.Tracer and v._tape is tape:
            added.append(v)
        values.append(float(np.sum(_autodiff.value_of(v))) if _autodiff is not None else float(np.sum(v)))
    ctx.added = added or None
    ctx.losses = values or None
    if values and scopes:
        scopes[-1].extend(values)


def _regularization_loss(v):
    """A weight's regularisation penalty recorded on the active tape."""
    value = np.asarray(v.regularizer(v.value), dtype=v.value.dtype)
    return _autodiff.record(value, [v], lambda g, v=v: [np.asarray(g) * v.regularizer.gradient(v.value)])


_ADDS_LOSSES = {}


def _code_names(code, acc):
    acc.update(code.co_names)
    for c in code.co_consts:
        if hasattr(c, "co_names"):
            _code_names(c, acc)
    return acc


def _class_adds_losses(cls):
    v = _ADDS_LOSSES.get(cls)
    if v is None:
        v = False
        for klass in cls.__mro__:
            if klass is object or klass.__module__.startswith("fastnet."):
                continue
            for f in vars(klass).values():
                f = getattr(f, "__func__", f)
                f = getattr(f, "fget", f)
                code = getattr(f, "__code__", None)
                if code is not None and "add_loss" in _code_names(code, set()):
                    v = True
                    break
            if v:
                break
        _ADDS_LOSSES[cls] = v
    return v


def _takes_training(cls):
    v = _TAKES_TRAINING.get(cls)
    if v is None:
        import inspect

        try:
            params = inspect.signature(cls.call).parameters
            v = "training" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
        except (TypeError, ValueError):
            v = True
        _TAKES_TRAINING[cls] = v
    return v


class InputLayer(Layer):
    """Declares a model's input shape (batch excluded); the identity on data.

    Args:
        shape: the input shape without the batch axis, e.g. ``(3,)``.
        batch_size: optional fixed batch size.
    """

    def __init__(self, shape: ShapeLike | None = None, batch_size: int | None = None, dtype: DTypeLike | None = None,
                 name: str | None = None, batch_shape: ShapeLike | None = None, input_shape: ShapeLike | None = None,
                 batch_input_shape: ShapeLike | None = None, sparse: bool | None = None, **kwargs) -> None:
        kwargs.pop("ragged", None)
        if kwargs.pop("optional", False):
            raise ValueError("fastnet does not support optional model inputs (InputLayer(optional=True))")
        if sparse:
            raise ValueError("fastnet does not support sparse inputs (InputLayer(sparse=True))")
        is_string = isinstance(dtype, str) and dtype in ("string", "str")
        if is_string:
            dtype = None
        if shape is None and input_shape is not None:
            shape = input_shape
        if batch_shape is None and batch_input_shape is not None:
            batch_shape = batch_input_shape
        if shape is None and batch_shape is None:
            raise ValueError("InputLayer needs a shape, e.g. InputLayer(shape=(3,))")
        if batch_shape is None:
            if isinstance(shape, int):
                shape = (shape,)
            batch_shape = (batch_size,) + tuple(shape)
        batch_shape = tuple(None if d is None else int(d) for d in batch_shape)
        for d in batch_shape[1:]:
            if d is not None and d < 0:
                raise ValueError(f"InputLayer shape dimensions must be non-negative, received {batch_shape[1:]}")
        super().__init__(name=name, dtype=dtype, **kwargs)
        self._batch_input_shape = batch_shape
        self.batch_shape = batch_shape
        self._build_shape = (None,) + batch_shape[1:]
        self.built = True
        self._output_dtype = "string" if is_string else self.dtype
        if is_string or np.dtype(self.dtype).kind != "f":
            self._cast_inputs = False
        from fastnet.layers.graph import Node

        Node(self, (), {}, KerasTensor(batch_shape, self._output_dtype, name=self.name))

    @property
    def shape(self) -> Shape:
        return self.batch_shape

    def forward(self, ctx: CallContext, inputs: ArrayLike, training: bool = False) -> np.ndarray:
        return inputs

    def backward(self, ctx: CallContext, dy: np.ndarray) -> np.ndarray | None:
        return dy

    def get_config(self) -> Config:
        return {"batch_shape": list(self.batch_shape), "dtype": self._output_dtype, "sparse": False,
                "ragged": False, "name": self.name, "optional": False}


def Input(shape: ShapeLike | None = None, batch_size: int | None = None, dtype: DTypeLike | None = None,
          name: str | None = None, batch_shape: ShapeLike | None = None, **kwargs) -> KerasTensor:
    """Declares a model input, as ``keras.Input``: ``Sequential([Input((3,)), Dense(4)])``."""
    layer = InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, name=name,
                       batch_shape=batch_shape, **kwargs)
    return layer.output
