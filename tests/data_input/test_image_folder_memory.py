"""The memory figure of image_dataset_from_directory when training: ``fit`` on a folder of
2,000 generated images holds a bounded number of decoded batches (the loader's and the
trainer's), never the folder, so a folder bigger than memory trains."""
import os
import sys
import tracemalloc

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import data_fixtures as fx  # noqa: E402

import fastnet as K  # noqa: E402
from fastnet.utils import image_dataset_from_directory  # noqa: E402

pytest.importorskip("PIL")

N, SIZE, BATCH = 2000, (64, 64), 16
DECODED = N * SIZE[0] * SIZE[1] * 3 * 4  # float32 pixels of the whole folder: 98 MB


def _small_model():
    K.utils.set_random_seed(0)
    m = K.Sequential([K.Input(SIZE + (3,)), K.layers.Rescaling(1 / 255), K.layers.GlobalAveragePooling2D(),
                      K.layers.Dense(2, activation="softmax")])
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return m


@pytest.mark.slow
def test_fit_on_image_folder_holds_a_few_batches(tmp_path):
    fx.make_many_images(str(tmp_path), N, size=SIZE)
    ds = image_dataset_from_directory(str(tmp_path), image_size=SIZE, batch_size=BATCH, seed=0, verbose=False)
    m = _small_model()
    tracemalloc.start()
    try:
        history = m.fit(ds, epochs=1, verbose=0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert np.isfinite(history.history["loss"][0])
    assert m.optimizer.iterations == N // BATCH  # every batch of the folder was trained on
    batch_bytes = BATCH * SIZE[0] * SIZE[1] * 3 * 4
    # A handful of batches in flight (decoding, waiting, in the step), far from the folder.
    assert peak < DECODED / 5, f"peak {peak / 1e6:.1f} MB for {DECODED / 1e6:.1f} MB of decoded images"
    assert peak < 40 * batch_bytes, f"peak {peak / 1e6:.1f} MB is {peak / batch_bytes:.0f} batches"
