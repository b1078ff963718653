"""``PyDataset``: batches served by index, as ``keras.utils.PyDataset`` (``Sequence``).

A subclass implements ``__getitem__(index)`` returning one batch (``x``, ``(x,)``,
``(x, y)`` or ``(x, y, sample_weight)``) and ``__len__`` (or the ``num_batches``
property; ``None`` there means an endless dataset). ``fit`` reads batches ahead of the
training step on ``workers`` threads (or processes with ``use_multiprocessing=True``),
keeping at most ``max_queue_size`` batches waiting; see :mod:`fastnet.data.adapters`.
"""
from __future__ import annotations

import itertools
import warnings

__all__ = ["PyDataset", "Sequence"]


class PyDataset:
    """Base class for datasets that give one batch per index.

    Args:
        workers: number of threads (or processes) that load batches ahead of training.
            With ``workers=1`` and ``use_multiprocessing=False`` one background thread
            loads ahead.
        use_multiprocessing: load batches in worker processes instead of threads (for
            Python-heavy ``__getitem__`` code that holds the GIL). The dataset must then
            be picklable where processes are spawned rather than forked. Processes are
            started for each pass and shut down at its end.
        max_queue_size: how many batches may be loaded ahead and wait.

    Example:

        >>> import numpy as np
        >>> class Squares(PyDataset):
        ...     def __init__(self, n, batch_size, **kwargs):
        ...         super().__init__(**kwargs)
        ...         self.x = np.arange(n, dtype="float32")[:, None]
        ...         self.batch_size = batch_size
        ...     def __len__(self):
        ...         return -(-len(self.x) // self.batch_size)
        ...     def __getitem__(self, index):
        ...         xb = self.x[index * self.batch_size:(index + 1) * self.batch_size]
        ...         return xb, xb ** 2
        >>> ds = Squares(10, 4)
        >>> len(ds), ds[2][1].ravel().tolist()
        (3, [64.0, 81.0])
    """

    def __init__(self, workers: int = 1, use_multiprocessing: bool = False, max_queue_size: int = 10) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
            raise ValueError(f"PyDataset: workers must be a non-negative integer, received workers={workers!r}")
        if isinstance(max_queue_size, bool) or not isinstance(max_queue_size, int) or max_queue_size < 1:
            raise ValueError(f"PyDataset: max_queue_size must be a positive integer, "
                             f"received max_queue_size={max_queue_size!r}")
        self._workers = workers
        self._use_multiprocessing = bool(use_multiprocessing)
        self._max_queue_size = max_queue_size

    def _check_init_called(self) -> None:
        missing = [name for name in ("_workers", "_use_multiprocessing", "_max_queue_size")
                   if not hasattr(self, name)]
        if missing:
            self._workers = getattr(self, "_workers", 1)
            self._use_multiprocessing = getattr(self, "_use_multiprocessing", False)
            self._max_queue_size = getattr(self, "_max_queue_size", 10)
            warnings.warn(f"{type(self).__name__} should call super().__init__(**kwargs) in its constructor; "
                          "kwargs may hold workers, use_multiprocessing and max_queue_size (fit does not "
                          "take them). Using workers=1, use_multiprocessing=False, max_queue_size=10.",
                          stacklevel=3)

    @property
    def workers(self) -> int:
        self._check_init_called()
        return self._workers

    @workers.setter
    def workers(self, value: int) -> None:
        self._workers = value

    @property
    def use_multiprocessing(self) -> bool:
        self._check_init_called()
        return self._use_multiprocessing

    @use_multiprocessing.setter
    def use_multiprocessing(self, value: bool) -> None:
        self._use_multiprocessing = value

    @property
    def max_queue_size(self) -> int:
        self._check_init_called()
        return self._max_queue_size

    @max_queue_size.setter
    def max_queue_size(self, value: int) -> None:
        self._max_queue_size = value

    def __getitem__(self, index: int):
        """Returns the batch at position ``index``."""
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__(index)")

    @property
    def num_batches(self) -> int | None:
        """Number of batches, or None for an endless dataset. Defaults to ``len(self)``."""
        if hasattr(self, "__len__"):
            return len(self)
        raise NotImplementedError(f"{type(self).__name__} must implement __len__ or the num_batches "
                                  "property (returning None for an endless dataset)")

    def __iter__(self):
        n = self.num_batches
        for index in (itertools.count() if n is None else range(n)):
            yield self[index]

    def on_epoch_begin(self) -> None:
        """Called at the start of every epoch."""

    def on_epoch_end(self) -> None:
        """Called at the end of every epoch (e.g. to reshuffle the samples)."""


Sequence = PyDataset
