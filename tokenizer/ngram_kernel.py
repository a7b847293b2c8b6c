"""Compiled n-gram encoding straight from Arrow's UTF-8 buffers (numba).

The common case of a linkage schema is an unconstrained text feature hashed as n-grams with a
fixed number of bits per token. For it, a record's filter is the OR of one precomputed filter
row per n-gram, so the whole chunk is two tight loops over the column's bytes:

1. decode each value, form its n-gram keys (code points packed into an int64, plus the
   position for positional n-grams), look each up in the feature's hash table and OR its
   filter row into the record's filter; list the grams not seen before;
2. Python hashes those new tokens (HMAC/BLAKE2, once per distinct token), and the few records
   that had one are done again.

No Python string is made per record. The token strings hashed are exactly clkhash's
(``tokens.tokenize``): n-1 spaces of padding each side for n > 1, ``"<i+1> <gram>"`` when
positional, nothing for an empty value.
"""

from __future__ import annotations

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .column_values import ColumnPreparer, PreparedColumn, column_preparable
from .feature_encoder import words_for_bits
from .hashing import blake_positions, double_hash_bases
from .kernels import or_rows_into
from .schema_model import BitsPerToken, Feature, NgramComparison, StringFormat

__all__ = ["NgramKernelEncoder", "kernel_can_encode", "warm_up"]

MAX_N = 3  # three 21-bit code points fit one int64 key
_CODEPOINT_BITS = 21
_EMPTY = -1
_NEW_GRAMS_START = 1 << 12
# A column is encoded per distinct value while distinct values are at most this share of its
# records; otherwise directly, trying the dictionary again every so many chunks.
_DICTIONARY_MAX_SHARE = 0.5
_DICTIONARY_RETRY_EVERY = 8
_SPACE = 0x20


def kernel_can_encode(feature: Feature) -> bool:
    """Whether a feature takes the compiled path: n-grams (n <= 3), bits per token, and a
    format whose values are either taken unchanged or checked column-wise first
    (``column_values``)."""
    return (isinstance(feature.comparison, NgramComparison)
            and feature.comparison.n <= MAX_N
            and isinstance(feature.strategy, BitsPerToken)
            and (_unchecked(feature) or column_preparable(feature)))


def _unchecked(feature: Feature) -> bool:
    """A text format that accepts every string unchanged (nothing to validate)."""
    fmt = feature.format
    return (isinstance(fmt, StringFormat) and fmt.pattern is None
            and fmt.min_length is None and fmt.max_length is None
            and fmt.case in (None, "mixed")
            and feature.encoding.replace("-", "").lower() in ("utf8", "utf16", "utf32"))


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


def _gram_text(key: int, n: int) -> str:
    mask = (1 << _CODEPOINT_BITS) - 1
    return "".join(chr((key >> (_CODEPOINT_BITS * (n - 1 - j))) & mask) for j in range(n))


class NgramKernelEncoder:
    """One feature's compiled encoder: a hash table (gram, position) -> filter row.

    Memory is bounded: past ``max_tokens`` distinct tokens the table is emptied, which never
    changes the output.
    """

    def __init__(self, feature: Feature, keys: tuple[bytes, bytes], hash_bits: int,
                 max_tokens: int = 1 << 18) -> None:
        assert kernel_can_encode(feature)
        assert isinstance(feature.comparison, NgramComparison)
        assert isinstance(feature.strategy, BitsPerToken)
        self.feature = feature
        self.keys = keys
        self.hash_bits = hash_bits
        self.n = feature.comparison.n
        self.positional = feature.comparison.positional
        self.bits = feature.strategy.bits
        self.words = words_for_bits(hash_bits)
        self.max_tokens = max_tokens
        self._use_dictionary = True
        self._direct_chunks = 0
        self.preparer = None if _unchecked(feature) else ColumnPreparer(feature)
        self._reset()

    def _reset(self, capacity: int = 1 << 12) -> None:
        self.table_keys = np.full(capacity, _EMPTY, dtype=np.int64)
        self.table_positions = np.zeros(capacity, dtype=np.int64)
        self.table_rows = np.zeros(capacity, dtype=np.int64)
        # Row 0 stays zero; token rows start at 1.
        self.token_filters = np.zeros((1 << 10, self.words), dtype=np.uint64)
        self.token_count = 0

    def _grow(self) -> None:
        capacity = 2 * len(self.table_keys)
        keys = np.full(capacity, _EMPTY, dtype=np.int64)
        positions = np.zeros(capacity, dtype=np.int64)
        rows = np.zeros(capacity, dtype=np.int64)
        _rehash(self.table_keys, self.table_positions, self.table_rows, keys, positions, rows)
        self.table_keys, self.table_positions, self.table_rows = keys, positions, rows

    def _token_filter(self, key: int, position: int) -> np.ndarray:
        gram = _gram_text(key, self.n)
        text = f"{position} {gram}" if self.positional else gram
        token = text.encode(self.feature.encoding)
        config = self.feature.hash
        if config.kind == "doubleHash":
            h1, h2 = double_hash_bases(token, self.keys[0], self.keys[1], self.hash_bits,
                                       config.prevent_singularity)
            found = (h1 + np.arange(self.bits, dtype=np.int64) * h2) % self.hash_bits
        else:
            found = blake_positions(token, self.keys[0], self.hash_bits, self.bits)
        bits = np.zeros(self.words * 64, dtype=np.uint8)
        bits[found] = 1
        # Big-endian bit order within each byte, as clkhash serialises.
        return np.packbits(bits).view(np.uint64)

    def _add_tokens(self, new_keys: np.ndarray, new_positions: np.ndarray) -> None:
        first = self.token_count + 1
        needed = first + len(new_keys)
        if needed > len(self.token_filters):
            grown = np.zeros((max(2 * len(self.token_filters), needed), self.words),
                             dtype=np.uint64)
            grown[:first] = self.token_filters[:first]
            self.token_filters = grown
        for j, (key, position) in enumerate(zip(new_keys.tolist(), new_positions.tolist(),
                                                strict=True)):
            self.token_filters[first + j] = self._token_filter(key, position)
        _set_rows(self.table_keys, self.table_positions, self.table_rows, new_keys,
                  new_positions, np.arange(first, needed, dtype=np.int64))
        self.token_count += len(new_keys)

    def encode_column(self, column: pa.Array | pa.ChunkedArray,
                      filters: np.ndarray) -> PreparedColumn | None:
        """OR the feature's bits of every record of ``column`` into ``filters``.

        A feature with a checked format is validated and normalised column-wise first; its
        rejects are returned (a rejected record gets no bits), else None.
        A column with many repeats (names, towns, codes) is encoded once per distinct value
        and gathered; a column of nearly unique values (ids, birth dates) is encoded
        directly. The choice is re-made now and then and never changes the output.
        """
        prepared = None
        if self.preparer is not None:
            prepared = self.preparer.prepare(column)
            column = prepared.values
        if self._use_dictionary:
            encoded = pc.dictionary_encode(column)
            if isinstance(encoded, pa.ChunkedArray):
                encoded = encoded.combine_chunks()
            distinct = encoded.dictionary
            self._use_dictionary = len(distinct) <= _DICTIONARY_MAX_SHARE * len(column)
            rows = np.zeros((len(distinct), filters.shape[1]), dtype=np.uint64)
            self.encode_rows(*self.column_buffers(distinct), rows)
            indices = encoded.indices
            codes = (pc.fill_null(indices, len(distinct)) if indices.null_count else indices)
            if indices.null_count:  # nulls encode as the empty string: no bits
                rows = np.vstack([rows, np.zeros((1, rows.shape[1]), dtype=np.uint64)])
            or_rows_into(filters, rows, codes.to_numpy(zero_copy_only=False).astype(np.int64))
        else:
            self._direct_chunks += 1
            self._use_dictionary = self._direct_chunks % _DICTIONARY_RETRY_EVERY == 0
            self.encode_rows(*self.column_buffers(column), filters)
        return prepared

    def column_buffers(self, column: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
        """The column as (int64 offsets, UTF-8 bytes), nulls as empty strings and the
        missing-value sentinel replaced (a prepared column's already is)."""
        column = pc.fill_null(column, "")
        missing = self.feature.missing_value
        if (self.preparer is None and missing is not None
                and missing.sentinel != missing.replace_with):
            column = pc.if_else(pc.equal(column, missing.sentinel), missing.replace_with, column)
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        column = column.cast(pa.large_string())
        offsets = np.frombuffer(column.buffers()[1], dtype=np.int64,
                                count=len(column) + 1, offset=column.offset * 8)
        data = (np.frombuffer(column.buffers()[2], dtype=np.uint8)
                if column.buffers()[2] is not None else np.zeros(1, dtype=np.uint8))
        return offsets, data

    def encode_rows(self, offsets: np.ndarray, data: np.ndarray, filters: np.ndarray) -> None:
        """OR the feature's bits of each record into its row of ``filters``; record r spans
        ``data[offsets[r]:offsets[r + 1]]``."""
        if self.token_count > self.max_tokens:
            self._reset()
        new_keys = np.empty(_NEW_GRAMS_START, dtype=np.int64)
        new_positions = np.empty(_NEW_GRAMS_START, dtype=np.int64)
        incomplete = np.empty(len(offsets) - 1, dtype=np.int64)
        found = 0
        while True:
            found, pending = _encode_pass(offsets, data, self.n, self.positional,
                                          self.table_keys, self.table_positions, self.table_rows,
                                          self.token_filters, filters, new_keys, new_positions,
                                          found, incomplete)
            if found >= 0:
                break
            self._grow()
            new_keys = np.empty(len(self.table_keys) // 2 + 1, dtype=np.int64)
            new_positions = np.empty(len(new_keys), dtype=np.int64)
            found = _list_pending(self.table_keys, self.table_positions, self.table_rows,
                                  new_keys, new_positions)
        if found:
            self._add_tokens(new_keys[:found], new_positions[:found])
        if pending:
            _or_records(offsets, data, self.n, self.positional, self.table_keys,
                        self.table_positions, self.table_rows, self.token_filters, filters,
                        incomplete[:pending])


def warm_up() -> None:
    """Load the compiled kernels (from numba's cache) by running them on a tiny input.

    Loading takes a few tenths of a second; a caller can do it on a thread while it reads
    its input instead of on the first chunk's critical path.
    """
    from .schema_model import HashConfig

    feature = Feature("warm", StringFormat(), NgramComparison(2, True), BitsPerToken(1),
                      HashConfig(), None)
    encoder = NgramKernelEncoder(feature, (b"k" * 8, b"k" * 8), 64, max_tokens=4)
    filters = np.zeros((3, 1), dtype=np.uint64)
    encoder.encode_rows(*encoder.column_buffers(pa.array(["ab"] * 3)), filters)
    encoder._grow()
    _list_pending(encoder.table_keys, encoder.table_positions, encoder.table_rows,
                  np.empty(4, dtype=np.int64), np.empty(4, dtype=np.int64))
