"""The compiled n-gram loops (numba), loaded only for long runs (``ngram_kernel``).

A record's filter is the OR of one precomputed filter row per n-gram, found in an
open-addressing hash table (gram key, position) -> row that lives in ``JitGramTable``:

1. decode each value, form its n-gram keys (code points packed into an int64, plus the
   position for positional n-grams), look each up and OR its filter row into the record's
   filter; list the grams not seen before;
2. the caller hashes those new tokens (once per distinct token), and the few records that had
   one are done again.

Importing numba and loading these kernels from its cache takes about a second, more than a
short run's whole encoding; ``ngram_numpy`` does the same with numpy meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable

import numba
import numpy as np

__all__ = ["JitGramTable", "warm_up"]

_CODEPOINT_BITS = 21
_EMPTY = -1
_NEW_GRAMS_START = 1 << 12
_SPACE = 0x20


@numba.njit(cache=True, nogil=True, inline="always")
def _decode(data: np.ndarray, start: int, end: int, out: np.ndarray) -> int:  # pragma: no cover
    """UTF-8 bytes (valid, as Arrow guarantees) to code points; returns how many."""
    count = 0
    i = start
    while i < end:
        b = np.int64(data[i])
        if b < 0x80:
            cp, size = b, 1
        elif b < 0xE0:
            cp, size = b & 0x1F, 2
        elif b < 0xF0:
            cp, size = b & 0x0F, 3
        else:
            cp, size = b & 0x07, 4
        for k in range(1, size):
            cp = (cp << 6) | (np.int64(data[i + k]) & 0x3F)
        out[count] = cp
        count += 1
        i += size
    return count


@numba.njit(cache=True, nogil=True, inline="always")
def _points_buffer(offsets: np.ndarray) -> np.ndarray:  # pragma: no cover
    """Room for the code points of the longest value (at most one per byte)."""
    longest = 1
    for r in range(offsets.shape[0] - 1):
        longest = max(longest, offsets[r + 1] - offsets[r])
    return np.empty(longest, dtype=np.int64)


@numba.njit(cache=True, nogil=True, inline="always")
def _gram_key(points: np.ndarray, length: int, n: int,
              i: int) -> np.int64:  # pragma: no cover
    """Key of the gram starting at padded position i (padding: n-1 spaces each side)."""
    key = np.int64(0)
    for j in range(n):
        p = i + j - (n - 1)
        cp = points[p] if 0 <= p < length else _SPACE
        key = (key << _CODEPOINT_BITS) | cp
    return key


@numba.njit(cache=True, nogil=True, inline="always")
def _slot(keys: np.ndarray, positions: np.ndarray, key: np.int64,
          position: int) -> int:  # pragma: no cover
    """Open-addressing slot of (key, position): where it is, or the empty slot to put it."""
    mask = keys.shape[0] - 1
    h = key * np.int64(-7046029254386353131) + position * np.int64(-4658895280553007687)
    s = (h ^ (h >> 29)) & mask
    while keys[s] != _EMPTY and (keys[s] != key or positions[s] != position):
        s = (s + 1) & mask
    return s


@numba.njit(cache=True, nogil=True)
def _list_pending(keys: np.ndarray, positions: np.ndarray, rows: np.ndarray,
                  new_keys: np.ndarray, new_positions: np.ndarray) -> int:  # pragma: no cover
    """List the entries still waiting for their filter row (row -1)."""
    found = 0
    for s in range(keys.shape[0]):
        if keys[s] != _EMPTY and rows[s] == -1:
            new_keys[found] = keys[s]
            new_positions[found] = positions[s]
            found += 1
    return found


@numba.njit(cache=True, nogil=True)
def _encode_pass(offsets: np.ndarray, data: np.ndarray, n: int, positional: bool,
                 keys: np.ndarray, positions: np.ndarray, rows: np.ndarray,
                 token_filters: np.ndarray, out: np.ndarray, new_keys: np.ndarray,
                 new_positions: np.ndarray, found: int,
                 incomplete: np.ndarray) -> tuple[int, int]:  # pragma: no cover
    """OR the filter row of every known gram into its record; list unseen grams.

    An unseen (gram, position) is inserted with row -1 and listed after the ``found``
    already listed; its record is listed as incomplete (OR is idempotent, so incomplete
    records are simply done again by ``_or_records`` once the new rows exist).
    Returns (grams listed, incomplete records), or (-1, 0) when the table would pass half
    full or the list is full: grow them, list the table's pending entries with
    ``_list_pending`` and call again.
    """
    capacity = keys.shape[0]
    used = 0
    for s in range(capacity):
        if keys[s] != _EMPTY:
            used += 1
    words = out.shape[1]
    points = _points_buffer(offsets)
    pending = 0
    for r in range(offsets.shape[0] - 1):
        length = _decode(data, offsets[r], offsets[r + 1], points)
        complete = True
        for i in range(length + n - 1 if length else 0):
            key = _gram_key(points, length, n, i)
            position = i + 1 if positional else 0
            s = _slot(keys, positions, key, position)
            if keys[s] == _EMPTY:
                if 2 * (used + 1) > capacity or found == new_keys.shape[0]:
                    return -1, 0
                keys[s] = key
                positions[s] = position
                rows[s] = -1
                used += 1
                new_keys[found] = key
                new_positions[found] = position
                found += 1
            row = rows[s]
            if row < 0:
                complete = False
                continue
            for w in range(words):
                out[r, w] |= token_filters[row, w]
        if not complete:
            incomplete[pending] = r
            pending += 1
    return found, pending


@numba.njit(cache=True, nogil=True)
def _or_records(offsets: np.ndarray, data: np.ndarray, n: int, positional: bool,
                keys: np.ndarray, positions: np.ndarray, rows: np.ndarray,
                token_filters: np.ndarray, out: np.ndarray,
                records: np.ndarray) -> None:  # pragma: no cover
    """out[r] |= the filter row of every gram of each listed record r (all grams known)."""
    words = out.shape[1]
    points = _points_buffer(offsets)
    for r in records:
        length = _decode(data, offsets[r], offsets[r + 1], points)
        for i in range(length + n - 1 if length else 0):
            key = _gram_key(points, length, n, i)
            row = rows[_slot(keys, positions, key, i + 1 if positional else 0)]
            for w in range(words):
                out[r, w] |= token_filters[row, w]


@numba.njit(cache=True, nogil=True)
def _rehash(keys: np.ndarray, positions: np.ndarray, rows: np.ndarray, new_keys: np.ndarray,
            new_positions: np.ndarray, new_rows: np.ndarray) -> None:  # pragma: no cover
    for s in range(keys.shape[0]):
        if keys[s] != _EMPTY:
            t = _slot(new_keys, new_positions, keys[s], positions[s])
            new_keys[t] = keys[s]
            new_positions[t] = positions[s]
            new_rows[t] = rows[s]


@numba.njit(cache=True, nogil=True)
def _set_rows(keys: np.ndarray, positions: np.ndarray, rows: np.ndarray, which_keys: np.ndarray,
              which_positions: np.ndarray, values: np.ndarray) -> None:  # pragma: no cover
    for j in range(which_keys.shape[0]):
        rows[_slot(keys, positions, which_keys[j], which_positions[j])] = values[j]


class JitGramTable:
    """The hash table (gram key, position) -> filter row of one feature, and its loop."""

    def __init__(self, n: int, positional: bool, capacity: int = 1 << 12) -> None:
        self.n = n
        self.positional = positional
        self.keys = np.full(capacity, _EMPTY, dtype=np.int64)
        self.positions = np.zeros(capacity, dtype=np.int64)
        self.rows = np.zeros(capacity, dtype=np.int64)

    def _grow(self) -> None:
        capacity = 2 * len(self.keys)
        keys = np.full(capacity, _EMPTY, dtype=np.int64)
        positions = np.zeros(capacity, dtype=np.int64)
        rows = np.zeros(capacity, dtype=np.int64)
        _rehash(self.keys, self.positions, self.rows, keys, positions, rows)
        self.keys, self.positions, self.rows = keys, positions, rows

    def encode_rows(self, offsets: np.ndarray, data: np.ndarray, filters: np.ndarray,
                    token_filters: Callable[[], np.ndarray],
                    new_rows: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> None:
        """OR the bits of each record into its row of ``filters``; record r spans
        ``data[offsets[r]:offsets[r + 1]]``. ``token_filters()`` is the current table of
        filter rows; ``new_rows(keys, positions)`` adds rows for unseen grams."""
        new_keys = np.empty(_NEW_GRAMS_START, dtype=np.int64)
        new_positions = np.empty(_NEW_GRAMS_START, dtype=np.int64)
        incomplete = np.empty(len(offsets) - 1, dtype=np.int64)
        found = 0
        while True:
            found, pending = _encode_pass(offsets, data, self.n, self.positional, self.keys,
                                          self.positions, self.rows, token_filters(), filters,
                                          new_keys, new_positions, found, incomplete)
            if found >= 0:
                break
            self._grow()
            new_keys = np.empty(len(self.keys) // 2 + 1, dtype=np.int64)
            new_positions = np.empty(len(new_keys), dtype=np.int64)
            found = _list_pending(self.keys, self.positions, self.rows, new_keys,
                                  new_positions)
        if found:
            rows = new_rows(new_keys[:found], new_positions[:found])
            _set_rows(self.keys, self.positions, self.rows, new_keys[:found],
                      new_positions[:found], rows)
        if pending:
            _or_records(offsets, data, self.n, self.positional, self.keys, self.positions,
                        self.rows, token_filters(), filters, incomplete[:pending])


def warm_up() -> None:
    """Load every kernel from numba's cache (compiling it the first time) on a tiny input."""
    table = JitGramTable(2, True, capacity=4)
    filters = np.zeros((3, 1), dtype=np.uint64)
    store = np.zeros((8, 1), dtype=np.uint64)
    offsets = np.array([0, 2, 4, 6], dtype=np.int64)
    data = np.frombuffer(b"ababab", dtype=np.uint8)

    def new_rows(keys: np.ndarray, positions: np.ndarray) -> np.ndarray:
        return np.arange(1, len(keys) + 1, dtype=np.int64) % len(store)

    table.encode_rows(offsets, data, filters, lambda: store, new_rows)
    table._grow()
    _list_pending(table.keys, table.positions, table.rows, np.empty(4, dtype=np.int64),
                  np.empty(4, dtype=np.int64))
