"""IMDB movie reviews: 25,000 training and 25,000 test reviews as word-index sequences, labelled 0/1."""
from __future__ import annotations

import json

import numpy as np

from fastnet.datasets._common import encode_sequences, fetch, limit_words, load_npz, object_array

__all__ = ["load_data", "get_word_index"]


def load_data(path: str = "imdb.npz", num_words: int | None = None, skip_top: int = 0, maxlen: int | None = None,
              seed: int = 113, start_char: int | None = 1, oov_char: int | None = 2, index_from: int = 3, **kwargs):
    """Loads IMDB as Keras does (same shuffling for ``seed``, same word indices).

    Args:
        path: file name in the cache (``~/.keras/datasets``).
        num_words: keep the ``num_words`` most frequent words (others become ``oov_char``).
        skip_top: also replace the ``skip_top`` most frequent words with ``oov_char``.
        maxlen: drop sequences of ``maxlen`` words or more.
        seed: seed of the shuffle of each split.
        start_char: index marking the start of each sequence (None: no mark).
        oov_char: index of dropped words (None: remove them).
        index_from: offset added to every word index.

    Returns:
        ``(x_train, y_train), (x_test, y_test)``: object arrays of lists of ints, and label arrays.
    """
    if kwargs:
        raise TypeError(f"imdb.load_data got unexpected keyword arguments {sorted(kwargs)}")
    f = load_npz(fetch("imdb.npz", path))
    rng = np.random.RandomState(seed)
    x_train, y_train = f["x_train"], f["y_train"]
    x_test, y_test = f["x_test"], f["y_test"]
    order = np.arange(len(x_train))
    rng.shuffle(order)
    x_train, y_train = x_train[order], y_train[order]
    order = np.arange(len(x_test))
    rng.shuffle(order)
    x_test, y_test = x_test[order], y_test[order]
    x_train, y_train = encode_sequences(x_train, y_train, num_words, skip_top, maxlen, start_char, oov_char,
                                        index_from)
    x_test, y_test = encode_sequences(x_test, y_test, num_words, skip_top, maxlen, start_char, oov_char, index_from)
    if maxlen and (not x_train or not x_test):
        raise ValueError(f"After filtering for sequences shorter than maxlen={maxlen}, no sequence was kept. "
                         "Increase maxlen.")
    xs = limit_words(x_train + x_test, num_words, skip_top, oov_char)
    labels = np.concatenate([y_train, y_test])
    n = len(x_train)
    return (object_array(xs[:n]), labels[:n]), (object_array(xs[n:]), labels[n:])


def get_word_index(path: str = "imdb_word_index.json") -> dict[str, int]:
    """The word -> index dictionary of IMDB (indices before the ``index_from`` offset)."""
    with open(fetch("imdb_word_index.json", path)) as f:
        return json.load(f)
