"""How a cohort's make-up compares with a reference population, per dimension.

The reference is every linked entity of the project (by default) or shares the data manager
gives (census shares, say: dimension, category, share). For each shown cell the cohort's
share is set beside the reference's as a ratio; a group whose ratio is below ``flag_below``
(default 0.8) is flagged under-represented ("unknown", a missing value, is no group and is
never flagged).

A suppressed cell has no share or ratio, but it is flagged when even the largest count it could
hold, given what the table shows, would be under-represented. That count is worked out from
the shown cells alone (never from the cell's own count), so the flag tells nothing the table
does not: the hidden cells' sum is the total less the shown cells; each other hidden cell holds
at least 1; a cell hidden only for being small holds at most ``min_cell`` - 1, and the one
cell hidden beside small ones (``counts.py``: at most one is ever needed) holds at least
``min_cell``, at most the smallest shown cell, and leaves the small ones under ``min_cell``
together. Under a suppressed total nothing is flagged: there is no share to compare.

The default reference, the project's own linked entities, is a count table too: its small
groups and their complement are suppressed as a cohort's are (no reference share is shown for
them, and they are not flagged), since its shares are exact fractions of the project's entities
and would give their counts away.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .counts import Cell, CohortCounts
from .demographics import DIMENSIONS, UNKNOWN

__all__ = ["GroupShare", "representativeness", "plot_representativeness", "FLAG_BELOW",
           "reference_problem"]

FLAG_BELOW = 0.8


@dataclass(frozen=True)
class GroupShare:
    dimension: str
    category: str
    cohort_share: float | None
    reference_share: float | None
    ratio: float | None
    under_represented: bool


def reference_problem(reference: Mapping[str, Mapping[str, float]]) -> str | None:
    """What is wrong with a reference (dimension -> category -> share or count), if anything:
    an unknown dimension, a share that is negative or not finite, or a dimension whose shares
    sum to nothing (a ratio against it would mean nothing)."""
    for dimension, shares in reference.items():
        if dimension not in DIMENSIONS:
            return f"reference: unknown dimension {dimension!r}; dimensions are {DIMENSIONS}"
        for category, share in shares.items():
            if not math.isfinite(share) or share < 0:
                return (f"reference: {dimension}.{category}: a share is a finite number of 0 "
                        f"or more")
        if not sum(shares.values()) > 0:
            return f"reference: {dimension}: the shares sum to 0"
    return None


def representativeness(counts: CohortCounts,
                       reference: Mapping[str, Mapping[str, float]],
                       flag_below: float = FLAG_BELOW,
                       withheld: Mapping[str, set[str]] | None = None) -> list[GroupShare]:
    """Shares and ratios per (dimension, category); ``reference``: dimension -> category ->
    share (0-1) or count (normalised here). ``withheld``: per dimension, categories whose
    reference share is not shown (the project's own small groups; counted in the total)."""
    rows = []
    for dimension, cells in counts.breakdown.items():
        ref = reference.get(dimension, {})
        hidden_reference = (withheld or {}).get(dimension, set())
        ref_total = sum(ref.values())
        shown_total = counts.entities or 0
        categories = sorted({c.category for c in cells} | set(ref))
        by_category = {c.category: c for c in cells}
        for category in categories:
            cell = by_category.get(category)
            count = 0 if cell is None else cell.count
            # no cells: the whole breakdown hidden (or the total), nothing to compare
            cohort = (count / shown_total if count is not None and shown_total and cells
                      else None)
            reference_share = (ref.get(category, 0.0) / ref_total
                               if ref_total and category not in hidden_reference else None)
            ratio = (cohort / reference_share if cohort is not None and reference_share
                     else None)
            largest = (_largest_ratio(category, cells, counts, reference_share)
                       if cell is not None and cell.suppressed else ratio)
            rows.append(GroupShare(dimension, category,
                                   None if cohort is None else round(cohort, 4),
                                   None if reference_share is None
                                   else round(reference_share, 4),
                                   None if ratio is None else round(ratio, 3),
                                   largest is not None and largest < flag_below
                                   and category != UNKNOWN))
    return rows


def plot_representativeness(rows: list[GroupShare], path: Path, title: str) -> None:
    """Cohort and reference shares side by side, one panel per dimension, under-represented
    groups marked, as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dimensions = list(dict.fromkeys(r.dimension for r in rows))
    fig, axes = plt.subplots(1, len(dimensions), figsize=(4.2 * len(dimensions), 4), dpi=110,
                             squeeze=False)
    for ax, dimension in zip(axes[0], dimensions, strict=True):
        mine = [r for r in rows if r.dimension == dimension]
        positions = range(len(mine))
        ax.bar([p - 0.2 for p in positions], [r.cohort_share or 0 for r in mine], 0.4,
               label="cohort", color=["tab:red" if r.under_represented else "tab:blue"
                                      for r in mine])
        ax.bar([p + 0.2 for p in positions], [r.reference_share or 0 for r in mine], 0.4,
               label="reference", color="tab:grey")
        ax.set_xticks(list(positions), [r.category for r in mine], rotation=45, ha="right")
        ax.set_title(dimension)
        ax.set_ylabel("share")
    axes[0][0].legend(loc="upper right")
    fig.suptitle(f"{title} (red: under-represented)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _largest_ratio(category: str, cells: list[Cell], counts: CohortCounts,
                   reference_share: float | None) -> float | None:
    """The ratio of a suppressed cell were it to hold the largest count the table allows
    (module docstring); None when the total is suppressed or there is no reference share."""
    if counts.entities is None or not reference_share:
        return None
    k = counts.min_cell
    shown = [(c.count, c.category) for c in cells if c.count]
    hidden = sum(c.suppressed for c in cells)
    hidden_sum = counts.entities - sum(n for n, _ in shown)
    most = hidden_sum - (hidden - 1)
    # the complement was the smallest shown cell (ties: the first category); a breakdown
    # with every cell hidden lists none (counts.py), so some cell is shown here
    smallest, first = min(shown)
    most = min(most, smallest if category < first else smallest - 1)
    if most >= max(k, hidden_sum - (k - 1)):  # it may be the complement
        largest = most
    elif hidden_sum <= hidden * (k - 1):  # it is small, and all hidden cells may be
        largest = min(k - 1, hidden_sum - (hidden - 1))
    else:  # it is small, beside a complement of at least k
        largest = min(k - 1, hidden_sum - k) - (hidden - 2)
    return largest / counts.entities / reference_share
