"""The CPU backend: numba kernels on a pool of threads (the kernels release the GIL)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from tokenizer.numba_start import start_numba

from ..bit_order import kernel_order, permute_rows
from ..dice_kernel import second_half_popcounts, tile_pairs
from ..dice_lanes import LaneSide, lane_tile_pairs, least_counts
from .base import Backend
from .types import PairArrays, Plan

__all__ = ["CpuBackend", "KERNELS"]

KERNELS = ("auto", "lanes", "scalar")

T = TypeVar("T")
R = TypeVar("R")


_PERMUTED_ROWS = 8192  # rows of a set a thread permutes at once


@dataclass(frozen=True)
class _Prepared:
    """Per plan: A's words in the order the kernels compare them (``bit_order``: the plan's,
    or with the bits reordered where that pays); for the scalar kernel B's words in that order
    and second-half popcounts of A and B, for the lanes kernel B in lane groups (of its words
    in that order, which are then not kept) and the least count each popcount sum needs; the
    words counted before the first test (``early``: the lanes kernel's choice, the scalar
    kernel tests at the half)."""

    a_words: np.ndarray
    b_words: np.ndarray | None
    a_rest: np.ndarray | None
    b_rest: np.ndarray | None
    lanes: LaneSide | None
    least_needed: np.ndarray
    early: int


class CpuBackend(Backend):
    """Tiles of A rows against popcount-sorted B on ``workers`` threads.

    Args:
        workers: threads comparing tiles.
        tile_rows: A rows per tile.
        kernel: "lanes" (eight B rows per vector step, ``dice_lanes``), "scalar"
            (``dice_kernel``) or "auto": lanes, on any CPU (``dice_lanes``: where the CPU
            counts no bits in vectors, LLVM's table lookup per byte still beats the scalar
            kernel's POPCNT per word).

    Memory: B's sorted copy (and for lanes its copy in lane groups) plus one output buffer
    per running tile; where the bits are reordered (``bit_order``), a copy of A and of B.
    """

    name = "cpu"

    def __init__(self, workers: int = 1, tile_rows: int = 1024, kernel: str = "auto") -> None:
        super().__init__(tile_rows)
        if kernel not in KERNELS:
            raise ValueError(f"unknown kernel {kernel!r}: auto, lanes or scalar")
        self.workers = max(1, workers)
        self.kernel = "lanes" if kernel == "auto" else kernel

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "kernel": self.kernel}

    def _map(self, function: Callable[[T], R], items: Sequence[T]) -> list[R]:
        if self.workers == 1 or len(items) < 2:
            return [function(item) for item in items]
        with ThreadPoolExecutor(self.workers, thread_name_prefix="pprl-dice") as pool:
            return list(pool.map(function, items))

    def _prepare(self, plan: Plan) -> _Prepared:
        start_numba()  # here, not in the first tile's thread: without scipy (0.2 s)
        order = kernel_order(plan.a_words, plan.b_words, plan.needed,
                             plan.window_pairs(0, plan.rows), self.workers,
                             per_word=self.kernel == "lanes")
        a_words, b_words = self._in_order(plan, order.dest)
        if self.kernel == "lanes":
            side = LaneSide.of(b_words, plan.b_pops)
            return _Prepared(a_words, None, None, None, side, least_counts(plan.needed),
                             order.early)
        a_rest = second_half_popcounts(a_words)
        b_rest = a_rest if plan.same else second_half_popcounts(b_words)
        return _Prepared(a_words, b_words, a_rest, b_rest, None, plan.needed, order.early)

    def _in_order(self, plan: Plan, dest: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """A's and B's words with their bits moved to ``dest`` (None: as they are)."""
        if dest is None:
            return plan.a_words, plan.b_words

        def permuted(words: np.ndarray) -> np.ndarray:
            out = np.empty_like(words)
            self._map(lambda first: permute_rows(words[first:first + _PERMUTED_ROWS], dest,
                                                 out[first:first + _PERMUTED_ROWS]),
                      range(0, len(words), _PERMUTED_ROWS))
            return out

        b_words = permuted(plan.b_words)
        return (b_words if plan.same else permuted(plan.a_words)), b_words

    def _tile(self, prepared: _Prepared, plan: Plan, first: int, last: int,
              capacity: int) -> PairArrays | None:
        out_a = np.empty(capacity, dtype=np.int64)
        out_b = np.empty(capacity, dtype=np.int64)
        out_c = np.empty(capacity, dtype=np.int64)
        rows = slice(first, last)
        side = prepared.lanes
        if side is None:
            assert prepared.a_rest is not None and prepared.b_rest is not None
            assert prepared.b_words is not None
            found, visited, completed = tile_pairs(
                prepared.a_words[rows], plan.a_pops[rows], prepared.a_rest[rows],
                plan.a_index[rows], prepared.b_words, plan.b_pops, prepared.b_rest, plan.b_index,
                plan.starts[rows], plan.stops[rows], plan.needed, False, out_a, out_b, out_c)
        else:
            found, visited, completed = lane_tile_pairs(
                prepared.a_words[rows], plan.a_pops[rows], plan.a_index[rows], side.lanes,
                side.pops, side.low_pops, plan.b_index, plan.starts[rows], plan.stops[rows],
                plan.needed, prepared.least_needed, out_a, out_b, out_c, prepared.early)
        if found < 0:
            return None
        return PairArrays(out_a[:found].copy(), out_b[:found].copy(), out_c[:found].copy(),
                          int(visited), int(completed))
