"""California housing prices: 20,640 districts of 8 features (600 in the "small" version)."""
from __future__ import annotations

import numpy as np

from fastnet.datasets._common import fetch, shuffled_split

__all__ = ["load_data"]


def load_data(version: str = "large", path: str = "california_housing.npz", test_split: float = 0.2,
              seed: int = 113):
    """Loads the California housing data, shuffled with ``seed`` and split as Keras splits it.

    Args:
        version: "large" (all 20,640 samples) or "small" (the first 600).
        path: file name in the cache.
        test_split: fraction kept for testing (the last ones after shuffling).
        seed: the shuffle's seed.

    Returns:
        ``(x_train, y_train), (x_test, y_test)``: features ``(n, 8)`` and median values ``(n,)``.
    """
    if not 0 <= test_split < 1:
        raise ValueError(f"Invalid test_split argument: {test_split}. It must be between 0 and 1 (exclusive of 1).")
    with np.load(fetch("california_housing.npz", path), allow_pickle=False) as f:
        x, y = f["x"], f["y"]
    if version == "small":
        x, y = x[:600], y[:600]
    elif version != "large":
        raise ValueError(f"version must be 'small' or 'large', received version={version!r}")
    return shuffled_split(x, y, test_split, seed)
