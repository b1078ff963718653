"""Deterministic fixtures shared by the data-input tests and tools/make_data_reference.py
(which runs Keras on the same files to record what Keras returns)."""
from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import tarfile
import zipfile

import numpy as np

PAD_CASES = [
    ([[1, 2, 3], [4, 5], [6], []], {}),
    ([[1, 2, 3], [4, 5], [6]], {"maxlen": 2}),
    ([[1, 2, 3], [4, 5], [6]], {"maxlen": 2, "truncating": "post"}),
    ([[1, 2, 3], [4, 5], [6]], {"maxlen": 4, "padding": "post", "value": -1}),
    ([[1.5, 2.5], [3.25]], {"dtype": "float32", "value": 0.5}),
    ([[[1, 2], [3, 4]], [[5, 6]]], {"maxlen": 3}),
    ([[1, 2, 3, 4, 5], [6, 7]], {"maxlen": 3, "padding": "post", "truncating": "post"}),
]

IMAGE_LAYOUT = {
    # class folder -> list of (relative file name, (height, width), mode)
    "cats": [("c0.png", (12, 16), "RGB"), ("c1.png", (16, 12), "L"), ("c2.jpg", (10, 10), "RGB"),
             ("sub/c3.png", (9, 14), "RGBA"), ("c4.PNG", (8, 8), "RGB"), ("notes.txt", None, None)],
    "dogs": [("d0.png", (20, 10), "RGB"), ("d1.png", (11, 11), "RGB"), ("d2.bmp", (7, 13), "RGB"),
             ("d3.png", (16, 16), "L"), ("d4.gif", (12, 12), "L")],
    "fish": [("f0.png", (15, 9), "RGB"), ("f1.png", (13, 17), "RGB"), ("f2.png", (10, 24), "RGBA")],
    ".hidden": [("h0.png", (8, 8), "RGB")],
}


def make_image_tree(root: str) -> None:
    """Writes the IMAGE_LAYOUT images (seeded random pixels; lossless except the jpg)."""
    from PIL import Image

    rng = np.random.default_rng(1234)
    for cls in sorted(IMAGE_LAYOUT):
        for name, size, mode in IMAGE_LAYOUT[cls]:
            path = os.path.join(root, cls, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            if size is None:
                with open(path, "w") as f:
                    f.write("not an image")
                continue
            channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
            pixels = rng.integers(0, 256, size + (channels,), dtype=np.uint8)
            img = Image.fromarray(pixels[:, :, 0] if channels == 1 else pixels, mode)
            img.save(path)


TEXT_LAYOUT = {
    "neg": {"a.txt": "bad film", "b.txt": "awful, truly awful", "c.txt": "not good at all",
            "x.md": "ignored"},
    "pos": {"a.txt": "great film", "b.txt": "loved it \u2764", "d.txt": "a long review " * 5},
}


def make_text_tree(root: str) -> None:
    for cls, files in TEXT_LAYOUT.items():
        os.makedirs(os.path.join(root, cls), exist_ok=True)
        for name, text in files.items():
            with open(os.path.join(root, cls, name), "w", encoding="utf-8") as f:
                f.write(text)


def make_many_images(root: str, n: int, size=(64, 64), classes=2) -> None:
    """``n`` small noise images in ``classes`` folders (for memory and speed checks)."""
    from PIL import Image

    rng = np.random.default_rng(7)
    tile = rng.integers(0, 256, size + (3,), dtype=np.uint8)
    for c in range(classes):
        os.makedirs(os.path.join(root, f"class_{c}"), exist_ok=True)
    for i in range(n):
        Image.fromarray(np.roll(tile, i, axis=1)).save(os.path.join(root, f"class_{i % classes}", f"{i:05d}.png"))


# ----------------------------------------------------------------------------- dataset files
def _npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _ragged(rng, n, vocab, lo=3, hi=12):
    out = np.empty(n, dtype=object)
    out[:] = [list(map(int, rng.integers(1, vocab, rng.integers(lo, hi)))) for _ in range(n)]
    return out


def _idx(arr):
    header = np.array([0, 0, 8, arr.ndim], dtype=np.uint8).tobytes()  # IDX magic: unsigned bytes, rank
    dims = np.array(arr.shape, dtype=">u4").tobytes()
    return gzip.compress(header + dims + arr.astype(np.uint8).tobytes())


def _cifar_batch(rng, n, fine=True, coarse=False):
    d = {b"data": rng.integers(0, 256, (n, 3 * 32 * 32), dtype=np.uint8), b"batch_label": b"x"}
    if fine and not coarse:
        d[b"labels"] = [int(v) for v in rng.integers(0, 10, n)]
    else:
        d[b"fine_labels"] = [int(v) for v in rng.integers(0, 100, n)]
        d[b"coarse_labels"] = [int(v) for v in rng.integers(0, 20, n)]
    return pickle.dumps(d, protocol=3)  # bytes as BINBYTES, as Python 2 pickles read with encoding="bytes"


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def dataset_files() -> dict[str, bytes]:
    """Small files in the formats of the Keras datasets, keyed by the cache file name."""
    rng = np.random.default_rng(99)
    files = {
        "mnist.npz": _npz_bytes(x_train=rng.integers(0, 256, (12, 28, 28), dtype=np.uint8),
                                y_train=rng.integers(0, 10, 12).astype(np.uint8),
                                x_test=rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
                                y_test=rng.integers(0, 10, 5).astype(np.uint8)),
        "imdb.npz": _npz_bytes(x_train=_ragged(rng, 20, 40), y_train=rng.integers(0, 2, 20),
                               x_test=_ragged(rng, 15, 40), y_test=rng.integers(0, 2, 15)),
        "reuters.npz": _npz_bytes(x=_ragged(rng, 30, 50), y=rng.integers(0, 46, 30)),
        "boston_housing.npz": _npz_bytes(x=rng.normal(size=(40, 13)), y=rng.normal(size=40)),
        "california_housing.npz": _npz_bytes(x=rng.normal(size=(700, 8)), y=rng.normal(size=700) * 1e5),
        "imdb_word_index.json": json.dumps({"the": 1, "and": 2, "film": 3}).encode(),
        "reuters_word_index.json": json.dumps({"the": 1, "said": 2}).encode(),
    }
    labels_train = rng.integers(0, 10, 9).astype(np.uint8)
    labels_test = rng.integers(0, 10, 4).astype(np.uint8)
    files["train-labels-idx1-ubyte.gz"] = _idx(labels_train)
    files["train-images-idx3-ubyte.gz"] = _idx(rng.integers(0, 256, (9, 28, 28)))
    files["t10k-labels-idx1-ubyte.gz"] = _idx(labels_test)
    files["t10k-images-idx3-ubyte.gz"] = _idx(rng.integers(0, 256, (4, 28, 28)))
    cifar10 = {f"cifar-10-batches-py/data_batch_{i}": _cifar_batch(rng, 3) for i in range(1, 6)}
    cifar10["cifar-10-batches-py/test_batch"] = _cifar_batch(rng, 4)
    files["cifar-10-batches-py-target"] = _tar_gz(cifar10)
    files["cifar-100-python-target"] = _tar_gz({"cifar-100-python/train": _cifar_batch(rng, 6, coarse=True),
                                                "cifar-100-python/test": _cifar_batch(rng, 3, coarse=True)})
    return files


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()
