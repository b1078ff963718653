"""Every metric case recorded from Keras: state updated with the first rows, then the rest."""
import glob
import json
import os

import numpy as np
import pytest

from fastnet import metrics

RTOL, ATOL = 1e-4, 1e-5
DATA = os.path.join(os.path.dirname(__file__), "..", "data", "keras_reference", "metrics")
CASES = sorted(glob.glob(os.path.join(DATA, "*.npz")))


def _load(path):
    d = np.load(path)
    meta = json.loads(str(d["meta"]))
    return meta, {k: d[k] for k in d.files if k != "meta"}


def _make(meta, d):
    if meta["config"]:
        return metrics.get({"class_name": meta["identifier"], "config": meta["config"]})
    return metrics.resolve(meta["identifier"], d["y_true"].shape, d["y_pred"].shape)


def test_all_reference_cases_present():
    assert len(CASES) == 12


@pytest.mark.parametrize("path", CASES, ids=lambda p: os.path.basename(p)[:-4])
def test_two_updates_match_keras(path):
    meta, d = _load(path)
    m = _make(meta, d)
    k = meta["split"]
    m.update_state(d["y_true"][:k], d["y_pred"][:k])
    m.update_state(d["y_true"][k:], d["y_pred"][k:])
    r = m.result()
    assert isinstance(r, float)
    np.testing.assert_allclose(r, d["value"], rtol=RTOL, atol=ATOL)
    # reset then one update with everything: the same value (the mean is over samples)
    m.reset_state()
    assert m.result() == 0.0
    m.update_state(d["y_true"], d["y_pred"])
    np.testing.assert_allclose(m.result(), d["value"], rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("path", CASES, ids=lambda p: os.path.basename(p)[:-4])
def test_float64_and_int_labels(path):
    meta, d = _load(path)
    m = _make(meta, d)
    y = d["y_true"]
    if np.all(y == np.round(y)):
        y = y.astype(np.int64)
    m.update_state(y, d["y_pred"].astype(np.float64))
    np.testing.assert_allclose(m.result(), d["value"], rtol=RTOL, atol=ATOL)


def test_accuracy_resolution_and_names():
    cases = {"accuracy_binary": metrics.BinaryAccuracy, "accuracy_categorical": metrics.CategoricalAccuracy,
             "accuracy_sparse": metrics.SparseCategoricalAccuracy}
    for name, cls in cases.items():
        meta, d = _load(os.path.join(DATA, name + ".npz"))
        m = _make(meta, d)
        assert type(m) is cls and m.name == "accuracy"
    meta, d = _load(os.path.join(DATA, "mae_metric.npz"))
    m = _make(meta, d)
    assert isinstance(m, metrics.MeanAbsoluteError) and m.name == "mae"
