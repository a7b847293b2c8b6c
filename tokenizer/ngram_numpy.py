"""n-gram encoding with numpy alone, for runs too short to repay loading numba (``ngram_jit``).

The same result as the compiled loop, by whole arrays: the chunk's values as a matrix of code
points (padded with spaces, n-1 each side), every n-gram as an int64 key (with its position for
positional n-grams), keys looked up in a sorted table of known tokens, and each record's filter
the OR of its tokens' filter rows, taken one gram position at a time over the records long
enough to have it (records sorted by gram count, so those are a prefix).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa

__all__ = ["NumpyGramTable", "numpy_can_encode"]

_CODEPOINT_BITS = 21
_POSITION_BITS = 21
_SPACE = 0x20
_BLOCK_ROWS = 8192  # a block of filters stays in cache while its grams are OR-ed in
# Records go through in batches of at most this many code-point cells (records x longest), so
# a few very long values cost memory for themselves only.
_BATCH_CELLS = 1 << 22


def numpy_can_encode(n: int, positional: bool) -> bool:
    """Whether a gram and its position fit one int64 key: positional trigrams do not."""
    return n * _CODEPOINT_BITS + (_POSITION_BITS if positional else 0) <= 63


def _code_points(offsets: np.ndarray, data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lengths in code points, (records, longest) int64 matrix of code points, 0-padded)."""
    byte_lengths = np.diff(offsets)
    records = len(byte_lengths)
    body = data[offsets[0]:offsets[-1]]
    if not len(body) or int(body.max()) < 0x80:  # ASCII: one byte, one code point
        width = int(byte_lengths.max()) if records else 0
        points = np.zeros((records, max(width, 1)), dtype=np.int64)
        rows = np.repeat(np.arange(records), byte_lengths)
        columns = np.arange(len(body)) - np.repeat(offsets[:-1] - offsets[0], byte_lengths)
        points[rows, columns] = body
        return byte_lengths.astype(np.int64), points
    strings = pa.Array.from_buffers(pa.large_string(), records, [
        None, pa.py_buffer(offsets - offsets[0]), pa.py_buffer(body)]).to_pylist()
    lengths = np.fromiter(map(len, strings), dtype=np.int64, count=records)
    width = max(int(lengths.max()), 1)
    padded = np.array(strings, dtype=f"<U{width}")
    # numpy's fixed-width strings drop trailing NULs: count them back from the lengths.
    points = padded.view(np.uint32).reshape(records, width).astype(np.int64)
    return lengths, points


def _byte_positions(offsets: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Positions in the data buffer of the bytes of ``rows``, one record after the other."""
    sizes = offsets[rows + 1] - offsets[rows]
    starts = np.repeat(offsets[rows] - np.concatenate([[0], np.cumsum(sizes)[:-1]]), sizes)
    return starts + np.arange(int(sizes.sum()))


class NumpyGramTable:
    """Known tokens of one feature as sorted int64 keys -> filter rows."""

    def __init__(self, n: int, positional: bool) -> None:
        assert numpy_can_encode(n, positional)
        self.n = n
        self.positional = positional
        self.keys = np.zeros(0, dtype=np.int64)
        self.rows = np.zeros(0, dtype=np.int64)

    def _gram_keys(self, offsets: np.ndarray, data: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(grams per record, (records, grams) keys, their positions from 1)."""
        n = self.n
        lengths, points = _code_points(offsets, data)
        records, width = points.shape
        padded = np.full((records, width + 2 * (n - 1)), _SPACE, dtype=np.int64)
        padded[:, n - 1:n - 1 + width] = np.where(np.arange(width) < lengths[:, None], points,
                                                  _SPACE)
        grams = width + n - 1
        keys = np.zeros((records, grams), dtype=np.int64)
        for j in range(n):
            keys = (keys << _CODEPOINT_BITS) | padded[:, j:j + grams]
        counts = np.where(lengths > 0, lengths + n - 1, 0)
        return counts, keys, np.arange(1, grams + 1, dtype=np.int64)

    def _lookup(self, wanted: np.ndarray) -> np.ndarray:
        """Rows of ``wanted`` keys, 0 where unknown."""
        if not len(self.keys):
            return np.zeros(len(wanted), dtype=np.int64)
        at = np.minimum(np.searchsorted(self.keys, wanted), len(self.keys) - 1)
        return np.where(self.keys[at] == wanted, self.rows[at], 0)

    def encode_rows(self, offsets: np.ndarray, data: np.ndarray, filters: np.ndarray,
                    token_filters: Callable[[], np.ndarray],
                    new_rows: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> None:
        """As ``ngram_jit.JitGramTable.encode_rows``."""
        sizes = np.diff(offsets)
        if not len(sizes) or int(sizes.max()) * len(sizes) <= _BATCH_CELLS:
            self._encode_batch(offsets, data, filters, token_filters, new_rows)
            return
        by_size = np.argsort(sizes, kind="stable")
        first = 0
        while first < len(by_size):
            # Records sorted by size: a batch's last record is its longest.
            last = first + 1
            while (last < len(by_size)
                   and (last + 1 - first) * int(sizes[by_size[last]]) <= _BATCH_CELLS):
                last += 1
            rows = by_size[first:last]
            batch_offsets = np.concatenate([[0], np.cumsum(sizes[rows])]).astype(np.int64)
            batch = np.zeros((len(rows), filters.shape[1]), dtype=np.uint64)
            self._encode_batch(batch_offsets, data[_byte_positions(offsets, rows)], batch,
                               token_filters, new_rows)
            filters[rows] |= batch
            first = last

    def _encode_batch(self, offsets: np.ndarray, data: np.ndarray, filters: np.ndarray,
                      token_filters: Callable[[], np.ndarray],
                      new_rows: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> None:
        counts, keys, positions = self._gram_keys(offsets, data)
        if self.positional:
            keys = (keys << _POSITION_BITS) | positions
        order = np.argsort(-counts, kind="stable")  # longest first: each gram's records a prefix
        keys = keys[order]
        valid = positions - 1 < counts[order][:, None]
        rows = np.zeros(keys.shape, dtype=np.int64)
        rows[valid] = self._lookup(keys[valid])
        missing = valid & (rows == 0)
        if missing.any():
            unseen = np.unique(keys[missing])
            gram_keys = unseen >> _POSITION_BITS if self.positional else unseen
            gram_positions = unseen & ((1 << _POSITION_BITS) - 1) if self.positional else \
                np.zeros(len(unseen), dtype=np.int64)
            added = new_rows(gram_keys, gram_positions)
            merged = np.concatenate([self.keys, unseen])
            by_key = np.argsort(merged, kind="stable")
            self.keys = merged[by_key]
            self.rows = np.concatenate([self.rows, added])[by_key]
            rows[missing] = self._lookup(keys[missing])
        table = token_filters()
        prefix = np.count_nonzero(valid, axis=0)  # records having gram j
        ordered = np.zeros((len(order), filters.shape[1]), dtype=np.uint64)
        for first in range(0, len(order), _BLOCK_ROWS):
            block = ordered[first:first + _BLOCK_ROWS]
            for j in np.flatnonzero(prefix > first).tolist():
                upto = min(int(prefix[j]) - first, len(block))
                part = block[:upto]
                np.bitwise_or(part, table[rows[first:first + upto, j]], out=part)
        filters[order] |= ordered
