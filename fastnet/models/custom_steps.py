"""Custom training and evaluation steps: ``train_step``, ``test_step``, ``compute_loss``.

A model class that overrides one of them is trained and evaluated by a loop that calls
them once per batch, as Keras 3 does; a model that overrides none keeps the trainer's
fused graph step (``fastnet.models.trainer``), which never goes through this module.

Inside a step, gradients come from fastnet's own recorder, :class:`fastnet.GradientTape`::

    def train_step(self, data):
        x, y = data
        with fastnet.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(y=y, y_pred=y_pred)
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply(grads, self.trainable_variables)
        for m in self.metrics:
            m.update_state(loss) if m.name == "loss" else m.update_state(y, y_pred)
        return {m.name: m.result() for m in self.metrics}

A step written with another framework's gradient API (``tf.GradientTape``,
``jax.value_and_grad``, ``loss.backward()``) is refused with a message that says what
to write instead.
"""
from __future__ import annotations

import inspect
import types
from typing import TYPE_CHECKING

import numpy as np

from fastnet.layers.base import _code_names
from fastnet.ops import autodiff
from fastnet.utils import tree

if TYPE_CHECKING:
    from typing import Any, NoReturn

__all__ = ["StepAPI", "foreign_api_message"]

_FOREIGN = {"tensorflow": "TensorFlow", "tf_keras": "tf.keras", "keras": "Keras", "jax": "JAX", "jaxlib": "JAX",
            "torch": "PyTorch", "flax": "Flax", "optax": "Optax"}

_HOWTO = ("fastnet models compute gradients with fastnet's own API: `with fastnet.GradientTape() as tape: "
          "y_pred = self(x, training=True); loss = self.compute_loss(y=y, y_pred=y_pred)`, then "
          "`grads = tape.gradient(loss, self.trainable_variables)` and "
          "`self.optimizer.apply(grads, self.trainable_variables)` (see the 'Writing your own layers and "
          "models' page)")


def foreign_api_message(what: str, framework: str | None = None) -> str:
    """The message for a step written with another framework's gradient API."""
    via = f" uses {framework}" if framework else " uses another framework's gradient API"
    return f"{what}{via}, which cannot differentiate fastnet models. {_HOWTO}."


def _framework_of(value):
    mod = value.__name__ if isinstance(value, types.ModuleType) else getattr(value, "__module__", None)
    if not isinstance(mod, str):
        mod = getattr(type(value), "__module__", "") or ""
    return _FOREIGN.get(mod.split(".")[0])


def _foreign_in(fn):
    """The other framework a function refers to through its globals or closure, or None."""
    fn = getattr(fn, "__func__", fn)
    code = getattr(fn, "__code__", None)
    if code is None:
        return None
    names = _code_names(code, set())
    glb = getattr(fn, "__globals__", {})
    for name in names:
        if name in glb:
            fw = _framework_of(glb[name])
            if fw:
                return fw
    for cell in getattr(fn, "__closure__", None) or ():
        try:
            fw = _framework_of(cell.cell_contents)
        except ValueError:
            continue
        if fw:
            return fw
    return None


def _pack(x, y, sw):
    if y is None and sw is None:
        return (x,) if isinstance(x, (list, tuple)) else x
    if sw is None:
        return (x, y)
    return (x, y, sw)


def _batch_size(x):
    flat = [a for a in tree.flatten(x) if a is not None]
    return int(np.shape(flat[0])[0]) if flat and np.ndim(flat[0]) else 1


def _pythonify(v):
    v = autodiff.value_of(v)
    if isinstance(v, (np.ndarray, np.generic)) and np.ndim(v) == 0:
        return float(v)
    if isinstance(v, np.ndarray):
        return v
    return v


def _loss_on_tape(loss, y, p, sw):
    """A compiled loss as a recorded value: its exact gradient with respect to a traced
    prediction is the loss's own ``value_and_grad``."""
    if autodiff.is_traced(p):
        value, dy = loss.value_and_grad(y, p.value, sw)
        return autodiff.record(np.asarray(value, dtype=p.value.dtype), [p],
                               lambda g, dy=dy: [np.asarray(g, dtype=dy.dtype) * dy])
    p = np.asarray(autodiff.value_of(p))
    return np.asarray(loss(y, p, sample_weight=sw), dtype=p.dtype if p.dtype.kind == "f" else None)


class _CompiledMetrics:
    """``model.compiled_metrics``: updates the metrics given to ``compile``."""

    def __init__(self, model):
        self._model = model

    def update_state(self, y, y_pred, sample_weight=None):
        self._model._update_compiled_metrics(y, y_pred, sample_weight)

    @property
    def metrics(self):
        return list(self._model._metrics or [])


class StepAPI:
    """Keras 3's step API of a model (mixed into the trainer)."""

    # ------------------------------------------------------------------ which loop
    @classmethod
    def _overrides_steps(cls) -> bool:
        return (cls.train_step is not StepAPI.train_step or cls.test_step is not StepAPI.test_step
                or cls.compute_loss is not StepAPI.compute_loss)

    def _check_step_apis(self):
        cls = type(self)
        done = cls.__dict__.get("_step_apis_checked")
        if done is not None and done[0] is cls:
            return
        for name in ("train_step", "test_step", "compute_loss"):
            fn = getattr(cls, name)
            if fn is getattr(StepAPI, name):
                continue
            fw = _foreign_in(fn)
            if fw:
                raise TypeError(foreign_api_message(f"{cls.__name__}.{name} of model '{self.name}'", fw))
        cls._step_apis_checked = (cls,)

    # ------------------------------------------------------------------ metrics
    def _get_loss_tracker(self):
        t = self.__dict__.get("_loss_tracker")
        if t is None:
            from fastnet.metrics import Mean

            t = Mean(name="loss")
            self.__dict__["_loss_tracker"] = t
        return t

    def _step_metrics(self):
        from fastnet.metrics import Metric

        out = []
        if self.compiled:
            out.append(self._get_loss_tracker())
            out.extend(self._metrics or [])
        seen = {id(m) for m in out}
        for k, v in self.__dict__.items():
            if k.startswith("_"):
                continue
            for m in (v,) if isinstance(v, Metric) else (tree.flatten(v) if isinstance(v, (list, tuple, dict))
                                                         else ()):
                if isinstance(m, Metric) and id(m) not in seen:
                    seen.add(id(m))
                    out.append(m)
        return out

    def reset_metrics(self) -> None:
        """Resets the state of every metric in ``model.metrics``."""
        for m in self.metrics:
            m.reset_state()

    def get_metrics_result(self) -> dict[str, Any]:
        """``{name: result}`` of ``model.metrics`` (a metric whose result is a dict adds its
        entries), as Python floats where scalar."""
        out = {}
        for m in self.metrics:
            r = m.result()
            if isinstance(r, dict):
                out.update({k: _pythonify(v) for k, v in r.items()})
            else:
                out[m.name] = _pythonify(r)
        return out

    @property
    def compiled_metrics(self) -> _CompiledMetrics:
        """The metrics given to ``compile`` (``update_state(y, y_pred, sample_weight)``)."""
        return _CompiledMetrics(self)

    def _preds_per_output(self, y_pred):
        names = self.output_names
        if isinstance(y_pred, dict):
            return [y_pred.get(n) for n in names]
        if isinstance(y_pred, (list, tuple)) and len(names) > 1:
            return list(y_pred)
        if isinstance(y_pred, (list, tuple)) and len(y_pred) == 1:
            return [y_pred[0]]
        return [y_pred]

    def _update_compiled_metrics(self, y, y_pred, sample_weight):
        if y is None or not self._metrics:
            return
        ys = self._flatten_y(y)
        preds = [None if p is None else np.asarray(autodiff.value_of(p)) for p in self._preds_per_output(y_pred)]
        sws = self._flatten_sw(sample_weight, len(next(v for v in ys if v is not None)))
        self._update_metrics(preds, ys, sws)

    def compute_metrics(self, x: Any, y: Any, y_pred: Any, sample_weight: Any = None) -> dict[str, Any]:
        """Updates the compiled metrics with this batch and returns
        :meth:`get_metrics_result` (what the default ``train_step`` returns)."""
        self._update_compiled_metrics(y, y_pred, sample_weight)
        return self.get_metrics_result()

    # ------------------------------------------------------------------ losses
    def _compiled_loss_value(self, y, y_pred, sample_weight):
        if self._outputs_cfg is None or self._metrics is None:
            self._resolve_outputs(self._flatten_y(y))
        ys = self._flatten_y(y)
        preds = self._preds_per_output(y_pred)
        present = [v for v in ys if v is not None]
        sws = self._flatten_sw(sample_weight, len(present[0])) if present else [None] * len(ys)
        total = None
        for o in self._outputs_cfg:
            if o.loss is None:
                continue
            if ys[o.index] is None:
                raise ValueError(f"Model '{self.name}': the compiled loss of output '{o.name}' needs a target, "
                                 f"received y=None for it")
            v = _loss_on_tape(o.loss, ys[o.index], preds[o.index], sws[o.index])
            if o.weight != 1.0:
                v = v * np.asarray(o.weight, dtype=autodiff.value_of(v).dtype)
            total = v if total is None else total + v
        return total

    def compiled_loss(self, y: Any, y_pred: Any, sample_weight: Any = None,
                      regularization_losses: Any = None) -> Any:
        """The loss given to ``compile`` on this batch (plus ``regularization_losses``),
        recorded when ``y_pred`` is traced. Prefer :meth:`compute_loss`, which also adds
        the model's ``losses``."""
        from fastnet import ops

        if self.loss is None:
            raise ValueError(f"Model '{self.name}' was compiled without a loss, so compiled_loss has nothing to "
                             f"compute")
        total = self._compiled_loss_value(y, y_pred, sample_weight)
        for extra in regularization_losses or ():
            total = total + ops.sum(extra)
        return total

    def compute_loss(self, x: Any = None, y: Any = None, y_pred: Any = None, sample_weight: Any = None,
                     training: bool = True) -> Any:
        """The total loss of a batch: the compiled loss of ``(y, y_pred)`` plus every loss
        in ``model.losses`` (added with ``add_loss``, and weight regularisation). Inside a
        ``GradientTape`` the result is traced, so ``tape.gradient`` differentiates it.
        Override it to change the loss that ``fit`` and ``evaluate`` use."""
        from fastnet import ops

        losses = []
        if self.loss is not None:
            if y is None:
                raise ValueError(f"Model '{self.name}': compute_loss needs targets y for the compiled loss "
                                 f"(fit/evaluate were given no y)")
            losses.append(self._compiled_loss_value(y, y_pred, sample_weight))
        for extra in self.losses:
            losses.append(ops.sum(extra))
        if not losses:
            raise ValueError(f"Model '{self.name}' has no loss to compute: give compile(loss=...), add losses "
                             f"with self.add_loss(...) in call(), or override compute_loss")
        total = losses[0]
        for v in losses[1:]:
            total = total + v
        return total

    def _call_compute_loss(self, x, y, y_pred, sample_weight, training):
        fn = self.compute_loss
        try:
            takes = "training" in inspect.signature(fn).parameters
        except (TypeError, ValueError):
            takes = True
        if takes:
            return fn(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training)
        return fn(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight)

    # ------------------------------------------------------------------ steps
    def train_step(self, data: Any) -> dict[str, Any]:
        """One training step on a batch ``data`` (``x``, ``(x, y)`` or ``(x, y,
        sample_weight)``): forward inside a :class:`fastnet.GradientTape`, ``compute_loss``,
        gradients, ``optimizer.apply``, ``compute_metrics``; returns the logs. Override it
        to customise what ``fit`` does (a model that does not override it trains with the
        trainer's fused graph step, which computes the same thing)."""
        from fastnet.data.adapters import unpack_x_y_sample_weight

        x, y, sw = unpack_x_y_sample_weight(data)
        with autodiff.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self._call_compute_loss(x, y, y_pred, sw, True)
        self._get_loss_tracker().update_state(float(np.sum(autodiff.value_of(loss))), sample_weight=_batch_size(x))
        variables = self.trainable_variables
        if variables:
            grads = tape.gradient(loss, variables)
            self.optimizer.apply(grads, variables)
        return self.compute_metrics(x, y, y_pred, sw)

    def test_step(self, data: Any) -> dict[str, Any]:
        """One evaluation step: forward (``training=False``), ``compute_loss``,
        ``compute_metrics``; returns the logs. Override it to customise ``evaluate``."""
        from fastnet.data.adapters import unpack_x_y_sample_weight

        x, y, sw = unpack_x_y_sample_weight(data)
        y_pred = self(x, training=False)
        loss = self._call_compute_loss(x, y, y_pred, sw, False)
        self._get_loss_tracker().update_state(float(np.sum(autodiff.value_of(loss))), sample_weight=_batch_size(x))
        return self.compute_metrics(x, y, y_pred, sw)

    # ------------------------------------------------------------------ other frameworks' APIs
    def zero_grad(self, *args, **kwargs) -> NoReturn:
        raise TypeError(foreign_api_message(f"Model '{self.name}': zero_grad()", "PyTorch's autograd"))

    def stateless_call(self, *args, **kwargs) -> NoReturn:
        raise TypeError(foreign_api_message(f"Model '{self.name}': stateless_call() (used with jax.grad)", "JAX"))

    # ------------------------------------------------------------------ loops
    def _run_step(self, fn, what, xb, yb, swb):
        try:
            logs = fn(_pack(xb, yb, swb))
        except (TypeError, AttributeError, ValueError, RuntimeError, NotImplementedError) as e:
            fw = _framework_in_traceback(e.__traceback__)
            if fw:
                raise TypeError(foreign_api_message(f"{type(self).__name__}.{what} of model '{self.name}'",
                                                    fw)) from e
            raise
        return self._normalize_logs(logs, what)

    def _normalize_logs(self, logs, what):
        if logs is None:
            return {}
        if not isinstance(logs, dict):
            raise TypeError(f"{type(self).__name__}.{what} must return a dict of logs ({{name: value}}), "
                            f"received {type(logs).__name__}")
        if set(logs) == {m.name for m in self.metrics}:
            return self.get_metrics_result()
        out = {}
        for k, v in logs.items():
            if isinstance(v, dict):
                out.update({kk: _pythonify(vv) for kk, vv in v.items()})
            else:
                out[k] = _pythonify(v)
        return out

    def _prepare_custom(self, first):
        self._check_step_apis()
        xb, yb, _ = first
        self._ensure_built_for(xb)
        if self.loss is not None and yb is not None:
            self._resolve_outputs(self._flatten_y(yb))

    def _fit_custom(self, x, y, sample_weight, batch_size, epochs, verbose, callbacks, validation_split,
                    validation_data, shuffle, class_weight, initial_epoch, steps_per_epoch, validation_steps,
                    validation_batch_size, validation_freq):
        from fastnet import callbacks as callbacks_mod
        from fastnet.data.adapters import (
            EpochIterator,
            get_data_adapter,
            train_validation_split,
            unpack_x_y_sample_weight,
        )
        from fastnet.models.trainer import _validate_now

        if validation_split and validation_data is None:
            (x, y, sample_weight), validation_data = train_validation_split((x, y, sample_weight),
                                                                            validation_split)
        adapter = get_data_adapter(x, y, sample_weight, batch_size, steps_per_epoch, shuffle, class_weight, "fit")
        self._dist = None
        it = EpochIterator(adapter, steps_per_epoch)
        val_it = None
        try:
            first = adapter.peek()
            if first is None:
                raise ValueError(f"fit received no data: the input of type {type(x).__name__} yielded no batch")
            self._prepare_custom(first)
            if validation_data is not None:
                vx, vy, vsw = unpack_x_y_sample_weight(validation_data)
                val_it = EpochIterator(get_data_adapter(vx, vy, vsw, validation_batch_size or batch_size,
                                                        validation_steps, False, None, "evaluate"), validation_steps)
            cbs = callbacks if isinstance(callbacks, callbacks_mod.CallbackList) else callbacks_mod.CallbackList(
                callbacks, add_history=True, add_progbar=verbose != 0, model=self,
                verbose=verbose, epochs=epochs, steps=it.num_batches)
            self.history = getattr(cbs, "_history", None)
            self.stop_training = False
            logs = {}
            cbs.on_train_begin()
            for epoch in range(initial_epoch, epochs):
                self.reset_metrics()
                cbs.on_epoch_begin(epoch)
                for step, (xb, yb, swb) in it.enumerate_epoch():
                    cbs.on_train_batch_begin(step)
                    logs = self._run_step(self.train_step, "train_step", xb, yb, swb)
                    cbs.on_train_batch_end(step, logs)
                    if self.stop_training:
                        break
                epoch_logs = dict(logs)
                if val_it is not None and _validate_now(epoch, validation_freq):
                    cbs.on_test_begin()
                    val_logs = self._test_loop(val_it, cbs)
                    cbs.on_test_end(val_logs)
                    epoch_logs.update({"val_" + k: v for k, v in val_logs.items()})
                cbs.on_epoch_end(epoch, epoch_logs)
                logs = epoch_logs
                if self.stop_training:
                    break
            cbs.on_train_end(logs)
        finally:
            it.close()
            if val_it is not None:
                val_it.close()
        return self.history

    def _test_loop(self, it, cbs):
        self.reset_metrics()
        logs = {}
        for step, (xb, yb, swb) in it.enumerate_epoch():
            if cbs is not None:
                cbs.on_test_batch_begin(step)
            logs = self._run_step(self.test_step, "test_step", xb, yb, swb)
            if cbs is not None:
                cbs.on_test_batch_end(step, logs)
        return logs

    def _evaluate_custom(self, x, y, sample_weight, batch_size, verbose, steps, callbacks, return_dict):
        from fastnet import callbacks as callbacks_mod
        from fastnet.data.adapters import EpochIterator, get_data_adapter

        adapter = get_data_adapter(x, y, sample_weight, batch_size, steps, False, None, "evaluate")
        self._dist = None
        it = EpochIterator(adapter, steps)
        try:
            first = adapter.peek()
            if first is None:
                raise ValueError(f"evaluate received no data: the input of type {type(x).__name__} yielded no "
                                 f"batch")
            self._prepare_custom(first)
            cbs = callbacks if isinstance(callbacks, callbacks_mod.CallbackList) else callbacks_mod.CallbackList(
                callbacks, add_progbar=verbose != 0, model=self, verbose=verbose, epochs=1, steps=it.num_batches)
            cbs.on_test_begin()
            logs = self._test_loop(it, cbs)
            cbs.on_test_end(logs)
        finally:
            it.close()
        if return_dict:
            return dict(logs)
        values = list(logs.values())
        return values[0] if len(values) == 1 else values


def _framework_in_traceback(tb):
    while tb is not None:
        mod = tb.tb_frame.f_globals.get("__name__", "")
        fw = _FOREIGN.get(mod.split(".")[0]) if isinstance(mod, str) else None
        if fw:
            return fw
        tb = tb.tb_next
    return None

