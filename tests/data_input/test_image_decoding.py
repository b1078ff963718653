"""image_dataset_from_directory decodes as plain Pillow does.

The loader decodes the 8-bit PNGs already of ``image_size`` and in the color mode with
fastnet's compiled decoder, a batch in one call, straight into the batch; every other
file goes to Pillow, which reads it once, opens it as the format its extension names,
and writes 8-bit images already of ``image_size`` straight into the batch too. Whatever
path an image takes, the batch must hold the pixels of ``PIL.Image.open(path)`` converted
to the color mode (then resized as Keras resizes), in every format, mode and layout, and
a file Pillow cannot decode must raise what Pillow raises.
"""
import os
import struct
import warnings

import numpy as np
import pytest
from helpers import png_bytes, png_chunk, skip_unless

PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

from fastnet import config  # noqa: E402
from fastnet.utils import dataset_utils, image_dataset_from_directory  # noqa: E402
from fastnet.utils.dataset_utils import _finish_images, _image_batch_loader, _image_loader, _resize_image  # noqa: E402


@pytest.fixture(params=["compiled", "pillow"], autouse=True)
def png_decoder(request, monkeypatch):
    """Every test runs with the compiled PNG decoder and without it (Pillow alone, as where
    fastnet was built without zlib): the pixels must not depend on which decoded them."""
    if request.param == "compiled":
        try:
            from fastnet._kernels import png_decode
        except ImportError as exc:
            skip_unless(False, f"fastnet._kernels.png_decode is not built (zlib missing at build time?): {exc}")
        monkeypatch.setattr(dataset_utils, "_PNG_DECODER", png_decode)
    else:
        monkeypatch.setattr(dataset_utils, "_PNG_DECODER", False)
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


def _written_pngs(rng, size):
    """PNGs as Pillow does not write them: every row filter, data in several IDAT chunks
    (some empty), ancillary chunks, Adam7 interlacing, grey with alpha; name -> bytes."""
    h, w = size
    out = {}
    for channels in (1, 2, 3, 4):
        pixels = rng.integers(0, 256, (h, w, channels), dtype=np.uint8)
        out[f"filters_{channels}"] = png_bytes(pixels, rng.integers(0, 5, h), idat_sizes=[0, 7, 0, 3],
                                               before=[png_chunk(b"gAMA", struct.pack(">I", 45455))],
                                               after=[png_chunk(b"tEXt", b"k\x00v")])
        out[f"interlaced_{channels}"] = png_bytes(pixels, interlace=True)
    return out


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
    folder = os.path.join(root, "written_png")
    os.makedirs(folder, exist_ok=True)
    for k, size in enumerate(sizes):
        for name, data in _written_pngs(rng, size).items():
            path = os.path.join(folder, f"{name}_{k}" + (".PNG" if k % 2 else ".png"))
            with open(path, "wb") as f:
                f.write(data)
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


def _expected(path, color_mode, size, data_format="channels_last"):
    """Plain Pillow's image (float32), or the exception it raises."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return _plain_pillow(path, color_mode, size, False, data_format)
    except Exception as exc:  # noqa: BLE001 (the loader must raise the same)
        return exc


def _load(paths, color_mode, size, data_format="channels_last"):
    """One batch of ``paths`` through image_dataset_from_directory's batch loader."""
    channels = len(MODES[color_mode])
    _, load_into = _image_loader(size, channels, "bilinear", data_format, False, False)
    return _finish_images(_image_batch_loader(size, channels, data_format, load_into)(
        np.asarray(paths, dtype=object)))


def _good_png(tmp_path, rng, mode, size, name="good.png"):
    path = str(tmp_path / name)
    _pixels(rng, mode, size).save(path, "PNG")
    return path


KINDS = ["grey_with_transparency", "rgb_with_transparency", "16_bit_grey", "palette", "grey_alpha", "interlaced",
         "wrong_size", "another_mode", "truncated_in_data", "truncated_before_iend", "truncated_after_header",
         "flipped_data_byte", "flipped_idat_crc", "flipped_ancillary_byte", "flipped_header_byte",
         "bad_filter_type", "jpeg_named_png", "empty", "not_an_image", "missing", "a_folder",
         "larger_than_the_first_read", "non_ascii_name", "trailing_bytes"]


def _write_kind(tmp_path, rng, kind, mode, size):
    """A file of ``kind`` for a batch of ``mode`` images of ``size``; returns its path."""
    h, w = size
    path = str(tmp_path / ("ünï_çødé.png" if kind == "non_ascii_name" else f"{kind}.png"))
    channels = len(mode)
    arr = rng.integers(0, 256, (h, w, channels), dtype=np.uint8)
    good = png_bytes(arr, rng.integers(0, 5, h), before=[png_chunk(b"gAMA", struct.pack(">I", 45455))])
    data = None
    if kind == "grey_with_transparency":
        _pixels(rng, "L", size).save(path, "PNG", transparency=7)
    elif kind == "rgb_with_transparency":
        _pixels(rng, "RGB", size).save(path, "PNG", transparency=(1, 2, 3))
    elif kind == "16_bit_grey":
        _pixels(rng, "I;16", size).save(path, "PNG")
    elif kind == "palette":
        _pixels(rng, "P", size).save(path, "PNG")
    elif kind == "grey_alpha":
        _pixels(rng, "LA", size).save(path, "PNG")
    elif kind == "interlaced":
        data = png_bytes(arr, interlace=True)
    elif kind == "wrong_size":
        _pixels(rng, mode, (h + 3, w + 1)).save(path, "PNG")
    elif kind == "another_mode":
        _pixels(rng, "RGBA" if mode == "RGB" else "RGB", size).save(path, "PNG")
    elif kind == "truncated_in_data":
        data = good[:len(good) - 30]
    elif kind == "truncated_before_iend":
        data = good[:-12]
    elif kind == "truncated_after_header":
        data = good[:33]
    elif kind.startswith("flipped"):
        # in the zlib stream's checksum; in IDAT's CRC (Pillow does not check it); in gAMA; in IHDR
        data = bytearray(good)
        pos = {"flipped_data_byte": len(good) - 12 - 4 - 3, "flipped_idat_crc": len(good) - 12 - 2,
               "flipped_ancillary_byte": 33 + 8 + 1, "flipped_header_byte": 19}[kind]
        data[pos] ^= 0x40
        data = bytes(data)
    elif kind == "bad_filter_type":
        raw = b"".join(bytes([7 if y == 1 else 0]) + arr[y].tobytes() for y in range(h))
        data = png_bytes(arr, raw=raw)
    elif kind == "jpeg_named_png":
        _pixels(rng, "RGB", size).save(path, "JPEG")
    elif kind == "empty":
        data = b""
    elif kind == "not_an_image":
        data = b"not an image at all"
    elif kind == "missing":
        pass
    elif kind == "a_folder":
        os.makedirs(path)
    elif kind == "larger_than_the_first_read":
        data = png_bytes(arr, before=[png_chunk(b"prVt", bytes(300_000))])
    else:  # non_ascii_name, trailing_bytes
        data = good + (b"after IEND" if kind == "trailing_bytes" else b"")
    if data is not None:
        with open(path, "wb") as f:
            f.write(data)
    return path


@pytest.mark.parametrize("color_mode", ["grayscale", "rgb"])
@pytest.mark.parametrize("kind", KINDS)
def test_files_of_every_kind_give_pillows_pixels_or_error(tmp_path, kind, color_mode):
    """In a batch with PNGs the compiled decoder takes, a file it does not take gives what
    Pillow gives: its pixels (converted, resized), or Pillow's error naming the file."""
    rng = np.random.default_rng(KINDS.index(kind))
    size = (6, 5)
    mode = MODES[color_mode]
    first = _good_png(tmp_path, rng, mode, size, "first.png")
    last = _good_png(tmp_path, rng, mode, size, "last.png")
    path = _write_kind(tmp_path, rng, kind, mode, size)
    expected = _expected(path, color_mode, size)
    if isinstance(expected, Exception):
        assert kind not in ("larger_than_the_first_read", "non_ascii_name", "trailing_bytes", "interlaced")
        with pytest.raises(type(expected)) as info:
            _load([first, path, last], color_mode, size)
        if isinstance(expected, (OSError, Image.UnidentifiedImageError)) and os.path.basename(path) in str(expected):
            assert os.path.basename(path) in str(info.value)
        if kind in ("missing", "empty", "not_an_image", "a_folder"):
            assert os.path.basename(path) in str(info.value)
        return
    got = _load([first, path, last], color_mode, size)
    want = np.stack([_expected(p, color_mode, size) for p in (first, path, last)])
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)


def test_missing_file_raises_file_not_found_naming_it(tmp_path):
    rng = np.random.default_rng(0)
    good = _good_png(tmp_path, rng, "L", (6, 5))
    with pytest.raises(FileNotFoundError, match="nowhere.png"):
        _load([good, str(tmp_path / "nowhere.png")], "grayscale", (6, 5))


def test_the_first_file_that_fails_raises(tmp_path):
    rng = np.random.default_rng(1)
    good = _good_png(tmp_path, rng, "RGB", (6, 5))
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="missing.png"):
        _load([good, str(tmp_path / "missing.png"), str(empty)], "rgb", (6, 5))
    with pytest.raises(Image.UnidentifiedImageError, match="empty.png"):
        _load([good, str(empty), str(tmp_path / "missing.png")], "rgb", (6, 5))


def test_pngs_the_decoder_takes_never_reach_pillow(tmp_path, png_decoder, monkeypatch):
    """With the compiled decoder a batch of plain 8-bit PNGs is decoded without opening any
    image with Pillow (the fast path is taken); without it, all of them go to Pillow."""
    rng = np.random.default_rng(2)
    paths = [_good_png(tmp_path, rng, "RGB", (6, 5), f"{k}.png") for k in range(5)]
    want = np.stack([_expected(p, "rgb", (6, 5), "channels_first") for p in paths])
    opened = []
    real = dataset_utils._open_image
    monkeypatch.setattr(dataset_utils, "_open_image", lambda path, Image: opened.append(path) or real(path, Image))
    got = _load(paths, "rgb", (6, 5), "channels_first")
    np.testing.assert_array_equal(got, want)
    assert opened == ([] if png_decoder == "compiled" else paths)


@pytest.mark.parametrize("png_decoder", ["compiled"], indirect=True)  # the compiled decoder's threads
@pytest.mark.parametrize("png_threads,kernel_threads,expected", [(1, 2, 1), (2, 2, 2), (4, 2, 2), (2, 1, 1)])
def test_decoding_threads_follow_the_threading_policy(tmp_path, png_decoder, monkeypatch, png_threads,
                                                      kernel_threads, expected):
    """The batch decodes on ``_PNG_THREADS`` threads, never more than fastnet's thread count,
    and the pixels do not depend on how many."""
    assert png_decoder == "compiled"
    rng = np.random.default_rng(3)
    paths = [_good_png(tmp_path, rng, "RGBA", (6, 5), f"{k}.png") for k in range(9)]
    real = dataset_utils._PNG_DECODER
    seen = []

    class Spy:
        DECODED = real.DECODED

        @staticmethod
        def decode_png_files(paths, out, channels_last, num_threads):
            seen.append(num_threads)
            return real.decode_png_files(paths, out, channels_last, num_threads)

    monkeypatch.setattr(dataset_utils, "_PNG_DECODER", Spy)
    monkeypatch.setattr(dataset_utils, "_PNG_THREADS", png_threads)
    old = config.get_num_threads()
    config.set_num_threads(kernel_threads)
    try:
        got = _load(paths, "rgba", (6, 5))
    finally:
        config.set_num_threads(old)
    assert seen == [expected]
    np.testing.assert_array_equal(got, np.stack([_expected(p, "rgba", (6, 5)) for p in paths]))


def test_images_past_pillows_pixel_limit_stay_with_pillow(tmp_path, monkeypatch):
    """Pillow refuses images of more than twice ``MAX_IMAGE_PIXELS`` (a decompression bomb
    guard): the loader raises the same, decoder or not."""
    rng = np.random.default_rng(4)
    path = _good_png(tmp_path, rng, "L", (6, 5))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)
    with pytest.raises(Image.DecompressionBombError):
        _load([path, path], "grayscale", (6, 5))


def test_without_the_compiled_decoder_pillow_decodes_everything(tmp_path, monkeypatch):
    """Where fastnet was built without zlib the decoder module is missing: the loader finds
    that once and decodes every file with Pillow, with the same pixels."""
    import sys

    import fastnet._kernels

    rng = np.random.default_rng(5)
    paths = [_good_png(tmp_path, rng, "L", (6, 5), f"{k}.png") for k in range(3)]
    monkeypatch.setitem(sys.modules, "fastnet._kernels.png_decode", None)  # import raises ImportError
    monkeypatch.delattr(fastnet._kernels, "png_decode", raising=False)
    monkeypatch.setattr(dataset_utils, "_PNG_DECODER", None)
    got = _load(paths, "grayscale", (6, 5))
    assert dataset_utils._PNG_DECODER is False
    np.testing.assert_array_equal(got, np.stack([_expected(p, "grayscale", (6, 5)) for p in paths]))
