"""Cohort counts a researcher may see before access: the number of entities and its breakdown
by sex, age band, race/ethnicity and region, with small cells suppressed.

A count below the threshold (default 11, the CMS cell-size rule) is never shown; zero is.
Each breakdown sums to the total, so the suppressed cells' sum can be recovered from the total
and the shown cells: one suppressed cell would be given away, and two cells of 1 each (sum 2)
as well. So the next smallest cells of that breakdown are suppressed too (complementary
suppression) until at least two cells are hidden and their sum is itself no small count (at
least the threshold). When the total itself is below the threshold, nothing but that fact is
shown: no breakdown at all, since even the categories present (each cell's count hidden) would
tell a small cohort's make-up, a single entity's sex, age band, race/ethnicity and region.
There is no noise: the same query always gives the same answer, so repeating it averages
nothing away.

What a researcher can still infer: that a suppressed cell holds between 1 and threshold - 1
entities; and, from two overlapping definitions, the count of their difference when both
counts are shown. Definitions are audited for that reason.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .demographics import DIMENSIONS

__all__ = ["Cell", "CohortCounts", "cohort_counts", "DEFAULT_MIN_CELL"]

DEFAULT_MIN_CELL = 11


@dataclass(frozen=True)
class Cell:
    category: str
    count: int | None  # None: suppressed
    suppressed: bool


@dataclass(frozen=True)
class CohortCounts:
    entities: int | None  # None: fewer than min_cell
    min_cell: int
    breakdown: dict[str, list[Cell]]  # each dimension's cells; none under a suppressed total
    empty: bool  # no entity at all

    def as_dict(self) -> dict[str, object]:
        return {"entities": self.entities, "min_cell": self.min_cell,
                "breakdown": {d: [{"category": c.category, "count": c.count,
                                   "suppressed": c.suppressed} for c in cells]
                              for d, cells in self.breakdown.items()}}


def _suppressed(counts: Mapping[str, int], min_cell: int) -> set[str]:
    """The small cells of one breakdown and their complement (module docstring)."""
    hidden = {c for c, n in counts.items() if 0 < n < min_cell}
    shown = sorted((n, c) for c, n in counts.items() if c not in hidden and n > 0)
    while hidden and shown and (len(hidden) < 2
                                or sum(counts[c] for c in hidden) < min_cell):
        hidden.add(shown.pop(0)[1])
    return hidden


def cohort_counts(entities: Sequence[str],
                  demographics: Mapping[str, Mapping[str, tuple[str, str | None]]],
                  min_cell: int = DEFAULT_MIN_CELL) -> CohortCounts:
    total = len(entities)
    if total < min_cell:
        return CohortCounts(None, min_cell, {d: [] for d in DIMENSIONS}, total == 0)
    breakdown: dict[str, list[Cell]] = {}
    for dimension in DIMENSIONS:
        counts = Counter(demographics[e][dimension][0] for e in entities)
        hidden = _suppressed(counts, min_cell)
        breakdown[dimension] = [Cell(c, None if c in hidden else n, c in hidden)
                                for c, n in sorted(counts.items())]
    return CohortCounts(total, min_cell, breakdown, False)
