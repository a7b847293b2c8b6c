"""Reading OpenToken's input columns (or ours), writing its token file and metadata JSON."""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import logging
import platform
from collections.abc import Iterable, Iterator
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ..encodings_file import AtomicFile
from ..errors import InputError
from ..fhir import (
    BUNDLE_SUFFIXES,
    FHIR_COLUMNS,
    NDJSON_SUFFIXES,
    MalformedResource,
    read_patients,
)
from ..readers import PARQUET_SUFFIXES, CsvDialect, csv_error_reason, sniff_dialect
from .engine import RULE_IDS, Counts
from .rules import ATTRIBUTES

__all__ = ["read_people", "token_sources", "write_tokens", "write_token_rows", "read_token_rows",
           "write_metadata", "metadata_path", "OPENTOKEN_VERSION", "TOKEN_COLUMNS"]

log = logging.getLogger(__name__)

OPENTOKEN_VERSION = "1.12.5"
# Our `person` schema's columns, beside OpenToken's own names and aliases.
_OUR_COLUMNS = {"given_name": "FirstName", "surname": "LastName", "date_of_birth": "BirthDate",
                "sex": "Sex", "zip": "PostalCode", "ssn": "SocialSecurityNumber"}
_RECORD_ID = ("recordid", "id", "record_id")
TOKEN_COLUMNS = ("RuleId", "Token", "RecordId")
_WRITE_ROWS = 1 << 20
_EMPTY, _NEWLINE, _COMMA = (pa.scalar(t, pa.large_string()) for t in ("", "\n", ","))


def _read_fhir(path: Path) -> pa.Table:
    """FHIR R4 Patient resources, mapped as `pprl tokenize` maps them (``tokenizer.fhir``:
    official name, birthDate, gender, home address, logical id as the record id). OpenToken
    reads no FHIR; a resource that cannot be read is left out with a warning naming its line
    or entry and why (never a value), and a file of nothing else fails."""
    _, resources = read_patients(path, date.today())
    rows: list[dict[str, str]] = []
    skipped: list[tuple[int, MalformedResource]] = []
    for number, read in resources:
        if isinstance(read, MalformedResource):
            skipped.append((number, read))
        else:
            rows.append(read)
    where = "line" if path.suffix.lower() in NDJSON_SUFFIXES else "entry"
    if skipped:
        number, reason = skipped[0]
        message = (f"{path}: {len(skipped):,} resource(s) left out, the first at {where} "
                   f"{number}: it {reason}")
        if not rows:
            raise InputError(f"{message}; no Patient resource could be read")
        log.warning("%s", message)
    return pa.table({c: pa.array([r.get(c, "") for r in rows], pa.string())
                     for c in FHIR_COLUMNS})


def _read_table(path: Path, encoding: str = "utf-8") -> pa.Table:
    if path.suffix.lower() in (*NDJSON_SUFFIXES, *BUNDLE_SUFFIXES):
        return _read_fhir(path)
    try:
        if path.suffix.lower() in PARQUET_SUFFIXES:
            return pq.read_table(path)
        return _read_csv(path, encoding)
    except FileNotFoundError as e:
        raise InputError(f"{path}: no such file") from e
    except (pa.ArrowInvalid, UnicodeDecodeError) as e:
        if isinstance(e, pa.ArrowInvalid) and "utf8" not in str(e).lower().replace("-", ""):
            raise InputError(f"{path}: cannot be read as CSV or Parquet: "
                             f"{csv_error_reason(e)}") from e
        if codecs.lookup(encoding).name != "utf-8":  # the encoding was given: not a hint
            raise InputError(f"{path}: holds bytes that are not {encoding} text; check that "
                             f"the whole file is {encoding} (--encoding)") from e
        raise InputError(f"{path}: cannot be read as CSV ({encoding}, header row) or Parquet; "
                         f"text in another encoding needs --encoding (e.g. cp1252)") from e
    except (OSError, LookupError) as e:
        raise InputError(f"{path}: cannot be read as CSV ({encoding}, header row) or "
                         f"Parquet: {e}") from e


def _read_csv(path: Path, encoding: str) -> pa.Table:
    """A CSV as string columns, its delimiter (`,` `;` tab `|`, Excel's sep= line) found as
    `pprl tokenize` finds it.

    Raises:
        InputError: a row has the wrong number of fields. OpenToken's output has no place for
            a row left out, so it is not skipped as `pprl tokenize` skips it.
    """
    dialect = sniff_dialect(path, encoding, None)
    with path.open(encoding=encoding, newline="") as handle:   # text mode: UTF-16 too
        for _ in range(dialect.skip_rows):
            handle.readline()
        first = handle.readline().removeprefix("\ufeff")
    header = next(csv.reader([first], delimiter=dialect.delimiter), [])
    ragged: list[pacsv.InvalidRow] = []

    def on_invalid_row(row: pacsv.InvalidRow) -> str:
        ragged.append(row)
        return "skip"

    table = pacsv.read_csv(
        path, read_options=pacsv.ReadOptions(skip_rows=dialect.skip_rows, encoding=encoding),
        parse_options=pacsv.ParseOptions(delimiter=dialect.delimiter,
                                         invalid_row_handler=on_invalid_row),
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(header, pa.string()), strings_can_be_null=False,
            quoted_strings_can_be_null=False))
    if ragged:
        raise _ragged_error(path, encoding, dialect, len(ragged))
    return table


def _ragged_error(path: Path, encoding: str, dialect: CsvDialect, count: int) -> InputError:
    """The error naming the first row with the wrong number of fields, found by a serial
    read (the parallel one numbers no rows); only rare failing runs pay for it."""
    first: list[pacsv.InvalidRow] = []

    def on_invalid_row(row: pacsv.InvalidRow) -> str:
        first.append(row)
        return "skip"

    reader = pacsv.open_csv(
        path, read_options=pacsv.ReadOptions(use_threads=False, skip_rows=dialect.skip_rows,
                                             encoding=encoding),
        parse_options=pacsv.ParseOptions(delimiter=dialect.delimiter,
                                         invalid_row_handler=on_invalid_row),
        convert_options=pacsv.ConvertOptions(include_columns=[]))
    for _ in reader:
        if first:
            break
    row = first[0]
    number = "?" if row.number is None else row.number - 1 - dialect.skip_rows
    return InputError(
        f"{path}: {count:,} row(s) with the wrong number of fields; the first is data row "
        f"{number}, with {row.actual_columns} fields where the header has "
        f"{row.expected_columns}; OpenToken's output cannot leave a row out, so fix or remove "
        f"it (quote a value that holds the delimiter or a line break)")


def token_sources(headers: Iterable[str]) -> dict[str, str]:
    """OpenToken attribute -> the header it is read from: the first header matching one of
    OpenToken's names and aliases case-insensitively, as OpenToken does, or one of our
    ``person`` columns. `pprl tokens` and `pprl tokenize --with-tokens` share it, so both
    give a record the same tokens."""
    wanted = {alias.lower(): name for name, (_, aliases) in ATTRIBUTES.items()
              for alias in aliases} | _OUR_COLUMNS
    sources: dict[str, str] = {}
    for header in headers:
        attribute = wanted.get(header.lower())
        if attribute is not None and attribute not in sources:
            sources[attribute] = header
    return sources


def read_people(path: str | Path, encoding: str = "utf-8"
                ) -> tuple[dict[str, pa.Array], pa.Array | None, int]:
    """Raw string columns by OpenToken attribute name (:func:`token_sources`), the record
    ids, and the row count. Other columns are ignored; a missing attribute blanks the rules
    that need it, as in OpenToken. ``encoding``: a CSV's text encoding.
    """
    path = Path(path)
    table = _read_table(path, encoding)
    id_header = next((h for h in table.column_names if h.lower() in _RECORD_ID), None)
    sources = token_sources(table.column_names)
    columns: dict[str, pa.Array] = {}
    record_ids = None
    for header in table.column_names:
        if header != id_header and header not in sources.values():
            continue
        column = table.column(header).combine_chunks()
        if not pa.types.is_string(column.type) and not pa.types.is_large_string(column.type):
            try:
                column = column.cast(pa.string())
            except pa.ArrowInvalid as e:
                raise InputError(f"{path}: column {header} cannot be read as text") from e
        if header == id_header:
            record_ids = column
        else:
            columns[next(a for a, h in sources.items() if h == header)] = column
    return columns, record_ids, table.num_rows


def write_tokens(path: str | Path,
                 batches: Iterable[tuple[pa.Array, dict[str, pa.Array]]]) -> None:
    """OpenToken's token file: ``RuleId,Token,RecordId``, rules T1-T5 per record in order,
    from batches of (record ids, tokens by rule), each written as it comes. For CSV, each
    record's five lines are one string joined in Arrow (no reordering pass); our tokens
    (base64 or the blank) never need quoting."""
    if Path(path).suffix.lower() == ".parquet":
        taken = list(batches)
        record_ids = pa.concat_arrays([ids.cast(pa.string()) for ids, _ in taken]
                                      or [pa.array([], pa.string())])
        count, rules = len(record_ids), len(RULE_IDS)
        by_rule = [pa.concat_arrays([tokens[rule].cast(pa.large_string()) for _, tokens in taken]
                                    or [pa.array([], pa.large_string())]) for rule in RULE_IDS]
        order = (np.arange(rules)[None, :] * count + np.arange(count)[:, None]).ravel()
        write_token_rows(path, pa.array(np.tile(np.array(RULE_IDS), count), pa.string()),
                         pa.concat_arrays(by_rule).take(pa.array(order)),
                         record_ids.take(pa.array(np.repeat(np.arange(count), rules))))
        return
    block = _WRITE_ROWS // len(RULE_IDS)

    def lines() -> Iterator[pa.Array]:
        for record_ids, tokens in batches:
            for start in range(0, len(record_ids), block):
                size = min(block, len(record_ids) - start)
                ids = _csv_field(record_ids.slice(start, size))
                fields: list[pa.Array | pa.Scalar] = []
                for rule in RULE_IDS:
                    fields += [pa.scalar(rule + ",", pa.large_string()),
                               tokens[rule].slice(start, size).cast(pa.large_string()),
                               _COMMA, ids, _NEWLINE]
                yield pc.binary_join_element_wise(*fields, _EMPTY)

    _write_csv(path, lines())


def _csv_quote(value: str) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow([value])
    return buffer.getvalue()[:-1]


def _csv_field(column: pa.Array) -> pa.Array:
    """A column as Python's csv writer (minimal quoting) writes its fields: the few values
    with a delimiter, quote or line break go through the csv module itself."""
    column = column.cast(pa.large_string()).fill_null("")
    special = pc.match_substring_regex(column, '[,"\r\n]')
    if special.true_count == 0:
        return column
    quoted = [_csv_quote(value) for value in column.filter(special).to_pylist()]
    return pc.replace_with_mask(column, special, pa.array(quoted, pa.large_string()))


def write_token_rows(path: str | Path, rule_ids: pa.Array, tokens: pa.Array,
                     record_ids: pa.Array) -> None:
    """Token rows as given: CSV (LF line ends, minimal quoting, as OpenToken's writer) unless
    the name ends in .parquet. Nothing appears at ``path`` unless the whole file was written."""
    if Path(path).suffix.lower() == ".parquet":
        target = AtomicFile(Path(path))
        try:
            pq.write_table(pa.table({"RuleId": rule_ids.cast(pa.string()),
                                     "Token": tokens.cast(pa.string()),
                                     "RecordId": record_ids.cast(pa.string())}), target.temp)
            target.commit()
        except BaseException:
            target.discard()
            raise
        return

    def lines() -> Iterator[pa.Array]:
        for start in range(0, len(tokens), _WRITE_ROWS):
            fields = [_csv_field(column.slice(start, _WRITE_ROWS))
                      for column in (rule_ids, tokens, record_ids)]
            fields[2] = pc.binary_join_element_wise(fields[2], _EMPTY, _NEWLINE)
            yield pc.binary_join_element_wise(*fields, _COMMA)

    _write_csv(path, lines())


def _write_csv(path: str | Path, blocks: Iterable[pa.Array]) -> None:
    """The header, then each block's lines (their text is contiguous in the Arrow buffer),
    atomically."""
    target = AtomicFile(Path(path))
    try:
        with target.temp.open("wb") as handle:
            handle.write((",".join(TOKEN_COLUMNS) + "\n").encode())
            for lines in blocks:
                offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64)
                first, last = offsets[lines.offset], offsets[lines.offset + len(lines)]
                handle.write(memoryview(lines.buffers()[2])[first:last])
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
