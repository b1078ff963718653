"""Checks that Keras 3 loads the functional models fastnet saves and predicts the same.

Two steps, each in its own environment:

    python tools/check_keras_loads_fastnet_files.py write DIR            # fastnet
    KERAS_BACKEND=jax python tools/check_keras_loads_fastnet_files.py check DIR   # Keras 3 + JAX

``write`` builds a model with two inputs and two outputs (dict), a residual block with
BatchNormalization, a nested Sequential, a shared layer and merge/activation layers,
trains it one epoch, saves it as DIR/functional.keras and its predictions as
DIR/functional.npz. ``check`` loads the file with keras.models.load_model, predicts,
prints the largest differences and exits 1 if any exceeds 1e-5.
"""
import os
import sys

import numpy as np


def write(folder):
    import fastnet as keras
    from fastnet import layers

    rng = np.random.default_rng(0)
    img, vec = keras.Input((8, 8, 3), name="img"), keras.Input((5,), name="vec")
    t = layers.Conv2D(4, 3, padding="same", activation="relu")(img)
    t = layers.add([t, layers.Conv2D(4, 3, padding="same")(t)])
    t = layers.GlobalAveragePooling2D()(layers.ReLU()(layers.BatchNormalization()(t)))
    shared = layers.Dense(4, activation="tanh", name="shared")
    inner = keras.Sequential([layers.Dense(6, activation="relu"), layers.Dense(4)], name="inner")
    u = inner(vec)
    h = layers.concatenate([shared(t), shared(u), layers.multiply([t, u])])
    cls = layers.Dense(3, activation="softmax", name="cls")(h)
    reg = layers.Dense(1, name="reg")(layers.maximum([h, layers.LeakyReLU()(h)]))
    model = keras.Model([img, vec], {"cls": cls, "reg": reg})
    model.compile("adam", {"cls": "sparse_categorical_crossentropy", "reg": "mse"}, metrics={"cls": ["accuracy"]})
    x = [rng.random((10, 8, 8, 3), dtype=np.float32), rng.random((10, 5), dtype=np.float32)]
    model.fit(x, {"cls": rng.integers(0, 3, 10), "reg": rng.random((10, 1), dtype=np.float32)}, epochs=1,
              verbose=0)
    os.makedirs(folder, exist_ok=True)
    model.save(os.path.join(folder, "functional.keras"))
    p = model.predict(x, verbose=0)
    np.savez(os.path.join(folder, "functional.npz"), x0=x[0], x1=x[1], cls=p["cls"], reg=p["reg"])


def check(folder):
    import keras

    model = keras.models.load_model(os.path.join(folder, "functional.keras"))
    d = np.load(os.path.join(folder, "functional.npz"))
    p = model.predict([d["x0"], d["x1"]], verbose=0)
    worst = max(float(np.abs(p[k] - d[k]).max()) for k in ("cls", "reg"))
    print(f"Keras {keras.__version__} loaded {len(model.layers)} layers; largest difference {worst:.2e}")
    return 0 if worst <= 1e-5 else 1


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("write", "check"):
        sys.exit(__doc__)
    sys.exit(write(sys.argv[2]) if sys.argv[1] == "write" else check(sys.argv[2]))
