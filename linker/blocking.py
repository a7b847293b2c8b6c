"""LSH blocking on CLK bits (bit sampling for Hamming distance).

Each of ``bands`` bands samples ``bits_per_band`` bit positions (seeded, the same for every
party); two records are compared only if all sampled bits agree in at least one band. Records
of one person agree on most bits, unrelated records on far fewer, so bands keep true matches
and drop most other pairs. What it costs in recall is measured (``blocking_quality``), never
assumed: blocking is off by default.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .clkset import ClkSet
from .dice_kernel import min_counts, pair_counts

__all__ = ["LshBlocking", "BlockingQuality", "blocked_pairs", "blocked_candidates",
           "blocking_quality"]


@dataclass(frozen=True)
class LshBlocking:
    # On FEBRL4 with the shipped `febrl` schema: pair completeness 0.955, reduction ratio
    # 0.9936 (tests/test_linker_quality.py measures it).
    bands: int = 32
    bits_per_band: int = 16
    seed: int = 0

    def positions(self, length: int) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        return np.stack([rng.choice(length, self.bits_per_band, replace=False)
                         for _ in range(self.bands)])


def _band_keys(clks: ClkSet, positions: np.ndarray) -> np.ndarray:
    """uint64 key per record and band from the sampled bits (packing order is irrelevant,
    it only has to be the same for every party)."""
    bytes_view = clks.words.view(np.uint8)
    keys = np.zeros((len(clks), positions.shape[0]), dtype=np.uint64)
    for band, picks in enumerate(positions):
        for k, p in enumerate(picks.tolist()):
            bit = (bytes_view[:, p // 8] >> np.uint8(7 - p % 8)) & np.uint8(1)
            keys[:, band] |= bit.astype(np.uint64) << np.uint64(k)
    return keys


def _pairs_with_equal_keys(a_keys: np.ndarray, b_keys: np.ndarray | None
                           ) -> tuple[np.ndarray, np.ndarray]:
    """All (i, j) with a_keys[i] == b_keys[j] (i < j within one set when b_keys is None)."""
    same = b_keys is None
    b_keys = a_keys if b_keys is None else b_keys
    a_order, b_order = np.argsort(a_keys, kind="stable"), np.argsort(b_keys, kind="stable")
    a_sorted, b_sorted = a_keys[a_order], b_keys[b_order]
    shared, a_first, a_count = np.unique(a_sorted, return_index=True, return_counts=True)
    b_first = np.searchsorted(b_sorted, shared, side="left")
    b_count = np.searchsorted(b_sorted, shared, side="right") - b_first
    sizes = a_count * b_count
    total = int(sizes.sum())
    group = np.repeat(np.arange(len(shared)), sizes)
    within = np.arange(total) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    left = a_order[a_first[group] + within // b_count[group]]
    right = b_order[b_first[group] + within % b_count[group]]
    if same:
        keep = left < right
        left, right = left[keep], right[keep]
    return left, right


def blocked_pairs(a: ClkSet, b: ClkSet | None, blocking: LshBlocking
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (i, j) pairs sharing at least one band."""
    positions = blocking.positions(a.length)
    a_keys = _band_keys(a, positions)
    b_keys = None if b is None else _band_keys(b, positions)
    width = len(a) if b is None else len(b)
    codes = []
    for band in range(blocking.bands):
        left, right = _pairs_with_equal_keys(a_keys[:, band],
                                             None if b_keys is None else b_keys[:, band])
        codes.append(left.astype(np.int64) * width + right)
    unique = np.unique(np.concatenate(codes)) if codes else np.zeros(0, dtype=np.int64)
    return unique // max(width, 1), unique % max(width, 1)


def blocked_candidates(a: ClkSet, b: ClkSet | None, threshold: float,
                       blocking: LshBlocking) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(left, right, AND count, pairs compared) of blocked pairs reaching ``threshold``."""
    left, right = blocked_pairs(a, b, blocking)
    other = a if b is None else b
    counts = pair_counts(a.words, other.words, left, right)
    needed = min_counts(threshold, a.length)
    keep = counts >= needed[a.popcounts[left].astype(np.int64) + other.popcounts[right]]
    return left[keep], right[keep], counts[keep], len(left)


@dataclass(frozen=True)
class BlockingQuality:
    pair_completeness: float
    reduction_ratio: float
    pairs: int
    true_pairs: int


def blocking_quality(a: ClkSet, b: ClkSet, true_pairs: set[tuple[int, int]],
                     blocking: LshBlocking) -> BlockingQuality:
    """Pair completeness (share of true pairs kept) and reduction ratio (share of all pairs
    dropped) of ``blocking`` on two sets with known true pairs (i, j)."""
    left, right = blocked_pairs(a, b, blocking)
    kept = set(zip(left.tolist(), right.tolist(), strict=True))
    found = sum(1 for pair in true_pairs if pair in kept)
    total = len(a) * len(b)
    return BlockingQuality(found / len(true_pairs) if true_pairs else 1.0,
                           1.0 - len(kept) / total if total else 0.0, len(kept),
                           len(true_pairs))
