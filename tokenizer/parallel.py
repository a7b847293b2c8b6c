"""Encoding chunks on several cores, results in input order.

The heavy loops (the compiled n-gram kernel, Arrow compute, numpy) release the GIL, so worker
threads scale without copying chunks between processes. Each thread holds its own
:class:`ClkEncoder` (caches are not shared); the encoder is deterministic, so the output does
not depend on the number of workers or on which worker took which chunk.
"""

from __future__ import annotations

import os
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from .schema_model import Schema

if TYPE_CHECKING:  # imported when encoding: `pprl link` wants default_workers alone
    from .encoder import EncodedChunk
    from .normalize import Normalizer

__all__ = ["encode_chunks", "default_workers", "InOrderWorker", "Rejected"]

Columns = Mapping[str, pa.Array]
Rejected = dict[int, list[tuple[str, str]]]


def default_workers() -> int:
    """One worker per core the process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def encode_chunks(schema: Schema, secret: bytes, chunks: Iterable[Columns],
                  workers: int = 1, normalizer: Normalizer | None = None
                  ) -> Iterator[tuple[EncodedChunk, Rejected]]:
    """Normalise (if a ``normalizer`` is given) and encode each chunk's columns, yielding
    each chunk's encodings and the normaliser's rejects (row -> (field, reason)) in the order
    of ``chunks``.

    With ``workers`` > 1, up to two chunks per worker are in flight, so memory stays bounded
    by the chunk size; normalising runs on the worker threads too (Arrow releases the GIL).
    """
    from .encoder import ClkEncoder

    local = threading.local()

    def encode(columns: Columns) -> tuple[EncodedChunk, Rejected]:
        encoder = getattr(local, "encoder", None)
        if encoder is None:
            encoder = local.encoder = ClkEncoder(schema, secret)
        if normalizer:
            normalized = normalizer.apply(columns)
            return encoder.encode(normalized.columns), normalized.rejected
        return encoder.encode(columns), {}

    if workers <= 1:
        for columns in chunks:
            yield encode(columns)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pprl-encode") as pool:
        pending: deque[Future[tuple[EncodedChunk, Rejected]]] = deque()
        try:
            for columns in chunks:
                pending.append(pool.submit(encode, dict(columns)))
                if len(pending) >= 2 * workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


class InOrderWorker:
    """Runs ``task(*args)`` for each ``put`` on one background thread, in order.

    ``put`` blocks while ``capacity`` items wait, so memory stays bounded. The first error of
    the task is raised in the caller at the next ``put`` or on leaving the ``with`` block;
    leaving it because of an error of the caller stops the thread without running the rest.
    """

    _STOP = object()

    def __init__(self, task: Callable[..., None], capacity: int = 2) -> None:
        self._task = task
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=capacity)
        self._error: BaseException | None = None
        self._abandon = False
        self._thread = threading.Thread(target=self._run, name="pprl-writer", daemon=True)

    def __enter__(self) -> InOrderWorker:
        self._thread.start()
        return self

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is self._STOP:
                return
            if self._error is not None or self._abandon:
                continue
            try:
                self._task(*item)
            except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
                self._error = e

    def put(self, *args: Any) -> None:
        self._raise_if_failed()
        self._queue.put(args)

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._abandon = error is not None
        self._queue.put(self._STOP)
        self._thread.join()
        if error is None:
            self._raise_if_failed()
