"""Registering custom classes and functions by name, as ``keras.saving`` does.

``@register_keras_serializable(package="MyPackage")`` records a class or function under
``"MyPackage>Name"``; saved configs then name it so, and loading finds it without
``custom_objects``. ``get_custom_objects()`` is the global dict (add entries to it
directly), ``custom_object_scope({...})`` adds entries for the duration of a ``with``.
Lookups during loading consult, in order: ``custom_objects=``, the active scopes, the
global dict.
"""
from __future__ import annotations

import inspect
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = ["register_keras_serializable", "get_custom_objects", "get_registered_name", "get_registered_object",
           "CustomObjectScope", "custom_object_scope"]

_GLOBAL_CUSTOM_OBJECTS: dict = {}
_GLOBAL_CUSTOM_NAMES: dict = {}
_SCOPES = threading.local()


def register_keras_serializable(package: str = "Custom", name: str | None = None) -> Callable[[Any], Any]:
    """Decorator registering a class or function under ``"package>name"`` (``name``
    defaults to its ``__name__``). A class must define ``get_config``."""
    if not isinstance(package, str) or ">" in package:
        raise ValueError(f"register_keras_serializable: `package` must be a string without '>', "
                         f"received {package!r}")

    def decorator(arg):
        class_name = name if name is not None else arg.__name__
        registered = f"{package}>{class_name}"
        if inspect.isclass(arg) and not hasattr(arg, "get_config"):
            raise ValueError("Cannot register a class that does not have a get_config() method.")
        _GLOBAL_CUSTOM_OBJECTS[registered] = arg
        _GLOBAL_CUSTOM_NAMES[arg] = registered
        return arg

    return decorator


def get_custom_objects() -> dict:
    """The global dict of custom objects (name -> class or function); mutate it to register."""
    return _GLOBAL_CUSTOM_OBJECTS


def get_registered_name(obj: Any) -> str:
    """``"package>name"`` for a registered object, else its ``__name__``."""
    if obj in _GLOBAL_CUSTOM_NAMES:
        return _GLOBAL_CUSTOM_NAMES[obj]
    return getattr(obj, "__name__", type(obj).__name__)


def _scopes():
    s = getattr(_SCOPES, "stack", None)
    if s is None:
        s = _SCOPES.stack = []
    return s


def merged(custom_objects: dict | None = None) -> dict:
    """The objects a lookup sees: the global dict, then active scopes, then ``custom_objects``."""
    stack = _scopes()
    if not _GLOBAL_CUSTOM_OBJECTS and not stack:
        return custom_objects or {}
    out = dict(_GLOBAL_CUSTOM_OBJECTS)
    for scope in stack:
        out.update(scope)
    if custom_objects:
        out.update(custom_objects)
    return out


def get_registered_object(name: str, custom_objects: dict | None = None, module_objects: dict | None = None) -> Any:
    """The object registered (or passed) under ``name``, or None."""
    objs = merged(custom_objects)
    if name in objs:
        return objs[name]
    if module_objects and name in module_objects:
        return module_objects[name]
    return None


class CustomObjectScope:
    """``with CustomObjectScope({"MyLayer": MyLayer}):`` makes the objects visible to loading."""

    def __init__(self, custom_objects: dict | None = None) -> None:
        self.custom_objects = dict(custom_objects or {})

    def __enter__(self) -> CustomObjectScope:
        _scopes().append(self.custom_objects)
        return self

    def __exit__(self, *exc) -> None:
        stack = _scopes()
        if stack and stack[-1] is self.custom_objects:
            stack.pop()


custom_object_scope = CustomObjectScope
