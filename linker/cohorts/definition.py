"""Cohort definitions: which linked entities a researcher wants, over the parties' attributes.

A definition is JSON::

    {"name": "chest CT within 90 days after a lung cancer diagnosis",
     "require": {
       "ehr": {"all": [{"column": "diagnosis", "prefix": ["C34"]}]},
       "imaging": {"all": [{"column": "modality", "in": ["CT"]},
                           {"column": "body_part", "in": ["CHEST"]}]}},
     "within": [{"after": {"party": "ehr", "column": "encounter_date"},
                 "then": {"party": "imaging", "column": "study_date"},
                 "days": [0, 90]}],
     "exclude": {"claims": {"any": [{"column": "procedure", "in": ["77067"]}]}},
     "release": {"ehr": ["diagnosis", "encounter_date"],
                 "imaging": ["study_uid", "modality", "study_date"]}}

An entity belongs to the cohort when, for every party under ``require``, one of its records
of that party has an attribute row meeting the party's criteria (``all``: every criterion on
that row, ``any``: at least one); when every ``within`` holds between such rows (the ``then``
date ``days[0]`` to ``days[1]`` days after the ``after`` date); and when no row of a party
under ``exclude`` meets that party's criteria. Criteria: ``in`` (the value is one of these:
codes and categories), ``prefix`` (a code starting with one of these, e.g. ICD-10 ``C34``),
``min``/``max`` (numbers, or ISO dates, inclusive), ``present`` (true: has a value).
``release`` names the columns each party's export table holds.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from tokenizer.attributes_file import AttributeColumn

__all__ = ["CohortDefinitionError", "Criterion", "PartyCriteria", "Within", "Definition",
           "parse_definition"]

_OPERATORS = {"in", "prefix", "min", "max", "present"}


class CohortDefinitionError(ValueError):
    """A definition that cannot be evaluated; the message names the party, column and rule."""


@dataclass(frozen=True)
class Criterion:
    column: str
    values: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()
    minimum: float | date | None = None
    maximum: float | date | None = None
    present: bool = False


@dataclass(frozen=True)
class PartyCriteria:
    mode: Literal["all", "any"]
    criteria: tuple[Criterion, ...]


@dataclass(frozen=True)
class Within:
    after_party: str
    after_column: str
    then_party: str
    then_column: str
    low_days: int
    high_days: int


@dataclass(frozen=True)
class Definition:
    name: str
    require: dict[str, PartyCriteria]
    within: tuple[Within, ...]
    exclude: dict[str, PartyCriteria]
    release: dict[str, tuple[str, ...]]
    as_of_year: int | None = None

    @property
    def canonical_json(self) -> str:
        """The same definition always writes the same text (for audit and repeatability)."""
        def criteria(c: PartyCriteria) -> dict[str, Any]:
            return {c.mode: [{k: (str(v) if isinstance(v, date) else list(v)
                                  if isinstance(v, tuple) else v)
                              for k, v in vars(x).items()
                              if not (v is None or v is False or v == ())}
                             for x in c.criteria]}
        return json.dumps({"name": self.name,
                           "require": {p: criteria(c) for p, c in sorted(self.require.items())},
                           "within": [vars(w) for w in self.within],
                           "exclude": {p: criteria(c) for p, c in sorted(self.exclude.items())},
                           "release": {p: list(c) for p, c in sorted(self.release.items())},
                           "as_of_year": self.as_of_year}, sort_keys=True)


def _fail(message: str) -> CohortDefinitionError:
    return CohortDefinitionError(message)


def _bound(value: Any, column: AttributeColumn, where: str) -> float | date:
    if column.type == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _fail(f"{where}: {column.name} is a number; min/max must be numbers")
        try:
            bound = float(value)
        except OverflowError:  # an integer of hundreds of digits
            bound = math.inf
        if not math.isfinite(bound):
            raise _fail(f"{where}: {column.name}: min/max must be a finite number within "
                        f"±1.8e308")
        return bound
    try:
        return date.fromisoformat(str(value))
    except ValueError as e:
        raise _fail(f"{where}: {column.name} is a date; min/max must be YYYY-MM-DD") from e


def _criterion(raw: Any, columns: Mapping[str, AttributeColumn], where: str) -> Criterion:
    if not isinstance(raw, dict) or "column" not in raw:
        raise _fail(f"{where}: a criterion names a column and an operator")
    name = raw["column"]
    if name not in columns:
        raise _fail(f"{where}: no column {name!r}; the party's columns are {sorted(columns)}")
    column = columns[name]
    operators = set(raw) - {"column"}
    if not operators or not operators <= _OPERATORS:
        raise _fail(f"{where}: column {name!r}: operators are {sorted(_OPERATORS)}, found "
                    f"{sorted(operators) or 'none'}")
    kinds = {"in": ("code", "category"), "prefix": ("code",), "min": ("number", "date"),
             "max": ("number", "date"), "present": COLUMN_KINDS}
    for operator in operators:
        if column.type not in kinds[operator]:
            raise _fail(f"{where}: {operator!r} does not fit column {name!r}, a {column.type}")

    if "present" in raw and raw["present"] is not True:  # false would select nothing asked
        raise _fail(f"{where}: column {name!r}: 'present' takes true (the row has a value)")

    def texts(key: str) -> tuple[str, ...]:
        values = raw.get(key, [])
        if not isinstance(values, list) or not values or not all(
                isinstance(v, str) for v in values):
            raise _fail(f"{where}: column {name!r}: {key!r} takes a non-empty list of texts")
        return tuple(values)

    return Criterion(name, texts("in") if "in" in raw else (),
                     texts("prefix") if "prefix" in raw else (),
                     _bound(raw["min"], column, where) if "min" in raw else None,
                     _bound(raw["max"], column, where) if "max" in raw else None,
                     "present" in raw)


COLUMN_KINDS = ("code", "category", "number", "date")


def _party_criteria(raw: Any, party: str, columns: Mapping[str, Mapping[str, AttributeColumn]],
                    section: str) -> PartyCriteria:
    where = f"{section}.{party}"
    if party not in columns:
        raise _fail(f"{where}: no party {party!r} with attributes; parties: "
                    f"{sorted(columns)}")
    if not isinstance(raw, dict) or len(raw) != 1 or next(iter(raw)) not in ("all", "any"):
        raise _fail(f'{where}: write {{"all": [criteria]}} or {{"any": [criteria]}}')
    mode, items = next(iter(raw.items()))
    if not isinstance(items, list) or not items:
        raise _fail(f"{where}.{mode}: a non-empty list of criteria")
    return PartyCriteria(mode, tuple(_criterion(c, columns[party], f"{where}.{mode}[{i}]")
                                     for i, c in enumerate(items)))


def _end(raw: Any, columns: Mapping[str, Mapping[str, AttributeColumn]], where: str
         ) -> tuple[str, str]:
    if not isinstance(raw, dict) or set(raw) != {"party", "column"}:
        raise _fail(f"{where}: name a party and a date column")
    party, column = raw["party"], raw["column"]
    if party not in columns or column not in columns[party]:
        dates = sorted(c for c, d in columns.get(party, {}).items() if d.type == "date")
        hint = (f"; its date columns are {dates}" if dates else
                "; it has no date column (a `pprl deid` OUT_DIR holds study_date only with "
                "--dates full)" if party in columns else "")
        raise _fail(f"{where}: no column {column!r} of party {party!r}{hint}")
    if columns[party][column].type != "date":
        raise _fail(f"{where}: column {column!r} of party {party!r} is not a date")
    return party, column


def parse_definition(doc: Any, columns: Mapping[str, Mapping[str, AttributeColumn]]
                     ) -> Definition:
    """Check a definition against the parties' attribute columns (party -> name -> column).

    Raises:
        CohortDefinitionError: an unknown key, party or column, an operator that does not
            fit a column's type, a bad bound or window.
    """
    if not isinstance(doc, dict):
        raise _fail("a cohort definition is a JSON object")
    unknown = sorted(set(doc) - {"name", "require", "within", "exclude", "release",
                                 "as_of_year"})
    if unknown:
        raise _fail(f"unknown keys {unknown}")
    require_raw = doc.get("require")
    if not isinstance(require_raw, dict) or not require_raw:
        raise _fail("require: at least one party's criteria")
    require = {p: _party_criteria(c, p, columns, "require") for p, c in require_raw.items()}
    exclude_raw = doc.get("exclude", {})
    if not isinstance(exclude_raw, dict):
        raise _fail("exclude: parties' criteria")
    exclude = {p: _party_criteria(c, p, columns, "exclude") for p, c in exclude_raw.items()}
    within = []
    for index, raw in enumerate(doc.get("within", [])):
        where = f"within[{index}]"
        if not isinstance(raw, dict) or set(raw) != {"after", "then", "days"}:
            raise _fail(f"{where}: after, then and days")
        after = _end(raw["after"], columns, f"{where}.after")
        then = _end(raw["then"], columns, f"{where}.then")
        days = raw["days"]
        if not (isinstance(days, list) and len(days) == 2 and all(
                isinstance(d, int) and not isinstance(d, bool) for d in days)
                and days[0] <= days[1]):
            raise _fail(f"{where}.days: [low, high], whole days, low <= high")
        if after[0] not in require or then[0] not in require:
            raise _fail(f"{where}: both parties must be under require")
        within.append(Within(*after, *then, days[0], days[1]))
    release_raw = doc.get("release", {})
    if not isinstance(release_raw, dict):
        raise _fail("release: party -> columns")
    release: dict[str, tuple[str, ...]] = {}
    for party, names in release_raw.items():
        if party not in columns:
            raise _fail(f"release.{party}: no party {party!r} with attributes")
        if not isinstance(names, list) or not all(n in columns[party] for n in names):
            raise _fail(f"release.{party}: columns of the party, of {sorted(columns[party])}")
        release[party] = tuple(names)
    as_of = doc.get("as_of_year")
    if as_of is not None and (not isinstance(as_of, int) or not 1900 <= as_of <= 2200):
        raise _fail("as_of_year: the year ages are counted at")
    return Definition(str(doc.get("name", "")), require, tuple(within), exclude, release,
                      as_of)
