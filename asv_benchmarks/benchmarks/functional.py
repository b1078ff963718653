"""Functional-API workloads (the graph executor).

* ``resnet``: 32x32x3 images, batch 64; a 16-channel stem (Conv2D, BN, ReLU); residual
  blocks of 16, 32 (stride 2) and 64 (stride 2) channels, each two 3x3 Conv2D + BN with a
  1x1 strided projection where the shape changes, ``layers.add`` and ReLU; global average
  pooling; Dense 10 softmax; Adam.
* ``two_branch_mlp``: two inputs (784 and 32 features), a Dense 256 branch each,
  concatenated, Dense 10 softmax; Adam; batch 128: the executor's cost per node on a small
  model, next to the Sequential MLP of ``models.py``.

``TrainStep`` times one epoch of STEPS batches (the time per step is a STEPS-th);
``benchmarks/compare.py resnet`` times the residual network against PyTorch in one run.
"""
import numpy as np

from .common import Benchmark

STEPS = 8


def build(name):
    import fastnet as K

    L = K.layers
    rng = np.random.default_rng(0)
    if name == "resnet":
        bs = 64

        def block(t, filters, stride):
            h = L.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False)(t)
            h = L.ReLU()(L.BatchNormalization()(h))
            h = L.BatchNormalization()(L.Conv2D(filters, 3, padding="same", use_bias=False)(h))
            if stride != 1 or t.shape[-1] != filters:
                t = L.BatchNormalization()(L.Conv2D(filters, 1, strides=stride, use_bias=False)(t))
            return L.ReLU()(L.add([h, t]))

        inp = K.Input((32, 32, 3))
        t = L.ReLU()(L.BatchNormalization()(L.Conv2D(16, 3, padding="same", use_bias=False)(inp)))
        for filters, stride in ((16, 1), (32, 2), (64, 2)):
            t = block(t, filters, stride)
        m = K.Model(inp, L.Dense(10, activation="softmax")(L.GlobalAveragePooling2D()(t)))
        x = rng.random((bs * STEPS, 32, 32, 3), dtype=np.float32)
    elif name == "two_branch_mlp":
        bs = 128
        a, b = K.Input((784,)), K.Input((32,))
        h = L.concatenate([L.Dense(256, activation="relu")(a), L.Dense(256, activation="relu")(b)])
        m = K.Model([a, b], L.Dense(10, activation="softmax")(h))
        x = [rng.random((bs * STEPS, 784), dtype=np.float32), rng.random((bs * STEPS, 32), dtype=np.float32)]
    else:
        raise ValueError(f"unknown workload {name!r}")
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return m, x, rng.integers(0, 10, bs * STEPS), bs


class TrainStep(Benchmark):
    """One epoch of STEPS batches through fit."""

    params = ([1, 2], ["resnet", "two_branch_mlp"])
    param_names = ["n_threads", "workload"]

    def setup(self, n_threads, workload):
        self.set_threads(n_threads)
        self.m, self.x, self.y, self.bs = build(workload)
        self.m.fit(self.x, self.y, batch_size=self.bs, epochs=1, verbose=0)

    def time_train_step(self, n_threads, workload):
        self.m.fit(self.x, self.y, batch_size=self.bs, epochs=1, verbose=0)
