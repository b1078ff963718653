"""Loading stays within bounded memory on crafted archives; saving leaves no litter
and writes through symbolic links."""
import json
import os
import signal
import struct
import subprocess
import sys
import textwrap
import time
import zipfile

import numpy as np
import pytest

from fastnet import layers
from fastnet.models import Sequential, load_model
from fastnet.saving import FileFormatError, _files

h5py = pytest.importorskip("h5py")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PEAK_LIMIT_MB = 200


def _small(units=4):
    return Sequential([layers.Input(shape=(3,)), layers.Dense(units, activation="tanh"), layers.Dense(1)])


def _entries(path):
    with zipfile.ZipFile(path) as z:
        return {i.filename: z.read(i) for i in z.infolist()}


def _write_archive(dst, entries, big=None, big_size=0):
    """A deflated archive of ``entries``; ``big`` is a name whose data is ``big_size``
    zero bytes written in chunks (so the test itself never holds it)."""
    with zipfile.ZipFile(dst, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        for name, data in entries.items():
            if name != big:
                z.writestr(name, data)
        if big is not None:
            with z.open(big, "w", force_zip64=True) as f:
                chunk = bytes(1 << 22)
                left = big_size
                while left > 0:
                    f.write(chunk[:min(left, len(chunk))])
                    left -= len(chunk)


def _peak_growth_mb(path, call="load_model"):
    """Loads ``path`` in a fresh interpreter; returns (peak RSS growth in MB over the
    process after a warm-up load of a good file, the error's type and message)."""
    code = textwrap.dedent(f"""
        import json, resource, sys
        import numpy as np
        import fastnet
        from fastnet import layers
        from fastnet.models import Sequential, load_model
        good = sys.argv[2]
        m = Sequential([layers.Input(shape=(3,)), layers.Dense(4, activation="tanh"), layers.Dense(1)])
        m.save(good)
        load_model(good)  # warm up: imports, h5py, kernels
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            if {call!r} == "load_model":
                load_model(sys.argv[1])
            else:
                m.load_weights(sys.argv[1])
            err = None
        except Exception as e:
            err = [type(e).__name__, str(e)]
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps([(after - before) / 1024, err]))
    """)
    out = subprocess.run([sys.executable, "-c", code, str(path), str(path) + ".good.keras"],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    growth, err = json.loads(out.stdout.strip().splitlines()[-1])
    return growth, err


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    folder = tmp_path_factory.mktemp("good")
    model = _small()
    model.compile(optimizer="adam", loss="mse")
    model.save(folder / "good.keras")
    return _entries(folder / "good.keras")


@pytest.fixture(scope="module")
def gigabyte_bomb(tmp_path_factory, good):
    """A .keras whose weights entry inflates to 1 GiB of zeros (a few MB on disk)."""
    bomb = tmp_path_factory.mktemp("bomb") / "bomb.keras"
    _write_archive(bomb, good, big="model.weights.h5", big_size=1 << 30)
    return bomb


# ----------------------------------------------------------------------------- bounded memory
@pytest.mark.parametrize("call", ["load_model", "load_weights"])
def test_weights_entry_that_inflates_to_a_gigabyte(gigabyte_bomb, call):
    bomb = gigabyte_bomb
    assert os.path.getsize(bomb) < 8 << 20
    growth, err = _peak_growth_mb(bomb, call)
    assert err is not None and err[0] == "FileFormatError", err
    assert "bomb.keras" in err[1] and "model.weights.h5 is 1073741824 bytes, more than" in err[1]
    assert growth < PEAK_LIMIT_MB


def _lie_about_size(path, name, size):
    """Rewrites the uncompressed size the archive's directory declares for ``name``
    (zipfile trusts the directory, not the entry's local header)."""
    data = bytearray(path.read_bytes())
    pos = 0
    while True:
        pos = data.index(b"PK\x01\x02", pos)
        n, m, k = struct.unpack("<3H", data[pos + 28:pos + 34])
        if bytes(data[pos + 46:pos + 46 + n]) == name.encode():
            break
        pos += 46 + n + m + k
    assert struct.unpack("<L", data[pos + 24:pos + 28])[0] == 1 << 30
    data[pos + 24:pos + 28] = struct.pack("<L", size)
    path.write_bytes(bytes(data))


def test_weights_entry_that_lies_about_its_size(tmp_path, gigabyte_bomb):
    """Declared small, inflating to a gigabyte: reading stops at the declared size and
    the damage is reported."""
    bomb = tmp_path / "liar.keras"
    bomb.write_bytes(gigabyte_bomb.read_bytes())
    _lie_about_size(bomb, "model.weights.h5", 50_000)
    growth, err = _peak_growth_mb(bomb)
    assert err is not None and err[0] == "FileFormatError", err
    assert "liar.keras" in err[1]
    assert growth < PEAK_LIMIT_MB


@pytest.mark.parametrize("kind", ["empty_objects", "short_strings", "floats", "huge"])
def test_config_entries_that_would_fill_memory(tmp_path, good, kind):
    limit = 8 * 1024 * 1024
    if kind == "empty_objects":
        config = b"[" + b"{}," * ((limit - 3) // 3) + b"{}]"
        expected = "objects and lists, more than"
    elif kind == "short_strings":
        config = b"[" + b'"ab",' * ((limit - 6) // 5) + b'"ab"]'
        expected = "does not hold a model config"
    elif kind == "floats":
        config = b"[" + b"1.5," * ((limit - 5) // 4) + b"1.5]"
        expected = "does not hold a model config"
    else:
        config = b"[" + b"0," * (64 * 1024 * 1024) + b"0]"
        expected = "config.json is 134217731 bytes, more than"
    assert len(config) <= limit or kind == "huge"
    entries = dict(good, **{"config.json": config})
    bad = tmp_path / "cfg.keras"
    _write_archive(bad, entries)
    growth, err = _peak_growth_mb(bad)
    assert err is not None and err[0] == "FileFormatError", err
    assert "cfg.keras" in err[1] and expected in err[1], err
    assert growth < PEAK_LIMIT_MB


def test_archive_directory_of_too_many_entries(tmp_path, good):
    ok = tmp_path / "ok.keras"
    _write_archive(ok, good)
    data = bytearray(ok.read_bytes())
    end = data.rfind(b"PK\x05\x06")
    data[end + 8:end + 12] = struct.pack("<2H", 60000, 60000)
    (tmp_path / "many.keras").write_bytes(bytes(data))
    with pytest.raises(FileFormatError, match=r"many.keras': the archive declares 60000 entries"):
        load_model(tmp_path / "many.keras")


def test_deflated_archive_still_loads(tmp_path, good):
    """A .keras re-packed with compression (by a zip tool) loads through a spooled copy."""
    src = _small()
    src.save(tmp_path / "m.keras")
    _write_archive(tmp_path / "z.keras", _entries(tmp_path / "m.keras"))
    with zipfile.ZipFile(tmp_path / "z.keras") as z:
        assert z.getinfo("model.weights.h5").compress_type == zipfile.ZIP_DEFLATED
    again = load_model(tmp_path / "z.keras")
    for a, b in zip(again.get_weights(), src.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_model_loads_from_an_open_file_object(tmp_path):
    src = _small()
    src.save(tmp_path / "m.keras")
    with open(tmp_path / "m.keras", "rb") as f:
        again = load_model(f)
    for a, b in zip(again.get_weights(), src.get_weights()):
        np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------------------- temporary files
STALL = textwrap.dedent("""
    import sys, time
    import numpy as np
    from fastnet import layers
    from fastnet.models import Sequential
    from fastnet.saving import saving_lib
    which = sys.argv[2]
    real = saving_lib._write_vars
    calls = []

    def slow(h5, path, owner, arrays):
        calls.append(path)
        real(h5, path, owner, arrays)
        if len(calls) == 2:
            print("stalled", flush=True)
            time.sleep(600)

    def slow_archive(fileobj, parts):
        fileobj.write(parts[2][: len(parts[2]) // 2])
        fileobj.flush()
        print("stalled", flush=True)
        time.sleep(600)

    m = Sequential([layers.Input(shape=(3,)), layers.Dense(4), layers.Dense(1)])
    if which == "weights":
        saving_lib._write_vars = slow
        m.save_weights(sys.argv[1])
    else:
        saving_lib._write_archive = slow_archive
        m.save(sys.argv[1])
""")


def _stalled_save(target, which):
    proc = subprocess.Popen([sys.executable, "-c", STALL, str(target), which], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.strip() == "stalled", proc.stderr.read()
    return proc


def _temps(folder):
    return sorted(n for n in os.listdir(folder) if n.startswith(".fastnet-save-"))


def _age(path, seconds):
    t = time.time() - seconds
    os.utime(path, (t, t), follow_symlinks=False)


@pytest.mark.parametrize("which", ["weights", "model"])
def test_kill_9_leftover_is_named_and_cleaned_when_stale(tmp_path, which):
    name = "w.weights.h5" if which == "weights" else "m.keras"
    target = tmp_path / name
    proc = _stalled_save(target, which)
    try:
        (live,) = _temps(tmp_path)
        assert _files._TEMP_NAME.match(live)
        # A running save's file is locked: even when old, another save leaves it alone.
        _age(tmp_path / live, 2 * _files.STALE_AFTER_S)
        _small().save_weights(tmp_path / "other.weights.h5")
        assert _temps(tmp_path) == [live]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert _temps(tmp_path) == [live]  # what kill -9 leaves behind
    # Not yet stale: kept (it could be a save that is merely slow on another machine).
    _age(tmp_path / live, _files.STALE_AFTER_S - 60)
    _small().save(tmp_path / "m2.keras")
    assert _temps(tmp_path) == [live]
    _age(tmp_path / live, _files.STALE_AFTER_S + 60)
    _small().save(tmp_path / "m2.keras")
    assert _temps(tmp_path) == []
    assert not target.exists()


def test_cleaning_touches_nothing_else(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep")
    folder = tmp_path / "models"
    folder.mkdir()
    keep = {
        ".fastnet-save-notes.txt": "file",          # other suffix
        ".fastnet-save-abc.tmp": "file",            # not mkstemp's 8 characters
        "fastnet-save-abcdefgh.tmp": "file",        # not hidden
        ".m.keras.abcdefgh.tmp": "file",            # another program's temporary file
        ".fastnet-save-dir12345.tmp": "dir",        # a folder
        ".fastnet-save-link1234.tmp": "link",       # a link (to a file elsewhere)
    }
    for name, kind in keep.items():
        p = folder / name
        if kind == "file":
            p.write_text("x")
        elif kind == "dir":
            p.mkdir()
        else:
            p.symlink_to(outside / "precious.txt")
        _age(p, 10 * _files.STALE_AFTER_S)
    stale = folder / ".fastnet-save-abcd_123.tmp"
    stale.write_bytes(b"half a save")
    _age(stale, 10 * _files.STALE_AFTER_S)
    _small().save(folder / "m.keras")
    assert sorted(os.listdir(folder)) == sorted(list(keep) + ["m.keras"])
    assert (outside / "precious.txt").read_text() == "keep"


# ----------------------------------------------------------------------------- symbolic links
@pytest.mark.parametrize("suffix", [".keras", ".weights.h5"])
def test_saving_over_a_symlink_writes_its_target(tmp_path, suffix):
    real_dir = tmp_path / "real"
    real_dir.mkdir()
    real = real_dir / ("m" + suffix)
    link = tmp_path / ("link" + suffix)
    first, second = _small(), _small()
    (first.save if suffix == ".keras" else first.save_weights)(real)
    link.symlink_to(real)
    (second.save if suffix == ".keras" else second.save_weights)(link)
    assert link.is_symlink() and os.readlink(link) == str(real)
    check = _small()
    check.load_weights(real)
    for a, b in zip(check.get_weights(), second.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert os.listdir(tmp_path) == ["real", link.name] or sorted(os.listdir(tmp_path)) == sorted(
        ["real", link.name])
    assert os.listdir(real_dir) == [real.name]


def test_saving_over_a_dangling_symlink_creates_its_target(tmp_path):
    link = tmp_path / "link.keras"
    link.symlink_to(tmp_path / "made.keras")
    model = _small()
    model.save(link)
    assert link.is_symlink() and (tmp_path / "made.keras").is_file()
    load_model(link)
