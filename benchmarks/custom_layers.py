"""Step time of custom layers and subclassed models against built-in layers (issue 18).

    PYTHONPATH=. python benchmarks/custom_layers.py                    # small and mlp, both kinds
    PYTHONPATH=. python benchmarks/custom_layers.py small --kinds ops_layers --repeats 60

The models are those of ``asv_benchmarks/benchmarks/custom.py`` (``build``): a Sequential
of built-in ``Dense`` layers, the same of a ``Layer`` written with ops
(``relu(matmul(x, w) + b)``), and a ``Model`` subclass chaining built-in layers. Each
model is fitted once, then the built-in model and the others are fitted in turns, one
epoch of 20 batches each, ``--repeats`` times, in this process (so a slow moment of a
shared machine hits them alike). Printed: the median microseconds per step of each, the
ratio of the medians to the built-in model (targets: ops layers within 2x, a subclassed
model within 1.1x), and the median of the per-turn ratios.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("sizes", nargs="*", default=["small", "mlp"], help="small, mlp")
    p.add_argument("--kinds", nargs="+", default=["ops_layers", "subclassed"])
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    sys.path.insert(0, os.path.join(HERE, "..", "asv_benchmarks"))
    from benchmarks.custom import STEPS, build

    import fastnet

    if args.threads:
        fastnet.config.set_num_threads(args.threads)
    for size in args.sizes:
        models = {k: build(k, size) for k in ["builtin"] + args.kinds}
        for m, x, y, bs in models.values():
            m.fit(x, y, batch_size=bs, epochs=1, verbose=0)
        times = {k: [] for k in models}
        for _ in range(args.repeats):
            for k, (m, x, y, bs) in models.items():
                t = time.perf_counter()
                m.fit(x, y, batch_size=bs, epochs=1, verbose=0)
                times[k].append((time.perf_counter() - t) / STEPS * 1e6)
        base = times["builtin"]
        print(f"{size} ({fastnet.config.get_num_threads()} threads, {args.repeats} turns): "
              f"builtin {statistics.median(base):.0f} us/step")
        for k in args.kinds:
            t = times[k]
            print(f"  {k:<12} {statistics.median(t):7.0f} us/step  ratio of medians "
                  f"{statistics.median(t) / statistics.median(base):.2f}  median ratio "
                  f"{statistics.median([a / b for a, b in zip(t, base)]):.2f}")


if __name__ == "__main__":
    main()
