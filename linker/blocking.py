"""LSH blocking on CLK bits (bit sampling for Hamming distance).

Each of ``bands`` bands samples ``bits_per_band`` bit positions (seeded, the same for every
party); two records are compared only if all sampled bits agree in at least one band. Records
of one person agree on most bits, unrelated records on far fewer, so bands keep true matches
and drop most other pairs. What it costs in recall is measured (``blocking_quality``), never
assumed: blocking is off by default.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numba
import numpy as np

from .clkset import ClkSet
from .dice_kernel import min_counts, popcount64, second_half_popcounts

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


def _band_keys(clks: ClkSet, positions: np.ndarray) -> np.ndarray:
    """uint64 key per record and band: bit k is sampled bit ``positions[band, k]``, numbered
    as ``np.unpackbits`` numbers the CLK's bytes (any order would do, as long as every party
    uses the same). Compiled: unpacking every bit with numpy and picking was 20x slower."""
    keys = np.empty((len(clks), positions.shape[0]), dtype=np.uint64)
    _keys_kernel(clks.words.view(np.uint8), (positions // 8).astype(np.int64),
                 (7 - positions % 8).astype(np.uint8), keys)
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


_BUCKET_BLOCK_ROWS = 1024


@numba.njit(cache=True, nogil=True)
def _band_candidates(a_words: np.ndarray, a_pops: np.ndarray, a_rest: np.ndarray,
                     a_index: np.ndarray, a_first: np.ndarray, a_count: np.ndarray,
                     b_words: np.ndarray, b_pops: np.ndarray, b_rest: np.ndarray,
                     b_index: np.ndarray, b_first: np.ndarray, b_count: np.ndarray,
                     needed: np.ndarray, same: bool
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:  # pragma: no cover
    """(left, right, AND count, pairs in the band) of one band's pairs reaching ``needed``.

    Rows come sorted by key (``*_index``: their original indices), so a bucket is contiguous
    and read from cache; a big bucket of B is taken ``_BUCKET_BLOCK_ROWS`` rows at a time.
    Pairs are walked in place (within one set: each pair once, reported left < right), never
    listed. A pair whose popcounts cannot reach the threshold, or whose first half of words
    already rules it out, is not counted further (``tile_pairs``' test): the result is that
    of a full count.
    """
    width = a_words.shape[1]
    half = width // 2
    capacity = 1024
    out_a = np.empty(capacity, dtype=np.int64)
    out_b = np.empty(capacity, dtype=np.int64)
    out_c = np.empty(capacity, dtype=np.int64)
    found = 0
    pairs = 0
    for g in range(a_first.shape[0]):
        b_end = b_first[g] + b_count[g]
        for block in range(b_first[g], b_end, _BUCKET_BLOCK_ROWS):
            block_end = min(block + _BUCKET_BLOCK_ROWS, b_end)
            for x in range(a_first[g], a_first[g] + a_count[g]):
                lo = max(block, x + 1) if same else block
                pairs += max(block_end - lo, 0)
                for y in range(lo, block_end):
                    need = needed[a_pops[x] + b_pops[y]]
                    if need > min(a_pops[x], b_pops[y]):
                        continue
                    count = 0
                    for w in range(half):
                        count += popcount64(a_words[x, w] & b_words[y, w])  # type: ignore[call-arg]
                    if count + min(a_rest[x], b_rest[y]) < need:
                        continue
                    for w in range(half, width):
                        count += popcount64(a_words[x, w] & b_words[y, w])  # type: ignore[call-arg]
                    if count < need:
                        continue
                    if found == capacity:
                        capacity *= 2
                        out_a, out_b, out_c = (_grown(out_a, capacity), _grown(out_b, capacity),
                                               _grown(out_c, capacity))
                    i, j = a_index[x], b_index[y]
                    out_a[found], out_b[found] = (min(i, j), max(i, j)) if same else (i, j)
                    out_c[found] = count
                    found += 1
    return out_a[:found].copy(), out_b[:found].copy(), out_c[:found].copy(), pairs


@numba.njit(cache=True, nogil=True)
def _grown(values: np.ndarray, capacity: int) -> np.ndarray:  # pragma: no cover
    bigger = np.empty(capacity, dtype=values.dtype)
    bigger[:values.shape[0]] = values
    return bigger


def _buckets(a_keys: np.ndarray, b_keys: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sort orders of both key columns and, per key present in both, where its bucket starts
    in each sorted column and how many rows it holds."""
    a_order = np.argsort(a_keys, kind="stable")
    b_order = a_order if b_keys is a_keys else np.argsort(b_keys, kind="stable")
    a_sorted, b_sorted = a_keys[a_order], b_keys[b_order]
    shared, a_first, a_count = np.unique(a_sorted, return_index=True, return_counts=True)
    b_first = np.searchsorted(b_sorted, shared, side="left")
    b_count = np.searchsorted(b_sorted, shared, side="right") - b_first
    both = b_count > 0
    return a_order, a_first[both], a_count[both], b_order, b_first[both], b_count[both]


def blocked_candidates(a: ClkSet, b: ClkSet | None, threshold: float, blocking: LshBlocking,
                       workers: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(left, right, AND count, pairs compared) of blocked pairs reaching ``threshold``.

    Bands run on ``workers`` threads (the kernel releases the GIL). Memory: the keys, a
    key-sorted copy of the CLKs per running band (random row access was 2.4x slower at 1M
    records) and the passing pairs. A pair sharing several bands is compared once per band
    (``compared`` counts every comparison).
    """
    other = a if b is None else b
    width = max(len(other), 1)
    needed = min_counts(threshold, a.length)
    positions = blocking.positions(a.length)
    a_keys = _band_keys(a, positions)
    b_keys = a_keys if b is None else _band_keys(other, positions)
    a_pops, b_pops = a.popcounts.astype(np.int64), other.popcounts.astype(np.int64)
    a_rest = second_half_popcounts(a.words)
    b_rest = a_rest if b is None else second_half_popcounts(other.words)

    def run_band(band: int) -> tuple[np.ndarray, np.ndarray, int]:
        a_column = np.ascontiguousarray(a_keys[:, band])
        b_column = a_column if b is None else np.ascontiguousarray(b_keys[:, band])
        a_order, a_first, a_count, b_order, b_first, b_count = _buckets(a_column, b_column)
        a_rows = (a.words[a_order], a_pops[a_order], a_rest[a_order], a_order)
        b_rows = a_rows if b is None else (other.words[b_order], b_pops[b_order],
                                           b_rest[b_order], b_order)
        left, right, count, pairs = _band_candidates(*a_rows, a_first, a_count, *b_rows,
                                                     b_first, b_count, needed, b is None)
        return left * width + right, count, pairs

    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="pprl-lsh") as pool:
        parts = list(pool.map(run_band, range(blocking.bands)))
    compared = sum(p[2] for p in parts)
    unique, first = np.unique(np.concatenate([p[0] for p in parts]), return_index=True)
    counts = np.concatenate([p[1] for p in parts])[first]
    return unique // width, unique % width, counts, compared


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
