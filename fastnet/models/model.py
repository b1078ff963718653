"""Model: weights, summary, compile, and the fit / evaluate / predict loops.

The training step runs the layers' compiled forward and backward passes, then one
fused optimizer kernel over a flat buffer that holds every trainable weight
(each weight's array is a view of it), so the per-step Python work is a short
loop over layers whatever the number of weights.
"""
from __future__ import annotations

import math
import signal
import threading
import warnings
from typing import TYPE_CHECKING

import numpy as np

from fastnet import backend, config
from fastnet import distribution as _distribution
from fastnet import random as _random
from fastnet.layers.base import Layer

if TYPE_CHECKING:
    import os
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any

    from fastnet._typing import ArrayLike, Config
    from fastnet.backend import Variable
    from fastnet.callbacks import Callback, History
    from fastnet.losses import Loss
    from fastnet.metrics import Metric
    from fastnet.optimizers.base import Optimizer

__all__ = ["Model"]


def _as_array(data, what):
    if data is None:
        return None
    if isinstance(data, (list, tuple)) and data and isinstance(data[0], np.ndarray) and len(data) > 1:
        raise ValueError(f"fastnet Sequential models take one {what} array, received a list of "
                         f"{len(data)} arrays")
    arr = np.asarray(data)
    if arr.dtype == object:
        raise TypeError(f"{what} must be a numeric array, received dtype object")
    return arr


def _floatx_array(x):
    dt = np.dtype(config.floatx())
    if x.dtype != dt:
        if x.dtype.kind not in "fiub":
            raise TypeError(f"Model inputs must be numeric, received dtype {x.dtype}")
        x = x.astype(dt)
    return np.ascontiguousarray(x)


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

    def __enter__(self) -> _DeferSigint:
        if self.active:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})

    def __exit__(self, *exc) -> None:
        if self.active:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        return False


class Model(Layer):
    """Base of fastnet models: weights, summary and the Keras training API.

    Use :class:`fastnet.models.Sequential` to build one.
    """

    # The data-parallel runner of the loop in progress (fastnet.distribution), None on one process.
    _dist = None

    def __init__(self, *args, name: str | None = None, trainable: bool = True, **kwargs) -> None:
        if args or "inputs" in kwargs or "outputs" in kwargs:
            raise NotImplementedError(
                "fastnet builds models with Sequential; the functional Model(inputs, outputs) "
                "API is not supported yet")
        super().__init__(name=name or backend.unique_name(backend.to_snake_case(type(self).__name__)),
                         trainable=trainable, **kwargs)
        self.optimizer = None
        self.loss = None
        self.compiled = False
        self.stop_training = False
        self.history = None
        self._metrics = []
        self._packed = None
        self._uses_masks = False
        self._compile_config = None

    # ------------------------------------------------------------------ structure hooks
    @property
    def layers(self) -> list[Layer]:
        return []

    def _layer_output_shapes(self):
        return []

    def _invalidate(self):
        self._packed = None
        self._uses_masks = any(getattr(l, "_produces_mask", False) for l in self.layers)

    def _backward_stop(self):
        """Index of the first layer that needs a backward pass (has trainable weights)."""
        for i, layer in enumerate(self.layers):
            if layer.trainable_weights:
                return i
        return len(self.layers)

    # ------------------------------------------------------------------ weights
    @property
    def weights(self) -> list[Variable]:
        return [w for layer in self.layers for w in layer.weights]

    @property
    def trainable_weights(self) -> list[Variable]:
        if not self.trainable:
            return []
        return [w for layer in self.layers for w in layer.trainable_weights]

    @property
    def non_trainable_weights(self) -> list[Variable]:
        if not self.trainable:
            return self.weights
        return [w for layer in self.layers for w in layer.non_trainable_weights]

    trainable_variables = trainable_weights
    non_trainable_variables = non_trainable_weights

    def get_weights(self) -> list[np.ndarray]:
        return [w.value.copy() for w in self.weights]

    def set_weights(self, weights: Sequence[ArrayLike]) -> None:
        params = self.weights
        weights = list(weights)
        if len(weights) != len(params):
            raise ValueError(f"Model '{self.name}' expects {len(params)} weight arrays, "
                             f"received {len(weights)}")
        for var, w in zip(params, weights):
            if np.shape(w) != var.shape:
                raise ValueError(f"Weight '{var.path}' of model '{self.name}' has shape {var.shape}, "
                                 f"received a value of shape {np.shape(w)}")
        for var, w in zip(params, weights):
            var.assign(w)

    def count_params(self) -> int:
        if not self.built:
            raise ValueError(f"Model '{self.name}' is not built yet: call build(input_shape), "
                             f"fit or predict on data, or give the first layer input_shape=")
        return int(sum(w.size for w in self.weights))

    @property
    def losses(self) -> list[float]:
        return [l for layer in self.layers for l in layer.losses]

    def get_layer(self, name: str | None = None, index: int | None = None) -> Layer:
        """A layer by name or by index (exactly one of the two)."""
        if (name is None) == (index is None):
            raise ValueError("Provide exactly one of name= or index= to get_layer")
        layers = self.layers
        if index is not None:
            if not -len(layers) <= index < len(layers):
                raise ValueError(f"Model '{self.name}' has {len(layers)} layers; index {index} is out of range")
            return layers[index]
        for layer in layers:
            if layer.name == name:
                return layer
        raise ValueError(f"No layer named '{name}' in model '{self.name}'. Layers: "
                         f"{[l.name for l in layers]}")

    def summary(self, line_length: int | None = None, positions: Sequence[float] | None = None,
                print_fn: Callable[..., Any] | None = None, **kwargs) -> None:
        """Prints the layers, their output shapes and parameter counts (tf.keras 2 layout)."""
        from fastnet.utils.summary import print_summary

        if not self.built:
            raise ValueError(
                f"Model '{self.name}' has not been built yet, so its summary is unknown. Build it by "
                f"giving the first layer an input shape (e.g. Dense(4, input_shape=(3,))), by starting "
                f"with Input(shape=...), by calling model.build(input_shape), or by calling it on data.")
        print_summary(self, line_length=line_length, positions=positions, print_fn=print_fn)

    # ------------------------------------------------------------------ calling
    def __call__(self, inputs: ArrayLike, training: bool = False, **kwargs) -> np.ndarray:
        x = _floatx_array(_as_array(inputs, "input"))
        self._ensure_built_for(x)
        self._check_input(x)
        return self.call(x, training=bool(training))

    def _ensure_built_for(self, x):
        raise NotImplementedError

    def _check_input(self, x):
        pass

    # ------------------------------------------------------------------ compile
    def compile(self, optimizer: str | Config | Optimizer = "rmsprop",
                loss: str | Callable[..., Any] | Loss | Config | None = None,
                metrics: Sequence[Any] | Mapping[str, Any] | None = None,
                loss_weights: Sequence[float] | Mapping[str, float] | None = None,
                weighted_metrics: Sequence[Any] | None = None, run_eagerly: bool = False, steps_per_execution: int = 1,
                jit_compile: bool | str = "auto", auto_scale_loss: bool = True) -> None:
        """Configures training: an optimizer, a loss and metrics (names or objects)."""
        from fastnet import losses as losses_mod
        from fastnet import optimizers as optimizers_mod

        self.optimizer = optimizers_mod.get(optimizer)
        if loss is None:
            raise ValueError(f"Model '{self.name}' needs a loss to compile, e.g. "
                             f"compile(optimizer='adam', loss='mse')")
        if isinstance(loss, (list, tuple, dict)):
            if len(loss) != 1:
                raise ValueError("A Sequential model has one output, so compile takes one loss, "
                                 f"received {len(loss)}")
            loss = list(loss.values())[0] if isinstance(loss, dict) else loss[0]
        self.loss = loss
        # "crossentropy"/"ce" pick their form from the data shapes, known at fit time.
        self._loss_obj = None if (isinstance(loss, str) and loss.lower() in ("crossentropy", "ce")) \
            else losses_mod.get(loss)
        if loss_weights is not None:
            lw = loss_weights
            if isinstance(lw, dict):
                lw = list(lw.values())
            if isinstance(lw, (list, tuple)):
                if len(lw) != 1:
                    raise ValueError(f"loss_weights must hold one weight for one output, received {loss_weights}")
                lw = lw[0]
            self._loss_weight = float(lw)
        else:
            self._loss_weight = 1.0
        if metrics is None:
            metrics = []
        elif isinstance(metrics, dict):
            metrics = [m for v in metrics.values() for m in (v if isinstance(v, (list, tuple)) else [v])]
        elif not isinstance(metrics, (list, tuple)):
            metrics = [metrics]
        self._metric_ids = list(metrics)
        self._weighted_metric_ids = list(weighted_metrics or [])
        self._metrics = None  # resolved on first use, when the data shapes are known
        self.compiled = True
        self._compile_config = {"optimizer": optimizer, "loss": loss, "metrics": metrics,
                                "loss_weights": loss_weights, "weighted_metrics": weighted_metrics}
        self._packed = None

    def _resolve_loss(self, y, out_shape):
        from fastnet import losses as losses_mod

        if self._loss_obj is None:
            self._loss_obj = losses_mod.resolve(self.loss, y.shape, out_shape)
        self._loss_obj.validate(y, out_shape)

    def _resolve_metrics(self, y, out_shape):
        from fastnet import metrics as metrics_mod

        if self._metrics is None:
            ms = []
            for ident in self._metric_ids:
                ms.append(metrics_mod.resolve(ident, y.shape, out_shape, loss=self._loss_obj))
            for ident in self._weighted_metric_ids:
                m = metrics_mod.resolve(ident, y.shape, out_shape, loss=self._loss_obj)
                m._weighted = True
                ms.append(m)
            names = [m.name for m in ms]
            dup = {n for n in names if names.count(n) > 1}
            if dup or "loss" in names:
                raise ValueError(f"Metric names must be unique and differ from 'loss', received {names}")
            self._metrics = ms
        return self._metrics

    @property
    def metrics(self) -> list[Metric]:
        return list(self._metrics or [])

    @property
    def metrics_names(self) -> list[str]:
        if not self.compiled:
            return []
        names = ["loss"]
        if self._metrics is not None:
            names += [m.name for m in self._metrics]
        else:
            names += [m if isinstance(m, str) else getattr(m, "name", type(m).__name__)
                      for m in self._metric_ids]
        return names

    def _require_compiled(self, what):
        if not self.compiled:
            raise RuntimeError(f"You must compile model '{self.name}' before {what}: call "
                               f"model.compile(optimizer=..., loss=...)")

    # ------------------------------------------------------------------ training machinery
    def _prepare_training(self):
        """Packs trainable weights into flat buffers and builds the optimizer (once)."""
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
        layers = self.layers
        self._reg_vars = [v for v in variables if v.regularizer is not None]
        self._deferred = [l for l in layers if hasattr(l, "_commit_updates")]
        self._fused = self._logits_fusion()
        self._bw_stop = self._backward_stop()
        self._grad_buffers = {}
        return self._packed

    def _logits_fusion(self):
        """Whether the loss is computed from the last layer's logits (softmax/sigmoid + crossentropy),
        as Keras's TensorFlow backend does: stable, and without probability clipping."""
        layers = self.layers
        if not layers or not getattr(self._loss_obj, "supports_logits_fusion", False):
            return False
        last = layers[-1]
        act = getattr(last, "activation", None)
        if not getattr(last, "_supports_logits", False) or act is None or not getattr(act, "fused", False):
            return False
        return act.fn.name == self._loss_obj.logits_activation

    def _set_loop_mode(self, reuse, record, training=False, logits=False):
        """Flags the layers for a loop: reuse buffers, keep what backward needs, defer
        state updates to the end of the step, and keep the last layer's logits."""
        from fastnet.layers.pooling import fold_relu_into_max_pooling

        layers = self.layers
        last = len(layers) - 1
        for i, layer in enumerate(layers):
            layer._reuse = reuse
            layer._record = record
            layer._defer_updates = training
            layer._keep_logits = logits and i == last
            layer._logits_grad = logits and training and i == last
        # Inside the training loop a max pooling applies the ReLU derivative of the
        # convolution before it (one pass fewer over the largest activation); outside
        # it, layers called on their own keep their plain backward.
        if training:
            fold_relu_into_max_pooling(layers)
        else:
            for layer in layers:
                if getattr(layer, "_act_grad_in_dy", False):
                    layer._act_grad_in_dy = False
                if getattr(layer, "_relu_input", False):
                    layer._relu_input = False

    def _regularization(self):
        total = 0.0
        for v in self._reg_vars:
            total += float(v.regularizer(v.value))
        return total

    def _train_step(self, x, y, sw):
        """One step: forward, loss, backward, update. Returns the batch loss."""
        dist = self._dist
        if dist is not None:  # this process's rows of the global batch
            x, y, sw = dist.begin_step(x, y, sw, train=True)
        out = self.call(x, training=True)
        loss_obj = self._loss_obj
        gbuf = self._grad_buffers.get(out.shape)
        if gbuf is None:
            gbuf = self._grad_buffers[out.shape] = np.empty(out.shape, out.dtype)
        if self._fused:
            value, dy = loss_obj.value_and_grad_from_logits(y, self.layers[-1]._logits, sw,
                                                            probs=out, out=gbuf)
        else:
            value, dy = loss_obj.value_and_grad(y, out, sw, out=gbuf)
        lw = self._loss_weight
        if lw != 1.0:
            value = value * lw
            dy *= lw
        if dist is not None:
            dy *= dist.share  # this process's part of the global batch loss
        self._backward(dy)
        if dist is not None:
            dist.finish_gradients()  # summed over the processes
        if self._reg_vars:
            for v in self._reg_vars:
                value += float(v.regularizer(v.value))
                v.grad += v.regularizer.gradient(v.value)
        _, _, values, grads, offsets = self._packed
        if self._deferred:
            if dist is not None:
                dist.reduce_updates(self._deferred)
            with _DeferSigint():
                self.optimizer.apply_flat(values, grads, offsets)
                for layer in self._deferred:
                    layer._commit_updates()
        else:
            self.optimizer.apply_flat(values, grads, offsets)
        for m in self._metrics:
            m.update_state(y, out, sw if getattr(m, "_weighted", False) else None)
        if dist is not None:
            return dist.end_step(float(value), train=True)
        return float(value)

    def _test_step(self, x, y, sw):
        dist = self._dist
        if dist is not None:
            x, y, sw = dist.begin_step(x, y, sw, train=False)
        out = self.call(x, training=False)
        loss_obj = self._loss_obj
        if self._fused:
            value = loss_obj.value_and_grad_from_logits(y, self.layers[-1]._logits, sw, probs=out)[0]
        else:
            value = loss_obj(y, out, sample_weight=sw)
        value = float(value) * self._loss_weight
        if self._reg_vars:
            value += self._regularization()
        for m in self._metrics:
            m.update_state(y, out, sw if getattr(m, "_weighted", False) else None)
        if dist is not None:
            return dist.end_step(value, train=False)
        return value

    def _collect_logs(self, total, seen, metrics):
        """Loss (``total / seen``) and metric results; over all processes when distributed."""
        if self._dist is not None:
            return self._dist.reduce_logs(total, seen, metrics)
        logs = {"loss": total / seen if seen else float("nan")}
        for m in metrics:
            logs[m.name] = float(m.result())
        return logs

    # ------------------------------------------------------------------ data helpers
    def _prepare_xy(self, x, y, sample_weight, what):
        x = _as_array(x, "x")
        if x is None:
            raise ValueError(f"{what} needs input data x")
        y = _as_array(y, "y")
        if y is None:
            raise ValueError(f"{what} needs targets y for this model's loss")
        if x.ndim == 0:
            raise ValueError("x must have a batch axis, received a scalar")
        if len(x) != len(y):
            raise ValueError(f"x and y must have the same number of samples, received x with "
                             f"{len(x)} samples and y with {len(y)} samples")
        if sample_weight is not None:
            sample_weight = np.asarray(sample_weight, dtype=np.dtype(config.floatx()))
            if sample_weight.shape[:1] != (len(x),):
                raise ValueError(f"sample_weight must have one weight per sample ({len(x)}), "
                                 f"received shape {sample_weight.shape}")
        x = _floatx_array(x)
        if y.dtype.kind == "f" and y.dtype != np.dtype(config.floatx()):
            y = y.astype(config.floatx())
        elif y.dtype.kind == "b":
            y = y.astype(config.floatx())
        return x, np.ascontiguousarray(y), sample_weight

    def _class_weights(self, y, class_weight):
        if not class_weight:
            return None
        if y.ndim > 1 and y.shape[-1] > 1:
            idx = np.argmax(y, axis=-1)
        else:
            idx = np.rint(y.reshape(len(y), -1)[:, 0]).astype(np.int64)
        n_cls = max(int(idx.max()) + 1 if idx.size else 0, max(int(k) for k in class_weight) + 1)
        table = np.ones(n_cls, dtype=np.dtype(config.floatx()))
        for k, v in class_weight.items():
            table[int(k)] = v
        missing = set(np.unique(idx).tolist()) - {int(k) for k in class_weight}
        if missing:
            raise ValueError(f"class_weight has no entry for classes {sorted(missing)} present in y; "
                             f"it covers {sorted(int(k) for k in class_weight)}")
        return table[idx]

    # ------------------------------------------------------------------ fit
    def fit(self, x: ArrayLike | None = None, y: ArrayLike | None = None, batch_size: int | None = None,
            epochs: int = 1, verbose: int | str = "auto", callbacks: Sequence[Callback] | None = None,
            validation_split: float = 0.0, validation_data: tuple[ArrayLike, ...] | None = None, shuffle: bool = True,
            class_weight: Mapping[int, float] | None = None, sample_weight: ArrayLike | None = None,
            initial_epoch: int = 0, steps_per_epoch: int | None = None, validation_steps: int | None = None,
            validation_batch_size: int | None = None, validation_freq: int = 1) -> History:
        """Trains the model for a number of epochs; returns a History.

        Per-epoch values are those Keras reports: the loss averaged over the epoch's
        batches weighted by batch size, and each metric accumulated over the epoch.
        """
        from fastnet import callbacks as callbacks_mod

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
        x, y, sample_weight = self._prepare_xy(x, y, sample_weight, "fit")

        if validation_data is None and validation_split:
            split = int(math.floor(len(x) * (1.0 - validation_split)))
            if split == 0 or split == len(x):
                raise ValueError(f"validation_split={validation_split} leaves no training or no "
                                 f"validation samples out of {len(x)}")
            val = (x[split:], y[split:], None if sample_weight is None else sample_weight[split:])
            x, y = x[:split], y[:split]
            if sample_weight is not None:
                sample_weight = sample_weight[:split]
        elif validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                raise ValueError("validation_data must be a tuple (x_val, y_val) or "
                                 "(x_val, y_val, sample_weight_val)")
            vx, vy = validation_data[0], validation_data[1]
            vsw = validation_data[2] if len(validation_data) == 3 else None
            val = self._prepare_xy(vx, vy, vsw, "validation_data")
        else:
            val = None

        cw = self._class_weights(y, class_weight)
        if cw is not None:
            sample_weight = cw if sample_weight is None else sample_weight * cw

        self._ensure_built_for(x)
        self._check_input(x)
        out_shape = self.compute_output_shape((None,) + x.shape[1:])
        self._resolve_loss(y, out_shape)
        self._resolve_metrics(y, out_shape)
        self._prepare_training()
        dist = self._dist = _distribution.runner(self)
        if dist is not None:  # same model and data on every process; rank 0's weights
            callbacks = dist.begin_fit(x, y, sample_weight, batch_size, epochs, steps_per_epoch,
                                       shuffle, initial_epoch, val, callbacks)

        n = len(x)
        n_batches = max(1, math.ceil(n / batch_size)) if n else 0
        steps = steps_per_epoch or n_batches
        cbs = callbacks if isinstance(callbacks, callbacks_mod.CallbackList) else callbacks_mod.CallbackList(
            callbacks, add_history=True, add_progbar=verbose != 0, model=self,
            verbose=verbose, epochs=epochs, steps=steps)
        self.history = cbs.history if hasattr(cbs, "history") else None
        self.stop_training = False
        metrics = self._metrics
        names = ["loss"] + [m.name for m in metrics]
        want_batch_logs = cbs.needs_batch_logs
        if dist is not None:
            want_batch_logs = dist.any(want_batch_logs)
        val_bs = _check_batch_size(validation_batch_size, batch_size)

        fit_dtype = x.dtype
        xbuf = ybuf = swbuf = None
        order = np.arange(n)
        cursor = 0  # position in the current pass (persists across epochs with steps_per_epoch)

        self._set_loop_mode(reuse=True, record=True, training=True, logits=self._fused)
        logs = {}
        cbs.on_train_begin()
        try:
            for epoch in range(initial_epoch, epochs):
                for m in metrics:
                    m.reset_state()
                cbs.on_epoch_begin(epoch)
                loss_sum = 0.0
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
                    if shuffle:
                        idx = order[lo:hi]
                        bn = hi - lo
                        if xbuf is None or xbuf.shape[0] != bn:
                            xbuf = np.empty((bn,) + x.shape[1:], dtype=fit_dtype)
                            ybuf = np.empty((bn,) + y.shape[1:], dtype=y.dtype)
                            swbuf = (None if sample_weight is None
                                     else np.empty((bn,) + sample_weight.shape[1:], sample_weight.dtype))
                        # idx is a slice of a permutation, always in range: mode="clip"
                        # lets numpy gather straight into the buffer (the default
                        # mode="raise" copies through a temporary: 3x slower).
                        np.take(x, idx, axis=0, out=xbuf, mode="clip")
                        np.take(y, idx, axis=0, out=ybuf, mode="clip")
                        xb, yb = xbuf, ybuf
                        swb = (None if sample_weight is None
                               else np.take(sample_weight, idx, axis=0, out=swbuf, mode="clip"))
                    else:
                        xb, yb = x[lo:hi], y[lo:hi]
                        swb = None if sample_weight is None else sample_weight[lo:hi]
                    cbs.on_train_batch_begin(step)
                    value = self._train_step(xb, yb, swb)
                    bn = hi - lo
                    loss_sum += value * bn
                    seen += bn
                    cursor = hi if hi < n else 0
                    if want_batch_logs:
                        cbs.on_train_batch_end(step, self._collect_logs(loss_sum, seen, metrics))
                    else:
                        cbs.on_train_batch_end(step)
                    step += 1
                    if self.stop_training:
                        break
                    if steps_per_epoch is None and cursor == 0:
                        break
                logs = self._collect_logs(loss_sum, seen, metrics)
                if val is not None and _validate_now(epoch, validation_freq):
                    cbs.on_test_begin()
                    val_logs = self._evaluate_arrays(*val, batch_size=val_bs, callbacks=cbs,
                                                     steps=validation_steps)
                    cbs.on_test_end(val_logs)
                    self._set_loop_mode(reuse=True, record=True, training=True, logits=self._fused)
                    for k in names:
                        logs["val_" + k] = val_logs[k]
                cbs.on_epoch_end(epoch, logs)
                if self.stop_training:
                    break
        finally:
            self._set_loop_mode(reuse=False, record=True)
        cbs.on_train_end(logs)
        if dist is not None:
            dist.end_fit()
        return self.history

    # ------------------------------------------------------------------ evaluate
    def _evaluate_arrays(self, x, y, sw, batch_size, callbacks, steps=None):
        metrics = self._metrics
        for m in metrics:
            m.reset_state()
        self._set_loop_mode(reuse=True, record=False, training=False, logits=self._fused)
        n = len(x)
        total = 0.0
        seen = 0
        step = 0
        want_batch_logs = callbacks is not None and callbacks.needs_test_batch_logs
        if self._dist is not None:
            want_batch_logs = self._dist.any(want_batch_logs)
        try:
            for lo in range(0, n, batch_size):
                if steps is not None and step >= steps:
                    break
                hi = min(n, lo + batch_size)
                if callbacks is not None:
                    callbacks.on_test_batch_begin(step)
                value = self._test_step(x[lo:hi], y[lo:hi], None if sw is None else sw[lo:hi])
                total += value * (hi - lo)
                seen += hi - lo
                if callbacks is not None:
                    if want_batch_logs:
                        callbacks.on_test_batch_end(step, self._collect_logs(total, seen, metrics))
                    else:
                        callbacks.on_test_batch_end(step)
                step += 1
        finally:
            self._set_loop_mode(reuse=False, record=True)
        return self._collect_logs(total, seen, metrics)

    def evaluate(self, x: ArrayLike | None = None, y: ArrayLike | None = None, batch_size: int | None = None,
                 verbose: int | str = "auto", sample_weight: ArrayLike | None = None, steps: int | None = None,
                 callbacks: Sequence[Callback] | None = None,
                 return_dict: bool = False) -> float | list[float] | dict[str, float]:
        """Loss and metrics on data: the loss alone, ``[loss, *metrics]`` or a dict."""
        from fastnet import callbacks as callbacks_mod

        self._require_compiled("evaluating it")
        batch_size = _check_batch_size(batch_size)
        if verbose == "auto":
            verbose = 1
        x, y, sample_weight = self._prepare_xy(x, y, sample_weight, "evaluate")
        self._ensure_built_for(x)
        self._check_input(x)
        out_shape = self.compute_output_shape((None,) + x.shape[1:])
        self._resolve_loss(y, out_shape)
        self._resolve_metrics(y, out_shape)
        self._fused = self._logits_fusion()
        self._reg_vars = [v for v in self.trainable_weights if v.regularizer is not None]
        n_steps = math.ceil(len(x) / batch_size) if steps is None else steps
        dist = self._dist = _distribution.runner(self)
        if dist is not None:
            dist.begin_evaluate(x, y, sample_weight, batch_size, steps)
            callbacks = dist.filter_callbacks(callbacks)
        cbs = callbacks if isinstance(callbacks, callbacks_mod.CallbackList) else callbacks_mod.CallbackList(
            callbacks, add_progbar=verbose != 0, model=self, verbose=verbose, epochs=1, steps=n_steps)
        cbs.on_test_begin()
        logs = self._evaluate_arrays(x, y, sample_weight, batch_size, cbs, steps)
        cbs.on_test_end(logs)
        if return_dict:
            return dict(logs)
        values = [logs[k] for k in ["loss"] + [m.name for m in self._metrics]]
        return values[0] if len(values) == 1 else values

    # ------------------------------------------------------------------ predict
    def predict(self, x: ArrayLike, batch_size: int | None = None, verbose: int | str = "auto",
                steps: int | None = None, callbacks: Sequence[Callback] | None = None) -> np.ndarray:
        """Outputs for the inputs x, computed batch by batch; returns one ndarray."""
        from fastnet import callbacks as callbacks_mod

        batch_size = _check_batch_size(batch_size)
        if verbose == "auto":
            verbose = 1
        x = _as_array(x, "x")
        if x is None or x.ndim == 0:
            raise ValueError("predict needs an input array with a batch axis")
        x = _floatx_array(x)
        self._ensure_built_for(x)
        self._check_input(x)
        n = len(x)
        n_steps = math.ceil(n / batch_size) if steps is None else steps
        dist = self._dist = _distribution.runner(self)
        if dist is not None:
            dist.begin_predict(x, batch_size, steps)
            callbacks = dist.filter_callbacks(callbacks)
        cbs = callbacks if isinstance(callbacks, callbacks_mod.CallbackList) else callbacks_mod.CallbackList(
            callbacks, add_progbar=verbose != 0, model=self, verbose=verbose, epochs=1, steps=n_steps)
        out = None
        cbs.on_predict_begin()
        self._set_loop_mode(reuse=True, record=False, training=False)
        try:
            for step, lo in enumerate(range(0, n, batch_size)):
                if steps is not None and step >= steps:
                    break
                hi = min(n, lo + batch_size)
                cbs.on_predict_batch_begin(step)
                if dist is None:
                    yb = self.call(x[lo:hi], training=False)
                else:  # this process's rows; all rows are gathered at the end
                    yb = self.call(dist.predict_rows(x[lo:hi], lo), training=False)
                if out is None:
                    out = np.empty((n,) + yb.shape[1:], dtype=yb.dtype)
                if dist is None:
                    out[lo:hi] = yb
                else:
                    dist.store_rows(out, yb)
                if cbs.needs_predict_batch_logs:
                    cbs.on_predict_batch_end(step, {"outputs": yb})
                else:
                    cbs.on_predict_batch_end(step)
        finally:
            self._set_loop_mode(reuse=False, record=True)
        if dist is not None and out is not None:
            out = dist.gather_rows(out)
        if out is None:
            out = np.empty((0,) + self.compute_output_shape((None,) + x.shape[1:])[1:],
                           dtype=np.dtype(config.floatx()))
        cbs.on_predict_end()
        return out

    # ------------------------------------------------------------------ single batches
    def train_on_batch(self, x: ArrayLike, y: ArrayLike | None = None, sample_weight: ArrayLike | None = None,
                       class_weight: Mapping[int, float] | None = None,
                       return_dict: bool = False) -> float | list[float] | dict[str, float]:
        """One training step on one batch; returns the loss (and metrics) for that batch."""
        self._require_compiled("training it")
        x, y, sample_weight = self._prepare_xy(x, y, sample_weight, "train_on_batch")
        cw = self._class_weights(y, class_weight)
        if cw is not None:
            sample_weight = cw if sample_weight is None else sample_weight * cw
        self._ensure_built_for(x)
        self._check_input(x)
        out_shape = self.compute_output_shape((None,) + x.shape[1:])
        self._resolve_loss(y, out_shape)
        metrics = self._resolve_metrics(y, out_shape)
        self._prepare_training()
        dist = self._dist = _distribution.runner(self)
        if dist is not None:
            dist.begin_train_on_batch(x, y, sample_weight)
        for m in metrics:
            m.reset_state()
        self._set_loop_mode(reuse=True, record=True, training=True, logits=self._fused)
        try:
            value = self._train_step(x, y, sample_weight)
        finally:
            self._set_loop_mode(reuse=False, record=True)
        logs = self._collect_logs(value, 1, metrics)
        return self._format_logs(logs, return_dict)

    def test_on_batch(self, x: ArrayLike, y: ArrayLike | None = None, sample_weight: ArrayLike | None = None,
                      return_dict: bool = False) -> float | list[float] | dict[str, float]:
        logs = self.evaluate(x, y, batch_size=max(1, len(np.asarray(x))), verbose=0,
                             sample_weight=sample_weight, return_dict=True)
        return self._format_logs(logs, return_dict)

    def predict_on_batch(self, x: ArrayLike) -> np.ndarray:
        x = np.asarray(x)
        return self.predict(x, batch_size=max(1, len(x)), verbose=0)

    def _format_logs(self, logs, return_dict):
        if return_dict:
            return logs
        values = [logs[k] for k in ["loss"] + [m.name for m in self._metrics]]
        return values[0] if len(values) == 1 else values

    # ------------------------------------------------------------------ saving hooks
    def get_compile_config(self) -> Config | None:
        return self._compile_config

    def save(self, filepath: str | os.PathLike[str], overwrite: bool = True, **kwargs) -> None:
        from fastnet.models import saving

        return saving.save_model(self, filepath, overwrite=overwrite, **kwargs)

    def save_weights(self, filepath: str | os.PathLike[str], overwrite: bool = True) -> None:
        from fastnet.models import saving

        return saving.save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath: str | os.PathLike[str], skip_mismatch: bool = False) -> None:
        from fastnet.models import saving

        return saving.load_weights(self, filepath, skip_mismatch=skip_mismatch)

    def to_json(self, **kwargs) -> str:
        from fastnet.models import saving

        return saving.model_to_json(self, **kwargs)


def _validate_now(epoch, freq):
    if isinstance(freq, int):
        if freq < 1:
            raise ValueError(f"validation_freq must be a positive integer, received {freq}")
        return (epoch + 1) % freq == 0
    return (epoch + 1) in freq
