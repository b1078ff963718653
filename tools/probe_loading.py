"""Fuzzes fastnet's loaders with damaged and hostile files and counts the outcomes.

Usage: python tools/probe_loading.py [--flips N] [--cuts N] [--seed S] [--bombs]

Starting from files fastnet saves (a small MLP with Adam state, a convnet with batch
normalization) and from Keras's reference files, it loads:

- truncations at evenly spaced lengths;
- single-bit flips at random positions (every byte of weight data for the
  .weights.h5 files, since those are the flips that could load other numbers);
- runs of random bytes written over the file;
- wrong types edited in with h5py: datasets replaced by strings, groups, scalars,
  compound, complex, integer and object-reference data; attributes of odd types;
- archive edits: entries missing, replaced with junk, duplicated, or swapped.

Every outcome is one of: ``clean`` (fastnet's FileFormatError, WeightsMismatchError
or DeserializationError, whose message names the file), ``same`` (loaded, weights
equal to what was saved), ``different`` (loaded other numbers: a defect unless the
file carries no checksum), or ``other`` (any other exception: a defect). With
``--bombs`` the peak memory growth on crafted archives is measured in subprocesses.
"""
import argparse
import collections
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import warnings
import zipfile

import numpy as np

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, HERE)

import h5py  # noqa: E402

from fastnet import layers  # noqa: E402
from fastnet.models import Sequential, load_model  # noqa: E402
from fastnet.saving import DeserializationError, FileFormatError, WeightsMismatchError  # noqa: E402

CLEAN = (FileFormatError, WeightsMismatchError, DeserializationError)
SAVED = os.path.join(HERE, "tests", "data", "keras_reference", "saved")


def _mlp():
    m = Sequential([layers.Input(shape=(5,)), layers.Dense(8, activation="relu"), layers.Dense(3)], name="mlp")
    m.compile(optimizer="adam", loss="mse")
    return m


def _cnn():
    m = Sequential([layers.Input(shape=(8, 8, 2)), layers.Conv2D(4, 3, activation="relu"),
                    layers.BatchNormalization(), layers.MaxPooling2D(2), layers.Flatten(), layers.Dense(2)],
                   name="cnn")
    m.compile(optimizer="sgd", loss="mse")
    return m


def _trained(factory, seed, shape):
    m = factory()
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(16,) + shape).astype(np.float32)
    y = rng.normal(size=(16,) + m.predict(x[:1], verbose=0).shape[1:]).astype(np.float32)
    m.fit(x, y, epochs=1, batch_size=8, verbose=0)
    return m


class Probe:
    def __init__(self, folder):
        self.folder = folder
        self.counts = collections.Counter()
        self.examples = collections.defaultdict(list)

    def run(self, label, data, suffix, factory, expected, has_checksum, kind):
        """Writes ``data`` to a file and loads it the ways fastnet offers."""
        path = os.path.join(self.folder, "probe" + suffix)
        with open(path, "wb") as f:
            f.write(data)
        attempts = [("load_weights", lambda: self._load_weights(path, factory))]
        if suffix == ".keras":
            attempts.append(("load_model", lambda: load_model(path)))
        for how, fn in attempts:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    model = fn()
            except CLEAN as e:
                outcome = "clean" if "probe" in str(e) else "clean-unnamed"
            except Exception as e:  # noqa: BLE001 - counting anything else is the point
                outcome = "other"
                self.examples[outcome].append(f"{label} {how}: {type(e).__name__}: {str(e)[:160]}")
            else:
                same = len(model.get_weights()) == len(expected) and all(
                    a.shape == b.shape and a.tobytes() == b.tobytes()
                    for a, b in zip(model.get_weights(), expected))
                outcome = "same" if same else ("different" if has_checksum else "different-no-checksum")
                if outcome == "different":
                    self.examples[outcome].append(f"{label} {how}")
            self.counts[(kind, outcome)] += 1

    @staticmethod
    def _load_weights(path, factory):
        m = factory()
        m.load_weights(path)
        return m


def _dataset_bytes(h5data):
    spans = set()
    with h5py.File(io.BytesIO(h5data)) as h:
        def visit(_, obj):
            if isinstance(obj, h5py.Dataset) and obj.id.get_offset() is not None:
                off = obj.id.get_offset()
                spans.update(range(off, off + obj.id.get_storage_size()))
        h.visititems(visit)
    return sorted(spans)


def _h5_edits(data):
    """(label, edited bytes) of an HDF5 weights file with wrong types edited in."""
    out = []
    with h5py.File(io.BytesIO(data)) as h:
        paths = []
        h.visititems(lambda n, o: paths.append(n) if isinstance(o, h5py.Dataset) else None)
    replacements = {
        "string": lambda g, k, shape: g.create_dataset(k, data=np.array(["w"] * max(1, int(np.prod(shape))),
                                                                         dtype=h5py.string_dtype())),
        "group": lambda g, k, shape: g.create_group(k),
        "scalar": lambda g, k, shape: g.create_dataset(k, data=np.float32(1)),
        "int": lambda g, k, shape: g.create_dataset(k, data=np.ones(shape, np.int64)),
        "complex": lambda g, k, shape: g.create_dataset(k, data=np.ones(shape, np.complex64)),
        "compound": lambda g, k, shape: g.create_dataset(k, data=np.zeros(shape, [("a", "f4"), ("b", "i4")])),
        "reference": lambda g, k, shape: g.create_dataset(k, data=np.array([g.ref] * max(1, int(np.prod(shape)))),
                                                          dtype=h5py.ref_dtype),
        "float16": lambda g, k, shape: g.create_dataset(k, data=np.ones(shape, np.float16)),
        "bool": lambda g, k, shape: g.create_dataset(k, data=np.ones(shape, bool)),
        "empty": lambda g, k, shape: g.create_dataset(k, shape=None, dtype="f4"),
    }
    for p in paths:
        for name, make in replacements.items():
            buf = io.BytesIO(data)
            with h5py.File(buf, "a") as h:
                shape = h[p].shape
                parent, key = p.rsplit("/", 1)
                del h[p]
                make(h[parent], key, shape)
            out.append((f"{p}={name}", buf.getvalue()))
        buf = io.BytesIO(data)
        with h5py.File(buf, "a") as h:
            h[p].attrs["fastnet_crc32"] = "not a number"
        out.append((f"{p}.crc=str", buf.getvalue()))
    for attr_value in (np.arange(5), "x" * 100, b"\xff\xfe", np.float64(np.nan)):
        buf = io.BytesIO(data)
        with h5py.File(buf, "a") as h:
            for g in ("vars", "layers"):
                if g in h:
                    h[g].attrs["name"] = attr_value
        out.append((f"name-attr={type(attr_value).__name__}", buf.getvalue()))
    return out


def _zip_edits(data):
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        entries = {i.filename: z.read(i) for i in z.infolist()}

    def pack(d, extra=()):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            for k, v in d.items():
                z.writestr(k, v)
            for k, v in extra:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    z.writestr(k, v)
        return buf.getvalue()

    out = []
    for name in entries:
        out.append((f"drop {name}", pack({k: v for k, v in entries.items() if k != name})))
        for junk in (b"", b"\x00" * 64, b"{}", b"[]", b"null", b'"x"', b"\x89HDF\r\n\x1a\n" + b"\x00" * 100):
            out.append((f"{name}={junk[:8]!r}", pack(dict(entries, **{name: junk}))))
        out.append((f"dup {name}", pack(entries, extra=[(name, entries[name])])))
    if "config.json" in entries and "model.weights.h5" in entries:
        swapped = dict(entries)
        swapped["config.json"], swapped["model.weights.h5"] = entries["model.weights.h5"], entries["config.json"]
        out.append(("swap config/weights", pack(swapped)))
    out.append(("h5 as archive", entries.get("model.weights.h5", b"")))
    out.append(("not a zip", b"PK\x03\x04" + bytes(200)))
    out.append(("empty", b""))
    return out


def _bombs(folder):
    """Peak RSS growth (MB) of load_model on crafted archives, each in a fresh process."""
    code = textwrap.dedent("""
        import json, resource, sys
        import numpy as np
        from fastnet import layers
        from fastnet.models import Sequential, load_model
        m = Sequential([layers.Input(shape=(3,)), layers.Dense(4), layers.Dense(1)])
        m.save(sys.argv[2]); load_model(sys.argv[2])
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            load_model(sys.argv[1]); err = "loaded"
        except Exception as e:
            err = type(e).__name__ + ": " + str(e)[-120:]
        print(json.dumps([(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024, err]))
    """)
    m = Sequential([layers.Input(shape=(3,)), layers.Dense(4), layers.Dense(1)])
    good = os.path.join(folder, "good.keras")
    m.save(good)
    with zipfile.ZipFile(good) as z:
        entries = {i.filename: z.read(i) for i in z.infolist()}
    cases = {}
    bomb = os.path.join(folder, "bomb.keras")
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        for k in ("metadata.json", "config.json"):
            z.writestr(k, entries[k])
        with z.open("model.weights.h5", "w", force_zip64=True) as f:
            chunk = bytes(1 << 22)
            for _ in range(640):  # 2.5 GiB
                f.write(chunk)
    cases["weights entry inflating to 2.5 GiB"] = bomb
    for label, config in (("config of 8 MB of empty objects", b"[" + b"{}," * 2796200 + b"{}]"),
                          ("config of 8 MB of short strings", b"[" + b'"ab",' * 1677720 + b'"ab"]')):
        p = os.path.join(folder, label.replace(" ", "_") + ".keras")
        with zipfile.ZipFile(p, "w", compression=zipfile.ZIP_DEFLATED) as z:
            z.writestr("metadata.json", entries["metadata.json"])
            z.writestr("config.json", config)
            z.writestr("model.weights.h5", entries["model.weights.h5"])
        cases[label] = p
    for label, p in cases.items():
        out = subprocess.run([sys.executable, "-c", code, p, good + ".2.keras"], capture_output=True,
                             text=True, cwd=HERE)
        line = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else out.stderr[-300:]
        print(f"  {label:40s} {os.path.getsize(p) / 1e6:7.1f} MB on disk: {line}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--flips", type=int, default=300, help="random bit flips per file (besides data bytes)")
    ap.add_argument("--cuts", type=int, default=40, help="truncations per file")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bombs", action="store_true")
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    folder = tempfile.mkdtemp(prefix="fastnet-probe-")
    probe = Probe(folder)
    try:
        bases = []
        for factory, seed, shape in ((_mlp, 1, (5,)), (_cnn, 2, (8, 8, 2))):
            m = _trained(factory, seed, shape)
            m.save(os.path.join(folder, "b.keras"))
            m.save_weights(os.path.join(folder, "b.weights.h5"))
            with open(os.path.join(folder, "b.keras"), "rb") as f:
                bases.append((f"fastnet-{m.name}", ".keras", f.read(), factory, m.get_weights(), True))
            with open(os.path.join(folder, "b.weights.h5"), "rb") as f:
                bases.append((f"fastnet-{m.name}", ".weights.h5", f.read(), factory, m.get_weights(), True))
        for name in ("seed_mlp", "mlp_bn_sgd"):
            ref = load_model(os.path.join(SAVED, name + ".keras"))
            weights = ref.get_weights()

            def factory(name=name):
                return load_model(os.path.join(SAVED, name + ".keras"))
            for suffix in (".keras", ".weights.h5"):
                with open(os.path.join(SAVED, name + suffix), "rb") as f:
                    bases.append((f"keras-{name}", suffix, f.read(), factory, weights, False))

        for label, suffix, data, factory, expected, has_checksum in bases:
            tag = f"{label}{suffix}"
            for n in np.linspace(0, len(data) - 1, args.cuts).astype(int):
                probe.run(f"{tag} cut {n}", data[:n], suffix, factory, expected, has_checksum, "truncation")
            positions = set(rng.integers(0, len(data), args.flips).tolist())
            if suffix == ".weights.h5":
                positions |= set(_dataset_bytes(data))
            for pos in sorted(positions):
                flipped = bytearray(data)
                flipped[pos] ^= 1 << int(rng.integers(8))
                probe.run(f"{tag} flip {pos}", bytes(flipped), suffix, factory, expected, has_checksum, "bit flip")
            for _ in range(args.flips // 10):
                pos = int(rng.integers(0, len(data)))
                n = int(rng.integers(1, 64))
                junk = bytearray(data)
                junk[pos:pos + n] = rng.integers(0, 256, min(n, len(data) - pos), dtype=np.uint8).tobytes()
                probe.run(f"{tag} junk {pos}+{n}", bytes(junk), suffix, factory, expected, has_checksum,
                          "random bytes")
            h5data = data
            if suffix == ".keras":
                with zipfile.ZipFile(io.BytesIO(data)) as z:
                    h5data = z.read("model.weights.h5")
                for elabel, edited in _zip_edits(data):
                    probe.run(f"{tag} {elabel}", edited, suffix, factory, expected, has_checksum, "archive edit")
            else:
                for elabel, edited in _h5_edits(h5data):
                    # A dataset replaced by a new one has no checksum of its own.
                    kept = has_checksum and ("=" not in elabel or elabel.startswith("name-attr")
                                             or ".crc=" in elabel)
                    probe.run(f"{tag} {elabel}", edited, suffix, factory, expected, kept, "wrong type")
        kinds = sorted({k for k, _ in probe.counts})
        outcomes = ["clean", "clean-unnamed", "same", "different", "different-no-checksum", "other"]
        print(f"{'probe kind':16s}" + "".join(f"{o:>22s}" for o in outcomes))
        for k in kinds:
            print(f"{k:16s}" + "".join(f"{probe.counts[(k, o)]:>22d}" for o in outcomes))
        total = collections.Counter()
        for (_, o), n in probe.counts.items():
            total[o] += n
        print(f"{'total':16s}" + "".join(f"{total[o]:>22d}" for o in outcomes))
        for o in ("other", "different"):
            for line in probe.examples[o][:15]:
                print(f"  {o}: {line}")
        if args.bombs:
            print("peak memory growth on crafted archives (load_model):")
            _bombs(folder)
        print(json.dumps({o: total[o] for o in outcomes}))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
