#!/usr/bin/env python3
"""Times fastnet's recurrent layers against PyTorch (CPU) in one run.

The issue's setting: inputs of 32 steps x 32 features, one recurrent layer of 128
units, then Dense(10, softmax), sparse categorical cross-entropy, Adam, batch 64.
A "training step" is forward, loss gradient, backward and the Adam update of every
weight. "predict" runs 6400 sequences in batches of 32 (Keras's default) without
recording anything for backward (PyTorch under no_grad), and in one batch of 6400.

usage: python benchmarks/compare_recurrent.py [--threads 1 2] [--repeat 50]
                                              [--cells LSTM GRU SimpleRNN] [--breakdown]

Prints medians (ms) and the ratio PyTorch time / fastnet time (> 1: fastnet faster).
``--breakdown`` also splits one fastnet training step (1 thread) into its GEMMs and
the rest (gate loops, transposes, Python), by timing the same GEMMs alone.
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import fastnet  # noqa: E402
from fastnet import config  # noqa: E402
from fastnet.layers import GRU, LSTM, Dense, SimpleRNN  # noqa: E402

B, T, D, U, C = 64, 32, 32, 128, 10


class Adam:
    """Adam on numpy arrays (the same update as keras.optimizers.Adam)."""

    def __init__(self, variables, lr=1e-3, b1=0.9, b2=0.999, eps=1e-7):
        self.vars, self.lr, self.b1, self.b2, self.eps, self.t = variables, lr, b1, b2, eps, 0
        self.m = [np.zeros_like(v.value) for v in variables]
        self.v = [np.zeros_like(v.value) for v in variables]

    def step(self):
        self.t += 1
        lr = self.lr * np.sqrt(1 - self.b2 ** self.t) / (1 - self.b1 ** self.t)
        for var, m, v in zip(self.vars, self.m, self.v):
            g = var.grad
            m *= self.b1
            m += (1 - self.b1) * g
            v *= self.b2
            v += (1 - self.b2) * g * g
            var.value -= lr * m / (np.sqrt(v) + self.eps)


class FastnetModel:
    def __init__(self, cell, x):
        self.rnn = {"LSTM": LSTM, "GRU": GRU, "SimpleRNN": SimpleRNN}[cell](U)
        self.fc = Dense(C)
        for layer in (self.rnn, self.fc):
            layer._reuse = True
        self.fc(self.rnn(x))
        self.opt = Adam(self.rnn.trainable_weights + self.fc.trainable_weights)

    def train_step(self, x, y):
        h = self.rnn(x, training=True)
        z = self.fc(h, training=True)
        z = z - z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        p[np.arange(len(y)), y] -= 1
        p /= len(y)
        dh = self.fc.backward(p)
        self.rnn.backward(dh, need_dx=False)
        self.opt.step()

    def predict(self, x, batch):
        for layer in (self.rnn, self.fc):
            layer._record = False
        out = [self.fc(self.rnn(x[i:i + batch])) for i in range(0, len(x), batch)]
        for layer in (self.rnn, self.fc):
            layer._record = True
        return out


def _median_ms(fn, repeat, warmup=5):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts)) * 1e3


def time_fastnet(cell, threads, repeat, xs, ys, xp):
    config.set_num_threads(threads)
    m = FastnetModel(cell, xs)
    train = _median_ms(lambda: m.train_step(xs, ys), repeat)
    p32 = _median_ms(lambda: m.predict(xp, 32), max(3, repeat // 10), warmup=1)
    pall = _median_ms(lambda: m.predict(xp, len(xp)), max(3, repeat // 10), warmup=1)
    return train, p32, pall


def time_torch(cell, threads, repeat, xs, ys, xp):
    import torch
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    rnn = {"LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU, "SimpleRNN": torch.nn.RNN}[cell](
        D, U, batch_first=True)
    fc = torch.nn.Linear(U, C)
    opt = torch.optim.Adam(list(rnn.parameters()) + list(fc.parameters()), 1e-3)
    lossf = torch.nn.CrossEntropyLoss()
    x, y, X = torch.from_numpy(xs), torch.from_numpy(ys.astype(np.int64)), torch.from_numpy(xp)

    def step():
        opt.zero_grad()
        out, _ = rnn(x)
        loss = lossf(fc(out[:, -1]), y)
        loss.backward()
        opt.step()

    def predict(batch):
        with torch.no_grad():
            for i in range(0, len(X), batch):
                torch.softmax(fc(rnn(X[i:i + batch])[0][:, -1]), dim=1)

    train = _median_ms(step, repeat)
    p32 = _median_ms(lambda: predict(32), max(3, repeat // 10), warmup=1)
    pall = _median_ms(lambda: predict(len(X)), max(3, repeat // 10), warmup=1)
    return train, p32, pall


def breakdown(cell, repeat, xs, ys):
    """Share of a 1-thread training step spent in the recurrent layer's GEMMs."""
    from fastnet._kernels._blas import gemm_py
    config.set_num_threads(1)
    m = FastnetModel(cell, xs)
    total = _median_ms(lambda: m.train_step(xs, ys), repeat)
    g = {"LSTM": 4, "GRU": 3, "SimpleRNN": 1}[cell]
    gu = g * U
    f32 = np.float32
    a_in, w = np.random.rand(T * B, D).astype(f32), np.random.rand(D, gu).astype(f32)
    h, r = np.random.rand(B, U).astype(f32), np.random.rand(U, gu).astype(f32)
    dg, hsall = np.random.rand(T * B, gu).astype(f32), np.random.rand(T * B, U).astype(f32)
    c_in, c_step = np.empty((T * B, gu), f32), np.empty((B, gu), f32)
    c_dh, c_dw, c_dr = np.empty((B, U), f32), np.empty((D, gu), f32), np.empty((U, gu), f32)
    dgs = np.random.rand(B, gu).astype(f32)

    def gemms():
        gemm_py(a_in, w, c_in)                                  # input projection
        for _ in range(T):
            gemm_py(h, r, c_step, beta=1)                       # recurrent, forward
            gemm_py(dgs, r, c_dh, trans_b=True, beta=1)         # state gradient, backward
        gemm_py(a_in, dg, c_dw, trans_a=True)                   # dW
        gemm_py(hsall, dg, c_dr, trans_a=True)                  # dR

    gemm_ms = _median_ms(gemms, repeat)
    return total, gemm_ms


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeat", type=int, default=50)
    ap.add_argument("--cells", nargs="+", default=["LSTM", "GRU", "SimpleRNN"])
    ap.add_argument("--breakdown", action="store_true")
    ap.add_argument("--no-torch", action="store_true")
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((B, T, D)).astype(np.float32)
    ys = rng.integers(0, C, B)
    xp = rng.standard_normal((6400, T, D)).astype(np.float32)
    print(f"fastnet {fastnet.__version__}; batch {B}, {T} steps x {D} features, {U} units, "
          f"Dense({C}); medians of {a.repeat} steps")
    rows = []
    for cell in a.cells:
        for nt in a.threads:
            fn = time_fastnet(cell, nt, a.repeat, xs, ys, xp)
            th = (np.nan,) * 3 if a.no_torch else time_torch(cell, nt, a.repeat, xs, ys, xp)
            rows.append((cell, nt, fn, th))
            print(f"{cell:9s} threads={nt}  train step: fastnet {fn[0]:7.2f} ms  torch {th[0]:7.2f} ms"
                  f"  ratio {th[0] / fn[0]:5.2f}x | predict 6400 (batch 32): fastnet {fn[1]:7.1f} ms"
                  f"  torch {th[1]:7.1f} ms  ratio {th[1] / fn[1]:5.2f}x | (one batch): fastnet "
                  f"{fn[2]:7.1f} ms  torch {th[2]:7.1f} ms  ratio {th[2] / fn[2]:5.2f}x", flush=True)
    for cell in a.cells:
        by = {nt: fn for c, nt, fn, _ in rows if c == cell}
        if 1 in by and 2 in by:
            print(f"{cell:9s} fastnet 1->2 thread speed-up: train {by[1][0] / by[2][0]:.2f}x, "
                  f"predict {by[1][1] / by[2][1]:.2f}x")
    if a.breakdown:
        for cell in a.cells:
            total, gemm_ms = breakdown(cell, a.repeat, xs, ys)
            print(f"{cell:9s} 1 thread: step {total:.2f} ms, recurrent-layer GEMMs {gemm_ms:.2f} ms "
                  f"({100 * gemm_ms / total:.0f}%), rest (gate loops, Dense, Adam, copies) "
                  f"{total - gemm_ms:.2f} ms ({100 * (total - gemm_ms) / total:.0f}%)")


if __name__ == "__main__":
    main()
