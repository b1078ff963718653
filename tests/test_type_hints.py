"""The public API is annotated (PEP 484) and the annotations resolve.

fastnet's modules use ``from __future__ import annotations`` and import what only the
annotations need under ``if TYPE_CHECKING:``, so that importing fastnet pays nothing for
them. To resolve the annotations as a type checker would, each module's
``TYPE_CHECKING`` imports are run here into a copy of its namespace.
"""
import ast
import importlib
import inspect
import pathlib
import sys
import types
import typing

import pytest

import fastnet

# Modules whose ``__all__`` is the public API (classes, functions and the classes of
# exported instances, such as the activation functions).
PUBLIC_MODULES = [
    "fastnet", "fastnet.layers", "fastnet.models", "fastnet.optimizers", "fastnet.optimizers.schedules",
    "fastnet.losses", "fastnet.metrics", "fastnet.callbacks", "fastnet.saving", "fastnet.config",
    "fastnet.activations", "fastnet.initializers", "fastnet.regularizers", "fastnet.backend",
    "fastnet.random", "fastnet.utils", "fastnet.distribution",
]
# Dunder methods that are part of a class's public surface.
PUBLIC_DUNDERS = ("__init__", "__call__")
SKIPPED_PARAMS = ("self", "cls")

_NAMESPACES: dict = {}


def _type_checking_namespace(module_name):
    """The module's globals plus what its ``if TYPE_CHECKING:`` blocks import."""
    if module_name in _NAMESPACES:
        return _NAMESPACES[module_name]
    module = sys.modules[module_name]
    ns = dict(vars(module))
    tree = ast.parse(pathlib.Path(module.__file__).read_text())
    for node in tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            code = compile(ast.Module(body=node.body, type_ignores=[]), module.__file__, "exec")
            exec(code, ns)  # imports only
    _NAMESPACES[module_name] = ns
    return ns


def _public_objects():
    """(qualified name, object) for every public class and function, once each."""
    seen, out = set(), []
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if isinstance(obj, types.ModuleType):
                continue
            if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                obj = type(obj)  # an exported instance: its class is public
            if not getattr(obj, "__module__", "").startswith("fastnet") or id(obj) in seen:
                continue
            seen.add(id(obj))
            out.append((f"{module_name}.{name}", obj))
    return out


def _functions_of(cls):
    """(name, function) for the public methods, properties and dunders a class has,
    including those it inherits from fastnet base classes."""
    found = {}
    for klass in cls.__mro__:
        if not klass.__module__.startswith("fastnet"):
            continue
        for name, attr in vars(klass).items():
            if name in found or (name.startswith("_") and name not in PUBLIC_DUNDERS):
                continue
            if isinstance(attr, property):
                fns = [(f"{name}.getter", attr.fget)]
                if attr.fset is not None:
                    fns.append((f"{name}.setter", attr.fset))
                found[name] = fns
            elif isinstance(attr, (staticmethod, classmethod)):
                found[name] = [(name, attr.__func__)]
            elif inspect.isfunction(attr):
                found[name] = [(name, attr)]
    return [fn for fns in found.values() for fn in fns]


def _targets():
    out = []
    for qualname, obj in _public_objects():
        if inspect.isclass(obj):
            out.extend((f"{qualname}.{name}", fn) for name, fn in _functions_of(obj))
        else:
            out.append((qualname, obj))
    return out


def _missing_annotations(fn):
    sig = inspect.signature(fn)
    missing = [p.name for p in sig.parameters.values()
               if p.name not in SKIPPED_PARAMS
               and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
               and p.annotation is inspect.Parameter.empty]
    if sig.return_annotation is inspect.Signature.empty:
        missing.append("return")
    return missing


TARGETS = _targets()


def test_the_walk_covers_the_public_api():
    names = {name for name, _ in TARGETS}
    for expected in ["fastnet.Sequential.fit", "fastnet.Sequential.add", "fastnet.Sequential.layers.getter",
                     "fastnet.Model.save", "fastnet.layers.Dense.__init__", "fastnet.layers.Conv2D.call",
                     "fastnet.layers.LSTM.compute_output_shape", "fastnet.optimizers.Adam.apply_gradients",
                     "fastnet.optimizers.Adam.learning_rate.setter", "fastnet.losses.get",
                     "fastnet.metrics.AUC.result", "fastnet.callbacks.EarlyStopping.on_epoch_end",
                     "fastnet.saving.load_model", "fastnet.config.set_floatx",
                     "fastnet.callbacks.ModelCheckpoint.__init__", "fastnet.utils.to_categorical",
                     "fastnet.distribution.DataParallel.scope"]:
        assert expected in names
    assert len(TARGETS) > 500


def test_every_public_signature_is_annotated():
    missing = [f"{name}({', '.join(params)})" for name, fn in TARGETS if (params := _missing_annotations(fn))]
    assert not missing, f"{len(missing)} public functions lack annotations:\n" + "\n".join(missing)


def test_every_annotation_resolves():
    failures = []
    for name, fn in TARGETS:
        ns = _type_checking_namespace(inspect.unwrap(fn).__module__)
        try:
            typing.get_type_hints(fn, globalns=ns)
        except Exception as exc:  # report them all, not the first
            failures.append(f"{name}: {type(exc).__name__}: {exc}")
    assert not failures, f"{len(failures)} annotations do not resolve:\n" + "\n".join(failures)


@pytest.mark.parametrize("name, expected", [
    ("fastnet.layers.Dense.__init__", {"units": int, "use_bias": bool, "return": type(None)}),
    ("fastnet.Sequential.count_params", {"return": int}),
    ("fastnet.config.floatx", {"return": str}),
])
def test_hints_say_what_the_code_does(name, expected):
    fn = dict(TARGETS)[name]
    hints = typing.get_type_hints(fn, globalns=_type_checking_namespace(fn.__module__))
    for key, value in expected.items():
        assert hints[key] == value, (name, key, hints[key])


def test_annotations_cost_nothing_at_import():
    """Nothing the annotations alone need is imported with fastnet."""
    import subprocess

    code = ("import sys, fastnet; print(' '.join(m for m in ('fastnet._typing', 'numpy.typing', "
            "'fastnet.callbacks', 'fastnet.losses', 'fastnet.metrics', 'fastnet.optimizers') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert loaded == []


def test_the_package_ships_py_typed():
    package_dir = pathlib.Path(fastnet.__file__).parent
    assert (package_dir / "py.typed").is_file()
