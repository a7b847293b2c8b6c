"""Candidates in anonlink's order by one packed key (``linker.backends.order``), and each
record's top two scores in one pass (``linker.estimate.top_two``), against their definitions:
a three-column lexsort of the float scores, and each record's scores sorted in Python."""

from __future__ import annotations

import numpy as np
import pytest

from linker.backends.order import anonlink_order, in_anonlink_order
from linker.backends.types import dice_scores
from linker.estimate import top_two


def _pairs(seed: int, n: int, records: int, spread: int = 1) -> tuple[np.ndarray, ...]:
    """Distinct pairs with many tied scores: counts and sums from narrow ranges, and pairs scaled by
    ``spread`` so that equal scores come from different (count, sum), as 4/10 and 8/20."""
    rng = np.random.default_rng(seed)
    pair = np.unique(rng.integers(0, records * records, n))  # each pair once, as candidates
    rng.shuffle(pair)
    left, right = pair // records * spread, pair % records
    n = len(pair)
    base = rng.integers(1, 40, n)
    factor = rng.integers(1, 4, n)
    counts = rng.integers(0, base + 1) * factor
    sums = 2 * base * factor
    return left, right, counts, sums


def _lexsorted(left, right, counts, sums):  # type: ignore[no-untyped-def]
    score = dice_scores(counts, sums, np.zeros_like(sums))
    order = np.lexsort((right, left, -score))
    return left[order], right[order], score[order], order


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("spread", [1, 1 << 40])  # 1 << 40: the key does not fit in 63 bits
def test_packed_key_order_is_anonlinks(seed: int, spread: int) -> None:
    left, right, counts, sums = _pairs(seed, 20_000, 300, spread)
    want_left, want_right, want_score, want_order = _lexsorted(left, right, counts, sums)
    assert len(np.unique(want_score)) < 2_000  # many ties, across (count, sum) kinds too
    got_left, got_right, got_score = in_anonlink_order(left, right, counts, sums)
    assert got_left.tolist() == want_left.tolist()
    assert got_right.tolist() == want_right.tolist()
    assert got_score.tolist() == want_score.tolist()
    order, score = anonlink_order(left, right, counts, sums)
    assert order.tolist() == want_order.tolist() and score.tolist() == want_score.tolist()


def test_order_of_no_pairs_and_of_empty_clks() -> None:
    none = np.zeros(0, np.int64)
    assert [len(x) for x in in_anonlink_order(none, none, none, none)] == [0, 0, 0]
    # Two empty CLKs score 0.0 (anonlink's convention), after every positive score.
    left, right, score = in_anonlink_order(np.array([0, 1]), np.array([0, 1]),
                                           np.array([0, 1]), np.array([0, 4]))
    assert left.tolist() == [1, 0] and score.tolist() == [0.5, 0.0]


@pytest.mark.parametrize("seed", range(3))
def test_top_two_is_each_records_two_best_scores(seed: int) -> None:
    rng = np.random.default_rng(seed)
    record = rng.integers(0, 500, 3_000)
    score = np.round(rng.random(3_000), 2)  # ties: a record's best may equal its second
    best, second = top_two(record, score, 600)
    for r in range(600):
        mine = sorted(score[record == r].tolist(), reverse=True)
        assert np.isnan(best[r]) if not mine else best[r] == mine[0]
        assert np.isnan(second[r]) if len(mine) < 2 else second[r] == mine[1]
