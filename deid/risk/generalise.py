"""Generalisation to a target: the least-loss transformation that makes a table k-anonymous
(or keeps the highest prosecutor risk at or below a bound), as ARX does.

A *transformation* is a level vector, one hierarchy level per quasi-identifier; together they
form the generalisation lattice (``(0, ..., 0)`` at the bottom, every ``*`` at the top). A
transformation meets the target when, after it, the records of classes smaller than k can be
removed (record suppression) without removing more than ``max_suppression`` of the records or
all of them. A ``max_risk`` R is the same target with k the least integer such that 1/k <= R,
since the highest prosecutor risk is 1 / the smallest class size; with both, the larger k.

Information loss (``loss``): Iyengar's loss metric (LM; "Transforming data to satisfy privacy
constraints", KDD 2002), the model ARX calls "Loss", with equal attribute weights. A record's
value of quasi-identifier a, generalised to g, loses ``(m - 1) / (|D_a| - 1)``, where m is the
number of distinct values of the column (as written, missing counted as one) that g covers and
|D_a| the number of distinct values of the column (0 when |D_a| = 1); a suppressed record loses
1 on every quasi-identifier. ``loss`` is the mean over all records (suppressed ones included)
and quasi-identifiers, in [0, 1]; ``loss_per_attribute`` is the mean over records for each.
Values are counted in the data, not in the hierarchy, so ARX's figure can differ when its
hierarchies list values the data lack. Ties are broken by fewer suppressed records, then the
lower sum of levels, then the lexicographically lower level vector.

Search: the target is monotone (generalising only merges classes, so records in classes of at
least k stay there and the suppressed ones only decrease), so one check tags every more general
transformation as meeting it, or every more specific one as not (predictive tagging). Phase 1
follows Flash (Kohlmayer et al., "Flash: efficient, stable and optimal k-anonymity", 2012):
nodes are visited bottom-up by level sum; from each untagged one a path climbs through untagged
successors and is binary-searched, so every node ends up tagged with few checks, and the
minimal transformations are the passing nodes whose direct predecessors all fail. LM with
suppression is not monotone (generalising may cut suppression), so phase 2 does not stop at
the minimal nodes: every passing node is a candidate, visited in order of a lower bound (its
loss with nothing suppressed, which is monotone and costs no class computation, and never
exceeds the loss with suppression since a suppressed cell loses 1), and the search stops when
the bound exceeds the best loss found. The result is the optimum over the whole lattice.

Classes are counted on integer codes (:func:`deid.risk.classes.column_codes`) of each
quasi-identifier at each level, computed once; a node's class sizes are a bincount (or a sort
when the combined key is too sparse) of the mixed-radix key.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
import pyarrow as pa

from .classes import column_codes, combined_key
from .hierarchies import Hierarchy, HierarchyError, default_hierarchy

__all__ = ["Generalisation", "GeneralisationError", "TargetUnreachable", "generalise",
           "required_k", "LOSS_METRIC", "MAX_LATTICE_NODES"]

LOSS_METRIC = ("Iyengar's loss metric (ARX 'Loss'), equal weights: a value generalised to g "
               "loses (values g covers - 1) / (distinct values - 1), a suppressed record 1 per "
               "quasi-identifier; mean over records and quasi-identifiers")
MAX_LATTICE_NODES = 1_000_000
_UNKNOWN, _PASS, _FAIL = 0, 1, 2


class GeneralisationError(ValueError):
    """The arguments cannot be generalised: no target, no records, a bad hierarchy, a lattice
    too large."""


class TargetUnreachable(GeneralisationError):
    """Even the most general transformation does not meet the target within the suppression
    limit."""


@dataclass(frozen=True)
class Generalisation:
    """The chosen transformation, the transformed table and what it cost."""

    quasi_identifiers: tuple[str, ...]
    levels: dict[str, int]
    level_names: dict[str, str]
    hierarchies: dict[str, dict[str, Any]]
    table: pa.Table = field(repr=False)
    records: int
    suppressed: int
    loss: float
    loss_per_attribute: dict[str, float]
    k: int
    highest_risk: float
    target_k: int | None
    max_risk: float | None
    max_suppression: float
    required_k: int
    minimal_transformations: list[dict[str, int]]
    lattice_size: int
    checked: int  # nodes whose target was checked in phase 1
    evaluated: int  # nodes whose loss was computed in phase 2

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready report of what was done (everything but the table)."""
        return {
            "quasi_identifiers": list(self.quasi_identifiers),
            "target": {"k": self.target_k, "max_risk": self.max_risk,
                       "max_suppression": self.max_suppression, "required_k": self.required_k},
            "levels": dict(self.levels), "level_names": dict(self.level_names),
            "hierarchies": dict(self.hierarchies),
            "records": self.records, "suppressed": self.suppressed,
            "released": self.records - self.suppressed,
            "k_anonymity": self.k, "highest_risk": self.highest_risk,
            "loss": self.loss, "loss_per_attribute": dict(self.loss_per_attribute),
            "loss_metric": LOSS_METRIC,
            "search": {"lattice_size": self.lattice_size, "checked": self.checked,
                       "evaluated_for_loss": self.evaluated,
                       "minimal_transformations": [dict(m) for m in
                                                   self.minimal_transformations]},
        }


def required_k(target_k: int | None, max_risk: float | None) -> int:
    """The class size the target needs: ``target_k`` and the least k with 1/k <= max_risk."""
    if target_k is None and max_risk is None:
        raise GeneralisationError("give a target: target_k and/or max_risk")
    k = 1
    if target_k is not None:
        if isinstance(target_k, bool) or not isinstance(target_k, int) or target_k < 1:
            raise GeneralisationError("target_k must be an integer >= 1")
        k = target_k
    if max_risk is not None:
        if not 0 < max_risk <= 1:
            raise GeneralisationError("max_risk must be in (0, 1]")
        by_risk = max(1, math.floor(1 / max_risk))
        while 1 / by_risk > max_risk:
            by_risk += 1
        while by_risk > 1 and 1 / (by_risk - 1) <= max_risk:
            by_risk -= 1
        k = max(k, by_risk)
    return k


@dataclass(frozen=True)
class _Level:
    """One quasi-identifier at one level: each record's code, the number of codes, and per
    code the distinct input values it covers minus one (its LM numerator)."""

    codes: np.ndarray
    distinct: int
    lost: np.ndarray
    total_lost: int


class _Search:
    def __init__(self, table: pa.Table, quasi_identifiers: Sequence[str],
                 hierarchies: Mapping[str, Hierarchy], k: int, limit: int) -> None:
        self.n = table.num_rows
        self.k = k
        self.limit = limit
        self.heights = [hierarchies[q].height for q in quasi_identifiers]
        self.levels: list[list[_Level]] = []
        self.domain: list[int] = []
        for name in quasi_identifiers:
            values = table[name].combine_chunks()
            original, domain = column_codes(values)
            self.domain.append(domain)
            per_level = []
            for level in range(hierarchies[name].height + 1):
                try:
                    generalised = hierarchies[name].generalise(values, level)
                except HierarchyError as e:
                    raise GeneralisationError(f"column {name!r}: {e}") from e
                codes, distinct = column_codes(generalised) if level else (original, domain)
                pairs = np.unique(codes * np.int64(domain) + original)
                lost = np.bincount(pairs // domain, minlength=distinct) - 1
                small = codes.astype(np.int32) if distinct < 2**31 else codes
                per_level.append(_Level(small, distinct, lost, int(lost[codes].sum())))
            self.levels.append(per_level)
        self.checked = 0

    def sizes(self, node: Sequence[int]) -> np.ndarray:
        """The size of each record's class under ``node``."""
        key, radix = combined_key(((self.levels[a][level].codes, self.levels[a][level].distinct)
                                   for a, level in enumerate(node)), self.n)
        if radix <= max(4 * self.n, 1 << 20):
            return np.bincount(key, minlength=radix)[key]
        _, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
        return counts[inverse.reshape(-1)]

    def passes(self, node: Sequence[int]) -> bool:
        self.checked += 1
        suppressed = int(np.count_nonzero(self.sizes(node) < self.k))
        return suppressed <= self.limit and suppressed < self.n

    def evaluate(self, node: Sequence[int]) -> tuple[tuple[Fraction, int, int, tuple[int, ...]],
                                                       list[Fraction], np.ndarray]:
        """The node's ranking key (loss, suppressed, level sum, levels), its loss per
        attribute, and which records stay."""
        keep = self.sizes(node) >= self.k
        gone = ~keep
        suppressed = int(np.count_nonzero(gone))
        per_attribute = []
        for attribute, level in enumerate(node):
            found = self.levels[attribute][level]
            scale = max(self.domain[attribute] - 1, 0)
            kept = found.total_lost - int(found.lost[found.codes[gone]].sum())
            generalised = Fraction(kept, scale) if scale else Fraction(0)
            per_attribute.append((generalised + suppressed) / self.n)
        loss = sum(per_attribute, Fraction(0)) / len(per_attribute)
        return (loss, suppressed, sum(node), tuple(node)), per_attribute, keep

    def bounds(self, nodes: np.ndarray) -> np.ndarray:
        """Each node's loss with nothing suppressed: a lower bound of its loss."""
        total = np.zeros(len(nodes))
        for attribute, per_level in enumerate(self.levels):
            scale = max(self.domain[attribute] - 1, 1) * self.n
            table = np.array([level.total_lost / scale for level in per_level])
            total += table[nodes[:, attribute]]
        return total / len(self.levels)


def _lattice(heights: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Every level vector (row i is node i, mixed radix, last attribute fastest) and the
    strides of the node ids."""
    shape = [h + 1 for h in heights]
    nodes = np.indices(shape).reshape(len(shape), -1).T.astype(np.int64)
    strides = np.array([math.prod(shape[a + 1:]) for a in range(len(shape))], np.int64)
    return nodes, strides


def _flash(search: _Search, nodes: np.ndarray, strides: np.ndarray) -> np.ndarray:
    """Tag every node as passing or failing with few checks (Flash's path binary search)."""
    heights = np.array(search.heights, np.int64)
    status = np.zeros(len(nodes), np.int8)

    def check(node_id: int) -> bool:
        node = nodes[node_id]
        if search.passes(node.tolist()):
            status[np.all(nodes >= node, axis=1)] = _PASS
            return True
        status[np.all(nodes <= node, axis=1)] = _FAIL
        return False

    if not check(len(nodes) - 1):  # the top first: an unreachable target costs one check
        return status
    order = np.lexsort((*(nodes[:, a] for a in reversed(range(nodes.shape[1]))),
                        nodes.sum(axis=1)))
    for start in order:
        if status[start] != _UNKNOWN:
            continue
        path = [int(start)]
        while True:  # climb through untagged successors, the first attribute first
            node = nodes[path[-1]]
            step = next((path[-1] + int(strides[a]) for a in range(len(strides))
                         if node[a] < heights[a]
                         and status[path[-1] + strides[a]] == _UNKNOWN), None)
            if step is None:
                break
            path.append(step)
        low, high = 0, len(path) - 1
        while low <= high:
            middle = (low + high) // 2
            if check(path[middle]):
                high = middle - 1
            else:
                low = middle + 1
    return status


def generalise(table: pa.Table, quasi_identifiers: Sequence[str],
               hierarchies: Mapping[str, Hierarchy] | None = None, *,
               target_k: int | None = None, max_risk: float | None = None,
               max_suppression: float = 0.05) -> Generalisation:
    """The least-loss transformation of ``table`` meeting the target, applied.

    Quasi-identifiers without a hierarchy in ``hierarchies`` get their default
    (:func:`deid.risk.hierarchies.default_hierarchy`, by Arrow type). The returned table has
    the quasi-identifiers generalised (levels above 0 are strings) and the suppressed records
    removed; other columns are kept as they are.

    Raises:
        KeyError: a quasi-identifier that is not a column.
        TargetUnreachable: no transformation meets the target within ``max_suppression``.
        GeneralisationError: no target, an empty table, a bad argument or a value that does not
            fit its hierarchy.
    """
    quasi_identifiers = tuple(quasi_identifiers)
    k = required_k(target_k, max_risk)
    if not quasi_identifiers or len(set(quasi_identifiers)) != len(quasi_identifiers):
        raise GeneralisationError("give one or more distinct quasi-identifiers")
    missing = [q for q in quasi_identifiers if q not in table.column_names]
    if missing:
        raise KeyError(f"no column {missing[0]!r}; columns: {table.column_names}")
    if not 0 <= max_suppression <= 1:
        raise GeneralisationError("max_suppression must be in [0, 1]")
    if table.num_rows == 0:
        raise GeneralisationError("the table has no records")
    chosen: dict[str, Hierarchy] = {}
    for name in quasi_identifiers:
        try:
            chosen[name] = (hierarchies or {}).get(name) or default_hierarchy(table[name])
        except HierarchyError as e:
            raise GeneralisationError(f"column {name!r}: {e}") from e
    heights = [chosen[q].height for q in quasi_identifiers]
    size = math.prod(h + 1 for h in heights)
    if size > MAX_LATTICE_NODES:
        raise GeneralisationError(f"the generalisation lattice has {size} transformations, more"
                                  f" than {MAX_LATTICE_NODES}: use fewer quasi-identifiers or "
                                  f"shorter hierarchies")
    limit = math.floor(max_suppression * table.num_rows + 1e-9)
    search = _Search(table, quasi_identifiers, chosen, k, limit)
    nodes, strides = _lattice(heights)
    status = _flash(search, nodes, strides)
    if status[-1] != _PASS:
        top_classes = search.sizes(nodes[-1].tolist())
        short = int(np.count_nonzero(top_classes < k))
        raise TargetUnreachable(
            f"no generalisation reaches k = {k}: even the most general one (every "
            f"quasi-identifier at its top level) leaves {short} of {table.num_rows} records in "
            f"classes smaller than {k}, and at most {limit} may be suppressed "
            f"(max_suppression {max_suppression}); some record must stay")
    passing = np.flatnonzero(status == _PASS)
    minimal = [int(i) for i in passing if all(
        nodes[i, a] == 0 or status[i - strides[a]] == _FAIL for a in range(len(heights)))]

    bounds = search.bounds(nodes[passing])
    order = passing[np.lexsort((*(nodes[passing, a] for a in reversed(range(len(heights)))),
                                nodes[passing].sum(axis=1), bounds))]
    bound_of = dict(zip(passing.tolist(), bounds.tolist(), strict=True))
    best: tuple[tuple[Fraction, int, int, tuple[int, ...]], list[Fraction], np.ndarray] | None
    best = None
    evaluated = 0
    for node_id in order.tolist():
        if best is not None and bound_of[node_id] > float(best[0][0]) + 1e-12:
            break
        found = search.evaluate(nodes[node_id].tolist())
        evaluated += 1
        if best is None or found[0] < best[0]:
            best = found
    assert best is not None  # the top passes
    (loss, suppressed, _, node), per_attribute, keep = best

    columns = {name: table[name] for name in table.column_names}
    for name, level in zip(quasi_identifiers, node, strict=True):
        columns[name] = chosen[name].generalise(table[name], level)
    released = pa.table(columns).filter(pa.array(keep))
    # suppression removes whole classes: the smallest kept one is the release's
    smallest = int(search.sizes(node)[keep].min())
    return Generalisation(
        quasi_identifiers=quasi_identifiers,
        levels=dict(zip(quasi_identifiers, node, strict=True)),
        level_names={q: chosen[q].level_names[level]
                     for q, level in zip(quasi_identifiers, node, strict=True)},
        hierarchies={q: chosen[q].describe() for q in quasi_identifiers},
        table=released, records=table.num_rows, suppressed=suppressed, loss=float(loss),
        loss_per_attribute={q: float(f) for q, f in zip(quasi_identifiers, per_attribute,
                                                          strict=True)},
        k=smallest, highest_risk=1 / smallest, target_k=target_k, max_risk=max_risk,
        max_suppression=max_suppression, required_k=k,
        minimal_transformations=[dict(zip(quasi_identifiers, nodes[i].tolist(), strict=True))
                                 for i in minimal],
        lattice_size=size, checked=search.checked, evaluated=evaluated)
