"""CIFAR-100: 50,000 training and 10,000 test 32x32 colour images in 100 classes (20 coarse)."""
from __future__ import annotations

import os

import numpy as np

from fastnet import config
from fastnet.datasets._common import fetch, load_cifar_batch

__all__ = ["load_data"]


def load_data(label_mode: str = "fine"):
    """Loads CIFAR-100 (extracted under ``~/.keras/datasets/cifar-100-python-target/``).

    Args:
        label_mode: "fine" (100 classes) or "coarse" (20 superclasses).

    Returns:
        ``(x_train, y_train), (x_test, y_test)``: uint8 images ``(n, 32, 32, 3)`` and labels
        ``(n, 1)`` (int64, as the pickled lists give them).
    """
    if label_mode not in ("fine", "coarse"):
        raise ValueError(f'label_mode must be "fine" or "coarse", received label_mode={label_mode!r}')
    folder = os.path.join(fetch("cifar-100-python-target", extract=True), "cifar-100-python")
    x_train, y_train = load_cifar_batch(os.path.join(folder, "train"), label_key=f"{label_mode}_labels")
    x_test, y_test = load_cifar_batch(os.path.join(folder, "test"), label_key=f"{label_mode}_labels")
    y_train = np.reshape(y_train, (len(y_train), 1))
    y_test = np.reshape(y_test, (len(y_test), 1))
    if config.image_data_format() == "channels_last":
        x_train, x_test = x_train.transpose(0, 2, 3, 1), x_test.transpose(0, 2, 3, 1)
    return (x_train, y_train), (x_test, y_test)
