"""Each entity's demographics, from whichever linked party holds them: imaging studies carry
race/ethnicity and age from the linked EHR record when the imaging attributes lack them.

Dimensions and the quasi-identifier columns they come from: ``sex`` (sex), ``age_band``
(birth_year, at the definition's ``as_of_year``), ``race_ethnicity`` (race_ethnicity),
``region`` (region). A value is taken from the first party, in the project's order, that
has one for one of the entity's records, and the party is kept beside it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pyarrow as pa

from .evaluate import entity_of_records

__all__ = ["DIMENSIONS", "UNKNOWN", "age_band", "entity_demographics"]

DIMENSIONS = ("sex", "age_band", "race_ethnicity", "region")
UNKNOWN = "unknown"
_SOURCES = {"sex": "sex", "age_band": "birth_year", "race_ethnicity": "race_ethnicity",
            "region": "region"}
_BAND_NAMES = {0: "0-17", 18: "18-34", 35: "35-49", 50: "50-64", 65: "65-79", 80: "80+"}


def age_band(birth_year: float | None, as_of_year: int) -> str:
    if birth_year is None:
        return UNKNOWN
    age = as_of_year - int(birth_year)
    if age < 0:
        return UNKNOWN
    return _BAND_NAMES[max(low for low in _BAND_NAMES if low <= age)]


def entity_demographics(entities: Sequence[str], members: pa.Table,
                        attributes: Mapping[str, pa.Table], as_of_year: int
                        ) -> dict[str, dict[str, tuple[str, str | None]]]:
    """entity -> dimension -> (value, party it came from; None when no party has it)."""
    wanted = set(entities)
    found: dict[str, dict[str, tuple[str, str | None]]] = {e: {} for e in entities}
    for party, table in attributes.items():
        entity_of = entity_of_records(members, party)
        row_entities = [entity_of.get(r) for r in table["record_id"].to_pylist()]
        for dimension, column in _SOURCES.items():
            if column not in table.column_names:
                continue
            for entity, value in zip(row_entities, table[column].to_pylist(), strict=True):
                if value is None or entity not in wanted or dimension in found[entity]:
                    continue
                shown = age_band(value, as_of_year) if dimension == "age_band" else str(value)
                if shown != UNKNOWN:
                    found[entity][dimension] = (shown, party)
    return {e: {d: found[e].get(d, (UNKNOWN, None)) for d in DIMENSIONS} for e in entities}
