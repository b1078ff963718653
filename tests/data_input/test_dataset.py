"""fastnet.data.Dataset: the tf.data methods Keras code calls, on numpy elements."""
import threading
import time

import numpy as np
import pytest

from fastnet.data import AUTOTUNE, INFINITE_CARDINALITY, UNKNOWN_CARDINALITY, Dataset
from fastnet.utils import split_dataset


def values(ds):
    return [np.asarray(e).tolist() for e in ds]


def test_from_tensor_slices_and_batch():
    x = np.arange(10).reshape(5, 2)
    y = np.arange(5) * 10
    ds = Dataset.from_tensor_slices((x, y))
    assert len(ds) == 5 and ds.cardinality() == 5
    first = next(iter(ds))
    assert isinstance(first, tuple) and first[0].tolist() == [0, 1] and int(first[1]) == 0
    batches = list(ds.batch(2))
    assert [b[0].shape for b in batches] == [(2, 2), (2, 2), (1, 2)]
    assert len(ds.batch(2)) == 3 and len(ds.batch(2, drop_remainder=True)) == 2
    assert [b[1].tolist() for b in ds.batch(2, drop_remainder=True)] == [[0, 10], [20, 30]]
    d = Dataset.from_tensor_slices({"a": x, "b": y}).batch(4)
    assert set(next(iter(d))) == {"a", "b"}


def test_element_wise_batch_matches_sliced_batch():
    x = np.arange(12).reshape(6, 2)
    fast = [b.tolist() for b in Dataset.from_tensor_slices(x).batch(4)]
    slow = [b.tolist() for b in Dataset.from_tensor_slices(x).map(lambda v: v).batch(4)]
    assert fast == slow == [x[:4].tolist(), x[4:].tolist()]


def test_map_passes_tuple_parts_as_arguments():
    ds = Dataset.from_tensor_slices((np.arange(4), np.arange(4) * 2)).map(lambda a, b: a + b)
    assert values(ds) == [0, 3, 6, 9]
    par = Dataset.range(50).map(lambda v: v * 2, num_parallel_calls=AUTOTUNE)
    assert values(par) == list(range(0, 100, 2))  # order kept
    d = Dataset.from_tensor_slices({"a": np.arange(3)}).map(lambda e: e["a"] + 1)
    assert values(d) == [1, 2, 3]


def test_parallel_map_uses_several_threads():
    names = set()

    def slow(v):
        names.add(threading.current_thread().name)
        time.sleep(0.01)
        return v

    assert values(Dataset.range(16).map(slow, num_parallel_calls=4)) == list(range(16))
    assert len(names) > 1


def test_unbatch_filter_take_skip_repeat_concatenate():
    ds = Dataset.range(7)
    assert values(ds.batch(3).unbatch()) == list(range(7))
    assert values(ds.filter(lambda v: v % 2 == 0)) == [0, 2, 4, 6]
    assert values(ds.take(3)) == [0, 1, 2] and len(ds.take(3)) == 3 and len(ds.take(-1)) == 7
    assert values(ds.skip(5)) == [5, 6] and len(ds.skip(5)) == 2 and values(ds.skip(-1)) == []
    assert values(ds.take(2).repeat(3)) == [0, 1] * 3 and len(ds.take(2).repeat(3)) == 6
    forever = ds.repeat()
    assert forever.cardinality() == INFINITE_CARDINALITY
    assert values(forever.take(10)) == list(range(7)) + [0, 1, 2]
    assert values(ds.take(2).concatenate(ds.skip(5))) == [0, 1, 5, 6]
    assert ds.filter(lambda v: True).cardinality() == UNKNOWN_CARDINALITY
    with pytest.raises(TypeError, match="infinite"):
        len(forever)
    with pytest.raises(TypeError, match="unknown"):
        len(ds.filter(lambda v: True))


def test_shuffle_seed_and_reshuffle():
    ds = Dataset.range(20)
    a = values(ds.shuffle(20, seed=1))
    assert sorted(a) == list(range(20)) and a != list(range(20))
    assert a == values(ds.shuffle(20, seed=1))
    per_pass = ds.shuffle(20, seed=1)
    assert values(per_pass) != values(per_pass)  # reshuffled on each pass (almost surely)
    fixed = ds.shuffle(20, seed=1, reshuffle_each_iteration=False)
    assert values(fixed) == values(fixed)
    small = values(ds.shuffle(3, seed=0))
    assert sorted(small) == list(range(20))
    assert all(small[i] <= i + 3 for i in range(20))  # a buffer of 3 moves elements a little ahead only
    batched = list(Dataset.from_tensor_slices((np.arange(9), -np.arange(9))).shuffle(100, seed=2).batch(4))
    for xb, yb in batched:
        np.testing.assert_array_equal(xb, -yb)
    assert sorted(np.concatenate([b[0] for b in batched]).tolist()) == list(range(9))


def test_cache_serves_later_passes(tmp_path):
    calls = []

    def count(v):
        calls.append(int(v))
        return v

    ds = Dataset.range(4).map(count).cache()
    assert values(ds) == values(ds) == [0, 1, 2, 3]
    assert calls == [0, 1, 2, 3]
    path = str(tmp_path / "c")
    on_disk = Dataset.range(3).map(count).cache(path)
    values(on_disk)
    again = Dataset.range(3).map(lambda v: v * 100).cache(path)
    assert values(again) == [0, 1, 2]  # read from the file


def test_prefetch_runs_ahead_and_stops():
    produced = []

    def gen():
        for i in range(100):
            produced.append(i)
            yield np.int64(i)

    ds = Dataset.from_generator(gen).prefetch(5)
    it = iter(ds)
    assert int(next(it)) == 0
    time.sleep(0.2)
    assert 3 <= len(produced) <= 8  # at most the buffer ahead
    it.close()
    assert values(Dataset.range(5).prefetch(AUTOTUNE)) == list(range(5))


def test_errors_in_map_reach_the_reader():
    def bad(v):
        if v == 3:
            raise ValueError("broken element 3")
        return v

    with pytest.raises(ValueError, match="broken element 3"):
        values(Dataset.range(5).map(bad).prefetch(2))


def test_argument_errors():
    with pytest.raises(ValueError, match="same first dimension"):
        Dataset.from_tensor_slices((np.zeros(3), np.zeros(4)))
    with pytest.raises(ValueError, match=r"batch\(batch_size\) must be a positive integer"):
        Dataset.range(3).batch(0)
    with pytest.raises(TypeError, match="callable"):
        Dataset.range(3).map(5)
    with pytest.raises(ValueError, match="scalar"):
        Dataset.from_tensor_slices(np.float32(1.0))


def test_split_dataset_arrays_matches_keras_rule():
    import random

    x = np.arange(10)
    left, right = split_dataset(x, left_size=0.8)
    assert values(left) == list(range(8)) and values(right) == [8, 9]
    left, right = split_dataset((x, x * 2), right_size=3, shuffle=True, seed=5)
    order = list(range(10))
    random.Random(5).shuffle(order)  # Keras shuffles the samples with Python's random, seeded
    assert [int(a) for a, _ in left] == order[:7] and [int(a) for a, _ in right] == order[7:]
    batched_left, _ = split_dataset(Dataset.from_tensor_slices(x).batch(3), left_size=6)
    assert [len(b) for b in batched_left] == [3, 3]
    with pytest.raises(ValueError, match="At least one of left_size and right_size"):
        split_dataset(x)
    with pytest.raises(ValueError, match="left_size must be a positive integer smaller than 10"):
        split_dataset(x, left_size=10)
    with pytest.raises(TypeError, match="left_size must be an int, a float or None"):
        split_dataset(x, left_size="half")


def _settled(made, wait=0.3):
    """len(made) once the producer thread has stopped adding to it for ``wait`` seconds."""
    n = -1
    deadline = time.monotonic() + 10
    while len(made) != n and time.monotonic() < deadline:
        n = len(made)
        time.sleep(wait)
    return n


def test_prefetcher_refills_in_bursts_once_half_drained():
    from fastnet.data._prefetch import Prefetcher

    made = []

    def gen():
        for i in range(100):
            made.append(i)
            yield i

    reader = Prefetcher(gen(), max_queue_size=4)
    try:
        # 4 waiting, plus the one the producer holds while it waits for room.
        assert _settled(made) == 5
        assert next(reader) == 0  # 3 wait: above the low mark of 2, the producer sleeps on
        assert _settled(made) == 5
        assert next(reader) == 1  # 2 wait: it wakes and fills the buffer again in one go
        assert _settled(made) == 7
        assert next(reader) == 2
        assert _settled(made) == 7
        assert [next(reader) for _ in range(10)] == list(range(3, 13))
    finally:
        reader.close()
    n = _settled(made)
    assert n < 100  # closing stopped the producer
    with pytest.raises(StopIteration):
        next(reader)


def test_batches_are_freed_without_the_garbage_collector():
    # No reference cycle keeps a batch alive after the reader drops it (a folder of images
    # would otherwise hold dozens of decoded batches between collections).
    import gc
    import weakref

    x = np.arange(400, dtype=np.float32).reshape(100, 4)
    ds = Dataset.from_tensor_slices((x, np.arange(100))).shuffle(30, seed=0).batch(10).map(lambda a, b: (a * 2, b))
    refs = []
    gc.disable()
    try:
        for xb, yb in ds.prefetch(2):
            refs.append(weakref.ref(xb))
            del xb, yb
        assert sum(r() is not None for r in refs) == 0
    finally:
        gc.enable()
