"""Boston housing prices: 506 samples of 13 features (deprecated upstream; kept for old examples)."""
from __future__ import annotations

import numpy as np

from fastnet.datasets._common import fetch, shuffled_split

__all__ = ["load_data"]


def load_data(path: str = "boston_housing.npz", test_split: float = 0.2, seed: int = 113):
    """Loads the Boston housing data, shuffled with ``seed`` and split as Keras splits it.

    Returns:
        ``(x_train, y_train), (x_test, y_test)``: float64 features ``(n, 13)`` and prices ``(n,)``.
    """
    if not 0 <= test_split < 1:
        raise ValueError(f"Invalid test_split argument: {test_split}. It must be between 0 and 1 (exclusive of 1).")
    with np.load(fetch("boston_housing.npz", path), allow_pickle=False) as f:
        x, y = f["x"], f["y"]
    return shuffled_split(x, y, test_split, seed)
