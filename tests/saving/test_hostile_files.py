"""Hostile and damaged weight files: storage outside the file, links that leave it,
groups where datasets belong, compressed data, and per-weight checksums."""
import io
import shutil
import zipfile

import numpy as np
import pytest
from saving_helpers import path

from fastnet import layers
from fastnet.models import Sequential, load_model
from fastnet.saving import FileFormatError, WeightsMismatchError, _h5safety

h5py = pytest.importorskip("h5py")

KERNEL = "layers/dense/vars/0"


def _small():
    return Sequential([layers.Input(shape=(3,)), layers.Dense(4, activation="tanh"), layers.Dense(1)])


def _secret(tmp_path, n=12):
    """A local file whose bytes are valid float32 values of the kernel's size."""
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.arange(1, n + 1, dtype=np.float32).tobytes())
    return secret


def _edit_weights(tmp_path, edit):
    """A fastnet .weights.h5 with ``edit(h5 file)`` applied, and the same bytes as the
    weights entry of a .keras archive."""
    model = _small()
    model.save(tmp_path / "good.keras")
    model.save_weights(tmp_path / "w.weights.h5")
    with h5py.File(tmp_path / "w.weights.h5", "a") as h:
        edit(h)
    with zipfile.ZipFile(tmp_path / "good.keras") as zin, \
            zipfile.ZipFile(tmp_path / "bad.keras", "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == "model.weights.h5":
                data = (tmp_path / "w.weights.h5").read_bytes()
            zout.writestr(info.filename, data)
    return tmp_path / "w.weights.h5", tmp_path / "bad.keras"


def _assert_refused(weights, archive, pattern, via_archive=True):
    fresh = _small()
    before = fresh.get_weights()
    with pytest.raises(FileFormatError, match=pattern):
        fresh.load_weights(weights)
    for a, b in zip(fresh.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    if via_archive:
        with pytest.raises(FileFormatError, match=pattern):
            load_model(archive)
        with pytest.raises(FileFormatError, match=pattern):
            fresh.load_weights(archive)


# ----------------------------------------------------------------------------- storage elsewhere
def test_external_storage_is_refused(tmp_path):
    secret = _secret(tmp_path)

    def edit(h):
        del h[KERNEL]
        h.create_dataset(KERNEL, shape=(3, 4), dtype="<f4", external=[(str(secret), 0, 48)])
    weights, archive = _edit_weights(tmp_path, edit)
    with h5py.File(weights) as h:  # the file really does read the secret
        np.testing.assert_array_equal(h[KERNEL][()].ravel(), np.arange(1, 13))
    _assert_refused(weights, archive, r"'layers/dense/vars/0' keeps its data in external files")


def test_external_link_is_refused(tmp_path):
    with h5py.File(tmp_path / "other.h5", "w") as o:
        o["data"] = np.arange(12, dtype=np.float32).reshape(3, 4)

    def edit(h):
        del h[KERNEL]
        h[KERNEL] = h5py.ExternalLink(str(tmp_path / "other.h5"), "/data")
    weights, archive = _edit_weights(tmp_path, edit)
    _assert_refused(weights, archive, r"'layers/dense/vars/0' is an external link")


def test_virtual_dataset_is_refused(tmp_path):
    with h5py.File(tmp_path / "other.h5", "w") as o:
        o["data"] = np.arange(12, dtype=np.float32).reshape(3, 4)

    def edit(h):
        del h[KERNEL]
        layout = h5py.VirtualLayout(shape=(3, 4), dtype="<f4")
        layout[:] = h5py.VirtualSource(str(tmp_path / "other.h5"), "data", shape=(3, 4))
        h.create_virtual_dataset(KERNEL, layout)
    weights, archive = _edit_weights(tmp_path, edit)
    _assert_refused(weights, archive, r"'layers/dense/vars/0' is a virtual dataset")


def test_soft_link_through_an_external_link_is_refused(tmp_path):
    with h5py.File(tmp_path / "other.h5", "w") as o:
        o["data"] = np.arange(12, dtype=np.float32).reshape(3, 4)

    def edit(h):
        del h[KERNEL]
        h["elsewhere"] = h5py.ExternalLink(str(tmp_path / "other.h5"), "/")
        h[KERNEL] = h5py.SoftLink("/elsewhere/data")
    weights, archive = _edit_weights(tmp_path, edit)
    _assert_refused(weights, archive, r"external link")


def test_dangling_soft_link_is_refused(tmp_path):
    def edit(h):
        del h[KERNEL]
        h[KERNEL] = h5py.SoftLink("/no/such/thing")
    weights, archive = _edit_weights(tmp_path, edit)
    _assert_refused(weights, archive, r"'layers/dense/vars/0' is a soft link to '/no/such/thing'")


def test_soft_link_inside_the_file_is_followed(tmp_path):
    """A link to another place of the same file is harmless and loads."""
    src = _small()
    src.save_weights(tmp_path / "w.weights.h5")
    with h5py.File(tmp_path / "w.weights.h5", "a") as h:
        h.move(KERNEL, "stash/kernel")
        h[KERNEL] = h5py.SoftLink("/stash/kernel")
    dst = _small()
    dst.load_weights(tmp_path / "w.weights.h5")
    np.testing.assert_array_equal(dst.layers[0].kernel.value, src.layers[0].kernel.value)


def test_hostile_object_anywhere_in_the_file_is_refused_before_reading(tmp_path):
    """Also where the loader would never look: the whole file is checked first."""
    secret = _secret(tmp_path)

    def edit(h):
        h.create_dataset("unused/place", shape=(12,), dtype="<f4", external=[(str(secret), 0, 48)])
    weights, archive = _edit_weights(tmp_path, edit)
    _assert_refused(weights, archive, r"'unused/place' keeps its data in external files")


def test_compressed_dataset_is_refused(tmp_path):
    def edit(h):
        value = h[KERNEL][()]
        del h[KERNEL]
        h.create_dataset(KERNEL, data=value, compression="gzip")
    weights, archive = _edit_weights(tmp_path, edit)
    _assert_refused(weights, archive, r"'layers/dense/vars/0' is compressed \(gzip")


def test_file_of_too_many_objects_is_refused(tmp_path, monkeypatch):
    def edit(h):
        for i in range(40):
            h.create_group(f"junk/{i}")
    weights, archive = _edit_weights(tmp_path, edit)
    monkeypatch.setattr(_h5safety, "MAX_OBJECTS", 30)
    _assert_refused(weights, archive, r"more than 30 objects")


def test_group_where_a_weight_belongs(tmp_path):
    def edit(h):
        del h[KERNEL]
        h.create_group(KERNEL)
    weights, archive = _edit_weights(tmp_path, edit)
    _assert_refused(weights, archive, r"'layers/dense/vars/0' should hold the weight 'kernel' of layer "
                                      r"'dense\w*' \(Dense\) but is not a dataset")


# ----------------------------------------------------------------------------- checksums
def test_saved_weights_carry_checksums_that_are_verified(tmp_path):
    model = _small()
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.ones((4, 3), np.float32), np.ones((4, 1), np.float32), epochs=1, verbose=0)
    model.save_weights(tmp_path / "w.weights.h5")
    with h5py.File(tmp_path / "w.weights.h5", "a") as h:
        found = []
        h.visititems(lambda n, o: found.append(n) if isinstance(o, h5py.Dataset) else None)
        assert found and all(_h5safety.CHECKSUM_ATTR in h[n].attrs for n in found)
        assert "optimizer/vars/0" in found
        # Change one weight value, leaving its checksum.
        h[KERNEL][0, 0] = h[KERNEL][0, 0] + 1
    fresh = _small()
    with pytest.raises(FileFormatError, match=r"weight 'layers/dense/vars/0' does not match its checksum"):
        fresh.load_weights(tmp_path / "w.weights.h5")


def test_checksum_binds_the_weight_to_its_place(tmp_path):
    """Two weights of the same shape swapped in the file: each checksum names its path."""
    model = Sequential([layers.Input(shape=(3,)), layers.Dense(3), layers.Dense(3)])
    model.save_weights(tmp_path / "w.weights.h5")
    with h5py.File(tmp_path / "w.weights.h5", "a") as h:
        h.move("layers/dense/vars/0", "tmp")
        h.move("layers/dense_1/vars/0", "layers/dense/vars/0")
        h.move("tmp", "layers/dense_1/vars/0")
    fresh = Sequential([layers.Input(shape=(3,)), layers.Dense(3), layers.Dense(3)])
    with pytest.raises(FileFormatError, match="does not match its checksum"):
        fresh.load_weights(tmp_path / "w.weights.h5")


@pytest.mark.parametrize("suffix", [".weights.h5", ".keras"])
def test_files_without_checksums_still_load(tmp_path, suffix):
    """Keras writes no checksum: its files load as before."""
    src = path("mlp_bn_sgd", suffix)
    dst = tmp_path / ("k" + suffix)
    shutil.copy(src, dst)
    with zipfile.ZipFile(dst) if suffix == ".keras" else open(dst, "rb") as f:
        data = f.read("model.weights.h5") if suffix == ".keras" else f.read()
    with h5py.File(io.BytesIO(data)) as h:
        h.visititems(lambda n, o: (_ for _ in ()).throw(AssertionError(n))
                     if _h5safety.CHECKSUM_ATTR in o.attrs else None)
    model = load_model(path("mlp_bn_sgd", ".keras"))
    model.load_weights(dst)


def _data_spans(data):
    """(offset, size) of every dataset's raw bytes in an HDF5 file."""
    spans = []
    with h5py.File(io.BytesIO(data)) as h:
        def visit(_, obj):
            if isinstance(obj, h5py.Dataset) and obj.id.get_offset() is not None:
                spans.append((obj.id.get_offset(), obj.id.get_storage_size()))
        h.visititems(visit)
    return spans


def test_every_bit_flip_in_weight_data_is_refused(tmp_path):
    """One bit flipped in every byte of weight data, and in 300 bytes spread over the
    rest of the file: a file that loads must give exactly the saved weights, every
    other outcome is one of fastnet's clear errors (tools/probe_loading.py flips more)."""
    model = _small()
    model.save_weights(tmp_path / "w.weights.h5")
    data = (tmp_path / "w.weights.h5").read_bytes()
    saved = [w.copy() for w in model.get_weights()]
    in_data = set()
    for offset, size in _data_spans(data):
        in_data.update(range(offset, offset + size))
    assert len(in_data) == 4 * (12 + 4 + 4 + 1)
    positions = sorted(in_data | set(np.linspace(0, len(data) - 1, 300).astype(int).tolist()))
    target = tmp_path / "f.weights.h5"
    fresh = _small()  # a refused load leaves it as it was, a load must give the saved values
    refused = loaded = 0
    for k, pos in enumerate(positions):
        flipped = bytearray(data)
        flipped[pos] ^= 1 << (k % 8)
        target.write_bytes(bytes(flipped))
        try:
            fresh.load_weights(target)
        except (FileFormatError, WeightsMismatchError):
            refused += 1
            continue
        assert pos not in in_data, f"a flip in weight data at byte {pos} loaded"
        for a, b in zip(fresh.get_weights(), saved):
            assert a.tobytes() == b.tobytes(), f"the flip at byte {pos} loaded different weights"
        loaded += 1
    assert refused >= len(in_data) and loaded > 0
