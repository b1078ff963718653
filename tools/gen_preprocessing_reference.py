"""Writes Keras 3's outputs for the preprocessing layers to tests/data/keras_preprocessing/.

Run with Keras (JAX backend) and TensorFlow importable (Keras's string layers and its
hashes need TensorFlow's string ops):

    KERAS_BACKEND=jax python tools/gen_preprocessing_reference.py

Each case is one ``<name>.npz`` holding the inputs (``x``, and ``adapt`` data where the layer
learns state), Keras's outputs (``y``; ``dx`` for gradients of ``sum(y * up)``), learned
state (``vocab``, ``mean``, ...) and ``meta``: a JSON string with the layer class, the
constructor arguments, how to call it and Keras's ``get_config()``. Random layers are
recorded only where the result does not depend on Keras's random generator (degenerate
factor ranges, inference). ``.keras`` files saved by Keras are written next to them, with
``<name>.npz`` holding the model's predictions.
"""
import json
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

L = keras.layers
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "keras_preprocessing")
RNG = np.random.default_rng(20261203)


def _jsonable(v):
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v


def save(name, meta, **arrays):
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    for k, v in arrays.items():
        if v.dtype.kind == "O":
            arrays[k] = v.astype(str)
    np.savez_compressed(os.path.join(OUT, name + ".npz"), meta=json.dumps(_jsonable(meta)), **arrays)


def config_of(layer):
    cfg = layer.get_config()
    cfg.pop("dtype", None)
    cfg.pop("name", None)
    return _jsonable(cfg)


def run(name, cls, kwargs, x, adapt=None, call_kwargs=None, training=False, grad=False, extra=None,
        tf_input=False):
    layer = getattr(L, cls)(**kwargs)
    if adapt is not None:
        layer.adapt(adapt)
    if tf_input:
        # String outputs cannot become JAX arrays: hand TensorFlow a tensor and read it back.
        import tensorflow as tf

        y = layer(tf.constant(x), training=training, **(call_kwargs or {})).numpy()
        if y.dtype.kind in "OS":
            y = np.char.decode(y.astype(bytes), "utf-8")
    else:
        y = layer(x, training=training, **(call_kwargs or {}))
    y = np.asarray(y)
    arrays = {"x": x, "y": y}
    if adapt is not None and isinstance(adapt, np.ndarray):
        arrays["adapt"] = adapt
    if grad:
        up = RNG.standard_normal(y.shape).astype("float32")
        _, vjp = jax.vjp(lambda t: layer(t, training=training), jax.numpy.asarray(x))
        arrays["up"] = up
        arrays["dx"] = np.asarray(vjp(up)[0])
    if hasattr(layer, "get_vocabulary"):
        arrays["vocab"] = np.array(layer.get_vocabulary(), dtype=object)
    for k, fn in (extra or {}).items():
        arrays[k] = fn(layer)
    meta = {"class_name": cls, "kwargs": kwargs, "training": training, "config": config_of(layer),
            "adapted": adapt is not None, "call_kwargs": call_kwargs or {}}
    save(name, meta, **arrays)
    print(f"{name}: {cls} -> {y.shape} {y.dtype}")
    return layer


def strings(n, max_len=12, unicode=True):
    alphabet = list("abcdefghijklmnopqrstuvwxyz ABC0123456789.,!?-'") + (list("éüß中文ñ") if unicode else [])
    out = []
    for _ in range(n):
        k = int(RNG.integers(0, max_len + 1))
        out.append("".join(RNG.choice(alphabet, size=k)))
    return np.array(out, dtype=object)


CORPUS = np.array([
    "The quick brown fox jumps over the lazy dog.",
    "A stitch in time saves nine!",
    "the dog barks; the FOX runs -- quick, quick",
    "Über café: naïve résumé, the end",
    "to be or not to be, that is the question",
    "   leading and trailing   spaces\tand\ttabs\n",
    "numbers 123 and 4.56 and e-mail@example.com",
    "",
], dtype=object)
QUERIES = np.array(["the quick dog", "unknown words only", "Fox, FOX, fox!", "", "to be the dog café"], dtype=object)


def numerical_cases():
    adapt = (RNG.standard_normal((40, 3)) * [1.0, 5.0, 0.1] + [0.0, 10.0, -3.0]).astype("float32")
    x = (RNG.standard_normal((6, 3)) * [1.0, 5.0, 0.1] + [0.0, 10.0, -3.0]).astype("float32")
    mv = lambda layer: np.stack([np.asarray(layer.mean).reshape(-1), np.asarray(layer.variance).reshape(-1)])  # noqa: E731
    run("normalization_adapt", "Normalization", {}, x, adapt=adapt, grad=True, extra={"stats": mv})
    run("normalization_axis_none", "Normalization", {"axis": None}, x, adapt=adapt, grad=True, extra={"stats": mv})
    img = RNG.random((4, 5, 6, 3)).astype("float32") * 255
    run("normalization_axis_12", "Normalization", {"axis": (1, 2)}, img[:2], adapt=img, grad=True)
    run("normalization_invert", "Normalization", {"invert": True}, x, adapt=adapt, grad=True)
    run("normalization_given", "Normalization", {"mean": [1.0, 2.0, 3.0], "variance": [4.0, 0.25, 1.0]}, x,
        grad=True)
    run("normalization_given_scalar", "Normalization", {"mean": 3.0, "variance": 2.0}, x, grad=True)
    run("rescaling_uint8", "Rescaling", {"scale": 1 / 255.0}, (RNG.random((2, 4, 4, 3)) * 255).astype("uint8"))
    run("rescaling_offset", "Rescaling", {"scale": 1 / 127.5, "offset": -1.0}, img[:2], grad=True)
    run("rescaling_per_channel", "Rescaling", {"scale": [0.5, 2.0, -1.0], "offset": 0.25}, img[:2], grad=True)

    values = (RNG.standard_normal((5, 4)) * 2).astype("float32")
    for mode in ("int", "one_hot", "multi_hot", "count"):
        run(f"discretization_{mode}", "Discretization", {"bin_boundaries": [-1.0, 0.0, 0.5, 2.0], "output_mode": mode},
            values if mode != "one_hot" else values[:, :1])
    run("discretization_adapt", "Discretization", {"num_bins": 5, "epsilon": 0.01}, values,
        adapt=(RNG.standard_normal((200, 3)) * 3).astype("float32"),
        extra={"bins": lambda layer: np.array(layer.bin_boundaries)})

    ids = RNG.integers(0, 6, size=(5, 3))
    run("category_encoding_multi_hot", "CategoryEncoding", {"num_tokens": 6, "output_mode": "multi_hot"}, ids)
    run("category_encoding_count", "CategoryEncoding", {"num_tokens": 6, "output_mode": "count"}, ids)
    run("category_encoding_one_hot", "CategoryEncoding", {"num_tokens": 6, "output_mode": "one_hot"}, ids[:, 0])
    run("category_encoding_one_hot_2d", "CategoryEncoding", {"num_tokens": 6, "output_mode": "one_hot"}, ids)
    run("category_encoding_count_weights", "CategoryEncoding", {"num_tokens": 6, "output_mode": "count"}, ids,
        call_kwargs={"count_weights": RNG.random((5, 3)).astype("float32").tolist()})


def hashing_cases():
    s = strings(300, max_len=90)
    s[:4] = ["", "a", "hello world", "A" * 200]
    x = s.reshape(-1, 1)
    run("hashing_strings", "Hashing", {"num_bins": 1000}, x)
    run("hashing_strings_2e31", "Hashing", {"num_bins": 2 ** 31 - 1}, x)
    run("hashing_salt", "Hashing", {"num_bins": 97, "salt": 133}, x)
    run("hashing_salt_pair", "Hashing", {"num_bins": 97, "salt": [2 ** 40 + 7, 12345]}, x)
    xm = x.copy()
    xm[::7] = ""
    run("hashing_mask", "Hashing", {"num_bins": 11, "mask_value": ""}, xm)
    ints = RNG.integers(-10 ** 12, 10 ** 12, size=(40, 2)).astype("int64")
    run("hashing_ints", "Hashing", {"num_bins": 17}, ints)
    run("hashing_ints_mask", "Hashing", {"num_bins": 17, "mask_value": 0}, np.where(ints % 3 == 0, 0, ints))
    run("hashing_floats", "Hashing", {"num_bins": 17}, (RNG.standard_normal((10, 2)) * 100).astype("float32"))
    run("hashing_multi_hot", "Hashing", {"num_bins": 8, "output_mode": "multi_hot"}, s[:12].reshape(4, 3))
    run("hashing_count", "Hashing", {"num_bins": 8, "output_mode": "count"}, s[:12].reshape(4, 3))
    run("hashing_one_hot", "Hashing", {"num_bins": 8, "output_mode": "one_hot"}, s[:6].reshape(6, 1))


def lookup_cases():
    words = np.array(["a", "b", "c", "d", "e", "f", "g"])
    data = RNG.choice(np.array(list(words) + ["zz", "[UNK]"]), size=(30, 4),
                      p=[.3, .2, .15, .1, .1, .05, .04, .03, .03])
    q = RNG.choice(np.array(list(words) + ["zz", "yy", "xx", ""]), size=(6, 4))
    run("string_lookup_adapt", "StringLookup", {}, q, adapt=data)
    run("string_lookup_max_tokens", "StringLookup", {"max_tokens": 5}, q, adapt=data)
    run("string_lookup_vocab", "StringLookup", {"vocabulary": ["d", "b", "a", "e"]}, q)
    run("string_lookup_oov3", "StringLookup", {"vocabulary": ["d", "b", "a"], "num_oov_indices": 3}, q)
    run("string_lookup_oov3_salt", "StringLookup", {"vocabulary": ["d", "b", "a"], "num_oov_indices": 3, "salt": 99},
        q)
    run("string_lookup_mask", "StringLookup", {"vocabulary": ["d", "b", "a"], "mask_token": ""}, q)
    run("string_lookup_invert", "StringLookup", {"vocabulary": ["d", "b", "a"], "invert": True},
        RNG.integers(0, 6, size=(4, 3)), tf_input=True)
    run("string_lookup_invert_mask", "StringLookup", {"vocabulary": ["d", "b", "a"], "invert": True, "mask_token": ""},
        RNG.integers(0, 6, size=(4, 3)), tf_input=True)
    for mode in ("one_hot", "multi_hot", "count"):
        run(f"string_lookup_{mode}", "StringLookup", {"vocabulary": ["d", "b", "a", "e"], "output_mode": mode},
            q[:, :1] if mode == "one_hot" else q)
    run("string_lookup_multi_hot_mask", "StringLookup",
        {"vocabulary": ["d", "b", "a", "e"], "output_mode": "multi_hot", "mask_token": ""}, q)
    run("string_lookup_count_pad", "StringLookup",
        {"vocabulary": ["d", "b", "a", "e"], "output_mode": "count", "pad_to_max_tokens": True, "max_tokens": 9}, q)
    run("string_lookup_tf_idf_adapt", "StringLookup", {"output_mode": "tf_idf"}, q, adapt=data,
        extra={"idf": lambda l: np.asarray(l.idf_weights)})
    run("string_lookup_tf_idf_vocab", "StringLookup",
        {"vocabulary": ["d", "b", "a", "e"], "idf_weights": [0.5, 1.0, 1.5, 2.0], "output_mode": "tf_idf"}, q)

    idata = RNG.choice(np.array([3, 7, 11, 42, 100, -1, 5]), size=(30, 3), p=[.3, .2, .2, .1, .1, .05, .05])
    iq = RNG.choice(np.array([3, 7, 11, 42, 100, 0, 13, 8, 2 ** 40]), size=(6, 3))
    run("integer_lookup_adapt", "IntegerLookup", {}, iq, adapt=idata)
    run("integer_lookup_vocab", "IntegerLookup", {"vocabulary": [42, 3, 11]}, iq)
    run("integer_lookup_oov3", "IntegerLookup", {"vocabulary": [42, 3, 11], "num_oov_indices": 3}, iq)
    run("integer_lookup_oov3_farmhash", "IntegerLookup",
        {"vocabulary": [42, 3, 11], "num_oov_indices": 3, "oov_method": "farmhash"}, iq)
    run("integer_lookup_mask", "IntegerLookup", {"vocabulary": [42, 3, 11], "mask_token": 0}, iq)
    run("integer_lookup_invert", "IntegerLookup", {"vocabulary": [42, 3, 11], "invert": True},
        RNG.integers(0, 6, size=(4, 3)))
    run("integer_lookup_multi_hot", "IntegerLookup", {"vocabulary": [42, 3, 11], "output_mode": "multi_hot"}, iq)


def text_cases():
    x = QUERIES
    run("text_int", "TextVectorization", {}, x, adapt=CORPUS)
    run("text_int_seq", "TextVectorization", {"max_tokens": 12, "output_sequence_length": 6}, x, adapt=CORPUS)
    run("text_int_2d_input", "TextVectorization", {"output_sequence_length": 5}, x.reshape(-1, 1), adapt=CORPUS)
    run("text_lower", "TextVectorization", {"standardize": "lower", "output_sequence_length": 8}, x, adapt=CORPUS)
    run("text_strip", "TextVectorization", {"standardize": "strip_punctuation", "output_sequence_length": 8}, x,
        adapt=CORPUS)
    run("text_no_standardize", "TextVectorization", {"standardize": None, "output_sequence_length": 8}, x,
        adapt=CORPUS)
    run("text_character", "TextVectorization", {"split": "character", "output_sequence_length": 10}, x,
        adapt=CORPUS)
    run("text_ngrams", "TextVectorization", {"ngrams": 2, "output_sequence_length": 10}, x, adapt=CORPUS)
    run("text_ngrams_tuple", "TextVectorization", {"ngrams": (1, 3), "output_mode": "count"}, x, adapt=CORPUS)
    run("text_multi_hot", "TextVectorization", {"output_mode": "multi_hot", "max_tokens": 15}, x, adapt=CORPUS)
    run("text_count", "TextVectorization", {"output_mode": "count"}, x, adapt=CORPUS)
    run("text_tf_idf", "TextVectorization", {"output_mode": "tf_idf"}, x, adapt=CORPUS,
        extra={"idf": lambda l: np.asarray(l._lookup_layer.idf_weights)})
    run("text_pad_to_max", "TextVectorization", {"output_mode": "multi_hot", "max_tokens": 40,
                                                "pad_to_max_tokens": True}, x, adapt=CORPUS)
    run("text_vocab", "TextVectorization", {"vocabulary": ["the", "dog", "quick", "fox"],
                                           "output_sequence_length": 4}, x)
    run("text_split_none", "TextVectorization", {"split": None, "vocabulary": ["the quick dog", "fox fox fox"]},
        x.reshape(-1, 1))


def image_cases():
    img = (RNG.random((2, 7, 9, 3)) * 255).astype("float32")
    for method in ("bilinear", "nearest", "bicubic", "lanczos3", "lanczos5"):
        run(f"resizing_{method}_down", "Resizing", {"height": 4, "width": 5, "interpolation": method}, img, grad=True)
        run(f"resizing_{method}_up", "Resizing", {"height": 11, "width": 13, "interpolation": method}, img,
            grad=True)
    run("resizing_antialias", "Resizing", {"height": 3, "width": 4, "antialias": True}, img, grad=True)
    run("resizing_crop_aspect", "Resizing", {"height": 5, "width": 5, "crop_to_aspect_ratio": True}, img, grad=True)
    run("resizing_pad_aspect", "Resizing", {"height": 5, "width": 5, "pad_to_aspect_ratio": True, "fill_value": 7.0},
        img, grad=True)
    run("resizing_pad_aspect_w", "Resizing", {"height": 4, "width": 10, "pad_to_aspect_ratio": True}, img, grad=True)
    run("resizing_channels_first", "Resizing", {"height": 4, "width": 6, "data_format": "channels_first"},
        img.transpose(0, 3, 1, 2).copy(), grad=True)
    run("resizing_unbatched", "Resizing", {"height": 4, "width": 6}, img[0], grad=True)
    run("resizing_uint8", "Resizing", {"height": 4, "width": 6}, img.astype("uint8"))
    run("center_crop", "CenterCrop", {"height": 4, "width": 5}, img, grad=True)
    run("center_crop_small", "CenterCrop", {"height": 9, "width": 6}, img, grad=True)

    # Random layers at inference (the identity) and with degenerate ranges (deterministic).
    run("random_flip_inference", "RandomFlip", {"seed": 1}, img, training=False)
    run("random_rotation_90", "RandomRotation", {"factor": (0.25, 0.25)}, img, training=True)
    run("random_rotation_30_constant", "RandomRotation",
        {"factor": (30 / 360, 30 / 360), "fill_mode": "constant", "fill_value": 5.0}, img, training=True)
    run("random_rotation_nearest_wrap", "RandomRotation",
        {"factor": (-0.1, -0.1), "fill_mode": "wrap", "interpolation": "nearest"}, img, training=True)
    run("random_rotation_inference", "RandomRotation", {"factor": 0.3}, img, training=False)
    run("random_zoom_out", "RandomZoom", {"height_factor": (0.5, 0.5)}, img, training=True)
    run("random_zoom_in_nearest", "RandomZoom",
        {"height_factor": (-0.3, -0.3), "width_factor": (0.2, 0.2), "fill_mode": "nearest"}, img, training=True)
    run("random_translation", "RandomTranslation", {"height_factor": (0.25, 0.25), "width_factor": (-0.15, -0.15)},
        img, training=True)
    run("random_translation_constant", "RandomTranslation",
        {"height_factor": (-0.3, -0.3), "width_factor": (0.4, 0.4), "fill_mode": "constant"}, img, training=True)
    run("random_brightness_fixed", "RandomBrightness", {"factor": (0.3, 0.3)}, img, training=True)
    run("random_brightness_inference", "RandomBrightness", {"factor": 0.3}, img, training=False)
    run("random_contrast_inference", "RandomContrast", {"factor": 0.5}, img, training=False)
    run("random_crop_inference", "RandomCrop", {"height": 4, "width": 5, "seed": 3}, img, training=False)
    run("random_crop_aspect", "RandomCrop", {"height": 7, "width": 5, "seed": 3}, img, training=True)

    # The affine sampler itself, against Keras's op, every fill mode and interpolation.
    t = np.array([[0.9, -0.3, 1.7, 0.25, 1.1, -2.2, 0.0, 0.0], [1.3, 0.0, -3.0, 0.0, 0.7, 2.5, 0.0, 0.0]],
                 dtype="float32")
    arrays = {"x": img, "transforms": t}
    for interp in ("bilinear", "nearest"):
        for fill in ("reflect", "wrap", "constant", "nearest", "mirror"):
            arrays[f"y_{interp}_{fill}"] = np.asarray(keras.ops.image.affine_transform(
                img, t, interpolation=interp, fill_mode=fill, fill_value=3.0))
    save("affine_transform", {"class_name": None}, **arrays)
    print("affine_transform")


def layer_by_layer(layers, x):
    # Keras's JAX backend cannot carry string tensors through a model call or predict(); the
    # layers called one after the other compute the same function.
    h = x
    for layer in layers:
        h = layer(h)
    return np.asarray(h)


def model_cases():
    tv = L.TextVectorization(max_tokens=30, output_sequence_length=8)
    tv.adapt(CORPUS)
    keras.utils.set_random_seed(7)
    m = keras.Sequential([keras.Input(shape=(1,), dtype="string"), tv, L.Embedding(30, 4),
                          L.GlobalAveragePooling1D(), L.Dense(2)], name="text_model")
    x = QUERIES.reshape(-1, 1).astype(str)
    y = layer_by_layer(m.layers, x)
    m.save(os.path.join(OUT, "model_text.keras"))
    save("model_text", {"file": "model_text.keras"}, x=x, y=y)

    norm = L.Normalization()
    norm.adapt((RNG.standard_normal((50, 3)) * 4 + 2).astype("float32"))
    m = keras.Sequential([keras.Input(shape=(3,)), norm, L.Dense(2)], name="norm_model")
    x = RNG.standard_normal((5, 3)).astype("float32")
    m.save(os.path.join(OUT, "model_norm.keras"))
    save("model_norm", {"file": "model_norm.keras"}, x=x, y=np.asarray(m.predict(x, verbose=0)))

    sl = L.StringLookup(output_mode="tf_idf")
    sl.adapt(np.array([["a", "b", "b"], ["c", "a", "d"], ["a", "a", "e"]]))
    inp = keras.Input(shape=(3,), dtype="string")
    m = keras.Model(inp, L.Dense(1)(sl(inp)), name="lookup_model")
    x = np.array([["a", "b", "q"], ["e", "e", "d"]])
    m.save(os.path.join(OUT, "model_lookup_tfidf.keras"))
    save("model_lookup_tfidf", {"file": "model_lookup_tfidf.keras"}, x=x,
         y=layer_by_layer([layer for layer in m.layers if not isinstance(layer, L.InputLayer)], x))

    inp = keras.Input(shape=(6, 8, 3))
    h = L.Rescaling(1 / 255.0)(inp)
    h = L.Resizing(4, 4)(h)
    h = L.RandomFlip()(h)
    h = L.Discretization(bin_boundaries=[0.25, 0.5, 0.75])(h)
    out = L.CategoryEncoding(num_tokens=4, output_mode="one_hot")(L.Reshape((48, 1))(h))
    m = keras.Model(inp, out, name="image_model")
    x = (RNG.random((2, 6, 8, 3)) * 255).astype("float32")
    m.save(os.path.join(OUT, "model_image.keras"))
    save("model_image", {"file": "model_image.keras"}, x=x, y=np.asarray(m.predict(x, verbose=0)))
    print("models")


def main():
    os.makedirs(OUT, exist_ok=True)
    numerical_cases()
    hashing_cases()
    lookup_cases()
    text_cases()
    image_cases()
    model_cases()
    with open(os.path.join(OUT, "README.md"), "w") as f:
        f.write("# Keras 3 reference values for the preprocessing layers\n\n"
                f"Written by tools/gen_preprocessing_reference.py with Keras {keras.__version__} "
                f"(JAX backend) and TensorFlow's string ops. Each `<case>.npz` holds the input `x`, "
                "Keras's output `y`, `dx` for `sum(y * up)` where the layer has a gradient, learned "
                "state (`vocab`, `stats`, `idf`, `bins`) and `meta` (JSON: class, constructor "
                "arguments, call arguments, Keras's config). `model_*.keras` are models saved by "
                "Keras; `model_*.npz` hold their inputs and predictions.\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
