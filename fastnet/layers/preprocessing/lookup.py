"""Vocabulary lookups: StringLookup and IntegerLookup (and their shared IndexLookup)."""
from __future__ import annotations

import collections
import itertools
import os
from typing import TYPE_CHECKING

import numpy as np

from fastnet import config
from fastnet.layers.preprocessing._base import (
    PreprocessingLayer,
    as_string_array,
    check_output_mode,
    encode_categorical,
    encoded_shape,
    iter_batches,
    refuse_sparse,
)
from fastnet.layers.preprocessing.numerical import hash_strings, values_as_bytes

if TYPE_CHECKING:
    from typing import Any

    from fastnet._typing import Config, Shape, ShapeLike

__all__ = ["IndexLookup", "StringLookup", "IntegerLookup"]

VOCABULARY_FILENAME = "vocabulary.txt"


class IndexLookup(PreprocessingLayer):
    """Maps tokens to indices in a vocabulary (or back with ``invert=True``).

    Indices: the mask token (when set, "int" output) is 0, then ``num_oov_indices`` slots for
    out-of-vocabulary tokens, then the vocabulary in order. StringLookup and IntegerLookup
    are the public classes.
    """

    _vocab_kind = "string"

    def __init__(self, max_tokens: int | None, num_oov_indices: int, mask_token: Any, oov_token: Any,
                 vocabulary: Any = None, idf_weights: Any = None, invert: bool = False,
                 output_mode: str = "int", sparse: bool = False, pad_to_max_tokens: bool = False,
                 oov_method: str = "floormod", salt: Any = None, name: str | None = None,
                 **kwargs) -> None:
        cls = type(self).__name__
        if max_tokens is not None and max_tokens <= 1:
            raise ValueError(f"{cls}: if set, `max_tokens` must be greater than 1. Received: "
                             f"max_tokens={max_tokens}")
        if pad_to_max_tokens and max_tokens is None:
            raise ValueError(f"{cls}: pad_to_max_tokens=True needs `max_tokens`. Received: max_tokens=None")
        if num_oov_indices < 0:
            raise ValueError(f"{cls}: `num_oov_indices` must be >= 0. Received: num_oov_indices={num_oov_indices}")
        if oov_method not in ("floormod", "farmhash"):
            raise ValueError(f"{cls}: unknown oov_method {oov_method!r}; valid values: ['floormod', 'farmhash']")
        if salt is not None:
            if self._vocab_kind == "int" and oov_method != "farmhash":
                raise ValueError(f"{cls}: `salt` can only be used with oov_method='farmhash'. "
                                 f"Received: oov_method={oov_method}")
            if isinstance(salt, (tuple, list)) and len(salt) == 2:
                salt = [int(salt[0]), int(salt[1])]
            elif isinstance(salt, (int, np.integer)):
                salt = [int(salt), int(salt)]
            else:
                raise ValueError(f"{cls}: `salt` must be an int or a pair of ints. Received: salt={salt}")
        output_mode = check_output_mode(cls, output_mode, ("int", "one_hot", "multi_hot", "count", "tf_idf"))
        if invert and output_mode != "int":
            raise ValueError(f"{cls}: `output_mode` must be 'int' when `invert` is true. "
                             f"Received: output_mode={output_mode}")
        refuse_sparse(cls, sparse)
        if idf_weights is not None and output_mode != "tf_idf":
            raise ValueError(f"{cls}: `idf_weights` is used only with output_mode='tf_idf'. Received: "
                             f"idf_weights={idf_weights} and output_mode={output_mode}")
        self._frozen_vocab_size = kwargs.pop("vocabulary_size", None)
        has_input_vocabulary = kwargs.pop("has_input_vocabulary", vocabulary is not None)
        kwargs.pop("vocabulary_dtype", None)
        kwargs.pop("dtype", None)
        super().__init__(name=name, **kwargs)
        self.invert = bool(invert)
        self.max_tokens = max_tokens
        self.num_oov_indices = int(num_oov_indices)
        self.mask_token = mask_token
        self.oov_token = oov_token
        self.output_mode = output_mode
        self.sparse = False
        self.pad_to_max_tokens = bool(pad_to_max_tokens)
        self.oov_method = oov_method
        self.salt = salt
        # A vocabulary file path is read now and saved as an asset, as Keras does.
        self.input_vocabulary = vocabulary if not isinstance(vocabulary, str) else None
        self.input_idf_weights = idf_weights
        self._has_input_vocabulary = bool(has_input_vocabulary)
        self._tokens = []          # the learned/given vocabulary, special tokens excluded
        self._index = {}           # token -> index
        self._sorted_keys = None   # IntegerLookup: sorted vocabulary ints and their indices
        self.idf_weights = None
        self._reset_counts()
        if output_mode == "tf_idf" and self._has_input_vocabulary and idf_weights is None and \
                not isinstance(vocabulary, str):
            raise ValueError(f"{cls}: with a `vocabulary` and output_mode='tf_idf', `idf_weights` "
                             f"must be given too")
        if vocabulary is not None:
            self.set_vocabulary(vocabulary, idf_weights)
        self.built = True

    # ------------------------------------------------------------------ indices
    def _oov_start_index(self):
        return 1 if self.mask_token is not None and self.output_mode == "int" else 0

    def _token_start_index(self):
        return self._oov_start_index() + self.num_oov_indices

    def vocabulary_size(self) -> int:
        """Size of the vocabulary, mask and OOV slots included."""
        return len(self._tokens) + self._token_start_index()

    def get_vocabulary(self, include_special_tokens: bool = True) -> list:
        """The vocabulary by index: [mask token], OOV token(s), then the tokens."""
        vocab = [self.oov_token] * self._token_start_index() + list(self._tokens)
        if self.mask_token is not None and self.output_mode == "int":
            vocab[0] = self.mask_token
        if not include_special_tokens:
            vocab = vocab[self._token_start_index():]
        return vocab

    # ------------------------------------------------------------------ vocabulary
    def _convert_vocab(self, values):
        raise NotImplementedError

    def _read_vocab_file(self, path):
        if not os.path.isfile(path):
            raise ValueError(f"{type(self).__name__}: vocabulary file {path!r} does not exist")
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
        while lines and lines[-1] == "":
            lines.pop()
        return lines

    def set_vocabulary(self, vocabulary: Any, idf_weights: Any = None) -> None:
        """Sets the vocabulary (and, for "tf_idf", the idf weights).

        Args:
            vocabulary: a list/array of tokens, or the path of a text file with one token per
                line. It may start with the special tokens (mask, OOV) in index order; they are
                recognised and not repeated.
            idf_weights: one weight per vocabulary entry ("tf_idf" only).
        """
        cls = type(self).__name__
        if self.output_mode == "tf_idf":
            if idf_weights is None:
                raise ValueError(f"{cls}: `idf_weights` must be set when output_mode='tf_idf'")
        elif idf_weights is not None:
            raise ValueError(f"{cls}: `idf_weights` is used only with output_mode='tf_idf'. Received: "
                             f"output_mode={self.output_mode} and idf_weights={idf_weights}")
        if isinstance(vocabulary, str):
            vocabulary = self._read_vocab_file(vocabulary)
        vocabulary = self._convert_vocab(vocabulary)
        if len(vocabulary) == 0:
            raise ValueError(f"{cls}: cannot set an empty vocabulary")
        oov_start = self._oov_start_index()
        token_start = self._token_start_index()
        special = [self.mask_token] * oov_start + [self.oov_token] * self.num_oov_indices
        found_special = vocabulary[:token_start] == special
        tokens = vocabulary[token_start:] if found_special else vocabulary
        counts = collections.Counter(tokens)
        repeated = [t for t, c in counts.items() if c > 1]
        if repeated:
            raise ValueError(f"{cls}: the vocabulary has repeated terms: {repeated}")
        if self.mask_token is not None and self.mask_token in counts:
            raise ValueError(f"{cls}: found the mask token {self.mask_token!r} at an unexpected place in "
                             f"the vocabulary (index {vocabulary.index(self.mask_token)}). The vocabulary "
                             f"need not include the mask and OOV tokens; if it does, they must come "
                             f"first, in this order: {special}")
        if self.oov_token is not None and self.invert and self.oov_token in counts:
            raise ValueError(f"{cls}: found the OOV token {self.oov_token!r} at an unexpected place in "
                             f"the vocabulary (index {vocabulary.index(self.oov_token)}). The vocabulary "
                             f"need not include the mask and OOV tokens; if it does, they must come "
                             f"first, in this order: {special}")
        new_size = token_start + len(tokens)
        if self.max_tokens is not None and new_size > self.max_tokens:
            raise ValueError(f"{cls}: vocabulary of size {new_size} is larger than max_tokens="
                             f"{self.max_tokens}")
        self._set_tokens(tokens)
        if self.output_mode == "tf_idf":
            idf = np.asarray(idf_weights, dtype=np.float64)
            if idf.ndim != 1:
                raise ValueError(f"{cls}: idf_weights must be 1-D, received shape {idf.shape}")
            if len(idf) != len(vocabulary):
                raise ValueError(f"{cls}: idf_weights must be as long as the vocabulary: "
                                 f"len(idf_weights)={len(idf)}, len(vocabulary)={len(vocabulary)}")
            front, front_value = (0, 0.0) if found_special else (token_start, float(np.average(idf)))
            back = self.max_tokens - front - len(idf) if self.pad_to_max_tokens and self.max_tokens else 0
            idf = np.pad(idf, (front, back), constant_values=(front_value, 0.0))
            self.idf_weights = idf.astype(config.floatx())
        self._record_vocabulary_size()

    def _set_tokens(self, tokens):
        self._tokens = list(tokens)
        start = self._token_start_index()
        self._index = {t: i + start for i, t in enumerate(self._tokens)}
        if self.mask_token is not None and self.output_mode == "int" and not self.invert:
            self._index[self.mask_token] = 0
        self._sorted_keys = None

    def _record_vocabulary_size(self):
        if self.output_mode != "int" and not self.pad_to_max_tokens:
            new = self.vocabulary_size()
            if self._frozen_vocab_size is not None and new != self._frozen_vocab_size and self._called:
                raise RuntimeError(f"{type(self).__name__}: with output_mode={self.output_mode!r} and "
                                   f"pad_to_max_tokens=False the vocabulary size cannot change after the "
                                   f"layer is called (was {self._frozen_vocab_size}, now {new})")
        self._frozen_vocab_size = self.vocabulary_size()

    _called = False

    # ------------------------------------------------------------------ adapt
    def _reset_counts(self):
        self._counts = collections.Counter()
        self._doc_counts = collections.Counter()
        self._num_documents = 0

    def reset_state(self) -> None:
        if not self._has_input_vocabulary:
            self._reset_counts()

    def update_state(self, data: Any) -> None:
        """Counts the tokens of one batch (a rank-1 batch is one document)."""
        if self._has_input_vocabulary:
            raise ValueError(f"Cannot adapt layer '{self.name}' ({type(self).__name__}) after setting a "
                             f"static vocabulary (the `vocabulary` argument or set_vocabulary())")
        x = self._keys(data)
        if x.ndim == 0:
            x = x.reshape(1)
        if x.ndim == 1:
            x = x.reshape(1, -1)
        self._update_counts(x)

    def _update_counts(self, x):
        self._counts.update(x.ravel().tolist())
        if self.output_mode == "tf_idf":
            rows = x.reshape(x.shape[0], -1).tolist()
            for row in rows:
                self._doc_counts.update(set(row))
            self._num_documents += x.shape[0]

    def finalize_state(self) -> None:
        if self._has_input_vocabulary or not self._counts:
            self._record_vocabulary_size()
            return
        counts = self._counts
        for special in (self.mask_token, self.oov_token):
            if special is not None:
                counts.pop(special, None)
        # Most frequent first; ties broken by the larger token first (Keras's order).
        tokens = sorted(counts, key=lambda t: (counts[t], self._sort_key(t)), reverse=True)
        if self.max_tokens:
            tokens = tokens[:self.max_tokens - self._token_start_index()]
        self._set_tokens(tokens)
        if self.output_mode == "tf_idf":
            df = np.array([self._doc_counts[t] for t in tokens], dtype=np.float64)
            idf = np.log(1 + self._num_documents / (1 + df)).astype(config.floatx())
            mean = float(np.mean(idf)) if len(idf) else 0.0
            idf = np.pad(idf, (self._token_start_index(), 0), constant_values=mean)
            if self.pad_to_max_tokens and self.max_tokens is not None:
                idf = np.pad(idf, (0, self.max_tokens - idf.size))
            self.idf_weights = idf.astype(config.floatx())
        self._reset_counts()
        self._record_vocabulary_size()

    def _sort_key(self, token):
        return token

    def adapt(self, data: Any, batch_size: int | None = None, steps: int | None = None) -> None:
        """Learns the vocabulary (most frequent tokens first, up to ``max_tokens``) from an
        array, a list, or an iterable of batches such as ``fastnet.data.Dataset``.

        A whole array or list with one token per entry counts each entry as a document (for
        "tf_idf"); an iterable yields batches of documents.
        """
        self.reset_state()
        if isinstance(data, (list, tuple, np.ndarray, str, bytes)):
            x = self._keys(data)
            if x.ndim == 1:
                x = x.reshape(-1, 1)
            if x.ndim == 0:
                x = x.reshape(1, 1)
            if self._has_input_vocabulary:
                self.update_state(x)  # raises: a given vocabulary cannot be adapted
            self._update_counts(x)
        else:
            for batch in iter_batches(data, steps=steps):
                self.update_state(batch)
        self.finalize_state()

    # ------------------------------------------------------------------ lookup
    def _keys(self, inputs):
        raise NotImplementedError

    def _prepare(self, inputs):
        return self._keys(inputs) if not self.invert else np.asarray(inputs).astype(np.int64)

    def _lookup(self, x):
        """Indices of the elements of x (OOV: -1), as int64 of x's shape."""
        raise NotImplementedError

    def _oov_indices(self, x):
        n = self.num_oov_indices
        if self._vocab_kind == "int" and self.oov_method != "farmhash":
            return np.mod(x, n)
        return hash_strings(values_as_bytes(np.asarray(x)), n, self.salt).reshape(np.shape(x))

    def forward(self, ctx: Any, inputs: Any, training: bool = False, **kwargs) -> Any:
        self._called = True
        if self.output_mode != "int" and not self.pad_to_max_tokens and self._frozen_vocab_size is None:
            raise RuntimeError(f"{type(self).__name__}: with output_mode={self.output_mode!r} and "
                               f"pad_to_max_tokens=False, set the vocabulary before calling the layer: "
                               f"pass `vocabulary` or call adapt(data)")
        if self.invert:
            return self._invert(inputs)
        x = inputs
        idx = self._lookup(x)
        valid = None
        if self.mask_token is not None:
            is_mask = x == self.mask_token
            if self.output_mode == "int":
                idx[is_mask] = 0
            else:
                valid = ~is_mask
        oov = idx < 0
        if valid is not None:
            oov &= valid
        if oov.any():
            if self.num_oov_indices == 0:
                bad = np.unique(x[oov])[:10].tolist()
                raise ValueError(f'Layer "{self.name}" ({type(self).__name__}): with num_oov_indices=0 all '
                                 f"inputs must be in the vocabulary; found out-of-vocabulary values {bad}. "
                                 f"Consider num_oov_indices=1")
            start = self._oov_start_index()
            if self.num_oov_indices == 1:
                idx[oov] = start
            else:
                idx[oov] = self._oov_indices(x[oov]) + start
        if self.output_mode == "int":
            return idx
        depth = self.max_tokens if self.pad_to_max_tokens else self._frozen_vocab_size
        if valid is not None:
            idx = np.where(valid, idx, 0)
        return encode_categorical(idx, self.output_mode, depth, config.floatx(), valid=valid,
                                  idf_weights=self.idf_weights,
                                  layer_name=f'Layer "{self.name}" ({type(self).__name__})')

    def _invert(self, idx):
        vocab = self.get_vocabulary()
        table = np.asarray(vocab + [self.oov_token], dtype=object)
        pos = np.where((idx >= 0) & (idx < len(vocab)), idx, len(vocab))
        out = table[pos]
        if self._vocab_kind == "int":
            return out.astype(np.int64)
        return out.astype(str) if out.size else np.zeros(out.shape, dtype="<U1")

    @property
    def output_dtype(self) -> str:
        if self.invert:
            return "string" if self._vocab_kind == "string" else "int64"
        return "int64" if self.output_mode == "int" else config.floatx()

    def compute_output_shape(self, input_shape: ShapeLike) -> Shape:
        if self.output_mode == "int":
            return tuple(input_shape)
        depth = self.max_tokens if self.pad_to_max_tokens else self._frozen_vocab_size
        return encoded_shape(input_shape, self.output_mode, depth)

    # ------------------------------------------------------------------ config and state
    def get_config(self) -> Config:
        cfg = super().get_config()
        vocab = self.input_vocabulary
        if isinstance(vocab, np.ndarray):
            vocab = vocab.tolist()
        idf = self.input_idf_weights
        if isinstance(idf, np.ndarray):
            idf = idf.tolist()
        cfg.update({
            "invert": self.invert, "max_tokens": self.max_tokens, "num_oov_indices": self.num_oov_indices,
            "oov_token": self.oov_token, "mask_token": self.mask_token, "output_mode": self.output_mode,
            "sparse": False, "pad_to_max_tokens": self.pad_to_max_tokens, "idf_weights": idf,
            "vocabulary": list(vocab) if vocab is not None else None,
            "vocabulary_size": self._frozen_vocab_size, "oov_method": self.oov_method, "salt": self.salt,
        })
        return cfg

    def get_build_config(self) -> Config | None:
        return {}

    def build_from_config(self, build_config: Config) -> None:
        self.built = True

    def save_own_variables(self, store: Any) -> None:
        """Keras's layout: "tf_idf" layers store ``idf_weights``; others store nothing."""
        if self.output_mode == "tf_idf" and self.idf_weights is not None:
            store["idf_weights"] = np.asarray(self.idf_weights)

    def load_own_variables(self, store: Any) -> None:
        if self.output_mode == "tf_idf":
            if "idf_weights" not in store:
                raise ValueError(f'Layer "{self.name}" ({type(self).__name__}): the file holds no '
                                 f"idf_weights for this output_mode='tf_idf' layer")
            self.idf_weights = np.asarray(store["idf_weights"]).astype(config.floatx())

    def save_assets(self, dir_path: str) -> None:
        """Writes ``vocabulary.txt`` (one entry per line, special tokens first) into
        ``dir_path``, unless the vocabulary is in the config."""
        if self.input_vocabulary is not None:
            return
        with open(os.path.join(dir_path, VOCABULARY_FILENAME), "w", encoding="utf-8") as f:
            f.write("\n".join(str(w) for w in self.get_vocabulary(include_special_tokens=True)))

    def load_assets(self, dir_path: str) -> None:
        """Reads the vocabulary ``save_assets`` wrote (or Keras wrote)."""
        if self.input_vocabulary is not None:
            return
        path = os.path.join(dir_path, VOCABULARY_FILENAME)
        if not os.path.isfile(path):
            raise ValueError(f'Layer "{self.name}" ({type(self).__name__}): the file holds no '
                             f"{VOCABULARY_FILENAME} for this layer")
        values = self._read_vocab_file(path)
        idf = self.idf_weights if self.output_mode == "tf_idf" else None
        self.set_vocabulary(values, idf_weights=idf)


class StringLookup(IndexLookup):
    """Maps strings to integer indices through a vocabulary (or indices back to strings).

    Args:
        max_tokens: maximum vocabulary size, mask and OOV slots included (None: no limit).
        num_oov_indices: number of out-of-vocabulary slots; with several, OOV strings are
            spread over them by FarmHash (SipHash with ``salt``), as in Keras; with 0, an OOV
            input is an error.
        mask_token: a token mapped to index 0 ("int" mode) or dropped (other modes).
        oov_token: the token returned for OOV indices when ``invert=True``.
        vocabulary: list of strings, or a path to a file with one per line.
        idf_weights: per-entry weights for "tf_idf" with a given vocabulary.
        invert: map indices back to strings.
        output_mode: "int" (int64 indices), "one_hot", "multi_hot", "count" or "tf_idf".
        pad_to_max_tokens: encoded outputs have ``max_tokens`` columns even if the vocabulary
            is smaller.
        sparse: must be False.
        encoding: text encoding of byte inputs ("utf-8").
        salt: int or pair: key of the OOV hash.

    Input shape:
        Strings (numpy array of str/bytes/object, Python list), any shape.

    Output shape:
        "int": the input shape; other modes: see ``CategoryEncoding`` (the last axis becomes
        the vocabulary size).
    """

    _vocab_kind = "string"

    def __init__(self, max_tokens: int | None = None, num_oov_indices: int = 1, mask_token: str | None = None,
                 oov_token: str = "[UNK]", vocabulary: Any = None, idf_weights: Any = None,
                 invert: bool = False, output_mode: str = "int", pad_to_max_tokens: bool = False,
                 sparse: bool = False, encoding: str = "utf-8", name: str | None = None, salt: Any = None,
                 **kwargs) -> None:
        self.encoding = encoding
        super().__init__(max_tokens=max_tokens, num_oov_indices=num_oov_indices, mask_token=mask_token,
                         oov_token=oov_token, vocabulary=vocabulary, idf_weights=idf_weights, invert=invert,
                         output_mode=output_mode, pad_to_max_tokens=pad_to_max_tokens, sparse=sparse,
                         name=name, salt=salt, oov_method=kwargs.pop("oov_method", "floormod"), **kwargs)

    def _convert_vocab(self, values):
        if isinstance(values, np.ndarray) or isinstance(values, (list, tuple)):
            return as_string_array(np.asarray(values, dtype=object) if isinstance(values, (list, tuple))
                                   else values).ravel().tolist()
        raise TypeError(f"StringLookup: vocabulary must be a list, an array or a file path, received "
                        f"{type(values).__name__}")

    def _keys(self, inputs):
        try:
            if isinstance(inputs, np.ndarray) and inputs.dtype.kind == "S" and self.encoding != "utf-8":
                return np.char.decode(inputs, self.encoding)
            return as_string_array(inputs)
        except TypeError as e:
            raise TypeError(f'Layer "{self.name}" (StringLookup) expects strings: {e}') from None

    def lookup_tokens(self, tokens: list) -> np.ndarray:
        """Indices of a list of tokens (int64; -1 for out-of-vocabulary, 0 for the mask token
        in "int" mode), with no OOV slots or encoding applied."""
        return np.fromiter(map(self._index.get, tokens, itertools.repeat(-1)), dtype=np.int64, count=len(tokens))

    def _lookup(self, x):
        return self.lookup_tokens(x.ravel().tolist()).reshape(x.shape)

    def _sort_key(self, token):
        # Keras sorts the UTF-8 bytes; code-point order of str is the same order.
        return token

    def get_config(self) -> Config:
        cfg = super().get_config()
        cfg["encoding"] = self.encoding
        return cfg


class IntegerLookup(IndexLookup):
    """Maps integers to contiguous indices through a vocabulary (or back with ``invert``).

    Args:
        max_tokens: maximum vocabulary size, mask and OOV slots included.
        num_oov_indices: number of OOV slots; several: OOV values go to slot
            ``value % num_oov_indices`` ("floormod") or by FarmHash of their decimal string
            (``oov_method="farmhash"``).
        mask_token: an integer mapped to 0 ("int" mode) or dropped.
        oov_token: the value returned for OOV indices with ``invert=True`` (-1).
        vocabulary: list of ints, or a path to a file with one per line.
        vocabulary_dtype: "int64" only.
        idf_weights, invert, output_mode, sparse, pad_to_max_tokens, oov_method, salt: as in
            StringLookup.

    Input shape:
        Integers, any shape.

    Output shape:
        As StringLookup.
    """

    _vocab_kind = "int"

    def __init__(self, max_tokens: int | None = None, num_oov_indices: int = 1, mask_token: int | None = None,
                 oov_token: int = -1, vocabulary: Any = None, vocabulary_dtype: str = "int64",
                 idf_weights: Any = None, invert: bool = False, output_mode: str = "int", sparse: bool = False,
                 pad_to_max_tokens: bool = False, oov_method: str = "floormod", salt: Any = None,
                 name: str | None = None, **kwargs) -> None:
        if vocabulary_dtype != "int64":
            raise ValueError(f"IntegerLookup: only vocabulary_dtype='int64' is supported. Received: "
                             f"vocabulary_dtype={vocabulary_dtype}")
        super().__init__(max_tokens=max_tokens, num_oov_indices=num_oov_indices,
                         mask_token=None if mask_token is None else int(mask_token),
                         oov_token=None if oov_token is None else int(oov_token), vocabulary=vocabulary,
                         idf_weights=idf_weights, invert=invert, output_mode=output_mode, sparse=sparse,
                         pad_to_max_tokens=pad_to_max_tokens, oov_method=oov_method, salt=salt, name=name,
                         **kwargs)
        self.vocabulary_dtype = "int64"

    def _convert_vocab(self, values):
        arr = np.asarray([int(v) for v in values] if isinstance(values, (list, tuple)) else values)
        if arr.size and arr.dtype.kind not in "iu":
            raise TypeError(f"IntegerLookup: vocabulary must hold integers, received dtype {arr.dtype}")
        return arr.astype(np.int64).ravel().tolist()

    def _keys(self, inputs):
        x = np.asarray(inputs)
        if x.dtype.kind == "f" and np.all(np.isfinite(x)) and np.all(x == np.floor(x)):
            x = x.astype(np.int64)
        if x.dtype.kind not in "iub":
            raise TypeError(f'Layer "{self.name}" (IntegerLookup) expects integers, received dtype {x.dtype}')
        return x.astype(np.int64, copy=False)

    def _lookup(self, x):
        if self._sorted_keys is None:
            keys = np.asarray(self._tokens, dtype=np.int64)
            order = np.argsort(keys, kind="stable")
            self._sorted_keys = (keys[order], order.astype(np.int64) + self._token_start_index())
        keys, idx = self._sorted_keys
        if keys.size == 0:
            return np.full(x.shape, -1, dtype=np.int64)
        pos = np.clip(np.searchsorted(keys, x), 0, keys.size - 1)
        return np.where(keys[pos] == x, idx[pos], -1).astype(np.int64)

    def get_config(self) -> Config:
        cfg = super().get_config()
        if cfg["vocabulary"] is not None:
            cfg["vocabulary"] = [int(v) for v in cfg["vocabulary"]]
        cfg["vocabulary_dtype"] = "int64"
        return cfg
