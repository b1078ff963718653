"""Loading ahead: a bounded queue filled by a background thread.

The consumer (the training loop) takes items from a bounded buffer while a daemon thread keeps
running the producer's iterator. An exception raised inside the producer is handed over
and raised again in the consumer, carrying its original traceback. Closing the reader
stops the thread at its next item, even when it waits on a full queue.
"""
from __future__ import annotations

import threading
import weakref
from collections import deque

__all__ = ["Prefetcher", "prefetch_iter"]

_END = object()
_POLL_S = 0.05  # how often a blocked producer checks whether the reader went away


class _Failure:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


class _Channel:
    """A bounded hand-off between one producer thread and one consumer.

    Each wake-up of the other thread is a GIL hand-off, which on a busy machine costs
    a scheduler slice: so a producer that filled the buffer sleeps until the consumer
    has drained it to ``low`` items and then refills it in one go (one wake-up per
    ``size - low`` items instead of one per item), and the consumer is only woken when
    it actually waits on an empty buffer.
    """

    __slots__ = ("items", "cond", "size", "low", "producer_waiting", "consumer_waiting")

    def __init__(self, size: int) -> None:
        self.items: deque = deque()
        self.cond = threading.Condition(threading.Lock())
        self.size = size
        self.low = size // 2
        self.producer_waiting = False
        self.consumer_waiting = False


def _produce(source, ch, stop):
    cond, items = ch.cond, ch.items
    try:
        for item in source:
            with cond:
                if len(items) >= ch.size:
                    ch.producer_waiting = True
                    while len(items) > ch.low and not stop.is_set():
                        cond.wait(_POLL_S)
                    ch.producer_waiting = False
                if stop.is_set():
                    return
                items.append(item)
                if ch.consumer_waiting:
                    cond.notify()
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
    with cond:
        if not stop.is_set():
            items.append(item)  # the end marker may go one past the bound
            cond.notify()


class Prefetcher:
    """Iterates ``source`` on a background thread, up to ``max_queue_size`` items ahead.

    Args:
        source: an iterable; it is iterated once, on the background thread.
        max_queue_size: how many items may wait (at least 1). Once that many wait, the
            thread pauses until half of them are taken, then loads ahead again.
        name: a name for the thread (seen in debuggers and thread dumps).
    """

    def __init__(self, source, max_queue_size: int = 10, name: str = "fastnet-prefetch") -> None:
        size = int(max_queue_size) if max_queue_size and int(max_queue_size) > 0 else 1
        self._channel = _Channel(size)
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=_produce, args=(iter(source), self._channel, self._stop),
                                        name=name, daemon=True)
        self._thread.start()
        # A reader dropped without close() still stops its thread.
        self._finalizer = weakref.finalize(self, self._stop.set)

    def __iter__(self) -> Prefetcher:
        return self

    def __next__(self):
        if self._done:
            raise StopIteration
        ch = self._channel
        with ch.cond:
            if not ch.items:
                ch.consumer_waiting = True
                while not ch.items:
                    ch.cond.wait()
                ch.consumer_waiting = False
            item = ch.items.popleft()
            if ch.producer_waiting and len(ch.items) <= ch.low:
                ch.cond.notify()
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
        ch = self._channel
        with ch.cond:
            ch.items.clear()
            ch.cond.notify_all()  # a producer waiting for room sees the stop at once


def prefetch_iter(source, max_queue_size: int = 10):
    """A generator over ``source`` loaded ahead on a thread; closing it stops the thread."""
    reader = Prefetcher(source, max_queue_size)
    try:
        yield from reader
    finally:
        reader.close()
