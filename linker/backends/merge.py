"""Merging per-task candidate files, each sorted in anonlink's order (score descending, then
left, right), into one sorted stream read a batch at a time: memory holds one batch per file
and one output chunk, never all candidates. A pair found in several bands of a blocked run
appears once."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

__all__ = ["merged_candidates"]

Chunk = tuple[np.ndarray, ...]


def _at_or_before(chunk: Chunk, key: tuple[float, int, int]) -> int:
    """How many leading rows of a sorted chunk come no later than ``key`` (score, l, r)."""
    left, right, score = chunk[:3]
    s, lo, r = key
    before = (score > s) | ((score == s) & ((left < lo) | ((left == lo) & (right <= r))))
    return int(before.sum())


def merged_candidates(paths: Sequence[Path], batch_rows: int = 1 << 16,
                      with_count: bool = False) -> Iterator[Chunk]:
    """(left, right, score) chunks, in anonlink's order across all files, each pair once;
    ``with_count``: (left, right, score, count), the pair's AND count fourth."""
    columns = ("left", "right", "score", "count") if with_count else ("left", "right", "score")
    readers = [pq.ParquetFile(p).iter_batches(batch_rows, columns=list(columns))
               for p in paths]
    empty: Chunk = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64),
                    np.zeros(0, np.int64))[:len(columns)]
    buffers = [empty] * len(readers)
    more = [True] * len(readers)
    last: tuple[int, int] | None = None
    while True:
        for k, reader in enumerate(readers):
            while more[k] and len(buffers[k][0]) == 0:
                batch = next(reader, None)
                if batch is None:
                    more[k] = False
                else:
                    buffers[k] = tuple(batch.column(c).to_numpy()  # type: ignore[assignment]
                                       for c in columns)
        live = [k for k in range(len(readers)) if len(buffers[k][0])]
        if not live:
            return
        pending = [(float(buffers[k][2][-1]) * -1.0, int(buffers[k][0][-1]),
                    int(buffers[k][1][-1])) for k in live if more[k]]
        taken = []
        for k in live:
            cut = len(buffers[k][0])
            if pending:
                s, lo, r = min(pending)
                cut = _at_or_before(buffers[k], (-s, lo, r))
            taken.append(tuple(column[:cut] for column in buffers[k]))
            buffers[k] = tuple(column[cut:] for column in buffers[k])  # type: ignore[assignment]
        merged = [np.concatenate([t[i] for t in taken]) for i in range(len(columns))]
        left, right, score = merged[:3]
        order = np.lexsort((right, left, -score))
        merged = [column[order] for column in merged]
        left, right = merged[:2]
        repeat = np.zeros(len(left), dtype=bool)
        repeat[1:] = (left[1:] == left[:-1]) & (right[1:] == right[:-1])
        if last is not None and len(left):
            repeat[0] = (int(left[0]), int(right[0])) == last
        keep = ~repeat
        if keep.any():
            merged = [column[keep] for column in merged]
            last = (int(merged[0][-1]), int(merged[1][-1]))
            yield tuple(merged)  # type: ignore[misc]
