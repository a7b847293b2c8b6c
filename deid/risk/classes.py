"""Equivalence classes: the records that share every quasi-identifier's value.

Every figure of a risk report starts here. A missing value is a value of its own (two records
both missing a ZIP3 are indistinguishable on it), as ARX treats it; pycanon 1.3.6 (pandas'
groupby) drops such records instead, which would hide a record unique by its missing value.
Values are compared as they are written: generalise first (``generalise``) to compare coarser ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["EquivalenceClasses", "equivalence_classes", "column_codes", "combined_key"]


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


def column_codes(column: pa.ChunkedArray | pa.Array, ordered: bool = False
                 ) -> tuple[np.ndarray, int]:
    """Each value's code (0 .. distinct - 1; a missing value gets a code of its own, the last)
    and the number of codes. ``ordered``: codes follow the values' order (numbers by value,
    text by code point), which distances between values (t-closeness) need."""
    encoded = pc.dictionary_encode(column)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.unify_dictionaries().combine_chunks()
    distinct = len(encoded.dictionary)
    missing = int(encoded.null_count > 0)
    codes = pc.fill_null(encoded.indices, pa.scalar(distinct, encoded.indices.type))
    codes = codes.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    if ordered and distinct:
        rank = np.arange(distinct + 1)
        rank[pc.array_sort_indices(encoded.dictionary).to_numpy()] = np.arange(distinct)
        codes = rank[codes]
    return codes, distinct + missing


def combined_key(columns: Iterable[tuple[np.ndarray, int]], rows: int
                 ) -> tuple[np.ndarray, int]:
    """One int64 key per record, equal for two records exactly when every column's code is
    (each column: its codes and how many there are), and the number of keys it can take:
    mixed radix, renumbered densely whenever the next column would overflow it."""
    key = np.zeros(rows, np.int64)
    radix = 1
    for codes, distinct in columns:
        if distinct <= 1:  # one value: tells no record apart
            continue
        if radix * distinct >= 2**62:
            _, key = np.unique(key, return_inverse=True)
            key = key.reshape(-1).astype(np.int64)
            radix = int(key.max()) + 1 if key.size else 1
        key = key * distinct + codes
        radix *= distinct
    return key, radix


def equivalence_classes(table: pa.Table, quasi_identifiers: Sequence[str]
                        ) -> EquivalenceClasses:
    """Group the records of ``table`` by their quasi-identifiers.

    Raises:
        KeyError: a quasi-identifier that is not a column (named).
    """
    missing = [q for q in quasi_identifiers if q not in table.column_names]
    if missing:
        raise KeyError(f"no column {missing[0]!r}; columns: {table.column_names}")
    key, _ = combined_key((column_codes(table[name]) for name in quasi_identifiers),
                          table.num_rows)
    if not key.size:
        return EquivalenceClasses(tuple(quasi_identifiers), key, np.zeros(0, np.int64))
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")  # classes in order of their first record
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    class_of = rank[inverse].astype(np.int64)
    return EquivalenceClasses(tuple(quasi_identifiers), class_of,
                              np.bincount(class_of).astype(np.int64))
