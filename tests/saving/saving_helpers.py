"""Helpers for the saving tests: the Keras-saved reference models and file structure."""
import io
import json
import os
import zipfile

import numpy as np

from fastnet import layers, optimizers
from fastnet.models import Sequential

SAVED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data",
                     "keras_reference", "saved")
with open(os.path.join(SAVED, "index.json")) as _f:
    INDEX = {m["name"]: m["spec"] for m in json.load(_f)["models"]}
NAMES = sorted(INDEX)
RTOL, ATOL = 1e-4, 1e-5


def path(name, suffix):
    return os.path.join(SAVED, name + suffix)


def expected(name):
    d = np.load(path(name, ".expected.npz"))
    n = len([k for k in d.files if k.startswith("w_")])
    return d["x"], d["predict"], [d[f"w_{i}"] for i in range(n)]


def model_from_spec(name, compile=True):
    """The reference architecture built with fastnet's own classes (not from the file)."""
    spec = INDEX[name]
    stack = [layers.Input(shape=tuple(spec["input_shape"]))]
    for class_name, kwargs in spec["layers"]:
        stack.append(getattr(layers, class_name)(**kwargs))
    model = Sequential(stack, name=name)
    if compile:
        c = spec["compile"]
        opt = c["optimizer"]
        if isinstance(opt, list):
            opt = optimizers.deserialize({"class_name": opt[0], "config": opt[1]})
        model.compile(optimizer=opt, loss=c["loss"], metrics=c.get("metrics"))
    return model


def h5_layout(data):
    """{path: ("group", attribute names) or (shape, dtype)} of an HDF5 file's bytes or path."""
    import h5py

    src = io.BytesIO(data) if isinstance(data, bytes) else data
    out = {}
    with h5py.File(src, "r") as h:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                out[name] = (tuple(obj.shape), obj.dtype.str)
            else:
                out[name] = ("group", tuple(sorted(obj.attrs.keys())))
        h.visititems(visit)
        out[""] = ("group", tuple(sorted(h.attrs.keys())))
    return out


def h5_values(data):
    import h5py

    src = io.BytesIO(data) if isinstance(data, bytes) else data
    out = {}
    with h5py.File(src, "r") as h:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                out[name] = np.asarray(obj[()])
            else:
                out[name] = {k: (v.decode() if isinstance(v, bytes) else str(v)) for k, v in obj.attrs.items()}
        h.visititems(visit)
    return out


def archive(path_):
    """(entry names, config dict, metadata dict, weights bytes) of a .keras file."""
    with zipfile.ZipFile(path_) as z:
        return (z.namelist(), json.loads(z.read("config.json")), json.loads(z.read("metadata.json")),
                z.read("model.weights.h5"))


def strip_ids(cfg):
    if isinstance(cfg, dict):
        return {k: strip_ids(v) for k, v in cfg.items() if k != "shared_object_id"}
    if isinstance(cfg, list):
        return [strip_ids(v) for v in cfg]
    return cfg


def config_skeleton(cfg):
    """The structure of a config: keys, and the values that name classes and modules."""
    if isinstance(cfg, dict):
        out = {}
        for k, v in cfg.items():
            if k == "shared_object_id":
                continue
            if k in ("class_name", "module", "registered_name"):
                out[k] = v
            else:
                out[k] = config_skeleton(v)
        return out
    if isinstance(cfg, list):
        return [config_skeleton(v) for v in cfg]
    return type(cfg).__name__ if cfg is not None else None


def tree_diff(a, b, where=""):
    """Human-readable differences between two nested structures (empty when equal)."""
    out = []
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            if k not in a:
                out.append(f"{where}/{k}: only in the second")
            elif k not in b:
                out.append(f"{where}/{k}: only in the first")
            else:
                out += tree_diff(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.append(f"{where}: {len(a)} items vs {len(b)}")
        for i, (x, y) in enumerate(zip(a, b)):
            out += tree_diff(x, y, f"{where}[{i}]")
    elif a != b:
        out.append(f"{where}: {a!r} != {b!r}")
    return out
