"""CIFAR-10: 50,000 training and 10,000 test 32x32 colour images in 10 classes."""
from __future__ import annotations

import os

import numpy as np

from fastnet import config
from fastnet.datasets._common import fetch, load_cifar_batch

__all__ = ["load_data"]


def load_data():
    """Loads CIFAR-10 (the python-pickle archive, extracted under
    ``~/.keras/datasets/cifar-10-batches-py-target/`` as Keras does).

    Returns:
        ``(x_train, y_train), (x_test, y_test)``: uint8 images ``(n, 32, 32, 3)`` (channels
        first when ``image_data_format()`` is "channels_first") and uint8 labels ``(n, 1)``.
    """
    folder = os.path.join(fetch("cifar-10-batches-py-target", extract=True), "cifar-10-batches-py")
    x_train = np.empty((50000, 3, 32, 32), dtype="uint8")
    y_train = np.empty((50000,), dtype="uint8")
    count = 0
    for i in range(1, 6):
        data, labels = load_cifar_batch(os.path.join(folder, f"data_batch_{i}"))
        x_train[count:count + len(data)] = data
        y_train[count:count + len(data)] = labels
        count += len(data)
    x_train, y_train = x_train[:count], y_train[:count]
    x_test, y_test = load_cifar_batch(os.path.join(folder, "test_batch"))
    y_train = y_train.reshape(-1, 1)
    y_test = np.asarray(y_test).reshape(-1, 1).astype(y_train.dtype)
    x_test = x_test.astype(x_train.dtype)
    if config.image_data_format() == "channels_last":
        x_train, x_test = x_train.transpose(0, 2, 3, 1), x_test.transpose(0, 2, 3, 1)
    return (x_train, y_train), (x_test, y_test)
