#!/usr/bin/env python3
"""Scaling of data-parallel training (fastnet.distribution over MPI) on the MNIST workloads.

usage: python benchmarks/mpi_scaling.py [--ranks 1 2 4 8] [--threads 1] [--workloads mlp mlp2 convnet]
                                        [--steps 30] [--repeats 5] [--batch 128] [--rounds 1]
                                        [--stat median|min] [--independent]
                                        [--methods shared mpi overlap] [--bucket-mb 8] [--json out.json]

For each workload and rank count N the script launches ``mpiexec -n N`` on itself (the
``--worker`` mode) with ``--threads`` threads per rank (``FASTNET_NUM_THREADS``). Each
worker runs one fit of ``--repeats`` + 1 epochs of ``--steps`` batches, the first to warm up, and
reports the median (or, with ``--stat min``, the fastest) time per training step, and the
part of it spent in the gradient
sum after the backward pass (waiting for slower ranks included).

Methods (DataParallel arguments): ``mpi`` (the default) sums buckets with MPI_Iallreduce
after the backward pass, ``overlap`` starts each bucket's MPI_Iallreduce as soon as the
backward pass produced it, ``shared`` sums in MPI-3 shared memory.

Two figures per N:
  strong  the global batch stays ``--batch`` (each rank takes batch/N rows):
          efficiency = T(1) / (N * T(N)) with T the time per step;
  weak    the global batch grows to ``--batch * N`` (each rank keeps ``--batch`` rows):
          efficiency = T(1) / T(N), i.e. samples/s(N) / (N * samples/s(1)).

With ``--independent`` the script also runs N independent single processes at once (no
MPI, each with the base batch): their time per step shows what the machine itself
gives N processes (shared cores, memory bandwidth, other work), and
``dp/indep`` = T(independent) / T(weak, N) is the data-parallel machinery's own
efficiency: 100% means the gradient sums and the ranks' coordination cost nothing.

Workloads (random MNIST-shaped data, Adam, sparse categorical crossentropy):
  mlp      Dense 512 relu, Dropout 0.2, Dense 10 softmax (784 inputs; 407k weights)
  mlp2     Keras's mnist_mlp: Dense 512 relu, Dropout 0.2, Dense 512 relu, Dropout 0.2,
           Dense 10 softmax (669k weights)
  convnet  Keras's MNIST convnet: Conv2D 32 3x3 relu, MaxPool 2, Conv2D 64 3x3 relu,
           MaxPool 2, Flatten, Dropout 0.5, Dense 10 softmax (35k weights)
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import sysconfig
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def build(name):
    from fastnet import layers
    from fastnet.models import Sequential

    if name == "mlp":
        m = Sequential([layers.Input((784,)), layers.Dense(512, activation="relu"), layers.Dropout(0.2),
                        layers.Dense(10, activation="softmax")])
    elif name == "mlp2":
        m = Sequential([layers.Input((784,)), layers.Dense(512, activation="relu"), layers.Dropout(0.2),
                        layers.Dense(512, activation="relu"), layers.Dropout(0.2),
                        layers.Dense(10, activation="softmax")])
    elif name == "convnet":
        m = Sequential([layers.Input((28, 28, 1)), layers.Conv2D(32, 3, activation="relu"),
                        layers.MaxPooling2D(2), layers.Conv2D(64, 3, activation="relu"),
                        layers.MaxPooling2D(2), layers.Flatten(), layers.Dropout(0.5),
                        layers.Dense(10, activation="softmax")])
    else:
        raise SystemExit(f"unknown workload {name!r}; choose from mlp, mlp2, convnet")
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


def worker(a):
    import numpy as np

    import fastnet
    import fastnet.callbacks
    from fastnet import distribution as dist

    dp = dist.DataParallel(allreduce="shared" if a.method == "shared" else "mpi",
                           overlap=a.method == "overlap", bucket_size_mb=a.bucket_mb)
    dist.set_distribution(dp)
    fastnet.random.set_seed(0)
    batch = a.batch * (dp.num_processes if a.mode == "weak" else 1)
    n = batch * a.steps
    rng = np.random.default_rng(0)
    shape = (28, 28, 1) if a.workload == "convnet" else (784,)
    x = rng.random((n,) + shape, dtype=np.float32)
    y = rng.integers(0, 10, n)
    m = build(a.workload)
    times, waits = [], []

    class Timer(fastnet.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            r = dist.runner(self.model)
            self.t = time.perf_counter()
            self.w = (r.stats["wait_s"], r.stats["steps"]) if r else (0.0, 0)

        def on_epoch_end(self, epoch, logs=None):
            times.append((time.perf_counter() - self.t) / a.steps)
            r = dist.runner(self.model)
            if r:
                waits.append((r.stats["wait_s"] - self.w[0]) / max(1, r.stats["steps"] - self.w[1]))

    # One fit: the first epoch warms up (buffers, optimizer state), each later one is timed.
    m.fit(x, y, batch_size=batch, epochs=a.repeats + 1, verbose=0, callbacks=[Timer()])
    times, waits = times[1:], waits[1:]
    if dp.is_chief:
        print("RESULT " + json.dumps({
            "workload": a.workload, "mode": a.mode, "ranks": dp.num_processes,
            "threads": fastnet.config.get_num_threads(), "batch": batch,
            "step_ms": 1e3 * (min(times) if a.stat == "min" else statistics.median(times)),
            "wait_ms": 1e3 * ((min(waits) if a.stat == "min" else statistics.median(waits)) if waits else 0.0),
            "method": a.method, "bucket_mb": a.bucket_mb, "mpi": dp._backend.library}), flush=True)


def _mpiexec():
    for folder in (os.path.dirname(sys.executable), sysconfig.get_path("scripts")):
        path = os.path.join(folder, "mpiexec")
        if os.path.isfile(path):
            return path
    return "mpiexec"


def launch(a, workload, mode, ranks, method):
    cmd = [_mpiexec(), "-n", str(ranks), sys.executable, os.path.abspath(__file__), "--worker",
           "--workload", workload, "--mode", mode, "--steps", str(a.steps), "--repeats", str(a.repeats),
           "--batch", str(a.batch), "--method", method, "--bucket-mb", str(a.bucket_mb), "--stat", a.stat]
    env = dict(os.environ, FASTNET_NUM_THREADS=str(a.threads), OMP_NUM_THREADS=str(a.threads))
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")


def launch_independent(a, workload, n):
    """N single processes with the base batch, started together, no MPI."""
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--workload", workload, "--mode",
           "strong", "--steps", str(a.steps), "--repeats", str(a.repeats), "--batch", str(a.batch),
           "--stat", a.stat]
    env = dict(os.environ, FASTNET_NUM_THREADS=str(a.threads), OMP_NUM_THREADS=str(a.threads),
               FASTNET_MPI="0")
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(n)]
    steps = []
    for p in procs:
        out, err = p.communicate(timeout=3600)
        lines = [l for l in out.splitlines() if l.startswith("RESULT ")]
        if not lines:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{out}\n{err}")
        steps.append(json.loads(lines[0][7:])["step_ms"])
    return statistics.mean(steps)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--workloads", nargs="+", default=["mlp", "mlp2", "convnet"])
    ap.add_argument("--modes", nargs="+", default=["strong", "weak"], choices=["strong", "weak"])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--methods", nargs="+", default=["mpi"], choices=["mpi", "overlap", "shared"])
    ap.add_argument("--bucket-mb", type=float, default=8.0)
    ap.add_argument("--stat", default="median", choices=["median", "min"],
                    help="time per step over the repeats: the median, or the fastest repeat (on a "
                         "machine shared with other work)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="repeat the whole sweep, interleaving the configurations in time")
    ap.add_argument("--independent", action="store_true",
                    help="also time N independent processes at once (the machine's own scaling)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--workload", help=argparse.SUPPRESS)
    ap.add_argument("--mode", default="strong", help=argparse.SUPPRESS)
    ap.add_argument("--method", default="mpi", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        return worker(a)

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# {os.cpu_count()} cores (load {load:.1f}); {a.threads} thread(s) per rank; {a.steps} steps x "
          f"{a.repeats} repeats ({a.stat}) x {a.rounds} round(s); base batch {a.batch}; "
          f"buckets {a.bucket_mb:g} MB")
    configs = [(w, mode, method, n) for w in a.workloads for mode in a.modes for method in a.methods
               for n in a.ranks]
    best, indep = {}, {}
    # Rounds interleave the configurations in time, so that a burst of other work on a shared
    # machine hits them alike; each figure is the best (--stat min) or median over the rounds.
    for _ in range(a.rounds):
        for c in configs:
            best.setdefault(c, []).append(launch(a, c[0], c[1], c[3], c[2]))
        if a.independent:
            for w in a.workloads:
                for n in a.ranks:
                    if n > 1:
                        indep.setdefault((w, n), []).append(launch_independent(a, w, n))
    pick = min if a.stat == "min" else statistics.median
    print(f"{'workload':9s} {'mode':6s} {'method':7s} {'ranks':>5s} {'batch':>6s} {'ms/step':>8s} "
          f"{'wait ms':>8s} {'samples/s':>10s} {'efficiency':>10s}"
          + (f" {'indep ms':>8s} {'dp/indep':>8s}" if a.independent else ""))
    rows = []
    for c in configs:
        w, mode, method, n = c
        runs = best[c]
        r = dict(runs[0])
        r["step_ms"] = pick([x["step_ms"] for x in runs])
        r["wait_ms"] = pick([x["wait_ms"] for x in runs])
        one = pick([x["step_ms"] for x in best[(w, mode, method, a.ranks[0])]]) if a.ranks[0] == 1 \
            else float("nan")
        r["efficiency"] = one / (n * r["step_ms"]) if mode == "strong" else one / r["step_ms"]
        extra = ""
        if a.independent and mode == "weak":
            ind = one if n == 1 else pick(indep[(w, n)])
            r["independent_ms"] = ind
            extra = f" {ind:8.2f} {ind / r['step_ms']:8.0%}"
        rows.append(r)
        print(f"{w:9s} {mode:6s} {method:7s} {n:5d} {r['batch']:6d} {r['step_ms']:8.2f} "
              f"{r['wait_ms']:8.2f} {1e3 * r['batch'] / r['step_ms']:10.0f} {r['efficiency']:10.0%}" + extra,
              flush=True)
    if rows:
        print(f"# MPI: {rows[0]['mpi']}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
