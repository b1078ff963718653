"""Records what Keras 3 returns for the data utilities, for tests/data_input to compare against.

Run with Keras 3, JAX, grain and Pillow installed:

    KERAS_BACKEND=jax /work/kvenv/bin/python tools/make_data_reference.py

It writes tests/data_input/keras_data_reference.npz. The inputs (sequences, image and text
folders, dataset files) come from tests/data_input/data_fixtures.py, so the tests rebuild
the very same inputs without Keras. Image and time-series datasets are built with
``format="grain"`` (no TensorFlow needed); file orders come from Keras's own indexing.
"""
from __future__ import annotations

import os
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "data_input"))
os.environ.setdefault("KERAS_BACKEND", "jax")

import data_fixtures as fx  # noqa: E402
import keras  # noqa: E402
from keras.src.utils import dataset_utils  # noqa: E402

OUT = os.path.join(ROOT, "tests", "data_input", "keras_data_reference.npz")

IMAGE_CASES = {
    "img_a": dict(shuffle=False, image_size=(8, 8), batch_size=4),
    "img_b": dict(shuffle=False, image_size=(6, 10), batch_size=5, color_mode="grayscale",
                  label_mode="categorical", crop_to_aspect_ratio=True),
    "img_c": dict(shuffle=False, image_size=(5, 5), batch_size=3, color_mode="rgba", label_mode=None,
                  interpolation="nearest"),
    "img_d": dict(shuffle=False, image_size=(4, 4), batch_size=2, class_names=["fish", "cats"]),
    "img_e": dict(shuffle=False, image_size=(9, 7), batch_size=4, pad_to_aspect_ratio=True,
                  interpolation="bicubic"),
    "img_f": dict(shuffle=False, image_size=(16, 16), batch_size=4, label_mode="binary",
                  class_names=["cats", "dogs"]),
}
SPLIT_CASES = {  # (shuffle, seed, validation_split)
    "split_a": (True, 42, 0.25),
    "split_b": (True, 7, 0.5),
    "split_c": (False, None, 0.3),
}
TS_CASES = {
    "ts_a": dict(sequence_length=5, sequence_stride=2, sampling_rate=2, batch_size=4, start_index=3, end_index=40),
    "ts_b": dict(sequence_length=3, batch_size=7),
    "ts_c": dict(sequence_length=4, sequence_stride=3, batch_size=None, with_targets=False),
    "ts_d": dict(sequence_length=6, sampling_rate=3, batch_size=5, shuffle=True, seed=5),
}


def rel(paths, root):
    return np.array([os.path.relpath(p, root) for p in paths])


def collect(ds):
    xs, ys = [], []
    for batch in ds:
        if isinstance(batch, tuple):
            xs.append(np.asarray(batch[0]))
            ys.append(np.asarray(batch[1]))
        else:
            xs.append(np.asarray(batch))
    return np.concatenate(xs), (np.concatenate(ys) if ys else None)


def datasets_reference(out):
    """Keras's loaders on the fixture files (get_file pointed at them: no download)."""
    import importlib

    with tempfile.TemporaryDirectory() as root:
        paths = {}
        for name, data in fx.dataset_files().items():
            paths[name] = os.path.join(root, name)
            with open(paths[name], "wb") as f:
                f.write(data)

        def fake_get_file(fname=None, origin=None, **kwargs):
            return paths[os.path.basename(origin)] if os.path.basename(origin) in paths else paths[fname]

        calls = {
            "mnist": [{}],
            "fashion_mnist": [{}],
            "imdb": [{}, {"num_words": 20, "skip_top": 3, "maxlen": 9, "seed": 1},
                     {"start_char": None, "oov_char": None, "num_words": 15, "index_from": 0}],
            "reuters": [{}, {"num_words": 30, "test_split": 0.3, "maxlen": 10, "seed": 4}],
            "boston_housing": [{}, {"test_split": 0.25, "seed": 3}],
            "california_housing": [{}, {"version": "small", "seed": 9}],
        }
        for module, variants in calls.items():
            mod = importlib.import_module(f"keras.src.datasets.{module}")
            mod.get_file = fake_get_file
            for k, kw in enumerate(variants):
                (xtr, ytr), (xte, yte) = mod.load_data(**kw)
                for part, arr in (("x_train", xtr), ("y_train", ytr), ("x_test", xte), ("y_test", yte)):
                    arr = np.asarray(arr)
                    if arr.dtype == object:  # ragged sequences: lengths and the concatenation
                        out[f"ds_{module}_{k}_{part}_len"] = np.array([len(s) for s in arr])
                        arr = np.concatenate([np.asarray(s, dtype=np.int64) for s in arr])
                    out[f"ds_{module}_{k}_{part}"] = arr


def main():
    out: dict[str, np.ndarray] = {}
    for i, (seqs, kw) in enumerate(fx.PAD_CASES):
        out[f"pad_{i}"] = keras.utils.pad_sequences(seqs, **kw)

    with tempfile.TemporaryDirectory() as root:
        fx.make_image_tree(root)
        for name, kw in IMAGE_CASES.items():
            ds = keras.utils.image_dataset_from_directory(root, format="grain", verbose=False, **kw)
            x, y = collect(ds)
            out[name + "_x"] = x
            if y is not None:
                out[name + "_y"] = y
            labels = None if kw.get("label_mode", "int") is None else "inferred"
            paths, _, names = dataset_utils.index_directory(root, labels, (".bmp", ".gif", ".jpeg", ".jpg", ".png"),
                                                            class_names=kw.get("class_names"), shuffle=False,
                                                            verbose=False)
            out[name + "_paths"] = rel(paths, root)
            if names is not None:
                out[name + "_classes"] = np.array(names)
        for name, (shuffle, seed, split) in SPLIT_CASES.items():
            paths, labels, _ = dataset_utils.index_directory(root, "inferred",
                                                             (".bmp", ".gif", ".jpeg", ".jpg", ".png"),
                                                             shuffle=shuffle, seed=seed, verbose=False)
            for subset in ("training", "validation"):
                p, lab = dataset_utils.get_training_or_validation_split(paths, labels, split, subset)
                out[f"{name}_{subset}_paths"] = rel(p, root)
                out[f"{name}_{subset}_labels"] = np.asarray(lab)
            train, val = keras.utils.image_dataset_from_directory(
                root, format="grain", verbose=False, shuffle=shuffle, seed=seed, validation_split=split,
                subset="both", image_size=(8, 8), batch_size=3)
            out[f"{name}_train_labels_sorted"] = np.sort(collect(train)[1])
            out[f"{name}_val_y"] = collect(val)[1]

    with tempfile.TemporaryDirectory() as root:
        fx.make_text_tree(root)
        paths, labels, names = dataset_utils.index_directory(root, "inferred", (".txt",), shuffle=True, seed=3,
                                                             verbose=False)
        out["text_shuffled_paths"] = rel(paths, root)
        out["text_shuffled_labels"] = np.asarray(labels)
        out["text_classes"] = np.array(names)
        paths, labels, _ = dataset_utils.index_directory(root, "inferred", (".txt",), shuffle=False, verbose=False)
        out["text_sorted_paths"] = rel(paths, root)
        out["text_sorted_labels"] = np.asarray(labels)

    data = np.arange(100, dtype="float32").reshape(50, 2)
    targets = np.arange(50) * 10
    for name, kw in TS_CASES.items():
        kw = dict(kw)
        with_targets = kw.pop("with_targets", True)
        ds = keras.utils.timeseries_dataset_from_array(data, targets if with_targets else None, format="grain", **kw)
        if kw.get("batch_size") is None:
            items = list(ds)
            out[name + "_x"] = np.stack([np.asarray(i[0] if isinstance(i, tuple) else i) for i in items])
        else:
            x, y = collect(ds)
            out[name + "_x"] = x
            if y is not None:
                out[name + "_y"] = y
    datasets_reference(out)
    np.savez_compressed(OUT, **out)
    print(f"wrote {OUT}: {len(out)} arrays, {os.path.getsize(OUT)} bytes")


if __name__ == "__main__":
    main()
