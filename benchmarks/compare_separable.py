#!/usr/bin/env python3
"""Times SeparableConv2D (and its depthwise half) forward + backward at the shapes of the
``separable_cnn`` workload: fastnet's kernels, a numpy version of the same computation
(fastnet._reference.conv_variants for the depthwise step, numpy matmul for the pointwise
one) and, when it is installed, PyTorch (a grouped Conv2d then a 1x1 Conv2d, channels
first as PyTorch wants, autograd backward).

usage: python benchmarks/compare_separable.py [--threads N] [--repeat R]

Prints the median milliseconds of each per layer shape and the ratios to fastnet; also
DepthwiseConv2D alone and numpy's three GEMMs of the pointwise step alone (the floor of
the layer's time on this machine).
"""
import argparse
import statistics
import time

import numpy as np

import fastnet
from fastnet import layers
from fastnet._reference import conv_variants as ref
from fastnet.layers._v2 import SimpleContext
from fastnet.layers.convolutional_variants import geometry3

# (batch, rows, cols, channels in, filters) of the workload's three separable blocks.
SHAPES = [(64, 32, 32, 32, 64), (64, 16, 16, 64, 128), (64, 8, 8, 128, 256)]


def _median_ms(fn, repeat):
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def fastnet_step(n, h, w, c, f):
    layer = layers.SeparableConv2D(f, 3, padding="same", use_bias=False)
    x = np.random.default_rng(0).standard_normal((n, h, w, c)).astype(np.float32)
    dy = np.random.default_rng(1).standard_normal((n, h, w, f)).astype(np.float32)
    layer.build(x.shape)

    def step():
        ctx = SimpleContext()
        layer.forward(ctx, x, training=True)
        layer.backward(ctx, dy)
    return step


def numpy_step(n, h, w, c, f):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 1, h, w, c)).astype(np.float32)
    dw = rng.standard_normal((9, c)).astype(np.float32)
    pw = rng.standard_normal((c, f)).astype(np.float32)
    dy = rng.standard_normal((n * h * w, f)).astype(np.float32)
    g = geometry3((1, h, w), (1, 3, 3), (1, 1, 1), "same", (1, 1, 1))

    def step():
        t = ref.depthwise_forward(x, dw, None, g).reshape(-1, c)
        t @ pw
        dt = dy @ pw.T
        t.T @ dy
        ref.depthwise_backward(dt.reshape((n, 1, h, w, c)), x, dw, g)
    return step


def gemm_step(n, h, w, c, f):
    """The pointwise step's three GEMMs alone (forward, weight gradient, input gradient)."""
    rng = np.random.default_rng(0)
    t = rng.standard_normal((n * h * w, c)).astype(np.float32)
    pw = rng.standard_normal((c, f)).astype(np.float32)
    dy = rng.standard_normal((n * h * w, f)).astype(np.float32)

    def step():
        t @ pw
        t.T @ dy
        dy @ pw.T
    return step


def torch_step(n, h, w, c, f):
    import torch
    from torch import nn

    dw = nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False)
    pw = nn.Conv2d(c, f, 1, bias=False)
    x = torch.randn(n, c, h, w, requires_grad=True)
    dy = torch.randn(n, f, h, w)

    def step():
        for p in (dw.weight, pw.weight):
            p.grad = None
        x.grad = None
        pw(dw(x)).backward(dy)
    return step


def depthwise_only(n, h, w, c):
    layer = layers.DepthwiseConv2D(3, padding="same", use_bias=False)
    x = np.random.default_rng(0).standard_normal((n, h, w, c)).astype(np.float32)
    layer.build(x.shape)

    def step():
        ctx = SimpleContext()
        y = layer.forward(ctx, x, training=True)
        layer.backward(ctx, y)
    return step


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    if args.threads:
        fastnet.config.set_num_threads(args.threads)
        try:
            import torch

            torch.set_num_threads(args.threads)
        except ImportError:
            pass
    try:
        import torch  # noqa: F401

        have_torch = True
    except ImportError:
        have_torch = False
    print(f"fastnet threads: {fastnet.config.get_num_threads()}; median of {args.repeat} runs, ms")
    print(f"{'shape (n,h,w,c->f)':<24}{'fastnet':>10}{'numpy':>10}{'ratio':>8}"
          + (f"{'torch':>10}{'ratio':>8}" if have_torch else "") + f"{'depthwise':>11}{'GEMMs':>9}")
    for n, h, w, c, f in SHAPES:
        fn_ms = _median_ms(fastnet_step(n, h, w, c, f), args.repeat)
        np_ms = _median_ms(numpy_step(n, h, w, c, f), max(1, args.repeat // 2))
        line = f"{f'{n},{h},{w},{c}->{f}':<24}{fn_ms:>10.2f}{np_ms:>10.2f}{np_ms / fn_ms:>7.1f}x"
        if have_torch:
            t_ms = _median_ms(torch_step(n, h, w, c, f), args.repeat)
            line += f"{t_ms:>10.2f}{t_ms / fn_ms:>7.2f}x"
        line += f"{_median_ms(depthwise_only(n, h, w, c), args.repeat):>11.2f}"
        line += f"{_median_ms(gemm_step(n, h, w, c, f), args.repeat):>9.2f}"
        print(line)


if __name__ == "__main__":
    main()
