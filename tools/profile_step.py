#!/usr/bin/env python3
"""Where one training step of a benchmark workload spends its time, per graph node.

usage: PYTHONPATH=. python tools/profile_step.py [WORKLOAD] [--steps N] [--threads T]

Wraps every layer's forward and backward with a timer, runs a few epochs of the
workload's fastnet model, and prints the median milliseconds per step of each node's
forward and backward, the optimizer update, and what is left (loss, metrics, the
trainer's own work).
"""
import argparse
import collections
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("workload", nargs="?", default="transformer_text")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=3)
    a = ap.parse_args()
    from workloads import WORKLOADS

    import fastnet

    fastnet.config.set_num_threads(a.threads)
    times = collections.defaultdict(list)
    orig = {}

    def wrap(cls, name):
        f = getattr(cls, name)
        if (cls, name) in orig:
            return
        orig[(cls, name)] = f

        def timed(self, *args, **kw):
            t = time.perf_counter()
            r = f(self, *args, **kw)
            times[(self.name, name)].append(time.perf_counter() - t)
            return r
        setattr(cls, name, timed)

    from fastnet.layers.base import Layer
    seen = set()
    stack = [Layer]
    while stack:
        c = stack.pop()
        if c in seen:
            continue
        seen.add(c)
        stack.extend(c.__subclasses__())
        if "forward" in c.__dict__:
            wrap(c, "forward")
        if "backward" in c.__dict__:
            wrap(c, "backward")
    from fastnet.optimizers.base import Optimizer
    for c in [Optimizer] + Optimizer.__subclasses__():
        if "apply_flat" in c.__dict__:
            f0 = c.__dict__["apply_flat"]

            def af(self, *args, _f=f0, **kw):
                t = time.perf_counter()
                r = _f(self, *args, **kw)
                times[("optimizer", "apply_flat")].append(time.perf_counter() - t)
                return r
            c.apply_flat = af
    w = WORKLOADS[a.workload]
    epoch = w.fastnet()
    epoch()
    totals = []
    for _ in range(a.epochs):
        times.clear()
        t = time.perf_counter()
        steps = epoch()
        totals.append((time.perf_counter() - t) / steps)
    per = {k: sum(v) / steps for k, v in times.items()}
    # nested layers' wrappers double count: report the top-level figure only once
    tot = statistics.median(totals) * 1e3
    print(f"{a.workload}: {tot:.2f} ms/step (median of {a.epochs} epochs)")
    acc = 0.0
    for k, v in sorted(per.items(), key=lambda kv: -kv[1]):
        print(f"  {k[0]:32s} {k[1]:10s} {v * 1e3:8.3f} ms")
        acc += v
    print(f"  (sum of listed, nested double counted: {acc * 1e3:.2f} ms)")


if __name__ == "__main__":
    main()
