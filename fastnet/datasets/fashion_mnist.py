"""Fashion-MNIST: 60,000 training and 10,000 test images of 10 kinds of clothing, 28x28 uint8."""
from __future__ import annotations

import gzip
import os

import numpy as np

from fastnet.datasets._common import fetch

__all__ = ["load_data"]

_FILES = ["train-labels-idx1-ubyte.gz", "train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
          "t10k-images-idx3-ubyte.gz"]


def load_data():
    """Loads Fashion-MNIST (cached in ``~/.keras/datasets/fashion-mnist/``, the IDX gzip files).

    Returns:
        ``(x_train, y_train), (x_test, y_test)``: uint8 images ``(n, 28, 28)`` and uint8
        labels ``(n,)`` in 0-9.
    """
    paths = [fetch(name, cache_subdir=os.path.join("datasets", "fashion-mnist")) for name in _FILES]

    def read(path, offset):
        with gzip.open(path, "rb") as f:
            return np.frombuffer(f.read(), np.uint8, offset=offset)

    y_train, y_test = read(paths[0], 8), read(paths[2], 8)
    x_train = read(paths[1], 16).reshape(len(y_train), 28, 28)
    x_test = read(paths[3], 16).reshape(len(y_test), 28, 28)
    return (x_train, y_train), (x_test, y_test)
