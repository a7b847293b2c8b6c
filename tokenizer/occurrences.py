"""Token occurrences of a batch of prepared values: (value index, token id, bit count).

Two ways to the same result. ``ngram_occurrences`` works on a whole batch at once with
numpy (code points in a fixed-width array, n-grams as integer keys, ``np.unique`` to
find the distinct tokens), so Python only touches each *distinct* token. ``python_occurrences``
tokenizes one value at a time and covers everything else (exact and numeric comparisons,
n > 3, very long values, values holding NUL, which numpy's fixed-width strings drop).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .schema_model import BitsPerFeature, BitsPerToken, Comparison, NgramComparison, Strategy
from .token_table import TokenTable
from .tokens import bits_per_token, tokenize
from .values import ValueRejected

__all__ = ["Occurrences", "ngram_occurrences", "python_occurrences", "VECTOR_MAX_N",
           "VECTOR_MAX_LENGTH"]

VECTOR_MAX_N = 3  # three 21-bit code points fit one int64 key
VECTOR_MAX_LENGTH = 128  # longer values would blow up the fixed-width array
_CODEPOINT_BITS = 21
_SPACE = 0x20


@dataclass(frozen=True)
class Occurrences:
    """One row per (value, token) occurrence, in token order within each value."""

    value_index: np.ndarray  # int64, index into the batch
    token_id: np.ndarray  # int64, id in the feature's TokenTable
    bits: np.ndarray  # int64, bits this occurrence sets

    @staticmethod
    def concat(parts: Sequence[Occurrences]) -> Occurrences:
        if not parts:
            empty = np.zeros(0, dtype=np.int64)
            return Occurrences(empty, empty, empty)
        return Occurrences(*(np.concatenate([getattr(p, f) for p in parts])
                             for f in ("value_index", "token_id", "bits")))


def _bits_for(strategy: Strategy, counts: np.ndarray, ordinals: np.ndarray,
              value_index: np.ndarray) -> np.ndarray:
    """Vectorised `tokens.bits_per_token` for every occurrence."""
    if isinstance(strategy, BitsPerToken):
        return np.full(len(ordinals), strategy.bits, dtype=np.int64)
    assert isinstance(strategy, BitsPerFeature)
    count = counts[value_index]
    return strategy.bits // count + (ordinals < strategy.bits % count)


def ngram_occurrences(
    values: Sequence[str], comparison: NgramComparison, strategy: Strategy, table: TokenTable
) -> Occurrences:
    """Occurrences for non-empty values without NUL of at most VECTOR_MAX_LENGTH chars."""
    n = comparison.n
    m = len(values)
    lengths = np.fromiter(map(len, values), dtype=np.int64, count=m)
    width = int(lengths.max())
    chars = np.array(values, dtype=f"<U{width}").view(np.uint32).reshape(m, width)
    padded = np.full((m, width + 2 * (n - 1)), _SPACE, dtype=np.int64)
    inside = np.arange(width) < lengths[:, None]
    padded[:, n - 1:n - 1 + width] = np.where(inside, chars, _SPACE)
    grams_per_row = width + n - 1
    keys = np.zeros((m, grams_per_row), dtype=np.int64)
    for j in range(n):
        keys = (keys << _CODEPOINT_BITS) | padded[:, j:j + grams_per_row]
    counts = lengths + n - 1
    valid = np.arange(grams_per_row) < counts[:, None]
    value_index, ordinals = np.nonzero(valid)
    gram_keys = keys[valid]
    distinct, inverse = np.unique(gram_keys, return_inverse=True)
    texts = [_gram_text(int(k), n) for k in distinct]
    if comparison.positional:
        combined = ordinals * len(distinct) + inverse
        distinct_combined, inverse = np.unique(combined, return_inverse=True)
        texts = [f"{c // len(distinct) + 1} {texts[c % len(distinct)]}"
                 for c in distinct_combined.tolist()]
    ids = np.fromiter((table.id_for(t) for t in texts), dtype=np.int64, count=len(texts))
    return Occurrences(value_index.astype(np.int64), ids[inverse],
                       _bits_for(strategy, counts, ordinals, value_index))


def _gram_text(key: int, n: int) -> str:
    mask = (1 << _CODEPOINT_BITS) - 1
    return "".join(chr((key >> (_CODEPOINT_BITS * (n - 1 - j))) & mask) for j in range(n))


def python_occurrences(
    values: Sequence[str], comparison: Comparison, strategy: Strategy, table: TokenTable
) -> tuple[Occurrences, dict[int, str]]:
    """Occurrences of any comparison, one value at a time; also returns rejects by index
    (a numeric comparison rejects values that are not numbers)."""
    value_index: list[int] = []
    token_ids: list[int] = []
    bits: list[int] = []
    rejects: dict[int, str] = {}
    id_for = table.id_for
    for i, value in enumerate(values):
        try:
            tokens = tokenize(comparison, value)
        except ValueRejected as e:
            rejects[i] = e.reason
            continue
        value_index.extend([i] * len(tokens))
        token_ids.extend(id_for(t) for t in tokens)
        bits.extend(bits_per_token(strategy, len(tokens)))
    as_array = lambda xs: np.array(xs, dtype=np.int64)  # noqa: E731
    return Occurrences(as_array(value_index), as_array(token_ids), as_array(bits)), rejects
