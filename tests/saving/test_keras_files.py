"""Files written by Keras 3 load in fastnet and predict what Keras predicted; files written
by fastnet have Keras's layout (zip entries, config keys and classes, HDF5 paths and shapes)."""
import io

import numpy as np
import pytest
from saving_helpers import (
    ATOL,
    NAMES,
    RTOL,
    archive,
    config_skeleton,
    expected,
    h5_layout,
    h5_values,
    model_from_spec,
    path,
    strip_ids,
    tree_diff,
)

from fastnet.models import load_model


@pytest.mark.parametrize("name", NAMES)
def test_keras_archive_loads_and_predicts_as_keras(name):
    x, want, weights = expected(name)
    model = load_model(path(name, ".keras"))
    np.testing.assert_allclose(model.predict(x, verbose=0), want, rtol=RTOL, atol=ATOL)
    got = model.get_weights()
    assert len(got) == len(weights)
    for g, w in zip(got, weights):
        np.testing.assert_array_equal(g, w)
    assert model.compiled


@pytest.mark.parametrize("name", NAMES)
def test_keras_archive_without_compile(name):
    x, want, _ = expected(name)
    model = load_model(path(name, ".keras"), compile=False)
    assert not model.compiled and model.optimizer is None
    np.testing.assert_allclose(model.predict(x, verbose=0), want, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("suffix", [".weights.h5", ".keras"])
def test_keras_weights_load_into_a_fastnet_built_model(name, suffix):
    x, want, weights = expected(name)
    model = model_from_spec(name, compile=False)
    model.load_weights(path(name, suffix))
    for g, w in zip(model.get_weights(), weights):
        np.testing.assert_array_equal(g, w)
    np.testing.assert_allclose(model.predict(x, verbose=0), want, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name", NAMES)
def test_optimizer_state_comes_from_the_file(name):
    _, _, _, weights = archive(path(name, ".keras"))
    stored = h5_values(weights)
    model = load_model(path(name, ".keras"))
    opt_vars = model.optimizer.variables
    n = len([k for k in stored if k.startswith("optimizer/vars/")])
    assert n == len(opt_vars) > 2
    for i, v in enumerate(opt_vars):
        np.testing.assert_array_equal(np.asarray(v), stored[f"optimizer/vars/{i}"])
    assert model.optimizer.name == stored["optimizer/vars"]["name"]


@pytest.mark.parametrize("name", NAMES)
def test_optimizer_state_comes_from_a_weights_file_into_a_compiled_model(name):
    stored = h5_values(open(path(name, ".weights.h5"), "rb").read())
    model = model_from_spec(name)
    model.load_weights(path(name, ".weights.h5"))
    for i, v in enumerate(model.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(v), stored[f"optimizer/vars/{i}"])


@pytest.mark.parametrize("name", NAMES)
def test_fastnet_written_archive_has_keras_layout(name, tmp_path):
    """A model built in fastnet (not loaded) saves with the structure Keras wrote for the
    same architecture: entries, config keys and classes, HDF5 paths, shapes and dtypes."""
    model = model_from_spec(name)
    model.optimizer.build(model.trainable_weights)
    out = tmp_path / "m.keras"
    model.save(out)
    k_names, k_cfg, k_meta, k_w = archive(path(name, ".keras"))
    f_names, f_cfg, f_meta, f_w = archive(out)
    assert f_names == k_names == ["metadata.json", "config.json", "model.weights.h5"]
    assert set(k_meta) <= set(f_meta) and f_meta["keras_version"].startswith("3.")
    diff = tree_diff(config_skeleton(k_cfg), config_skeleton(f_cfg))
    assert not diff, "config structure differs from Keras's:\n" + "\n".join(diff)
    diff = tree_diff(h5_layout(k_w), h5_layout(f_w))
    assert not diff, "HDF5 layout differs from Keras's:\n" + "\n".join(diff)


@pytest.mark.parametrize("name", NAMES)
def test_fastnet_written_weights_file_has_keras_layout(name, tmp_path):
    model = model_from_spec(name)
    model.optimizer.build(model.trainable_weights)
    out = tmp_path / "w.weights.h5"
    model.save_weights(out)
    diff = tree_diff(h5_layout(path(name, ".weights.h5")), h5_layout(str(out)))
    assert not diff, "HDF5 layout differs from Keras's:\n" + "\n".join(diff)


@pytest.mark.parametrize("name", NAMES)
def test_keras_file_saved_again_by_fastnet_is_the_same(name, tmp_path):
    """Load a Keras file and save it: the config (values included) and every stored array
    and name are what Keras wrote."""
    model = load_model(path(name, ".keras"))
    out = tmp_path / "again.keras"
    model.save(out)
    _, k_cfg, _, k_w = archive(path(name, ".keras"))
    _, f_cfg, _, f_w = archive(out)
    diff = tree_diff(strip_ids(k_cfg), strip_ids(f_cfg))
    assert not diff, "config differs from Keras's:\n" + "\n".join(diff)
    kv, fv = h5_values(k_w), h5_values(f_w)
    assert sorted(kv) == sorted(fv)
    for key in kv:
        if isinstance(kv[key], dict):
            assert kv[key] == fv[key], key
        else:
            assert kv[key].dtype == fv[key].dtype, key
            np.testing.assert_array_equal(kv[key], fv[key], err_msg=key)


def test_keras_archive_from_a_file_object():
    x, want, _ = expected("seed_mlp")
    with open(path("seed_mlp", ".keras"), "rb") as f:
        model = load_model(io.BytesIO(f.read()))
    np.testing.assert_allclose(model.predict(x, verbose=0), want, rtol=RTOL, atol=ATOL)
