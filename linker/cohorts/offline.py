"""Counting a cohort offline, over a ``pprl link`` output folder and the parties' attribute
files (what the data manager does before, or without, the service)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

from tokenizer.attributes_file import AttributesFile
from tokenizer.errors import InputError

from ..results import ENTITIES, read_entities
from .counts import CohortCounts, cohort_counts, suppressed_cells
from .definition import CohortDefinitionError, Definition, parse_definition
from .demographics import DIMENSIONS, entity_demographics
from .evaluate import select_entities
from .representativeness import GroupShare, reference_problem, representativeness

__all__ = ["CohortReport", "count_cohort", "load_definition", "reference_shares",
           "members_of_linkage"]


@dataclass(frozen=True)
class CohortReport:
    definition: Definition
    counts: CohortCounts
    shares: list[GroupShare]

    def as_dict(self) -> dict[str, object]:
        return {"name": self.definition.name, **self.counts.as_dict(),
                "representativeness": [vars(s) for s in self.shares]}


def load_definition(path: Path, attributes: Mapping[str, AttributesFile]) -> Definition:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise CohortDefinitionError(f"{path}: cannot be read as JSON ({e})") from e
    return parse_definition(doc, {p: {c.name: c for c in a.columns}
                                  for p, a in attributes.items()})


def members_of_linkage(folder: Path) -> pa.Table:
    """(party, record_id, entity) of every record of a ``pprl link`` output."""
    if not (folder / ENTITIES).is_file():
        raise InputError(f"{folder} holds no {ENTITIES}: is it a `pprl link` output?")
    table = read_entities(folder)
    return pa.table({"party": table["party"], "record_id": table["record_id"],
                     "entity": table["entity_id"]})


def reference_shares(path: Path) -> dict[str, dict[str, float]]:
    """A reference table (CSV: dimension, category, share) as dimension -> category -> share.

    Raises:
        InputError: missing columns, an unknown dimension, a share that is not a number,
            negative or not finite, or a dimension whose shares sum to 0.
    """
    table = pacsv.read_csv(path).to_pylist()
    shares: dict[str, dict[str, float]] = {}
    for index, row in enumerate(table, start=1):
        if set(row) < {"dimension", "category", "share"}:
            raise InputError(f"{path}: needs columns dimension, category, share")
        if row["dimension"] not in DIMENSIONS:
            raise InputError(f"{path}: row {index}: dimension must be one of {DIMENSIONS}")
        try:
            shares.setdefault(row["dimension"], {})[str(row["category"])] = float(row["share"])
        except (TypeError, ValueError) as e:
            raise InputError(f"{path}: row {index}: share is not a number") from e
    problem = reference_problem(shares)
    if problem:
        raise InputError(f"{path}: {problem}")
    return shares


def count_cohort(definition: Definition, members: pa.Table,
                 attributes: Mapping[str, pa.Table], min_cell: int,
                 reference: Mapping[str, Mapping[str, float]] | None = None,
                 as_of_year: int | None = None) -> CohortReport:
    """Counts and representativeness; the reference is every linked entity unless given."""
    year = definition.as_of_year or as_of_year or date.today().year
    entities = select_entities(definition, members, attributes)
    counts = cohort_counts(entities, entity_demographics(entities, members, attributes, year),
                           min_cell)
    withheld: dict[str, set[str]] = {}
    if reference is None:  # the project's own entities: their small groups suppressed
        everyone = sorted(set(members["entity"].to_pylist()))
        demographics = entity_demographics(everyone, members, attributes, year)
        reference = {d: _tally(demographics, d) for d in DIMENSIONS}
        withheld = {d: suppressed_cells(tally, min_cell) for d, tally in reference.items()}
    return CohortReport(definition, counts,
                        representativeness(counts, reference, withheld=withheld))


def _tally(demographics: Mapping[str, Mapping[str, tuple[str, str | None]]], dimension: str
           ) -> dict[str, float]:
    counts: dict[str, float] = {}
    for entity in demographics.values():
        value = entity[dimension][0]
        counts[value] = counts.get(value, 0.0) + 1
    return counts
