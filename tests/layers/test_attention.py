"""MultiHeadAttention, Attention and AdditiveAttention: Keras parity, gradients, masks, errors.

Keras's values come from tools/gen_attention_reference.py (Keras 3, JAX backend), stored in
tests/data/keras_attention. Parity is checked in float32 at rtol 1e-4, atol 1e-5 (outputs,
scores, input and weight gradients); gradients are also checked by finite differences in
float64.
"""
import glob
import io
import json
import os

import numpy as np
import pytest

import fastnet
from fastnet.layers import AdditiveAttention, Attention, MultiHeadAttention
from tests.helpers import assert_close, numeric_grad

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "data", "keras_attention")
RTOL, ATOL = 1e-4, 1e-5
CASES = sorted(os.path.basename(p)[:-4] for p in glob.glob(os.path.join(DATA, "*.npz")))


def _load(name):
    d = np.load(os.path.join(DATA, name + ".npz"))
    return {k: d[k] for k in d.files if k != "meta"}, json.loads(str(d["meta"]))


_MHA_KEYS = ("num_heads", "key_dim", "value_dim", "dropout", "use_bias", "output_shape", "attention_axes", "seed")


def _layer(meta):
    cfg = meta["config"]
    if meta["class_name"] == "MultiHeadAttention":
        return MultiHeadAttention(**{k: cfg[k] for k in _MHA_KEYS})
    if meta["class_name"] == "Attention":
        return Attention(use_scale=cfg["use_scale"], score_mode=cfg["score_mode"], dropout=cfg["dropout"],
                         seed=cfg["seed"])
    return AdditiveAttention(use_scale=cfg["use_scale"], dropout=cfg["dropout"], seed=cfg["seed"])


def _call(layer, meta, d, training=False):
    kw = dict(meta["call"])
    if meta["class_name"] == "MultiHeadAttention":
        if "key" in d:
            kw["key"] = d["key"]
        if "attention_mask" in d:
            kw["attention_mask"] = d["attention_mask"]
        return layer(d["query"], d["value"], training=training, **kw)
    inputs = [d[n] for n in meta["inputs"]]
    if "query_mask" in d or "value_mask" in d:
        kw["mask"] = [d.get("query_mask"), d.get("value_mask")]
    return layer(inputs, training=training, **kw)


@pytest.mark.parametrize("name", CASES)
def test_keras_parity(name):
    d, meta = _load(name)
    layer = _layer(meta)
    _call(layer, meta, d)  # builds
    n_w = len([k for k in d if k.startswith("w_")])
    assert len(layer.weights) == n_w
    layer.set_weights([d[f"w_{i}"] for i in range(n_w)])
    out = _call(layer, meta, d)
    scores = meta["call"]["return_attention_scores"]
    if scores:
        y, s = out
        assert_close(s, d["scores"], RTOL, ATOL, f"{name} scores")
        dy = [d["u_y"], d["u_s"]]
    else:
        y = out
        dy = d["u_y"]
    assert_close(y, d["y"], RTOL, ATOL, f"{name} output")
    grads = layer.backward(layer._last_ctx, dy)
    grads = [g for g in grads if g is not None]
    assert len(grads) == len(meta["inputs"])
    for n, g in zip(meta["inputs"], grads):
        assert_close(g, d["d_" + n], RTOL, ATOL, f"{name} d{n}")
    for i, var in enumerate(layer.trainable_weights):
        assert_close(var.grad, d[f"dw_{i}"], RTOL, ATOL, f"{name} d{var.path}")


def test_keras_config_deserializes():
    # the constructor config as Keras writes it (initializer dicts, dtype, seed, ...)
    for name in ("mha_cross_key", "mha_4d_axis1", "att_concat_scale", "add_scale"):
        d, meta = _load(name)
        layer = fastnet.layers.deserialize({"class_name": meta["class_name"], "config": meta["config"]})
        assert type(layer).__name__ == meta["class_name"]
        _call(layer, meta, d)
        layer.set_weights([d[f"w_{i}"] for i in range(len(layer.weights))])
        out = _call(layer, meta, d)
        y = out[0] if meta["call"]["return_attention_scores"] else out
        assert_close(y, d["y"], RTOL, ATOL, name)


def test_mha_weights_layout_and_names():
    layer = MultiHeadAttention(num_heads=3, key_dim=4, value_dim=5, output_shape=(2, 7), name="mha")
    layer(np.zeros((2, 6, 8), np.float32), np.zeros((2, 9, 10), np.float32), key=np.zeros((2, 9, 11), np.float32))
    shapes = [tuple(w.shape) for w in layer.get_weights()]
    assert shapes == [(8, 3, 4), (3, 4), (11, 3, 4), (3, 4), (10, 3, 5), (3, 5), (3, 5, 2, 7), (2, 7)]
    assert [v.path for v in layer.weights][::2] == ["mha/query/kernel", "mha/key/kernel", "mha/value/kernel",
                                                     "mha/attention_output/kernel"]
    assert layer.count_params() == sum(int(np.prod(s)) for s in shapes)
    # the sub-layers the saving code walks: Keras's paths layers/<mha>/{query,key,value,output}_dense/vars
    from fastnet.saving.saving_lib import _children, _own_variables

    children = _children(layer)
    assert [n for n, _ in children] == ["key_dense", "output_dense", "query_dense", "value_dense"]
    assert _own_variables(layer, children) == []
    assert [v.name for v in layer.query_dense.weights] == ["kernel", "bias"]


def test_mha_build_config_round_trip():
    layer = MultiHeadAttention(2, 3, attention_axes=-2)
    layer(np.zeros((1, 4, 5), np.float32), np.zeros((1, 6, 5), np.float32))
    cfg = layer.get_config()
    assert cfg["attention_axes"] == [1] and cfg["value_dim"] == 3 and cfg["use_gate"] is False
    clone = MultiHeadAttention.from_config(cfg)
    clone.build_from_config(layer.get_build_config())
    assert clone.built and [w.shape for w in clone.get_weights()] == [w.shape for w in layer.get_weights()]
    assert layer.get_build_config() == {"shapes_dict": {"query_shape": [None, 4, 5], "value_shape": [None, 6, 5]}}


def test_mha_query_and_value_masks_equal_the_attention_mask():
    rng = np.random.default_rng(0)
    q = rng.standard_normal((2, 5, 6)).astype(np.float32)
    v = rng.standard_normal((2, 7, 6)).astype(np.float32)
    qm = rng.random((2, 5)) > 0.3
    vm = rng.random((2, 7)) > 0.3
    vm[:, 0] = True
    layer = MultiHeadAttention(2, 4)
    a, sa = layer(q, v, query_mask=qm, value_mask=vm, return_attention_scores=True)
    b, sb = layer(q, v, attention_mask=qm[:, :, None] & vm[:, None, :], return_attention_scores=True)
    np.testing.assert_allclose(a, b, rtol=1e-6)
    np.testing.assert_allclose(sa, sb, rtol=1e-6)
    # masked-out query rows: probabilities 0
    assert np.all(sa[~qm[:, None, :].repeat(2, axis=1)] == 0)
    # a key mask only counts where given; masks of another shape are refused
    c = layer(q, v, key_mask=vm)
    d = layer(q, v, value_mask=vm)
    np.testing.assert_allclose(c, d, rtol=1e-6)
    with pytest.raises(ValueError, match="value_mask must have shape"):
        layer(q, v, value_mask=vm[:, :5])


def test_mha_causal_mask_is_lower_triangular():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 6, 4)).astype(np.float32)
    layer = MultiHeadAttention(2, 2)
    y, s = layer(x, x, use_causal_mask=True, return_attention_scores=True)
    assert np.all(np.triu(s[0, 0], 1) == 0)
    np.testing.assert_allclose(s.sum(-1), 1, rtol=1e-5)
    # the first query sees only itself, so its output does not depend on later steps
    x2 = x.copy()
    x2[:, 1:] += 1
    np.testing.assert_allclose(layer(x2, x2, use_causal_mask=True)[:, 0], y[:, 0], rtol=1e-5, atol=1e-6)


def test_mha_sliding_window():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 7, 4)).astype(np.float32)
    layer = MultiHeadAttention(1, 3, sliding_window=2)
    _, s = layer(x, x, return_attention_scores=True)
    i, j = np.indices((7, 7))
    assert np.all(s[0, 0][np.abs(i - j) >= 2] == 0) and np.all(s[0, 0][np.abs(i - j) < 2] > 0)


def _fd_check(fwd, layer, arrays, u, rtol=1e-6, atol=1e-8):
    """Finite differences (float64) of sum(outputs * u) against backward for each array and weight."""
    out = fwd(*arrays)
    outs = list(out) if isinstance(out, tuple) else [out]
    us = u if isinstance(u, list) else [u]
    grads = layer.backward(layer._last_ctx, us if isinstance(out, tuple) else us[0])
    grads = [g for g in grads if g is not None]
    wgrads = [v.grad.copy() for v in layer.trainable_weights]
    assert len(outs) == len(us)

    def loss(*xs):
        o = fwd(*xs)
        o = list(o) if isinstance(o, tuple) else [o]
        return float(sum(np.sum(a * b) for a, b in zip(o, us)))

    for i, (x, g) in enumerate(zip(arrays, grads)):
        def f(xv, i=i):
            xs = list(arrays)
            xs[i] = xv
            return loss(*xs)
        np.testing.assert_allclose(g, numeric_grad(f, x), rtol=rtol, atol=atol, err_msg=f"input {i}")
    for var, g in zip(layer.trainable_weights, wgrads):
        def fw(wv, var=var):
            old = var.value.copy()
            var.value[...] = wv
            try:
                return loss(*arrays)
            finally:
                var.value[...] = old
        np.testing.assert_allclose(g, numeric_grad(fw, var.value), rtol=rtol, atol=atol, err_msg=var.path)


@pytest.mark.parametrize("kind", ["cross_masked", "causal_scores", "axes1_4d", "output_shape", "dropout"])
def test_mha_finite_differences(kind):
    rng = np.random.default_rng(3)
    r = rng.standard_normal
    if kind == "axes1_4d":
        layer = MultiHeadAttention(2, 3, attention_axes=1, dtype="float64", bias_initializer="ones")
        q, v = r((2, 3, 2, 4)), r((2, 4, 2, 4))
        arrays, kw = [q, v], {"return_attention_scores": True}
    elif kind == "output_shape":
        layer = MultiHeadAttention(2, 3, value_dim=2, output_shape=(2, 2), dtype="float64")
        arrays, kw = [r((2, 3, 4)), r((2, 5, 3)), r((2, 5, 2))], {}
    else:
        layer = MultiHeadAttention(2, 3, value_dim=4, dtype="float64", bias_initializer="ones",
                                   dropout=0.4 if kind == "dropout" else 0.0)
        arrays = [r((2, 4, 5)), r((2, 6, 3)), r((2, 6, 2))]
        mask = rng.random((2, 4, 6)) > 0.3
        kw = {"attention_mask": mask} if kind != "causal_scores" else {
            "use_causal_mask": True, "return_attention_scores": True}
        if kind == "causal_scores":
            arrays = [r((2, 5, 5)), r((2, 5, 3)), r((2, 5, 2))]
    training = kind == "dropout"
    if training:
        layer._next_seed = lambda: 12345  # one dropout mask for every evaluation

    def fwd(*xs):
        if len(xs) == 3:
            return layer(xs[0], xs[1], key=xs[2], training=training, **kw)
        return layer(xs[0], xs[1], training=training, **kw)

    out = fwd(*arrays)
    u = [r(np.shape(o)) for o in out] if isinstance(out, tuple) else r(out.shape)
    _fd_check(fwd, layer, arrays, u)


def test_mha_dropout_training_only_and_seeded():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 8, 6)).astype(np.float32)
    a = MultiHeadAttention(2, 3, dropout=0.5, seed=7)
    b = MultiHeadAttention(2, 3, dropout=0.5, seed=7)
    a(x, x)
    b(x, x)
    b.set_weights(a.get_weights())
    np.testing.assert_array_equal(a(x, x, training=True), b(x, x, training=True))
    infer = a(x, x)
    assert not np.allclose(a(x, x, training=True), infer)
    np.testing.assert_array_equal(a(x, x, training=False), infer)
    # the returned scores are the probabilities before dropout, as in Keras
    _, s = a(x, x, training=True, return_attention_scores=True)
    np.testing.assert_allclose(s.sum(-1), 1, rtol=1e-5)


def test_mha_backward_skips_dx_when_not_needed():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 4, 6)).astype(np.float32)
    layer = MultiHeadAttention(2, 3)
    y = layer(x, x)
    ctx = layer._last_ctx
    ctx.need_dx = False
    assert layer.backward(ctx, np.ones_like(y)) == [None, None]
    assert layer.trainable_weights[0].grad is not None


def test_mha_errors():
    with pytest.raises(ValueError, match="num_heads"):
        MultiHeadAttention(0, 4)
    with pytest.raises(ValueError, match="key_dim"):
        MultiHeadAttention(2, 4.5)
    with pytest.raises(ValueError, match="dropout"):
        MultiHeadAttention(2, 4, dropout=1.0)
    with pytest.raises(ValueError, match="use_gate"):
        MultiHeadAttention(2, 4, use_gate=True)
    with pytest.raises(ValueError, match="attention_axes"):
        MultiHeadAttention(2, 4, attention_axes="1")
    x = np.zeros((2, 3, 4), np.float32)
    with pytest.raises(ValueError, match="attention_axes must be distinct axes among"):
        MultiHeadAttention(2, 4, attention_axes=2)(x, x)
    with pytest.raises(ValueError, match="except the last one"):
        MultiHeadAttention(2, 4)(x, x, key=np.zeros((2, 5, 4), np.float32))
    with pytest.raises(ValueError, match="rank >= 3"):
        MultiHeadAttention(2, 4)(np.zeros((2, 4), np.float32), np.zeros((2, 4), np.float32))
    x4 = np.zeros((2, 3, 3, 4), np.float32)
    with pytest.raises(ValueError, match="use_causal_mask and sliding_window need attention over one axis"):
        MultiHeadAttention(2, 4)(x4, x4, use_causal_mask=True)
    layer = MultiHeadAttention(2, 4)
    layer(x, x)
    with pytest.raises(ValueError, match="was built for query shape"):
        layer(np.zeros((2, 3, 5), np.float32), x)
    with pytest.raises(ValueError, match="does not broadcast"):
        layer(x, x, attention_mask=np.ones((2, 3, 4), bool))
    with pytest.raises(ValueError, match="needs query and value"):
        layer(x)
    with pytest.raises(TypeError, match="unexpected call arguments"):
        layer(x, x, mask=None)


@pytest.mark.parametrize("kind", ["dot_scale_masks", "dot_causal_key", "concat_scale", "concat", "additive",
                                  "additive_noscale", "dropout"])
def test_attention_finite_differences(kind):
    rng = np.random.default_rng(6)
    r = rng.standard_normal
    mask = None
    if kind.startswith("additive"):
        layer = AdditiveAttention(use_scale=kind == "additive", dtype="float64")
    elif kind.startswith("concat"):
        layer = Attention(score_mode="concat", use_scale=kind == "concat_scale", dtype="float64")
    else:
        layer = Attention(use_scale=kind != "dot_causal_key", dtype="float64", dropout=0.3 if kind == "dropout" else 0)
    with_key = kind in ("dot_causal_key", "concat")
    arrays = [r((2, 4, 3)), r((2, 5, 2 if with_key else 3))] + ([r((2, 5, 3))] if with_key else [])
    kw = {"return_attention_scores": True}
    if kind in ("dot_scale_masks", "additive", "concat_scale"):
        mask = [np.array([[1, 0, 1, 1], [1, 1, 1, 0]], bool), np.array([[1, 1, 0, 1, 1], [0, 1, 1, 1, 0]], bool)]
        kw["mask"] = mask
    if kind == "dot_causal_key":
        kw["use_causal_mask"] = True
        arrays[0] = r((2, 5, 3))
    training = kind == "dropout"
    if training:
        layer._next_seed = lambda: 99
    layer([*arrays])  # build
    if layer.scale is not None:
        layer.scale.value[...] = 0.6 + 0.2 * rng.random(layer.scale.shape)
    if layer.concat_score_weight is not None:
        layer.concat_score_weight.value[...] = 1.3

    def fwd(*xs):
        return layer(list(xs), training=training, **kw)

    out = fwd(*arrays)
    _fd_check(fwd, layer, arrays, [r(np.shape(o)) for o in out])


def test_attention_masks_and_errors():
    rng = np.random.default_rng(7)
    q = rng.standard_normal((2, 3, 4)).astype(np.float32)
    v = rng.standard_normal((2, 5, 4)).astype(np.float32)
    layer = Attention()
    qm = np.array([[1, 0, 1], [1, 1, 1]], bool)
    vm = np.array([[1, 1, 0, 0, 1], [1, 1, 1, 1, 1]], bool)
    y, s = layer([q, v], mask=[qm, vm], return_attention_scores=True)
    assert np.all(y[0, 1] == 0) and np.all(s[0, :, 2:4] == 0)
    assert layer.compute_mask([q, v], [qm, vm]) is not None
    assert layer.compute_output_shape([(None, 3, 4), (None, 5, 6)]) == (None, 3, 6)
    with pytest.raises(ValueError, match="must be called on a list of inputs"):
        layer(q)
    with pytest.raises(ValueError, match="length 2 or 3"):
        layer([q])
    with pytest.raises(ValueError, match="score_mode"):
        Attention(score_mode="general")
    with pytest.raises(ValueError, match="same last dimension"):
        Attention()([q, v, np.zeros((2, 5, 3), np.float32)])
    cfg = AdditiveAttention(use_scale=False, dropout=0.1).get_config()
    assert "score_mode" not in cfg and cfg["use_scale"] is False and cfg["dropout"] == 0.1
    assert Attention.from_config(Attention(score_mode="concat", use_scale=True).get_config()).score_mode == "concat"


def test_layers_registered():
    for name in ("MultiHeadAttention", "Attention", "AdditiveAttention"):
        assert name in fastnet.layers.__all__
        assert fastnet.layers.get(name) is getattr(fastnet.layers, name)


SAVED = os.path.join(DATA, "saved")


def _keras_file_parts(path):
    import zipfile

    with zipfile.ZipFile(path) as z:
        return json.loads(z.read("config.json")), z


def test_keras_saved_transformer_predicts():
    # A functional model saved by Keras 3 (TensorFlow backend): Embedding -> MHA(x, x) -> Add ->
    # LayerNormalization -> Dense relu -> Dense -> Add -> LayerNormalization -> pooling -> Dense
    # softmax. Its MHA config (attention_axes [1], shapes_dict build config) is rebuilt from the
    # file, and the model's forward pass replayed with fastnet layers against Keras's predict.
    config, _ = _keras_file_parts(os.path.join(SAVED, "transformer.keras"))
    d = np.load(os.path.join(SAVED, "transformer.npz"))
    paths = json.loads(str(d["meta"]))["weight_paths"]
    w = {p: d[f"w_{i}"] for i, p in enumerate(paths)}
    spec = next(entry for entry in config["config"]["layers"] if entry["class_name"] == "MultiHeadAttention")
    mha = fastnet.layers.deserialize(spec)
    assert mha.built and mha.attention_axes == (1,)
    mha.set_weights([w[v.path] for v in mha.weights])
    L = fastnet.layers
    layers = {"embedding": (L.Embedding(20, 16), (None, 7)),
              "layer_normalization": (L.LayerNormalization(epsilon=1e-6), (None, 7, 16)),
              "dense_7": (L.Dense(32, activation="relu"), (None, 7, 16)),
              "dense_6": (L.Dense(16), (None, 7, 32)),
              "layer_normalization_1": (L.LayerNormalization(epsilon=1e-6), (None, 7, 16)),
              "dense_8": (L.Dense(2, activation="softmax"), (None, 16))}
    for name, (layer, shape) in layers.items():
        layer.build(shape)
        layer.built = True
        layer.set_weights([w[p] for p in paths if p.split("/")[0] == name])
    f = {name: layer for name, (layer, _) in layers.items()}
    e = f["embedding"](d["x_0"])
    h = f["layer_normalization"](e + mha(e, e))
    h = f["layer_normalization_1"](h + f["dense_6"](f["dense_7"](h)))
    assert_close(f["dense_8"](h.mean(axis=1)), d["predict_"], 1e-4, 1e-5, "transformer predict")


def test_keras_weights_file_layout_matches_sub_layers():
    h5py = pytest.importorskip("h5py")
    import zipfile

    config, _ = _keras_file_parts(os.path.join(SAVED, "transformer.keras"))
    spec = next(entry for entry in config["config"]["layers"] if entry["class_name"] == "MultiHeadAttention")
    mha = fastnet.layers.deserialize(spec)
    with zipfile.ZipFile(os.path.join(SAVED, "transformer.keras")) as z:
        with h5py.File(io.BytesIO(z.read("model.weights.h5")), "r") as h:
            group = h["layers/multi_head_attention"]
            assert len(group["vars"]) == 0  # the layer's own variables: none, all in sub-layers
            for attr in ("query_dense", "key_dense", "value_dense", "output_dense"):
                sub = getattr(mha, attr)
                stored = [group[f"{attr}/vars/{i}"][()] for i in range(len(group[f"{attr}/vars"]))]
                assert [s.shape for s in stored] == [tuple(v.shape) for v in sub.weights]
            # fastnet's weight reader maps the file onto the layer, sub-layer by sub-layer ...
            from fastnet.saving import saving_lib

            plan = saving_lib._Plan("test", skip_mismatch=False)
            saving_lib._plan_layer(h, "layers/multi_head_attention", mha, set(), plan)
            assert sorted(var.path for var, _ in plan.assignments) == sorted(v.path for v in mha.weights)
            for var, value in plan.assignments:
                var.assign(value)
            expected = [group[f"{a}/vars/{i}"][()] for a in ("query_dense", "key_dense", "value_dense",
                                                             "output_dense") for i in range(2)]
    for got, want in zip(mha.get_weights(), expected):
        np.testing.assert_array_equal(got, want)
    # ... and its writer lays the layer out as Keras does
    buf = io.BytesIO()
    with h5py.File(buf, "w") as h:
        saving_lib._write_layer(h, "layers/multi_head_attention", mha, set())
        names = []
        h.visit(names.append)
    assert sorted(n for n in names if n.count("/") == 4) == sorted(
        f"layers/multi_head_attention/{a}/vars/{i}" for a in ("key_dense", "output_dense", "query_dense",
                                                              "value_dense") for i in range(2))


def _mha_numpy(layer, query, value, key=None):
    """MultiHeadAttention over axis 1 in numpy from the layer's weights (no mask, no dropout)."""
    key = value if key is None else key
    wq, bq, wk, bk, wv, bv, wo, bo = layer.get_weights()
    q = np.einsum("bte,ehd->bthd", query, wq) + bq
    k = np.einsum("bse,ehd->bshd", key, wk) + bk
    v = np.einsum("bse,ehd->bshd", value, wv) + bv
    s = np.einsum("bthd,bshd->bhts", q, k) / np.sqrt(wq.shape[-1])
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return np.einsum("bhts,bshd,hdo->bto", p, v, wo) + bo


def test_mha_packed_projections_match_separate_ones():
    # self-attention (query is value: one GEMM for the three projections), key and value
    # packed (query apart) and three separate projections give the same values and gradients
    rng = np.random.default_rng(21)
    x = rng.standard_normal((3, 7, 6)).astype(np.float32)
    layer = MultiHeadAttention(2, 4, value_dim=3, bias_initializer="glorot_uniform")
    layer(x, x)
    layer.set_weights([rng.standard_normal(w.shape).astype(np.float32) * 0.5 for w in layer.get_weights()])
    want = _mha_numpy(layer, x.astype(np.float64), x.astype(np.float64))
    u = rng.standard_normal(want.shape).astype(np.float32)
    runs = {}
    for mode, args, kw in (("qkv", (x, x), {}), ("kv", (x, x.copy()), {}), ("sep", (x, x.copy()), {"key": x.copy()})):
        y = layer(*args, **kw)
        assert layer._last_ctx.mode == mode
        np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-5, err_msg=mode)
        grads = layer.backward(layer._last_ctx, u)
        # (self-attention returns query's gradient whole and None for value: the same tensor)
        runs[mode] = (sum(g for g in grads if g is not None), [v.grad.copy() for v in layer.trainable_weights])
    for mode in ("qkv", "kv"):
        np.testing.assert_allclose(runs[mode][0], runs["sep"][0], rtol=1e-4, atol=1e-5, err_msg=mode)
        for a, b, v in zip(runs[mode][1], runs["sep"][1], layer.trainable_weights):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5, err_msg=f"{mode} {v.path}")


@pytest.mark.parametrize("masked", [False, True])
def test_mha_self_attention_finite_differences(masked):
    # the packed path: the gradient with respect to x (query and value) comes whole
    rng = np.random.default_rng(22)
    layer = MultiHeadAttention(2, 3, value_dim=2, dtype="float64", bias_initializer="ones", dropout=0.3)
    layer._next_seed = lambda: 4321
    x = rng.standard_normal((2, 5, 4))
    kw = {"attention_mask": rng.random((2, 5, 5)) > 0.3, "use_causal_mask": True} if masked else {}

    def fwd(xv):
        return layer(xv, xv, training=True, **kw)

    u = rng.standard_normal(fwd(x).shape)
    assert layer._last_ctx.mode == "qkv"
    dq, dv = layer.backward(layer._last_ctx, u)[:2]
    assert dv is None  # query's gradient is x's whole
    wgrads = [v.grad.copy() for v in layer.trainable_weights]
    np.testing.assert_allclose(dq, numeric_grad(lambda xv: float(np.sum(fwd(xv) * u)), x),
                               rtol=1e-6, atol=1e-8)
    for var, g in zip(layer.trainable_weights, wgrads):
        def fw(wv, var=var):
            old = var.value.copy()
            var.value[...] = wv
            try:
                return float(np.sum(fwd(x) * u))
            finally:
                var.value[...] = old
        np.testing.assert_allclose(g, numeric_grad(fw, var.value), rtol=1e-6, atol=1e-8, err_msg=var.path)


def test_mha_cross_attention_packed_key_value_finite_differences():
    # query apart, key = value packed into one GEMM
    rng = np.random.default_rng(23)
    layer = MultiHeadAttention(2, 3, dtype="float64", bias_initializer="ones")
    q, v = rng.standard_normal((2, 4, 5)), rng.standard_normal((2, 6, 3))
    qm = rng.random((2, 4)) > 0.2
    out = layer(q, v, query_mask=qm)
    assert layer._last_ctx.mode == "kv"
    _fd_check(lambda a, b: layer(a, b, query_mask=qm), layer, [q, v], rng.standard_normal(out.shape))
