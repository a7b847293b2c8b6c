"""Cohorts over a linkage of the synthetic providers: definitions checked against the
attribute columns, counts against the truth, small cells suppressed, linked demographics."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from api.client.cohort_cli import _count_text
from linker.clkset import load_clk_sets
from linker.cohorts import (
    CohortDefinitionError,
    cohort_counts,
    entity_demographics,
    parse_definition,
    representativeness,
    select_entities,
)
from linker.cohorts.demographics import DIMENSIONS
from linker.cohorts.offline import count_cohort, members_of_linkage, reference_shares
from linker.cohorts.representativeness import FLAG_BELOW, _largest_ratio
from linker.link import link_sets
from linker.results import write_results
from synth.cli import synthesize
from tokenizer.attributes_build import build_attributes, load_attribute_spec
from tokenizer.attributes_file import read_attributes
from tokenizer.catalog import load_schema
from tokenizer.errors import InputError
from tokenizer.pipeline import tokenize_file

SECRET = b"cohort tests: the project's secret"
PARTIES = ("imaging", "ehr", "claims")
SPECS = Path(__file__).resolve().parent.parent / "synth" / "specs"
LUNG_CT = {"name": "chest CT within 90 days after a lung cancer diagnosis",
           "require": {"ehr": {"all": [{"column": "diagnosis", "prefix": ["C34"]}]},
                       "imaging": {"all": [{"column": "modality", "in": ["CT"]},
                                           {"column": "body_part", "in": ["CHEST"]}]}},
           "within": [{"after": {"party": "ehr", "column": "encounter_date"},
                       "then": {"party": "imaging", "column": "study_date"},
                       "days": [0, 1825]}],
           "as_of_year": 2026}


@pytest.fixture(scope="module")
def linked(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("cohorts")
    synthesize(folder, 6000, seed=11)
    attributes, encodings = {}, []
    for party in PARTIES:
        source = folder / f"{party}.parquet"
        build_attributes(source, load_attribute_spec(SPECS / f"{party}.json"),
                         folder / f"{party}.attributes.parquet", id_column="record_id",
                         provider=party)
        attributes[party] = read_attributes(folder / f"{party}.attributes.parquet")
        out = folder / f"{party}.clks.parquet"
        tokenize_file(source, load_schema("person"), SECRET, out, id_column="record_id",
                      provider=party, workers=1)
        encodings.append(out)
    # greedy: with cluster one woman's records share an entity with a man's, and the women-only
    # cohort's single man is then suppressed (k = 11) and not flagged as under-represented.
    result = link_sets(load_clk_sets(encodings), 0.75, dedup=[True] * 3, solver="greedy")
    write_results(folder / "linkage", result, {"threshold": 0.75})
    truth = pacsv.read_csv(folder / "truth.csv", convert_options=pacsv.ConvertOptions(
        column_types={"true_id": pa.string()}))
    return {"folder": folder, "attributes": attributes,
            "members": members_of_linkage(folder / "linkage"),
            "truth": pa.table({"party": truth["party"], "record_id": truth["record_id"],
                               "entity": truth["true_id"]})}


def _columns(linked: dict) -> dict:
    return {p: {c.name: c for c in a.columns} for p, a in linked["attributes"].items()}


def _tables(linked: dict) -> dict:
    return {p: a.table for p, a in linked["attributes"].items()}


def test_counts_follow_the_truth_within_the_linkages_error(linked: dict) -> None:
    definition = parse_definition(LUNG_CT, _columns(linked))
    ours = select_entities(definition, linked["members"], _tables(linked))
    truth = select_entities(definition, linked["truth"], _tables(linked))
    assert len(truth) > 30
    assert abs(len(ours) - len(truth)) <= 0.1 * len(truth)


def test_a_rule_across_parties_is_checked_row_by_row(linked: dict) -> None:
    """The window: a diagnosis long after the CT does not count."""
    definition = parse_definition(LUNG_CT, _columns(linked))
    before = parse_definition({**LUNG_CT, "within": [{**LUNG_CT["within"][0],
                                                      "days": [-1825, -1]}]}, _columns(linked))
    after = set(select_entities(definition, linked["truth"], _tables(linked)))
    earlier = set(select_entities(before, linked["truth"], _tables(linked)))
    no_window = parse_definition({k: v for k, v in LUNG_CT.items() if k != "within"},
                                 _columns(linked))
    either = set(select_entities(no_window, linked["truth"], _tables(linked)))
    assert after | earlier <= either and after and earlier and after != earlier


def test_small_cells_are_suppressed_with_their_complement(linked: dict) -> None:
    definition = parse_definition(LUNG_CT, _columns(linked))
    entities = select_entities(definition, linked["members"], _tables(linked))
    demographics = entity_demographics(entities, linked["members"], _tables(linked), 2026)
    counts = cohort_counts(entities, demographics, min_cell=11)
    assert counts.entities == len(entities)
    for cells in counts.breakdown.values():
        hidden = [c for c in cells if c.suppressed]
        assert len(hidden) != 1  # one hidden cell could be recovered from the total
        assert all(c.count is None for c in hidden)
        assert all(c.count == 0 or c.count >= 11 for c in cells if not c.suppressed)
        assert sum(c.count for c in cells if not c.suppressed) <= len(entities)
    tiny = cohort_counts(entities[:7], demographics, min_cell=11)
    assert tiny.entities is None and not tiny.empty
    # Not even the categories present: one entity's would be its sex, age, race and region.
    assert tiny.breakdown == {d: [] for d in DIMENSIONS}
    assert cohort_counts([], demographics, min_cell=11).empty
    assert cohort_counts(entities, demographics, 11) == counts  # deterministic


@pytest.mark.parametrize(("cells", "hidden"), [
    ({"f": 12, "m": 13}, set()),  # nothing small
    ({"f": 11, "m": 40}, set()),  # a cell of exactly the threshold is shown
    ({"a": 5, "b": 20, "c": 30}, {"a", "b"}),  # one small cell and its complement
    # a + b = total - c = 2: hide c too, and then every group: no group listed
    ({"a": 1, "b": 1, "c": 500}, None),
    ({"a": 3, "b": 4, "c": 4, "d": 100, "e": 200}, {"a", "b", "c"}),  # hidden sum 11
    ({"a": 2, "b": 3, "c": 40, "d": 41}, {"a", "b", "c"}),  # a + b = 5 < 11
    ({"a": 1, "b": 12, "c": 12}, {"a", "b"}),  # ties: the first category in order
    # hiding w and its complement a (sum 22) gave both away: a, taken before b as a tie,
    # is 11 or 12, so w (at most 10) is 10 and a 12; so every group is hidden
    ({"a": 12, "b": 12, "w": 10}, None),
])
def test_suppressed_cells_cannot_be_recovered_from_the_total(cells: dict[str, int],
                                                             hidden: set[str] | None) -> None:
    """Hand-worked: whatever is hidden holds at least two cells whose sum (which the total
    and the shown cells give away) is no small count."""
    counts = cohort_counts(*_people(cells), min_cell=11)
    if hidden is None:  # nothing to compare with a reference either
        rows = representativeness(counts, {"sex": {c: 1.0 for c in cells}})
        assert all(r.cohort_share is None and not r.under_represented for r in rows)
    for breakdown in counts.breakdown.values():
        if hidden is None:
            assert breakdown == []
            continue
        assert breakdown
        assert {c.category for c in breakdown if c.suppressed} == hidden
        assert all(c.count == cells[c.category] for c in breakdown if not c.suppressed)


@pytest.mark.parametrize(("min_cell", "most", "groups"), [(3, 9, 4), (4, 13, 3), (11, 36, 3)])
def test_no_table_gives_a_hidden_count_away(min_cell: int, most: int, groups: int) -> None:
    """Brute force over every breakdown of ``groups`` groups of up to ``most`` entities each:
    grouped by what a researcher sees (the published table), no hidden cell holds the same
    count in every breakdown giving that table, among tables of at most ``most`` entities (so
    every breakdown they could come from is enumerated). Before, complementary suppression
    stopped at two hidden cells summing to min_cell, and the bounds on a small cell and on
    its complement (at most the smallest shown cell, ties by category) could pin both: shown
    b = 12 beside hidden a and c summing to 22 (min_cell 11) meant a = 12, c = 10. Also: the
    largest count a suppressed group's flag assumes is never below what it could hold."""
    seen: dict[tuple, list[dict[str, int]]] = {}
    for sizes in itertools.product(range(most + 1), repeat=groups):
        cells = {"abcdefg"[i]: n for i, n in enumerate(sizes) if n}
        if not cells or sum(sizes) > most:
            continue
        counts = cohort_counts(*_people(cells), min_cell=min_cell)
        if counts.entities is None:
            continue
        table = (counts.entities, tuple((c.category, c.count) for c in counts.breakdown["sex"]))
        seen.setdefault(table, []).append(cells)
        for cell in counts.breakdown["sex"]:
            if cell.suppressed:
                seen.setdefault(("largest", table, cell.category), []).append(
                    {"largest": round(_largest_ratio(cell.category, counts.breakdown["sex"],
                                                     counts, 1.0) * counts.entities)})
    for table, breakdowns in seen.items():
        if table[0] == "largest":
            continue
        hidden = [c for c, n in table[1] if n is None]
        for category in hidden:
            assert len({b[category] for b in breakdowns}) > 1, (table, category)
            assumed = seen[("largest", table, category)][0]["largest"]
            assert assumed >= max(b[category] for b in breakdowns), (table, category)


def _people(cells: dict[str, int]) -> tuple[list[str], dict]:
    """People with the given count per category, the same in every dimension."""
    people = [f"{c}{i}" for c, n in cells.items() for i in range(n)]
    return people, {p: {d: (p.rstrip("0123456789"), None) for d in DIMENSIONS} for p in people}


def _flags(cells: dict[str, int], reference: dict[str, float], min_cell: int
           ) -> tuple[dict, dict[str, bool]]:
    """The published table (what a researcher sees) and the sex rows' flags."""
    counts = cohort_counts(*_people(cells), min_cell=min_cell)
    rows = representativeness(counts, {"sex": reference})
    return counts.as_dict(), {r.category: r.under_represented for r in rows
                              if r.dimension == "sex"}


QUARTERS = {"a": 0.4, "b": 0.3, "c": 0.2, "d": 0.1}


@pytest.mark.parametrize(("cells", "flagged"), [
    # a + b = 11, so neither can be the complement (at least 11, beside a small cell of 1 or
    # more): each holds at most 10, under 0.8 of its reference among 511
    ({"a": 4, "b": 7, "c": 200, "d": 300}, {"a": True, "b": True}),
    # a + b = 12: either could be the complement of 11 beside a 1; 11 of 512 is still short
    ({"a": 3, "b": 9, "c": 200, "d": 300}, {"a": True, "b": True}),
    # a could hold 11 of 24 (0.46 against 0.4): not flagged, though its 5 would be (0.52)
    ({"a": 5, "b": 7, "c": 12}, {"a": False, "b": False}),
    # d (10) is hidden with its complement c (90): either could hold 99 of 300, so neither is
    # flagged (c is not short at all; d is, but the table cannot tell it from c)
    ({"a": 100, "b": 100, "c": 90, "d": 10}, {"c": False, "d": False}),
])
def test_a_suppressed_group_is_flagged_when_its_largest_possible_count_falls_short(
        cells: dict[str, int], flagged: dict[str, bool]) -> None:
    _, flags = _flags(cells, QUARTERS, 11)
    assert {c: flags[c] for c in flagged} == flagged


@pytest.mark.parametrize(("min_cell", "reference", "totals"), [
    (11, QUARTERS, (11, 12, 17, 25, 34)),
    (4, {"a": 0.3, "b": 0.3, "c": 0.2, "d": 0.1, "e": 0.1}, (9, 13, 17)),
])
def test_a_suppressed_flag_is_what_every_table_alike_agrees_on(
        min_cell: int, reference: dict[str, float], totals: tuple[int, ...]) -> None:
    """Every cohort of these totals, grouped by the table a researcher sees: a suppressed cell
    is flagged exactly when it is short of the reference in every cohort of its group, so the
    flag says no more about its count than the table does, and is never wrong."""
    groups: dict[str, list[tuple[dict[str, int], dict[str, bool]]]] = {}
    categories = list(reference)
    for total in totals:
        for cuts in itertools.combinations(range(total + len(categories) - 1),
                                           len(categories) - 1):
            bounds = (-1, *cuts, total + len(categories) - 1)
            cells = {c: bounds[i + 1] - bounds[i] - 1 for i, c in enumerate(categories)}
            table, flags = _flags(cells, reference, min_cell)
            groups.setdefault(json.dumps(table), []).append((cells, flags))
    checked = {True: 0, False: 0}
    for key, cohorts in groups.items():
        table = json.loads(key)
        for cell in table["breakdown"]["sex"] if table["entities"] else ():
            if not cell["suppressed"]:
                continue
            short = [n / table["entities"] / reference[cell["category"]] < FLAG_BELOW
                     for n in (cells[cell["category"]] for cells, _ in cohorts)]
            flag = cohorts[0][1][cell["category"]]
            assert flag == all(short), (cohorts[0][0], cell["category"])
            checked[flag] += 1
    assert min(checked.values()) > 20  # both answers were put to the test


def test_imaging_gets_race_and_age_from_the_linked_ehr(linked: dict) -> None:
    imaging_only = parse_definition(
        {"require": {"imaging": {"all": [{"column": "modality", "in": ["CT"]}]}}},
        _columns(linked))
    entities = select_entities(imaging_only, linked["members"], _tables(linked))
    demographics = entity_demographics(entities, linked["members"], _tables(linked), 2026)
    sources = {demographics[e]["race_ethnicity"][1] for e in entities}
    assert sources <= {"ehr", None} and "ehr" in sources
    assert {demographics[e]["age_band"][1] for e in entities} <= {"ehr", "claims", None}


def test_representativeness_flags_groups_short_of_the_reference(linked: dict) -> None:
    women = parse_definition({"require": {"ehr": {"all": [{"column": "sex", "in": ["f"]}]}},
                              "as_of_year": 2026}, _columns(linked))
    report = count_cohort(women, linked["members"], _tables(linked), 11)
    shares = {(r.dimension, r.category): r for r in report.shares}
    assert shares[("sex", "m")].under_represented and shares[("sex", "m")].ratio < 0.1
    assert not shares[("sex", "f")].under_represented
    assert json.dumps(report.as_dict())


def test_the_default_reference_suppresses_the_projects_small_groups(linked: dict) -> None:
    """The default reference (every linked entity) showed each group's share to 4 decimals:
    exact fractions of the project's entities, so its small groups' counts could be worked
    out. Now they are suppressed as a cohort's small cells are."""
    everyone = sorted(set(linked["members"]["entity"].to_pylist()))
    demographics = entity_demographics(everyone, linked["members"], _tables(linked), 2026)
    tallies = {d: Counter(demographics[e][d][0] for e in everyone) for d in DIMENSIONS}
    min_cell = min(n for tally in tallies.values() for n in tally.values()) + 1
    definition = parse_definition(LUNG_CT, _columns(linked))
    report = count_cohort(definition, linked["members"], _tables(linked), min_cell)
    withheld_somewhere = False
    for dimension, tally in tallies.items():
        rows = {r.category: r for r in report.shares if r.dimension == dimension}
        withheld = {c for c, r in rows.items() if r.reference_share is None}
        assert {c for c, n in tally.items() if n < min_cell} <= withheld
        assert len(withheld) != 1  # one could be worked out from the others
        assert sum(tally[c] for c in withheld) >= min_cell or not withheld
        for category, row in rows.items():
            if category not in withheld:
                assert row.reference_share == round(tally[category] / len(everyone), 4)
        withheld_somewhere |= bool(withheld)
    assert withheld_somewhere
    given = count_cohort(definition, linked["members"], _tables(linked), min_cell,
                         reference={d: dict(t) for d, t in tallies.items()})
    assert all(r.reference_share is not None for r in given.shares)  # the user's own


@pytest.mark.parametrize(("rows", "message"), [
    ("sex,f,-0.5\nsex,m,1.5\n", "sex.f: a share is a finite number of 0 or more"),
    ("sex,f,inf\n", "finite number"),
    ("sex,f,0\nsex,m,0\n", "sum to 0"),
])
def test_a_reference_file_with_a_bad_share_is_refused(tmp_path: Path, rows: str,
                                                     message: str) -> None:
    path = tmp_path / "reference.csv"
    path.write_text("dimension,category,share\n" + rows, encoding="utf-8")
    with pytest.raises(InputError, match=message):
        reference_shares(path)


def test_suppressed_groups_are_flagged_only_when_surely_short(linked: dict) -> None:
    """Southerners (by their EHR region): the few entities the linkage gives another region are
    hidden, and flagged when even the largest count the table allows them is short; the men,
    hidden as the complement of the few of unknown sex, are not, though hidden cells are
    often read as small. Each flag is checked against the true counts."""
    south = parse_definition({"require": {"ehr": {"all": [{"column": "region",
                                                            "in": ["south"]}]}},
                              "as_of_year": 2026}, _columns(linked))
    entities = select_entities(south, linked["members"], _tables(linked))
    demographics = entity_demographics(entities, linked["members"], _tables(linked), 2026)
    flagged = {}
    for min_cell in (5, 11):
        report = count_cohort(south, linked["members"], _tables(linked), min_cell)
        hidden = [r for r in report.shares if r.cohort_share is None]
        flagged[min_cell] = {(r.dimension, r.category) for r in hidden if r.under_represented}
        for row in hidden:
            count = sum(demographics[e][row.dimension][0] == row.category for e in entities)
            assert count / len(entities) / row.reference_share < 0.8 \
                or not row.under_represented
    assert flagged[5] == {("region", "midwest"), ("region", "west")}
    assert flagged[11] == set()
    men = next(c for c in count_cohort(south, linked["members"], _tables(linked), 11)
               .counts.breakdown["sex"] if c.category == "m")
    assert men.suppressed
    assert sum(demographics[e]["sex"][0] == "m" for e in entities) > 100
    # so what `pprl cohort count` prints for a hidden cell does not read "fewer than 11"
    text = _count_text(count_cohort(south, linked["members"], _tables(linked), 11).as_dict())
    assert "m hidden" in text and "<11" not in text
    assert "hidden beside such cells" in text


@pytest.mark.parametrize(("change", "message"), [
    ({"require": {"ehr": {"all": [{"column": "shoe_size", "in": ["9"]}]}}}, "no column"),
    ({"require": {"dentist": {"all": [{"column": "x", "in": ["9"]}]}}}, "no party"),
    ({"require": {"ehr": {"all": [{"column": "hba1c", "prefix": ["6"]}]}}},
     "does not fit column 'hba1c', a number"),
    ({"require": {"ehr": {"all": [{"column": "encounter_date", "min": "soon"}]}}},
     "must be YYYY-MM-DD"),
    # present: false was a criterion with no condition, an IndexError (a 500 in the service)
    ({"require": {"ehr": {"all": [{"column": "sex", "present": False}]}}}, "takes true"),
    ({"require": {"ehr": {"all": [{"column": "sex", "present": "yes"}]}}}, "takes true"),
    # An integer too large for a float was an OverflowError (a 500 in the service), an
    # infinite one accepted.
    ({"require": {"ehr": {"all": [{"column": "hba1c", "min": 10 ** 400}]}}}, "finite number"),
    ({"require": {"ehr": {"all": [{"column": "hba1c", "max": -10 ** 400}]}}}, "finite number"),
    ({"require": {"ehr": {"all": [{"column": "hba1c", "max": float("inf")}]}}},
     "finite number"),
    ({"require": {"ehr": {"all": [{"column": "hba1c", "min": float("nan")}]}}},
     "finite number"),
    ({"require": {"ehr": {"some": []}}}, r'write {"all": \[criteria\]}'),
    ({"within": [{"after": {"party": "ehr", "column": "diagnosis"},
                  "then": {"party": "imaging", "column": "study_date"}, "days": [0, 9]}]},
     "is not a date"),
    # the new user's case: deid without --dates full writes no study_date; say what there is
    ({"within": [{"after": {"party": "ehr", "column": "study_date"},
                  "then": {"party": "imaging", "column": "study_date"}, "days": [0, 9]}]},
     r"no column 'study_date' of party 'ehr'; its date columns are \['encounter_date'\]"),
    ({"colour": "red"}, "unknown keys"),
])
def test_bad_definitions_name_what_is_wrong(linked: dict, change: dict, message: str) -> None:
    with pytest.raises(CohortDefinitionError, match=message):
        parse_definition({**LUNG_CT, **change}, _columns(linked))


def test_canonical_text_tells_every_bound_apart(linked: dict) -> None:
    """A bound of 0 was dropped from the audited text (0 == False), so "hba1c at least 0"
    and "any hba1c" were audited as the same definition."""
    def text(criterion: dict) -> str:
        return parse_definition({"require": {"ehr": {"all": [criterion]}}},
                                _columns(linked)).canonical_json

    texts = {text({"column": "hba1c", "min": 0}), text({"column": "hba1c", "present": True}),
             text({"column": "hba1c", "max": 0}), text({"column": "hba1c", "min": 0.5})}
    assert len(texts) == 4
    assert text({"column": "hba1c", "min": 0}) == text({"column": "hba1c", "min": 0.0})
