"""What both estimates of the threshold do around their search: project how many pairs it
would hold before it starts (on FEBRL-like data about a third of all pairs score 0.5 or more,
so an estimate over a million records a party would not fit in memory), and report its
progress as a share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from .backends import Backend, get_backend
from .clkset import ClkSet

__all__ = ["MAX_FLOOR_PAIRS", "BYTES_PER_FLOOR_PAIR", "PROJECTION_ROWS", "TooManyFloorPairs",
           "row_sample", "rows_of", "count_pairs", "projected_pairs", "check_floor_pairs",
           "search_ticks"]

# Pairs at its floor an estimate may hold: each costs about 80 bytes at the peak (measured 76
# on FEBRL 4 at 0.5: the candidates, their sort, the greedy mask, the fit's copies), 100M
# about 7.5 GiB.
MAX_FLOOR_PAIRS = 100_000_000
BYTES_PER_FLOOR_PAIR = 80
# Records of A a projection compares with all of B.
PROJECTION_ROWS = 512
_ANY_SCORE = np.array([0.0, 2.0])  # one bin that every Dice score falls in


class TooManyFloorPairs(ValueError):
    """An estimate's pairs at its floor would not fit the memory it may take."""


def row_sample(a: ClkSet, rows: int, seed: int = 0) -> ClkSet:
    """``rows`` records of ``a`` drawn at random (without its token columns), in file order."""
    return rows_of(a, np.random.default_rng(seed).choice(len(a), rows, replace=False))


def rows_of(a: ClkSet, chosen: np.ndarray) -> ClkSet:
    """The records ``chosen`` of ``a`` (without its token columns), in file order."""
    chosen = np.sort(chosen)
    return replace(a, words=np.ascontiguousarray(a.words[chosen]),
                   popcounts=a.popcounts[chosen],
                   record_ids=[a.record_ids[r] for r in chosen.tolist()], tokens={})


def count_pairs(a: ClkSet, b: ClkSet | None, floor: float, backend: Backend | None) -> int:
    """How many pairs of ``a`` and ``b`` (None: within ``a``) score ``floor`` or more,
    counted tile by tile (``Backend.score_counts``), never held."""
    return int((backend or get_backend("cpu")).score_counts(a, b, floor, _ANY_SCORE)[0])


def projected_pairs(a: ClkSet, b: ClkSet | None, floor: float,
                    backend: Backend | None = None, sample_rows: int = PROJECTION_ROWS,
                    seed: int = 0) -> int:
    """About how many pairs of ``a`` and ``b`` (``b`` None: of ``a`` within itself) score
    ``floor`` or more: those of a random sample of A's rows against all of B, scaled (all of
    them when A is that small). Counted tile by tile, the pairs never held (their candidates
    held 385 MB for 512 of clkhash's random names against 60,000 at 0.58)."""
    if len(a) <= sample_rows:
        return count_pairs(a, b, floor, backend)
    sample = row_sample(a, sample_rows, seed)
    found = count_pairs(sample, a if b is None else b, floor, backend)
    if b is None:  # each sampled row met itself (but an empty CLK, Dice 0), and every pair is
        # counted from both ends
        return round((found - int((sample.popcounts > 0).sum())) * len(a) / sample_rows / 2)
    return round(found * len(a) / sample_rows)


def check_floor_pairs(name: str, a: ClkSet, b: ClkSet | None, floor: float,
                      backend: Backend | None, max_pairs: int) -> None:
    """Refuse (TooManyFloorPairs, naming ``name``), before searching, pairs at ``floor`` that
    would not fit ``max_pairs``."""
    projected = projected_pairs(a, b, floor, backend)
    if projected > max_pairs:
        raise TooManyFloorPairs(
            f"{name}: about {projected:,} pairs score {floor} or more, which the estimate would "
            f"hold in memory (about {projected * BYTES_PER_FLOOR_PAIR / 2**30:.0f} GiB; it "
            f"takes at most {max_pairs:,})")


def search_ticks(progress: Callable[[float], None] | None, rows: int) -> Callable[[int], None]:
    """A candidate search's tick (A rows done) that calls ``progress`` with the share of
    ``rows`` done so far."""
    done = 0

    def tick(step: int) -> None:
        nonlocal done
        done += step
        if progress is not None:
            progress(done / max(rows, 1))

    return tick
