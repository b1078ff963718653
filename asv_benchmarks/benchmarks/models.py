"""Whole-model workloads of the training and recurrent issues, through the public API.

* ``seed``: 1000x3 blobs; Dense 4 tanh, Dense 4 tanh, Dense 1 sigmoid; rmsprop;
  binary cross-entropy; accuracy; batch 32.
* ``mlp``: 784-vectors; Dense 512 relu, Dropout 0.2, Dense 10 softmax; Adam; sparse
  categorical cross-entropy; batch 128.
* ``mlp_bn``: Dense 256, BatchNormalization, relu, twice, then Dense 10 softmax; Adam;
  batch 128.
* ``lstm``/``gru``/``simple_rnn``: 32 steps x 32 features, the recurrent layer (128) then
  Dense 10 softmax; Adam; batch 64.

``TrainStep`` times one epoch of fit over a fixed number of batches and reports it per
step (steady state: the model is fitted once in setup). ``Predict`` times predict on
60000 rows of the MLP (batch 256) and on 6400 sequences of the recurrent models (batch
32, Keras's default). ``benchmarks/compare.py`` times the same workloads against
PyTorch in one run.
"""
import numpy as np

from .common import Benchmark

STEPS = 20


def build(name):
    """(compiled Sequential, x, y, batch_size) with STEPS batches of data."""
    import fastnet as K

    rng = np.random.default_rng(0)
    if name == "seed":
        bs = 32
        x = rng.standard_normal((bs * STEPS, 3)).astype(np.float32)
        y = (x.sum(axis=1) > 0).astype(np.float32)
        m = K.Sequential([K.Input((3,)), K.layers.Dense(4, activation="tanh"),
                          K.layers.Dense(4, activation="tanh"),
                          K.layers.Dense(1, activation="sigmoid")])
        m.compile(optimizer="rmsprop", loss="binary_crossentropy", metrics=["accuracy"])
        return m, x, y, bs
    if name in ("mlp", "mlp_bn"):
        bs = 128
        x = rng.random((bs * STEPS, 784), dtype=np.float32)
        y = rng.integers(0, 10, bs * STEPS)
        if name == "mlp":
            hidden = [K.layers.Dense(512, activation="relu"), K.layers.Dropout(0.2)]
        else:
            hidden = [K.layers.Dense(256), K.layers.BatchNormalization(), K.layers.Activation("relu"),
                      K.layers.Dense(256), K.layers.BatchNormalization(), K.layers.Activation("relu")]
        m = K.Sequential([K.Input((784,))] + hidden + [K.layers.Dense(10, activation="softmax")])
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        return m, x, y, bs
    cells = {"lstm": "LSTM", "gru": "GRU", "simple_rnn": "SimpleRNN"}
    if name in cells:
        bs = 64
        x = rng.standard_normal((bs * STEPS, 32, 32)).astype(np.float32)
        y = rng.integers(0, 10, bs * STEPS)
        m = K.Sequential([K.Input((32, 32)), getattr(K.layers, cells[name])(128),
                          K.layers.Dense(10, activation="softmax")])
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        return m, x, y, bs
    raise ValueError(f"unknown workload {name!r}")


class TrainStep(Benchmark):
    """One epoch of STEPS (20) batches: the time per training step is a twentieth."""

    params = ([1, 2], ["seed", "mlp", "mlp_bn", "lstm", "gru", "simple_rnn"])
    param_names = ["n_threads", "workload"]

    def setup(self, n_threads, workload):
        self.set_threads(n_threads)
        self.m, self.x, self.y, self.bs = build(workload)
        self.m.fit(self.x, self.y, batch_size=self.bs, epochs=1, verbose=0)

    def time_train_step(self, n_threads, workload):
        self.m.fit(self.x, self.y, batch_size=self.bs, epochs=1, verbose=0)


class Predict(Benchmark):
    """predict through the public API: the MLP on 60000 rows (batch 256), the recurrent
    models on 6400 sequences (batch 32)."""

    params = ([1, 2], ["mlp", "lstm", "gru"])
    param_names = ["n_threads", "workload"]

    def setup(self, n_threads, workload):
        self.set_threads(n_threads)
        self.m = build(workload)[0]
        rng = np.random.default_rng(1)
        if workload == "mlp":
            self.x, self.bs = rng.random((60000, 784), dtype=np.float32), 256
        else:
            self.x, self.bs = rng.standard_normal((6400, 32, 32)).astype(np.float32), 32
        self.m.predict(self.x[:self.bs * 4], batch_size=self.bs, verbose=0)

    def time_predict(self, n_threads, workload):
        self.m.predict(self.x, batch_size=self.bs, verbose=0)
