"""Cohorts on the synthetic population: entities per definition from the truth against from
the linkage, and the time and peak memory of counting and exporting a large cohort.

The population's three providers are tokenized with the ``person`` schema, linked with each
deduplicated (as ``pprl demo`` does), and given the shipped synthetic attribute specs. Each
definition is evaluated twice over the same attributes: with the truth's grouping of records
into people, and with the linkage's. A linkage entity is counted as a correct member when
the true person most of its records belong to is in the truth's cohort. The export of the
broadest definition runs in a child process of its own, so its peak memory is its own.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from linker.clkset import load_clk_sets
from linker.cohorts import (
    RequestKeys,
    cohort_counts,
    entity_demographics,
    export_cohort,
    parse_definition,
    select_entities,
)
from linker.cohorts.offline import members_of_linkage
from linker.link import link_sets
from linker.results import write_results
from synth.cli import synthesize
from tokenizer.attributes_build import build_attributes, load_attribute_spec
from tokenizer.attributes_file import read_attributes
from tokenizer.catalog import load_schema
from tokenizer.pipeline import tokenize_file

from .measure import run_measured
from .report import print_table, write_json

ROOT = Path(__file__).resolve().parent.parent
PARTIES = ("imaging", "ehr", "claims")
THRESHOLD = 0.75  # pprl demo's
AS_OF_YEAR = 2026  # ages of definitions that name no year
_SECRET = b"bench_cohorts: a 32-byte secret."
_EXAMPLES = ROOT / "linker" / "cohorts" / "examples"
DEFINITIONS = {
    "chest CT/X-ray within 5 y after lung cancer (imaging + EHR)":
        json.loads((_EXAMPLES / "chest_ct_after_lung_cancer.json").read_text()),
    "type 2 diabetes with an imaging claim, no screening mammography (EHR + claims)":
        json.loads((_EXAMPLES / "diabetes_with_claims.json").read_text()),
    "any imaging study of a person with an EHR record (imaging + EHR)":
        {"require": {"imaging": {"all": [{"column": "modality", "present": True}]},
                     "ehr": {"all": [{"column": "sex", "present": True}]}}},
    "women with HbA1c >= 6.5 (EHR)":
        {"require": {"ehr": {"all": [{"column": "sex", "in": ["f"]},
                                     {"column": "hba1c", "min": 6.5}]}}},
    "everyone with an EHR record (EHR; the export below)":
        {"require": {"ehr": {"all": [{"column": "sex", "present": True}]}},
         "release": {"ehr": ["diagnosis", "encounter_date", "hba1c"]}},
}
BROADEST = "everyone with an EHR record (EHR; the export below)"


def _prepare(folder: Path, people: int, seed: int) -> None:
    """Extracts, attributes, encodings and a linkage of ``people`` synthetic people."""
    synthesize(folder, people, seed)
    schema, encodings = load_schema("person"), []
    for party in PARTIES:
        source = folder / f"{party}.parquet"
        build_attributes(source, load_attribute_spec(ROOT / "synth" / "specs" / f"{party}.json"),
                         folder / f"{party}.attributes.parquet", id_column="record_id",
                         provider=party)
        out = folder / f"{party}.clks.parquet"
        tokenize_file(source, schema, _SECRET, out, id_column="record_id", provider=party,
                      progress=False)
        encodings.append(out)
    result = link_sets(load_clk_sets(encodings), THRESHOLD, dedup=[True] * len(PARTIES))
    write_results(folder / "linkage", result, {"threshold": THRESHOLD})


def _inputs(folder: Path) -> tuple[dict[str, pa.Table], dict[str, dict], pa.Table, pa.Table]:
    attributes = {p: read_attributes(folder / f"{p}.attributes.parquet") for p in PARTIES}
    tables = {p: a.table for p, a in attributes.items()}
    columns = {p: {c.name: c for c in a.columns} for p, a in attributes.items()}
    truth = pacsv.read_csv(folder / "truth.csv", convert_options=pacsv.ConvertOptions(
        column_types={"true_id": pa.string(), "record_id": pa.string()}))
    truth_members = pa.table({"party": truth["party"], "record_id": truth["record_id"],
                              "entity": truth["true_id"]})
    return tables, columns, truth_members, members_of_linkage(folder / "linkage")


def _person_of_entity(linked: pa.Table, truth: pa.Table) -> dict[str, str]:
    """Each linkage entity's true person: the one most of its records belong to."""
    person = {(p, r): e for p, r, e in zip(truth["party"].to_pylist(),
                                           truth["record_id"].to_pylist(),
                                           truth["entity"].to_pylist(), strict=True)}
    votes: dict[str, Counter[str]] = {}
    for party, record, entity in zip(linked["party"].to_pylist(),
                                     linked["record_id"].to_pylist(),
                                     linked["entity"].to_pylist(), strict=True):
        votes.setdefault(entity, Counter())[person[(party, record)]] += 1
    return {entity: counter.most_common(1)[0][0] for entity, counter in votes.items()}


def quality(folder: Path) -> list[dict[str, object]]:
    tables, columns, truth, linked = _inputs(folder)
    person_of = _person_of_entity(linked, truth)
    rows = []
    for name, doc in DEFINITIONS.items():
        definition = parse_definition(doc, columns)
        wanted = set(select_entities(definition, truth, tables))
        started = time.perf_counter()
        found = select_entities(definition, linked, tables)
        demographics = entity_demographics(found, linked, tables,
                                           definition.as_of_year or AS_OF_YEAR)
        cohort_counts(found, demographics)
        seconds = time.perf_counter() - started
        correct = sum(person_of[e] in wanted for e in found)
        rows.append({"definition": name, "truth": len(wanted), "linkage": len(found),
                     "ratio": round(len(found) / len(wanted), 3) if wanted else None,
                     "precision": round(correct / len(found), 3) if found else None,
                     "recall": round(len({person_of[e] for e in found} & wanted)
                                     / len(wanted), 3) if wanted else None,
                     "count_seconds": round(seconds, 2)})
    return rows


def export_only(folder: Path, target: Path) -> dict[str, object]:
    """The broadest definition's export (run in a child process: its own peak memory)."""
    tables, columns, _, linked = _inputs(folder)
    definition = parse_definition(DEFINITIONS[BROADEST], columns)
    started = time.perf_counter()
    entities = select_entities(definition, linked, tables)
    demographics = entity_demographics(entities, linked, tables,
                                       definition.as_of_year or AS_OF_YEAR)
    selected = time.perf_counter() - started
    types = {p: {n: c.type for n, c in cs.items()} for p, cs in columns.items()}
    started = time.perf_counter()
    written = export_cohort(target, entities, linked, tables, types, definition.release,
                            demographics, RequestKeys(b"bench service key, 32 bytes....",
                                                      "req_0123456789abcdef"))
    exported = time.perf_counter() - started
    return {"entities": len(entities), "select_seconds": round(selected, 2),
            "export_seconds": round(exported, 2),
            "rows": {p.stem: pq.read_metadata(p).num_rows for p in written}}


DEFINITIONS_TEXT = {
    "truth, linkage": "entities the definition selects when records are grouped by the "
                      "truth (people) and by the linkage (entities)",
    "precision": "share of the linkage's entities whose true person (the one most of its "
                 "records belong to) is in the truth's cohort",
    "recall": "share of the truth's people found through the linkage",
    "count_seconds": "selecting the linkage's entities and their suppressed breakdown",
}


def run(people: int, seed: int, workdir: Path) -> dict[str, object]:
    """Prepare, count every definition, export the broadest in a child process."""
    folder = workdir / "cohorts"
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    _prepare(folder, people, seed)
    prepared = time.perf_counter() - started
    rows = quality(folder)
    measured = run_measured([sys.executable, "-m", "benchmarks.bench_cohorts",
                             "--export-only", str(folder)])
    export = json.loads(measured.stdout)
    export.update(wall_seconds=round(measured.seconds, 2),
                  peak_rss_mib=round(measured.peak_rss_bytes / 2**20))
    note = (f"export of the cohort \"{BROADEST}\": {export['entities']:,} entities, "
            f"selected in {export['select_seconds']} s, written in {export['export_seconds']} "
            f"s ({export['wall_seconds']} s for the whole child process, start-up and "
            f"reading included), peak RSS {export['peak_rss_mib']} MiB")
    return {"benchmark": "cohorts", "people": people, "seed": seed, "threshold": THRESHOLD,
            "prepare_seconds": round(prepared, 1), "results": rows, "export": export,
            "definitions": {**DEFINITIONS_TEXT, "population": f"{people:,} synthetic "
                            f"people, three providers linked at Dice >= {THRESHOLD}, each "
                            f"deduplicated"},
            "notes": [note]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=150_000,
                        help="synthetic population size (150,000 gives a cohort of about "
                             "100,000 entities with an EHR record)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/cohorts.json"))
    parser.add_argument("--export-only", type=Path, metavar="FOLDER", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.export_only:
        print(json.dumps(export_only(args.export_only, args.export_only / "export")))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        result = run(args.people, args.seed, Path(tmp))
    result["machine"] = {"platform": platform.platform(), "python": platform.python_version()}
    print_table(result["results"], title=f"Entities per definition, truth vs linkage "
                                         f"({args.people:,} people, three providers, "
                                         f"Dice >= {THRESHOLD})")
    print(*result["notes"], sep="\n")
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
