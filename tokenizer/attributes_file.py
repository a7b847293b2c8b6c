"""The attributes file a provider releases beside its encodings: de-identified columns per
record, each declared with a type and a role, and never a direct identifier.

Parquet, format ``pprl-attributes/1``: a ``record_id`` column (the same site pseudonyms as
the encodings file; several rows per record allowed, e.g. one per study or diagnosis) and the
declared columns, whose declarations (name, type, role) are in the file metadata
``pprl.columns``. Types: ``code`` (a coded value such as an ICD-10 diagnosis or a modality),
``category`` (one of a few values: sex, race/ethnicity), ``number``, ``date`` (ISO
``YYYY-MM-DD``). Roles: ``quasi-identifier`` (sex, birth year, ZIP3, race/ethnicity, region:
what risk figures and count breakdowns use) and ``payload`` (what a cohort is about).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .encodings_check import EncodingsLimits, check_bounds
from .encodings_file import AtomicFile, check_folder_complete, tool_version
from .errors import InputError
from .identifier_rules import refuse_identifiers

__all__ = ["ATTRIBUTES_FORMAT", "ColumnType", "ColumnRole", "AttributeColumn",
           "AttributesFile", "write_attributes", "read_attributes", "check_attributes_upload"]

ATTRIBUTES_FORMAT = "pprl-attributes/1"
ColumnType = Literal["code", "category", "number", "date"]
ColumnRole = Literal["quasi-identifier", "payload"]
COLUMN_TYPES: tuple[str, ...] = ("code", "category", "number", "date")
COLUMN_ROLES: tuple[str, ...] = ("quasi-identifier", "payload")
_ARROW = {"code": pa.string(), "category": pa.string(), "number": pa.float64(),
          "date": pa.date32()}


@dataclass(frozen=True)
class AttributeColumn:
    name: str
    type: ColumnType
    role: ColumnRole


@dataclass(frozen=True)
class AttributesFile:
    """An attributes file in memory: the table (record_id first) and its declarations."""

    table: pa.Table
    columns: tuple[AttributeColumn, ...]
    provider: str | None

    def column(self, name: str) -> AttributeColumn:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(name)


def _declarations(name: str, raw: object) -> tuple[AttributeColumn, ...]:
    if not isinstance(raw, list):
        raise InputError(f"{name}: pprl.columns must list the column declarations")
    found = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict) or set(item) != {"name", "type", "role"}:
            raise InputError(f"{name}: pprl.columns[{index}] must hold name, type and role")
        if item["type"] not in COLUMN_TYPES or item["role"] not in COLUMN_ROLES:
            raise InputError(f"{name}: column {item['name']!r}: type must be one of "
                             f"{list(COLUMN_TYPES)} and role one of {list(COLUMN_ROLES)}")
        found.append(AttributeColumn(str(item["name"]), item["type"], item["role"]))
    return tuple(found)


def _conformed(name: str, table: pa.Table, columns: tuple[AttributeColumn, ...]) -> pa.Table:
    """The table with record_id then the declared columns, each in its type's Arrow type.

    Raises:
        InputError: a declared column is missing, of another type, or an undeclared one is
            present (nothing enters without a declaration).
    """
    declared = [c.name for c in columns]
    extra = sorted(set(table.column_names) - set(declared) - {"record_id"})
    missing = [c for c in ["record_id", *declared] if c not in table.column_names]
    if missing or extra:
        raise InputError(f"{name}: columns {missing} are missing and {extra} are not declared;"
                         f" an attributes file holds record_id and its declared columns only")
    arrays = {"record_id": table["record_id"]}
    for column in columns:
        values = table[column.name]
        try:
            arrays[column.name] = values.cast(_ARROW[column.type])
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
            raise InputError(f"{name}: column {column.name!r} is declared {column.type} but "
                             f"holds values of type {values.type} that are not") from e
    ids = arrays["record_id"]
    if not pa.types.is_string(ids.type) or ids.null_count or (
            len(ids) and pc.min(pc.utf8_length(ids)).as_py() == 0):
        raise InputError(f"{name}: record_id must be a non-empty string in every row")
    return pa.table(arrays)


def write_attributes(path: Path, table: pa.Table, columns: tuple[AttributeColumn, ...],
                     provider: str | None) -> None:
    """Check and write atomically (temporary file, then rename).

    Raises:
        InputError: a column is undeclared, mistyped, or looks like a direct identifier.
    """
    table = _conformed(str(path), table, columns)
    refuse_identifiers(str(path), table, columns)
    metadata = {"pprl.format": ATTRIBUTES_FORMAT,
                "pprl.columns": json.dumps([asdict(c) for c in columns]),
                "pprl.provider": provider or "", "pprl.tool_version": tool_version()}
    table = table.replace_schema_metadata({k.encode(): v.encode() for k, v in metadata.items()})
    target = AtomicFile(path)
    try:
        pq.write_table(table, target.temp)
        target.commit()
    except BaseException:
        target.discard()
        raise


def read_attributes(path: str | Path, name: str | None = None) -> AttributesFile:
    """Read and check an attributes file (the same checks as writing it).

    Raises:
        InputError: not an attributes file, a folder marked incomplete, or it fails a check.
    """
    path = Path(path)
    name = name or str(path)
    check_folder_complete(path)  # first: an interrupted first run has not written it yet
    if not path.is_file():
        raise InputError(f"{name}: no such file")
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as e:
        raise InputError(f"{name}: cannot be read as Parquet ({type(e).__name__})") from e
    metadata = {k.decode("utf-8", "replace"): v.decode("utf-8", "replace")
                for k, v in (table.schema.metadata or {}).items()}
    if metadata.get("pprl.format") != ATTRIBUTES_FORMAT:
        raise InputError(f"{name}: not a {ATTRIBUTES_FORMAT} attributes file; make it with "
                         f"`pprl attributes` (or `pprl deid`, which writes attributes.parquet)")
    try:
        columns = _declarations(name, json.loads(metadata.get("pprl.columns", "")))
    except json.JSONDecodeError as e:
        raise InputError(f"{name}: pprl.columns is not JSON") from e
    table = _conformed(name, table, columns)
    refuse_identifiers(name, table, columns)
    return AttributesFile(table, columns, metadata.get("pprl.provider") or None)


def check_attributes_upload(path: Path, name: str, limits: EncodingsLimits) -> AttributesFile:
    """An attributes file someone else made: its footer, row count and row groups are
    bounded before anything is decoded, then it is read and checked like any other.

    Raises:
        InputError: naming ``name``, the column and the rule.
    """
    check_bounds(path, name, limits)
    _check_decoded_text(path, name, limits.max_column_chunk_bytes)
    return read_attributes(path, name)


def _is_text(kind: pa.DataType) -> bool:
    """Strings or bytes, also as a dictionary (the type a writer may declare for them)."""
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind)
                or pa.types.is_binary(kind) or pa.types.is_large_binary(kind))


def _check_decoded_text(path: Path, name: str, most: int) -> None:
    """Refuse a text column that would decode to more than ``most`` bytes, counted one batch
    at a time on its dictionary (never expanded): a 46 KB file of one 100 KB code repeated
    20,000 times decoded to 2 GB, its column chunks' sizes counting the dictionary once."""
    try:
        text = [f.name for f in pq.read_schema(path) if _is_text(f.type)]
        parquet = pq.ParquetFile(path, read_dictionary=text)
    except (pa.ArrowException, OSError) as e:
        raise InputError(f"{name}: cannot be read as Parquet ({type(e).__name__})") from e
    decoded = dict.fromkeys(text, 0)
    try:
        for batch in parquet.iter_batches(batch_size=65536, columns=text):
            for column in text:
                values = batch.column(column)
                lengths = (pc.take(pc.binary_length(values.dictionary), values.indices)
                           if pa.types.is_dictionary(values.type) else pc.binary_length(values))
                decoded[column] += pc.sum(lengths).as_py() or 0
                if decoded[column] > most:
                    raise InputError(f"{name}: column {column} decodes to more than {most:,} "
                                     f"bytes, more than one upload may hold")
    except (pa.ArrowException, OSError) as e:
        raise InputError(f"{name}: cannot be read as Parquet ({type(e).__name__})") from e
