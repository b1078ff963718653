"""Writes Keras's values for fastnet's merge and activation layers (tests/data/keras_graph).

Run with Keras 3 and JAX installed (not a fastnet dependency):
    KERAS_BACKEND=jax python tools/gen_graph_layers_reference.py

Each case is one .npz: the inputs ``x_<k>``, the weights ``w_<i>`` (PReLU), a random
cotangent ``u``, the output ``y``, and the gradients of ``sum(y * u)`` with respect to
each input (``dx_<k>``) and each trainable weight (``dw_<i>``); ``meta`` holds the class
name and constructor arguments.
"""
import json
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "keras_graph")

CASES = [
    ("add3", "Add", {}, [(4, 5), (4, 5), (4, 5)]),
    ("add_broadcast", "Add", {}, [(4, 5), (4, 1)]),
    ("subtract", "Subtract", {}, [(4, 5), (4, 5)]),
    ("multiply3", "Multiply", {}, [(4, 3, 2), (4, 3, 2), (4, 3, 2)]),
    ("average", "Average", {}, [(4, 6), (4, 6)]),
    ("maximum", "Maximum", {}, [(4, 6), (4, 6), (4, 6)]),
    ("minimum", "Minimum", {}, [(4, 6), (4, 6)]),
    ("concatenate_last", "Concatenate", {}, [(3, 4, 2), (3, 4, 5)]),
    ("concatenate_axis1", "Concatenate", {"axis": 1}, [(3, 2, 5), (3, 4, 5)]),
    ("dot_2d", "Dot", {"axes": 1}, [(5, 6), (5, 6)]),
    ("dot_3d", "Dot", {"axes": 2}, [(2, 3, 4), (2, 5, 4)]),
    ("dot_3d_axes12", "Dot", {"axes": [1, 2]}, [(2, 4, 3), (2, 5, 4)]),
    ("dot_normalize", "Dot", {"axes": 1, "normalize": True}, [(5, 6), (5, 6)]),
    ("relu", "ReLU", {}, [(4, 7)]),
    ("relu_max", "ReLU", {"max_value": 1.0}, [(4, 7)]),
    ("relu6", "ReLU", {"max_value": 6.0}, [(4, 7)]),
    ("relu_slope", "ReLU", {"negative_slope": 0.1}, [(4, 7)]),
    ("relu_threshold", "ReLU", {"threshold": 0.5, "negative_slope": 0.2, "max_value": 2.0}, [(4, 7)]),
    ("leaky_relu", "LeakyReLU", {}, [(4, 7)]),
    ("leaky_relu_01", "LeakyReLU", {"negative_slope": 0.1}, [(4, 7)]),
    ("elu", "ELU", {}, [(4, 7)]),
    ("elu_05", "ELU", {"alpha": 0.5}, [(4, 7)]),
    ("softmax", "Softmax", {}, [(4, 7)]),
    ("softmax_axis1", "Softmax", {"axis": 1}, [(2, 5, 3)]),
    ("prelu", "PReLU", {"alpha_initializer": "random_uniform"}, [(4, 3, 5)]),
    ("prelu_shared", "PReLU", {"alpha_initializer": "random_uniform", "shared_axes": [1]}, [(4, 3, 5)]),
]


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(0)
    for name, cls, cfg, shapes in CASES:
        layer = getattr(keras.layers, cls)(**cfg)
        xs = [(rng.standard_normal(s) * 2).astype(np.float32) for s in shapes]
        multi = len(xs) > 1
        y = np.asarray(layer(xs if multi else xs[0]))
        u = rng.standard_normal(y.shape).astype(np.float32)
        tw = [v.value for v in layer.trainable_variables]
        ntw = [v.value for v in layer.non_trainable_variables]

        def f(tw_, xs_, layer=layer, ntw=ntw, multi=multi, u=u):
            out, _ = layer.stateless_call(tw_, ntw, xs_ if multi else xs_[0])
            return jax.numpy.sum(out * u)

        dtw, dxs = jax.grad(f, argnums=(0, 1))(tw, xs)
        arrays = {"u": u, "y": y}
        for k, x in enumerate(xs):
            arrays[f"x_{k}"] = x
            arrays[f"dx_{k}"] = np.asarray(dxs[k])
        for i, w in enumerate(layer.get_weights()):
            arrays[f"w_{i}"] = w
        for i, g in enumerate(dtw):
            arrays[f"dw_{i}"] = np.asarray(g)
        meta = {"class_name": cls, "config": cfg, "n_inputs": len(xs), "n_weights": len(layer.get_weights()),
                "keras_version": keras.__version__}
        np.savez(os.path.join(OUT, name + ".npz"), meta=json.dumps(meta), **arrays)
        print(name, y.shape, file=sys.stderr)


if __name__ == "__main__":
    main()
