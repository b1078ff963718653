"""Where the datasets come from: Keras's origins, file names and hashes, and safe readers.

``FILES`` maps a cache file name to ``(origin, file_hash)``; the loaders look their files
up here (tests point it at small fixture files).
"""
from __future__ import annotations

import io
import pickle
import zipfile

import numpy as np

from fastnet.utils.file_utils import get_file

_TF_KERAS = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
_CIFAR = "https://www.cs.toronto.edu/~kriz/"

FILES: dict[str, tuple[str, str | None]] = {
    "mnist.npz": (_TF_KERAS + "mnist.npz", "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"),
    "train-labels-idx1-ubyte.gz": (_TF_KERAS + "train-labels-idx1-ubyte.gz", None),
    "train-images-idx3-ubyte.gz": (_TF_KERAS + "train-images-idx3-ubyte.gz", None),
    "t10k-labels-idx1-ubyte.gz": (_TF_KERAS + "t10k-labels-idx1-ubyte.gz", None),
    "t10k-images-idx3-ubyte.gz": (_TF_KERAS + "t10k-images-idx3-ubyte.gz", None),
    "cifar-10-batches-py-target": (_CIFAR + "cifar-10-python.tar.gz",
                                   "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"),
    "cifar-100-python-target": (_CIFAR + "cifar-100-python.tar.gz",
                                "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7"),
    "imdb.npz": (_TF_KERAS + "imdb.npz", "69664113be75683a8fe16e3ed0ab59fda8886cb3cd7ada244f7d9544e4676b9f"),
    "imdb_word_index.json": (_TF_KERAS + "imdb_word_index.json", "bfafd718b763782e994055a2d397834f"),
    "reuters.npz": (_TF_KERAS + "reuters.npz", "d6586e694ee56d7a4e65172e12b3e987c03096cb01eab99753921ef915959916"),
    "reuters_word_index.json": (_TF_KERAS + "reuters_word_index.json", "4d44cc38712099c9e383dc6e5f11a921"),
    "boston_housing.npz": (_TF_KERAS + "boston_housing.npz",
                           "f553886a1f8d56431e820c5b82552d9d95cfcb96d1e678153f8839538947dff5"),
    "california_housing.npz": (_TF_KERAS + "california_housing.npz",
                               "1a2e3a52e0398de6463aebe6f4a8da34fb21fbb6b934cf88c3425e766f2a1a6f"),
}


def fetch(key: str, fname: str | None = None, **kwargs) -> str:
    """``get_file`` for the registered file ``key`` (cached as ``fname``, default ``key``)."""
    origin, file_hash = FILES[key]
    return get_file(fname=fname or key, origin=origin, file_hash=file_hash, **kwargs)


_ALLOWED_GLOBALS = frozenset({("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
                              ("numpy._core.multiarray", "_reconstruct")})


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and plain Python containers only: a dataset file cannot run code."""

    def find_class(self, module, name):
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"Refusing to load {module}.{name} from a dataset file: only numpy arrays "
                                     "are expected (the file may be corrupted or malicious)")


def _read_npy(buffer):
    try:
        return np.lib.format.read_array(buffer, allow_pickle=False)
    except ValueError:  # an object array (ragged sequences): pickled, read with restrictions
        buffer.seek(0)
        major, _ = np.lib.format.read_magic(buffer)
        if major == 1:
            np.lib.format.read_array_header_1_0(buffer)
        else:
            np.lib.format.read_array_header_2_0(buffer)
        return RestrictedUnpickler(buffer).load()


def load_npz(path: str) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file; object arrays are unpickled with :class:`RestrictedUnpickler`."""
    arrays = {}
    with zipfile.ZipFile(path) as archive:
        for member in archive.namelist():
            if member.endswith(".npy"):
                with archive.open(member) as raw:
                    arrays[member[:-4]] = _read_npy(io.BytesIO(raw.read()))
    return arrays


def load_cifar_batch(fpath: str, label_key: str = "labels") -> tuple[np.ndarray, list]:
    """Images ``(n, 3, 32, 32)`` uint8 and labels of one pickled CIFAR batch file."""
    with open(fpath, "rb") as f:
        d = RestrictedUnpickler(f, encoding="bytes").load()
    d = {(k.decode("utf8") if isinstance(k, bytes) else k): v for k, v in d.items()}
    data = np.asarray(d["data"])
    return data.reshape(data.shape[0], 3, 32, 32), d[label_key]


def shuffled_split(x, y, test_split, seed):
    """Keras's regression split: shuffle with ``RandomState(seed)``, then the first
    ``1 - test_split`` for training."""
    if not 0 <= test_split < 1:
        raise ValueError(f"Invalid test_split argument: {test_split}. It must be between 0 and 1 (exclusive of 1).")
    indices = np.arange(len(x))
    np.random.RandomState(seed).shuffle(indices)
    x, y = x[indices], y[indices]
    cut = int(len(x) * (1 - test_split))
    return (np.array(x[:cut]), np.array(y[:cut])), (np.array(x[cut:]), np.array(y[cut:]))


def encode_sequences(xs, labels, num_words, skip_top, maxlen, start_char, oov_char, index_from):
    """Keras's word-index sequences: start mark, offset, long ones dropped, rare words as oov."""
    if start_char is not None:
        xs = [[start_char] + [w + index_from for w in x] for x in xs]
    elif index_from:
        xs = [[w + index_from for w in x] for x in xs]
    else:
        xs = [list(x) for x in xs]
    if maxlen:
        kept = [i for i, x in enumerate(xs) if len(x) < maxlen]
        xs = [xs[i] for i in kept]
        labels = np.asarray(labels)[kept]
    return xs, labels


def limit_words(xs, num_words, skip_top, oov_char):
    if not num_words:
        num_words = max(max(x) for x in xs if len(x)) if any(len(x) for x in xs) else 0
    if oov_char is not None:
        return [[w if skip_top <= w < num_words else oov_char for w in x] for x in xs]
    return [[w for w in x if skip_top <= w < num_words] for x in xs]


def object_array(seqs):
    out = np.empty(len(seqs), dtype=object)
    out[:] = seqs
    return out
