"""Models using the convolution-variant, normalisation, regularisation and shape layers, saved
by Keras 3 as .keras files (tools/gen_layers_reference_extra.py --models): they load in
fastnet and predict what Keras predicted (float32, rtol 1e-4 / atol 1e-5), and fastnet
writes them back with the same layer classes and config keys."""
import json
import os
import zipfile

import numpy as np
import pytest
from v2_helpers import DATA

from fastnet.models import load_model

MODELS = os.path.join(DATA, "models")
NAMES = ["sepnet", "vol3d", "seqnet"]


def _layer_configs(path):
    with zipfile.ZipFile(path) as z:
        cfg = json.loads(z.read("config.json"))
    return [(lay["class_name"], set(lay["config"])) for lay in cfg["config"]["layers"]]


@pytest.mark.parametrize("name", NAMES)
def test_keras_file_loads_and_predicts_as_keras(name):
    d = np.load(os.path.join(MODELS, name + ".npz"))
    model = load_model(os.path.join(MODELS, name + ".keras"))
    np.testing.assert_allclose(model.predict(d["x"], verbose=0), d["y"], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_fastnet_writes_the_same_layers_back(name, tmp_path):
    src = os.path.join(MODELS, name + ".keras")
    d = np.load(os.path.join(MODELS, name + ".npz"))
    model = load_model(src)
    out = str(tmp_path / (name + ".keras"))
    model.save(out)
    np.testing.assert_allclose(load_model(out).predict(d["x"], verbose=0), d["y"], rtol=1e-4, atol=1e-5)
    theirs, ours = _layer_configs(src), _layer_configs(out)
    assert [c for c, _ in ours] == [c for c, _ in theirs]
    for (cls, keys_k), (_, keys_f) in zip(theirs, ours):
        missing = keys_k - keys_f - {"build_config"}
        assert not missing, f"{cls}: config keys Keras writes and fastnet does not: {sorted(missing)}"
