"""Keras 3 reference values for a model of custom layers written with ops.

    KERAS_BACKEND=jax python tools/gen_custom_layer_reference.py

The model and loss are tests/ops/custom_layer_defs.py (Linear -> MyLayerNorm -> gelu ->
Linear, a log-cosh loss written with ops). Stored in tests/data/keras_ops/custom_model.npz:
inputs x, targets y, the initial weights w_i, the loss, its gradient for each weight
(Keras's ``stateless_call`` differentiated by JAX), the outputs, and the weights after
``fit`` for 3 epochs of full-batch SGD (learning rate 0.1, unshuffled).
"""
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "ops"))

from custom_layer_defs import make  # noqa: E402


def main():
    os.environ.setdefault("KERAS_BACKEND", "jax")
    import jax
    import keras
    from keras import ops

    _, _, loss_fn, build_model, _ = make(keras, ops)
    rng = np.random.default_rng(11)
    x = rng.normal(size=(16, 6)).astype(np.float32)
    y = rng.normal(size=(16, 2)).astype(np.float32)
    model = build_model()
    weights = [rng.normal(0, 0.5, w.shape).astype(np.float32) for w in model.get_weights()]
    model.set_weights(weights)
    out = np.asarray(model(x))

    def loss_of(trainable):
        pred, _ = model.stateless_call(trainable, [], x)
        return ops.mean(loss_fn(y, pred))

    value, grads = jax.value_and_grad(loss_of)([v.value for v in model.trainable_variables])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss_fn)
    hist = model.fit(x, y, epochs=3, batch_size=16, shuffle=False, verbose=0)
    data = {"x": x, "y": y, "out": out, "loss": np.float32(value)}
    for i, w in enumerate(weights):
        data[f"w_{i}"] = w
    for i, g in enumerate(grads):
        data[f"g_{i}"] = np.asarray(g)
    for i, w in enumerate(model.get_weights()):
        data[f"w_after_{i}"] = w
    data["history_loss"] = np.array(hist.history["loss"], np.float32)
    data["meta"] = np.array(json.dumps({"keras_version": keras.__version__, "optimizer": "SGD(0.1)", "epochs": 3,
                                        "batch_size": 16,
                                        "weights": [v.path for v in model.trainable_variables]}))
    path = os.path.join(ROOT, "tests", "data", "keras_ops", "custom_model.npz")
    np.savez_compressed(path, **data)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
