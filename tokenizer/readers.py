"""Read identifier tables (CSV, Parquet, FHIR R4 Patient resources) in chunks of string columns.

Values are kept exactly as written (no whitespace stripping, no type inference, empty stays
empty): normalising them is the normaliser's job (``tokenizer.normalize``), and for a custom
schema without normalisation the CLK depends on every character, as it does in clkhash. Each
record carries its data-row number (1 = first row after the header) so that rejects can be
found in the file. Rows that cannot be parsed (wrong number of fields, bytes that are not
valid text) are reported, not fatal. FHIR inputs (``tokenizer.fhir``) give the same chunks,
numbered by NDJSON line or Bundle entry, with their malformed resources reported alike.

Sites' files differ in small ways that are not errors: the delimiter (``,`` ``;`` tab ``|``,
or Excel's ``sep=`` first line) is detected, headers are matched after trimming and case
folding, and ``column_map`` maps the schema's column names to a site's own headers.
"""

from __future__ import annotations

import codecs
import io
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from .errors import InputError
from .fhir import (
    BUNDLE_SUFFIXES,
    FHIR_COLUMNS,
    NDJSON_SUFFIXES,
    RECORD_ID,
    MalformedResource,
    read_patients,
)

__all__ = ["RecordChunk", "MalformedRow", "RecordReader", "open_records", "DELIMITERS",
           "CsvDialect", "sniff_dialect", "csv_error_reason",
           "parse_column_map", "default_id_column", "input_columns"]

CSV_SUFFIXES = {".csv", ".txt"}
TSV_SUFFIXES = {".tsv", ".tab"}
PARQUET_SUFFIXES = {".parquet", ".pq"}
_CSV_BLOCK_BYTES = 1 << 20
_SNIFF_BYTES = 1 << 16
DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}


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


def _fold(header: str) -> str:
    return " ".join(header.replace("\ufeff", "").split()).casefold()


def parse_column_map(specs: Sequence[str]) -> dict[str, str]:
    """``schema_col=site_col`` pairs (comma-separated or repeated) as a mapping.

    Raises:
        InputError: a pair is malformed or a schema column is mapped twice.
    """
    mapping: dict[str, str] = {}
    for spec in ",".join(specs).split(","):
        if not spec.strip():
            continue
        schema_col, sep, site_col = (p.strip() for p in spec.partition("="))
        if not sep or not schema_col or not site_col:
            raise InputError(f"--column-map {spec!r}: write SCHEMA_COLUMN=SITE_COLUMN")
        if schema_col in mapping:
            raise InputError(f"--column-map maps {schema_col!r} twice")
        mapping[schema_col] = site_col
    return mapping


def _resolve_columns(path: Path, available: Sequence[str], wanted: Sequence[str],
                     column_map: dict[str, str]) -> dict[str, str]:
    """The header each wanted column is read from: matched after trimming and case folding
    (``" Given_Name "`` is ``given_name``), through ``column_map`` where it names one.

    Raises:
        InputError: a column is missing, or two headers fold to the same name.
    """
    by_fold: dict[str, list[str]] = {}
    for header in available:
        by_fold.setdefault(_fold(header), []).append(header)
    resolved: dict[str, str] = {}
    missing: list[str] = []
    for column in wanted:
        site = column_map.get(column, column)
        headers = by_fold.get(_fold(site), [])
        if len(headers) > 1:
            raise InputError(
                f"{path}: headers {headers} all read as {_fold(site)!r} after trimming and "
                f"case folding, so column {column!r} is ambiguous; rename one of them or pick "
                f"one with --column-map {column}=HEADER")
        if not headers:
            missing.append(column if site == column else f"{column} (mapped to {site!r})")
        else:
            resolved[column] = headers[0]
    if missing:
        # the headers are not listed: in a file without a header row they are a patient's
        raise InputError(
            f"{path}: missing column(s) {missing} that the schema (or --id-column) needs; "
            f"the file has {len(available)} column(s) (if its first row is not a header row, "
            f"add one); map a site's own header with --column-map SCHEMA_COLUMN=SITE_COLUMN")
    return resolved


def _as_strings(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_string(column.type):
        return column
    if pa.types.is_large_string(column.type) or pa.types.is_string_view(column.type):
        return column.cast(pa.string())
    return pc.cast(column, pa.string())


def _rechunk(pieces: Iterator[tuple[np.ndarray, dict[str, pa.Array], list[MalformedRow]]],
             chunk_size: int, names: list[str]) -> Iterator[RecordChunk]:
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
                yield _join(rows, cols, malformed, names)
                rows, cols, malformed, held = [], [], [], 0
    if held or malformed:
        yield _join(rows, cols, malformed, names)


def _join(rows: list[np.ndarray], cols: list[dict[str, pa.Array]],
          malformed: list[MalformedRow], names: list[str]) -> RecordChunk:
    """One chunk of the pieces; a stretch of only malformed rows has empty columns."""
    if not cols:
        return RecordChunk(np.zeros(0, dtype=np.int64),
                           {n: pa.array([], pa.string()) for n in names}, malformed)
    joined = {n: pa.concat_arrays([c[n] for c in cols]) for n in names}
    return RecordChunk(np.concatenate(rows), joined, malformed)


def _valid_utf8(array: pa.Array) -> bool:
    try:
        array.view(pa.string()).validate(full=True)
        return True
    except pa.ArrowInvalid:
        return False


def guess_encoding(sample: bytes) -> str | None:
    """A likely encoding for bytes that are not UTF-8 (None if they are): a UTF-16 byte order
    mark, else Windows-1252 where it decodes (what Excel writes on Windows), else Latin-1."""
    if sample.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    try:
        sample.decode("utf-8")
        return None
    except UnicodeDecodeError as e:
        if e.start > len(sample) - 4:  # a character cut by the end of the sample
            return None
    try:
        sample.decode("cp1252")
        return "cp1252"
    except UnicodeDecodeError:
        return "latin-1"


def _encoding_hint(guess: str | None) -> str:
    if guess is None:
        return "give the file's encoding with --encoding"
    return f"the file looks like {guess}: give --encoding {guess}"


def _is_binary(array: pa.Array) -> bool:
    return pa.types.is_binary(array.type) or pa.types.is_large_binary(array.type)


def _decode_binary_columns(
    rows: np.ndarray, columns: dict[str, pa.Array], hint: str, encoding: str = "UTF-8"
) -> tuple[np.ndarray, dict[str, pa.Array], list[MalformedRow]]:
    """Turn binary columns into strings; rows with bytes that are not UTF-8 become malformed
    and are dropped from every column. ``encoding``: the file's, named in the reason (a
    non-UTF-8 file is recoded by :class:`_Utf8Recoder`, which makes its bad bytes bad UTF-8)."""
    bad = np.zeros(len(rows), dtype=bool)
    bad_fields: dict[int, list[str]] = {}
    for name, array in columns.items():
        if not _is_binary(array) or _valid_utf8(array):
            continue
        for i, value in enumerate(array.to_pylist()):
            try:
                if value is not None:
                    value.decode("utf-8")
            except UnicodeDecodeError:
                bad[i] = True
                bad_fields.setdefault(i, []).append(name)
    as_text = {n: a.cast(pa.binary()).view(pa.string()) if _is_binary(a) else a
               for n, a in columns.items()}
    if not bad.any():
        return rows, as_text, []
    keep = pa.array(~bad)
    malformed = [MalformedRow(int(rows[i]), f"field(s) {fields} are not valid {encoding} "
                                            f"text; {hint}")
                 for i, fields in sorted(bad_fields.items())]
    return rows[~bad], {n: a.filter(keep) for n, a in as_text.items()}, malformed


def _mark_undecodable(error: UnicodeError) -> tuple[str, int]:
    """A lone surrogate for bytes that do not decode: no valid UTF-8 encodes it, so Arrow's
    UTF-8 check rejects the row holding them instead of the whole file failing."""
    if not isinstance(error, UnicodeDecodeError):
        raise error
    return "\udcff", error.end


codecs.register_error("pprl-mark-undecodable", _mark_undecodable)


class _Utf8Recoder(io.RawIOBase):
    """A text file in another encoding, read as UTF-8 bytes for Arrow. Arrow's own
    transcoding raises on the first undecodable byte; here such bytes become invalid UTF-8
    in their row, which the UTF-8 path then rejects alone."""

    def __init__(self, path: Path, encoding: str) -> None:
        super().__init__()
        self._raw = path.open("rb")
        self._decoder = codecs.getincrementaldecoder(encoding)("pprl-mark-undecodable")
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        """Fills ``buffer`` unless the file ends: Arrow takes a short read for a short
        block, and a row across more than two blocks fails to parse."""
        filled = 0
        while filled < len(buffer):
            if not self._pending:
                block = self._raw.read(_CSV_BLOCK_BYTES)
                text = self._decoder.decode(block, final=not block)
                self._pending = memoryview(text.encode("utf-8", "surrogatepass"))
                if not block and not self._pending:
                    break
            size = min(len(buffer) - filled, len(self._pending))
            buffer[filled:filled + size] = self._pending[:size]
            self._pending = self._pending[size:]
            filled += size
        return filled

    def close(self) -> None:
        self._raw.close()
        super().close()


def _csv_source(path: Path, encoding: str) -> tuple[Path | _Utf8Recoder, str]:
    """What Arrow reads and in which encoding: a UTF-8 file itself, any other recoded."""
    if codecs.lookup(encoding).name == "utf-8":
        return path, encoding
    return _Utf8Recoder(path, encoding), "utf-8"


_ROW_TEXT = re.compile(r"(Expected \d+ columns, got \d+):.*", re.DOTALL)


def csv_error_reason(error: Exception) -> str:
    """Arrow's message without the row's text that it appends to a parse error (values are
    identifiers; see ``tokenizer.errors``)."""
    return _ROW_TEXT.sub(r"\1", str(error))


@dataclass(frozen=True)
class CsvDialect:
    delimiter: str
    skip_rows: int  # 1 when the first line is Excel's "sep=;"


def sniff_dialect(path: Path, encoding: str, delimiter: str | None) -> CsvDialect:
    """Excel's ``sep=X`` first line, else the given delimiter, else the candidate that
    splits the header line most often (outside quotes); a header without any is one column."""
    with path.open("rb") as handle:
        sample = handle.read(_SNIFF_BYTES)
    try:
        text = sample.decode(encoding, errors="replace")
    except LookupError as e:
        raise InputError(f"{path}: unknown text encoding {encoding!r} (--encoding)") from e
    first = text.lstrip("\ufeff").split("\n", 1)[0].rstrip("\r")
    if first.lower().startswith("sep=") and len(first) == 5:
        return CsvDialect(first[4], 1)
    if delimiter is not None:
        return CsvDialect(delimiter, 0)
    outside_quotes = first.split('"')[::2]
    counts = {d: sum(part.count(d) for part in outside_quotes) for d in DELIMITERS}
    best = max(counts, key=lambda d: counts[d])
    return CsvDialect(best if counts[best] else ",", 0)


def _skips_within(skipped: list[tuple[int, str, str]], placed: int, parsed: int
                  ) -> list[tuple[int, str, str]]:
    """Take from ``skipped`` the rows skipped within a batch of ``parsed`` rows that follows
    data row ``placed``; the rest stay pending. Arrow parses blocks ahead, so its invalid-row
    handler may already have reported rows of the next batches."""
    skipped.sort()
    end = placed + parsed
    taken = 0
    while taken < len(skipped) and skipped[taken][0] <= end + taken:
        taken += 1
    skips = skipped[:taken]
    del skipped[:taken]
    return skips


def _open_csv(path: Path, wanted: list[str], chunk_size: int, delimiter: str | None,
              encoding: str, column_map: dict[str, str]) -> RecordReader:
    with path.open("rb") as probe:
        sample = probe.read(_SNIFF_BYTES)
    if not sample:
        raise InputError(f"{path} is empty: expected a header row, then one row per record")
    guess = guess_encoding(sample) if encoding.replace("-", "").lower() == "utf8" else None
    dialect = sniff_dialect(path, encoding, delimiter)
    header = _csv_header(path, dialect, encoding, guess)
    source = _resolve_columns(path, header, wanted, column_map)
    text_name = "UTF-8" if codecs.lookup(encoding).name == "utf-8" else encoding
    hint = (_encoding_hint(guess) if text_name == "UTF-8"
            else f"check that the whole file is {encoding} (--encoding)")
    skipped: list[tuple[int, str, str]] = []

    def on_invalid_row(row: pacsv.InvalidRow) -> str:
        number = -1 if row.number is None else row.number - 1 - dialect.skip_rows
        skipped.append((number, f"has {row.actual_columns} fields where the header has "
                                f"{row.expected_columns}", row.text))
        return "skip"

    def open_reader(column_type: pa.DataType) -> pacsv.CSVStreamingReader:
        source_file, arrow_encoding = _csv_source(path, encoding)
        return pacsv.open_csv(
            source_file,
            read_options=pacsv.ReadOptions(use_threads=False, block_size=_CSV_BLOCK_BYTES,
                                           encoding=arrow_encoding,
                                           skip_rows=dialect.skip_rows),
            parse_options=pacsv.ParseOptions(delimiter=dialect.delimiter,
                                             newlines_in_values=True,
                                             invalid_row_handler=on_invalid_row),
            convert_options=pacsv.ConvertOptions(
                column_types={c: column_type for c in source.values()},
                include_columns=list(dict.fromkeys(source.values())),
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
            skips = _skips_within(skipped, placed, batch.num_rows)
            span = batch.num_rows + len(skips)
            numbers = np.arange(placed + 1, placed + 1 + span, dtype=np.int64)
            rows = numbers[~np.isin(numbers, [n for n, _, _ in skips])]
            if len(rows) != batch.num_rows:
                raise InputError(f"{path}: cannot number the rows after data row {placed} "
                                 f"(a row with the wrong number of fields was reported out "
                                 f"of order)")
            placed += span
            fresh = rows > resume_after
            columns = {c: batch.column(source[c]) for c in wanted}
            if not fresh.all():
                keep = pa.array(fresh)
                rows, columns = rows[fresh], {c: a.filter(keep) for c, a in columns.items()}
            if any(_is_binary(a) for a in columns.values()):
                rows, columns, bad_text = _decode_binary_columns(rows, columns, hint,
                                                                 text_name)
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
                                 f"{csv_error_reason(e)}") from e
        skipped.clear()
        try:
            yield from batches(open_reader(pa.binary()), 0, delivered)
        except pa.ArrowInvalid as e:
            raise InputError(f"{path}: CSV parsing failed: {csv_error_reason(e)}") from e

    return RecordReader(path, header, None, _rechunk(pieces(), chunk_size, wanted))


def _csv_header(path: Path, dialect: CsvDialect, encoding: str, guess: str | None
                ) -> list[str]:
    """Column names from the header row, read on their own."""
    try:
        source_file, arrow_encoding = _csv_source(path, encoding)
        reader = pacsv.open_csv(
            source_file,
            read_options=pacsv.ReadOptions(use_threads=False, block_size=1 << 20,
                                           encoding=arrow_encoding,
                                           skip_rows=dialect.skip_rows),
            parse_options=pacsv.ParseOptions(delimiter=dialect.delimiter,
                                             newlines_in_values=True,
                                             invalid_row_handler=lambda row: "skip"),
            convert_options=pacsv.ConvertOptions(column_types={}, include_columns=[]),
        )
    except (pa.ArrowInvalid, LookupError, UnicodeDecodeError) as e:
        if guess is not None:
            raise InputError(f"{path}: the header row is not valid UTF-8 text; "
                             f"{_encoding_hint(guess)}") from e
        raise InputError(f"{path}: cannot read the header row as {encoding} CSV: "
                         f"{csv_error_reason(e)}") from e
    try:
        return list(reader.schema.names)
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: the header row is not valid {encoding} text; "
                         f"{_encoding_hint(guess)}") from e


def _check_castable(path: Path, header: str, column_type: pa.DataType) -> None:
    """Refuse, before anything is read, a column whose type has no text form (a list,
    struct or map): Arrow would fail on the first batch with a bare NotImplemented error."""
    try:
        pc.cast(pa.array([], column_type), pa.string())
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid) as e:
        raise InputError(f"{path}: column {header!r} has type {column_type}, which cannot be "
                         f"read as text; identifiers must be strings, numbers or "
                         f"dates") from e


def _open_parquet(path: Path, wanted: list[str], chunk_size: int,
                  column_map: dict[str, str]) -> RecordReader:
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise InputError(f"{path}: cannot be read as Parquet: {e}") from e
    names = parquet.schema_arrow.names
    source = _resolve_columns(path, names, wanted, column_map)
    for header in dict.fromkeys(source.values()):
        _check_castable(path, header, parquet.schema_arrow.field(header).type)

    def chunks() -> Iterator[RecordChunk]:
        placed = 0
        for batch in parquet.iter_batches(batch_size=chunk_size,
                                          columns=list(dict.fromkeys(source.values()))):
            rows = np.arange(placed + 1, placed + 1 + batch.num_rows, dtype=np.int64)
            placed += batch.num_rows
            # Numbers and dates in their text form; binary columns decoded as UTF-8.
            rows, columns, malformed = _decode_binary_columns(
                rows, {c: (a if _is_binary(a) else _as_strings(a))
                       for c, a in ((c, batch.column(source[c])) for c in wanted)},
                "the Parquet column must hold UTF-8 strings")
            yield RecordChunk(rows, columns, malformed)

    return RecordReader(path, list(names), parquet.metadata.num_rows, chunks())


def _open_fhir(path: Path, wanted: list[str], chunk_size: int,
               column_map: dict[str, str]) -> RecordReader:
    """FHIR Patient resources as chunks of ``chunk_size`` records; an NDJSON file is read a
    line at a time, so memory stays bounded by the chunk size."""
    source = _resolve_columns(path, FHIR_COLUMNS, wanted, column_map)
    total, patients = read_patients(path, date.today())

    def chunks() -> Iterator[RecordChunk]:
        rows: list[int] = []
        values: dict[str, list[str]] = {c: [] for c in wanted}
        malformed: list[MalformedRow] = []
        for number, read in patients:
            if isinstance(read, MalformedResource):
                malformed.append(MalformedRow(number, read.reason))
            else:
                rows.append(number)
                for column in wanted:
                    values[column].append(read[source[column]])
            if len(rows) == chunk_size or len(malformed) == chunk_size:
                yield _fhir_chunk(rows, values, malformed)
                rows, values, malformed = [], {c: [] for c in wanted}, []
        if rows or malformed:
            yield _fhir_chunk(rows, values, malformed)

    return RecordReader(path, list(FHIR_COLUMNS), total, chunks())


def _fhir_chunk(rows: list[int], values: dict[str, list[str]],
                malformed: list[MalformedRow]) -> RecordChunk:
    return RecordChunk(np.array(rows, dtype=np.int64),
                       {c: pa.array(v, pa.string()) for c, v in values.items()}, malformed)


def default_id_column(path: str | Path) -> str | None:
    """The record-id column of an input when none is given: the Patient's logical id for
    FHIR (its line or entry number would change with every export); None (the data-row
    number) for tables."""
    suffix = Path(path).suffix.lower()
    return RECORD_ID if suffix in NDJSON_SUFFIXES | BUNDLE_SUFFIXES else None


def input_columns(path: str | Path, *, encoding: str = "utf-8", delimiter: str | None = None,
                  column_map: dict[str, str] | None = None) -> list[str]:
    """The columns :func:`open_records` can read from ``path``, named as it names them: each
    header, or the schema column that ``column_map`` maps to it. Only the header (a CSV's
    first row, a Parquet footer) is read; FHIR resources always have ``FHIR_COLUMNS``.

    Raises:
        InputError: the header cannot be read.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if suffix in NDJSON_SUFFIXES | BUNDLE_SUFFIXES:
        headers = list(FHIR_COLUMNS)
    elif suffix in PARQUET_SUFFIXES:
        try:
            headers = list(pq.read_schema(path).names)
        except (pa.ArrowInvalid, OSError) as e:
            raise InputError(f"{path}: cannot be read as Parquet: {e}") from e
    else:
        if delimiter is None and suffix in TSV_SUFFIXES:
            delimiter = "\t"
        with path.open("rb") as probe:
            sample = probe.read(_SNIFF_BYTES)
        if not sample:
            return []   # open_records says the file is empty
        guess = guess_encoding(sample) if encoding.replace("-", "").lower() == "utf8" else None
        headers = _csv_header(path, sniff_dialect(path, encoding, delimiter), encoding, guess)
    schema_of = {_fold(site): column for column, site in (column_map or {}).items()}
    return [schema_of.get(_fold(header), header) for header in headers]


def open_records(path: str | Path, columns: Sequence[str], *, chunk_size: int = 65536,
                 encoding: str = "utf-8", delimiter: str | None = None,
                 column_map: dict[str, str] | None = None) -> RecordReader:
    """Open a CSV (header row required), TSV, Parquet or FHIR file for chunked reading.

    FHIR R4 Patient resources are read from bulk-export NDJSON (``.ndjson``) or a Bundle
    (``.json``) as the columns of ``tokenizer.fhir.FHIR_COLUMNS``.

    Args:
        columns: the columns wanted, by the schema's names; the chunks use these names.
        delimiter: a CSV's field delimiter; default: Excel's ``sep=`` line, else detected
            from the header among comma, semicolon, tab and pipe (``.tsv``: tab).
        column_map: schema column -> the site's header for it.

    Raises:
        InputError: the file is missing, empty, of an unknown kind, or lacks a column.
    """
    path = Path(path)
    wanted = list(dict.fromkeys(columns))
    mapping = dict(column_map or {})
    unknown = sorted(set(mapping) - set(wanted))
    if unknown:
        raise InputError(f"--column-map names {unknown}, which the schema (or --id-column) "
                         f"does not use; its columns are {wanted}")
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        return _open_parquet(path, wanted, chunk_size, mapping)
    if suffix in CSV_SUFFIXES | TSV_SUFFIXES:
        if delimiter is None and suffix in TSV_SUFFIXES:
            delimiter = "\t"
        return _open_csv(path, wanted, chunk_size, delimiter, encoding, mapping)
    if suffix in NDJSON_SUFFIXES | BUNDLE_SUFFIXES:
        return _open_fhir(path, wanted, chunk_size, mapping)
    raise InputError(f"{path}: unknown file type {suffix!r}; use .csv, .tsv, .parquet, or "
                     f".ndjson / .json (FHIR Patient resources)")
