"""value_and_grad against finite differences of the numpy twins, in float64."""
import numpy as np
import pytest
from scipy import special

from fastnet import config, losses
from fastnet._reference import losses as ref


@pytest.fixture
def float64():
    config.set_floatx("float64")
    yield
    config.set_floatx("float32")


def _rng(seed=0):
    return np.random.default_rng(seed)


def _data(name, rng, shape=(6, 4)):
    """Targets and predictions away from the kinks of each loss."""
    n, c = shape
    if name in ("binary_crossentropy",):
        return rng.integers(0, 2, shape).astype(np.float64), rng.uniform(0.05, 0.95, shape)
    if name == "categorical_crossentropy":
        t = np.eye(c)[rng.integers(0, c, n)]
        p = rng.uniform(0.05, 1.0, shape)
        return t, p / p.sum(-1, keepdims=True)
    if name == "sparse_categorical_crossentropy":
        p = rng.uniform(0.05, 1.0, shape)
        return rng.integers(0, c, n), p / p.sum(-1, keepdims=True)
    if name in ("hinge", "squared_hinge"):
        t = rng.choice([-1.0, 1.0], shape)
        p = rng.uniform(-2, 2, shape)
        p[np.abs(1 - t * p) < 0.05] += 0.2
        return t, p
    if name == "categorical_hinge":
        t = np.eye(c)[rng.integers(0, c, n)]
        return t, rng.uniform(-1, 1, shape)
    if name in ("kl_divergence",):
        return rng.uniform(0.05, 1.0, shape), rng.uniform(0.05, 0.95, shape)
    if name in ("poisson", "mean_squared_logarithmic_error"):
        return rng.uniform(0.0, 3.0, shape), rng.uniform(0.1, 3.0, shape)
    if name == "mean_absolute_percentage_error":
        t = rng.uniform(0.5, 2.0, shape) * rng.choice([-1, 1], shape)
        return t, t + rng.uniform(0.1, 1.0, shape) * rng.choice([-1, 1], shape)
    if name == "mean_absolute_error":
        t = rng.normal(size=shape)
        return t, t + rng.uniform(0.1, 1.0, shape) * rng.choice([-1, 1], shape)
    if name == "huber":
        t = rng.normal(size=shape)
        e = rng.uniform(0.1, 2.0, shape) * rng.choice([-1, 1], shape)
        e[np.abs(np.abs(e) - 1.0) < 0.05] = 0.5
        return t, t + e
    return rng.normal(size=shape), rng.normal(size=shape)


ALL = sorted(ref.PER_SAMPLE)


def _fd_check(loss, refname, t, p, sample_weight=None, reduction="sum_over_batch_size", rtol=1e-6,
              atol=1e-8, kwargs=None):
    kwargs = kwargs or {}
    value, dy = loss.value_and_grad(t, p, sample_weight=sample_weight)
    sw = None if sample_weight is None else np.asarray(sample_weight, np.float64)

    def f(pp):
        return ref.reduce(ref.PER_SAMPLE[refname](t, pp, **kwargs), sw, reduction)

    np.testing.assert_allclose(value, f(p), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dy, ref.numeric_grad(f, p), rtol=rtol, atol=atol)
    return value, dy


@pytest.mark.parametrize("name", ALL)
def test_finite_differences_every_loss(float64, name):
    rng = _rng(1)
    t, p = _data(name, rng)
    loss = losses.get(name)
    _fd_check(loss, name, t, p)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("reduction", ["sum", "sum_over_batch_size", "mean_with_sample_weight"])
def test_finite_differences_with_weights_and_reductions(float64, name, reduction):
    rng = _rng(2)
    t, p = _data(name, rng, (5, 3))
    sw = rng.uniform(0.0, 2.0, 5)
    loss = type(losses.get(name))(reduction=reduction)
    _fd_check(loss, name, t, p, sample_weight=sw, reduction=reduction)


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
@pytest.mark.parametrize("from_logits", [False, True])
def test_crossentropy_label_smoothing_finite_differences(float64, smoothing, from_logits):
    rng = _rng(3)
    t, p = _data("binary_crossentropy", rng, (6, 3))
    if from_logits:
        p = rng.normal(scale=3, size=p.shape)
    _fd_check(losses.BinaryCrossentropy(from_logits=from_logits, label_smoothing=smoothing),
              "binary_crossentropy", t, p,
              kwargs={"from_logits": from_logits, "label_smoothing": smoothing})
    t, p = _data("categorical_crossentropy", rng, (6, 4))
    if from_logits:
        p = rng.normal(scale=3, size=p.shape)
    _fd_check(losses.CategoricalCrossentropy(from_logits=from_logits, label_smoothing=smoothing),
              "categorical_crossentropy", t, p,
              kwargs={"from_logits": from_logits, "label_smoothing": smoothing})


def test_smoothing_changes_targets_as_keras_does():
    t = np.array([[0.0, 1.0]], np.float32)
    p = np.array([[0.3, 0.6]], np.float32)
    v = losses.BinaryCrossentropy(label_smoothing=0.2)(t, p)
    ts = t * 0.8 + 0.1
    expect = np.mean(-(ts * np.log(p) + (1 - ts) * np.log(1 - p)))
    np.testing.assert_allclose(v, expect, rtol=1e-6)
    v = losses.CategoricalCrossentropy(label_smoothing=0.2)(t, p)
    ts = t * 0.8 + 0.1  # 0.2 / 2 classes
    q = p / p.sum()
    np.testing.assert_allclose(v, -(ts * np.log(q)).sum(), rtol=1e-6)


def test_sparse_from_logits_finite_differences(float64):
    rng = _rng(4)
    labels = rng.integers(0, 5, 7)
    x = rng.normal(scale=2, size=(7, 5))
    _fd_check(losses.SparseCategoricalCrossentropy(from_logits=True),
              "sparse_categorical_crossentropy", labels, x, kwargs={"from_logits": True})


def test_clip_gives_zero_gradient_in_float64(float64):
    t = np.array([[1.0, 0.0, 1.0, 0.0]])
    p = np.array([[0.0, 1.0, 1e-9, 1 - 1e-9]])
    v, dy = losses.BinaryCrossentropy().value_and_grad(t, p)
    assert np.isfinite(v) and np.all(dy == 0)
    # KL: y_pred > 1 is clipped to 1
    v, dy = losses.KLDivergence().value_and_grad(np.array([[0.5, 0.5]]), np.array([[1.5, 0.5]]))
    assert dy[0, 0] == 0 and dy[0, 1] != 0
    # MSLE: y_pred below epsilon is replaced by epsilon
    v, dy = losses.MeanSquaredLogarithmicError().value_and_grad(np.array([[1.0, 1.0]]),
                                                                  np.array([[-0.5, 0.5]]))
    assert dy[0, 0] == 0 and dy[0, 1] != 0


# ------------------------------------------------------------------ logits fusion

def _softmax(x):
    return special.softmax(x, axis=-1)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_fusion_equals_chain_rule_categorical(float64, smoothing):
    rng = _rng(5)
    x = rng.normal(size=(8, 5))
    t = np.eye(5)[rng.integers(0, 5, 8)]
    loss = losses.CategoricalCrossentropy(label_smoothing=smoothing)
    assert loss.supports_logits_fusion
    y = _softmax(x)
    v_p, dy = loss.value_and_grad(t, y)
    # chain rule through softmax: dx = y * (dy - sum(dy * y))
    dx_chain = y * (dy - (dy * y).sum(-1, keepdims=True))
    v_l, dx = loss.value_and_grad_from_logits(t, x)
    np.testing.assert_allclose(v_l, v_p, rtol=1e-9)
    np.testing.assert_allclose(dx, dx_chain, rtol=1e-7, atol=1e-12)
    v_q, dx_q = loss.value_and_grad_from_logits(t, x, probs=y)
    np.testing.assert_allclose(v_q, v_l, rtol=1e-12)
    np.testing.assert_allclose(dx_q, dx, rtol=1e-10, atol=1e-14)


def test_fusion_equals_chain_rule_sparse(float64):
    rng = _rng(6)
    x = rng.normal(size=(8, 5))
    labels = rng.integers(0, 5, (8, 1))
    loss = losses.get("sparse_categorical_crossentropy")
    assert loss.supports_logits_fusion
    y = _softmax(x)
    v_p, dy = loss.value_and_grad(labels, y)
    dx_chain = y * (dy - (dy * y).sum(-1, keepdims=True))
    v_l, dx = loss.value_and_grad_from_logits(labels, x)
    np.testing.assert_allclose(v_l, v_p, rtol=1e-9)
    np.testing.assert_allclose(dx, dx_chain, rtol=1e-7, atol=1e-12)
    v_q, dx_q = loss.value_and_grad_from_logits(labels, x, probs=y)
    np.testing.assert_allclose(v_q, v_l, rtol=1e-12)
    np.testing.assert_allclose(dx_q, dx, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_fusion_equals_chain_rule_binary(float64, smoothing):
    rng = _rng(7)
    x = rng.normal(size=(8, 3))
    t = rng.integers(0, 2, (8, 3)).astype(np.float64)
    loss = losses.BinaryCrossentropy(label_smoothing=smoothing)
    y = special.expit(x)
    v_p, dy = loss.value_and_grad(t, y)
    v_l, dx = loss.value_and_grad_from_logits(t, x)
    np.testing.assert_allclose(v_l, v_p, rtol=1e-9)
    np.testing.assert_allclose(dx, dy * y * (1 - y), rtol=1e-7, atol=1e-12)
    v_q, dx_q = loss.value_and_grad_from_logits(t, x, probs=y)
    np.testing.assert_allclose(v_q, v_l, rtol=1e-10)
    np.testing.assert_allclose(dx_q, dx, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fusion_stays_finite_when_saturated(dtype):
    x = np.array([[200.0, -200.0, 0.0], [-300.0, 300.0, 1.0]], dtype)
    t = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]], dtype)
    for loss, tt in ((losses.CategoricalCrossentropy(), t),
                     (losses.SparseCategoricalCrossentropy(), np.array([1, 0])),
                     (losses.BinaryCrossentropy(), t)):
        v, dx = loss.value_and_grad_from_logits(tt, x)
        assert np.isfinite(v) and v > 100, type(loss).__name__
        assert np.all(np.isfinite(dx)) and dx.dtype == dtype
        probs = _softmax(x.astype(np.float64)).astype(dtype) if not isinstance(
            loss, losses.BinaryCrossentropy) else special.expit(x.astype(np.float64)).astype(dtype)
        v2, dx2 = loss.value_and_grad_from_logits(tt, x, probs=probs)
        np.testing.assert_allclose(v2, v, rtol=1e-5)
        np.testing.assert_allclose(dx2, dx, rtol=1e-5, atol=1e-6)
    # the probability path saturates instead: the clip caps the loss
    v, _ = losses.CategoricalCrossentropy().value_and_grad(t, _softmax(x.astype(np.float64)).astype(dtype))
    assert v < 20


def test_fusion_only_for_probability_crossentropies():
    assert not losses.CategoricalCrossentropy(from_logits=True).supports_logits_fusion
    assert not losses.MeanSquaredError().supports_logits_fusion
    with pytest.raises(ValueError, match="cannot be computed from logits"):
        losses.MeanSquaredError().value_and_grad_from_logits(np.zeros((2, 1)), np.zeros((2, 1)))


def test_threads_do_not_change_results():
    rng = _rng(8)
    x = rng.normal(size=(4096, 16)).astype(np.float32)
    t = np.eye(16, dtype=np.float32)[rng.integers(0, 16, 4096)]
    old = config.get_num_threads()
    try:
        out = {}
        for nt in (1, 2):
            config.set_num_threads(nt)
            out[nt] = [losses.CategoricalCrossentropy(from_logits=True).value_and_grad(t, x),
                       losses.MeanSquaredError().value_and_grad(t, x),
                       losses.SparseCategoricalCrossentropy(from_logits=True).value_and_grad(
                           t.argmax(-1), x)]
        for (v1, d1), (v2, d2) in zip(out[1], out[2]):
            np.testing.assert_allclose(v1, v2, rtol=1e-12)
            np.testing.assert_array_equal(d1, d2)
    finally:
        config.set_num_threads(old)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernel_matches_numpy_twin_on_larger_batches(dtype):
    rng = _rng(9)
    for name in ALL:
        t, p = _data(name, rng, (64, 7))
        t = t.astype(dtype) if name != "sparse_categorical_crossentropy" else t
        p = p.astype(dtype)
        got = getattr(losses, name)(t, p)
        want = ref.PER_SAMPLE[name](t, p)
        assert got.dtype == dtype and got.shape == (64,)
        np.testing.assert_allclose(got, want, rtol=2e-6 if dtype == np.float32 else 1e-12,
                                   atol=1e-6 if dtype == np.float32 else 1e-12, err_msg=name)


def test_custom_loss_function_is_differentiated_exactly(float64):
    def my_loss(y_true, y_pred):
        return np.mean((y_true - y_pred) ** 4, axis=-1)

    loss = losses.get(my_loss)
    assert isinstance(loss, losses.LossFunctionWrapper) and loss.name == "my_loss"
    rng = _rng(10)
    t, p = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    sw = rng.uniform(size=5)
    v, dy = loss.value_and_grad(t, p, sample_weight=sw)
    np.testing.assert_allclose(v, np.mean(my_loss(t, p) * sw), rtol=1e-12)
    np.testing.assert_allclose(dy, 4 * (p - t) ** 3 / 3 * sw[:, None] / 5, rtol=1e-12, atol=1e-15)


def test_custom_loss_subclass_with_call_grad():
    class Cubic(losses.Loss):
        def call(self, y_true, y_pred):
            return np.sum((y_pred - y_true) ** 3, axis=-1)

        def call_grad(self, y_true, y_pred):
            return self.call(y_true, y_pred), 3 * (y_pred - y_true) ** 2

    loss = Cubic(name="cubic", reduction="sum")
    t = np.zeros((2, 2), np.float32)
    p = np.array([[1.0, 2.0], [3.0, -1.0]], np.float32)
    v, dy = loss.value_and_grad(t, p)
    assert v == pytest.approx(1 + 8 + 27 - 1)
    np.testing.assert_allclose(dy, 3 * p ** 2)
    assert dy.dtype == np.float32
    assert loss(t, p) == pytest.approx(35.0)


def test_custom_elementwise_and_scalar_losses(float64):
    rng = _rng(11)
    t, p = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))

    def elementwise(y_true, y_pred):  # one value per prediction
        return np.abs(y_true - y_pred) ** 3

    v, dy = losses.get(elementwise).value_and_grad(t, p)
    np.testing.assert_allclose(v, np.mean(elementwise(t, p)), rtol=1e-12)
    np.testing.assert_allclose(dy, 3 * (p - t) * np.abs(p - t) / 12, rtol=1e-12, atol=1e-15)

    def scalar(y_true, y_pred):  # already reduced
        return np.sum((y_true - y_pred) ** 2)

    v, dy = losses.get(scalar).value_and_grad(t, p)
    assert v == pytest.approx(scalar(t, p))
    np.testing.assert_allclose(dy, 2 * (p - t), rtol=1e-12, atol=1e-15)
