"""fit / evaluate / predict fed by generators, PyDataset, Dataset and image folders.

The same batches in the same order train to the same weights whatever carries them, so
each input kind is checked against training on the arrays (shuffle=False), to 1e-6.
"""
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import data_fixtures as fx  # noqa: E402

import fastnet as keras  # noqa: E402
from fastnet.data import Dataset  # noqa: E402

N, D, CLASSES, BS = 96, 6, 3, 16


def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, D)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.5)
    return x, y


def model(seed=0):
    keras.utils.set_random_seed(seed)
    m = keras.Sequential([keras.Input((D,)), keras.layers.Dense(8, activation="relu"),
                          keras.layers.Dense(CLASSES, activation="softmax")])
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


def reference(epochs=2):
    x, y = data()
    m = model()
    history = m.fit(x, y, batch_size=BS, epochs=epochs, shuffle=False, verbose=0)
    return m, history


def assert_same_weights(a, b):
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=0, atol=1e-6)


def batches_gen(x, y, repeat=1):
    for _ in range(repeat):
        for lo in range(0, len(x), BS):
            yield x[lo:lo + BS], y[lo:lo + BS]


class ArraySequence(keras.utils.PyDataset):
    def __init__(self, x, y=None, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y = x, y

    def __len__(self):
        return -(-len(self.x) // BS)

    def __getitem__(self, i):
        xb = self.x[i * BS:(i + 1) * BS]
        return xb if self.y is None else (xb, self.y[i * BS:(i + 1) * BS])


def test_fit_from_generator_with_steps_per_epoch():
    ref, ref_hist = reference()
    x, y = data()
    m = model()
    hist = m.fit(batches_gen(x, y, repeat=2), steps_per_epoch=N // BS, epochs=2, verbose=0)
    assert_same_weights(m, ref)
    np.testing.assert_allclose(hist.history["loss"], ref_hist.history["loss"], rtol=1e-5)


@pytest.mark.parametrize("kwargs", [{}, {"workers": 2}, {"workers": 2, "use_multiprocessing": True}],
                         ids=["thread", "workers", "processes"])
def test_fit_from_pydataset(kwargs):
    ref, _ = reference()
    x, y = data()
    m = model()
    m.fit(ArraySequence(x, y, **kwargs), epochs=2, shuffle=False, verbose=0)
    assert_same_weights(m, ref)


def test_fit_from_dataset():
    ref, ref_hist = reference()
    x, y = data()
    m = model()
    hist = m.fit(Dataset.from_tensor_slices((x, y)).batch(BS).prefetch(keras.data.AUTOTUNE), epochs=2, verbose=0)
    assert_same_weights(m, ref)
    np.testing.assert_allclose(hist.history["accuracy"], ref_hist.history["accuracy"], rtol=1e-6)


def test_evaluate_and_predict_from_every_kind():
    ref, _ = reference(epochs=1)
    x, y = data()
    expected_eval = ref.evaluate(x, y, batch_size=BS, verbose=0)
    expected_pred = ref.predict(x, batch_size=BS, verbose=0)
    for source in (batches_gen(x, y), ArraySequence(x, y), Dataset.from_tensor_slices((x, y)).batch(BS)):
        np.testing.assert_allclose(ref.evaluate(source, verbose=0), expected_eval, rtol=1e-5)
    for source in ((xb for xb, _ in batches_gen(x, y)), ArraySequence(x), Dataset.from_tensor_slices(x).batch(BS)):
        np.testing.assert_allclose(ref.predict(source, verbose=0), expected_pred, rtol=1e-5, atol=1e-7)


def test_evaluate_with_steps_reads_only_those_batches():
    ref, _ = reference(epochs=1)
    x, y = data()
    expected = ref.evaluate(x[:2 * BS], y[:2 * BS], batch_size=BS, verbose=0)
    np.testing.assert_allclose(ref.evaluate(batches_gen(x, y), steps=2, verbose=0), expected, rtol=1e-5)


def test_infinite_generator_with_validation_generator():
    x, y = data()

    def forever(xs, ys):
        while True:
            yield from batches_gen(xs, ys)

    m = model()
    hist = m.fit(forever(x[:64], y[:64]), steps_per_epoch=3, epochs=3, verbose=0,
                 validation_data=forever(x[64:], y[64:]), validation_steps=2)
    assert len(hist.history["loss"]) == 3 and len(hist.history["val_loss"]) == 3
    assert all(np.isfinite(hist.history["val_loss"]))
    expected_val = m.evaluate(x[64:96], y[64:96], batch_size=BS, verbose=0)
    # The validation iterator carries over: epoch 3 reads the same two batches as epoch 1 would.
    np.testing.assert_allclose(hist.history["val_loss"][-1], expected_val[0], rtol=1e-5)


def test_validation_data_as_dataset_and_pydataset():
    x, y = data()
    m = model()
    hist = m.fit(x[:64], y[:64], batch_size=BS, epochs=1, verbose=0,
                 validation_data=Dataset.from_tensor_slices((x[64:], y[64:])).batch(BS))
    np.testing.assert_allclose(hist.history["val_loss"][0], m.evaluate(x[64:], y[64:], batch_size=BS, verbose=0)[0],
                               rtol=1e-5)
    hist = m.fit(x[:64], y[:64], batch_size=BS, epochs=1, verbose=0, validation_data=ArraySequence(x[64:], y[64:]))
    assert "val_accuracy" in hist.history


def test_progress_bar_with_unknown_total(capsys):
    x, y = data()
    m = model()
    m.fit(batches_gen(x, y), epochs=1, verbose=1)
    out = capsys.readouterr().out
    assert "6/Unknown" in out or "6/6" in out  # Keras prints the count without a total while unknown


def test_class_weight_with_a_generator():
    x, y = data()
    a = model()
    a.fit(batches_gen(x, y), epochs=1, verbose=0, class_weight={0: 1.0, 1: 2.0, 2: 0.5})
    b = model()
    weights = np.array([1.0, 2.0, 0.5], dtype=np.float32)[y]
    b.fit(x, y, sample_weight=weights, batch_size=BS, shuffle=False, epochs=1, verbose=0)
    assert_same_weights(a, b)


def test_fit_from_image_folder(tmp_path):
    pytest.importorskip("PIL")
    fx.make_image_tree(str(tmp_path))
    train, val = keras.utils.image_dataset_from_directory(str(tmp_path), image_size=(8, 8), batch_size=4, seed=1,
                                                          validation_split=0.25, subset="both", verbose=False)
    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(),
                          keras.layers.Dense(len(train.class_names), activation="softmax")])
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    hist = m.fit(train, validation_data=val, epochs=2, verbose=0)
    assert len(hist.history["val_loss"]) == 2
    probs = m.predict(val.map(lambda images, labels: images), verbose=0)
    assert probs.shape == (3, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    loss, acc = m.evaluate(val, verbose=0)
    assert np.isfinite(loss) and 0.0 <= acc <= 1.0


def test_unsupported_input_type_error():
    m = model()
    with pytest.raises(TypeError, match=r"Unrecognized data type for x: builtins.set"):
        m.fit({1, 2}, epochs=1, verbose=0)
    x, y = data()
    with pytest.raises(ValueError, match="When providing x as a generator, y should not be passed"):
        m.fit(batches_gen(x, y), y, epochs=1, verbose=0)


@pytest.mark.parametrize("prefetched", [False, True])
def test_dataset_batches_are_loaded_once_per_epoch(prefetched):
    # The batch fit peeks at to build the model is the first batch of the first epoch:
    # a mapped (decoding) pipeline does not run one batch more than it trains on.
    x, y = data()
    loads = []

    def load(xb, yb):
        loads.append(len(xb))
        return xb, yb

    ds = Dataset.from_tensor_slices((x, y)).batch(BS).map(load)
    if prefetched:
        ds = ds.prefetch(2)
    ref, ref_hist = reference(epochs=2)
    m = model()
    hist = m.fit(ds, epochs=2, verbose=0)
    assert len(loads) == 2 * (N // BS)
    assert_same_weights(m, ref)
    np.testing.assert_allclose(hist.history["loss"], ref_hist.history["loss"], rtol=1e-6)
    loads.clear()
    m.evaluate(ds, verbose=0)
    assert len(loads) == N // BS
