"""get_file (cache layout, hashes, extraction, atomic downloads, offline errors), the image
file helpers, and the memory bound of image_dataset_from_directory."""
import hashlib
import io
import os
import sys
import tarfile
import tracemalloc

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import data_fixtures as fx  # noqa: E402

from fastnet.utils import (  # noqa: E402
    array_to_img,
    get_file,
    image_dataset_from_directory,
    img_to_array,
    load_img,
    save_img,
)
from fastnet.utils.file_utils import DownloadError  # noqa: E402

PIL = pytest.importorskip("PIL")


@pytest.fixture
def origin(tmp_path):
    src = tmp_path / "origin"
    src.mkdir()
    data = b"fastnet test payload\n" * 100
    (src / "payload.bin").write_bytes(data)
    return src, data


def test_get_file_downloads_into_the_keras_cache(origin, tmp_path, monkeypatch, capsys):
    src, data = origin
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "home"))
    sha = hashlib.sha256(data).hexdigest()
    path = get_file(origin=(src / "payload.bin").as_uri(), file_hash=sha)
    assert path == str(tmp_path / "home" / "datasets" / "payload.bin")
    assert open(path, "rb").read() == data
    assert "Downloading data from file:" in capsys.readouterr().out
    (src / "payload.bin").unlink()  # cached: no second download
    assert get_file("payload.bin", origin=(src / "payload.bin").as_uri(), file_hash=sha) == path
    assert capsys.readouterr().out == ""
    assert not [f for f in os.listdir(os.path.dirname(path)) if ".part-" in f]


def test_get_file_cache_dir_subdir_and_md5(origin, tmp_path):
    src, data = origin
    md5 = hashlib.md5(data).hexdigest()
    path = get_file("renamed.bin", origin=(src / "payload.bin").as_uri(), md5_hash=md5, cache_dir=str(tmp_path / "c"),
                    cache_subdir="models")
    assert path == str(tmp_path / "c" / "models" / "renamed.bin")
    assert get_file("other.bin", origin=(src / "payload.bin").as_uri(), file_hash=md5, hash_algorithm="md5",
                    cache_dir=str(tmp_path / "c"))


def test_get_file_refuses_a_corrupt_download(origin, tmp_path):
    src, _ = origin
    with pytest.raises(ValueError, match="Incomplete or corrupted file detected. The sha256 file hash"):
        get_file(origin=(src / "payload.bin").as_uri(), file_hash="0" * 64, cache_dir=str(tmp_path / "c"))
    assert os.listdir(tmp_path / "c" / "datasets") == []  # nothing left that looks complete


def test_get_file_redownloads_a_stale_cached_file(origin, tmp_path, capsys):
    src, data = origin
    cache = tmp_path / "c" / "datasets"
    cache.mkdir(parents=True)
    (cache / "payload.bin").write_bytes(b"truncated")
    path = get_file(origin=(src / "payload.bin").as_uri(), file_hash=hashlib.sha256(data).hexdigest(),
                    cache_dir=str(tmp_path / "c"))
    assert open(path, "rb").read() == data
    assert "hash does not match" in capsys.readouterr().out


def test_get_file_offline_error(tmp_path):
    with pytest.raises(DownloadError, match=r"URL fetch failure on http://127.0.0.1:9/x.npz.*place the file at "):
        get_file(origin="http://127.0.0.1:9/x.npz", cache_dir=str(tmp_path))
    with pytest.raises(DownloadError, match="URL fetch failure"):
        get_file(origin=(tmp_path / "missing.bin").as_uri(), cache_dir=str(tmp_path))
    assert not os.path.exists(tmp_path / "datasets" / "x.npz")


def test_get_file_argument_errors(tmp_path):
    with pytest.raises(ValueError, match='specify the "origin"'):
        get_file("a.bin")
    with pytest.raises(ValueError, match="fname must be a file name, not a path"):
        get_file(os.path.join("sub", "a.bin"), origin="file:///x", cache_dir=str(tmp_path))


def test_get_file_extracts_tar_and_zip(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("folder/a.txt")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"hello"))
    (src / "archive.tar.gz").write_bytes(buf.getvalue())
    (src / "pack.zip").write_bytes(fx.zip_bytes({"inner/b.txt": b"zip!"}))
    out = get_file("archive.tar.gz", origin=(src / "archive.tar.gz").as_uri(), extract=True, cache_dir=str(tmp_path))
    assert out == str(tmp_path / "datasets" / "archive_extracted")
    assert open(os.path.join(out, "folder", "a.txt")).read() == "hello"
    assert os.path.exists(tmp_path / "datasets" / "archive.tar.gz")
    out = get_file("packdir", origin=(src / "pack.zip").as_uri(), extract=True, cache_dir=str(tmp_path))
    assert out == str(tmp_path / "datasets" / "packdir")
    assert open(os.path.join(out, "inner", "b.txt")).read() == "zip!"
    assert os.path.exists(tmp_path / "datasets" / "packdir_archive")


def test_tar_members_outside_the_folder_are_skipped(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in ("../escape.txt", "ok.txt"):
            info = tarfile.TarInfo(name)
            info.size = 2
            tar.addfile(info, io.BytesIO(b"hi"))
    (tmp_path / "evil.tar").write_bytes(buf.getvalue())
    with pytest.warns(UserWarning, match="points outside the extraction folder"):
        out = get_file("evil", origin=(tmp_path / "evil.tar").as_uri(), extract=True,
                       cache_dir=str(tmp_path / "c"))
    assert os.listdir(out) == ["ok.txt"]
    assert not os.path.exists(tmp_path / "c" / "datasets" / "escape.txt")


# ----------------------------------------------------------------------------- images
def test_image_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (6, 5, 3)).astype(np.float32)
    path = str(tmp_path / "x.png")
    save_img(path, arr, scale=False)
    img = load_img(path)
    assert img.size == (5, 6) and img.mode == "RGB"
    back = img_to_array(img)
    assert back.dtype == np.float32 and back.shape == (6, 5, 3)
    np.testing.assert_array_equal(back, arr)
    assert img_to_array(img, data_format="channels_first").shape == (3, 6, 5)
    gray = load_img(path, color_mode="grayscale")
    assert img_to_array(gray).shape == (6, 5, 1)
    assert img_to_array(load_img(path, color_mode="rgba")).shape == (6, 5, 4)
    small = load_img(path, target_size=(3, 2))
    assert small.size == (2, 3)
    crop = load_img(path, target_size=(2, 2), keep_aspect_ratio=True)
    assert crop.size == (2, 2)
    with open(path, "rb") as f:
        assert load_img(io.BytesIO(f.read())).size == (5, 6)


def test_array_to_img_scaling_and_modes():
    arr = np.linspace(-1, 1, 12, dtype=np.float32).reshape(2, 2, 3)
    img = array_to_img(arr)
    out = np.asarray(img)
    assert img.mode == "RGB" and out.min() == 0 and out.max() == 255
    assert array_to_img(np.zeros((2, 2, 1))).mode == "L"
    assert array_to_img(np.full((2, 2, 1), 1000.0), scale=False).mode == "I"
    assert array_to_img(np.zeros((2, 2, 4))).mode == "RGBA"
    assert array_to_img(np.zeros((3, 2, 2)), data_format="channels_first").size == (2, 2)
    with pytest.raises(ValueError, match="rank 3"):
        array_to_img(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="unsupported number of channels 2"):
        array_to_img(np.zeros((2, 2, 2)))


def test_save_rgba_as_jpeg_warns(tmp_path):
    with pytest.warns(UserWarning, match="JPG format does not support RGBA"):
        save_img(str(tmp_path / "a.jpg"), np.zeros((4, 4, 4)))
    assert load_img(str(tmp_path / "a.jpg")).size == (4, 4)


def test_load_img_errors(tmp_path):
    path = str(tmp_path / "x.png")
    save_img(path, np.zeros((3, 3, 3)))
    with pytest.raises(ValueError, match='color_mode must be "grayscale", "rgb" or "rgba"'):
        load_img(path, color_mode="cmyk")
    with pytest.raises(ValueError, match="Invalid interpolation method 'cubic'"):
        load_img(path, target_size=(2, 2), interpolation="cubic")


def test_image_dataset_argument_errors(tmp_path):
    fx.make_image_tree(str(tmp_path))
    root = str(tmp_path)
    with pytest.raises(ValueError, match='label_mode must be "int", "categorical", "binary" or None'):
        image_dataset_from_directory(root, label_mode="sparse")
    with pytest.raises(ValueError, match="exactly 2 classes; found 3"):
        image_dataset_from_directory(root, label_mode="binary", verbose=False)
    with pytest.raises(ValueError, match="give a seed"):
        image_dataset_from_directory(root, validation_split=0.2, subset="training")
    with pytest.raises(ValueError, match="subset must be"):
        image_dataset_from_directory(root, validation_split=0.2, subset="test", seed=1)
    with pytest.raises(ValueError, match="If subset is set, validation_split must be set"):
        image_dataset_from_directory(root, subset="training", seed=1)
    with pytest.raises(ValueError, match="class_names passed do not match"):
        image_dataset_from_directory(root, class_names=["cats", "birds"])
    with pytest.raises(ValueError, match="interpolation must be one of"):
        image_dataset_from_directory(root, interpolation="hamming")
    empty = tmp_path / "empty_root"
    (empty / "a").mkdir(parents=True)
    with pytest.raises(ValueError, match="No images found in directory"):
        image_dataset_from_directory(str(empty), verbose=False)


def test_image_dataset_labels_list_and_no_labels(tmp_path):
    fx.make_image_tree(str(tmp_path))
    n = 14  # every image under the folder, the hidden class folder included (as Keras walks it)
    ds = image_dataset_from_directory(str(tmp_path), labels=list(range(n)), shuffle=False, image_size=(4, 4),
                                      batch_size=20, verbose=False)
    x, y = next(iter(ds))
    assert x.shape == (n, 4, 4, 3) and y.tolist() == list(range(n))
    bare = image_dataset_from_directory(str(tmp_path), labels=None, shuffle=False, image_size=(4, 4), batch_size=None,
                                        verbose=False)
    first = next(iter(bare))
    assert isinstance(first, np.ndarray) and first.shape == (4, 4, 3)
    assert bare.class_names is None


@pytest.mark.slow
def test_image_dataset_decodes_lazily(tmp_path):
    """2,000 images of 64x64x3 float32 are 98 MB decoded; iterating holds a bounded number of
    batches (those being decoded and those waiting), not the folder."""
    fx.make_many_images(str(tmp_path), 2000, size=(64, 64))
    decoded = 2000 * 64 * 64 * 3 * 4
    tracemalloc.start()
    try:
        ds = image_dataset_from_directory(str(tmp_path), image_size=(64, 64), batch_size=16, seed=0, verbose=False)
        seen = 0
        for xb, _ in ds:
            seen += len(xb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen == 2000
    assert peak < decoded / 5, f"peak {peak / 1e6:.1f} MB for {decoded / 1e6:.1f} MB of decoded images"
