"""Compiled inner loop of the cached-value encoder (numba): OR-ing packed filter rows together.

It only reads and ORs whole uint64 words, so it is exact; it exists because numpy would first
materialise every gathered row as a temporary array.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["or_groups_into"]


@numba.njit(cache=True, nogil=True)
def or_groups_into(table: np.ndarray, dest_rows: np.ndarray, starts: np.ndarray,
                   sources: np.ndarray, source_rows: np.ndarray) -> None:  # pragma: no cover
    """table[dest_rows[g]] |= OR of sources[source_rows[k]] for k in group g.

    Group g spans source_rows[starts[g]:starts[g + 1]] (the last runs to the end).
    """
    groups = starts.shape[0]
    total = source_rows.shape[0]
    words = table.shape[1]
    for g in range(groups):
        row = dest_rows[g]
        end = starts[g + 1] if g + 1 < groups else total
        for k in range(starts[g], end):
            src = source_rows[k]
            for w in range(words):
                table[row, w] |= sources[src, w]
