"""Every optimizer case recorded from Keras (tests/data/keras_reference/optimizers), replayed
step by step through both update paths.

Tolerance (one step, float32, as the reference README suggests): rtol 1e-4, atol 1e-5,
checked after every step.
"""
import glob
import json
import os

import numpy as np
import pytest

from fastnet import backend, optimizers

RTOL, ATOL = 1e-4, 1e-5
HERE = os.path.dirname(os.path.abspath(__file__))
CASE_DIR = os.path.join(HERE, os.pardir, "data", "keras_reference", "optimizers")
CASES = sorted(os.path.splitext(os.path.basename(p))[0]
               for p in glob.glob(os.path.join(CASE_DIR, "*.npz")))


def load(name):
    d = np.load(os.path.join(CASE_DIR, name + ".npz"))
    return {k: d[k] for k in d.files if k != "meta"}, json.loads(str(d["meta"]))


def test_all_cases_present():
    assert len(CASES) == 15, CASES


@pytest.mark.parametrize("path", ["apply_flat", "apply_gradients", "apply"])
@pytest.mark.parametrize("name", CASES)
def test_matches_keras_every_step(name, path):
    d, meta = load(name)
    opt = optimizers.get({"class_name": meta["class_name"], "config": dict(meta["config"])})
    assert type(opt).__name__ == meta["class_name"]
    var = backend.Variable(d["w0"].copy(), name="kernel")
    if path == "apply_flat":
        values, grads, offsets = backend.pack([var], np.float32)
        opt.build([var])
    for t in range(meta["steps"]):
        g = d[f"g_{t}"]
        if path == "apply_flat":
            grads[:] = g.ravel()
            opt.apply_flat(values, grads, offsets)
        elif path == "apply_gradients":
            assert opt.apply_gradients([(g, var)]) == t + 1
        else:
            opt.apply([g], [var])
        np.testing.assert_allclose(var.value, d[f"w_{t + 1}"], rtol=RTOL, atol=ATOL,
                                   err_msg=f"{name}, {path}, after step {t + 1}")
        assert opt.iterations == t + 1
    # The weights moved (the comparison is not vacuous).
    assert not np.allclose(var.value, d["w0"], rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", CASES)
def test_multi_variable_flat_equals_per_variable(name):
    """The same case's gradients, spread over three variables packed into one buffer, give
    the same result as the per-variable path (per-variable clipnorm included)."""
    d, meta = load(name)
    rng = np.random.default_rng(0)
    shapes = [(3, 4), (4,), (2, 2, 3)]
    w0 = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    a = [backend.Variable(w.copy(), name=f"a{i}") for i, w in enumerate(w0)]
    b = [backend.Variable(w.copy(), name=f"b{i}") for i, w in enumerate(w0)]
    opt_a = optimizers.get({"class_name": meta["class_name"], "config": dict(meta["config"])})
    opt_b = optimizers.get({"class_name": meta["class_name"], "config": dict(meta["config"])})
    values, grads, offsets = backend.pack(a, np.float32)
    opt_a.build(a)
    for _ in range(meta["steps"]):
        gs = [rng.standard_normal(s).astype(np.float32) for s in shapes]
        for v, g in zip(a, gs):
            v.grad[...] = g
        opt_a.apply_flat(values, grads, offsets)
        opt_b.apply_gradients(list(zip(gs, b)))
        for va, vb in zip(a, b):
            np.testing.assert_allclose(va.value, vb.value, rtol=1e-6, atol=1e-7)
    for sa, sb in zip(opt_a.variables, opt_b.variables):
        np.testing.assert_allclose(sa, sb, rtol=1e-6, atol=1e-7)
