"""Candidate pairs from deterministic tokens: records agreeing on any of the chosen OpenToken
rules (both tokens present and equal) are candidates whatever their Dice coefficient, so a
pair the CLK comparison scores low (a changed surname, a typo-laden address) can still link
when a token network would link it. Found with hash joins on the token values, never by
comparing records one by one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from .backends.types import Candidates, dice_scores
from .clkset import ClkSet, LinkageInputError

__all__ = ["check_token_rules", "token_pairs", "pair_scores", "add_token_pairs"]

_SCORE_ROWS = 1 << 16


def check_token_rules(sets: Sequence[ClkSet], rules: Sequence[str]) -> None:
    """Every input carries every rule asked for.

    Raises:
        LinkageInputError: naming the first file that lacks one.
    """
    for clk_set in sets:
        lacking = [rule for rule in rules if rule not in clk_set.tokens]
        if lacking:
            held = ",".join(clk_set.tokens) or "none"
            raise LinkageInputError(
                f"{clk_set.source} carries no token {','.join(lacking)} (its tokens: {held}); "
                f"tokenize it with `pprl tokenize --with-tokens` or drop --tokens")


def _keyed(tokens: np.ndarray, name: str) -> pa.Table:
    values = pa.array(tokens, pa.string())
    rows = pa.array(np.arange(len(values), dtype=np.int64))
    present = values.is_valid()
    return pa.table({"token": values.filter(present), name: rows.filter(present)})


def token_pairs(a: ClkSet, b: ClkSet | None, rules: Sequence[str]) -> tuple[np.ndarray,
                                                                            np.ndarray]:
    """(left, right) of every pair agreeing on at least one rule, each pair once, sorted;
    ``b`` None: pairs within ``a`` with left < right."""
    other = a if b is None else b
    keys = [np.zeros(0, dtype=np.int64)]
    for rule in rules:
        joined = _keyed(a.tokens[rule], "left").join(_keyed(other.tokens[rule], "right"),
                                                     "token", join_type="inner")
        left = joined.column("left").to_numpy().astype(np.int64)
        right = joined.column("right").to_numpy().astype(np.int64)
        if b is None:
            keep = left < right
            left, right = left[keep], right[keep]
        keys.append(left * len(other) + right)
    unique = np.unique(np.concatenate(keys))
    width = max(len(other), 1)
    return unique // width, unique % width


def pair_scores(a: ClkSet, b: ClkSet, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Dice coefficients of the given pairs, a bounded block of rows at a time."""
    counts = np.zeros(len(left), dtype=np.int64)
    for start in range(0, len(left), _SCORE_ROWS):
        block = slice(start, start + _SCORE_ROWS)
        both = a.words[left[block]] & b.words[right[block]]
        counts[block] = np.bitwise_count(both).sum(axis=1, dtype=np.int64)
    return dice_scores(counts, a.popcounts[left], b.popcounts[right])


def add_token_pairs(a: ClkSet, b: ClkSet | None, rules: Sequence[str],
                    candidates: Candidates) -> tuple[Candidates, int]:
    """``candidates`` with the token pairs they lack (scored by Dice), and how many those
    are (pairs that came from tokens alone)."""
    left, right = token_pairs(a, b, rules)
    other = a if b is None else b
    width = max(len(other), 1)
    found = candidates.left.astype(np.int64) * width + candidates.right.astype(np.int64)
    new = ~np.isin(left * width + right, found)
    left, right = left[new], right[new]
    merged = Candidates(np.concatenate([candidates.left.astype(np.int64), left]),
                        np.concatenate([candidates.right.astype(np.int64), right]),
                        np.concatenate([candidates.score, pair_scores(a, other, left, right)]),
                        candidates.compared, candidates.total, candidates.completed)
    return merged, int(new.sum())
