"""How a cohort's make-up compares with a reference population, per dimension.

The reference is every linked entity of the project (by default) or shares the data manager
gives (census shares, say: dimension, category, share). For each shown cell the cohort's
share is set beside the reference's as a ratio; a group whose ratio is below ``flag_below``
(default 0.8) is flagged under-represented ("unknown", a missing value, is no group and is
never flagged). Suppressed cells have no ratio.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .counts import CohortCounts
from .demographics import UNKNOWN

__all__ = ["GroupShare", "representativeness", "plot_representativeness", "FLAG_BELOW"]

FLAG_BELOW = 0.8


@dataclass(frozen=True)
class GroupShare:
    dimension: str
    category: str
    cohort_share: float | None
    reference_share: float | None
    ratio: float | None
    under_represented: bool


def representativeness(counts: CohortCounts,
                       reference: Mapping[str, Mapping[str, float]],
                       flag_below: float = FLAG_BELOW) -> list[GroupShare]:
    """Shares and ratios per (dimension, category); ``reference``: dimension -> category ->
    share (0-1) or count (normalised here)."""
    rows = []
    for dimension, cells in counts.breakdown.items():
        ref = reference.get(dimension, {})
        ref_total = sum(ref.values())
        shown_total = counts.entities or 0
        categories = sorted({c.category for c in cells} | set(ref))
        by_category = {c.category: c for c in cells}
        for category in categories:
            cell = by_category.get(category)
            count = 0 if cell is None else cell.count
            cohort = (count / shown_total if count is not None and shown_total else None)
            reference_share = ref.get(category, 0.0) / ref_total if ref_total else None
            ratio = (cohort / reference_share if cohort is not None and reference_share
                     else None)
            rows.append(GroupShare(dimension, category,
                                   None if cohort is None else round(cohort, 4),
                                   None if reference_share is None
                                   else round(reference_share, 4),
                                   None if ratio is None else round(ratio, 3),
                                   ratio is not None and ratio < flag_below
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
