"""Shared pieces of the asv suite: a base class and deterministic data."""
import numpy as np


def data(shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


class Benchmark:
    """Base: subclasses declare ``params``/``param_names`` and a ``setup``."""

    timeout = 300
    repeat = (3, 20, 30.0)
    warmup_time = 0.2

    def set_threads(self, n_threads):
        import fastnet

        fastnet.config.set_num_threads(n_threads)
