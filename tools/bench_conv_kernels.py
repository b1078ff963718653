"""Convolution kernels, one thread: the forward, the kernel gradient (dW), the input
gradient (dx) and both gradients in one call, under two settings of
``fastnet._kernels.conv.set_tuning``, timed in alternation (A, B, A, B, ...) so that
both meet the same machine load. Prints the median over the repeats of each call's
thread CPU time (time.thread_time), in ms.

Usage: python tools/bench_conv_kernels.py [--reps N] [--a SETTINGS] [--b SETTINGS]
                                         [--shape n,h,w,c,f,stride,padding[,kh,kw]]...

SETTINGS is a Python dict of set_tuning's arguments. The defaults compare the
kernels as they were before the direct kernels (A: direct kernels off, Winograd's
products on BLAS, no gap between its blocks) with the current defaults (B), on the
convolutions of the ``resnet`` benchmark (batch 64, 32x32x3 images).
"""
import argparse
import ast
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import fastnet  # noqa: E402
from fastnet._kernels import conv  # noqa: E402
from fastnet.utils.shape_utils import conv_geometry  # noqa: E402

BEFORE = dict(direct_fwd=False, direct_dw=False, direct_dx=False, wino_atb=False,
              wino_packed=False, winograd_pad=0)
NOW = dict(direct_fwd=True, direct_dw=True, direct_dx=True, wino_atb=True, wino_packed=True,
           winograd_pad=16)
# the resnet benchmark's convolutions: stem, block 16, block 32 (stride 2, 1x1
# projection), block 64 (stride 2, 1x1 projection)
RESNET = [
    (64, 32, 32, 3, 16, 1, "same"),
    (64, 32, 32, 16, 16, 1, "same"),
    (64, 32, 32, 16, 32, 2, "same"),
    (64, 16, 16, 32, 32, 1, "same"),
    (64, 32, 32, 16, 32, 2, "valid", 1, 1),
    (64, 16, 16, 32, 64, 2, "same"),
    (64, 8, 8, 64, 64, 1, "same"),
    (64, 16, 16, 32, 64, 2, "valid", 1, 1),
]


def _shape(text):
    parts = text.split(",")
    vals = [int(p) if p.lstrip("-").isdigit() else p for p in parts]
    return tuple(vals)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=11)
    ap.add_argument("--a", default=repr(BEFORE))
    ap.add_argument("--b", default=repr(NOW))
    ap.add_argument("--shape", action="append", type=_shape)
    args = ap.parse_args()
    settings = (ast.literal_eval(args.a), ast.literal_eval(args.b))
    fastnet.config.set_num_threads(1)
    base = conv.set_tuning()
    rng = np.random.default_rng(0)
    print(f"{'convolution':36s} {'forward':>14s} {'dW':>14s} {'dx':>14s} {'dW + dx':>14s}")
    for case in args.shape or RESNET:
        cells = _time_case(case, settings, args.reps, rng)
        conv.set_tuning(**base)
        n, h, w, c, f, s, pad = case[:7]
        kh, kw = case[7:9] if len(case) > 7 else (3, 3)
        name = f"{n}x{h}x{w} {kh}x{kw} {c}->{f} s{s} {pad}"
        print(f"{name:36s} " + " ".join(f"{cell:>14s}" for cell in cells), flush=True)


def _time_case(case, settings, reps, rng):
    """'A -> B' medians (ms) of the forward, dW, dx and both gradients of one shape."""
    n, h, w, c, f, s, pad = case[:7]
    kh, kw = case[7:9] if len(case) > 7 else (3, 3)
    g = conv_geometry((h, w), (kh, kw), (s if h > 1 else 1, s), pad, (1, 1))
    P = n * g.oh * g.ow
    x = rng.standard_normal((n, h, w, c), dtype=np.float32)
    k = rng.standard_normal((kh * kw * c, f), dtype=np.float32)
    dy = rng.standard_normal((P, f), dtype=np.float32)
    y = np.empty((P, f), np.float32)
    dw = np.empty_like(k)
    dx = np.empty_like(x)
    calls = [
        lambda: conv.forward(x, k, None, None, y, g, 0, 0.0, 1),
        lambda: conv.backward(dy, x, k, None, None, dw, None, None, g, 0, 0.0, 1),
        lambda: conv.backward(dy, x, k, None, None, None, None, dx, g, 0, 0.0, 1),
        lambda: conv.backward(dy, x, k, None, None, dw, None, dx, g, 0, 0.0, 1),
    ]
    cells = []
    for call in calls:
        times = ([], [])
        for i in (0, 1):
            conv.set_tuning(**settings[i])
            call()
        for _ in range(reps):
            for i in (0, 1):
                conv.set_tuning(**settings[i])
                t0 = time.thread_time()
                call()
                times[i].append(time.thread_time() - t0)
        a, b = (sorted(t)[len(t) // 2] * 1e3 for t in times)
        cells.append(f"{a:6.2f} -> {b:5.2f}")
    return cells


if __name__ == "__main__":
    main()
