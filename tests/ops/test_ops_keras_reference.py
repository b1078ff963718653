"""fastnet.ops against Keras 3 (JAX backend): values, dtypes and vector-Jacobian products
in float32, from tests/data/keras_ops/ops.npz (tools/gen_ops_reference.py)."""
import json
import os

import numpy as np
import pytest
from keras_ops_cases import CASES

from fastnet import ops
from fastnet.ops import autodiff

PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "keras_ops", "ops.npz")
DATA = np.load(PATH)
META = json.loads(str(DATA["meta"]))["cases"]

# float32 against float32: a few ulps of the values involved
RTOL, ATOL = 2e-5, 2e-6


def test_every_case_has_reference_values():
    assert sorted(META) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_value_and_dtype(name):
    fn, _, _ = CASES[name]
    m = META[name]
    inputs = [DATA[f"{name}/x{i}"] for i in range(m["n_inputs"])]
    got = np.asarray(fn(ops, *inputs))
    want = DATA[f"{name}/y"]
    assert got.dtype == want.dtype, f"{name}: dtype {got.dtype}, Keras gives {want.dtype}"
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name", sorted(n for n in CASES if CASES[n][2]))
def test_vjp(name):
    fn, _, diff = CASES[name]
    m = META[name]
    inputs = [DATA[f"{name}/x{i}"] for i in range(m["n_inputs"])]
    tape = autodiff.Tape()
    with tape:
        args = list(inputs)
        for i in diff:
            args[i] = tape.watch(inputs[i])
        out = fn(ops, *args)
    grads, _ = tape.gradient(out, DATA[f"{name}/u"], inputs=[args[i] for i in diff])
    for i, g in zip(diff, grads):
        want = DATA[f"{name}/g{i}"]
        assert g.dtype == np.float32
        np.testing.assert_allclose(g, want, rtol=RTOL, atol=ATOL, err_msg=f"{name}: input {i}")
