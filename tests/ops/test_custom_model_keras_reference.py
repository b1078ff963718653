"""A model of custom layers written with ops (tests/ops/custom_layer_defs.py) against
Keras 3: the loss, its gradient for every weight, and three steps of SGD, from
tests/data/keras_ops/custom_model.npz (tools/gen_custom_layer_reference.py).

The computation runs through fastnet.ops on a tape and the custom loss through
fastnet.losses (exact, recorded gradient), float32 throughout."""
import os

import numpy as np
from custom_layer_defs import make

import fastnet
from fastnet import losses, ops
from fastnet.backend import Variable
from fastnet.ops import autodiff

PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "keras_ops",
                    "custom_model.npz")
D = np.load(PATH)
_, _, LOSS_FN, _, FORWARD = make(fastnet, ops)
RTOL, ATOL = 1e-5, 1e-6


def _step(params, x, y):
    loss = losses.get(LOSS_FN)
    tape = autodiff.Tape()
    with tape:
        pred = FORWARD(params, x)
    value, dpred = loss.value_and_grad(y, autodiff.unwrap(pred))
    _, grads = tape.gradient(pred, dpred, variables=params)
    return autodiff.unwrap(pred), value, grads


def test_outputs_loss_and_gradients_match_keras():
    params = [Variable(D[f"w_{i}"]) for i in range(6)]
    out, value, grads = _step(params, D["x"], D["y"])
    np.testing.assert_allclose(out, D["out"], rtol=RTOL, atol=ATOL)
    assert abs(value - float(D["loss"])) < 1e-6
    for i, g in enumerate(grads):
        assert g.dtype == np.float32
        np.testing.assert_allclose(g, D[f"g_{i}"], rtol=RTOL, atol=ATOL, err_msg=f"gradient of weight {i}")


def test_three_sgd_steps_match_keras_fit():
    params = [Variable(D[f"w_{i}"].copy()) for i in range(6)]
    history = []
    for _ in range(3):
        _, value, grads = _step(params, D["x"], D["y"])
        history.append(value)
        for v, g in zip(params, grads):
            v.assign(v.value - np.float32(0.1) * g)
    np.testing.assert_allclose(history, D["history_loss"], rtol=RTOL)
    for i, v in enumerate(params):
        np.testing.assert_allclose(v.value, D[f"w_after_{i}"], rtol=RTOL, atol=ATOL, err_msg=f"weight {i}")
