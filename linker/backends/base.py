"""The steps every backend shares, in one base class: exact thresholds, popcount windows over
popcount-sorted B, blocking by LSH bands, tiling with an output buffer that grows on demand,
and assembling the candidates in anonlink's order. A backend supplies only how one tile of A
rows is compared with its windows of B (``_tile``), what it prepares once per plan
(``_prepare``) and, if it runs tiles elsewhere, how they are spread (``_run``).

Exactness: a pair passes when its AND count reaches ``needed[a + b]``, the least count for
which anonlink's own formula ``2c / (a + b) >= t`` holds in float64 (``min_counts``), so
every backend accepts anonlink's pairs to the last boundary case.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar, TypeVar, final

import numpy as np

from ..blocking import LshBlocking, band_keys, band_plan, reported_by_band
from ..clkset import ClkSet
from ..dice_kernel import min_counts
from .order import in_anonlink_order
from .types import Candidates, PairArrays, Plan, ProgressCallback, dice_scores

__all__ = ["Backend", "popcount_bounds", "all_pairs_plan"]

log = logging.getLogger(__name__)
_CHUNK = 1 << 16  # pairs whose rows are gathered at once to find the band that reports them
_COUNTED_TILE_PAIRS = 1 << 22  # pairs in the windows of a tile whose scores are counted

T = TypeVar("T")
R = TypeVar("R")


def popcount_bounds(needed: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """For each popcount a in 0..l, the least and greatest popcount b a partner may have: a
    pair can only reach c = min(a, b). (l + 1, -1) where no partner can pass. The table of
    every (a, b) in int32, no meshgrid: 3 ms at l = 1024 (10-33 ms in int64)."""
    values = np.arange(length + 1, dtype=np.int32)
    feasible = (needed.astype(np.int32)[values[:, None] + values[None, :]]
                <= np.minimum.outer(values, values))
    any_b = feasible.any(axis=1)
    lowest = np.where(any_b, feasible.argmax(axis=1), length + 1)
    highest = np.where(any_b, length - feasible[:, ::-1].argmax(axis=1), -1)
    return lowest.astype(np.int64), highest.astype(np.int64)


def all_pairs_plan(a: ClkSet, b: ClkSet | None, needed: np.ndarray) -> Plan:
    """Every A row against the popcount window of B sorted by popcount; within one set, A is
    the sorted set itself and row p only looks past p, so each pair is visited once."""
    other = a if b is None else b
    lowest, highest = popcount_bounds(needed, a.length)
    order = np.argsort(other.popcounts, kind="stable").astype(np.int64)
    b_pops = other.popcounts[order]
    a_pops = b_pops if b is None else a.popcounts
    starts = np.searchsorted(b_pops, lowest[a_pops], side="left").astype(np.int64)
    stops = np.searchsorted(b_pops, highest[a_pops], side="right").astype(np.int64)
    if b is None:
        starts = np.maximum(starts, np.arange(1, len(a) + 1))
    return _sorted_plan(a, b, None, order, starts, np.maximum(stops, starts), needed)


def _sorted_plan(a: ClkSet, b: ClkSet | None, a_order: np.ndarray | None,
                 b_order: np.ndarray, starts: np.ndarray, stops: np.ndarray,
                 needed: np.ndarray) -> Plan:
    """A plan from the orders of A (None: as it is) and B; within one set A is sorted B."""
    other = a if b is None else b
    b_words = np.ascontiguousarray(other.words[b_order])
    b_pops = other.popcounts[b_order].astype(np.int64)
    if b is None:
        return Plan(b_words, b_pops, b_order, b_words, b_pops, b_order, starts, stops, needed,
                    True)
    if a_order is None:
        return Plan(np.ascontiguousarray(a.words), a.popcounts.astype(np.int64),
                    np.arange(len(a), dtype=np.int64), b_words, b_pops, b_order, starts, stops,
                    needed, False)
    return Plan(np.ascontiguousarray(a.words[a_order]), a.popcounts[a_order].astype(np.int64),
                a_order, b_words, b_pops, b_order, starts, stops, needed, False)


class Backend(ABC):
    """Candidate pairs of two CLK sets (or within one) with Dice >= a threshold.

    Args:
        tile_rows: A rows per tile: the unit of work and of output buffering.
    """

    name: ClassVar[str]

    def __init__(self, tile_rows: int = 1024) -> None:
        if tile_rows < 1:
            raise ValueError(f"tile_rows must be at least 1, not {tile_rows}")
        self.tile_rows = tile_rows

    def describe(self) -> dict[str, Any]:
        """What run.json records of this backend."""
        return {"backend": self.name}

    def close(self) -> None:  # noqa: B027 - most backends hold nothing to release
        """Release what the backend holds (a cluster, a device's memory)."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @abstractmethod
    def _prepare(self, plan: Plan) -> Any:
        """What the tiles of ``plan`` share (a layout of B, a copy on a device)."""

    @abstractmethod
    def _tile(self, prepared: Any, plan: Plan, first: int, last: int,
              capacity: int) -> PairArrays | None:
        """Pairs of A rows [first, last) reaching ``plan.needed``; None if more than
        ``capacity`` pass (the base retries with a bigger buffer)."""

    def _map(self, function: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """Apply ``function`` to every item; backends with threads run them side by side."""
        return [function(item) for item in items]

    @final
    def _run_tile(self, prepared: Any, plan: Plan, first: int, last: int,
                  guess: int = 1 << 16) -> PairArrays:
        """The tile's pairs, in a buffer of ``guess`` pairs at first (at most the window)."""
        window = plan.window_pairs(first, last)
        capacity = max(1024, min(window, guess))
        while True:
            found = self._tile(prepared, plan, first, last, capacity)
            if found is not None:
                return found
            capacity = min(4 * capacity, max(window, 1))

    def _run(self, plan: Plan, progress: ProgressCallback | None) -> PairArrays:
        """All pairs of ``plan``, tile by tile."""
        return PairArrays.concat(self._reduced(plan, progress, lambda found: found))

    def _reduced(self, plan: Plan, progress: ProgressCallback | None,
                 reduce: Callable[[PairArrays], R], tile_rows: int | None = None) -> list[R]:
        """``reduce`` of each tile's pairs (of ``tile_rows`` A rows, default the backend's), as
        each tile is done, so that only the reductions are held; backends that run tiles
        elsewhere may reduce all of ``_run`` at once."""
        rows_per_tile = tile_rows or self.tile_rows
        prepared = self._prepare(plan)
        # Tiles start with a buffer for the most pairs a tile has found so far (and a quarter):
        # at Dice 0.5 a tile of FEBRL 4 finds 1.5M, which the first guess made four retries.
        guess = [1 << 16]

        def tile(first: int) -> R:
            last = min(first + rows_per_tile, plan.rows)
            found = self._run_tile(prepared, plan, first, last, guess[0])
            guess[0] = max(guess[0], len(found.left) + len(found.left) // 4)
            if progress is not None:
                progress(last - first)
            return reduce(found)

        return self._map(tile, range(0, plan.rows, rows_per_tile))

    @final
    def _plans(self, a: ClkSet, b: ClkSet | None, needed: np.ndarray,
               blocking: LshBlocking | None) -> Iterator[Plan]:
        """The run's plans, made one at a time: all pairs, or one per band."""
        if blocking is None:
            yield all_pairs_plan(a, b, needed)
            return
        lowest, highest = popcount_bounds(needed, a.length)
        positions = blocking.positions(a.length)
        for band in range(blocking.bands):
            # One band's keys at a time: all bands' keys of 100M records would be 51 GB.
            band_positions = positions[band:band + 1]
            a_keys = band_keys(a, band_positions)[:, 0]
            b_keys = None if b is None else band_keys(b, band_positions)[:, 0]
            a_order, b_order, starts, stops = band_plan(
                a.popcounts, None if b is None else b.popcounts, a_keys, b_keys, lowest,
                highest)
            yield _sorted_plan(a, b, a_order, b_order, starts, stops, needed)

    def _band_parts(self, a: ClkSet, b: ClkSet | None, needed: np.ndarray,
                    blocking: LshBlocking, done: Callable[[int], None]) -> list[PairArrays]:
        """Each band's pairs, those of an earlier band left out (``reported_by_band``;
        ``done(band)`` once it is finished): plans made here, one band at a time, each plan's
        tiles side by side. A cluster may make the plans where it runs."""
        positions = blocking.positions(a.length)
        parts = []
        for band, plan in enumerate(self._plans(a, b, needed, blocking)):
            found = self._run(plan, None)
            other = a if b is None else b
            keep = np.concatenate([np.ones(0, dtype=bool)] + [  # rows gathered a chunk at a time
                reported_by_band(a.words[found.left[k:k + _CHUNK]],
                                 other.words[found.right[k:k + _CHUNK]], positions, band)
                for k in range(0, len(found.left), _CHUNK)])
            parts.append(PairArrays(found.left[keep], found.right[keep], found.counts[keep],
                                    found.visited, found.completed))
            done(band)
        return parts

    @final
    def _blocked(self, a: ClkSet, b: ClkSet | None, needed: np.ndarray,
                 blocking: LshBlocking, progress: ProgressCallback | None) -> PairArrays:
        """Band by band; a pair sharing several bands is compared in each, reported by the
        first (within one set, oriented and once: a band may find it both ways)."""

        def band_done(band: int) -> None:
            if progress is not None:
                progress((band + 1) * len(a) // blocking.bands - band * len(a) // blocking.bands)

        found = PairArrays.concat(self._band_parts(a, b, needed, blocking, band_done))
        left, right = _oriented(found, b is None)
        width = max(len(a if b is None else b), 1)
        unique, first = np.unique(left * width + right, return_index=True)
        return PairArrays(unique // width, unique % width, found.counts[first], found.visited,
                          found.completed)

    @final
    def candidates(self, a: ClkSet, b: ClkSet | None, threshold: float, *,
                   blocking: LshBlocking | None = None,
                   progress: ProgressCallback | None = None) -> Candidates:
        """Every pair with Dice >= ``threshold``, sorted by score descending, then left, right.

        ``b`` None finds pairs within ``a`` (left < right), for deduplication. With
        ``blocking`` only pairs sharing a band are compared (fewer comparisons, possibly fewer
        matches). ``progress`` is called with the A rows done as work proceeds.
        """
        other = a if b is None else b
        total = len(a) * (len(a) - 1) // 2 if b is None else len(a) * len(other)
        found = self._pairs_at(a, b, threshold, blocking, progress)
        left, right = _oriented(found, b is None)
        sums = a.popcounts[left].astype(np.int64) + other.popcounts[right]
        left, right, scores = in_anonlink_order(left, right, found.counts, sums)
        return Candidates(left, right, scores, found.visited, total, found.completed)

    @final
    def score_counts(self, a: ClkSet, b: ClkSet | None, threshold: float, edges: np.ndarray,
                     progress: ProgressCallback | None = None) -> np.ndarray:
        """How many of the pairs ``candidates`` finds (all pairs, no blocking) score in each
        bin of ``edges`` (``np.histogram``'s): what a density of them needs (the deduplication
        threshold's valley). Counted tile by tile, never holding the pairs, in tiles of at most
        ``_COUNTED_TILE_PAIRS`` pairs in their windows: low thresholds pass most pairs, and a
        sample of records searched against a whole party meets it all. `pprl dedup` of 60,000
        of clkhash's random names (20 million pairs searched for its valley, 4.6 million for
        its projection): 1.80 GB and 4.1 s holding the pairs, 0.37 GB and 2.7 s counting."""
        other = a if b is None else b

        def counted(found: PairArrays) -> np.ndarray:
            scores = dice_scores(found.counts, a.popcounts[found.left],
                                 other.popcounts[found.right])
            return np.histogram(scores, bins=edges)[0]

        if not self._searchable(a, b):
            return np.zeros(len(edges) - 1, dtype=np.int64)
        plan = all_pairs_plan(a, b, min_counts(threshold, a.length))
        window = plan.window_pairs(0, plan.rows) / max(plan.rows, 1)
        rows = int(min(self.tile_rows, max(16, _COUNTED_TILE_PAIRS // max(window, 1.0))))
        return np.asarray(np.sum(self._reduced(plan, progress, counted, rows), axis=0,
                                 dtype=np.int64))

    def _pairs_at(self, a: ClkSet, b: ClkSet | None, threshold: float,
                  blocking: LshBlocking | None, progress: ProgressCallback | None
                  ) -> PairArrays:
        """The search behind ``candidates``: every pair at ``threshold`` (with ``blocking``,
        of those sharing a band), in the kernel's order."""
        if not self._searchable(a, b):
            return PairArrays.empty()
        needed = min_counts(threshold, a.length)
        if blocking is not None:
            return self._blocked(a, b, needed, blocking, progress)
        return self._run(all_pairs_plan(a, b, needed), progress)

    def _searchable(self, a: ClkSet, b: ClkSet | None) -> bool:
        """Whether both sides hold records (ValueError where their CLK lengths differ)."""
        if b is not None and a.length != b.length:
            raise ValueError(f"CLK lengths differ: {a.length} and {b.length} bits")
        other = a if b is None else b
        log.debug("backend %s: %d x %d records", self.name, len(a), len(other))
        return len(a) > 0 and len(other) > 0


def _oriented(found: PairArrays, same: bool) -> tuple[np.ndarray, np.ndarray]:
    """Within one set, each pair as (smaller index, larger index)."""
    if not same:
        return found.left, found.right
    return np.minimum(found.left, found.right), np.maximum(found.left, found.right)
