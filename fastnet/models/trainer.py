"""compile / fit / evaluate / predict over a model's graph.

The trainer sees a model as a graph (``fastnet.models.graph``) with named inputs and
outputs. Each loop holds its own run state, so a ``predict`` inside a callback, or
from another thread, runs beside training without touching it. A training step runs
the graph forward, each output's loss (from the logits where a softmax/sigmoid output
feeds a crossentropy, as Keras's TensorFlow backend computes it), the graph backward,
then one fused optimizer kernel over a flat buffer that holds every trainable weight
(each weight's array is a view of it), so the per-step Python work is a short loop
over nodes whatever the number of weights.

Losses and metrics follow Keras 3: one loss (or one per output, as a list or a dict
keyed by output name), ``loss_weights`` likewise; with several outputs the logs hold
``loss`` (the weighted sum, plus regularisation), ``<output>_loss`` (each output's
unweighted loss) and ``<output>_<metric>``.
"""
from __future__ import annotations

import math
import signal
import threading
import warnings
from typing import TYPE_CHECKING

import numpy as np

from fastnet import backend, config
from fastnet import random as _random
from fastnet.models.custom_steps import StepAPI
from fastnet.models.graph import DeferredUpdates
from fastnet.utils import tree

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any

    from fastnet._typing import ArrayLike, Config
    from fastnet.callbacks import Callback, History
    from fastnet.losses import Loss
    from fastnet.metrics import Metric
    from fastnet.optimizers.base import Optimizer

__all__ = ["Trainer"]


def _check_batch_size(batch_size, default=32):
    if batch_size is None:
        return default
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, received batch_size={batch_size!r}")
    return int(batch_size)


class _DeferSigint:
    """Holds SIGINT back while a training step commits its updates, so an interrupt
    never leaves the weights half-way between two steps."""

    def __init__(self) -> None:
        self.active = (hasattr(signal, "pthread_sigmask")
                       and threading.current_thread() is threading.main_thread())

    def __enter__(self) -> None:
        if self.active:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})

    def __exit__(self, *exc) -> bool:
        if self.active:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        return False


def _numeric(arr, what):
    arr = np.asarray(arr)
    if arr.dtype == object:
        raise TypeError(f"{what} must be a numeric array, received dtype object")
    return arr


class _Output:
    """One model output as the trainer sees it: its loss, weight and metrics."""

    __slots__ = ("name", "index", "loss_id", "loss", "weight", "metric_ids", "weighted_metric_ids",
                 "metrics", "fused", "step", "prefix")

    def __init__(self, name, index):
        self.name = name
        self.index = index
        self.loss_id = None
        self.loss = None
        self.weight = 1.0
        self.metric_ids = []
        self.weighted_metric_ids = []
        self.metrics = None
        self.fused = False
        self.step = None
        self.prefix = ""


class Trainer(StepAPI):
    """The Keras training API of ``Model``: compile, fit, evaluate, predict.

    A model class that overrides ``train_step``, ``test_step`` or ``compute_loss``
    (``fastnet.models.custom_steps``) is trained and evaluated by loops that call them."""

    # The data-parallel runner of the loop in progress (fastnet.distribution), None on one process.
    _dist = None

    def _init_trainer(self):
        self.optimizer = None
        self.loss = None
        self.compiled = False
        self.stop_training = False
        self.history = None
        self._outputs_cfg = None
        self._packed = None
        self._compile_config = None
        self._metrics = []
        self._loss_obj = None
        self._loss_weight = 1.0
        self._train_state = None
        self._reg_vars = []

    # ------------------------------------------------------------------ compile
    def compile(self, optimizer: str | Config | Optimizer = "rmsprop",
                loss: str | Callable[..., Any] | Loss | Config | Sequence[Any] | Mapping[str, Any] | None = None,
                metrics: Sequence[Any] | Mapping[str, Any] | None = None,
                loss_weights: Sequence[float] | Mapping[str, float] | None = None,
                weighted_metrics: Sequence[Any] | Mapping[str, Any] | None = None, run_eagerly: bool = False,
                steps_per_execution: int = 1, jit_compile: bool | str = "auto", auto_scale_loss: bool = True) -> None:
        """Configures training: an optimizer, a loss (one, or one per output as a list or
        a dict keyed by output name), metrics and loss weights likewise."""
        from fastnet import losses as losses_mod
        from fastnet import optimizers as optimizers_mod

        self.optimizer = optimizers_mod.get(optimizer)
        if loss is None and not self._overrides_steps():
            raise ValueError(f"Model '{self.name}' needs a loss to compile, e.g. "
                             f"compile(optimizer='adam', loss='mse')")
        self.loss = loss
        self.run_eagerly = bool(run_eagerly)  # (a subclassed model's call is then recorded, not traced)
        # Layers written with ops are replayed once their calls trace alike (fastnet.ops.autodiff);
        # compiling starts their traces afresh, and run_eagerly keeps every call eager.
        from fastnet.layers.base import _flatten_layers

        for layer in [self] + _flatten_layers(self):
            layer.__dict__["_replay"] = None if self.run_eagerly else {}
        self._compile_args = (loss, metrics, loss_weights, weighted_metrics)
        self._outputs_cfg = None  # resolved against the outputs once the model is built
        self._losses_mod = losses_mod
        self.compiled = True
        self._compile_config = {"optimizer": optimizer, "loss": loss, "metrics": [] if metrics is None else metrics,
                                "loss_weights": loss_weights, "weighted_metrics": weighted_metrics}
        self._packed = None
        self._metrics = None
        self._train_state = None
        if self.built and loss is not None and self._graph is not None:  # (a subclassed model called
            self._configure_outputs()                                    # eagerly gets its graph in fit)

    def _per_output(self, value, what, names, allow_broadcast):
        """``value`` spread over the outputs: a dict by name, a list in order, or (when
        allowed) one value for every output."""
        n = len(names)
        if isinstance(value, dict):
            unknown = sorted(set(value) - set(names))
            if unknown:
                raise ValueError(f"{what} has keys {unknown} that are not outputs of model '{self.name}'; "
                                 f"its outputs are {names}")
            return [value.get(k) for k in names]
        if isinstance(value, (list, tuple)) and (what != "metrics" or n > 1):
            if n == 1 and what in ("loss", "loss_weights"):
                if len(value) != 1:
                    raise ValueError(f"Model '{self.name}' has one output, so {what} must hold one entry, "
                                     f"received {len(value)}")
                return [value[0]]
            if len(value) != n:
                raise ValueError(f"Model '{self.name}' has {n} outputs {names}, so a list of {what} must hold "
                                 f"{n} entries, received {len(value)}")
            return list(value)
        if n > 1 and not allow_broadcast:
            raise ValueError(f"Model '{self.name}' has {n} outputs {names}: give {what} as a list or a dict "
                             f"keyed by output name")
        return [value] * n

    def _configure_outputs(self):
        loss, metrics, loss_weights, weighted_metrics = self._compile_args
        names = self.output_names
        losses = self._per_output(loss, "loss", names, allow_broadcast=True)
        weights = (self._per_output(loss_weights, "loss_weights", names, allow_broadcast=False)
                   if loss_weights is not None else [1.0] * len(names))
        metric_lists = self._per_output(metrics, "metrics", names, allow_broadcast=True) if metrics else \
            [None] * len(names)
        wmetric_lists = self._per_output(weighted_metrics, "metrics", names, allow_broadcast=True) \
            if weighted_metrics else [None] * len(names)
        outs = []
        multi = len(names) > 1
        for i, name in enumerate(names):
            o = _Output(name, i)
            ident = losses[i]
            o.loss_id = ident
            if ident is not None:
                o.loss = (None if (isinstance(ident, str) and ident.lower() in ("crossentropy", "ce"))
                          else self._losses_mod.get(ident))
            o.weight = 1.0 if weights[i] is None else float(weights[i])
            ms = metric_lists[i]
            o.metric_ids = [] if ms is None else (list(ms) if isinstance(ms, (list, tuple)) else [ms])
            ws = wmetric_lists[i]
            o.weighted_metric_ids = [] if ws is None else (list(ws) if isinstance(ws, (list, tuple)) else [ws])
            o.prefix = f"{name}_" if multi else ""
            outs.append(o)
        if all(o.loss_id is None for o in outs):
            raise ValueError(f"Model '{self.name}': every output's loss is None, so there is nothing to train")
        self._outputs_cfg = outs
        self._metrics = None
        # Kept for single-output code (the data-parallel runner, callbacks).
        self._loss_weight = outs[0].weight if len(outs) == 1 else 1.0
        self._loss_obj = outs[0].loss if len(outs) == 1 else None

    def _require_compiled(self, what):
        if not self.compiled:
            raise RuntimeError(f"You must compile model '{self.name}' before {what}: call "
                               f"model.compile(optimizer=..., loss=...)")

    def _resolve_outputs(self, ys):
        """Resolves losses and metrics that depend on the target and output shapes."""
        from fastnet import losses as losses_mod
        from fastnet import metrics as metrics_mod

        if self._outputs_cfg is None:
            self._configure_outputs()
        out_shapes = self._output_shapes()
        for o in self._outputs_cfg:
            y = ys[o.index]
            if o.loss_id is None:
                continue
            if y is None:
                raise ValueError(f"Model '{self.name}' has a loss for output '{o.name}' but no target was given "
                                 f"for it; targets were given for "
                                 f"{[self.output_names[i] for i, v in enumerate(ys) if v is not None]}")
            if o.loss is None:
                o.loss = losses_mod.resolve(o.loss_id, y.shape, out_shapes[o.index])
            try:
                o.loss.validate(y, out_shapes[o.index])
            except ValueError as e:
                if len(self._outputs_cfg) > 1:
                    raise ValueError(f"Output '{o.name}': {e}") from None
                raise
        if self._metrics is None:
            all_metrics = []
            for o in self._outputs_cfg:
                ms = []
                y = ys[o.index]
                yshape = None if y is None else y.shape
                for ident in o.metric_ids:
                    ms.append(metrics_mod.resolve(ident, yshape, out_shapes[o.index], loss=o.loss))
                for ident in o.weighted_metric_ids:
                    m = metrics_mod.resolve(ident, yshape, out_shapes[o.index], loss=o.loss)
                    m._weighted = True
                    ms.append(m)
                if o.prefix:
                    for m in ms:
                        m.name = o.prefix + m.name
                o.metrics = ms
                all_metrics += ms
            names = [m.name for m in all_metrics]
            dup = {n for n in names if names.count(n) > 1}
            if dup or "loss" in names:
                raise ValueError(f"Metric names must be unique and differ from 'loss', received {names}")
            self._metrics = all_metrics
        self._loss_obj = self._outputs_cfg[0].loss if len(self._outputs_cfg) == 1 else None
        self._fusion_plan()

    def _output_shapes(self):
        return [t.shape for t in self._graph.outputs]

    def _fusion_plan(self):
        """Outputs whose loss is computed from the producing layer's logits
        (softmax/sigmoid + crossentropy): stable, and without probability clipping. Only
        where nothing else reads the output."""
        graph = self._graph
        for o in self._outputs_cfg:
            o.fused = False
            o.step = None
            loss = o.loss
            if loss is None or not getattr(loss, "supports_logits_fusion", False):
                continue
            slot = graph.output_slots[o.index]
            st = graph.producer.get(slot)
            if st is None or st.n_out != 1 or graph.consumers[slot] != 1:
                continue
            layer = st.layer
            act = getattr(layer, "activation", None)
            if not getattr(layer, "_supports_logits", False) or act is None or not getattr(act, "fused", False):
                continue
            if act.fn.name == loss.logits_activation:
                o.fused = True
                o.step = st.index

    @property
    def metrics(self) -> list[Metric]:
        if self._overrides_steps():  # Keras 3's list: the loss tracker, compiled metrics, metric attributes
            return self._step_metrics()
        return list(self._metrics or [])

    @property
    def metrics_names(self) -> list[str]:
        if not self.compiled:
            return []
        names = ["loss"]
        if self._metrics is not None:
            if self._outputs_cfg is not None and len(self._outputs_cfg) > 1:
                names += [o.prefix + "loss" for o in self._outputs_cfg if o.loss is not None]
            names += [m.name for m in self._metrics]
        return names

    # ------------------------------------------------------------------ data
    def _flatten_x(self, x, what="x"):
        """The inputs as one array per model input, in order, from an array, a list or a
        dict keyed by input name."""
        names = self.input_names
        if x is None:
            raise ValueError(f"{what} needs input data x")
        if isinstance(x, dict):
            missing = [n for n in names if n not in x]
            if missing:
                raise ValueError(f"Model '{self.name}' expects inputs {names}; the dict given as {what} lacks "
                                 f"{missing} (it has {sorted(x)})")
            xs = [x[n] for n in names]
        elif isinstance(x, (list, tuple)) and len(names) > 1:
            if len(x) != len(names):
                raise ValueError(f"Model '{self.name}' expects {len(names)} inputs {names}, received a list of "
                                 f"{len(x)}")
            xs = list(x)
        elif isinstance(x, (list, tuple)) and len(x) == 1 and isinstance(x[0], np.ndarray):
            xs = [x[0]]
        else:
            if isinstance(x, (list, tuple)) and x and isinstance(x[0], np.ndarray) and len(x) > 1:
                raise ValueError(f"Model '{self.name}' has one input, received a list of {len(x)} arrays")
            xs = [x]
        out = []
        for i, v in enumerate(xs):
            v = _numeric(v, what) if not self._string_input(i) else np.asarray(v)
            if v.ndim == 0:
                raise ValueError(f"{what} must have a batch axis, received a scalar")
            out.append(self._cast_input(i, v))
        return out

    def _string_input(self, i):
        return self._graph.inputs[i].dtype == "string" if self._graph is not None else False

    def _cast_input(self, i, v):
        want = self._graph.inputs[i].dtype if self._graph is not None else config.floatx()
        if want == "string":
            return v
        dt = np.dtype(want)
        if v.dtype != dt:
            if v.dtype.kind not in "fiub":
                raise TypeError(f"Model inputs must be numeric, received dtype {v.dtype}")
            if dt.kind == "f" or v.dtype.kind in "fb":
                v = v.astype(dt) if dt.kind == "f" else v
        return np.ascontiguousarray(v)

    def _flatten_y(self, y, what="y"):
        """Targets as one array (or None) per model output, from an array, a list or a dict."""
        names = self.output_names
        if y is None:
            return [None] * len(names)
        if isinstance(y, dict):
            unknown = sorted(set(y) - set(names))
            if unknown:
                raise ValueError(f"{what} has keys {unknown} that are not outputs of model '{self.name}'; its "
                                 f"outputs are {names}")
            ys = [y.get(n) for n in names]
        elif isinstance(y, (list, tuple)) and len(names) > 1:
            if len(y) != len(names):
                raise ValueError(f"Model '{self.name}' has {len(names)} outputs {names}, received {len(y)} "
                                 f"target arrays")
            ys = list(y)
        elif isinstance(y, (list, tuple)) and len(y) == 1 and isinstance(y[0], np.ndarray):
            ys = [y[0]]
        else:
            if len(names) > 1:
                raise ValueError(f"Model '{self.name}' has {len(names)} outputs {names}: give {what} as a list "
                                 f"or a dict keyed by output name")
            ys = [y]
        out = []
        fx = np.dtype(config.floatx())
        for v in ys:
            if v is None:
                out.append(None)
                continue
            v = _numeric(v, what)
            if (v.dtype.kind == "f" and v.dtype != fx) or v.dtype.kind == "b":
                v = v.astype(fx)
            out.append(np.ascontiguousarray(v))
        return out

    def _prepare_xy(self, x, y, sample_weight, what, need_y=True):
        if x is None:
            raise ValueError(f"{what} needs input data x")
        self._ensure_built_for(x)
        xs = self._flatten_x(x)
        ys = self._flatten_y(y)
        if need_y and all(v is None for v in ys):
            raise ValueError(f"{what} needs targets y for this model's loss")
        n = len(xs[0])
        for i, v in enumerate(xs[1:], 1):
            if len(v) != n:
                raise ValueError(f"All inputs must have the same number of samples, received input "
                                 f"'{self.input_names[0]}' with {n} and '{self.input_names[i]}' with {len(v)}")
        for i, v in enumerate(ys):
            if v is not None and len(v) != n:
                who = "y" if len(ys) == 1 else f"y['{self.output_names[i]}']"
                raise ValueError(f"x and y must have the same number of samples, received x with "
                                 f"{n} samples and {who} with {len(v)} samples")
        sws = self._flatten_sw(sample_weight, n)
        self._check_inputs(xs)
        return xs, ys, sws

    def _flatten_sw(self, sample_weight, n):
        names = self.output_names
        if sample_weight is None:
            return [None] * len(names)
        if isinstance(sample_weight, dict):
            sws = [sample_weight.get(k) for k in names]
        elif isinstance(sample_weight, (list, tuple)) and len(names) > 1:
            sws = list(sample_weight)
        else:
            sws = [sample_weight] * len(names)
        out = []
        for v in sws:
            if v is None:
                out.append(None)
                continue
            v = np.asarray(v, dtype=np.dtype(config.floatx()))
            if v.shape[:1] != (n,):
                raise ValueError(f"sample_weight must have one weight per sample ({n}), "
                                 f"received shape {v.shape}")
            out.append(v)
        return out

    def _class_weights(self, ys, class_weight):
        if not class_weight:
            return None
        targets = [y for y in ys if y is not None]
        if len(targets) != 1:
            raise ValueError("class_weight is supported for models with a single output; use sample_weight "
                             "(one array per output) for several outputs")
        y = targets[0]
        if not isinstance(class_weight, dict):
            raise ValueError(f"class_weight must be a dict mapping class indices to weights, received "
                             f"{type(class_weight).__name__}")
        if y.ndim > 1 and y.shape[-1] > 1:
            idx = np.argmax(y, axis=-1)
            n_cls = y.shape[-1]
        else:
            idx = np.rint(y.reshape(len(y), -1)[:, 0]).astype(np.int64)
            n_cls = None
        keys = []
        for k in class_weight:
            if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0 or (
                    n_cls is not None and k >= n_cls):
                valid = f"0..{n_cls - 1}" if n_cls is not None else "non-negative integers"
                raise ValueError(f"class_weight keys must be class indices ({valid}), received {k!r}")
            keys.append(int(k))
        size = max(int(idx.max()) + 1 if idx.size else 0, max(keys) + 1)
        table = np.ones(size, dtype=np.dtype(config.floatx()))
        for k, v in class_weight.items():
            table[int(k)] = v
        missing = set(np.unique(idx).tolist()) - set(keys)
        if missing:
            raise ValueError(f"class_weight has no entry for classes {sorted(missing)} present in y; "
                             f"it covers {sorted(keys)}")
        return table[idx]

    # ------------------------------------------------------------------ training machinery
    def _prepare_training(self):
        """Packs trainable weights into flat buffers and builds the optimizer (once), and
        a run state for training."""
        variables = self.trainable_weights
        key = tuple(id(v) for v in variables)
        if self._packed is None or self._packed[0] != key:
            dtype = np.dtype(config.floatx())
            for v in variables:
                if v.value.dtype != dtype:
                    dtype = v.value.dtype
            values, grads, offsets = backend.pack(variables, dtype)
            self.optimizer.build(variables)
            self._packed = (key, variables, values, grads, offsets)
            self._train_state = None
        # The backward plan depends on which layers have trainable weights: made again
        # when the trainable weights or a layer's ``trainable`` changed since the last one.
        graph = self._graph
        plan_key = (graph, key, tuple(st.layer.trainable for st in graph.steps))
        if self.__dict__.get("_plan_key") != plan_key:
            graph.replan()
            self._plan_key = plan_key
        self._reg_vars = [v for v in variables if v.regularizer is not None]
        if self._train_state is None or self._train_state.graph is not self._graph:
            self._defer = DeferredUpdates()
            self._train_state = self._graph.new_state(record=True, pooled=True, defer=self._defer)
        state = self._train_state
        for c in state.ctxs:
            c.keep_logits = c.logits_grad = False
        for o in self._outputs_cfg:
            if o.fused:
                c = state.ctxs[o.step]
                c.keep_logits = c.logits_grad = True
        self._grad_buffers = {}
        return self._packed

    def _regularization(self):
        total = 0.0
        for v in self._reg_vars:
            total += float(v.regularizer(v.value))
        return total

    def _losses_and_grads(self, state, outs, ys, sws, training):
        """Each output's loss and (in training) its gradient; returns (weighted total,
        per-output values, gradients)."""
        cfg = self._outputs_cfg
        if training and len(cfg) == 1:  # the common case, without the loop's bookkeeping
            value, dy = self._one_loss_and_grad(cfg[0], state, outs[0], ys[0], sws[0])
            return value * cfg[0].weight, [value], [dy]
        total = 0.0
        values = []
        grads = [None] * len(outs)
        for o in self._outputs_cfg:
            if o.loss is None:
                values.append(None)
                continue
            out, y, sw = outs[o.index], ys[o.index], sws[o.index]
            if training:
                gbuf = self._grad_buffers.get((o.index, out.shape))
                if gbuf is None:
                    gbuf = self._grad_buffers[(o.index, out.shape)] = np.empty(out.shape, out.dtype)
                if o.fused:
                    value, dy = o.loss.value_and_grad_from_logits(y, state.ctxs[o.step].logits, sw, probs=out,
                                                                  out=gbuf)
                else:
                    value, dy = o.loss.value_and_grad(y, out, sw, out=gbuf)
                if o.weight != 1.0:
                    dy *= o.weight
                grads[o.index] = dy
            elif o.fused:
                value = o.loss.value_and_grad_from_logits(y, state.ctxs[o.step].logits, sw, probs=out)[0]
            else:
                value = o.loss(y, out, sample_weight=sw)
            value = float(value)
            values.append(value)
            total += value * o.weight
        return total, values, grads

    def _one_loss_and_grad(self, o, state, out, y, sw):
        """Output ``o``'s loss value (unweighted) and its gradient (weighted), in training."""
        gbuf = self._grad_buffers.get(out.shape)
        if gbuf is None:
            gbuf = self._grad_buffers[out.shape] = np.empty(out.shape, out.dtype)
        if o.fused:
            value, dy = o.loss.value_and_grad_from_logits(y, state.ctxs[o.step].logits, sw, probs=out, out=gbuf)
        else:
            value, dy = o.loss.value_and_grad(y, out, sw, out=gbuf)
        if o.weight != 1.0:
            dy *= o.weight
        return float(value), dy

    def _update_metrics(self, outs, ys, sws, per_output=None):
        cfg = self._outputs_cfg
        if per_output is None and len(cfg) == 1:
            y, out, sw = ys[0], outs[0], sws[0]
            for m in cfg[0].metrics:
                m.update_state(y, out, sw if m.__dict__.get("_weighted") else None)
            return
        for o in cfg:
            ms = o.metrics if per_output is None else per_output[o.index]
            if not ms:
                continue
            y, out, sw = ys[o.index], outs[o.index], sws[o.index]
            for m in ms:
                m.update_state(y, out, sw if getattr(m, "_weighted", False) else None)

    def _train_step(self, xs, ys, sws):
        """One step: forward, loss, backward, update. Returns (loss, per-output losses)."""
        dist = self._dist
        if dist is not None:  # this process's rows of the global batch
            x, y, sw = dist.begin_step(xs[0], ys[0], sws[0], train=True)
            xs, ys, sws = [x], [y], [sw]
        state = self._train_state
        graph = self._graph
        outs = graph.forward(state, xs, training=True)
        value, values, grads = self._losses_and_grads(state, outs, ys, sws, training=True)
        value += state.extra_loss
        if dist is not None:
            for g in grads:
                if g is not None:
                    g *= dist.share  # this process's part of the global batch loss
            graph.backward(state, grads, need_input_grads=False, on_step_done=self._dist_hook)
            dist.finish_gradients()  # summed over the processes
        else:
            graph.backward(state, grads, need_input_grads=False)
        if self._reg_vars:
            value += self._regularize()
        self._apply_gradients(dist)
        self._update_metrics(outs, ys, sws)
        if dist is not None:
            return dist.end_step(float(value), train=True), values
        return value, values

    def _regularize(self):
        """Adds the weight regularizers' gradients to the weights' gradients; returns
        their penalty, for the step's loss."""
        total = 0.0
        for v in self._reg_vars:
            total += float(v.regularizer(v.value))
            v.grad += v.regularizer.gradient(v.value)
        return total

    def _apply_gradients(self, dist):
        """The optimizer's update of the packed weights, then the updates layers deferred
        to the end of the step (BatchNormalization's moving statistics), together."""
        _, _, pvalues, pgrads, offsets = self._packed
        defer = self._defer
        if defer.items:
            if dist is not None:
                dist.reduce_updates(defer.items)
            with _DeferSigint():
                self.optimizer.apply_flat(pvalues, pgrads, offsets)
                defer.commit()
        else:
            self.optimizer.apply_flat(pvalues, pgrads, offsets)

    def _chain_train_step(self, x, y, sw):
        """``_train_step`` for a chain with one output (a Sequential, most models),
        trained in this process: the same forward, loss, backward and update, without
        the per-step lists of the general step. Returns the loss."""
        state = self._train_state
        out = x
        for fwd, ctx in state.chain():
            out = fwd(ctx, out, training=True)
        o = self._outputs_cfg[0]
        value, dy = self._one_loss_and_grad(o, state, out, y, sw)
        value *= o.weight
        for bwd, ctx, need_dx in state.bw_chain(False):
            ctx.need_dx = need_dx
            dy = bwd(ctx, dy)
        if self._reg_vars:
            value += self._regularize()
        self._apply_gradients(None)
        for m in o.metrics:
            m.update_state(y, out, sw if m.__dict__.get("_weighted") else None)
        return value

    def _dist_hook(self, step):
        index = self._layer_index.get(id(step.layer))
        if index is not None:
            self._dist.backward_done(index)

    def _test_step(self, state, xs, ys, sws, per_output=None):
        dist = self._dist
        if dist is not None:
            x, y, sw = dist.begin_step(xs[0], ys[0], sws[0], train=False)
            xs, ys, sws = [x], [y], [sw]
        outs = self._graph.forward(state, xs, training=False)
        value, values, _ = self._losses_and_grads(state, outs, ys, sws, training=False)
        value += state.extra_loss
        if self._reg_vars:
            value += self._regularization()
        self._update_metrics(outs, ys, sws, per_output)
        if dist is not None:
            return dist.end_step(value, train=False), values
        return value, values

    def _collect_logs(self, total, per_output, seen, metrics):
        """Loss (``total / seen``), per-output losses and metric results; over all
        processes when distributed."""
        if self._dist is not None:
            return self._dist.reduce_logs(total, seen, metrics)
        logs = {"loss": total / seen if seen else float("nan")}
        if per_output is not None:
            for o, v in zip(self._outputs_cfg, per_output):
                if o.loss is not None:
                    logs[o.prefix + "loss"] = v / seen if seen else float("nan")
        for m in metrics:
            logs[m.name] = float(m.result())
        return logs

    def _log_names(self):
        names = ["loss"]
        if len(self._outputs_cfg) > 1:
            names += [o.prefix + "loss" for o in self._outputs_cfg if o.loss is not None]
        return names + [m.name for m in self._metrics]

    def _eval_state(self):
        state = self._graph.new_state(record=False, pooled=True)
        for o in self._outputs_cfg:
            if o.fused:
                state.ctxs[o.step].keep_logits = True
        return state

    # ------------------------------------------------------------------ fit
    def fit(self, x: Any = None, y: Any = None, batch_size: int | None = None,
            epochs: int = 1, verbose: int | str = "auto", callbacks: Sequence[Callback] | None = None,
            validation_split: float = 0.0, validation_data: Any = None, shuffle: bool = True,
            class_weight: Mapping[int, float] | None = None, sample_weight: ArrayLike | None = None,
            initial_epoch: int = 0, steps_per_epoch: int | None = None, validation_steps: int | None = None,
            validation_batch_size: int | None = None, validation_freq: int = 1) -> History:
        """Trains the model for a number of epochs; returns a History.

        Per-epoch values are those Keras reports: the loss averaged over the epoch's
        batches weighted by batch size, and each metric accumulated over the epoch.
        """
        from fastnet import callbacks as callbacks_mod
        from fastnet import distribution as _distribution

        self._require_compiled("training it")
        batch_size = _check_batch_size(batch_size)
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"epochs must be a non-negative integer, received epochs={epochs!r}")
        if not (0.0 <= float(validation_split) < 1.0):
            raise ValueError(f"validation_split must be in [0, 1), received {validation_split}")
        if steps_per_epoch is not None and (not isinstance(steps_per_epoch, (int, np.integer)) or steps_per_epoch <= 0):
            raise ValueError(f"steps_per_epoch must be a positive integer, received {steps_per_epoch!r}")
        if verbose == "auto":
            verbose = 1
        if self._overrides_steps():
            return self._fit_custom(x, y, sample_weight, batch_size, epochs, verbose, callbacks, validation_split,
                                    validation_data, shuffle, class_weight, initial_epoch, steps_per_epoch,
                                    validation_steps, validation_batch_size, validation_freq)
        if not _is_arrays(x):
            return self._fit_iterating(x, y, sample_weight, batch_size, epochs, verbose, callbacks,
                                       validation_split, validation_data, shuffle, class_weight, initial_epoch,
                                       steps_per_epoch, validation_steps, validation_batch_size, validation_freq)
        xs, ys, sws = self._prepare_xy(x, y, sample_weight, "fit")
        n_all = len(xs[0])
        if validation_data is None and validation_split:
            split = int(math.floor(n_all * (1.0 - validation_split)))
            if split == 0 or split == n_all:
                raise ValueError(f"validation_split={validation_split} leaves no training or no "
                                 f"validation samples out of {n_all}")
            val = ([v[split:] for v in xs], [None if v is None else v[split:] for v in ys],
                   [None if v is None else v[split:] for v in sws])
            xs = [v[:split] for v in xs]
            ys = [None if v is None else v[:split] for v in ys]
            sws = [None if v is None else v[:split] for v in sws]
        else:
            val = self._validation_source(validation_data, validation_batch_size or batch_size, validation_steps)

        cw = self._class_weights(ys, class_weight)
        if cw is not None:
            sws = [None if y is None else (cw if sw is None else sw * cw) for y, sw in zip(ys, sws)]

        self._resolve_outputs(ys)
        if isinstance(val, tuple):
            self._check_targets(val[1], "validation_data")
        self._prepare_training()
        dist = self._dist = _distribution.runner(self)
        if dist is not None:  # same model and data on every process; rank 0's weights
            if len(xs) != 1 or len(ys) != 1:
                raise ValueError("Data-parallel training (fastnet.distribution) supports models with one "
                                 "input and one output")
            self._layer_index = {id(layer): i for i, layer in enumerate(self.layers)}
            if val is not None and not isinstance(val, tuple):
                raise ValueError("Data-parallel training (fastnet.distribution) takes validation data as arrays")
            dval = None if val is None else (val[0][0], val[1][0], val[2][0])
            callbacks = dist.begin_fit(xs[0], ys[0], sws[0], batch_size, epochs, steps_per_epoch,
                                       shuffle, initial_epoch, dval, callbacks)
        self._defer.sync = _distribution.batchnorm_sync if dist is not None else None

        n = len(xs[0])
        n_batches = max(1, math.ceil(n / batch_size)) if n else 0
        steps = steps_per_epoch or n_batches
        cbs = callbacks if isinstance(callbacks, callbacks_mod.CallbackList) else callbacks_mod.CallbackList(
            callbacks, add_history=True, add_progbar=verbose != 0, model=self,
            verbose=verbose, epochs=epochs, steps=steps)
        self.history = getattr(cbs, "_history", None)
        self.stop_training = False
        metrics = self._metrics
        names = self._log_names()
        want_batch_logs = cbs.needs_batch_logs
        if dist is not None:
            want_batch_logs = dist.any(want_batch_logs)
        val_bs = _check_batch_size(validation_batch_size, batch_size)
        multi = len(self._outputs_cfg) > 1

        # Each array of the structure is gathered into a buffer reused from step to step.
        arrays = xs + [v for v in ys if v is not None] + [v for v in sws if v is not None]
        layout = ([("x", i) for i in range(len(xs))] + [("y", i) for i, v in enumerate(ys) if v is not None]
                  + [("sw", i) for i, v in enumerate(sws) if v is not None])
        bufs, buf_rows = None, -1   # the batch buffers, reused while batches have buf_rows rows
        simple = len(xs) == 1 and len(ys) == 1 and ys[0] is not None
        has_sw = sws[0] is not None
        # A chain with one output trained here takes the step without per-step lists.
        chain = simple and not multi and dist is None and self._graph.linear
        order = np.arange(n)
        cursor = 0  # position in the current pass (persists across epochs with steps_per_epoch)
        state = self._train_state
        state.set_record(True)
        logs = {}
        cbs.on_train_begin()
        for epoch in range(initial_epoch, epochs):
            for m in metrics:
                m.reset_state()
            cbs.on_epoch_begin(epoch)
            loss_sum = 0.0
            out_sums = [0.0] * len(self._outputs_cfg) if multi else None
            seen = 0
            step = 0
            while step < steps:
                if cursor == 0 and shuffle:
                    order = _random.generator().permutation(n)
                if cursor >= n:
                    if steps_per_epoch is not None and step > 0 and n_batches and steps > n_batches:
                        warnings.warn(f"Your input ran out of data after {step} steps of "
                                      f"steps_per_epoch={steps_per_epoch}; the epoch ends early.", stacklevel=2)
                    break
                lo, hi = cursor, min(n, cursor + batch_size)
                bn = hi - lo
                if shuffle:
                    idx = order[lo:hi]
                    if bn != buf_rows:
                        bufs = [np.empty((bn,) + a.shape[1:], dtype=a.dtype) for a in arrays]
                        buf_rows = bn
                    # idx is a slice of a permutation, always in range: mode="clip" lets
                    # numpy gather straight into the buffer (the default mode="raise"
                    # copies through a temporary: 3x slower).
                    for a, b in zip(arrays, bufs):
                        a.take(idx, 0, b, "clip")
                    batch = bufs
                else:
                    batch = [a[lo:hi] for a in arrays]
                cbs.on_train_batch_begin(step)
                if chain:
                    value = self._chain_train_step(batch[0], batch[1], batch[2] if has_sw else None)
                else:
                    if simple:
                        xb, yb, swb = [batch[0]], [batch[1]], [batch[2] if has_sw else None]
                    else:
                        xb, yb, swb = _unflatten_batch(batch, layout, len(xs), len(ys), len(sws))
                    value, values = self._train_step(xb, yb, swb)
                loss_sum += value * bn
                if out_sums is not None:
                    for k, v in enumerate(values):
                        if v is not None:
                            out_sums[k] += v * bn
                seen += bn
                cursor = hi if hi < n else 0
                if want_batch_logs:
                    cbs.on_train_batch_end(step, self._collect_logs(loss_sum, out_sums, seen, metrics))
                else:
                    cbs.on_train_batch_end(step)
                step += 1
                if self.stop_training:
                    break
                if steps_per_epoch is None and cursor == 0:
                    break
            logs = self._collect_logs(loss_sum, out_sums, seen, metrics)
            if val is not None and _validate_now(epoch, validation_freq):
                self._validate(val, val_bs, validation_steps, cbs, logs, names)
            cbs.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        if val is not None and not isinstance(val, tuple):
            val.close()
        cbs.on_train_end(logs)
        if dist is not None:
            dist.end_fit()
        return self.history

    # ------------------------------------------------------------------ other inputs
    def _validation_source(self, validation_data, batch_size, steps):
        """Validation data as prepared arrays (a tuple) or an EpochIterator kept for the
        whole fit (generators and datasets: an endless one carries on between runs)."""
        from fastnet.data.adapters import EpochIterator, get_data_adapter, unpack_x_y_sample_weight

        if validation_data is None:
            return None
        if isinstance(validation_data, (tuple, list)) and all(_is_arrays(v) for v in validation_data):
            if len(validation_data) not in (2, 3):
                raise ValueError("validation_data must be a tuple (x_val, y_val) or "
                                 "(x_val, y_val, sample_weight_val)")
            vsw = validation_data[2] if len(validation_data) == 3 else None
            try:
                return self._prepare_xy(validation_data[0], validation_data[1], vsw, "validation_data")
            except ValueError as e:
                raise ValueError(f"validation_data does not fit model '{self.name}': {e}") from None
        vx, vy, vsw = unpack_x_y_sample_weight(validation_data)
        adapter = get_data_adapter(vx, vy, vsw, batch_size, steps, False, None, "evaluate")
        return EpochIterator(adapter, steps)

    def _validate(self, val, batch_size, steps, cbs, logs, names):
        cbs.on_test_begin()
        if isinstance(val, tuple):
            val_logs = self._evaluate_arrays(*val, batch_size=batch_size, callbacks=cbs, steps=steps)
        else:
            val_logs = self._evaluate_iterating(val, cbs)
        cbs.on_test_end(val_logs)
        for k in names:
            logs["val_" + k] = val_logs[k]

    def _batch_arrays(self, batch, what):
        """A batch from an adapter as one array per input / output (cast as array input is)."""
        xb, yb, swb = batch
        xs = self._flatten_x(xb, what)
        ys = self._flatten_y(yb)
        n = len(xs[0])
        for v in ys:
            if v is not None and len(v) != n:
                raise ValueError(f"A batch of {what} has {n} input rows and {len(v)} target rows")
        return xs, ys, self._flatten_sw(swb, n)

    def _fit_iterating(self, x, y, sample_weight, batch_size, epochs, verbose, callbacks, validation_split,
                       validation_data, shuffle, class_weight, initial_epoch, steps_per_epoch, validation_steps,
                       validation_batch_size, validation_freq):
        """fit on generators, PyDatasets, Datasets, DataFrames, tf.data and torch loaders
        (fastnet.data.adapters), batch by batch."""
        from fastnet import callbacks as callbacks_mod
        from fastnet import distribution as _distribution
        from fastnet.data.adapters import EpochIterator, get_data_adapter, train_validation_split

        if validation_split and validation_data is None:
            (x, y, sample_weight), validation_data = train_validation_split((x, y, sample_weight),
                                                                            validation_split)
        adapter = get_data_adapter(x, y, sample_weight, batch_size, steps_per_epoch, shuffle, class_weight, "fit")
        if _distribution.runner(self) is not None:
            adapter.close()
            raise ValueError("Data-parallel training (fastnet.distribution) takes arrays: give x and y as arrays")
        self._dist = None
        it = EpochIterator(adapter, steps_per_epoch)
        val = None
        try:
            first = adapter.peek()
            if first is None:
                raise ValueError(f"fit received no data: the input of type {type(x).__name__} yielded no batch")
            self._ensure_built_for(first[0])
            xs, ys, _ = self._batch_arrays(first, "fit")
            if all(v is None for v in ys):
                raise ValueError("fit needs targets: the batches must be (x, y) or (x, y, sample_weight)")
            self._check_inputs(xs)
            self._resolve_outputs(ys)
            self._prepare_training()
            val = self._validation_source(validation_data, validation_batch_size or batch_size or
                                          adapter.batch_size or 32, validation_steps)
            cbs = callbacks if isinstance(callbacks, callbacks_mod.CallbackList) else callbacks_mod.CallbackList(
                callbacks, add_history=True, add_progbar=verbose != 0, model=self,
                verbose=verbose, epochs=epochs, steps=it.num_batches)
            self.history = getattr(cbs, "_history", None)
            self.stop_training = False
            metrics = self._metrics
            names = self._log_names()
            multi = len(self._outputs_cfg) > 1
            want_batch_logs = cbs.needs_batch_logs
            self._train_state.set_record(True)
            logs = {}
            cbs.on_train_begin()
            for epoch in range(initial_epoch, epochs):
                for m in metrics:
                    m.reset_state()
                cbs.on_epoch_begin(epoch)
                loss_sum, seen = 0.0, 0
                out_sums = [0.0] * len(self._outputs_cfg) if multi else None
                for step, batch in it.enumerate_epoch():
                    xs, ys, sws = self._batch_arrays(batch, "fit")
                    cbs.on_train_batch_begin(step)
                    value, values = self._train_step(xs, ys, sws)
                    bn = len(xs[0])
                    loss_sum += value * bn
                    if out_sums is not None:
                        for k, v in enumerate(values):
                            if v is not None:
                                out_sums[k] += v * bn
                    seen += bn
                    if want_batch_logs:
                        cbs.on_train_batch_end(step, self._collect_logs(loss_sum, out_sums, seen, metrics))
                    else:
                        cbs.on_train_batch_end(step)
                    if self.stop_training:
                        break
                logs = self._collect_logs(loss_sum, out_sums, seen, metrics)
                if val is not None and _validate_now(epoch, validation_freq):
                    self._validate(val, None, validation_steps, cbs, logs, names)
                cbs.on_epoch_end(epoch, logs)
                if self.stop_training:
                    break
            cbs.on_train_end(logs)
        finally:
            it.close()
            if val is not None and not isinstance(val, tuple):
                val.close()
        return self.history

    def _evaluate_iterating(self, it, callbacks):
        per_output = [[_fresh_metric(m) for m in (o.metrics or [])] for o in self._outputs_cfg]
        metrics = [m for ms in per_output for m in ms]
        for m in metrics:
            m.reset_state()
        state = self._eval_state()
        multi = len(self._outputs_cfg) > 1
        out_sums = [0.0] * len(self._outputs_cfg) if multi else None
        total, seen = 0.0, 0
        for step, batch in it.enumerate_epoch():
            xs, ys, sws = self._batch_arrays(batch, "evaluate")
            if callbacks is not None:
                callbacks.on_test_batch_begin(step)
            value, values = self._test_step(state, xs, ys, sws, per_output)
            bn = len(xs[0])
            total += value * bn
            if out_sums is not None:
                for k, v in enumerate(values):
                    if v is not None:
                        out_sums[k] += v * bn
            seen += bn
            if callbacks is not None:
                callbacks.on_test_batch_end(step)
        logs = self._collect_logs(total, out_sums, seen, metrics)
        for mine, local in zip(self._metrics, metrics):
            if mine is not local:
                mine.__dict__.update(local.__dict__)
        return logs

    def _check_targets(self, ys, what):
        out_shapes = self._output_shapes()
        for o in self._outputs_cfg:
            y = ys[o.index]
            if o.loss is None or y is None:
                continue
            try:
                o.loss.validate(y, out_shapes[o.index])
            except ValueError as e:
                raise ValueError(f"{what}: {e}") from None

    # ------------------------------------------------------------------ evaluate
    def _evaluate_arrays(self, xs, ys, sws, batch_size, callbacks, steps=None):
        # The metrics of this call are copies, so evaluations running at once in several
        # threads do not share state; the model's metrics take the results at the end.
        if self._dist is None:
            per_output = [[_fresh_metric(m) for m in (o.metrics or [])] for o in self._outputs_cfg]
        else:  # the data-parallel runner keeps and restores the model's own metric state
            per_output = [list(o.metrics or []) for o in self._outputs_cfg]
        metrics = [m for ms in per_output for m in ms]
        for m in metrics:
            m.reset_state()
        state = self._eval_state()
        n = len(xs[0])
        total = 0.0
        multi = len(self._outputs_cfg) > 1
        out_sums = [0.0] * len(self._outputs_cfg) if multi else None
        seen = 0
        step = 0
        want_batch_logs = callbacks is not None and callbacks.needs_test_batch_logs
        if self._dist is not None:
            want_batch_logs = self._dist.any(want_batch_logs)
        for lo in range(0, n, batch_size):
            if steps is not None and step >= steps:
                break
            hi = min(n, lo + batch_size)
            if callbacks is not None:
                callbacks.on_test_batch_begin(step)
            value, values = self._test_step(state, [v[lo:hi] for v in xs],
                                            [None if v is None else v[lo:hi] for v in ys],
                                            [None if v is None else v[lo:hi] for v in sws], per_output)
            total += value * (hi - lo)
            if out_sums is not None:
                for k, v in enumerate(values):
                    if v is not None:
                        out_sums[k] += v * (hi - lo)
            seen += hi - lo
            if callbacks is not None:
                if want_batch_logs:
                    callbacks.on_test_batch_end(step, self._collect_logs(total, out_sums, seen, metrics))
                else:
                    callbacks.on_test_batch_end(step)
            step += 1
        logs = self._collect_logs(total, out_sums, seen, metrics)
        for mine, local in zip(self._metrics, metrics):
            if mine is not local:
                mine.__dict__.update(local.__dict__)
        return logs

    def evaluate(self, x: Any = None, y: Any = None, batch_size: int | None = None,
                 verbose: int | str = "auto", sample_weight: ArrayLike | None = None, steps: int | None = None,
                 callbacks: Sequence[Callback] | None = None,
                 return_dict: bool = False) -> float | list[float] | dict[str, float]:
        """Loss and metrics on data: the loss alone, ``[loss, *metrics]`` or a dict."""
        from fastnet import callbacks as callbacks_mod
        from fastnet import distribution as _distribution

        self._require_compiled("evaluating it")
        batch_size = _check_batch_size(batch_size)
        if verbose == "auto":
            verbose = 1
        if self._overrides_steps():
            return self._evaluate_custom(x, y, sample_weight, batch_size, verbose, steps, callbacks, return_dict)
        if not _is_arrays(x):
            return self._evaluate_other(x, y, sample_weight, batch_size, verbose, steps, callbacks, return_dict)
        xs, ys, sws = self._prepare_xy(x, y, sample_weight, "evaluate")
        self._resolve_outputs(ys)
        self._reg_vars = [v for v in self.trainable_weights if v.regularizer is not None]
        n_steps = math.ceil(len(xs[0]) / batch_size) if steps is None else steps
        dist = self._dist = _distribution.runner(self)
        if dist is not None:
            dist.begin_evaluate(xs[0], ys[0], sws[0], batch_size, steps)
            callbacks = dist.filter_callbacks(callbacks)
        cbs = callbacks if isinstance(callbacks, callbacks_mod.CallbackList) else callbacks_mod.CallbackList(
            callbacks, add_progbar=verbose != 0, model=self, verbose=verbose, epochs=1, steps=n_steps)
        cbs.on_test_begin()
        logs = self._evaluate_arrays(xs, ys, sws, batch_size, cbs, steps)
        cbs.on_test_end(logs)
        if return_dict:
            return dict(logs)
        values = [logs[k] for k in self._log_names()]
        return values[0] if len(values) == 1 else values

    def _evaluate_other(self, x, y, sample_weight, batch_size, verbose, steps, callbacks, return_dict):
        from fastnet import callbacks as callbacks_mod
        from fastnet.data.adapters import EpochIterator, get_data_adapter

        adapter = get_data_adapter(x, y, sample_weight, batch_size, steps, False, None, "evaluate")
        self._dist = None
        it = EpochIterator(adapter, steps)
        try:
            first = adapter.peek()
            if first is None:
                raise ValueError(f"evaluate received no data: the input of type {type(x).__name__} yielded no batch")
            self._ensure_built_for(first[0])
            xs, ys, _ = self._batch_arrays(first, "evaluate")
            self._check_inputs(xs)
            self._resolve_outputs(ys)
            self._reg_vars = [v for v in self.trainable_weights if v.regularizer is not None]
            cbs = callbacks if isinstance(callbacks, callbacks_mod.CallbackList) else callbacks_mod.CallbackList(
                callbacks, add_progbar=verbose != 0, model=self, verbose=verbose, epochs=1, steps=it.num_batches)
            cbs.on_test_begin()
            logs = self._evaluate_iterating(it, cbs)
            cbs.on_test_end(logs)
        finally:
            it.close()
        if return_dict:
            return dict(logs)
        values = [logs[k] for k in self._log_names()]
        return values[0] if len(values) == 1 else values

    def _predict_other(self, x, batch_size, verbose, steps, callbacks):
        from fastnet import callbacks as callbacks_mod
        from fastnet.data.adapters import EpochIterator, get_data_adapter

        adapter = get_data_adapter(x, None, None, batch_size, steps, False, None, "predict")
        self._dist = None
        it = EpochIterator(adapter, steps)
        parts = None
        try:
            first = adapter.peek()
            if first is None:
                raise ValueError(f"predict received no data: the input of type {type(x).__name__} yielded no batch")
            self._ensure_built_for(first[0])
            state = self._graph.new_state(record=False, pooled=True)
            cbs = callbacks if isinstance(callbacks, callbacks_mod.CallbackList) else callbacks_mod.CallbackList(
                callbacks, add_progbar=verbose != 0, model=self, verbose=verbose, epochs=1, steps=it.num_batches)
            cbs.on_predict_begin()
            for step, batch in it.enumerate_epoch():
                xs = self._flatten_x(batch[0], "predict")
                if step == 0:
                    self._check_inputs(xs)
                cbs.on_predict_batch_begin(step)
                ybs = self._graph.forward(state, xs, training=False)
                if parts is None:
                    parts = [[] for _ in ybs]
                for p, yb in zip(parts, ybs):
                    p.append(np.array(yb))
                cbs.on_predict_batch_end(step, {"outputs": self._pack_outputs(ybs)})
            cbs.on_predict_end()
        finally:
            it.close()
        outs = [np.concatenate(p) for p in parts]
        return self._pack_outputs(outs)

    # ------------------------------------------------------------------ predict
    def predict(self, x: Any, batch_size: int | None = None, verbose: int | str = "auto",
                steps: int | None = None, callbacks: Sequence[Callback] | None = None) -> Any:
        """Outputs for the inputs x, computed batch by batch, in the structure of the
        model's outputs (one array, a list, or a dict)."""
        from fastnet import callbacks as callbacks_mod
        from fastnet import distribution as _distribution

        batch_size = _check_batch_size(batch_size)
        if verbose == "auto":
            verbose = 1
        if x is None:
            raise ValueError("predict needs an input array with a batch axis")
        if not _is_arrays(x):
            return self._predict_other(x, batch_size, verbose, steps, callbacks)
        self._ensure_built_for(x)
        xs = self._flatten_x(x)
        self._check_inputs(xs)
        n = len(xs[0])
        n_steps = math.ceil(n / batch_size) if steps is None else steps
        dist = self._dist = _distribution.runner(self)
        if dist is not None:
            if len(xs) != 1 or len(self._graph.outputs) != 1:
                raise ValueError("Data-parallel predict (fastnet.distribution) supports models with one input "
                                 "and one output")
            dist.begin_predict(xs[0], batch_size, steps)
            callbacks = dist.filter_callbacks(callbacks)
        cbs = callbacks if isinstance(callbacks, callbacks_mod.CallbackList) else callbacks_mod.CallbackList(
            callbacks, add_progbar=verbose != 0, model=self, verbose=verbose, epochs=1, steps=n_steps)
        graph = self._graph
        state = graph.new_state(record=False, pooled=True)
        outs = None
        cbs.on_predict_begin()
        for step, lo in enumerate(range(0, n, batch_size)):
            if steps is not None and step >= steps:
                break
            hi = min(n, lo + batch_size)
            cbs.on_predict_batch_begin(step)
            if dist is None:
                ybs = graph.forward(state, [v[lo:hi] for v in xs], training=False)
            else:  # this process's rows; all rows are gathered at the end
                ybs = graph.forward(state, [dist.predict_rows(xs[0][lo:hi], lo)], training=False)
            if outs is None:
                outs = [np.empty((n,) + np.shape(yb)[1:], dtype=np.asarray(yb).dtype) for yb in ybs]
            for o, yb in zip(outs, ybs):
                if dist is None:
                    o[lo:hi] = yb
                else:
                    dist.store_rows(o, yb)
            if cbs.needs_predict_batch_logs:
                cbs.on_predict_batch_end(step, {"outputs": self._pack_outputs(ybs)})
            else:
                cbs.on_predict_batch_end(step)
        if dist is not None and outs is not None:
            outs = [dist.gather_rows(outs[0])]
        if outs is None:
            outs = [np.empty((0,) + tuple(1 if d is None else d for d in t.shape[1:]),
                             dtype=np.dtype(config.floatx())) for t in graph.outputs]
        cbs.on_predict_end()
        return self._pack_outputs(outs)

    # ------------------------------------------------------------------ single batches
    def train_on_batch(self, x: Any, y: Any = None, sample_weight: ArrayLike | None = None,
                       class_weight: Mapping[int, float] | None = None,
                       return_dict: bool = False) -> float | list[float] | dict[str, float]:
        """One training step on one batch; returns the loss (and metrics) for that batch."""
        from fastnet import distribution as _distribution

        self._require_compiled("training it")
        xs, ys, sws = self._prepare_xy(x, y, sample_weight, "train_on_batch")
        cw = self._class_weights(ys, class_weight)
        if cw is not None:
            sws = [None if y is None else (cw if sw is None else sw * cw) for y, sw in zip(ys, sws)]
        self._resolve_outputs(ys)
        self._prepare_training()
        dist = self._dist = _distribution.runner(self)
        if dist is not None:
            self._layer_index = {id(layer): i for i, layer in enumerate(self.layers)}
            dist.begin_train_on_batch(xs[0], ys[0], sws[0])
        self._defer.sync = _distribution.batchnorm_sync if dist is not None else None
        for m in self._metrics:
            m.reset_state()
        self._train_state.set_record(True)
        value, values = self._train_step(xs, ys, sws)
        logs = self._collect_logs(value, values if len(self._outputs_cfg) > 1 else None, 1, self._metrics)
        return self._format_logs(logs, return_dict)

    def test_on_batch(self, x: Any, y: Any = None, sample_weight: ArrayLike | None = None,
                      return_dict: bool = False) -> float | list[float] | dict[str, float]:
        xs = self._flatten_x(x) if self.built else [np.asarray(x)]
        logs = self.evaluate(x, y, batch_size=max(1, len(xs[0])), verbose=0,
                             sample_weight=sample_weight, return_dict=True)
        return self._format_logs(logs, return_dict)

    def predict_on_batch(self, x: Any) -> Any:
        xs = self._flatten_x(x) if self.built else [np.asarray(x)]
        return self.predict(x, batch_size=max(1, len(xs[0])), verbose=0)

    def _format_logs(self, logs, return_dict):
        if return_dict:
            return logs
        values = [logs[k] for k in self._log_names()]
        return values[0] if len(values) == 1 else values

    # ------------------------------------------------------------------ saving hooks
    def get_compile_config(self) -> Config | None:
        return self._compile_config


def _is_arrays(x):
    """Inputs the trainer batches itself: arrays (and numbers), alone or in lists, tuples
    and dicts. Anything else goes through fastnet.data.adapters."""
    if x is None or isinstance(x, (np.ndarray, np.generic, int, float, bool)):
        return True
    if isinstance(x, (list, tuple)):
        return all(_is_arrays(v) for v in x)
    if isinstance(x, dict):
        return all(_is_arrays(v) for v in x.values())
    return False


def _fresh_metric(m):
    """A metric like ``m`` with its own state (a metric that cannot be rebuilt from its
    config is shared, as before)."""
    try:
        c = type(m).from_config(m.get_config())
    except Exception:  # a custom metric without a working from_config
        return m
    c.name = m.name
    if getattr(m, "_weighted", False):
        c._weighted = True
    return c


def _unflatten_batch(batch, layout, nx, ny, nsw):
    xb = [None] * nx
    yb = [None] * ny
    swb = [None] * nsw
    for arr, (kind, i) in zip(batch, layout):
        if kind == "x":
            xb[i] = arr
        elif kind == "y":
            yb[i] = arr
        else:
            swb[i] = arr
    return xb, yb, swb


def _validate_now(epoch, freq):
    if isinstance(freq, int):
        if freq < 1:
            raise ValueError(f"validation_freq must be a positive integer, received {freq}")
        return (epoch + 1) % freq == 0
    return (epoch + 1) in freq


def pack_like(structure: Any, flat: list[Any]) -> Any:
    return tree.pack_sequence_as(structure, flat)
