#!/usr/bin/env python3
"""Where a fastnet training step spends its time, layer by layer.

usage: python tools/profile_nodes.py WORKLOAD [--epochs N] [--threads T]

Builds WORKLOAD from ``benchmarks/workloads.py`` with fastnet, wraps every layer's
``forward`` and ``backward`` with a timer, trains ``--epochs`` epochs after one warm-up
epoch, and prints the milliseconds per step each layer spends in forward and backward,
largest first, plus the time outside any layer (loss, optimizer, executor, data).
"""
from __future__ import annotations

import argparse
import collections
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("workload")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()

    from workloads import WORKLOADS

    import fastnet

    if args.threads:
        fastnet.config.set_num_threads(args.threads)
    captured = []
    orig_model_init = fastnet.Model.__init__

    def spy(self, *a, **k):
        orig_model_init(self, *a, **k)
        captured.append(self)

    fastnet.Model.__init__ = spy
    try:
        epoch = WORKLOADS[args.workload].runner("fastnet")
    finally:
        fastnet.Model.__init__ = orig_model_init
    epoch()  # warm-up (builds, allocates)
    model = captured[-1]
    totals: dict = collections.defaultdict(float)
    clock = time.perf_counter

    def wrap(layer, kind):
        fn = getattr(layer, kind)
        key = (f"{layer.name} ({type(layer).__name__})", kind)

        def timed(*a, **k):
            t0 = clock()
            try:
                return fn(*a, **k)
            finally:
                totals[key] += clock() - t0
        setattr(layer, kind, timed)

    for layer in model._flatten_layers() if hasattr(model, "_flatten_layers") else model.layers:
        if layer is model:
            continue
        wrap(layer, "forward")
        wrap(layer, "backward")
    if hasattr(model, "_graph_cache"):
        model._graph_cache = None
    t0 = clock()
    n = 0
    for _ in range(args.epochs):
        n += epoch()
    wall = (clock() - t0) / n * 1e3
    in_layers = sum(totals.values()) / n * 1e3
    print(f"{args.workload}: {wall:.2f} ms/step, {in_layers:.2f} in layers, "
          f"{wall - in_layers:.2f} outside (loss, optimizer, executor)")
    fwd = collections.defaultdict(float)
    bwd = collections.defaultdict(float)
    for (name, kind), t in totals.items():
        (fwd if kind == "forward" else bwd)[name] += t / n * 1e3
    rows = sorted(set(fwd) | set(bwd), key=lambda k: -(fwd[k] + bwd[k]))
    print(f"{'layer':48s} {'fwd ms':>8s} {'bwd ms':>8s}")
    for name in rows:
        print(f"{name:48s} {fwd[name]:8.3f} {bwd[name]:8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
