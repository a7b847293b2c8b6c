"""Turning scored candidate pairs into entities: greedy 1:1, multi-party, deduplication.

Two solvers, both taking candidate pairs in anonlink's order (score descending, then party
and record indices) and never putting two records of one party together unless that party is
being deduplicated:

- ``greedy`` is anonlink's greedy solver, generalised: two groups merge only when every pair
  of records across them has been seen as a candidate. With two parties and no deduplication
  this is exactly anonlink's greedy 1:1 matching.
- ``cluster`` merges two groups when the mean score of all pairs across them reaches the
  threshold. Its candidates are scored from ``SCORED_BELOW`` under the threshold, so a pair
  just under it counts its own score and a pair that is not a candidate counts
  ``threshold - SCORED_BELOW`` (its score is unknown but lower). A large duplicate group then
  survives a few pairs that scored just under the threshold, where ``greedy`` splits it. Each
  merge of two single records is one pair at or above the threshold, so with two parties and
  no deduplication both solvers give the same links.

Both are deterministic: the same candidates give the same groups.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

import numba
import numpy as np
from numba import types
from numba.typed import Dict

from .solver_names import DEFAULT_SOLVER, SOLVERS, Solver

__all__ = ["Solver", "SOLVERS", "DEFAULT_SOLVER", "SCORED_BELOW", "greedy_one_to_one",
           "greedy_groups", "cluster_groups", "AverageLinkage", "edge_gains", "exclusive_masks",
           "neighbour_starts", "fill_neighbours"]

# How far under the threshold ``cluster`` has its candidates scored; a pair scored lower counts
# this far under the threshold. Measured on FEBRL 2 and 3 and the synthetic EHR extract
# (BENCHMARKS.md, deduplication): at 0.04-0.08 F1 differs by at most 0.3 points, 0.04 best on
# FEBRL 2 and 3; the candidates then grow by about 60% on FEBRL 2, 15% on FEBRL 3.
SCORED_BELOW = 0.04


@numba.njit(cache=True)
def _greedy(left: np.ndarray, right: np.ndarray, n_left: int,
            n_right: int) -> np.ndarray:  # pragma: no cover
    used_left = np.zeros(n_left, dtype=np.bool_)
    used_right = np.zeros(n_right, dtype=np.bool_)
    accepted = np.zeros(left.shape[0], dtype=np.bool_)
    for p in range(left.shape[0]):
        i, j = left[p], right[p]
        if not used_left[i] and not used_right[j]:
            used_left[i] = True
            used_right[j] = True
            accepted[p] = True
    return accepted


def greedy_one_to_one(left: np.ndarray, right: np.ndarray, n_left: int,
                      n_right: int) -> np.ndarray:
    """Mask of accepted pairs, for candidates already in anonlink's order: a pair is taken
    when neither of its records is taken yet (anonlink's ``greedy_solve`` on two parties)."""
    return _greedy(np.asarray(left, dtype=np.int64), np.asarray(right, dtype=np.int64),
                   n_left, n_right)


def greedy_groups(u: np.ndarray, v: np.ndarray, party_of: np.ndarray,
                  deduplicated: Sequence[bool]) -> np.ndarray:
    """Group label of every record (global index), from candidate edges (u[p], v[p]) in
    anonlink's order, each pair at most once (as candidate generation gives them: the
    count of edges seen between two groups stands for the pairs seen). Records never merged
    keep a group of their own.

    Args:
        party_of: party index of every record.
        deduplicated: per party, whether two of its records may share a group.
    """
    group_of = np.arange(len(party_of), dtype=np.int64)
    members: dict[int, list[int]] = {}
    seen_between: defaultdict[int, Counter[int]] = defaultdict(Counter)
    dedup = np.asarray(deduplicated, dtype=bool)

    def parties_clash(a: list[int], b: list[int]) -> bool:
        left = {int(party_of[x]) for x in a}
        return any(int(party_of[y]) in left and not dedup[party_of[y]] for y in b)

    for x, y in zip(u.tolist(), v.tolist(), strict=True):
        gx, gy = int(group_of[x]), int(group_of[y])
        if gx == gy:  # cannot happen with distinct edges; a repeated one changes nothing
            continue
        mx = members.get(gx, [x])
        my = members.get(gy, [y])
        overlap = seen_between[gx][gy] + 1
        if overlap < len(mx) * len(my) or parties_clash(mx, my):
            seen_between[gx][gy] += 1
            seen_between[gy][gx] += 1
            continue
        if len(mx) < len(my):
            gx, gy, mx, my = gy, gx, my, mx
        mx.extend(my)
        members[gx] = mx
        members.pop(gy, None)
        group_of[my] = gx
        moved = seen_between.pop(gy, Counter())
        moved.pop(gx, None)
        seen_between[gx].pop(gy, None)
        for other, count in moved.items():
            seen_between[gx][other] += count
            seen_between[other][gx] += count
            seen_between[other].pop(gy, None)
    return group_of


@numba.njit(cache=True)
def _root(parent: np.ndarray, x: int) -> int:  # pragma: no cover
    root = x
    while parent[root] != root:
        root = parent[root]
    while parent[x] != root:  # path compression
        up = parent[x]
        parent[x] = root
        x = up
    return root


def neighbour_starts(degree: np.ndarray) -> np.ndarray:
    """Where each record's partners start in the compressed rows of ``fill_neighbours``,
    from its count of candidate pairs (both directions); the last entry is the total."""
    start = np.zeros(len(degree) + 1, dtype=np.int64)
    np.cumsum(degree, out=start[1:])
    return start


@numba.njit(cache=True)
def fill_neighbours(u: np.ndarray, v: np.ndarray, gain: np.ndarray, fill: np.ndarray,
                    other: np.ndarray, gains: np.ndarray) -> None:  # pragma: no cover
    """Writes edges (u[p], v[p], gain[p]) into every record's partners and gains (both
    directions), ``fill[r]`` being where record r's next partner goes (advanced here), so
    the rows can be filled a chunk of edges at a time."""
    for p in range(u.shape[0]):
        a, b = u[p], v[p]
        other[fill[a]], gains[fill[a]] = b, gain[p]
        other[fill[b]], gains[fill[b]] = a, gain[p]
        fill[a] += 1
        fill[b] += 1


_MEMO_FROM = 4  # records in the smaller group from which a refusal is remembered


@numba.njit(cache=True)
def _merge_edges(u: np.ndarray, v: np.ndarray, start: np.ndarray, other: np.ndarray,
                 gains: np.ndarray, parent: np.ndarray, size: np.ndarray,
                 next_member: np.ndarray, last_member: np.ndarray, exclusive: np.ndarray,
                 refused: Dict, penalty: float) -> None:  # pragma: no cover
    """``cluster``'s merges for edges (u[p], v[p]) taken in order, on the state of the merges
    before them. ``exclusive[r]``: bit mask of the non-deduplicated parties record r's group
    holds (at its root)."""
    n = parent.shape[0]
    for p in range(u.shape[0]):
        small, large = _root(parent, u[p]), _root(parent, v[p])
        if small == large or np.any(exclusive[small] & exclusive[large]):
            continue
        if size[small] > size[large]:
            small, large = large, small
        pair = min(small, large) * n + max(small, large) if size[small] >= _MEMO_FROM else -1
        if pair >= 0 and refused.get(pair, -1) == size[small] + size[large]:
            continue
        surplus, seen = 0.0, 0
        member = small
        while member != -1:
            for k in range(start[member], start[member + 1]):
                if _root(parent, other[k]) == large:
                    surplus += gains[k]
                    seen += 1
            member = next_member[member]
        if surplus < penalty * (size[small] * size[large] - seen):
            if pair >= 0:
                refused[pair] = size[small] + size[large]
            continue
        parent[small] = large
        next_member[last_member[large]] = small
        last_member[large] = last_member[small]
        size[large] += size[small]
        exclusive[large] |= exclusive[small]


@numba.njit(cache=True)
def _labels(parent: np.ndarray) -> np.ndarray:  # pragma: no cover
    labels = np.empty(parent.shape[0], dtype=np.int64)
    for r in range(parent.shape[0]):
        labels[r] = _root(parent, r)
    return labels


def exclusive_masks(party_of: np.ndarray, deduplicated: Sequence[bool]) -> np.ndarray:
    """Per record, the bit of its party when that party is not deduplicated (two records
    of such a party never share a group), as rows of 64-bit words."""
    dedup = np.asarray(deduplicated, dtype=bool)
    party_of = np.asarray(party_of, dtype=np.int64)
    words = max(1, (len(dedup) + 63) // 64)
    exclusive = np.zeros((len(party_of), words), dtype=np.uint64)
    alone = ~dedup[party_of] if len(party_of) else np.zeros(0, dtype=bool)
    rows = np.flatnonzero(alone)
    exclusive[rows, party_of[rows] // 64] = np.left_shift(
        np.uint64(1), (party_of[rows] % 64).astype(np.uint64))
    return exclusive


class AverageLinkage:
    """``cluster``'s merging, fed candidate edges in anonlink's order a chunk at a time.

    Every record's partners and gains (score - threshold), both directions, are given up front
    as compressed rows (``neighbour_starts``, ``fill_neighbours``): a merge weighs all pairs
    across two groups, those of edges not yet taken too. They may be memory-mapped files;
    the state held is a few arrays per record.
    """

    def __init__(self, exclusive: np.ndarray, start: np.ndarray, other: np.ndarray,
                 gains: np.ndarray, penalty: float) -> None:
        n = exclusive.shape[0]
        self.exclusive, self.start, self.other, self.gains = exclusive, start, other, gains
        self.penalty = float(penalty)
        self.parent = np.arange(n, dtype=np.int64)
        self.size = np.ones(n, dtype=np.int64)
        self.next_member = np.full(n, -1, dtype=np.int64)  # each group's members, linked
        self.last_member = np.arange(n, dtype=np.int64)
        # Two groups refused stay refused until one of them grows: (pair of roots) -> their
        # sizes' sum at the refusal, so large groups are not recounted at every edge between
        # them (small ones cost less to recount than to look up).
        self.refused = Dict.empty(key_type=types.int64, value_type=types.int64)

    def take(self, u: np.ndarray, v: np.ndarray) -> None:
        """Merge on the next edges in anonlink's order."""
        _merge_edges(np.asarray(u, dtype=np.int64), np.asarray(v, dtype=np.int64), self.start,
                     self.other, self.gains, self.parent, self.size, self.next_member,
                     self.last_member, self.exclusive, self.refused, self.penalty)

    def labels(self) -> np.ndarray:
        """Group label of every record: its group's root."""
        return _labels(self.parent)


def edge_gains(score: np.ndarray, threshold: float | np.ndarray, agreed: np.ndarray | None = None
               ) -> np.ndarray:
    """What each candidate pair weighs in a merge: score - threshold, at least 0 for a pair
    agreeing on tokens."""
    gain = np.asarray(score, dtype=np.float64) - threshold
    return gain if agreed is None else np.where(agreed, np.maximum(gain, 0.0), gain)


def cluster_groups(u: np.ndarray, v: np.ndarray, score: np.ndarray,
                   threshold: float | np.ndarray,
                   party_of: np.ndarray, deduplicated: Sequence[bool],
                   penalty: float = SCORED_BELOW, agreed: np.ndarray | None = None
                   ) -> np.ndarray:
    """Group label of every record (global index), by average-linkage merging.

    Candidate edges (u[p], v[p], score[p]), scored from ``threshold - penalty`` up, are taken
    in anonlink's order, each pair at most once. At each, the two records' groups merge when no
    party that is not deduplicated would hold two records and the mean over all pairs across
    the groups is at least ``threshold``: a candidate pair counts its score (a pair agreeing on
    tokens at least ``threshold``) and any other pair ``threshold - penalty``.

    Args:
        threshold: one for all edges, or one per edge.
        party_of: party index of every record.
        deduplicated: per party, whether two of its records may share a group.
        penalty: how far under the threshold the candidates were scored.
        agreed: per edge, whether the pair agrees on tokens (default: none does).

    Memory: the edges twice over (partner, gain) plus a few arrays per record.
    """
    u, v = np.asarray(u, dtype=np.int64), np.asarray(v, dtype=np.int64)
    gain = edge_gains(score, threshold, agreed)
    n = len(party_of)
    start = neighbour_starts(np.bincount(u, minlength=n) + np.bincount(v, minlength=n))
    other, gains = np.empty(start[-1], dtype=np.int64), np.empty(start[-1], dtype=np.float64)
    fill_neighbours(u, v, gain, start[:-1].copy(), other, gains)
    merging = AverageLinkage(exclusive_masks(party_of, deduplicated), start, other, gains,
                             penalty)
    merging.take(u, v)
    return merging.labels()
