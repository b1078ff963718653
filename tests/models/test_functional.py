"""The functional API: graphs of layer calls, several inputs and outputs, shared layers,
nested models, merge layers, and the executor's gradients."""
import json
import os
import threading

import numpy as np
import pytest
from helpers import numeric_grad

import fastnet as keras
from fastnet import layers
from fastnet.callbacks import Callback

HERE = os.path.dirname(os.path.abspath(__file__))
GRAPH_REF = os.path.join(HERE, "..", "data", "keras_graph")
FUNCTIONAL_REF = os.path.join(HERE, "..", "data", "keras_reference", "functional")

# One layer, float32 against Keras (tests/data/keras_graph, tools/gen_graph_layers_reference.py).
RTOL, ATOL = 1e-5, 1e-6


def _graph_cases():
    return sorted(f[:-4] for f in os.listdir(GRAPH_REF) if f.endswith(".npz"))


@pytest.mark.parametrize("name", _graph_cases())
def test_merge_and_activation_layers_match_keras(name):
    d = np.load(os.path.join(GRAPH_REF, name + ".npz"))
    meta = json.loads(str(d["meta"]))
    layer = getattr(layers, meta["class_name"])(**meta["config"])
    xs = [d[f"x_{k}"] for k in range(meta["n_inputs"])]
    arg = xs if len(xs) > 1 else xs[0]
    layer(arg)
    if meta["n_weights"]:
        layer.set_weights([d[f"w_{i}"] for i in range(meta["n_weights"])])
    y = layer(arg, training=True)
    np.testing.assert_allclose(y, d["y"], rtol=RTOL, atol=ATOL)
    ctx = layer._last_ctx
    dx = layer.backward(ctx, d["u"])
    dxs = dx if len(xs) > 1 else [dx]
    for k, g in enumerate(dxs):
        np.testing.assert_allclose(g, d[f"dx_{k}"], rtol=RTOL, atol=ATOL, err_msg=f"dx_{k}")
    for i, v in enumerate(layer.trainable_weights):
        np.testing.assert_allclose(v.grad, d[f"dw_{i}"], rtol=RTOL, atol=ATOL, err_msg=f"dw_{i}")


def _mlp_two_inputs(dtype=None):
    a = keras.Input((3,), name="a", dtype=dtype)
    b = keras.Input((2,), name="b", dtype=dtype)
    shared = layers.Dense(4, activation="tanh", name="shared", dtype=dtype)
    ha = shared(a)
    hb = shared(layers.Dense(3, name="lift", dtype=dtype)(b))   # the shared layer, called twice
    x = layers.concatenate([ha, hb, layers.multiply([ha, hb])], dtype=dtype)
    t = layers.Dense(4, activation="sigmoid", name="fan", dtype=dtype)(x)
    # ``t`` feeds three nodes (fan-out); Subtract/Maximum/Average differentiate each input.
    m = layers.maximum([t, layers.subtract([t, ha])], dtype=dtype)
    out = layers.Dense(2, name="out", dtype=dtype)(layers.average([m, t], dtype=dtype))
    return keras.Model([a, b], out)


def test_gradients_through_fan_out_and_a_shared_layer_match_finite_differences():
    """float64 finite differences of sum(model(x) * u) against the executor's backward:
    inputs and every weight, through a layer called twice and a tensor read three times."""
    model = _mlp_two_inputs(dtype="float64")
    rng = np.random.default_rng(0)
    xa, xb = rng.standard_normal((5, 3)), rng.standard_normal((5, 2))
    u = rng.standard_normal((5, 2))
    model([xa, xb])
    ctx_out = model([xa, xb], training=True)
    assert ctx_out.dtype == np.float64
    ctx = model._last_ctx
    dxa, dxb = model.backward(ctx, u)
    grads = {v.path: v.grad.copy() for v in model.trainable_weights}

    def loss_a(v):
        return float(np.sum(model([v, xb]) * u))

    def loss_b(v):
        return float(np.sum(model([xa, v]) * u))

    np.testing.assert_allclose(dxa, numeric_grad(loss_a, xa), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dxb, numeric_grad(loss_b, xb), rtol=1e-6, atol=1e-8)
    for var in model.trainable_weights:
        def loss_w(wv, var=var):
            old = var.value.copy()
            var.value[...] = wv
            try:
                return float(np.sum(model([xa, xb]) * u))
            finally:
                var.value[...] = old
        np.testing.assert_allclose(grads[var.path], numeric_grad(loss_w, var.value), rtol=1e-6, atol=1e-8,
                                   err_msg=var.path)


def test_shared_layer_weights_are_counted_once():
    model = _mlp_two_inputs()
    names = [v.path for v in model.weights]
    assert len(names) == len(set(names))
    assert {l.name for l in model.layers[:2]} == {"a", "b"}
    assert model.get_layer("shared").count_params() == 4 * 4


def test_two_outputs_train_with_dict_losses_weights_and_metrics():
    inp = keras.Input((6,), name="features")
    h = layers.Dense(8, activation="relu")(inp)
    cls = layers.Dense(3, activation="softmax", name="cls")(h)
    reg = layers.Dense(1, name="reg")(h)
    model = keras.Model(inp, {"cls": cls, "reg": reg})
    model.compile(optimizer="adam", loss={"cls": "sparse_categorical_crossentropy", "reg": "mse"},
                  loss_weights={"cls": 1.0, "reg": 0.5}, metrics={"cls": ["accuracy"], "reg": ["mae"]})
    rng = np.random.default_rng(1)
    x = rng.standard_normal((40, 6)).astype(np.float32)
    y = {"cls": rng.integers(0, 3, 40), "reg": rng.standard_normal((40, 1)).astype(np.float32)}
    hist = model.fit(x, y, batch_size=8, epochs=2, verbose=0, validation_data=(x, y))
    assert sorted(hist.history) == sorted(["loss", "cls_loss", "reg_loss", "cls_accuracy", "reg_mae",
                                           "val_loss", "val_cls_loss", "val_reg_loss", "val_cls_accuracy",
                                           "val_reg_mae"])
    ev = model.evaluate(x, y, verbose=0, return_dict=True)
    np.testing.assert_allclose(ev["loss"], ev["cls_loss"] + 0.5 * ev["reg_loss"], rtol=1e-5)
    pred = model.predict(x, verbose=0)
    assert set(pred) == {"cls", "reg"} and pred["cls"].shape == (40, 3) and pred["reg"].shape == (40, 1)
    # A list of targets in output order works too.
    listed = keras.Model(inp, [cls, reg])
    listed.compile(optimizer="sgd", loss=["sparse_categorical_crossentropy", "mse"])
    out = listed.fit(x, [y["cls"], y["reg"]], epochs=1, verbose=0)
    assert {"cls_loss", "reg_loss"} <= set(out.history)


def test_inputs_by_name_and_wrong_structures_are_refused_clearly():
    model = _mlp_two_inputs()
    model.compile("sgd", "mse")
    rng = np.random.default_rng(2)
    xa, xb = rng.random((6, 3), dtype=np.float32), rng.random((6, 2), dtype=np.float32)
    y = rng.random((6, 2), dtype=np.float32)
    by_list = model.predict([xa, xb], verbose=0)
    by_name = model.predict({"b": xb, "a": xa}, verbose=0)
    np.testing.assert_array_equal(by_list, by_name)
    with pytest.raises(ValueError, match=r"expects 2 inputs \['a', 'b'\], received a list of 1"):
        model.fit([xa], y, verbose=0)
    with pytest.raises(ValueError, match=r"lacks \['b'\]"):
        model.predict({"a": xa}, verbose=0)
    with pytest.raises(ValueError, match=r'Input "b" of model .* expected shape \(None, 2\), received input '
                                         r"with shape \(6, 3\)"):
        model.predict([xa, xa], verbose=0)


def test_nested_models_both_ways_and_a_model_called_twice():
    inner = keras.Sequential([layers.Dense(5, activation="relu"), layers.Dense(3)], name="inner")
    a = keras.Input((4,))
    b = keras.Input((4,))
    twice = layers.add([inner(a), inner(b)])   # the same model, called on two tensors
    outer = keras.Model([a, b], layers.Dense(1)(twice))
    assert len(outer.weights) == 4 + 2
    rng = np.random.default_rng(3)
    x1, x2 = rng.random((8, 4), dtype=np.float32), rng.random((8, 4), dtype=np.float32)
    want = inner.predict(x1, verbose=0) + inner.predict(x2, verbose=0)
    feat = keras.Model([a, b], twice)
    np.testing.assert_allclose(feat.predict([x1, x2], verbose=0), want, rtol=1e-6)
    # A functional model inside a Sequential one.
    f_in = keras.Input((4,))
    block = keras.Model(f_in, layers.Dense(3, activation="tanh")(f_in), name="block")
    seq = keras.Sequential([keras.Input((4,)), block, layers.Dense(1)])
    seq.compile("adam", "mse")
    hist = seq.fit(x1, x1[:, :1], epochs=3, verbose=0)
    assert hist.history["loss"][-1] < hist.history["loss"][0]
    assert len(seq.trainable_weights) == 4


def test_feature_extraction_from_a_layer_output():
    model = keras.Sequential([keras.Input((6,)), layers.Dense(5, activation="relu", name="hidden"),
                              layers.Dense(2, name="head")])
    extractor = keras.Model(model.input, model.get_layer("hidden").output)
    x = np.random.default_rng(4).random((3, 6), dtype=np.float32)
    h = extractor.predict(x, verbose=0)
    k, b = model.get_layer("hidden").get_weights()
    np.testing.assert_allclose(h, np.maximum(x @ k + b, 0), rtol=1e-5, atol=1e-6)
    assert extractor.output_shape == (None, 5)


def test_disconnected_graph_and_non_tensor_outputs_are_refused():
    a, b = keras.Input((3,), name="left"), keras.Input((3,), name="right")
    out = layers.Dense(1)(layers.add([a, b]))
    with pytest.raises(ValueError, match=r'Graph disconnected.*"right"'):
        keras.Model(a, out)
    with pytest.raises(TypeError, match="symbolic tensors"):
        keras.Model(a, np.zeros(3))


def test_predict_from_four_threads_gives_the_one_thread_numbers():
    inp = keras.Input((12, 12, 3))
    x = layers.Conv2D(8, 3, activation="relu", padding="same")(inp)
    x = layers.add([x, layers.Conv2D(8, 3, padding="same")(x)])
    x = layers.BatchNormalization()(x)
    x = layers.MaxPooling2D()(layers.ReLU()(x))
    out = layers.Dense(4, activation="softmax")(layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inp, out)
    rng = np.random.default_rng(5)
    data = [rng.random((80, 12, 12, 3), dtype=np.float32) for _ in range(4)]
    want = [model.predict(d, batch_size=16, verbose=0) for d in data]
    got = [None] * 4
    errors = []

    def run(i):
        try:
            for _ in range(3):
                got[i] = model.predict(data[i], batch_size=16, verbose=0)
                np.testing.assert_array_equal(got[i], want[i])
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_predict_inside_a_callback_does_not_disturb_training():
    def make():
        keras.backend.clear_session()
        m = keras.Sequential([keras.Input((5,)), layers.Dense(6, activation="relu"), layers.Dense(1)])
        m.compile("sgd", "mse")
        return m
    rng = np.random.default_rng(6)
    x, y = rng.random((64, 5), dtype=np.float32), rng.random((64, 1), dtype=np.float32)
    plain = make()
    w0 = plain.get_weights()
    plain.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)

    class PredictEachBatch(Callback):
        def on_train_batch_end(self, batch, logs=None):
            self.model.predict(x[:7], batch_size=3, verbose=0)

    probed = make()
    probed.set_weights(w0)
    probed.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0, callbacks=[PredictEachBatch()])
    for a, b in zip(plain.get_weights(), probed.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_config_round_trip_save_load_and_clone(tmp_path):
    model = _mlp_two_inputs()
    model.compile("adam", "mse")
    rng = np.random.default_rng(7)
    xa, xb = rng.random((4, 3), dtype=np.float32), rng.random((4, 2), dtype=np.float32)
    want = model.predict([xa, xb], verbose=0)
    cfg = model.get_config()
    shared = next(e for e in cfg["layers"] if e["name"] == "shared")
    assert len(shared["inbound_nodes"]) == 2
    assert cfg["input_layers"] == [["a", 0, 0], ["b", 0, 0]]
    again = keras.Model.from_config(cfg)
    again.set_weights(model.get_weights())
    np.testing.assert_allclose(again.predict([xa, xb], verbose=0), want, rtol=1e-6)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(loaded.predict([xa, xb], verbose=0), want, rtol=1e-6)
    assert [l.name for l in loaded.layers] == [l.name for l in model.layers]
    clone = keras.models.clone_model(model)
    assert clone is not model and len(clone.weights) == len(model.weights)
    assert clone.get_layer("shared") is not model.get_layer("shared")


@pytest.mark.parametrize("name", ["two_inputs", "residual_cnn", "shared_siamese", "multi_output", "nested",
                                  "seq_branches", "transformer"])
def test_keras_functional_files_train_to_keras_numbers(name):
    """The functional models Keras saved load, train, evaluate and predict as in Keras
    (several epochs: rtol 1e-3, atol 1e-4)."""
    d = np.load(os.path.join(FUNCTIONAL_REF, name + ".npz"))
    meta = json.loads(str(d["meta"]))
    xs = [d[f"x_{k}"] for k in range(meta["n_inputs"])]
    x = xs if meta["x_is_list"] else xs[0]
    y = {k: d[f"y_{k}"] for k in meta["y_keys"]} if meta["y_keys"] != [""] else d["y_"]
    model = keras.models.load_model(os.path.join(FUNCTIONAL_REF, name + ".keras"))
    hist = model.fit(x, y, shuffle=False, verbose=0, **meta["fit"])
    assert sorted(hist.history) == sorted(meta["history"])
    for k, v in meta["history"].items():
        np.testing.assert_allclose(hist.history[k], v, rtol=1e-3, atol=1e-4, err_msg=k)
    for i, w in enumerate(model.get_weights()):
        np.testing.assert_allclose(w, d[f"w_{i}"], rtol=1e-3, atol=1e-4, err_msg=meta["weight_paths"][i])
    ev = model.evaluate(x, y, verbose=0, return_dict=True)
    for k, v in meta["evaluate"].items():
        np.testing.assert_allclose(ev[k], v, rtol=1e-3, atol=1e-4, err_msg=k)
    p = model.predict(x, verbose=0)
    ps = p if isinstance(p, dict) else {"": p}
    for k in [f[len("predict_"):] for f in d.files if f.startswith("predict_")]:
        np.testing.assert_allclose(ps[k], d["predict_" + k], rtol=1e-3, atol=1e-4)


def test_merge_layers_refuse_bad_inputs_with_the_layer_named():
    a, b = keras.Input((3,)), keras.Input((4,))
    with pytest.raises(ValueError, match=r'Layer "add.*" \(Add\) cannot merge inputs of shapes \(None, 3\), '
                                         r"\(None, 4\)"):
        layers.Add()([a, b])
    with pytest.raises(ValueError, match=r"Subtract\) must be called on a list of exactly 2 tensors, received 3"):
        layers.Subtract()([a, a, a])
    with pytest.raises(ValueError, match=r"Concatenate\) needs inputs whose shapes match except along"):
        layers.Concatenate(axis=1)([keras.Input((2, 3)), keras.Input((2, 4))])
    with pytest.raises(ValueError, match=r"must be called on a list of tensors, received one tensor"):
        layers.Add()(a)


def test_symbolic_tensor_arithmetic_builds_merge_nodes():
    a, b = keras.Input((3,)), keras.Input((3,))
    model = keras.Model([a, b], (a + b) * a - b)
    xa, xb = np.ones((2, 3), np.float32) * 2, np.ones((2, 3), np.float32)
    np.testing.assert_allclose(model.predict([xa, xb], verbose=0), (xa + xb) * xa - xb)


def test_summary_of_a_functional_model_has_the_connected_to_column():
    keras.backend.clear_session()
    a, b = keras.Input((3,), name="a"), keras.Input((2,), name="b")
    shared = layers.Dense(4, name="shared")
    h = layers.concatenate([shared(a), shared(layers.Dense(3, name="lift")(b))], name="cat")
    model = keras.Model([a, b], layers.Dense(2, name="head")(h), name="two")
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert lines[0] == 'Model: "two"'
    assert lines[2].rstrip() == "Layer (type)                    Output Shape         Param #     Connected to"
    assert len(lines[1]) == 98
    assert "shared (Dense)                  (None, 4)            16          a[0][0]" in text
    assert "                                                                 lift[0][0]" in text
    assert "cat (Concatenate)               (None, 8)            0           shared[0][0]" in text
    assert "                                                                 shared[1][0]" in text
    assert "a (InputLayer)                  [(None, 3)]          0" in text
    assert "Total params: 43" in text


def test_plot_model_writes_an_image_or_names_what_to_install(tmp_path):
    import shutil

    model = _mlp_two_inputs()
    try:
        import pydot  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install pydot"):
            keras.utils.plot_model(model, tmp_path / "m.png")
        return
    if shutil.which("dot") is None:
        with pytest.raises(ImportError, match="Graphviz's dot program"):
            keras.utils.plot_model(model, tmp_path / "m.png")
        return
    keras.utils.plot_model(model, tmp_path / "m.png", show_shapes=True)
    assert (tmp_path / "m.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    keras.utils.plot_model(model, tmp_path / "m.svg", show_shapes=True, rankdir="LR")
    svg = (tmp_path / "m.svg").read_text()
    assert "shared (Dense)" in svg and "(None, 4)" in svg
    dot = keras.utils.model_to_dot(model)
    assert len(dot.get_edges()) >= 9


def test_evaluate_from_four_threads_gives_the_one_thread_numbers():
    inp = keras.Input((6,))
    out = layers.Dense(3, activation="softmax")(layers.Dense(8, activation="relu")(inp))
    model = keras.Model(inp, out)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(8)
    data = [(rng.random((200, 6), dtype=np.float32), rng.integers(0, 3, 200)) for _ in range(4)]
    want = [model.evaluate(x, y, batch_size=16, verbose=0, return_dict=True) for x, y in data]
    got, errors = [None] * 4, []

    def run(i):
        try:
            for _ in range(3):
                got[i] = model.evaluate(*data[i], batch_size=16, verbose=0, return_dict=True)
                assert got[i] == want[i]
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    assert got == want
