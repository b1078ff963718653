"""Saving and loading models in Keras 3's formats, as in ``keras.saving``.

``model.save("m.keras")`` writes the Keras 3 ``.keras`` archive and
``fastnet.models.load_model("m.keras")`` reads it back, with files written by Keras
and by fastnet alike; ``model.save_weights("w.weights.h5")`` and ``load_weights``
handle weights (and optimizer state) only. Loading never runs code from a file:
class names resolve only through fastnet's registries or ``custom_objects``.

The HDF5 part needs h5py (``pip install fastnet[h5]``), imported only when used.

Example:
    >>> import numpy as np, os, tempfile
    >>> import fastnet
    >>> model = fastnet.Sequential([fastnet.Input((3,)), fastnet.layers.Dense(2)])
    >>> path = os.path.join(tempfile.mkdtemp(), "m.keras")
    >>> model.save(path)
    >>> again = fastnet.models.load_model(path)
    >>> x = np.ones((1, 3), np.float32)
    >>> bool(np.allclose(model.predict(x, verbose=0), again.predict(x, verbose=0)))
    True
"""
from fastnet.saving._files import FileFormatError, WeightsMismatchError
from fastnet.saving.object_registration import (
    CustomObjectScope,
    custom_object_scope,
    get_custom_objects,
    get_registered_name,
    get_registered_object,
    register_keras_serializable,
)
from fastnet.saving.saving_lib import (
    load_model,
    load_weights,
    model_from_json,
    model_to_json,
    save_model,
    save_weights,
)
from fastnet.saving.serialization import DeserializationError

__all__ = [
    "save_model", "load_model", "save_weights", "load_weights", "model_to_json",
    "model_from_json", "FileFormatError", "DeserializationError", "WeightsMismatchError",
    "register_keras_serializable", "get_custom_objects", "get_registered_name", "get_registered_object",
    "CustomObjectScope", "custom_object_scope",
]
