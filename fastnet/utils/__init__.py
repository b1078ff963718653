"""Utilities, as in ``keras.utils``: seeding, one-hot labels, normalization, the
progress bar and training-curve plots (matplotlib is imported only when a plot is drawn)."""
from fastnet.random import set_seed as set_random_seed
from fastnet.utils.np_utils import normalize, to_categorical
from fastnet.utils.plotting import plot_history
from fastnet.utils.progbar import Progbar

__all__ = ["set_random_seed", "to_categorical", "normalize", "plot_history", "Progbar",
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
