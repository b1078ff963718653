"""``Dataset``: a small pipeline of numpy elements with the tf.data methods Keras code calls.

A :class:`Dataset` is a re-iterable source of elements; an element is an array or a
structure (tuple, list, dict) of arrays. Each method returns a new dataset and nothing
runs until the dataset is iterated, which gives numpy arrays::

    ds = Dataset.from_tensor_slices((x, y)).shuffle(1024, seed=0).batch(32).prefetch(AUTOTUNE)
    for xb, yb in ds:
        ...

``prefetch`` (and ``fit``, which always loads ahead) runs the pipeline above it on a
background thread, so loading, decoding and ``map`` work overlap the training step;
``map(num_parallel_calls=...)`` spreads ``map`` over a thread pool. Shuffling and
batching of in-memory arrays (``from_tensor_slices(...).shuffle(n).batch(b)``) gather
whole batches with one ``np.take`` per array instead of going element by element.
"""
from __future__ import annotations

import itertools
import os
import pickle
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from fastnet.data import _tree
from fastnet.data._prefetch import prefetch_iter

__all__ = ["Dataset", "AUTOTUNE", "INFINITE_CARDINALITY", "UNKNOWN_CARDINALITY"]

AUTOTUNE = -1
"""Passed as ``buffer_size`` or ``num_parallel_calls``: let fastnet pick (as ``tf.data.AUTOTUNE``)."""
INFINITE_CARDINALITY = -1
UNKNOWN_CARDINALITY = -2

_AUTO_PREFETCH = 2
# AUTOTUNE: a few threads (decoding releases the GIL), each holding one batch in flight,
# but at most half the cores: the training step's threads use all of them, and a loader
# thread more than the loading needs only takes CPU time from the step (on 2 cores: one
# thread, which runs map in the prefetching thread itself, without a pool).
_AUTO_PARALLEL = max(1, min(4, (os.cpu_count() or 1) // 2))


def _rng_for(seed):
    if seed is None:
        from fastnet import random as _random

        seed = int(_random.generator().integers(2**63 - 1))
    return np.random.default_rng(seed)


def _call(fn, element):
    # tf.data passes a tuple element's parts as separate arguments; a dict or a leaf as one.
    return fn(*element) if isinstance(element, tuple) else fn(element)


def _stack(elements):
    first = elements[0]
    leaves = [_tree.flatten(e) for e in elements]
    stacked = [np.stack([np.asarray(row[i]) for row in leaves]) for i in range(len(leaves[0]))]
    return _tree.pack_as(first, stacked)


def _batch_len(element) -> int:
    leaves = _tree.flatten(element)
    if not leaves:
        raise ValueError("Dataset.unbatch: the elements hold no arrays")
    lengths = {np.shape(leaf)[0] if np.ndim(leaf) else None for leaf in leaves}
    if None in lengths:
        raise ValueError("Dataset.unbatch needs elements whose arrays all have a batch axis; "
                         "received a scalar")
    if len(lengths) != 1:
        raise ValueError(f"Dataset.unbatch: the arrays of an element have different batch sizes {sorted(lengths)}")
    return lengths.pop()


def _buffered_order(n, size, rng):
    """The order in which a shuffle buffer of ``size`` emits ``n`` elements (as tf.data:
    each output is drawn at random from the buffer, which the next input refills)."""
    order = np.empty(n, dtype=np.int64)
    size = min(size, n)
    buf = list(range(size))
    picks = rng.integers(size, size=n - size).tolist()
    for k, (j, i) in enumerate(zip(picks, range(size, n))):
        order[k] = buf[j]
        buf[j] = i
    # Drain: a random one of the remaining m elements, m = size, size - 1, ..., 1.
    tail = rng.integers(np.arange(size, 0, -1)).tolist() if size else []
    k = n - size
    for j in tail:
        buf[j], buf[-1] = buf[-1], buf[j]
        order[k] = buf.pop()
        k += 1
    return order


def _positive_int(value, what, allow_auto=False):
    if allow_auto and value == AUTOTUNE:
        return value
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        extra = " or AUTOTUNE" if allow_auto else ""
        raise ValueError(f"Dataset.{what} must be a positive integer{extra}, received {value!r}")
    return int(value)


class Dataset:
    """A re-iterable pipeline of numpy elements (see the module docstring).

    Build one with :meth:`from_tensor_slices`, :meth:`from_generator`, or a utility such
    as :func:`fastnet.utils.image_dataset_from_directory`; transform it with ``map``,
    ``batch``, ``shuffle`` and the other methods. ``class_names`` is set by the directory
    utilities and kept through every transformation.
    """

    def __init__(self, make_iter: Callable[[], Iterator], cardinality: int = UNKNOWN_CARDINALITY,
                 class_names: list[str] | None = None, *, _slices=None, _order=None,
                 _batched: bool = False, _file_paths=None) -> None:
        self._make_iter = make_iter
        self._cardinality = int(cardinality)
        self.class_names = class_names
        self.file_paths = _file_paths
        # In-memory arrays (structure of arrays with one length) and an order function,
        # kept so that batch() can gather whole batches at once.
        self._slices = _slices
        self._order = _order
        self._batched = _batched
        self._prefetched = False

    def _derive(self, make_iter, cardinality, **kw) -> Dataset:
        kw.setdefault("_batched", self._batched)
        return Dataset(make_iter, cardinality, self.class_names, _file_paths=self.file_paths, **kw)

    # ----------------------------------------------------------------- sources
    @staticmethod
    def from_tensor_slices(tensors: Any) -> Dataset:
        """A dataset whose elements are the slices of ``tensors`` along their first axis.

        Args:
            tensors: an array, or a tuple/list/dict structure of arrays with one length.

        Example:
            >>> ds = Dataset.from_tensor_slices((np.arange(5), np.arange(5) * 10))
            >>> [int(y) for _, y in ds.skip(2)]
            [20, 30, 40]
        """
        if isinstance(tensors, list) and not any(isinstance(t, (np.ndarray, tuple, list, dict)) for t in tensors):
            tensors = np.asarray(tensors)
        arrays = _tree.map_structure(_tree.to_numpy, tensors)
        leaves = _tree.flatten(arrays)
        if not leaves:
            raise ValueError("Dataset.from_tensor_slices needs at least one array")
        if any(leaf.ndim == 0 for leaf in leaves):
            raise ValueError("Dataset.from_tensor_slices needs arrays with a first axis to slice; received a scalar")
        lengths = sorted({len(leaf) for leaf in leaves})
        if len(lengths) != 1:
            raise ValueError(f"Dataset.from_tensor_slices: all arrays must have the same first dimension, "
                             f"received lengths {lengths}")
        n = lengths[0]

        def make_iter():
            for i in range(n):
                yield _tree.map_structure(lambda a, i=i: a[i], arrays)

        return Dataset(make_iter, n, _slices=arrays, _order=lambda: None)

    @staticmethod
    def from_generator(generator: Callable[[], Iterable], cardinality: int = UNKNOWN_CARDINALITY) -> Dataset:
        """A dataset that calls ``generator()`` at each iteration and yields what it yields.

        Args:
            generator: a callable returning an iterable (e.g. a generator function).
            cardinality: the number of elements, when known.
        """
        if not callable(generator):
            raise TypeError(f"Dataset.from_generator takes a callable that returns an iterable, "
                            f"received {type(generator).__name__}")

        def make_iter():
            for element in generator():
                yield _tree.map_structure(_tree.to_numpy, element)

        return Dataset(make_iter, cardinality)

    @staticmethod
    def range(*args: int) -> Dataset:
        """Elements ``np.int64(i)`` for ``i`` in ``range(*args)``."""
        r = range(*args)
        return Dataset.from_tensor_slices(np.arange(r.start, r.stop, r.step, dtype=np.int64))

    @staticmethod
    def zip(datasets: tuple[Dataset, ...]) -> Dataset:
        """Elements are tuples of the elements of ``datasets``, up to the shortest."""
        datasets = tuple(datasets)
        cards = [d.cardinality() for d in datasets]
        if any(c == UNKNOWN_CARDINALITY for c in cards):
            card = UNKNOWN_CARDINALITY
        else:
            finite = [c for c in cards if c >= 0]
            card = min(finite) if finite else INFINITE_CARDINALITY
        return Dataset(lambda: zip(*datasets), card)

    # ----------------------------------------------------------------- iteration
    def __iter__(self) -> Iterator:
        return iter(self._make_iter())

    def as_numpy_iterator(self) -> Iterator:
        """An iterator over the elements (they already are numpy arrays)."""
        return iter(self)

    def cardinality(self) -> int:
        """Number of elements; ``INFINITE_CARDINALITY`` (-1) or ``UNKNOWN_CARDINALITY`` (-2)."""
        return self._cardinality

    def __len__(self) -> int:
        if self._cardinality == INFINITE_CARDINALITY:
            raise TypeError("The dataset is infinite.")
        if self._cardinality == UNKNOWN_CARDINALITY:
            raise TypeError("The dataset length is unknown.")
        return self._cardinality

    def __repr__(self) -> str:
        card = {INFINITE_CARDINALITY: "infinite", UNKNOWN_CARDINALITY: "unknown"}.get(self._cardinality,
                                                                                      self._cardinality)
        return f"<fastnet.data.Dataset cardinality={card}>"

    # ----------------------------------------------------------------- transformations
    def map(self, map_func: Callable, num_parallel_calls: int | None = None, deterministic: bool | None = None,
            name: str | None = None) -> Dataset:
        """Applies ``map_func`` to every element (a tuple element is passed as arguments).

        Args:
            map_func: the function.
            num_parallel_calls: None runs it in the iterating thread; an integer or
                ``AUTOTUNE`` runs that many calls at once on a thread pool (output order kept).
            deterministic: accepted for compatibility; the order is always kept.
        """
        if not callable(map_func):
            raise TypeError(f"Dataset.map takes a callable, received {type(map_func).__name__}")
        parent = self
        workers = None
        if num_parallel_calls is not None:
            n = _positive_int(num_parallel_calls, "map(num_parallel_calls)", allow_auto=True)
            workers = _AUTO_PARALLEL if n == AUTOTUNE else n

        def convert(out):
            return _tree.map_structure(_tree.to_numpy, out)

        if not workers or workers == 1:
            def make_iter():
                for element in parent:
                    yield convert(_call(map_func, element))
        else:
            def make_iter():
                source = iter(parent)
                with ThreadPoolExecutor(workers, thread_name_prefix="fastnet-map") as pool:
                    pending = deque()
                    try:
                        for element in itertools.islice(source, workers + 1):
                            pending.append(pool.submit(_call, map_func, element))
                        while pending:
                            out = pending.popleft().result()
                            for element in itertools.islice(source, 1):
                                pending.append(pool.submit(_call, map_func, element))
                            yield convert(out)
                    finally:
                        for f in pending:
                            f.cancel()

        return self._derive(make_iter, self._cardinality)

    def filter(self, predicate: Callable) -> Dataset:
        """Keeps the elements for which ``predicate`` is true."""
        parent = self
        return self._derive(lambda: (e for e in parent if bool(_call(predicate, e))), UNKNOWN_CARDINALITY)

    def batch(self, batch_size: int, drop_remainder: bool = False, num_parallel_calls: int | None = None,
              deterministic: bool | None = None, name: str | None = None) -> Dataset:
        """Stacks consecutive elements into batches of ``batch_size`` (the last one may be
        smaller unless ``drop_remainder``)."""
        bs = _positive_int(batch_size, "batch(batch_size)")
        card = self._cardinality
        if card >= 0:
            card = card // bs if drop_remainder else -(-card // bs)
        if self._slices is not None:
            arrays, order_fn = self._slices, self._order
            n = self._cardinality
            leaves = _tree.flatten(arrays)

            def make_iter():
                order = order_fn()
                stop = n - n % bs if drop_remainder else n
                for lo in range(0, stop, bs):
                    hi = min(lo + bs, n)
                    if order is None:
                        out = [leaf[lo:hi] for leaf in leaves]
                    else:
                        # mode="clip": the indices are a permutation, always in range;
                        # numpy then gathers without an intermediate copy.
                        idx = order[lo:hi]
                        out = [np.take(leaf, idx, axis=0, mode="clip") for leaf in leaves]
                    yield _tree.pack_as(arrays, out)

            return self._derive(make_iter, card, _batched=True)
        parent = self

        def make_iter():
            it = iter(parent)
            while True:
                chunk = list(itertools.islice(it, bs))
                if not chunk or (drop_remainder and len(chunk) < bs):
                    return
                yield _stack(chunk)

        return self._derive(make_iter, card, _batched=True)

    def unbatch(self, name: str | None = None) -> Dataset:
        """Splits each batch into its elements (the inverse of ``batch``)."""
        parent = self

        def make_iter():
            for element in parent:
                for i in range(_batch_len(element)):
                    yield _tree.map_structure(lambda a, i=i: a[i], element)

        return self._derive(make_iter, UNKNOWN_CARDINALITY, _batched=False)

    def shuffle(self, buffer_size: int, seed: int | None = None, reshuffle_each_iteration: bool = True,
                name: str | None = None) -> Dataset:
        """Shuffles with a buffer of ``buffer_size`` elements (as tf.data: each output is
        drawn at random from the buffer, which the next input refills). A buffer at least as
        large as the dataset gives a uniform permutation.

        Args:
            buffer_size: number of elements in the buffer.
            seed: seed of the shuffling; None draws one from :func:`fastnet.utils.set_random_seed`'s
                generator.
            reshuffle_each_iteration: a new order on each pass (True) or the same order.
        """
        size = _positive_int(buffer_size, "shuffle(buffer_size)", allow_auto=True)
        master = _rng_for(seed)
        fixed_seed = int(master.integers(2**63 - 1))
        lock = threading.Lock()

        def next_rng():
            if not reshuffle_each_iteration:
                return np.random.default_rng(fixed_seed)
            with lock:
                return np.random.default_rng(int(master.integers(2**63 - 1)))

        n = self._cardinality
        if self._slices is not None and (size == AUTOTUNE or size >= n):
            return self._derive(lambda: (_tree.map_structure(lambda a, i=i: a[i], self._slices)
                                         for i in next_rng().permutation(n)),
                                n, _slices=self._slices, _order=lambda: next_rng().permutation(n))
        if size == AUTOTUNE:
            size = 1024
        if self._slices is not None:
            # In-memory arrays: the same buffered shuffle, computed on indices, so that
            # batch() still gathers whole batches (image_dataset_from_directory shuffles
            # its file indices through a buffer of 8 batches this way).
            slices = self._slices
            return self._derive(lambda: (_tree.map_structure(lambda a, i=i: a[i], slices)
                                         for i in _buffered_order(n, size, next_rng())),
                                n, _slices=slices, _order=lambda: _buffered_order(n, size, next_rng()))
        parent = self

        def make_iter():
            rng = next_rng()
            buf = []
            for element in parent:
                if len(buf) < size:
                    buf.append(element)
                    continue
                j = int(rng.integers(size))
                out, buf[j] = buf[j], element
                yield out
            while buf:
                j = int(rng.integers(len(buf)))
                buf[j], buf[-1] = buf[-1], buf[j]
                yield buf.pop()

        return self._derive(make_iter, n)

    def take(self, count: int, name: str | None = None) -> Dataset:
        """The first ``count`` elements (all of them when ``count`` is -1)."""
        count = int(count)
        if count < 0:
            return self
        parent = self
        card = self._cardinality
        card = count if card == INFINITE_CARDINALITY else (min(card, count) if card >= 0 else UNKNOWN_CARDINALITY)
        return self._derive(lambda: itertools.islice(iter(parent), count), card)

    def skip(self, count: int, name: str | None = None) -> Dataset:
        """Everything after the first ``count`` elements (``count=-1`` skips all)."""
        count = int(count)
        parent = self
        card = self._cardinality
        if count < 0:
            return self._derive(lambda: iter(()), 0)
        if card >= 0:
            card = max(0, card - count)
        return self._derive(lambda: itertools.islice(iter(parent), count, None), card)

    def repeat(self, count: int | None = None, name: str | None = None) -> Dataset:
        """Repeats the dataset ``count`` times (forever when None or -1)."""
        forever = count is None or int(count) < 0
        parent = self
        card = self._cardinality
        if forever:
            card = 0 if card == 0 else INFINITE_CARDINALITY
        elif card >= 0:
            card *= int(count)

        def make_iter():
            passes = itertools.count() if forever else range(int(count))
            for _ in passes:
                yielded = False
                for element in parent:
                    yielded = True
                    yield element
                if not yielded:  # an empty dataset repeated forever is still empty
                    return

        return self._derive(make_iter, card)

    def cache(self, filename: str = "", name: str | None = None) -> Dataset:
        """Keeps the elements of the first complete pass (in memory, or in ``filename``)
        and serves later passes from there."""
        parent = self
        store: dict[str, Any] = {}
        lock = threading.Lock()

        def make_iter():
            with lock:
                done = store.get("elements")
            if done is None and filename and os.path.exists(filename + ".fastnet-cache"):
                with open(filename + ".fastnet-cache", "rb") as f:
                    done = pickle.load(f)
                store["elements"] = done
            if done is not None:
                yield from done
                return
            elements = []
            for element in parent:
                elements.append(element)
                yield element
            with lock:
                store["elements"] = elements
            if filename:
                tmp = f"{filename}.fastnet-cache.{os.getpid()}.tmp"
                with open(tmp, "wb") as f:
                    pickle.dump(elements, f, protocol=pickle.HIGHEST_PROTOCOL)
                os.replace(tmp, filename + ".fastnet-cache")

        return self._derive(make_iter, self._cardinality)

    def prefetch(self, buffer_size: int = AUTOTUNE, name: str | None = None) -> Dataset:
        """Runs the pipeline so far on a background thread, ``buffer_size`` elements ahead."""
        size = _positive_int(buffer_size, "prefetch(buffer_size)", allow_auto=True)
        size = _AUTO_PREFETCH if size == AUTOTUNE else size
        parent = self
        ds = self._derive(lambda: prefetch_iter(parent, size), self._cardinality)
        ds._prefetched = True
        return ds

    def rebatch(self, batch_size: int, drop_remainder: bool = False) -> Dataset:
        """``unbatch().batch(batch_size)``."""
        return self.unbatch().batch(batch_size, drop_remainder)

    def concatenate(self, dataset: Dataset) -> Dataset:
        """The elements of this dataset, then those of ``dataset``."""
        a, b = self._cardinality, dataset.cardinality()
        card = INFINITE_CARDINALITY if INFINITE_CARDINALITY in (a, b) else (
            a + b if a >= 0 and b >= 0 else UNKNOWN_CARDINALITY)
        return self._derive(lambda: itertools.chain(self, dataset), card)

    def options(self):
        """Accepted for tf.data compatibility; fastnet has no options to set."""
        return None

    def with_options(self, options) -> Dataset:
        """Accepted for tf.data compatibility; returns the dataset unchanged."""
        return self
