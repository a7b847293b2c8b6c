"""Cohort counts a researcher may see before access: the number of entities and its breakdown
by sex, age band, race/ethnicity and region, with small cells suppressed.

A count below the threshold (default 11, the CMS cell-size rule) is never shown; zero is.
Each breakdown sums to the total, so the suppressed cells' sum can be recovered from the total
and the shown cells: one suppressed cell would be given away, and two cells of 1 each (sum 2)
as well. So the next smallest cells of that breakdown are suppressed too (complementary
suppression) until at least two cells are hidden and their sum is itself no small count (at
least the threshold). Those bounds can still give a cell away: a small cell holds at most
threshold - 1 and its complement at most the smallest shown cell, so shown b = 12 beside
hidden a and c summing to 22 (threshold 11; a taken before b as a tie) means a = 12 and c =
10. Where any hidden cell has only one count consistent with the table and the rule
(``_pinned``), the whole breakdown is hidden, its groups not even named (with as many
entities as groups, each would hold one). When the total itself is below the threshold,
nothing but that fact is shown: no breakdown at all, since even the categories present (each
cell's count hidden) would tell a small cohort's make-up, a single entity's sex, age band,
race/ethnicity and region.
There is no noise: the same query always gives the same answer, so repeating it averages
nothing away.

What a researcher can still infer: that a suppressed cell holds between 1 and threshold - 1
entities; and, from two overlapping definitions, the count of their difference when both
counts are shown. Definitions are audited for that reason.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .demographics import DIMENSIONS

__all__ = ["Cell", "CohortCounts", "cohort_counts", "suppressed_cells", "DEFAULT_MIN_CELL"]

DEFAULT_MIN_CELL = 11
_MOST_CELLS_CAST = 12  # hidden cells whose castings (2^n) are tried


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


def suppressed_cells(counts: Mapping[str, float], min_cell: int) -> set[str]:
    """The small cells of one breakdown and their complement (module docstring)."""
    hidden = {c for c, n in counts.items() if 0 < n < min_cell}
    shown = sorted((n, c) for c, n in counts.items() if c not in hidden and n > 0)
    while hidden and shown and (len(hidden) < 2
                                or sum(counts[c] for c in hidden) < min_cell):
        hidden.add(shown.pop(0)[1])
    if hidden and shown and _pinned(counts, hidden, min_cell):
        return {c for c, n in counts.items() if n > 0}  # the whole breakdown
    return hidden


def _pinned(counts: Mapping[str, float], hidden: set[str], min_cell: int) -> bool:
    """Whether what the table shows, and how cells are hidden, leave some hidden cell only
    one possible count.

    A researcher knows the hidden cells' sum (the total less the shown cells) and how they
    were chosen: each is small (1 to min_cell - 1) or the one complement (at least min_cell
    and, taken smallest first, at most each shown cell, ties broken by category; hidden only
    where the small cells were one, or summed under min_cell); with no complement, two or
    more small cells summing to min_cell or more. For each way of casting the cells as small
    or complement the counts each cell can hold form an interval (the others' sums do); a
    cell is given away when every casting leaves it the same single count. Checked by brute
    force over every table of small counts (tests/test_cohorts.py)."""
    cells = sorted(hidden)
    if len(cells) > _MOST_CELLS_CAST:  # never in the shipped dimensions (at most 8 groups)
        return False
    shown = [(n, c) for c, n in counts.items() if c not in hidden and n > 0]
    rest = sum(counts[c] for c in cells)

    def most(category: str) -> float:
        return min((n if category < c else n - 1 for n, c in shown), default=rest)

    possible: dict[str, set[tuple[float, float]]] = {c: set() for c in cells}
    for casting in itertools.product((False, True), repeat=len(cells)):  # True: complement
        complements = sum(casting)
        if complements > 1 or complements == len(cells) or (
                not complements and shown and not (len(cells) >= 2 and rest >= min_cell)):
            continue
        # One complement beside two or more small cells: they summed under min_cell.
        least = max(min_cell, rest - min_cell + 1) if len(cells) > 2 else min_cell
        bounds = [(least, most(c)) if complement else (1, min_cell - 1)
                  for c, complement in zip(cells, casting, strict=True)]
        low, high = sum(b[0] for b in bounds), sum(b[1] for b in bounds)
        if any(lo > hi for lo, hi in bounds) or not low <= rest <= high:
            continue
        for c, (lo, hi) in zip(cells, bounds, strict=True):
            possible[c].add((max(lo, rest - (high - hi)), min(hi, rest - (low - lo))))
    return any(len(ranges) == 1 and next(iter(ranges))[0] == next(iter(ranges))[1]
               for ranges in possible.values())


def cohort_counts(entities: Sequence[str],
                  demographics: Mapping[str, Mapping[str, tuple[str, str | None]]],
                  min_cell: int = DEFAULT_MIN_CELL) -> CohortCounts:
    total = len(entities)
    if total < min_cell:
        return CohortCounts(None, min_cell, {d: [] for d in DIMENSIONS}, total == 0)
    breakdown: dict[str, list[Cell]] = {}
    for dimension in DIMENSIONS:
        counts = Counter(demographics[e][dimension][0] for e in entities)
        hidden = suppressed_cells(counts, min_cell)
        # All hidden: not even which groups are present (with as many entities as groups,
        # each would hold one).
        breakdown[dimension] = [] if hidden == set(counts) else [
            Cell(c, None if c in hidden else n, c in hidden) for c, n in sorted(counts.items())]
    return CohortCounts(total, min_cell, breakdown, False)
