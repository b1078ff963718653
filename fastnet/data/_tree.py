"""Nested structures of arrays (tuples, lists, dicts, leaves), as the data pipeline carries them."""
from __future__ import annotations

import numpy as np

__all__ = ["flatten", "pack_as", "map_structure", "is_nested", "to_numpy"]


def is_nested(s) -> bool:
    return isinstance(s, (tuple, list, dict))


def flatten(s) -> list:
    """The leaves of ``s`` in a fixed order (dict keys sorted, as Keras orders them)."""
    if isinstance(s, dict):
        out = []
        for k in sorted(s):
            out += flatten(s[k])
        return out
    if isinstance(s, (tuple, list)):
        out = []
        for v in s:
            out += flatten(v)
        return out
    return [s]


def pack_as(structure, leaves):
    """Rebuilds ``structure`` with ``leaves`` (in :func:`flatten` order)."""
    return _build(structure, iter(leaves))


def _build(s, it):
    # A module-level function, not a closure calling itself: that closure would be a
    # reference cycle holding the leaves (whole batches) until the garbage collector ran.
    if isinstance(s, dict):
        built = {k: _build(s[k], it) for k in sorted(s)}
        return {k: built[k] for k in s}
    if isinstance(s, tuple):
        items = [_build(v, it) for v in s]
        return type(s)(*items) if hasattr(s, "_fields") else tuple(items)
    if isinstance(s, list):
        return [_build(v, it) for v in s]
    return next(it)


def map_structure(fn, *structures):
    """Applies ``fn`` leaf by leaf over structures of the same shape."""
    first = structures[0]
    return pack_as(first, [fn(*leaves) for leaves in zip(*(flatten(s) for s in structures))])


def to_numpy(leaf):
    """A numpy view of an array-like leaf: ndarray as is, tensors through ``.numpy()``."""
    if isinstance(leaf, np.ndarray):
        return leaf
    if hasattr(leaf, "detach") and hasattr(leaf, "cpu"):  # torch tensor
        return leaf.detach().cpu().numpy()
    if hasattr(leaf, "numpy") and not isinstance(leaf, np.generic):  # tf tensor
        return np.asarray(leaf.numpy())
    if hasattr(leaf, "to_numpy") and type(leaf).__module__.startswith("pandas"):
        return leaf.to_numpy()
    return np.asarray(leaf)
