"""Solving checked by hand and against brute-force definitions: greedy 1:1 with used
records and tied scores, multi-party grouping with shared records and duplicates, and the
``cluster`` solver's average-linkage merging, which keeps large duplicate groups whole."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest

from linker.clkset import ClkSet
from linker.link import link_sets
from linker.solve import cluster_groups, greedy_groups, greedy_one_to_one


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
                        _set([base, base, other], "z")], 0.9, solver="greedy")
    assert _groups(result) == [[("x", 0), ("y", 0), ("z", 0)], [("x", 1), ("z", 2)],
                               [("y", 1), ("z", 1)]]
    deduplicated = link_sets([_set([base, other], "x"), _set([base, base], "y"),
                              _set([base, base, other], "z")], 0.9, dedup=[False, True, True],
                             solver="greedy")
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
def test_greedy_grouping_equals_its_brute_force_definition(seed: int) -> None:
    rng = np.random.default_rng(seed)
    parties = int(rng.integers(2, 5))
    party_of = rng.integers(0, parties, int(rng.integers(4, 14))).tolist()
    pairs = [(a, b) for a, b in itertools.combinations(range(len(party_of)), 2)
             if rng.random() < 0.5]
    edges = [pairs[i] for i in rng.permutation(len(pairs))]
    dedup = [bool(rng.random() < 0.4) for _ in range(parties)]
    labels = greedy_groups(np.array([a for a, _ in edges], np.int64),
                             np.array([b for _, b in edges], np.int64),
                             np.array(party_of), dedup)
    ours: dict[int, set[int]] = {}
    for record, label in enumerate(labels.tolist()):
        ours.setdefault(label, set()).add(record)
    assert sorted(map(frozenset, ours.values()), key=sorted) == _brute_force_groups(
        edges, party_of, dedup)


def _labels_as_groups(labels: np.ndarray) -> list[frozenset[int]]:
    found: dict[int, set[int]] = {}
    for record, label in enumerate(labels.tolist()):
        found.setdefault(label, set()).add(record)
    return sorted(map(frozenset, found.values()), key=sorted)


def test_cluster_keeps_a_group_whose_one_cross_pair_scored_below_the_threshold() -> None:
    """Four copies of one person; pair (1, 2) scored under 0.7, so it is no candidate.
    Greedy merges {0, 1} and {2, 3} and then waits forever for (1, 2). Cluster: at (0, 2)
    the four cross pairs average (0.85 + 0.75 + 0.8 + 0.65) / 4 = 0.7625 >= 0.7."""
    u, v = np.array([0, 2, 0, 1, 0]), np.array([1, 3, 2, 3, 3])
    score = np.array([0.95, 0.9, 0.85, 0.8, 0.75])
    one_party = np.zeros(4, dtype=np.int64)
    assert len(_labels_as_groups(greedy_groups(u, v, one_party, [True]))) == 2
    assert _labels_as_groups(cluster_groups(u, v, score, 0.7, one_party, [True])) == [
        frozenset(range(4))]


def test_cluster_does_not_merge_groups_joined_by_one_weak_pair() -> None:
    """{0, 1} and {2, 3} share one candidate (0, 2) at 0.72; the other three cross pairs
    were not scored from 0.66 up and count 0.66: mean (0.72 + 3 * 0.66) / 4 = 0.675 < 0.7."""
    u, v = np.array([0, 2, 0]), np.array([1, 3, 2])
    labels = cluster_groups(u, v, np.array([0.95, 0.9, 0.72]), 0.7,
                            np.zeros(4, dtype=np.int64), [True])
    assert _labels_as_groups(labels) == [frozenset({0, 1}), frozenset({2, 3})]


def test_cluster_counts_a_pair_scored_just_under_the_threshold_at_its_score() -> None:
    """{0, 1} and {2, 3}: cross pairs 0.75 and 0.72 are candidates, 0.69 and 0.68 were scored
    under the threshold: mean 0.71 >= 0.7, one group. Had those two not been scored, they would
    count 0.66: mean 0.6975, two groups. Pairs scored under the threshold never merge two
    single records: 4 and 5 (0.69) stay apart."""
    u, v = np.array([0, 2, 0, 1, 0, 1, 4]), np.array([1, 3, 2, 3, 3, 2, 5])
    score = np.array([0.95, 0.9, 0.75, 0.72, 0.69, 0.68, 0.69])
    one_party = np.zeros(6, dtype=np.int64)
    assert _labels_as_groups(cluster_groups(u, v, score, 0.7, one_party, [True])) == [
        frozenset(range(4)), frozenset({4}), frozenset({5})]
    scored = slice(0, 4)
    assert len(_labels_as_groups(cluster_groups(u[scored], v[scored], score[scored], 0.7,
                                                one_party[:4], [True]))) == 2


def _brute_force_average(edges: list[tuple[int, int]], scores: list[float], agreed: list[bool],
                         threshold: float, party_of: list[int], dedup: list[bool],
                         penalty: float) -> list[frozenset[int]]:
    """The definition: take edges in order; two groups merge when no party that is not
    deduplicated would hold two records and the mean over every cross pair is at least the
    threshold, a candidate counting its score (max(score, threshold) if it agrees on tokens),
    any other pair threshold - penalty."""
    value = {frozenset(e): max(s, threshold) if a else s
             for e, s, a in zip(edges, scores, agreed, strict=True)}
    groups = {r: frozenset([r]) for r in range(len(party_of))}
    for x, y in edges:
        gx, gy = groups[x], groups[y]
        if gx == gy:
            continue
        parties = [party_of[r] for r in gx | gy]
        clash = any(parties.count(p) > 1 and not dedup[p] for p in set(parties))
        mean = sum(value.get(frozenset((a, b)), threshold - penalty)
                   for a in gx for b in gy) / (len(gx) * len(gy))
        if not clash and mean >= threshold:
            for r in gx | gy:
                groups[r] = gx | gy
    return sorted(set(groups.values()), key=sorted)


@pytest.mark.parametrize("seed", range(60))
def test_cluster_equals_its_brute_force_definition(seed: int) -> None:
    """Random records in 1-3 parties, candidates of random scores (some under the
    threshold: scored under it, or found by tokens), in anonlink's order."""
    rng = np.random.default_rng(seed)
    parties = int(rng.integers(1, 4))
    party_of = rng.integers(0, parties, int(rng.integers(4, 16))).tolist()
    pairs = [(a, b) for a, b in itertools.combinations(range(len(party_of)), 2)
             if rng.random() < 0.6]
    scores = np.where(rng.random(len(pairs)) < 0.9, rng.uniform(0.7, 1.0, len(pairs)),
                      rng.uniform(0.3, 0.7, len(pairs)))
    order = np.lexsort(([b for _, b in pairs], [a for a, _ in pairs], -scores))
    edges, ordered = [pairs[i] for i in order], scores[order]
    agreed = rng.random(len(pairs)) < 0.3
    dedup = [bool(rng.random() < 0.6) for _ in range(parties)]
    penalty = float(rng.choice([0.0, 0.04, 0.2]))
    labels = cluster_groups(np.array([a for a, _ in edges], np.int64),
                            np.array([b for _, b in edges], np.int64), ordered, 0.7,
                            np.array(party_of), dedup, penalty, agreed)
    assert _labels_as_groups(labels) == _brute_force_average(
        edges, ordered.tolist(), agreed.tolist(), 0.7, party_of, dedup, penalty)


@pytest.mark.parametrize("seed", range(20))
def test_cluster_on_two_parties_is_greedy_one_to_one(seed: int) -> None:
    """Without deduplication every merge is of two single records, so the two-party fast
    path link_sets takes for both solvers is the cluster solver's own answer."""
    rng = np.random.default_rng(seed)
    n_left, n_right = int(rng.integers(1, 12)), int(rng.integers(1, 12))
    pairs = [(a, b) for a in range(n_left) for b in range(n_right) if rng.random() < 0.4]
    scores = rng.choice([0.7, 0.8, 0.9, 1.0], len(pairs))  # ties: order decides
    order = np.lexsort(([b for _, b in pairs], [a for a, _ in pairs], -scores))
    left = np.array([pairs[i][0] for i in order], dtype=np.int64)
    right = np.array([pairs[i][1] for i in order], dtype=np.int64)
    accepted = greedy_one_to_one(left, right, n_left, n_right)
    labels = cluster_groups(left, right + n_left, scores[order], 0.7,
                            np.repeat([0, 1], [n_left, n_right]), [False, False])
    linked = {(int(a), int(b)) for a, b in zip(left[accepted], right[accepted], strict=True)}
    together = {(a, b) for a in range(n_left) for b in range(n_right)
                if labels[a] == labels[n_left + b]}
    assert together == linked


def test_cluster_does_not_recount_two_large_groups_it_refused() -> None:
    """Two groups of 800 (every pair inside at 0.95) and 6% of their cross pairs at 0.71: their
    mean, 0.65 + 0.06 x 0.06, is under 0.7, so they stay apart. Each of the ~38,000 cross
    edges used to recount 800 x 800 pairs (over 5 minutes); a refusal is now remembered
    until a group grows (measured: 0.3 s)."""
    rng = np.random.default_rng(1)
    size = 800
    inside = np.triu_indices(size, 1)
    cross = np.nonzero(rng.random((size, size)) < 0.06)
    u = np.concatenate([inside[0], inside[0] + size, cross[0]])
    v = np.concatenate([inside[1], inside[1] + size, cross[1] + size])
    score = np.concatenate([np.full(2 * len(inside[0]), 0.95), np.full(len(cross[0]), 0.71)])
    order = np.lexsort((v, u, -score))
    started = time.perf_counter()
    labels = cluster_groups(u[order], v[order], score[order], 0.7,
                            np.zeros(2 * size, dtype=np.int64), [True])
    assert time.perf_counter() - started < 20
    assert _labels_as_groups(labels) == [frozenset(range(size)),
                                         frozenset(range(size, 2 * size))]
