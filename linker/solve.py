"""Turning scored candidate pairs into entities: greedy 1:1, multi-party, deduplication.

One rule covers all three (anonlink's greedy solver, generalised): candidate pairs are taken
in anonlink's order (score descending, then party and record indices); two groups merge only
when every pair of records across them has been seen as a candidate, and never when that would
put two records of one party together, unless that party is being deduplicated. With two
parties and no deduplication this is exactly greedy 1:1 matching, which has a compiled fast
path. Deterministic: the same candidates give the same groups.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

import numba
import numpy as np

__all__ = ["greedy_one_to_one", "cluster_records"]


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


def cluster_records(u: np.ndarray, v: np.ndarray, party_of: np.ndarray,
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
