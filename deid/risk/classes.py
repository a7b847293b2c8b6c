"""Equivalence classes: the records that share every quasi-identifier's value.

Every figure of a risk report starts here. A missing value is a value of its own (two records
both missing a ZIP3 are indistinguishable on it), as pycanon and ARX treat it. Values are
compared as they are written: generalise first (``generalise``) to compare coarser ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["EquivalenceClasses", "equivalence_classes", "column_codes"]


@dataclass(frozen=True)
class EquivalenceClasses:
    """``class_of[r]``: the class of record r (0 .. n_classes - 1, classes in order of their
    first record); ``sizes[c]``: its number of records."""

    quasi_identifiers: tuple[str, ...]
    class_of: np.ndarray
    sizes: np.ndarray

    @property
    def records(self) -> int:
        return int(self.class_of.size)

    @property
    def count(self) -> int:
        return int(self.sizes.size)

    def record_sizes(self) -> np.ndarray:
        """The size of each record's class."""
        return self.sizes[self.class_of]


def column_codes(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, int]:
    """Each value's code (0 .. distinct - 1; a missing value gets a code of its own) and the
    number of codes."""
    encoded = pc.dictionary_encode(column)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.unify_dictionaries().combine_chunks()
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    distinct = len(encoded.dictionary)
    if encoded.null_count:
        codes = np.where(pc.is_null(encoded.indices).to_numpy(zero_copy_only=False),
                         distinct, codes)
        distinct += 1
    return codes.astype(np.int64, copy=False), distinct


def equivalence_classes(table: pa.Table, quasi_identifiers: Sequence[str]
                        ) -> EquivalenceClasses:
    """Group the records of ``table`` by their quasi-identifiers.

    Raises:
        KeyError: a quasi-identifier that is not a column (named).
    """
    missing = [q for q in quasi_identifiers if q not in table.column_names]
    if missing:
        raise KeyError(f"no column {missing[0]!r}; columns: {table.column_names}")
    key = np.zeros(table.num_rows, np.int64)
    radix = 1
    for name in quasi_identifiers:
        codes, distinct = column_codes(table[name])
        if radix * distinct >= 2**62:  # renumber the combined key so far, then go on
            _, key = np.unique(key, return_inverse=True)
            radix = int(key.max()) + 1 if key.size else 1
        key = key * distinct + codes
        radix *= max(distinct, 1)
    if not key.size:
        return EquivalenceClasses(tuple(quasi_identifiers), key, np.zeros(0, np.int64))
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")  # classes in order of their first record
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    class_of = rank[inverse].astype(np.int64)
    return EquivalenceClasses(tuple(quasi_identifiers), class_of,
                              np.bincount(class_of).astype(np.int64))
