"""The Keras 3 ``.keras`` format and ``.weights.h5`` files, read and written by fastnet.

A ``.keras`` file is a zip archive (entries stored, not compressed) holding

- ``metadata.json``: ``{"keras_version", "date_saved"}`` (fastnet adds ``fastnet_version``);
- ``config.json``: the model as Keras serializes it (``module``, ``class_name``,
  ``config``, ``registered_name``, ``build_config``, ``compile_config``);
- ``model.weights.h5``: the variables, laid out as Keras lays them out::

      vars                                 (the model's own: none; attribute name=model name)
      layers/<key>/vars/<i>                (key: the snake-case class name, then _1, _2, ...)
      layers/<key>/<attr>/vars/<i>         (a sub-layer held in attribute <attr>, e.g. cell)
      optimizer/vars/<i>                   (iterations, learning rate, slots: Keras's order)

  Each ``vars`` group carries the owner's name in its ``name`` attribute; a layer's own
  variables are numbered trainable first, then non-trainable, each in creation order.

A ``.weights.h5`` file is the same HDF5 layout on its own. Every write goes to a
temporary file in the target folder, is flushed to disk and renamed over the target,
so an interrupted save leaves any previous file untouched. Reading checks everything
before any weight is assigned: a damaged or mismatched file leaves the model as it was.
"""
from __future__ import annotations

import datetime
import io
import json
import os
import warnings
import zipfile
from typing import TYPE_CHECKING

import numpy as np

from fastnet.saving._files import (
    FileFormatError,
    WeightsMismatchError,
    atomic_output,
    open_checked_zip,
    open_member,
    read_member,
    require_h5py,
)
from fastnet.saving._h5safety import check_h5_file, verify_checksum, write_checksum
from fastnet.saving.serialization import (
    KERAS_FORMAT_VERSION,
    DeserializationError,
    deserialize_model_config,
    serialize_model,
)

if TYPE_CHECKING:
    from typing import Any

    from fastnet._typing import CustomObjects
    from fastnet.models.model import Model

__all__ = [
    "save_model", "load_model", "save_weights", "load_weights", "model_to_json",
    "model_from_json",
]

CONFIG_FILENAME = "config.json"
METADATA_FILENAME = "metadata.json"
WEIGHTS_FILENAME = "model.weights.h5"
# What the JSON entries of a .keras file may hold. A model's config is kilobytes per
# layer; these bounds keep what a crafted entry makes the reader allocate (Python
# objects take up to ~25x the bytes of JSON like "{},{},...") to a couple hundred MB.
_CONFIG_LIMIT = 8 * 1024 * 1024
_METADATA_LIMIT = 1024 * 1024
_JSON_CONTAINER_LIMIT = 500_000


# ----------------------------------------------------------------------------- helpers
def _describe(filepath):
    if isinstance(filepath, (str, os.PathLike)):
        return f"'{os.fspath(filepath)}'"
    return f"<{type(filepath).__name__}>"


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"Cannot write {obj!r} (type {type(obj).__name__}) into a model config: "
                    f"configs hold numbers, strings, lists and dicts")


def _dumps(obj, **kwargs):
    return json.dumps(obj, default=_json_default, **kwargs)


def _snake(name):
    from fastnet import backend

    return backend.to_snake_case(name)


def _children(layer):
    """Sub-layers held in public attributes, by attribute name (the HDF5 sub-paths); a
    model nested in a model keeps its layers under ``layers/<key>``, as Keras does."""
    from fastnet.layers.base import Layer
    from fastnet.models.model import Model

    if isinstance(layer, Model):
        layers = layer.layers
        return [(f"layers/{key}", child) for key, child in zip(_layer_keys(layers), layers)]
    out = []
    for name in sorted(vars(layer)):
        if name.startswith("_"):
            continue
        value = vars(layer)[name]
        if isinstance(value, Layer) and value is not layer:
            out.append((name, value))
    if hasattr(layer, "save_own_variables"):
        # Layers with their own state hooks (preprocessing layers) keep sub-layers in private
        # attributes too (TextVectorization's _lookup_layer); Keras saves those after the
        # public ones, under their attribute names.
        for name in sorted(vars(layer)):
            value = vars(layer)[name]
            if (name.startswith("_") and not name.startswith("__") and isinstance(value, Layer)
                    and value is not layer):
                out.append((name, value))
    return out


def _walk_layers(model):
    """(path, layer) for every layer the weights file has a group for, in file order."""
    out, visited = [], {id(model)}

    def visit(path, layer):
        if id(layer) in visited:
            return
        visited.add(id(layer))
        out.append((path, layer))
        for attr, child in _children(layer):
            visit(f"{path}/{attr}", child)
    layers = model.layers
    for key, layer in zip(_layer_keys(layers), layers):
        visit(f"layers/{key}", layer)
    return out


_ASSETS = "assets"
_ASSETS_LIMIT = 256 * 2 ** 20  # the vocabularies and tables of preprocessing layers


def _collect_assets(model):
    """(archive name, bytes) of the files the layers' ``save_assets`` hooks write, under
    ``assets/<layer path>/`` as Keras lays them out."""
    import tempfile

    files = []
    for path, layer in _walk_layers(model):
        hook = getattr(layer, "save_assets", None)
        if hook is None:
            continue
        with tempfile.TemporaryDirectory(prefix="fastnet-assets-") as tmp:
            hook(tmp)
            for name in sorted(os.listdir(tmp)):
                full = os.path.join(tmp, name)
                if os.path.isfile(full):
                    with open(full, "rb") as f:
                        files.append((f"{_ASSETS}/{path}/{name}", f.read()))
    return files


def _load_assets(zf, model, what):
    """Gives each layer with a ``load_assets`` hook the files stored under its path
    (plain files only, bounded in size; nothing outside a scratch folder is written)."""
    import tempfile

    names = [n for n in zf.namelist() if n.startswith(_ASSETS + "/")]
    total = 0
    for path, layer in _walk_layers(model):
        hook = getattr(layer, "load_assets", None)
        if hook is None:
            continue
        prefix = f"{_ASSETS}/{path}/"
        mine = [n for n in names if n.startswith(prefix) and "/" not in n[len(prefix):]]
        with tempfile.TemporaryDirectory(prefix="fastnet-assets-") as tmp:
            for n in mine:
                leaf = n[len(prefix):]
                if not leaf or leaf in (".", "..") or "\\" in leaf or "\x00" in leaf:
                    raise FileFormatError(f"{what}: bad asset name {n!r}")
                info = zf.getinfo(n)
                total += info.file_size
                if total > _ASSETS_LIMIT:
                    raise FileFormatError(f"{what}: the assets exceed {_ASSETS_LIMIT} bytes")
                data = read_member(zf, n, what, limit=_ASSETS_LIMIT)
                with open(os.path.join(tmp, leaf), "wb") as f:
                    f.write(data)
            try:
                hook(tmp)
            except (ValueError, OSError, UnicodeDecodeError) as e:
                raise FileFormatError(f"{what}: the assets of layer '{layer.name}' cannot be read: {e}") from e


def _own_variables(layer, children):
    """The variables a layer stores in its own ``vars`` group: its weights (trainable
    first, in creation order) minus those of its sub-layers."""
    taken = set()
    for _, child in children:
        taken.update(id(v) for v in child.weights)
    return [v for v in layer.weights if id(v) not in taken]


def _layer_keys(layers):
    """HDF5 keys of a model's layers: snake-case class names, numbered when repeated."""
    used = {}
    keys = []
    for layer in layers:
        key = _snake(type(layer).__name__)
        if key in used:
            used[key] += 1
            key = f"{key}_{used[key]}"
        else:
            used[key] = 0
        keys.append(key)
    return keys


def _check_model(model, what):
    from fastnet.models.model import Model

    if not isinstance(model, Model):
        raise TypeError(f"{what} expects a fastnet model, received {type(model).__name__}")


# ----------------------------------------------------------------------------- writing weights
def _write_vars(h5, path, owner_name, arrays):
    group = h5.create_group(f"{path}/vars" if path else "vars")
    group.attrs["name"] = str(owner_name)
    for i, value in enumerate(arrays):
        value = np.asarray(value)
        ds = group.create_dataset(str(i), data=value)
        write_checksum(ds, f"{group.name.lstrip('/')}/{i}", value)


def _write_store(h5, path, owner_name, store):
    """A layer's own ``save_own_variables`` output, keys as the layer names them."""
    group = h5.create_group(f"{path}/vars")
    group.attrs["name"] = str(owner_name)
    for key, value in store.items():
        value = np.asarray(value)
        ds = group.create_dataset(str(key), data=value)
        write_checksum(ds, f"{group.name.lstrip('/')}/{key}", value)


def _write_layer(h5, path, layer, visited):
    if id(layer) in visited:
        return
    visited.add(id(layer))
    children = _children(layer)
    hook = getattr(layer, "save_own_variables", None)
    if hook is not None:
        store = {}
        hook(store)
        _write_store(h5, path, layer.name, store)
        for attr, child in children:
            _write_layer(h5, f"{path}/{attr}", child, visited)
        return
    _write_vars(h5, path, layer.name, [v.value for v in _own_variables(layer, children)])
    for attr, child in children:
        _write_layer(h5, f"{path}/{attr}", child, visited)


def _write_weights(h5, model, include_optimizer=True):
    _write_vars(h5, "", model.name, [])
    visited = {id(model)}
    layers = model.layers
    for key, layer in zip(_layer_keys(layers), layers):
        _write_layer(h5, f"layers/{key}", layer, visited)
    opt = getattr(model, "optimizer", None)
    if include_optimizer and opt is not None:
        _write_vars(h5, "optimizer", opt.name, [np.asarray(v) for v in opt.variables])


def _weights_bytes(model, include_optimizer=True):
    h5py = require_h5py()
    buf = io.BytesIO()
    with h5py.File(buf, "w") as h5:
        _write_weights(h5, model, include_optimizer)
    return buf.getvalue()


# ----------------------------------------------------------------------------- reading weights
class _Plan:
    """Assignments gathered while checking a weights file, applied only when all fit."""

    def __init__(self, what: str, skip_mismatch: bool) -> None:
        self.what = what
        self.skip_mismatch = skip_mismatch
        self.assignments: list[Any] = []
        self.hooks: list[Any] = []  # (layer, load_own_variables, store): layers with their own state hooks
        self.visited_keys: set[str] = set()

    def problem(self, message: str) -> None:
        message = f"{self.what}: {message}"
        if self.skip_mismatch:
            warnings.warn(message + " (skipped: skip_mismatch=True)", stacklevel=4)
            return
        raise WeightsMismatchError(message)


def _read_dataset(ds, plan, where):
    h5py = require_h5py()
    if not isinstance(ds, h5py.Dataset):
        raise FileFormatError(f"{plan.what}: '{where}' is not a dataset")
    try:
        kind, dtype_attr = ds.dtype.kind, "dtype" in ds.attrs
    except (OSError, RuntimeError, ValueError, KeyError, TypeError) as e:
        raise FileFormatError(f"{plan.what}: cannot read the type of '{where}', the file is "
                              f"corrupt ({e})") from e
    if kind not in "biuf" or dtype_attr:
        raise FileFormatError(f"{plan.what}: '{where}' holds values of type {ds.dtype} "
                              f"(attributes {sorted(ds.attrs.keys())}); fastnet reads numeric "
                              f"weights only")
    try:
        value = np.asarray(ds[()])
    except (OSError, RuntimeError, ValueError, KeyError, TypeError) as e:
        raise FileFormatError(f"{plan.what}: cannot read '{where}', the file is corrupt or "
                              f"truncated ({e})") from e
    verify_checksum(ds, where, value, plan.what)
    return value


def _vars_group(h5, path):
    h5py = require_h5py()
    node = h5.get(path) if path else h5
    if node is None:
        return None
    if not isinstance(node, h5py.Group):
        raise FileFormatError(f"'{path}' is not a group")
    group = node.get("vars")
    if group is not None and not isinstance(group, h5py.Group):
        raise FileFormatError(f"'{path}/vars' is not a group")
    return group


def _plan_layer(h5, path, layer, visited, plan):
    if id(layer) in visited:
        return
    visited.add(id(layer))
    children = _children(layer)
    hook = getattr(layer, "load_own_variables", None)
    if hook is not None:
        group = _vars_group(h5, path)
        store = {}
        for key in (group.keys() if group is not None else []):
            store[key] = _read_dataset(group[key], plan, f"{path}/vars/{key}")
        plan.hooks.append((layer, hook, store))
        for attr, child in children:
            _plan_layer(h5, f"{path}/{attr}", child, visited, plan)
        return
    own = _own_variables(layer, children)
    group = _vars_group(h5, path)
    keys = sorted(group.keys(), key=lambda k: (len(k), k)) if group is not None else []
    expected = [str(i) for i in range(len(own))]
    kind = type(layer).__name__
    pending = []
    ok = True
    if keys != expected:
        ok = False
        if not own and not layer.built:
            plan.problem(f"layer '{layer.name}' ({kind}) is not built, so it has no weights, but "
                         f"the file holds {len(keys)} for it at '{path}/vars'; build the model first")
        else:
            plan.problem(f"layer '{layer.name}' ({kind}) has {len(own)} weights "
                         f"{[v.name for v in own]}, the file holds {len(keys)} at '{path}/vars' "
                         f"({keys})")
    else:
        for i, var in enumerate(own):
            where = f"{path}/vars/{i}"
            ds = group[str(i)]
            if not isinstance(ds, require_h5py().Dataset):
                raise FileFormatError(f"{plan.what}: '{where}' should hold the weight '{var.name}' "
                                      f"of layer '{layer.name}' ({kind}) but is not a dataset")
            if tuple(ds.shape) != tuple(var.shape):
                ok = False
                plan.problem(f"layer '{layer.name}' ({kind}) weight '{var.name}' has shape "
                             f"{tuple(var.shape)}, the file holds shape {tuple(ds.shape)} at '{where}'")
                break
            pending.append((var, _read_dataset(ds, plan, where)))
    if ok:
        plan.assignments.extend(pending)
    for attr, child in children:
        _plan_layer(h5, f"{path}/{attr}", child, visited, plan)


def _plan_model(h5, model, plan):
    h5py = require_h5py()
    layers = model.layers
    keys = _layer_keys(layers)
    visited = {id(model)}
    for key, layer in zip(keys, layers):
        _plan_layer(h5, f"layers/{key}", layer, visited, plan)
    stored = h5.get("layers")
    if stored is not None:
        if not isinstance(stored, h5py.Group):
            raise FileFormatError(f"{plan.what}: 'layers' is not a group")
        extra = sorted(set(stored.keys()) - set(keys))
        if extra:
            plan.problem(f"the file holds weights for layers {extra} that model '{model.name}' "
                         f"does not have (its layers: {keys})")


def _plan_optimizer(h5, model, plan):
    """Checks the saved optimizer state against the model's optimizer; returns the
    function that restores it (or None)."""
    opt = getattr(model, "optimizer", None)
    if opt is None:
        return None
    group = _vars_group(h5, "optimizer")
    if group is None:
        return None
    keys = sorted(group.keys(), key=lambda k: (len(k), k))
    n = len(keys)
    if keys != [str(i) for i in range(n)]:
        raise FileFormatError(f"{plan.what}: 'optimizer/vars' holds unexpected entries {keys}")
    if not opt.built and n > len(opt.variables) and model.built:
        opt.build(model.trainable_weights)
    current = opt.variables
    if n != len(current):
        warnings.warn(
            f"{plan.what}: not restoring the state of optimizer '{opt.name}': it has "
            f"{len(current)} variables for this model, the file holds {n}", stacklevel=4)
        return None
    for i, dst in enumerate(current):
        stored = group[str(i)]
        if np.shape(dst) != tuple(getattr(stored, "shape", ())):
            plan.problem(f"optimizer '{opt.name}' variable {i} has shape {np.shape(dst)}, the "
                         f"file holds shape {tuple(getattr(stored, 'shape', ()))} at "
                         f"'optimizer/vars/{i}'")
            return None
    values = [_read_dataset(group[k], plan, f"optimizer/vars/{k}") for k in keys]

    def restore():
        if opt.built:
            opt.set_variables(values)
        else:
            for dst, src in zip(current, values):
                np.copyto(dst, src, casting="unsafe")

    return restore


def _load_weights_from_h5(h5, model, what, skip_mismatch=False, load_optimizer=True):
    # Links and storage first: nothing is read from a file that points elsewhere.
    check_h5_file(h5, what)
    plan = _Plan(what, skip_mismatch)
    try:
        _plan_model(h5, model, plan)
        restore_optimizer = _plan_optimizer(h5, model, plan) if load_optimizer else None
    except (FileFormatError, WeightsMismatchError):
        raise
    except (OSError, RuntimeError, KeyError, ValueError, TypeError, AttributeError) as e:
        # h5py's own errors on a damaged file (a bad B-tree, a message of the wrong kind).
        raise FileFormatError(f"{what}: cannot read the weights, the HDF5 data is corrupt or "
                              f"truncated ({type(e).__name__}: {e})") from e
    for var, value in plan.assignments:
        var.assign(value)
    for layer, hook, store in plan.hooks:
        try:
            hook(store)
        except (ValueError, KeyError, TypeError) as e:
            raise WeightsMismatchError(f"{what}: layer '{layer.name}' ({type(layer).__name__}) cannot take the "
                                       f"variables stored for it: {e}") from e
    if restore_optimizer is not None:
        restore_optimizer()


def _weights_budget(model):
    """The most bytes a model's weights file may hold: its variables, room for an
    optimizer's state (up to five slots per variable, as EMA with AMSGrad needs),
    and HDF5's bookkeeping per dataset and group."""
    n_bytes = 0
    n_vars = 0
    for v in model.weights:
        n_bytes += int(np.prod(v.shape, dtype=np.int64)) * np.dtype(v.dtype).itemsize
        n_vars += 1
    return 6 * n_bytes + 6 * 64 * 1024 * n_vars + 1024 * 1024


def _open_h5(source, what):
    h5py = require_h5py()
    try:
        return h5py.File(source, "r")
    except (OSError, ValueError) as e:
        raise FileFormatError(f"{what} is not a valid HDF5 weights file: it is corrupt, "
                              f"truncated or of another format ({e})") from e


# ----------------------------------------------------------------------------- public API
def _target(filepath, suffix, what, overwrite):
    if isinstance(filepath, io.IOBase):
        return filepath
    path = os.fspath(filepath)
    if not str(path).endswith(suffix):
        raise ValueError(f"Invalid filepath for {what}: expected a {suffix!r} extension, received "
                         f"filepath={path!r}")
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"{path!r} exists and overwrite=False")
    return path


def _archive_bytes(model, include_optimizer=True):
    config = serialize_model(model)
    config_json = _dumps(config)
    from fastnet import __version__

    metadata_json = _dumps({
        "keras_version": KERAS_FORMAT_VERSION,
        "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S"),
        "fastnet_version": __version__,
    })
    return (metadata_json.encode(), config_json.encode(), _weights_bytes(model, include_optimizer),
            _collect_assets(model))


def _write_archive(fileobj, parts):
    metadata, config, weights, assets = parts
    with zipfile.ZipFile(fileobj, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(METADATA_FILENAME, metadata)
        zf.writestr(CONFIG_FILENAME, config)
        zf.writestr(WEIGHTS_FILENAME, weights)
        for name, data in assets:
            zf.writestr(name, data)


def save_model(model: Model, filepath: str | os.PathLike[str], overwrite: bool = True, **kwargs) -> None:
    """Saves ``model`` as a Keras 3 ``.keras`` archive (config, weights, optimizer state).

    Args:
        model: a fastnet model.
        filepath: a path ending in ``.keras`` (or a writable binary file object).
        overwrite: when False, an existing file raises FileExistsError.
        include_optimizer: when False, the optimizer state is left out of the file.
    """
    include_optimizer = kwargs.pop("include_optimizer", True)
    kwargs.pop("zipped", None)
    if kwargs:
        raise ValueError(f"The following argument(s) are not supported: {list(kwargs)}")
    _check_model(model, "save_model")
    target = _target(filepath, ".keras", "a model (.keras)", overwrite)
    if not model.built:
        warnings.warn(f"Saving model '{model.name}', which is not built yet: the file holds no "
                      f"weights. Build it (call it on data, or model.build(input_shape)) first.",
                      stacklevel=3)
    parts = _archive_bytes(model, include_optimizer)  # everything is computed before any write
    if isinstance(target, io.IOBase):
        _write_archive(target, parts)
        return
    with atomic_output(target) as tmp:
        with open(tmp, "wb") as f:
            _write_archive(f, parts)


def _read_json(zf, name, what, limit):
    data = read_member(zf, name, what, limit=limit)
    # Each container becomes a Python object ~20x the size of its JSON text: bound
    # their number before parsing (brackets inside strings count too; harmless).
    containers = data.count(b"{") + data.count(b"[")
    if containers > _JSON_CONTAINER_LIMIT:
        raise FileFormatError(f"{what}: {name} holds {containers} objects and lists, more than "
                              f"the {_JSON_CONTAINER_LIMIT} a model config may hold")
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise FileFormatError(f"{what}: {name} is not valid JSON ({e})") from e


def load_model(filepath: str | os.PathLike[str], custom_objects: CustomObjects | None = None, compile: bool = True,
               safe_mode: bool = True) -> Model:
    """Loads a model from a ``.keras`` file written by fastnet or by Keras 3.

    Args:
        filepath: a path to a ``.keras`` file, or a readable binary file object.
        custom_objects: dict of name -> class or function, the only way classes that
            are not fastnet's own are ever built from a file.
        compile: compile the model as it was saved (optimizer state included).
        safe_mode: accepted for Keras compatibility; fastnet never runs code from a file
            whatever its value.

    Returns:
        The model, with its weights (and, when compiled, its optimizer state).
    """
    what = _describe(filepath)
    if not isinstance(filepath, io.IOBase):
        path = os.fspath(filepath)
        if not str(path).endswith(".keras"):
            raise ValueError(f"Invalid filename {path!r}: load_model reads the .keras format "
                             f"(a file ending in '.keras')")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"No such file: {path!r}")
        source = path
    else:
        source = filepath
    with open_checked_zip(source, what) as zf:
        names = zf.namelist()
        config = _read_json(zf, CONFIG_FILENAME, what, _CONFIG_LIMIT)
        if METADATA_FILENAME in names:
            _read_json(zf, METADATA_FILENAME, what, _METADATA_LIMIT)
        if WEIGHTS_FILENAME not in names:
            if "model.weights.npz" in names:
                raise FileFormatError(f"{what} stores its weights as model.weights.npz, which "
                                      f"needs pickle to read; fastnet reads model.weights.h5 only")
            raise FileFormatError(f"{what} is not a valid .keras file: it has no "
                                  f"{WEIGHTS_FILENAME} (entries: {names})")
        if not isinstance(config, dict):
            raise FileFormatError(f"{what}: {CONFIG_FILENAME} does not hold a model config")
        try:
            model = deserialize_model_config(config, custom_objects, compile=compile)
        except DeserializationError as e:
            raise DeserializationError(f"{what}: {e}") from e
        except RecursionError as e:
            raise FileFormatError(f"{what}: {CONFIG_FILENAME} is nested too deeply to be a "
                                  f"model config") from e
        with open_member(zf, source, WEIGHTS_FILENAME, what, _weights_budget(model)) as f:
            with _open_h5(f, f"{what} ({WEIGHTS_FILENAME})") as h5:
                _load_weights_from_h5(h5, model, f"{what} ({WEIGHTS_FILENAME})",
                                      load_optimizer=compile)
        _load_assets(zf, model, what)
    return model


def save_weights(model: Model, filepath: str | os.PathLike[str], overwrite: bool = True) -> None:
    """Saves the model's weights (and optimizer state) to a ``.weights.h5`` file."""
    _check_model(model, "save_weights")
    path = _target(filepath, ".weights.h5", "weights", overwrite)
    if isinstance(path, io.IOBase):
        path.write(_weights_bytes(model))
        return
    h5py = require_h5py()
    # The temporary file carries fastnet's own lock (see atomic_output); HDF5's file
    # locking would collide with it, and nobody else opens that file.
    locking = _h5_can_skip_locking(h5py)
    with atomic_output(path, lock=locking) as tmp:
        with h5py.File(tmp, "w", **({"locking": False} if locking else {})) as h5:
            _write_weights(h5, model)


def _h5_can_skip_locking(h5py):
    v = h5py.version.hdf5_version_tuple
    return v >= (1, 12, 1) or (1, 10, 7) <= v < (1, 11)


def load_weights(model: Model, filepath: str | os.PathLike[str], skip_mismatch: bool = False) -> None:
    """Loads weights (and the optimizer state, when the model is compiled) from a
    ``.weights.h5`` or ``.keras`` file written by fastnet or Keras 3.

    Everything is checked before any weight is assigned. With ``skip_mismatch=True``
    layers whose weights do not fit are left as they are, with a warning.
    """
    _check_model(model, "load_weights")
    what = _describe(filepath)
    path = os.fspath(filepath)
    if not model.built:
        raise ValueError(f"Model '{model.name}' is not built, so it has no weights to load "
                         f"into: build it first (call it on data, or model.build(input_shape))")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such file: {path!r}")
    if path.endswith(".keras"):
        with open_checked_zip(path, what) as zf:
            with open_member(zf, path, WEIGHTS_FILENAME, what, _weights_budget(model)) as f:
                inner = f"{what} ({WEIGHTS_FILENAME})"
                with _open_h5(f, inner) as h5:
                    _load_weights_from_h5(h5, model, inner, skip_mismatch=skip_mismatch)
        return
    if path.endswith(".weights.h5"):
        source = path
    elif path.endswith((".h5", ".hdf5")):
        raise ValueError(f"{what}: legacy Keras 2 .h5 files are not supported; fastnet reads "
                         f".weights.h5 and .keras files")
    else:
        raise ValueError(f"{what}: expected a file ending in '.weights.h5' or '.keras'")
    with _open_h5(source, what) as h5:
        _load_weights_from_h5(h5, model, what, skip_mismatch=skip_mismatch)


def model_to_json(model: Model, **kwargs) -> str:
    """The model's config (and compile config) as Keras's JSON string."""
    _check_model(model, "to_json")
    return _dumps(serialize_model(model), **kwargs)


def model_from_json(json_string: str, custom_objects: CustomObjects | None = None) -> Model:
    """A model (with fresh weights) from ``to_json``'s string or Keras's."""
    try:
        config = json.loads(json_string)
    except (ValueError, RecursionError) as e:
        raise ValueError(f"model_from_json expects a JSON string: {e}") from e
    return deserialize_model_config(config, custom_objects, compile=True)
