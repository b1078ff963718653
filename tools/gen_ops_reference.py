"""Keras 3 reference values for fastnet.ops (run with Keras and JAX installed).

    KERAS_BACKEND=jax python tools/gen_ops_reference.py

Runs every case of tests/ops/keras_ops_cases.py with ``keras.ops`` on float32 inputs and
stores, in tests/data/keras_ops/ops.npz, the inputs, the output and (for the
differentiable inputs) the vector-Jacobian product with a fixed random cotangent,
computed by ``jax.vjp``.
"""
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "ops"))

from keras_ops_cases import CASES, make_inputs  # noqa: E402


def main():
    os.environ.setdefault("KERAS_BACKEND", "jax")
    import jax
    import keras
    from keras import ops

    if keras.backend.backend() != "jax":
        raise SystemExit("run with KERAS_BACKEND=jax")
    data = {}
    meta = {"keras_version": keras.__version__, "jax_version": jax.__version__, "cases": {}}
    for name, (fn, _, diff) in CASES.items():
        inputs = make_inputs(name)
        out = np.asarray(fn(ops, *inputs))
        for i, a in enumerate(inputs):
            data[f"{name}/x{i}"] = a
        data[f"{name}/y"] = out
        if diff:
            def f(*d, inputs=inputs, fn=fn, diff=diff):
                args = list(inputs)
                for k, i in enumerate(diff):
                    args[i] = d[k]
                return fn(ops, *args)

            y, vjp = jax.vjp(f, *[inputs[i] for i in diff])
            u = np.random.default_rng(len(name)).normal(size=np.shape(y)).astype(np.float32)
            grads = vjp(u)
            data[f"{name}/u"] = u
            for i, g in zip(diff, grads):
                data[f"{name}/g{i}"] = np.asarray(g)
        meta["cases"][name] = {"n_inputs": len(inputs), "diff": diff, "dtype": str(out.dtype)}
    data["meta"] = np.array(json.dumps(meta))
    path = os.path.join(ROOT, "tests", "data", "keras_ops", "ops.npz")
    np.savez_compressed(path, **data)
    print(f"wrote {len(CASES)} cases to {path}")


if __name__ == "__main__":
    main()
