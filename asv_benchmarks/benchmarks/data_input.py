"""Training fed by each kind of input, against training on the same arrays (issue 17).

The MNIST-MLP workload of ``models.py`` (784-vectors; Dense 512 relu, Dropout 0.2, Dense
10 softmax; Adam; batch 128), one epoch of STEPS (20) batches per timing, fed from:

* ``arrays``: numpy arrays (the baseline; shuffled batches gathered into reused buffers);
* ``pydataset``: a ``PyDataset`` slicing the same arrays (one loader thread);
* ``generator``: a Python generator of the same batches (read ahead on a thread);
* ``dataset``: ``Dataset.from_tensor_slices(...).shuffle(...).batch(128)``;
* ``image_folder``: ``image_dataset_from_directory`` over 2,560 28x28 grayscale PNGs (the
  model starts with Flatten), against ``image_arrays``, the same images as arrays.

The goal: each within 10% of its array baseline.
"""
import os
import shutil
import tempfile

import numpy as np

from .common import Benchmark

STEPS = 20
BS = 128


def _mlp(input_shape):
    import fastnet as K

    K.utils.set_random_seed(0)
    layers = [K.Input(input_shape)]
    if len(input_shape) > 1:
        layers.append(K.layers.Flatten())
    layers += [K.layers.Dense(512, activation="relu"), K.layers.Dropout(0.2), K.layers.Dense(10, activation="softmax")]
    m = K.Sequential(layers)
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return m


class FitFromInput(Benchmark):
    """One epoch of 20 steps of the MNIST MLP, by kind of input."""

    params = ([1, 2], ["arrays", "pydataset", "generator", "dataset"])
    param_names = ["n_threads", "source"]

    def setup(self, n_threads, source):
        import fastnet as K
        from fastnet.data import Dataset

        self.set_threads(n_threads)
        rng = np.random.default_rng(0)
        x = rng.random((BS * STEPS, 784), dtype=np.float32)
        y = rng.integers(0, 10, BS * STEPS)
        self.m = _mlp((784,))

        class Batches(K.utils.PyDataset):
            def __len__(self):
                return STEPS

            def __getitem__(self, i):
                return x[i * BS:(i + 1) * BS], y[i * BS:(i + 1) * BS]

        def gen():
            while True:
                for i in range(STEPS):
                    yield x[i * BS:(i + 1) * BS], y[i * BS:(i + 1) * BS]

        if source == "arrays":
            self.fit = lambda: self.m.fit(x, y, batch_size=BS, epochs=1, verbose=0)
        elif source == "pydataset":
            seq = Batches()
            self.fit = lambda: self.m.fit(seq, epochs=1, verbose=0)
        elif source == "generator":
            stream = gen()
            self.fit = lambda: self.m.fit(stream, steps_per_epoch=STEPS, epochs=1, verbose=0)
        else:
            ds = Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=0).batch(BS)
            self.fit = lambda: self.m.fit(ds, epochs=1, verbose=0)
        self.fit()

    def time_fit_epoch(self, n_threads, source):
        self.fit()


class FitFromImageFolder(Benchmark):
    """One epoch over 2,560 28x28 grayscale images: decoded from PNG files per batch, or arrays."""

    params = ([1, 2], ["image_folder", "image_arrays"])
    param_names = ["n_threads", "source"]
    timeout = 600

    def setup(self, n_threads, source):
        from PIL import Image

        import fastnet as K

        self.set_threads(n_threads)
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (BS * STEPS, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, BS * STEPS)
        self.m = _mlp((28, 28, 1))
        if source == "image_arrays":
            x = images[..., None].astype(np.float32)
            self.fit = lambda: self.m.fit(x, labels, batch_size=BS, epochs=1, verbose=0)
        else:
            self.root = tempfile.mkdtemp(prefix="fastnet-asv-images-")
            for c in range(10):
                os.makedirs(os.path.join(self.root, f"class_{c}"))
            for i, (img, c) in enumerate(zip(images, labels)):
                Image.fromarray(img, "L").save(os.path.join(self.root, f"class_{c}", f"{i:05d}.png"))
            ds = K.utils.image_dataset_from_directory(self.root, color_mode="grayscale", image_size=(28, 28),
                                                      batch_size=BS, seed=0, verbose=False)
            self.fit = lambda: self.m.fit(ds, epochs=1, verbose=0)
        self.fit()

    def teardown(self, n_threads, source):
        if source == "image_folder":
            shutil.rmtree(self.root, ignore_errors=True)

    def time_fit_epoch(self, n_threads, source):
        self.fit()
