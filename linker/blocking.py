"""LSH blocking on CLK bits (bit sampling for Hamming distance).

Each of ``bands`` bands samples ``bits_per_band`` bit positions (seeded, the same for every
party); two records are compared only if all sampled bits agree in at least one band. Records
of one person agree on most bits, unrelated records on far fewer, so bands keep true matches
and drop most other pairs. What it costs in recall is measured (``blocking_quality``), never
assumed: blocking is off by default.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .clkset import ClkSet
from .dice_kernel import min_counts, pair_counts

_BATCH_PAIRS = 1 << 22

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


def _band_keys(clks: ClkSet, positions: np.ndarray, rows: int = 1 << 15) -> np.ndarray:
    """uint64 key per record and band from the sampled bits (packing order is irrelevant,
    it only has to be the same for every party). Works on row chunks to bound memory."""
    bytes_view = clks.words.view(np.uint8)
    shifts = np.arange(positions.shape[1], dtype=np.uint64)
    keys = np.empty((len(clks), positions.shape[0]), dtype=np.uint64)
    for start in range(0, len(clks), rows):
        bits = np.unpackbits(bytes_view[start:start + rows], axis=1)[:, positions]
        keys[start:start + rows] = (bits.astype(np.uint64) << shifts).sum(axis=2,
                                                                          dtype=np.uint64)
    return keys


def _pairs_with_equal_keys(a_keys: np.ndarray, b_keys: np.ndarray | None,
                           batch: int = _BATCH_PAIRS) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """All (i, j) with a_keys[i] == b_keys[j] (i < j within one set when b_keys is None), in
    batches of at most ``batch`` pairs, so memory stays bounded however big a bucket is."""
    same = b_keys is None
    b_keys = a_keys if b_keys is None else b_keys
    a_order, b_order = np.argsort(a_keys, kind="stable"), np.argsort(b_keys, kind="stable")
    a_sorted, b_sorted = a_keys[a_order], b_keys[b_order]
    shared, a_first, a_count = np.unique(a_sorted, return_index=True, return_counts=True)
    b_first = np.searchsorted(b_sorted, shared, side="left")
    b_count = np.searchsorted(b_sorted, shared, side="right") - b_first
    sizes = a_count * b_count
    ends = np.cumsum(sizes)
    total = int(ends[-1]) if len(ends) else 0
    for start in range(0, total, batch):
        flat = np.arange(start, min(start + batch, total), dtype=np.int64)
        group = np.searchsorted(ends, flat, side="right")
        within = flat - (ends[group] - sizes[group])
        left = a_order[a_first[group] + within // b_count[group]]
        right = b_order[b_first[group] + within % b_count[group]]
        if same:
            keep = left < right
            left, right = left[keep], right[keep]
        yield left, right


def _band_pairs(a: ClkSet, b: ClkSet | None, blocking: LshBlocking
                ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    positions = blocking.positions(a.length)
    a_keys = _band_keys(a, positions)
    b_keys = None if b is None else _band_keys(b, positions)
    for band in range(blocking.bands):
        yield from _pairs_with_equal_keys(a_keys[:, band],
                                          None if b_keys is None else b_keys[:, band])


def blocked_pairs(a: ClkSet, b: ClkSet | None, blocking: LshBlocking
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (i, j) pairs sharing at least one band (all in memory: for measuring)."""
    width = max(len(a) if b is None else len(b), 1)
    codes = [left * width + right for left, right in _band_pairs(a, b, blocking)]
    unique = np.unique(np.concatenate(codes)) if codes else np.zeros(0, dtype=np.int64)
    return unique // width, unique % width


def blocked_candidates(a: ClkSet, b: ClkSet | None, threshold: float,
                       blocking: LshBlocking) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(left, right, AND count, pairs compared) of blocked pairs reaching ``threshold``.

    Streams the bands' pairs batch by batch and keeps only those that pass, so memory is
    bounded by the batch and the result. A pair sharing several bands is compared once per
    band (``compared`` counts every comparison).
    """
    other = a if b is None else b
    width = max(len(other), 1)
    needed = min_counts(threshold, a.length)
    codes, counts = [], []
    compared = 0
    for left, right in _band_pairs(a, b, blocking):
        count = pair_counts(a.words, other.words, left, right)
        keep = count >= needed[a.popcounts[left].astype(np.int64) + other.popcounts[right]]
        codes.append(left[keep] * width + right[keep])
        counts.append(count[keep])
        compared += len(left)
    if not codes:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty, 0
    unique, first = np.unique(np.concatenate(codes), return_index=True)
    return unique // width, unique % width, np.concatenate(counts)[first], compared


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
