"""fastnet's global random state (initializers, dropout seeds, shuffling)."""
from __future__ import annotations

import random as _pyrandom
import sys
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from typing import Any

    from fastnet._typing import ArrayLike, DTypeLike, ShapeLike

    SeedLike = int | SeedGenerator | None  # noqa: F821

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


# ============================================================================ keras.random

class SeedGenerator:
    """A seed state that advances on each draw, as ``keras.random.SeedGenerator``.

    The state is a ``(2,)`` uint32 Variable ``[seed, counter]``; every random function
    given this generator draws with the current state and then increments the counter,
    so a sequence of draws is reproducible from the seed.

    Args:
        seed: an int (a random one when None).
        name: name of the state variable's owner.
    """

    def __init__(self, seed: int | None = None, name: str | None = None, **kwargs) -> None:
        from fastnet.backend import Variable, unique_name

        if kwargs:
            raise TypeError(f"Unrecognized keyword arguments passed to SeedGenerator: {sorted(kwargs)}")
        if seed is None:
            seed = int(_GEN.integers(0, 2 ** 31 - 1))
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
            raise ValueError(f"Argument `seed` must be an integer. Received: seed={seed!r}")
        self._initial_seed = int(seed)
        self.name = name or unique_name("seed_generator")
        self.state = Variable(np.array([int(seed) % 2 ** 32, 0], dtype=np.uint32), name="seed_generator_state",
                              trainable=False, path=f"{self.name}/seed_generator_state")

    def next(self, ordered: bool = True) -> np.ndarray:
        """The current state; the counter then advances by one."""
        value = self.state.value.copy()
        self.state.value[1] += np.uint32(1)
        return value

    def get_config(self) -> dict:
        return {"seed": self._initial_seed}

    @classmethod
    def from_config(cls, config: dict) -> SeedGenerator:
        return cls(**config)


def _rng(seed):
    """A numpy Generator for ``seed``: an int (the same numbers on every call), a
    SeedGenerator (advanced by one), a (2,) seed array, or None (fastnet's global stream)."""
    ad = sys.modules.get("fastnet.ops.autodiff")
    if ad is not None and getattr(ad._TLS, "stack", None):
        ad.note_escape("a random value was drawn (a replay would repeat it)")
    if seed is None:
        return np.random.default_rng(int(_GEN.integers(0, 2 ** 63 - 1)))
    if isinstance(seed, SeedGenerator):
        return np.random.default_rng([int(v) for v in seed.next()])
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        return np.random.default_rng([int(seed) % 2 ** 32, 0])
    arr = np.asarray(getattr(seed, "value", seed))
    if arr.dtype.kind in "iu" and arr.size <= 2:
        return np.random.default_rng([int(v) % 2 ** 32 for v in arr.reshape(-1)])
    raise ValueError(f"Argument `seed` must be an integer, a SeedGenerator or None. Received: seed={seed!r}")


def _dtype(dtype):
    from fastnet import config

    return np.dtype(dtype or config.floatx())


def _shape(shape):
    if isinstance(shape, (int, np.integer)):
        return (int(shape),)
    return tuple(int(d) for d in shape)


def normal(shape: ShapeLike, mean: float = 0.0, stddev: float = 1.0, dtype: DTypeLike | None = None,
           seed: SeedLike = None) -> np.ndarray:
    """Samples from a normal distribution."""
    g = _rng(seed)
    return (g.standard_normal(_shape(shape)) * stddev + mean).astype(_dtype(dtype))


def uniform(shape: ShapeLike, minval: float = 0.0, maxval: float = 1.0, dtype: DTypeLike | None = None,
            seed: SeedLike = None) -> np.ndarray:
    """Samples from a uniform distribution on ``[minval, maxval)``."""
    dt = _dtype(dtype)
    if dt.kind != "f":
        raise ValueError(f"`keras.random.uniform` requires a floating point `dtype`. Received: dtype={dtype}")
    g = _rng(seed)
    return g.uniform(minval, maxval, _shape(shape)).astype(dt)


def truncated_normal(shape: ShapeLike, mean: float = 0.0, stddev: float = 1.0, dtype: DTypeLike | None = None,
                     seed: SeedLike = None) -> np.ndarray:
    """Normal samples, values more than two standard deviations from the mean redrawn."""
    g = _rng(seed)
    shp = _shape(shape)
    z = g.standard_normal(shp)
    bad = np.abs(z) > 2
    while bad.any():
        z[bad] = g.standard_normal(int(bad.sum()))
        bad = np.abs(z) > 2
    return (z * stddev + mean).astype(_dtype(dtype))


def randint(shape: ShapeLike, minval: int, maxval: int, dtype: DTypeLike = "int32",
            seed: SeedLike = None) -> np.ndarray:
    """Integers uniform on ``[minval, maxval)``."""
    g = _rng(seed)
    return g.integers(int(minval), int(maxval), _shape(shape)).astype(np.dtype(dtype))


def categorical(logits: ArrayLike, num_samples: int, dtype: DTypeLike = "int32", seed: SeedLike = None) -> np.ndarray:
    """``num_samples`` class indices per row of ``logits`` (batch, classes)."""
    from fastnet.ops.autodiff import value_of

    lg = np.asarray(value_of(logits), dtype=np.float64)
    if lg.ndim != 2:
        raise ValueError(f"`logits` should be a 2-D tensor with shape [batch_size, num_classes]. "
                         f"Received: logits={lg.shape}")
    g = _rng(seed)
    gumbel = -np.log(-np.log(g.uniform(np.finfo(np.float64).tiny, 1.0, (lg.shape[0], int(num_samples),
                                                                          lg.shape[1]))))
    return np.argmax(lg[:, None, :] + gumbel, axis=-1).astype(np.dtype(dtype))


def dropout(inputs: ArrayLike, rate: float, noise_shape: ShapeLike | None = None, seed: SeedLike = None) -> Any:
    """Zeroes entries with probability ``rate`` and scales the rest by ``1 / (1 - rate)``
    (differentiable in ``inputs``)."""
    from fastnet.ops import numpy as ops_np
    from fastnet.ops.autodiff import value_of

    rate = float(rate)
    if not 0 <= rate < 1:
        raise ValueError(f"Invalid value received for argument `rate`. Expected a float value between 0 and 1. "
                         f"Received: rate={rate}")
    x = value_of(inputs)
    shp = np.shape(x) if noise_shape is None else tuple(
        np.shape(x)[i] if d is None else int(d) for i, d in enumerate(noise_shape))
    g = _rng(seed)
    dt = np.asarray(x).dtype if np.asarray(x).dtype.kind == "f" else _dtype(None)
    keep = (g.uniform(size=shp) >= rate).astype(dt) / dt.type(1 - rate)
    return ops_np.multiply(inputs, keep)


def shuffle(x: ArrayLike, axis: int = 0, seed: SeedLike = None) -> Any:
    """``x`` with its entries along ``axis`` permuted."""
    from fastnet.ops import numpy as ops_np
    from fastnet.ops.autodiff import value_of

    n = np.shape(value_of(x))[axis]
    perm = _rng(seed).permutation(n)
    return ops_np.take(x, perm, axis=axis)


def gamma(shape: ShapeLike, alpha: float, dtype: DTypeLike | None = None, seed: SeedLike = None) -> np.ndarray:
    return _rng(seed).gamma(alpha, 1.0, _shape(shape)).astype(_dtype(dtype))


def binomial(shape: ShapeLike, counts: ArrayLike, probabilities: ArrayLike, dtype: DTypeLike | None = None,
             seed: SeedLike = None) -> np.ndarray:
    return _rng(seed).binomial(np.asarray(counts).astype(np.int64), probabilities, _shape(shape)).astype(
        _dtype(dtype))


def beta(shape: ShapeLike, alpha: ArrayLike, beta: ArrayLike, dtype: DTypeLike | None = None,
         seed: SeedLike = None) -> np.ndarray:
    return _rng(seed).beta(alpha, beta, _shape(shape)).astype(_dtype(dtype))


__all__ += ["SeedGenerator", "normal", "uniform", "truncated_normal", "randint", "categorical", "dropout",
            "shuffle", "gamma", "binomial", "beta"]
