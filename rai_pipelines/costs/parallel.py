"""The batches of an export file normalised on every core, in file order, within a memory bound, and
written on a thread of their own while the next ones are made.

A file's batches are independent: each is read, then normalised by a worker thread (DuckDB and Arrow
release the GIL while they work), and handed back in the order they were read. At most `ahead`
batches are in flight at once, so memory grows with the number of cores, not with the file.
"""

from __future__ import annotations

import os
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

In = TypeVar("In")
Out = TypeVar("Out")


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, which a container or `taskset` narrows)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def ordered_map(work: Callable[[In], Out], items: Iterable[In], workers: int | None = None) -> Iterator[Out]:
    """`map(work, items)` on `workers` threads (default: the usable cores), results in input order.

    The first exception in input order is raised where its result would have been; the work not yet
    handed back is cancelled or waited for, so nothing runs on after the caller stops."""
    workers = usable_cores() if workers is None else workers
    if workers <= 1:
        yield from map(work, items)
        return
    ahead = workers + 1  # one finished batch waiting for the caller while each worker has one
    pending: deque[Future[Out]] = deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ledger-batch") as pool:
        try:
            for item in items:
                pending.append(pool.submit(work, item))
                if len(pending) >= ahead:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


_DONE = object()


def consume_in_background(items: Iterable[In], consume: Callable[[In], None], depth: int = 2) -> None:
    """`consume(item)` for each item in order, on a thread of its own while `items` goes on making the
    next ones (a ledger file written while the next batches are read and normalised); at most `depth`
    items wait between the two. A failure on either side stops both and is raised here, after the
    consuming thread has finished."""
    if usable_cores() <= 1:
        for item in items:
            consume(item)
        return
    waiting: queue.Queue = queue.Queue(maxsize=depth)
    failures: list[BaseException] = []

    def run() -> None:
        while (item := waiting.get()) is not _DONE:
            if failures:
                continue  # drained, so that the producer never blocks on a full queue
            try:
                consume(item)
            except BaseException as exc:  # handed to the producing thread, which raises it
                failures.append(exc)

    consumer = threading.Thread(target=run, name="ledger-writer", daemon=True)
    consumer.start()
    try:
        for item in items:
            if failures:
                break
            waiting.put(item)
    finally:
        waiting.put(_DONE)
        consumer.join()
    if failures:
        close = getattr(items, "close", None)
        if close is not None:  # a generator left half-way: its workers stop now, not when it is collected
            close()
        raise failures[0]
