"""ReLU fused into the BatchNormalization or Add that alone feeds it (a graph pass).

The fused model must compute what the unfused one computes, forward and backward, in
training and inference; the pass must leave alone every case where fusing would change
a value someone can see (the pre-ReLU tensor read elsewhere or returned, a ReLU with
options, a producer with an activity regularizer).
"""
import numpy as np
import pytest
from helpers import numeric_grad

import fastnet as keras
from fastnet import layers
from fastnet._kernels import normalization as _bn


def _residual(dtype="float32", act="layer", seed=0):
    keras.utils.set_random_seed(seed)
    relu = (lambda: layers.ReLU(dtype=dtype)) if act == "layer" else (lambda: layers.Activation("relu", dtype=dtype))
    inp = keras.Input((6, 6, 3), dtype=dtype)
    t = relu()(layers.BatchNormalization(dtype=dtype)(layers.Conv2D(4, 3, padding="same", use_bias=False,
                                                                     dtype=dtype)(inp)))
    h = relu()(layers.BatchNormalization(dtype=dtype)(layers.Conv2D(4, 3, padding="same", dtype=dtype)(t)))
    h = layers.BatchNormalization(dtype=dtype)(layers.Conv2D(4, 3, padding="same", dtype=dtype)(h))
    t = relu()(layers.add([h, t], dtype=dtype))
    out = layers.Dense(3, dtype=dtype)(layers.GlobalAveragePooling2D(dtype=dtype)(t))
    return keras.Model(inp, out)


def _unfused(model):
    """The same model with the fusion pass's result dropped (each layer runs alone)."""
    model._graph.relu_fusions = []
    return model


@pytest.mark.parametrize("act", ["layer", "activation"])
def test_the_pass_finds_batchnorm_relu_and_add_relu(act):
    model = _residual(act=act)
    g = model._graph
    kinds = sorted((type(g.steps[a].layer).__name__, type(g.steps[b].layer).__name__) for a, b in g.relu_fusions)
    relu = "ReLU" if act == "layer" else "Activation"
    assert kinds == [("Add", relu), ("BatchNormalization", relu), ("BatchNormalization", relu)]


def test_the_pass_leaves_alone_what_would_change_a_visible_value():
    inp = keras.Input((5,))
    bn1 = layers.BatchNormalization()(inp)
    r1 = layers.ReLU()(bn1)                            # bn1 is also a model output
    bn2 = layers.BatchNormalization()(inp)
    r2 = layers.ReLU()(bn2)
    other = layers.Dense(2)(bn2)                       # bn2 read twice
    r3 = layers.ReLU(max_value=6.0)(layers.BatchNormalization()(inp))   # not a plain ReLU
    r4 = layers.LeakyReLU()(layers.BatchNormalization()(inp))
    r5 = layers.ReLU()(layers.BatchNormalization(activity_regularizer="l2")(inp))
    model = keras.Model(inp, [bn1, r1, r2, other, r3, r4, r5])
    assert model._graph.relu_fusions == []


def _run(model, x, u, training):
    y = model(x, training=training)
    dx = model.backward(model._last_ctx, u)
    return y.copy(), dx.copy(), [v.grad.copy() for v in model.trainable_weights]


@pytest.mark.parametrize("training", [True, False])
def test_fused_and_unfused_models_agree(training):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 6, 6, 3)).astype(np.float32)
    u = rng.standard_normal((4, 3)).astype(np.float32)
    fused = _residual()
    plain = _unfused(_residual())
    plain.set_weights(fused.get_weights())
    assert fused._graph.relu_fusions and not plain._graph.relu_fusions
    yf, dxf, gf = _run(fused, x, u, training)
    yp, dxp, gp = _run(plain, x, u, training)
    # float32: the fused and separate passes round the same way but for the order of
    # a few operations.
    np.testing.assert_allclose(yf, yp, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dxf, dxp, rtol=1e-4, atol=1e-6)
    for a, b, v in zip(gf, gp, fused.trainable_weights):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5, err_msg=v.path)
    # Moving statistics after a training call are the same too.
    for a, b in zip(fused.get_weights(), plain.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_fused_training_gradients_match_finite_differences():
    """float64 finite differences through BN+ReLU and Add+ReLU in training mode (batch
    statistics), for the input and every weight."""
    model = _residual(dtype="float64")
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 6, 6, 3))
    u = rng.standard_normal((3, 3))
    assert len(model._graph.relu_fusions) == 3
    _, dx, grads = _run(model, x, u, True)

    def loss(v):
        return float(np.sum(model(v, training=True) * u))

    np.testing.assert_allclose(dx, numeric_grad(loss, x), rtol=1e-5, atol=1e-8)
    for var, got in zip(model.trainable_weights, grads):
        def loss_w(wv, var=var):
            old = var.value.copy()
            var.value[...] = wv
            try:
                return float(np.sum(model(x, training=True) * u))
            finally:
                var.value[...] = old
        np.testing.assert_allclose(got, numeric_grad(loss_w, var.value), rtol=1e-5, atol=1e-8,
                                   err_msg=var.path)


def test_fused_sequential_trains_like_the_unfused_one():
    def build():
        keras.utils.set_random_seed(3)
        m = keras.Sequential([keras.Input((8,)), layers.Dense(16, use_bias=False), layers.BatchNormalization(),
                              layers.ReLU(), layers.Dense(2, activation="softmax")])
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        return m
    rng = np.random.default_rng(4)
    x = rng.standard_normal((64, 8)).astype(np.float32)
    y = rng.integers(0, 2, 64)
    fused, plain = build(), _unfused(build())
    assert fused._graph.relu_fusions == [(1, 2)]
    hf = fused.fit(x, y, batch_size=16, epochs=3, verbose=0, shuffle=False).history["loss"]
    hp = plain.fit(x, y, batch_size=16, epochs=3, verbose=0, shuffle=False).history["loss"]
    np.testing.assert_allclose(hf, hp, rtol=1e-5)
    np.testing.assert_allclose(fused.predict(x, verbose=0), plain.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows,ch", [(1, 3), (37, 5), (300, 70), (4096, 16)])
def test_batchnorm_kernels_with_relu_match_the_numpy_twin(dtype, rows, ch):
    rng = np.random.default_rng(rows + ch)
    # A large mean relative to the spread: the shifted sums keep the variance accurate.
    x = (rng.standard_normal((rows, ch)) * 2 + 30).astype(dtype)
    gamma = (rng.random(ch) + 0.5).astype(dtype)
    beta = rng.standard_normal(ch).astype(dtype)
    dy = rng.standard_normal((rows, ch)).astype(dtype)
    mean, var, invstd = (np.empty(ch, dtype) for _ in range(3))
    y = np.empty_like(x)
    _bn.forward_train(x, gamma, beta, mean, var, invstd, y, 1e-3, 2, True)
    x64 = x.astype(np.float64)
    m, v = x64.mean(0), x64.var(0)
    xhat = (x64 - m) / np.sqrt(v + 1e-3)
    want = np.maximum(xhat * gamma + beta, 0)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(mean, m, **tol)
    np.testing.assert_allclose(var, v, **tol)
    np.testing.assert_allclose(y, want, **tol)
    dx, dg, db = np.empty_like(x), np.empty(ch, dtype), np.empty(ch, dtype)
    _bn.backward_train(dy, x, mean, invstd, gamma, dx, dg, db, 2, y)
    d = dy * (want > 0)
    n = rows
    want_db, want_dg = d.sum(0), (d * xhat).sum(0)
    want_dx = gamma / np.sqrt(v + 1e-3) * (d - want_db / n - xhat * want_dg / n)
    np.testing.assert_allclose(db, want_db, **tol)
    np.testing.assert_allclose(dg, want_dg, **tol)
    np.testing.assert_allclose(dx, want_dx, **tol)
    # Inference: fixed statistics, the same mask.
    scale = (gamma * invstd).astype(dtype)
    _bn.forward_infer(x, scale, (beta - mean * scale).astype(dtype), y, 2, True)
    np.testing.assert_allclose(y, np.maximum(x64 * scale + (beta - mean * scale), 0), **tol)
    _bn.backward_infer(dy, x, mean, invstd, gamma, dx, dg, db, 2, y)
    np.testing.assert_allclose(dx, dy * (y > 0) * gamma * invstd, **tol)


def test_batchnorm_backward_refuses_a_relu_output_of_another_shape():
    x = np.ones((4, 3), np.float32)
    c = np.ones(3, np.float32)
    with pytest.raises(ValueError, match="ReLU output"):
        _bn.backward_train(x, x, c, c, c, np.empty_like(x), None, None, 1, np.ones((4, 2), np.float32))
