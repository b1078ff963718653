#!/usr/bin/env python3
"""Times benchmark workloads in two checkouts of fastnet, in turns, in one run.

usage: python tools/compare_commits.py BEFORE_DIR AFTER_DIR [--rounds K] [--repeats R]
                                       [--threads N] WORKLOAD ...

Each checkout must be built in place. Each round runs one worker process per checkout
and workload (``benchmarks/compare.py --worker fastnet``, from that checkout), taking
turns, so a slow spell of a shared machine hits both alike. Prints, per workload, the
median ms per step of each checkout over all rounds' repeats and the ratio
before / after (above 1: the after checkout is faster).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys


def worker(root, name, threads, repeats):
    cmd = [sys.executable, os.path.join(root, "benchmarks", "compare.py"), "--worker", "fastnet", name,
           "--threads", str(threads), "--repeats", str(repeats)]
    env = dict(os.environ, PYTHONPATH=root)
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=root)
    if out.returncode != 0:
        raise RuntimeError(f"worker {name} in {root} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("workloads", nargs="+")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    print(f"{'workload':<22}{'before ms':>12}{'after ms':>12}{'before/after':>14}")
    for name in a.workloads:
        times = {"before": [], "after": []}
        for _ in range(a.rounds):
            for key in ("before", "after"):
                res = worker(getattr(a, key), name, a.threads, a.repeats)
                times[key] += res["ms"] if isinstance(res, dict) and "ms" in res else res
        b, f = statistics.median(times["before"]), statistics.median(times["after"])
        print(f"{name:<22}{b:>12.3f}{f:>12.3f}{b / f:>14.3f}", flush=True)


if __name__ == "__main__":
    main()
