"""Building a provider's attributes file from its extract with a small column spec
(``pprl attributes``).

A spec lists the columns to release, each with its type and role and where it comes from::

    {"columns": [
      {"name": "sex", "type": "category", "role": "quasi-identifier", "derive": "sex"},
      {"name": "birth_year", "from": "date_of_birth", "derive": "year",
       "type": "number", "role": "quasi-identifier"},
      {"name": "zip3", "from": "zip", "derive": "zip3", "type": "category",
       "role": "quasi-identifier"},
      {"name": "region", "from": "state", "derive": "region", "type": "category",
       "role": "quasi-identifier"},
      {"name": "diagnosis", "type": "code", "role": "payload"},
      {"name": "encounter_date", "type": "date", "role": "payload"}]}

``from`` defaults to the name. ``derive`` turns an identifying source into a releasable
value: ``year`` (of a date), ``zip3`` (the first three digits of a ZIP), ``region`` (the US
Census region of a state), ``sex`` (m/f from the usual codes, as the normaliser reads them).
Dates are read in the forms the normaliser reads and written as ISO dates. A value that
cannot be read is refused naming its row and column, never the value.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .attributes_file import COLUMN_ROLES, COLUMN_TYPES, AttributeColumn, write_attributes
from .errors import InputError
from .normalize import DateOrder, parse_date
from .normalize.kinds import KindContext, normalize_kind
from .readers import open_records
from .us_regions import region_of_state
from .values import ValueRejected

__all__ = ["AttributeSpec", "load_attribute_spec", "build_attributes"]

_DERIVATIONS = ("year", "zip3", "region", "sex")


class AttributeSpec:
    """A checked spec: the declared columns and, for each, its source column and derivation."""

    def __init__(self, columns: list[tuple[AttributeColumn, str, str | None]]) -> None:
        self.columns = columns

    @property
    def sources(self) -> list[str]:
        return list(dict.fromkeys(source for _, source, _ in self.columns))


def load_attribute_spec(path: Path) -> AttributeSpec:
    """Read and check a spec file.

    Raises:
        InputError: naming the entry and what is wrong with it.
    """
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: cannot be read as a JSON attribute spec ({e})") from e
    entries = doc.get("columns") if isinstance(doc, dict) else None
    if not isinstance(entries, list) or not entries:
        raise InputError(f'{path}: expected {{"columns": [...]}} with at least one column')
    columns = []
    for index, entry in enumerate(entries):
        where = f"{path}: columns[{index}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise InputError(f"{where} needs a name")
        unknown = sorted(set(entry) - {"name", "from", "derive", "type", "role"})
        if unknown:
            raise InputError(f"{where} ({entry['name']}): unknown keys {unknown}")
        if entry.get("type") not in COLUMN_TYPES or entry.get("role") not in COLUMN_ROLES:
            raise InputError(f"{where} ({entry['name']}): type must be one of "
                             f"{list(COLUMN_TYPES)} and role one of {list(COLUMN_ROLES)}")
        derive = entry.get("derive")
        if derive is not None and derive not in _DERIVATIONS:
            raise InputError(f"{where} ({entry['name']}): derive must be one of "
                             f"{list(_DERIVATIONS)}")
        columns.append((AttributeColumn(entry["name"], entry["type"], entry["role"]),
                        str(entry.get("from", entry["name"])), derive))
    names = [c.name for c, _, _ in columns]
    if len(set(names)) != len(names) or "record_id" in names:
        raise InputError(f"{path}: column names must be unique and not record_id")
    return AttributeSpec(columns)


def _per_value(values: list[str | None], convert: Callable[[str], object], rows: list[int],
               source: str, column: str) -> list[object]:
    out: list[object] = []
    for row, value in zip(rows, values, strict=True):
        if value is None or not value.strip():
            out.append(None)
            continue
        try:
            out.append(convert(value))
        except (ValueRejected, ValueError) as e:
            reason = e.reason if isinstance(e, ValueRejected) else "cannot be read"
            raise InputError(f"{source}: row {row}, column {column}: {reason}") from e
    return out


def _column(values: pa.Array, rows: list[int], column: AttributeColumn, derive: str | None,
            source: str, date_order: DateOrder | None) -> pa.Array:
    texts = values.to_pylist()
    if derive == "sex":
        normalised, bad = normalize_kind("sex", values, KindContext(None, "%Y-%m-%d"))
        if bad:
            row = rows[min(bad)]
            raise InputError(f"{source}: row {row}, column {column.name}: {bad[min(bad)]}")
        return pa.array([v or None for v in normalised.to_pylist()], pa.string())
    if derive == "year":
        years = _per_value(texts, lambda v: parse_date(v, date_order).year, rows, source,
                           column.name)
        return pa.array(years, pa.float64() if column.type == "number" else pa.string())
    if derive == "zip3":
        def zip3(value: str) -> str:
            digits = value.strip()[:5].zfill(5)
            if not digits.isdigit():
                raise ValueRejected("is not a ZIP code")
            return digits[:3]
        return pa.array(_per_value(texts, zip3, rows, source, column.name), pa.string())
    if derive == "region":
        return pa.array(_per_value(texts, region_of_state, rows, source, column.name),
                        pa.string())
    if column.type == "date":
        dates = _per_value(texts, lambda v: parse_date(v, date_order), rows, source,
                           column.name)
        return pa.array(dates, pa.date32())
    if column.type == "number":
        return pa.array(_per_value(texts, float, rows, source, column.name), pa.float64())
    return pa.array([v if v is None or v.strip() else None for v in texts], pa.string())


def _check_ids(ids: pa.Array, rows: list[int], id_column: str, input_path: Path) -> None:
    """Every row needs a record id: name the first without one (input row and column, where
    the attributes file's own check could only name the output)."""
    blank = pc.fill_null(pc.equal(ids.cast(pa.string()), ""), True)  # as pprl tokenize
    if pc.any(blank).as_py():
        first = int(np.flatnonzero(blank.to_numpy(zero_copy_only=False))[0])
        raise InputError(f"{input_path}: row {rows[first]}, column {id_column}: no record "
                         f"id; every row needs one")


def build_attributes(input_path: Path, spec: AttributeSpec, output: Path, *,
                     id_column: str, provider: str | None, encoding: str = "utf-8",
                     delimiter: str | None = None, date_order: DateOrder | None = None
                     ) -> int:
    """Write the attributes file of ``input_path``; returns the rows written.

    Raises:
        InputError: a source column is missing, a value cannot be read (row and column
            named), or a column looks like a direct identifier.
    """
    reader = open_records(input_path, [id_column, *spec.sources], encoding=encoding,
                          delimiter=delimiter)
    pieces: list[pa.Table] = []
    for chunk in reader:
        if chunk.malformed:
            bad = chunk.malformed[0]
            raise InputError(f"{input_path}: row {bad.row} {bad.reason}")
        rows = chunk.rows.tolist()
        _check_ids(chunk.columns[id_column], rows, id_column, input_path)
        arrays = {"record_id": chunk.columns[id_column]}
        for column, source, derive in spec.columns:
            arrays[column.name] = _column(chunk.columns[source], rows, column, derive,
                                          str(input_path), date_order)
        pieces.append(pa.table(arrays))
    names = ["record_id", *(c.name for c, _, _ in spec.columns)]
    table = (pa.concat_tables(pieces) if pieces else pa.table(
        {n: pa.array([], pa.string()) for n in names}))
    write_attributes(output, table, tuple(c for c, _, _ in spec.columns), provider)
    return table.num_rows
