"""TextVectorization: strings to token indices or bag-of-words vectors."""
from __future__ import annotations

import itertools
import re
import string
from typing import TYPE_CHECKING

import numpy as np

from fastnet import config
from fastnet.layers.preprocessing._base import (
    PreprocessingLayer,
    as_string_array,
    check_output_mode,
    iter_batches,
    refuse_sparse,
)
from fastnet.layers.preprocessing.lookup import StringLookup

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from fastnet._typing import Config, Shape, ShapeLike

__all__ = ["TextVectorization"]

# Keras lowercases ASCII letters only (its string op runs without a text encoding) and strips
# ASCII punctuation; translate tables do both in one pass per string.
_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
_STRIP = str.maketrans("", "", string.punctuation)
_LOWER_STRIP = str.maketrans(string.ascii_uppercase, string.ascii_lowercase, string.punctuation)
# The whitespace Keras splits on: ASCII spaces, tabs, newlines, vertical tabs, form feeds, returns.
_WS = re.compile(r"[ \t\n\v\f\r]+")

_STANDARDIZE = ("lower_and_strip_punctuation", "lower", "strip_punctuation")
_SPLIT = ("whitespace", "character")


def _whitespace_split(s):
    # str.split() also splits on \x1c-\x1f and non-ASCII spaces, which Keras does not; it is
    # used only when the string has neither.
    if s.isascii() and not ("\x1c" in s or "\x1d" in s or "\x1e" in s or "\x1f" in s):
        return s.split()
    return [t for t in _WS.split(s) if t]


def _ngrams(tokens, widths):
    out = []
    for n in widths:
        if n == 1:
            out.extend(tokens)
        elif n <= len(tokens):
            out.extend(" ".join(tokens[i:i + n]) for i in range(len(tokens) - n + 1))
    return out


class TextVectorization(PreprocessingLayer):
    """Turns strings into sequences of token indices or into bag-of-words vectors.

    Each string is standardized (lowercased, ASCII punctuation removed), split into tokens
    (on whitespace), optionally extended with n-grams, and looked up in a vocabulary learned
    by ``adapt`` or given. Index 0 is the padding/mask token "" and 1 the OOV token "[UNK]".

    Args:
        max_tokens: maximum vocabulary size (padding and OOV included).
        standardize: None, "lower_and_strip_punctuation", "lower", "strip_punctuation", or a
            callable taking a numpy array of str and returning one of the same shape.
        split: None, "whitespace", "character", or a callable taking a 1-D numpy array of str
            and returning one list of tokens per string.
        ngrams: None, an int n (all n-grams of 1..n tokens) or a tuple of widths.
        output_mode: "int" (int64 token indices), "multi_hot", "count", "tf_idf" (one
            vector of vocabulary size per string) or "one_hot" (with split=None).
        output_sequence_length: "int" mode: pad with 0 or truncate every row to this length
            (else rows are padded to the longest).
        pad_to_max_tokens: encoded vectors have ``max_tokens`` columns.
        vocabulary: list of tokens or a path to a file with one per line.
        idf_weights: weights for "tf_idf" with a given vocabulary.
        sparse, ragged: must be False.
        encoding: text encoding of byte inputs.

    Input shape:
        ``(batch,)`` or ``(batch, 1)`` strings (a single string is also accepted).

    Output shape:
        "int": ``(batch, output_sequence_length)`` (or the longest row); other modes:
        ``(batch, vocabulary_size)`` (``max_tokens`` with ``pad_to_max_tokens``).
    """

    def __init__(self, max_tokens: int | None = None,
                 standardize: str | Callable[[Any], Any] | None = "lower_and_strip_punctuation",
                 split: str | Callable[[Any], Any] | None = "whitespace", ngrams: int | tuple[int, ...] | None = None,
                 output_mode: str = "int", output_sequence_length: int | None = None,
                 pad_to_max_tokens: bool = False, vocabulary: Any = None, idf_weights: Any = None,
                 sparse: bool = False, ragged: bool = False, encoding: str = "utf-8", name: str | None = None,
                 **kwargs) -> None:
        if standardize is not None and not callable(standardize) and standardize not in _STANDARDIZE:
            raise ValueError(f"TextVectorization: unknown standardize {standardize!r}; valid values: "
                             f"{list(_STANDARDIZE)}, None or a callable")
        if split is not None and not callable(split) and split not in _SPLIT:
            raise ValueError(f"TextVectorization: unknown split {split!r}; valid values: {list(_SPLIT)}, "
                             f"None or a callable")
        output_mode = check_output_mode("TextVectorization", output_mode,
                                        ("int", "one_hot", "multi_hot", "count", "tf_idf"))
        if isinstance(ngrams, list):
            ngrams = tuple(ngrams)
        if not (ngrams is None or (isinstance(ngrams, int) and not isinstance(ngrams, bool))
                or (isinstance(ngrams, tuple) and all(isinstance(n, int) for n in ngrams))):
            raise ValueError(f"TextVectorization: `ngrams` must be None, an integer, or a tuple of "
                             f"integers. Received: ngrams={ngrams}")
        if output_mode == "int" and not (output_sequence_length is None
                                         or isinstance(output_sequence_length, (int, np.integer))):
            raise ValueError(f"TextVectorization: `output_sequence_length` must be None or an integer "
                             f"with output_mode='int'. Received: output_sequence_length={output_sequence_length}")
        if output_mode != "int" and output_sequence_length is not None:
            raise ValueError(f"TextVectorization: `output_sequence_length` must not be set when "
                             f"output_mode is not 'int'. Received: output_sequence_length={output_sequence_length}")
        refuse_sparse("TextVectorization", sparse, ragged)
        has_input_vocabulary = kwargs.pop("has_input_vocabulary", vocabulary is not None)
        vocabulary_size = kwargs.pop("vocabulary_size", None)
        super().__init__(name=name, **kwargs)
        self._max_tokens = max_tokens
        self._standardize = standardize
        self._split = split
        self._ngrams_arg = ngrams
        self._ngrams = tuple(range(1, ngrams + 1)) if isinstance(ngrams, int) else ngrams
        self._output_mode = output_mode
        self._output_sequence_length = None if output_sequence_length is None else int(output_sequence_length)
        self._encoding = encoding
        self._has_input_vocabulary = has_input_vocabulary
        # The vocabulary lives in a StringLookup, as in Keras (whose files keep its state under
        # the attribute name "_lookup_layer").
        self._lookup_layer = StringLookup(
            max_tokens=max_tokens, vocabulary=vocabulary, idf_weights=idf_weights,
            pad_to_max_tokens=pad_to_max_tokens, mask_token="", output_mode=output_mode,
            has_input_vocabulary=has_input_vocabulary, encoding=encoding, vocabulary_size=vocabulary_size)
        self.built = True

    # ------------------------------------------------------------------ properties
    @property
    def compute_dtype(self) -> str:
        return "string"

    @property
    def output_dtype(self) -> str:
        return "int64" if self._output_mode == "int" else config.floatx()

    def build(self, input_shape: ShapeLike | None = None) -> None:
        self.built = True

    def vocabulary_size(self) -> int:
        """Size of the vocabulary, padding and OOV tokens included."""
        return self._lookup_layer.vocabulary_size()

    def get_vocabulary(self, include_special_tokens: bool = True) -> list[str]:
        """The vocabulary by index ("" and "[UNK]" first unless ``include_special_tokens=False``)."""
        return self._lookup_layer.get_vocabulary(include_special_tokens)

    def set_vocabulary(self, vocabulary: Any, idf_weights: Any = None) -> None:
        """Sets the vocabulary (a list of tokens or a file path) and, for "tf_idf", the weights."""
        self._lookup_layer.set_vocabulary(vocabulary, idf_weights=idf_weights)

    # ------------------------------------------------------------------ text processing
    def _prepare(self, inputs):
        if isinstance(inputs, np.ndarray) and inputs.dtype.kind == "S" and self._encoding != "utf-8":
            return np.char.decode(inputs, self._encoding)
        try:
            return as_string_array(inputs)
        except TypeError as e:
            raise TypeError(f'Layer "{self.name}" (TextVectorization) expects strings: {e}') from None

    def _standardized(self, x):
        std = self._standardize
        if std is None:
            return x
        if callable(std):
            out = np.asarray(std(x))
            if out.shape != x.shape:
                raise ValueError(f'Layer "{self.name}" (TextVectorization): the standardize callable '
                                 f"returned shape {out.shape} for input shape {x.shape}")
            return as_string_array(out)
        table = {"lower": _LOWER, "strip_punctuation": _STRIP, "lower_and_strip_punctuation": _LOWER_STRIP}[std]
        flat = [s.translate(table) for s in x.ravel().tolist()]
        return np.array(flat, dtype=str).reshape(x.shape) if flat else x

    def _tokens(self, inputs):
        """Standardized, split and n-grammed input: a list of token lists (split) or an array
        of str (split=None)."""
        x = self._standardized(inputs)
        if self._split is None:
            if self._ngrams is not None:
                flat = [_ngrams([s], self._ngrams) for s in x.ravel().tolist()]
                return flat
            return x
        if x.ndim > 1:
            if x.shape[-1] != 1:
                raise ValueError(f'Layer "{self.name}" (TextVectorization): to split strings, the input '
                                 f"must be of rank 1 or have a last axis of size 1. Received: "
                                 f"inputs.shape={x.shape}")
            x = x[..., 0]
        flat = x.reshape(-1)
        if self._split == "whitespace":
            rows = [_whitespace_split(s) for s in flat.tolist()]
        elif self._split == "character":
            rows = [list(s) for s in flat.tolist()]
        else:
            rows = [list(np.asarray(r).ravel().tolist()) if not isinstance(r, list) else r
                    for r in self._split(flat)]
            rows = [[t.decode("utf-8") if isinstance(t, bytes) else str(t) for t in r] for r in rows]
        if self._ngrams is not None:
            rows = [_ngrams(r, self._ngrams) for r in rows]
        return rows

    # ------------------------------------------------------------------ adapt
    def adapt(self, data: Any, batch_size: int | None = None, steps: int | None = None) -> None:
        """Learns the vocabulary from strings: an array or list of strings (one document each),
        or an iterable of batches (``fastnet.data.Dataset``)."""
        lookup = self._lookup_layer
        lookup.reset_state()
        if isinstance(data, (list, tuple, np.ndarray, str, bytes)):
            batches = [data]
        else:
            batches = iter_batches(data, steps=steps)
        for batch in batches:
            self.update_state(batch)
        self.finalize_state()

    def update_state(self, data: Any) -> None:
        lookup = self._lookup_layer
        if lookup._has_input_vocabulary:
            raise ValueError(f"Cannot adapt layer '{self.name}' (TextVectorization) after setting a "
                             f"static vocabulary (the `vocabulary` argument or set_vocabulary())")
        x = self._prepare(data)
        if x.ndim == 0:
            x = x.reshape(1)
        toks = self._tokens(x)
        if isinstance(toks, np.ndarray):
            lookup._update_counts(toks.reshape(toks.shape[0], -1) if toks.ndim > 1 else toks.reshape(-1, 1))
            return
        counts = lookup._counts
        for row in toks:
            counts.update(row)
        if lookup.output_mode == "tf_idf":
            for row in toks:
                lookup._doc_counts.update(set(row))
            lookup._num_documents += len(toks)

    def finalize_state(self) -> None:
        self._lookup_layer.finalize_state()

    def reset_state(self) -> None:
        self._lookup_layer.reset_state()

    # ------------------------------------------------------------------ call
    def forward(self, ctx: Any, inputs: Any, training: bool = False, **kwargs) -> Any:
        x = inputs
        scalar = x.ndim == 0
        if scalar:
            x = x.reshape(1)
        toks = self._tokens(x)
        lookup = self._lookup_layer
        if self._split is None and self._ngrams is None:
            out = lookup.forward(ctx, toks)
            width = self._output_sequence_length
            if self._output_mode == "int" and width is not None and out.ndim >= 1:
                out = out[..., :width]
                if out.shape[-1] < width:
                    pad = [(0, 0)] * (out.ndim - 1) + [(0, width - out.shape[-1])]
                    out = np.pad(out, pad)
            return out[0] if scalar else out
        if self._split is None:
            lead = x.shape[:-1] if x.ndim > 1 and x.shape[-1] == 1 else x.shape
        else:
            lead = x.shape[:-1] if x.ndim > 1 else x.shape
        rows = toks
        lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
        total = int(lengths.sum())
        if self._output_mode == "int":
            # Token ids straight from the token lists (one OOV slot, the mask "" at 0).
            ids = lookup.lookup_tokens(list(itertools.chain.from_iterable(rows)))
            ids[ids < 0] = lookup._oov_start_index()
            width = self._output_sequence_length
            if width is None:
                width = int(lengths.max()) if len(rows) else 0
            out = np.zeros((len(rows), width), dtype=np.int64)
            cols = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
            keep = cols < width
            out[np.repeat(np.arange(len(rows)), lengths)[keep], cols[keep]] = ids[keep]
            out = out.reshape(tuple(lead) + (width,))
            return out[0] if scalar else out
        if self._output_mode == "one_hot":
            raise ValueError(f'Layer "{self.name}" (TextVectorization): output_mode="one_hot" encodes one '
                             f"token per string: use split=None and ngrams=None")
        # Bag-of-words modes: count each row's token ids into one vector; the mask token ""
        # (from a custom split) is dropped, OOV tokens go to slot 0.
        if lookup._frozen_vocab_size is None and not lookup.pad_to_max_tokens:
            lookup.forward(ctx, np.zeros((1, 1), dtype="<U1"))  # raises: no vocabulary yet
        n = len(rows)
        depth = lookup.max_tokens if lookup.pad_to_max_tokens else lookup._frozen_vocab_size
        flat = list(itertools.chain.from_iterable(rows))
        ids = lookup.lookup_tokens(flat)
        valid = np.fromiter(map(bool, flat), dtype=bool, count=total)
        ids[ids < 0] = lookup._oov_start_index()
        r_idx = np.repeat(np.arange(n), lengths)[valid]
        counts = np.bincount(r_idx * depth + ids[valid], minlength=n * depth).reshape(n, depth)
        dtype = config.floatx()
        if self._output_mode == "multi_hot":
            out = (counts > 0).astype(dtype)
        elif self._output_mode == "count":
            out = counts.astype(dtype)
        else:
            out = (counts * np.asarray(lookup.idf_weights, dtype=np.float64)[:depth]).astype(dtype)
        out = out.reshape(tuple(lead) + (depth,))
        return out[0] if scalar else out

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape:
        shape = tuple(input_shape)
        if self._output_mode == "int":
            if self._split is None and self._ngrams is None:
                if self._output_sequence_length is not None and shape:
                    return shape[:-1] + (self._output_sequence_length,)
                return shape
            return (shape[0] if shape else None, self._output_sequence_length)
        depth = self._max_tokens if self._lookup_layer.pad_to_max_tokens else self._lookup_layer._frozen_vocab_size
        if self._split is None and self._ngrams is None:
            return self._lookup_layer.compute_output_shape(shape if len(shape) > 1 else shape + (1,))
        return (shape[0] if shape else None, depth)

    # ------------------------------------------------------------------ config and state
    def get_config(self) -> Config:
        lookup = self._lookup_layer
        vocab = lookup.input_vocabulary
        idf = lookup.input_idf_weights
        cfg = super().get_config()
        cfg.update({
            "max_tokens": lookup.max_tokens,
            "standardize": self._standardize,
            "split": self._split,
            "ngrams": self._ngrams_arg,
            "output_mode": self._output_mode,
            "output_sequence_length": self._output_sequence_length,
            "pad_to_max_tokens": lookup.pad_to_max_tokens,
            "sparse": False,
            "ragged": False,
            "vocabulary": (vocab.tolist() if isinstance(vocab, np.ndarray) else
                           list(vocab) if vocab is not None else None),
            "idf_weights": idf.tolist() if isinstance(idf, np.ndarray) else idf,
            "encoding": self._encoding,
            "vocabulary_size": self.vocabulary_size(),
        })
        return cfg

    @classmethod
    def from_config(cls, config_dict: Config) -> TextVectorization:
        cfg = dict(config_dict)
        if isinstance(cfg.get("ngrams"), list):
            cfg["ngrams"] = tuple(cfg["ngrams"])
        return cls(**cfg)

    def get_build_config(self) -> Config | None:
        return {"input_shape": list(self._build_shape)} if self._build_shape is not None else None

    def build_from_config(self, build_config: Config) -> None:
        self.built = True

    def save_own_variables(self, store: Any) -> None:
        self._lookup_layer.save_own_variables(store)

    def load_own_variables(self, store: Any) -> None:
        self._lookup_layer.load_own_variables(store)

    def save_assets(self, dir_path: str) -> None:
        self._lookup_layer.save_assets(dir_path)

    def load_assets(self, dir_path: str) -> None:
        self._lookup_layer.load_assets(dir_path)
