"""The compiled update (fastnet/_kernels/optim.pyx) against its numpy twin
(fastnet/_reference/optim.py): float32 and float64, 1 and 2 threads, on a few hundred
thousand elements spread over several variables (so the parallel path runs), with
per-variable and global norm clipping, value clipping and weight decay.

Elementwise updates are the same operations in the same order, so they agree to rounding
(float32: rtol 2e-6; float64: rtol 1e-12); norm sums differ only in summation order.
"""
import numpy as np
import pytest

from fastnet import backend, config, optimizers
from fastnet._kernels import optim as kernel
from fastnet._reference import optim as ref

SHAPES = [(300, 700), (700,), (700, 120), (120,), (5, 7), (0, 3), (9,)]
TOTAL = sum(int(np.prod(s)) for s in SHAPES)

CONFIGS = {
    "sgd": ("SGD", {"learning_rate": 0.05}),
    "sgd_momentum": ("SGD", {"learning_rate": 0.05, "momentum": 0.9}),
    "sgd_nesterov": ("SGD", {"learning_rate": 0.05, "momentum": 0.9, "nesterov": True}),
    "rmsprop": ("RMSprop", {}),
    "rmsprop_centered": ("RMSprop", {"centered": True}),
    "rmsprop_momentum_centered": ("RMSprop", {"momentum": 0.5, "centered": True, "rho": 0.8}),
    "adam": ("Adam", {"learning_rate": 0.01}),
    "adam_amsgrad": ("Adam", {"amsgrad": True, "beta_2": 0.99}),
    "adamw": ("AdamW", {}),
    "adagrad": ("Adagrad", {"learning_rate": 0.1}),
    "adadelta": ("Adadelta", {"learning_rate": 1.0}),
    "adamax": ("Adamax", {}),
    "nadam": ("Nadam", {}),
}
CLIPS = {
    "none": {},
    "clipnorm": {"clipnorm": 1.0},
    "global_clipnorm": {"global_clipnorm": 5.0},
    "clipvalue_decay": {"clipvalue": 0.5, "weight_decay": 0.05},
}
TWIN = {"SGD": "sgd", "RMSprop": "rmsprop", "Adam": "adam", "AdamW": "adam", "Adagrad": "adagrad",
        "Adadelta": "adadelta", "Adamax": "adamax", "Nadam": "nadam"}


def _gradients(rng, dtype):
    out = []
    for i, s in enumerate(SHAPES):
        g = rng.standard_normal(s)
        if i == 4:
            g *= 1e-3  # a small gradient: under clipnorm it is left alone
        out.append(g.astype(dtype))
    return out


def _twin_kwargs(opt):
    cfg = opt.get_config()
    keys = ("momentum", "nesterov", "rho", "epsilon", "centered", "beta_1", "beta_2", "amsgrad",
            "weight_decay", "clipnorm", "clipvalue", "global_clipnorm")
    return {k: cfg[k] for k in keys if k in cfg}


# Every algorithm with and without per-variable clipping; the other clipping modes and
# weight decay on one configuration of each update family.
FULL = ("sgd_nesterov", "rmsprop_momentum_centered", "adam", "adagrad", "adadelta", "nadam",
        "adamax")
COMBOS = [(case, clip) for case in CONFIGS for clip in CLIPS
          if case in FULL or clip in ("none", "clipnorm")]
_GRADS = {}


def _gradient_steps(dtype):
    if dtype not in _GRADS:
        rng = np.random.default_rng(11)
        _GRADS[dtype] = [_gradients(rng, dtype) for _ in range(3)]
    return _GRADS[dtype]


def _matrix():
    # Every combination on one thread; on two threads every algorithm with per-variable
    # norms (the per-thread partial sums), and the other modes in float32.
    out = []
    for case, clip in COMBOS:
        for dtype in (np.float32, np.float64):
            for nt in (1, 2):
                if nt == 1 or clip == "clipnorm" or dtype == np.float32 and clip != "none":
                    out.append(pytest.param(case, clip, dtype, nt,
                                            id=f"{case}-{clip}-{np.dtype(dtype).name}-{nt}thr"))
    return out


@pytest.mark.parametrize("case,clip,dtype,nt", _matrix())
def test_kernel_matches_twin(case, clip, dtype, nt):
    old = config.get_num_threads()
    config.set_num_threads(nt)
    try:
        _check_against_twin(case, clip, dtype)
    finally:
        config.set_num_threads(old)


def _check_against_twin(case, clip, dtype):
    cls, cfg = CONFIGS[case]
    cfg = dict(cfg, **CLIPS[clip])
    rng = np.random.default_rng(7)
    w0 = [(rng.standard_normal(s) * 0.3).astype(dtype) for s in SHAPES]
    flat_vars = [backend.Variable(w.copy(), name=f"v{i}") for i, w in enumerate(w0)]
    per_vars = [backend.Variable(w.copy(), name=f"v{i}") for i, w in enumerate(w0)]
    opt_flat = getattr(optimizers, cls)(**cfg)
    opt_per = getattr(optimizers, cls)(**cfg)
    # Leave one variable out of weight decay (by name) to exercise the per-variable mask.
    opt_flat.exclude_from_weight_decay(var_names=["v1"])
    opt_per.exclude_from_weight_decay(var_names=["v1"])
    values, grads, offsets = backend.pack(flat_vars, dtype)
    assert values.size == TOTAL > 1 << 15
    opt_flat.build(flat_vars)

    name = TWIN[cls]
    twin_w = [w.copy() for w in w0]
    slots = {k: [np.zeros(s, dtype) for s in SHAPES] for k in ref.SLOTS[name]}
    if name == "adagrad":
        for a in slots["accumulator"]:
            a.fill(opt_flat.initial_accumulator_value)
    state = np.ones(1, dtype)
    kw = _twin_kwargs(opt_flat)
    mask = [v.name != "v1" for v in flat_vars]
    rtol, atol = (2e-6, 1e-7) if dtype == np.float32 else (1e-12, 1e-14)

    for t, gs in enumerate(_gradient_steps(dtype)):
        for v, g in zip(flat_vars, gs):
            v.grad[...] = g
        lr = float(opt_flat.learning_rate)
        opt_flat.apply_flat(values, grads, offsets)
        opt_per.apply_gradients(list(zip(gs, per_vars)))
        ref.step(name, twin_w, gs, slots, t, lr, state=state, decay_mask=mask, **kw)
        for i, (a, b, want) in enumerate(zip(flat_vars, per_vars, twin_w)):
            np.testing.assert_allclose(a.value, want, rtol=rtol, atol=atol,
                                       err_msg=f"apply_flat, variable {i}, step {t + 1}")
            np.testing.assert_allclose(b.value, want, rtol=rtol, atol=atol,
                                       err_msg=f"apply_gradients, variable {i}, step {t + 1}")
    # The optimizer state agrees with the twin's too.
    got = opt_flat.variables
    assert int(got[0]) == 3
    if name == "nadam":
        np.testing.assert_allclose(got[-1], state[0], rtol=rtol)


def test_clipnorm_actually_clips_and_spares_small_gradients():
    """Per-variable clipnorm: big gradients are rescaled to the norm, small ones untouched."""
    rng = np.random.default_rng(3)
    vs = [backend.Variable(np.zeros(s, np.float64)) for s in [(200, 300), (10,)]]
    values, grads, offsets = backend.pack(vs, np.float64)
    opt = optimizers.SGD(learning_rate=1.0, clipnorm=2.0)
    opt.build(vs)
    vs[0].grad[...] = rng.standard_normal((200, 300))
    vs[1].grad[...] = 1e-3
    opt.apply_flat(values, grads, offsets)
    assert np.linalg.norm(vs[0].value) == pytest.approx(2.0, rel=1e-12)
    np.testing.assert_allclose(vs[1].value, -1e-3, rtol=1e-12)


def test_global_clipnorm_scales_all_gradients_together():
    rng = np.random.default_rng(4)
    vs = [backend.Variable(np.zeros(s, np.float64)) for s in [(300, 200), (50,)]]
    values, grads, offsets = backend.pack(vs, np.float64)
    opt = optimizers.SGD(learning_rate=1.0, global_clipnorm=3.0)
    opt.build(vs)
    g = rng.standard_normal(values.size)
    grads[:] = g
    opt.apply_flat(values, grads, offsets)
    np.testing.assert_allclose(values, -g * 3.0 / np.linalg.norm(g), rtol=1e-12)


def test_global_clipnorm_non_finite_norm_gives_nan_like_keras():
    vs = [backend.Variable(np.zeros(4, np.float32))]
    opt = optimizers.SGD(global_clipnorm=1.0)
    opt.apply_gradients([(np.array([1, np.inf, 0, 0], np.float32), vs[0])])
    assert np.isnan(vs[0].value).all()


def test_thread_count_does_not_change_the_result():
    shapes = [(400, 300), (300,), (300, 10)]
    results = []
    old = config.get_num_threads()
    try:
        for nt in (1, 2, 3):
            config.set_num_threads(nt)
            vs = [backend.Variable(np.full(s, 0.5, np.float32)) for s in shapes]
            values, grads, offsets = backend.pack(vs, np.float32)
            opt = optimizers.Adam(weight_decay=0.01)
            opt.build(vs)
            r = np.random.default_rng(9)
            for _ in range(3):
                grads[:] = r.standard_normal(grads.size).astype(np.float32)
                opt.apply_flat(values, grads, offsets)
            results.append(values.copy())
    finally:
        config.set_num_threads(old)
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], results[2])


def test_kernel_entry_points_check_their_inputs():
    w = np.zeros(10, np.float32)
    g = np.zeros(10, np.float32)
    slots = np.zeros((2, 10), np.float32)
    state = np.ones(1, np.float32)
    mask = np.ones(1, np.uint8)
    off = np.array([0, 10], np.int64)
    args = (0.001, 0.0, 0, 0.9, 0.999, 1e-7, 0, 0.0, 1.0, 1)
    kernel.step(2, 0, w, g, off, slots, 0, state, mask, *args)
    with pytest.raises(ValueError, match="differ in size"):
        kernel.step(2, 0, w, g[:5], off, slots, 0, state, mask, *args)
    with pytest.raises(ValueError, match="offsets must run from 0 to 10"):
        kernel.step(2, 0, w, g, np.array([0, 9], np.int64), slots, 0, state, mask, *args)
    with pytest.raises(ValueError, match="needs 3 slot rows"):
        kernel.step(2, 2, w, g, off, slots, 0, state, mask, *args)
    with pytest.raises(ValueError, match="out of range"):
        kernel.step(2, 0, w, g, off, slots, 3, state, mask, *args)
    with pytest.raises(ValueError, match="unknown algorithm"):
        kernel.step(9, 0, w, g, off, slots, 0, state, mask, *args)
    plan = kernel.FlatUpdate(2, 0, slots, state, off, mask, np.zeros((), np.int64),
                             0.9, 0.999, 1e-7, 0, 0.0)
    with pytest.raises(ValueError, match="float32"):
        plan.run(w.astype(np.float64), g, 0.001, 0.0, 1)
    with pytest.raises(ValueError, match="expected 10 elements"):
        plan.run(np.zeros(11, np.float32), g, 0.001, 0.0, 1)
    assert kernel.sum_squares(np.arange(4, dtype=np.float64)) == 14.0
