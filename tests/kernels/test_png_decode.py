"""The batch PNG decoder (fastnet/_kernels/png_decode.pyx) against Pillow.

Files are written by the test's own PNG writer (tests/helpers.py), so that every row
filter, every way of splitting the data into IDAT chunks and every kind of damage can
be chosen; Pillow decodes the same bytes for the expected pixels. A file the decoder
does not take must be reported as such (and its neighbours in the batch decoded), never
decoded wrongly, and never make it read or write outside the file's bytes or its row.
"""
import errno
import io
import os
import struct
import zlib

import numpy as np
import pytest
from helpers import PNG_SIGNATURE, png_bytes, png_chunk, png_ihdr, skip_unless

PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

try:
    from fastnet._kernels import png_decode as pd
except ImportError as exc:  # built only where zlib is found (setup.py)
    pd = None
    skip_unless(False, f"fastnet._kernels.png_decode is not built (zlib missing at build time?): {exc}")

MODES = {1: "L", 3: "RGB", 4: "RGBA"}


def _pillow(data, mode):
    with Image.open(io.BytesIO(data)) as img:
        arr = np.asarray(img.convert(mode))
    return arr[:, :, None] if arr.ndim == 2 else arr


def _decode(tmp_path, files, shape, channels_last=True, num_threads=1, sentinel=True):
    """Writes ``files`` (bytes, or None: no path) and decodes them into a batch of
    ``shape`` (h, w, c); returns (status, out (n, h, w, c)). The batch sits between two
    rows of sentinel bytes that must come back untouched."""
    paths = []
    for k, data in enumerate(files):
        if data is None:
            paths.append(None)
            continue
        path = tmp_path / f"f{k}.png"
        path.write_bytes(data)
        paths.append(os.fsencode(str(path)))
    h, w, c = shape
    row = (h, w, c) if channels_last else (c, h, w)
    padded = np.full((len(files) + 2,) + row, 0xA5, np.uint8)
    status = pd.decode_png_files(paths, padded[1:-1], channels_last, num_threads)
    if sentinel:
        assert (padded[0] == 0xA5).all() and (padded[-1] == 0xA5).all()
    out = padded[1:-1]
    if not channels_last:
        out = out.transpose(0, 2, 3, 1)
    return status, out


def _pixels(rng, h, w, c, smooth=False):
    if smooth:  # gradients: the filters' predictions matter, values wrap around 255
        y, x = np.mgrid[:h, :w]
        base = (x[..., None] * 37 + y[..., None] * 91 + np.arange(c) * 50) % 256
        return (base + rng.integers(0, 3, (h, w, c))).astype(np.uint8)
    return rng.integers(0, 256, (h, w, c), dtype=np.uint8)


def _status_names(status):
    names = {pd.DECODED: "decoded", pd.UNDECODABLE: "undecodable", pd.SKIPPED: "skipped"}
    return [names.get(int(s), f"errno {-int(s)}") for s in status]


# ----------------------------------------------------------------------------- pixels
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_every_filter_and_width_gives_pillows_pixels(tmp_path, channels):
    rng = np.random.default_rng(channels)
    for width in range(1, 38):
        height = 1 + width % 7
        files, expected = [], []
        for kind in ["none", "sub", "up", "average", "paeth", "mixed"]:
            for smooth in (False, True):
                pixels = _pixels(rng, height, width, channels, smooth)
                if kind == "mixed":
                    filters = rng.integers(0, 5, height)
                else:
                    filters = [["none", "sub", "up", "average", "paeth"].index(kind)] * height
                data = png_bytes(pixels, filters)
                files.append(data)
                expected.append(pixels)
                np.testing.assert_array_equal(_pillow(data, MODES[channels]), pixels)  # the writer is right
        status, out = _decode(tmp_path, files, (height, width, channels))
        assert (status == pd.DECODED).all(), (width, _status_names(status))
        np.testing.assert_array_equal(out, np.stack(expected))


@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("channels_last", [True, False])
def test_interlaced_images_of_every_small_size_give_pillows_pixels(tmp_path, channels, channels_last):
    """Adam7: seven passes, each a small image with its own filtered rows, some empty for
    images under 8 pixels a side (no rows, no filter bytes)."""
    rng = np.random.default_rng(20 + channels)
    for height in list(range(1, 10)) + [16, 17]:
        for width in (1, 2, 3, 4, 5, 7, 8, 9, 13):
            pixels = _pixels(rng, height, width, channels, smooth=width % 2 == 0)
            data = png_bytes(pixels, rng.integers(0, 5, 2 * height + 7), interlace=True)
            np.testing.assert_array_equal(_pillow(data, MODES[channels]), pixels)
            status, out = _decode(tmp_path, [data, data], (height, width, channels), channels_last)
            assert _status_names(status) == ["decoded"] * 2, (height, width)
            np.testing.assert_array_equal(out, np.stack([pixels] * 2))


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_channels_first_holds_the_same_pixels(tmp_path, channels):
    rng = np.random.default_rng(10 + channels)
    pixels = [_pixels(rng, 9, 7, channels, smooth=k % 2 == 1) for k in range(6)]
    files = [png_bytes(p, rng.integers(0, 5, 9)) for p in pixels]
    status, last = _decode(tmp_path, files, (9, 7, channels), channels_last=True)
    status_first, first = _decode(tmp_path, files, (9, 7, channels), channels_last=False)
    assert (status == 0).all() and (status_first == 0).all()
    np.testing.assert_array_equal(first, np.stack(pixels))
    np.testing.assert_array_equal(last, np.stack(pixels))


def test_data_split_into_many_idat_chunks_some_empty(tmp_path):
    rng = np.random.default_rng(2)
    pixels = _pixels(rng, 13, 11, 3)
    stream = zlib.compress(b"".join(bytes([0]) + pixels[y].tobytes() for y in range(13)), 9)
    splits = [
        [0],                                 # an empty IDAT first
        [1] * len(stream),                   # one byte per chunk
        [0, 5, 0, 0, 7, 0],                  # empty chunks between
        [len(stream), 0, 0],                 # empty chunks after the end of the stream
        [len(stream) - 1],                   # the last byte alone
        [3, len(stream) - 10, 0, 2],
    ]
    files = [png_bytes(pixels, stream=stream, idat_sizes=s) for s in splits]
    for data in files:
        np.testing.assert_array_equal(_pillow(data, "RGB"), pixels)
    status, out = _decode(tmp_path, files, (13, 11, 3))
    assert _status_names(status) == ["decoded"] * len(files)
    np.testing.assert_array_equal(out, np.stack([pixels] * len(files)))


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_ancillary_chunks_are_skipped(tmp_path, channels):
    rng = np.random.default_rng(3)
    pixels = _pixels(rng, 6, 5, channels)
    transparency = {1: b"\x00\x07", 3: b"\x00\x01\x00\x02\x00\x03", 4: None}[channels]
    chunks = [png_chunk(b"gAMA", struct.pack(">I", 45455)), png_chunk(b"sRGB", b"\x00"),
              png_chunk(b"pHYs", struct.pack(">IIB", 2835, 2835, 1)), png_chunk(b"tEXt", b"Comment\x00hello"),
              png_chunk(b"zTXt", b"Title\x00\x00" + zlib.compress(b"a title")),
              png_chunk(b"prVt", bytes(range(40)))]
    if transparency is not None:
        chunks.append(png_chunk(b"tRNS", transparency))
    if channels != 1:  # a suggested palette: allowed for RGB and RGBA images
        chunks.insert(0, png_chunk(b"PLTE", bytes(range(48))))
    files = [png_bytes(pixels, before=chunks),
             png_bytes(pixels, after=[png_chunk(b"tEXt", b"After\x00the data"), png_chunk(b"prVt", b"")]),
             png_bytes(pixels, before=chunks[-2:], after=[k for k in chunks if k[4:8] != b"PLTE"][:3],
                       trailing=b"garbage after IEND")]
    for data in files:
        np.testing.assert_array_equal(_pillow(data, MODES[channels]), pixels)
    status, out = _decode(tmp_path, files, (6, 5, channels))
    assert _status_names(status) == ["decoded"] * 3
    np.testing.assert_array_equal(out, np.stack([pixels] * 3))


def test_pillows_own_files_decode(tmp_path):
    """PNGs as Pillow writes them (its own choice of filters), at several sizes and levels."""
    rng = np.random.default_rng(4)
    for channels, mode in MODES.items():
        files, expected = [], []
        for level in (0, 1, 6, 9):
            for smooth in (False, True):
                pixels = _pixels(rng, 17, 23, channels, smooth)
                buf = io.BytesIO()
                Image.fromarray(pixels[:, :, 0] if channels == 1 else pixels, mode).save(
                    buf, "PNG", compress_level=level)
                files.append(buf.getvalue())
                expected.append(pixels)
        status, out = _decode(tmp_path, files, (17, 23, channels))
        assert (status == 0).all()
        np.testing.assert_array_equal(out, np.stack(expected))


# ----------------------------------------------------------------------------- threads
def _mixed_batch(tmp_path, rng, n=40):
    """Good files, damaged ones, other kinds, missing ones and skipped rows, mixed."""
    files = []
    for k in range(n):
        pixels = _pixels(rng, 8, 9, 3, smooth=k % 3 == 0)
        data = png_bytes(pixels, rng.integers(0, 5, 23), interlace=k % 4 == 1)
        if k % 7 == 3:
            data = data[:len(data) - 20]
        elif k % 7 == 5:
            data = png_bytes(pixels[:, :, :1])
        elif k % 11 == 4:
            data = None
        files.append(data)
    return files


@pytest.mark.parametrize("channels_last", [True, False])
def test_results_do_not_depend_on_the_thread_count(tmp_path, channels_last):
    rng = np.random.default_rng(5)
    files = _mixed_batch(tmp_path, rng)
    results = [_decode(tmp_path, files, (8, 9, 3), channels_last, num_threads=t) for t in (1, 2, 3, 64)]
    status, out = results[0]
    assert set(_status_names(status)) == {"decoded", "undecodable", "skipped"}
    decoded = status == pd.DECODED
    for other_status, other_out in results[1:]:
        np.testing.assert_array_equal(other_status, status)
        np.testing.assert_array_equal(other_out[decoded], out[decoded])
    for k in np.flatnonzero(decoded):
        np.testing.assert_array_equal(out[k], _pillow(files[k], "RGB"))


# ----------------------------------------------------------------------------- not taken
def test_every_truncation_is_refused(tmp_path):
    rng = np.random.default_rng(6)
    pixels = _pixels(rng, 5, 6, 1)
    data = png_bytes(pixels, [1, 2, 3, 4, 0], after=[png_chunk(b"tEXt", b"k\x00v")], idat_sizes=[10, 0])
    files = [data[:cut] for cut in range(len(data))] + [data, data + b"\x00" * 5]
    status, out = _decode(tmp_path, files, (5, 6, 1))
    assert _status_names(status) == ["undecodable"] * len(data) + ["decoded"] * 2
    np.testing.assert_array_equal(out[-1], pixels)


def test_every_flipped_byte_is_refused(tmp_path):
    """A flipped byte anywhere before the end of IEND breaks a CRC (or the signature, or a
    length): the file is refused. After IEND bytes do not count."""
    rng = np.random.default_rng(7)
    pixels = _pixels(rng, 4, 5, 3)
    data = png_bytes(pixels, [4, 3, 2, 1], before=[png_chunk(b"gAMA", struct.pack(">I", 45455))],
                     trailing=b"tail")
    files = []
    for pos in range(len(data)):
        flipped = bytearray(data)
        flipped[pos] ^= 0x10
        files.append(bytes(flipped))
    status, out = _decode(tmp_path, files, (4, 5, 3))
    tail = len(b"tail")
    assert _status_names(status[:-tail]) == ["undecodable"] * (len(data) - tail)
    assert _status_names(status[-tail:]) == ["decoded"] * tail
    np.testing.assert_array_equal(out[-1], pixels)


@pytest.mark.parametrize("kind", ["grey_for_rgb", "rgb_for_grey", "rgb_for_rgba", "rgba_for_rgb", "grey_alpha",
                                  "16_bit", "palette", "4_bit_grey", "interlaced_16_bit", "wider", "narrower",
                                  "taller", "shorter", "jpeg", "not_an_image", "empty"])
def test_other_kinds_of_file_are_refused(tmp_path, kind):
    rng = np.random.default_rng(8)
    grey = kind in ("rgb_for_grey", "16_bit", "4_bit_grey", "interlaced_16_bit")
    shape = (6, 5, 1 if grey else (4 if kind == "rgb_for_rgba" else 3))
    h, w, c = shape
    good = _pixels(rng, h, w, c)
    buf = io.BytesIO()
    if kind == "grey_for_rgb":
        data = png_bytes(good[:, :, :1])
    elif kind == "rgb_for_grey":
        data = png_bytes(_pixels(rng, h, w, 3))
    elif kind == "rgb_for_rgba":
        data = png_bytes(_pixels(rng, h, w, 3))
    elif kind == "rgba_for_rgb":
        data = png_bytes(_pixels(rng, h, w, 4))
    elif kind == "grey_alpha":
        data = png_bytes(_pixels(rng, h, w, 2))
    elif kind == "16_bit":
        Image.frombytes("I;16", (w, h), rng.integers(0, 65536, (h, w), dtype="<u2").tobytes()).save(buf, "PNG")
        data = buf.getvalue()
    elif kind == "palette":
        Image.fromarray(good, "RGB").quantize(8).save(buf, "PNG")
        data = buf.getvalue()
    elif kind == "4_bit_grey":
        # two 4-bit pixels per byte: rows of ceil(5 / 2) bytes
        data = png_bytes(good, bit_depth=4, raw=b"".join(b"\x00" + bytes(3) for _ in range(h)))
    elif kind == "interlaced_16_bit":
        # each pass's rows of 2-byte samples (their values do not matter here)
        data = png_bytes(good, bit_depth=16, interlace=True, raw=bytes(200))
    elif kind in ("wider", "narrower", "taller", "shorter"):
        size = {"wider": (h, w + 1), "narrower": (h, w - 1), "taller": (h + 1, w), "shorter": (h - 1, w)}[kind]
        data = png_bytes(_pixels(rng, size[0], size[1], c))
    elif kind == "jpeg":
        Image.fromarray(good, "RGB").save(buf, "JPEG")
        data = buf.getvalue()
    elif kind == "not_an_image":
        data = b"not an image at all"
    else:
        data = b""
    good_data = png_bytes(good)
    status, out = _decode(tmp_path, [good_data, data, good_data], shape)
    assert _status_names(status) == ["decoded", "undecodable", "decoded"]
    np.testing.assert_array_equal(out[0], good)
    np.testing.assert_array_equal(out[2], good)


def _stream(pixels, extra_rows=0):
    h, w, c = pixels.shape
    rows = b"".join(b"\x00" + pixels[y].tobytes() for y in range(h))
    return rows + (b"\x00" + bytes(w * c)) * extra_rows


@pytest.mark.parametrize("kind", ["too_much_data", "too_little_data", "one_byte_too_many", "one_byte_too_few",
                                  "filter_type_5", "bad_adler32", "bytes_after_the_stream", "data_after_the_stream",
                                  "not_zlib", "ihdr_not_first", "ihdr_twice", "unknown_critical_chunk",
                                  "palette_in_grey", "palette_after_data", "two_palettes", "animated",
                                  "idat_chunks_apart", "no_iend", "iend_first", "iend_with_data",
                                  "chunk_type_not_letters", "length_over_2_31", "length_past_the_end",
                                  "compression_method_1", "filter_method_1", "interlace_method_2", "no_idat",
                                  "interlaced_one_byte_too_few", "interlaced_one_byte_too_many",
                                  "interlaced_filter_type_5", "interlaced_rows_as_if_not"])
def test_damaged_files_are_refused(tmp_path, kind):
    rng = np.random.default_rng(9)
    h, w, c = 6, 5, 3
    pixels = _pixels(rng, h, w, c)
    rows = _stream(pixels)
    iend = png_chunk(b"IEND", b"")
    head = PNG_SIGNATURE + png_ihdr(w, h, 2)
    idat = png_chunk(b"IDAT", zlib.compress(rows))
    if kind == "too_much_data":
        data = png_bytes(pixels, raw=_stream(pixels, extra_rows=1))
    elif kind == "too_little_data":
        data = png_bytes(pixels, raw=rows[:-(w * c + 1)])
    elif kind == "one_byte_too_many":
        data = png_bytes(pixels, raw=rows + b"\x00")
    elif kind == "one_byte_too_few":
        data = png_bytes(pixels, raw=rows[:-1])
    elif kind == "filter_type_5":
        data = png_bytes(pixels, [0, 0, 5, 0, 0, 0])
    elif kind == "bad_adler32":
        stream = zlib.compress(rows)
        data = png_bytes(pixels, stream=stream[:-1] + bytes([stream[-1] ^ 1]))
    elif kind == "bytes_after_the_stream":
        data = png_bytes(pixels, stream=zlib.compress(rows) + b"\x00\x00")
    elif kind == "data_after_the_stream":
        stream = zlib.compress(rows)
        data = head + png_chunk(b"IDAT", stream) + png_chunk(b"IDAT", b"\x03\x00") + iend
    elif kind == "not_zlib":
        data = png_bytes(pixels, stream=rows)
    elif kind == "ihdr_not_first":
        data = PNG_SIGNATURE + png_chunk(b"tEXt", b"k\x00v") + png_ihdr(w, h, 2) + idat + iend
    elif kind == "ihdr_twice":
        data = head + png_ihdr(w, h, 2) + idat + iend
    elif kind == "unknown_critical_chunk":
        data = png_bytes(pixels, before=[png_chunk(b"CRIT", b"x")])
    elif kind == "palette_in_grey":
        h, w, c = 6, 5, 1
        pixels = pixels[:, :, :1].copy()
        data = png_bytes(pixels, before=[png_chunk(b"PLTE", bytes(range(48)))])
    elif kind == "palette_after_data":
        data = png_bytes(pixels, after=[png_chunk(b"PLTE", bytes(range(48)))])
    elif kind == "two_palettes":
        data = png_bytes(pixels, before=[png_chunk(b"PLTE", bytes(range(48)))] * 2)
    elif kind == "animated":
        data = png_bytes(pixels, before=[png_chunk(b"acTL", struct.pack(">II", 1, 0))])
    elif kind == "idat_chunks_apart":
        stream = zlib.compress(rows)
        data = (head + png_chunk(b"IDAT", stream[:10]) + png_chunk(b"tEXt", b"k\x00v")
                + png_chunk(b"IDAT", stream[10:]) + iend)
    elif kind == "no_iend":
        data = png_bytes(pixels, end=False)
    elif kind == "iend_first":
        data = head + iend + idat + iend
    elif kind == "iend_with_data":
        data = head + idat + png_chunk(b"IEND", b"\x00")
    elif kind == "chunk_type_not_letters":
        data = png_bytes(pixels, before=[png_chunk(b"te1t", b"k\x00v")])
    elif kind == "length_over_2_31":
        bad = struct.pack(">I", 0x80000000) + b"teXt" + b"\x00" * 8
        data = head + bad + idat + iend
    elif kind == "length_past_the_end":
        bad = struct.pack(">I", 1000) + b"teXt" + b"abc"
        data = head + idat + bad
    elif kind in ("compression_method_1", "filter_method_1", "interlace_method_2"):
        fields = {"compression_method_1": (1, 0, 0), "filter_method_1": (0, 1, 0), "interlace_method_2": (0, 0, 2)}
        ihdr = png_chunk(b"IHDR", struct.pack(">IIBB", w, h, 8, 2) + bytes(fields[kind]))
        data = PNG_SIGNATURE + ihdr + idat + iend
    elif kind.startswith("interlaced"):
        full = png_bytes(pixels, interlace=True)
        ihdr_end = 8 + 25
        pos = ihdr_end + 8
        stream = zlib.decompress(full[pos:pos + struct.unpack(">I", full[ihdr_end:ihdr_end + 4])[0]])
        if kind == "interlaced_one_byte_too_few":
            raw = stream[:-1]
        elif kind == "interlaced_one_byte_too_many":
            raw = stream + b"\x00"
        elif kind == "interlaced_filter_type_5":
            raw = stream[:-(w * c + 1)] + b"\x05" + stream[-(w * c):]  # the last pass's last row
        else:
            raw = rows  # rows of a plain image: too few bytes for the passes' filter bytes
        data = png_bytes(pixels, interlace=True, raw=raw)
    else:  # no_idat
        data = head + iend
    status, out = _decode(tmp_path, [data], (h, w, c))
    assert _status_names(status) == ["undecodable"]


def test_mutated_files_never_escape_their_row(tmp_path):
    """Random changes inside valid chunks, with their CRCs made right again, reach the
    inflater and the unfilter: whatever comes out, nothing outside the file's row is
    written, and a file that decodes holds what Pillow finds in it."""
    rng = np.random.default_rng(11)
    pixels = _pixels(rng, 7, 6, 4, smooth=True)
    bases = []
    for interlace in (False, True):
        data = png_bytes(pixels, rng.integers(0, 5, 21), idat_sizes=[9, 0, 20], interlace=interlace)
        chunks, pos = [], 8
        while pos < len(data):
            length = struct.unpack(">I", data[pos:pos + 4])[0]
            chunks.append((data[pos + 4:pos + 8], bytearray(data[pos + 8:pos + 8 + length])))
            pos += 12 + length
        bases.append(chunks)
    files = []
    for m in range(400):
        chunks = bases[m % 2]
        parts = [(kind, bytearray(body)) for kind, body in chunks]
        for _ in range(int(rng.integers(1, 4))):
            k = int(rng.integers(0, len(parts)))
            kind, body = parts[k]
            if body and rng.random() < 0.8:
                body[int(rng.integers(0, len(body)))] = int(rng.integers(0, 256))
            elif rng.random() < 0.5:
                del body[int(rng.integers(0, len(body) + 1)):]
            else:
                body += bytes(rng.integers(0, 256, int(rng.integers(1, 9)), dtype=np.uint8))
        files.append(PNG_SIGNATURE + b"".join(png_chunk(bytes(kind), bytes(body)) for kind, body in parts))
    for channels_last in (True, False):
        status, out = _decode(tmp_path, files, (7, 6, 4), channels_last, num_threads=2)
        assert set(np.unique(status).tolist()) <= {pd.DECODED, pd.UNDECODABLE}
        for k in np.flatnonzero(status == pd.DECODED):
            np.testing.assert_array_equal(out[k], _pillow(files[k], "RGBA"))


# ----------------------------------------------------------------------------- files
def test_files_that_cannot_be_read_give_their_errno(tmp_path):
    rng = np.random.default_rng(12)
    pixels = _pixels(rng, 3, 4, 1)
    good = tmp_path / "good.png"
    good.write_bytes(png_bytes(pixels))
    folder = tmp_path / "a_folder.png"
    folder.mkdir()
    paths = [os.fsencode(str(tmp_path / "missing.png")), os.fsencode(str(good)), os.fsencode(str(folder)), None]
    out = np.zeros((4, 3, 4, 1), np.uint8)
    status = pd.decode_png_files(paths, out)
    assert status.dtype == np.int32
    assert status.tolist() == [-errno.ENOENT, pd.DECODED, -errno.EISDIR, pd.SKIPPED]
    np.testing.assert_array_equal(out[1], pixels)
    assert not out[[0, 2, 3]].any()


def _padded(pixels, total):
    """A valid PNG of ``pixels`` exactly ``total`` bytes long (a private chunk fills it)."""
    bare = png_bytes(pixels)
    pad = total - len(bare) - 12
    assert pad >= 0
    return png_bytes(pixels, before=[png_chunk(b"prVt", bytes(pad))])


@pytest.mark.parametrize("total", [(1 << 16) - 1, 1 << 16, (1 << 16) + 1, 300_000, 3 << 20])
def test_files_larger_than_the_first_read(tmp_path, total):
    """The first read takes 64 KiB (for a small image): a larger file is read on to its end,
    whatever its size around that boundary."""
    rng = np.random.default_rng(total)
    pixels = _pixels(rng, 28, 28, 1)
    data = _padded(pixels, total)
    assert len(data) == total
    status, out = _decode(tmp_path, [data, png_bytes(pixels)], (28, 28, 1))
    assert _status_names(status) == ["decoded", "decoded"]
    np.testing.assert_array_equal(out[0], pixels)


def test_a_large_image_of_another_size_is_refused_from_its_first_bytes(tmp_path):
    rng = np.random.default_rng(13)
    big = png_bytes(_pixels(rng, 300, 300, 3), level=0)
    assert len(big) > 1 << 18
    small = _pixels(rng, 28, 28, 3)
    status, out = _decode(tmp_path, [big, png_bytes(small)], (28, 28, 3))
    assert _status_names(status) == ["undecodable", "decoded"]
    np.testing.assert_array_equal(out[1], small)


def test_a_large_image_of_the_right_size(tmp_path):
    rng = np.random.default_rng(14)
    pixels = _pixels(rng, 300, 301, 3)
    files = [png_bytes(pixels, level=0), png_bytes(pixels, rng.integers(0, 5, 300), level=9)]
    status, out = _decode(tmp_path, files, (300, 301, 3), num_threads=2)
    assert (status == 0).all()
    np.testing.assert_array_equal(out, np.stack([pixels] * 2))


# ----------------------------------------------------------------------------- arguments
def test_arguments_are_checked(tmp_path):
    out = np.zeros((2, 4, 4, 3), np.uint8)
    with pytest.raises(ValueError, match="2 rows"):
        pd.decode_png_files([b"a.png"], out)
    with pytest.raises(ValueError, match="1, 3 or 4 channels"):
        pd.decode_png_files([b"a.png", b"b.png"], np.zeros((2, 4, 4, 2), np.uint8))
    with pytest.raises(ValueError, match="1, 3 or 4 channels"):
        pd.decode_png_files([b"a.png", b"b.png"], np.zeros((2, 2, 4, 4), np.uint8), channels_last=False)
    with pytest.raises(TypeError, match="bytes"):
        pd.decode_png_files(["a.png", b"b.png"], out)
    with pytest.raises(ValueError, match="null byte"):
        pd.decode_png_files([b"a\x00.png", b"b.png"], out)
    with pytest.raises(ValueError):
        pd.decode_png_files([b"a.png", b"b.png"], np.zeros((2, 4, 4, 3), np.float32))
    with pytest.raises(ValueError):
        pd.decode_png_files([b"a.png"], np.zeros((1, 4, 8, 3), np.uint8)[:, :, ::2])
    empty = pd.decode_png_files([], np.zeros((0, 4, 4, 3), np.uint8))
    assert empty.shape == (0,) and empty.dtype == np.int32
