"""Generalisation to a target: the default hierarchies, the optimal lattice search (against a
brute force over the whole lattice), the target met, the loss as documented."""

from __future__ import annotations

import datetime
import itertools
import json
from collections import defaultdict
from fractions import Fraction
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from deid.risk.classes import equivalence_classes
from deid.risk.generalise import (
    GeneralisationError,
    TargetUnreachable,
    generalise,
    required_k,
)
from deid.risk.hierarchies import (
    Hierarchy,
    HierarchyError,
    default_hierarchy,
    hierarchies_for,
    hierarchy_from_spec,
    load_hierarchy_spec,
)


def levels_of(hierarchy: Hierarchy, values: list[object]) -> list[list[object]]:
    return [hierarchy.generalise(pa.array(values), level).to_pylist()
            for level in range(hierarchy.height + 1)]


def assert_nested(hierarchy: Hierarchy, values: pa.Array) -> None:
    """Each level is a function of the one below (so generalising only merges classes)."""
    rows = [hierarchy.generalise(values, level).to_pylist()
            for level in range(hierarchy.height + 1)]
    assert set(rows[-1]) == {"*"}
    for lower, upper in itertools.pairwise(rows):
        parent: dict[object, object] = {}
        for a, b in zip(lower, upper, strict=True):
            assert parent.setdefault(a, b) == b


# --- hierarchies ------------------------------------------------------------------------------

def test_number_bands_5_10_20_then_star() -> None:
    h = hierarchy_from_spec("number")
    assert h.level_names == ("value", "5-wide bands", "10-wide bands", "20-wide bands", "*")
    assert levels_of(h, [0, 4, 44, 89, None]) == [
        [0, 4, 44, 89, None], ["0-4", "0-4", "40-44", "85-89", None],
        ["0-9", "0-9", "40-49", "80-89", None], ["0-19", "0-19", "40-59", "80-99", None],
        ["*"] * 5]
    assert levels_of(h, [1.5, 44.9])[1] == ["[0, 5)", "[40, 45)"]
    assert levels_of(h, [1960, 1987])[3] == ["1960-1979", "1980-1999"]  # birth years
    top = hierarchy_from_spec({"kind": "number", "top": 90})
    assert levels_of(top, [85, 90, 104])[1:3] == [["85-89", "90+", "90+"],
                                                 ["80-89", "90+", "90+"]]
    assert_nested(top, pa.array(np.arange(-20, 120)))


def test_dates_month_year_star() -> None:
    h = hierarchy_from_spec("date")
    assert levels_of(h, ["2020-03-04", None]) == [
        ["2020-03-04", None], ["2020-03", None], ["2020", None], ["*", "*"]]
    assert h.generalise(pa.array([datetime.date(2019, 12, 31)]), 1).to_pylist() == ["2019-12"]
    with pytest.raises(HierarchyError, match="ISO"):
        h.generalise(pa.array(["03/04/2020"]), 1)


def test_zip_zip3_first_digit_star() -> None:
    assert levels_of(hierarchy_from_spec("zip"), ["02139", "94110"]) == [
        ["02139", "94110"], ["021", "941"], ["0", "9"], ["*", "*"]]
    assert levels_of(hierarchy_from_spec({"kind": "zip", "digits": 3}), ["021"]) == [
        ["021"], ["0"], ["*"]]
    assert hierarchy_from_spec("zip").generalise(pa.array([2139]), 1).to_pylist() == ["021"]


def test_code_prefixes() -> None:
    h = hierarchy_from_spec("code")
    assert levels_of(h, ["C34.1", "C34", "E11.65"]) == [
        ["C34.1", "C34", "E11.65"], ["C34", "C34", "E11"], ["C", "C", "E"], ["*"] * 3]
    lengths = hierarchy_from_spec({"kind": "code", "lengths": [4, 3, 1]})
    assert levels_of(lengths, ["C34.1"]) == [["C34.1"], ["C34"], ["C34"], ["C"], ["*"]]


def test_category_and_explicit() -> None:
    assert levels_of(hierarchy_from_spec("category"), ["F", None]) == [["F", None],
                                                                       ["*", "*"]]
    spec = {"kind": "explicit", "levels": {"a": ["x"], "b": ["x"], "c": ["y"]}}
    assert levels_of(hierarchy_from_spec(spec), ["a", "c", None]) == [
        ["a", "c", None], ["x", "y", None], ["*", "*", "*"]]
    with pytest.raises(HierarchyError, match="not in its hierarchy"):
        hierarchy_from_spec(spec).generalise(pa.array(["d"]), 1)
    with pytest.raises(HierarchyError, match="nest"):
        hierarchy_from_spec({"kind": "explicit",
                             "levels": {"a": ["x", "1"], "b": ["x", "2"]}})


def test_default_hierarchies_nest() -> None:
    rng = np.random.default_rng(3)
    samples = {"number": pa.array(rng.integers(0, 100, 300)),
               "date": pa.array([f"20{y:02d}-{m:02d}-{d:02d}" for y, m, d in
                                 rng.integers(1, 13, (300, 3))]),
               "zip": pa.array([f"{z:05d}" for z in rng.integers(0, 99999, 300)]),
               "code": pa.array([f"C{c:02d}.{d}" for c, d in rng.integers(0, 99, (300, 2))]),
               "category": pa.array(rng.choice(["F", "M"], 300))}
    for kind, values in samples.items():
        assert default_hierarchy(values).kind == kind
        assert_nested(default_hierarchy(values), values)


def test_defaults_by_declared_and_arrow_type() -> None:
    assert default_hierarchy(pa.array(["021"])).options == {"digits": 3}
    assert default_hierarchy(pa.array([1.5])).kind == "number"
    assert default_hierarchy(pa.array([datetime.date(2020, 1, 1)])).kind == "date"
    assert default_hierarchy(pa.array(["MR", "CT"])).kind == "category"
    assert default_hierarchy(pa.array(["MR", "CT"]), "code").kind == "code"
    assert default_hierarchy(pa.array([1.0]), "number").kind == "number"
    assert default_hierarchy(pa.array(["021"]), "category").kind == "zip"  # a ZIP3 category


def test_spec_file_and_its_errors(tmp_path: Path) -> None:
    table = pa.table({"age": [30, 40], "zip": ["02139", "94110"], "sex": ["F", "M"]})
    path = tmp_path / "h.json"
    path.write_text(json.dumps({"age": {"kind": "number", "widths": [10, 50]}, "zip": "code"}))
    found = hierarchies_for(table, ["age", "zip", "sex"], load_hierarchy_spec(path),
                            {"sex": "category"})
    assert [found[q].kind for q in ("age", "zip", "sex")] == ["number", "code", "category"]
    assert found["age"].height == 3
    for bad, message in [({"agee": "number"}, "not quasi-identifiers"),
                         ({"age": "bands"}, "kind"),
                         ({"age": {"kind": "number", "widths": [5, 12]}}, "divide"),
                         ({"age": {"kind": "number", "width": [5]}}, "unknown options"),
                         ({"zip": {"kind": "code", "lengths": [1, 3]}}, "decreasing")]:
        with pytest.raises(HierarchyError, match=message):
            hierarchies_for(table, ["age", "zip"], bad)


# --- the search -------------------------------------------------------------------------------

def brute_force(table: pa.Table, qis: list[str], hierarchies: dict[str, Hierarchy], k: int,
                max_suppression: float) -> tuple[tuple[int, ...], Fraction, int,
                                                 set[tuple[int, ...]]]:
    """The best node by (loss, suppressed, level sum, levels) over every node, and the minimal
    passing nodes, computed cell by cell."""
    n = table.num_rows
    limit = int(max_suppression * n + 1e-9)
    original = {q: table[q].to_pylist() for q in qis}
    passing: dict[tuple[int, ...], tuple[Fraction, int]] = {}
    for node in itertools.product(*(range(hierarchies[q].height + 1) for q in qis)):
        columns = {q: hierarchies[q].generalise(table[q], level)
                   for q, level in zip(qis, node, strict=True)}
        sizes = equivalence_classes(pa.table(columns), qis).record_sizes()
        gone = sizes < k
        if gone.sum() > limit or gone.sum() == n:
            continue
        total = Fraction(0)
        for q in qis:
            values = columns[q].to_pylist()
            covers: dict[object, set[object]] = defaultdict(set)
            for g, v in zip(values, original[q], strict=True):
                covers[g].add(v)
            domain = len(set(original[q]))
            for r in range(n):
                if gone[r]:
                    total += 1
                elif domain > 1:
                    total += Fraction(len(covers[values[r]]) - 1, domain - 1)
        passing[node] = (total / (n * len(qis)), int(gone.sum()))
    best = min(passing, key=lambda node: (*passing[node], sum(node), node))
    minimal = {node for node in passing
               if all(node[a] == 0 or node[:a] + (node[a] - 1,) + node[a + 1:] not in passing
                      for a in range(len(node)))}
    return best, passing[best][0], passing[best][1], minimal


def small_table(seed: int, n: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table({
        "age": pa.array(rng.integers(30, 52, n)),
        "zip": pa.array([f"{z:05d}" for z in rng.choice([2139, 2140, 2238, 94110, 94117,
                                                        10001, 10003], n)]),
        "dx": pa.array(rng.choice(["C34.1", "C34.2", "C50.9", "E11.65", None], n)),
        "sex": pa.array(rng.choice(["F", "M"], n)),
        "payload": pa.array(np.arange(n)),
    })


@pytest.mark.parametrize(("seed", "k", "max_suppression"),
                         [(1, 2, 0.0), (2, 3, 0.05), (3, 5, 0.1), (4, 2, 0.3), (5, 8, 0.02)])
def test_equals_brute_force(seed: int, k: int, max_suppression: float) -> None:
    table = small_table(seed, 120)
    qis = ["age", "zip", "dx", "sex"]
    hierarchies = hierarchies_for(table, qis)
    result = generalise(table, qis, hierarchies, target_k=k, max_suppression=max_suppression)
    node, loss, suppressed, minimal = brute_force(table, qis, hierarchies, k, max_suppression)
    assert tuple(result.levels[q] for q in qis) == node
    assert result.loss == pytest.approx(float(loss), abs=1e-12)
    assert result.suppressed == suppressed
    assert {tuple(m[q] for q in qis) for m in result.minimal_transformations} == minimal
    assert result.checked < result.lattice_size


@pytest.mark.parametrize(("target_k", "max_risk"), [(4, None), (None, 0.2), (3, 0.3)])
def test_target_met_within_the_suppression_limit(target_k: int | None,
                                                 max_risk: float | None) -> None:
    table = small_table(7, 300)
    qis = ["age", "zip", "dx"]
    result = generalise(table, qis, None, target_k=target_k, max_risk=max_risk,
                        max_suppression=0.04)
    assert result.k >= (target_k or 1)
    assert result.highest_risk <= (max_risk or 1.0)
    assert result.suppressed <= 0.04 * 300
    assert result.table.num_rows == 300 - result.suppressed
    assert int(equivalence_classes(result.table, qis).sizes.min()) == result.k
    assert result.table.column_names == table.column_names
    report = result.as_dict()
    json.dumps(report)
    assert report["k_anonymity"] == result.k and report["released"] == result.table.num_rows
    node = tuple(result.levels[q] for q in qis)
    brute = brute_force(table, qis, hierarchies_for(table, qis), result.required_k, 0.04)
    assert node == brute[0]


def test_required_k_from_max_risk() -> None:
    assert [required_k(None, r) for r in (1.0, 0.5, 0.2, 0.1, 0.09, 1 / 3)] == [1, 2, 5, 10,
                                                                               12, 3]
    assert required_k(7, 0.5) == 7
    with pytest.raises(GeneralisationError, match="target"):
        required_k(None, None)


def test_unreachable_target_and_bad_arguments() -> None:
    table = pa.table({"age": [30, 31, 32], "sex": ["F", "M", "F"]})
    with pytest.raises(TargetUnreachable, match="no generalisation reaches k = 5"):
        generalise(table, ["age", "sex"], target_k=5)
    with pytest.raises(GeneralisationError, match="target"):
        generalise(table, ["age"])
    with pytest.raises(KeyError, match="agee"):
        generalise(table, ["agee"], target_k=2)
    with pytest.raises(GeneralisationError, match="not ISO dates"):
        generalise(table, ["sex"], {"sex": hierarchy_from_spec("date")}, target_k=2)


def test_loss_as_documented() -> None:
    # One QI, 9 distinct ages; 5-year bands: two classes of 4 (each value covers 4 of 9:
    # loses 3/8) and 60 alone, suppressed (loses 1): (8 * 3/8 + 1) / 9 = 4/9. 10-year bands
    # give the same classes and loss but a higher level: the tie goes to 5-year bands.
    table = pa.table({"age": [20, 21, 22, 23, 30, 31, 32, 33, 60]})
    result = generalise(table, ["age"], target_k=4, max_suppression=0.2)
    assert result.levels == {"age": 1} and result.suppressed == 1
    assert result.loss == pytest.approx(4 / 9)
    assert result.table["age"].to_pylist() == ["20-24"] * 4 + ["30-34"] * 4
    # Two QIs: the mean of the two; sex at level 0 loses 0 where kept, 1 where suppressed.
    table = table.append_column("sex", pa.array(["F"] * 9))
    result = generalise(table, ["age", "sex"], target_k=4, max_suppression=0.2)
    assert result.loss_per_attribute == pytest.approx({"age": 4 / 9, "sex": 1 / 9})
    assert result.loss == pytest.approx((4 / 9 + 1 / 9) / 2)


def test_a_non_minimal_node_wins_when_suppression_costs_more() -> None:
    # v0..v9 three times each and v10 once: level 0 meets k = 2 by suppressing v10 (loss
    # 1/31); level 1 merges v10 with v9 and suppresses nothing (4 records lose 1/10 each).
    values = [f"v{i}" for i in range(10) for _ in range(3)] + ["v10"]
    levels = {f"v{i}": [f"v{i}"] for i in range(9)} | {"v9": ["v9+"], "v10": ["v9+"]}
    hierarchy = hierarchy_from_spec({"kind": "explicit", "levels": levels})
    result = generalise(pa.table({"a": values}), ["a"], {"a": hierarchy}, target_k=2)
    assert result.minimal_transformations == [{"a": 0}]
    assert result.levels == {"a": 1} and result.suppressed == 0
    assert result.loss == pytest.approx(0.4 / 31)


def test_100k_records_four_quasi_identifiers() -> None:
    rng = np.random.default_rng(11)
    n = 100_000
    start = datetime.date(1940, 1, 1).toordinal()
    table = pa.table({
        "age": rng.integers(0, 100, n),
        "zip": np.array([f"{z:05d}" for z in rng.integers(0, 99999, 3000)])[
            rng.integers(0, 3000, n)],
        "birth": pa.array([datetime.date.fromordinal(start + int(d))
                           for d in rng.integers(0, 30000, n)]),
        "dx": np.array([f"{c}{i:02d}.{j}" for c in "ABCDEFGH" for i in range(30)
                        for j in range(6)])[rng.integers(0, 1440, n)],
    })
    result = generalise(table, ["age", "zip", "birth", "dx"], target_k=11, max_risk=0.09)
    assert result.k >= 12 and result.suppressed <= 0.05 * n
