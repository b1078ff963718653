"""Configs in Keras 3's layout, both ways, built only from fastnet's own registries.

Writing: a layer becomes ``{"module", "class_name", "config", "registered_name",
"build_config"}`` with Keras's config keys: dtype policies as dicts, initializers as
dicts carrying Keras's keys, and the keys Keras writes that fastnet does not use
(``quantization_config``, ``renorm``, ...) at their default values, so Keras reads the
file as one of its own.

Reading: every class name is looked up in fastnet's registries (layers, initializers,
regularizers, activations, optimizers, losses, metrics) or in ``custom_objects``;
nothing named in a file is ever imported, evaluated or unpickled. Keys Keras writes
that fastnet cannot honour are accepted at their default values and refused with an
error naming the layer and the key otherwise, so a file never silently changes what
a model computes.
"""
import numbers

import numpy as np

__all__ = [
    "DeserializationError", "serialize_layer", "deserialize_layer", "keras_layer_config",
    "dtype_policy", "serialize_compile_config", "deserialize_compile_config",
    "deserialize_model_config", "serialize_model",
]

# The Keras release whose file format fastnet writes (metadata.json's keras_version).
KERAS_FORMAT_VERSION = "3.15.1"


class DeserializationError(ValueError):
    """A config that fastnet will not build: unknown class, unsupported option, bad value."""


# ----------------------------------------------------------------------------- tables
# Keys Keras writes in a layer config that fastnet's layers do not use, with the value
# that means "off". Read: dropped at that value, refused otherwise. Write: added when the
# layer's own config lacks them (only for the classes listed in _WRITE_EXTRA).
_ANY_CLASS_DEFAULTS = {
    "quantization_config": None,
    "lora_rank": None,
    "lora_alpha": None,
    "autocast": True,
}
_CLASS_DEFAULTS = {
    "InputLayer": {"ragged": False, "optional": False, "sparse": False},
    "BatchNormalization": {"renorm": False, "renorm_clipping": None, "renorm_momentum": 0.99},
}
# Keys (and their defaults) Keras writes for a class that fastnet's get_config lacks.
_WRITE_EXTRA = {
    "InputLayer": {"sparse": False, "ragged": False, "optional": False},
    "Dense": {"quantization_config": None},
    "BatchNormalization": {"renorm": False, "renorm_clipping": None, "renorm_momentum": 0.99},
}
# Keys fastnet writes that Keras leaves out of a class's config when they hold the default.
_WRITE_DROP_DEFAULT = {
    "SimpleRNN": {"seed": None},
}
# Layers Keras builds at construction (no build() of their own): no build_config in files.
_NO_BUILD_CONFIG = {
    "InputLayer", "Activation", "Reshape", "Dropout", "MaxPooling1D", "MaxPooling2D",
    "MaxPooling3D", "AveragePooling1D", "AveragePooling2D", "AveragePooling3D",
}
# Initializers whose Keras config carries the fan axes (None: the usual fans).
_FAN_AXES_INITIALIZERS = {
    "VarianceScaling", "GlorotUniform", "GlorotNormal", "HeUniform", "HeNormal",
    "LecunUniform", "LecunNormal",
}
_CONSTRAINT_KEYS_SUFFIX = "_constraint"
_ACTIVATION_KEYS = {"activation", "recurrent_activation"}
_KERAS_MODULES = {None, "keras", "keras.layers", "keras.models", "keras.initializers",
                  "keras.regularizers", "keras.activations", "keras.optimizers",
                  "keras.optimizers.schedules", "keras.losses", "keras.metrics",
                  "keras.dtype_policies", "keras.constraints", "builtins"}
_FLOAT_POLICIES = {"float32", "float64"}


def _is_keras_module(module):
    return module in _KERAS_MODULES or (isinstance(module, str) and (
        module.startswith("keras.src.") or module.startswith("fastnet.")))


def _where(ctx):
    return f" in {ctx}" if ctx else ""


def _inner(value, ctx):
    """The ``config`` dict of a serialized object (a copy), checked to be a dict."""
    cfg = value.get("config")
    if cfg is None:
        return {}
    if not isinstance(cfg, dict):
        raise DeserializationError(f"The config of {value.get('class_name')!r}{_where(ctx)} must "
                                   f"be a dict, received {cfg!r}")
    return dict(cfg)


# ----------------------------------------------------------------------------- dtype policies
def dtype_policy(dtype):
    """Keras's serialized dtype policy for a float type name."""
    return {"module": "keras", "class_name": "DTypePolicy", "config": {"name": str(dtype)},
            "registered_name": None}


def _read_dtype(value, ctx):
    if value is None or isinstance(value, str):
        if isinstance(value, str) and value not in _FLOAT_POLICIES and value != "string" and \
                not value.startswith(("int", "uint", "bool")):
            raise DeserializationError(
                f"Unsupported dtype {value!r}{_where(ctx)}: fastnet computes in float32 or float64")
        return value
    if isinstance(value, dict):
        cls = value.get("class_name")
        name = _inner(value, ctx).get("name")
        if cls not in ("DTypePolicy", "FloatDTypePolicy"):
            raise DeserializationError(
                f"Unsupported dtype policy {cls!r}{_where(ctx)}: fastnet supports plain float32 "
                f"and float64 policies (no quantized or mixed-precision policies)")
        if name not in _FLOAT_POLICIES and not (isinstance(name, str) and name.startswith(("int", "uint", "bool"))):
            raise DeserializationError(
                f"Unsupported dtype policy {name!r}{_where(ctx)}: fastnet computes in float32 "
                f"or float64 (mixed precision is not supported)")
        return name
    raise DeserializationError(f"Could not read the dtype {value!r}{_where(ctx)}")


# ----------------------------------------------------------------------------- registries
def _layer_registry():
    from fastnet import layers

    return layers._registry()


def _custom_lookup(custom_objects, class_name, registered_name=None):
    from fastnet.saving import object_registration

    # registered (register_keras_serializable) and scoped objects count as custom_objects
    custom_objects = object_registration.merged(custom_objects)
    if not custom_objects:
        return None
    for key in (registered_name, class_name):
        if isinstance(key, str) and key in custom_objects:
            return custom_objects[key]
    if isinstance(registered_name, str) and ">" in registered_name:
        short = str(registered_name).split(">", 1)[1]
        if short in custom_objects:
            return custom_objects[short]
    return None


def _is_custom_entry(config):
    """Whether a serialized entry names a class outside Keras's and fastnet's built-ins."""
    module = config.get("module")
    registered = config.get("registered_name")
    if registered is not None and registered != config.get("class_name"):
        return True
    return not _is_keras_module(module)


def _layer_class(config, custom_objects, ctx):
    class_name = config.get("class_name")
    if not isinstance(class_name, str):
        raise DeserializationError(f"A layer entry{_where(ctx)} has no class_name string: {config!r}")
    cls = _custom_lookup(custom_objects, class_name, config.get("registered_name"))
    if cls is not None:
        return cls
    registry = _layer_registry()
    if not _is_custom_entry(config) and class_name in registry:
        return registry[class_name]
    module = config.get("module")
    raise DeserializationError(
        f"Unknown layer class {class_name!r}{_where(ctx)} (module {module!r}). fastnet builds "
        f"only its own layers ({', '.join(sorted(registry))}) and classes passed explicitly as "
        f"custom_objects={{{class_name!r}: cls}}; it never imports modules named in a file")


# ----------------------------------------------------------------------------- writing
def _keras_initializer(value):
    if isinstance(value, dict) and value.get("class_name") in _FAN_AXES_INITIALIZERS:
        cfg = dict(value.get("config") or {})
        cfg.setdefault("input_axes", None)
        cfg.setdefault("output_axes", None)
        return {**value, "config": cfg}
    return value


def _keras_value(key, value):
    if isinstance(value, dict) and "class_name" in value and "config" in value:
        module = value.get("module")
        if module == "keras.initializers":
            return _keras_initializer(value)
        if module == "keras.layers" and isinstance(value.get("config"), dict):
            return {**value, "config": keras_layer_config(value["class_name"], value["config"])}
        return value
    if isinstance(value, tuple):
        return [_keras_value(None, v) for v in value]
    if isinstance(value, list):
        return [_keras_value(None, v) for v in value]
    if key in _ACTIVATION_KEYS and isinstance(value, str):
        from fastnet import activations

        if value not in activations._BY_NAME:
            # A custom function: Keras's function reference, resolved through custom_objects.
            return {"module": "builtins", "class_name": "function", "config": value,
                    "registered_name": value}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return {"class_name": "__numpy__", "config": {"value": value.tolist(), "dtype": value.dtype.name}}
    return value


def keras_layer_config(class_name, config):
    """A fastnet layer config with Keras's keys and value layouts."""
    cfg = {}
    for key, value in config.items():
        if key == "batch_input_shape" and class_name != "InputLayer":
            continue  # a Sequential model carries the input shape in its InputLayer entry
        if key == "dtype" and isinstance(value, str) and class_name != "InputLayer":
            value = dtype_policy(value)
        cfg[key] = _keras_value(key, value)
    for key, default in _WRITE_EXTRA.get(class_name, {}).items():
        cfg.setdefault(key, default)
    for key, default in _WRITE_DROP_DEFAULT.get(class_name, {}).items():
        if key in cfg and cfg[key] == default:
            del cfg[key]
    return cfg


def serialize_layer(layer):
    """A layer as Keras's serialized dict (module, class_name, config, registered_name,
    build_config)."""
    from fastnet.layers import Layer
    from fastnet.models.model import Model

    if isinstance(layer, Model):
        return serialize_model(layer, include_compile=False)
    cls = type(layer)
    class_name = cls.__name__
    builtin = _layer_registry().get(class_name) is cls
    out = {
        "module": "keras.layers" if builtin else cls.__module__,
        "class_name": class_name,
        "config": keras_layer_config(class_name, layer.get_config()),
        "registered_name": None if builtin else _registered_name(cls),
    }
    if isinstance(layer, Layer) and class_name not in _NO_BUILD_CONFIG:
        build = layer.get_build_config()
        if build:
            out["build_config"] = {k: list(v) if isinstance(v, tuple) else v for k, v in build.items()}
    return out


def _registered_name(obj):
    from fastnet.saving import object_registration

    return object_registration.get_registered_name(obj)


def serialize_model(model, include_compile=True):
    """The whole model as Keras's top-level serialized dict."""
    cls = type(model)
    from fastnet.models import Sequential
    from fastnet.models.functional import Functional

    builtin = cls in (Sequential, Functional)
    module = "keras" if cls is Sequential else "keras.src.models.functional"
    out = {
        "module": module if builtin else cls.__module__,
        "class_name": cls.__name__,
        "config": model.get_config(),
        "registered_name": None if builtin else cls.__name__,
    }
    build = model.get_build_config() if model.built else None
    if build:
        out["build_config"] = {k: list(v) if isinstance(v, tuple) else v for k, v in build.items()}
    if include_compile and getattr(model, "compiled", False):
        cc = serialize_compile_config(model)
        if cc is not None:
            out["compile_config"] = cc
    return out


def _serialize_fn_or_object(obj, module):
    """A loss or metric as Keras writes it in a compile config."""
    if obj is None or isinstance(obj, (str, numbers.Number)):
        return obj
    if isinstance(obj, (list, tuple)):
        return [_serialize_fn_or_object(o, module) for o in obj]
    if isinstance(obj, dict):
        return {k: _serialize_fn_or_object(v, module) for k, v in obj.items()}
    if hasattr(obj, "get_config") and not isinstance(obj, type):
        cls = type(obj)
        builtin = cls.__module__.startswith("fastnet.")
        return {"module": module if builtin else cls.__module__, "class_name": cls.__name__,
                "config": obj.get_config(), "registered_name": None if builtin else cls.__name__}
    name = getattr(obj, "__name__", None)
    if name is None:
        raise ValueError(f"Cannot serialize {obj!r} in the compile config: expected a name, a "
                         f"function or an object with get_config()")
    builtin = getattr(obj, "__module__", "").startswith("fastnet.")
    return {"module": module if builtin else obj.__module__, "class_name": "function",
            "config": name, "registered_name": name}


def serialize_compile_config(model):
    """The compile config as Keras writes it (optimizer, loss, metrics, ...)."""
    from fastnet import optimizers

    raw = model.get_compile_config() or {}
    opt = getattr(model, "optimizer", None)
    metrics = raw.get("metrics")
    return {
        "optimizer": optimizers.serialize(opt) if opt is not None else None,
        "loss": _serialize_fn_or_object(raw.get("loss"), "keras.losses"),
        "loss_weights": _serialize_fn_or_object(raw.get("loss_weights"), "keras.losses"),
        "metrics": _serialize_fn_or_object(metrics, "keras.metrics"),
        "weighted_metrics": _serialize_fn_or_object(raw.get("weighted_metrics") or None, "keras.metrics"),
        "run_eagerly": False,
        "steps_per_execution": 1,
        "jit_compile": False,
    }


# ----------------------------------------------------------------------------- reading
def _check_default(key, value, default, ctx):
    same = value == default if not isinstance(default, float) else (
        isinstance(value, numbers.Number) and not isinstance(value, bool) and float(value) == default)
    if value is default or same:
        return
    raise DeserializationError(
        f"{ctx}: config key {key!r}={value!r} is not supported by fastnet (only the default "
        f"{default!r}); loading it would change what the model computes")


def _read_initializer(value, custom_objects, ctx):
    from fastnet import initializers

    class_name = value.get("class_name")
    cfg = _inner(value, ctx)
    custom = _custom_lookup(custom_objects, class_name, value.get("registered_name"))
    if custom is not None:
        return custom.from_config(_read_value(None, cfg, custom_objects, ctx))
    if class_name in _FAN_AXES_INITIALIZERS:
        for k in ("input_axes", "output_axes"):
            if k in cfg:
                _check_default(k, cfg.pop(k), None, f"{ctx}, initializer {class_name}")
    seed = cfg.get("seed")
    if seed is not None and not (isinstance(seed, numbers.Integral) and not isinstance(seed, bool)):
        raise DeserializationError(f"{ctx}, initializer {class_name}: only integer seeds are "
                                   f"supported, received seed={seed!r}")
    if _is_custom_entry(value) or class_name not in initializers._CLASSES:
        raise DeserializationError(
            f"Unknown initializer {class_name!r}{_where(ctx)}. fastnet initializers: "
            f"{sorted(initializers._CLASSES)}; pass custom classes through custom_objects")
    try:
        return initializers._CLASSES[class_name].from_config(cfg)
    except (TypeError, ValueError, AttributeError, KeyError, OverflowError) as e:
        raise DeserializationError(f"{ctx}: could not build initializer {class_name} from "
                                   f"{cfg!r}: {e}") from e


def _read_regularizer(value, custom_objects, ctx):
    from fastnet import regularizers

    class_name = value.get("class_name")
    cfg = _inner(value, ctx)
    custom = _custom_lookup(custom_objects, class_name, value.get("registered_name"))
    if custom is not None:
        return custom.from_config(_read_value(None, cfg, custom_objects, ctx))
    if _is_custom_entry(value) or class_name not in regularizers._CLASSES:
        raise DeserializationError(
            f"Unknown regularizer {class_name!r}{_where(ctx)}. fastnet regularizers: "
            f"{sorted(regularizers._CLASSES)}; pass custom classes through custom_objects")
    try:
        return regularizers._CLASSES[class_name].from_config(cfg)
    except (TypeError, ValueError, AttributeError, KeyError, OverflowError) as e:
        raise DeserializationError(f"{ctx}: could not build regularizer {class_name} from "
                                   f"{cfg!r}: {e}") from e


def _read_function(value, custom_objects, ctx, kind="function"):
    name = value.get("config")
    registered = value.get("registered_name")
    fn = _custom_lookup(custom_objects, name, registered if registered != "function" else None)
    if fn is not None:
        return fn
    if kind == "activation":
        from fastnet import activations

        if isinstance(name, str) and name in activations._BY_NAME and _is_keras_module(value.get("module")):
            return name
    raise DeserializationError(
        f"Unknown {kind} {name!r}{_where(ctx)} (module {value.get('module')!r}): fastnet never "
        f"imports code named in a file; pass it through custom_objects={{{name!r}: fn}}")


def _read_activation(value, custom_objects, ctx):
    from fastnet import activations

    if value is None:
        return None
    if isinstance(value, str):
        if custom_objects and value in custom_objects:
            return custom_objects[value]
        if value not in activations._BY_NAME:
            raise DeserializationError(
                f"Unknown activation {value!r}{_where(ctx)}. fastnet activations: "
                f"{sorted(activations._BY_NAME)}; pass custom functions through custom_objects")
        return value
    if isinstance(value, dict):
        if value.get("class_name") == "function":
            return _read_function(value, custom_objects, ctx, "activation")
        if value.get("class_name") == "__lambda__":
            _refuse_lambda(ctx)
        # An activation layer object or a class-based activation: only through custom_objects.
        custom = _custom_lookup(custom_objects, value.get("class_name"), value.get("registered_name"))
        if custom is not None:
            return custom
    raise DeserializationError(f"Could not read the activation {value!r}{_where(ctx)}")


def _refuse_lambda(ctx):
    from fastnet.layers.lambda_layer import _UNSAFE_LAMBDA

    raise DeserializationError(
        f"{_UNSAFE_LAMBDA} (The config{_where(ctx)} holds a Python lambda, code stored in the file. fastnet's "
        f"load_model never runs code from a file, whatever safe_mode says: define the function in your code, "
        f"register it with register_keras_serializable or pass it through custom_objects.)")


_SAFE_ARRAY_KINDS = "biuf"


def _read_special(value, custom_objects, ctx):
    class_name = value["class_name"]
    cfg = _inner(value, ctx)
    if class_name in ("__numpy__", "__tensor__"):
        try:
            dtype = np.dtype(cfg.get("dtype"))
        except TypeError as e:
            raise DeserializationError(f"Bad array dtype {cfg.get('dtype')!r}{_where(ctx)}") from e
        if dtype.kind not in _SAFE_ARRAY_KINDS:
            raise DeserializationError(f"Array of dtype {dtype}{_where(ctx)} refused: only "
                                       f"numeric arrays are read from configs")
        try:
            return np.array(cfg.get("value"), dtype=dtype)
        except (TypeError, ValueError, OverflowError) as e:
            raise DeserializationError(f"Bad array value{_where(ctx)}: {e}") from e
    if class_name == "__bytes__":
        return str(cfg.get("value", "")).encode("utf-8")
    if class_name == "__ellipsis__":
        return Ellipsis
    if class_name == "__slice__":
        return slice(*(_read_value(None, cfg.get(k), custom_objects, ctx) for k in ("start", "stop", "step")))
    if class_name == "__lambda__":
        _refuse_lambda(ctx)
    raise DeserializationError(f"Unsupported serialized object {class_name!r}{_where(ctx)}")


def _read_value(key, value, custom_objects, ctx):
    """A config value with every serialized object resolved through fastnet's registries."""
    if key in _ACTIVATION_KEYS:
        return _read_activation(value, custom_objects, f"{ctx}, {key}" if ctx else key)
    if key == "dtype":
        return _read_dtype(value, ctx)
    if isinstance(value, list):
        return [_read_value(None, v, custom_objects, ctx) for v in value]
    if isinstance(key, str) and key.endswith(_CONSTRAINT_KEYS_SUFFIX) and value is not None:
        if isinstance(value, dict):
            custom = _custom_lookup(custom_objects, value.get("class_name"), value.get("registered_name"))
            if custom is not None:
                return custom.from_config(_read_value(None, _inner(value, ctx), custom_objects, ctx))
        raise DeserializationError(
            f"{ctx}: {key}={value!r} is not supported: fastnet has no built-in weight "
            f"constraints (pass a constraint class through custom_objects)")
    if not isinstance(value, dict):
        return value
    if "class_name" not in value or "config" not in value:
        return {k: _read_value(k, v, custom_objects, ctx) for k, v in value.items()}
    class_name = value["class_name"]
    module = value.get("module")
    if not isinstance(class_name, str):
        raise DeserializationError(f"A class_name must be a string{_where(ctx)}, received {class_name!r}")
    if class_name.startswith("__"):
        return _read_special(value, custom_objects, ctx)
    if class_name in ("DTypePolicy", "FloatDTypePolicy", "QuantizedDTypePolicy",
                      "QuantizedFloat8DTypePolicy", "DTypePolicyMap"):
        return _read_dtype(value, ctx)
    if class_name == "function":
        return _read_function(value, custom_objects, ctx)
    if module == "keras.initializers" or (key or "").endswith("_initializer"):
        return _read_initializer(value, custom_objects, ctx)
    if module == "keras.regularizers" or (key or "").endswith("_regularizer"):
        return _read_regularizer(value, custom_objects, ctx)
    if module == "keras.layers" or (isinstance(module, str) and module.startswith("keras.src.layers")):
        return deserialize_layer(value, custom_objects, parent=ctx)
    if module == "keras.optimizers.schedules":
        return _read_schedule(value, custom_objects, ctx)
    custom = _custom_lookup(custom_objects, class_name, value.get("registered_name"))
    if custom is not None:
        cfg = _read_value(None, _inner(value, ctx), custom_objects, ctx)
        return custom.from_config(cfg) if hasattr(custom, "from_config") else custom(**cfg)
    # A layer of a wrapper that names itself by class only.
    if module is None and class_name in _layer_registry():
        return deserialize_layer(value, custom_objects, parent=ctx)
    raise DeserializationError(
        f"Unknown object {class_name!r} (module {module!r}){_where(ctx)}: fastnet builds only "
        f"classes from its own registries or passed through custom_objects")


def _read_schedule(value, custom_objects, ctx):
    from fastnet.optimizers import schedules

    custom = _custom_lookup(custom_objects, value.get("class_name"), value.get("registered_name"))
    if custom is not None:
        return custom.from_config(_read_value(None, _inner(value, ctx), custom_objects, ctx))
    try:
        return schedules.deserialize(value)
    except (TypeError, ValueError, KeyError) as e:
        raise DeserializationError(f"Could not read the learning-rate schedule{_where(ctx)}: {e}") from e


def _layer_ctx(config, parent=None):
    cfg = config.get("config") if isinstance(config.get("config"), dict) else {}
    name = cfg.get("name")
    here = f"layer {name!r} ({config.get('class_name')})" if name else f"a {config.get('class_name')} layer"
    return f"{parent}, {here}" if parent else here


def read_layer_config(class_name, config, custom_objects, ctx):
    """The constructor keywords for a layer config written by Keras or fastnet."""
    if not isinstance(config, dict):
        raise DeserializationError(f"{ctx}: the layer config must be a dict, received {config!r}")
    cfg = dict(config)
    cfg.pop("shared_object_id", None)
    defaults = dict(_ANY_CLASS_DEFAULTS)
    defaults.update(_CLASS_DEFAULTS.get(class_name, {}))
    for key, default in defaults.items():
        if key in cfg:
            _check_default(key, cfg.pop(key), default, ctx)
    return {k: _read_value(k, v, custom_objects, ctx) for k, v in cfg.items()}


def deserialize_layer(config, custom_objects=None, parent=None):
    """A layer from its serialized dict (Keras's or fastnet's layout)."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise DeserializationError(
            f"A layer config must be a dict with 'class_name' and 'config', received {config!r}")
    ctx = _layer_ctx(config, parent)
    if config.get("class_name") in _MODEL_CLASSES and not _custom_lookup(
            custom_objects, config.get("class_name"), config.get("registered_name")):
        return deserialize_model_config(config, custom_objects, compile=False)
    cls = _layer_class(config, custom_objects, ctx)
    kwargs = read_layer_config(config["class_name"], config.get("config") or {}, custom_objects, ctx)
    try:
        layer = cls.from_config(kwargs)
    except DeserializationError:
        raise
    except (TypeError, ValueError, NotImplementedError, AttributeError, KeyError, IndexError,
            OverflowError) as e:
        raise DeserializationError(f"Could not rebuild {ctx} from its config: "
                                   f"{type(e).__name__}: {e}") from e
    build = config.get("build_config")
    if build:
        if not isinstance(build, dict):
            raise DeserializationError(f"{ctx}: build_config must be a dict, received {build!r}")
        shape = build.get("input_shape")
        if shape is not None and not (_is_shape(shape) or (
                isinstance(shape, list) and shape and all(_is_shape(s) for s in shape))):
            raise DeserializationError(f"{ctx}: build_config input_shape {shape!r} is not a shape")
        try:
            layer.build_from_config(build)
        except (TypeError, ValueError, AttributeError, KeyError, IndexError, OverflowError,
                MemoryError) as e:
            raise DeserializationError(f"Could not build {ctx} for input shape {shape}: {e}") from e
    return layer


def _is_shape(shape):
    return isinstance(shape, (list, tuple)) and all(
        d is None or (isinstance(d, numbers.Integral) and not isinstance(d, bool) and d >= 0)
        for d in shape)


# ----------------------------------------------------------------------------- functional
def _history_ref(t, node_index):
    layer, idx, tensor_index = t._keras_history
    return [layer.name, node_index[id(layer.__dict__["_inbound_nodes"][idx])], tensor_index]


def serialize_functional(model):
    """Keras's config of a functional model: each layer with the calls of it that belong to
    the model (``inbound_nodes``, node indices counted within the model), and the input and
    output layers as [layer name, node index, tensor index]."""
    from fastnet.layers.graph import KerasTensor
    from fastnet.utils import tree

    graph = model._graph
    members = {id(n) for n in graph.nodes} | {id(t.node) for t in graph.inputs if t.node is not None}
    node_index = {}
    for layer in model.layers:
        k = 0
        for node in layer._inbound_nodes:
            if id(node) in members:
                node_index[id(node)] = k
                k += 1

    def encode(value):
        if isinstance(value, KerasTensor):
            return {"class_name": "__keras_tensor__",
                    "config": {"shape": list(value.shape), "dtype": value.dtype,
                               "keras_history": _history_ref(value, node_index)}}
        if isinstance(value, (list, tuple)):
            return [encode(v) for v in value]
        if isinstance(value, dict):
            return {k: encode(v) for k, v in value.items()}
        return _keras_value(None, value)

    layers = []
    for layer in model.layers:
        entry = serialize_layer(layer)
        entry["name"] = layer.name
        nodes = []
        for node in layer._inbound_nodes:
            if id(node) not in members or node.is_input:
                continue
            kwargs = {k: encode(v) for k, v in node.kwargs.items()}
            nodes.append({"args": encode(list(node.args)), "kwargs": kwargs})
        entry["inbound_nodes"] = nodes
        layers.append(entry)

    def refs(structure):
        return tree.map_structure(lambda t: _history_ref(t, node_index), structure) \
            if not isinstance(structure, KerasTensor) else _history_ref(structure, node_index)

    ins, outs = model._input_structure, model._output_structure
    return {"name": model.name, "trainable": model.trainable, "layers": layers,
            "input_layers": _refs_out(refs(ins), ins), "output_layers": _refs_out(refs(outs), outs)}


def _refs_out(refs, structure):
    # A single-tensor list is written as the bare reference, as Keras does.
    if isinstance(structure, list) and len(structure) == 1 and not isinstance(refs[0][0], list):
        return refs
    return refs


class _NotYet(Exception):
    """A node's input is computed by a node not created yet (the loop retries it later)."""


def functional_from_config(cls, config, custom_objects=None):
    """A functional model from Keras's config: layers first, then their calls, each made
    once the tensors it reads exist."""
    from fastnet.utils import tree

    ctx = f"model {config.get('name')!r}"
    entries = config.get("layers")
    if not isinstance(entries, list):
        raise DeserializationError(f"{ctx}: 'layers' must be a list")
    created = {}
    outputs_of = {}   # layer name -> list (node index within the model) of output structures
    pending = {}
    order = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise DeserializationError(f"{ctx}: a layer entry must be a dict, received {entry!r}")
        name = entry.get("name") or (entry.get("config") or {}).get("name")
        if not isinstance(name, str):
            raise DeserializationError(f"{ctx}: a layer entry has no name")
        if name in created:
            raise DeserializationError(f"{ctx}: two layers are named {name!r}")
        layer = deserialize_layer(entry, custom_objects=custom_objects, parent=ctx)
        created[name] = layer
        order.append(name)
        nodes = entry.get("inbound_nodes") or []
        if not isinstance(nodes, list):
            raise DeserializationError(f"{ctx}: inbound_nodes of layer {name!r} must be a list")
        if type(layer).__name__ == "InputLayer":
            outputs_of[name] = [layer.output]
        else:
            outputs_of[name] = []
            pending[name] = list(nodes)

    def tensor(ref):
        if not (isinstance(ref, (list, tuple)) and len(ref) == 3 and isinstance(ref[0], str)):
            raise DeserializationError(f"{ctx}: a tensor reference must be [layer name, node index, tensor "
                                       f"index], received {ref!r}")
        lname, ni, ti = ref
        if lname not in created:
            raise DeserializationError(f"{ctx}: a node reads from layer {lname!r}, which the config does not "
                                       f"define")
        if not isinstance(ni, int) or not isinstance(ti, int) or ni < 0 or ti < 0:
            raise DeserializationError(f"{ctx}: bad tensor reference {ref!r}")
        outs = outputs_of[lname]
        if ni >= len(outs):
            raise _NotYet
        flat = tree.flatten(outs[ni])
        if ti >= len(flat):
            raise DeserializationError(f"{ctx}: layer {lname!r} has {len(flat)} outputs, a node reads output "
                                       f"{ti}")
        return flat[ti]

    def decode(value):
        if isinstance(value, dict):
            if value.get("class_name") == "__keras_tensor__":
                hist = (value.get("config") or {}).get("keras_history")
                return tensor(hist)
            if value.get("class_name") == "__numpy__":
                cfg = value.get("config") or {}
                return np.asarray(cfg.get("value"), dtype=cfg.get("dtype"))
            return {k: decode(v) for k, v in value.items()}
        if isinstance(value, list):
            return [decode(v) for v in value]
        return value

    while any(pending.values()):
        progress = False
        for name in order:
            queue = pending.get(name)
            while queue:
                node = queue[0]
                if not isinstance(node, dict):
                    raise DeserializationError(f"{ctx}: a node of layer {name!r} must be a dict")
                try:
                    args = decode(node.get("args") or [])
                    kwargs = decode(node.get("kwargs") or {})
                except _NotYet:
                    break
                kwargs = {k: v for k, v in kwargs.items() if not (k == "mask" and v is None)}
                try:
                    out = created[name](*args, **kwargs)
                except DeserializationError:
                    raise
                except (TypeError, ValueError, NotImplementedError, AttributeError, KeyError, IndexError) as e:
                    raise DeserializationError(f"{ctx}: calling layer {name!r} on its inputs failed: "
                                               f"{type(e).__name__}: {e}") from e
                outputs_of[name].append(out)
                queue.pop(0)
                progress = True
        if not progress:
            stuck = sorted(n for n, q in pending.items() if q)
            raise DeserializationError(f"{ctx}: the calls of layers {stuck} read tensors no layer computes "
                                       f"(a cycle or a missing layer)")

    def structure(refs, what):
        if isinstance(refs, dict):
            return {k: structure(v, what) for k, v in refs.items()}
        if isinstance(refs, (list, tuple)) and refs and isinstance(refs[0], str):
            return tensor(refs)
        if isinstance(refs, (list, tuple)):
            return [structure(r, what) for r in refs]
        raise DeserializationError(f"{ctx}: {what} must be tensor references, received {refs!r}")

    try:
        inputs = structure(config.get("input_layers"), "input_layers")
        outputs = structure(config.get("output_layers"), "output_layers")
    except _NotYet:
        raise DeserializationError(f"{ctx}: input_layers or output_layers name a call that does not exist") \
            from None
    return cls(inputs=inputs, outputs=outputs, name=config.get("name"), trainable=config.get("trainable", True))


# ----------------------------------------------------------------------------- models
_MODEL_CLASSES = ("Sequential", "Functional", "Model")


def deserialize_model_config(config, custom_objects=None, compile=True):
    """A model from Keras's top-level serialized dict; compiled when the dict says so
    and ``compile`` is true."""
    from fastnet.models import Model, Sequential

    if not isinstance(config, dict) or "class_name" not in config or not isinstance(config.get("config"), dict):
        raise DeserializationError(
            "A model config must be a dict with 'class_name' and 'config' (Keras's layout)")
    from fastnet.models.functional import Functional

    class_name = config["class_name"]
    cls = _custom_lookup(custom_objects, class_name, config.get("registered_name"))
    if cls is None:
        custom = _is_custom_entry(config) and not str(config.get("module") or "").startswith("keras.src.models")
        if class_name not in _MODEL_CLASSES or custom:
            raise DeserializationError(
                f"Unknown model class {class_name!r} (module {config.get('module')!r}): fastnet "
                f"builds Sequential and functional models, and custom model classes passed as custom_objects")
        cls = Sequential if class_name == "Sequential" else Functional
    if not (isinstance(cls, type) and issubclass(cls, Model)):
        raise DeserializationError(f"custom_objects[{class_name!r}] is not a fastnet model class")
    inner = dict(config["config"])
    inner.pop("shared_object_id", None)
    ctx = f"model {inner.get('name')!r}"
    if "dtype" in inner:
        inner["dtype"] = _read_dtype(inner["dtype"], ctx)
    if not isinstance(inner.get("layers", []), list):
        raise DeserializationError(f"{ctx}: 'layers' must be a list")
    for key in ("build_input_shape",):
        if inner.get(key) is not None and not _is_shape(inner[key]):
            raise DeserializationError(f"{ctx}: {key} {inner[key]!r} is not a shape")
    try:
        model = cls.from_config(inner, custom_objects=custom_objects)
    except DeserializationError:
        raise
    except (TypeError, ValueError, AttributeError, KeyError, IndexError) as e:
        raise DeserializationError(f"Could not rebuild {ctx}: {type(e).__name__}: {e}") from e
    build = config.get("build_config") or {}
    shape = build.get("input_shape") if isinstance(build, dict) else None
    if shape is not None and not model.built:
        if not _is_shape(shape):
            raise DeserializationError(f"{ctx}: build_config input_shape {shape!r} is not a shape")
        try:
            model.build(tuple(shape))
        except (TypeError, ValueError) as e:
            raise DeserializationError(f"Could not build {ctx} for input shape {shape}: {e}") from e
    if compile and config.get("compile_config"):
        kwargs = deserialize_compile_config(config["compile_config"], custom_objects, ctx)
        try:
            model.compile(**kwargs)
        except (TypeError, ValueError, AttributeError, KeyError, NotImplementedError) as e:
            raise DeserializationError(f"Could not compile {ctx} as it was saved: "
                                       f"{type(e).__name__}: {e}") from e
    return model


def _read_loss_or_metric(value, module_name, custom_objects, ctx):
    import importlib

    if value is None or isinstance(value, (str, numbers.Number)):
        if isinstance(value, str) and custom_objects and value in custom_objects:
            return custom_objects[value]
        return value
    if isinstance(value, list):
        return [_read_loss_or_metric(v, module_name, custom_objects, ctx) for v in value]
    if not isinstance(value, dict):
        raise DeserializationError(f"{ctx}: could not read {value!r} in the compile config")
    if "class_name" not in value:
        return {k: _read_loss_or_metric(v, module_name, custom_objects, ctx) for k, v in value.items()}
    class_name = value["class_name"]
    if class_name == "__lambda__":
        _refuse_lambda(ctx)
    if class_name == "function":
        name = value.get("config")
        fn = _custom_lookup(custom_objects, name, value.get("registered_name"))
        if fn is not None:
            return fn
        if _is_keras_module(value.get("module")) and isinstance(name, str):
            return name  # a built-in function, by its name
        return _read_function(value, custom_objects, ctx)
    custom = _custom_lookup(custom_objects, class_name, value.get("registered_name"))
    if custom is not None:
        return custom.from_config(_inner(value, ctx))
    if _is_custom_entry(value):
        raise DeserializationError(
            f"Unknown class {class_name!r} (module {value.get('module')!r}) in the compile config "
            f"of {ctx}; pass it through custom_objects")
    mod = importlib.import_module(f"fastnet.{module_name}")
    entry = {"module": f"keras.{module_name}", "class_name": class_name,
             "config": _inner(value, ctx), "registered_name": None}
    deser = getattr(mod, "deserialize", None)
    if deser is None:
        raise DeserializationError(f"fastnet.{module_name} cannot rebuild {class_name!r}")
    try:
        return deser(entry)
    except (TypeError, ValueError, KeyError) as e:
        raise DeserializationError(f"Could not rebuild {module_name[:-1]} {class_name!r} in the "
                                   f"compile config of {ctx}: {e}") from e


def deserialize_compile_config(cc, custom_objects=None, ctx="the model"):
    """Keyword arguments for ``model.compile`` from a compile config Keras wrote."""
    from fastnet import optimizers

    if not isinstance(cc, dict):
        raise DeserializationError(f"{ctx}: compile_config must be a dict, received {cc!r}")
    opt = cc.get("optimizer", "rmsprop")
    if isinstance(opt, dict):
        custom = _custom_lookup(custom_objects, opt.get("class_name"), opt.get("registered_name"))
        cfg = _inner(opt, f"{ctx}, optimizer")
        if isinstance(cfg.get("learning_rate"), dict):
            cfg["learning_rate"] = _read_schedule(cfg["learning_rate"], custom_objects, f"{ctx}, optimizer")
        if custom is not None:
            opt = custom.from_config(cfg)
        else:
            if _is_custom_entry(opt):
                raise DeserializationError(
                    f"Unknown optimizer {opt.get('class_name')!r} (module {opt.get('module')!r}) in "
                    f"the compile config of {ctx}; pass it through custom_objects")
            try:
                opt = optimizers.deserialize({**opt, "config": cfg})
            except (TypeError, ValueError, NotImplementedError) as e:
                raise DeserializationError(f"Could not rebuild the optimizer of {ctx}: {e}") from e
    else:
        try:
            opt = optimizers.get(opt)
        except (TypeError, ValueError) as e:
            raise DeserializationError(f"Could not rebuild the optimizer of {ctx}: {e}") from e
    out = {
        "optimizer": opt,
        "loss": _read_loss_or_metric(cc.get("loss"), "losses", custom_objects, ctx),
        "metrics": _read_loss_or_metric(cc.get("metrics"), "metrics", custom_objects, ctx),
        "weighted_metrics": _read_loss_or_metric(cc.get("weighted_metrics"), "metrics", custom_objects, ctx),
        "loss_weights": cc.get("loss_weights"),
    }
    return out
