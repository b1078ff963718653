"""Training cases run by tests/distribution: once on one process (``python mpi_cases.py OUT``)
and under ``mpiexec -n N`` (same command). Each rank saves, per case, its weights after
training, the history, evaluate's and predict's results into ``OUT/<case>_<tag>.npz``
(tag ``single`` without MPI, ``rank<r>of<N>`` with it).

The script calls ``set_distribution(DataParallel())`` in both runs: on one process
it must change nothing.
"""
import json
import os
import sys

import numpy as np

import fastnet
from fastnet import callbacks, layers, losses, optimizers, regularizers
from fastnet.distribution import DataParallel, set_distribution
from fastnet.models import Sequential

CASES = {}


def case(fn):
    CASES[fn.__name__] = fn
    return fn


def data(n, shape, classes=None, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n,) + shape).astype(np.float32)
    y = rng.integers(0, classes, n) if classes else rng.normal(size=(n, 1)).astype(np.float32)
    return x, y


@case
def mlp_dropout(out):
    """Dense + Dropout + L2, Adam, sparse CE with accuracy; 203 rows in batches of 25
    (the last has 3: with 4 ranks one rank has none), validation data, train_on_batch."""
    x, y = data(203, (12,), classes=4)
    vx, vy = data(41, (12,), classes=4, seed=1)
    m = Sequential([layers.Input((12,)),
                    layers.Dense(16, activation="relu", kernel_regularizer=regularizers.L2(1e-3)),
                    layers.Dropout(0.3),
                    layers.Dense(4, activation="softmax")])
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    h = m.fit(x, y, batch_size=25, epochs=3, verbose=0, validation_data=(vx, vy))
    tob = m.train_on_batch(x[:7], y[:7], return_dict=True)
    return m, h, {"tob_loss": tob["loss"], "tob_acc": tob["accuracy"]}, x, y


@case
def cnn(out):
    """Conv2D + synchronised BatchNormalization (statistics over batch, rows and columns) +
    MaxPooling2D + Flatten + Dropout + Dense, RMSprop; batches of 16 over 60 rows."""
    x, y = data(60, (8, 8, 2), classes=3)
    m = Sequential([layers.Input((8, 8, 2)), layers.Conv2D(4, 3, activation="relu"),
                    layers.BatchNormalization(synchronized=True),
                    layers.MaxPooling2D(2), layers.Flatten(), layers.Dropout(0.25),
                    layers.Dense(3, activation="softmax")])
    m.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    h = m.fit(x, y, batch_size=16, epochs=2, verbose=0)
    return m, h, {}, x, y


@case
def lstm(out):
    """LSTM (return_sequences) + Dropout + LSTM + Dense, mse; batches of 12 over 50 rows."""
    x, y = data(50, (6, 3))
    m = Sequential([layers.Input((6, 3)), layers.LSTM(5, return_sequences=True),
                    layers.Dropout(0.2), layers.LSTM(4), layers.Dense(1)])
    m.compile(optimizer="adam", loss="mse", metrics=["mae"])
    h = m.fit(x, y, batch_size=12, epochs=2, verbose=0)
    return m, h, {}, x, y


@case
def lstm_dropout(out):
    """LSTM with dropout and recurrent_dropout (masks drawn per rank, so not one process's),
    batches of 7: the ranks must still agree on weights and on the random state."""
    x, y = data(45, (5, 3), seed=8)
    m = Sequential([layers.Input((5, 3)), layers.LSTM(4, dropout=0.2, recurrent_dropout=0.1),
                    layers.Dense(1)])
    m.compile(optimizer="adam", loss="mse")
    h = m.fit(x, y, batch_size=7, epochs=2, verbose=0)
    return m, h, {}, x, y


@case
def bn_sync(out):
    """BatchNormalization(synchronized=True) after a Dense: statistics of the global batch."""
    x, y = data(90, (10,), classes=3)
    m = Sequential([layers.Input((10,)), layers.Dense(8), layers.BatchNormalization(synchronized=True),
                    layers.Activation("relu"), layers.Dense(3, activation="softmax")])
    m.compile(optimizer=optimizers.SGD(0.1, momentum=0.9), loss="sparse_categorical_crossentropy",
              metrics=["accuracy"])
    h = m.fit(x, y, batch_size=20, epochs=2, verbose=0)
    return m, h, {}, x, y


@case
def bn_local(out):
    """BatchNormalization as the first layer, default (per-rank statistics): one step."""
    x, y = data(40, (6,), classes=2, seed=3)
    x = x * np.arange(1, 7, dtype=np.float32) + 2.0
    m = Sequential([layers.Input((6,)), layers.BatchNormalization(momentum=0.5),
                    layers.Dense(2, activation="softmax")])
    m.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    h = m.fit(x, y, batch_size=40, epochs=1, verbose=0, shuffle=False)
    return m, h, {}, x, y


@case
def weighted(out):
    """ignore_class labels, sample weights and the 'mean_with_sample_weight' reduction;
    a global batch of 9 (not a multiple of 2 or 4)."""
    x, y = data(57, (5,), classes=3, seed=4)
    y = y.copy()
    y[::4] = -1
    sw = np.random.default_rng(5).random(57).astype(np.float32) + 0.1
    m = Sequential([layers.Input((5,)), layers.Dense(6, activation="tanh"),
                    layers.Dense(3, activation="softmax")])
    loss = losses.SparseCategoricalCrossentropy(ignore_class=-1, reduction="mean_with_sample_weight")
    m.compile(optimizer="adam", loss=loss, weighted_metrics=["sparse_categorical_accuracy"])
    h = m.fit(x, y, sample_weight=sw, batch_size=9, epochs=2, verbose=0)
    return m, h, {}, x, y


@case
def sum_frozen(out):
    """A frozen first layer, an L1L2 regularizer and a summed loss (each rank's value holds
    the whole regularization term, counted once in the total)."""
    x, y = data(30, (4,), seed=9)
    m = Sequential([layers.Input((4,)), layers.Dense(5, activation="tanh", trainable=False),
                    layers.Dense(3, kernel_regularizer=regularizers.L1L2(0.01, 0.02)), layers.Dense(1)])
    m.compile(optimizer="sgd", loss=losses.MeanSquaredError(reduction="sum"), metrics=["mae"])
    h = m.fit(x, y, batch_size=7, epochs=2, verbose=0)
    return m, h, {}, x, y


class _Marker(callbacks.Callback):
    """A user callback that writes a file; ``chief_only = True`` keeps it to rank 0."""

    chief_only = True

    def __init__(self, path):
        super().__init__()
        self.path = path

    def on_train_end(self, logs=None):
        with open(self.path, "w") as f:
            f.write("done\n")


@case
def files(out):
    """Only rank 0 writes files: a CSVLogger and a ModelCheckpoint whose names carry the
    rank (so a write by another rank would show); progress printed once."""
    x, y = data(64, (4,), classes=2, seed=6)
    rank = fastnet.distribution.process_id()
    m = Sequential([layers.Input((4,)), layers.Dense(3, activation="relu"),
                    layers.Dense(2, activation="softmax")])
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    cbs = [callbacks.CSVLogger(os.path.join(out, f"log_rank{rank}.csv")),
           callbacks.ModelCheckpoint(os.path.join(out, f"ckpt_rank{rank}.weights.h5"),
                                     save_weights_only=True, monitor="loss", save_best_only=True),
           callbacks.EarlyStopping(monitor="loss", patience=1, min_delta=10.0),
           _Marker(os.path.join(out, f"marker_rank{rank}.txt"))]
    print("PROGRESS-START", flush=True)
    h = m.fit(x, y, batch_size=16, epochs=4, verbose=2, callbacks=cbs)
    sys.stdout.flush()
    return m, h, {"epochs_run": len(h.history["loss"])}, x, y


def run(out, names):
    # FASTNET_TEST_DP_OPTIONS: DataParallel arguments as JSON (the tests try each gradient sum).
    set_distribution(DataParallel(**json.loads(os.environ.get("FASTNET_TEST_DP_OPTIONS", "{}"))))
    dp = fastnet.distribution.distribution()
    tag = "single" if dp.num_processes == 1 and "PMI_RANK" not in os.environ else \
        f"rank{dp.rank}of{dp.num_processes}"
    for name in names:
        fastnet.backend.clear_session()
        # Ranks seed differently on purpose: rank 0's weights and random state are
        # broadcast at the start of fit.
        fastnet.random.set_seed(1234 + 7919 * dp.rank)
        m, h, extra, x, y = CASES[name](out)
        ev = m.evaluate(x, y, batch_size=13, verbose=0, return_dict=True)
        pred = m.predict(x, batch_size=11, verbose=0)
        arrays = {f"w{i}": w for i, w in enumerate(m.get_weights())}
        arrays["predict"] = pred
        meta = {"history": h.history, "evaluate": ev, "extra": extra,
                "random_state": str(fastnet.random.generator().bit_generator.state["state"])}
        np.savez(os.path.join(out, f"{name}_{tag}.npz"), meta=json.dumps(meta), **arrays)


if __name__ == "__main__":
    out_dir = sys.argv[1]
    run(out_dir, sys.argv[2:] or list(CASES))
