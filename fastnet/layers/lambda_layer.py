"""``Lambda``: a layer that applies a Python function written with ``fastnet.ops``."""
from __future__ import annotations

import base64
import inspect
import marshal
import types
from typing import TYPE_CHECKING

import numpy as np

from fastnet.layers.base import Layer
from fastnet.ops import autodiff

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from fastnet._typing import ArrayLike, Config, CustomObjects, Shape, ShapeLike

__all__ = ["Lambda"]

# Keras's wording, so that users searching for it find the same explanation.
_UNSAFE_LAMBDA = (
    "Requested the deserialization of a `Lambda` layer whose `function` is a Python lambda. This carries a "
    "potential risk of arbitrary code execution and thus it is disallowed by default. If you trust the source "
    "of the artifact, you can override this error by passing `safe_mode=False` to the loading function, or "
    "calling `keras.config.enable_unsafe_deserialization()."
)


class _Ctx:
    """The per-call record used when Lambda is called outside a model (``layer(x)``/``call``)."""

    def __init__(self, record: bool) -> None:
        self.record = record
        self.need_dx = True


def _flat(x):
    if isinstance(x, (list, tuple)):
        out = []
        for e in x:
            out.extend(_flat(e))
        return out
    if isinstance(x, dict):
        out = []
        for k in x:
            out.extend(_flat(x[k]))
        return out
    return [x]


def _map(fn, x):
    if isinstance(x, list):
        return [_map(fn, e) for e in x]
    if isinstance(x, tuple):
        return tuple(_map(fn, e) for e in x)
    if isinstance(x, dict):
        return {k: _map(fn, v) for k, v in x.items()}
    return fn(x)


class Lambda(Layer):
    """Wraps a function as a layer: ``Lambda(lambda x: ops.square(x))``.

    The function is written with ``fastnet.ops`` (or numpy functions applied to its
    argument, which route to them); it is recorded on a tape when the call is to be
    differentiated, and the backward pass is the recorded vector-Jacobian product, so
    a Lambda trains inside a model like any layer. It has no weights of its own.

    Args:
        function: called as ``function(inputs, **arguments)`` (plus ``mask=`` / ``training=``
            when its signature names them).
        output_shape: the output shape without the batch axis (a tuple), or a function of
            the full input shape; inferred by running the function on zeros when None.
        mask: None, a function ``mask(inputs, previous_mask)``, or a fixed mask.
        arguments: keyword arguments passed to the function.

    A Lambda holding a Python ``lambda`` is saved as Keras does (marshalled bytecode);
    loading such a file is refused in safe mode, as Keras refuses it.

    Input shape:
        Whatever the function accepts.

    Output shape:
        ``output_shape`` (with the batch axis), or what the function returns.
    """

    _cast_inputs = False

    def __init__(self, function: Callable[..., Any], output_shape: Any = None, mask: Any = None,
                 arguments: dict | None = None, **kwargs) -> None:
        if not callable(function):
            raise TypeError(f"Lambda: `function` must be callable, received {function!r} of type "
                            f"{type(function).__name__}")
        super().__init__(**kwargs)
        self.function = function
        self.arguments = dict(arguments or {})
        self.mask = mask
        self.supports_masking = mask is not None
        self._output_shape = output_shape
        try:
            params = inspect.signature(function).parameters
        except (TypeError, ValueError):
            params = {}
        self._fn_expects_mask_arg = "mask" in params
        self._fn_expects_training_arg = "training" in params

    # ------------------------------------------------------------------ compute
    def _kwargs(self, training, mask):
        kw = dict(self.arguments)
        if self._fn_expects_mask_arg:
            kw["mask"] = mask
        if self._fn_expects_training_arg:
            kw["training"] = training
        return kw

    def forward(self, ctx: Any, inputs: Any, training: bool = False, mask: Any = None) -> Any:
        """Runs the function; when ``ctx.record`` is set, records it for :meth:`backward`."""
        kw = self._kwargs(training, mask)
        flat = _flat(inputs)
        if any(autodiff.is_traced(t) for t in flat) or not getattr(ctx, "record", False):
            # Already inside a recording (the caller's tape records these ops), or no
            # backward to come: plain call.
            out = self.function(inputs, **kw)
            return out if any(autodiff.is_traced(t) for t in flat) else autodiff.unwrap(out)
        out, ctx.lambda_recording = autodiff.call_recorded(self.function, inputs, **kw)
        return out

    def backward(self, ctx: Any, dy: Any) -> Any:
        """The recorded vector-Jacobian product: the gradient of each tensor input
        (a single array for one input, else a list with None for integer inputs)."""
        rec = getattr(ctx, "lambda_recording", None)
        if rec is None:
            raise RuntimeError(f'Layer "{self.name}" (Lambda): backward needs a forward call with ctx.record set')
        ctx.lambda_recording = None
        grads, _ = rec.backward(dy, need_dx=getattr(ctx, "need_dx", True))
        return grads[0] if len(grads) == 1 else grads

    def call(self, inputs: ArrayLike, mask: Any = None, training: bool | None = None) -> Any:
        return self.forward(_Ctx(record=False), inputs, training=bool(training), mask=mask)

    def compute_mask(self, inputs: ArrayLike, mask: ArrayLike | None = None) -> Any:
        if callable(self.mask):
            return self.mask(inputs, mask)
        return self.mask

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape:
        if self._output_shape is None:
            return self._infer_output_shape(input_shape)
        if callable(self._output_shape):
            return self._output_shape(input_shape)
        nested = isinstance(input_shape, (list, tuple)) and input_shape and isinstance(input_shape[0], (list, tuple))
        batch = input_shape[0][0] if nested else input_shape[0]
        out = self._output_shape
        if out and isinstance(out[0], (list, tuple)):
            return [(batch,) + tuple(s) for s in out]
        return (batch,) + tuple(out)

    def _infer_output_shape(self, input_shape):
        """Runs the function on zeros (batch 2, standing for None) and reads the shape."""
        def zeros(shape):
            return np.zeros(tuple(2 if d is None else int(d) for d in shape), dtype=self.dtype)

        nested = isinstance(input_shape, (list, tuple)) and input_shape and isinstance(input_shape[0], (list, tuple))
        x = [zeros(s) for s in input_shape] if nested else zeros(input_shape)
        batch = (input_shape[0][0] if nested else input_shape[0])
        try:
            out = autodiff.unwrap(self.function(x, **self._kwargs(False, None)))
        except Exception as e:
            raise NotImplementedError(
                f'Layer "{self.name}" (Lambda): could not infer the output shape by calling the function on '
                f"zeros of shape {input_shape} ({type(e).__name__}: {e}); pass `output_shape`") from e

        def fix(a):
            s = tuple(np.shape(a))
            return (batch,) + s[1:] if s and batch is None and s[0] == 2 else s

        if isinstance(out, (list, tuple)):
            return [fix(a) for a in out]
        return fix(out)

    # ------------------------------------------------------------------ config
    def get_config(self) -> Config:
        config = super().get_config()
        config["function"] = _serialize_function(self.function)
        if self._output_shape is not None:
            config["output_shape"] = (_serialize_function(self._output_shape) if callable(self._output_shape)
                                      else list(self._output_shape))
        if self.mask is not None:
            config["mask"] = (_serialize_function(self.mask) if callable(self.mask)
                              else np.asarray(self.mask).tolist())
        config["arguments"] = dict(self.arguments)
        return config

    @classmethod
    def from_config(cls, config: Config, custom_objects: CustomObjects | None = None,
                    safe_mode: bool | None = None) -> Lambda:
        """Rebuilds the layer. A Python lambda stored as bytecode is refused unless
        ``safe_mode=False`` is passed here explicitly (``load_model`` never runs code
        from a file); named functions resolve through ``custom_objects``."""
        config = dict(config)
        safe = safe_mode is not False
        for key in ("function", "output_shape", "mask"):
            value = config.get(key)
            if isinstance(value, dict) and value.get("class_name") == "__lambda__":
                if safe:
                    raise ValueError(_UNSAFE_LAMBDA)
                config[key] = _load_lambda(value["config"])
            elif isinstance(value, dict) and value.get("class_name") == "function":
                name = value.get("config")
                for k in (value.get("registered_name"), name):
                    if custom_objects and k in custom_objects:
                        config[key] = custom_objects[k]
                        break
                else:
                    from fastnet.saving import object_registration

                    fn = object_registration.get_registered_object(value.get("registered_name") or name,
                                                                  custom_objects)
                    if fn is None:
                        raise ValueError(f"Lambda: unknown function {name!r}; pass it through "
                                         f"custom_objects={{{name!r}: fn}} or register it with "
                                         f"register_keras_serializable")
                    config[key] = fn
        if isinstance(config.get("output_shape"), list):
            config["output_shape"] = tuple(config["output_shape"])
        return cls(**config)


def _serialize_function(fn):
    if isinstance(fn, types.LambdaType) and fn.__name__ == "<lambda>":
        code = base64.b64encode(marshal.dumps(fn.__code__)).decode("ascii")
        closure = tuple(c.cell_contents for c in fn.__closure__) if fn.__closure__ else None
        return {"class_name": "__lambda__", "config": {"code": code, "defaults": fn.__defaults__,
                                                       "closure": closure}}
    from fastnet.saving import object_registration

    registered = object_registration.get_registered_name(fn)
    return {"module": getattr(fn, "__module__", None), "class_name": "function",
            "config": getattr(fn, "__name__", registered), "registered_name": registered}


def _load_lambda(cfg):
    """Rebuilds a marshalled Python lambda (only with an explicit safe_mode=False)."""
    code = marshal.loads(base64.b64decode(cfg["code"].encode("ascii")))
    closure = cfg.get("closure")
    cells = tuple(types.CellType(v) for v in closure) if closure else None
    defaults = tuple(cfg["defaults"]) if cfg.get("defaults") else None
    import builtins

    import fastnet
    from fastnet import ops

    # the names Keras code uses inside such lambdas; nothing else from the loading program
    globs = {"__builtins__": builtins, "ops": ops, "np": np, "keras": fastnet, "fastnet": fastnet}
    return types.FunctionType(code, globs, name=code.co_name, argdefs=defaults, closure=cells)
