"""The values passed between the stages of candidate generation: a comparison plan (which A
rows meet which B rows), one tile's pairs, and the candidates handed to the solvers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["Candidates", "Plan", "PairArrays", "ProgressCallback", "dice_scores"]

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


@dataclass(frozen=True)
class Plan:
    """Who meets whom: A row r (``a_words[r]``, original index ``a_index[r]``) is compared
    with rows [starts[r], stops[r]) of B, whose rows are sorted by popcount (within a block
    of a blocked run: by block, then popcount). ``needed[s]`` is the least AND count a pair
    with popcount sum s needs. Pairs are reported as (a_index, b_index); ``same`` says A and
    B are one set (deduplication), A being B itself with windows past the row."""

    a_words: np.ndarray
    a_pops: np.ndarray
    a_index: np.ndarray
    b_words: np.ndarray
    b_pops: np.ndarray
    b_index: np.ndarray
    starts: np.ndarray
    stops: np.ndarray
    needed: np.ndarray
    same: bool

    @property
    def rows(self) -> int:
        return len(self.a_pops)

    def window_pairs(self, first: int, last: int) -> int:
        """How many pairs A rows [first, last) may visit: an output buffer's upper bound."""
        return int((self.stops[first:last] - self.starts[first:last]).sum())


@dataclass(frozen=True)
class PairArrays:
    """Pairs reaching the threshold, as (a_index, b_index, AND count) arrays, with the pairs
    visited (compared at least partly) and compared in full."""

    left: np.ndarray
    right: np.ndarray
    counts: np.ndarray
    visited: int
    completed: int

    @classmethod
    def empty(cls) -> PairArrays:
        none = np.zeros(0, dtype=np.int64)
        return cls(none, none, none, 0, 0)

    @classmethod
    def concat(cls, parts: list[PairArrays]) -> PairArrays:
        if not parts:
            return cls.empty()
        return cls(np.concatenate([p.left for p in parts]),
                   np.concatenate([p.right for p in parts]),
                   np.concatenate([p.counts for p in parts]),
                   sum(p.visited for p in parts), sum(p.completed for p in parts))


def dice_scores(counts: np.ndarray, left_pops: np.ndarray, right_pops: np.ndarray) -> np.ndarray:
    """2c / (a + b) in float64, as anonlink computes it; 0.0 when both are empty."""
    sums = (left_pops.astype(np.int64) + right_pops.astype(np.int64)).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        scores = 2.0 * counts.astype(np.float64) / sums
    scores[sums == 0] = 0.0
    return scores

