"""Metric semantics: documented Keras values, weights, state, thresholds, lookup and config."""
import numpy as np
import pytest

from fastnet import backend, config, losses, metrics
from fastnet._reference import metrics as ref

# ------------------------------------------------------------------ documented values


def _check(m, y, p, value, sw=None, sw_value=None):
    m.update_state(y, p)
    np.testing.assert_allclose(m.result(), value, rtol=1e-5, atol=1e-6)
    if sw is not None:
        m.reset_state()
        m.update_state(y, p, sample_weight=sw)
        np.testing.assert_allclose(m.result(), sw_value, rtol=1e-5, atol=1e-6)


def test_accuracy_family_documented_values():
    _check(metrics.BinaryAccuracy(), [[1], [1], [0], [0]], [[0.98], [1], [0], [0.6]], 0.75,
           [1, 0, 0, 1], 0.5)
    _check(metrics.CategoricalAccuracy(), [[0, 0, 1], [0, 1, 0]], [[0.1, 0.9, 0.8], [0.05, 0.95, 0]], 0.5,
           [0.7, 0.3], 0.3)
    _check(metrics.SparseCategoricalAccuracy(), [[2], [1]], [[0.1, 0.6, 0.3], [0.05, 0.95, 0]], 0.5,
           [0.7, 0.3], 0.3)
    _check(metrics.TopKCategoricalAccuracy(k=1), [[0, 0, 1], [0, 1, 0]], [[0.1, 0.9, 0.8], [0.05, 0.95, 0]],
           0.5, [0.7, 0.3], 0.3)
    _check(metrics.SparseTopKCategoricalAccuracy(k=1), [2, 1], [[0.1, 0.9, 0.8], [0.05, 0.95, 0]], 0.5,
           [0.7, 0.3], 0.3)
    _check(metrics.Accuracy(), [[1], [2], [3], [4]], [[0], [2], [3], [4]], 0.75, [1, 1, 0, 0], 0.5)


def test_regression_documented_values():
    y, p = [[0, 1], [0, 0]], [[1, 1], [0, 0]]
    _check(metrics.MeanSquaredError(), y, p, 0.25)
    _check(metrics.MeanAbsoluteError(), y, p, 0.25, [1, 0], 0.5)
    _check(metrics.MeanAbsolutePercentageError(), y, p, 250000000.0, [1, 0], 500000000.0)
    _check(metrics.MeanSquaredLogarithmicError(), y, p, 0.12011322, [1, 0], 0.24022643)
    _check(metrics.RootMeanSquaredError(), y, p, 0.5, [1, 0], 0.70710677)
    _check(metrics.LogCoshError(), y, p, 0.10844523, [1, 0], 0.21689045)
    _check(metrics.CosineSimilarity(axis=1), [[0.0, 1.0], [1.0, 1.0]], [[1.0, 0.0], [1.0, 1.0]], 0.5,
           [0.3, 0.7], 0.7)
    _check(metrics.Poisson(), y, p, 0.49999997, [1, 0], 0.99999994)


def test_probabilistic_and_hinge_documented_values():
    y, p = [[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]]
    _check(metrics.BinaryCrossentropy(), y, p, 0.81492424, [1, 0], 0.9162905)
    _check(metrics.KLDivergence(), y, p, 0.45814306, [1, 0], 0.9162892)
    _check(metrics.Hinge(), y, p, 1.3, [1, 0], 1.1)
    _check(metrics.SquaredHinge(), y, p, 1.86, [1, 0], 1.46)
    _check(metrics.CategoricalHinge(), y, p, 1.4, [1, 0], 1.2)
    yc, pc = [[0, 1, 0], [0, 0, 1]], [[0.05, 0.95, 0], [0.1, 0.8, 0.1]]
    _check(metrics.CategoricalCrossentropy(), yc, pc, 1.1769392, [0.3, 0.7], 1.6271976)
    _check(metrics.SparseCategoricalCrossentropy(), [1, 2], pc, 1.1769392, [0.3, 0.7], 1.6271976)


def test_reduction_metrics_documented_values():
    m = metrics.Mean()
    m.update_state([1, 3, 5, 7])
    assert m.result() == 4.0
    m.reset_state()
    m.update_state([1, 3, 5, 7], sample_weight=[1, 1, 0, 0])
    assert m.result() == 2.0
    s = metrics.Sum()
    s.update_state([1, 3, 5, 7])
    assert s.result() == 16.0
    s.reset_state()
    s.update_state([1, 3, 5, 7], sample_weight=[1, 1, 0, 0])
    assert s.result() == 4.0
    # the loss tracker: a scalar weighted by the batch size
    m = metrics.Mean(name="loss")
    m.update_state(0.5, sample_weight=32)
    m.update_state(1.0, sample_weight=16)
    assert m.result() == pytest.approx((0.5 * 32 + 16) / 48)
    # 2-D values are averaged per sample first
    m = metrics.Mean()
    m.update_state(np.array([[1.0, 3.0], [5.0, 7.0]]), sample_weight=[1, 0])
    assert m.result() == 2.0


def test_confusion_documented_values():
    _check(metrics.FalsePositives(), [0, 1, 0, 0], [0, 0, 1, 1], 2.0, [0, 0, 1, 0], 1.0)
    _check(metrics.FalseNegatives(), [0, 1, 1, 1], [0, 1, 0, 0], 2.0, [0, 0, 1, 0], 1.0)
    _check(metrics.TrueNegatives(), [0, 1, 0, 0], [1, 1, 0, 0], 2.0, [0, 0, 1, 0], 1.0)
    _check(metrics.TruePositives(), [0, 1, 1, 1], [1, 0, 1, 1], 2.0, [0, 0, 1, 0], 1.0)
    _check(metrics.Precision(), [0, 1, 1, 1], [1, 0, 1, 1], 2 / 3, [0, 0, 1, 0], 1.0)
    _check(metrics.Recall(), [0, 1, 1, 1], [1, 0, 1, 1], 2 / 3, [0, 0, 1, 0], 1.0)
    _check(metrics.Precision(top_k=2), [0, 0, 1, 1], [1, 1, 1, 1], 0.0)
    _check(metrics.Precision(top_k=4), [0, 0, 1, 1], [1, 1, 1, 1], 0.5)
    _check(metrics.AUC(num_thresholds=3), [0, 0, 1, 1], [0, 0.5, 0.3, 0.9], 0.75, [1, 0, 0, 1], 1.0)


# ------------------------------------------------------------------ state

def test_reset_update_result_sequence_and_variables():
    m = metrics.BinaryAccuracy()
    assert [v.name for v in m.variables] == ["total", "count"]
    assert m.variables[0].shape == () and m.variables[0].trainable is False
    assert m.result() == 0.0
    m.update_state([[1], [0]], [[0.9], [0.2]])
    m.update_state([[1], [0]], [[0.1], [0.2]])
    assert m.result() == 0.75
    assert float(m.variables[0].value) == 3.0 and float(m.variables[1].value) == 4.0
    m.reset_state()
    assert m.result() == 0.0 and float(m.variables[1].value) == 0.0
    # restoring saved state through the variables
    m.variables[0].assign(np.array(3.0))
    m.variables[1].assign(np.array(6.0))
    assert m.result() == 0.5
    m.update_state([[1]], [[0.9]])
    assert m.result() == pytest.approx(4 / 7)
    assert m([[0]], [[0.9]]) == pytest.approx(4 / 8)
    p = metrics.Precision(thresholds=[0.3, 0.7])
    assert [v.name for v in p.variables] == ["true_positives", "false_positives"]
    assert p.variables[0].shape == (2,)
    a = metrics.AUC(num_thresholds=10)
    assert [v.name for v in a.variables] == ["true_positives", "false_positives", "true_negatives",
                                             "false_negatives"]
    assert a.variables[0].shape == (10,)
    assert [v.name for v in metrics.TruePositives().variables] == ["accumulator"]


def test_sample_weight_shapes():
    y = np.array([[1], [0], [1], [0]], np.float32)
    p = np.array([[0.9], [0.8], [0.2], [0.1]], np.float32)
    w = np.array([1.0, 2.0, 3.0, 4.0])
    expect = (1 * 1 + 0 + 0 + 4 * 1) / 10
    for sw in (w, w[:, None], list(w)):
        m = metrics.BinaryAccuracy()
        m.update_state(y, p, sample_weight=sw)
        assert m.result() == pytest.approx(expect)
    m = metrics.BinaryAccuracy()
    m.update_state(y, p, sample_weight=2.0)
    assert m.result() == 0.5
    # temporal outputs with per-timestep weights
    rng = np.random.default_rng(0)
    yt = rng.integers(0, 2, (3, 4, 1)).astype(np.float32)
    pt = rng.uniform(size=(3, 4, 1)).astype(np.float32)
    wt = rng.uniform(size=(3, 4))
    m = metrics.BinaryAccuracy()
    m.update_state(yt, pt, sample_weight=wt)
    match = ((pt > 0.5) == yt)[..., 0]
    assert m.result() == pytest.approx(np.sum(np.mean(match * wt, 1)) / np.sum(np.mean(wt, 1)))
    m = metrics.BinaryAccuracy()
    m.update_state(yt, pt, sample_weight=wt[:, 0])
    assert m.result() == pytest.approx(np.sum(match.mean(1) * wt[:, 0]) / wt[:, 0].sum())


def test_one_dimensional_binary_inputs_count_one_value_per_batch():
    """Keras averages the last axis: (N,) targets and predictions give one value per batch."""
    m = metrics.BinaryAccuracy()
    m.update_state([1, 0, 1, 0], [0.9, 0.1, 0.2, 0.3])
    m.update_state([1, 1], [0.9, 0.9])
    assert m.result() == pytest.approx((0.75 + 1.0) / 2)
    r = metrics.RootMeanSquaredError()
    r.update_state([0.0, 0.0], [1.0, 3.0])
    assert r.result() == pytest.approx(np.sqrt(5.0))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_accuracy_kernels_match_numpy_twins(dtype):
    rng = np.random.default_rng(1)
    n, c = 200, 7
    p = rng.uniform(size=(n, c)).astype(dtype)
    p[:5, :2] = 0.5  # ties take the first index
    labels = rng.integers(0, c, n)
    onehot = np.eye(c, dtype=dtype)[labels]
    w = rng.uniform(size=n)
    yb = rng.integers(0, 2, (n, c)).astype(dtype)
    cases = [
        (metrics.BinaryAccuracy(threshold=0.3), (yb, p), ref.binary_matches(yb, p, 0.3)),
        (metrics.CategoricalAccuracy(), (onehot, p), ref.categorical_matches(onehot, p)),
        (metrics.SparseCategoricalAccuracy(), (labels, p), ref.sparse_matches(labels, p)),
        (metrics.TopKCategoricalAccuracy(k=3), (onehot, p), ref.top_k_matches(labels, p, 3)),
        (metrics.SparseTopKCategoricalAccuracy(k=2), (labels, p), ref.top_k_matches(labels, p, 2)),
    ]
    for m, args, values in cases:
        m.update_state(*args, sample_weight=w)
        tot, cnt = ref.weighted_mean(values, w)
        assert m.result() == pytest.approx(tot / cnt, rel=1e-12), type(m).__name__
        m.reset_state()
        m.update_state(*args)
        assert m.result() == pytest.approx(values.mean(), rel=1e-12), type(m).__name__


def test_top_k_ties_and_out_of_range():
    p = np.array([[0.5, 0.5, 0.5, 0.1], [0.1, 0.2, 0.3, np.nan]], np.float32)
    m = metrics.SparseTopKCategoricalAccuracy(k=1)
    m.update_state([2, 3], p)  # a tie at the top counts; a NaN score does not
    assert m.result() == 0.5
    m.reset_state()
    m.update_state([7, 3], p[:1].repeat(2, 0))  # a label outside the classes never hits
    assert m.result() == 0.0


# ------------------------------------------------------------------ confusion metrics

def test_precision_recall_thresholds_class_id_top_k():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, (50, 3)).astype(np.float32)
    p = rng.uniform(size=(50, 3)).astype(np.float32)
    w = rng.uniform(size=50)
    thr = [0.2, 0.5, 0.9]
    tp, fp, tn, fn = ref.confusion(y, p, thr, w[:, None])
    pm = metrics.Precision(thresholds=thr)
    rm = metrics.Recall(thresholds=thr)
    pm.update_state(y[:20], p[:20], sample_weight=w[:20])
    pm.update_state(y[20:], p[20:], sample_weight=w[20:])
    rm.update_state(y, p, sample_weight=w)
    np.testing.assert_allclose(pm.result(), tp / (tp + fp), rtol=1e-12)
    np.testing.assert_allclose(rm.result(), tp / (tp + fn), rtol=1e-12)
    assert isinstance(pm.result(), np.ndarray) and pm.result().shape == (3,)
    # evenly spaced thresholds take the bucket path: same counts
    even = [0.0, 0.25, 0.5, 0.75, 1.0]
    tp, fp, tn, fn = ref.confusion(y, p, even)
    pe = metrics.Precision(thresholds=even)
    pe.update_state(y, p)
    np.testing.assert_allclose(pe.true_positives.value, tp)
    np.testing.assert_allclose(pe.false_positives.value, fp)
    # class_id: only that column
    pc = metrics.Precision(class_id=1)
    pc.update_state(y, p)
    tp, fp, _, _ = ref.confusion(y[:, 1], p[:, 1], [0.5])
    assert pc.result() == pytest.approx(tp[0] / (tp[0] + fp[0]))
    # top_k: the k best scores of each row are the positive predictions
    pk = metrics.Precision(top_k=1)
    pk.update_state(y, p)
    best = np.argmax(p, 1)
    assert pk.result() == pytest.approx(y[np.arange(50), best].mean())
    rk = metrics.Recall(top_k=2)
    rk.update_state(y, p)
    top2 = np.argsort(-p, 1, kind="stable")[:, :2]
    hits = np.take_along_axis(y, top2, 1).sum()
    assert rk.result() == pytest.approx(hits / y.sum())
    with pytest.raises(ValueError, match=r"Threshold values must be in \[0, 1\]"):
        metrics.Precision(thresholds=[0.5, 1.5])


def test_precision_with_no_positive_predictions_is_zero():
    m = metrics.Precision()
    m.update_state([1, 1], [0.1, 0.2])
    assert m.result() == 0.0


@pytest.mark.parametrize("curve", ["ROC", "PR"])
@pytest.mark.parametrize("summation", ["interpolation", "minoring", "majoring"])
def test_auc_against_counts(curve, summation):
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 300).astype(np.float32)
    p = np.clip(y * 0.3 + rng.uniform(size=300) * 0.7, 0, 1).astype(np.float32)
    w = rng.uniform(size=300)
    m = metrics.AUC(num_thresholds=50, curve=curve, summation_method=summation)
    m.update_state(y[:100], p[:100], sample_weight=w[:100])
    m.update_state(y[100:], p[100:], sample_weight=w[100:])
    thr = m.thresholds
    tp, fp, tn, fn = ref.confusion(y, p, thr, w)
    np.testing.assert_allclose(m.true_positives.value, tp, rtol=1e-12)
    np.testing.assert_allclose(m.false_negatives.value, fn, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(m.true_negatives.value, tn, rtol=1e-12, atol=1e-9)
    if curve == "PR" and summation == "interpolation":
        # Davis & Goadrich interpolation: close to the plain trapezoid on a fine grid
        assert m.result() == pytest.approx(ref.auc_from_counts(tp, fp, tn, fn, "PR"), abs=0.02)
    else:
        assert m.result() == pytest.approx(ref.auc_from_counts(tp, fp, tn, fn, curve, summation), rel=1e-10)
    # a near-continuous ROC AUC is the rank statistic
    if curve == "ROC" and summation == "interpolation":
        fine = metrics.AUC(num_thresholds=2000)
        fine.update_state(y, p)
        pos, neg = p[y == 1], p[y == 0]
        rank = (np.sum(pos[:, None] > neg[None, :]) + 0.5 * np.sum(pos[:, None] == neg[None, :])) / (
            len(pos) * len(neg))
        assert fine.result() == pytest.approx(rank, abs=2e-3)


def test_auc_thresholds_multilabel_logits_and_label_weights():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, (80, 3)).astype(np.float32)
    x = rng.normal(size=(80, 3)).astype(np.float32)
    p = 1 / (1 + np.exp(-x))
    # explicit thresholds add the end points -eps and 1 + eps
    m = metrics.AUC(thresholds=[0.3, 0.6])
    assert m.num_thresholds == 4 and m.thresholds[1:3] == [0.3, 0.6] and m.thresholds[0] < 0
    m.update_state(y, p)
    tp, fp, tn, fn = ref.confusion(y, p, m.thresholds)
    assert m.result() == pytest.approx(ref.auc_from_counts(tp, fp, tn, fn))
    # multi_label: one curve per column, averaged (optionally weighted)
    lw = np.array([1.0, 2.0, 0.5])
    for weights in (None, lw):
        ml = metrics.AUC(num_thresholds=30, multi_label=True, label_weights=weights)
        ml.update_state(y, p)
        assert ml.true_positives.shape == (30, 3)
        per = []
        for j in range(3):
            tp, fp, tn, fn = ref.confusion(y[:, j], p[:, j], ml.thresholds)
            per.append(ref.auc_from_counts(tp, fp, tn, fn))
        expect = np.mean(per) if weights is None else np.sum(np.array(per) * lw) / lw.sum()
        assert ml.result() == pytest.approx(expect, rel=1e-10)
    # from_logits applies the sigmoid first
    a = metrics.AUC(from_logits=True)
    b = metrics.AUC()
    a.update_state(y, x)
    b.update_state(y, p)
    assert a.result() == pytest.approx(b.result(), rel=1e-6)
    with pytest.raises(ValueError, match="num_labels"):
        metrics.AUC(num_labels=3)
    with pytest.raises(ValueError, match="curve"):
        metrics.AUC(curve="XYZ")


# ------------------------------------------------------------------ lookup, names, config

def test_get_names_as_compile_shows_them():
    for ident, cls in [("mae", metrics.MeanAbsoluteError), ("mse", metrics.MeanSquaredError),
                       ("binary_accuracy", metrics.BinaryAccuracy),
                       ("categorical_accuracy", metrics.CategoricalAccuracy),
                       ("sparse_categorical_accuracy", metrics.SparseCategoricalAccuracy),
                       ("top_k_categorical_accuracy", metrics.TopKCategoricalAccuracy),
                       ("sparse_top_k_categorical_accuracy", metrics.SparseTopKCategoricalAccuracy),
                       ("AUC", metrics.AUC), ("auc", metrics.AUC), ("Precision", metrics.Precision),
                       ("root_mean_squared_error", metrics.RootMeanSquaredError),
                       ("binary_crossentropy", metrics.BinaryCrossentropy), ("bce", metrics.BinaryCrossentropy),
                       ("accuracy", metrics.Accuracy)]:
        m = metrics.get(ident)
        assert type(m) is cls and m.name == ident
        assert metrics.get(ident) is not m  # fresh each time
    m = metrics.get(losses.mean_absolute_error)
    assert isinstance(m, metrics.MeanMetricWrapper) and m.name == "mean_absolute_error"
    m = metrics.get(metrics.binary_accuracy)
    assert isinstance(m, metrics.BinaryAccuracy) and m.name == "binary_accuracy"
    inst = metrics.AUC(name="my_auc")
    assert metrics.get(inst) is inst
    assert isinstance(metrics.get(metrics.Recall), metrics.Recall)
    assert metrics.get(None) is None
    with pytest.raises(ValueError, match="Unknown metric 'acuracy'.*'binary_accuracy'"):
        metrics.get("acuracy")


def test_resolve_accuracy_from_shapes():
    cases = [((None, 1), (None, 1), metrics.BinaryAccuracy),
             ((None,), (None, 1), metrics.BinaryAccuracy),
             ((None,), (None, 10), metrics.SparseCategoricalAccuracy),
             ((None, 1), (None, 10), metrics.SparseCategoricalAccuracy),
             ((None, 10), (None, 10), metrics.CategoricalAccuracy),
             ((None, 5, 1), (None, 5, 8), metrics.SparseCategoricalAccuracy)]
    for ts, ps, cls in cases:
        for ident in ("accuracy", "acc", "Accuracy"):
            m = metrics.resolve(ident, ts, ps)
            assert type(m) is cls and m.name == ident
    assert isinstance(metrics.resolve("acc", loss="sparse_categorical_crossentropy"),
                      metrics.SparseCategoricalAccuracy)
    assert isinstance(metrics.resolve("acc", loss="binary_crossentropy"), metrics.BinaryAccuracy)
    assert isinstance(metrics.resolve("acc", loss=losses.CategoricalCrossentropy()), metrics.CategoricalAccuracy)
    m = metrics.resolve("mae", (None, 1), (None, 1))
    assert isinstance(m, metrics.MeanAbsoluteError) and m.name == "mae"
    inst = metrics.Precision(name="prec")
    assert metrics.resolve(inst, (None, 1), (None, 1)) is inst and inst.name == "prec"
    assert metrics.resolve(None) is None


def test_auto_names_are_unique_per_session():
    backend.clear_session()
    assert metrics.Precision().name == "precision"
    assert metrics.Precision().name == "precision_1"
    assert metrics.AUC().name == "auc"
    assert metrics.Mean().name == "mean"  # explicit default names are not made unique
    assert metrics.Mean().name == "mean"


def test_config_round_trip():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, (20, 1)).astype(np.float32)
    p = rng.uniform(size=(20, 1)).astype(np.float32)
    items = [metrics.BinaryAccuracy(threshold=0.3), metrics.TopKCategoricalAccuracy(k=2),
             metrics.Precision(thresholds=[0.2, 0.4], name="p"), metrics.Recall(top_k=1, class_id=0),
             metrics.AUC(num_thresholds=20, curve="PR", summation_method="majoring", name="prauc"),
             metrics.AUC(thresholds=[0.1, 0.5]), metrics.BinaryCrossentropy(from_logits=True, label_smoothing=0.1),
             metrics.MeanMetricWrapper(losses.huber, name="hub", delta=2.0), metrics.MeanSquaredError(name="mse")]
    for m in items:
        cfg = m.get_config()
        assert cfg["name"] == m.name and cfg["dtype"] == "float32"
        ser = metrics.serialize(m)
        back = metrics.deserialize(ser)
        assert type(back) is type(m) and back.get_config() == cfg
        if isinstance(m, metrics.TopKCategoricalAccuracy):
            continue
        m.update_state(y, p)
        back.update_state(y, p)
        np.testing.assert_allclose(back.result(), m.result())
    assert metrics.BinaryAccuracy(threshold=0.3).get_config() == {"name": "binary_accuracy", "dtype": "float32",
                                                                 "threshold": 0.3}
    assert metrics.AUC().get_config()["curve"] == "ROC"
    assert "thresholds" in metrics.AUC(thresholds=[0.5]).get_config()


def test_float64_dtype_follows_floatx():
    config.set_floatx("float64")
    try:
        m = metrics.MeanSquaredError()
        assert m.dtype == "float64" and m.get_config()["dtype"] == "float64"
        m.update_state([[1.0]], [[3.0]])
        assert m.result() == 4.0
    finally:
        config.set_floatx("float32")


def test_custom_metric_function_and_subclass():
    def within(y_true, y_pred):
        return (np.abs(np.asarray(y_true) - np.asarray(y_pred)) < 0.5).mean(-1)

    m = metrics.get(within)
    assert m.name == "within"
    m.update_state([[1.0], [2.0]], [[1.2], [3.0]])
    assert m.result() == 0.5

    class Count(metrics.Metric):
        def __init__(self, name="count", **kw):
            super().__init__(name=name, **kw)
            self.n = self.add_variable((), "zeros", name="n")

        def update_state(self, y_true, y_pred, sample_weight=None):
            self.n.assign(self.n.value + len(y_true))

        def result(self):
            return float(self.n.value)

    c = Count()
    c.update_state([1, 2, 3], [1, 2, 3])
    assert c.result() == 3.0 and c.variables[0].path == "count/n"
    c.reset_state()
    assert c.result() == 0.0


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="threshold"):
        metrics.BinaryAccuracy(threshold=1.5)
    m = metrics.SparseCategoricalCrossentropy()
    with pytest.raises(ValueError, match="outside the valid range"):
        m.update_state([5], [[0.5, 0.5]])
    m = metrics.Precision()
    with pytest.raises(ValueError, match=r"y_true of shape \(3,\)"):
        m.update_state([1, 0, 1], [[0.1, 0.2], [0.3, 0.4]])
    with pytest.raises(ValueError, match="sample_weight"):
        metrics.Mean().update_state([1.0, 2.0], sample_weight=[1.0, 2.0, 3.0])
