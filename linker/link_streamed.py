"""Two-party 1:1 linkage solved from a stream of candidates, for backends that leave their
candidates on shared storage (the Dask backend): the greedy solver takes them in anonlink's
order chunk by chunk from the merged per-task files, holding only which records are taken
and the links accepted, never all candidates. Same links and entities as ``link_sets``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol, cast

import numba
import numpy as np

from .backends import Backend
from .backends.merge import merged_candidates
from .blocking import LshBlocking
from .clkset import ClkSet
from .link import LinkResult, link_sets

__all__ = ["StreamingBackend", "greedy_take", "streams", "link_two_streamed", "link_on"]


class _Files(Protocol):
    paths: list
    visited: int
    completed: int

    def remove(self) -> None: ...


class StreamingBackend(Protocol):
    def candidate_files(self, a: ClkSet, b: ClkSet | None, threshold: float,
                        blocking: LshBlocking | None = None,
                        progress: Callable[[int], None] | None = None) -> _Files: ...


def streams(backend: object, sets: Sequence[ClkSet], dedup: Sequence[bool],
            tokens: Sequence[str]) -> bool:
    """Whether this run can be solved from a stream: two parties, 1:1, no token pairs (they
    are added to candidates in memory), on a backend that writes candidate files."""
    return (len(sets) == 2 and not any(dedup) and not tokens
            and callable(getattr(backend, "candidate_files", None)))


@numba.njit(cache=True)
def greedy_take(left: np.ndarray, right: np.ndarray, used_left: np.ndarray,
          used_right: np.ndarray) -> np.ndarray:  # pragma: no cover
    """Greedy 1:1 on one chunk, carrying which records are taken from chunk to chunk."""
    taken = np.zeros(left.shape[0], dtype=np.bool_)
    for p in range(left.shape[0]):
        if not (used_left[left[p]] or used_right[right[p]]):
            used_left[left[p]] = used_right[right[p]] = taken[p] = True
    return taken


def link_two_streamed(sets: Sequence[ClkSet], threshold: float, backend: StreamingBackend, *,
                      blocking: LshBlocking | None = None,
                      progress: Callable[[int, int], None] | None = None) -> LinkResult:
    """``link_sets`` for two parties without deduplication, from ``backend``'s files."""
    started = time.perf_counter()
    a, b = sets
    rows_done = 0

    def tick(rows: int) -> None:
        nonlocal rows_done
        rows_done += rows
        if progress is not None:
            progress(rows, rows_done * len(b))

    files = backend.candidate_files(a, b, threshold, blocking, tick)
    used_a, used_b = np.zeros(len(a), np.bool_), np.zeros(len(b), np.bool_)
    links: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    candidates = 0
    try:
        for left, right, score in merged_candidates(files.paths):
            taken = greedy_take(left, right, used_a, used_b)
            links.append((left[taken], right[taken], score[taken]))
            candidates += len(score)
    finally:
        files.remove()
    record_a, record_b, score = (np.concatenate([np.zeros(0, dtype)] + [x[i] for x in links])
                                 for i, dtype in enumerate((np.int64, np.int64, np.float64)))
    # Entities numbered by their first record: every A record starts one; a B record joins
    # its partner's or, unlinked, starts the next.
    entity_b = np.empty(len(b), dtype=np.int64)
    alone = ~used_b
    entity_b[alone] = len(a) + np.arange(int(alone.sum()))
    entity_b[record_b] = record_a
    total = len(a) * len(b)
    stats: dict[str, float | int] = {
        "candidate_pairs": candidates, "links": len(score), "pairs_total": total,
        "pairs_compared": files.visited, "pairs_compared_in_full": files.completed,
        "pruned_share": round(1 - files.visited / total, 6) if total else 0.0,
        "stopped_halfway_share": (round(1 - files.completed / files.visited, 6)
                                  if files.visited else 0.0),
        "token_only_pairs": 0, "seconds": round(time.perf_counter() - started, 3)}
    zeros = np.zeros(len(score), dtype=np.int64)
    return LinkResult([a.party, b.party], [a.record_ids, b.record_ids], zeros, record_a,
                      zeros + 1, record_b, score, [np.arange(len(a), dtype=np.int64), entity_b],
                      stats)


def link_on(backend: Backend, sets: Sequence[ClkSet], threshold: float, *,
            dedup: Sequence[bool], blocking: LshBlocking | None = None,
            progress: Callable[[int, int], None] | None = None,
            tokens: Sequence[str] = (), **options: Any) -> LinkResult:
    """``link_sets`` on ``backend`` (``options``: its other arguments), solved from the
    backend's candidate files where it writes them and the run allows (``streams``: two
    parties, 1:1, where every solver gives greedy's links)."""
    if streams(backend, sets, dedup, tokens):
        return link_two_streamed(sets, threshold, cast(StreamingBackend, backend),
                                 blocking=blocking, progress=progress)
    return link_sets(sets, threshold, dedup=dedup, backend=backend, blocking=blocking,
                     progress=progress, tokens=tokens, **options)
