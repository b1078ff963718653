"""MNIST handwritten digits: 60,000 training and 10,000 test images, 28x28 uint8."""
from __future__ import annotations

import numpy as np

from fastnet.datasets._common import fetch

__all__ = ["load_data"]


def load_data(path: str = "mnist.npz"):
    """Loads MNIST (downloaded once into ``~/.keras/datasets/mnist.npz``, as Keras caches it).

    Args:
        path: file name in the cache.

    Returns:
        ``(x_train, y_train), (x_test, y_test)``: uint8 images ``(n, 28, 28)`` and uint8
        labels ``(n,)`` in 0-9.
    """
    with np.load(fetch("mnist.npz", path), allow_pickle=False) as f:
        return (f["x_train"], f["y_train"]), (f["x_test"], f["y_test"])
