"""Shared test helpers: the Keras reference cases, finite differences, optional
dependencies and a PNG writer."""
import importlib
import json
import os
import struct
import zlib

import numpy as np
import pytest

import fastnet

REF = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "keras_reference")

# Tolerances for one layer or one step, float32 against Keras (tests/data/keras_reference/README.md).
RTOL, ATOL = 1e-4, 1e-5


def load_case(group, name):
    d = np.load(os.path.join(REF, group, name + ".npz"))
    return {k: d[k] for k in d.files if k != "meta"}, json.loads(str(d["meta"]))


def case_names(group, class_names=None):
    with open(os.path.join(REF, "index.json")) as f:
        cases = json.load(f)["cases"]
    return [c["name"] for c in cases
            if c["group"] == group and (class_names is None or c.get("class_name") in class_names)]


def assert_close(got, want, rtol=RTOL, atol=ATOL, what=""):
    got = np.asarray(got)
    want = np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=what)


def run_layer_case(name, rtol=RTOL, atol=ATOL, layer_factory=None):
    """Replays one tests/data/keras_reference/layers case: outputs, gradients, updated weights."""
    d, meta = load_case("layers", name)
    cls = getattr(fastnet.layers, meta["class_name"])
    layer = layer_factory(meta) if layer_factory else cls(**meta["config"])
    x = d["x"]
    layer(x)  # build
    weights = [d[f"w_{i}"] for i in range(meta["n_weights"])]
    for mode in meta["modes"]:
        layer.set_weights(weights)
        out = layer(x, training=(mode == "train"))
        outs = out if isinstance(out, (list, tuple)) else [out]
        assert len(outs) == meta["n_outputs"]
        for k, o in enumerate(outs):
            assert_close(o, d[f"y_{mode}_{k}"], rtol, atol, f"{name} {mode} output {k}")
        if meta["grads"]:
            ups = [d[f"upstream_{mode}_{k}"] for k in range(meta["n_outputs"])]
            dx = backprop(layer, ups if len(ups) > 1 else ups[0])
            if f"dx_{mode}" in d:
                assert_close(dx, d[f"dx_{mode}"], rtol, atol, f"{name} {mode} dx")
            for i, var in enumerate(layer.trainable_weights):
                assert_close(var.grad, d[f"dw_{mode}_{i}"], rtol, atol, f"{name} {mode} d{var.name}")
        if mode == "train":
            for i, w in enumerate(layer.get_weights()):
                if f"w_after_train_{i}" in d:
                    assert_close(w, d[f"w_after_train_{i}"], rtol, atol, f"{name} weight {i} after train")
    return layer


def numeric_grad(f, x, eps=1e-6):
    """Central differences of the scalar function f at x (float64), same shape as x."""
    x = np.array(x, dtype=np.float64)
    g = np.zeros_like(x)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        fp = f(x)
        flat[i] = old - eps
        fm = f(x)
        flat[i] = old
        gflat[i] = (fp - fm) / (2 * eps)
    return g


def check_layer_gradients(layer, x, training=False, rtol=1e-6, atol=1e-8, seed=0):
    """Finite differences (float64) of sum(layer(x) * u) against backprop(layer, u):
    the input gradient and every trainable weight's gradient."""
    rng = np.random.default_rng(seed)
    x = np.asarray(x, dtype=np.float64)
    y = layer(x, training=training)
    u = rng.standard_normal(np.shape(y))

    def loss_x(xv):
        return float(np.sum(layer(xv, training=training) * u))

    layer(x, training=training)
    dx = backprop(layer, u)
    grads = [v.grad.copy() for v in layer.trainable_weights]
    np.testing.assert_allclose(dx, numeric_grad(loss_x, x), rtol=rtol, atol=atol, err_msg="dx")
    for var, g in zip(layer.trainable_weights, grads):
        def loss_w(wv, var=var):
            old = var.value.copy()
            var.value[...] = wv
            try:
                return float(np.sum(layer(x, training=training) * u))
            finally:
                var.value[...] = old
        np.testing.assert_allclose(g, numeric_grad(loss_w, var.value), rtol=rtol, atol=atol,
                                   err_msg=f"d{var.name}")


def backprop(layer, dy, need_dx=True):
    """The backward pass of ``layer``'s last eager call (its ``_last_ctx``)."""
    ctx = layer._last_ctx
    assert ctx is not None, f"{layer.name} has not been called"
    ctx.need_dx = need_dx
    return layer.backward(ctx, dy)


def optional_required():
    """True in CI: tests of optional features must run there, not be skipped.

    ``.ci/run`` sets ``FASTNET_REQUIRE_OPTIONAL=1`` (and CI services set ``CI=true``);
    it installs the ``mpi`` and ``docs`` extras next to ``test``.
    """
    if os.environ.get("FASTNET_REQUIRE_OPTIONAL", "").strip() not in ("", "0"):
        return True
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def skip_unless(available, reason):
    """Skips the calling test module when ``available`` is false, saying ``reason``; in CI
    (``optional_required()``) fails it instead, so that a missing extra cannot pass unseen."""
    if available:
        return
    if optional_required():
        pytest.fail(f"{reason}; CI must run these tests (FASTNET_REQUIRE_OPTIONAL or CI is set)",
                    pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def optional_import(module, extra):
    """Imports an optional dependency for a test module, or skips the module (in CI: fails
    it) with the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        skip_unless(False, f"needs {module} (pip install -e '.[test,{extra}]'): {exc}")


# ----------------------------------------------------------------------------- PNG files
# A small PNG writer for the decoder tests: it chooses what Pillow's writer does not let
# a test choose (each row's filter, how the data is split into IDAT chunks, extra chunks
# and their place, Adam7 interlacing), so the bytes can exercise every path of a decoder.
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_COLOR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> color type (grey, grey+alpha, RGB, RGBA)
_ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def png_chunk(kind, data, crc=None):
    """One chunk: length, type, data and CRC (``crc`` replaces the right one)."""
    if crc is None:
        crc = zlib.crc32(kind + data)
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc & 0xFFFFFFFF)


def png_ihdr(width, height, color_type, bit_depth=8, interlace=0):
    return png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, interlace))


def _paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def png_filter_rows(pixels, filters):
    """The filtered rows of ``pixels`` (h, w, c uint8), row y with filter ``filters[y]``
    (0 None, 1 Sub, 2 Up, 3 Average, 4 Paeth), each after its filter byte."""
    h, w, c = pixels.shape
    rows = pixels.reshape(h, w * c).astype(np.int64)
    out = []
    for y in range(h):
        x = rows[y]
        b = rows[y - 1] if y else np.zeros_like(x)
        a = np.concatenate([np.zeros(c, np.int64), x[:-c]])
        ul = np.concatenate([np.zeros(c, np.int64), b[:-c]])
        kind = int(filters[y])
        pred = {0: 0, 1: a, 2: b, 3: (a + b) // 2, 4: _paeth(a, b, ul)}.get(kind, 0)
        out.append(bytes([kind]) + ((x - pred) % 256).astype(np.uint8).tobytes())
    return b"".join(out)


def png_bytes(pixels, filters=None, *, color_type=None, bit_depth=8, interlace=False, size=None,
              raw=None, stream=None, idat_sizes=None, before=(), after=(), level=6, end=True, trailing=b""):
    """The bytes of an 8-bit PNG file of ``pixels`` (h, w, c uint8).

    Args:
        filters: one filter type per row (default all 0); with ``interlace``, of every row of
            every Adam7 pass in turn.
        color_type, bit_depth, size: what IHDR says (default: from ``pixels``).
        interlace: write the rows in Adam7 order (and say so in IHDR).
        raw: the inflated data instead of the filtered rows; stream: the zlib data instead.
        idat_sizes: split the zlib data into IDAT chunks of these sizes (the rest in a
            last chunk; zeros give empty chunks), default one chunk.
        before, after: chunks (bytes from ``png_chunk``) put before the first IDAT and
            after the last.
        end: write IEND; trailing: bytes after it.
    """
    h, w, c = pixels.shape
    if raw is None:
        if interlace:
            subs = [pixels[ys::dy, xs::dx] for xs, ys, dx, dy in _ADAM7]
            subs = [s for s in subs if s.size]
            rows = sum(s.shape[0] for s in subs)
            filters = [0] * rows if filters is None else list(filters)
            parts, k = [], 0
            for s in subs:
                parts.append(png_filter_rows(s, filters[k:k + s.shape[0]]))
                k += s.shape[0]
            raw = b"".join(parts)
        else:
            raw = png_filter_rows(pixels, [0] * h if filters is None else filters)
    if stream is None:
        stream = zlib.compress(raw, level)
    idats, pos = [], 0
    for n in idat_sizes or ():
        idats.append(png_chunk(b"IDAT", stream[pos:pos + n]))
        pos += n
    if pos < len(stream) or not idats:
        idats.append(png_chunk(b"IDAT", stream[pos:]))
    width, height = (w, h) if size is None else size
    header = png_ihdr(width, height, PNG_COLOR_TYPES[c] if color_type is None else color_type, bit_depth,
                      int(bool(interlace)))
    return (PNG_SIGNATURE + header + b"".join(before) + b"".join(idats) + b"".join(after)
            + (png_chunk(b"IEND", b"") if end else b"") + trailing)
