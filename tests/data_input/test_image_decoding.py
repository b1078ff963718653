"""image_dataset_from_directory decodes as plain Pillow does.

The loader reads each file's bytes once, opens them as the format their extension names,
and writes 8-bit images already of ``image_size`` straight into the batch. Whatever path
an image takes, the batch must hold the pixels of ``PIL.Image.open(path)`` converted to the
color mode (then resized as Keras resizes), in every format, mode and layout.
"""
import os

import numpy as np
import pytest
from helpers import optional_import

PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

from fastnet.utils import image_dataset_from_directory  # noqa: E402
from fastnet.utils.dataset_utils import _image_loader, _resize_image  # noqa: E402


@pytest.fixture(params=["pyspng", "pillow"], autouse=True)
def png_decoder(request, monkeypatch):
    """Every test runs with the PNG fast path (pyspng, the ``image`` extra) and without it
    (Pillow alone): the pixels must not depend on which decoded them."""
    from fastnet.utils import dataset_utils

    if request.param == "pyspng":
        monkeypatch.setattr(dataset_utils, "_SPNG", optional_import("pyspng", "image"))
    else:
        monkeypatch.setattr(dataset_utils, "_SPNG", False)
    return request.param


MODES = {"grayscale": "L", "rgb": "RGB", "rgba": "RGBA"}
# (extension, Pillow format, modes it stores)
FORMATS = [(".png", "PNG", ("L", "RGB", "RGBA", "P", "LA", "I;16")), (".jpg", "JPEG", ("L", "RGB")),
           (".jpeg", "JPEG", ("RGB",)), (".bmp", "BMP", ("L", "RGB")), (".gif", "GIF", ("L", "P", "RGB"))]


def _pixels(rng, mode, size):
    h, w = size
    if mode == "I;16":
        return Image.frombytes("I;16", (w, h), rng.integers(0, 65536, (h, w), dtype="<u2").tobytes())
    if mode == "P":
        return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB").quantize(16)
    channels = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}[mode]
    arr = rng.integers(0, 256, (h, w, channels), dtype=np.uint8)
    return Image.fromarray(arr[:, :, 0] if channels == 1 else arr, mode)


def _write_folder(root, sizes):
    """One class folder per format, an image per (mode, size); returns the paths."""
    rng = np.random.default_rng(7)
    paths = []
    for ext, fmt, modes in FORMATS:
        folder = os.path.join(root, fmt.lower() + ext.replace(".", "_"))
        os.makedirs(folder, exist_ok=True)
        for mode in modes:
            for k, size in enumerate(sizes):
                path = os.path.join(folder, f"{mode.replace(';', '_')}_{k}{ext}")
                _pixels(rng, mode, size).save(path, fmt)
                paths.append(path)
    return paths


def _plain_pillow(path, color_mode, image_size, crop, data_format):
    """What the image should be: Pillow's decoding of the file, resized as Keras resizes."""
    with Image.open(path) as img:
        keep = ("L", "I;16", "I") if color_mode == "grayscale" else (MODES[color_mode],)
        img = img if img.mode in keep else img.convert(MODES[color_mode])
        arr = np.asarray(img).astype(np.float32)
    arr = arr[:, :, None] if arr.ndim == 2 else arr
    if crop or arr.shape[:2] != image_size:
        arr = _resize_image(arr, image_size, "bilinear", crop, False)
    return arr.transpose(2, 0, 1) if data_format == "channels_first" else arr


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("formats"))
    # Most images at 6x5 (the image_size of the direct path), some larger (resized).
    _write_folder(root, [(6, 5), (6, 5), (9, 7)])
    return root


@pytest.mark.parametrize("color_mode", sorted(MODES))
@pytest.mark.parametrize("image_size,crop", [((6, 5), False), ((6, 5), True), ((4, 4), False), ((4, 4), True)])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_batches_hold_pillows_pixels(folder, color_mode, image_size, crop, data_format):
    ds = image_dataset_from_directory(folder, color_mode=color_mode, image_size=image_size, batch_size=7,
                                      crop_to_aspect_ratio=crop, data_format=data_format, shuffle=False,
                                      verbose=False)
    channels = len(MODES[color_mode])
    seen = 0
    for x, _ in ds:
        assert x.dtype == np.float32
        expected = np.stack([_plain_pillow(p, color_mode, image_size, crop, data_format)
                             for p in ds.file_paths[seen:seen + len(x)]])
        shape = (channels,) + image_size if data_format == "channels_first" else image_size + (channels,)
        assert x.shape == (len(x),) + shape
        np.testing.assert_array_equal(x, expected)
        seen += len(x)
    assert seen == len(ds.file_paths)


@pytest.mark.parametrize("color_mode", sorted(MODES))
def test_single_images_hold_pillows_pixels(folder, color_mode):
    ds = image_dataset_from_directory(folder, color_mode=color_mode, image_size=(6, 5), batch_size=None,
                                      shuffle=False, verbose=False)
    for x, path in zip((x for x, _ in ds), ds.file_paths):
        np.testing.assert_array_equal(x, _plain_pillow(path, color_mode, (6, 5), False, "channels_last"))


def test_load_into_writes_only_images_it_need_not_convert(tmp_path):
    _, load_into = _image_loader((6, 5), 3, "bilinear", "channels_last", False, False)
    rng = np.random.default_rng(0)
    same = str(tmp_path / "same.png")
    _pixels(rng, "RGB", (6, 5)).save(same)
    out = np.zeros((6, 5, 3), np.uint8)
    assert load_into(same, out) is None
    np.testing.assert_array_equal(out, np.asarray(Image.open(same)))
    bigger = str(tmp_path / "bigger.png")
    _pixels(rng, "RGB", (8, 5)).save(bigger)
    out[...] = 0
    resized = load_into(bigger, out)
    assert resized.dtype == np.float32 and resized.shape == (6, 5, 3) and not out.any()
    gray = str(tmp_path / "gray.png")
    _pixels(rng, "L", (6, 5)).save(gray)
    assert load_into(gray, out) is None  # converted to RGB by Pillow, then written
    np.testing.assert_array_equal(out, np.asarray(Image.open(gray).convert("RGB")))


def test_a_file_of_another_format_than_its_extension_is_decoded(tmp_path):
    rng = np.random.default_rng(1)
    img = _pixels(rng, "RGB", (6, 5))
    os.makedirs(tmp_path / "a")
    img.save(str(tmp_path / "a" / "really_a_png.jpg"), "PNG")
    img.save(str(tmp_path / "a" / "really_a_bmp.png"), "BMP")
    ds = image_dataset_from_directory(str(tmp_path), image_size=(6, 5), batch_size=2, shuffle=False, verbose=False)
    x, _ = next(iter(ds))
    np.testing.assert_array_equal(x, np.stack([np.asarray(img, dtype=np.float32)] * 2))


def test_a_file_that_is_no_image_names_its_path(tmp_path):
    os.makedirs(tmp_path / "a")
    with open(tmp_path / "a" / "broken.png", "wb") as f:
        f.write(b"not an image at all")
    ds = image_dataset_from_directory(str(tmp_path), image_size=(6, 5), batch_size=2, verbose=False)
    with pytest.raises(PIL.UnidentifiedImageError, match="broken.png"):
        next(iter(ds))


@pytest.mark.parametrize("size", [0, 1, 1000, (1 << 16) - 1, 1 << 16, (1 << 16) + 1, 300_000, 3 << 20])
def test_files_are_read_whole_whatever_their_size(tmp_path, size):
    """The loader's reader asks for 64 KiB first, then for what the file says is left:
    every byte comes back, at and around those boundaries."""
    from fastnet.utils.dataset_utils import _read_file

    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    assert _read_file(str(path)) == data


@pytest.mark.parametrize("kind", ["grey_with_transparency", "rgb_with_transparency", "16_bit_grey", "palette",
                                  "truncated", "jpeg_named_png"])
def test_pngs_of_every_kind_hold_pillows_pixels(tmp_path, kind):
    """The PNG fast path takes only 8-bit images stored in the wanted mode at the wanted
    size; others (and bytes it refuses) go to Pillow, which decodes them or names the file."""
    rng = np.random.default_rng(3)
    path = str(tmp_path / "img.png")
    mode = "RGB" if kind.startswith("rgb") or kind == "palette" or kind == "jpeg_named_png" else "L"
    if kind == "grey_with_transparency":
        _pixels(rng, "L", (6, 5)).save(path, "PNG", transparency=7)
    elif kind == "rgb_with_transparency":
        _pixels(rng, "RGB", (6, 5)).save(path, "PNG", transparency=(1, 2, 3))
    elif kind == "16_bit_grey":
        _pixels(rng, "I;16", (6, 5)).save(path, "PNG")
    elif kind == "palette":
        _pixels(rng, "P", (6, 5)).save(path, "PNG")
    elif kind == "jpeg_named_png":
        _pixels(rng, "RGB", (6, 5)).save(path, "JPEG")
    else:
        _pixels(rng, "L", (6, 5)).save(path, "PNG")
        with open(path, "rb") as f:
            data = f.read()
        with open(path, "wb") as f:
            f.write(data[:len(data) // 2])
    _, load_into = _image_loader((6, 5), len(mode), "bilinear", "channels_last", False, False)
    out = np.zeros((6, 5, len(mode)), np.uint8)
    if kind == "truncated":
        with pytest.raises(OSError, match="img.png|truncated|image file"):
            load_into(path, out)
        return
    got = load_into(path, out)
    got = out if got is None else got
    color_mode = {"L": "grayscale", "RGB": "rgb"}[mode]
    np.testing.assert_array_equal(np.asarray(got, np.float32), _plain_pillow(path, color_mode, (6, 5), False,
                                                                             "channels_last"))
