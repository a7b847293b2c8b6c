"""Read the released table a risk report assesses (CSV or Parquet), whole and typed.

Types matter: t-closeness measures distances between numbers but not between categories, and
pycanon, whose figures ours must equal, reads a CSV with pandas' type inference. So a CSV is
read with Arrow's inference (numbers, dates; empty, ``NA`` and ``null`` missing, as pandas
does), after detecting its delimiter as ``pprl tokenize`` does. Errors name the file, the row
and the column, never a value: the table may hold identifiers.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from tokenizer.encodings_file import AtomicFile
from tokenizer.errors import InputError
from tokenizer.readers import (
    CSV_SUFFIXES,
    PARQUET_SUFFIXES,
    TSV_SUFFIXES,
    CsvDialect,
    sniff_dialect,
)

from ..errors import DeidError

__all__ = ["RiskInputError", "read_dataset", "check_columns", "write_table"]


class RiskInputError(DeidError):
    """The dataset cannot be assessed as asked (unreadable, empty, a column missing)."""


def _parse_csv(path: Path, dialect: CsvDialect, threads: bool
               ) -> tuple[pa.Table, list[tuple[int | None, int, int]]]:
    """The table and the rows with the wrong number of fields (row number, fields, expected);
    Arrow numbers rows only when it reads on one thread."""
    bad_rows: list[tuple[int | None, int, int]] = []

    def on_invalid_row(row: pacsv.InvalidRow) -> str:
        bad_rows.append((None if row.number is None else row.number - 1 - dialect.skip_rows,
                         row.actual_columns, row.expected_columns))
        return "skip"

    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(skip_rows=dialect.skip_rows, use_threads=threads),
            parse_options=pacsv.ParseOptions(delimiter=dialect.delimiter,
                                             newlines_in_values=True,
                                             invalid_row_handler=on_invalid_row),
            convert_options=pacsv.ConvertOptions(strings_can_be_null=True))
    except (pa.ArrowInvalid, UnicodeDecodeError) as e:
        # Arrow's message may quote the data; say what is wrong without it.
        raise RiskInputError(f"{path}: cannot be read as UTF-8 CSV with a header row "
                             f"(delimiter {dialect.delimiter!r})") from e
    return table, bad_rows


def _read_csv(path: Path) -> pa.Table:
    try:
        dialect = sniff_dialect(path, "utf-8", "\t" if path.suffix.lower() in TSV_SUFFIXES
                                else None)
    except InputError as e:
        raise RiskInputError(str(e)) from e
    table, bad_rows = _parse_csv(path, dialect, threads=True)
    if bad_rows:
        _, bad_rows = _parse_csv(path, dialect, threads=False)  # again, for the row numbers
        row, actual, expected = bad_rows[0]
        raise RiskInputError(f"{path}: data row {row} has {actual} fields where the header has "
                             f"{expected} ({len(bad_rows)} such rows); every row must be "
                             f"assessed, so none is skipped")
    return table


def read_dataset(path: str | Path) -> pa.Table:
    """The whole table, typed: Parquet as stored, CSV/TSV with inferred types.

    Raises:
        RiskInputError: missing, unreadable, of an unknown kind, or without rows.
    """
    path = Path(path)
    if not path.is_file():
        raise RiskInputError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        try:
            table = pq.read_table(path)
        except (pa.ArrowInvalid, OSError) as e:
            raise RiskInputError(f"{path}: cannot be read as Parquet") from e
    elif suffix in CSV_SUFFIXES | TSV_SUFFIXES:
        if not path.stat().st_size:
            raise RiskInputError(f"{path} is empty: expected a header row, then one row per "
                                 f"record")
        table = _read_csv(path)
    else:
        raise RiskInputError(f"{path}: unknown file type {suffix!r}; use .csv, .tsv or "
                             f".parquet")
    if not table.num_rows:
        raise RiskInputError(f"{path} has no rows: there is nothing to assess")
    return table


def check_columns(path: str | Path, table: pa.Table, quasi_identifiers: Sequence[str],
                  sensitive: Sequence[str]) -> None:
    """Raises RiskInputError naming the file and the first column asked for that it lacks,
    or one named both a quasi-identifier and sensitive."""
    for role, names in (("quasi-identifier", quasi_identifiers), ("sensitive", sensitive)):
        for name in names:
            if name not in table.column_names:
                raise RiskInputError(f"{path}: no column {name!r} (--{role}); its columns are "
                                     f"{', '.join(table.column_names)}")
    both = sorted(set(quasi_identifiers) & set(sensitive))
    if both:
        raise RiskInputError(f"{path}: column {both[0]!r} is named both a quasi-identifier and "
                             f"sensitive; an attribute is one or the other")
    if not quasi_identifiers:
        raise RiskInputError("name at least one --quasi-identifier: the figures are about "
                             "the records that share their values")


def write_table(table: pa.Table, path: Path) -> None:
    """Write a transformed table as CSV (``.csv``) or Parquet (``.parquet``), beside its name
    and then renamed, so a failed run leaves no half-written release.

    Raises:
        RiskInputError: another suffix, or the file cannot be written.
    """
    suffix = path.suffix.lower()
    if suffix not in (*CSV_SUFFIXES, *PARQUET_SUFFIXES):
        raise RiskInputError(f"{path}: write the transformed table as .csv or .parquet")
    target = AtomicFile(path)
    try:
        if suffix in PARQUET_SUFFIXES:
            pq.write_table(table, target.temp)
        else:
            pacsv.write_csv(table, target.temp)
        target.commit()
    except OSError as e:
        target.discard()
        raise RiskInputError(f"{path}: cannot be written ({e.strerror or e})") from e
    except BaseException:
        target.discard()
        raise
