"""Utilities, as in ``keras.utils``: seeding, one-hot labels, training-curve plots."""
from fastnet.random import set_seed as set_random_seed

__all__ = ["set_random_seed", "to_categorical", "normalize", "plot_history", "Progbar"]


def __getattr__(name):
    # Loaded on first use so that ``import fastnet`` never imports matplotlib.
    if name in ("to_categorical", "normalize"):
        from fastnet.utils import np_utils
        return getattr(np_utils, name)
    if name == "plot_history":
        from fastnet.utils.plotting import plot_history
        return plot_history
    if name == "Progbar":
        from fastnet.utils.progbar import Progbar
        return Progbar
    raise AttributeError(f"module 'fastnet.utils' has no attribute {name!r}")
