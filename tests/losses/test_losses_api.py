"""losses.get / serialize / config, reductions, sample weights, shapes and validate()."""
import numpy as np
import pytest

from fastnet import backend, losses

# ------------------------------------------------------------------ Keras's documented numbers

Y_CAT = np.array([[0, 1, 0], [0, 0, 1]])
P_CAT = np.array([[0.05, 0.95, 0], [0.1, 0.8, 0.1]], np.float32)


def test_categorical_crossentropy_documented_values():
    np.testing.assert_allclose(losses.CategoricalCrossentropy()(Y_CAT, P_CAT), 1.177, atol=1e-3)
    np.testing.assert_allclose(losses.CategoricalCrossentropy()(Y_CAT, P_CAT, sample_weight=np.array([0.3, 0.7])),
                               0.814, atol=1e-3)
    np.testing.assert_allclose(losses.CategoricalCrossentropy(reduction="sum")(Y_CAT, P_CAT), 2.354, atol=1e-3)
    per = losses.CategoricalCrossentropy(reduction=None)(Y_CAT, P_CAT)
    np.testing.assert_allclose(per, [0.0513, 2.303], atol=1e-3)
    assert per.dtype == np.float32
    np.testing.assert_allclose(losses.categorical_crossentropy(Y_CAT, P_CAT), [0.0513, 2.303], atol=1e-3)


def test_sparse_categorical_crossentropy_documented_values():
    y = [1, 2]
    np.testing.assert_allclose(losses.SparseCategoricalCrossentropy()(y, P_CAT), 1.177, atol=1e-3)
    np.testing.assert_allclose(
        losses.SparseCategoricalCrossentropy()(y, P_CAT, sample_weight=np.array([0.3, 0.7])), 0.814, atol=1e-3)
    np.testing.assert_allclose(losses.SparseCategoricalCrossentropy(reduction="sum")(y, P_CAT), 2.354, atol=1e-3)
    np.testing.assert_allclose(losses.SparseCategoricalCrossentropy(reduction="none")(y, P_CAT),
                               [0.0513, 2.303], atol=1e-3)


def test_binary_crossentropy_documented_values():
    y = np.array([0, 1, 0, 0])
    x = np.array([-18.6, 0.51, 2.94, -12.8], np.float32)
    bce = losses.BinaryCrossentropy(from_logits=True)
    np.testing.assert_allclose(bce(y, x), 0.8654, atol=1e-3)
    y2, x2 = y.reshape(2, 2), x.reshape(2, 2)
    np.testing.assert_allclose(bce(y2, x2), 0.8654, atol=1e-3)
    np.testing.assert_allclose(bce(y2, x2, sample_weight=[0.8, 0.2]), 0.243, atol=1e-3)
    np.testing.assert_allclose(losses.BinaryCrossentropy(from_logits=True, reduction="sum")(y2, x2), 1.730,
                               atol=1e-3)
    np.testing.assert_allclose(losses.BinaryCrossentropy(from_logits=True, reduction=None)(y2, x2),
                               [0.235, 1.496], atol=1e-3)
    np.testing.assert_allclose(
        losses.binary_crossentropy([[0, 1], [0, 0]], np.array([[0.6, 0.4], [0.4, 0.6]], np.float32)),
        [0.916, 0.714], atol=1e-3)


def test_other_documented_values():
    t = np.array([[0, 1], [0, 0]], np.float32)
    np.testing.assert_allclose(losses.Huber()(t, np.array([[0.6, 0.4], [0.4, 0.6]], np.float32)), 0.155,
                               atol=1e-3)
    np.testing.assert_allclose(losses.LogCosh()(t, np.array([[1.0, 1.0], [0.0, 0.0]], np.float32)), 0.108,
                               atol=1e-3)
    np.testing.assert_allclose(
        losses.cosine_similarity(np.array([[0.0, 1.0], [1.0, 1.0], [1.0, 1.0]], np.float32),
                                 np.array([[1.0, 0.0], [1.0, 1.0], [-1.0, -1.0]], np.float32)),
        [0.0, -1.0, 1.0], atol=1e-6)


# ------------------------------------------------------------------ reductions and weights

def test_reductions_and_sample_weight_semantics():
    rng = np.random.default_rng(0)
    t = rng.normal(size=(6, 3)).astype(np.float32)
    p = rng.normal(size=(6, 3)).astype(np.float32)
    per = np.mean((t - p) ** 2, axis=-1)
    sw = np.array([0, 1, 2, 0.5, 1, 3], np.float32)
    assert losses.MeanSquaredError()(t, p, sample_weight=sw) == pytest.approx(np.sum(per * sw) / 6, rel=1e-6)
    assert losses.MeanSquaredError(reduction="mean")(t, p, sample_weight=sw) == pytest.approx(
        np.sum(per * sw) / 6, rel=1e-6)
    assert losses.MeanSquaredError(reduction="sum")(t, p, sample_weight=sw) == pytest.approx(
        np.sum(per * sw), rel=1e-6)
    assert losses.MeanSquaredError(reduction="mean_with_sample_weight")(t, p, sample_weight=sw) == pytest.approx(
        np.sum(per * sw) / sw.sum(), rel=1e-6)
    assert losses.MeanSquaredError(reduction="mean_with_sample_weight")(t, p) == pytest.approx(per.mean(), rel=1e-6)
    assert losses.MeanSquaredError(reduction="mean_with_sample_weight")(t, p, sample_weight=np.zeros(6)) == 0.0
    np.testing.assert_allclose(losses.MeanSquaredError(reduction="none")(t, p, sample_weight=sw), per * sw,
                               rtol=1e-6)
    # (N, 1) weights and a scalar weight
    assert losses.MeanSquaredError()(t, p, sample_weight=sw[:, None]) == pytest.approx(np.sum(per * sw) / 6,
                                                                                       rel=1e-6)
    assert losses.MeanSquaredError()(t, p, sample_weight=2.0) == pytest.approx(2 * per.mean(), rel=1e-6)
    # value_and_grad agrees with __call__ and scales the gradient by the weights
    v, dy = losses.MeanSquaredError().value_and_grad(t, p, sample_weight=sw)
    assert v == pytest.approx(np.sum(per * sw) / 6, rel=1e-6)
    np.testing.assert_allclose(dy, 2 * (p - t) / 3 * sw[:, None] / 6, rtol=1e-5, atol=1e-7)


def test_reduction_none_value_and_grad_sums():
    t = np.zeros((3, 2), np.float32)
    p = np.ones((3, 2), np.float32)
    v, dy = losses.MeanSquaredError(reduction="none").value_and_grad(t, p)
    assert v == pytest.approx(3.0)
    np.testing.assert_allclose(dy, np.ones((3, 2)))


def test_invalid_reduction_and_weights():
    with pytest.raises(ValueError, match="reduction"):
        losses.MeanSquaredError(reduction="average")
    with pytest.raises(ValueError, match=r"sample_weight of shape \(5,\)"):
        losses.MeanSquaredError()(np.zeros((4, 2)), np.zeros((4, 2)), sample_weight=np.ones(5))


def test_temporal_predictions_and_weights():
    rng = np.random.default_rng(1)
    t = rng.normal(size=(4, 5, 3)).astype(np.float32)
    p = rng.normal(size=(4, 5, 3)).astype(np.float32)
    per = np.mean((t - p) ** 2, axis=-1)
    assert losses.mean_squared_error(t, p).shape == (4, 5)
    sw = rng.uniform(size=(4, 5)).astype(np.float32)
    assert losses.MeanSquaredError()(t, p, sample_weight=sw) == pytest.approx(np.sum(per * sw) / 20, rel=1e-5)
    swn = rng.uniform(size=4).astype(np.float32)
    assert losses.MeanSquaredError()(t, p, sample_weight=swn) == pytest.approx(
        np.sum(per * swn[:, None]) / 20, rel=1e-5)
    v, dy = losses.MeanSquaredError().value_and_grad(t, p, sample_weight=sw)
    np.testing.assert_allclose(dy, 2 * (p - t) / 3 * sw[..., None] / 20, rtol=1e-5, atol=1e-7)


def test_mask_counts_only_valid_entries():
    t = np.zeros((4, 2), np.float32)
    p = np.ones((4, 2), np.float32)
    mask = np.array([1, 1, 0, 0], bool)
    v, dy = losses.MeanSquaredError().value_and_grad(t, p, mask=mask)
    assert v == pytest.approx(1.0)
    np.testing.assert_allclose(dy[2:], 0)
    np.testing.assert_allclose(dy[:2], 2 / 2 / 2)


# ------------------------------------------------------------------ shapes and dtypes

def test_label_shapes_and_dtypes():
    p = np.array([[0.2, 0.7, 0.1], [0.5, 0.25, 0.25]], np.float32)
    scce = losses.SparseCategoricalCrossentropy()
    ref = scce(np.array([1, 0]), p)
    for y in (np.array([1, 0], np.int32), np.array([[1], [0]], np.uint8), np.array([1.0, 0.0], np.float32),
              [[1], [0]]):
        assert scce(y, p) == pytest.approx(ref)
    # binary targets of shape (N,) against (N, 1) predictions, and the reverse
    pb = np.array([[0.3], [0.8]], np.float32)
    bce = losses.BinaryCrossentropy()
    ref = bce(np.array([[0.0], [1.0]]), pb)
    assert bce(np.array([0, 1]), pb) == pytest.approx(ref)
    v, dy = bce.value_and_grad(np.array([0, 1]), pb)
    assert v == pytest.approx(ref) and dy.shape == (2, 1)
    v, dy = bce.value_and_grad(np.array([[0], [1]]), pb[:, 0])
    assert v == pytest.approx(ref) and dy.shape == (2,)
    # y_true broadcast against y_pred for elementwise regression losses
    t1 = np.array([[1.0], [2.0]], np.float32)
    p3 = np.ones((2, 3), np.float32)
    assert losses.MeanSquaredError()(t1, p3) == pytest.approx(np.mean((np.broadcast_to(t1, (2, 3)) - p3) ** 2))
    with pytest.raises(ValueError, match=r'"binary_crossentropy".*\(2, 3\)'):
        bce(np.zeros((2, 3)), np.full((2, 2), 0.5, np.float32))


def test_int_predictions_use_floatx_and_gradient_keeps_dtype():
    v, dy = losses.MeanAbsoluteError().value_and_grad(np.array([[1, 2]]), np.array([[3, 1]]))
    assert dy.dtype == np.float32 and v == pytest.approx(1.5)
    v, dy = losses.MeanAbsoluteError().value_and_grad(np.array([[1, 2]]), np.array([[3.0, 1.0]]))
    assert dy.dtype == np.float64


def test_out_buffer_is_filled():
    t = np.zeros((4, 2), np.float32)
    p = np.ones((4, 2), np.float32)
    out = np.empty_like(p)
    v, dy = losses.MeanSquaredError().value_and_grad(t, p, out=out)
    assert dy is out
    np.testing.assert_allclose(out, 2 / 2 / 4)
    v, dy = losses.MeanSquaredError().value_and_grad(t, p, sample_weight=np.ones(4), out=out)
    assert dy is out


def test_axis_argument():
    rng = np.random.default_rng(2)
    t = np.eye(4, dtype=np.float32)[rng.integers(0, 4, 6)]
    p = rng.uniform(0.1, 1, (6, 4)).astype(np.float32)
    a = losses.CategoricalCrossentropy()
    b = losses.CategoricalCrossentropy(axis=0)
    assert b(t.T, p.T) == pytest.approx(a(t, p), rel=1e-6)
    va, da = a.value_and_grad(t, p)
    vb, db = b.value_and_grad(t.T, p.T)
    np.testing.assert_allclose(db, da.T, rtol=1e-6)
    bce = losses.BinaryCrossentropy(axis=0)
    assert bce(t.T, p.T) == pytest.approx(losses.BinaryCrossentropy()(t, p), rel=1e-6)
    with pytest.raises(ValueError, match="axis=-1"):
        losses.SparseCategoricalCrossentropy(axis=0)(np.zeros(4), p.T)
    with pytest.raises(ValueError, match="axis"):
        losses.CategoricalCrossentropy(axis=True)


def test_ignore_class():
    p = np.array([[0.2, 0.7, 0.1], [0.5, 0.25, 0.25], [0.1, 0.1, 0.8]], np.float32)
    y = np.array([1, -1, 2])
    loss = losses.SparseCategoricalCrossentropy(ignore_class=-1)
    per = loss.call(y, p)
    assert per[1] == 0
    np.testing.assert_allclose(loss(y, p), (per[0] + per[2]) / 2, rtol=1e-6)
    v, dy = loss.value_and_grad(y, p)
    assert np.all(dy[1] == 0)
    v2, dy2 = losses.SparseCategoricalCrossentropy().value_and_grad(y[[0, 2]], p[[0, 2]])
    assert v == pytest.approx(v2) and np.allclose(dy[[0, 2]], dy2)
    with pytest.raises(ValueError, match="outside the valid range"):
        losses.SparseCategoricalCrossentropy()(y, p)


def test_empty_batch():
    v, dy = losses.MeanSquaredError().value_and_grad(np.zeros((0, 3)), np.zeros((0, 3), np.float32))
    assert v == 0.0 and dy.shape == (0, 3)


# ------------------------------------------------------------------ get / serialize

def test_get_strings_classes_instances_dicts_callables():
    for name, cls in [("mse", losses.MeanSquaredError), ("MSE", losses.MeanSquaredError),
                      ("mae", losses.MeanAbsoluteError), ("mape", losses.MeanAbsolutePercentageError),
                      ("msle", losses.MeanSquaredLogarithmicError), ("kld", losses.KLDivergence),
                      ("kl_divergence", losses.KLDivergence), ("bce", losses.BinaryCrossentropy),
                      ("huber", losses.Huber), ("log_cosh", losses.LogCosh),
                      ("categorical_hinge", losses.CategoricalHinge),
                      ("binary_crossentropy", losses.BinaryCrossentropy),
                      ("sparse_categorical_crossentropy", losses.SparseCategoricalCrossentropy)]:
        obj = losses.get(name)
        assert isinstance(obj, cls) and obj.name == name
    obj = losses.get("CategoricalCrossentropy")
    assert type(obj) is losses.CategoricalCrossentropy and obj.name == "categorical_crossentropy"
    inst = losses.Huber(delta=2.0)
    assert losses.get(inst) is inst
    assert isinstance(losses.get(losses.Poisson), losses.Poisson)
    obj = losses.get({"class_name": "CategoricalCrossentropy", "config": {"from_logits": True}})
    assert obj.from_logits and not obj.supports_logits_fusion
    obj = losses.get(losses.mean_squared_error)
    assert isinstance(obj, losses.MeanSquaredError) and obj.name == "mean_squared_error"
    assert losses.get(None) is None
    assert losses.mse is losses.mean_squared_error and losses.kld is losses.kl_divergence
    assert losses.MAE is losses.mean_absolute_error and losses.msle is losses.mean_squared_logarithmic_error


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="Unknown loss 'mean_sqared_error'.*'mean_squared_error'"):
        losses.get("mean_sqared_error")
    with pytest.raises(ValueError, match="Could not interpret"):
        losses.get(42)


def test_get_config_and_round_trip():
    cases = [
        (losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.1, axis=-1, reduction="sum"),
         {"name": "binary_crossentropy", "reduction": "sum", "from_logits": True, "label_smoothing": 0.1,
          "axis": -1}),
        (losses.CategoricalCrossentropy(label_smoothing=0.2),
         {"name": "categorical_crossentropy", "reduction": "sum_over_batch_size", "from_logits": False,
          "label_smoothing": 0.2, "axis": -1}),
        (losses.SparseCategoricalCrossentropy(ignore_class=255),
         {"name": "sparse_categorical_crossentropy", "reduction": "sum_over_batch_size", "from_logits": False,
          "ignore_class": 255}),
        (losses.MeanSquaredError(), {"name": "mean_squared_error", "reduction": "sum_over_batch_size"}),
        (losses.Huber(delta=2.5), {"name": "huber_loss", "reduction": "sum_over_batch_size", "delta": 2.5}),
        (losses.CosineSimilarity(axis=1), {"name": "cosine_similarity", "reduction": "sum_over_batch_size",
                                           "axis": 1}),
    ]
    rng = np.random.default_rng(3)
    for loss, cfg in cases:
        assert loss.get_config() == cfg
        ser = losses.serialize(loss)
        assert ser["class_name"] == type(loss).__name__ and ser["config"] == cfg
        back = losses.deserialize(ser)
        assert type(back) is type(loss) and back.get_config() == cfg
        again = type(loss).from_config(loss.get_config())
        t = rng.integers(0, 2, (4, 3)).astype(np.float32)
        p = rng.uniform(0.1, 0.9, (4, 3)).astype(np.float32)
        if isinstance(loss, losses.SparseCategoricalCrossentropy):
            t = rng.integers(0, 3, 4)
        assert again(t, p) == pytest.approx(loss(t, p))
    assert losses.serialize(losses.mean_squared_error)["config"] == "mean_squared_error"
    assert losses.deserialize("mse") is losses.mean_squared_error
    assert isinstance(losses.deserialize("Huber"), losses.Huber)


def test_function_wrapper_keeps_fast_path_and_config():
    w = losses.LossFunctionWrapper(losses.binary_crossentropy, name="bce_w", label_smoothing=0.1)
    assert w.supports_logits_fusion
    t = np.array([[0.0], [1.0]], np.float32)
    p = np.array([[0.2], [0.6]], np.float32)
    assert w(t, p) == pytest.approx(losses.BinaryCrossentropy(label_smoothing=0.1)(t, p))
    cfg = w.get_config()
    assert cfg["name"] == "bce_w" and cfg["label_smoothing"] == 0.1
    back = losses.LossFunctionWrapper.from_config(cfg)
    assert back(t, p) == pytest.approx(w(t, p))


def test_auto_names_for_custom_subclasses():
    backend.clear_session()

    class MyLoss(losses.Loss):
        def call(self, y_true, y_pred):
            return np.abs(y_true - y_pred).sum(-1)

    assert MyLoss().name == "my_loss"
    assert MyLoss().name == "my_loss_1"


def test_resolve_crossentropy_from_shapes():
    assert isinstance(losses.resolve("crossentropy", (None, 1), (None, 1)), losses.BinaryCrossentropy)
    assert isinstance(losses.resolve("ce", (None,), (None, 10)), losses.SparseCategoricalCrossentropy)
    assert isinstance(losses.resolve("ce", (None, 1), (None, 10)), losses.SparseCategoricalCrossentropy)
    assert isinstance(losses.resolve("ce", (None, 10), (None, 10)), losses.CategoricalCrossentropy)
    assert isinstance(losses.resolve("mse", (None, 1), (None, 1)), losses.MeanSquaredError)


# ------------------------------------------------------------------ validate()

def _msg(loss, y, shape):
    with pytest.raises(ValueError) as e:
        loss.validate(y, shape)
    return str(e.value)


def test_validate_sparse_labels():
    loss = losses.get("sparse_categorical_crossentropy")
    loss.validate(np.array([0, 1, 9]), (None, 10))
    loss.validate(np.array([[0], [1], [9]]), (None, 10))
    msg = _msg(loss, np.eye(10)[[0, 1, 2]], (None, 10))
    assert "sparse_categorical_crossentropy" in msg and "(3, 10)" in msg and "(None, 10)" in msg
    assert "one-hot" in msg
    msg = _msg(loss, np.array([0, 1, 10]), (None, 10))
    assert "sparse_categorical_crossentropy" in msg and "(3,)" in msg and "(None, 10)" in msg and "10" in msg
    msg = _msg(loss, np.array([0, -1, 3]), (None, 10))
    assert "(3,)" in msg and "[-1, 3]" in msg
    msg = _msg(loss, np.array([0.0, np.nan]), (None, 10))
    assert "NaN" in msg and "(2,)" in msg and "sparse_categorical_crossentropy" in msg
    msg = _msg(loss, np.array([0.5, 1.0]), (None, 10))
    assert "non-integer" in msg
    losses.SparseCategoricalCrossentropy(ignore_class=-1).validate(np.array([0, -1, 3]), (None, 10))
    msg = _msg(loss, np.zeros((4, 3, 2)), (None, 10))
    assert "(4, 3, 2)" in msg and "(None, 10)" in msg


def test_validate_categorical_and_elementwise():
    cce = losses.get("categorical_crossentropy")
    cce.validate(np.eye(10)[[1, 2]], (None, 10))
    msg = _msg(cce, np.array([1, 2, 3]), (None, 10))
    assert "categorical_crossentropy" in msg and "(3,)" in msg and "(None, 10)" in msg
    assert "sparse_categorical_crossentropy" in msg
    msg = _msg(cce, np.zeros((5, 1)), (None, 10))
    assert "(5, 1)" in msg and "sparse_categorical_crossentropy" in msg
    mse = losses.get("mse")
    mse.validate(np.zeros(100), (None, 1))
    mse.validate(np.zeros((100, 1)), (None, 1))
    mse.validate(np.zeros((100, 1)), (None, 3))
    msg = _msg(mse, np.zeros(100), (None, 10))
    assert '"mse"' in msg and "(100,)" in msg and "(None, 10)" in msg
    msg = _msg(mse, np.zeros((8, 2)), (16, 2))
    assert "(8, 2)" in msg and "(16, 2)" in msg
    bce = losses.get("binary_crossentropy")
    msg = _msg(bce, np.zeros((8, 2)), (None, 3))
    assert "binary_crossentropy" in msg and "(8, 2)" in msg and "(None, 3)" in msg
    msg = _msg(bce, np.array([[np.inf], [0]]), (None, 1))
    assert "NaN or infinite" in msg
    msg = _msg(bce, np.array(["a", "b"]), (None, 1))
    assert "numeric" in msg


def test_one_dimensional_predictions_with_weights():
    """(N,) targets and predictions give one loss for the array; per-element weights then
    scale it as Keras broadcasts them (mean of the weights for the default reduction)."""
    y = np.array([0, 1, 0, 0.0])
    x = np.array([-18.6, 0.51, 2.94, -12.8], np.float32)
    w = np.array([0.8, 0.2, 0.5, 1.0])
    loss = losses.BinaryCrossentropy(from_logits=True)
    per = loss.call(y, x)
    assert per.shape == ()
    np.testing.assert_allclose(loss(y, x, sample_weight=w), per * w.mean(), rtol=1e-6)
    v, dy = loss.value_and_grad(y, x, sample_weight=w)
    v0, dy0 = loss.value_and_grad(y, x)
    np.testing.assert_allclose(v, v0 * w.mean(), rtol=1e-6)
    np.testing.assert_allclose(dy, dy0 * w.mean(), rtol=1e-6)
    np.testing.assert_allclose(losses.BinaryCrossentropy(from_logits=True, reduction="sum")(y, x, sample_weight=w),
                               per * w.sum(), rtol=1e-6)
    np.testing.assert_allclose(
        losses.BinaryCrossentropy(from_logits=True, reduction="mean_with_sample_weight")(y, x, sample_weight=w),
        per, rtol=1e-6)
