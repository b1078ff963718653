"""Cases shared by tools/gen_ops_reference.py (which runs them with Keras) and
tests/ops/test_ops_keras_reference.py (which runs them with fastnet).

Each case: name -> (function of (ops, *inputs), input specs, differentiable input indices).
An input spec is (shape, kind): "normal", "pos" (in [0.5, 2]), "prob" (in [0.05, 0.95]),
"distinct" (well-separated values, no ties), "int:N" (integers in [0, N)), "bool".
"""
import numpy as np

CASES = {
    "add": (lambda ops, a, b: ops.add(a, b), [((3, 4), "normal"), ((4,), "normal")], [0, 1]),
    "subtract": (lambda ops, a, b: ops.subtract(a, b), [((3, 1), "normal"), ((1, 4), "normal")], [0, 1]),
    "multiply": (lambda ops, a, b: ops.multiply(a, b), [((2, 3), "normal"), ((2, 3), "normal")], [0, 1]),
    "divide": (lambda ops, a, b: ops.divide(a, b), [((2, 3), "normal"), ((3,), "pos")], [0, 1]),
    "power": (lambda ops, a, b: ops.power(a, b), [((2, 3), "pos"), ((2, 3), "normal")], [0, 1]),
    "maximum": (lambda ops, a, b: ops.maximum(a, b), [((3, 4), "distinct"), ((3, 4), "normal")], [0, 1]),
    "minimum": (lambda ops, a, b: ops.minimum(a, b), [((3, 4), "distinct"), ((4,), "normal")], [0, 1]),
    "where": (lambda ops, c, a, b: ops.where(c, a, b), [((2, 3), "bool"), ((2, 3), "normal"), ((3,), "normal")],
              [1, 2]),
    "clip": (lambda ops, a: ops.clip(a, -0.5, 0.5), [((3, 4), "distinct")], [0]),
    "matmul": (lambda ops, a, b: ops.matmul(a, b), [((2, 3, 4), "normal"), ((4, 5), "normal")], [0, 1]),
    "einsum": (lambda ops, a, b: ops.einsum("bij,bkj->bik", a, b), [((2, 3, 4), "normal"), ((2, 5, 4), "normal")],
               [0, 1]),
    "dot": (lambda ops, a, b: ops.dot(a, b), [((2, 3, 4), "normal"), ((5, 4, 2), "normal")], [0, 1]),
    "tensordot": (lambda ops, a, b: ops.tensordot(a, b, axes=([1, 2], [0, 1])),
                  [((2, 3, 4), "normal"), ((3, 4, 5), "normal")], [0, 1]),
    "sum": (lambda ops, a: ops.sum(a, axis=1), [((3, 4, 2), "normal")], [0]),
    "mean": (lambda ops, a: ops.mean(a, axis=(0, 2), keepdims=True), [((3, 4, 2), "normal")], [0]),
    "max": (lambda ops, a: ops.max(a, axis=-1), [((3, 4), "distinct")], [0]),
    "min": (lambda ops, a: ops.min(a), [((3, 4), "distinct")], [0]),
    "prod": (lambda ops, a: ops.prod(a, axis=0), [((3, 4), "normal")], [0]),
    "var": (lambda ops, a: ops.var(a, axis=1), [((3, 5), "normal")], [0]),
    "std": (lambda ops, a: ops.std(a, axis=0), [((4, 3), "normal")], [0]),
    "logsumexp": (lambda ops, a: ops.logsumexp(a, axis=-1), [((3, 5), "normal")], [0]),
    "argmax": (lambda ops, a: ops.argmax(a, axis=-1), [((3, 5), "distinct")], []),
    "argmin": (lambda ops, a: ops.argmin(a, axis=0), [((3, 5), "distinct")], []),
    "any": (lambda ops, a: ops.any(a, axis=1), [((3, 4), "bool")], []),
    "all": (lambda ops, a: ops.all(a, axis=0), [((3, 4), "bool")], []),
    "cumsum": (lambda ops, a: ops.cumsum(a, axis=1), [((3, 4), "normal")], [0]),
    "exp": (lambda ops, a: ops.exp(a), [((5,), "normal")], [0]),
    "log": (lambda ops, a: ops.log(a), [((5,), "pos")], [0]),
    "sqrt": (lambda ops, a: ops.sqrt(a), [((5,), "pos")], [0]),
    "square": (lambda ops, a: ops.square(a), [((5,), "normal")], [0]),
    "abs": (lambda ops, a: ops.abs(a), [((5,), "distinct")], [0]),
    "sign": (lambda ops, a: ops.sign(a), [((5,), "distinct")], []),
    "sin": (lambda ops, a: ops.sin(a), [((5,), "normal")], [0]),
    "cos": (lambda ops, a: ops.cos(a), [((5,), "normal")], [0]),
    "tanh": (lambda ops, a: ops.tanh(a), [((5,), "normal")], [0]),
    "floor": (lambda ops, a: ops.floor(a), [((5,), "normal")], []),
    "round": (lambda ops, a: ops.round(a), [((5,), "normal")], []),
    "erf": (lambda ops, a: ops.erf(a), [((5,), "normal")], [0]),
    "rsqrt": (lambda ops, a: ops.rsqrt(a), [((5,), "pos")], [0]),
    "reshape": (lambda ops, a: ops.reshape(a, (4, -1)), [((2, 3, 2), "normal")], [0]),
    "transpose": (lambda ops, a: ops.transpose(a, (2, 0, 1)), [((2, 3, 4), "normal")], [0]),
    "expand_dims": (lambda ops, a: ops.expand_dims(a, 1), [((2, 3), "normal")], [0]),
    "squeeze": (lambda ops, a: ops.squeeze(a, axis=1), [((2, 1, 3), "normal")], [0]),
    "concatenate": (lambda ops, a, b: ops.concatenate([a, b], axis=1), [((2, 3), "normal"), ((2, 2), "normal")],
                    [0, 1]),
    "stack": (lambda ops, a, b: ops.stack([a, b], axis=1), [((2, 3), "normal"), ((2, 3), "normal")], [0, 1]),
    "split": (lambda ops, a: ops.split(a, 2, axis=1)[1], [((3, 4), "normal")], [0]),
    "tile": (lambda ops, a: ops.tile(a, (2, 3)), [((2, 3), "normal")], [0]),
    "repeat": (lambda ops, a: ops.repeat(a, 2, axis=0), [((2, 3), "normal")], [0]),
    "take": (lambda ops, a, i: ops.take(a, i, axis=1), [((3, 4), "normal"), ((2, 3), "int:4")], [0]),
    "take_along_axis": (lambda ops, a, i: ops.take_along_axis(a, i, axis=1), [((3, 4), "normal"), ((3, 2), "int:4")],
                        [0]),
    "slice": (lambda ops, a: ops.slice(a, (1, 0), (2, 3)), [((4, 3), "normal")], [0]),
    "pad": (lambda ops, a: ops.pad(a, ((1, 2), (0, 1))), [((2, 3), "normal")], [0]),
    "broadcast_to": (lambda ops, a: ops.broadcast_to(a, (2, 3, 4)), [((3, 1), "normal")], [0]),
    "flip": (lambda ops, a: ops.flip(a, axis=1), [((2, 3), "normal")], [0]),
    "roll": (lambda ops, a: ops.roll(a, 2, axis=1), [((2, 4), "normal")], [0]),
    "sort": (lambda ops, a: ops.sort(a, axis=-1), [((3, 4), "distinct")], [0]),
    "arange": (lambda ops: ops.arange(2, 11, 3), [], []),
    "arange_float": (lambda ops: ops.arange(0.5, 2.0, 0.25), [], []),
    "eye": (lambda ops: ops.eye(3, 4, k=1), [], []),
    "full": (lambda ops: ops.full((2, 3), 1.5), [], []),
    "one_hot": (lambda ops, i: ops.one_hot(i, 5), [((4,), "int:5")], []),
    "cast": (lambda ops, a: ops.cast(a, "int32"), [((5,), "normal")], []),
    "relu": (lambda ops, a: ops.relu(a), [((6,), "distinct")], [0]),
    "relu6": (lambda ops, a: ops.relu6(a * 4), [((8,), "distinct")], [0]),
    "gelu": (lambda ops, a: ops.gelu(a), [((6,), "normal")], [0]),
    "gelu_exact": (lambda ops, a: ops.gelu(a, approximate=False), [((6,), "normal")], [0]),
    "silu": (lambda ops, a: ops.silu(a), [((6,), "normal")], [0]),
    "sigmoid": (lambda ops, a: ops.sigmoid(a), [((6,), "normal")], [0]),
    "softplus": (lambda ops, a: ops.softplus(a), [((6,), "normal")], [0]),
    "elu": (lambda ops, a: ops.elu(a), [((6,), "distinct")], [0]),
    "selu": (lambda ops, a: ops.selu(a), [((6,), "distinct")], [0]),
    "leaky_relu": (lambda ops, a: ops.leaky_relu(a), [((6,), "distinct")], [0]),
    "softmax": (lambda ops, a: ops.softmax(a, axis=-1), [((3, 4), "normal")], [0]),
    "log_softmax": (lambda ops, a: ops.log_softmax(a, axis=0), [((3, 4), "normal")], [0]),
    "conv2d": (lambda ops, x, w: ops.conv(x, w, strides=2, padding="same"),
               [((2, 5, 6, 3), "normal"), ((3, 3, 3, 4), "normal")], [0, 1]),
    "conv1d_dilated": (lambda ops, x, w: ops.conv(x, w, padding="valid", dilation_rate=2),
                       [((2, 9, 2), "normal"), ((3, 2, 3), "normal")], [0, 1]),
    "conv_transpose_valid": (lambda ops, x, w: ops.conv_transpose(x, w, strides=2, padding="valid"),
                             [((2, 3, 4, 3), "normal"), ((3, 3, 2, 3), "normal")], [0, 1]),
    "conv_transpose_same": (lambda ops, x, w: ops.conv_transpose(x, w, strides=2, padding="same"),
                            [((1, 3, 3, 2), "normal"), ((3, 3, 4, 2), "normal")], [0, 1]),
    "conv_transpose_1d_output_padding": (
        lambda ops, x, w: ops.conv_transpose(x, w, strides=3, padding="valid", output_padding=1),
        [((2, 4, 2), "normal"), ((4, 3, 2), "normal")], [0, 1]),
    "conv_transpose_same_k2": (lambda ops, x, w: ops.conv_transpose(x, w, strides=1, padding="same"),
                               [((1, 4, 4, 2), "normal"), ((2, 2, 3, 2), "normal")], [0, 1]),
    "depthwise_conv": (lambda ops, x, w: ops.depthwise_conv(x, w, padding="same"),
                       [((1, 5, 5, 2), "normal"), ((3, 3, 2, 2), "normal")], [0, 1]),
    "max_pool": (lambda ops, x: ops.max_pool(x, 2, strides=2), [((2, 4, 4, 3), "distinct")], [0]),
    "max_pool_same": (lambda ops, x: ops.max_pool(x, 3, strides=2, padding="same"), [((1, 5, 5, 2), "distinct")],
                      [0]),
    "average_pool": (lambda ops, x: ops.average_pool(x, 2, strides=2, padding="valid"),
                     [((2, 4, 4, 3), "normal")], [0]),
    "average_pool_same": (lambda ops, x: ops.average_pool(x, 3, strides=2, padding="same"),
                          [((1, 5, 5, 2), "normal")], [0]),
    "moments_mean": (lambda ops, x: ops.moments(x, axes=[0, 1])[0], [((3, 4, 2), "normal")], [0]),
    "moments_var": (lambda ops, x: ops.moments(x, axes=[0])[1], [((3, 4), "normal")], [0]),
    "batch_normalization": (lambda ops, x, m, v, o, s: ops.batch_normalization(x, m, v, axis=-1, offset=o, scale=s),
                            [((4, 3), "normal"), ((3,), "normal"), ((3,), "pos"), ((3,), "normal"),
                             ((3,), "normal")], [0, 1, 2, 3, 4]),
    "normalize": (lambda ops, x: ops.normalize(x, axis=-1), [((3, 4), "normal")], [0]),
    "binary_crossentropy": (lambda ops, t, p: ops.binary_crossentropy(t, p), [((3, 2), "prob"), ((3, 2), "prob")],
                            [1]),
    "binary_crossentropy_logits": (lambda ops, t, p: ops.binary_crossentropy(t, p, from_logits=True),
                                   [((3, 2), "prob"), ((3, 2), "normal")], [1]),
    "categorical_crossentropy": (lambda ops, t, p: ops.categorical_crossentropy(t, p),
                                 [((3, 4), "prob"), ((3, 4), "prob")], [1]),
    "categorical_crossentropy_logits": (lambda ops, t, p: ops.categorical_crossentropy(t, p, from_logits=True),
                                        [((3, 4), "prob"), ((3, 4), "normal")], [1]),
    "sparse_categorical_crossentropy": (lambda ops, t, p: ops.sparse_categorical_crossentropy(t, p),
                                        [((3,), "int:4"), ((3, 4), "prob")], [1]),
    "sparse_categorical_crossentropy_logits": (
        lambda ops, t, p: ops.sparse_categorical_crossentropy(t, p, from_logits=True),
        [((3,), "int:4"), ((3, 4), "normal")], [1]),
}


def make_inputs(name, seed=0):
    """The inputs of a case, float32 (int32/bool for index and mask specs)."""
    rng = np.random.default_rng(seed + sum(map(ord, name)))
    out = []
    for shape, kind in CASES[name][1]:
        n = int(np.prod(shape))
        if kind == "normal":
            a = rng.normal(size=shape)
        elif kind == "pos":
            a = rng.uniform(0.5, 2.0, shape)
        elif kind == "prob":
            a = rng.uniform(0.05, 0.95, shape)
        elif kind == "distinct":
            a = (rng.permutation(n).reshape(shape) - n / 2) * 0.37 + 0.05
        elif kind == "bool":
            out.append(rng.uniform(size=shape) > 0.5)
            continue
        elif kind.startswith("int:"):
            out.append(rng.integers(0, int(kind[4:]), shape).astype(np.int32))
            continue
        else:
            raise ValueError(kind)
        out.append(np.asarray(a, dtype=np.float32))
    return out
