"""Step time of an MLP of Dense+ReLU layers written with fastnet.ops (recorded on a tape)
against the built-in Dense layers' forward + backward (no optimizer in either).

    python tools/bench_ops_dense.py [--batch 128] [--width 256] [--depth 3] [--repeat 50] [--threads 1]
"""
import argparse
import time

import numpy as np

from fastnet import layers, ops
from fastnet.backend import Variable
from fastnet.ops import autodiff


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--inputs", type=int, default=784)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=50)
    ap.add_argument("--threads", type=int, default=None, help="fastnet kernel threads (default: fastnet's)")
    a = ap.parse_args()
    if a.threads:
        from fastnet import config

        config.set_num_threads(a.threads)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(a.batch, a.inputs)).astype(np.float32)
    built = []
    d = a.inputs
    for _ in range(a.depth):
        layer = layers.Dense(a.width, activation="relu")
        layer.build((None, d))
        built.append(layer)
        d = a.width
    params = [(Variable(layer.kernel.value.copy()), Variable(layer.bias.value.copy())) for layer in built]
    dy = rng.normal(size=(a.batch, a.width)).astype(np.float32)

    def builtin_step():
        h = x
        for layer in built:
            layer._reuse = True
            h = layer(h, training=True)
        g = dy
        for i, layer in enumerate(reversed(built)):
            g = layer.backward(g, need_dx=i < len(built) - 1)

    variables = [v for p in params for v in p]

    def ops_step():
        tape = autodiff.Tape(persistent=False)
        with tape:
            h = x
            for k, b in params:
                h = ops.relu(ops.matmul(h, k) + b)
        tape.gradient(h, dy, variables=variables)

    def block(fn):
        t = time.perf_counter()
        for _ in range(a.repeat):
            fn()
        return (time.perf_counter() - t) / a.repeat

    for fn in (builtin_step, ops_step):
        for _ in range(5):
            fn()
    # interleaved blocks, best of each: the host's other load hits both alike
    tb = to = float("inf")
    for _ in range(7):
        tb = min(tb, block(builtin_step))
        to = min(to, block(ops_step))
    print(f"batch {a.batch}, {a.depth} x Dense({a.width}, relu) from {a.inputs} inputs: built-in "
          f"{tb * 1e3:.3f} ms/step, ops {to * 1e3:.3f} ms/step, ratio {to / tb:.2f}")


if __name__ == "__main__":
    main()
