"""Convolution workloads: the layer stacks of the three conv models of the issue.

* ``mnist``: Keras's MNIST convnet, batch 128: Conv2D 32 3x3 relu, MaxPooling2D 2,
  Conv2D 64 3x3 relu, MaxPooling2D 2 (then Flatten, Dropout, Dense 10 softmax).
* ``conv1d``: input (100, 16), batch 64: Conv1D 64 k5 relu valid, Conv1D 64 k5 relu
  same (then Flatten, Dense 1 sigmoid).
* ``decoder``: batch 64, from (7, 7, 32): Conv2DTranspose 32 k3 s2 same relu,
  Conv2DTranspose 1 k3 s2 same sigmoid (after Dense 7*7*32 relu and Reshape).

``ConvStack`` times forward + backward of the conv/pool layers as a model's loop
runs them (buffers reused, no input gradient for the first layer); ``ModelStep``
times a whole training step (fit on one batch) once the model loop, losses and
optimizers are available. ``ConvForwardVsGemm`` pairs a conv forward with numpy's
matmul of the same GEMM (the machine's GEMM speed, same threads).
"""
import numpy as np

from .common import Benchmark, data

WORKLOADS = ("mnist", "conv1d", "decoder")


def conv_stack(name):
    """(layers, input) of a workload's conv/pool part."""
    from fastnet import layers as L

    if name == "mnist":
        return ([L.Conv2D(32, 3, activation="relu"), L.MaxPooling2D(2),
                 L.Conv2D(64, 3, activation="relu"), L.MaxPooling2D(2)],
                data((128, 28, 28, 1)))
    if name == "conv1d":
        return ([L.Conv1D(64, 5, activation="relu"),
                 L.Conv1D(64, 5, activation="relu", padding="same")],
                data((64, 100, 16)))
    if name == "decoder":
        return ([L.Conv2DTranspose(32, 3, strides=2, padding="same", activation="relu"),
                 L.Conv2DTranspose(1, 3, strides=2, padding="same", activation="sigmoid")],
                data((64, 7, 7, 32)))
    raise ValueError(f"unknown workload {name!r}; expected one of {WORKLOADS}")


def model(name):
    """(compiled Sequential, x, y, batch_size) of a whole workload."""
    from fastnet import layers as L
    from fastnet.models import Sequential

    rng = np.random.default_rng(0)
    if name == "mnist":
        m = Sequential([L.Input((28, 28, 1)), L.Conv2D(32, 3, activation="relu"),
                        L.MaxPooling2D(2), L.Conv2D(64, 3, activation="relu"), L.MaxPooling2D(2),
                        L.Flatten(), L.Dropout(0.5), L.Dense(10, activation="softmax")])
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return m, rng.random((128, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, 128), 128
    if name == "conv1d":
        m = Sequential([L.Input((100, 16)), L.Conv1D(64, 5, activation="relu"),
                        L.Conv1D(64, 5, activation="relu", padding="same"), L.Flatten(),
                        L.Dense(1, activation="sigmoid")])
        m.compile(optimizer="rmsprop", loss="binary_crossentropy", metrics=["accuracy"])
        return (m, rng.random((64, 100, 16), dtype=np.float32),
                rng.integers(0, 2, (64, 1)).astype(np.float32), 64)
    if name == "decoder":
        m = Sequential([L.Input((64,)), L.Dense(7 * 7 * 32, activation="relu"),
                        L.Reshape((7, 7, 32)),
                        L.Conv2DTranspose(32, 3, strides=2, padding="same", activation="relu"),
                        L.Conv2DTranspose(1, 3, strides=2, padding="same", activation="sigmoid")])
        m.compile(optimizer="adam", loss="mse")
        return (m, rng.random((64, 64), dtype=np.float32),
                rng.random((64, 28, 28, 1), dtype=np.float32), 64)
    raise ValueError(f"unknown workload {name!r}; expected one of {WORKLOADS}")


def stack_step(layers, x):
    """A callable running forward + backward of ``layers`` as a model's loop does."""
    for layer in layers:
        layer._reuse = True
        layer._record = True

    def step():
        h = x
        for layer in layers:
            h = layer(h, training=True)
        d = np.ones_like(h)
        for i in range(len(layers) - 1, -1, -1):
            d = layers[i].backward(d, i > 0)
    step()
    return step


class ConvStack(Benchmark):
    params = ([1, 2], list(WORKLOADS))
    param_names = ["n_threads", "workload"]

    def setup(self, n_threads, workload):
        self.set_threads(n_threads)
        self.step = stack_step(*conv_stack(workload))

    def time_forward_backward(self, n_threads, workload):
        self.step()

    def peakmem_forward_backward(self, n_threads, workload):
        self.step()


class ModelStep(Benchmark):
    """One training step of the whole model (fit on one batch of ``batch_size``)."""

    params = ([1, 2], list(WORKLOADS))
    param_names = ["n_threads", "workload"]

    def setup(self, n_threads, workload):
        self.set_threads(n_threads)
        self.m, self.x, self.y, self.bs = model(workload)
        self.m.fit(self.x, self.y, batch_size=self.bs, epochs=1, verbose=0, shuffle=False)

    def time_train_step(self, n_threads, workload):
        self.m.fit(self.x, self.y, batch_size=self.bs, epochs=1, verbose=0, shuffle=False)

    def peakmem_train_step(self, n_threads, workload):
        self.m.fit(self.x, self.y, batch_size=self.bs, epochs=1, verbose=0, shuffle=False)


# (input shape, filters, kernel, padding) of the GEMM-heavy layers.
FORWARD_SHAPES = {
    "mnist_conv2": ((128, 13, 13, 32), 64, 3, "valid"),
    "conv1d_conv2": ((64, 96, 64), 64, 5, "same"),
}


class ConvForwardVsGemm(Benchmark):
    """A conv forward (im2col + GEMM + bias + relu) and numpy's matmul of its GEMM."""

    params = ([1, 2], list(FORWARD_SHAPES))
    param_names = ["n_threads", "layer"]

    def setup(self, n_threads, layer):
        from fastnet import layers as L

        # Also sets numpy's BLAS pool to n_threads (and keeps the kernels' BLAS at 1).
        self.set_threads(n_threads)
        shape, filters, k, padding = FORWARD_SHAPES[layer]
        cls = L.Conv2D if len(shape) == 4 else L.Conv1D
        self.layer = cls(filters, k, padding=padding, activation="relu")
        self.x = data(shape)
        y = self.layer(self.x)
        self.layer._reuse = True
        self.layer._record = False
        kdim = int(np.prod(self.layer.kernel.shape[:-1]))
        rows = int(np.prod(y.shape[:-1]))
        self.cols = data((rows, kdim), seed=1)
        self.w = self.layer.kernel.value.reshape(kdim, filters)
        self.out = np.empty((rows, filters), np.float32)

    def time_conv_forward(self, n_threads, layer):
        self.layer(self.x)

    def time_numpy_gemm(self, n_threads, layer):
        np.matmul(self.cols, self.w, out=self.out)
