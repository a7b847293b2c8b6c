"""Reading OpenToken's input columns (or ours), writing its token file and metadata JSON."""

from __future__ import annotations

import csv
import hashlib
import json
import platform
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ..encodings_file import AtomicFile
from ..errors import InputError
from .engine import RULE_IDS, Counts
from .rules import ATTRIBUTES

__all__ = ["read_people", "write_tokens", "write_token_rows", "read_token_rows",
           "write_metadata", "metadata_path", "OPENTOKEN_VERSION", "TOKEN_COLUMNS"]

OPENTOKEN_VERSION = "1.12.5"
# Our `person` schema's columns, beside OpenToken's own names and aliases.
_OUR_COLUMNS = {"given_name": "FirstName", "surname": "LastName", "date_of_birth": "BirthDate",
                "sex": "Sex", "zip": "PostalCode", "ssn": "SocialSecurityNumber"}
_RECORD_ID = ("recordid", "id", "record_id")
TOKEN_COLUMNS = ("RuleId", "Token", "RecordId")


def _read_table(path: Path) -> pa.Table:
    try:
        if path.suffix.lower() == ".parquet":
            return pq.read_table(path)
        with path.open("rb") as handle:
            header = next(csv.reader([handle.readline().decode("utf-8-sig")]), [])
        return pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(header, pa.string()), strings_can_be_null=False,
            quoted_strings_can_be_null=False))
    except FileNotFoundError as e:
        raise InputError(f"{path}: no such file") from e
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot be read as CSV (UTF-8, header row) or Parquet") from e


def read_people(path: str | Path) -> tuple[dict[str, pa.Array], pa.Array | None, int]:
    """Raw string columns by OpenToken attribute name, the record ids, and the row count.

    Headers match OpenToken's names and aliases case-insensitively, as OpenToken does, or
    our ``person`` columns; other columns are ignored. A missing attribute blanks the rules
    that need it, as in OpenToken.
    """
    path = Path(path)
    table = _read_table(path)
    wanted = {alias.lower(): name for name, (_, aliases) in ATTRIBUTES.items()
              for alias in aliases} | _OUR_COLUMNS
    columns: dict[str, pa.Array] = {}
    record_ids = None
    for header in table.column_names:
        column = table.column(header).combine_chunks()
        if not pa.types.is_string(column.type) and not pa.types.is_large_string(column.type):
            try:
                column = column.cast(pa.string())
            except pa.ArrowInvalid as e:
                raise InputError(f"{path}: column {header} cannot be read as text") from e
        folded = header.lower()
        if folded in _RECORD_ID and record_ids is None:
            record_ids = column
        elif folded in wanted and wanted[folded] not in columns:
            columns[wanted[folded]] = column
    return columns, record_ids, table.num_rows


def write_tokens(path: str | Path, record_ids: list[str], tokens: dict[str, list[str]]) -> None:
    """OpenToken's token file: ``RuleId,Token,RecordId``, rules T1-T5 per record in order."""
    write_token_rows(path, [rule for _ in record_ids for rule in RULE_IDS],
                     [tokens[rule][i] for i in range(len(record_ids)) for rule in RULE_IDS],
                     [rid for rid in record_ids for _ in RULE_IDS])


def write_token_rows(path: str | Path, rule_ids: list[str], tokens: list[str],
                     record_ids: list[str]) -> None:
    """Token rows as given: CSV (LF line ends, minimal quoting, as OpenToken's writer) unless
    the name ends in .parquet. Nothing appears at ``path`` unless the whole file was written."""
    target = AtomicFile(Path(path))
    try:
        if target.target.suffix.lower() == ".parquet":
            pq.write_table(pa.table({"RuleId": pa.array(rule_ids, pa.string()),
                                     "Token": pa.array(tokens, pa.string()),
                                     "RecordId": pa.array(record_ids, pa.string())}),
                           target.temp)
        else:
            with target.temp.open("w", encoding="utf-8", newline="") as handle:
                writer = csv.writer(handle, lineterminator="\n")
                writer.writerow(TOKEN_COLUMNS)
                writer.writerows(zip(rule_ids, tokens, record_ids, strict=True))
        target.commit()
    except BaseException:
        target.discard()
        raise


def read_token_rows(path: str | Path) -> tuple[list[str], list[str], list[str]]:
    """RuleId, Token and RecordId columns of an OpenToken token file (CSV or Parquet); the
    three column names are required exactly, as OpenToken's reader requires them; a null
    (Parquet) reads as empty, as in CSV."""
    path = Path(path)
    table = _read_table(path)
    missing = [name for name in TOKEN_COLUMNS if name not in table.column_names]
    if missing:
        raise InputError(f"{path}: no column {', '.join(missing)} (an OpenToken token file "
                         f"has RuleId, Token, RecordId)")
    columns = []
    for name in TOKEN_COLUMNS:
        try:
            columns.append(table.column(name).cast(pa.string()).fill_null("").to_pylist())
        except pa.ArrowInvalid as e:
            raise InputError(f"{path}: column {name} cannot be read as text") from e
    return columns[0], columns[1], columns[2]


def metadata_path(output: str | Path) -> Path:
    """OpenToken's name for the metadata file: the output's stem + ``.metadata.json``."""
    output = Path(output)
    return output.with_name(output.stem + ".metadata.json")


def write_metadata(output: str | Path, counts: Counts, hashing_secret: bytes,
                   encryption_key: bytes | None = None) -> Path:
    """The metadata JSON OpenToken writes beside its output, keys in its order; the secrets
    appear only as SHA-256 hex digests."""
    meta: dict[str, object] = {
        "PythonVersion": platform.python_version(),
        "Platform": "Python",
        "OpenTokenVersion": OPENTOKEN_VERSION,
        "HashingSecretHash": hashlib.sha256(hashing_secret).hexdigest(),
    }
    if encryption_key is not None:
        meta["EncryptionSecretHash"] = hashlib.sha256(encryption_key).hexdigest()
    meta |= {"TotalRows": counts.rows,
             "TotalRowsWithInvalidAttributes": sum(counts.invalid.values()),
             "InvalidAttributesByType": dict(counts.invalid),
             "BlankTokensByRule": dict(counts.blank)}
    path = metadata_path(output)
    target = AtomicFile(path)
    try:
        target.temp.write_text(json.dumps(meta, indent=2, ensure_ascii=False), encoding="utf-8")
        target.commit()
    except BaseException:
        target.discard()
        raise
    return path
