"""Bidirectional and TimeDistributed: against the composed layers, and gradients."""
import numpy as np
import pytest
from helpers import backprop

from fastnet import config
from fastnet.layers import GRU, LSTM, Bidirectional, Dense, SimpleRNN, TimeDistributed


@pytest.fixture
def float64():
    config.set_floatx("float64")
    yield
    config.set_floatx("float32")


def _pair(layer, x):
    bi = Bidirectional(layer)
    bi(x)
    f, b = bi.forward_layer, bi.backward_layer
    return bi, f, b


@pytest.mark.parametrize("mode", ["concat", "sum", "mul", "ave", None])
@pytest.mark.parametrize("seq", [False, True])
def test_merge_modes_match_the_two_directions(mode, seq):
    x = np.random.default_rng(0).standard_normal((3, 5, 4)).astype(np.float32)
    bi = Bidirectional(LSTM(3, return_sequences=seq), merge_mode=mode)
    out = bi(x)
    fwd = LSTM(3, return_sequences=seq)
    bwd = LSTM(3, return_sequences=seq, go_backwards=True)
    fwd(x)
    bwd(x)
    w = bi.get_weights()
    assert len(w) == 6
    fwd.set_weights(w[:3])
    bwd.set_weights(w[3:])
    yf, yb = fwd(x), bwd(x)
    if seq:
        yb = yb[:, ::-1]
    want = {"concat": lambda: np.concatenate([yf, yb], -1), "sum": lambda: yf + yb,
            "mul": lambda: yf * yb, "ave": lambda: (yf + yb) / 2, None: lambda: [yf, yb]}[mode]()
    if mode is None:
        for o, wv in zip(out, want):
            np.testing.assert_allclose(o, wv, rtol=1e-6)
    else:
        np.testing.assert_allclose(out, want, rtol=1e-6)
        assert out.shape == bi.compute_output_shape(x.shape)


@pytest.mark.parametrize("mode", ["concat", "sum", "mul", "ave"])
def test_bidirectional_finite_differences(float64, mode):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 4, 3))
    mask = np.array([[1, 1, 1, 0], [1, 1, 1, 1]], bool)
    bi = Bidirectional(GRU(2, return_sequences=True), merge_mode=mode)
    y = bi(x, mask=mask)
    up = rng.standard_normal(y.shape)
    bi(x, mask=mask)
    dx = backprop(bi, up)
    grads = [v.grad.copy() for v in bi.trainable_weights]
    eps = 1e-6
    num = np.zeros_like(x)
    for idx in np.ndindex(*x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += eps
        xm[idx] -= eps
        num[idx] = ((bi(xp, mask=mask) - bi(xm, mask=mask)) * up).sum() / (2 * eps)
    np.testing.assert_allclose(dx, num, rtol=1e-6, atol=1e-8)
    var = bi.trainable_weights[4]   # the backward layer's kernel
    flat = var.value.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        lp = (bi(x, mask=mask) * up).sum()
        flat[i] = old - eps
        lm = (bi(x, mask=mask) * up).sum()
        flat[i] = old
        np.testing.assert_allclose(grads[4].reshape(-1)[i], (lp - lm) / (2 * eps), rtol=1e-6,
                                   atol=1e-8)


def test_bidirectional_return_state_and_masked_outputs_are_zero():
    x = np.random.default_rng(2).standard_normal((2, 4, 3)).astype(np.float32)
    bi = Bidirectional(LSTM(2, return_sequences=True, return_state=True))
    out = bi(x, mask=np.array([[1, 1, 0, 0], [1, 1, 1, 1]], bool))
    assert len(out) == 5 and out[0].shape == (2, 4, 4)
    np.testing.assert_array_equal(out[0][0, 2:], 0)
    assert [o.shape for o in out[1:]] == [(2, 2)] * 4
    dx = backprop(bi, [np.ones_like(out[0]), None, None, np.ones((2, 2), np.float32), None])
    assert dx.shape == x.shape
    assert bi.forward_layer.name.startswith("forward_") and bi.backward_layer.go_backwards
    cfg = bi.get_config()
    again = Bidirectional.from_config(cfg)
    assert again.merge_mode == "concat" and again.backward_layer.go_backwards
    with pytest.raises(ValueError, match="merge_mode"):
        Bidirectional(LSTM(2), merge_mode="max")
    with pytest.raises(ValueError, match="recurrent layer"):
        Bidirectional(Dense(3))


def test_time_distributed_dense():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 6, 5)).astype(np.float32)
    td = TimeDistributed(Dense(3, activation="relu"))
    y = td(x)
    assert y.shape == (4, 6, 3) == td.compute_output_shape((4, 6, 5))
    dense = td.layer
    np.testing.assert_allclose(y, dense(x.reshape(-1, 5)).reshape(4, 6, 3), rtol=1e-6)
    td(x)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = backprop(td, dy)
    z = x.reshape(-1, 5) @ dense.kernel.value + dense.bias.value
    dz = dy.reshape(-1, 3) * (z > 0)
    np.testing.assert_allclose(dx, (dz @ dense.kernel.value.T).reshape(x.shape), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(dense.kernel.grad, x.reshape(-1, 5).T @ dz, rtol=1e-5, atol=1e-5)
    assert len(td.get_weights()) == 2
    with pytest.raises(ValueError, match="timesteps"):
        td(np.zeros((4, 5), np.float32))


def test_time_distributed_after_a_recurrent_layer():
    x = np.random.default_rng(4).standard_normal((2, 7, 3)).astype(np.float32)
    rnn = SimpleRNN(4, return_sequences=True)
    td = TimeDistributed(Dense(2))
    y = td(rnn(x))
    assert y.shape == (2, 7, 2)
    dh = backprop(td, np.ones_like(y))
    assert backprop(rnn, dh).shape == x.shape
