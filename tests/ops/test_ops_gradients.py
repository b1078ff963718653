"""Finite-difference checks (float64) of every differentiable op's recorded gradient.

Each entry of OPS is (name, function of the traced inputs, input arrays). The test
records ``sum(f(*inputs) * u)`` for a fixed random ``u`` on a tape and compares the
tape's gradient of every input with central differences of the same expression
evaluated eagerly on numpy arrays.
"""
import numpy as np
import pytest
from helpers import numeric_grad

from fastnet import ops
from fastnet.ops import autodiff

R = np.random.default_rng(1234)


def _r(*shape, lo=-1.0, hi=1.0):
    return R.uniform(lo, hi, shape)


def _pos(*shape):
    return R.uniform(0.5, 2.0, shape)


def _distinct(*shape):
    # well-separated values: no ties for max/min/sort/pooling
    n = int(np.prod(shape))
    return (R.permutation(n).reshape(shape) * 0.37 - n * 0.15).astype(np.float64)


IDX = np.array([[0, 2], [1, 1], [3, 0]])

OPS = [
    # arithmetic
    ("add", lambda a, b: a + b, [_r(3, 4), _r(4)]),
    ("subtract", lambda a, b: ops.subtract(a, b), [_r(3, 1), _r(1, 4)]),
    ("multiply", lambda a, b: a * b, [_r(2, 3), _r(2, 3)]),
    ("divide", lambda a, b: a / b, [_r(2, 3), _pos(3)]),
    ("rtruediv", lambda a: 2.0 / a, [_pos(3, 2)]),
    ("power", lambda a, b: ops.power(a, b), [_pos(2, 3), _r(2, 3)]),
    ("pow_scalar", lambda a: a ** 3, [_r(5)]),
    ("negative", lambda a: -a, [_r(4)]),
    ("maximum", lambda a, b: ops.maximum(a, b), [_distinct(3, 4), _distinct(3, 4) + 0.1]),
    ("minimum", lambda a, b: ops.minimum(a, b), [_distinct(3, 4), _distinct(4) + 0.1]),
    ("mod", lambda a, b: ops.mod(a, b), [_pos(6) * 3 + 0.05, np.full(6, 0.7)]),
    ("arctan2", lambda a, b: ops.arctan2(a, b), [_r(5), _pos(5)]),
    ("logaddexp", lambda a, b: ops.logaddexp(a, b), [_r(5), _r(5)]),
    ("divide_no_nan", lambda a, b: ops.divide_no_nan(a, b), [_r(4), _pos(4)]),
    ("where", lambda a, b: ops.where(np.array([True, False, True]), a, b), [_r(2, 3), _r(3)]),
    ("clip", lambda a: ops.clip(a, -0.5, 0.5), [_distinct(12) / 20]),
    # products
    ("matmul_2d", lambda a, b: a @ b, [_r(3, 4), _r(4, 2)]),
    ("matmul_batched", lambda a, b: ops.matmul(a, b), [_r(2, 3, 4), _r(4, 5)]),
    ("matmul_vec_left", lambda a, b: ops.matmul(a, b), [_r(4), _r(2, 4, 3)]),
    ("matmul_vec_right", lambda a, b: ops.matmul(a, b), [_r(2, 3, 4), _r(4)]),
    ("matmul_vecvec", lambda a, b: ops.matmul(a, b), [_r(4), _r(4)]),
    ("matmul_wide", lambda a, b: ops.matmul(a, b), [_r(3, 5), _r(5, 20)]),
    ("matmul_transposed", lambda a, b: ops.matmul(ops.transpose(a), b), [_r(4, 3), _r(4, 9)]),
    ("matmul_transposed_right", lambda a, b: ops.matmul(a, b.T), [_r(9, 4), _r(2, 4)]),
    ("matmul_batched_both", lambda a, b: ops.matmul(a, b), [_r(2, 3, 4), _r(2, 4, 5)]),
    ("matmul_4d_left", lambda a, b: ops.matmul(a, b), [_r(2, 2, 3, 4), _r(4, 17)]),
    # matmul + bias (+ relu): recorded as one dense node
    ("dense_relu", lambda x, w, b: ops.relu(ops.matmul(x, w) + b), [_r(5, 4), _r(4, 20), _r(20)]),
    ("dense_bias_left", lambda x, w, b: b + x @ w, [_r(3, 4), _r(4, 6), _r(6)]),
    ("dense_relu_3d", lambda x, w, b: ops.relu(ops.matmul(x, w) + b), [_r(2, 3, 4), _r(4, 5), _r(5)]),
    ("dense_relu_twice", lambda x, w, b: ops.relu(ops.relu(x @ w + b) - 0.1), [_r(4, 3), _r(3, 5), _r(5)]),
    ("dense_intermediates_reused", lambda x, w, b: _dense_reused(x, w, b), [_r(4, 3), _r(3, 5), _r(5)]),
    ("einsum", lambda a, b: ops.einsum("bij,bjk->bik", a, b), [_r(2, 3, 4), _r(2, 4, 2)]),
    ("einsum_ellipsis", lambda a, b: ops.einsum("...i,ij", a, b), [_r(2, 3, 4), _r(4, 2)]),
    ("einsum_reduce", lambda a: ops.einsum("ij->j", a), [_r(3, 4)]),
    ("einsum_three", lambda a, b, c: ops.einsum("i,ij,j->", a, b, c), [_r(3), _r(3, 4), _r(4)]),
    ("dot", lambda a, b: ops.dot(a, b), [_r(2, 3, 4), _r(5, 4, 2)]),
    ("dot_vec", lambda a, b: ops.dot(a, b), [_r(3, 4), _r(4)]),
    ("tensordot", lambda a, b: ops.tensordot(a, b, axes=([1, 2], [0, 1])), [_r(2, 3, 4), _r(3, 4, 5)]),
    ("tensordot_int", lambda a, b: ops.tensordot(a, b, axes=1), [_r(2, 3), _r(3, 4)]),
    ("outer", lambda a, b: ops.outer(a, b), [_r(3), _r(4)]),
    ("vdot", lambda a, b: ops.vdot(a, b), [_r(2, 3), _r(2, 3)]),
    # reductions
    ("sum", lambda a: ops.sum(a, axis=1), [_r(3, 4, 2)]),
    ("sum_keep", lambda a: ops.sum(a, axis=(0, 2), keepdims=True), [_r(3, 4, 2)]),
    ("mean", lambda a: ops.mean(a), [_r(3, 4)]),
    ("mean_axis", lambda a: ops.mean(a, axis=-1, keepdims=True), [_r(3, 4)]),
    ("max", lambda a: ops.max(a, axis=0), [_distinct(3, 4)]),
    ("min_all", lambda a: ops.min(a), [_distinct(3, 4)]),
    ("prod", lambda a: ops.prod(a, axis=1), [_r(3, 4)]),
    ("prod_zero", lambda a: ops.prod(a * np.array([1.0, 0.0, 1.0, 1.0]), axis=1), [_r(3, 4)]),
    ("var", lambda a: ops.var(a, axis=1), [_r(3, 5)]),
    ("std", lambda a: ops.std(a, axis=0, keepdims=True), [_r(4, 3)]),
    ("logsumexp", lambda a: ops.logsumexp(a, axis=-1), [_r(3, 5) * 4]),
    ("cumsum", lambda a: ops.cumsum(a, axis=1), [_r(3, 4)]),
    ("cumsum_flat", lambda a: ops.cumsum(a), [_r(3, 4)]),
    ("cumprod", lambda a: ops.cumprod(a, axis=0), [_pos(3, 4)]),
    ("average", lambda a, w: ops.average(a, axis=1, weights=w), [_r(3, 4), _pos(4)]),
    ("sort", lambda a: ops.sort(a, axis=-1), [_distinct(3, 4)]),
    ("quantile", lambda a: ops.quantile(a, 0.3, axis=1), [_distinct(3, 6)]),
    ("median", lambda a: ops.median(a), [_distinct(7)]),
    ("top_k", lambda a: ops.top_k(a, 2)[0], [_distinct(3, 5)]),
    ("norm_np", lambda a: np.linalg.norm(a, axis=-1), [_r(3, 4)]),
    # elementwise math
    ("exp", ops.exp, [_r(5)]), ("exp2", ops.exp2, [_r(5)]), ("expm1", ops.expm1, [_r(5)]),
    ("log", ops.log, [_pos(5)]), ("log2", ops.log2, [_pos(5)]), ("log10", ops.log10, [_pos(5)]),
    ("log1p", ops.log1p, [_pos(5)]), ("sqrt", ops.sqrt, [_pos(5)]), ("square", ops.square, [_r(5)]),
    ("abs", ops.abs, [_distinct(6) + 0.05]), ("sin", ops.sin, [_r(5)]), ("cos", ops.cos, [_r(5)]),
    ("tan", ops.tan, [_r(5)]), ("sinh", ops.sinh, [_r(5)]), ("cosh", ops.cosh, [_r(5)]),
    ("tanh", ops.tanh, [_r(5)]), ("arcsin", ops.arcsin, [_r(5) * 0.9]), ("arccos", ops.arccos, [_r(5) * 0.9]),
    ("arctan", ops.arctan, [_r(5)]), ("arcsinh", ops.arcsinh, [_r(5)]), ("arccosh", ops.arccosh, [_pos(5) + 1]),
    ("arctanh", ops.arctanh, [_r(5) * 0.9]), ("reciprocal", ops.reciprocal, [_pos(5)]),
    ("erf", ops.erf, [_r(5)]), ("erfinv", ops.erfinv, [_r(5) * 0.9]), ("rsqrt", ops.rsqrt, [_pos(5)]),
    ("nan_to_num", ops.nan_to_num, [_r(5)]),
    # activations
    ("relu", ops.relu, [_distinct(8) / 5]), ("relu6", ops.relu6, [_distinct(16) / 2]),
    ("sigmoid", ops.sigmoid, [_r(6) * 5]), ("softplus", ops.softplus, [_r(6) * 5]),
    ("softsign", ops.softsign, [_r(6) * 3]), ("silu", ops.silu, [_r(6) * 3]), ("swish", ops.swish, [_r(6)]),
    ("log_sigmoid", ops.log_sigmoid, [_r(6) * 5]),
    ("leaky_relu", lambda a: ops.leaky_relu(a, negative_slope=0.1), [_distinct(8) / 5]),
    ("hard_sigmoid", ops.hard_sigmoid, [_distinct(10) / 2 + 0.03]),
    ("hard_silu", ops.hard_silu, [_distinct(10) / 2 + 0.03]),
    ("elu", lambda a: ops.elu(a, alpha=0.7), [_distinct(8) / 5]), ("selu", ops.selu, [_distinct(8) / 5]),
    ("celu", lambda a: ops.celu(a, alpha=2.0), [_distinct(8) / 5]),
    ("gelu_tanh", ops.gelu, [_r(6) * 3]), ("gelu_erf", lambda a: ops.gelu(a, approximate=False), [_r(6) * 3]),
    ("mish", ops.mish, [_r(6) * 3]), ("glu", ops.glu, [_r(3, 4)]), ("tanh_shrink", ops.tanh_shrink, [_r(6)]),
    ("hard_tanh", ops.hard_tanh, [_distinct(10) / 4 + 0.03]),
    ("soft_shrink", ops.soft_shrink, [_distinct(10) / 4 + 0.03]),
    ("squareplus", ops.squareplus, [_r(6)]),
    ("softmax", lambda a: ops.softmax(a, axis=-1), [_r(3, 4) * 3]),
    ("softmax_axis0", lambda a: ops.softmax(a, axis=0), [_r(3, 4) * 3]),
    ("log_softmax", lambda a: ops.log_softmax(a), [_r(3, 4) * 3]),
    # shapes
    ("reshape", lambda a: ops.reshape(a, (4, -1)), [_r(2, 3, 2)]),
    ("transpose", lambda a: ops.transpose(a, (2, 0, 1)), [_r(2, 3, 4)]),
    ("T", lambda a: a.T, [_r(2, 3)]),
    ("expand_dims", lambda a: ops.expand_dims(a, (0, 2)), [_r(2, 3)]),
    ("squeeze", lambda a: ops.squeeze(a, axis=1), [_r(2, 1, 3)]),
    ("concatenate", lambda a, b: ops.concatenate([a, b], axis=1), [_r(2, 3), _r(2, 2)]),
    ("stack", lambda a, b: ops.stack([a, b], axis=-1), [_r(2, 3), _r(2, 3)]),
    ("split", lambda a: ops.split(a, 2, axis=1)[1] * ops.split(a, [1], axis=1)[0], [_r(3, 4)]),
    ("tile", lambda a: ops.tile(a, (2, 3)), [_r(2, 3)]),
    ("repeat", lambda a: ops.repeat(a, 3, axis=1), [_r(2, 3)]),
    ("repeat_array", lambda a: ops.repeat(a, np.array([1, 0, 2]), axis=0), [_r(3, 2)]),
    ("repeat_flat", lambda a: ops.repeat(a, 2), [_r(2, 3)]),
    ("take", lambda a: ops.take(a, IDX, axis=0), [_r(4, 3)]),
    ("take_flat", lambda a: ops.take(a, np.array([5, 1, 1, -1])), [_r(2, 3)]),
    ("take_along_axis", lambda a: ops.take_along_axis(a, np.array([[0, 2, 2], [1, 0, 1]]), axis=1), [_r(2, 4)]),
    ("slice", lambda a: ops.slice(a, (1, 0), (2, -1)), [_r(4, 3)]),
    ("slice_update", lambda a, b: ops.slice_update(a, (1, 1), b), [_r(4, 3), _r(2, 2)]),
    ("scatter_update", lambda a, b: ops.scatter_update(a, np.array([[0, 1], [2, 2]]), b), [_r(3, 3), _r(2)]),
    ("scatter", lambda b: ops.scatter(np.array([[0], [2], [0]]), b, (4, 2)), [_r(3, 2)]),
    ("pad", lambda a: ops.pad(a, ((1, 2), (0, 1))), [_r(2, 3)]),
    ("pad_reflect", lambda a: ops.pad(a, ((1, 1), (2, 0)), mode="reflect"), [_r(3, 4)]),
    ("broadcast_to", lambda a: ops.broadcast_to(a, (2, 3, 4)), [_r(3, 1)]),
    ("flip", lambda a: ops.flip(a, axis=1), [_r(2, 3)]),
    ("roll", lambda a: ops.roll(a, 2, axis=1), [_r(2, 4)]),
    ("getitem_basic", lambda a: a[1:, ::2], [_r(3, 4)]),
    ("getitem_advanced", lambda a: a[np.array([0, 0, 2])], [_r(3, 4)]),
    ("getitem_bool", lambda a: a[np.array([True, False, True])], [_r(3, 2)]),
    ("iteration", lambda a: ops.stack([row * (i + 1) for i, row in enumerate(a)]), [_r(3, 2)]),
    ("swapaxes", lambda a: ops.swapaxes(a, 0, 2), [_r(2, 3, 4)]),
    ("moveaxis", lambda a: ops.moveaxis(a, 0, -1), [_r(2, 3, 4)]),
    ("diagonal", lambda a: ops.diagonal(a), [_r(3, 3)]),
    ("trace", lambda a: ops.trace(a), [_r(3, 3)]),
    ("diff", lambda a: ops.diff(a, n=2), [_r(2, 5)]),
    ("tril", lambda a: ops.tril(a), [_r(3, 3)]),
    ("triu", lambda a: ops.triu(a, k=1), [_r(3, 3)]),
    ("cross", lambda a, b: ops.cross(a, b), [_r(2, 3), _r(2, 3)]),
    ("cast", lambda a: ops.cast(ops.cast(a, "float32"), "float64") * 3.0, [np.array([0.5, -0.25, 2.0])]),
    ("segment_sum", lambda a: ops.segment_sum(a, np.array([0, 2, 0, 1]), num_segments=3), [_r(4, 2)]),
    ("segment_max", lambda a: ops.segment_max(a, np.array([0, 1, 0, 1]), num_segments=2), [_distinct(4, 2)]),
    # linalg
    ("inv", lambda a: ops.linalg.inv(a), [np.eye(3) * 2 + _r(3, 3) * 0.3]),
    ("solve", lambda a, b: ops.linalg.solve(a, b), [np.eye(3) * 2 + _r(3, 3) * 0.3, _r(3, 2)]),
    ("solve_vec", lambda a, b: ops.linalg.solve(a, b), [np.eye(3) * 2 + _r(3, 3) * 0.3, _r(3)]),
    ("det", lambda a: ops.linalg.det(a), [np.eye(3) * 2 + _r(2, 3, 3) * 0.3]),
    ("logdet", lambda a: ops.logdet(a), [np.eye(3) * 2 + _r(3, 3) * 0.3]),
    ("cholesky", lambda a: ops.linalg.cholesky(a @ np.swapaxes(a, -1, -2) + np.eye(3)), [_r(3, 3)]),
    # nn
    ("conv1d", lambda x, w: ops.conv(x, w, strides=2, padding="same"), [_r(2, 7, 3), _r(3, 3, 4)]),
    ("conv2d", lambda x, w: ops.conv(x, w, padding="valid", dilation_rate=(1, 2)), [_r(2, 5, 6, 2), _r(2, 2, 2, 3)]),
    ("conv2d_same_stride", lambda x, w: ops.conv(x, w, strides=(2, 1), padding="same"),
     [_r(1, 5, 4, 3), _r(3, 3, 3, 2)]),
    ("conv2d_groups", lambda x, w: ops.conv(x, w), [_r(1, 4, 4, 4), _r(2, 2, 2, 6)]),
    ("conv2d_channels_first", lambda x, w: ops.conv(x, w, data_format="channels_first"),
     [_r(1, 2, 4, 4), _r(2, 2, 2, 3)]),
    ("conv3d", lambda x, w: ops.conv(x, w, padding="same"), [_r(1, 3, 3, 3, 2), _r(2, 2, 2, 2, 2)]),
    ("conv_transpose", lambda x, w: ops.conv_transpose(x, w, strides=2, padding="same"),
     [_r(1, 3, 3, 2), _r(3, 3, 4, 2)]),
    ("conv_transpose_1d", lambda x, w: ops.conv_transpose(x, w, strides=2, dilation_rate=1, output_padding=1),
     [_r(2, 4, 2), _r(3, 3, 2)]),
    ("depthwise_conv", lambda x, w: ops.depthwise_conv(x, w, padding="same"), [_r(2, 5, 5, 2), _r(3, 3, 2, 2)]),
    ("separable_conv", lambda x, d, p: ops.separable_conv(x, d, p), [_r(1, 5, 5, 2), _r(2, 2, 2, 1), _r(1, 1, 2, 3)]),
    ("max_pool", lambda x: ops.max_pool(x, 2), [_distinct(2, 4, 4, 3)]),
    ("max_pool_same", lambda x: ops.max_pool(x, 3, strides=2, padding="same"), [_distinct(1, 5, 5, 2)]),
    ("max_pool1d", lambda x: ops.max_pool(x, 2, strides=1), [_distinct(2, 5, 3)]),
    ("average_pool", lambda x: ops.average_pool(x, (2, 2)), [_r(2, 4, 4, 3)]),
    ("average_pool_same", lambda x: ops.average_pool(x, 3, strides=2, padding="same"), [_r(1, 5, 5, 2)]),
    ("moments", lambda x: ops.moments(x, axes=[0, 1])[0] * 2 + ops.moments(x, axes=[0, 1])[1], [_r(3, 4, 2)]),
    ("batch_normalization", lambda x, m, v, o, s: ops.batch_normalization(x, m, v, axis=-1, offset=o, scale=s),
     [_r(4, 3), _r(3), _pos(3), _r(3), _r(3)]),
    ("normalize", lambda x: ops.normalize(x, axis=-1), [_r(3, 4)]),
    ("normalize_l1", lambda x: ops.normalize(x, axis=-1, order=1), [_pos(3, 4)]),
    ("layer_normalization", lambda x, g, b: ops.layer_normalization(x, g, b, epsilon=1e-3), [_r(3, 5), _r(5), _r(5)]),
    ("rms_normalization", lambda x, s: ops.rms_normalization(x, s, epsilon=1e-3), [_r(3, 5), _r(5)]),
    ("binary_crossentropy", lambda t, p: ops.binary_crossentropy(t, p), [R.uniform(0, 1, (3, 2)),
                                                                        R.uniform(0.1, 0.9, (3, 2))]),
    ("binary_crossentropy_logits", lambda t, p: ops.binary_crossentropy(t, p, from_logits=True),
     [R.uniform(0, 1, (3, 2)), _r(3, 2) * 3]),
    ("categorical_crossentropy", lambda t, p: ops.categorical_crossentropy(t, p),
     [R.uniform(0, 1, (3, 4)), R.uniform(0.1, 1, (3, 4))]),
    ("categorical_crossentropy_logits", lambda t, p: ops.categorical_crossentropy(t, p, from_logits=True),
     [R.uniform(0, 1, (3, 4)), _r(3, 4) * 3]),
    ("sparse_categorical_crossentropy", lambda p: ops.sparse_categorical_crossentropy(np.array([0, 3, 1]), p),
     [R.uniform(0.1, 1, (3, 4))]),
    ("sparse_categorical_crossentropy_logits",
     lambda p: ops.sparse_categorical_crossentropy(np.array([[2], [0]]), p, from_logits=True), [_r(2, 3) * 3]),
    ("dot_product_attention", lambda q, k, v: ops.dot_product_attention(q, k, v, is_causal=True),
     [_r(1, 3, 2, 4), _r(1, 3, 2, 4), _r(1, 3, 2, 4)]),
    # control flow
    ("cond", lambda a: ops.cond(ops.sum(a) > -100, lambda: a * 2, lambda: a), [_r(3)]),
    ("fori_loop", lambda a: ops.fori_loop(0, 3, lambda i, v: ops.tanh(v) * a, a), [_r(3)]),
    ("while_loop", lambda a: ops.while_loop(lambda i, v: i < 3, lambda i, v: (i + 1, v * a), (0, a))[1], [_pos(3)]),
    ("scan", lambda a, xs: ops.scan(lambda c, x: (c * x, c + x), a, xs)[1], [_r(3), _r(4, 3)]),
    ("map", lambda xs: ops.map(lambda x: ops.sum(x * x), xs), [_r(4, 3)]),
    ("stop_gradient", lambda a: a * ops.stop_gradient(a), [_r(3)]),
    ("custom_gradient", lambda a: _double_grad(a), [_r(3)]),
    # numpy interop on traced values
    ("np_ufuncs", lambda a: np.exp(a) + np.square(a) * np.float32(2), [_r(4)]),
    ("np_functions", lambda a: np.mean(np.concatenate([a, a * 2], axis=0), axis=0), [_r(2, 3)]),
    ("ndarray_left_operand", lambda a: np.ones(3) - a * np.arange(3.0), [_r(3)]),
]


@ops.custom_gradient
def _double_grad_impl(x):
    def grad(g):
        return g * 2 * np.cos(x)
    return np.sin(x), grad


def _dense_reused(x, w, b):
    # every value of the dense record also feeds later ops: their gradients add up
    t = ops.matmul(x, w)
    o = t + b
    r = ops.relu(o)
    return r * o + t * 2.0


def _double_grad(a):
    # custom_gradient with the true derivative of sin times two, so the check compares against 2*d(sin)
    return _double_grad_impl(a) * 1.0


# Ops whose finite differences do not measure the recorded gradient: the gradient of
# a * stop_gradient(a) is stop_gradient(a) alone; a float32 round trip is exact for
# values representable in float32, but differences of 1e-6 do not survive it.
EXACT = {
    "stop_gradient": lambda a, u: a * u,
    "cast": lambda a, u: 3.0 * u,
}

OPS_BY_NAME = {name: (fn, args) for name, fn, args in OPS}


def _eval(fn, args):
    out = fn(*args)
    if isinstance(out, (list, tuple)):
        out = ops.stack(out)
    return np.asarray(autodiff.unwrap(out), dtype=np.float64)


@pytest.mark.parametrize("name", sorted(OPS_BY_NAME))
def test_gradient_matches_finite_differences(name, float64):
    fn, args = OPS_BY_NAME[name]
    args = [np.array(a, dtype=np.float64) for a in args]
    y = _eval(fn, args)
    u = np.random.default_rng(7).normal(size=y.shape)
    tape = autodiff.Tape()
    with tape:
        traced = [tape.watch(a) for a in args]
        out = fn(*traced)
        if isinstance(out, (list, tuple)):
            out = ops.stack(out)
    np.testing.assert_allclose(np.asarray(autodiff.unwrap(out)), y, rtol=1e-12, atol=1e-12)
    grads, _ = tape.gradient(out, u, inputs=traced)
    for i, a in enumerate(args):
        def f(z, i=i):
            vals = list(args)
            vals[i] = z
            return float(np.sum(_eval(fn, vals) * u))
        if name in EXACT:
            want = EXACT[name](a, u)
        else:
            want = numeric_grad(f, a)
        if name == "custom_gradient":
            want = want * 2
        assert grads[i].shape == a.shape, f"{name}: gradient {i} shape {grads[i].shape} != {a.shape}"
        assert grads[i].dtype == np.float64
        np.testing.assert_allclose(grads[i], want, rtol=1e-6, atol=1e-7, err_msg=f"{name}: input {i}")


def _spy_dense(monkeypatch):
    """Counts the calls of the dense kernel made by ops.matmul."""
    from fastnet.ops import numpy as onp

    real = onp._dense()
    calls = []

    class Spy:
        def forward(self, *a):
            calls.append("forward")
            return real.forward(*a)

        def backward(self, *a):
            calls.append("backward")
            return real.backward(*a)

    monkeypatch.setattr(onp, "_DENSE", Spy())
    return calls


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shapes", [((5, 7), (7, 3)), ((6, 4), (4, 40)), ((2, 3, 7), (7, 20)), ((1, 8), (8, 1))],
                         ids=["narrow", "wide", "folded", "row"])
@pytest.mark.parametrize("watched", ["both", "left", "right"])
def test_float_matmul_runs_in_the_dense_kernel_with_numpys_values(monkeypatch, n_threads, dtype, shapes, watched):
    """2-D (and N-D @ 2-D) float products go through the dense kernel, forward and
    backward: the same values and gradients as numpy's matmul, to rounding."""
    calls = _spy_dense(monkeypatch)
    rng = np.random.default_rng(5)
    a = rng.normal(size=shapes[0]).astype(dtype)
    b = rng.normal(size=shapes[1]).astype(dtype)
    want = np.matmul(a.astype(np.float64), b.astype(np.float64))
    g = rng.normal(size=want.shape).astype(dtype)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    tape = autodiff.Tape()
    with tape:
        ta = tape.watch(a) if watched in ("both", "left") else a
        tb = tape.watch(b) if watched in ("both", "right") else b
        y = ops.matmul(ta, tb)
    assert y.dtype == dtype and y.shape == want.shape
    np.testing.assert_allclose(y.value, want, **tol)
    inputs = [t for t in (ta, tb) if isinstance(t, autodiff.Tracer)]
    grads, _ = tape.gradient(y, g, inputs=inputs)
    g64 = g.astype(np.float64).reshape(-1, b.shape[1])
    want_a = (g64 @ b.T.astype(np.float64)).reshape(a.shape)
    want_b = a.reshape(-1, a.shape[-1]).T.astype(np.float64) @ g64
    expected = {"both": [want_a, want_b], "left": [want_a], "right": [want_b]}[watched]
    for got, w in zip(grads, expected):
        assert got.dtype == dtype and got.shape == w.shape
        np.testing.assert_allclose(got, w, **tol)
    assert calls == ["forward", "backward"]


def test_matmul_outside_the_kernel_stays_with_numpy(monkeypatch):
    """Integers, mixed float dtypes, 1-D operands, batched right operands and operands
    whose copy would cost as much as the product take numpy's matmul."""
    calls = _spy_dense(monkeypatch)
    rng = np.random.default_rng(6)
    a32 = rng.normal(size=(4, 3)).astype(np.float32)
    cases = [
        (np.arange(12).reshape(4, 3), np.arange(6).reshape(3, 2)),
        (a32, rng.normal(size=(3, 2))),
        (a32, rng.normal(size=3).astype(np.float32)),
        (rng.normal(size=3).astype(np.float32), rng.normal(size=(3, 2)).astype(np.float32)),
        (rng.normal(size=(2, 4, 3)), rng.normal(size=(2, 3, 5))),
        (rng.normal(size=(3, 4)).T, rng.normal(size=(3, 2))),   # transposed: copying it costs ~ the product
    ]
    for a, b in cases:
        tape = autodiff.Tape()
        with tape:
            ta, tb = tape.watch(a), tape.watch(b)
            y = ops.matmul(ta, tb)
        want = np.matmul(a, b)
        assert y.dtype == want.dtype
        np.testing.assert_allclose(y.value, want, rtol=1e-6)
        tape.gradient(y, np.ones_like(want), inputs=[ta, tb])
    assert calls == []


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("watched", ["all", "weights", "input"])
@pytest.mark.parametrize("relu", [True, False])
def test_dense_written_with_ops_is_one_record_with_the_separate_ops_values(monkeypatch, n_threads, dtype, watched,
                                                                          relu):
    """relu(matmul(x, w) + b) records one node: the same values as the ops computed one by
    one, and one dense-kernel call for the gradients of x, w and b."""
    from fastnet.backend import Variable

    calls = _spy_dense(monkeypatch)
    rng = np.random.default_rng(8)
    x = rng.normal(size=(6, 5)).astype(dtype)
    w = rng.normal(size=(5, 24)).astype(dtype)
    b = rng.normal(size=24).astype(dtype)
    want = ops.matmul(x, w) + b        # eager: the ops one by one
    if relu:
        want = ops.relu(want)
    calls.clear()
    g = rng.normal(size=want.shape).astype(dtype)
    wv, bv = (Variable(w), Variable(b)) if watched != "input" else (w, b)
    tape = autodiff.Tape()
    with tape:
        tx = tape.watch(x) if watched != "weights" else x
        y = ops.matmul(tx, wv) + bv
        if relu:
            y = ops.relu(y)
    assert len(tape._nodes) == 1 and len(tape._nodes[0][0]) == (3 if relu else 2)
    np.testing.assert_array_equal(y.value, want)
    inputs = [tx] if watched != "weights" else []
    variables = [wv, bv] if watched != "input" else []
    gi, gv = tape.gradient(y, g, inputs=inputs, variables=variables)
    g64 = g.astype(np.float64) * (want > 0) if relu else g.astype(np.float64)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    expected = ([g64 @ w.T.astype(np.float64)] if watched != "weights" else []) + \
        ([x.T.astype(np.float64) @ g64, g64.sum(0)] if watched != "input" else [])
    for got, e in zip(gi + gv, expected):
        assert got.dtype == dtype and got.shape == e.shape
        np.testing.assert_allclose(got, e, **tol)
    assert calls == ["forward", "backward"]


def test_dense_record_is_not_formed_across_other_values():
    """The product, sum and ReLU join one record only when each consumes the newest
    value: a bias of another shape, a sum read in between, or a second tape keep the
    separate records."""
    from fastnet.backend import Variable

    rng = np.random.default_rng(9)
    x = rng.normal(size=(4, 3))
    w = Variable(rng.normal(size=(3, 5)))
    tape = autodiff.Tape()
    with tape:
        tx = tape.watch(x)
        ops.matmul(tx, w) + rng.normal(size=(4, 5))          # not a bias: separate add
        t = ops.matmul(tx, w)
        other = tape.watch(np.ones(5))                        # a newer value in between
        t + other
        o = ops.matmul(tx, w) + np.ones(5)
        ops.sum(o)
        ops.relu(o)                                           # o was read by sum first
    kinds = [type(n[0]).__name__ for n in tape._nodes]
    assert kinds == ["int", "int", "int", "int", "tuple", "int", "int"]
    assert t is not None
    outer, inner = autodiff.Tape(), autodiff.Tape()
    with outer:
        tx = outer.watch(x)
        with inner:
            y = ops.matmul(tx, w) + np.ones(5)
    assert all(type(n[0]) is int for n in outer._nodes + inner._nodes)
    assert isinstance(y, autodiff.Tracer)


def test_every_listed_op_is_in_the_table():
    """The ops the issue lists as differentiable all have a row above."""
    required = ["add", "subtract", "multiply", "divide", "power", "maximum", "minimum", "where", "clip",
                "matmul_2d", "einsum", "dot", "tensordot", "sum", "mean", "max", "min_all", "prod", "var", "std",
                "logsumexp", "exp", "log", "sqrt", "square", "abs", "sin", "cos", "tanh", "reshape",
                "transpose", "expand_dims", "squeeze", "concatenate", "stack", "split", "tile", "repeat", "take",
                "take_along_axis", "slice", "pad", "broadcast_to", "flip", "roll", "cumsum", "relu", "relu6",
                "gelu_tanh", "gelu_erf", "silu", "softmax", "log_softmax", "sigmoid", "softplus", "elu", "selu",
                "leaky_relu", "conv2d", "max_pool", "average_pool", "moments", "batch_normalization",
                "sparse_categorical_crossentropy", "categorical_crossentropy", "binary_crossentropy", "normalize",
                "cond", "fori_loop", "while_loop", "stop_gradient"]
    missing = [n for n in required if n not in OPS_BY_NAME]
    assert not missing


def test_compiled_and_numpy_convolutions_agree():
    """1-D/2-D convolutions run in the compiled conv kernel; other cases (groups, 3-D,
    mixed dtypes) in the numpy window product. Both give the same numbers."""
    from fastnet.ops import nn

    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 7, 6, 3))
    w = rng.normal(size=(3, 2, 3, 4))
    calls = []
    real = nn._compiled_conv

    def spy(*a, **k):
        r = real(*a, **k)
        calls.append(r is not None)
        return r

    nn._compiled_conv = spy
    try:
        for kw in ({"strides": 2, "padding": "same"}, {"dilation_rate": (2, 1)}, {"strides": (1, 2)}):
            fast = ops.conv(x, w, **kw)
            # a float32 kernel with a float64 input takes the numpy path
            slow = ops.conv(x, w.astype(np.float32), **kw)
            np.testing.assert_allclose(fast, slow, rtol=1e-6, atol=1e-6)
    finally:
        nn._compiled_conv = real
    assert calls == [True, False] * 3
