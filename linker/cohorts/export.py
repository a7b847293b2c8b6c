"""A cohort export: what a researcher downloads, keyed per request so that no two exports
can be joined without the data manager.

One entity table (the request's pseudonym of each entity, its demographics with the party
each came from, and which parties hold it) and one table per party with the released
columns of the entity's rows. Entity pseudonyms, UIDs (columns named ``*_uid``) and a
per-entity date offset are all derived from the service key and the request id: the same
person in two requests shares no value, and all dates of one entity move by the same number
of days, so intervals between imaging, EHR and claims events survive.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from tokenizer.keys import keyed_day_offset, keyed_uid

from .demographics import DIMENSIONS
from .evaluate import entity_of_records

__all__ = ["RequestKeys", "ENTITY_TABLE", "export_cohort", "relabel_parties", "relabel_tables"]

ENTITY_TABLE = "entities"


@dataclass(frozen=True)
class RequestKeys:
    """Everything keyed for one request, from the service key and the request id."""

    service_key: bytes
    request_id: str

    def _digest(self, purpose: bytes, value: str) -> bytes:
        message = b"\0".join([b"pprl request v1", purpose, self.request_id.encode(),
                              value.encode()])
        return hmac.new(self.service_key, message, hashlib.sha256).digest()

    def pseudonym(self, entity: str) -> str:
        return "per_" + base64.b32encode(self._digest(b"entity", entity)[:15]).decode().lower()

    def day_offset(self, entity: str) -> int:
        return keyed_day_offset(self._digest(b"days", entity))

    @property
    def uid_key(self) -> bytes:
        """What remaps UIDs for this request; the imaging site gets it in its relabel file,
        to give its DICOM files the UIDs of the export."""
        return self._digest(b"uid-key", "")

    def uid(self, original: str) -> str:
        return keyed_uid(self.uid_key, original)


def _party_table(table: pa.Table, columns: Sequence[str], records: Mapping[str, str],
                 keys: RequestKeys, types: Mapping[str, str]) -> pa.Table:
    keep = pc.is_in(table["record_id"], value_set=pa.array(list(records), pa.string()))
    rows = table.filter(keep)
    entities = [records[r] for r in rows["record_id"].to_pylist()]
    out = {"pseudonym": pa.array([keys.pseudonym(e) for e in entities], pa.string())}
    offsets = [timedelta(days=keys.day_offset(e)) for e in entities]
    for name in columns:
        values = rows[name]
        if types[name] == "date":
            out[name] = pa.array([None if d is None else d + o
                                  for d, o in zip(values.to_pylist(), offsets, strict=True)],
                                 pa.date32())
        elif name.endswith("_uid"):
            out[name] = pa.array([None if u is None else keys.uid(u)
                                  for u in values.to_pylist()], pa.string())
        else:
            out[name] = values
    return pa.table(out).sort_by([("pseudonym", "ascending")] + [
        (c, "ascending") for c in columns if types[c] != "number"])


def export_cohort(folder: Path, entities: Sequence[str], members: pa.Table,
                  attributes: Mapping[str, pa.Table], types: Mapping[str, Mapping[str, str]],
                  release: Mapping[str, Sequence[str]],
                  demographics: Mapping[str, Mapping[str, tuple[str, str | None]]],
                  keys: RequestKeys, file_format: str = "parquet") -> list[Path]:
    """Write the export's tables into ``folder`` (staged beside it and renamed whole); returns
    the files written."""
    staging = folder.with_name(f".{folder.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    wanted = set(entities)
    holders = {party: {r: e for r, e in entity_of_records(members, party).items()
                       if e in wanted} for party in attributes}
    ordered = sorted(entities, key=keys.pseudonym)
    entity_columns: dict[str, pa.Array] = {
        "pseudonym": pa.array([keys.pseudonym(e) for e in ordered], pa.string())}
    for dimension in DIMENSIONS:
        entity_columns[dimension] = pa.array([demographics[e][dimension][0] for e in ordered])
        entity_columns[f"{dimension}_from"] = pa.array(
            [demographics[e][dimension][1] for e in ordered], pa.string())
    for party, records in holders.items():
        present = set(records.values())
        entity_columns[f"in_{party}"] = pa.array([e in present for e in ordered])
    tables = {ENTITY_TABLE: pa.table(entity_columns)}
    for party, columns in release.items():
        tables[party] = _party_table(attributes[party], columns, holders[party], keys,
                                     types[party])
    written = []
    for name, table in tables.items():
        target = staging / f"{name}.{'csv' if file_format == 'csv' else 'parquet'}"
        if file_format == "csv":
            pacsv.write_csv(table, target)
        else:
            pq.write_table(table, target)
        written.append(folder / target.name)
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    return written


def relabel_parties(columns: Mapping[str, Iterable[str]]) -> list[str]:
    """The parties that get a relabel table: those whose attributes declare a ``*_uid``
    column, i.e. that hold objects (images) to be given the export's UIDs. No other party
    learns which of its records are in a cohort."""
    return sorted(party for party, names in columns.items()
                  if any(name.endswith("_uid") for name in names))


def relabel_tables(entities: Sequence[str], members: pa.Table, party: str,
                   keys: RequestKeys) -> pa.Table:
    """One party's relabel table: its record ids (site pseudonyms) of the cohort, each with
    the request's pseudonym and day offset."""
    wanted = set(entities)
    records = sorted((r, e) for r, e in entity_of_records(members, party).items()
                     if e in wanted)
    return pa.table({"record_id": pa.array([r for r, _ in records], pa.string()),
                     "pseudonym": pa.array([keys.pseudonym(e) for _, e in records]),
                     "day_offset": pa.array([keys.day_offset(e) for _, e in records],
                                            pa.int32())})
