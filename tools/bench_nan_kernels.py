"""Speed of the kernels whose comparisons decide NaN propagation (activations with a
max/min/select, max pooling, the convolution's fused ReLU), for a before/after check.

Usage: python tools/bench_nan_kernels.py [out.json] [--compare before.json]
Prints the median of several timeit repeats per kernel (one thread), in microseconds
of CPU time (time.process_time), which a machine shared with other work disturbs
less than wall time.
"""
import json
import sys
import time
import timeit

import numpy as np

from fastnet._kernels import VARIANT
from fastnet._kernels import _activations as act
from fastnet._kernels import pooling as pool

CODES = {"relu": 1, "elu": 5, "hard_sigmoid": 12, "relu6": 13, "leaky_relu": 14, "softmax": 4}
N = 1 << 20


def _median(fn, args, number, repeat=9):
    times = timeit.repeat(lambda: fn(*args), number=number, repeat=repeat, timer=time.process_time)
    return float(np.median(times)) / number * 1e6


def bench():
    rng = np.random.default_rng(0)
    out = {}
    for dt in (np.float32, np.float64):
        tag = np.dtype(dt).name
        z = rng.normal(size=(N // 256, 256)).astype(dt)
        y = np.empty_like(z)
        dy = rng.normal(size=z.shape).astype(dt)
        dz = np.empty_like(z)
        for name, code in CODES.items():
            out[f"act_fwd/{name}/{tag}"] = _median(act.forward, (code, z, y, 0.2, 1), 20)
            act.forward(code, z, y, 0.2, 1)
            out[f"act_bwd/{name}/{tag}"] = _median(act.backward, (code, dy, y, z, dz, 0.2, 1), 20)
        x = rng.normal(size=(16, 64, 64, 32)).astype(dt)
        for label, geo in (("2x2", (64, 64, 2, 2, 2, 2, "valid")), ("3x3s1", (64, 64, 3, 3, 1, 1, "same"))):
            geometry, (oh, ow) = _geometry(*geo)
            yp = np.empty((16, oh, ow, 32), dt)
            arg = np.empty(yp.shape, np.int32)
            out[f"maxpool_fwd/{label}/{tag}"] = _median(pool.max_forward, (x, yp, arg, geometry, 1), 5)
            dyp = rng.normal(size=yp.shape).astype(dt)
            dx = np.empty_like(x)
            out[f"maxpool_bwd/{label}/{tag}"] = _median(pool.max_backward, (dyp, arg, dx, 1, geometry, np.abs(yp)), 5)
        x3 = x.reshape(16, 64 * 64, 32)
        yg = np.empty((16, 32), dt)
        ag = np.empty((16, 32), np.int32)
        out[f"global_max_fwd/{tag}"] = _median(pool.global_max_forward, (x3, yg, ag, 1), 5)
        out.update(_conv(dt, tag, rng))
    return out


def _geometry(h, w, kh, kw, sh, sw, padding):
    from fastnet.utils.shape_utils import pool_geometry

    g = pool_geometry((h, w), (kh, kw), (sh, sw), padding)
    return g, (g.oh, g.ow)


def _conv(dt, tag, rng):
    """A Conv2D layer with its fused ReLU, forward and backward, through the public API."""
    from fastnet import config, layers

    old = config.floatx()
    config.set_floatx(np.dtype(dt).name)
    try:
        layer = layers.Conv2D(16, 3, padding="same", activation="relu")
        x = rng.normal(size=(16, 32, 32, 8)).astype(dt)
        y = layer(x)
        dy = rng.normal(size=y.shape).astype(dt)
        fwd = _median(layer.call, (x, True), 5)
        layer.call(x, training=True)
        bwd = _median(layer.backward, (dy,), 5)
    finally:
        config.set_floatx(old)
    return {f"conv_relu_fwd/{tag}": fwd, f"conv_relu_bwd/{tag}": bwd}


def main(argv):
    compare = None
    if "--compare" in argv:
        i = argv.index("--compare")
        with open(argv[i + 1]) as f:
            compare = json.load(f)
        argv = argv[:i] + argv[i + 2:]
    res = bench()
    res["_variant"] = VARIANT
    if argv:
        with open(argv[0], "w") as f:
            json.dump(res, f, indent=1)
    for k, v in res.items():
        if k.startswith("_"):
            continue
        line = f"{k:32s} {v:10.1f} us"
        if compare and k in compare:
            line += f"   before {compare[k]:10.1f} us   ratio {v / compare[k]:.2f}"
        print(line)
    print("kernels:", VARIANT)


if __name__ == "__main__":
    main(sys.argv[1:])
