"""Files that can be trusted: no code from a file ever runs, unknown or unsupported
content is refused with a clear error, damaged files are reported, writes are atomic."""
import copy
import io
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from saving_helpers import path

from fastnet import layers
from fastnet.layers import Layer
from fastnet.models import Sequential, load_model
from fastnet.saving import DeserializationError, FileFormatError, WeightsMismatchError, saving_lib


def _small(units=4, name=None):
    model = Sequential([layers.Input(shape=(3,)), layers.Dense(units, activation="tanh"),
                        layers.Dense(1)], name=name)
    return model


def _rewrite(src, dst, edit_config=None, extra=(), drop=(), raw=None):
    """Copies a .keras archive, editing its config or adding/removing entries."""
    with zipfile.ZipFile(src) as zin:
        entries = [(i.filename, zin.read(i.filename)) for i in zin.infolist()]
    with zipfile.ZipFile(dst, "w") as zout:
        for name, data in entries:
            if name in drop:
                continue
            if name == "config.json" and edit_config is not None:
                cfg = json.loads(data)
                edit_config(cfg)
                data = json.dumps(cfg).encode()
            if raw and name in raw:
                data = raw[name]
            zout.writestr(name, data)
        for name, data in extra:
            zout.writestr(name, data)
    return dst


def _layer_cfg(cfg, index):
    return cfg["config"]["layers"][index]["config"]


# ----------------------------------------------------------------------------- no code runs
def test_unknown_class_is_refused_with_its_name(tmp_path):
    def edit(cfg):
        cfg["config"]["layers"][1]["class_name"] = "EvilLayer"
    bad = _rewrite(path("seed_mlp", ".keras"), tmp_path / "bad.keras", edit)
    with pytest.raises(DeserializationError, match=r"Unknown layer class 'EvilLayer'.*custom_objects"):
        load_model(bad)


def test_modules_named_in_a_file_are_never_imported(tmp_path, monkeypatch):
    marker = tmp_path / "imported.txt"
    (tmp_path / "fastnet_trojan_mod.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n"
                                                    f"Dense = object\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    def edit(cfg):
        entry = cfg["config"]["layers"][1]
        entry["module"] = "fastnet_trojan_mod"
        entry["registered_name"] = "fastnet_trojan_mod>Dense"
    bad = _rewrite(path("seed_mlp", ".keras"), tmp_path / "bad.keras", edit)
    with pytest.raises(DeserializationError, match="Dense.*fastnet_trojan_mod"):
        load_model(bad)
    assert "fastnet_trojan_mod" not in sys.modules
    assert not marker.exists()


@pytest.mark.parametrize("safe_mode", [True, False])
def test_lambdas_are_never_deserialized(tmp_path, safe_mode):
    def edit(cfg):
        _layer_cfg(cfg, 1)["activation"] = {"class_name": "__lambda__",
                                            "config": {"value": ["4wEAAAAAAAAA", None, None]}}
    bad = _rewrite(path("seed_mlp", ".keras"), tmp_path / "bad.keras", edit)
    with pytest.raises(DeserializationError, match="lambda"):
        load_model(bad, safe_mode=safe_mode)


def test_functions_named_in_a_file_need_custom_objects(tmp_path):
    def edit(cfg):
        _layer_cfg(cfg, 1)["activation"] = {"module": "os", "class_name": "function",
                                            "config": "system", "registered_name": "system"}
    bad = _rewrite(path("seed_mlp", ".keras"), tmp_path / "bad.keras", edit)
    with pytest.raises(DeserializationError, match="'system'.*custom_objects"):
        load_model(bad)


class Scale(Layer):
    """A user-defined layer: multiplies by one learned scalar per feature."""

    def build(self, input_shape):
        self.alpha = self.add_weight("alpha", (input_shape[-1],), "ones")
        self.built = True

    def call(self, inputs, training=False):
        return inputs * self.alpha.value


def test_custom_classes_load_only_through_custom_objects(tmp_path):
    model = Sequential([layers.Input(shape=(3,)), layers.Dense(2), Scale()])
    model.layers[1].alpha.assign(np.array([2.0, -1.0], np.float32))
    model.save(tmp_path / "c.keras")
    cfg = json.loads(zipfile.ZipFile(tmp_path / "c.keras").read("config.json"))
    entry = cfg["config"]["layers"][2]
    assert entry["class_name"] == "Scale" and entry["registered_name"] == "Scale"
    with pytest.raises(DeserializationError, match="Unknown layer class 'Scale'"):
        load_model(tmp_path / "c.keras")
    again = load_model(tmp_path / "c.keras", custom_objects={"Scale": Scale})
    x = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))


def test_pickled_weights_are_refused(tmp_path):
    bad = _rewrite(path("seed_mlp", ".keras"), tmp_path / "bad.keras", drop=("model.weights.h5",),
                   extra=(("model.weights.npz", b"PK..."),))
    with pytest.raises(FileFormatError, match="npz"):
        load_model(bad)


def test_non_numeric_datasets_are_refused(tmp_path):
    import h5py

    model = _small()
    model.save_weights(tmp_path / "w.weights.h5")
    with h5py.File(tmp_path / "w.weights.h5", "a") as h:
        del h["layers/dense/vars/1"]
        h["layers/dense/vars"].create_dataset("1", data=np.array(["x"] * 4, dtype=object),
                                              dtype=h5py.string_dtype())
    with pytest.raises(FileFormatError, match="numeric"):
        _small().load_weights(tmp_path / "w.weights.h5")


# ----------------------------------------------------------------------------- archive entries
@pytest.mark.parametrize("entry", ["../evil.txt", "/etc/evil.json", "assets/../../evil",
                                   "C:/evil.txt"])
def test_unsafe_archive_entries_are_refused(tmp_path, entry):
    bad = _rewrite(path("seed_mlp", ".keras"), tmp_path / "bad.keras", extra=((entry, b"x"),))
    with pytest.raises(FileFormatError, match="refusing the archive entry"):
        load_model(bad)
    with pytest.raises(FileFormatError, match="refusing the archive entry"):
        _small().load_weights(bad)
    assert not (tmp_path.parent / "evil.txt").exists()


# ----------------------------------------------------------------------------- damaged files
def _saved(tmp_path):
    model = _small()
    model.compile(optimizer="adam", loss="mse")
    model.save(tmp_path / "good.keras")
    return (tmp_path / "good.keras").read_bytes()


@pytest.mark.parametrize("keep", [0, 10, 0.5, 0.9, -22, -1])
def test_truncated_archive_names_the_file(tmp_path, keep):
    data = _saved(tmp_path)
    n = keep if isinstance(keep, int) and keep >= 0 else (len(data) + keep if isinstance(keep, int)
                                                           else int(len(data) * keep))
    cut = tmp_path / "cut.keras"
    cut.write_bytes(data[:n])
    with pytest.raises(FileFormatError, match="cut.keras"):
        load_model(cut)


@pytest.mark.parametrize("where", ["config.json", "model.weights.h5"])
def test_corrupted_entry_is_detected(tmp_path, where):
    data = bytearray(_saved(tmp_path))
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as z:
        info = z.getinfo(where)
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    pos = start + info.file_size // 2
    data[pos] ^= 0xFF
    bad = tmp_path / "bad.keras"
    bad.write_bytes(bytes(data))
    with pytest.raises(FileFormatError, match=r"bad.keras.*(corrupt|CRC)"):
        load_model(bad)


def test_bad_json_and_missing_entries(tmp_path):
    bad = _rewrite(path("seed_mlp", ".keras"), tmp_path / "a.keras", raw={"config.json": b"{nope"})
    with pytest.raises(FileFormatError, match="a.keras.*config.json is not valid JSON"):
        load_model(bad)
    bad = _rewrite(path("seed_mlp", ".keras"), tmp_path / "b.keras", drop=("model.weights.h5",))
    with pytest.raises(FileFormatError, match="b.keras.*no model.weights.h5"):
        load_model(bad)
    bad = _rewrite(path("seed_mlp", ".keras"), tmp_path / "c.keras", raw={"model.weights.h5": b"junk"})
    with pytest.raises(FileFormatError, match="c.keras.*not a valid HDF5"):
        load_model(bad)
    (tmp_path / "d.keras").write_bytes(b"this is not a zip archive")
    with pytest.raises(FileFormatError, match="d.keras.*not a valid .keras file"):
        load_model(tmp_path / "d.keras")


def test_truncated_weights_file_names_the_file(tmp_path):
    model = _small()
    model.save_weights(tmp_path / "w.weights.h5")
    data = (tmp_path / "w.weights.h5").read_bytes()
    (tmp_path / "cut.weights.h5").write_bytes(data[: len(data) // 2])
    fresh = _small()
    before = fresh.get_weights()
    with pytest.raises(FileFormatError, match="cut.weights.h5"):
        fresh.load_weights(tmp_path / "cut.weights.h5")
    for a, b in zip(fresh.get_weights(), before):
        np.testing.assert_array_equal(a, b)


def test_paths_and_extensions(tmp_path):
    model = _small()
    with pytest.raises(ValueError, match=r"'\.keras'"):
        model.save(tmp_path / "m.h5")
    with pytest.raises(ValueError, match=r"'\.weights\.h5'"):
        model.save_weights(tmp_path / "m.h5")
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "absent.keras")
    with pytest.raises(ValueError, match="keras"):
        load_model(tmp_path / "m.zip")
    model.save(tmp_path / "m.keras")
    with pytest.raises(FileExistsError):
        model.save(tmp_path / "m.keras", overwrite=False)


# ----------------------------------------------------------------------------- mismatched weights
def test_weights_of_another_shape_name_layer_and_both_shapes(tmp_path):
    _small(units=4).save_weights(tmp_path / "w.weights.h5")
    other = _small(units=5)
    before = other.get_weights()
    with pytest.raises(ValueError, match=r"layer 'dense\w*' \(Dense\) weight 'kernel' has shape "
                                         r"\(3, 5\), the file holds shape \(3, 4\)"):
        other.load_weights(tmp_path / "w.weights.h5")
    for a, b in zip(other.get_weights(), before):
        np.testing.assert_array_equal(a, b)  # nothing was assigned


def test_missing_and_extra_layers_are_reported(tmp_path):
    _small().save_weights(tmp_path / "w.weights.h5")
    fewer = Sequential([layers.Input(shape=(3,)), layers.Dense(4, activation="tanh")])
    with pytest.raises(ValueError, match=r"weights for layers \['dense_1'\]"):
        fewer.load_weights(tmp_path / "w.weights.h5")
    no_bias = Sequential([layers.Input(shape=(3,)), layers.Dense(4, use_bias=False), layers.Dense(1)])
    with pytest.raises(ValueError, match=r"has 1 weights \['kernel'\], the file holds 2"):
        no_bias.load_weights(tmp_path / "w.weights.h5")


def test_skip_mismatch_loads_what_fits(tmp_path):
    src = _small(units=4)
    src.save_weights(tmp_path / "w.weights.h5")
    dst = Sequential([layers.Input(shape=(3,)), layers.Dense(4, activation="tanh"), layers.Dense(2)])
    keep = dst.layers[1].get_weights()
    with pytest.warns(UserWarning, match="skip_mismatch"):
        dst.load_weights(tmp_path / "w.weights.h5", skip_mismatch=True)
    for a, b in zip(dst.layers[0].get_weights(), src.layers[0].get_weights()):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(dst.layers[1].get_weights(), keep):
        np.testing.assert_array_equal(a, b)


def test_unbuilt_model_cannot_take_weights(tmp_path):
    _small().save_weights(tmp_path / "w.weights.h5")
    unbuilt = Sequential([layers.Dense(4), layers.Dense(1)])
    with pytest.raises(ValueError, match="not built"):
        unbuilt.load_weights(tmp_path / "w.weights.h5")


# ----------------------------------------------------------------------------- Keras-only keys
def _dense(cfg):
    return _layer_cfg(cfg, 1)


NON_DEFAULT = [
    ("seed_mlp", lambda c: _dense(c).__setitem__("quantization_config", {"mode": "int8"}),
     "dense", "quantization_config"),
    ("seed_mlp", lambda c: _dense(c).__setitem__("lora_rank", 4), "dense", "lora_rank"),
    ("seed_mlp", lambda c: _layer_cfg(c, 0).__setitem__("ragged", True), "input_layer", "ragged"),
    ("seed_mlp", lambda c: _layer_cfg(c, 0).__setitem__("sparse", True), "input_layer", "sparse"),
    ("seed_mlp", lambda c: _layer_cfg(c, 0).__setitem__("optional", True), "input_layer", "optional"),
    ("seed_mlp", lambda c: _dense(c)["kernel_initializer"]["config"].__setitem__("input_axes", [0]),
     "dense", "input_axes"),
    ("seed_mlp", lambda c: _dense(c).__setitem__("kernel_constraint", {
        "module": "keras.constraints", "class_name": "MaxNorm", "config": {"max_value": 2.0},
        "registered_name": None}), "dense", "kernel_constraint"),
    ("seed_mlp", lambda c: _dense(c)["dtype"]["config"].__setitem__("name", "mixed_float16"),
     "dense", "mixed_float16"),
    ("seed_mlp", lambda c: _dense(c).__setitem__("dtype", {
        "module": "keras", "class_name": "QuantizedDTypePolicy", "config": {"name": "int8_from_float32"},
        "registered_name": None}), "dense", "QuantizedDTypePolicy"),
    ("seed_mlp", lambda c: _dense(c).__setitem__("mystery_option", 3), "dense", "mystery_option"),
    ("mlp_bn_sgd", lambda c: _layer_cfg(c, 2).__setitem__("renorm", True), "batch_normalization", "renorm"),
    ("mlp_bn_sgd", lambda c: _layer_cfg(c, 2).__setitem__("renorm_momentum", 0.5),
     "batch_normalization", "renorm_momentum"),
]


@pytest.mark.parametrize("name,edit,layer,key", NON_DEFAULT,
                         ids=[f"{n}-{k}" for n, _, _, k in NON_DEFAULT])
def test_keras_options_fastnet_cannot_honour_are_refused(tmp_path, name, edit, layer, key):
    bad = _rewrite(path(name, ".keras"), tmp_path / "bad.keras", edit)
    with pytest.raises(DeserializationError) as info:
        load_model(bad)
    message = str(info.value)
    assert "bad.keras" in message and key in message and f"'{layer}" in message


def test_activity_regularizers_keras_wrote_load_on_every_layer(tmp_path):
    """Keras 3 takes ``activity_regularizer`` on every layer (BatchNormalization too);
    fastnet applies it, so a file that sets it loads with it."""
    l2 = {"module": "keras.regularizers", "class_name": "L2", "config": {"l2": 0.1}, "registered_name": None}

    def edit(cfg):
        _dense(cfg)["activity_regularizer"] = dict(l2)
        _layer_cfg(cfg, 2)["activity_regularizer"] = dict(l2)
    ok = _rewrite(path("mlp_bn_sgd", ".keras"), tmp_path / "ok.keras", edit)
    model = load_model(ok)
    regs = [getattr(layer, "activity_regularizer", None) for layer in model.layers[:2]]
    assert [type(r).__name__ for r in regs] == ["L2", "L2"]
    assert [r.l2 for r in regs] == pytest.approx([0.1, 0.1])
    bn = model.layers[1]
    assert type(bn).__name__ == "BatchNormalization"
    assert bn.get_config()["activity_regularizer"]["config"]["l2"] == pytest.approx(0.1)


def test_keras_options_at_their_defaults_are_accepted(tmp_path):
    def edit(cfg):
        _dense(cfg).update({"lora_rank": None, "lora_alpha": None, "activity_regularizer": None,
                            "autocast": True})
    ok = _rewrite(path("seed_mlp", ".keras"), tmp_path / "ok.keras", edit)
    assert load_model(ok).layers[0].units == 4


# ----------------------------------------------------------------------------- atomic writes
def _listing(folder):
    return sorted(os.listdir(folder))


@pytest.mark.parametrize("exc", [KeyboardInterrupt, OSError])
def test_interrupted_model_save_keeps_the_previous_file(tmp_path, monkeypatch, exc):
    target = tmp_path / "m.keras"
    _small().save(target)
    before = target.read_bytes()
    real = saving_lib._write_archive

    def write_then_fail(fileobj, parts):
        fileobj.write(b"PK\x03\x04 half-written")
        assert real is not write_then_fail  # the real writer never runs to the end
        raise exc("interrupted while writing")

    monkeypatch.setattr(saving_lib, "_write_archive", write_then_fail)
    with pytest.raises(exc):
        _small(units=7).save(target)
    assert target.read_bytes() == before
    assert _listing(tmp_path) == ["m.keras"]
    monkeypatch.undo()
    load_model(target)


def test_interrupted_weights_save_keeps_the_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "w.weights.h5"
    _small().save_weights(target)
    before = target.read_bytes()
    real = saving_lib._write_vars
    calls = []

    def write_some_then_interrupt(h5, p, owner, arrays):
        calls.append(p)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(h5, p, owner, arrays)

    monkeypatch.setattr(saving_lib, "_write_vars", write_some_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        _small(units=9).save_weights(target)
    assert len(calls) == 3
    assert target.read_bytes() == before
    assert _listing(tmp_path) == ["w.weights.h5"]


def test_saved_file_gets_ordinary_permissions(tmp_path):
    target = tmp_path / "m.keras"
    _small().save(target)
    umask = os.umask(0)
    os.umask(umask)
    assert (os.stat(target).st_mode & 0o777) == (0o666 & ~umask)


# ----------------------------------------------------------------------------- h5py is optional
def test_importing_fastnet_does_not_import_h5py():
    code = "import sys, fastnet, fastnet.models, fastnet.saving; print('h5py' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_missing_h5py_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "h5py", None)
    model = _small()
    with pytest.raises(ImportError, match=r"pip install fastnet\[h5\]"):
        model.save(tmp_path / "m.keras")
    with pytest.raises(ImportError, match=r"pip install fastnet\[h5\]"):
        model.save_weights(tmp_path / "w.weights.h5")
    assert _listing(tmp_path) == []


def test_optimizer_state_that_does_not_fit_is_not_restored_and_says_so(tmp_path):
    src = _small()
    src.compile(optimizer="adam", loss="mse")
    src.optimizer.build(src.trainable_weights)
    src.save_weights(tmp_path / "w.weights.h5")
    dst = _small()
    dst.compile(optimizer="sgd", loss="mse")
    with pytest.warns(UserWarning, match=r"not restoring the state of optimizer 'sgd\w*'.*holds 10"):
        dst.load_weights(tmp_path / "w.weights.h5")
    for a, b in zip(dst.get_weights(), src.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert dst.optimizer.iterations == 0


GARBAGE = ["x", -1, 2.5, [], [None, "a"], {}, None, True, 1e308,
           {"class_name": 5, "config": 1}, {"class_name": "Zeros", "config": {"bad": 1}},
           {"module": "keras.initializers", "class_name": "Nope", "config": {}}]


@pytest.mark.filterwarnings("ignore:.*not restoring the state of optimizer")
@pytest.mark.parametrize("name", ["seed_mlp", "mlp_bn_sgd"])
def test_garbage_config_values_give_clear_errors(tmp_path, name):
    """Every layer config value replaced by garbage: the load either succeeds or raises
    fastnet's own errors (never a KeyError, AttributeError, ... from deep inside)."""
    with zipfile.ZipFile(path(name, ".keras")) as z:
        base = json.loads(z.read("config.json"))
    n_errors = 0
    for li, entry in enumerate(base["config"]["layers"]):
        for key in list(entry["config"]):
            for value in GARBAGE:
                def edit(cfg, li=li, key=key, value=value):
                    cfg["config"]["layers"][li]["config"][key] = copy.deepcopy(value)
                bad = _rewrite(path(name, ".keras"), tmp_path / "g.keras", edit)
                try:
                    load_model(bad)
                except (DeserializationError, FileFormatError, WeightsMismatchError) as e:
                    n_errors += 1
                    assert "g.keras" in str(e)
    assert n_errors > 50


@pytest.mark.filterwarnings("ignore:.*not restoring the state of optimizer")
def test_garbage_model_and_compile_config_values_give_clear_errors(tmp_path):
    with zipfile.ZipFile(path("mlp_bn_sgd", ".keras")) as z:
        base = json.loads(z.read("config.json"))
    targets = ([("config", k) for k in base["config"]] + [("compile_config", k) for k in base["compile_config"]]
               + [("build_config", "input_shape"), ("compile_config", "optimizer", "config", "momentum"),
                  ("compile_config", "optimizer", "class_name")])
    for target in targets:
        for value in GARBAGE:
            def edit(cfg, target=target, value=value):
                node = cfg
                for k in target[:-1]:
                    node = node[k]
                node[target[-1]] = copy.deepcopy(value)
            bad = _rewrite(path("mlp_bn_sgd", ".keras"), tmp_path / "g.keras", edit)
            try:
                load_model(bad)
            except (DeserializationError, FileFormatError, WeightsMismatchError) as e:
                assert "g.keras" in str(e)
