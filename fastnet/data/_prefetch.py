"""Loading ahead: a bounded queue filled by a background thread.

The consumer (the training loop) takes items from the queue while a daemon thread keeps
running the producer's iterator. An exception raised inside the producer is handed over
and raised again in the consumer, carrying its original traceback. Closing the reader
stops the thread at its next item, even when it waits on a full queue.
"""
from __future__ import annotations

import queue
import threading
import weakref

__all__ = ["Prefetcher", "prefetch_iter"]

_END = object()
_POLL_S = 0.05  # how often a blocked producer checks whether the reader went away


class _Failure:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


def _produce(source, q, stop):
    try:
        for item in source:
            while True:
                if stop.is_set():
                    return
                try:
                    q.put(item, timeout=_POLL_S)
                    break
                except queue.Full:
                    continue
        item = _END
    except BaseException as e:  # noqa: BLE001 -- handed to the consumer, raised there
        item = _Failure(e)
    finally:
        close = getattr(source, "close", None)
        if stop.is_set() and close is not None:
            try:
                close()
            except Exception:  # noqa: BLE001 -- the reader is gone; nothing to report to
                pass
    while not stop.is_set():
        try:
            q.put(item, timeout=_POLL_S)
            return
        except queue.Full:
            continue


class Prefetcher:
    """Iterates ``source`` on a background thread, ``max_queue_size`` items ahead.

    Args:
        source: an iterable; it is iterated once, on the background thread.
        max_queue_size: how many items may wait in the queue (at least 1).
        name: a name for the thread (seen in debuggers and thread dumps).
    """

    def __init__(self, source, max_queue_size: int = 10, name: str = "fastnet-prefetch") -> None:
        size = int(max_queue_size) if max_queue_size and int(max_queue_size) > 0 else 1
        self._queue: queue.Queue = queue.Queue(maxsize=size)
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=_produce, args=(iter(source), self._queue, self._stop),
                                        name=name, daemon=True)
        self._thread.start()
        # A reader dropped without close() still stops its thread.
        self._finalizer = weakref.finalize(self, self._stop.set)

    def __iter__(self) -> Prefetcher:
        return self

    def __next__(self):
        if self._done:
            raise StopIteration
        item = self._queue.get()
        if item is _END:
            self._done = True
            self.close()
            raise StopIteration
        if isinstance(item, _Failure):
            self._done = True
            self.close()
            raise item.error  # keeps the traceback of the frame that raised it
        return item

    def close(self) -> None:
        """Stops the background thread (it finishes the item it is computing)."""
        self._done = True
        self._stop.set()
        # Unblock a producer waiting on a full queue.
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass


def prefetch_iter(source, max_queue_size: int = 10):
    """A generator over ``source`` loaded ahead on a thread; closing it stops the thread."""
    reader = Prefetcher(source, max_queue_size)
    try:
        yield from reader
    finally:
        reader.close()
