"""Data adapters: one interface over every kind of input ``fit``/``evaluate``/``predict`` take.

The trainer calls::

    from fastnet.data.adapters import get_data_adapter, EpochIterator, train_validation_split

    adapter = get_data_adapter(x, y=None, sample_weight=None, batch_size=None, steps_per_epoch=None,
                               shuffle=False, class_weight=None, for_what="fit")
    adapter.num_batches          # batches in one pass: an int, or None when unknown
    adapter.batch_size           # an int, or None when the input makes its own batches
    adapter.on_epoch_begin()     # PyDataset hooks (arrays: nothing to do)
    adapter.on_epoch_end()
    adapter.get_numpy_iterator() # one pass: (x, y, sample_weight) tuples of numpy data
    adapter.peek()               # the first batch, not consumed (to build the model first)

    it = EpochIterator(adapter, steps_per_epoch=None)
    for step, (xb, yb, swb) in it.enumerate_epoch():
        ...

    (x, y, sw), (x_val, y_val, sw_val) = train_validation_split((x, y, sw), validation_split=0.2)

``x`` may be:

* numpy arrays, lists/tuples/dicts of them (nested structures), pandas DataFrames and
  Series, or a list of numbers (made one array). ``y`` and ``sample_weight`` alongside.
  Batches are gathered from the arrays (``shuffle=True`` draws a permutation from
  :func:`fastnet.utils.set_random_seed`'s generator at the start of each pass;
  ``shuffle="batch"`` shuffles batch-sized chunks). The numeric arrays of ``x`` and the
  float/bool arrays of ``y`` and ``sample_weight`` are converted to ``floatx`` once, up
  front; integer targets stay integers (the converted arrays are the adapter's ``x``, ``y``
  and ``sample_weight``; ``num_samples`` counts them). A shuffled pass gathers each batch with
  ``np.take(..., out=buffer)`` into buffers reused from one batch to the next: a batch is
  only valid until the next one is asked for (the trainer consumes it first).
* a Python generator or iterator yielding ``x``, ``(x,)``, ``(x, y)`` or
  ``(x, y, sample_weight)`` (a list is read as a tuple, as Keras does; a dict is ``x``).
  It is read ahead on a background thread (``max_queue_size`` batches; default 10); an
  exception raised inside it is raised again in the caller with its traceback.
  ``num_batches`` is None: the pass ends when the generator does.
* a :class:`fastnet.utils.PyDataset` (``Sequence``): ``workers`` threads, or processes with
  ``use_multiprocessing=True``, load up to ``max_queue_size`` batches ahead; ``workers=0``
  loads in the caller's thread. ``shuffle=True`` shuffles the order of the batch indices.
* a :class:`fastnet.data.Dataset`, iterated on a background thread.
* a ``tf.data.Dataset`` or a torch ``DataLoader``, when those libraries are installed
  (they are never imported by fastnet; the type is recognised by its class), iterated as
  numpy.

With a generator or a dataset, ``y`` and ``sample_weight`` must be part of the batches:
passing them separately is a ValueError. ``class_weight`` (``{class_index: weight}``) is
turned into per-sample weights for single-output targets, sparse (integer labels) or
one-hot, and multiplied into any sample weights; classes absent from it weigh 1.

In the trainer (as Keras 3's trainer does it):

* ``validation_split`` (array inputs only): ``train_validation_split((x, y, sw), split)``;
  ``validation_data``: ``unpack_x_y_sample_weight(validation_data)`` (a tuple or list is
  ``(x, y[, sw])``, anything else is ``x``), then an adapter with ``for_what="evaluate"``
  and an ``EpochIterator(val_adapter, validation_steps)`` kept for the whole ``fit``, so an
  endless validation generator carries on from one validation run to the next.
* Build the model from ``adapter.peek()`` before ``on_train_begin``.
* Array adapters give ``floatx`` inputs; the others give their arrays as the user made
  them (cast inputs per batch where the layers need floats).
* The progress bar's total is ``EpochIterator.num_batches`` (None: unknown until the
  first pass ends).
* ``EpochIterator.close()`` at the end stops background loading.

``EpochIterator`` follows Keras 3: without ``steps_per_epoch`` an epoch is one pass. With
it, an epoch is that many steps and the underlying iterator carries over from one epoch
to the next, restarted once a pass of known length is used up; a finite input that runs
out first ends the epoch early with the warning "Your input ran out of data".
"""
from __future__ import annotations

import itertools
import math
import multiprocessing
import types
import warnings
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

import numpy as np

from fastnet import config
from fastnet.data import _tree
from fastnet.data._prefetch import Prefetcher
from fastnet.data.dataset import Dataset

__all__ = ["get_data_adapter", "EpochIterator", "train_validation_split", "DataAdapter", "ArrayDataAdapter",
           "GeneratorDataAdapter", "PyDatasetAdapter", "DatasetAdapter", "unpack_x_y_sample_weight"]

_ACCEPTED = ("numpy arrays (or lists, tuples and dicts of them), pandas DataFrames/Series, a Python "
             "generator or iterator, a fastnet.utils.PyDataset, a fastnet.data.Dataset, a tf.data.Dataset "
             "or a torch DataLoader")
_DEFAULT_QUEUE = 10


# ----------------------------------------------------------------------------- helpers
def unpack_x_y_sample_weight(data) -> tuple[Any, Any, Any]:
    """Splits one batch into ``(x, y, sample_weight)`` (absent parts are None).

    A tuple (or a list, as Keras reads it) of one, two or three items is
    ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)``; anything else is ``x`` alone.
    """
    if isinstance(data, list):
        data = tuple(data)
    if not isinstance(data, tuple) or hasattr(data, "_fields"):
        return data, None, None
    if len(data) == 1:
        return data[0], None, None
    if len(data) == 2:
        return data[0], data[1], None
    if len(data) == 3:
        return data[0], data[1], data[2]
    raise ValueError("A batch must be x, (x,), (x, y) or (x, y, sample_weight); received a tuple of "
                     f"{len(data)} items")


def _is_pandas(obj) -> bool:
    return type(obj).__module__.split(".")[0] == "pandas" and hasattr(obj, "to_numpy")


def _mro_has(obj, class_name: str, module_part: str) -> bool:
    return any(c.__name__ == class_name and module_part in (c.__module__ or "") for c in type(obj).__mro__)


def is_tf_dataset(x) -> bool:
    return any(c.__name__ in ("DatasetV2", "DistributedDataset", "DistributedDatasetsFromFunction")
               and "tensorflow.python." in (c.__module__ or "") for c in type(x).__mro__)


def is_torch_dataloader(x) -> bool:
    return _mro_has(x, "DataLoader", "torch.utils.data")


def _is_array_leaf(obj) -> bool:
    return isinstance(obj, np.ndarray) or _is_pandas(obj) or (
        hasattr(obj, "__array__") and not isinstance(obj, (str, bytes, dict, list, tuple)))


def _is_array_structure(obj) -> bool:
    """True for the inputs the array adapter takes."""
    if obj is None:
        return True
    if _is_array_leaf(obj) or isinstance(obj, (int, float, np.generic)):
        return True
    if isinstance(obj, dict):
        return all(_is_array_structure(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return all(_is_array_structure(v) for v in obj)
    return False


def _as_structure(data, what):
    """Numpy leaves in the user's structure; a list/tuple of plain numbers is one array."""
    if data is None:
        return None
    if _is_pandas(data):
        return data.to_numpy()
    if isinstance(data, dict):
        return {k: _as_structure(v, f"{what}[{k!r}]") for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        if data and any(_is_array_leaf(v) or isinstance(v, dict) for v in data):
            return type(data)(_as_structure(v, f"{what}[{i}]") for i, v in enumerate(data))
        arr = np.asarray(data)
        if arr.dtype == object:
            return type(data)(_as_structure(v, f"{what}[{i}]") for i, v in enumerate(data))
        return arr
    return np.asarray(data)


def _floatx_leaf(a, what, ints_too):
    dt = np.dtype(config.floatx())
    if a.dtype == object or a.dtype.kind not in "fiub":
        raise TypeError(f"{what} must be a numeric array, received dtype {a.dtype}"
                        + (" (an array of Python objects: ragged rows or mixed types?)" if a.dtype == object
                           else ""))
    if a.dtype.kind == "f" or a.dtype.kind == "b" or ints_too:
        if a.dtype != dt:
            a = a.astype(dt)
    return np.ascontiguousarray(a)


def _leaf_names(structure, what):
    if isinstance(structure, dict):
        return [n for k in sorted(structure) for n in _leaf_names(structure[k], f"{what}[{k!r}]")]
    if isinstance(structure, (list, tuple)):
        return [n for i, v in enumerate(structure) for n in _leaf_names(v, f"{what}[{i}]")]
    return [what]


def class_weight_to_sample_weights(y, class_weight) -> np.ndarray:
    """Per-sample weights ``class_weight[label]`` for one batch or one array of targets.

    Labels are the argmax of one-hot rows, or the (rounded) integer values of sparse labels
    (a trailing axis of size 1 is dropped); classes missing from ``class_weight`` weigh 1.
    """
    y = np.asarray(y)
    if y.ndim > 1 and y.shape[-1] != 1:
        labels = np.argmax(y, axis=-1)
    else:
        labels = y.reshape(len(y), -1)[:, 0] if y.ndim > 1 else y
        labels = np.rint(labels).astype(np.int64) if labels.dtype.kind == "f" else labels.astype(np.int64)
    labels = labels.reshape(len(y), -1)[:, 0] if labels.ndim > 1 else labels
    keys = np.fromiter((int(k) for k in class_weight), dtype=np.int64, count=len(class_weight))
    values = np.fromiter((float(v) for v in class_weight.values()), dtype=np.float64, count=len(class_weight))
    size = max(int(keys.max()) + 1 if keys.size else 0, int(labels.max()) + 1 if labels.size else 0)
    table = np.ones(size, dtype=np.dtype(config.floatx()))
    table[keys] = values
    if labels.size and labels.min() < 0:
        raise ValueError(f"class_weight needs non-negative class labels in y, found {int(labels.min())}")
    return table[labels]


def _check_class_weight(class_weight, y=None) -> dict | None:
    if class_weight is None:
        return None
    if not isinstance(class_weight, dict):
        raise TypeError(f"class_weight must be a dict {{class_index: weight}}, received "
                        f"{type(class_weight).__name__}")
    if not class_weight:
        return None
    for k, v in class_weight.items():
        if isinstance(k, bool) or not isinstance(k, (int, np.integer, float, np.floating)) or (
                float(k) != math.floor(float(k))):
            raise ValueError(f"class_weight keys must be integer class indices, received key {k!r}")
        if int(k) < 0:
            raise ValueError(f"class_weight keys must be non-negative class indices, received key {k!r}")
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(v):
            raise ValueError(f"class_weight values must be finite numbers, received {v!r} for class {k!r}")
    if y is not None:
        leaves = _tree.flatten(y)
        if len(leaves) != 1:
            raise ValueError(f"class_weight is only supported for models with a single output; y holds "
                             f"{len(leaves)} arrays")
        yl = np.asarray(leaves[0])
        if yl.ndim > 1 and yl.shape[-1] > 1:
            n_cls = yl.shape[-1]
            bad = sorted(int(k) for k in class_weight if int(k) >= n_cls)
            if bad:
                raise ValueError(f"class_weight has keys {bad} out of range for one-hot targets with {n_cls} "
                                 f"classes (valid keys: 0..{n_cls - 1})")
    return {int(k): float(v) for k, v in class_weight.items()}


def _apply_class_weight(y, sw, class_weight):
    if class_weight is None:
        return sw
    if y is None:
        raise ValueError("class_weight needs targets y")
    leaves = _tree.flatten(y)
    if len(leaves) != 1:
        raise ValueError(f"class_weight is only supported for models with a single output; y holds "
                         f"{len(leaves)} arrays")
    cw = class_weight_to_sample_weights(leaves[0], class_weight)
    if sw is None:
        return cw
    sw = np.asarray(sw)
    return (sw * cw.reshape((-1,) + (1,) * (sw.ndim - 1))).astype(cw.dtype, copy=False)


def _standardize_batch(batch, class_weight=None):
    x, y, sw = unpack_x_y_sample_weight(batch)
    x = _tree.map_structure(_tree.to_numpy, x)
    y = None if y is None else _tree.map_structure(_tree.to_numpy, y)
    sw = None if sw is None else _tree.map_structure(_tree.to_numpy, sw)
    if class_weight is not None:
        sw = _apply_class_weight(y, sw, class_weight)
    return x, y, sw


def _unsupported(arg_name, description, input_type):
    raise ValueError(f"When providing x as a {input_type}, {arg_name} should not be passed. Instead, "
                     f"{description} should be included as part of the {input_type}.")


def _check_positive(value, what):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{what} must be a positive integer, received {what}={value!r}")
    return int(value)


# ----------------------------------------------------------------------------- adapters
class DataAdapter:
    """Base of the adapters: one pass of batches as numpy ``(x, y, sample_weight)``."""

    num_batches: int | None = None
    batch_size: int | None = None

    def get_numpy_iterator(self):
        raise NotImplementedError

    def peek(self):
        """The first batch ``(x, y, sample_weight)`` without consuming it (None when the input
        is empty): the trainer builds the model from it before the first epoch."""
        raise NotImplementedError

    def on_epoch_begin(self) -> None:
        """Called by the epoch iterator at the start of each epoch."""

    def on_epoch_end(self) -> None:
        """Called by the epoch iterator at the end of each epoch."""

    def close(self) -> None:
        """Stops any background loading."""

    @property
    def has_partial_batch(self) -> bool | None:
        return None

    @property
    def partial_batch_size(self) -> int | None:
        return None


class ArrayDataAdapter(DataAdapter):
    """In-memory arrays (see the module docstring)."""

    def __init__(self, x, y=None, sample_weight=None, batch_size=None, steps=None, shuffle=False,
                 class_weight=None, for_what="fit") -> None:
        x = _as_structure(x, "x")
        y = _as_structure(y, "y")
        sample_weight = _as_structure(sample_weight, "sample_weight")
        if x is None:
            raise ValueError(f"{for_what} needs input data x")
        self.x = _tree.map_structure(lambda a: _floatx_leaf(a, "x", True), x)
        self.y = None if y is None else _tree.map_structure(lambda a: _floatx_leaf(a, "y", False), y)
        sw = None if sample_weight is None else _tree.map_structure(
            lambda a: _floatx_leaf(np.asarray(a), "sample_weight", True), sample_weight)
        x_leaves = _tree.flatten(self.x)
        if not x_leaves:
            raise ValueError(f"{for_what} received an empty structure as x")
        if any(a.ndim == 0 for a in x_leaves):
            raise ValueError("x must have a batch axis, received a scalar")
        sizes = {}
        for name, struct in (("x", self.x), ("y", self.y), ("sample_weight", sw)):
            if struct is None:
                continue
            for leaf, leaf_name in zip(_tree.flatten(struct), _leaf_names(struct, name)):
                if leaf.ndim == 0:
                    raise ValueError(f"{leaf_name} must have a batch axis, received a scalar")
                sizes.setdefault(name, []).append((leaf_name, len(leaf)))
        distinct = {n for group in sizes.values() for _, n in group}
        if len(distinct) > 1:
            if "sample_weight" in sizes and len({n for g in ("x", "y") for _, n in sizes.get(g, [])}) == 1:
                n = sizes["x"][0][1]
                bad = [f"{nm} has {k} rows" for nm, k in sizes["sample_weight"] if k != n]
                raise ValueError(f"sample_weight must have one weight per sample ({n} samples), but "
                                 + ", ".join(bad))
            lines = "\n".join(f"'{nm}' sizes: " + ", ".join(str(k) for _, k in group) for nm, group in sizes.items())
            raise ValueError("Data cardinality is ambiguous: x, y and sample_weight must all have the same "
                             f"number of samples.\n{lines}")
        self.num_samples = n = len(x_leaves[0])
        cw = _check_class_weight(class_weight, self.y)
        if cw is not None:
            sw = _apply_class_weight(self.y, sw, cw)
        self.sample_weight = sw
        steps = _check_positive(steps, "steps_per_epoch")
        batch_size = _check_positive(batch_size, "batch_size")
        if batch_size is None:
            batch_size = max(1, math.ceil(n / steps)) if steps else 32
        self.batch_size = batch_size
        self.num_batches = math.ceil(n / batch_size) if n else 0
        if shuffle not in (True, False, "batch"):
            raise ValueError(f"shuffle must be True, False or 'batch', received shuffle={shuffle!r}")
        self.shuffle = shuffle if for_what == "fit" else False
        self._leaves = [a for a in (_tree.flatten(self.x) + ([] if self.y is None else _tree.flatten(self.y))
                                    + ([] if sw is None else _tree.flatten(sw)))]
        self._buffers: dict[int, list[np.ndarray]] = {}

    @property
    def has_partial_batch(self) -> bool:
        return self.num_samples % self.batch_size != 0

    @property
    def partial_batch_size(self) -> int | None:
        return (self.num_samples % self.batch_size) or None

    def peek(self):
        if not self.num_samples:
            return None
        return self._pack([a[:self.batch_size] for a in self._leaves])

    def _pack(self, leaves):
        nx = len(_tree.flatten(self.x))
        ny = 0 if self.y is None else len(_tree.flatten(self.y))
        xb = _tree.pack_as(self.x, leaves[:nx])
        yb = None if self.y is None else _tree.pack_as(self.y, leaves[nx:nx + ny])
        swb = None if self.sample_weight is None else _tree.pack_as(self.sample_weight, leaves[nx + ny:])
        return xb, yb, swb

    def _order(self):
        from fastnet import random as _random

        n, bs = self.num_samples, self.batch_size
        if self.shuffle is True:
            return _random.generator().permutation(n)
        # "batch": shuffle the order of batch-sized chunks, and the samples within each.
        rng = _random.generator()
        full = (n // bs) * bs
        chunks = rng.permutation(np.arange(full).reshape(-1, bs), axis=0)
        chunks = rng.permuted(chunks, axis=1)
        return np.concatenate([chunks.reshape(-1), full + rng.permutation(n - full)])

    def get_numpy_iterator(self):
        n, bs = self.num_samples, self.batch_size
        leaves = self._leaves
        if not self.shuffle:
            for lo in range(0, n, bs):
                yield self._pack([a[lo:lo + bs] for a in leaves])
            return
        order = self._order()
        for lo in range(0, n, bs):
            idx = order[lo:lo + bs]
            k = len(idx)
            bufs = self._buffers.get(k)
            if bufs is None:
                bufs = self._buffers[k] = [np.empty((k,) + a.shape[1:], dtype=a.dtype) for a in leaves]
            # idx is part of a permutation, always in range: with mode="clip" numpy gathers
            # straight into the buffer (mode="raise" goes through a temporary, 3x slower).
            for a, buf in zip(leaves, bufs):
                np.take(a, idx, axis=0, out=buf, mode="clip")
            yield self._pack(bufs)


class GeneratorDataAdapter(DataAdapter):
    """A Python generator or iterator, read ahead on a background thread."""

    def __init__(self, generator, class_weight=None, max_queue_size=_DEFAULT_QUEUE) -> None:
        self.generator = generator
        self.class_weight = _check_class_weight(class_weight)
        self.max_queue_size = max_queue_size
        self._reader: Prefetcher | None = None
        self._pushback: list = []  # a peeked batch, served first

    def _batches(self):
        for batch in self.generator:
            yield _standardize_batch(batch, self.class_weight)

    def _ensure_reader(self):
        # One reader for the generator's life: later passes continue where the last stopped.
        if self._reader is None:
            self._reader = Prefetcher(self._batches(), self.max_queue_size, name="fastnet-generator")
        return self._reader

    def peek(self):
        if not self._pushback:
            try:
                self._pushback.append(next(self._ensure_reader()))
            except StopIteration:
                return None
        return self._pushback[0]

    def get_numpy_iterator(self):
        reader = self._ensure_reader()
        while self._pushback:
            yield self._pushback.pop(0)
        while True:  # not `yield from`: closing this pass must not close the shared reader
            try:
                batch = next(reader)
            except StopIteration:
                return
            yield batch

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()


_WORKER_DATASET = None


def _init_worker(dataset):
    global _WORKER_DATASET
    _WORKER_DATASET = dataset


def _worker_getitem(index):
    return _WORKER_DATASET[index]


class PyDatasetAdapter(DataAdapter):
    """A :class:`fastnet.utils.PyDataset`, loaded ahead by its workers."""

    def __init__(self, dataset, class_weight=None, shuffle=False) -> None:
        self.dataset = dataset
        self.class_weight = _check_class_weight(class_weight)
        n = dataset.num_batches
        if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0):
            raise ValueError(f"{type(dataset).__name__}.num_batches (or __len__) must be a non-negative integer "
                             f"or None, received {n!r}")
        self.num_batches = None if n is None else int(n)
        self.shuffle = bool(shuffle) and self.num_batches is not None
        self.batch_size = None
        self.workers = dataset.workers
        self.use_multiprocessing = dataset.use_multiprocessing
        self.max_queue_size = dataset.max_queue_size
        self._iterators: list = []

    def peek(self):
        if self.num_batches == 0:
            return None
        return _standardize_batch(self.dataset[0], self.class_weight)

    def on_epoch_begin(self) -> None:
        self.dataset.on_epoch_begin()

    def on_epoch_end(self) -> None:
        self.dataset.on_epoch_end()

    def _indices(self):
        if self.num_batches is None:
            return itertools.count()
        indices = np.arange(self.num_batches)
        if self.shuffle:
            from fastnet import random as _random

            indices = _random.generator().permutation(indices)
        return iter(indices.tolist())

    def _sync(self, indices):
        for i in indices:
            yield _standardize_batch(self.dataset[i], self.class_weight)

    def _pooled(self, indices):
        if self.use_multiprocessing:
            methods = multiprocessing.get_all_start_methods()
            ctx = multiprocessing.get_context("fork" if "fork" in methods else None)
            pool = ProcessPoolExecutor(max(1, self.workers), mp_context=ctx, initializer=_init_worker,
                                       initargs=(self.dataset,))
            fetch = _worker_getitem
        else:
            pool = ThreadPoolExecutor(max(1, self.workers), thread_name_prefix="fastnet-pydataset")
            fetch = self.dataset.__getitem__
        pending: list = []
        try:
            for i in itertools.islice(indices, self.max_queue_size):
                pending.append(pool.submit(fetch, i))
            while pending:
                batch = pending.pop(0).result()  # re-raises the worker's exception
                for i in itertools.islice(indices, 1):
                    pending.append(pool.submit(fetch, i))
                yield _standardize_batch(batch, self.class_weight)
        finally:
            for f in pending:
                f.cancel()
            pool.shutdown(wait=True, cancel_futures=True)

    def get_numpy_iterator(self):
        indices = self._indices()
        if self.workers == 0 and not self.use_multiprocessing:
            return self._sync(indices)
        if self.workers <= 1 and not self.use_multiprocessing:
            return _closing_reader(Prefetcher(self._sync(indices), self.max_queue_size, name="fastnet-pydataset"))
        return self._pooled(indices)


def _closing_reader(reader):
    try:
        yield from reader
    finally:
        reader.close()


class DatasetAdapter(DataAdapter):
    """A :class:`fastnet.data.Dataset`, a ``tf.data.Dataset`` or a torch ``DataLoader``."""

    def __init__(self, dataset, kind="fastnet.data.Dataset", class_weight=None,
                 max_queue_size=_DEFAULT_QUEUE) -> None:
        self.dataset = dataset
        self.kind = kind
        self.class_weight = _check_class_weight(class_weight)
        self.max_queue_size = max_queue_size
        self.batch_size = None
        self._started = None  # (first batch, the rest of its pass) once peek() began a pass
        if isinstance(dataset, Dataset):
            card = dataset.cardinality()
            self.num_batches = card if card >= 0 else None
            self._source = lambda: iter(dataset)
            self._ahead = not getattr(dataset, "_prefetched", False)
        elif kind == "tf.data.Dataset":
            card = int(dataset.cardinality())
            self.num_batches = card if card >= 0 else None
            self._source = dataset.as_numpy_iterator
            self._ahead = False  # tf.data has its own prefetching
        else:  # torch DataLoader
            try:
                self.num_batches = len(dataset)
            except TypeError:
                self.num_batches = None
            self.batch_size = getattr(dataset, "batch_size", None)
            self._source = lambda: iter(dataset)
            self._ahead = getattr(dataset, "num_workers", 0) == 0

    def _batches(self):
        for batch in self._source():
            yield _standardize_batch(batch, self.class_weight)

    def _open(self):
        if self._ahead:
            return _closing_reader(Prefetcher(self._batches(), self.max_queue_size, name="fastnet-dataset"))
        return self._batches()

    def peek(self):
        # The pass started here is the one the first epoch iterates: the first batch is
        # loaded (decoded, mapped) once, and the loader keeps running ahead meanwhile.
        if self._started is None:
            it = self._open()
            self._started = (next(it, None), it)
        return self._started[0]

    def get_numpy_iterator(self):
        if self._started is not None:
            first, it = self._started
            self._started = None
            return _resume(first, it)
        return self._open()

    def close(self) -> None:
        if self._started is not None:
            self._started[1].close()
            self._started = None


def _resume(first, it):
    try:
        if first is not None:
            yield first
            yield from it
    finally:
        it.close()


def get_data_adapter(x, y=None, sample_weight=None, batch_size=None, steps_per_epoch=None, shuffle=False,
                     class_weight=None, for_what="fit") -> DataAdapter:
    """The adapter for ``x`` (see the module docstring for what each kind of input gives).

    Args:
        x: the input data.
        y: targets, for array inputs only.
        sample_weight: per-sample weights, for array inputs only.
        batch_size: batch size of array inputs (default 32, or ``ceil(n / steps_per_epoch)``).
        steps_per_epoch: steps per epoch, when given (used for the default batch size).
        shuffle: shuffle array inputs (True, False or "batch"), or a PyDataset's batch order.
        class_weight: ``{class_index: weight}`` turned into per-sample weights.
        for_what: "fit", "evaluate" or "predict" (only ``fit`` shuffles), for messages.

    Raises:
        TypeError: for an input type none of the adapters takes.
        ValueError: for ``y``/``sample_weight`` given alongside a generator or dataset,
            inconsistent sample counts, or bad ``class_weight``.
    """
    if isinstance(x, DataAdapter):
        return x
    if _is_array_structure(x) and _is_array_structure(y) and _is_array_structure(sample_weight) and not (
            isinstance(x, (int, float, np.generic))):
        return ArrayDataAdapter(x, y, sample_weight=sample_weight, batch_size=batch_size, steps=steps_per_epoch,
                                shuffle=shuffle, class_weight=class_weight, for_what=for_what)
    from fastnet.utils.py_dataset import PyDataset

    if isinstance(x, PyDataset):
        kind = "PyDataset"
    elif isinstance(x, Dataset):
        kind = "fastnet.data.Dataset"
    elif is_tf_dataset(x):
        kind = "tf.data.Dataset"
    elif is_torch_dataloader(x):
        kind = "torch DataLoader"
    elif isinstance(x, (types.GeneratorType, types.AsyncGeneratorType)) or (
            hasattr(x, "__next__") and hasattr(x, "__iter__")):
        if isinstance(x, types.AsyncGeneratorType):
            raise TypeError("fastnet does not take asynchronous generators as data; received an async generator")
        kind = "generator"
    else:
        raise TypeError(f"Unrecognized data type for x: {type(x).__module__}.{type(x).__qualname__}. "
                        f"{for_what} accepts {_ACCEPTED}.")
    if y is not None:
        _unsupported("y", "the targets", kind)
    if sample_weight is not None:
        _unsupported("sample_weight", "the sample weights", kind)
    if kind == "PyDataset":
        return PyDatasetAdapter(x, class_weight=class_weight, shuffle=shuffle and for_what == "fit")
    if kind == "generator":
        return GeneratorDataAdapter(x, class_weight=class_weight)
    return DatasetAdapter(x, kind=kind, class_weight=class_weight)


# ----------------------------------------------------------------------------- epochs
_RAN_OUT = ("Your input ran out of data; interrupting training. Make sure that your dataset or generator "
            "can generate at least `steps_per_epoch * epochs` batches. You may need to use the `.repeat()` "
            "function when building your dataset.")


class EpochIterator:
    """Steps of one epoch over an adapter, as Keras 3's epoch iterator runs them.

    Args:
        adapter: a :class:`DataAdapter` (from :func:`get_data_adapter`).
        steps_per_epoch: steps per epoch; None for one pass of the input.

    ``enumerate_epoch()`` yields ``(step, (x, y, sample_weight))``; call it once per epoch.
    """

    def __init__(self, adapter: DataAdapter, steps_per_epoch: int | None = None) -> None:
        self.data_adapter = adapter
        self.steps_per_epoch = _check_positive(steps_per_epoch, "steps_per_epoch")
        self._num_batches = adapter.num_batches
        self._current = None
        self._steps_seen = 0

    @property
    def num_batches(self) -> int | None:
        """Steps in an epoch: ``steps_per_epoch``, else the input's batches (None: unknown)."""
        if self.steps_per_epoch:
            return self.steps_per_epoch
        return self._num_batches

    def reset(self) -> None:
        """Forgets the carried-over iterator (the next epoch starts a new pass)."""
        self._close_current()
        self._num_batches = self.data_adapter.num_batches
        self._steps_seen = 0
        self.data_adapter.on_epoch_end()

    def _close_current(self):
        close = getattr(self._current, "close", None)
        self._current = None
        if close is not None:
            close()

    def _new_pass(self):
        self._close_current()
        self._current = iter(self.data_adapter.get_numpy_iterator())
        self._steps_seen = 0

    def _ran_out(self):
        if self._num_batches is None:
            self._num_batches = self._steps_seen
        warnings.warn(_RAN_OUT, stacklevel=4)
        self._close_current()

    def enumerate_epoch(self):
        """Yields ``(step, batch)`` for the steps of one epoch."""
        self.data_adapter.on_epoch_begin()
        steps = self.steps_per_epoch or self._num_batches or -1
        if steps > 0:
            if self._current is None or self.steps_per_epoch is None:
                self._new_pass()
            for step in range(steps):
                if self._num_batches and self._steps_seen >= self._num_batches:
                    if self.steps_per_epoch:
                        warnings.warn(_RAN_OUT, stacklevel=3)
                    break
                try:
                    batch = next(self._current)
                except StopIteration:
                    self._ran_out()
                    break
                self._steps_seen += 1
                yield step, batch
            if self._num_batches and self._steps_seen >= self._num_batches:
                # The next epoch starts a new pass (lazily: after on_epoch_end has run).
                self._close_current()
                self._steps_seen = 0
        else:
            self._new_pass()
            for step in itertools.count():
                try:
                    batch = next(self._current)
                except StopIteration:
                    self._ran_out()
                    break
                self._steps_seen = step + 1
                yield step, batch
        self.data_adapter.on_epoch_end()

    def close(self) -> None:
        """Stops background loading of the carried-over iterator and of the adapter."""
        self._close_current()
        self.data_adapter.close()


# ----------------------------------------------------------------------------- validation split
def train_validation_split(arrays, validation_split: float):
    """Splits a structure of arrays into its first ``1 - validation_split`` and last
    ``validation_split`` parts, as Keras's ``validation_split`` does (the split is taken
    before any shuffling). None entries stay None in both parts.

    Returns:
        ``(train_arrays, validation_arrays)`` with the structure of ``arrays``.
    """
    if not 0.0 < float(validation_split) < 1.0:
        raise ValueError(f"validation_split must be in (0, 1), received {validation_split}")

    def check(a):
        if a is None:
            return None
        if _is_pandas(a):
            return a.to_numpy()
        if not (isinstance(a, np.ndarray) or hasattr(a, "__array__")):
            raise ValueError("validation_split is only supported for numpy arrays (and structures of them); "
                             f"found {type(a).__name__} in the input")
        return np.asarray(a)

    arrays = _tree.map_structure(check, _as_structure_keep_none(arrays))
    present = [a for a in _tree.flatten(arrays) if a is not None]
    if not present:
        return arrays, arrays
    n = len(present[0])
    split_at = int(math.floor(n * (1.0 - validation_split)))
    if split_at == 0 or split_at == n:
        raise ValueError(f"Training data contains {n} samples, which is not sufficient to split it into a "
                         f"validation and training set as specified by validation_split={validation_split}. "
                         "Either provide more data, or a different value for the validation_split argument.")
    train = _tree.map_structure(lambda a: None if a is None else a[:split_at], arrays)
    val = _tree.map_structure(lambda a: None if a is None else a[split_at:], arrays)
    return train, val


def _as_structure_keep_none(arrays):
    if isinstance(arrays, tuple) and not hasattr(arrays, "_fields"):
        return tuple(_as_structure_keep_none(a) for a in arrays)
    if isinstance(arrays, dict):
        return {k: _as_structure_keep_none(v) for k, v in arrays.items()}
    if isinstance(arrays, list) and any(isinstance(a, (np.ndarray, dict)) or _is_pandas(a) for a in arrays):
        return [_as_structure_keep_none(a) for a in arrays]
    if arrays is None or isinstance(arrays, np.ndarray):
        return arrays
    if isinstance(arrays, (types.GeneratorType,)) or hasattr(arrays, "__next__"):
        raise ValueError("validation_split is only supported for numpy arrays (and structures of them); "
                         f"found {type(arrays).__name__} in the input")
    return _as_structure(arrays, "x")
