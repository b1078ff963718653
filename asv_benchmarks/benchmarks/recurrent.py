"""Recurrent layers at the issue's shape: batch 64, 32 steps x 32 features, 128 units.

``time_train_step`` is the layer's forward (training) plus backward as a model's
first layer runs them (no input gradient); ``time_predict`` one inference batch.
"""
import numpy as np

from .common import Benchmark, data


class RecurrentLayer(Benchmark):
    params = ([1, 2], ["SimpleRNN", "LSTM", "GRU"])
    param_names = ["n_threads", "cell"]

    def setup(self, n_threads, cell):
        from fastnet import layers

        self.set_threads(n_threads)
        self.x = data((64, 32, 32))
        self.dy = data((64, 128), seed=1)
        self.layer = getattr(layers, cell)(128)
        self.layer(self.x)
        self.layer._reuse = True  # as inside a model's training loop

    def time_train_step(self, n_threads, cell):
        self.layer.call(self.x, training=True)
        self.layer.backward(self.dy, need_dx=False)

    def time_forward_backward_with_dx(self, n_threads, cell):
        self.layer.call(self.x, training=True)
        self.layer.backward(self.dy)

    def time_predict(self, n_threads, cell):
        self.layer._record = False
        self.layer.call(self.x, training=False)
        self.layer._record = True


class RecurrentModelStep(Benchmark):
    """LSTM/GRU/SimpleRNN(128) + Dense(10) with a softmax cross-entropy gradient."""

    params = ([1, 2], ["SimpleRNN", "LSTM", "GRU"])
    param_names = ["n_threads", "cell"]

    def setup(self, n_threads, cell):
        from fastnet import layers

        self.set_threads(n_threads)
        self.x = data((64, 32, 32))
        self.y = np.random.default_rng(2).integers(0, 10, 64)
        self.rnn = getattr(layers, cell)(128)
        self.fc = layers.Dense(10)
        for layer in (self.rnn, self.fc):
            layer._reuse = True
        self.fc(self.rnn(self.x))

    def time_forward_backward(self, n_threads, cell):
        z = self.fc.call(self.rnn.call(self.x, training=True), training=True)
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        p[np.arange(64), self.y] -= 1
        self.rnn.backward(self.fc.backward(p / 64), need_dx=False)


class EmbeddingLookup(Benchmark):
    params = [1, 2]
    param_names = ["n_threads"]

    def setup(self, n_threads):
        from fastnet.layers import Embedding

        self.set_threads(n_threads)
        self.idx = np.random.default_rng(0).integers(0, 20000, (64, 200))
        self.layer = Embedding(20000, 128)
        self.layer(self.idx)
        self.layer._reuse = True
        self.dy = data((64, 200, 128))

    def time_forward_backward(self, n_threads):
        self.layer.call(self.idx)
        self.layer.backward(self.dy)
