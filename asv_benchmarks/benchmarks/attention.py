"""MultiHeadAttention forward+backward at sequence 512 (batch 8, d_model 64, 2 or 4 heads),
and the same GEMMs run alone with numpy matmul: the issue's target is a ratio within 1.5x.

``time_forward_backward`` is self-attention in training mode plus its backward pass, with
buffers reused step to step as inside a model's loop; ``time_gemms_only`` runs every
matrix product of that forward and backward pass (projections, their gradients, and per
(batch, head) q k^T, P v, dO v^T, dS k, dS^T q, P^T dO) on contiguous arrays.
"""
import numpy as np

from .common import Benchmark, data

BATCH, SEQ, D_MODEL = 8, 512, 64


class MultiHeadAttentionStep(Benchmark):
    params = ([1, 2], [2, 4])
    param_names = ["n_threads", "heads"]

    def setup(self, n_threads, heads):
        from fastnet.layers import MultiHeadAttention
        from fastnet.layers.attention import _new_ctx

        self.set_threads(n_threads)
        self.x = data((BATCH, SEQ, D_MODEL))
        self.dy = data((BATCH, SEQ, D_MODEL), seed=1)
        self.layer = MultiHeadAttention(heads, D_MODEL // heads)
        self.layer(self.x, self.x)
        self.ctx = _new_ctx(record=True)
        pool = {}

        def buf(key, shape, dtype):  # the executor's buffer reuse
            k = (key, shape, np.dtype(dtype).str)
            if k not in pool:
                pool[k] = np.empty(shape, dtype)
            return pool[k]
        self.ctx.buf = buf

        dk = D_MODEL // heads
        n, bh = BATCH * SEQ, BATCH * heads
        self.xr = data((n, D_MODEL), seed=2)
        self.ws = [data((D_MODEL, heads * dk), seed=3 + i) for i in range(4)]
        self.q, self.k, self.v = (data((bh, SEQ, dk), seed=8 + i) for i in range(3))
        self.p = data((bh, SEQ, SEQ), seed=11)
        self.proj = np.empty((n, heads * dk), np.float32)
        self.s = np.empty((bh, SEQ, SEQ), np.float32)
        self.o = np.empty((bh, SEQ, dk), np.float32)
        self.grads = [np.empty((bh, SEQ, dk), np.float32) for _ in range(3)]
        self.dw = np.empty((D_MODEL, heads * dk), np.float32)
        self.dx = np.empty((n, D_MODEL), np.float32)
        self.dyr = data((n, D_MODEL), seed=12)

    def time_forward_backward(self, n_threads, heads):
        self.layer.forward(self.ctx, self.x, self.x, training=True)
        self.layer.backward(self.ctx, self.dy)

    def time_gemms_only(self, n_threads, heads):
        x, ws, proj = self.xr, self.ws, self.proj
        q, k, v, p, s, o = self.q, self.k, self.v, self.p, self.s, self.o
        for w in ws[:3]:
            np.matmul(x, w, out=proj)
        np.matmul(q, k.transpose(0, 2, 1), out=s)
        np.matmul(p, v, out=o)
        np.matmul(proj, ws[3], out=self.dx)
        np.matmul(proj.T, self.dyr, out=self.dw)
        np.matmul(self.dyr, ws[3].T, out=proj)
        np.matmul(o, v.transpose(0, 2, 1), out=s)
        np.matmul(p, k, out=self.grads[0])
        np.matmul(p.transpose(0, 2, 1), q, out=self.grads[1])
        np.matmul(p.transpose(0, 2, 1), o, out=self.grads[2])
        for w in ws[:3]:
            np.matmul(x.T, proj, out=self.dw)
            np.matmul(proj, w.T, out=self.dx)
