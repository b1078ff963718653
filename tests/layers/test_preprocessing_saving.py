"""State of the preprocessing layers in .keras files: the hooks Keras's saving calls
(save_own_variables / load_own_variables / save_assets / load_assets) with Keras's names and
layouts, read back from files Keras wrote (tests/data/keras_preprocessing/model_*.keras)."""
import io
import json
import os
import tempfile
import zipfile

import numpy as np
import pytest

import fastnet
from fastnet import layers as L

h5py = pytest.importorskip("h5py")

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "keras_preprocessing")
CORPUS = ["The quick brown fox jumps over the lazy dog.", "the dog barks; the FOX runs", "to be or not to be"]


def _keys(layers):
    used, out = {}, []
    for layer in layers:
        key = fastnet.backend.to_snake_case(type(layer).__name__)
        if key in used:
            used[key] += 1
            key = f"{key}_{used[key]}"
        else:
            used[key] = 0
        out.append(key)
    return out


def load_layers_from_keras_file(path):
    """The layers of a single-chain model saved by Keras, with their state restored through
    the hooks alone (what fastnet's loader is to call), in order."""
    with zipfile.ZipFile(path) as zf:
        config = json.loads(zf.read("config.json"))
        weights = zf.read("model.weights.h5")
        tmp = tempfile.mkdtemp()
        zf.extractall(tmp, [n for n in zf.namelist() if n.startswith("assets/")])
    entries = [c for c in config["config"]["layers"] if c["class_name"] != "InputLayer"]
    layers = [L.deserialize(c) for c in entries]
    with h5py.File(io.BytesIO(weights), "r") as h5:
        keys = _keys(layers)
        for layer, key in zip(layers, keys):
            group = h5.get(f"layers/{key}/vars")
            store = {k: np.asarray(group[k]) for k in group.keys()} if group is not None else {}
            if hasattr(layer, "load_own_variables"):
                layer.load_own_variables(store)
            elif store:
                layer.set_weights([store[str(i)] for i in range(len(store))])
            assets = os.path.join(tmp, "assets", "layers", key)
            if hasattr(layer, "load_assets") and os.path.isdir(assets):
                layer.load_assets(assets)
    return layers


def run_chain(layers, x):
    h = x
    for layer in layers:
        h = layer(h)
    return h


@pytest.mark.parametrize("name", ["model_text", "model_lookup_tfidf", "model_image", "model_norm"])
def test_keras_file_state_through_hooks(name):
    d = np.load(os.path.join(DATA, name + ".npz"))
    layers = load_layers_from_keras_file(os.path.join(DATA, name + ".keras"))
    y = run_chain(layers, d["x"])
    np.testing.assert_allclose(y, d["y"], rtol=1e-5, atol=1e-5)


def test_keras_text_file_vocabulary_and_config():
    layers = load_layers_from_keras_file(os.path.join(DATA, "model_text.keras"))
    tv = layers[0]
    assert isinstance(tv, L.TextVectorization)
    vocab = tv.get_vocabulary()
    assert vocab[:2] == ["", "[UNK]"] and vocab[2] == "the" and len(vocab) == tv.vocabulary_size() == 30


def test_sequential_normalization_file_loads_with_load_model():
    # A Sequential model needs nothing new from the loader: Normalization's state is its variables.
    d = np.load(os.path.join(DATA, "model_norm.npz"))
    model = fastnet.saving.load_model(os.path.join(DATA, "model_norm.keras"))
    np.testing.assert_allclose(model.predict(d["x"], verbose=0), d["y"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["model_text", "model_lookup_tfidf", "model_image"])
def test_keras_files_load_with_load_model(name):
    d = np.load(os.path.join(DATA, name + ".npz"))
    model = fastnet.saving.load_model(os.path.join(DATA, name + ".keras"))
    np.testing.assert_allclose(model.predict(d["x"], verbose=0), d["y"], rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------- hooks round trip
def _roundtrip(layer, x):
    store = {}
    layer.save_own_variables(store)
    with tempfile.TemporaryDirectory() as tmp:
        layer.save_assets(tmp)
        files = sorted(os.listdir(tmp))
        clone = type(layer).from_config(layer.get_config())
        clone.load_own_variables(store)
        clone.load_assets(tmp)
    np.testing.assert_array_equal(np.asarray(clone(x)), np.asarray(layer(x)))
    return store, files


def test_text_vectorization_hooks_write_keras_layout():
    tv = L.TextVectorization(max_tokens=20, output_sequence_length=5)
    tv.adapt(CORPUS)
    store, files = _roundtrip(tv, np.array(["the quick dog", "unknown"]))
    assert store == {} and files == ["vocabulary.txt"]
    with tempfile.TemporaryDirectory() as tmp:
        tv.save_assets(tmp)
        with open(os.path.join(tmp, "vocabulary.txt"), encoding="utf-8") as f:
            lines = f.read().split("\n")
    assert lines == tv.get_vocabulary() and lines[0] == "" and lines[1] == "[UNK]"


def test_tf_idf_hooks_store_idf_weights():
    layer = L.StringLookup(output_mode="tf_idf")
    layer.adapt(np.array([["a", "b"], ["a", "c"]]))
    store, files = _roundtrip(layer, np.array([["a", "c"], ["b", "z"]]))
    assert list(store) == ["idf_weights"] and files == ["vocabulary.txt"]
    np.testing.assert_allclose(store["idf_weights"], layer.idf_weights)


def test_given_vocabulary_lives_in_the_config_not_assets():
    layer = L.IntegerLookup(vocabulary=[4, 9, 2])
    store, files = _roundtrip(layer, np.array([[4, 2, 7]]))
    assert store == {} and files == []
    assert layer.get_config()["vocabulary"] == [4, 9, 2]


def test_normalization_variables_in_keras_order():
    layer = L.Normalization()
    layer.adapt(np.random.default_rng(0).standard_normal((20, 3)).astype("float32"))
    store = {}
    layer.save_own_variables(store)
    assert sorted(store) == ["0", "1", "2"]
    assert store["0"].shape == (3,) and store["2"].shape == () and store["2"].dtype == np.int32
    clone = L.Normalization.from_config(layer.get_config())
    clone.build_from_config(layer.get_build_config())
    clone.load_own_variables(store)
    x = np.ones((2, 3), "float32")
    np.testing.assert_array_equal(clone(x), layer(x))
    with pytest.raises(ValueError, match="expects 3 variables"):
        clone.load_own_variables({"0": store["0"]})


def test_discretization_state_is_its_config():
    layer = L.Discretization(num_bins=4)
    layer.adapt(np.arange(100, dtype="float32"))
    clone = L.Discretization.from_config(layer.get_config())
    x = np.array([[3.0, 30.0, 60.0, 99.0]])
    np.testing.assert_array_equal(clone(x), layer(x))


# ---------------------------------------------------------------------- serialize / deserialize
SERIALIZED = [
    lambda: L.Normalization(mean=[1.0, 2.0], variance=[1.0, 4.0]),
    lambda: L.Rescaling(np.array([0.5, 2.0]), offset=1.0),
    lambda: L.Resizing(4, 5, interpolation="bicubic", pad_to_aspect_ratio=True, fill_value=2.0),
    lambda: L.CenterCrop(3, 3),
    lambda: L.RandomFlip("vertical", seed=3),
    lambda: L.RandomRotation((-0.1, 0.2), fill_mode="constant", seed=3),
    lambda: L.RandomZoom(0.2, (0.1, 0.3), seed=3),
    lambda: L.RandomTranslation(0.1, 0.2, interpolation="nearest", seed=3),
    lambda: L.RandomContrast(0.3, seed=3),
    lambda: L.RandomBrightness((-0.2, 0.1), value_range=(0, 1), seed=3),
    lambda: L.RandomCrop(3, 4, seed=3),
    lambda: L.TextVectorization(vocabulary=["a", "b"], ngrams=(1, 2), output_mode="count"),
    lambda: L.StringLookup(vocabulary=["a", "b"], num_oov_indices=2, salt=[1, 2], mask_token=""),
    lambda: L.IntegerLookup(vocabulary=[3, 1], output_mode="multi_hot"),
    lambda: L.CategoryEncoding(5, output_mode="count"),
    lambda: L.Discretization(bin_boundaries=[0.0, 1.0], output_mode="one_hot"),
    lambda: L.Hashing(8, salt=3, output_mode="multi_hot"),
    lambda: L.Hashing(8),
]


@pytest.mark.parametrize("make", SERIALIZED)
def test_layers_round_trip_through_keras_serialization(make):
    layer = make()
    ser = L.serialize(layer)
    json.dumps(ser)  # the config is plain JSON
    clone = L.deserialize(json.loads(json.dumps(ser)))
    assert type(clone) is type(layer)
    assert json.dumps(clone.get_config(), sort_keys=True, default=str) == \
        json.dumps(layer.get_config(), sort_keys=True, default=str).replace(f'"{layer.name}"', f'"{clone.name}"')
