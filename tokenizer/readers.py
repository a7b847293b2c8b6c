"""Read identifier tables (CSV or Parquet) in chunks of string columns.

Values are kept exactly as written (no whitespace stripping, no type inference, empty stays
empty), because the CLK depends on every character, as it does in clkhash. Each record carries
its data-row number (1 = first row after the header) so that rejects can be found in the file.
Rows that cannot be parsed (wrong number of fields, bytes that are not valid text) are
reported, not fatal.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from .errors import InputError

__all__ = ["RecordChunk", "MalformedRow", "RecordReader", "open_records"]

CSV_SUFFIXES = {".csv", ".txt"}
TSV_SUFFIXES = {".tsv", ".tab"}
PARQUET_SUFFIXES = {".parquet", ".pq"}
_CSV_BLOCK_BYTES = 1 << 20


@dataclass(frozen=True)
class MalformedRow:
    """A row that could not be split into the header's columns or decoded as text."""

    row: int
    reason: str
    text: str = ""


@dataclass
class RecordChunk:
    """Up to ``chunk_size`` records as string columns.

    Attributes:
        rows: data-row number of each record (int64, 1-based, header not counted).
        columns: the requested columns as string arrays of equal length.
        malformed: rows in this stretch of the file that could not be parsed.
    """

    rows: np.ndarray
    columns: dict[str, pa.Array]
    malformed: list[MalformedRow] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows)


class RecordReader:
    """Iterates over RecordChunks of one file; knows its columns and, for Parquet, its size."""

    def __init__(self, path: Path, columns: list[str], total_rows: int | None,
                 chunks: Iterator[RecordChunk]) -> None:
        self.path = path
        self.columns = columns
        self.total_rows = total_rows
        self._chunks = chunks

    def __iter__(self) -> Iterator[RecordChunk]:
        return self._chunks


def _check_columns(path: Path, available: Sequence[str], wanted: Sequence[str]) -> None:
    duplicated = sorted({c for c in available if list(available).count(c) > 1} & set(wanted))
    if duplicated:
        raise InputError(f"{path}: column(s) {duplicated} appear more than once in the header")
    missing = [c for c in wanted if c not in available]
    if missing:
        raise InputError(
            f"{path}: missing column(s) {missing} that the schema (or --id-column) needs; "
            f"the file has {list(available)}")


def _as_strings(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_string(column.type):
        return column
    if pa.types.is_large_string(column.type) or pa.types.is_string_view(column.type):
        return column.cast(pa.string())
    return pc.cast(column, pa.string())


def _rechunk(pieces: Iterator[tuple[np.ndarray, dict[str, pa.Array], list[MalformedRow]]],
             chunk_size: int) -> Iterator[RecordChunk]:
    """Regroup arbitrary-sized pieces into chunks of exactly ``chunk_size`` (last may be less)."""
    rows: list[np.ndarray] = []
    cols: list[dict[str, pa.Array]] = []
    malformed: list[MalformedRow] = []
    held = 0
    for piece_rows, piece_cols, piece_bad in pieces:
        malformed.extend(piece_bad)
        offset = 0
        while offset < len(piece_rows):
            take = min(chunk_size - held, len(piece_rows) - offset)
            rows.append(piece_rows[offset:offset + take])
            cols.append({k: v.slice(offset, take) for k, v in piece_cols.items()})
            held += take
            offset += take
            if held == chunk_size:
                yield _join(rows, cols, malformed)
                rows, cols, malformed, held = [], [], [], 0
    if held or malformed:
        yield _join(rows, cols, malformed)


def _join(rows: list[np.ndarray], cols: list[dict[str, pa.Array]],
          malformed: list[MalformedRow]) -> RecordChunk:
    if not cols:
        return RecordChunk(np.zeros(0, dtype=np.int64), {}, malformed)
    names = cols[0].keys()
    joined = {n: pa.concat_arrays([c[n] for c in cols]) for n in names}
    return RecordChunk(np.concatenate(rows), joined, malformed)


def _valid_utf8(array: pa.Array) -> bool:
    try:
        array.view(pa.string()).validate(full=True)
        return True
    except pa.ArrowInvalid:
        return False


def _decode_binary_columns(
    path: Path, rows: np.ndarray, columns: dict[str, pa.Array]
) -> tuple[np.ndarray, dict[str, pa.Array], list[MalformedRow]]:
    """Turn binary columns into strings; rows with bytes that are not UTF-8 become malformed."""
    bad = np.zeros(len(rows), dtype=bool)
    bad_fields: dict[int, list[str]] = {}
    for name, array in columns.items():
        if _valid_utf8(array):
            continue
        for i, value in enumerate(array.to_pylist()):
            try:
                value.decode("utf-8")
            except UnicodeDecodeError:
                bad[i] = True
                bad_fields.setdefault(i, []).append(name)
    if not bad.any():
        return rows, {n: a.view(pa.string()) for n, a in columns.items()}, []
    keep = pa.array(~bad)
    malformed = [
        MalformedRow(int(rows[i]), f"field(s) {fields} are not valid UTF-8 text; "
                     f"give the file's encoding with --encoding")
        for i, fields in sorted(bad_fields.items())
    ]
    kept = {n: a.filter(keep).view(pa.string()) for n, a in columns.items()}
    return rows[~bad], kept, malformed


def _open_csv(path: Path, wanted: list[str], chunk_size: int, delimiter: str,
              encoding: str) -> RecordReader:
    with path.open("rb") as probe:
        if not probe.read(1):
            raise InputError(f"{path} is empty: expected a header row, then one row per record")
    header = _csv_header(path, delimiter, encoding)
    _check_columns(path, header, wanted)
    skipped: list[tuple[int, str, str]] = []

    def on_invalid_row(row: pacsv.InvalidRow) -> str:
        number = -1 if row.number is None else row.number - 1
        skipped.append((number, f"has {row.actual_columns} fields where the header has "
                                f"{row.expected_columns}", row.text))
        return "skip"

    def open_reader(column_type: pa.DataType) -> pacsv.CSVStreamingReader:
        return pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(use_threads=False, block_size=_CSV_BLOCK_BYTES,
                                           encoding=encoding),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True,
                                             invalid_row_handler=on_invalid_row),
            convert_options=pacsv.ConvertOptions(
                column_types={c: column_type for c in wanted}, include_columns=wanted,
                strings_can_be_null=False, quoted_strings_can_be_null=False),
        )

    def batches(reader: pacsv.CSVStreamingReader, placed: int, resume_after: int
                ) -> Iterator[tuple[np.ndarray, dict[str, pa.Array], list[MalformedRow]]]:
        """Pieces with data-row numbers; rows numbered up to ``resume_after`` were already
        delivered by an earlier pass and are dropped."""
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            skips = sorted(skipped)
            skipped.clear()
            span = batch.num_rows + len(skips)
            numbers = np.arange(placed + 1, placed + 1 + span, dtype=np.int64)
            rows = numbers[~np.isin(numbers, [n for n, _, _ in skips])]
            placed += span
            fresh = rows > resume_after
            columns = {c: batch.column(c) for c in wanted}
            if not fresh.all():
                keep = pa.array(fresh)
                rows, columns = rows[fresh], {c: a.filter(keep) for c, a in columns.items()}
            if any(pa.types.is_binary(a.type) for a in columns.values()):
                rows, columns, bad_text = _decode_binary_columns(path, rows, columns)
            else:
                bad_text = []
            bad = [MalformedRow(n, reason, text) for n, reason, text in skips
                   if n > resume_after]
            yield rows, columns, sorted(bad + bad_text, key=lambda m: m.row)
        if skipped:
            yield (np.zeros(0, dtype=np.int64), {c: pa.array([], pa.string()) for c in wanted},
                   [MalformedRow(n, reason, text) for n, reason, text in sorted(skipped)
                    if n > resume_after])

    def pieces() -> Iterator[tuple[np.ndarray, dict[str, pa.Array], list[MalformedRow]]]:
        # Text columns first: Arrow checks UTF-8 as it parses, which is fastest. Bytes that
        # are not UTF-8 stop that pass; the file is then read again as bytes from the start,
        # skipping what was delivered, so that only the offending rows are rejected.
        delivered = 0
        try:
            text_reader = open_reader(pa.string())
            for piece in batches(text_reader, 0, 0):
                delivered = max([delivered, *piece[0][-1:].tolist(),
                                 *(m.row for m in piece[2])])
                yield piece
            return
        except pa.ArrowInvalid as e:
            if "utf8" not in str(e).lower().replace("-", ""):
                raise InputError(f"{path}: CSV parsing failed after data row {delivered}: "
                                 f"{e}") from e
        skipped.clear()
        try:
            yield from batches(open_reader(pa.binary()), 0, delivered)
        except pa.ArrowInvalid as e:
            raise InputError(f"{path}: CSV parsing failed: {e}") from e

    return RecordReader(path, header, None, _rechunk(pieces(), chunk_size))


def _csv_header(path: Path, delimiter: str, encoding: str) -> list[str]:
    """Column names from the header row, read on their own."""
    try:
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(use_threads=False, block_size=1 << 20,
                                           encoding=encoding),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True,
                                             invalid_row_handler=lambda row: "skip"),
            convert_options=pacsv.ConvertOptions(column_types={}, include_columns=[]),
        )
    except (pa.ArrowInvalid, LookupError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read the header row as {encoding} CSV: {e}") from e
    return list(reader.schema.names)


def _open_parquet(path: Path, wanted: list[str], chunk_size: int) -> RecordReader:
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise InputError(f"{path}: cannot be read as Parquet: {e}") from e
    names = parquet.schema_arrow.names
    _check_columns(path, names, wanted)

    def chunks() -> Iterator[RecordChunk]:
        placed = 0
        for batch in parquet.iter_batches(batch_size=chunk_size, columns=wanted):
            rows = np.arange(placed + 1, placed + 1 + batch.num_rows, dtype=np.int64)
            placed += batch.num_rows
            yield RecordChunk(rows, {c: _as_strings(batch.column(c)) for c in wanted})

    return RecordReader(path, list(names), parquet.metadata.num_rows, chunks())


def open_records(path: str | Path, columns: Sequence[str], *, chunk_size: int = 65536,
                 encoding: str = "utf-8") -> RecordReader:
    """Open a CSV (header row required), TSV or Parquet file for chunked reading.

    Raises:
        InputError: the file is missing, empty, of an unknown kind, or lacks a column.
    """
    path = Path(path)
    wanted = list(dict.fromkeys(columns))
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        return _open_parquet(path, wanted, chunk_size)
    if suffix in CSV_SUFFIXES | TSV_SUFFIXES:
        delimiter = "\t" if suffix in TSV_SUFFIXES else ","
        return _open_csv(path, wanted, chunk_size, delimiter, encoding)
    raise InputError(f"{path}: unknown file type {suffix!r}; use .csv, .tsv or .parquet")
