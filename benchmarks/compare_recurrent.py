#!/usr/bin/env python3
"""Times fastnet's recurrent layers against PyTorch (CPU) in one run.

The issue's setting: inputs of 32 steps x 32 features, one recurrent layer of 128
units, then Dense(10, softmax), sparse categorical cross-entropy, Adam, batch 64.
A "training step" is one batch of ``model.fit`` (forward, loss, backward, Adam);
PyTorch runs the same steps in a plain loop. "predict" runs 6400 sequences in batches of 32 (Keras's default) without
recording anything for backward (PyTorch under no_grad), and in one batch of 6400.

usage: python benchmarks/compare_recurrent.py [--threads 1 2] [--repeat 20] [--rounds 7]
                                              [--cells LSTM GRU SimpleRNN] [--breakdown]
                                              [--cpu-time]

fastnet and PyTorch run alternately, round after round, so that both meet the same
load on a shared machine; prints medians (ms) and the median per-round ratio PyTorch
time / fastnet time (> 1: fastnet faster).
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

B, T, D, U, C = 64, 32, 32, 128, 10


def make_model(cell):
    """The benchmark model through fastnet's public API (Keras's code, fastnet's imports)."""
    model = fastnet.Sequential([fastnet.Input(shape=(T, D)),
                                getattr(fastnet.layers, cell)(U),
                                fastnet.layers.Dense(C, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


CLOCK = time.perf_counter


def _median_ms(fn, repeat, warmup=5):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeat):
        t0 = CLOCK()
        fn()
        ts.append(CLOCK() - t0)
    return float(np.median(ts)) * 1e3


def fastnet_runners(cell, repeat, xs, ys, xp):
    """(epoch, predict32, predict_all) closures for fastnet through its public API."""
    model = make_model(cell)
    xe, ye = np.concatenate([xs] * repeat), np.concatenate([ys] * repeat)
    return (lambda: model.fit(xe, ye, batch_size=B, epochs=1, shuffle=False, verbose=0),
            lambda: model.predict(xp, batch_size=32, verbose=0),
            lambda: model.predict(xp, batch_size=len(xp), verbose=0))


def torch_runners(cell, repeat, xs, ys, xp):
    import torch
    torch.manual_seed(0)
    rnn = {"LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU, "SimpleRNN": torch.nn.RNN}[cell](
        D, U, batch_first=True)
    fc = torch.nn.Linear(U, C)
    opt = torch.optim.Adam(list(rnn.parameters()) + list(fc.parameters()), 1e-3)
    lossf = torch.nn.CrossEntropyLoss()
    x, y, X = torch.from_numpy(xs), torch.from_numpy(ys.astype(np.int64)), torch.from_numpy(xp)

    def epoch():
        for _ in range(repeat):
            opt.zero_grad()
            out, _ = rnn(x)
            loss = lossf(fc(out[:, -1]), y)
            loss.backward()
            opt.step()

    def predict(batch):
        with torch.no_grad():
            for i in range(0, len(X), batch):
                torch.softmax(fc(rnn(X[i:i + batch])[0][:, -1]), dim=1)

    return epoch, lambda: predict(32), lambda: predict(len(X))


def set_threads(n):
    config.set_num_threads(n)
    try:
        import torch
        torch.set_num_threads(n)
    except ImportError:
        pass


def compare(cell, threads, repeat, xs, ys, xp, rounds, with_torch=True):
    """Times fastnet and PyTorch alternately, round after round, so that both see the
    same machine; returns per-task medians (ms; training per step) and the median of the
    per-round ratios torch / fastnet."""
    set_threads(threads)
    fn = fastnet_runners(cell, repeat, xs, ys, xp)
    th = torch_runners(cell, repeat, xs, ys, xp) if with_torch else None
    for f in fn + (th or ()):
        f()                                                  # warm-up
    out = []
    for task, n_rounds, scale in ((0, rounds, repeat), (1, max(2, rounds // 2), 1),
                                  (2, max(2, rounds // 2), 1)):
        tf, tt = [], []
        for _ in range(n_rounds):
            t0 = CLOCK()
            fn[task]()
            tf.append((CLOCK() - t0) * 1e3 / scale)
            if th is not None:
                t0 = CLOCK()
                th[task]()
                tt.append((CLOCK() - t0) * 1e3 / scale)
        ratio = float(np.median(np.array(tt) / np.array(tf))) if tt else float("nan")
        out.append((float(np.median(tf)), float(np.median(tt)) if tt else float("nan"), ratio))
    return out


def breakdown(cell, repeat, xs, ys):
    """Share of a 1-thread training step spent in the recurrent layer's GEMMs: the GEMMs
    the kernels run (the input projection through BLAS, the per-step recurrent products
    and the [dW; dR] product through the packed kernel) timed alone, against the step."""
    from fastnet._kernels._blas import gemm_py
    from fastnet._kernels.recurrent import packed_gemm, weight_grad_gemm
    set_threads(1)
    epoch = fastnet_runners(cell, repeat, xs, ys, xs[:32])[0]
    train = _median_ms(epoch, 5, warmup=1) / repeat
    g = {"LSTM": 4, "GRU": 3, "SimpleRNN": 1}[cell]
    gu = g * U
    f32 = np.float32
    rnd = np.random.default_rng(0)
    a_in, w = rnd.random((T * B, D), f32), rnd.random((D, gu), f32)
    h, r = rnd.random((B, U), f32), rnd.random((U, gu), f32)
    dg, hsall = rnd.random((T * B, gu), f32), rnd.random((T * B, U), f32)
    c_in, c_step, c_dh = np.empty((T * B, gu), f32), np.empty((B, gu), f32), np.empty((B, U), f32)
    c_wr, dgs = np.empty((D + U, gu), f32), rnd.random((B, gu), f32)

    def gemms():
        gemm_py(a_in, w, c_in)                                              # input projection
        packed_gemm(h, r, c_step, accumulate=True, repeat=T)                # recurrent, forward
        packed_gemm(dgs, r, c_dh, trans_b=True, accumulate=True, repeat=T)  # state gradient
        weight_grad_gemm(a_in, hsall, dg, c_wr)                             # [dW; dR]

    gemm_ms = _median_ms(gemms, 20)
    return train, gemm_ms


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeat", type=int, default=20, help="training steps per timed epoch")
    ap.add_argument("--rounds", type=int, default=7, help="alternating fastnet/torch rounds")
    ap.add_argument("--cells", nargs="+", default=["LSTM", "GRU", "SimpleRNN"])
    ap.add_argument("--breakdown", action="store_true")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--cpu-time", action="store_true",
                    help="time with the process's CPU clock (1 thread only): steadier on a "
                         "machine shared with other work")
    a = ap.parse_args()
    if a.cpu_time:
        global CLOCK
        if a.threads != [1]:
            ap.error("--cpu-time measures one thread: use --threads 1")
        CLOCK = time.process_time
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((B, T, D)).astype(np.float32)
    ys = rng.integers(0, C, B)
    xp = rng.standard_normal((6400, T, D)).astype(np.float32)
    print(f"fastnet {fastnet.__version__}; batch {B}, {T} steps x {D} features, {U} units, "
          f"Dense({C}, softmax), Adam, sparse categorical cross-entropy; fastnet and PyTorch "
          f"timed alternately, {a.rounds} rounds of {a.repeat} training steps; ratio = "
          f"median over rounds of torch time / fastnet time (> 1: fastnet faster)")
    rows = {}
    names = ("train step", "predict 6400 (batch 32)", "predict 6400 (one batch)")
    for cell in a.cells:
        for nt in a.threads:
            res = compare(cell, nt, a.repeat, xs, ys, xp, a.rounds, not a.no_torch)
            rows[cell, nt] = res
            print(f"{cell:9s} threads={nt} " + " | ".join(
                f"{name}: fastnet {f:7.2f} ms, torch {t:7.2f} ms, ratio {r:5.2f}x"
                for name, (f, t, r) in zip(names, res)), flush=True)
    for cell in a.cells:
        if (cell, 1) in rows and (cell, 2) in rows:
            one, two = rows[cell, 1], rows[cell, 2]
            print(f"{cell:9s} fastnet 1->2 thread speed-up: train {one[0][0] / two[0][0]:.2f}x, "
                  f"predict (batch 32) {one[1][0] / two[1][0]:.2f}x")
    if a.breakdown:
        for cell in a.cells:
            total, gemm_ms = breakdown(cell, a.repeat, xs, ys)
            print(f"{cell:9s} 1 thread: step {total:.2f} ms, recurrent-layer GEMMs {gemm_ms:.2f} ms "
                  f"({100 * gemm_ms / total:.0f}%), rest (gate loops, Dense, Adam, copies) "
                  f"{total - gemm_ms:.2f} ms ({100 * (total - gemm_ms) / total:.0f}%)")


if __name__ == "__main__":
    main()
