"""Custom layers written with ``fastnet.ops`` and subclassed models, against the
built-in layers in a Sequential, through ``fit``.

Workloads (``size``):

* ``small``: 32 features; Dense 64 relu, Dense 64 relu, Dense 10; batch 32.
* ``mlp``: 784 features; Dense 512 relu, Dense 10; batch 128.

All train with Adam on sparse categorical cross-entropy from logits. ``kind``:

* ``builtin``: a Sequential of built-in ``Dense`` layers (the reference);
* ``ops_layers``: a Sequential of a custom ``Layer`` whose ``call`` is
  ``ops.relu(ops.matmul(x, w) + b)`` (the target is within 2x of ``builtin``);
* ``subclassed``: a ``Model`` subclass holding the same built-in ``Dense`` layers and
  chaining them in ``call`` (the target is within 1.1x of ``builtin``).

``TrainStepCustom`` times one epoch of STEPS batches (the model is fitted once in setup).
"""
import numpy as np

from .common import Benchmark

STEPS = 20
SIZES = {"small": (32, [64, 64], 10, 32), "mlp": (784, [512], 10, 128)}


def build(kind, size):
    """(compiled model, x, y, batch_size) with STEPS batches of data."""
    import fastnet as K
    from fastnet import ops

    n_in, hidden, n_out, bs = SIZES[size]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((bs * STEPS, n_in)).astype(np.float32)
    y = rng.integers(0, n_out, bs * STEPS)

    class OpsDense(K.layers.Layer):
        def __init__(self, units, relu=True, **kwargs):
            super().__init__(**kwargs)
            self.units, self.relu = units, relu

        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1], self.units), initializer="glorot_uniform")
            self.b = self.add_weight(shape=(self.units,), initializer="zeros")

        def call(self, inputs):
            y = ops.matmul(inputs, self.w) + self.b
            return ops.relu(y) if self.relu else y

    class Subclassed(K.Model):
        def __init__(self):
            super().__init__()
            self.hidden = [K.layers.Dense(u, activation="relu") for u in hidden]
            self.out = K.layers.Dense(n_out)

        def call(self, inputs):
            h = inputs
            for layer in self.hidden:
                h = layer(h)
            return self.out(h)

    if kind == "builtin":
        m = K.Sequential([K.Input((n_in,))] + [K.layers.Dense(u, activation="relu") for u in hidden]
                         + [K.layers.Dense(n_out)])
    elif kind == "ops_layers":
        m = K.Sequential([K.Input((n_in,))] + [OpsDense(u) for u in hidden] + [OpsDense(n_out, relu=False)])
    elif kind == "subclassed":
        m = Subclassed()
    else:
        raise ValueError(f"unknown kind {kind!r}")
    m.compile(optimizer="adam", loss=K.losses.SparseCategoricalCrossentropy(from_logits=True))
    return m, x, y, bs


class TrainStepCustom(Benchmark):
    """One epoch of STEPS (20) batches: the time per training step is a twentieth."""

    params = ([1, 2], ["small", "mlp"], ["builtin", "ops_layers", "subclassed"])
    param_names = ["n_threads", "size", "kind"]

    def setup(self, n_threads, size, kind):
        self.set_threads(n_threads)
        self.m, self.x, self.y, self.bs = build(kind, size)
        self.m.fit(self.x, self.y, batch_size=self.bs, epochs=1, verbose=0)

    def time_train_step(self, n_threads, size, kind):
        self.m.fit(self.x, self.y, batch_size=self.bs, epochs=1, verbose=0)
