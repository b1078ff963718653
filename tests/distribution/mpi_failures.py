"""Failure cases run by tests/distribution under ``mpiexec -n 2``:
``python mpi_failures.py MODE`` with MODE one of

* ``arch``: rank 1 builds a different model (must stop with a clear error on every rank);
* ``config``: rank 1 builds the same shapes with another activation;
* ``data``: rank 1 passes different data to fit;
* ``kill``: rank 1 is killed (SIGKILL) in the middle of fit;
* ``hang``: rank 1 stops taking part (sleeps) in the middle of fit; the others must
  stop within the distribution's timeout;
* ``raise``: rank 1 raises an exception in the middle of fit.
"""
import os
import signal
import sys
import time

import numpy as np

import fastnet
from fastnet import callbacks, layers
from fastnet.distribution import DataParallel, set_distribution
from fastnet.models import Sequential


class _Trouble(callbacks.Callback):
    def __init__(self, mode, rank):
        super().__init__()
        self.mode, self.rank = mode, rank

    def on_train_batch_begin(self, batch, logs=None):
        if self.rank != 1 or batch != 3:
            return
        print(f"rank 1 goes wrong ({self.mode})", flush=True)
        if self.mode == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        elif self.mode == "hang":
            time.sleep(120)
        elif self.mode == "raise":
            raise RuntimeError("rank 1 failed on purpose")


def main(mode):
    set_distribution(DataParallel(timeout=3 if mode == "hang" else None))
    rank = fastnet.distribution.process_id()
    fastnet.random.set_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 8)).astype(np.float32)
    y = rng.integers(0, 2, 400)
    if mode == "data" and rank == 1:
        x = x + 1
    width = 12 if (mode == "arch" and rank == 1) else 10
    act = "tanh" if (mode == "config" and rank == 1) else "relu"
    m = Sequential([layers.Input((8,)), layers.Dense(width, activation=act),
                    layers.Dense(2, activation="softmax")])
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    m.fit(x, y, batch_size=20, epochs=3, verbose=0, callbacks=[_Trouble(mode, rank)])
    print(f"rank {rank} finished fit", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
