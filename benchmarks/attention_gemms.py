"""MultiHeadAttention forward+backward against the time of its GEMMs alone.

Self-attention on x of shape (batch, seq, d_model) with ``heads`` heads of size
d_model / heads. The GEMMs-alone time runs, with numpy matmul on contiguous arrays of
the same sizes, every matrix product the layer's forward and backward passes contain:
the four projections and their weight and input gradients, and per (batch, head) the
products q k^T, P v, dO v^T, dS k, dS^T q and P^T dO. The ratio is what the layer's
softmax, masking, reshapes and bookkeeping cost on top (target: within 1.5x).

    python benchmarks/attention_gemms.py [--batch 8] [--seq 512] [--d-model 64] [--heads 2 4] [--threads N]
"""
import argparse
import time

import numpy as np


def gemms_only(batch, seq, d_model, heads, dtype=np.float32, seed=0):
    """A callable running the GEMMs of one MHA forward+backward with numpy matmul."""
    rng = np.random.default_rng(seed)
    dk = d_model // heads
    n = batch * seq
    bh = batch * heads
    x = rng.standard_normal((n, d_model)).astype(dtype)
    ws = [rng.standard_normal((d_model, heads * dk)).astype(dtype) for _ in range(3)]
    wo = rng.standard_normal((heads * dk, d_model)).astype(dtype)
    q, k, v = (rng.standard_normal((bh, seq, dk)).astype(dtype) for _ in range(3))
    p = rng.random((bh, seq, seq)).astype(dtype)
    proj = np.empty((n, heads * dk), dtype)
    s = np.empty((bh, seq, seq), dtype)
    o = np.empty((bh, seq, dk), dtype)
    o2 = rng.standard_normal((n, heads * dk)).astype(dtype)
    y = np.empty((n, d_model), dtype)
    dy = rng.standard_normal((n, d_model)).astype(dtype)
    dw = np.empty((d_model, heads * dk), dtype)
    dwo = np.empty((heads * dk, d_model), dtype)
    dx = np.empty((n, d_model), dtype)
    dq, dkk, dvv = (np.empty((bh, seq, dk), dtype) for _ in range(3))

    def run():
        for w in ws:                                   # q, k, v projections
            np.matmul(x, w, out=proj)
        np.matmul(q, k.transpose(0, 2, 1), out=s)      # scores
        np.matmul(p, v, out=o)                         # probabilities times values
        np.matmul(o2, wo, out=y)                       # output projection
        np.matmul(o2.T, dy, out=dwo)                   # its weight gradient
        np.matmul(dy, wo.T, out=proj)                  # and input gradient
        np.matmul(o, v.transpose(0, 2, 1), out=s)      # dO v^T
        np.matmul(p, k, out=dq)                        # dS k
        np.matmul(p.transpose(0, 2, 1), q, out=dkk)    # dS^T q
        np.matmul(p.transpose(0, 2, 1), o, out=dvv)    # P^T dO
        for w in ws:                                   # projections' weight and input gradients
            np.matmul(x.T, proj, out=dw)
            np.matmul(proj, w.T, out=dx)
    return run


def mha_step(batch, seq, d_model, heads, dtype=np.float32, seed=0):
    """A callable running MultiHeadAttention forward (training) + backward, with the
    buffers reused from step to step as inside a model's training loop."""
    from fastnet.layers import MultiHeadAttention
    from fastnet.layers.attention import _new_ctx

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, seq, d_model)).astype(dtype)
    dy = rng.standard_normal((batch, seq, d_model)).astype(dtype)
    layer = MultiHeadAttention(heads, d_model // heads, dtype=np.dtype(dtype).name)
    layer(x, x)
    ctx = _new_ctx(record=True)
    pool = {}

    def buf(key, shape, dt):
        k = (key, shape, np.dtype(dt).str)
        b = pool.get(k)
        if b is None:
            b = pool[k] = np.empty(shape, dt)
        return b
    ctx.buf = buf

    def run():
        layer.forward(ctx, x, x, training=True)
        layer.backward(ctx, dy)
    return run


def best_times(fns, rounds=15):
    """The best time of each callable over ``rounds`` rounds, the callables taking turns so
    that a spell of load from other processes hits both alike."""
    for fn in fns:
        fn()
    best = [float("inf")] * len(fns)
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - t0)
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--heads", type=int, nargs="+", default=[2, 4])
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    import fastnet

    if args.threads:
        fastnet.config.set_num_threads(args.threads)
    print(f"threads={fastnet.config.get_num_threads()} batch={args.batch} seq={args.seq} d_model={args.d_model}")
    for h in args.heads:
        g, m = best_times([gemms_only(args.batch, args.seq, args.d_model, h),
                           mha_step(args.batch, args.seq, args.d_model, h)])
        print(f"heads={h}: MHA forward+backward {m * 1e3:.2f} ms, GEMMs alone {g * 1e3:.2f} ms, ratio {m / g:.2f}")


if __name__ == "__main__":
    main()
