"""Linkage solved from a stream of candidates, for backends that leave their candidates on
shared storage (the Dask backend), never holding all candidates in memory. Same links,
entities and statistics as ``link_sets``.

- Two parties, 1:1: the greedy solver takes the candidates in anonlink's order chunk by chunk
  from the merged per-task files, holding only which records are taken and the links kept.
- Deduplication or three parties and more (the ``cluster`` solver): every pair of parties'
  files are merged once into one stream in anonlink's order, written as edge files while
  each record's candidate pairs are counted; the edge files are then read three times: to
  write every record's partners and gains as memory-mapped compressed rows (a merge weighs
  all pairs across two groups), to merge groups, and to collect the links. All beside the
  candidates, in the backend's shared folder; memory holds a few arrays per record and a
  chunk of edges.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, cast

import numba
import numpy as np

from .backends import Backend
from .backends.merge import Chunk, merge_sorted, merged_candidates
from .blocking import LshBlocking
from .clkset import ClkSet
from .link import (
    KindThresholds,
    LinkResult,
    PairProgress,
    comparison_stats,
    link_sets,
    number_entities,
    party_pairs,
)
from .shared_clks import shared_clks
from .solve import (
    DEFAULT_SOLVER,
    SCORED_BELOW,
    AverageLinkage,
    edge_gains,
    exclusive_masks,
    fill_neighbours,
    neighbour_starts,
)

__all__ = ["StreamingBackend", "greedy_take", "streams", "link_two_streamed",
           "link_groups_streamed", "link_on"]


class _Files(Protocol):
    paths: list
    visited: int
    completed: int

    def remove(self) -> None: ...


class StreamingBackend(Protocol):
    shared_dir: Path

    def candidate_files(self, a: ClkSet, b: ClkSet | None, threshold: float,
                        blocking: LshBlocking | None = None,
                        progress: Callable[[int], None] | None = None) -> _Files: ...


def streams(backend: object, sets: Sequence[ClkSet], dedup: Sequence[bool],
            tokens: Sequence[str], solver: str = DEFAULT_SOLVER) -> bool:
    """Whether this run can be solved from a stream: a backend that writes candidate files,
    no token pairs (they are added to candidates in memory), and two parties 1:1 or the
    ``cluster`` solver (``greedy``'s groups count the pairs seen between them in memory)."""
    one_to_one = len(sets) == 2 and not any(dedup)
    return (not tokens and (one_to_one or solver == "cluster")
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
    files = backend.candidate_files(a, b, threshold, blocking,
                                    PairProgress(progress).tick_for(len(b)))
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
        "candidate_pairs": candidates, "links": len(score),
        **comparison_stats(total, files.visited, files.completed),
        "token_only_pairs": 0, "seconds": round(time.perf_counter() - started, 3)}
    zeros = np.zeros(len(score), dtype=np.int64)
    return LinkResult([a.party, b.party], [a.record_ids, b.record_ids], zeros, record_a,
                      zeros + 1, record_b, score, [np.arange(len(a), dtype=np.int64), entity_b],
                      stats)


def _ordered(found: list[tuple[int, int, _Files]], thresholds: np.ndarray | None
             ) -> Iterator[Chunk]:
    """(pair, left, right, score) chunks of every pair of parties' files (``pair`` indexes
    ``found``, which is in party order), in anonlink's order: score descending, then parties,
    then records; with ``thresholds`` (one per pair of parties) by gain, score minus its pair's
    threshold, as ``link_sets`` orders them."""

    def tagged(pair: int, files: _Files) -> Iterator[Chunk]:
        for left, right, score in merged_candidates(files.paths):
            yield np.full(len(left), pair, np.int64), left, right, score

    first: Callable[[Chunk], np.ndarray] = (
        (lambda c: -c[3]) if thresholds is None else (lambda c: thresholds[c[0]] - c[3]))
    return merge_sorted([tagged(k, files) for k, (_, _, files) in enumerate(found)],
                        lambda c: [first(c), c[0], c[1], c[2]])


_EDGE_COLUMNS = (("u", np.int64), ("v", np.int64), ("score", np.float64))


class _EdgeWriter:
    """The merged stream's edges (global record indices and score, in anonlink's order)
    appended to one raw file per column, so that the passes after the first read them back
    without merging the candidate files again."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.count = folder, 0

    def __enter__(self) -> _EdgeWriter:
        self.files = [(self.folder / f"{name}.bin").open("wb") for name, _ in _EDGE_COLUMNS]
        return self

    def append(self, *columns: np.ndarray) -> None:
        for file, column, (_, dtype) in zip(self.files, columns, _EDGE_COLUMNS, strict=True):
            np.ascontiguousarray(column, dtype=dtype).tofile(file)
        self.count += len(columns[0])

    def __exit__(self, *exc: object) -> None:
        for file in self.files:
            file.close()


def _edge_chunks(folder: Path, count: int, rows: int) -> Iterator[tuple[np.ndarray, ...]]:
    """(u, v, score) chunks of ``rows`` edges from the edge files, in order (memory-mapped)."""
    if not count:
        return
    maps = [np.memmap(folder / f"{name}.bin", dtype=dtype, mode="r", shape=(count,))
            for name, dtype in _EDGE_COLUMNS]
    for first in range(0, count, rows):
        yield tuple(np.asarray(m[first:first + rows]) for m in maps)


class _EdgeThresholds:
    """The threshold of each edge given as global record indices u, v (``KindThresholds``
    of their parties)."""

    def __init__(self, offsets: np.ndarray, kinds: KindThresholds) -> None:
        self.offsets, self.kinds = offsets, kinds

    def __call__(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        return self.kinds.edges(np.searchsorted(self.offsets, u, side="right") - 1,
                                np.searchsorted(self.offsets, v, side="right") - 1)


def _merge_groups(folder: Path, count: int, rows: int, degree: np.ndarray,
                  thresholds: _EdgeThresholds, penalty: float, exclusive: np.ndarray
                  ) -> np.ndarray:
    """``cluster``'s groups from the edge files: every record's partners and gains written
    as memory-mapped compressed rows, then the edges taken in order."""
    start = neighbour_starts(degree)
    shape = (int(start[-1]),)
    other = np.lib.format.open_memmap(folder / "other.npy", "w+", np.int64, shape)
    gains = np.lib.format.open_memmap(folder / "gains.npy", "w+", np.float64, shape)
    fill = start[:-1].copy()
    for u, v, score in _edge_chunks(folder, count, rows):
        fill_neighbours(u, v, edge_gains(score, thresholds(u, v)), fill, other, gains)
    merging = AverageLinkage(exclusive, start, np.asarray(other), np.asarray(gains), penalty)
    for u, v, _ in _edge_chunks(folder, count, rows):
        merging.take(u, v)
    return merging.labels()


def link_groups_streamed(sets: Sequence[ClkSet], threshold: float, backend: StreamingBackend,
                         *, dedup: Sequence[bool], blocking: LshBlocking | None = None,
                         progress: Callable[[int, int], None] | None = None,
                         chunk_rows: int = 1 << 20,
                         dedup_thresholds: Sequence[float | None] | None = None) -> LinkResult:
    """``link_sets`` with the ``cluster`` solver (deduplication, or three parties and more),
    from ``backend``'s files, ``chunk_rows`` edges at a time."""
    started = time.perf_counter()
    kinds = KindThresholds.of(threshold, dedup_thresholds, len(sets))
    offsets = np.cumsum([0] + [len(s) for s in sets])
    thresholds = _EdgeThresholds(offsets, kinds)
    n = int(offsets[-1])
    found: list[tuple[int, int, _Files]] = []
    total = 0
    ticks = PairProgress(progress)
    try:
        for i, j in sorted(party_pairs(len(sets), dedup)):  # anonlink's party order
            scored_from = max(kinds.pair(i, j) - SCORED_BELOW, 0.0)
            found.append((i, j, backend.candidate_files(
                sets[i], None if i == j else sets[j], scored_from, blocking,
                ticks.tick_for(len(sets[j])))))
            total += len(sets[i]) * (len(sets[i]) - 1) // 2 if i == j else \
                len(sets[i]) * len(sets[j])
        first = np.array([i for i, _, _ in found], dtype=np.int64)
        second = np.array([j for _, j, _ in found], dtype=np.int64)
        visited = sum(files.visited for _, _, files in found)
        completed = sum(files.completed for _, _, files in found)
        with tempfile.TemporaryDirectory(prefix="solve-", dir=backend.shared_dir) as scratch:
            folder = Path(scratch)
            degree = np.zeros(n, dtype=np.int64)
            with _EdgeWriter(folder) as edges:
                by_gain = None if kinds.uniform else np.array(
                    [kinds.pair(i, j) for i, j, _ in found])
                for pair, left, right, score in _ordered(found, by_gain):
                    u, v = offsets[first[pair]] + left, offsets[second[pair]] + right
                    edges.append(u, v, score)
                    degree += np.bincount(u, minlength=n) + np.bincount(v, minlength=n)
            for _, _, files in found:  # merged into the edge files: no longer needed
                files.remove()
            groups = _merge_groups(folder, edges.count, chunk_rows, degree, thresholds,
                                   SCORED_BELOW,
                                   exclusive_masks(np.repeat(np.arange(len(sets)),
                                                             [len(s) for s in sets]), dedup))
            kept: list[tuple[np.ndarray, ...]] = []
            candidates = below = 0
            for u, v, score in _edge_chunks(folder, edges.count, chunk_rows):
                counted = score >= thresholds(u, v)
                candidates += int(counted.sum())
                below += int(len(score) - counted.sum())
                take = counted & (groups[u] == groups[v])
                party_u = np.searchsorted(offsets, u[take], side="right") - 1
                party_v = np.searchsorted(offsets, v[take], side="right") - 1
                kept.append((party_u, u[take] - offsets[party_u], party_v,
                             v[take] - offsets[party_v], np.array(score[take])))
    finally:
        for _, _, files in found:
            files.remove()
    party_a, record_a, party_b, record_b, score = (
        np.concatenate([np.zeros(0, dtype)] + [k[c] for k in kept])
        for c, dtype in enumerate((np.int64, np.int64, np.int64, np.int64, np.float64)))
    stats: dict[str, float | int] = {
        "candidate_pairs": candidates, "pairs_scored_below_threshold": below,
        "links": len(score), **comparison_stats(total, visited, completed),
        "token_only_pairs": 0, "seconds": round(time.perf_counter() - started, 3)}
    return LinkResult([s.party for s in sets], [s.record_ids for s in sets], party_a, record_a,
                      party_b, record_b, score, number_entities(groups, offsets), stats)


def link_on(backend: Backend, sets: Sequence[ClkSet], threshold: float, *,
            dedup: Sequence[bool], blocking: LshBlocking | None = None,
            progress: Callable[[int, int], None] | None = None,
            tokens: Sequence[str] = (), solver: str = DEFAULT_SOLVER,
            dedup_thresholds: Sequence[float | None] | None = None,
            **options: Any) -> LinkResult:
    """``link_sets`` on ``backend`` (``options``: its other arguments), solved from the
    backend's candidate files where it writes them and the run allows (``streams``); its
    stats also say how many records share a CLK with many others (``shared_clks``)."""
    if streams(backend, sets, dedup, tokens, solver):
        streaming = cast(StreamingBackend, backend)
        if len(sets) == 2 and not any(dedup):
            result = link_two_streamed(sets, threshold, streaming, blocking=blocking,
                                       progress=progress)
        else:
            result = link_groups_streamed(sets, threshold, streaming, dedup=dedup,
                                          blocking=blocking, progress=progress,
                                          dedup_thresholds=dedup_thresholds)
    else:
        result = link_sets(sets, threshold, dedup=dedup, backend=backend, blocking=blocking,
                           progress=progress, tokens=tokens, solver=solver,
                           dedup_thresholds=dedup_thresholds, **options)
    result.stats["shared_clks"] = shared_clks(sets).as_dict()
    return result
