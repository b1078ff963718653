#!/usr/bin/env python3
"""Smoke test of an installed fastnet (a wheel), run from outside the source tree.

usage: python tools/wheel_smoke.py        (from any folder but the checkout's root)

Checks that fastnet is imported from site-packages, not from a checkout; that the
compiled kernels load (and which build: AVX2 or portable; the PNG decoder but on
Windows) and the type-hint marker ships; then trains a small model of each layer family (dense, convolution and
pooling, recurrent) with 1 and 2 threads, checks that the loss goes down and that
the thread count does not change the results beyond rounding, and saves and
reloads a model. cibuildwheel runs it on every wheel it builds; .ci/run on the
wheel built in CI. Exits non-zero on any failure.
"""
import os
import sys
import tempfile

import numpy as np


def check(cond, message):
    if not cond:
        raise SystemExit(f"wheel smoke test FAILED: {message}")


def train(build, x, y, loss, threads):
    import fastnet

    fastnet.config.set_num_threads(threads)
    fastnet.utils.set_random_seed(0)
    model = build()
    model.compile(optimizer="adam", loss=loss)
    history = model.fit(x, y, epochs=3, batch_size=16, verbose=0, shuffle=False)
    return model, history.history["loss"]


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    checkout = os.path.dirname(here)
    if os.path.abspath(os.getcwd()) == checkout:
        raise SystemExit("run the smoke test from another folder, so that the installed "
                         "fastnet is imported rather than the checkout")
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.getcwd()) not in (here, checkout)]

    import fastnet
    from fastnet import _kernels, layers

    location = os.path.dirname(os.path.abspath(fastnet.__file__))
    check(os.path.normcase(location) != os.path.normcase(os.path.join(checkout, "fastnet")),
          f"fastnet was imported from the checkout ({location}), not from an installed wheel")
    check(os.path.exists(os.path.join(location, "py.typed")), "py.typed is missing from the package")
    print(f"fastnet {fastnet.__version__} from {location}; {_kernels.VARIANT} kernels; "
          f"{fastnet.config.get_num_threads()} threads by default")
    if sys.platform != "win32":  # the PNG decoder links zlib; every wheel but Windows' has it
        try:
            from fastnet._kernels import png_decode
        except ImportError as exc:
            check(False, f"the PNG decoder is missing (zlib not found when the wheel was built?): {exc}")
        print(f"PNG decoder built with zlib {png_decode.ZLIB_VERSION}")

    rng = np.random.default_rng(0)
    cases = {
        "dense": (lambda: fastnet.Sequential([fastnet.Input((8,)), layers.Dense(16, activation="relu"),
                                              layers.Dense(3, activation="softmax")]),
                  rng.normal(size=(64, 8)).astype("float32"), rng.integers(0, 3, 64),
                  "sparse_categorical_crossentropy"),
        "conv": (lambda: fastnet.Sequential([fastnet.Input((12, 12, 1)), layers.Conv2D(4, 3, activation="relu"),
                                             layers.MaxPooling2D(), layers.Flatten(),
                                             layers.Dense(1, activation="sigmoid")]),
                 rng.random((64, 12, 12, 1), dtype=np.float32), rng.integers(0, 2, 64).astype("float32"),
                 "binary_crossentropy"),
        "recurrent": (lambda: fastnet.Sequential([fastnet.Input((6, 4)), layers.LSTM(8), layers.Dense(1)]),
                      rng.normal(size=(64, 6, 4)).astype("float32"), rng.normal(size=(64, 1)).astype("float32"),
                      "mse"),
    }
    for name, (build, x, y, loss) in cases.items():
        model1, losses1 = train(build, x, y, loss, threads=1)
        model2, losses2 = train(build, x, y, loss, threads=2)
        check(all(np.isfinite(losses1)) and losses1[-1] < losses1[0],
              f"{name}: the loss did not go down: {losses1}")
        check(np.allclose(losses1, losses2, rtol=1e-4, atol=1e-6),
              f"{name}: 1 and 2 threads disagree: {losses1} vs {losses2}")
        print(f"{name:9s} loss {losses1[0]:.4f} -> {losses1[-1]:.4f} (1 and 2 threads agree)")

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        model1.save(path)
        again = fastnet.models.load_model(path)
        x = cases["recurrent"][1][:4]
        check(np.allclose(model1.predict(x, verbose=0), again.predict(x, verbose=0), atol=1e-6),
              "a model saved and loaded again predicts differently")
    print("save/load round trip: ok")
    print("wheel smoke test passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
