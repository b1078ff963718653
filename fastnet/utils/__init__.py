"""Utilities, as in ``keras.utils``: one-hot labels, normalization, the progress bar
and training plots (matplotlib is imported only when a plot is drawn)."""
from fastnet.utils.np_utils import normalize, to_categorical
from fastnet.utils.plotting import plot_history
from fastnet.utils.progbar import Progbar

__all__ = ["to_categorical", "normalize", "plot_history", "Progbar"]
