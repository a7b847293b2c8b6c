"""Candidate pairs from deterministic tokens: records agreeing on any of the chosen OpenToken
rules (both tokens present and equal) are candidates whatever their Dice coefficient, so a
pair the CLK comparison scores low (a changed surname, a typo-laden address) can still link
when a token network would link it. Found with hash joins on the token values, never by
comparing records one by one.

A token value that many records of one party share (a placeholder name and birth date, a
default SSN) would make every pair of them a candidate: hundreds of records give tens of
thousands of pairs, and the solver would link them as one person. Values held by more than
``cap`` records of a party are therefore not used as keys, and the run reports them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from .backends.types import Candidates, dice_scores
from .clkset import ClkSet, LinkageInputError

__all__ = ["DEFAULT_TOKEN_VALUE_CAP", "CommonTokens", "check_token_rules", "common_tokens",
           "token_pairs", "pair_scores", "add_token_pairs"]

_SCORE_ROWS = 1 << 16
# A person has a handful of records per provider; 100 sharing one token is a placeholder.
DEFAULT_TOKEN_VALUE_CAP = 100


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


@dataclass(frozen=True)
class CommonTokens:
    """The token values held by more than ``cap`` records of a party, which are not used as
    keys: ``values[k][rule]`` for party ``k``, and per rule how many such values there are
    and how many records hold them (summed over parties)."""

    cap: int
    values: list[dict[str, pa.Array]]
    stats: dict[str, dict[str, int]]

    def excluded(self, i: int, j: int) -> dict[str, pa.Array]:
        """Per rule, the values not used as keys between parties ``i`` and ``j``: common in
        either."""
        return {rule: pa.concat_arrays([self.values[i][rule], self.values[j][rule]])
                for rule in self.values[i]}


def common_tokens(sets: Sequence[ClkSet], rules: Sequence[str], cap: int) -> CommonTokens:
    """The values of each rule held by more than ``cap`` records of one party (``cap`` 0:
    none, every value is a key)."""
    values: list[dict[str, pa.Array]] = []
    stats = {rule: {"values": 0, "records": 0} for rule in rules}
    if not rules:
        return CommonTokens(cap, [{} for _ in sets], stats)
    import pyarrow.compute as pc  # here: 30-40 ms to import, which a run without tokens skips

    for clk_set in sets:
        per_rule = {}
        for rule in rules:
            counted = pc.value_counts(pa.array(clk_set.tokens[rule], pa.string()).drop_null())
            over = (counted.filter(pc.greater(counted.field("counts"), cap)) if cap
                    else counted.slice(0, 0))
            per_rule[rule] = over.field("values")
            stats[rule]["values"] += len(over)
            stats[rule]["records"] += int(pc.sum(over.field("counts")).as_py() or 0)
        values.append(per_rule)
    return CommonTokens(cap, values, stats)


def _keyed(tokens: np.ndarray, name: str, excluded: pa.Array | None) -> pa.Table:
    import pyarrow.compute as pc  # as in common_tokens

    values = pa.array(tokens, pa.string())
    rows = pa.array(np.arange(len(values), dtype=np.int64))
    present = values.is_valid()
    if excluded is not None and len(excluded):
        present = pc.and_(present, pc.invert(pc.is_in(values, excluded).fill_null(False)))
    return pa.table({"token": values.filter(present), name: rows.filter(present)})


def token_pairs(a: ClkSet, b: ClkSet | None, rules: Sequence[str],
                excluded: Mapping[str, pa.Array] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(left, right) of every pair agreeing on at least one rule, each pair once, sorted;
    ``b`` None: pairs within ``a`` with left < right. Values in ``excluded[rule]`` are not
    keys."""
    other = a if b is None else b
    keys = [np.zeros(0, dtype=np.int64)]
    for rule in rules:
        skip = None if excluded is None else excluded.get(rule)
        joined = _keyed(a.tokens[rule], "left", skip).join(
            _keyed(other.tokens[rule], "right", skip), "token", join_type="inner")
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


def add_token_pairs(a: ClkSet, b: ClkSet | None, rules: Sequence[str], candidates: Candidates,
                    excluded: Mapping[str, pa.Array] | None = None
                    ) -> tuple[Candidates, int, np.ndarray]:
    """``candidates`` with the token pairs they lack (scored by Dice), how many those are
    (pairs that came from tokens alone), and per pair of the result whether it agrees on a
    token; values in ``excluded[rule]`` are not keys."""
    left, right = token_pairs(a, b, rules, excluded)
    other = a if b is None else b
    width = max(len(other), 1)
    found = candidates.left.astype(np.int64) * width + candidates.right.astype(np.int64)
    keys = left * width + right
    new = ~np.isin(keys, found)
    left, right = left[new], right[new]
    merged = Candidates(np.concatenate([candidates.left.astype(np.int64), left]),
                        np.concatenate([candidates.right.astype(np.int64), right]),
                        np.concatenate([candidates.score, pair_scores(a, other, left, right)]),
                        candidates.compared, candidates.total, candidates.completed)
    agreed = np.concatenate([np.isin(found, keys), np.ones(len(left), dtype=bool)])
    return merged, int(new.sum()), agreed
