"""n-gram encoding straight from Arrow's UTF-8 buffers, with no Python per record.

The common case of a linkage schema is a text feature hashed as n-grams with a fixed number of
bits per token. For it, a record's filter is the OR of one precomputed filter row per n-gram
(a row per distinct token, hashed once with HMAC/BLAKE2), so a chunk is: the column's values as
code points, their n-gram keys, each key's filter row, and the OR of those rows per record.

Two implementations give the same filters: ``ngram_numpy`` by whole arrays, used first, and
``ngram_jit``'s compiled loops (numba), faster per record but about a second to load. A run
starts on numpy and loads numba on a thread once it has encoded ``_JIT_AFTER_ROWS`` records,
then switches: a short run never pays for numba, a long one soon runs compiled.

The token strings hashed are exactly clkhash's (``tokens.tokenize``): n-1 spaces of padding
each side for n > 1, ``"<i+1> <gram>"`` when positional, nothing for an empty value.
"""

from __future__ import annotations

import threading
from types import ModuleType

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .column_values import ColumnPreparer, PreparedColumn, column_preparable
from .feature_encoder import words_for_bits
from .hashing import blake_positions, double_hash_bases
from .ngram_numpy import NumpyGramTable, numpy_can_encode
from .numba_start import scipy_refused
from .schema_model import BitsPerToken, Feature, NgramComparison, StringFormat

__all__ = ["NgramKernelEncoder", "kernel_can_encode", "load_jit"]

MAX_N = 3  # three 21-bit code points fit one int64 key
_CODEPOINT_BITS = 21
# A column is encoded per distinct value while distinct values are at most this share of its
# records; otherwise directly, trying the dictionary again every so many chunks.
_DICTIONARY_MAX_SHARE = 0.5
_DICTIONARY_RETRY_EVERY = 8
# Records one encoder handles with numpy before numba is loaded for the rest (loading it costs
# about what numpy takes for this many records of a few features).
_JIT_AFTER_ROWS = 300_000

_jit: ModuleType | None = None
_jit_lock = threading.Lock()
_jit_started = False


def _load_jit() -> None:
    global _jit
    with scipy_refused():  # numba's start-up without scipy (``numba_start``)
        from . import ngram_jit

        ngram_jit.warm_up()
    _jit = ngram_jit


def load_jit(wait: bool = False) -> ModuleType | None:
    """Start loading the compiled kernels on a thread (once); the module when it is loaded,
    else None. ``wait``: load them now."""
    global _jit_started
    with _jit_lock:
        if not _jit_started:
            _jit_started = True
            if not wait:
                threading.Thread(target=_load_jit, name="pprl-load-jit", daemon=True).start()
            else:
                _load_jit()
    return _jit


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


def _gram_text(key: int, n: int) -> str:
    mask = (1 << _CODEPOINT_BITS) - 1
    return "".join(chr((key >> (_CODEPOINT_BITS * (n - 1 - j))) & mask) for j in range(n))


class NgramKernelEncoder:
    """One feature's encoder: filter rows of its tokens, and a table gram -> row.

    Memory is bounded: past ``max_tokens`` distinct tokens the tables are emptied, which never
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
        self.rows_encoded = 0
        self._reset()

    def _reset(self) -> None:
        self._numpy = (NumpyGramTable(self.n, self.positional)
                       if numpy_can_encode(self.n, self.positional) else None)
        self._compiled = None
        # Row 0 stays zero; token rows start at 1.
        self.token_filters = np.zeros((1 << 10, self.words), dtype=np.uint64)
        self.token_count = 0

    def _table(self):  # type: ignore[no-untyped-def]
        """The compiled table once numba is loaded (or where numpy cannot encode), else the
        numpy one."""
        if self._compiled is None:
            jit = None
            if self._numpy is None:
                jit = load_jit(wait=True)
            elif self.rows_encoded >= _JIT_AFTER_ROWS:
                jit = load_jit()
            if jit is not None:
                self._compiled = jit.JitGramTable(self.n, self.positional)
        return self._compiled if self._compiled is not None else self._numpy

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

    def _add_tokens(self, new_keys: np.ndarray, new_positions: np.ndarray) -> np.ndarray:
        """Filter rows for new (gram key, position) tokens; returns their row numbers."""
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
        self.token_count += len(new_keys)
        return np.arange(first, needed, dtype=np.int64)

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
            np.bitwise_or(filters, rows[codes.to_numpy(zero_copy_only=False)], out=filters)
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
        self._table().encode_rows(offsets, data, filters, lambda: self.token_filters,
                                  self._add_tokens)
        self.rows_encoded += len(offsets) - 1
