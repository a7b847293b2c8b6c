"""Tokens of a normalised value and how many bits each token sets.

The token strings are exactly clkhash's: they are what gets hashed, so a difference of one
space changes every CLK.
"""

from __future__ import annotations

from .schema_model import (
    BitsPerFeature,
    BitsPerToken,
    Comparison,
    ExactComparison,
    NgramComparison,
    NumericComparison,
    Strategy,
)
from .values import ValueRejected

__all__ = ["tokenize", "bits_per_token"]


def _ngrams(comparison: NgramComparison, value: str) -> list[str]:
    n = comparison.n
    if n > 1:
        pad = " " * (n - 1)
        value = f"{pad}{value}{pad}"
    count = len(value) - n + 1
    if comparison.positional:
        return [f"{i + 1} {value[i:i + n]}" for i in range(count)]
    return [value[i:i + n] for i in range(count)]


def _numeric(comparison: NumericComparison, value: str) -> list[str]:
    """Neighbourhood tokens on a grid of ``distance_interval`` (Vatsalan and Christen 2015).

    Integers are parsed first so that large ones keep full precision; other numbers go
    through float, scaled by 10**fractional_precision and rounded, as clkhash does.
    """
    precision = comparison.fractional_precision
    try:
        number = int(value, 10)
        if precision > 0:
            number *= pow(10, precision)
    except ValueError:
        try:
            as_float = float(value)
            number = int(round(as_float * pow(10, precision))) if precision > 0 else int(as_float)
        except (ValueError, OverflowError) as e:
            raise ValueRejected("is not a finite number, which a numeric comparison needs") from e
    interval = comparison.distance_interval
    number *= 2 * comparison.resolution
    residue = number % interval
    if residue:
        number = number - residue if residue < interval / 2 else number + (interval - residue)
    return [str(number + i * interval)
            for i in range(-comparison.resolution, comparison.resolution + 1)]


def tokenize(comparison: Comparison, value: str) -> list[str]:
    """Tokens of a prepared value; an empty value has none.

    Raises:
        ValueRejected: a numeric comparison met a value that is not a number.
    """
    if not value:
        return []
    if isinstance(comparison, NgramComparison):
        return _ngrams(comparison, value)
    if isinstance(comparison, ExactComparison):
        return [value]
    return _numeric(comparison, value)


def bits_per_token(strategy: Strategy, token_count: int) -> list[int]:
    """How many bits each of ``token_count`` tokens sets.

    bitsPerFeature spreads its budget so that the first ``bits % count`` tokens get one
    bit more than the others (clkhash's order).
    """
    if isinstance(strategy, BitsPerToken):
        return [strategy.bits] * token_count
    assert isinstance(strategy, BitsPerFeature)
    if token_count == 0:
        return []
    share = int(strategy.bits / token_count)
    extra = strategy.bits % token_count
    return [share + 1] * extra + [share] * (token_count - extra)
