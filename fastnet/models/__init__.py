"""Models, as in ``keras.models``."""
from __future__ import annotations

from typing import TYPE_CHECKING

from fastnet.models.model import Model
from fastnet.models.sequential import Sequential

if TYPE_CHECKING:
    import os

    from fastnet._typing import CustomObjects

__all__ = ["Model", "Sequential", "load_model", "save_model", "model_from_json", "clone_model"]


def load_model(filepath: str | os.PathLike[str], custom_objects: CustomObjects | None = None, compile: bool = True,
               safe_mode: bool = True) -> Model:
    """Loads a model saved with ``model.save`` (or by Keras) in the ``.keras`` format."""
    from fastnet.models import saving

    return saving.load_model(filepath, custom_objects=custom_objects, compile=compile,
                             safe_mode=safe_mode)


def save_model(model: Model, filepath: str | os.PathLike[str], overwrite: bool = True, **kwargs) -> None:
    """Saves ``model`` to ``filepath`` (``.keras``), as ``model.save`` does."""
    return model.save(filepath, overwrite=overwrite, **kwargs)


def model_from_json(json_string: str, custom_objects: CustomObjects | None = None) -> Model:
    from fastnet.models import saving

    return saving.model_from_json(json_string, custom_objects=custom_objects)


def clone_model(model: Model) -> Model:
    """A new model with the same layers' configuration (fresh weights)."""
    return type(model).from_config(model.get_config())
