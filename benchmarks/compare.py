#!/usr/bin/env python3
"""Times the same training workloads in fastnet and PyTorch in one run; prints medians and ratios.

usage: python benchmarks/compare.py [--threads N] [--repeats R] [--json out.json] [WORKLOAD ...]

Each workload is timed as steady-state time per training step: the model is fitted
once to warm up, then each repeat times one more epoch (fit on the same data),
divided by the number of steps. Both libraries use the same thread count, the
same batch size, optimizer hyperparameters and data. PyTorch is used when it is
installed; ratios are PyTorch time / fastnet time (higher is better for fastnet).
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from workloads import WORKLOADS  # noqa: E402


def median_ms(fn, repeats):
    fn()  # warm-up (first fit builds buffers and optimizer state)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        steps = fn()
        times.append((time.perf_counter() - t) / steps)
    return 1e3 * statistics.median(times)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--json", default=None)
    ap.add_argument("workloads", nargs="*")
    a = ap.parse_args(argv)

    import fastnet

    if a.threads:
        fastnet.config.set_num_threads(a.threads)
    n_threads = fastnet.config.get_num_threads()
    try:
        import torch

        torch.set_num_threads(n_threads)
    except ImportError:
        torch = None

    names = a.workloads or list(WORKLOADS)
    rows = []
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {n_threads} threads; "
          f"fastnet {fastnet.__version__}, numpy {np.__version__}"
          + (f", torch {torch.__version__}" if torch else ", torch not installed"))
    print(f"{'workload':24s} {'fastnet ms':>11s} {'torch ms':>10s} {'ratio':>7s}  target")
    for name in names:
        w = WORKLOADS[name]
        fn_ms = median_ms(w.fastnet(), a.repeats)
        tr_ms = median_ms(w.torch(), a.repeats) if torch is not None else float("nan")
        ratio = tr_ms / fn_ms if torch is not None else float("nan")
        ok = "" if torch is None else ("ok" if ratio >= w.target else "SHORT")
        print(f"{name:24s} {fn_ms:11.3f} {tr_ms:10.3f} {ratio:7.2f}  >= {w.target:g}x {ok}")
        rows.append({"workload": name, "fastnet_ms": fn_ms, "torch_ms": tr_ms, "ratio": ratio,
                     "target": w.target, "unit": w.unit})
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"threads": n_threads, "machine": platform.machine(),
                       "torch": getattr(torch, "__version__", None), "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
