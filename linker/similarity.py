"""All pairs of two CLK sets with Dice >= threshold, behind one small backend interface.

Callers use :func:`candidate_pairs`; a backend (CPU today; GPU or distributed later) only has
to turn two CLK sets and a threshold into (i, j, AND count) arrays. Results are sorted as
anonlink sorts them: score descending, then i, then j.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import numba
import numpy as np
from llvmlite import binding as llvm

from .blocking import LshBlocking, blocked_candidates
from .clkset import ClkSet
from .dice_kernel import min_counts, popcount_windows, second_half_popcounts, tile_pairs
from .dice_lanes import LaneSide, lane_tile_pairs, least_counts

__all__ = ["Candidates", "SimilarityBackend", "CpuBackend", "candidate_pairs", "dice_scores",
           "vector_popcount_available"]

ProgressCallback = Callable[[int], None]


@dataclass(frozen=True)
class Candidates:
    """Candidate pairs: left[p] in the first set, right[p] in the second, score[p] their Dice
    coefficient. ``compared`` counts pairs whose AND was (at least partly) computed,
    ``completed`` those compared to the last word (the rest stopped halfway, unable to reach
    the threshold), ``total`` all n x m (or n(n-1)/2) pairs."""

    left: np.ndarray
    right: np.ndarray
    score: np.ndarray
    compared: int = 0
    total: int = 0
    completed: int = 0

    def __len__(self) -> int:
        return len(self.score)

    @property
    def pruned_share(self) -> float:
        """Share of all pairs never compared word by word."""
        return 1.0 - self.compared / self.total if self.total else 0.0


class SimilarityBackend(Protocol):
    name: str

    def pairs(self, a: ClkSet, b: ClkSet | None, threshold: float,
              progress: ProgressCallback | None = None) -> tuple[np.ndarray, np.ndarray,
                                                                 np.ndarray, int, int]:
        """(left, right, AND count, pairs compared, pairs compared in full) of every pair
        reaching ``threshold``; ``b`` None means pairs within ``a`` with left < right."""


def dice_scores(counts: np.ndarray, left_pops: np.ndarray, right_pops: np.ndarray) -> np.ndarray:
    """2c / (a + b) in float64, as anonlink computes it; 0.0 when both are empty."""
    sums = (left_pops.astype(np.int64) + right_pops.astype(np.int64)).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        scores = 2.0 * counts.astype(np.float64) / sums
    scores[sums == 0] = 0.0
    return scores


TileRun = Callable[[int, int, np.ndarray, np.ndarray, np.ndarray], tuple[int, int, int]]


@dataclass(frozen=True)
class _Plan:
    """A kernel's inputs, prepared once per call: ``run(first, last, out_a, out_b, out_c)``
    finds the pairs of A rows [first, last); ``starts``/``stops`` are their windows in B."""

    starts: np.ndarray
    stops: np.ndarray
    run: TileRun


def vector_popcount_available() -> bool:
    """Whether numba compiles for a CPU that counts bits in vectors (AVX-512 VPOPCNTDQ)."""
    name, features = (getattr(numba.config, key, None) for key in ("CPU_NAME", "CPU_FEATURES"))
    if name or features:  # NUMBA_CPU_NAME / NUMBA_CPU_FEATURES: compiled for another CPU
        return "+avx512vpopcntdq" in (features or "")
    return bool(llvm.get_host_cpu_features().get("avx512vpopcntdq", False))


def _scalar_plan(a: ClkSet, b_words: np.ndarray, b_pops: np.ndarray, order: np.ndarray,
                 needed: np.ndarray, upper_only: bool) -> _Plan:
    b_rest = second_half_popcounts(b_words)
    a_rest = second_half_popcounts(a.words)
    a_pops = a.popcounts.astype(np.int64)
    starts, stops = popcount_windows(a_pops, b_pops, needed, a.length)
    a_index = np.arange(len(a), dtype=np.int64)
    b_index = order.astype(np.int64)

    def run(first: int, last: int, out_a: np.ndarray, out_b: np.ndarray, out_c: np.ndarray
            ) -> tuple[int, int, int]:
        return tile_pairs(a.words[first:last], a_pops[first:last], a_rest[first:last],  # type: ignore[no-any-return]
                          a_index[first:last], b_words, b_pops, b_rest, b_index,
                          starts[first:last], stops[first:last], needed, upper_only,
                          out_a, out_b, out_c)

    return _Plan(starts, stops, run)


def _lane_plan(a: ClkSet, b_words: np.ndarray, b_pops: np.ndarray, order: np.ndarray,
               needed: np.ndarray, upper_only: bool) -> _Plan:
    """Within one set, A is the popcount-sorted set itself and row p only looks at sorted
    rows after p, so each pair is compared once (oriented left < right afterwards)."""
    b_index = order.astype(np.int64)
    if upper_only:
        a_words, a_pops, a_index = b_words, b_pops, b_index
    else:
        a_words, a_pops = np.ascontiguousarray(a.words), a.popcounts.astype(np.int64)
        a_index = np.arange(len(a), dtype=np.int64)
    side = LaneSide.of(b_words, b_pops)
    a_rest = side.rest[:len(a)] if upper_only else second_half_popcounts(a_words)
    starts, stops = popcount_windows(a_pops, b_pops, needed, a.length)
    if upper_only:
        starts = np.maximum(starts, np.arange(1, len(a) + 1))
        stops = np.maximum(stops, starts)
    least_needed = least_counts(needed)

    def run(first: int, last: int, out_a: np.ndarray, out_b: np.ndarray, out_c: np.ndarray
            ) -> tuple[int, int, int]:
        return lane_tile_pairs(a_words[first:last], a_pops[first:last],  # type: ignore[no-any-return]
                               a_rest[first:last], a_index[first:last], side.lanes, side.pops,
                               side.rest, side.low_pops, b_index, starts[first:last],
                               stops[first:last], needed, least_needed, out_a, out_b, out_c)

    return _Plan(starts, stops, run)


class CpuBackend:
    """Tiles of A rows against popcount-sorted B on a pool of threads (the kernels release
    the GIL). ``kernel``: "lanes" (eight B rows per vector step, ``dice_lanes``), "scalar"
    (``dice_kernel``) or "auto", lanes where the CPU has AVX-512 VPOPCNTDQ. Memory: B's
    sorted copy (and for lanes its copy in lane groups) plus one output buffer per running
    tile."""

    name = "cpu"

    def __init__(self, workers: int = 1, tile_rows: int = 1024, kernel: str = "auto") -> None:
        if kernel not in ("auto", "lanes", "scalar"):
            raise ValueError(f"unknown kernel {kernel!r}: auto, lanes or scalar")
        self.workers = max(1, workers)
        self.tile_rows = tile_rows
        if kernel == "auto":
            kernel = "lanes" if vector_popcount_available() else "scalar"
        self.kernel = kernel

    def pairs(self, a: ClkSet, b: ClkSet | None, threshold: float,
              progress: ProgressCallback | None = None) -> tuple[np.ndarray, np.ndarray,
                                                                 np.ndarray, int, int]:
        upper_only = b is None
        other = a if b is None else b
        empty = np.zeros(0, dtype=np.int64)
        if len(a) == 0 or len(other) == 0:
            return empty, empty, empty, 0, 0
        needed = min_counts(threshold, a.length)
        order = np.argsort(other.popcounts, kind="stable")
        b_words = np.ascontiguousarray(other.words[order])
        b_pops = other.popcounts[order].astype(np.int64)
        make_plan = _lane_plan if self.kernel == "lanes" else _scalar_plan
        plan = make_plan(a, b_words, b_pops, order, needed, upper_only)
        lock = threading.Lock()

        def run_tile(first: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
            last = min(first + self.tile_rows, len(a))
            window = int((plan.stops[first:last] - plan.starts[first:last]).sum())
            capacity = max(1024, min(window, 1 << 16))
            while True:
                out_a = np.empty(capacity, dtype=np.int64)
                out_b = np.empty(capacity, dtype=np.int64)
                out_c = np.empty(capacity, dtype=np.int64)
                found, visited, completed = plan.run(first, last, out_a, out_b, out_c)
                if found >= 0:
                    break
                capacity = min(4 * capacity, max(window, 1))
            if progress is not None:
                with lock:
                    progress(last - first)
            return (out_a[:found].copy(), out_b[:found].copy(), out_c[:found].copy(), visited,
                    completed)

        firsts = range(0, len(a), self.tile_rows)
        if self.workers == 1:
            parts = [run_tile(f) for f in firsts]
        else:
            with ThreadPoolExecutor(self.workers, thread_name_prefix="pprl-dice") as pool:
                parts = list(pool.map(run_tile, firsts))
        left = np.concatenate([p[0] for p in parts])
        right = np.concatenate([p[1] for p in parts])
        if upper_only:
            left, right = np.minimum(left, right), np.maximum(left, right)
        counts = np.concatenate([p[2] for p in parts])
        return left, right, counts, sum(p[3] for p in parts), sum(p[4] for p in parts)


def candidate_pairs(a: ClkSet, b: ClkSet | None, threshold: float, *,
                    backend: SimilarityBackend | None = None,
                    blocking: LshBlocking | None = None,
                    progress: ProgressCallback | None = None) -> Candidates:
    """Every pair with Dice >= ``threshold``, sorted by score descending, then left, right.

    ``b`` None finds pairs within ``a`` (left < right), for deduplication. With ``blocking``
    only pairs sharing a block are compared (fewer comparisons, possibly fewer matches).
    """
    if b is not None and a.length != b.length:
        raise ValueError(f"CLK lengths differ: {a.length} and {b.length} bits")
    if blocking is not None:
        workers = backend.workers if isinstance(backend, CpuBackend) else 1
        left, right, counts, compared = blocked_candidates(a, b, threshold, blocking,
                                                           workers)
        completed = compared
        if progress is not None:
            progress(len(a))
    else:
        backend = backend or CpuBackend()
        left, right, counts, compared, completed = backend.pairs(a, b, threshold, progress)
    other = a if b is None else b
    scores = dice_scores(counts, a.popcounts[left], other.popcounts[right])
    order = np.lexsort((right, left, -scores))
    total = len(a) * (len(a) - 1) // 2 if b is None else len(a) * len(b)
    return Candidates(left[order], right[order], scores[order], compared, total, completed)
