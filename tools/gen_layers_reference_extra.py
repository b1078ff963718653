#!/usr/bin/env python3
"""Writes Keras 3's values for the convolution-variant, normalisation, regularisation and
shape layers to tests/data/keras_layers_extra/<case>.npz.

usage: KERAS_BACKEND=jax /work/kvenv/bin/python tools/gen_layers_reference_extra.py [case ...]
       KERAS_BACKEND=jax /work/kvenv/bin/python tools/gen_layers_reference_extra.py --models

Each case builds one Keras layer from a config, sets seeded random weights, and
stores: the input ``x``, the weights ``w_i`` (Keras's order), the output ``y``
(inference), the upstream gradient ``u`` and, through ``jax.vjp`` of
``stateless_call``, ``dx`` and the weight gradients ``dw_i`` of ``sum(y * u)``
(plus the activity penalty, for layers that add one). ``meta`` (JSON) holds the
class name, the config and what else the case carries (a mask, a loss).
``--models`` instead saves small Sequential models using these layers as .keras files
(tests/data/keras_layers_extra/models) with an input and Keras's prediction.
"""
import inspect
import json
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "data",
                   "keras_layers_extra")

# (case name, class name, config, input shape, weight scale)
CASES = [
    # ------------------------------------------------------------- depthwise
    ("dw2d_valid", "DepthwiseConv2D", dict(kernel_size=3), (2, 7, 6, 3), 0.5),
    ("dw2d_same_s2_dm2", "DepthwiseConv2D", dict(kernel_size=3, strides=2, padding="same", depth_multiplier=2),
     (2, 7, 8, 3), 0.5),
    ("dw2d_dil2_relu", "DepthwiseConv2D", dict(kernel_size=3, padding="same", dilation_rate=2,
                                               activation="relu"), (2, 8, 7, 4), 0.5),
    ("dw2d_cf_dm2", "DepthwiseConv2D", dict(kernel_size=(2, 3), data_format="channels_first", depth_multiplier=2),
     (2, 3, 6, 7), 0.5),
    ("dw2d_nobias_s12", "DepthwiseConv2D", dict(kernel_size=(3, 2), strides=(1, 2), use_bias=False), (3, 6, 7, 2),
     0.5),
    ("dw1d_same_dm2", "DepthwiseConv1D", dict(kernel_size=3, padding="same", depth_multiplier=2), (2, 9, 3), 0.5),
    ("dw1d_s2_valid", "DepthwiseConv1D", dict(kernel_size=4, strides=2), (2, 11, 4), 0.5),
    ("dw1d_dil2_tanh", "DepthwiseConv1D", dict(kernel_size=3, dilation_rate=2, activation="tanh"), (2, 10, 3), 0.5),
    ("dw1d_cf", "DepthwiseConv1D", dict(kernel_size=3, padding="same", data_format="channels_first"), (2, 3, 8), 0.5),
    # ------------------------------------------------------------- separable
    ("sep2d_same_relu", "SeparableConv2D", dict(filters=5, kernel_size=3, padding="same", activation="relu"),
     (2, 6, 7, 3), 0.5),
    ("sep2d_s2_dm2", "SeparableConv2D", dict(filters=4, kernel_size=3, strides=2, depth_multiplier=2),
     (2, 9, 8, 3), 0.5),
    ("sep2d_dil2_same", "SeparableConv2D", dict(filters=6, kernel_size=3, dilation_rate=2, padding="same"),
     (2, 8, 8, 4), 0.5),
    ("sep2d_cf_nobias_tanh", "SeparableConv2D", dict(filters=3, kernel_size=(2, 3), data_format="channels_first",
                                                     use_bias=False, activation="tanh"), (2, 4, 6, 7), 0.5),
    ("sep1d_same", "SeparableConv1D", dict(filters=5, kernel_size=3, padding="same"), (2, 9, 3), 0.5),
    ("sep1d_s2_dm3_relu", "SeparableConv1D", dict(filters=4, kernel_size=3, strides=2, depth_multiplier=3,
                                                  activation="relu"), (2, 12, 2), 0.5),
    ("sep1d_cf_dil2", "SeparableConv1D", dict(filters=4, kernel_size=3, dilation_rate=2,
                                              data_format="channels_first"), (2, 3, 11), 0.5),
    # ------------------------------------------------------------- 3-D and grouped convolution
    ("conv3d_valid", "Conv3D", dict(filters=4, kernel_size=3), (2, 5, 6, 5, 3), 0.3),
    ("conv3d_same_s2", "Conv3D", dict(filters=3, kernel_size=(2, 3, 2), strides=2, padding="same",
                                      activation="relu"), (2, 5, 6, 7, 2), 0.3),
    ("conv3d_groups2", "Conv3D", dict(filters=6, kernel_size=2, groups=2), (2, 4, 5, 4, 4), 0.3),
    ("conv3d_dil2_same", "Conv3D", dict(filters=2, kernel_size=3, dilation_rate=2, padding="same"),
     (1, 6, 5, 6, 2), 0.3),
    ("conv3d_cf", "Conv3D", dict(filters=3, kernel_size=2, data_format="channels_first"), (2, 2, 4, 5, 4), 0.3),
    ("conv2d_groups2", "Conv2D", dict(filters=6, kernel_size=3, groups=2, padding="same"), (2, 6, 7, 4), 0.3),
    ("conv2d_groups3_s2", "Conv2D", dict(filters=3, kernel_size=3, groups=3, strides=2, activation="relu"),
     (2, 9, 8, 6), 0.3),
    ("conv2d_groups2_cf", "Conv2D", dict(filters=4, kernel_size=2, groups=2, data_format="channels_first"),
     (2, 4, 5, 6), 0.3),
    ("conv1d_groups2_causal", "Conv1D", dict(filters=4, kernel_size=3, groups=2, padding="causal",
                                             dilation_rate=2), (2, 10, 4), 0.3),
    ("conv1d_groups4", "Conv1D", dict(filters=8, kernel_size=3, groups=4, strides=2), (2, 11, 8), 0.3),
    # ------------------------------------------------------------- 3-D pooling
    ("maxpool3d_valid", "MaxPooling3D", dict(pool_size=2), (2, 4, 5, 6, 3), 0),
    ("maxpool3d_same_s2", "MaxPooling3D", dict(pool_size=3, strides=2, padding="same"), (2, 5, 6, 5, 2), 0),
    ("maxpool3d_cf", "MaxPooling3D", dict(pool_size=(2, 2, 1), data_format="channels_first"), (2, 3, 4, 4, 3), 0),
    ("avgpool3d_valid", "AveragePooling3D", dict(pool_size=2, strides=1), (2, 4, 5, 4, 3), 0),
    ("avgpool3d_same_s2", "AveragePooling3D", dict(pool_size=3, strides=2, padding="same"), (2, 5, 6, 5, 2), 0),
    ("avgpool3d_cf", "AveragePooling3D", dict(pool_size=2, data_format="channels_first"), (2, 3, 4, 4, 5), 0),
    ("gap3d", "GlobalAveragePooling3D", dict(), (2, 3, 4, 5, 3), 0),
    ("gap3d_cf_keep", "GlobalAveragePooling3D", dict(data_format="channels_first", keepdims=True),
     (2, 3, 4, 5, 3), 0),
    ("gmp3d", "GlobalMaxPooling3D", dict(), (2, 3, 4, 5, 3), 0),
    ("gmp3d_cf_keep", "GlobalMaxPooling3D", dict(data_format="channels_first", keepdims=True), (2, 3, 4, 5, 3), 0),
    # ------------------------------------------------------------- normalisation
    ("groupnorm_g2", "GroupNormalization", dict(groups=2), (3, 5, 6), 0.5),
    ("groupnorm_instance", "GroupNormalization", dict(groups=-1, epsilon=1e-5), (3, 5, 4), 0.5),
    ("groupnorm_axis1", "GroupNormalization", dict(groups=3, axis=1), (3, 6, 5), 0.5),
    ("groupnorm_4d_nocenter", "GroupNormalization", dict(groups=4, center=False), (2, 3, 4, 8), 0.5),
    ("rmsnorm", "RMSNormalization", dict(), (4, 7), 0.5),
    ("rmsnorm_3d_eps", "RMSNormalization", dict(epsilon=1e-3), (3, 4, 6), 0.5),
    ("rmsnorm_axes12", "RMSNormalization", dict(axis=[1, 2]), (3, 4, 5), 0.5),
    ("unitnorm", "UnitNormalization", dict(), (4, 6), 0),
    ("unitnorm_axis1", "UnitNormalization", dict(axis=1), (3, 4, 5), 0),
    ("unitnorm_axes12", "UnitNormalization", dict(axis=[1, 2]), (3, 4, 5), 0),
    # ------------------------------------------------------------- regularisation (inference) and shape
    ("spatialdropout1d_infer", "SpatialDropout1D", dict(rate=0.5, seed=1), (2, 4, 3), 0),
    ("spatialdropout2d_infer", "SpatialDropout2D", dict(rate=0.5, seed=1), (2, 4, 3, 2), 0),
    ("spatialdropout3d_infer", "SpatialDropout3D", dict(rate=0.5, seed=1), (2, 2, 3, 2, 2), 0),
    ("gaussiannoise_infer", "GaussianNoise", dict(stddev=0.3, seed=1), (3, 4), 0),
    ("gaussiandropout_infer", "GaussianDropout", dict(rate=0.3, seed=1), (3, 4), 0),
    ("alphadropout_infer", "AlphaDropout", dict(rate=0.3, seed=1), (3, 4), 0),
    ("activityreg", "ActivityRegularization", dict(l1=0.01, l2=0.02), (3, 5), 0),
    ("repeatvector", "RepeatVector", dict(n=3), (2, 5), 0),
    ("permute_21", "Permute", dict(dims=(2, 1)), (2, 3, 5), 0),
    ("permute_312", "Permute", dict(dims=(3, 1, 2)), (2, 3, 4, 5), 0),
    ("masking", "Masking", dict(mask_value=0.0), (3, 5, 4), 0),
    ("identity", "Identity", dict(), (3, 4), 0),
]


def _case(name, cls_name, config, shape, wscale, seed):
    rng = np.random.default_rng(seed)
    layer = getattr(keras.layers, cls_name)(**config)
    x = rng.standard_normal(shape).astype(np.float32)
    if cls_name == "Masking":
        x[0, 1] = 0.0
        x[2, 3] = 0.0
        x[1, 0, :2] = 0.0  # partly zero: kept
    layer.build(shape)
    weights = []
    for w in layer.get_weights():
        if wscale:
            v = rng.standard_normal(w.shape).astype(np.float32) * np.float32(wscale)
            if w.ndim == 1 and "normalization" in cls_name.lower():
                v = v + 1  # gamma/scale around 1
        else:
            v = w
        weights.append(v)
    layer.set_weights(weights)
    tv = [v.value for v in layer.trainable_variables]
    ntv = [v.value for v in layer.non_trainable_variables]

    kw = {"training": False} if "training" in inspect.signature(layer.call).parameters else {}

    def f(xv, tvs):
        out, _ = layer.stateless_call(tvs, ntv, xv, **kw)
        # stateless_call runs ``call`` only: the activity penalty (Keras adds it in __call__,
        # divided by the batch size) is added here.
        if layer.activity_regularizer is not None:
            return out, layer.activity_regularizer(out) / out.shape[0]
        return out, jnp.float32(0)

    (y, loss), vjp = jax.vjp(f, jnp.asarray(x), tv)
    u = rng.standard_normal(np.shape(y)).astype(np.float32)
    dx, dws = vjp((jnp.asarray(u), jnp.float32(1.0)))
    out = {"x": x, "y": np.asarray(y), "u": u, "dx": np.asarray(dx)}
    for i, w in enumerate(weights):
        out[f"w_{i}"] = np.asarray(w)
    for i, g in enumerate(dws):
        out[f"dw_{i}"] = np.asarray(g)
    meta = {"class_name": cls_name, "config": config, "n_weights": len(weights),
            "weight_names": [v.name for v in layer.weights], "keras_version": keras.__version__,
            "loss": float(loss)}
    if cls_name == "Masking":
        out["mask"] = np.asarray(layer.compute_mask(jnp.asarray(x)))
    out["meta"] = np.array(json.dumps(meta))
    return out


def _models():
    """(name, model builder, input shape): whole models saved as .keras files."""
    L = keras.layers

    def sepnet():
        return keras.Sequential([
            keras.Input((10, 10, 3)), L.Conv2D(4, 3, padding="same"),
            L.SeparableConv2D(6, 3, padding="same", depth_multiplier=2, activation="relu"),
            L.DepthwiseConv2D(3, activation="tanh"), L.GroupNormalization(2), L.SpatialDropout2D(0.2),
            L.GlobalAveragePooling2D(), L.Dense(3, activation="softmax")])

    def vol3d():
        return keras.Sequential([
            keras.Input((6, 6, 6, 2)), L.Conv3D(4, 3, padding="same", activation="relu"),
            L.Conv3D(6, 2, groups=2), L.MaxPooling3D(2, padding="same"), L.AveragePooling3D(2, strides=1),
            L.GlobalMaxPooling3D(), L.Dense(2)])

    def seqnet():
        return keras.Sequential([
            keras.Input((7, 4)), L.SeparableConv1D(5, 3, padding="same"), L.DepthwiseConv1D(2),
            L.UnitNormalization(), L.RMSNormalization(), L.Permute((2, 1)), L.GaussianNoise(0.1),
            L.AlphaDropout(0.1), L.Flatten(), L.Dense(4), L.RepeatVector(2), L.Identity(),
            L.ActivityRegularization(l2=0.01), L.GlobalAveragePooling1D(), L.Dense(2)])

    return [("sepnet", sepnet, (4, 10, 10, 3)), ("vol3d", vol3d, (3, 6, 6, 6, 2)), ("seqnet", seqnet, (4, 7, 4))]


def write_models():
    folder = os.path.join(OUT, "models")
    os.makedirs(folder, exist_ok=True)
    for k, (name, build, shape) in enumerate(_models()):
        keras.utils.set_random_seed(k)
        model = build()
        model.compile(optimizer="adam", loss="mse")
        x = np.random.default_rng(k).standard_normal(shape).astype(np.float32)
        y = model.predict(x, verbose=0)
        model.save(os.path.join(folder, name + ".keras"))
        np.savez_compressed(os.path.join(folder, name + ".npz"), x=x, y=y)
        print(f"model {name}: {len(model.layers)} layers, prediction {y.shape}")


def main(argv):
    os.makedirs(OUT, exist_ok=True)
    if "--models" in argv:
        write_models()
        return
    only = set(argv[1:])
    for k, (name, cls_name, config, shape, wscale) in enumerate(CASES):
        if only and name not in only:
            continue
        data = _case(name, cls_name, config, shape, wscale, seed=1000 + k)
        np.savez_compressed(os.path.join(OUT, name + ".npz"), **data)
        print(f"{name}: y {data['y'].shape}, {len([d for d in data if d.startswith('dw_')])} weight grads")


if __name__ == "__main__":
    main(sys.argv)
