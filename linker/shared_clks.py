"""CLKs that many records share, and CLKs with no bit set.

Records whose identifiers are placeholders or nearly absent (an unknown patient registered as
``UNKNOWN^TRAUMA`` with a default birth date, a row holding only a sex) get the same CLK
whoever they are, and link with each other at Dice 1.0: one entity of strangers, and cohorts
counted with it. The same person's records across a few providers, with a few duplicates,
share a CLK too (at most 4 records on the synthetic population), so only values held by more
than ``MOST_SHARING`` records are reported. A CLK with no bit set (every field blank) links
with nothing. Both are reported, not changed: which records a site should not encode is the
site's to decide.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .clkset import ClkSet

__all__ = ["MOST_SHARING", "SharedClks", "shared_clks"]

MOST_SHARING = 10
# Odd multipliers (from a fixed seed) of a row hash that finds the candidates fast; equal rows
# hash alike, and the rows of each crowded hash are then compared exactly.
_MULTIPLIERS = np.random.default_rng(20261204).integers(
    1, 2**63, size=64, dtype=np.uint64) | np.uint64(1)


@dataclass(frozen=True)
class SharedClks:
    values: int  # CLK values held by more than ``most`` records (none empty)
    records: int  # records holding them
    empty: int  # records whose CLK has no bit set
    most: int = MOST_SHARING

    def as_dict(self) -> dict[str, int]:
        return {"most": self.most, "values": self.values, "records": self.records,
                "empty": self.empty}

    def warnings(self) -> list[str]:
        """What a data manager should look at, if anything."""
        found = []
        if self.values:
            found.append(
                f"{self.values:,} CLK value(s) are each held by more than {self.most} records "
                f"({self.records:,} records in all): records this alike are usually "
                f"placeholders or nearly empty (an unknown patient, only a sex or a birth "
                f"date) and link with each other at Dice 1.0 whoever they are; ask the "
                f"providers to check them")
        if self.empty:
            found.append(f"{self.empty:,} record(s) have an empty CLK (no identifier): they "
                         f"link with nothing")
        return found


def _row_hashes(words: np.ndarray) -> np.ndarray:
    """One 64-bit value per row, equal for equal rows: each word XORed in, multiplied and its
    high bits folded down (a sum of products alone let the top bits of two words cancel)."""
    out = np.zeros(len(words), dtype=np.uint64)
    for column in range(words.shape[1]):
        out ^= words[:, column]
        out *= _MULTIPLIERS[column % len(_MULTIPLIERS)]
        out ^= out >> np.uint64(31)
    return out


def _exact_groups(rows: np.ndarray, most: int) -> tuple[int, int]:
    """(distinct rows held more than ``most`` times, records holding them) among ``rows``."""
    as_bytes = np.ascontiguousarray(rows).view(np.dtype((np.void, rows.shape[1] * 8)))
    _, counts = np.unique(as_bytes.ravel(), return_counts=True)
    crowded = counts[counts > most]
    return len(crowded), int(crowded.sum())


def shared_clks(sets: Sequence[ClkSet], most: int = MOST_SHARING) -> SharedClks:
    """How many CLK values more than ``most`` records share, over all ``sets``: candidates by
    hash, counted exactly."""
    empty = sum(int(np.count_nonzero(s.popcounts == 0)) for s in sets)
    # Rows are hashed where they lie (no copy of every CLK); (set, row) of the filled ones.
    filled = [(i, np.flatnonzero(s.popcounts > 0)) for i, s in enumerate(sets)]
    hashes = np.concatenate([np.zeros(0, np.uint64),
                             *(_row_hashes(sets[i].words)[rows] for i, rows in filled)])
    owners = np.concatenate([np.zeros(0, np.int64),
                             *(np.full(len(rows), i) for i, rows in filled)])
    positions = np.concatenate([np.zeros(0, np.int64), *(rows for _, rows in filled)])
    order = np.argsort(hashes)
    ranked = hashes[order]
    starts = np.flatnonzero(np.concatenate([[True], ranked[1:] != ranked[:-1]]))
    counts = np.diff(np.append(starts, len(ranked)))
    values = records = 0
    for group in np.flatnonzero(counts > most).tolist():
        members = order[starts[group]:starts[group] + counts[group]]
        found = _exact_groups(np.concatenate([
            sets[i].words[positions[members][owners[members] == i]]
            for i in np.unique(owners[members]).tolist()]), most)
        values, records = values + found[0], records + found[1]
    return SharedClks(values, records, empty, most)
