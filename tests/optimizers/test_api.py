"""The optimizer API the training loop and user code rely on: get(), defaults and configs,
the learning rate, variables/set_variables, weight decay, constraints and errors."""
import io
import json
import os
import re
import warnings
import zipfile

import numpy as np
import pytest

from fastnet import backend, config, optimizers
from fastnet.optimizers import schedules

HERE = os.path.dirname(os.path.abspath(__file__))
SAVED = os.path.join(HERE, os.pardir, "data", "keras_reference", "saved")

NAMES = ["sgd", "rmsprop", "adam", "adamw", "adagrad", "adadelta", "nadam", "adamax"]
CLASSES = ["SGD", "RMSprop", "Adam", "AdamW", "Adagrad", "Adadelta", "Nadam", "Adamax"]

F32 = float(np.float32(0.001))  # Keras stores the learning rate as a float32 variable

BASE = {"weight_decay": None, "clipnorm": None, "global_clipnorm": None, "clipvalue": None,
        "use_ema": False, "ema_momentum": 0.99, "ema_overwrite_frequency": None,
        "loss_scale_factor": None, "gradient_accumulation_steps": None}
DEFAULTS = {
    "SGD": {"learning_rate": float(np.float32(0.01)), "momentum": 0.0, "nesterov": False},
    "RMSprop": {"learning_rate": F32, "rho": 0.9, "momentum": 0.0, "epsilon": 1e-07,
                "centered": False},
    "Adam": {"learning_rate": F32, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-07,
             "amsgrad": False},
    "AdamW": {"learning_rate": F32, "weight_decay": 0.004, "beta_1": 0.9, "beta_2": 0.999,
              "epsilon": 1e-07, "amsgrad": False},
    "Adagrad": {"learning_rate": F32, "initial_accumulator_value": 0.1, "epsilon": 1e-07},
    "Adadelta": {"learning_rate": F32, "rho": 0.95, "epsilon": 1e-07},
    "Nadam": {"learning_rate": F32, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-07},
    "Adamax": {"learning_rate": F32, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-07},
}


def make_vars(shapes, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    return [backend.Variable(rng.standard_normal(s).astype(dtype), name=f"w{i}", path=f"layer/w{i}")
            for i, s in enumerate(shapes)]


# ------------------------------------------------------------------------------ get()

@pytest.mark.parametrize("name,cls", list(zip(NAMES, CLASSES)))
def test_get_by_name_class_name_dict_instance_and_class(name, cls):
    assert type(optimizers.get(name)).__name__ == cls
    assert type(optimizers.get(cls)).__name__ == cls
    assert type(optimizers.get(cls.upper())).__name__ == cls
    opt = optimizers.get({"class_name": cls, "config": {"learning_rate": 0.5}})
    assert type(opt).__name__ == cls and float(opt.learning_rate) == 0.5
    assert optimizers.get(opt) is opt
    assert type(optimizers.get(getattr(optimizers, cls))).__name__ == cls


def test_get_none_and_unknown():
    assert optimizers.get(None) is None
    with pytest.raises(ValueError, match=r"'ftrl'.*'adam'.*'rmsprop'.*'sgd'"):
        optimizers.get("ftrl")
    with pytest.raises(ValueError, match="Unknown optimizer 'Lion'"):
        optimizers.get({"class_name": "Lion", "config": {}})
    with pytest.raises(ValueError, match="Could not interpret"):
        optimizers.get(3.0)


@pytest.mark.parametrize("cls", CLASSES)
def test_defaults_and_config_keys_are_keras(cls):
    opt = getattr(optimizers, cls)()
    cfg = opt.get_config()
    want = dict(BASE)
    want.update(DEFAULTS[cls])
    name = cfg.pop("name")
    assert re.fullmatch(backend.to_snake_case(cls) + r"(_\d+)?", name), name
    assert cfg == want
    assert list(cfg)[:10] == ["learning_rate"] + list(BASE)
    json.dumps(opt.get_config())


def test_automatic_names_are_unique():
    a, b = optimizers.RMSprop(), optimizers.RMSprop()
    assert a.name != b.name and a.name.startswith("rm_sprop")
    assert optimizers.Adam(name="mine").name == "mine"


@pytest.mark.parametrize("case", ["sgd", "momentum", "nesterov", "rms_centered", "amsgrad",
                                  "adamw", "adagrad", "adadelta", "nadam", "adamax", "schedule"])
def test_config_round_trip_gives_the_same_optimizer(case):
    make = {
        "sgd": lambda: optimizers.SGD(0.1, clipvalue=0.5),
        "momentum": lambda: optimizers.SGD(0.1, momentum=0.9, weight_decay=0.01),
        "nesterov": lambda: optimizers.SGD(0.1, momentum=0.8, nesterov=True, clipnorm=1.0),
        "rms_centered": lambda: optimizers.RMSprop(0.01, rho=0.8, momentum=0.3, centered=True),
        "amsgrad": lambda: optimizers.Adam(0.01, amsgrad=True, global_clipnorm=2.0),
        "adamw": lambda: optimizers.AdamW(0.01, weight_decay=0.1),
        "adagrad": lambda: optimizers.Adagrad(0.1, initial_accumulator_value=0.5),
        "adadelta": lambda: optimizers.Adadelta(1.0, rho=0.9),
        "nadam": lambda: optimizers.Nadam(0.01),
        "adamax": lambda: optimizers.Adamax(0.01, beta_2=0.99),
        "schedule": lambda: optimizers.Adam(schedules.ExponentialDecay(0.01, 2, 0.5)),
    }[case]
    a = make()
    cfg = json.loads(json.dumps(a.get_config()))
    b = type(a).from_config(cfg)
    assert b.get_config() == a.get_config()
    c = optimizers.deserialize(json.loads(json.dumps(optimizers.serialize(a))))
    assert type(c) is type(a) and c.get_config() == a.get_config()
    va, vb = make_vars([(4, 3), (3,)], seed=1), make_vars([(4, 3), (3,)], seed=1)
    rng = np.random.default_rng(2)
    for _ in range(4):
        gs = [rng.standard_normal(v.shape).astype(np.float32) for v in va]
        a.apply_gradients(zip(gs, va))
        b.apply_gradients(zip(gs, vb))
    for x, y in zip(va, vb):
        np.testing.assert_array_equal(x.value, y.value)


@pytest.mark.parametrize("fname", ["seed_mlp", "cnn_small", "mlp_bn_sgd", "lstm_small"])
def test_configs_saved_by_keras_deserialize_to_the_same_config(fname):
    with zipfile.ZipFile(os.path.join(SAVED, fname + ".keras")) as z:
        saved = json.loads(z.read("config.json"))["compile_config"]["optimizer"]
    opt = optimizers.deserialize(saved)
    assert type(opt).__name__ == saved["class_name"]
    assert opt.get_config() == saved["config"]
    assert list(opt.get_config()) == list(saved["config"])  # Keras's key order too
    assert optimizers.serialize(opt)["config"] == saved["config"]


# ------------------------------------------------------------------------------ learning rate

def test_learning_rate_property_and_setter_mid_training():
    v = make_vars([(5,)])[0]
    w0 = v.value.copy()
    opt = optimizers.SGD(learning_rate=0.1)
    assert isinstance(opt.learning_rate, np.float32)
    assert float(opt.learning_rate) == float(np.float32(0.1))
    g = np.ones(5, np.float32)
    opt.apply_gradients([(g, v)])
    opt.learning_rate = 0.01
    assert float(opt.learning_rate) == float(np.float32(0.01))
    assert float(opt.variables[1]) == float(np.float32(0.01))
    opt.apply_gradients([(g, v)])
    np.testing.assert_allclose(v.value, w0 - np.float32(0.1) - np.float32(0.01), rtol=1e-6)
    with pytest.raises(ValueError, match="learning_rate=-0.5"):
        opt.learning_rate = -0.5


def test_learning_rate_setter_works_on_the_flat_path():
    vs = make_vars([(3, 2), (2,)])
    values, grads, offsets = backend.pack(vs, np.float32)
    grads[:] = 1.0
    opt = optimizers.SGD(learning_rate=1.0)
    opt.build(vs)
    start = values.copy()
    opt.apply_flat(values, grads, offsets)
    opt.learning_rate = 0.25
    opt.apply_flat(values, grads, offsets)
    np.testing.assert_allclose(values, start - 1.25)


def test_schedule_drives_the_optimizer():
    sched = schedules.ExponentialDecay(0.1, decay_steps=1, decay_rate=0.5)
    opt = optimizers.SGD(learning_rate=sched)
    assert len(opt.variables) == 1  # iterations only: no learning-rate variable
    vs = make_vars([(4,)])
    values, grads, offsets = backend.pack(vs, np.float32)
    opt.build(vs)
    grads[:] = 1.0
    start = values.copy()
    rates = []
    for t in range(4):
        rates.append(float(opt.learning_rate))
        assert rates[-1] == float(sched(t))
        opt.apply_flat(values, grads, offsets)
    np.testing.assert_allclose(values, start - sum(rates), rtol=1e-6)
    assert opt.iterations == 4 and int(opt.variables[0]) == 4
    with pytest.raises(TypeError, match="cannot be set to a number"):
        opt.learning_rate = 0.1
    cfg = opt.get_config()
    assert cfg["learning_rate"]["class_name"] == "ExponentialDecay"


def test_setting_a_schedule_replaces_the_learning_rate_variable():
    opt = optimizers.Adam()
    assert len(opt.variables) == 2
    opt.learning_rate = schedules.PolynomialDecay(0.1, 10)
    assert len(opt.variables) == 1
    assert float(opt.learning_rate) == pytest.approx(0.1)


def test_callable_learning_rate():
    box = {"lr": 0.5}
    opt = optimizers.SGD(learning_rate=lambda: box["lr"])
    v = backend.Variable(np.zeros(2, np.float64))
    opt.apply_gradients([(np.ones(2), v)])
    box["lr"] = 0.25
    opt.apply_gradients([(np.ones(2), v)])
    np.testing.assert_allclose(v.value, -0.75)


# ------------------------------------------------------------------------------ variables

def test_variables_order_adam():
    vs = make_vars([(3, 2), (2,)])
    opt = optimizers.Adam(amsgrad=True)
    opt.build(vs)
    assert opt.variable_names == [
        "iteration", "learning_rate", "layer_w0_momentum", "layer_w0_velocity",
        "layer_w1_momentum", "layer_w1_velocity", "layer_w0_velocity_hat",
        "layer_w1_velocity_hat"]
    shapes = [a.shape for a in opt.variables]
    assert shapes == [(), (), (3, 2), (3, 2), (2,), (2,), (3, 2), (2,)]
    assert opt.variables[0].dtype == np.int64 and opt.variables[1].dtype == np.float32
    g = [np.full(v.shape, 2.0, np.float32) for v in vs]
    opt.apply_gradients(zip(g, vs))
    np.testing.assert_allclose(opt.variables[2], 0.2, rtol=1e-6)       # m = (1 - b1) g
    np.testing.assert_allclose(opt.variables[3], 0.004, rtol=1e-5)     # v = (1 - b2) g^2
    np.testing.assert_allclose(opt.variables[6], 0.004, rtol=1e-5)     # v_hat = max(0, v)
    assert int(opt.variables[0]) == 1


@pytest.mark.parametrize("make,names", [
    (lambda: optimizers.SGD(), []),
    (lambda: optimizers.SGD(momentum=0.5), ["w0_momentum", "w1_momentum"]),
    (lambda: optimizers.RMSprop(), ["w0_velocity", "w1_velocity"]),
    (lambda: optimizers.RMSprop(momentum=0.5, centered=True),
     ["w0_velocity", "w1_velocity", "w0_momentum", "w1_momentum", "w0_average_gradient",
      "w1_average_gradient"]),
    (lambda: optimizers.RMSprop(centered=True),
     ["w0_velocity", "w1_velocity", "w0_average_gradient", "w1_average_gradient"]),
    (lambda: optimizers.Adagrad(), ["w0_accumulator", "w1_accumulator"]),
    (lambda: optimizers.Adadelta(), ["w0_accumulated_grad", "w0_accumulated_delta_var",
                                     "w1_accumulated_grad", "w1_accumulated_delta_var"]),
    (lambda: optimizers.Adamax(), ["w0_momentum", "w0_norm", "w1_momentum", "w1_norm"]),
    (lambda: optimizers.Nadam(), ["w0_momentum", "w0_velocity", "w1_momentum", "w1_velocity",
                                  "u_product"]),
])
def test_variables_order_per_optimizer(make, names):
    vs = make_vars([(3, 2), (2,)])
    opt = make()
    opt.build(vs)
    got = [n.replace("layer_", "") for n in opt.variable_names[2:]]
    assert got == names
    assert len(opt.variables) == 2 + len(names)


def test_adagrad_accumulators_start_at_initial_value_and_nadam_product_at_one():
    vs = make_vars([(3,)])
    opt = optimizers.Adagrad(initial_accumulator_value=0.3)
    opt.build(vs)
    np.testing.assert_allclose(opt.variables[2], 0.3, rtol=1e-7)
    nadam = optimizers.Nadam()
    nadam.build(vs)
    assert nadam.variables[-1].shape == () and float(nadam.variables[-1]) == 1.0


def _saved_trainable_shapes(h5, layer_names, layer_classes):
    seen = {}
    shapes = []
    for cls in layer_classes:
        stem = backend.to_snake_case(cls)
        k = seen.get(stem, 0)
        seen[stem] = k + 1
        group = stem if k == 0 else f"{stem}_{k}"
        if f"layers/{group}" not in h5:
            continue
        g = h5[f"layers/{group}"]
        g = g["cell"] if "cell" in g else g
        vars_ = [g["vars"][str(i)] for i in range(len(g["vars"]))]
        if cls == "BatchNormalization":
            vars_ = vars_[:2]  # moving statistics are not trainable
        shapes += [v.shape for v in vars_]
    return shapes


@pytest.mark.parametrize("fname", ["seed_mlp", "cnn_small", "conv1d_small", "decoder_convT",
                                   "gru_small", "lstm_small", "simplernn_small", "mlp_bn_sgd"])
def test_variables_match_what_keras_saves(fname):
    """optimizer/vars/<i> in Keras's .keras files: same count, order, shapes and dtypes, and
    set_variables accepts them."""
    h5py = pytest.importorskip("h5py")
    with zipfile.ZipFile(os.path.join(SAVED, fname + ".keras")) as z:
        cfg = json.loads(z.read("config.json"))
        h5 = h5py.File(io.BytesIO(z.read("model.weights.h5")), "r")
    layers = cfg["config"]["layers"]
    shapes = _saved_trainable_shapes(h5, [l["config"]["name"] for l in layers],
                                     [l["class_name"] for l in layers])
    saved = [h5["optimizer/vars"][str(i)][()] for i in range(len(h5["optimizer/vars"]))]
    opt = optimizers.deserialize(cfg["compile_config"]["optimizer"])
    vs = [backend.Variable(np.zeros(s, np.float32)) for s in shapes]
    opt.build(vs)
    assert [a.shape for a in opt.variables] == [np.shape(s) for s in saved]
    assert [a.dtype for a in opt.variables] == [np.asarray(s).dtype for s in saved]
    opt.set_variables(saved)
    assert opt.iterations == int(saved[0])
    for a, s in zip(opt.variables, saved):
        np.testing.assert_array_equal(a, s)
    if type(opt).__name__ == "Adam" and opt.iterations == 1:
        # One Adam step from zero: m = 0.1 g and v = 0.001 g^2, so v = 0.1 m^2 in each pair.
        for m, v in zip(saved[2::2], saved[3::2]):
            np.testing.assert_allclose(v, 0.1 * m.astype(np.float64) ** 2, rtol=1e-4, atol=1e-12)


@pytest.mark.parametrize("make", [
    lambda: optimizers.SGD(0.05, momentum=0.9, nesterov=True),
    lambda: optimizers.RMSprop(0.01, momentum=0.5, centered=True),
    lambda: optimizers.Adam(0.01, amsgrad=True),
    lambda: optimizers.AdamW(0.01),
    lambda: optimizers.Adagrad(0.1),
    lambda: optimizers.Adadelta(1.0),
    lambda: optimizers.Nadam(0.01),
    lambda: optimizers.Adamax(0.01),
    lambda: optimizers.Adam(schedules.CosineDecay(0.01, 10)),
], ids=["sgd", "rmsprop", "adam", "adamw", "adagrad", "adadelta", "nadam", "adamax", "schedule"])
def test_restored_optimizer_continues_exactly(make):
    shapes = [(6, 4), (4,), (4, 1)]
    rng = np.random.default_rng(3)
    steps = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(6)]
    a_vars = make_vars(shapes)
    values, grads, offsets = backend.pack(a_vars, np.float32)
    a = make()
    a.build(a_vars)
    for gs in steps[:3]:
        for v, g in zip(a_vars, gs):
            v.grad[...] = g
        a.apply_flat(values, grads, offsets)
    snapshot = [np.array(x, copy=True) for x in a.variables]
    b_vars = [backend.Variable(v.value.copy(), name=v.name, path=v.path) for v in a_vars]
    b = make()
    b.build(b_vars)
    b.set_variables(snapshot)
    assert b.iterations == 3
    for gs in steps[3:]:
        for v, g in zip(a_vars, gs):
            v.grad[...] = g
        a.apply_flat(values, grads, offsets)
        b.apply_gradients(zip(gs, b_vars))
    for x, y in zip(a_vars, b_vars):
        np.testing.assert_array_equal(x.value, y.value)
    for x, y in zip(a.variables, b.variables):
        np.testing.assert_array_equal(x, y)


def test_set_variables_errors():
    opt = optimizers.Adam()
    with pytest.raises(ValueError, match="not built"):
        opt.set_variables([])
    vs = make_vars([(3, 2)])
    opt.build(vs)
    good = [np.array(x) for x in opt.variables]
    with pytest.raises(ValueError, match=r"has 4 variables .* received 3 arrays"):
        opt.set_variables(good[:3])
    bad = list(good)
    bad[3] = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match=r"variable 3 \('layer_w0_velocity'\) has shape \(3, 2\); "
                                         r"received an array of shape \(2, 3\)"):
        opt.set_variables(bad)
    # Nothing was written by the failed calls.
    assert opt.iterations == 0


def test_build_again_keeps_state_and_a_new_list_reallocates():
    vs = make_vars([(3,)])
    opt = optimizers.Adam()
    opt.apply_gradients([(np.ones(3, np.float32), vs[0])])
    m = opt.variables[2].copy()
    opt.build(vs)
    np.testing.assert_array_equal(opt.variables[2], m)
    other = make_vars([(2, 2), (5,)], seed=4)
    opt.build(other)
    assert [a.shape for a in opt.variables[2:]] == [(2, 2), (2, 2), (5,), (5,)]
    assert all(not a.any() for a in opt.variables[2:])
    assert opt.iterations == 1
    with pytest.raises(ValueError, match="unknown variable"):
        opt.apply_gradients([(np.ones(3, np.float32), vs[0])])


# ------------------------------------------------------------------------------ update semantics

def test_weight_decay_is_applied_before_the_update_and_respects_exclusions():
    vs = [backend.Variable(np.full((2, 2), 2.0, np.float64), name="kernel"),
          backend.Variable(np.full((2,), 2.0, np.float64), name="bias")]
    opt = optimizers.SGD(learning_rate=0.5, weight_decay=0.1)
    opt.exclude_from_weight_decay(var_names=["bias"])
    values, grads, offsets = backend.pack(vs, np.float64)
    opt.build(vs)
    grads[:] = 1.0
    opt.apply_flat(values, grads, offsets)
    np.testing.assert_allclose(vs[0].value, 2.0 - 2.0 * 0.1 * 0.5 - 0.5)
    np.testing.assert_allclose(vs[1].value, 2.0 - 0.5)
    with pytest.raises(ValueError, match="before the optimizer is built"):
        opt.exclude_from_weight_decay(var_names=["kernel"])
    # AdamW decays by default, excluding variables given by object.
    a = [backend.Variable(np.ones(3, np.float64)), backend.Variable(np.ones(3, np.float64))]
    opt = optimizers.AdamW(learning_rate=0.1)
    opt.exclude_from_weight_decay(var_list=[a[1]])
    opt.apply_gradients([(np.zeros(3), a[0]), (np.zeros(3), a[1])])
    np.testing.assert_allclose(a[0].value, 1 - 0.004 * float(np.float32(0.1)))
    np.testing.assert_allclose(a[1].value, 1.0)


def test_constraints_are_applied_after_the_update():
    v = backend.Variable(np.zeros(4, np.float32), constraint=lambda w: np.clip(w, -0.05, 0.05))
    u = backend.Variable(np.zeros(4, np.float32))
    values, grads, offsets = backend.pack([v, u], np.float32)
    opt = optimizers.SGD(learning_rate=1.0)
    opt.build([v, u])
    grads[:] = np.arange(8) - 4
    opt.apply_flat(values, grads, offsets)
    np.testing.assert_allclose(v.value, [0.05, 0.05, 0.05, 0.05])
    np.testing.assert_allclose(u.value, [-0, -1, -2, -3])
    w = backend.Variable(np.zeros(2, np.float32), constraint=lambda x: np.maximum(x, 0))
    optimizers.SGD(1.0).apply_gradients([(np.array([1.0, -1.0], np.float32), w)])
    np.testing.assert_allclose(w.value, [0.0, 1.0])


def test_global_clipnorm_same_on_both_paths():
    shapes = [(5, 3), (3,)]
    rng = np.random.default_rng(8)
    gs = [rng.standard_normal(s).astype(np.float32) * 10 for s in shapes]
    a, b = make_vars(shapes), make_vars(shapes)
    values, grads, offsets = backend.pack(a, np.float32)
    oa, ob = optimizers.Adam(global_clipnorm=1.0), optimizers.Adam(global_clipnorm=1.0)
    oa.build(a)
    for v, g in zip(a, gs):
        v.grad[...] = g
    oa.apply_flat(values, grads, offsets)
    ob.apply_gradients(zip(gs, b))
    for x, y in zip(a, b):
        np.testing.assert_allclose(x.value, y.value, rtol=1e-6)


def test_none_gradients_are_skipped_with_a_warning():
    vs = make_vars([(2,), (3,)])
    before = vs[1].value.copy()
    opt = optimizers.SGD(1.0)
    with pytest.warns(UserWarning, match="Gradients do not exist"):
        opt.apply_gradients([(np.ones(2, np.float32), vs[0]), (None, vs[1])])
    np.testing.assert_array_equal(vs[1].value, before)
    with pytest.raises(ValueError, match="no gradients provided"):
        opt.apply_gradients([(None, vs[0])])
    assert opt.apply_gradients([]) == 1


def test_apply_keras3_signature():
    vs = make_vars([(2,), (3,)])
    opt = optimizers.SGD(1.0)
    with pytest.raises(ValueError, match="call build"):
        opt.apply([np.ones(2), np.ones(3)])
    opt.build(vs)
    before = [v.value.copy() for v in vs]
    opt.apply([np.ones(2), np.ones(3)])
    for v, b in zip(vs, before):
        np.testing.assert_allclose(v.value, b - 1)
    with pytest.raises(ValueError, match="received 1 gradients"):
        opt.apply([np.ones(2)])


def test_float64_variables():
    config.set_floatx("float64")
    try:
        vs = make_vars([(4, 4), (4,)], dtype=np.float64)
        values, grads, offsets = backend.pack(vs, np.float64)
        opt = optimizers.Nadam(learning_rate=0.01)
        opt.build(vs)
        assert opt.variables[1].dtype == np.float64 and opt.variables[-1].dtype == np.float64
        grads[:] = 1.0
        start = values.copy()
        opt.apply_flat(values, grads, offsets)
        assert np.all(values < start)
    finally:
        config.set_floatx("float32")


# ------------------------------------------------------------------------------ errors

@pytest.mark.parametrize("make,exc,match", [
    (lambda: optimizers.SGD(learning_rate=-1.0), ValueError, r"`learning_rate`.*learning_rate=-1"),
    (lambda: optimizers.SGD(learning_rate="fast"), ValueError, "learning_rate='fast'"),
    (lambda: optimizers.SGD(learning_rate=float("nan")), ValueError, "learning_rate=nan"),
    (lambda: optimizers.Adam(clipnorm=1.0, global_clipnorm=1.0), ValueError,
     r"only one of .*clipnorm=1.0.*global_clipnorm=1.0"),
    (lambda: optimizers.Adam(clipnorm=1.0, clipvalue=1.0), ValueError, "only one of"),
    (lambda: optimizers.Adam(clipnorm=-1.0), ValueError, "clipnorm=-1.0"),
    (lambda: optimizers.SGD(momentum=1.5), ValueError, r"`momentum` must be in \[0.0, 1.0\]"),
    (lambda: optimizers.SGD(momentum=-0.1), ValueError, "momentum=-0.1"),
    (lambda: optimizers.RMSprop(rho=2.0), ValueError, "rho=2.0"),
    (lambda: optimizers.RMSprop(epsilon=-1e-7), ValueError, "epsilon=-1e-07"),
    (lambda: optimizers.Adam(beta_1=1.0), ValueError, r"`beta_1` must be in \[0.0, 1.0\)"),
    (lambda: optimizers.Nadam(beta_2=-0.5), ValueError, "beta_2=-0.5"),
    (lambda: optimizers.Adamax(beta_1=True), ValueError, "beta_1=True"),
    (lambda: optimizers.Adagrad(initial_accumulator_value=-1.0), ValueError,
     "initial_accumulator_value=-1.0"),
    (lambda: optimizers.Adadelta(rho=1.5), ValueError, "rho=1.5"),
    (lambda: optimizers.AdamW(weight_decay=None), ValueError, "weight_decay=None"),
    (lambda: optimizers.SGD(weight_decay=-0.1), ValueError, "weight_decay=-0.1"),
    (lambda: optimizers.Adam(foo=1), ValueError, r"not recognized: \{'foo': 1\}"),
    (lambda: optimizers.Adam(name=3), ValueError, "name=3"),
    (lambda: optimizers.Adam(use_ema=True), NotImplementedError, "use_ema=True"),
    (lambda: optimizers.Adam(ema_momentum=0.5), NotImplementedError, "ema_momentum=0.5"),
    (lambda: optimizers.Adam(ema_overwrite_frequency=10), NotImplementedError,
     "ema_overwrite_frequency=10"),
    (lambda: optimizers.SGD(loss_scale_factor=128.0), NotImplementedError,
     "loss_scale_factor=128.0"),
    (lambda: optimizers.RMSprop(gradient_accumulation_steps=4), NotImplementedError,
     "gradient_accumulation_steps=4"),
])
def test_bad_hyperparameters(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_default_valued_keras_keywords_are_accepted_and_decay_warns():
    opt = optimizers.Adam(use_ema=False, ema_momentum=0.99, ema_overwrite_frequency=None,
                          loss_scale_factor=None, gradient_accumulation_steps=None)
    assert opt.scale_loss(2.0) == 2.0
    with pytest.warns(UserWarning, match="decay"):
        optimizers.SGD(decay=0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        optimizers.SGD(decay=None)


def test_apply_flat_errors():
    vs = make_vars([(3, 2), (2,)])
    values, grads, offsets = backend.pack(vs, np.float32)
    opt = optimizers.Adam()
    with pytest.raises(ValueError, match="not built"):
        opt.apply_flat(values, grads, offsets)
    opt.build(vs)
    with pytest.raises(ValueError, match="offsets do not match"):
        opt.apply_flat(values, grads, np.array([0, 2, 8], np.int64))
    with pytest.raises(ValueError, match="1-D int64"):
        opt.apply_flat(values, grads, offsets.astype(np.int32))
    with pytest.raises(ValueError, match="values has dtype float64"):
        opt.apply_flat(values.astype(np.float64), grads, offsets.copy())
    with pytest.raises(ValueError, match="grads has 7 elements, the variables 8"):
        opt.apply_flat(values, np.zeros(7, np.float32), offsets.copy())
    assert opt.iterations == 0


def test_apply_gradients_errors():
    vs = make_vars([(3, 2)])
    opt = optimizers.SGD()
    with pytest.raises(ValueError, match=r"gradient of shape \(2, 3\) for variable 'layer/w0' of "
                                         r"shape \(3, 2\)"):
        opt.apply_gradients([(np.zeros((2, 3)), vs[0])])
    with pytest.raises(ValueError, match="same float dtype"):
        optimizers.SGD().build([vs[0], backend.Variable(np.zeros(2, np.float64))])
    with pytest.raises(ValueError, match="float32 or float64"):
        optimizers.SGD().build([backend.Variable(np.zeros(2, np.int32))])
    with pytest.raises(ValueError, match="expects fastnet Variables"):
        optimizers.SGD().build([np.zeros(3)])


def test_changing_a_hyperparameter_after_build_takes_effect():
    vs = make_vars([(3,)])
    values, grads, offsets = backend.pack(vs, np.float32)
    opt = optimizers.SGD(1.0)
    opt.build(vs)
    grads[:] = 10.0
    start = values.copy()
    opt.clipvalue = 1.0
    opt.apply_flat(values, grads, offsets)
    np.testing.assert_allclose(values, start - 1.0)
