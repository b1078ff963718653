"""fastnet's global random state (initializers, dropout seeds, shuffling)."""
from __future__ import annotations

import random as _pyrandom

import numpy as np

__all__ = ["set_seed", "generator", "next_seed"]

_GEN = np.random.default_rng()


def set_seed(seed: int) -> None:
    """Seeds fastnet's generator, numpy's global generator and Python's ``random``."""
    global _GEN
    seed = int(seed)
    _GEN = np.random.default_rng(seed)
    np.random.seed(seed % (2 ** 32))
    _pyrandom.seed(seed)


def generator() -> np.random.Generator:
    """The global numpy Generator used where no seed is given."""
    return _GEN


def next_seed() -> int:
    """A fresh 63-bit seed drawn from the global generator."""
    return int(_GEN.integers(0, 2 ** 63 - 1))
