"""Utilities, as in ``keras.utils``: seeding, one-hot labels, normalization, the
progress bar and training-curve plots (matplotlib is imported only when a plot is drawn)."""
from fastnet.random import set_seed as set_random_seed
from fastnet.utils.model_visualization import model_to_dot, plot_model
from fastnet.utils.np_utils import normalize, to_categorical
from fastnet.utils.plotting import plot_history
from fastnet.utils.progbar import Progbar

__all__ = ["set_random_seed", "to_categorical", "normalize", "plot_history", "Progbar", "plot_model",
           "model_to_dot"]
