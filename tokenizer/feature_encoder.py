"""Bloom-filter bits of one feature for a column of raw values.

Each distinct raw value is validated, tokenized and hashed once; its filter bits are kept as a
packed row of uint64 words. A chunk's column is then a gather of rows by dictionary code.
Memory is bounded: when the rows or tokens exceed their budget the caches are emptied, which
never changes the output.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .occurrences import (
    VECTOR_MAX_LENGTH,
    VECTOR_MAX_N,
    Occurrences,
    ngram_occurrences,
    python_occurrences,
)
from .schema_model import Feature, NgramComparison
from .token_table import TokenTable
from .values import ValuePreparer

__all__ = ["FeatureEncoder", "FeatureColumn", "words_for_bits"]

_MISS_BATCH = 8192
# A feature stops caching values when a chunk of at least this many distinct values finds
# fewer than this share of them in the cache.
_UNCACHED_MIN_DISTINCT = 4096
_UNCACHED_MAX_HIT_RATE = 0.05
# (token id, bit count) pairs are keyed as token_id * _BITS_KEY_SPAN + bits.
_BITS_KEY_SPAN = 1 << 20


def words_for_bits(bits: int) -> int:
    return (bits + 63) // 64


@dataclass(frozen=True)
class FeatureColumn:
    """One chunk's column of a feature.

    Attributes:
        rows: for each record, the row of the feature's table holding its bits.
        reject_codes: -1 where the value is valid, else an index into ``reasons``.
        reasons: texts of the rejection reasons met in this chunk.
    """

    rows: np.ndarray
    reject_codes: np.ndarray
    reasons: list[str]


class FeatureEncoder:
    """Caches value -> packed bits for one feature and fills them in for new values."""

    def __init__(self, feature: Feature, keys: tuple[bytes, bytes], hash_bits: int,
                 max_rows: int = 1 << 18, max_tokens: int = 1 << 18) -> None:
        self.feature = feature
        self.hash_bits = hash_bits
        self.words = words_for_bits(hash_bits)
        self.max_rows = max_rows
        self.max_tokens = max_tokens
        self.preparer = ValuePreparer(feature)
        self.tokens = TokenTable(feature.hash, keys, hash_bits, feature.encoding)
        self._vectorised = (isinstance(feature.comparison, NgramComparison)
                            and feature.comparison.n <= VECTOR_MAX_N)
        self._uncached = False
        self._reset_rows()
        self._reset_tokens()

    def _reset_tokens(self) -> None:
        # Row 0 of token_filters is never used, so 0 can mean "not built yet".
        self.tokens.clear()
        self.token_filters = np.zeros((256, self.words), dtype=np.uint64)
        self._token_used = 1
        self._token_row_of: dict[int, int] = {}

    def _reset_rows(self, capacity: int = 1024) -> None:
        # Row 0 stays all zeros: rejected values point at it.
        self.table = np.zeros((capacity, self.words), dtype=np.uint64)
        self.used = 1
        self.row_of: dict[str, int] = {}  # value -> row (> 0) or -(reason id + 1)
        self.reason_texts: list[str] = []
        self.reason_ids: dict[str, int] = {}

    def _ensure_room(self, extra: int) -> None:
        if self.used + extra > len(self.table):
            grown = np.zeros((max(2 * len(self.table), self.used + extra), self.words),
                             dtype=np.uint64)
            grown[:self.used] = self.table[:self.used]
            self.table = grown

    def _reason_code(self, reason: str) -> int:
        code = self.reason_ids.get(reason)
        if code is None:
            code = self.reason_ids[reason] = len(self.reason_texts)
            self.reason_texts.append(reason)
        return code

    def encode(self, column: pa.Array | pa.ChunkedArray) -> FeatureColumn:
        """Rows and rejects for a column of strings (nulls count as empty strings)."""
        if len(self.row_of) > self.max_rows or len(self.tokens) > self.max_tokens:
            self._reset_rows()
            self._reset_tokens()
        column = pc.fill_null(column, "")
        encoded = pc.dictionary_encode(column)
        if isinstance(encoded, pa.ChunkedArray):
            encoded = encoded.combine_chunks()
        codes = encoded.indices.to_numpy(zero_copy_only=False)
        distinct: list[str] = encoded.dictionary.to_pylist()
        if self._uncached:
            self._reset_rows(capacity=len(distinct) + 1)
            value_rows = np.array(self._add_batched(distinct, remember=False), dtype=np.int64)
        else:
            value_rows = self._rows_through_cache(distinct)
        reject_of_value = np.where(value_rows < 0, -value_rows - 1, -1)
        rows = np.maximum(value_rows, 0)[codes]
        return FeatureColumn(rows, reject_of_value[codes], list(self.reason_texts))

    def _rows_through_cache(self, distinct: list[str]) -> np.ndarray:
        row_of = self.row_of
        cached = [row_of.get(v) for v in distinct]
        missing = [i for i, r in enumerate(cached) if r is None]
        for i, row in zip(missing, self._add_batched([distinct[i] for i in missing]),
                          strict=True):
            cached[i] = row
        if (len(distinct) >= _UNCACHED_MIN_DISTINCT
                and len(missing) > (1 - _UNCACHED_MAX_HIT_RATE) * len(distinct)):
            # Nearly every value is new (ids, birth dates...): looking values up and
            # remembering them costs more than it saves, so stop caching values.
            self._uncached = True
        return np.array(cached, dtype=np.int64)

    def _add_batched(self, values: list[str], remember: bool = True) -> list[int]:
        rows: list[int] = []
        for start in range(0, len(values), _MISS_BATCH):
            rows += self._add_values(values[start:start + _MISS_BATCH], remember)
        return rows

    def _add_values(self, values: Sequence[str], remember: bool) -> list[int]:
        """Compute and store the bits of new values; returns their rows (or reject codes)."""
        result = np.zeros(len(values), dtype=np.int64)
        prepared, keep, value_rejects = self.preparer.prepare_batch(values)
        for i, reason in value_rejects:
            result[i] = -self._reason_code(reason) - 1
        occurrences, rejected = self._occurrences(prepared)
        kept = np.asarray(keep, dtype=np.int64)
        accepted_mask = np.ones(len(prepared), dtype=bool)
        for j, reason in rejected.items():
            result[kept[j]] = -self._reason_code(reason) - 1
            accepted_mask[j] = False
        accepted = np.flatnonzero(accepted_mask)
        self._ensure_room(len(accepted))
        new_rows = np.zeros(len(prepared), dtype=np.int64)
        new_rows[accepted] = np.arange(self.used, self.used + len(accepted))
        self._scatter(occurrences, new_rows)
        self.used += len(accepted)
        result[kept[accepted]] = new_rows[accepted]
        rows = result.tolist()
        if remember:
            self.row_of.update(zip(values, rows, strict=True))
        return rows

    def _occurrences(self, prepared: list[str]) -> tuple[Occurrences, dict[int, str]]:
        feature = self.feature
        if not self._vectorised:
            return python_occurrences(prepared, feature.comparison, feature.strategy, self.tokens)
        lengths = np.fromiter(map(len, prepared), dtype=np.int64, count=len(prepared))
        vector_ok = (lengths > 0) & (lengths <= VECTOR_MAX_LENGTH)
        if "\x00" in "\x01".join(prepared):
            vector_ok &= np.array(["\x00" not in v for v in prepared], dtype=bool)
        fast, slow = np.flatnonzero(vector_ok), np.flatnonzero(~vector_ok)
        assert isinstance(feature.comparison, NgramComparison)
        parts = []
        if len(fast):
            values = prepared if len(fast) == len(prepared) else [prepared[j] for j in fast]
            occ = ngram_occurrences(values, feature.comparison, feature.strategy, self.tokens)
            parts.append(Occurrences(fast[occ.value_index], occ.token_id, occ.bits))
        if len(slow):
            occ, _ = python_occurrences([prepared[j] for j in slow], feature.comparison,
                                        feature.strategy, self.tokens)
            parts.append(Occurrences(slow[occ.value_index], occ.token_id, occ.bits))
        return Occurrences.concat(parts), {}

    def _token_rows(self, token_ids: np.ndarray, bits: np.ndarray) -> np.ndarray:
        """Rows of ``token_filters`` holding the filter of each (token, bit count) occurrence.

        A token's filter depends only on the key, the token and how many bits it sets, so
        it is built once; a value's filter is then the OR of its tokens' rows.
        """
        keys = token_ids * _BITS_KEY_SPAN + bits
        distinct, inverse = np.unique(keys, return_inverse=True)
        rows = np.fromiter((self._token_row_of.get(k, 0) for k in distinct.tolist()),
                           dtype=np.int64, count=len(distinct))
        new = np.flatnonzero(rows == 0)
        if len(new):
            first = self._token_used
            rows[new] = np.arange(first, first + len(new))
            self._build_token_filters(distinct[new] // _BITS_KEY_SPAN,
                                      distinct[new] % _BITS_KEY_SPAN, rows[new])
            self._token_row_of.update(zip(distinct[new].tolist(), rows[new].tolist(),
                                          strict=True))
        return rows[inverse]

    def _build_token_filters(self, token_ids: np.ndarray, bits: np.ndarray,
                             rows: np.ndarray) -> None:
        needed = int(rows.max()) + 1
        if needed > len(self.token_filters):
            grown = np.zeros((max(2 * len(self.token_filters), needed), self.words),
                             dtype=np.uint64)
            grown[:self._token_used] = self.token_filters[:self._token_used]
            self.token_filters = grown
        self._token_used = needed
        total = int(bits.sum())
        if total == 0:
            return
        expanded = np.repeat(np.arange(len(bits)), bits)
        ordinals = np.arange(total) - np.repeat(np.cumsum(bits) - bits, bits)
        positions = self.tokens.positions(token_ids[expanded], ordinals)
        # Big-endian bit order within each byte, as clkhash serialises: bit p lives in byte
        # p // 8 under mask 0x80 >> (p % 8).
        byte_view = self.token_filters.view(np.uint8).reshape(-1)
        flat = rows[expanded] * (self.words * 8) + positions // 8
        np.bitwise_or.at(byte_view, flat, (0x80 >> (positions % 8)).astype(np.uint8))

    def _scatter(self, occ: Occurrences, new_rows: np.ndarray) -> None:
        """Set the bits of every occurrence into the rows of its value."""
        keep = (occ.bits > 0) & (new_rows[occ.value_index] > 0)
        if not keep.any():
            return
        value_index, token_ids, bits = occ.value_index[keep], occ.token_id[keep], occ.bits[keep]
        if len(value_index) > 1 and (value_index[1:] < value_index[:-1]).any():
            order = np.argsort(value_index, kind="stable")
            value_index, token_ids, bits = value_index[order], token_ids[order], bits[order]
        from .kernels import or_groups_into  # here: numba loads only for features that need it

        token_rows = self._token_rows(token_ids, bits)
        starts = np.flatnonzero(np.r_[True, value_index[1:] != value_index[:-1]])
        or_groups_into(self.table, new_rows[value_index[starts]], starts, self.token_filters,
                       token_rows)
