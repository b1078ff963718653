"""Saving and loading models in Keras 3's formats, as in ``keras.saving``.

``model.save("m.keras")`` writes the Keras 3 ``.keras`` archive and
``fastnet.models.load_model("m.keras")`` reads it back, with files written by Keras
and by fastnet alike; ``model.save_weights("w.weights.h5")`` and ``load_weights``
handle weights (and optimizer state) only. Loading never runs code from a file:
class names resolve only through fastnet's registries or ``custom_objects``.

The HDF5 part needs h5py (``pip install fastnet[h5]``), imported only when used.

Files are treated as untrusted input:

- weights are read only from the file itself: HDF5 external storage, virtual
  datasets, external links and soft links that leave the file are refused (as are
  compressed datasets), before any data is read;
- what a ``.keras`` archive may make the reader hold is bounded: ``config.json``
  8 MB, ``metadata.json`` 1 MB, ``model.weights.h5`` a few times the model's own
  weights, checked on the declared sizes and again on the bytes read, and the
  weights are read in place rather than copied into memory;
- every weight fastnet saves carries a CRC-32 (the ``fastnet_crc32`` attribute,
  ignored by Keras), verified on load, so a damaged file is refused rather than
  loading other numbers; files without it (Keras's) load as before.

Any such problem raises ``FileFormatError`` naming the file and the object. Saves
write a temporary ``.fastnet-save-<random>.tmp`` next to the target and rename it
over the target (a symlink's target, the link kept); one left by a killed save is
removed by a later save to the same folder once it is 15 minutes old and no running
save holds its lock.

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
