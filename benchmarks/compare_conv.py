#!/usr/bin/env python3
"""fastnet vs PyTorch on the convolution workloads, in one run; medians and ratios.

usage: python benchmarks/compare_conv.py [--threads 1 2] [--rounds 3] [--repeats 8]
                                         [--part model stack extra] [--workloads ...]

Workloads (shapes and hyperparameters as the issue states them):
  mnist    Keras's MNIST convnet, batch 128 (Conv2D 32 3x3 relu, MaxPool 2, Conv2D 64 3x3
           relu, MaxPool 2, Flatten, Dropout 0.5, Dense 10 softmax; Adam)
  conv1d   input (100, 16), batch 64 (Conv1D 64 k5 relu valid, Conv1D 64 k5 relu same,
           Flatten, Dense 1 sigmoid; rmsprop)
  decoder  64 inputs, batch 64 (Dense 7*7*32 relu, Reshape, Conv2DTranspose 32 k3 s2 same
           relu, Conv2DTranspose 1 k3 s2 same sigmoid; Adam; mse)

Parts:
  model  whole training steps: fastnet's fit on 8 batches against the usual PyTorch loop
         (zero_grad, forward, loss, backward, step) on 8 batches; ms per step. For the
         MNIST convnet also with fold_relu_into_max_pooling applied to the model's layers
         (the ReLU derivative taken in the max pooling's backward; until the model loop
         does it by itself).
  stack  forward + backward of the conv/pool layers only (no input gradient for the
         first layer); fastnet with reused buffers as in its training loop.
  extra  the fraction of numpy's matmul speed the conv forward reaches (same GEMM, same
         threads) and the memory of one MNIST-convnet step against its activations.

Each library runs in its own worker process (two OpenMP runtimes in one process spin
against each other and slow both down); the workers are run in alternation, ``--rounds``
times, so a slow spell of a shared machine hits both. Each figure is the median over
all rounds' repeats. Ratios are PyTorch ms / fastnet ms (higher is better for fastnet);
for PyTorch the faster of its channels-first and channels-last formats is used.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from compare import wait_quiet  # noqa: E402  (the same wait as the main comparison)

TARGETS = {"mnist": 2.3, "conv1d": 2.3, "decoder": 1.6}
N_BATCHES = 8


# ----------------------------------------------------------------- workers

def _fastnet_fn(part, name, fold=False):
    sys.path.insert(0, ROOT)
    sys.path.insert(0, os.path.join(ROOT, "asv_benchmarks"))
    from benchmarks.conv import conv_stack, model, stack_step

    from fastnet.layers.pooling import fold_relu_into_max_pooling

    if part == "stack":
        layers, x = conv_stack(name)
        if fold:
            fold_relu_into_max_pooling(layers)
        return stack_step(layers, x), 1
    m, x, y, bs = model(name)
    if fold:
        fold_relu_into_max_pooling(m.layers)
    x = np.concatenate([x] * N_BATCHES)
    y = np.concatenate([y] * N_BATCHES)
    m.fit(x[:bs], y[:bs], batch_size=bs, epochs=1, verbose=0)

    def run():
        m.fit(x, y, batch_size=bs, epochs=1, verbose=0, shuffle=False)
    return run, N_BATCHES


def _torch_module(name):
    from torch import nn

    if name == "mnist":
        return nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2))
    if name == "conv1d":
        return nn.Sequential(nn.Conv1d(16, 64, 5), nn.ReLU(),
                             nn.Conv1d(64, 64, 5, padding="same"), nn.ReLU())
    return nn.Sequential(nn.ConvTranspose2d(32, 32, 3, 2, padding=1, output_padding=1),
                         nn.ReLU(), nn.ConvTranspose2d(32, 1, 3, 2, padding=1, output_padding=1),
                         nn.Sigmoid())


def _torch_fn(part, name, channels_last):
    import torch
    from torch import nn

    rng = np.random.default_rng(0)
    stack = _torch_module(name)
    if part == "stack":
        shapes = {"mnist": (128, 1, 28, 28), "conv1d": (64, 16, 100), "decoder": (64, 32, 7, 7)}
        x = torch.rand(*shapes[name])
        m = stack
        if channels_last and x.dim() == 4:
            m = m.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)

        def step():
            for p in m.parameters():
                p.grad = None
            out = m(x)
            out.backward(torch.ones_like(out))
        return step, 1
    if name == "mnist":
        m = nn.Sequential(stack, nn.Flatten(), nn.Dropout(0.5), nn.Linear(1600, 10))
        x = torch.from_numpy(rng.random((128, 1, 28, 28), dtype=np.float32))
        y = torch.from_numpy(rng.integers(0, 10, 128))
        loss_fn, opt = nn.CrossEntropyLoss(), torch.optim.Adam(m.parameters(), eps=1e-7)
    elif name == "conv1d":
        m = nn.Sequential(stack, nn.Flatten(), nn.Linear(64 * 96, 1))
        x = torch.from_numpy(rng.random((64, 16, 100), dtype=np.float32))
        y = torch.from_numpy(rng.integers(0, 2, (64, 1)).astype(np.float32))
        loss_fn = nn.BCEWithLogitsLoss()
        opt = torch.optim.RMSprop(m.parameters(), lr=1e-3, alpha=0.9, eps=1e-7)
    else:
        m = nn.Sequential(nn.Linear(64, 7 * 7 * 32), nn.ReLU(), nn.Unflatten(1, (32, 7, 7)), stack)
        x = torch.from_numpy(rng.random((64, 64), dtype=np.float32))
        y = torch.from_numpy(rng.random((64, 1, 28, 28), dtype=np.float32))
        loss_fn, opt = nn.MSELoss(), torch.optim.Adam(m.parameters(), eps=1e-7)
    if channels_last and x.dim() == 4:
        m = m.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    m.train()

    def run():
        for _ in range(N_BATCHES):
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(m(x), y)
            loss.backward()
            opt.step()
    return run, N_BATCHES


def memory_worker(threads):
    """Runs in a subprocess: RSS high-water marks around one MNIST-convnet epoch."""
    import resource

    sys.path.insert(0, ROOT)
    sys.path.insert(0, os.path.join(ROOT, "asv_benchmarks"))
    from benchmarks.conv import model

    import fastnet

    fastnet.config.set_num_threads(threads)
    rng = np.random.default_rng(0)
    x = rng.random((60000, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, 60000)
    m, _, _, bs = model("mnist")

    def rss():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux

    before = rss()
    t = time.perf_counter()
    m.fit(x, y, batch_size=bs, epochs=1, verbose=0)
    epoch_s = time.perf_counter() - t
    print(json.dumps({"data": x.nbytes + y.nbytes, "before": before, "after": rss(),
                      "epoch_s": epoch_s, "steps": -(-len(x) // bs)}))


def worker(lib, part, name, threads, repeats):
    """Runs in a subprocess: prints the ms per step of ``repeats`` timed calls as JSON."""
    if lib in ("fastnet", "fastnet_fold"):
        sys.path.insert(0, ROOT)
        import fastnet

        fastnet.config.set_num_threads(threads)
        fn, per = _fastnet_fn(part, name, lib == "fastnet_fold")
    else:
        import torch

        torch.set_num_threads(threads)
        fn, per = _torch_fn(part, name, lib == "torch_cl")
    fn()
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3 / per)
    print(json.dumps(times))


QUIET_TIMEOUT = 0.0


def run_worker(lib, part, name, threads, repeats):
    if QUIET_TIMEOUT > 0 and os.path.exists("/proc/loadavg"):
        wait_quiet(QUIET_TIMEOUT)
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", lib, part, name, str(threads),
           str(repeats)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------- parts

def compare(part, names, threads, rounds, repeats):
    title = {"model": "whole training steps (ms per step)",
             "stack": "conv/pool layer stacks, forward + backward (ms per batch)"}[part]
    print(f"\n## {title}")
    print(f"{'workload':9s} {'thr':>3s} {'fastnet':>9s} {'torch':>9s} {'torch-CL':>9s} {'ratio':>6s}"
          + ("  target" if part == "model" else "") + "   (+fold: fastnet ms, ratio)")
    res = {}
    for nt in threads:
        for name in names:
            libs = ["fastnet", "torch"] + (["torch_cl"] if name != "conv1d" else [])
            if name == "mnist":
                libs.append("fastnet_fold")
            times = {lib: [] for lib in libs}
            for _ in range(rounds):
                for lib in libs:
                    times[lib] += run_worker(lib, part, name, nt, repeats)
            med = {lib: statistics.median(v) for lib, v in times.items()}
            best = min(med["torch"], med.get("torch_cl", np.inf))
            ratio = best / med["fastnet"]
            res[(name, nt)] = med["fastnet"]
            line = (f"{name:9s} {nt:3d} {med['fastnet']:9.2f} {med['torch']:9.2f} "
                    f"{med.get('torch_cl', float('nan')):9.2f} {ratio:6.2f}")
            if part == "model":
                line += f"  >= {TARGETS[name]}x {'ok' if ratio >= TARGETS[name] else 'SHORT'}"
            if "fastnet_fold" in med:
                line += f"   {med['fastnet_fold']:9.2f} {best / med['fastnet_fold']:6.2f}"
            print(line, flush=True)
    if 1 in threads and 2 in threads:
        print("1 -> 2 thread speed-up (fastnet): " + ", ".join(
            f"{n} {res[(n, 1)] / res[(n, 2)]:.2f}x" for n in names))


def part_extra(threads, repeats):
    import tracemalloc

    sys.path.insert(0, ROOT)
    sys.path.insert(0, os.path.join(ROOT, "asv_benchmarks"))
    from benchmarks.conv import conv_stack, stack_step

    import fastnet
    from fastnet import layers as L

    def med(fn, n):
        fn()
        ts = []
        for _ in range(n):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
        return 1e3 * statistics.median(ts)

    print("\n## conv forward (im2col or Winograd + GEMM + bias + relu) vs numpy matmul of "
          "the im2col GEMM")
    shapes = {"mnist conv2": ((128, 13, 13, 32), 64, 3, "valid"),
              "conv1d conv2": ((64, 96, 64), 64, 5, "same"),
              "mnist conv1": ((128, 28, 28, 1), 32, 3, "valid")}
    for nt in threads:
        # Sets numpy's BLAS pool to nt as well (the kernels' BLAS stays at 1 per thread).
        fastnet.config.set_num_threads(nt)
        for label, (shape, f, k, pad) in shapes.items():
            rng = np.random.default_rng(0)
            layer = (L.Conv2D if len(shape) == 4 else L.Conv1D)(f, k, padding=pad,
                                                                activation="relu")
            x = rng.random(shape, dtype=np.float32)
            y = layer(x)
            layer._reuse, layer._record = True, False
            kdim = int(np.prod(layer.kernel.shape[:-1]))
            rows = int(np.prod(y.shape[:-1]))
            cols = rng.random((rows, kdim), dtype=np.float32)
            w = np.ascontiguousarray(layer.kernel.value.reshape(kdim, f))
            out = np.empty((rows, f), np.float32)
            t_conv, t_gemm = [], []
            for _ in range(3):
                t_conv.append(med(lambda: layer(x), repeats))
                t_gemm.append(med(lambda: np.matmul(cols, w, out=out), repeats))
            tc, tg = statistics.median(t_conv), statistics.median(t_gemm)
            gf = 2 * rows * kdim * f / 1e6
            print(f"{label:13s} thr {nt}: conv forward {tc:.2f} ms ({gf / tc:.0f} GFLOP/s "
                  f"im2col-equivalent), numpy matmul {tg:.2f} ms ({gf / tg:.0f} GFLOP/s): "
                  f"speed {tg / tc:.0%} of numpy's", flush=True)

    print("\n## memory of one MNIST-convnet forward + backward (conv/pool stack, batch 128)")
    layers, x = conv_stack("mnist")
    step = stack_step(layers, x)
    acts, h = x.nbytes, x
    for layer in layers:
        h = layer(h, training=True)
        acts += h.nbytes
    step()
    held = sum(b.nbytes for layer in layers for b in layer._buffers.values())
    tracemalloc.start()
    step()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"input + layer outputs (the activations): {acts / 2**20:.1f} MiB")
    print(f"buffers the layers keep across steps (outputs, input gradients, argmax): "
          f"{held / 2**20:.1f} MiB")
    print(f"memory allocated during a step (per-chunk scratch, dz of Winograd): "
          f"{peak / 2**20:.2f} MiB peak")
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--memory-worker",
                          str(max(threads))], capture_output=True, text=True, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    mib = 2 ** 20
    print(f"one epoch (60000 images, batch 128, {r['steps']} steps, {r['epoch_s']:.1f} s): "
          f"peak RSS {r['after'] / mib:.0f} MiB, of which {r['data'] / mib:.0f} MiB the data "
          f"and {r['before'] / mib:.0f} MiB before fit; the epoch added "
          f"{(r['after'] - r['before']) / mib:.0f} MiB")


def main(argv=None):
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "--memory-worker":
        memory_worker(int(sys.argv[2]))
        return 0
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "--worker":
        lib, part, name, threads, repeats = sys.argv[2:7]
        worker(lib, part, name, int(threads), int(repeats))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=8)
    ap.add_argument("--part", nargs="+", default=["model", "stack", "extra"],
                    choices=["model", "stack", "extra"])
    ap.add_argument("--workloads", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    ap.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                    help="before each timed worker, wait up to this long for no other "
                         "running process (shared machines)")
    a = ap.parse_args(argv)
    global QUIET_TIMEOUT
    QUIET_TIMEOUT = a.wait_quiet
    import importlib.metadata as md

    print(f"# torch {md.version('torch')}, numpy {np.__version__}; {os.cpu_count()} cpus; "
          f"load average {os.getloadavg()[0]:.2f}")
    for part in ("model", "stack"):
        if part in a.part:
            compare(part, a.workloads, a.threads, a.rounds, a.repeats)
    if "extra" in a.part:
        part_extra(a.threads, 3 * a.repeats)
    print(f"# load average at the end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
