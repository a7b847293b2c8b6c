"""LSH blocking on CLK bits (bit sampling for Hamming distance).

Each of ``bands`` bands samples ``bits_per_band`` bit positions (seeded, the same for every
party); two records are compared only if all sampled bits agree in at least one band. Records
of one person agree on most bits, unrelated records on far fewer, so bands keep true matches
and drop most other pairs. What it costs in recall is measured (``blocking_quality``), never
assumed: blocking is off by default. Blocking only chooses who meets whom (``band_plan``);
the comparing is done by the chosen backend's kernel (``linker.backends``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numba
import numpy as np

from .clkset import ClkSet

_BATCH_PAIRS = 1 << 22

__all__ = ["LshBlocking", "BlockingQuality", "band_keys", "band_plan", "blocked_pairs",
           "blocking_quality", "reported_by_band", "words_band_keys"]


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


@numba.njit(cache=True, nogil=True)
def _keys_kernel(clk_bytes: np.ndarray, byte_at: np.ndarray, shift_at: np.ndarray,
                 keys: np.ndarray) -> None:  # pragma: no cover
    for r in range(clk_bytes.shape[0]):
        for band in range(byte_at.shape[0]):
            key = np.uint64(0)
            for k in range(byte_at.shape[1]):
                bit = np.uint64((clk_bytes[r, byte_at[band, k]] >> shift_at[band, k]) & 1)
                key |= bit << np.uint64(k)
            keys[r, band] = key


def band_keys(clks: ClkSet, positions: np.ndarray) -> np.ndarray:
    """uint64 key per record and band: bit k is sampled bit ``positions[band, k]``, numbered
    as ``np.unpackbits`` numbers the CLK's bytes (any order would do, as long as every party
    uses the same). Compiled: unpacking every bit with numpy and picking was 20x slower."""
    return words_band_keys(clks.words, positions)


def words_band_keys(words: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """``band_keys`` of rows of packed uint64 words (n, l/64), e.g. a chunk read from a file."""
    keys = np.empty((len(words), positions.shape[0]), dtype=np.uint64)
    _keys_kernel(np.ascontiguousarray(words).view(np.uint8), (positions // 8).astype(np.int64),
                 (7 - positions % 8).astype(np.uint8), keys)
    return keys


def reported_by_band(a_words: np.ndarray, b_words: np.ndarray, positions: np.ndarray,
                     band: int, chunk: int = 1 << 16) -> np.ndarray:
    """Whether pair p (rows ``a_words[p]`` and ``b_words[p]``, found in ``band``) is reported
    there: it shares no earlier band's key. A pair sharing several bands is compared in each
    but reported by the first only, so the bands' pairs are disjoint: nothing after has to
    hold or merge a pair once per band it shares (at 10M records, 32 bands' candidate files
    held each true pair about 30 times)."""
    keep = np.ones(len(a_words), dtype=bool)
    earlier = positions[:band]
    if band == 0 or not len(a_words):
        return keep
    for first in range(0, len(a_words), chunk):
        rows = slice(first, first + chunk)
        shared = words_band_keys(a_words[rows], earlier) == words_band_keys(b_words[rows],
                                                                            earlier)
        keep[rows] = ~shared.any(axis=1)
    return keep


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
    a_keys = band_keys(a, positions)
    b_keys = None if b is None else band_keys(b, positions)
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


def band_plan(a_pops: np.ndarray, b_pops: np.ndarray | None, a_keys: np.ndarray,
              b_keys: np.ndarray | None, lowest: np.ndarray, highest: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One band as windows for a backend's kernel: (A order, B order, starts, stops).

    B is sorted by (key, popcount), so a bucket is a contiguous run of B sorted by popcount
    and each A row's window is the part of its bucket within its popcount bounds
    (``lowest``/``highest`` per popcount). Within one set A is B itself and row p only looks
    past p. A row whose key no B row has gets an empty window. ``b_pops`` and ``b_keys`` are
    None within one set.
    """
    same = b_pops is None
    keys = a_keys if b_keys is None else np.concatenate([a_keys, b_keys])
    if len(keys) and int(keys.max()) < 1 << 31:  # the key itself leaves room for the popcount
        rank = keys.astype(np.int64)
    else:
        rank = np.unique(keys, return_inverse=True)[1].astype(np.int64)
    rows = len(a_pops)
    a_rank, b_rank = rank[:rows], (rank if same else rank[rows:])
    a_pops = a_pops.astype(np.int64)
    b_pops = a_pops if b_pops is None else b_pops.astype(np.int64)
    b_code = (b_rank << 32) | b_pops
    b_order = np.argsort(b_code, kind="stable").astype(np.int64)
    a_order = b_order if same else np.argsort((a_rank << 32) | a_pops, kind="stable")
    b_sorted = b_code[b_order]
    a_rank, a_pops = a_rank[a_order], a_pops[a_order]
    starts = np.searchsorted(b_sorted, (a_rank << 32) + lowest[a_pops], side="left")
    stops = np.searchsorted(b_sorted, (a_rank << 32) + highest[a_pops], side="right")
    if same:
        starts = np.maximum(starts, np.arange(1, rows + 1))
    return (a_order.astype(np.int64), b_order, starts.astype(np.int64),
            np.maximum(stops, starts).astype(np.int64))


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
