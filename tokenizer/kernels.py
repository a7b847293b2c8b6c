"""Compiled inner loops of the encoder (numba): OR-ing packed filter rows together.

Both loops only read and OR whole uint64 words, so they are exact; they exist because numpy
would first materialise every gathered row as a temporary array.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["or_groups_into", "or_rows_into"]


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


@numba.njit(cache=True, nogil=True)
def or_rows_into(out: np.ndarray, table: np.ndarray, rows: np.ndarray) -> None:  # pragma: no cover
    """out[i] |= table[rows[i]] for every i."""
    words = out.shape[1]
    for i in range(rows.shape[0]):
        r = rows[i]
        for w in range(words):
            out[i, w] |= table[r, w]
