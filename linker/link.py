"""A linkage run: candidate pairs between (and, if asked, within) parties, solved into
entities. Everything the central linker does between reading encodings and writing results."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .backends import Backend, Candidates, candidate_pairs
from .blocking import LshBlocking
from .clkset import ClkSet
from .solve import (
    DEFAULT_SOLVER,
    SCORED_BELOW,
    SOLVERS,
    cluster_groups,
    greedy_groups,
    greedy_one_to_one,
)
from .token_pairs import (
    DEFAULT_TOKEN_VALUE_CAP,
    add_token_pairs,
    check_token_rules,
    common_tokens,
)

__all__ = ["DEFAULT_THRESHOLD", "DEFAULT_DEDUP_THRESHOLD", "default_threshold", "LinkResult",
           "link_sets", "candidate_floors", "number_entities", "party_pairs", "KindThresholds",
           "PairProgress", "comparison_stats"]

# The shipped schemas set about 40% of the bits; with them unrelated records stay well below
# this and matches with a few typos above it (FEBRL4 with `febrl`: precision 1.000, recall 0.997).
DEFAULT_THRESHOLD = 0.65
# Deduplication has no one-record-per-party rule to drop a weak candidate beside a strong one,
# so it needs a higher threshold: at 0.69 the F1 of FEBRL 1, 2, 3 and of the synthetic EHR
# extract is 0.998, 0.992, 0.990 and 0.924 (Splink on the cleartext: 0.997, 0.998, 0.999,
# 0.932); at 0.65 FEBRL 2 and the EHR extract fall to 0.954 and 0.827, at 0.70 FEBRL 3 to
# 0.986 (BENCHMARKS.md).
DEFAULT_DEDUP_THRESHOLD = 0.69


def default_threshold(dedup: Sequence[bool]) -> float:
    """The threshold a run gets when none is given: higher when any party is deduplicated."""
    return DEFAULT_DEDUP_THRESHOLD if any(dedup) else DEFAULT_THRESHOLD


@dataclass
class LinkResult:
    """Accepted links and the entity of every record.

    ``matches``: party_a, record_a, party_b, record_b (indices) and score of every candidate
    pair whose records ended up in the same entity. ``entity_of``: per party, the entity
    number of each record (entities numbered from 0 by their first record).
    """

    parties: list[str]
    record_ids: list[list[str]]
    party_a: np.ndarray
    record_a: np.ndarray
    party_b: np.ndarray
    record_b: np.ndarray
    score: np.ndarray
    entity_of: list[np.ndarray]
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def entity_count(self) -> int:
        return int(max((int(e.max()) + 1 for e in self.entity_of if len(e)), default=0))


def number_entities(groups: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
    """Each party's entity numbers (its records are ``offsets[k]:offsets[k + 1]`` of the
    global ``groups``), entities numbered by their first record, so numbering is stable and
    deterministic."""
    distinct, first_seen, inverse = np.unique(groups, return_index=True, return_inverse=True)
    rank = np.empty(len(distinct), dtype=np.int64)
    rank[np.argsort(first_seen)] = np.arange(len(distinct))
    number = rank[inverse]
    return [number[offsets[k]:offsets[k + 1]] for k in range(len(offsets) - 1)]


class PairProgress:
    """``link_sets``'s progress over several pairs of parties: each pair's ticks (A rows done)
    reported with the running count of rows and the pairs compared so far, as if every row
    were compared with all of its pair's B rows."""

    def __init__(self, progress: Callable[[int, int], None] | None) -> None:
        self.progress, self.rows = progress, 0

    def tick_for(self, width: int) -> Callable[[int], None]:
        """The tick of a pair whose B side holds ``width`` records."""
        def tick(rows: int) -> None:
            self.rows += rows
            if self.progress is not None:
                self.progress(rows, self.rows * width)

        return tick


def comparison_stats(total: int, compared: int, completed: int) -> dict[str, float | int]:
    """How much of the ``total`` pairs the comparing skipped, for a run's ``stats``."""
    return {"pairs_total": int(total), "pairs_compared": int(compared),
            "pairs_compared_in_full": int(completed),
            "pruned_share": round(1 - compared / total, 6) if total else 0.0,
            "stopped_halfway_share": round(1 - completed / compared, 6) if compared else 0.0}


@dataclass(frozen=True)
class KindThresholds:
    """The threshold of each kind of pair: ``across`` parties, ``within[i]`` inside party i."""

    across: float
    within: tuple[float, ...]

    @classmethod
    def of(cls, threshold: float, dedup_thresholds: Sequence[float | None] | None,
           count: int) -> KindThresholds:
        """``count`` parties' thresholds within them: their own where given, else
        ``threshold``. ValueError when ``dedup_thresholds`` does not hold one per party."""
        if dedup_thresholds is None:
            return cls(threshold, (threshold,) * count)
        if len(dedup_thresholds) != count:
            raise ValueError(f"dedup_thresholds holds {len(dedup_thresholds)} thresholds for "
                             f"{count} parties: give one per party (None: the threshold)")
        return cls(threshold, tuple(threshold if t is None else float(t)
                                    for t in dedup_thresholds))

    @property
    def uniform(self) -> bool:
        """Whether every pair has the one threshold: then candidates keep anonlink's order,
        else they are taken by gain (score minus their own threshold)."""
        return all(t == self.across for t in self.within)

    def pair(self, i: int, j: int) -> float:
        """The threshold of pairs between parties i and j (i == j: within party i)."""
        return self.within[i] if i == j else self.across

    def edges(self, party_a: np.ndarray, party_b: np.ndarray) -> np.ndarray:
        """The threshold of each edge between records of ``party_a`` and ``party_b``."""
        return np.where(party_a == party_b, np.asarray(self.within)[party_a], self.across)


def party_pairs(count: int, dedup: Sequence[bool]) -> list[tuple[int, int]]:
    """The (i, j) pairs of parties whose records are compared, i == j within a party."""
    pairs = [(i, i) for i in range(count) if dedup[i]]
    return pairs + [(i, j) for i in range(count) for j in range(i + 1, count)]


def candidate_floors(sets: Sequence[ClkSet], threshold: float, dedup: Sequence[bool],
                     solver: str = DEFAULT_SOLVER,
                     dedup_thresholds: Sequence[float | None] | None = None
                     ) -> list[tuple[int, int, float]]:
    """(i, j, the score from which their pairs are candidates) for each pair of parties
    compared (i == j: within party i): its threshold, less ``SCORED_BELOW`` where the cluster
    solver also weighs pairs under it (all but two parties linked 1:1)."""
    kinds = KindThresholds.of(threshold, dedup_thresholds, len(sets))
    below = _scored_below(len(sets), dedup, solver)
    return [(i, j, max(kinds.pair(i, j) - below, 0.0))
            for i, j in party_pairs(len(sets), dedup)]


def _one_to_one(count: int, dedup: Sequence[bool]) -> bool:
    """Two parties without deduplication: cluster's merges are greedy's 1:1 links."""
    return count == 2 and not any(dedup)


def _scored_below(count: int, dedup: Sequence[bool], solver: str) -> float:
    """How far under its threshold a pair is still scored: ``SCORED_BELOW`` for the cluster
    solver (which weighs such pairs), except for two parties linked 1:1."""
    return SCORED_BELOW if solver == "cluster" and not _one_to_one(count, dedup) else 0.0


def link_sets(sets: Sequence[ClkSet], threshold: float | None = None, *,
              dedup: Sequence[bool] | None = None, backend: Backend | None = None,
              blocking: LshBlocking | None = None,
              progress: Callable[[int, int], None] | None = None,
              tokens: Sequence[str] = (),
              token_value_cap: int = DEFAULT_TOKEN_VALUE_CAP,
              solver: str = DEFAULT_SOLVER,
              dedup_thresholds: Sequence[float | None] | None = None) -> LinkResult:
    """Link every pair of parties (and deduplicate the flagged ones).

    Args:
        threshold: smallest Dice coefficient of a candidate pair; None: ``default_threshold``.
        dedup: per party, whether to find duplicates within it (default: none).
        dedup_thresholds: per party, the threshold of pairs within it where it is not
            ``threshold`` (None: ``threshold``). Relatives of a household score like
            duplicates within a provider, while across providers the 1:1 rule sets them
            aside, so the two kinds of pairs may need different thresholds. The cluster
            solver then weighs each pair by its score minus its own threshold and takes the
            pairs in the order of that gain.
        progress: called with (A rows done, pairs compared so far) as work proceeds.
        tokens: OpenToken rules (``T1``...) on which agreement makes a pair a candidate
            whatever its Dice coefficient (with or without blocking); its score stays its
            Dice coefficient.
        token_value_cap: a token value held by more than this many records of one party is
            not used (0: every value is); ``stats`` reports such values per rule.
        solver: ``cluster`` (average-linkage merging, keeps large duplicate groups) or
            ``greedy`` (anonlink's greedy solver); see ``linker.solve``. With two parties and
            no deduplication both give anonlink's greedy 1:1 links.

    Raises:
        LinkageInputError: ``tokens`` names a rule an input does not carry.
        ValueError: an unknown ``solver``.
    """
    if solver not in SOLVERS:
        raise ValueError(f"unknown solver {solver!r}: choose from {', '.join(SOLVERS)}")
    started = time.perf_counter()
    check_token_rules(sets, tokens)
    common = common_tokens(sets, tokens, token_value_cap)
    dedup = list(dedup) if dedup is not None else [False] * len(sets)
    if threshold is None:
        threshold = default_threshold(dedup)
    kinds = KindThresholds.of(threshold, dedup_thresholds, len(sets))
    one_to_one = _one_to_one(len(sets), dedup)
    below = _scored_below(len(sets), dedup, solver)
    offsets = np.cumsum([0] + [len(s) for s in sets])
    found: list[tuple[int, int, Candidates, np.ndarray]] = []
    compared = total = completed = token_only = 0
    ticks = PairProgress(progress)
    for i, j, scored_from in candidate_floors(sets, threshold, dedup, solver, dedup_thresholds):
        candidates = candidate_pairs(sets[i], None if i == j else sets[j], scored_from,
                                     backend=backend, blocking=blocking,
                                     progress=ticks.tick_for(len(sets[j])))
        agreed = np.zeros(len(candidates), dtype=bool)
        if tokens:
            candidates, added, agreed = add_token_pairs(
                sets[i], None if i == j else sets[j], tokens, candidates, common.excluded(i, j))
            token_only += added
        found.append((i, j, candidates, agreed))
        compared += candidates.compared
        completed += candidates.completed
        total += candidates.total
    none = np.zeros(0, dtype=np.int64)
    party_a = np.concatenate([none] + [np.full(len(c), i, np.int64) for i, _, c, _ in found])
    party_b = np.concatenate([none] + [np.full(len(c), j, np.int64) for _, j, c, _ in found])
    record_a = np.concatenate([none] + [c.left for _, _, c, _ in found]).astype(np.int64)
    record_b = np.concatenate([none] + [c.right for _, _, c, _ in found]).astype(np.int64)
    score = np.concatenate([none.astype(np.float64)] + [c.score for _, _, c, _ in found])
    agreed = np.concatenate([none.astype(bool)] + [t for _, _, _, t in found])
    edge_threshold = kinds.edges(party_a, party_b)
    # anonlink's order; by gain where pairs within a party have thresholds of their own
    first = -score if kinds.uniform else edge_threshold - score
    order = np.lexsort((record_b, record_a, party_b, party_a, first))
    party_a, party_b = party_a[order], party_b[order]
    record_a, record_b, score = record_a[order], record_b[order], score[order]
    agreed, edge_threshold = agreed[order], edge_threshold[order]
    # Pairs the cluster solver scored under the threshold weigh on its merges but are no links.
    counted = (score >= edge_threshold) | agreed
    u, v = offsets[party_a] + record_a, offsets[party_b] + record_b
    if one_to_one:
        accepted = greedy_one_to_one(record_a, record_b, len(sets[0]), len(sets[1]))
        groups = np.arange(offsets[-1], dtype=np.int64)
        groups[v[accepted]] = u[accepted]
    else:
        party_of = np.repeat(np.arange(len(sets)), [len(s) for s in sets])
        groups = (greedy_groups(u, v, party_of, dedup) if solver == "greedy"
                  else cluster_groups(u, v, score, edge_threshold, party_of, dedup, below,
                                      agreed))
        accepted = (groups[u] == groups[v]) & counted
    entity_of = number_entities(groups, offsets)
    stats = {"candidate_pairs": int(counted.sum()),
             "pairs_scored_below_threshold": int(len(score) - counted.sum()),
             "links": int(accepted.sum()), **comparison_stats(total, compared, completed),
             "token_only_pairs": token_only,
             **({"token_value_cap": token_value_cap, "token_values_over_cap": common.stats}
                if tokens else {}),
             "seconds": round(time.perf_counter() - started, 3)}
    return LinkResult([s.party for s in sets], [s.record_ids for s in sets],
                      party_a[accepted], record_a[accepted], party_b[accepted],
                      record_b[accepted], score[accepted], entity_of, stats)
