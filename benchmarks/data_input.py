"""Training cost by kind of input, side by side with training on the same arrays (issue 17).

    PYTHONPATH=. python benchmarks/data_input.py                 # MLP and convnet, 5 repeats
    PYTHONPATH=. python benchmarks/data_input.py mlp --repeats 7 --steps 20

One timing is one epoch of ``--steps`` batches of 128 28x28x1 images (uint8 pixels as
float32) through the MNIST MLP (Flatten, Dense 512 relu, Dropout 0.2, Dense 10 softmax)
or the MNIST convnet of ``benchmarks/workloads.py``; Adam, sparse categorical
cross-entropy. The inputs:

* ``arrays``: ``fit(x, y, batch_size=128)`` (shuffled: the default);
* ``pydataset``: a ``PyDataset`` slicing the same arrays (one loader thread, the default);
* ``generator``: a Python generator of the same batches, ``steps_per_epoch``;
* ``dataset``: ``Dataset.from_tensor_slices((x, y)).shuffle(n).batch(128)``;
* ``image_folder``: ``image_dataset_from_directory`` over the same images saved as PNGs
  (decoded every epoch);
* ``image_folder_cached``: the same dataset with ``.cache()`` (decoded in the first epoch only).

The sources run interleaved in each repeat (so a slow moment on a shared machine hits
them alike); each line gives the median and the fastest epoch's ms/step, the process CPU
time per step (all threads: the step's and the loaders'), each with its ratio to
``arrays``, and the slowest epoch.
``--decode`` also times decoding one batch of PNGs alone (nothing else running), as the
folder's loader decodes it, and opening, reading and closing its files without decoding
(the floor of any loader that reads the files every epoch).
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

import numpy as np

BS = 128
SOURCES = ("arrays", "pydataset", "generator", "dataset", "image_folder", "image_folder_cached")


def build(kind, K):
    K.utils.set_random_seed(0)
    L = K.layers
    if kind == "mlp":
        layers = [L.Flatten(), L.Dense(512, activation="relu"), L.Dropout(0.2), L.Dense(10, activation="softmax")]
    else:
        layers = [L.Conv2D(32, 3, activation="relu"), L.MaxPooling2D(2), L.Conv2D(64, 3, activation="relu"),
                  L.MaxPooling2D(2), L.Flatten(), L.Dropout(0.5), L.Dense(10, activation="softmax")]
    m = K.Sequential([K.Input((28, 28, 1))] + layers)
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return m


def write_pngs(root, images, labels):
    from PIL import Image

    for c in range(10):
        os.makedirs(os.path.join(root, f"class_{c}"), exist_ok=True)
    for i, (img, c) in enumerate(zip(images, labels)):
        Image.fromarray(img, "L").save(os.path.join(root, f"class_{c}", f"{i:05d}.png"))


def make_fits(kind, steps, root, K):
    """{source: a callable running one epoch}; each source trains its own copy of the model."""
    from fastnet.data import Dataset

    rng = np.random.default_rng(0)
    n = BS * steps
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n)
    write_pngs(root, images, labels)
    # The folder lists class_0..class_9 in order: the arrays hold the same images in that order.
    order = np.argsort(labels, kind="stable")
    x = images[order][..., None].astype(np.float32)
    y = labels[order]

    class Batches(K.utils.PyDataset):
        def __len__(self):
            return steps

        def __getitem__(self, i):
            return x[i * BS:(i + 1) * BS], y[i * BS:(i + 1) * BS]

    def gen():
        while True:
            for i in range(steps):
                yield x[i * BS:(i + 1) * BS], y[i * BS:(i + 1) * BS]

    fits = {}
    for source in SOURCES:
        m = build(kind, K)
        if source == "arrays":
            fits[source] = (lambda m=m: m.fit(x, y, batch_size=BS, epochs=1, verbose=0))
        elif source == "pydataset":
            seq = Batches()
            fits[source] = (lambda m=m, seq=seq: m.fit(seq, epochs=1, verbose=0))
        elif source == "generator":
            stream = gen()
            fits[source] = (lambda m=m, s=stream: m.fit(s, steps_per_epoch=steps, epochs=1, verbose=0))
        elif source == "dataset":
            ds = Dataset.from_tensor_slices((x, y)).shuffle(n, seed=0).batch(BS)
            fits[source] = (lambda m=m, ds=ds: m.fit(ds, epochs=1, verbose=0))
        else:
            ds = K.utils.image_dataset_from_directory(root, color_mode="grayscale", image_size=(28, 28),
                                                      batch_size=BS, seed=0, verbose=False)
            if source == "image_folder_cached":
                ds = ds.cache()
            fits[source] = (lambda m=m, ds=ds: m.fit(ds, epochs=1, verbose=0))
    return fits


def _ratio(value, base):
    return f"{value / base:5.2f}x" if base else "    - "


def decode_cost(root, repeats):
    """(wall, CPU) seconds to decode one batch of PNGs as the loader does: the median wall
    time of a batch, and the process's CPU time over all the repeats per batch (with the
    decoder's threads, and their idle spinning after each batch, counted: one batch is too
    short for the process clock to have counted another thread's time)."""
    from fastnet.utils.dataset_utils import _finish_images, _image_batch_loader, _image_loader

    paths = np.asarray(sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs)[:BS], dtype=object)
    _, load_into = _image_loader((28, 28), 1, "bilinear", "channels_last", False, False)
    load_batch = _image_batch_loader((28, 28), 1, "channels_last", load_into)
    walls = []
    c = time.process_time()
    for _ in range(repeats):
        t = time.perf_counter()
        _finish_images(load_batch(paths))
        walls.append(time.perf_counter() - t)
    return statistics.median(walls), (time.process_time() - c) / repeats


def read_cost(root, repeats):
    """CPU seconds to open, read and close one batch of image files in this thread, with
    no decoding: the least any loader reading files every epoch pays per step. (Each read
    asks for 64 KiB, more than these files hold: os.read allocates what it is asked for,
    and asking for 1 MiB made the figure depend on the allocator's state.)"""
    paths = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs)[:BS]
    cpus = []
    for _ in range(repeats):
        c = time.thread_time()
        for path in paths:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.read(fd, 1 << 16)
            finally:
                os.close(fd)
        cpus.append(time.thread_time() - c)
    return statistics.median(cpus)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("workloads", nargs="*", help="mlp, cnn (default: both)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--sources", nargs="*", default=list(SOURCES), choices=SOURCES)
    p.add_argument("--threads", type=int, default=None, help="fastnet.config.set_num_threads")
    p.add_argument("--decode", action="store_true", help="also time decoding one batch alone")
    p.add_argument("--decode-threads", type=int, default=None,
                   help="threads decoding the image folder (the AUTOTUNE of map; default: fastnet's choice)")
    args = p.parse_args(argv)
    args.workloads = args.workloads or ["mlp", "cnn"]
    bad = [w for w in args.workloads if w not in ("mlp", "cnn")]
    if bad:
        p.error(f"unknown workloads {bad}; choose from mlp, cnn")

    import fastnet as K

    if args.threads:
        K.config.set_num_threads(args.threads)
    if args.decode_threads:
        from fastnet.data import dataset as _dataset

        _dataset._AUTO_PARALLEL = args.decode_threads
    root = tempfile.mkdtemp(prefix="fastnet-data-input-")
    try:
        for kind in args.workloads:
            fits = make_fits(kind, args.steps, os.path.join(root, kind), K)
            fits = {s: f for s, f in fits.items() if s in args.sources}
            for f in fits.values():  # build, warm the kernels, fill the cache
                f()
            times = {s: [] for s in fits}
            cpu = {s: [] for s in fits}
            for _ in range(args.repeats):
                for s, f in fits.items():
                    t, c = time.perf_counter(), time.process_time()
                    f()
                    times[s].append((time.perf_counter() - t) / args.steps * 1e3)
                    cpu[s].append((time.process_time() - c) / args.steps * 1e3)
            base = statistics.median(times["arrays"]) if "arrays" in times else None
            base_min = min(times["arrays"]) if "arrays" in times else None
            base_cpu = statistics.median(cpu["arrays"]) if "arrays" in cpu else None
            print(f"{kind}: ms/step over {args.repeats} epochs of {args.steps} steps (batch {BS}); "
                  f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
            print(f"  {'source':<20} {'median':>8} {'ratio':>6}   {'min':>7} {'ratio':>6}   {'CPU':>7} {'ratio':>6}"
                  f"   max")
            for s, ts in times.items():
                med, lo, c = statistics.median(ts), min(ts), statistics.median(cpu[s])
                print(f"  {s:<20} {med:8.2f} {_ratio(med, base)}   {lo:7.2f} {_ratio(lo, base_min)}   "
                      f"{c:7.2f} {_ratio(c, base_cpu)}   {max(ts):.2f}")
            if args.decode:
                wall, cpu = decode_cost(os.path.join(root, kind), max(args.repeats, 9))
                print(f"  decode one batch of {BS} PNGs alone, as the loader does: {wall * 1e3:.2f} ms wall, "
                      f"{cpu * 1e3:.2f} ms CPU")
                print(f"  only open, read and close its {BS} files: "
                      f"{read_cost(os.path.join(root, kind), max(args.repeats, 9)) * 1e3:.2f} ms CPU")
            sys.stdout.flush()
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
