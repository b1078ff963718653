"""The recording machinery: tapes, traced values, Variables as leaves, nesting, threads."""
import threading

import numpy as np
import pytest

from fastnet import ops
from fastnet.backend import Variable
from fastnet.ops import autodiff


def test_eager_ops_return_numpy_arrays_with_keras_dtypes():
    x32 = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert type(ops.add(x32, 1.0)) is np.ndarray
    assert ops.add(x32, 1.0).dtype == np.float32
    assert ops.multiply(x32, np.float64(2.0)).dtype == np.float32   # numpy scalars are weak
    assert ops.add(np.arange(3), 1.5).dtype == np.float32            # int array + float -> floatx
    assert ops.add(np.arange(3, dtype=np.int32), np.ones(3, np.float64)).dtype == np.float64
    assert ops.mean(np.arange(4)).dtype == np.float32
    assert ops.exp(np.arange(3)).dtype == np.float32
    assert ops.convert_to_tensor(1.0).dtype == np.float32
    assert ops.convert_to_tensor([1, 2]).dtype == np.int32
    assert ops.convert_to_tensor(np.ones(2)).dtype == np.float64      # arrays keep their dtype
    assert ops.ones((2,)).dtype == np.float32 and ops.arange(3).dtype == np.int32
    assert ops.divide(np.arange(3), 2).dtype == np.float32
    np.testing.assert_array_equal(ops.matmul(x32, x32.T), x32 @ x32.T)
    np.testing.assert_allclose(ops.logsumexp(x32, axis=1), np.log(np.exp(x32).sum(1)), rtol=1e-6)
    assert ops.shape(x32) == (2, 3) and ops.convert_to_numpy(x32) is not x32


def test_eager_values_match_numpy():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 4))
    b = rng.normal(size=(4, 5))
    np.testing.assert_allclose(ops.einsum("ij,jk->ik", a, b), a @ b)
    np.testing.assert_allclose(ops.tensordot(a, b, axes=1), a @ b)
    np.testing.assert_allclose(ops.var(a, axis=0), np.var(a, axis=0))
    np.testing.assert_allclose(ops.std(a), np.std(a))
    np.testing.assert_allclose(ops.prod(a, axis=1), np.prod(a, axis=1))
    np.testing.assert_array_equal(ops.take_along_axis(a, np.array([[1], [0], [3]]), axis=1),
                                  np.take_along_axis(a, np.array([[1], [0], [3]]), axis=1))
    np.testing.assert_array_equal(ops.repeat(a, 2, axis=1), np.repeat(a, 2, axis=1))
    np.testing.assert_array_equal(ops.tile(a, 2), np.tile(a, 2))
    np.testing.assert_array_equal(ops.pad(a, 1), np.pad(a, 1))
    np.testing.assert_array_equal(ops.split(a, [1, 3], axis=1)[1], np.split(a, [1, 3], axis=1)[1])
    np.testing.assert_allclose(ops.softmax(a), np.exp(a) / np.exp(a).sum(-1, keepdims=True))
    np.testing.assert_allclose(ops.cumsum(a, axis=0), np.cumsum(a, axis=0))
    np.testing.assert_array_equal(ops.one_hot(np.array([0, 2]), 3), np.eye(3, dtype=np.float32)[[0, 2]])
    np.testing.assert_array_equal(ops.argmax(a, axis=1), np.argmax(a, axis=1))
    np.testing.assert_allclose(ops.norm(a, axis=1), np.linalg.norm(a, axis=1))
    assert ops.while_loop(lambda i: i < 10, lambda i: i + 1, 0) == 10
    assert ops.while_loop(lambda x, y: x < 10, lambda x, y: (x + 1, y + 1), (0, 1)) == (10, 11)
    assert ops.fori_loop(0, 4, lambda i, v: v + i, 0) == 6
    assert ops.cond(True, lambda: 1, lambda: 2) == 1


def _dense_loss(x, w, b):
    return ops.sum(ops.square(ops.relu(x @ w + b)))


def test_variables_become_leaves_and_get_gradients():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5, 3))
    w = Variable(rng.normal(size=(3, 2)))
    b = Variable(rng.normal(size=(2,)))
    unused = Variable(np.ones(2))
    tape = autodiff.Tape()
    with tape:
        tx = tape.watch(x)
        loss = _dense_loss(tx, w, b)
    assert isinstance(loss, autodiff.Tracer)
    assert tape.watched_variables == [w, b]
    (gx,), (gw, gb, gu) = tape.gradient(loss, 1.0, inputs=[tx], variables=[w, b, unused])
    h = x @ w.value + b.value
    dh = 2 * np.maximum(h, 0) * (h > 0)
    np.testing.assert_allclose(gw, x.T @ dh)
    np.testing.assert_allclose(gb, dh.sum(0))
    np.testing.assert_allclose(gx, dh @ w.value.T)
    np.testing.assert_array_equal(gu, np.zeros(2))
    _, (gu,) = tape.gradient(loss, 1.0, variables=[unused], unconnected="none")
    assert gu is None
    # outside a tape the same code is eager
    assert type(_dense_loss(x, w, b)) is np.ndarray


def test_variable_operators_and_numpy_left_operands():
    v = Variable(np.array([1.0, 2.0], np.float32))
    assert type(v + 1) is np.ndarray and (v * 2).dtype == np.float32
    np.testing.assert_array_equal(np.ones(2, np.float32) - v, [0.0, -1.0])
    tape = autodiff.Tape()
    with tape:
        y = ops.sum(np.array([3.0, 5.0], np.float32) * v)   # ndarray on the left: recorded through v
    _, (g,) = tape.gradient(y, 1.0, variables=[v])
    np.testing.assert_array_equal(g, [3.0, 5.0])
    v.assign_add(np.array([1.0, 1.0]))
    v.assign_sub(0.5)
    np.testing.assert_array_equal(v.value, [1.5, 2.5])


def test_stop_gradient_cuts_the_tape():
    x = np.array([1.0, 2.0])
    tape = autodiff.Tape()
    with tape:
        tx = tape.watch(x)
        y = ops.sum(tx * ops.stop_gradient(tx * 3))
    (g,), _ = tape.gradient(y, 1.0, inputs=[tx])
    np.testing.assert_array_equal(g, 3 * x)


def test_tracer_behaves_like_an_array():
    tape = autodiff.Tape()
    with tape:
        t = tape.watch(np.arange(6.0).reshape(3, 2))
        assert t.shape == (3, 2) and t.ndim == 2 and t.dtype == np.float64 and len(t) == 3
        rows = list(t)
        assert len(rows) == 3 and isinstance(rows[0], autodiff.Tracer)
        assert bool(ops.sum(t) > 1)                      # concrete values: Python control flow works
        np.testing.assert_array_equal(np.asarray(t), np.arange(6.0).reshape(3, 2))
        assert isinstance(t.T, autodiff.Tracer) and t.T.shape == (2, 3)
        y = (t[1:] ** 2).sum() + t.mean(axis=0).max()
        with pytest.raises(TypeError, match="immutable"):
            t[0] = 1.0
        with pytest.raises(TypeError, match="fastnet.ops"):
            np.fft.fft(t)
    (g,), _ = tape.gradient(y, 1.0, inputs=[t])
    np.testing.assert_allclose(g, [[0, 1 / 3], [4, 6 + 1 / 3], [8, 10 + 1 / 3]])


def test_integer_inputs_and_multiple_outputs():
    tape = autodiff.Tape()
    with tape:
        ti = tape.watch(np.array([1, 2]))
        tf = tape.watch(np.array([1.0, 2.0]))
        a, b = ops.split(tf, 2)
    gi, gf = tape.gradient([a, b], [np.array([2.0]), None], inputs=[ti, tf])[0]
    assert gi is None
    np.testing.assert_array_equal(gf, [2.0, 0.0])


def test_nested_tapes_record_on_the_owner():
    x = np.array([1.0, 2.0])
    outer = autodiff.Tape()
    with outer:
        tx = outer.watch(x)
        inner = autodiff.Tape()
        with inner:
            tz = inner.watch(np.array([3.0, 4.0]))
            y = ops.sum(tx * tx)            # only outer values: recorded on the outer tape
            w = ops.sum(tz * tx)            # both: recorded on the inner tape (tx is a constant there)
        (gz,), _ = inner.gradient(w, 1.0, inputs=[tz])
    (gx,), _ = outer.gradient(y, 1.0, inputs=[tx])
    np.testing.assert_array_equal(gz, x)
    np.testing.assert_array_equal(gx, 2 * x)


def test_recording_is_per_thread():
    tape = autodiff.Tape()
    seen = {}

    def other():
        v = Variable(np.ones(2))
        seen["type"] = type(v * 2)

    with tape:
        th = threading.Thread(target=other)
        th.start()
        th.join()
    assert seen["type"] is np.ndarray


def test_gradient_can_be_called_twice_and_released():
    tape = autodiff.Tape()
    with tape:
        t = tape.watch(np.array([2.0]))
        y = t * t
    (g1,), _ = tape.gradient(y, 1.0, inputs=[t])
    (g2,), _ = tape.gradient(y, np.array([3.0]), inputs=[t])
    assert g1[0] == 4.0 and g2[0] == 12.0
    once = autodiff.Tape(persistent=False)
    with once:
        t = once.watch(np.array([2.0]))
        y = t * t
    once.gradient(y, 1.0, inputs=[t])
    assert once._nodes == []


def test_record_api_wraps_a_hand_written_op():
    w = Variable(np.array([[1.0, 2.0], [3.0, 4.0]]))

    def op(x):
        xv, wv = autodiff.value_of(x), w.value
        return autodiff.record(xv @ wv, [x, w], lambda g: (g @ wv.T, xv.T @ g))

    x = np.array([[1.0, -1.0]])
    assert type(op(x)) is np.ndarray
    tape = autodiff.Tape()
    with tape:
        tx = tape.watch(x)
        y = ops.sum(op(tx) * 2)
    (gx,), (gw,) = tape.gradient(y, 1.0, inputs=[tx], variables=[w])
    np.testing.assert_array_equal(gx, 2 * np.ones((1, 2)) @ w.value.T)
    np.testing.assert_array_equal(gw, x.T @ (2 * np.ones((1, 2))))


def test_tape_keeps_only_what_vjps_need():
    """add keeps shapes only; its inputs are not held by the tape."""
    import gc
    import weakref

    class Arr(np.ndarray):
        pass

    tape = autodiff.Tape()
    with tape:
        t = tape.watch(np.ones(3))
        c = np.ones(3).view(Arr)
        ref = weakref.ref(c)
        y = t + c
        del c
    gc.collect()
    assert ref() is None
    assert isinstance(y, autodiff.Tracer)


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="padding"):
        ops.conv(np.ones((1, 4, 4, 1)), np.ones((2, 2, 1, 1)), padding="full")
    with pytest.raises(ValueError, match="same shape"):
        ops.binary_crossentropy(np.ones((2, 1)), np.ones((2,)))
    with pytest.raises(ValueError, match="unconnected"):
        autodiff.Tape().gradient(None, None, unconnected="nan")


def test_call_recorded_gives_input_and_variable_gradients():
    w = Variable(np.array([[1.0, 2.0], [3.0, 4.0]]))

    def fn(inputs, scale):
        a, b = inputs
        return ops.tanh(a @ w) * b * scale

    a = np.array([[0.1, -0.2]])
    b = np.array([[2.0, 3.0]])
    out, rec = autodiff.call_recorded(fn, [a, b], scale=0.5)
    assert type(out) is np.ndarray
    np.testing.assert_allclose(out, np.tanh(a @ w.value) * b * 0.5)
    (da, db), (dw,) = rec.backward(np.ones((1, 2)), variables=[w])
    d = (1 - np.tanh(a @ w.value) ** 2) * b * 0.5
    np.testing.assert_allclose(da, d @ w.value.T)
    np.testing.assert_allclose(db, np.tanh(a @ w.value) * 0.5)
    np.testing.assert_allclose(dw, a.T @ d)
    _, rec = autodiff.call_recorded(fn, [a, b], scale=0.5)
    (da, db), (dw,) = rec.backward(np.ones((1, 2)), variables=[w], need_dx=False)
    assert da is None and db is None and dw.shape == (2, 2)


def test_record_layer_mixes_a_hand_written_backward_into_a_recording(float64):
    """A built-in layer (compiled forward/backward) inside code recorded with ops."""
    from fastnet import layers

    rng = np.random.default_rng(4)
    x = rng.normal(size=(5, 3))
    dense = layers.Dense(4, activation="tanh")
    dense(x)
    scale = Variable(np.array([0.5, -1.0, 2.0, 1.5]))

    def run(tx):
        out = dense(autodiff.value_of(tx), training=True)
        ctx = dense._last_ctx
        y = autodiff.record_layer(lambda g: dense.backward(ctx, g), [tx], out, dense.trainable_weights)
        return ops.sum(ops.square(y * scale))

    tape = autodiff.Tape()
    with tape:
        tx = tape.watch(x)
        loss = run(tx)
    (gx,), (gk, gb, gs) = tape.gradient(loss, 1.0, inputs=[tx], variables=dense.trainable_weights + [scale])
    k, b = dense.kernel.value, dense.bias.value
    h = np.tanh(x @ k + b)
    dh = 2 * h * scale.value ** 2 * (1 - h * h)
    np.testing.assert_allclose(gx, dh @ k.T, rtol=1e-10)
    np.testing.assert_allclose(gk, x.T @ dh, rtol=1e-10)
    np.testing.assert_allclose(gb, dh.sum(0), rtol=1e-10)
    np.testing.assert_allclose(gs, 2 * (h * h).sum(0) * scale.value, rtol=1e-10)


def test_matmul_with_a_constant_keeps_only_the_other_operand():
    """x @ W with x constant: dW needs x, and nothing keeps W for a dx nobody wants."""
    x = np.ones((2, 3))
    w = Variable(np.ones((3, 4)))
    tape = autodiff.Tape()
    with tape:
        y = ops.matmul(x, w)
    a, b, _, _ = tape._nodes[-1][3]
    assert a is x and b is None
    _, (gw,) = tape.gradient(y, np.ones((2, 4)), variables=[w])
    np.testing.assert_array_equal(gw, np.full((3, 4), 2.0))


def test_symbolic_dispatch_hands_ops_on_symbolic_values_to_the_engine():
    class Sym:
        def __init__(self, shape):
            self.shape = shape

    seen = []

    def handler(fn, args, kwargs):
        seen.append((fn.__name__, kwargs))
        return Sym(("derived",))

    try:
        ops.set_symbolic_dispatch(lambda v: isinstance(v, Sym), handler)
        out = ops.relu(Sym((None, 3)))
        assert isinstance(out, Sym) and seen == [("relu", {})]
        ops.concatenate([np.ones(2), Sym((2,))], axis=0)
        ops.nn.softmax(Sym((None, 2)), axis=-1)
        assert [s[0] for s in seen] == ["relu", "concatenate", "softmax"]
        # arrays and traced values are unaffected
        np.testing.assert_array_equal(ops.relu(np.array([-1.0, 2.0])), [0.0, 2.0])
        tape = autodiff.Tape()
        with tape:
            t = tape.watch(np.array([1.0, -1.0]))
            y = ops.sum(ops.relu(t))
        assert tape.gradient(y, 1.0, inputs=[t])[0][0].tolist() == [1.0, 0.0]
    finally:
        ops.set_symbolic_dispatch(None, None)
        assert not hasattr(ops.relu, "__wrapped_op__")
        from fastnet.layers import op_layer

        op_layer.install()  # fastnet's own dispatch (ops on keras.Input tensors)
    assert hasattr(ops.relu, "__wrapped_op__")
