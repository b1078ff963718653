"""The data utilities against what Keras 3 returns on the same inputs.

The reference (keras_data_reference.npz) comes from tools/make_data_reference.py, which
ran Keras (JAX backend, grain datasets) on the inputs data_fixtures.py builds. Images are
compared within 1e-3 (of values in [0, 255]: float32 rounding of the resampling sums);
orders, labels, windows and padded values exactly.
"""
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                "tools"))

import data_fixtures as fx  # noqa: E402

from fastnet.datasets import _common  # noqa: E402
from fastnet.utils import (  # noqa: E402
    image_dataset_from_directory,
    pad_sequences,
    text_dataset_from_directory,
    timeseries_dataset_from_array,
)

pytest.importorskip("PIL")

REF = np.load(os.path.join(os.path.dirname(os.path.abspath(__file__)), "keras_data_reference.npz"))


def _cases(name):
    # The generator script holds the argument sets; read them from its source (it imports Keras).
    import ast

    path = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "tools",
                        "make_data_reference.py")
    tree = ast.parse(open(path, encoding="utf-8").read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and node.targets[0].id == name:
            return eval(compile(ast.Expression(node.value), path, "eval"))  # literal dicts of literals
    raise KeyError(name)


IMAGE_CASES = _cases("IMAGE_CASES")
SPLIT_CASES = _cases("SPLIT_CASES")
TS_CASES = _cases("TS_CASES")


@pytest.fixture(scope="module")
def image_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("images"))
    fx.make_image_tree(root)
    return root


def _collect(ds):
    xs, ys = [], []
    for batch in ds:
        if isinstance(batch, tuple):
            xs.append(np.asarray(batch[0]))
            ys.append(np.asarray(batch[1]))
        else:
            xs.append(np.asarray(batch))
    return np.concatenate(xs), (np.concatenate(ys) if ys else None)


@pytest.mark.parametrize("k", range(len(fx.PAD_CASES)))
def test_pad_sequences_matches_keras(k):
    seqs, kwargs = fx.PAD_CASES[k]
    out = pad_sequences(seqs, **kwargs)
    expected = REF[f"pad_{k}"]
    assert out.dtype == expected.dtype and out.shape == expected.shape
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("name", sorted(IMAGE_CASES))
def test_image_dataset_matches_keras(name, image_root):
    kwargs = IMAGE_CASES[name]
    ds = image_dataset_from_directory(image_root, verbose=False, **kwargs)
    x, y = _collect(ds)
    kx = REF[name + "_x"]
    assert x.shape == kx.shape and x.dtype == kx.dtype == np.float32
    np.testing.assert_allclose(x, kx, rtol=0, atol=1e-3)
    if name + "_y" in REF:
        assert y.dtype == REF[name + "_y"].dtype
        np.testing.assert_array_equal(y, REF[name + "_y"])
    else:
        assert y is None
    assert [os.path.relpath(p, image_root) for p in ds.file_paths] == list(REF[name + "_paths"])
    if name + "_classes" in REF:
        assert ds.class_names == list(REF[name + "_classes"])
    batch = kwargs["batch_size"]
    sizes = [len(b[0] if isinstance(b, tuple) else b) for b in ds]
    assert sizes[:-1] == [batch] * (len(sizes) - 1) and 0 < sizes[-1] <= batch
    assert len(ds) == len(sizes)


@pytest.mark.parametrize("name", sorted(SPLIT_CASES))
def test_validation_split_picks_keras_files(name, image_root):
    shuffle, seed, split = SPLIT_CASES[name]
    train, val = image_dataset_from_directory(image_root, verbose=False, shuffle=shuffle, seed=seed,
                                              validation_split=split, subset="both", image_size=(8, 8),
                                              batch_size=3)
    for ds, subset in ((train, "training"), (val, "validation")):
        assert [os.path.relpath(p, image_root) for p in ds.file_paths] == list(REF[f"{name}_{subset}_paths"])
    one = image_dataset_from_directory(image_root, verbose=False, shuffle=shuffle, seed=seed, validation_split=split,
                                       subset="validation", image_size=(8, 8), batch_size=3)
    assert one.file_paths == val.file_paths
    # Validation keeps the indexed order (as in Keras); training is reshuffled per pass.
    np.testing.assert_array_equal(_collect(val)[1], REF[f"{name}_val_y"])
    np.testing.assert_array_equal(np.sort(_collect(train)[1]), REF[f"{name}_train_labels_sorted"])
    assert not set(train.file_paths) & set(val.file_paths)


def test_training_subset_reshuffles_each_pass_with_its_seed(image_root):
    kw = dict(verbose=False, shuffle=True, seed=11, validation_split=0.2, subset="training", image_size=(4, 4),
              batch_size=2)
    ds = image_dataset_from_directory(image_root, **kw)
    first = np.concatenate([y for _, y in ds])
    passes = [np.concatenate([y for _, y in ds]) for _ in range(4)]
    assert any(not np.array_equal(first, p) for p in passes)
    assert all(sorted(first.tolist()) == sorted(p.tolist()) for p in passes)
    again = image_dataset_from_directory(image_root, **kw)
    np.testing.assert_array_equal(np.concatenate([y for _, y in again]), first)


def test_text_dataset_matches_keras_order(tmp_path):
    fx.make_text_tree(str(tmp_path))
    ds = text_dataset_from_directory(str(tmp_path), shuffle=False, batch_size=2, verbose=False)
    assert [os.path.relpath(p, tmp_path) for p in ds.file_paths] == list(REF["text_sorted_paths"])
    assert ds.class_names == list(REF["text_classes"])
    texts, labels = _collect(ds)
    np.testing.assert_array_equal(labels, REF["text_sorted_labels"])
    expected = [fx.TEXT_LAYOUT[p.split(os.sep)[0]][p.split(os.sep)[1]] for p in REF["text_sorted_paths"]]
    assert texts.dtype == object and list(texts) == expected
    shuffled = text_dataset_from_directory(str(tmp_path), shuffle=True, seed=3, batch_size=None, verbose=False)
    assert [os.path.relpath(p, tmp_path) for p in shuffled.file_paths] == list(REF["text_shuffled_paths"])
    short = text_dataset_from_directory(str(tmp_path), shuffle=False, batch_size=8, max_length=4, verbose=False)
    assert [len(t) for t in next(iter(short))[0]] == [4] * 6


@pytest.mark.parametrize("name", sorted(TS_CASES))
def test_timeseries_matches_keras(name):
    kwargs = dict(TS_CASES[name])
    with_targets = kwargs.pop("with_targets", True)
    data = np.arange(100, dtype="float32").reshape(50, 2)
    targets = np.arange(50) * 10
    ds = timeseries_dataset_from_array(data, targets if with_targets else None, **kwargs)
    if kwargs.get("batch_size") is None:
        x = np.stack([item for item in ds])
        y = None
    else:
        x, y = _collect(ds)
    kx = REF[name + "_x"]
    assert x.shape == kx.shape and x.dtype == kx.dtype
    if kwargs.get("shuffle"):
        # Keras's within-pass buffer shuffle comes from its data library's RNG: compare the windows as sets.
        key = np.lexsort(x.reshape(len(x), -1).T)
        kkey = np.lexsort(kx.reshape(len(kx), -1).T)
        np.testing.assert_array_equal(x[key], kx[kkey])
        np.testing.assert_array_equal(y[key], REF[name + "_y"][kkey])
        pairs = {(tuple(w.ravel()), t) for w, t in zip(x, y)}
        assert pairs == {(tuple(w.ravel()), t) for w, t in zip(kx, REF[name + "_y"])}
    else:
        np.testing.assert_array_equal(x, kx)
        if name + "_y" in REF:
            np.testing.assert_array_equal(y, REF[name + "_y"])


# ----------------------------------------------------------------------------- datasets
_DATASET_CALLS = {
    "mnist": [{}],
    "fashion_mnist": [{}],
    "imdb": [{}, {"num_words": 20, "skip_top": 3, "maxlen": 9, "seed": 1},
             {"start_char": None, "oov_char": None, "num_words": 15, "index_from": 0}],
    "reuters": [{}, {"num_words": 30, "test_split": 0.3, "maxlen": 10, "seed": 4}],
    "boston_housing": [{}, {"test_split": 0.25, "seed": 3}],
    "california_housing": [{}, {"version": "small", "seed": 9}],
}


@pytest.fixture
def fixture_cache(tmp_path, monkeypatch):
    """Keras-format fixture files served from file:// origins, with their own hashes, into an
    empty KERAS_HOME: the loaders download them through get_file, then read them."""
    from fastnet.utils.file_utils import hash_file

    origin_dir = tmp_path / "origin"
    origin_dir.mkdir()
    files = {}
    for name, data in fx.dataset_files().items():
        path = origin_dir / name
        path.write_bytes(data)
        files[name] = (path.as_uri(), hash_file(str(path)))
    monkeypatch.setattr(_common, "FILES", files)
    home = tmp_path / "keras_home"
    monkeypatch.setenv("KERAS_HOME", str(home))
    return home


@pytest.mark.parametrize("module,k", [(m, k) for m, calls in _DATASET_CALLS.items() for k in range(len(calls))])
def test_dataset_loaders_match_keras(module, k, fixture_cache, capsys):
    import importlib

    mod = importlib.import_module(f"fastnet.datasets.{module}")
    (xtr, ytr), (xte, yte) = mod.load_data(**_DATASET_CALLS[module][k])
    for part, arr in (("x_train", xtr), ("y_train", ytr), ("x_test", xte), ("y_test", yte)):
        key = f"ds_{module}_{k}_{part}"
        arr = np.asarray(arr)
        if arr.dtype == object:
            np.testing.assert_array_equal([len(s) for s in arr], REF[key + "_len"])
            arr = np.concatenate([np.asarray(s, dtype=np.int64) for s in arr])
        assert arr.dtype == REF[key].dtype, (key, arr.dtype, REF[key].dtype)
        np.testing.assert_array_equal(arr, REF[key])
    assert "Downloading data from file:" in capsys.readouterr().out
    sub = os.path.join("datasets", "fashion-mnist") if module == "fashion_mnist" else "datasets"
    assert os.listdir(fixture_cache / sub)


def test_cifar_loaders_read_keras_layout(fixture_cache):
    from fastnet.datasets import cifar10, cifar100

    (xtr, ytr), (xte, yte) = cifar10.load_data()
    assert xtr.shape == (15, 32, 32, 3) and xtr.dtype == np.uint8
    assert ytr.shape == (15, 1) and xte.shape == (4, 32, 32, 3) and yte.shape == (4, 1)
    assert os.path.isdir(fixture_cache / "datasets" / "cifar-10-batches-py-target" / "cifar-10-batches-py")
    import io
    import pickle
    import tarfile

    raw = tarfile.open(fileobj=io.BytesIO(fx.dataset_files()["cifar-10-batches-py-target"]))
    batch1 = pickle.loads(raw.extractfile("cifar-10-batches-py/data_batch_1").read())
    np.testing.assert_array_equal(xtr[:3], batch1[b"data"].reshape(3, 3, 32, 32).transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(ytr[:3, 0], batch1[b"labels"])
    (ftr, fy), _ = cifar100.load_data("fine")
    _, (_, cy) = cifar100.load_data("coarse")
    assert ftr.shape == (6, 32, 32, 3) and fy.shape == (6, 1) and cy.shape == (3, 1) and cy.max() < 20
    with pytest.raises(ValueError, match='label_mode must be "fine" or "coarse"'):
        cifar100.load_data("medium")


def test_word_indices(fixture_cache):
    from fastnet.datasets import imdb, reuters

    assert imdb.get_word_index() == {"the": 1, "and": 2, "film": 3}
    assert reuters.get_word_index()["said"] == 2
    assert len(reuters.get_label_names()) == 46


def test_loaders_use_files_keras_already_cached(tmp_path, monkeypatch):
    """A cached file with the right hash is read without any download (origin unreachable)."""
    from fastnet.datasets import mnist
    from fastnet.utils.file_utils import hash_file

    data = fx.dataset_files()["mnist.npz"]
    cache = tmp_path / "datasets"
    cache.mkdir()
    (cache / "mnist.npz").write_bytes(data)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(_common, "FILES", {"mnist.npz": ("http://127.0.0.1:9/nothing-here",
                                                          hash_file(str(cache / "mnist.npz")))})
    (x, y), _ = mnist.load_data()
    np.testing.assert_array_equal(x, REF["ds_mnist_0_x_train"])


def test_keras_hashes_are_kept():
    assert _common.FILES["mnist.npz"][1] == "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
    assert _common.FILES["imdb_word_index.json"][1] == "bfafd718b763782e994055a2d397834f"
    assert _common.FILES["cifar-10-batches-py-target"][0].endswith("cifar-10-python.tar.gz")
