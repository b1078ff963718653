"""Dense forward+backward at batch 128, 784 -> 512 (the MNIST MLP's first layer)."""
import numpy as np

from .common import Benchmark, data


class DenseForwardBackward(Benchmark):
    params = ([1, 2], ["relu", "linear"])
    param_names = ["n_threads", "activation"]

    def setup(self, n_threads, activation):
        from fastnet.layers import Dense

        self.set_threads(n_threads)
        self.x = data((128, 784))
        self.dy = data((128, 512), seed=1)
        self.layer = Dense(512, activation=activation)
        self.layer(self.x)
        self.layer._reuse = True  # as inside a model's training loop

    def time_forward_backward(self, n_threads, activation):
        self.layer.call(self.x, training=True)
        self.layer.backward(self.dy)

    def time_forward_backward_first_layer(self, n_threads, activation):
        # A model's first layer skips the input gradient.
        self.layer.call(self.x, training=True)
        self.layer.backward(self.dy, need_dx=False)


class NumpyMatmulPair(Benchmark):
    """numpy's own x @ w and the backward pair, for the same shapes (the GEMM floor)."""

    params = [1, 2]
    param_names = ["n_threads"]

    def setup(self, n_threads):
        self.set_threads(n_threads)
        from threadpoolctl import threadpool_limits

        self._limit = threadpool_limits(n_threads)
        self.x = data((128, 784))
        self.w = data((784, 512), seed=2)
        self.dy = data((128, 512), seed=1)

    def teardown(self, n_threads):
        self._limit.restore_original_limits()

    def time_forward_backward(self, n_threads):
        np.maximum(self.x @ self.w, 0)
        self.x.T @ self.dy
        self.dy @ self.w.T
