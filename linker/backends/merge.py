"""Merging sorted streams of candidate chunks into one sorted stream read a chunk at a time:
memory holds one chunk per stream and one output chunk, never all candidates.
``merged_candidates`` merges per-task candidate files, each sorted in anonlink's order (score
descending, then left, right).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

__all__ = ["Chunk", "merge_sorted", "merged_candidates"]

Chunk = tuple[np.ndarray, ...]
SortKey = Callable[[Chunk], list[np.ndarray]]


def _at_or_before(keys: list[np.ndarray], bound: tuple) -> int:
    """How many leading rows of a chunk sorted by ``keys`` come no later than ``bound``."""
    at = np.ones(len(keys[0]), dtype=bool)  # equal on every column: not later
    for column, value in zip(reversed(keys), reversed(bound), strict=True):
        at = (column < value) | ((column == value) & at)
    return int(at.sum())


def merge_sorted(streams: Sequence[Iterable[Chunk]], key: SortKey) -> Iterator[Chunk]:
    """Chunks of columns from ``streams``, each sorted by ``key`` (its columns, most
    significant first, ascending), as one stream sorted by it. A row is given out once every
    stream still being read has buffered a row past it, so ties across streams keep order."""
    readers = [iter(s) for s in streams]
    buffers: list[Chunk | None] = [None] * len(readers)
    more = [True] * len(readers)
    while True:
        for k, reader in enumerate(readers):
            while more[k] and (buffers[k] is None or len(buffers[k][0]) == 0):  # type: ignore[index]
                buffers[k] = next(reader, None)
                more[k] = buffers[k] is not None
        live = [k for k, chunk in enumerate(buffers) if chunk is not None and len(chunk[0])]
        if not live:
            return
        pending = [tuple(column[-1] for column in key(buffers[k])) for k in live  # type: ignore[arg-type]
                   if more[k]]
        bound = min(pending) if pending else None
        taken = []
        for k in live:
            chunk: Chunk = buffers[k]  # type: ignore[assignment]
            cut = len(chunk[0]) if bound is None else _at_or_before(key(chunk), bound)
            taken.append(tuple(column[:cut] for column in chunk))
            buffers[k] = tuple(column[cut:] for column in chunk)
        merged = tuple(np.concatenate([t[i] for t in taken]) for i in range(len(taken[0])))
        yield tuple(column[np.lexsort(key(merged)[::-1])] for column in merged)


def _anonlink_order(chunk: Chunk) -> list[np.ndarray]:
    left, right, score = chunk[:3]
    return [-score, left, right]


def _file_chunks(path: Path, columns: Sequence[str], batch_rows: int) -> Iterator[Chunk]:
    for batch in pq.ParquetFile(path).iter_batches(batch_rows, columns=list(columns)):
        yield tuple(batch.column(c).to_numpy() for c in columns)


def merged_candidates(paths: Sequence[Path], batch_rows: int = 1 << 16,
                      with_count: bool = False) -> Iterator[Chunk]:
    """(left, right, score) chunks, in anonlink's order across all files (which hold disjoint
    pairs: a blocked run reports a pair in the first band it shares); ``with_count``: (left,
    right, score, count), the pair's AND count fourth."""
    columns = ("left", "right", "score", "count") if with_count else ("left", "right", "score")
    return merge_sorted([_file_chunks(p, columns, batch_rows) for p in paths], _anonlink_order)
