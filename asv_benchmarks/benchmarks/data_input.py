"""Training fed by each kind of input, against training on the same arrays (issue 17).

One timing is one epoch of STEPS (20) batches of 128 28x28x1 images (uint8 pixel values as
float32) through one of two workloads:

* ``mlp``: the MNIST MLP of ``models.py`` behind a Flatten (Dense 512 relu, Dropout 0.2,
  Dense 10 softmax);
* ``cnn``: the MNIST convnet (Conv2D 32 3x3 relu, MaxPool 2, Conv2D 64 3x3 relu, MaxPool 2,
  Flatten, Dropout 0.5, Dense 10 softmax);

Adam, sparse categorical cross-entropy, fed from:

* ``arrays``: ``fit(x, y, batch_size=128)`` (shuffled batches gathered into reused
  buffers): the baseline;
* ``pydataset``: a ``PyDataset`` slicing the same arrays (one loader thread);
* ``generator``: a Python generator of the same batches (read ahead on a thread);
* ``dataset``: ``Dataset.from_tensor_slices(...).shuffle(...).batch(128)``;
* ``image_folder``: ``image_dataset_from_directory`` over the same images saved as PNG
  files, decoded every epoch;
* ``image_folder_cached``: the same with ``.cache()`` (decoded in the first epoch only).

The goal: each within 10% of ``arrays`` for its workload. ``benchmarks/data_input.py``
prints the same comparison side by side in one run.
"""
import os
import shutil
import tempfile

import numpy as np

from .common import Benchmark

STEPS = 20
BS = 128
SOURCES = ["arrays", "pydataset", "generator", "dataset", "image_folder", "image_folder_cached"]


def _model(workload):
    import fastnet as K

    K.utils.set_random_seed(0)
    L = K.layers
    if workload == "mlp":
        layers = [L.Flatten(), L.Dense(512, activation="relu"), L.Dropout(0.2), L.Dense(10, activation="softmax")]
    else:
        layers = [L.Conv2D(32, 3, activation="relu"), L.MaxPooling2D(2), L.Conv2D(64, 3, activation="relu"),
                  L.MaxPooling2D(2), L.Flatten(), L.Dropout(0.5), L.Dense(10, activation="softmax")]
    m = K.Sequential([K.Input((28, 28, 1))] + layers)
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return m


def _images():
    """The images (n, 28, 28) uint8 and labels, ordered by class as a folder lists them."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (BS * STEPS, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, BS * STEPS)
    order = np.argsort(labels, kind="stable")
    return images[order], labels[order]


class FitFromInput(Benchmark):
    """One epoch of 20 steps, by workload and kind of input."""

    params = ([2], ["mlp", "cnn"], SOURCES)
    param_names = ["n_threads", "workload", "source"]
    timeout = 600

    def setup(self, n_threads, workload, source):
        import fastnet as K
        from fastnet.data import Dataset

        self.set_threads(n_threads)
        self.root = None
        images, y = _images()
        x = images[..., None].astype(np.float32)
        n = len(x)
        self.m = m = _model(workload)

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
            self.fit = lambda: m.fit(x, y, batch_size=BS, epochs=1, verbose=0)
        elif source == "pydataset":
            seq = Batches()
            self.fit = lambda: m.fit(seq, epochs=1, verbose=0)
        elif source == "generator":
            stream = gen()
            self.fit = lambda: m.fit(stream, steps_per_epoch=STEPS, epochs=1, verbose=0)
        elif source == "dataset":
            ds = Dataset.from_tensor_slices((x, y)).shuffle(n, seed=0).batch(BS)
            self.fit = lambda: m.fit(ds, epochs=1, verbose=0)
        else:
            from PIL import Image

            self.root = tempfile.mkdtemp(prefix="fastnet-asv-images-")
            for c in range(10):
                os.makedirs(os.path.join(self.root, f"class_{c}"))
            for i, (img, c) in enumerate(zip(images, y)):
                Image.fromarray(img, "L").save(os.path.join(self.root, f"class_{c}", f"{i:05d}.png"))
            ds = K.utils.image_dataset_from_directory(self.root, color_mode="grayscale", image_size=(28, 28),
                                                      batch_size=BS, seed=0, verbose=False)
            if source == "image_folder_cached":
                ds = ds.cache()
            self.fit = lambda: m.fit(ds, epochs=1, verbose=0)
        self.fit()  # builds the model, warms the kernels, fills the cache

    def teardown(self, n_threads, workload, source):
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)

    def time_fit_epoch(self, n_threads, workload, source):
        self.fit()
