"""SimpleRNN, LSTM and GRU layers: Keras reference cases, finite differences, masking,
statefulness, dropout, shapes, configs and errors."""
import glob
import json
import os

import numpy as np
import pytest
from helpers import backprop

from fastnet import config
from fastnet.layers import GRU, LSTM, RNN, Embedding, GRUCell, LSTMCell, SimpleRNN

HERE = os.path.dirname(os.path.abspath(__file__))
REF = os.path.join(HERE, "..", "data", "keras_reference")
LAYER_CASES = sorted(p for p in glob.glob(os.path.join(REF, "layers", "*.npz"))
                     if os.path.basename(p).split("_")[0] in ("simplernn", "lstm", "gru"))
CLASSES = {"SimpleRNN": SimpleRNN, "LSTM": LSTM, "GRU": GRU}


@pytest.fixture
def float64():
    config.set_floatx("float64")
    yield
    config.set_floatx("float32")


def _load(path):
    d = np.load(path)
    return d, json.loads(str(d["meta"]))


def test_reference_cases_are_present():
    names = {os.path.basename(p)[:-4] for p in LAYER_CASES}
    for want in ("lstm_state", "gru_reset_before", "lstm_no_forget_bias", "simplernn_relu",
                 "gru_backwards", "lstm_backwards", "simplernn_backwards"):
        assert want in names


@pytest.mark.parametrize("path", LAYER_CASES, ids=lambda p: os.path.basename(p)[:-4])
def test_matches_keras(path):
    d, meta = _load(path)
    layer = CLASSES[meta["class_name"]](**meta["config"])
    x = d["x"]
    layer(x)
    layer.set_weights([d[f"w_{i}"] for i in range(meta["n_weights"])])
    y = layer(x)
    ys = y if isinstance(y, list) else [y]
    assert len(ys) == meta["n_outputs"]
    for k in range(meta["n_outputs"]):
        np.testing.assert_allclose(ys[k], d[f"y_infer_{k}"], rtol=1e-4, atol=1e-5)
    ups = [d[f"upstream_infer_{k}"] for k in range(meta["n_outputs"])]
    dx = backprop(layer, ups if meta["n_outputs"] > 1 else ups[0])
    np.testing.assert_allclose(dx, d["dx_infer"], rtol=1e-4, atol=1e-5)
    for i, var in enumerate(layer.trainable_weights):
        np.testing.assert_allclose(var.grad, d[f"dw_infer_{i}"], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("cls", [SimpleRNN, LSTM, GRU])
def test_tutorial_shapes(cls):
    x = np.random.default_rng(0).random((32, 10, 8)).astype(np.float32)
    assert cls(4)(x).shape == (32, 4)
    assert cls(4, return_sequences=True)(x).shape == (32, 10, 4)
    out = cls(4, return_sequences=True, return_state=True)(x)
    assert out[0].shape == (32, 10, 4)
    assert [s.shape for s in out[1:]] == [(32, 4)] * (2 if cls is LSTM else 1)
    np.testing.assert_allclose(out[0][:, -1], out[1], rtol=1e-6)


def test_weight_layouts_and_initialisation():
    x = np.zeros((2, 3, 5), np.float32)
    lstm = LSTM(4)
    lstm(x)
    assert [w.shape for w in lstm.get_weights()] == [(5, 16), (4, 16), (16,)]
    np.testing.assert_array_equal(lstm.get_weights()[2], np.r_[np.zeros(4), np.ones(4), np.zeros(8)])
    r = lstm.get_weights()[1]
    np.testing.assert_allclose(r @ r.T, np.eye(4), atol=1e-5)    # orthogonal rows
    assert [v.name for v in lstm.weights] == ["kernel", "recurrent_kernel", "bias"]
    assert lstm.cell.name == "lstm_cell"
    assert LSTM(4, unit_forget_bias=False)(x) is not None
    gru = GRU(4)
    gru(x)
    assert [w.shape for w in gru.get_weights()] == [(5, 12), (4, 12), (2, 12)]
    gru_b = GRU(4, reset_after=False)
    gru_b(x)
    assert gru_b.get_weights()[2].shape == (12,)
    s = SimpleRNN(4, use_bias=False)
    s(x)
    assert [w.shape for w in s.get_weights()] == [(5, 4), (4, 4)]
    assert s.count_params() == 36


def _loss(layer, x, ups, **kw):
    y = layer(x, **kw)
    ys = y if isinstance(y, list) else [y]
    return sum(float((a * u).sum()) for a, u in zip(ys, ups))


CONFIGS = [
    (SimpleRNN, dict(return_sequences=True)),
    (SimpleRNN, dict(go_backwards=True, return_state=True)),
    (LSTM, dict()),
    (LSTM, dict(return_sequences=True, go_backwards=True, return_state=True)),
    (LSTM, dict(activation="relu", recurrent_activation="hard_sigmoid", return_sequences=True)),
    (GRU, dict(return_sequences=True)),
    (GRU, dict(reset_after=False, return_state=True)),
    (GRU, dict(go_backwards=True, use_bias=False)),
]


@pytest.mark.parametrize("cls,kw", CONFIGS)
@pytest.mark.parametrize("masked", [False, True])
def test_finite_differences(float64, cls, kw, masked):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 5, 4))
    layer = cls(3, **kw)
    mask = None
    if masked:
        mask = np.array([[1, 1, 1, 0, 0], [0, 1, 1, 1, 1], [1, 0, 1, 0, 1]], bool)
    y = layer(x, mask=mask)
    ys = y if isinstance(y, list) else [y]
    ups = [rng.standard_normal(a.shape) for a in ys]
    layer(x, mask=mask)
    dx = backprop(layer, ups if len(ups) > 1 else ups[0])
    grads = [v.grad.copy() for v in layer.trainable_weights]
    eps = 1e-6
    num = np.zeros_like(x)
    for idx in np.ndindex(*x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += eps
        xm[idx] -= eps
        num[idx] = (_loss(layer, xp, ups, mask=mask) - _loss(layer, xm, ups, mask=mask)) / (2 * eps)
    np.testing.assert_allclose(dx, num, rtol=1e-6, atol=1e-8)
    for var, g in zip(layer.trainable_weights, grads):
        flat = var.value.reshape(-1)
        numw = np.zeros(flat.size)
        for i in range(flat.size):
            old = flat[i]
            flat[i] = old + eps
            lp = _loss(layer, x, ups, mask=mask)
            flat[i] = old - eps
            lm = _loss(layer, x, ups, mask=mask)
            flat[i] = old
            numw[i] = (lp - lm) / (2 * eps)
        np.testing.assert_allclose(g.reshape(-1), numw, rtol=1e-6, atol=1e-8, err_msg=var.name)


@pytest.mark.parametrize("cls", [SimpleRNN, LSTM, GRU])
def test_masked_steps_carry_the_state(cls):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 7, 3)).astype(np.float32)
    layer = cls(5, return_sequences=True)
    full = layer(x)
    lengths = [7, 4, 1, 5]
    mask = np.arange(7)[None, :] < np.array(lengths)[:, None]
    y = layer(x, mask=mask)
    for i, n in enumerate(lengths):
        # Post-padded: the valid prefix matches the unmasked run, then the output is held.
        np.testing.assert_allclose(y[i, :n], full[i, :n], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(y[i, n:], np.repeat(y[i, n - 1:n], 7 - n, 0), rtol=1e-6)
    last = cls(5)
    last(x)
    last.set_weights(layer.get_weights())
    np.testing.assert_allclose(last(x, mask=mask), y[:, -1], rtol=1e-6)
    # Pre-padded sequences give the same final state as the unpadded ones.
    short = x[:2, :3]
    pad = np.concatenate([np.zeros((2, 4, 3), np.float32), short], axis=1)
    m = np.concatenate([np.zeros((2, 4), bool), np.ones((2, 3), bool)], axis=1)
    np.testing.assert_allclose(last(pad, mask=m), last(short), rtol=1e-5, atol=1e-6)


def test_embedding_mask_zero_feeds_the_recurrent_layer():
    emb = Embedding(10, 4, mask_zero=True)
    lstm = LSTM(3)
    tokens = np.array([[5, 2, 7, 0, 0], [1, 0, 0, 0, 0]])
    e = emb(tokens)
    mask = emb.compute_mask(tokens)
    np.testing.assert_array_equal(mask, tokens != 0)
    assert LSTM._call_takes_mask
    y = lstm(e, mask=mask)
    np.testing.assert_allclose(y[0], lstm(e[:1, :3])[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y[1], lstm(e[1:, :1])[0], rtol=1e-5, atol=1e-6)
    assert lstm.compute_mask(e, mask) is None
    assert LSTM(3, return_sequences=True).compute_mask(e, mask) is mask


def test_zero_output_for_mask():
    x = np.random.default_rng(3).standard_normal((2, 4, 3)).astype(np.float32)
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1]], bool)
    layer = GRU(2, return_sequences=True, zero_output_for_mask=True)
    y = layer(x, mask=mask)
    np.testing.assert_array_equal(y[0, 2:], 0)
    assert np.all(y[1] != 0)


def test_initial_state():
    x = np.random.default_rng(4).standard_normal((3, 6, 2)).astype(np.float32)
    layer = LSTM(4, return_state=True)
    y1, h1, c1 = layer(x[:, :3])
    y2, h2, c2 = layer(x[:, 3:], initial_state=[h1, c1])
    y, h, c = layer(x)
    np.testing.assert_allclose(h2, h, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c2, c, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="initial state"):
        layer(x, initial_state=[h1])


def test_stateful_needs_a_batch_size_and_carries_states():
    x = np.random.default_rng(5).standard_normal((2, 6, 3)).astype(np.float32)
    layer = GRU(4, stateful=True)
    with pytest.raises(ValueError, match=r"batch_input_shape.*batch_size.*Input\(.*batch_size"):
        layer.build((None, 6, 3))
    layer = GRU(4, stateful=True, batch_input_shape=(2, None, 3))
    ref = GRU(4)
    ref(x)
    layer(x[:, :3])
    layer.set_weights(ref.get_weights())
    layer.reset_states()
    layer(x[:, :3])
    np.testing.assert_allclose(layer(x[:, 3:]), ref(x), rtol=1e-5, atol=1e-6)
    layer.reset_states()
    np.testing.assert_array_equal(layer.states[0], 0)
    np.testing.assert_allclose(layer(x[:, :3]), ref(x[:, :3]), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="batch size 2"):
        layer(np.zeros((3, 2, 3), np.float32))
    # A direct call on data fixes the batch size from the data, as in Keras.
    direct = LSTM(2, stateful=True)
    direct(x)
    assert direct.states[0].shape == (2, 2)


def test_dropout_only_in_training():
    x = np.random.default_rng(6).standard_normal((8, 5, 6)).astype(np.float32)
    layer = LSTM(7, dropout=0.5, recurrent_dropout=0.3, seed=1)
    plain = LSTM(7)
    plain(x)
    layer(x)
    layer.set_weights(plain.get_weights())
    np.testing.assert_allclose(layer(x, training=False), plain(x), rtol=1e-6)
    yt = layer(x, training=True)
    assert not np.allclose(yt, plain(x))
    dx = backprop(layer, np.ones_like(yt))
    assert dx.shape == x.shape and np.all(np.isfinite(dx))
    assert layer.get_config()["dropout"] == 0.5


@pytest.mark.parametrize("cls,kw", [(SimpleRNN, {}), (LSTM, {}), (GRU, {}),
                                    (GRU, {"reset_after": False})])
@pytest.mark.parametrize("rates", [(0.4, 0.4), (0.4, 0.0), (0.0, 0.4)])
def test_dropout_gradients_match_fixed_masks(float64, cls, kw, rates):
    """Training-mode gradients are those of the function with the masks held fixed."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 4, 5))
    layer = cls(3, dropout=rates[0], recurrent_dropout=rates[1], seed=3, return_sequences=True,
                **kw)
    layer(x)
    seed_state = layer.cell._rng.bit_generator.state
    y = layer(x, training=True)
    up = rng.standard_normal(y.shape)
    dx = backprop(layer, up)
    dk = layer.cell.kernel.grad.copy()
    eps = 1e-6
    num = np.zeros_like(x)
    for idx in np.ndindex(*x.shape):
        vals = []
        for sgn in (1, -1):
            xx = x.copy()
            xx[idx] += sgn * eps
            layer.cell._rng.bit_generator.state = seed_state
            vals.append(float((layer(xx, training=True) * up).sum()))
        num[idx] = (vals[0] - vals[1]) / (2 * eps)
    np.testing.assert_allclose(dx, num, rtol=1e-6, atol=1e-8)
    flat = layer.cell.kernel.value.reshape(-1)
    for i in range(0, flat.size, 7):
        vals = []
        for sgn in (1, -1):
            old = flat[i]
            flat[i] = old + sgn * eps
            layer.cell._rng.bit_generator.state = seed_state
            vals.append(float((layer(x, training=True) * up).sum()))
            flat[i] = old
        np.testing.assert_allclose(dk.reshape(-1)[i], (vals[0] - vals[1]) / (2 * eps), rtol=1e-6,
                                   atol=1e-8)


def test_recurrent_dropout_draws_one_mask_per_gate():
    x = np.ones((4, 3, 6), np.float32)
    layer = LSTM(5, dropout=0.5, recurrent_dropout=0.5, seed=0)
    layer(x, training=True)
    assert layer._last_ctx.rec["rmask"].shape == (4, 4, 5)
    assert layer._last_ctx.rec["in_keep_g"].shape == (4, 4, 6)
    assert not np.array_equal(layer._last_ctx.rec["rmask"][0], layer._last_ctx.rec["rmask"][1])
    only_input = GRU(5, dropout=0.5, seed=0)
    only_input(x, training=True)
    assert only_input._last_ctx.rec["in_keep"].shape == (4, 6) and only_input._last_ctx.rec["rmask"] is None


def test_bad_inputs_are_reported():
    with pytest.raises(ValueError, match=r"expects input of shape \(batch, timesteps, features\)"):
        LSTM(4)(np.zeros((32, 8), np.float32))
    layer = GRU(4)
    layer(np.zeros((2, 3, 5), np.float32))
    with pytest.raises(ValueError, match="5"):
        layer(np.zeros((2, 3, 6), np.float32))
    with pytest.raises(ValueError, match="units"):
        LSTM(0)
    with pytest.raises(ValueError, match="recurrent_activation"):
        LSTM(3, recurrent_activation=lambda z: z)
    with pytest.raises(ValueError, match="mask"):
        layer(np.zeros((2, 3, 5), np.float32), mask=np.ones((2, 4), bool))
    with pytest.raises(TypeError, match="Unrecognized"):
        LSTM(3, not_an_arg=1)


def test_config_round_trip_and_keras_keys():
    import zipfile
    layer = LSTM(5, return_sequences=True, dropout=0.1, name="lstm_x")
    cfg = layer.get_config()
    again = LSTM.from_config(cfg)
    assert again.get_config() == cfg
    path = os.path.join(REF, "saved", "lstm_small.keras")
    with zipfile.ZipFile(path) as z:
        keras_cfg = json.loads(z.read("config.json"))["config"]["layers"]
    for entry in keras_cfg:
        if entry["class_name"] in CLASSES:
            kc = entry["config"]
            # (Initializer configs are the initializers' business: keys only here.)
            ours = CLASSES[entry["class_name"]](**{k: v for k, v in kc.items()
                                                   if k != "dtype" and "initializer" not in k}
                                                ).get_config()
            assert set(kc) <= set(ours) | {"dtype"}, set(kc) - set(ours)
    gru = GRU.from_config(GRU(3, reset_after=False).get_config())
    assert gru.reset_after is False
    rnn = RNN(GRUCell(3), return_sequences=True)
    assert RNN.from_config(rnn.get_config()).cell.units == 3


def test_rnn_wrapper_equals_builtin_layer():
    x = np.random.default_rng(8).standard_normal((2, 4, 3)).astype(np.float32)
    a = RNN(LSTMCell(4), return_sequences=True)
    b = LSTM(4, return_sequences=True)
    b(x)
    a(x)
    a.set_weights(b.get_weights())
    np.testing.assert_allclose(a(x), b(x), rtol=1e-6)
    with pytest.raises(ValueError, match="compiled cells"):
        RNN(object())


def test_trainable_false_skips_weight_gradients():
    x = np.random.default_rng(9).standard_normal((2, 4, 3)).astype(np.float32)
    layer = SimpleRNN(3, trainable=False)
    y = layer(x)
    backprop(layer, np.ones_like(y))
    assert all(v.grad is None for v in layer.weights)
    assert layer.trainable_weights == []


@pytest.mark.parametrize("cls,kw", [(SimpleRNN, {}), (LSTM, {}), (GRU, {}),
                                    (GRU, {"reset_after": False}),
                                    (LSTM, {"recurrent_dropout": 0.3, "seed": 1})])
def test_model_loop_buffers_give_the_same_results(cls, kw):
    """Inside a model loop (reused buffers, reused packing room) results are unchanged."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((6, 5, 4)).astype(np.float32)
    up = rng.standard_normal((6, 5, 7)).astype(np.float32)
    layer = cls(7, return_sequences=True, **kw)
    layer(x)
    results = []
    for reuse in (False, True, True):
        layer._reuse = reuse
        if layer.cell._rng is not None:
            layer.cell._rng = np.random.default_rng(5)
        y = layer(x, training=True).copy()
        dx = backprop(layer, up).copy()
        results.append((y, dx, [v.grad.copy() for v in layer.trainable_weights]))
    for y, dx, grads in results[1:]:
        np.testing.assert_allclose(y, results[0][0], rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(dx, results[0][1], rtol=1e-6, atol=1e-7)
        for g, g0 in zip(grads, results[0][2]):
            np.testing.assert_allclose(g, g0, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("cls,kw", [(SimpleRNN, {}), (LSTM, {}), (GRU, {}),
                                    (LSTM, {"activation": "relu"}), (LSTM, {"use_bias": False})])
@pytest.mark.parametrize("masked", [False, True])
def test_inference_path_matches_training_forward(cls, kw, masked):
    """Predict (nothing recorded for backward) takes a leaner path: same outputs."""
    rng = np.random.default_rng(12)
    x = rng.standard_normal((20, 9, 6)).astype(np.float32)
    mask = (rng.random((20, 9)) > 0.3) if masked else None
    layer = cls(10, return_sequences=True, return_state=True, **kw)
    want = [o.copy() for o in layer(x, mask=mask)]
    layer._record, layer._reuse = False, True
    got = layer(x, mask=mask)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
