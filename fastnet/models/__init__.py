"""Models, as in ``keras.models``."""
from fastnet.models.model import Model
from fastnet.models.sequential import Sequential

__all__ = ["Model", "Sequential", "load_model", "save_model", "model_from_json", "clone_model"]


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """Loads a model saved with ``model.save`` (or by Keras) in the ``.keras`` format."""
    from fastnet.models import saving

    return saving.load_model(filepath, custom_objects=custom_objects, compile=compile,
                             safe_mode=safe_mode)


def save_model(model, filepath, overwrite=True, **kwargs):
    """Saves ``model`` to ``filepath`` (``.keras``), as ``model.save`` does."""
    return model.save(filepath, overwrite=overwrite, **kwargs)


def model_from_json(json_string, custom_objects=None):
    from fastnet.models import saving

    return saving.model_from_json(json_string, custom_objects=custom_objects)


def clone_model(model):
    """A new model with the same layers' configuration (fresh weights)."""
    return type(model).from_config(model.get_config())
