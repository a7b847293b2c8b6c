"""A bit order that makes the kernels' half-way test bite: the bits that tell records apart
first, the bits nearly every record has (or lacks) last.

The kernels count the AND of a pair's first half of words exactly, then drop the pair (or the
group of eight) when even the bound on the rest, the sum over its words of the sparser word's
popcount, cannot reach the threshold. A bit set in nearly every record adds as much to the
bound as to the count and tells nothing; the bits set in about half of the records are those
whose disagreements drop pairs. Where the first half holds the latter, far fewer pairs reach
its end. Any permutation of bit positions, applied to both sides, leaves every popcount and
AND count as it was: the candidates and scores are exactly those of the data's own order.

Measured (one thread, 2-core AMD EPYC with AVX-512): on clkhash's random names (the same
sex, similar dates: bit frequencies 0.01-1.0) at Dice 0.8 the lane groups left at half-way fell
from 9.0% to 1.2% and 20,000 x 20,000 took 287 ms instead of 419 (60,000 x 60,000 on two
threads: 1.25 s instead of 1.72); the scalar kernel's pairs from 4.2% to 0.44%, 1.66 s instead
of 2.02. Where most pairs pass half-way anyway, the test's branch turns unpredictable and the
run slower: random names at Dice 0.7, groups from 99.9% to 81%, 755 ms instead of 570;
FEBRL-like CLKs at 0.6, 642 instead of 562. On FEBRL-like CLKs at 0.8 nearly every pair
already stops half-way. So the order is changed only where a sample says that few pairs pass
half-way as they are and far fewer would (``reordering``).
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from .dice_lanes import LANES

__all__ = ["reordering", "permute_rows", "spread_first", "halfway_survival"]

_SAMPLE_ROWS = 2048  # rows of each side whose bits give the frequencies
_SURVIVAL_ROWS = 256  # rows of A, and of B (in 32 runs of eight for the lanes kernel), sampled
# Reordered only where at most this share passes half-way (the branch stays predictable) and
# the order at least halves it.
_MOST_PASSING = 0.25
# From the measurements above: each lane group (lanes kernel) or pair (scalar kernel) that no
# longer passes half-way saves about 38 ns or 24 ns; permuting a row costs about 0.6 us and
# deciding about 30 ms.
_SECONDS_PER_DROPPED = {True: 3.8e-8, False: 2.4e-8}
_SECONDS_PER_ROW = 6e-7
_SECONDS_TO_DECIDE = 0.03


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


def halfway_survival(a: np.ndarray, b: np.ndarray, needed: np.ndarray,
                     per_word: bool = True) -> float:
    """Share of the pairs of rows a x b (``per_word``: of A rows and groups of eight
    consecutive B rows, any of which passing keeps the group) that could pass (popcounts
    allow it) and are still alive after half of the words: first half's AND count plus the
    bound on the rest reaching ``needed``. The bound: ``per_word``, the lanes kernel's (the
    sum over the words of the sparser word's popcount), else the scalar kernel's (the sparser
    rest's popcount)."""
    half = a.shape[1] // 2
    a_counts = np.bitwise_count(a).astype(np.int64)
    b_counts = np.bitwise_count(b).astype(np.int64)
    a_pops, b_pops = a_counts.sum(axis=1), b_counts.sum(axis=1)
    need = needed[a_pops[:, None] + b_pops[None, :]]
    feasible = need <= np.minimum(a_pops[:, None], b_pops[None, :])
    first = np.bitwise_count(a[:, None, :half] & b[None, :, :half]).sum(axis=-1,
                                                                       dtype=np.int64)
    if per_word:
        rest = np.minimum(a_counts[:, None, half:], b_counts[None, :, half:]).sum(axis=-1)
    else:
        rest = np.minimum(a_counts[:, half:].sum(axis=1)[:, None],
                          b_counts[:, half:].sum(axis=1)[None, :])
    alive = feasible & (first + rest >= need)
    if per_word:
        groups = len(b) // LANES
        shape = (len(a), groups, LANES)
        feasible = feasible[:, :groups * LANES].reshape(shape).any(axis=2)
        alive = alive[:, :groups * LANES].reshape(shape).any(axis=2)
    return float(alive.sum() / max(int(feasible.sum()), 1))


def _runs_of_lanes(words: np.ndarray, rows: int) -> np.ndarray:
    """About ``rows`` rows as runs of eight consecutive rows spread evenly over ``words``."""
    if len(words) <= rows:
        return words
    starts = np.linspace(0, len(words) - LANES, rows // LANES).astype(np.int64)
    return words[(starts[:, None] + np.arange(LANES)).ravel()]


def reordering(a_words: np.ndarray, b_words: np.ndarray, needed: np.ndarray,
               window_pairs: int, workers: int, per_word: bool = True) -> np.ndarray | None:
    """The bit order (``spread_first``) for comparing ``window_pairs`` pairs of these sets
    (B sorted by popcount), or None: unless, on a sample (``halfway_survival`` with the
    kernel's bound, ``per_word`` for the lanes kernel), at most a quarter passes half-way and
    the order at least halves that, and what it drops repays permuting both sets (on
    ``workers`` threads) and deciding."""
    rows = len(a_words) + (0 if a_words is b_words else len(b_words))
    cost = rows * _SECONDS_PER_ROW / max(workers, 1) + _SECONDS_TO_DECIDE
    units = window_pairs / (LANES if per_word else 1)

    def repays(dropped_share: float) -> bool:
        return units * dropped_share * _SECONDS_PER_DROPPED[per_word] / max(workers, 1) > cost

    if not repays(_MOST_PASSING):
        return None
    a_few = _evenly(a_words, _SURVIVAL_ROWS)
    b_few = (_runs_of_lanes if per_word else _evenly)(b_words, _SURVIVAL_ROWS)
    as_is = halfway_survival(a_few, b_few, needed, per_word)
    if as_is > _MOST_PASSING or not repays(as_is / 2):
        return None
    dest = spread_first(_evenly(a_words, _SAMPLE_ROWS), _evenly(b_words, _SAMPLE_ROWS))
    a_moved, b_moved = np.empty_like(a_few), np.empty_like(b_few)
    permute_rows(a_few, dest, a_moved)
    permute_rows(b_few, dest, b_moved)
    moved = halfway_survival(a_moved, b_moved, needed, per_word)
    return dest if moved <= as_is / 2 and repays(as_is - moved) else None
