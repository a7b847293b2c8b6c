"""The threshold for deduplicating one party without ground truth: where its pair scores'
density bottoms out.

Within one party most pairs are strangers, whose scores fall steeply from Dice 0.6; relatives
of a household (same surname, address and phone) add a slower tail up to about 0.8; true
duplicates rise towards 1. The density of all pair scores therefore falls, bottoms out where
the strangers and relatives run out, and rises again with the duplicates. The threshold is the
lowest score whose density (pairs per 0.01 of Dice, a Gaussian kernel of width 0.01, on a grid
of 0.005 from 0.62 to 0.86) is within one Poisson standard deviation of that floor (at least
one pair): the lowest score the data cannot tell from the bottom of the valley. Lower, the
tail of non-duplicates is still falling, and each step down adds more of them than of
duplicates; higher, only duplicates are lost.

Measured while building it (pairwise F1 of the ``cluster`` solver against the truth,
thresholds 0.60-0.90 in steps of 0.005; ``benchmarks/bench_estimate.py`` and
``bench_dedup.py`` report FEBRL 1-3 and one population each): on FEBRL 1-3 with four secrets
it chose 0.665-0.71, F1 within 0.004 of the best threshold's; on the synthetic population's
nine extracts of seeds 5, 6 and 11 (20,000-40,000 people) 0.745-0.82, within 0.021, and of
seeds 7-9 (5,000-10,000 people) 0.71-0.82, within 0.035. On these thirty it was never more than
0.0003 below the fixed default 0.69's F1 (FEBRL 2 with bench_dedup's secret: 0.70, 0.002
below) and on average 0.068 above it (the synthetic imaging and claims extracts, with few
duplicates among many relatives: 0.69-0.85 -> 0.91-0.96). The rule was chosen on FEBRL 1-3 and
seeds 5-7 (beside the first score under 1.5 times the floor, which did about as well, and the
floor itself, 0.81-0.86 on thin valleys) and then checked, unchanged, on three other secrets
and seeds 8, 9 and 11. At 120,000 people (seed 12; extracts of 61,000-98,000 records, pairs
searched in 0.7-2.2 s) it chose 0.82, 0.765 and 0.795: F1 0.930, 0.960 and 0.945 against the
best's 0.962, 0.961 and 0.947 and the fixed 0.69's 0.687, 0.850 and 0.582.

The search counts the pairs' scores tile by tile and holds none (``Backend.score_counts``). A
party with more pairs from 0.58 than an estimate may search (``MAX_FLOOR_PAIRS``, projected
from 512 records) is searched as a random sample of its records against all of them, sized to
that many pairs, which bounds the time: the sample's pairs have the density of all pairs,
scaled, and the valley's floor counts far more pairs than the 500 it needs (FEBRL 3 from a
tenth of its pairs: 0.69 as from all of them; from a third and a thirtieth: 0.675; the 120,000
people's extracts from samples of 4,000-20,000 records: 0.775-0.82, 0.765 and 0.785-0.79).

Precision and recall are not estimated: duplicates whose name or address changed score among
the relatives (0.65-0.8), where no fit of the density above or below the valley can count them
(such fits missed true recall by up to 0.14; ``linker/estimate.py`` lists what was tried).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from .backends import Backend, get_backend
from .clkset import ClkSet
from .floor_pairs import (
    MAX_FLOOR_PAIRS,
    PROJECTION_ROWS,
    projected_pairs,
    row_sample,
    search_ticks,
)

__all__ = ["SEARCH_FLOOR", "SCORE_EDGES", "MIN_VALLEY_PAIRS", "Valley", "pair_density",
           "find_valley", "estimate_dedup"]

_FROM, _TO, _STEP, _BANDWIDTH = 0.62, 0.86, 0.005, 0.01
# Pairs below this cannot reach the grid within four kernel widths.
SEARCH_FLOOR = 0.58
# Scores are counted in bins this wide before smoothing: a twentieth of the kernel's width.
_BIN = 0.0005
_GRID = np.round(np.arange(_FROM, _TO + _STEP / 2, _STEP), 3)
# The bins, over the kernel's reach of the grid (four widths either side).
SCORE_EDGES = np.arange(_GRID[0] - 4 * _BANDWIDTH, _GRID[-1] + 4 * _BANDWIDTH + _BIN / 2, _BIN)
# Pairs scoring within the grid's reach that a valley needs. Measured on the synthetic
# extracts: with 128-283 (1,500 people) the floor is a pair or two and the choice fell to
# 0.66-0.675 on two of three (one below the default's F1: 0.882 against 0.938); from 374 on
# (3,000 people and more) it never fell below the default's F1 (the smallest of the data above:
# 881 pairs, 5,000 people).
MIN_VALLEY_PAIRS = 500


@dataclass(frozen=True)
class Valley:
    """The chosen threshold, the valley's floor (pairs per 0.01 of Dice, and where), the
    pairs near the grid it was found from, and (``sample`` records, of ``records``) whether
    they were those of a random sample of the party's records with all of it."""

    threshold: float
    floor: float
    floor_at: float
    pairs: int
    sample: int | None = None
    records: int | None = None

    @property
    def reason(self) -> str:
        whose = ("the party's" if self.sample is None else
                 f"{self.sample:,} sampled records' (of {self.records:,}, with all of them)")
        return (f"the density of {whose} {self.pairs:,} pair scores from {SEARCH_FLOOR} "
                f"to {_TO + 4 * _BANDWIDTH:.2f} bottoms out at {self.floor:.1f} pairs per 0.01 "
                f"of Dice (at {self.floor_at}); {self.threshold} is the lowest score within "
                f"one standard deviation of that floor: below it the non-duplicates' pairs "
                f"(strangers, relatives of a household) are still falling off")

    def choice(self) -> dict[str, object]:
        """What a run records of how its threshold was chosen (``run.json``): no precision or
        recall, which deduplication gives no fit of."""
        return {"method": "estimated", "model": "valley", "reason": self.reason,
                "estimated_precision": None, "estimated_recall": None}

    def summary(self) -> str:
        return (f"threshold {self.threshold} chosen from the data: {self.reason}; precision "
                f"and recall are not estimated for deduplication")


def pair_density(counts: np.ndarray) -> tuple[np.ndarray, int]:
    """Pairs per 0.01 of Dice at each grid point (a Gaussian kernel of width ``_BANDWIDTH``)
    from the pairs counted in each bin of ``SCORE_EDGES``, and how many pairs lie within its
    reach. Counted in bins, the pairs need never be held together."""
    centres = (SCORE_EDGES[:-1] + SCORE_EDGES[1:]) / 2
    z = (_GRID[:, None] - centres[None, :]) / _BANDWIDTH
    density = np.exp(-0.5 * z * z) @ counts
    return density * 0.01 / (_BANDWIDTH * np.sqrt(2 * np.pi)), int(counts.sum())


def find_valley(counts: np.ndarray) -> Valley:
    """The threshold of :mod:`this module <linker.dedup_valley>` from a party's pairs counted
    in the bins of ``SCORE_EDGES``. ValueError: too few pairs near the grid, or no falling tail
    of non-duplicates on it (a density flat, or lowest at 0.62)."""
    density, pairs = pair_density(counts)
    if pairs < MIN_VALLEY_PAIRS:
        raise ValueError(f"only {pairs:,} pairs score {SEARCH_FLOOR}-"
                         f"{_TO + 4 * _BANDWIDTH:.2f} (the valley takes {MIN_VALLEY_PAIRS} or "
                         f"more): too few to find it")
    lowest = int(np.argmin(density))
    floor = float(density[lowest])
    noise = np.sqrt(max(floor, 1.0))
    if density[0] <= floor + 3 * noise:
        raise ValueError(f"the density of the {pairs:,} pair scores does not fall from {_FROM} "
                         f"to a floor below {_TO}: no tail of non-duplicates to see the end of")
    within = density <= floor + noise
    return Valley(float(_GRID[int(np.argmax(within))]), floor, float(_GRID[lowest]), pairs)


def estimate_dedup(clks: ClkSet, backend: Backend | None = None,
                   progress: Callable[[float], None] | None = None,
                   max_pairs: int = MAX_FLOOR_PAIRS) -> Valley:
    """The valley of one party's pairs from ``SEARCH_FLOOR``. Where more than ``max_pairs``
    such pairs are projected (from 512 records first), from a random sample of records
    against the whole party, sized to search about ``max_pairs``: a sample's pairs have the
    density of all pairs, scaled, so the valley lies where it lies, and on a party that large
    the sample's floor still counts thousands of pairs. ``progress``: called with the share of
    the candidate search done. ValueError where too few pairs lie near the grid."""
    sample = None
    if len(clks) > PROJECTION_ROWS:  # a smaller party is searched whole at once
        projected = projected_pairs(clks, None, SEARCH_FLOOR, backend)
        if projected > max_pairs:  # each sampled record meets all others: 2 x share x projected
            sample = max(1, min(len(clks), round(len(clks) * max_pairs / (2 * projected))))
    searched = clks if sample is None else row_sample(clks, sample)
    counts = (backend or get_backend("cpu")).score_counts(
        searched, None if sample is None else clks, SEARCH_FLOOR, SCORE_EDGES,
        progress=search_ticks(progress, len(searched)))
    try:
        valley = find_valley(counts)
    except ValueError as e:
        if sample is None:
            raise
        raise ValueError(f"{e} (a random {sample:,} of the party's {len(clks):,} records with "
                         f"all of them)") from e
    return valley if sample is None else replace(valley, sample=sample, records=len(clks))
