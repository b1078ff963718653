"""Every loss case recorded from Keras: value and gradient, through each entry point."""
import glob
import json
import os

import numpy as np
import pytest

from fastnet import losses

RTOL, ATOL = 1e-4, 1e-5
DATA = os.path.join(os.path.dirname(__file__), "..", "data", "keras_reference", "losses")
CASES = sorted(glob.glob(os.path.join(DATA, "*.npz")))


def _load(path):
    d = np.load(path)
    meta = json.loads(str(d["meta"]))
    return meta, {k: d[k] for k in d.files if k != "meta"}


def _make(meta):
    if meta["config"]:
        return losses.get({"class_name": meta["identifier"], "config": meta["config"]})
    return losses.get(meta["identifier"])


def test_all_reference_cases_present():
    names = {os.path.basename(p)[:-4] for p in CASES}
    assert len(CASES) == 19
    assert {"binary_crossentropy_saturated", "sparse_categorical_crossentropy_logits",
            "cosine_similarity", "huber", "kld"} <= names


@pytest.mark.parametrize("path", CASES, ids=lambda p: os.path.basename(p)[:-4])
def test_value_and_grad_match_keras(path):
    meta, d = _load(path)
    loss = _make(meta)
    value, dy = loss.value_and_grad(d["y_true"], d["y_pred"])
    assert isinstance(value, float)
    np.testing.assert_allclose(value, d["value"], rtol=RTOL, atol=ATOL)
    assert dy.shape == d["y_pred"].shape and dy.dtype == d["y_pred"].dtype
    np.testing.assert_allclose(dy, d["dy_pred"], rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("path", CASES, ids=lambda p: os.path.basename(p)[:-4])
def test_call_matches_keras(path):
    meta, d = _load(path)
    loss = _make(meta)
    np.testing.assert_allclose(loss(d["y_true"], d["y_pred"]), d["value"], rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("path", CASES, ids=lambda p: os.path.basename(p)[:-4])
def test_function_form_matches_keras(path):
    """losses.<function>(y_true, y_pred) gives per-sample values whose mean is the value."""
    meta, d = _load(path)
    loss = _make(meta)
    per = loss.call(d["y_true"], d["y_pred"])
    assert per.shape == d["y_pred"].shape[:-1]
    np.testing.assert_allclose(per.mean(), d["value"], rtol=RTOL, atol=ATOL)


def test_saturated_bce_clips_and_zeroes_gradient():
    meta, d = _load(os.path.join(DATA, "binary_crossentropy_saturated.npz"))
    assert set(np.unique(d["y_pred"])) == {0.0, 1.0}
    value, dy = losses.BinaryCrossentropy().value_and_grad(d["y_true"], d["y_pred"])
    # -log(1e-7) and -log(1 - float32(1 - 1e-7)) are finite: the clip is active
    assert np.isfinite(value)
    np.testing.assert_allclose(value, d["value"], rtol=RTOL)
    assert np.all(dy == 0)


def test_gradients_in_float64_match_keras_cases():
    """The same cases computed in float64 agree with the float32 reference (except the
    saturated one, whose clip bound 1 - 1e-7 rounds differently in float32)."""
    for path in CASES:
        if "saturated" in path:
            continue
        meta, d = _load(path)
        loss = _make(meta)
        t = d["y_true"].astype(np.float64)
        p = d["y_pred"].astype(np.float64)
        value, dy = loss.value_and_grad(t, p)
        assert dy.dtype == np.float64
        np.testing.assert_allclose(value, d["value"], rtol=RTOL, atol=ATOL, err_msg=path)
        np.testing.assert_allclose(dy, d["dy_pred"], rtol=RTOL, atol=ATOL, err_msg=path)
