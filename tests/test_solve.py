"""Solving checked by hand and against a brute-force definition: greedy 1:1 with used
records and tied scores, multi-party clustering with shared records and duplicates."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from linker.clkset import ClkSet
from linker.link import link_sets
from linker.solve import cluster_records, greedy_one_to_one


def _clk(*bits: int, width: int = 64) -> np.ndarray:
    row = np.zeros(width, dtype=bool)
    row[list(bits)] = True
    return np.packbits(row)


def _set(rows: list[np.ndarray], party: str) -> ClkSet:
    return ClkSet.from_arrays(np.vstack(rows), party=party)


def _groups(result) -> list[list[tuple[str, int]]]:
    found: dict[int, list[tuple[str, int]]] = {}
    for party, entities in zip(result.parties, result.entity_of, strict=True):
        for record, entity in enumerate(entities.tolist()):
            found.setdefault(entity, []).append((party, record))
    return sorted(sorted(g) for g in found.values() if len(g) > 1)


def test_greedy_skips_pairs_whose_right_record_is_taken() -> None:
    """Hand-worked: (a0,b0) 0.9 is taken; (a1,b0) 0.85 must be skipped, b0 being taken;
    (a1,b1) 0.8 is taken; (a0,b1) 0.7 skipped, both taken."""
    left, right = np.array([0, 1, 1, 0]), np.array([0, 0, 1, 1])
    assert greedy_one_to_one(left, right, 2, 2).tolist() == [True, False, True, False]
    assert greedy_one_to_one(np.array([0, 0]), np.array([0, 1]), 1, 2).tolist() == [True,
                                                                                  False]


def test_tied_scores_go_to_the_lower_record_indices() -> None:
    """anonlink's order for equal scores: party, then record index, ascending. a0 and a1
    are copies, as are b0 and b1: all four pairs score 1.0, and a0-b0, a1-b1 win."""
    same = _clk(1, 5, 9, 20, 33)
    result = link_sets([_set([same, same], "a"), _set([same, same], "b")], 0.9)
    assert list(zip(result.record_a.tolist(), result.record_b.tolist(), strict=True)) == [
        (0, 0), (1, 1)]
    one = link_sets([_set([same, same], "a"), _set([same], "b")], 0.9)
    assert one.record_a.tolist() == [0] and one.record_b.tolist() == [0]
    assert one.entity_of[0].tolist() == [0, 1] and one.entity_of[1].tolist() == [0]


def test_a_higher_score_wins_a_record_over_an_earlier_index() -> None:
    close, far = _clk(1, 2, 3, 4, 5, 6), _clk(1, 2, 3, 4, 5, 7)
    target = _clk(1, 2, 3, 4, 5, 6)
    result = link_sets([_set([far, close], "a"), _set([target], "b")], 0.7)
    assert result.record_a.tolist() == [1]  # a1 scores 1.0, a0 only 0.83


def test_three_parties_by_hand_with_ties_and_shared_records() -> None:
    """x0 = y0 = y1 = z0 = z1 (all pairs 1.0) and x1 = z2. In anonlink's order x0-y0 merge;
    x0-z0 waits for y0-z0; y1 cannot join (y is not deduplicated), so y1 and z1 end up
    together. Deduplicating y and z, every copy joins one entity once all its pairs are
    seen."""
    base = _clk(3, 8, 13, 21, 34, 55)
    other = _clk(2, 7, 11, 29, 40, 61)
    result = link_sets([_set([base, other], "x"), _set([base, base], "y"),
                        _set([base, base, other], "z")], 0.9)
    assert _groups(result) == [[("x", 0), ("y", 0), ("z", 0)], [("x", 1), ("z", 2)],
                               [("y", 1), ("z", 1)]]
    deduplicated = link_sets([_set([base, other], "x"), _set([base, base], "y"),
                              _set([base, base, other], "z")], 0.9, dedup=[False, True, True])
    assert _groups(deduplicated) == [[("x", 0), ("y", 0), ("y", 1), ("z", 0), ("z", 1)],
                                     [("x", 1), ("z", 2)]]


def _brute_force_groups(edges: list[tuple[int, int]], party_of: list[int],
                        dedup: list[bool]) -> list[frozenset[int]]:
    """The definition, with no bookkeeping: take edges in order; two groups merge when
    every pair of records across them has appeared as an edge so far and no party that is
    not deduplicated would hold two records."""
    groups = {r: frozenset([r]) for r in range(len(party_of))}
    seen: set[frozenset[int]] = set()
    for x, y in edges:
        seen.add(frozenset((x, y)))
        gx, gy = groups[x], groups[y]
        if gx == gy:
            continue
        all_seen = all(frozenset((a, b)) in seen for a in gx for b in gy)
        parties = [party_of[r] for r in gx | gy]
        clash = any(parties.count(p) > 1 and not dedup[p] for p in set(parties))
        if all_seen and not clash:
            merged = gx | gy
            for r in merged:
                groups[r] = merged
    return sorted(set(groups.values()), key=sorted)


@pytest.mark.parametrize("seed", range(40))
def test_clustering_equals_its_brute_force_definition(seed: int) -> None:
    rng = np.random.default_rng(seed)
    parties = int(rng.integers(2, 5))
    party_of = rng.integers(0, parties, int(rng.integers(4, 14))).tolist()
    pairs = [(a, b) for a, b in itertools.combinations(range(len(party_of)), 2)
             if rng.random() < 0.5]
    edges = [pairs[i] for i in rng.permutation(len(pairs))]
    dedup = [bool(rng.random() < 0.4) for _ in range(parties)]
    labels = cluster_records(np.array([a for a, _ in edges], np.int64),
                             np.array([b for _, b in edges], np.int64),
                             np.array(party_of), dedup)
    ours: dict[int, set[int]] = {}
    for record, label in enumerate(labels.tolist()):
        ours.setdefault(label, set()).add(record)
    assert sorted(map(frozenset, ours.values()), key=sorted) == _brute_force_groups(
        edges, party_of, dedup)
