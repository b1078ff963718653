"""Utilities, as in ``keras.utils``: seeding, one-hot labels, normalization, the
progress bar and training-curve plots (matplotlib is imported only when a plot is drawn),
``PyDataset``, padding of sequences, datasets from folders and arrays, image files and
``get_file`` (Pillow is imported only when an image is read or written)."""
from fastnet.random import set_seed as set_random_seed
from fastnet.utils.dataset_utils import (
    image_dataset_from_directory,
    split_dataset,
    text_dataset_from_directory,
    timeseries_dataset_from_array,
)
from fastnet.utils.file_utils import get_file
from fastnet.utils.image_utils import array_to_img, img_to_array, load_img, save_img
from fastnet.utils.model_visualization import model_to_dot, plot_model
from fastnet.utils.np_utils import normalize, to_categorical
from fastnet.utils.plotting import plot_history
from fastnet.utils.progbar import Progbar
from fastnet.utils.py_dataset import PyDataset, Sequence
from fastnet.utils.sequence_utils import pad_sequences

__all__ = ["set_random_seed", "to_categorical", "normalize", "plot_history", "Progbar", "PyDataset", "Sequence",
           "pad_sequences", "image_dataset_from_directory", "text_dataset_from_directory",
           "timeseries_dataset_from_array", "split_dataset", "get_file", "load_img", "img_to_array",
           "array_to_img", "save_img", "plot_model", "model_to_dot",
           "register_keras_serializable", "get_custom_objects", "get_registered_name", "get_registered_object",
           "CustomObjectScope", "custom_object_scope"]


_REGISTRATION = ("register_keras_serializable", "get_custom_objects", "get_registered_name",
                 "get_registered_object", "CustomObjectScope", "custom_object_scope")


def __getattr__(name):
    # keras.utils re-exports keras.saving's registration functions; loaded on first use
    if name in _REGISTRATION:
        from fastnet.saving import object_registration

        return getattr(object_registration, name)
    raise AttributeError(f"module 'fastnet.utils' has no attribute {name!r}")
