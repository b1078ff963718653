"""Depthwise-separable convolution: the layers of the ``separable_cnn`` workload and its
training step.

``SeparableLayer`` times forward + backward of one SeparableConv2D (3x3, same, no bias)
at each block's shape of the workload (batch 64 on 32x32x3 images: 32 -> 64 channels at
32x32, 64 -> 128 at 16x16, 128 -> 256 at 8x8) and the same computation written with
numpy (the depthwise step of fastnet._reference.conv_variants, numpy matmul for the
pointwise step). ``DepthwiseLayer`` times DepthwiseConv2D alone, the memory-bound half.
``SeparableModelStep`` times one training step of the whole workload model (Conv2D stem,
three SeparableConv2D + BatchNormalization + relu + MaxPooling2D blocks,
GlobalAveragePooling2D, Dense 10 softmax; Adam).
"""
import numpy as np

from .common import Benchmark, data

BLOCKS = {"32x32x32-64": (64, 32, 32, 32, 64), "16x16x64-128": (64, 16, 16, 64, 128),
          "8x8x128-256": (64, 8, 8, 128, 256)}


def _context():
    from fastnet.layers._v2 import new_context

    return new_context()


class SeparableLayer(Benchmark):
    params = ([1, 2], list(BLOCKS))
    param_names = ["n_threads", "block"]

    def setup(self, n_threads, block):
        from fastnet import layers as L
        from fastnet.layers.convolutional_variants import geometry3

        self.set_threads(n_threads)
        n, h, w, c, f = BLOCKS[block]
        self.layer = L.SeparableConv2D(f, 3, padding="same", use_bias=False)
        self.x = data((n, h, w, c))
        self.dy = data((n, h, w, f), seed=1)
        self.layer.build(self.x.shape)
        self.geom = geometry3((1, h, w), (1, 3, 3), (1, 1, 1), "same", (1, 1, 1))
        self.x5 = self.x.reshape(n, 1, h, w, c)
        self.dw = self.layer.depthwise_kernel.value.reshape(9, c)
        self.pw = self.layer.pointwise_kernel.value.reshape(c, f)
        self.dy2 = self.dy.reshape(-1, f)

    def time_fastnet_forward_backward(self, n_threads, block):
        ctx = _context()
        self.layer.forward(ctx, self.x, training=True)
        self.layer.backward(ctx, self.dy)

    def time_numpy_forward_backward(self, n_threads, block):
        from fastnet._reference import conv_variants as ref

        c = self.dw.shape[1]
        t = ref.depthwise_forward(self.x5, self.dw, None, self.geom).reshape(-1, c)
        np.matmul(t, self.pw)
        dt = self.dy2 @ self.pw.T
        t.T @ self.dy2
        ref.depthwise_backward(dt.reshape(self.x5.shape), self.x5, self.dw, self.geom)


class DepthwiseLayer(Benchmark):
    params = ([1, 2], list(BLOCKS))
    param_names = ["n_threads", "block"]

    def setup(self, n_threads, block):
        from fastnet import layers as L

        self.set_threads(n_threads)
        n, h, w, c, _ = BLOCKS[block]
        self.layer = L.DepthwiseConv2D(3, padding="same", use_bias=False)
        self.x = data((n, h, w, c))
        self.layer.build(self.x.shape)

    def time_forward(self, n_threads, block):
        ctx = _context()
        ctx.record = False
        self.layer.forward(ctx, self.x)

    def time_forward_backward(self, n_threads, block):
        ctx = _context()
        y = self.layer.forward(ctx, self.x, training=True)
        self.layer.backward(ctx, y)


class SeparableModelStep(Benchmark):
    """One training step of the separable_cnn workload (fit on one batch of 64)."""

    params = [1, 2]
    param_names = ["n_threads"]

    def setup(self, n_threads):
        import fastnet as K
        from fastnet.layers import base

        if not hasattr(base, "CallContext"):
            # The model loop drives layers through the per-call-context contract.
            raise NotImplementedError("needs the model executor of the per-call-context contract")
        self.set_threads(n_threads)
        L = K.layers
        stack = [K.Input((32, 32, 3)), L.Conv2D(32, 3, padding="same", use_bias=False),
                 L.BatchNormalization(), L.Activation("relu")]
        for f in (64, 128, 256):
            stack += [L.SeparableConv2D(f, 3, padding="same", use_bias=False), L.BatchNormalization(),
                      L.Activation("relu"), L.MaxPooling2D(2)]
        stack += [L.GlobalAveragePooling2D(), L.Dense(10, activation="softmax")]
        self.m = K.Sequential(stack)
        self.m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        rng = np.random.default_rng(0)
        self.x = rng.random((64, 32, 32, 3), dtype=np.float32)
        self.y = rng.integers(0, 10, 64)
        self.m.fit(self.x, self.y, batch_size=64, epochs=1, verbose=0, shuffle=False)

    def time_train_step(self, n_threads):
        self.m.fit(self.x, self.y, batch_size=64, epochs=1, verbose=0, shuffle=False)
