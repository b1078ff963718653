"""``pad_sequences``: a list of variable-length sequences as one padded array."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["pad_sequences"]


def pad_sequences(sequences: Sequence[Any], maxlen: int | None = None, dtype: Any = "int32",
                  padding: str = "pre", truncating: str = "pre", value: Any = 0.0) -> np.ndarray:
    """Pads (or truncates) sequences to one length, as ``keras.utils.pad_sequences``.

    Args:
        sequences: list of sequences (lists or arrays; the items may themselves be arrays
            of one shape).
        maxlen: length of the result; the longest sequence's length when None.
        dtype: type of the result (``object`` for variable-length strings).
        padding: "pre" or "post": pad before or after each sequence.
        truncating: "pre" or "post": drop values from the start or the end of sequences
            longer than ``maxlen``.
        value: the padding value.

    Returns:
        Array of shape ``(len(sequences), maxlen) + item_shape``.

    Example:
        >>> pad_sequences([[1, 2, 3], [4, 5], [6]], maxlen=2)
        array([[2, 3],
               [4, 5],
               [0, 6]], dtype=int32)
    """
    if not hasattr(sequences, "__len__"):
        raise ValueError(f"pad_sequences: sequences must be a list of sequences, received "
                         f"{type(sequences).__name__}")
    if padding not in ("pre", "post"):
        raise ValueError(f'pad_sequences: padding must be "pre" or "post", received padding={padding!r}')
    if truncating not in ("pre", "post"):
        raise ValueError(f'pad_sequences: truncating must be "pre" or "post", received truncating={truncating!r}')
    lengths = []
    item_shape: tuple = ()
    shape_found = False
    for s in sequences:
        try:
            lengths.append(len(s))
        except TypeError as e:
            raise ValueError(f"pad_sequences: sequences must be a list of sequences; found a "
                             f"{type(s).__name__} ({s!r})") from e
        if not shape_found and len(s):
            item_shape = np.asarray(s).shape[1:]
            shape_found = True
    if maxlen is None:
        maxlen = int(np.max(lengths)) if lengths else 0
    elif isinstance(maxlen, bool) or not isinstance(maxlen, (int, np.integer)) or maxlen < 0:
        raise ValueError(f"pad_sequences: maxlen must be a non-negative integer or None, received {maxlen!r}")
    maxlen = int(maxlen)
    is_str = np.issubdtype(np.dtype(dtype), np.str_) if dtype is not object else False
    if isinstance(value, str) and dtype is not object and not is_str:
        raise ValueError(f"pad_sequences: dtype {dtype} cannot hold the padding value {value!r} (a string); "
                         "use dtype=object for variable-length strings")
    out = np.full((len(sequences), maxlen) + item_shape, value, dtype=dtype)
    if maxlen == 0:
        return out
    for i, s in enumerate(sequences):
        if not len(s):
            continue
        kept = np.asarray(s[-maxlen:] if truncating == "pre" else s[:maxlen], dtype=dtype)
        if kept.shape[1:] != item_shape:
            raise ValueError(f"pad_sequences: the items of sequence {i} have shape {kept.shape[1:]}, "
                             f"expected {item_shape} like the other sequences")
        if padding == "post":
            out[i, :len(kept)] = kept
        else:
            out[i, maxlen - len(kept):] = kept
    return out
