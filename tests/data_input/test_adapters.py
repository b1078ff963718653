"""fastnet.data.adapters: every kind of input as (x, y, sample_weight) numpy batches, and
Keras 3's epoch semantics."""
import threading
import time
import traceback
import warnings

import numpy as np
import pytest

from fastnet import config
from fastnet.data import Dataset
from fastnet.data.adapters import (
    ArrayDataAdapter,
    EpochIterator,
    GeneratorDataAdapter,
    PyDatasetAdapter,
    get_data_adapter,
    train_validation_split,
)
from fastnet.utils import PyDataset, Sequence, set_random_seed


def _batches(adapter):
    # Copies each batch as it comes: shuffled array batches live in reused buffers.
    return [_copy([b])[0] for b in adapter.get_numpy_iterator()]


def _copy(batches):
    def c(s):
        if s is None:
            return None
        if isinstance(s, dict):
            return {k: c(v) for k, v in s.items()}
        if isinstance(s, (list, tuple)):
            return type(s)(c(v) for v in s)
        return np.array(s)
    return [c(b) for b in batches]


# ----------------------------------------------------------------------------- arrays
def test_arrays_in_order_without_shuffle():
    x = np.arange(20, dtype=np.float64).reshape(10, 2)
    y = np.arange(10)
    adapter = get_data_adapter(x, y, batch_size=4)
    assert isinstance(adapter, ArrayDataAdapter)
    assert adapter.num_batches == 3 and adapter.batch_size == 4
    assert adapter.has_partial_batch and adapter.partial_batch_size == 2
    batches = _batches(adapter)
    assert [len(b[0]) for b in batches] == [4, 4, 2]
    assert batches[0][0].dtype == np.dtype(config.floatx())  # floats to floatx once
    assert batches[0][1].dtype == y.dtype  # integer targets stay integers
    assert batches[0][2] is None
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), y)


def test_shuffle_draws_a_permutation_from_the_global_seed():
    x = np.arange(10, dtype=np.float32)[:, None]
    y = np.arange(10)
    set_random_seed(3)
    first = np.concatenate([b[1] for b in (_batches(get_data_adapter(x, y, batch_size=3, shuffle=True)))])
    set_random_seed(3)
    again = np.concatenate([b[1] for b in (_batches(get_data_adapter(x, y, batch_size=3, shuffle=True)))])
    np.testing.assert_array_equal(first, again)
    assert sorted(first.tolist()) == list(range(10)) and first.tolist() != list(range(10))
    adapter = get_data_adapter(x, y, batch_size=3, shuffle=True)
    passes = [np.concatenate([b[1] for b in (_batches(adapter))]) for _ in range(3)]
    assert any(not np.array_equal(passes[0], p) for p in passes[1:])
    for batch in (_batches(adapter)):  # x and y rows stay paired
        np.testing.assert_array_equal(batch[0][:, 0], batch[1])


def test_shuffled_batches_reuse_their_buffers():
    x = np.random.default_rng(0).normal(size=(64, 5)).astype(np.float32)
    adapter = get_data_adapter(x, np.zeros(64), batch_size=16, shuffle=True)
    seen = set()
    for xb, _, _ in adapter.get_numpy_iterator():
        seen.add(xb.__array_interface__["data"][0])
    for xb, _, _ in adapter.get_numpy_iterator():
        seen.add(xb.__array_interface__["data"][0])
    assert len(seen) == 1


def test_shuffle_batch_mode_keeps_chunks_together():
    x = np.arange(12, dtype=np.float32)[:, None]
    adapter = get_data_adapter(x, np.arange(12), batch_size=4, shuffle="batch")
    set_random_seed(0)
    batches = (_batches(adapter))
    chunks = sorted(tuple(sorted(b[1].tolist())) for b in batches)
    assert chunks == [(0, 1, 2, 3), (4, 5, 6, 7), (8, 9, 10, 11)]


def test_structures_keep_their_shape():
    rng = np.random.default_rng(1)
    x = {"a": rng.normal(size=(6, 2)), "b": rng.integers(0, 5, (6, 3))}
    y = [np.arange(6), np.ones((6, 1))]
    sw = np.linspace(0, 1, 6)
    batches = (_batches(get_data_adapter(x, y, sample_weight=sw, batch_size=4, shuffle=True)))
    xb, yb, swb = batches[0]
    assert set(xb) == {"a", "b"} and xb["a"].shape == (4, 2) and xb["b"].shape == (4, 3)
    assert xb["b"].dtype == np.dtype(config.floatx())  # numeric x becomes floatx
    assert isinstance(yb, list) and yb[0].shape == (4,) and yb[1].shape == (4, 1)
    assert swb.dtype == np.dtype(config.floatx())
    rows = np.concatenate([b[1][0] for b in batches])
    np.testing.assert_allclose(np.concatenate([b[2] for b in batches]), sw[rows].astype(np.float32))
    lst = _batches(get_data_adapter([np.zeros((3, 2)), np.ones((3, 1))], np.zeros(3), batch_size=2))
    assert isinstance(lst[0][0], list) and len(lst[0][0]) == 2
    plain = _batches(get_data_adapter([[1, 2], [3, 4], [5, 6]], [0, 1, 0], batch_size=2))
    assert plain[0][0].shape == (2, 2)  # a list of numbers is one array


def test_x_only_for_predict():
    batches = _batches(get_data_adapter(np.zeros((5, 3)), batch_size=2, for_what="predict", shuffle=True))
    assert [b[0].shape[0] for b in batches] == [2, 2, 1] and all(b[1] is None and b[2] is None for b in batches)


def test_default_batch_size_follows_keras():
    assert get_data_adapter(np.zeros((100, 1))).batch_size == 32
    adapter = get_data_adapter(np.zeros((100, 1)), steps_per_epoch=3)
    assert adapter.batch_size == 34 and adapter.num_batches == 3


def test_class_weight_becomes_sample_weight():
    y = np.array([0, 1, 2, 1, 0])
    adapter = get_data_adapter(np.zeros((5, 1)), y, class_weight={0: 1.0, 1: 2.0, 2: 0.5}, batch_size=5)
    np.testing.assert_allclose(_batches(adapter)[0][2], [1.0, 2.0, 0.5, 2.0, 1.0])
    onehot = np.eye(3)[y]
    sw = np.array([1, 1, 1, 1, 2.0])
    adapter = get_data_adapter(np.zeros((5, 1)), onehot, sample_weight=sw, class_weight={1: 3.0}, batch_size=5)
    np.testing.assert_allclose(_batches(adapter)[0][2], [1, 3, 1, 3, 2])  # absent classes weigh 1; multiplied
    col = y[:, None].astype(np.float32)
    adapter = get_data_adapter(np.zeros((5, 1)), col, class_weight={2: 4.0}, batch_size=5)
    np.testing.assert_allclose(_batches(adapter)[0][2], [1, 1, 4, 1, 1])


@pytest.mark.parametrize("cw,message", [
    ({-1: 1.0}, "non-negative class indices"),
    ({0.5: 1.0}, "integer class indices"),
    ({"a": 1.0}, "integer class indices"),
    ({3: 1.0}, r"keys \[3\] out of range for one-hot targets with 3 classes"),
    ({0: float("nan")}, "finite numbers"),
])
def test_bad_class_weight(cw, message):
    with pytest.raises(ValueError, match=message):
        get_data_adapter(np.zeros((4, 1)), np.eye(3)[[0, 1, 2, 0]], class_weight=cw)


def test_class_weight_needs_one_output():
    with pytest.raises(ValueError, match="single output"):
        get_data_adapter(np.zeros((4, 1)), [np.zeros(4), np.zeros(4)], class_weight={0: 1.0})


def test_sample_weight_length_error():
    with pytest.raises(ValueError, match=r"sample_weight must have one weight per sample \(10 samples\), but "
                                         r"sample_weight has 9 rows"):
        get_data_adapter(np.zeros((10, 2)), np.zeros(10), sample_weight=np.ones(9))


def test_cardinality_error_lists_sizes():
    with pytest.raises(ValueError, match=r"Data cardinality is ambiguous(.|\n)*'x' sizes: 10, 8(.|\n)*'y' sizes: 10"):
        get_data_adapter([np.zeros((10, 1)), np.zeros((8, 1))], np.zeros(10))


def test_non_numeric_arrays_are_refused():
    with pytest.raises(TypeError, match="x must be a numeric array, received dtype <U1"):
        get_data_adapter(np.array(["a", "b"]), np.zeros(2))
    with pytest.raises(TypeError, match="dtype object"):
        get_data_adapter(np.array([[1, 2], [3]], dtype=object), np.zeros(2))


def test_unknown_type_error_names_it_and_lists_what_is_accepted():
    with pytest.raises(TypeError, match=r"Unrecognized data type for x: builtins.set\. fit accepts numpy arrays"
                                        r".*generator.*PyDataset.*fastnet.data.Dataset.*tf.data.Dataset.*DataLoader"):
        get_data_adapter({1, 2, 3})
    with pytest.raises(TypeError, match="builtins.str"):
        get_data_adapter("data.csv")


def test_pandas_frames():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [4, 5, 6]})
    batches = _batches(get_data_adapter(frame, pd.Series([0, 1, 0]), batch_size=2))
    np.testing.assert_array_equal(batches[0][0], [[1, 4], [2, 5]])
    np.testing.assert_array_equal(batches[1][1], [0])


# ----------------------------------------------------------------------------- generators
def _gen(n, batch=2, with_sw=False):
    for i in range(n):
        x = np.full((batch, 3), i, dtype=np.float64)
        y = np.full((batch,), i)
        yield (x, y, np.ones(batch)) if with_sw else (x, y)


def test_generator_batches_and_forms():
    adapter = get_data_adapter(_gen(3))
    assert isinstance(adapter, GeneratorDataAdapter) and adapter.num_batches is None and adapter.batch_size is None
    batches = _batches(adapter)
    assert [b[1][0] for b in batches] == [0, 1, 2]
    assert batches[0][0].dtype == np.float64  # generator floats as given
    assert _batches(adapter) == []  # a generator is consumed once
    forms = iter([np.zeros((2, 1)), (np.zeros((2, 1)),), [np.zeros((2, 1)), np.ones(2)],
                  (np.zeros((2, 1)), np.ones(2), np.full(2, 3.0)), {"a": np.zeros((2, 1))}])
    got = _batches(get_data_adapter(forms))
    assert got[0][1] is None and got[1][1] is None and got[2][1] is not None and got[3][2][0] == 3.0
    assert isinstance(got[4][0], dict) and got[4][1] is None


def test_generator_with_y_is_refused():
    with pytest.raises(ValueError, match="When providing x as a generator, y should not be passed"):
        get_data_adapter(_gen(2), np.zeros(2))
    with pytest.raises(ValueError, match="sample_weight should not be passed"):
        get_data_adapter(_gen(2), sample_weight=np.zeros(2))


def test_generator_class_weight_per_batch():
    batches = _batches(get_data_adapter(_gen(3, with_sw=True), class_weight={1: 5.0}))
    np.testing.assert_allclose([b[2][0] for b in batches], [1.0, 5.0, 1.0])


def test_generator_runs_ahead_on_a_background_thread():
    threads = []

    def gen():
        for i in range(5):
            threads.append(threading.current_thread().name)
            yield np.full((1, 1), i), np.zeros(1)

    it = get_data_adapter(gen()).get_numpy_iterator()
    next(it)
    deadline = time.time() + 5
    while len(threads) < 5 and time.time() < deadline:
        time.sleep(0.01)
    assert len(threads) == 5  # loaded ahead while the consumer held one batch
    assert all(name != threading.main_thread().name for name in threads)


def test_generator_exception_keeps_its_traceback():
    def broken():
        yield np.zeros((1, 1)), np.zeros(1)
        raise KeyError("bad row 17")

    it = EpochIterator(get_data_adapter(broken()))
    steps = it.enumerate_epoch()
    next(steps)
    with pytest.raises(KeyError, match="bad row 17") as info:
        next(steps)
    frames = [f.name for f in traceback.extract_tb(info.value.__traceback__)]
    assert "broken" in frames


def test_iterators_are_accepted():
    data = [(np.zeros((2, 1)), np.zeros(2))] * 3
    assert len(_batches(get_data_adapter(iter(data)))) == 3
    assert len(_batches(get_data_adapter(map(lambda b: b, data)))) == 3


# ----------------------------------------------------------------------------- PyDataset
class Squares(PyDataset):
    def __init__(self, n=10, batch_size=3, **kwargs):
        super().__init__(**kwargs)
        self.x = np.arange(n, dtype=np.float32)[:, None]
        self.batch_size = batch_size
        self.events = []

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __getitem__(self, index):
        if index >= len(self):
            raise IndexError(index)
        xb = self.x[index * self.batch_size:(index + 1) * self.batch_size]
        return xb, xb[:, 0] ** 2

    def on_epoch_begin(self):
        self.events.append("begin")

    def on_epoch_end(self):
        self.events.append("end")


class Endless(PyDataset):
    @property
    def num_batches(self):
        return None

    def __getitem__(self, index):
        return np.full((2, 1), index, dtype=np.float32), np.zeros(2)


class Failing(Squares):
    def __getitem__(self, index):
        if index == 2:
            raise RuntimeError("cannot read batch 2")
        return super().__getitem__(index)


@pytest.mark.parametrize("kwargs", [{"workers": 0}, {}, {"workers": 3}, {"workers": 2, "use_multiprocessing": True}],
                         ids=["sync", "one-thread", "threads", "processes"])
def test_pydataset_batches_in_order(kwargs):
    ds = Squares(10, 3, **kwargs)
    adapter = get_data_adapter(ds)
    assert isinstance(adapter, PyDatasetAdapter) and adapter.num_batches == 4
    batches = _batches(adapter)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), np.arange(10.0) ** 2)


@pytest.mark.parametrize("kwargs", [{}, {"workers": 2}, {"workers": 2, "use_multiprocessing": True}],
                         ids=["one-thread", "threads", "processes"])
def test_pydataset_errors_reach_the_caller(kwargs):
    it = get_data_adapter(Failing(10, 3, **kwargs)).get_numpy_iterator()
    next(it)
    next(it)
    with pytest.raises(RuntimeError, match="cannot read batch 2"):
        next(it)


def test_pydataset_shuffle_and_hooks():
    ds = Squares(12, 2)
    set_random_seed(1)
    it = EpochIterator(get_data_adapter(ds, shuffle=True))
    orders = []
    for _ in range(2):
        orders.append([int(b[0][0, 0]) // 2 for _, b in it.enumerate_epoch()])
    assert sorted(orders[0]) == list(range(6)) and orders[0] != list(range(6)) and orders[0] != orders[1]
    assert ds.events == ["begin", "end", "begin", "end"]
    plain = EpochIterator(get_data_adapter(Squares(12, 2), shuffle=True, for_what="evaluate"))
    assert [int(b[0][0, 0]) // 2 for _, b in plain.enumerate_epoch()] == list(range(6))


def test_pydataset_without_super_init_warns_and_works():
    class NoInit(PyDataset):
        def __init__(self):
            pass

        def __len__(self):
            return 1

        def __getitem__(self, i):
            return np.zeros((1, 1)), np.zeros(1)

    with pytest.warns(UserWarning, match=r"should call super\(\).__init__"):
        adapter = get_data_adapter(NoInit())
    assert len(_batches(adapter)) == 1


def test_sequence_is_pydataset():
    assert Sequence is PyDataset


def test_pydataset_argument_checks():
    with pytest.raises(ValueError, match="workers must be a non-negative integer"):
        Squares(workers=-1)
    with pytest.raises(ValueError, match="max_queue_size must be a positive integer"):
        Squares(max_queue_size=0)
    with pytest.raises(ValueError, match="When providing x as a PyDataset, y should not be passed"):
        get_data_adapter(Squares(), np.zeros(3))


def test_endless_pydataset_with_steps():
    adapter = get_data_adapter(Endless())
    assert adapter.num_batches is None
    it = EpochIterator(adapter, steps_per_epoch=3)
    first = [int(b[0][0, 0]) for _, b in it.enumerate_epoch()]
    second = [int(b[0][0, 0]) for _, b in it.enumerate_epoch()]
    assert first == [0, 1, 2] and second == [3, 4, 5]  # the iterator carries over
    it.close()


# ----------------------------------------------------------------------------- datasets
def test_fastnet_dataset_adapter():
    ds = Dataset.from_tensor_slices((np.arange(10.0)[:, None], np.arange(10))).batch(4)
    adapter = get_data_adapter(ds)
    assert adapter.num_batches == 3
    batches = _batches(adapter)
    assert [len(b[1]) for b in batches] == [4, 4, 2] and batches[0][2] is None
    assert len(_batches(adapter)) == 3  # re-iterable
    assert get_data_adapter(ds.repeat()).num_batches is None
    with pytest.raises(ValueError, match="fastnet.data.Dataset, y should not be passed"):
        get_data_adapter(ds, np.zeros(10))


def test_fake_torch_loader_and_tf_dataset_by_class_name():
    # The adapters recognise these libraries' classes by name and module, without importing them.
    loader_cls = type("DataLoader", (), {"__module__": "torch.utils.data.dataloader",
                                         "__iter__": lambda self: iter([[np.ones((2, 1)), np.zeros(2)]] * 2),
                                         "__len__": lambda self: 2, "batch_size": 2, "num_workers": 0})
    adapter = get_data_adapter(loader_cls())
    assert adapter.num_batches == 2 and adapter.batch_size == 2
    batches = _batches(adapter)
    assert len(batches) == 2 and batches[0][1] is not None  # a list batch is (x, y), as Keras reads it
    ds_cls = type("DatasetV2", (), {"__module__": "tensorflow.python.data.ops.dataset_ops",
                                    "cardinality": lambda self: 3,
                                    "as_numpy_iterator": lambda self: iter([(np.ones((1, 1)), np.zeros(1))] * 3)})
    adapter = get_data_adapter(ds_cls())
    assert adapter.num_batches == 3 and len(_batches(adapter)) == 3


def test_tf_and_torch_are_not_imported():
    import sys

    import fastnet  # noqa: F401

    get_data_adapter(np.zeros((2, 1)))
    assert "torch" not in sys.modules and "tensorflow" not in sys.modules


# ----------------------------------------------------------------------------- epochs
def test_epoch_iterator_one_pass_per_epoch_for_arrays():
    it = EpochIterator(get_data_adapter(np.zeros((10, 1)), np.zeros(10), batch_size=4))
    assert it.num_batches == 3
    for _ in range(2):
        assert [s for s, _ in it.enumerate_epoch()] == [0, 1, 2]


def test_epoch_iterator_steps_carry_the_pass_over():
    x = np.arange(10, dtype=np.float32)[:, None]
    it = EpochIterator(get_data_adapter(x, np.arange(10), batch_size=2), steps_per_epoch=3)
    epochs = []
    for k in range(4):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            epochs.append([int(b[1][0]) for _, b in it.enumerate_epoch()])
        # Keras warns when a pass of known length ends before steps_per_epoch.
        assert any("ran out of data" in str(w.message) for w in caught) == (k % 2 == 1)
    # 5 batches per pass: epoch 2 finishes the pass (2 steps: Keras stops at the pass end), epoch 3 restarts.
    assert epochs == [[0, 2, 4], [6, 8], [0, 2, 4], [6, 8]]


def test_epoch_iterator_warns_when_steps_exceed_a_finite_input():
    it = EpochIterator(get_data_adapter(np.zeros((4, 1)), np.zeros(4), batch_size=2), steps_per_epoch=5)
    with pytest.warns(UserWarning, match="Your input ran out of data"):
        steps = [s for s, _ in it.enumerate_epoch()]
    assert steps == [0, 1]


def test_epoch_iterator_finite_generator():
    it = EpochIterator(get_data_adapter(_gen(5)))
    assert it.num_batches is None
    with pytest.warns(UserWarning, match="Your input ran out of data"):
        assert len(list(it.enumerate_epoch())) == 5
    assert it.num_batches == 5  # learnt from the first pass
    with pytest.warns(UserWarning, match="Your input ran out of data"):
        assert list(it.enumerate_epoch()) == []  # the generator is spent


def test_epoch_iterator_infinite_generator_with_steps():
    def forever():
        i = 0
        while True:
            yield np.full((1, 1), i), np.zeros(1)
            i += 1

    it = EpochIterator(get_data_adapter(forever()), steps_per_epoch=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        first = [int(b[0][0, 0]) for _, b in it.enumerate_epoch()]
        second = [int(b[0][0, 0]) for _, b in it.enumerate_epoch()]
    assert first == [0, 1, 2, 3] and second == [4, 5, 6, 7]
    it.reset()  # does not lose the generator's place
    assert [int(b[0][0, 0]) for _, b in it.enumerate_epoch()][0] >= 8
    it.close()


def test_generator_steps_shorter_than_data_keep_their_place():
    it = EpochIterator(get_data_adapter(_gen(6)), steps_per_epoch=2)
    got = [[int(b[1][0]) for _, b in it.enumerate_epoch()] for _ in range(3)]
    assert got == [[0, 1], [2, 3], [4, 5]]


# ----------------------------------------------------------------------------- validation split
def test_train_validation_split_takes_the_last_fraction():
    x = np.arange(10)
    y = np.arange(10) * 2
    (xt, yt, swt), (xv, yv, swv) = train_validation_split((x, y, None), validation_split=0.2)
    np.testing.assert_array_equal(xt, np.arange(8))
    np.testing.assert_array_equal(yv, [16, 18])
    assert swt is None and swv is None
    train, val = train_validation_split({"a": np.zeros((5, 2)), "b": np.ones(5)}, 0.4)
    assert train["a"].shape == (3, 2) and val["b"].shape == (2,)


def test_train_validation_split_errors():
    with pytest.raises(ValueError, match="contains 1 samples, which is not sufficient"):
        train_validation_split((np.zeros(1),), 0.5)
    with pytest.raises(ValueError, match="only supported for numpy arrays"):
        train_validation_split(_gen(2), 0.5)
    with pytest.raises(ValueError, match=r"validation_split must be in \(0, 1\)"):
        train_validation_split((np.zeros(3),), 1.5)


def test_peek_does_not_consume():
    adapter = get_data_adapter(_gen(3))
    first = adapter.peek()
    assert first[1][0] == 0 and adapter.peek() is first
    assert [b[1][0] for b in _batches(adapter)] == [0, 1, 2]
    assert get_data_adapter(iter([])).peek() is None
    arrays = get_data_adapter(np.arange(10.0)[:, None], np.arange(10), batch_size=4, shuffle=True)
    assert arrays.peek()[0].shape == (4, 1)
    assert get_data_adapter(Squares(10, 3)).peek()[0].shape == (3, 1)
    ds = Dataset.from_tensor_slices((np.arange(5.0), np.arange(5))).batch(2)
    assert get_data_adapter(ds).peek()[1].tolist() == [0, 1]


def test_worker_processes_shut_down():
    import multiprocessing

    adapter = get_data_adapter(Squares(30, 3, workers=2, use_multiprocessing=True))
    assert len(_batches(adapter)) == 10
    assert multiprocessing.active_children() == []
    it = adapter.get_numpy_iterator()
    next(it)
    assert multiprocessing.active_children()  # workers run during the pass
    it.close()  # abandoned mid-pass (e.g. training stopped early)
    assert multiprocessing.active_children() == []
