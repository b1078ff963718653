import numpy as np
import pytest
from helpers import backprop, check_layer_gradients

from fastnet import activations, layers
from fastnet.layers import Activation, BatchNormalization, Dense, Dropout, Flatten, LayerNormalization, Reshape

ACTS = sorted(activations._BY_NAME)


def test_tutorial_shapes():
    x = np.random.rand(32, 3, 3, 64).astype(np.float32)
    assert Flatten()(x).shape == (32, 576)
    assert Reshape(target_shape=(3, 3, 64))(np.zeros((32, 576), np.float32)).shape == (32, 3, 3, 64)
    assert Reshape((-1, 4))(np.zeros((2, 3, 8))).shape == (2, 6, 4)
    x = np.random.default_rng(0).standard_normal((5, 3)) * 2 + 1
    y = BatchNormalization()(x, training=True)
    np.testing.assert_allclose(y.mean(axis=0), 0, atol=1e-5)
    # std is sqrt(var / (var + epsilon)): about 1, a little under for epsilon=1e-3.
    np.testing.assert_allclose(y.std(axis=0), 1, atol=0.01)


def test_inputs_of_any_numeric_dtype_and_layout_become_float32():
    d = Dense(2)
    for x in (np.ones((4, 3), np.float64), np.ones((4, 3), np.int32),
              np.asfortranarray(np.ones((4, 3))), np.ones((3, 4)).T, [[1, 2, 3]]):
        out = d(x)
        assert out.dtype == np.float32 and out.flags.c_contiguous


@pytest.mark.parametrize("act", ACTS)
def test_dense_gradients_by_finite_differences(act, float64, rng):
    layer = Dense(4, activation=act, bias_initializer="random_normal")
    x = rng.standard_normal((3, 5))
    if act in ("relu", "relu6", "leaky_relu", "hard_sigmoid", "hard_silu", "hard_swish"):
        layer(x)  # keep pre-activations away from the kinks
        layer.bias.value[...] = 0.37
    check_layer_gradients(layer, x, rtol=1e-5, atol=1e-7)


def test_dense_3d_and_no_bias_gradients(float64, rng):
    check_layer_gradients(Dense(3, activation="tanh"), rng.standard_normal((2, 4, 5)))
    check_layer_gradients(Dense(3, use_bias=False), rng.standard_normal((4, 5)))


@pytest.mark.parametrize("act", ["softmax", "gelu", "elu", "sigmoid", "log_softmax"])
def test_activation_layer_gradients(act, float64, rng):
    check_layer_gradients(Activation(act), rng.standard_normal((3, 2, 5)), rtol=1e-5, atol=1e-7)


def test_reshape_flatten_gradients(float64, rng):
    check_layer_gradients(Flatten(), rng.standard_normal((2, 3, 4)))
    check_layer_gradients(Reshape((4, 3)), rng.standard_normal((2, 12)))
    check_layer_gradients(Flatten(data_format="channels_first"), rng.standard_normal((2, 3, 2, 2)))


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("shape", [(6, 4), (3, 2, 2, 4)])
def test_batchnorm_gradients(training, shape, float64, rng):
    layer = BatchNormalization(beta_initializer="random_normal", gamma_initializer="random_normal",
                               moving_variance_initializer="ones")
    check_layer_gradients(layer, rng.standard_normal(shape) * 2 + 1, training=training,
                          rtol=1e-5, atol=1e-7)


def test_batchnorm_axis_1_and_no_center_scale(float64, rng):
    check_layer_gradients(BatchNormalization(axis=1), rng.standard_normal((5, 3, 4)), training=True,
                          rtol=1e-5, atol=1e-7)
    layer = BatchNormalization(center=False, scale=False)
    check_layer_gradients(layer, rng.standard_normal((6, 3)), training=True, rtol=1e-5, atol=1e-7)
    assert [w.name for w in layer.weights] == ["moving_mean", "moving_variance"]


def test_layernorm_gradients(float64, rng):
    layer = LayerNormalization(beta_initializer="random_normal", gamma_initializer="random_normal")
    check_layer_gradients(layer, rng.standard_normal((3, 4, 5)), rtol=1e-5, atol=1e-7)


def test_dropout_gradients_with_a_fixed_mask(float64, rng, monkeypatch):
    layer = Dropout(0.4)
    monkeypatch.setattr(layer, "_next_seed", lambda: 77)
    check_layer_gradients(layer, rng.standard_normal((5, 6)), training=True)
    layer = Dropout(0.5, noise_shape=(None, 1))
    monkeypatch.setattr(layer, "_next_seed", lambda: 5)
    out = layer(np.ones((4, 6)), training=True)
    assert all(len(set(row)) == 1 for row in out)  # one draw per row, broadcast over columns
    check_layer_gradients(layer, rng.standard_normal((4, 6)), training=True)


def test_dropout_behaviour():
    x = np.ones((1000, 100), np.float32)
    assert Dropout(0.3)(x) is not None
    np.testing.assert_array_equal(Dropout(0.3)(x, training=False), x)
    y = Dropout(0.3, seed=1)(x, training=True)
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.01
    np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)
    a = Dropout(0.3, seed=5)(x, training=True)
    b = Dropout(0.3, seed=5)(x, training=True)
    np.testing.assert_array_equal(a, b)


def test_batchnorm_moving_statistics_update_only_in_training(rng):
    bn = BatchNormalization(momentum=0.9)
    x = (rng.standard_normal((64, 3)) * 2 + 5).astype(np.float32)
    bn(x, training=False)
    np.testing.assert_array_equal(bn.moving_mean.value, 0)
    bn(x, training=True)
    np.testing.assert_allclose(bn.moving_mean.value, 0.1 * x.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(bn.moving_variance.value, 0.9 + 0.1 * x.var(axis=0), rtol=1e-5)


# ---------------------------------------------------------------- bad input

def test_dense_wrong_input_size_names_layer_and_shapes():
    d = Dense(4, name="hidden")
    d(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r'"hidden".*\(None, 3\).*\(2, 5\)'):
        d(np.zeros((2, 5)))


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="units"):
        Dense(0)
    with pytest.raises(ValueError, match="units"):
        Dense(2.5)
    for rate in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError, match=r"rate.*\[0, 1\)"):
            Dropout(rate)
    with pytest.raises(ValueError, match="Unknown activation 'rectified'.*relu"):
        Dense(3, activation="rectified")
    with pytest.raises(ValueError, match="Unknown initializer 'glorot'.*glorot_uniform"):
        Dense(3, kernel_initializer="glorot")
    with pytest.raises(TypeError, match="Unrecognized keyword arguments passed to Dense.*'unit'"):
        Dense(3, unit=4)


def test_reshape_incompatible_size_says_both_sizes():
    with pytest.raises(ValueError, match=r"size 576.*\(3, 3, 65\).*size 585"):
        Reshape((3, 3, 65))(np.zeros((2, 576)))
    with pytest.raises(ValueError, match="not a multiple of 7"):
        Reshape((-1, 7))(np.zeros((2, 576)))
    with pytest.raises(ValueError, match="at most one -1"):
        Reshape((-1, -1))


def test_custom_activation_runs_forward_and_explains_training():
    d = Dense(2, activation=lambda z: z * 2)
    out = d(np.ones((3, 4)))
    assert out.shape == (3, 2)
    with pytest.raises(NotImplementedError, match="no gradient"):
        backprop(d, np.ones((3, 2)))


def test_layer_config_round_trip():
    for layer in (Dense(3, activation="relu", use_bias=False, name="d"), Dropout(0.2, seed=3),
                  Reshape((2, -1)), Flatten(), BatchNormalization(momentum=0.9),
                  Activation("gelu"), LayerNormalization(epsilon=1e-5)):
        cfg = layer.get_config()
        clone = type(layer).from_config(cfg)
        assert clone.get_config() == cfg
    assert layers.deserialize(layers.serialize(Dense(2))).units == 2
    with pytest.raises(ValueError, match="Unknown layer class 'Evil'"):
        layers.deserialize({"class_name": "Evil", "config": {}})


def test_initializers_follow_keras_formulas(rng):
    from fastnet import initializers as I

    w = I.GlorotUniform(seed=1)((300, 200))
    lim = np.sqrt(6 / 500)
    assert w.min() >= -lim and w.max() <= lim and abs(w.std() - lim / np.sqrt(3)) < 0.01 * lim
    w = I.HeNormal(seed=2)((400, 300))
    assert np.abs(w).max() <= 2 * np.sqrt(2 / 400) / 0.87962566103423978 + 1e-6
    assert abs(w.std() - np.sqrt(2 / 400)) < 0.02 * np.sqrt(2 / 400)
    q = I.Orthogonal(seed=3)((6, 4))
    np.testing.assert_allclose(q.T @ q, np.eye(4), atol=1e-5)
    np.testing.assert_array_equal(I.get("zeros")((2, 2)), 0)
    np.testing.assert_array_equal(I.Constant(3)((2,)), [3, 3])
    np.testing.assert_array_equal(I.Identity(2)((2, 3)), [[2, 0, 0], [0, 2, 0]])
    np.testing.assert_array_equal(I.RandomUniform(seed=4)((3,)), I.RandomUniform(seed=4)((3,)))
    assert I.compute_fans((3, 3, 8, 16)) == (72, 144)


def test_orthogonal_runs_its_qr_on_one_blas_thread_and_restores_the_pools(monkeypatch):
    from threadpoolctl import threadpool_info

    from fastnet import config
    from fastnet import initializers as I

    def blas_threads():
        return sorted((i["filepath"], i["num_threads"]) for i in threadpool_info()
                      if i["user_api"] == "blas")

    seen = []
    qr = np.linalg.qr

    def spy(a):
        seen.append([n for _, n in blas_threads()])
        return qr(a)

    prev = config.get_num_threads()
    config.set_num_threads(2)
    try:
        before = blas_threads()
        monkeypatch.setattr(np.linalg, "qr", spy)
        q = I.Orthogonal(seed=1)((40, 24))
        np.testing.assert_allclose(q.T @ q, np.eye(24), atol=1e-5)
        assert seen and all(n == 1 for n in seen[0])  # every pool on one thread inside
        assert blas_threads() == before                # and as before afterwards
        if len(before) > 1:  # numpy's own BLAS follows set_num_threads
            assert any(n == 2 for _, n in before)
    finally:
        config.set_num_threads(prev)


def test_regularizers():
    from fastnet import regularizers as R

    w = np.array([[1.0, -2.0], [0.5, 0.0]], np.float32)
    assert float(R.L1(0.1)(w)) == pytest.approx(0.35)
    assert float(R.L2(0.1)(w)) == pytest.approx(0.525)
    assert float(R.L1L2(0.1, 0.1)(w)) == pytest.approx(0.875)
    np.testing.assert_allclose(R.L2(0.1).gradient(w), 0.2 * w)
    np.testing.assert_allclose(R.L1(0.1).gradient(w), 0.1 * np.sign(w))
    d = Dense(2, kernel_regularizer="l2")
    d(np.ones((1, 3)))
    assert d.losses == [pytest.approx(0.01 * float(np.sum(d.kernel.value ** 2)))]
    with pytest.raises(ValueError, match="Unknown regularizer 'l3'"):
        R.get("l3")


@pytest.mark.parametrize("layer", [Dense(4), layers.LSTM(3)])
def test_calling_a_layer_on_a_symbolic_input_builds_a_node(layer):
    """A layer called on keras.Input returns a symbolic tensor of the output shape and
    records the call as a node; layer.input/output name the call's tensors."""
    inp = layers.Input((5, 3))
    out = layer(inp)
    want = (None, 5, 4) if isinstance(layer, Dense) else (None, 3)
    assert out.shape == want
    assert layer.output is out and layer.input is inp
    assert layer.built and len(layer._inbound_nodes) == 1
