"""A bit order and a first test that make the kernels' bound bite: the bits that tell records
apart first, the bits nearly every record has (or lacks) last; the test as early as few pairs
pass it.

The kernels count the AND of a pair's first words exactly, then drop the pair (or the group of
eight) when even the bound on the rest, the sum over its words of the sparser word's
popcount, cannot reach the threshold. A bit set in nearly every record adds as much to the
bound as to the count and tells nothing; the bits set in about half of the records are those
whose disagreements drop pairs. Where the first words hold the latter, far fewer pairs pass.
Any permutation of bit positions, applied to both sides, leaves every popcount and AND count
as it was: the candidates and scores are exactly those of the data's own order.

Measured (one thread, 2-core AMD EPYC with AVX-512, first test at the half): on clkhash's
random names (the same sex, similar dates: bit frequencies 0.01-1.0) at Dice 0.8 the lane
groups left at half-way fell from 9.0% to 1.2% and 20,000 x 20,000 took 287 ms instead of 419
(60,000 x 60,000 on two threads: 1.25 s instead of 1.72); the scalar kernel's pairs from 4.2%
to 0.44%, 1.66 s instead of 2.02. Where most pairs pass a test anyway, its branch turns
unpredictable and the run slower: random names at Dice 0.7, groups from 99.9% to 81%, 755 ms
instead of 570; FEBRL-like CLKs at 0.6, 642 instead of 562.

The lanes kernel on 1024-bit CLKs may test first after 6 or 7 words (``EARLY_TESTS``), then
at the half. Measured on an Intel Xeon (AVX-512; one thread, 20,000 x 20,000 at 0.8, kernel
seconds): FEBRL-like CLKs 0.249 tested at the half in either order, 0.230 at 7 words as they
are (0.2% of groups pass), 0.204 at 6 words reordered (0.4% pass; as they are 5.3% pass:
0.282); random names 0.212 reordered at the half (1.1% pass), 0.220 at 7 (3.9%), 0.293 at 6
(14%). So ``kernel_order`` estimates, from a sample, the time of each test in each order
(words counted, and what passes a test paying a mispredicted branch and more words) and takes
the cheapest; the order only where what it saves repays permuting both sets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from .dice_lanes import EARLY_TESTS, LANES, compiled_for

__all__ = ["KernelOrder", "kernel_order", "permute_rows", "spread_first", "survival"]

_SAMPLE_ROWS = 2048  # rows of each side whose bits give the frequencies
_SURVIVAL_ROWS = 256  # rows of A, and of B (in 32 runs of eight for the lanes kernel), sampled
# A test is taken only where at most this share passes it (the branch stays predictable).
_MOST_PASSING = 0.25
# Measured in one process, one thread, 20,000 x 20,000 at Dice 0.8, on an Intel Xeon with
# AVX-512 (FEBRL-like CLKs and clkhash's random names, each in both orders, first tests at 6, 7
# and 8 words): a lane group costs about 0.47 ns a word counted before its first test and
# 25 ns more when it passes that test; compiled for AVX2 only (12,000 x 12,000; the count a
# table lookup) about 1.8 ns and 30 ns. Scalar kernel (on an AMD EPYC): a pair passing
# half-way costs about 24 ns. Permuting a row costs about 0.6 us; sampling the data's order
# about 3 ms and the reordered sample about 10 ms more.
_LANES_SECONDS = {True: (4.7e-10, 2.5e-8), False: (1.8e-9, 3.0e-8)}  # by vector popcount
_SCALAR_SECONDS = (1.5e-10, 2.4e-8)
_SECONDS_PER_ROW = 6e-7
_SECONDS_TO_SAMPLE = 0.003
_SECONDS_TO_DECIDE = 0.01


@intrinsic
def _trailing_zeros(typingctx, value):  # type: ignore[no-untyped-def]  # pragma: no cover
    """LLVM's cttz: one TZCNT instruction (the value is never zero here)."""
    if value != types.uint64:
        return None

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.cttz(args[0], ir.Constant(ir.IntType(1), 1))

    return types.int64(types.uint64), codegen


@numba.njit(cache=True, nogil=True)
def permute_rows(words: np.ndarray, dest: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover
    """out[r] = words[r] with bit position p moved to dest[p] (out zeroed here)."""
    rows, width = words.shape
    for r in range(rows):
        for w in range(width):
            out[r, w] = 0
        for w in range(width):
            x = words[r, w]
            base = w * 64
            while x:
                d = dest[base + _trailing_zeros(x)]  # type: ignore[call-arg]
                out[r, d >> 6] |= np.uint64(1) << np.uint64(d & 63)
                x &= x - np.uint64(1)


def _evenly(words: np.ndarray, rows: int) -> np.ndarray:
    """Up to ``rows`` rows spread evenly over ``words`` (no randomness: runs repeat)."""
    if len(words) <= rows:
        return words
    return words[np.linspace(0, len(words) - 1, rows).astype(np.int64)]


def spread_first(*samples: np.ndarray) -> np.ndarray:
    """Destination of each bit position: positions by p(1 - p) descending, p being the bit's
    frequency over the sample rows (ties in the data's order)."""
    rows = np.concatenate([np.ascontiguousarray(s) for s in samples])
    bits = np.unpackbits(rows.view(np.uint8), axis=1, bitorder="little")  # position order
    p = bits.mean(axis=0)
    order = np.argsort(-(p * (1.0 - p)), kind="stable")
    dest = np.empty(len(order), dtype=np.int64)
    dest[order] = np.arange(len(order))
    return dest


def survival(a: np.ndarray, b: np.ndarray, needed: np.ndarray, per_word: bool = True,
             counted: Sequence[int] | None = None) -> np.ndarray:
    """Share of the pairs of rows a x b (``per_word``: of A rows and groups of eight
    consecutive B rows, any of which passing keeps the group) that could pass (popcounts
    allow it) and are still alive after each of ``counted`` words (default: half of them):
    the AND count of those words plus the bound on the rest reaching ``needed``. The bound:
    ``per_word``, the lanes kernel's (the sum over the words of the sparser word's popcount),
    else the scalar kernel's (the sparser rest's popcount)."""
    half = a.shape[1] // 2
    counted = (half,) if counted is None else counted
    a_counts, b_counts = np.bitwise_count(a), np.bitwise_count(b)  # uint8 per word
    a_pops = a_counts.sum(axis=1, dtype=np.int64)
    b_pops = b_counts.sum(axis=1, dtype=np.int64)
    need = needed[a_pops[:, None] + b_pops[None, :]]
    feasible = need <= np.minimum(a_pops[:, None], b_pops[None, :])
    # Word by word (planes of A rows x B rows): the AND counts of the words before each
    # test, and the per-word bound over all words and over those before each test.
    common: dict[int, np.ndarray] = {}
    least_before: dict[int, np.ndarray] = {}
    count = np.zeros((len(a), len(b)), dtype=np.int16)
    least = np.zeros_like(count)
    for word in range(a.shape[1]):
        if word in counted:
            common[word], least_before[word] = count.copy(), least.copy()
        count += np.bitwise_count(a[:, word, None] & b[None, :, word])
        if per_word:
            least += np.minimum(a_counts[:, word, None], b_counts[None, :, word])
    groups = len(b) // LANES

    def by_group(pairs: np.ndarray) -> np.ndarray:
        return np.asarray(pairs[:, :groups * LANES].reshape(len(a), groups, LANES).any(axis=2))

    shares = []
    for words in counted:
        if per_word:
            rest = least - least_before[words]
        else:
            rest = np.minimum(a_pops[:, None] - a_counts[:, :words].sum(axis=1)[:, None],
                              b_pops[None, :] - b_counts[:, :words].sum(axis=1)[None, :])
        alive = feasible & (common[words] + rest >= need)
        possible = feasible
        if per_word:
            alive, possible = by_group(alive), by_group(feasible)
        shares.append(alive.sum() / max(int(possible.sum()), 1))
    return np.array(shares, dtype=np.float64)


def _runs_of_lanes(words: np.ndarray, rows: int) -> np.ndarray:
    """About ``rows`` rows as runs of eight consecutive rows spread evenly over ``words``."""
    if len(words) <= rows:
        return words
    starts = np.linspace(0, len(words) - LANES, rows // LANES).astype(np.int64)
    return words[(starts[:, None] + np.arange(LANES)).ravel()]


@dataclass(frozen=True)
class KernelOrder:
    """How the CPU kernels compare a plan: the bits' order (``spread_first``'s destinations,
    or None: the data's own) and the words counted before the first test (the lanes kernel
    on 1024-bit CLKs: one of ``EARLY_TESTS``; else half of the words)."""

    dest: np.ndarray | None
    early: int


def _seconds(per_word: bool) -> tuple[float, float]:
    """A lane group's (or, scalar, a pair's) seconds a word counted before the first test, and
    more when it passes that test, for the CPU numba compiles for."""
    return _LANES_SECONDS[compiled_for("avx512vpopcntdq")] if per_word else _SCALAR_SECONDS


def _cheapest(shares: np.ndarray, counted: Sequence[int], word: float,
              passing: float) -> tuple[float, int]:
    """Seconds per lane group (or pair) and the first test's words of the cheapest of these
    tests, given the shares passing each: ``word`` seconds a word counted, and for what
    passes the test ``passing`` more (a branch mispredicted and more words). A test most pass
    is not taken (its branch would be unpredictable: measured slower) unless it is at the
    half, where the kernels always test."""
    half = counted[-1]
    costs = [(words * word + share * passing, words)
             for share, words in zip(shares.tolist(), counted, strict=True)
             if share <= _MOST_PASSING or words == half]
    return min(costs)


def kernel_order(a_words: np.ndarray, b_words: np.ndarray, needed: np.ndarray,
                 window_pairs: int, workers: int, per_word: bool = True) -> KernelOrder:
    """The bit order and first test for comparing ``window_pairs`` pairs of these sets (B
    sorted by popcount): on a sample (``survival`` with the kernel's bound), the cheapest
    test in the data's order and in ``spread_first``'s, the latter only where the time it
    saves repays permuting both sets (on ``workers`` threads) and deciding."""
    half = a_words.shape[1] // 2
    # Early tests on 1024-bit CLKs only, whose half is the last of them.
    counted = EARLY_TESTS if per_word and half == EARLY_TESTS[-1] else (half,)
    units = window_pairs / (LANES if per_word else 1) / max(workers, 1)
    word, passing = _seconds(per_word)
    # The most a choice could save: the earliest test, or the order letting through nothing
    # of the most a test it would take lets through.
    if units * max((half - counted[0]) * word, _MOST_PASSING * passing) < _SECONDS_TO_SAMPLE:
        return KernelOrder(None, half)
    a_few = _evenly(a_words, _SURVIVAL_ROWS)
    b_few = (_runs_of_lanes if per_word else _evenly)(b_words, _SURVIVAL_ROWS)
    as_is, early = _cheapest(survival(a_few, b_few, needed, per_word, counted), counted,
                             word, passing)
    rows = len(a_words) + (0 if a_words is b_words else len(b_words))
    permuting = rows * _SECONDS_PER_ROW / max(workers, 1) + _SECONDS_TO_DECIDE
    if units * (as_is - counted[0] * word) < permuting:  # the order could not repay itself
        return KernelOrder(None, early)
    dest = spread_first(_evenly(a_words, _SAMPLE_ROWS), _evenly(b_words, _SAMPLE_ROWS))
    a_moved, b_moved = np.empty_like(a_few), np.empty_like(b_few)
    permute_rows(a_few, dest, a_moved)
    permute_rows(b_few, dest, b_moved)
    moved, moved_early = _cheapest(survival(a_moved, b_moved, needed, per_word, counted),
                                   counted, word, passing)
    if units * (as_is - moved) > permuting:
        return KernelOrder(dest, moved_early)
    return KernelOrder(None, early)
