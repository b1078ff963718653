"""Reuters newswires: 11,228 word-index sequences labelled with 46 topics."""
from __future__ import annotations

import json

import numpy as np

from fastnet.datasets._common import encode_sequences, fetch, limit_words, load_npz, object_array

__all__ = ["load_data", "get_word_index", "get_label_names"]


def load_data(path: str = "reuters.npz", num_words: int | None = None, skip_top: int = 0, maxlen: int | None = None,
              test_split: float = 0.2, seed: int = 113, start_char: int | None = 1, oov_char: int | None = 2,
              index_from: int = 3):
    """Loads Reuters as Keras does (arguments as :func:`fastnet.datasets.imdb.load_data`).

    Args:
        test_split: fraction of the (shuffled) sequences kept for testing (the last ones).

    Returns:
        ``(x_train, y_train), (x_test, y_test)``: object arrays of lists of ints, and labels.
    """
    f = load_npz(fetch("reuters.npz", path))
    xs, labels = f["x"], f["y"]
    order = np.arange(len(xs))
    np.random.RandomState(seed).shuffle(order)
    xs, labels = xs[order], labels[order]
    xs, labels = encode_sequences(xs, labels, num_words, skip_top, maxlen, start_char, oov_char, index_from)
    xs = limit_words(xs, num_words, skip_top, oov_char)
    cut = int(len(xs) * (1 - test_split))
    return (object_array(xs[:cut]), np.array(labels[:cut])), (object_array(xs[cut:]), np.array(labels[cut:]))


def get_word_index(path: str = "reuters_word_index.json") -> dict[str, int]:
    """The word -> index dictionary of Reuters (indices before the ``index_from`` offset)."""
    with open(fetch("reuters_word_index.json", path)) as f:
        return json.load(f)


def get_label_names() -> tuple[str, ...]:
    """The 46 topic names, by label index."""
    return ("cocoa", "grain", "veg-oil", "earn", "acq", "wheat", "copper", "housing", "money-supply", "coffee",
            "sugar", "trade", "reserves", "ship", "cotton", "carcass", "crude", "nat-gas", "cpi", "money-fx",
            "interest", "gnp", "meal-feed", "alum", "oilseed", "gold", "tin", "strategic-metal", "livestock",
            "retail", "ipi", "iron-steel", "rubber", "heat", "jobs", "lei", "bop", "zinc", "orange", "pet-chem",
            "dlr", "gas", "silver", "wpi", "hog", "lead")
