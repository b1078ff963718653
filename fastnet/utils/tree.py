"""Nested structures of lists, tuples and dicts: flatten, rebuild, map.

Dicts are traversed in sorted key order, as Keras's tree utilities do, so a structure
flattens to the same order wherever it was built.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["flatten", "pack_sequence_as", "map_structure", "is_nested"]


def is_nested(x: Any) -> bool:
    return isinstance(x, (list, tuple, dict))


def flatten(x: Any) -> list[Any]:
    """The leaves of ``x`` in order (None is a leaf)."""
    out: list[Any] = []
    _flatten_into(x, out)
    return out


def _flatten_into(x, out):
    if isinstance(x, (list, tuple)):
        for v in x:
            _flatten_into(v, out)
    elif isinstance(x, dict):
        for k in sorted(x):
            _flatten_into(x[k], out)
    else:
        out.append(x)


def pack_sequence_as(structure: Any, flat: list[Any]) -> Any:
    """Rebuilds ``structure`` with the leaves of ``flat`` (same count, same order)."""
    it = iter(flat)
    out = _pack(structure, it)
    rest = list(it)
    if rest:
        raise ValueError(f"pack_sequence_as: {len(rest)} leaves left over for the structure {structure!r}")
    return out


def _pack(s, it):
    if isinstance(s, tuple) and hasattr(s, "_fields"):
        return type(s)(*[_pack(v, it) for v in s])
    if isinstance(s, (list, tuple)):
        return type(s)(_pack(v, it) for v in s)
    if isinstance(s, dict):
        return _pack_dict(s, it)
    try:
        return next(it)
    except StopIteration:
        raise ValueError("pack_sequence_as: not enough leaves for the structure") from None


def _pack_dict(s, it):
    values = {k: _pack(s[k], it) for k in sorted(s)}
    return {k: values[k] for k in s}


def map_structure(fn: Callable[[Any], Any], x: Any) -> Any:
    """``x`` with ``fn`` applied to every leaf."""
    return pack_sequence_as(x, [fn(v) for v in flatten(x)])
