"""The model-saving entry points that ``Model.save`` and friends call (see fastnet.saving)."""
from fastnet.saving import (  # noqa: F401
    DeserializationError,
    FileFormatError,
    WeightsMismatchError,
    load_model,
    load_weights,
    model_from_json,
    model_to_json,
    save_model,
    save_weights,
)

__all__ = ["save_model", "load_model", "save_weights", "load_weights", "model_to_json",
           "model_from_json", "FileFormatError", "DeserializationError", "WeightsMismatchError"]
