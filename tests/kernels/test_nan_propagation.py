"""A NaN in the data propagates through every activation and pooling kernel, forward
and backward, in float32 and float64, as ``np.maximum`` propagates it: the loss shows
it and TerminateOnNaN stops training, instead of the NaN vanishing into a zero."""
import numpy as np
import pytest

from fastnet import activations, callbacks, layers
from fastnet._kernels import _activations as K
from fastnet._kernels import pooling as P
from fastnet.models import Sequential
from fastnet.utils.shape_utils import pool_geometry

CODES = dict(activations._CODES)
ROWWISE = {"softmax", "log_softmax"}
DTYPES = [np.float32, np.float64]


def _data(dt, shape=(6, 40), nan_at=((0, 3), (2, 0), (2, 39), (5, 17))):
    rng = np.random.default_rng(3)
    # Values on both sides of every threshold the kernels test (0, +-3, 1, 6, ...).
    x = rng.uniform(-8, 8, size=shape).astype(dt)
    mask = np.zeros(shape, bool)
    for i in nan_at:
        mask[i] = True
    x[mask] = np.nan
    return x, mask


def _alpha(name):
    return {"elu": 1.3, "leaky_relu": 0.2}.get(name, 0.0)


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("name", sorted(CODES))
def test_forward_keeps_nan_and_nothing_else_changes(name, dt):
    x, mask = _data(dt)
    clean = np.where(mask, dt(0.5), x)
    y = np.empty_like(x)
    y_clean = np.empty_like(x)
    K.forward(CODES[name], x, y, _alpha(name), 1)
    K.forward(CODES[name], clean, y_clean, _alpha(name), 1)
    expected_nan = np.repeat(mask.any(axis=1, keepdims=True), x.shape[1], 1) if name in ROWWISE else mask
    np.testing.assert_array_equal(np.isnan(y), expected_nan, err_msg=name)
    np.testing.assert_array_equal(y[~expected_nan], y_clean[~expected_nan], err_msg=name)


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("name", sorted(set(CODES) - {"linear"}))
def test_gradient_is_nan_where_the_input_is(name, dt):
    """With a finite upstream gradient, the derivative at a NaN input is NaN (not 0):
    ``linear`` is left out, its derivative is 1 whatever the input."""
    x, mask = _data(dt)
    y = np.empty_like(x)
    K.forward(CODES[name], x, y, _alpha(name), 1)
    dy = np.random.default_rng(4).normal(size=x.shape).astype(dt)
    dz = np.empty_like(x)
    K.backward(CODES[name], dy, y, x, dz, _alpha(name), 1)
    expected_nan = np.repeat(mask.any(axis=1, keepdims=True), x.shape[1], 1) if name in ROWWISE else mask
    np.testing.assert_array_equal(np.isnan(dz), expected_nan, err_msg=name)


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("n_threads", [1, 2])
def test_large_arrays_take_the_threaded_path(dt, n_threads):
    x, mask = _data(dt, shape=(300, 256), nan_at=((0, 0), (150, 100), (299, 255)))
    for name in ("relu", "relu6", "hard_sigmoid", "leaky_relu"):
        y = np.empty_like(x)
        K.forward(CODES[name], x, y, _alpha(name), n_threads)
        np.testing.assert_array_equal(np.isnan(y), mask, err_msg=name)
        dz = np.empty_like(x)
        K.backward(CODES[name], np.ones_like(x), y, x, dz, _alpha(name), n_threads)
        np.testing.assert_array_equal(np.isnan(dz), mask, err_msg=name)


@pytest.mark.parametrize("name", ["relu", "elu", "selu", "gelu", "softplus", "leaky_relu", "relu6",
                                  "hard_sigmoid", "softmax"])
def test_public_activations_keep_nan(name):
    x = np.array([[-2.0, np.nan, 3.0]], np.float32)
    y = activations.get(name)(x)
    assert np.isnan(y[0, 1])


# ----------------------------------------------------------------------------- fused in layers
@pytest.mark.parametrize("dt", DTYPES)
def test_conv_fused_relu_keeps_nan_forward_and_backward(dt):
    """Conv2D fuses its bias and ReLU: the NaN pixel's outputs are NaN, and so is the
    gradient reaching the NaN input."""
    x = np.random.default_rng(5).normal(size=(2, 6, 6, 3)).astype(dt)
    x[1, 2, 3, 1] = np.nan
    layer = layers.Conv2D(4, 1, activation="relu", dtype=np.dtype(dt).name)
    y = layer(x, training=True)
    assert y.dtype == dt
    expected = np.zeros(y.shape, bool)
    expected[1, 2, 3, :] = True
    np.testing.assert_array_equal(np.isnan(y), expected)
    dx = layer.backward(layer._last_ctx, np.ones_like(y))
    assert np.isnan(dx[1, 2, 3]).all()
    assert np.isfinite(np.delete(dx.reshape(-1, 3), 1 * 36 + 2 * 6 + 3, axis=0)).all()
    assert np.isnan(layer.kernel.grad).any()  # the NaN reaches the weights' gradient


# ----------------------------------------------------------------------------- pooling
def _max_pool_ref(x, g):
    """Windowed max with np.max (which propagates NaN); padding taps ignored."""
    n, h, w, c = x.shape
    y = np.empty((n, g.oh, g.ow, c), x.dtype)
    for oy in range(g.oh):
        for ox in range(g.ow):
            a, b = oy * g.sh - g.pad_top, ox * g.sw - g.pad_left
            win = x[:, max(a, 0):min(a + g.kh, h), max(b, 0):min(b + g.kw, w)]
            y[:, oy, ox] = win.max(axis=(1, 2))
    return y


POOLS = [((8, 8), (2, 2), (2, 2), "valid"),   # the 2x2 fast path
         ((7, 8), (3, 3), (1, 1), "same"),    # the general path, overlapping windows
         ((7, 5), (2, 2), (2, 2), "same")]


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("case", POOLS)
@pytest.mark.parametrize("position", ["first", "later", "last"])
def test_max_pool_nan_in_a_window_gives_nan(dt, case, position):
    spatial, pool, strides, padding = case
    g = pool_geometry(spatial, pool, strides, padding)
    x = np.random.default_rng(6).normal(size=(2, *spatial, 3)).astype(dt)
    where = {"first": (0, 0, 0, 1), "later": (1, 3, 2, 0), "last": (1, spatial[0] - 1, spatial[1] - 1, 2)}
    x[where[position]] = np.nan
    x[0, 4, 4, 2] = np.nan  # a second NaN
    y = np.empty((2, g.oh, g.ow, 3), dt)
    arg = np.empty(y.shape, np.int32)
    P.max_forward(x, y, arg, g, 1)
    ref = _max_pool_ref(x, g)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(ref))
    np.testing.assert_array_equal(y[~np.isnan(ref)], ref[~np.isnan(ref)])
    # The recorded position of a NaN maximum is a NaN tap.
    n_i, oy, ox, c = np.nonzero(np.isnan(y))
    flat = x.reshape(2, -1, 3)
    assert np.isnan(flat[n_i, arg[n_i, oy, ox, c], c]).all()
    # Backward: dy goes to that tap; with relu_of (a ReLU before the pool), a NaN
    # output keeps a NaN derivative instead of dropping dy.
    dy = np.ones_like(y)
    dx = np.empty_like(x)
    P.max_backward(dy, arg, dx, 1, g, None)
    assert (dx[np.isnan(x)] >= 0).all() and dx[np.isnan(x)].sum() >= 1
    P.max_backward(dy, arg, dx, 1, g, y)
    assert np.isnan(dx).any()
    assert {tuple(i) for i in np.argwhere(np.isnan(dx))} <= {
        tuple(i) for i in np.argwhere(np.isnan(x))} | _two_by_two_taps(np.isnan(x), g)


def _two_by_two_taps(nan_mask, g):
    """The 2x2 fast path writes a window's four taps with one product each: a NaN
    derivative lands on all four taps of its window."""
    out = set()
    if (g.kh, g.kw, g.sh, g.sw) != (2, 2, 2, 2):
        return out
    for n, iy, ix, c in np.argwhere(nan_mask):
        y0, x0 = iy - iy % 2, ix - ix % 2
        out |= {(n, y0 + a, x0 + b, c) for a in (0, 1) for b in (0, 1)}
    return out


@pytest.mark.parametrize("dt", DTYPES)
def test_global_max_pool_keeps_nan(dt):
    x = np.random.default_rng(7).normal(size=(3, 10, 4)).astype(dt)
    x[0, 0, 0] = np.nan
    x[1, 7, 2] = np.nan
    x[2, 9, 3] = np.nan
    y = np.empty((3, 4), dt)
    arg = np.empty((3, 4), np.int32)
    P.global_max_forward(x, y, arg, 1)
    ref = x.max(axis=1)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(ref))
    np.testing.assert_array_equal(y[~np.isnan(ref)], ref[~np.isnan(ref)])
    assert arg[0, 0] == 0 and arg[1, 2] == 7 and arg[2, 3] == 9


# ----------------------------------------------------------------------------- training
def _fit(model, x, y):
    model.compile(optimizer="sgd", loss="mse")
    stop = callbacks.TerminateOnNaN()
    history = model.fit(x, y, batch_size=4, epochs=3, verbose=0, callbacks=[stop])
    return history


def test_one_nan_in_x_makes_the_loss_nan_and_terminate_on_nan_stops():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(16, 5)).astype(np.float32)
    y = rng.normal(size=(16, 1)).astype(np.float32)
    x[6, 2] = np.nan  # second batch
    model = Sequential([layers.Input(shape=(5,)), layers.Dense(8, activation="relu"), layers.Dense(1)])
    history = _fit(model, x, y)
    assert model.stop_training
    assert len(history.history["loss"]) == 1  # stopped in the first epoch
    assert np.isnan(history.history["loss"][0])


def test_nan_through_conv_relu_and_max_pool_stops_training():
    rng = np.random.default_rng(9)
    x = rng.normal(size=(8, 6, 6, 2)).astype(np.float32)
    y = rng.normal(size=(8, 1)).astype(np.float32)
    x[1, 4, 4, 0] = np.nan
    model = Sequential([layers.Input(shape=(6, 6, 2)), layers.Conv2D(4, 3, padding="same", activation="relu"),
                        layers.MaxPooling2D(2), layers.Flatten(), layers.Dense(1)])
    history = _fit(model, x, y)
    assert model.stop_training and len(history.history["loss"]) == 1
    assert np.isnan(history.history["loss"][0])
