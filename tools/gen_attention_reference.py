"""Generates tests/data/keras_attention/*.npz: Keras 3 values for the attention layers.

Run with Keras 3 on its JAX backend (not a fastnet dependency):

    KERAS_BACKEND=jax /path/to/keras-venv/bin/python tools/gen_attention_reference.py

Each case stores the inputs, masks, the layer's weights (random, biases included), its
outputs (and attention scores), random cotangents, and the gradients of
``sum(y * u_y) [+ sum(scores * u_s)]`` with respect to every tensor input and every
trainable weight, taken with ``jax.vjp`` through ``layer.stateless_call``.
``meta`` (JSON) holds the class name, constructor config, call keywords and the names of
the stored inputs.
"""
import json
import os

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402
import keras  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "tests", "data", "keras_attention")


def _rand(rng, shape):
    return rng.standard_normal(shape).astype(np.float32)


def _mask(rng, shape, p=0.3, keep_rows=True):
    m = rng.random(shape) > p
    if keep_rows:  # at least one allowed key per query row
        m[..., 0] = True
    return m


def _run(name, layer, arrays, call, scores, rng, order):
    """arrays: dict of named float inputs (differentiated); call(layer_inputs_dict) -> kwargs."""
    tv = [v.value for v in layer.trainable_variables]
    ntv = [v.value for v in layer.non_trainable_variables]
    names = list(order)

    def f(tv_, *xs):
        env = dict(zip(names, xs))
        args, kwargs = call(env)
        out, _ = layer.stateless_call(tv_, ntv, *args, **kwargs)
        return out

    xs = [arrays[n] for n in names]
    out, vjp = jax.vjp(f, tv, *xs)
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    cots = [_rand(rng, np.shape(o)) for o in outs]
    grads = vjp(tuple(cots) if isinstance(out, (tuple, list)) else cots[0])
    dw, dxs = grads[0], grads[1:]
    data = {}
    for n in names:
        data[n] = arrays[n]
    data["y"] = np.asarray(outs[0])
    data["u_y"] = cots[0]
    if scores:
        data["scores"] = np.asarray(outs[1])
        data["u_s"] = cots[1]
    for n, g in zip(names, dxs):
        data["d_" + n] = np.asarray(g)
    for i, w in enumerate(layer.get_weights()):
        data[f"w_{i}"] = w
    for i, g in enumerate(dw):
        data[f"dw_{i}"] = np.asarray(g)
    return data


def _save(name, data, meta):
    meta = dict(meta)
    data = dict(data)
    data["meta"] = np.array(json.dumps(meta))
    np.savez_compressed(os.path.join(OUT, name + ".npz"), **data)
    print(name, {k: v.shape for k, v in data.items() if k != "meta"})


def _set_random_weights(layer, rng, scale=0.4):
    layer.set_weights([(rng.standard_normal(w.shape) * scale).astype(np.float32) for w in layer.get_weights()])


# Keras routes MultiHeadAttention through its fused dot-product attention when no scores are
# returned, no dropout is set and inputs are (B, T, dim); that path needs value_dim == key_dim,
# so cases with other value sizes ask for the scores (Keras's explicit path).
def mha_case(name, rng, config, q_shape, v_shape, k_shape=None, self_attention=False, attention_mask=None,
             causal=False, scores=False):
    layer = keras.layers.MultiHeadAttention(**config)
    q = _rand(rng, q_shape)
    arrays = {"query": q}
    if self_attention:
        arrays["value"] = q.copy()
    else:
        arrays["value"] = _rand(rng, v_shape)
    if k_shape is not None:
        arrays["key"] = _rand(rng, k_shape)
    layer.build(q_shape, arrays["value"].shape, None if k_shape is None else k_shape)
    _set_random_weights(layer, rng)
    order = ["query", "value"] + (["key"] if k_shape is not None else [])
    extra = {}
    if attention_mask is not None:
        extra["attention_mask"] = attention_mask

    def call(env):
        kw = dict(extra, return_attention_scores=scores, use_causal_mask=causal)
        if "key" in env:
            kw["key"] = env["key"]
        return (env["query"], env["value"]), kw

    data = _run(name, layer, arrays, call, scores, rng, order)
    if attention_mask is not None:
        data["attention_mask"] = attention_mask
    call_kw = {"use_causal_mask": causal, "return_attention_scores": scores}
    _save(name, data, {"class_name": "MultiHeadAttention", "config": layer.get_config() | {"dtype": "float32"},
                       "call": call_kw, "inputs": order, "self_attention": self_attention})


def attention_case(name, rng, cls, config, q_shape, v_shape, k_shape=None, q_mask=None, v_mask=None,
                   causal=False, scores=False, weights=None):
    layer = getattr(keras.layers, cls)(**config)
    arrays = {"query": _rand(rng, q_shape), "value": _rand(rng, v_shape)}
    order = ["query", "value"]
    if k_shape is not None:
        arrays["key"] = _rand(rng, k_shape)
        order.append("key")
    layer.build([q_shape, v_shape] + ([k_shape] if k_shape is not None else []))
    if weights is not None:
        layer.set_weights([np.asarray(w, dtype=np.float32) for w in weights])
    else:
        _set_random_weights(layer, rng)
    mask = None if q_mask is None and v_mask is None else [q_mask, v_mask]

    def call(env):
        inputs = [env[n] for n in order]
        kw = {"return_attention_scores": scores, "use_causal_mask": causal}
        if mask is not None:
            kw["mask"] = mask
        return (inputs,), kw

    data = _run(name, layer, arrays, call, scores, rng, order)
    if q_mask is not None:
        data["query_mask"] = q_mask
    if v_mask is not None:
        data["value_mask"] = v_mask
    _save(name, data, {"class_name": cls, "config": layer.get_config() | {"dtype": "float32"},
                       "call": {"use_causal_mask": causal, "return_attention_scores": scores}, "inputs": order})


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(19)
    base = {"num_heads": 2, "key_dim": 4}
    mha_case("mha_self", rng, base, (3, 5, 8), (3, 5, 8), self_attention=True)
    mha_case("mha_self_scores", rng, base, (3, 5, 8), (3, 5, 8), self_attention=True, scores=True)
    mha_case("mha_cross_key", rng, {"num_heads": 3, "key_dim": 4, "value_dim": 5, "output_shape": 7},
             (2, 4, 6), (2, 6, 5), k_shape=(2, 6, 3),
             attention_mask=_mask(rng, (2, 4, 6)), scores=True)
    mha_case("mha_mask_no_scores", rng, {"num_heads": 2, "key_dim": 3}, (2, 6, 5), (2, 7, 4),
             attention_mask=_mask(rng, (2, 6, 7)))
    # a fully masked query row (query padding): probabilities 0 on the masked-softmax path
    m = _mask(rng, (2, 5, 6))
    m[1, 3, :] = False
    mha_case("mha_masked_row_scores", rng, base, (2, 5, 6), (2, 6, 6), attention_mask=m, scores=True)
    mha_case("mha_causal", rng, base, (2, 7, 6), (2, 7, 6), self_attention=True, causal=True)
    mha_case("mha_causal_scores_mask", rng, base, (2, 6, 6), (2, 6, 6), self_attention=True, causal=True,
             attention_mask=_mask(rng, (2, 6, 6)), scores=True)
    mha_case("mha_output_shape_nobias", rng, {"num_heads": 2, "key_dim": 3, "value_dim": 2, "use_bias": False,
                                              "output_shape": (2, 3)}, (2, 4, 5), (2, 3, 5), scores=True)
    mha_case("mha_dropout_infer", rng, {"num_heads": 2, "key_dim": 4, "dropout": 0.5, "seed": 3},
             (2, 5, 6), (2, 5, 6), self_attention=True, scores=True)
    mha_case("mha_4d_axis2", rng, {"num_heads": 2, "key_dim": 3, "attention_axes": (2,)}, (2, 3, 4, 5),
             (2, 3, 6, 5), scores=True)
    mha_case("mha_4d_axis1", rng, {"num_heads": 2, "key_dim": 3, "attention_axes": (1,)}, (2, 3, 4, 5),
             (2, 6, 4, 5), scores=True)
    mha_case("mha_4d_all_axes", rng, {"num_heads": 2, "key_dim": 3}, (2, 3, 4, 5), (2, 2, 3, 5), scores=True)

    qm = np.array([[1, 1, 1, 0, 1], [1, 0, 1, 1, 1]], dtype=bool)
    vm = np.array([[1, 1, 0, 1, 1, 0], [1, 1, 1, 1, 0, 0]], dtype=bool)
    attention_case("att_dot", rng, "Attention", {}, (2, 5, 4), (2, 6, 3), k_shape=(2, 6, 4), scores=True)
    attention_case("att_dot_masks", rng, "Attention", {}, (2, 5, 4), (2, 6, 4), q_mask=qm, v_mask=vm, scores=True)
    attention_case("att_dot_scale_causal", rng, "Attention", {"use_scale": True}, (2, 6, 4), (2, 6, 4),
                   causal=True, scores=True, weights=[0.7])
    attention_case("att_concat", rng, "Attention", {"score_mode": "concat"}, (2, 5, 4), (2, 6, 3),
                   k_shape=(2, 6, 4), v_mask=vm, scores=True, weights=[1.3])
    attention_case("att_concat_scale", rng, "Attention", {"score_mode": "concat", "use_scale": True},
                   (2, 5, 4), (2, 6, 4), q_mask=qm, weights=[0.8, 1.3])
    attention_case("att_dropout_infer", rng, "Attention", {"dropout": 0.4, "seed": 1}, (2, 5, 4), (2, 6, 4))
    attention_case("add_scale", rng, "AdditiveAttention", {}, (2, 5, 4), (2, 6, 3), k_shape=(2, 6, 4),
                   q_mask=qm, v_mask=vm, scores=True)
    attention_case("add_noscale_causal", rng, "AdditiveAttention", {"use_scale": False}, (2, 6, 4), (2, 6, 4),
                   causal=True, scores=True)


if __name__ == "__main__":
    main()
