"""The native PNG path of the image loaders: pixel-exact against Pillow for every filter
type, colour type, size and chunking, Pillow for everything else, and the same datasets
with and without it."""
import io
import os
import struct
import sys
import zlib

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import data_fixtures as fx  # noqa: E402

from fastnet.utils import dataset_utils, image_dataset_from_directory  # noqa: E402

PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

png = pytest.importorskip("fastnet._kernels.png")

_MODES = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}


def _png_bytes(pixels, mode, **save):
    img = Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels, mode)
    buf = io.BytesIO()
    img.save(buf, "PNG", **save)
    return buf.getvalue()


def _filters_and_chunks(data):
    width, height, _, colour = struct.unpack_from(">IIBB", data, 16)
    pos, idat = 33, []
    while True:
        length, kind = struct.unpack_from(">I4s", data, pos)
        if kind == b"IDAT":
            idat.append(data[pos + 8:pos + 8 + length])
        if kind == b"IEND":
            break
        pos += 12 + length
    raw = zlib.decompress(b"".join(idat))
    stride = width * {0: 1, 2: 3, 4: 2, 6: 4}[colour] + 1
    return {raw[r * stride] for r in range(height)}, len(idat)


def _pillow(data):
    arr = np.asarray(Image.open(io.BytesIO(data)))
    return arr[:, :, None] if arr.ndim == 2 else arr


def test_native_png_matches_pillow_for_every_filter_and_colour_type():
    rng = np.random.default_rng(0)
    filters, chunked = set(), False
    for mode, c in _MODES.items():
        for h, w in [(1, 1), (1, 7), (7, 1), (28, 28), (33, 65), (300, 400)]:
            rows, cols = np.mgrid[0:h, 0:w]
            smooth = ((cols * 3 + rows * 5)[..., None] + np.arange(c) * 40) % 256
            for pixels in (rng.integers(0, 256, (h, w, c)), smooth, (smooth + rng.integers(0, 4, (h, w, c))) % 256):
                for save in ({}, {"optimize": True}, {"compress_level": 0}):
                    data = _png_bytes(pixels.astype(np.uint8), mode, **save)
                    seen, n_idat = _filters_and_chunks(data)
                    filters |= seen
                    chunked |= n_idat > 1
                    got = dataset_utils._png_pixels(data, c)
                    assert got is not None and got.dtype == np.uint8
                    np.testing.assert_array_equal(got, _pillow(data), err_msg=f"{mode} {h}x{w} {save}")
    assert filters == {0, 1, 2, 3, 4}  # the images above exercise all five filters
    assert chunked  # and image data split over several IDAT chunks


def test_other_images_are_left_to_pillow():
    grey = np.zeros((4, 4, 1), np.uint8)
    rgb = np.zeros((4, 4, 3), np.uint8)
    assert dataset_utils._png_pixels(_png_bytes(rgb, "RGB"), 1) is None  # needs a conversion
    buf = io.BytesIO()
    Image.fromarray(rgb).convert("P").save(buf, "PNG")
    assert dataset_utils._png_pixels(buf.getvalue(), 3) is None  # palette
    buf = io.BytesIO()
    Image.fromarray(np.arange(16, dtype=np.uint16).reshape(4, 4) * 4000).save(buf, "PNG")
    assert dataset_utils._png_pixels(buf.getvalue(), 1) is None  # 16-bit
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG")
    assert dataset_utils._png_pixels(buf.getvalue(), 3) is None
    data = _png_bytes(grey, "L")
    assert dataset_utils._png_pixels(data[:-30], 1) is None  # truncated: Pillow reports it


def test_unfilter_rejects_bad_input():
    out = np.empty((2, 3), np.uint8)
    with pytest.raises(ValueError, match="filter type 9"):
        png.unfilter(np.array([0, 1, 2, 3, 9, 1, 1, 1], np.uint8), out, 1)
    with pytest.raises(ValueError, match="fewer than"):
        png.unfilter(np.zeros(7, np.uint8), out, 1)
    with pytest.raises(ValueError, match="whole number"):
        png.unfilter(np.zeros(8, np.uint8), out, 2)


@pytest.mark.parametrize("color_mode,image_size", [("grayscale", (28, 28)), ("rgb", (16, 16)),
                                                   ("rgba", (28, 28)), ("rgb", (8, 8))])
def test_image_dataset_is_the_same_with_and_without_the_native_path(tmp_path, monkeypatch, color_mode,
                                                                    image_size):
    fx.make_image_tree(str(tmp_path))  # grey, RGB and RGBA PNGs of several sizes, and a JPEG
    kw = dict(color_mode=color_mode, image_size=image_size, batch_size=4, shuffle=False, verbose=False)
    native = [(x, y) for x, y in image_dataset_from_directory(str(tmp_path), **kw)]
    monkeypatch.setattr(dataset_utils, "_png_unfilter", None)
    pillow = [(x, y) for x, y in image_dataset_from_directory(str(tmp_path), **kw)]
    assert len(native) == len(pillow) > 0
    for (xa, ya), (xb, yb) in zip(native, pillow):
        assert xa.dtype == xb.dtype == np.float32
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


def test_unbatched_images_are_float32(tmp_path):
    fx.make_image_tree(str(tmp_path))
    ds = image_dataset_from_directory(str(tmp_path), image_size=(8, 8), batch_size=None, shuffle=False,
                                      verbose=False)
    x, _ = next(iter(ds))
    assert x.shape == (8, 8, 3) and x.dtype == np.float32
