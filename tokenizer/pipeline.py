"""``pprl tokenize``: identifiers file in, encodings file (and rejects file) out.

Streams the input in chunks, so memory is bounded by the chunk size and the caches, and the
output does not depend on the chunk size. Values are normalised by kind first (the shipped
schemas' kinds by default; ``tokenizer.normalize``). Invalid rows go to ``OUT.rejects.csv``
with the field and reason; that file holds identifiers and must stay at the site. A run
whose every row is rejected, or whose record ids repeat, writes no encodings file.
"""

from __future__ import annotations

import csv
import logging
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .encoder import ClkEncoder, EncodedChunk
from .encodings_file import (
    TOKEN_RULES,
    AtomicFile,
    EncodingsMetadata,
    EncodingsWriter,
    OutputFormat,
    tool_version,
)
from .errors import AllRowsRejectedError, InputError, InvalidRowsError
from .keys import key_check_value
from .normalize import DateOrder, Normalizer, choose_kinds
from .parallel import InOrderWorker, Rejected, encode_chunks
from .readers import RecordChunk, default_id_column, input_columns, open_records
from .schema_model import Schema

__all__ = ["TokenizeReport", "tokenize_file", "rejects_path_for"]

_SHOWN_DUPLICATES = 5

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TokenizeReport:
    """What a tokenize run did."""

    input: Path
    output: Path
    records_read: int
    records_written: int
    rejected: int
    rejects_path: Path | None
    seconds: float
    reject_reasons: tuple[tuple[str, int], ...] = ()
    """The most frequent reasons rows were rejected, with their counts."""
    empty_clks: int = 0
    """Records written whose CLK has no bit set: every field blank, so they link with
    nothing (kept, as clkhash keeps them, but said)."""

    @property
    def records_per_second(self) -> float:
        return self.records_read / self.seconds if self.seconds else 0.0


def rejects_path_for(output: Path) -> Path:
    return output.with_name(output.name + ".rejects.csv")


class _RejectsWriter:
    """Rejected rows with their original values, created only when the first one arrives."""

    def __init__(self, path: Path, columns: Sequence[str]) -> None:
        self.columns = list(columns)
        self.count = 0
        self.first: str | None = None
        self.reasons: Counter[str] = Counter()
        self._file = AtomicFile(path)
        self._handle: IO[str] | None = None
        self._writer: csv.DictWriter[str] | None = None

    @property
    def path(self) -> Path:
        return self._file.target

    def add(self, row: int, fields: str, reason: str, values: dict[str, str]) -> None:
        if self._writer is None:
            self._handle = self._file.temp.open("w", encoding="utf-8", newline="")
            self._writer = csv.DictWriter(
                self._handle, ["row", "fields", "reason", *self.columns, "raw_text"])
            self._writer.writeheader()
        self._writer.writerow({"row": row, "fields": fields, "reason": reason, **values})
        self.count += 1
        # Field reasons name their fields already; a malformed row's reason is the row's.
        said = reason if fields else f"row {reason}"
        self.reasons[said] += 1
        if self.first is None:
            self.first = f"row {row}: {said}"

    def finish(self) -> Path | None:
        """Commit the file, or remove a stale one from an earlier run if nothing was rejected."""
        if self._handle is None:
            with suppress(FileNotFoundError):
                self._file.target.unlink()
            return None
        self._handle.close()
        self._file.commit()
        return self._file.target

    def discard(self) -> None:
        if self._handle is not None:
            self._handle.close()
        self._file.discard()


def _record_ids(chunk: RecordChunk, id_column: str | None) -> pa.Array:
    if id_column is None:
        return pa.array(chunk.rows, pa.int64()).cast(pa.string())
    return pc.fill_null(chunk.columns[id_column], "")


def _write_rejects(rejects: _RejectsWriter, chunk: RecordChunk,
                   reasons: dict[int, tuple[str, str]]) -> None:
    for bad in chunk.malformed:
        rejects.add(bad.row, "", bad.reason, {"raw_text": bad.text})
    if not reasons:
        return
    picked = sorted(reasons)
    take = pa.array(picked, pa.int64())
    values = {name: column.take(take).to_pylist() for name, column in chunk.columns.items()}
    for j, index in enumerate(picked):
        fields, reason = reasons[index]
        rejects.add(int(chunk.rows[index]), fields, reason,
                    {name: vals[j] for name, vals in values.items()})


class _RecordIds:
    """Every record id written, with its data-row number, to refuse repeats at the end."""

    def __init__(self) -> None:
        self._ids: list[pa.Array] = []
        self._rows: list[np.ndarray] = []

    def add(self, ids: pa.Array, rows: np.ndarray) -> None:
        self._ids.append(ids)
        self._rows.append(rows)

    def check(self, source: Path, id_column: str) -> None:
        """Raises InputError naming the rows of the first repeated ids (never the ids:
        a site may have used an identifier)."""
        if not self._ids:
            return
        ids = pa.chunked_array(self._ids, pa.string())
        counts = pc.value_counts(ids)
        repeated = counts.filter(pc.greater(counts.field("counts"), 1)).field("values")
        if not len(repeated):
            return
        rows = np.concatenate(self._rows)
        where = pc.is_in(ids, value_set=repeated.slice(0, _SHOWN_DUPLICATES))
        codes = pc.index_in(ids, value_set=repeated).to_numpy(zero_copy_only=False)
        mask = where.to_numpy(zero_copy_only=False)
        groups: dict[int, list[int]] = {}
        for code, row in zip(codes[mask].tolist(), rows[mask].tolist(), strict=True):
            groups.setdefault(int(code), []).append(int(row))
        shown = "; ".join("rows " + ", ".join(map(str, g)) for g in groups.values())
        raise InputError(f"{source}: {len(repeated):,} record id(s) of column {id_column} "
                         f"appear more than once ({shown}); record ids must be unique, so no "
                         f"encodings file was written")


@dataclass(frozen=True)
class _TokenInput:
    """Where ``--with-tokens`` reads each OpenToken attribute (chunk column), and the
    hashing secret."""

    sources: dict[str, str]
    secret: bytes


def _write_chunk(writer: EncodingsWriter, rejects: _RejectsWriter, chunk: RecordChunk,
                 encoded: EncodedChunk, id_column: str | None,
                 normalizer_rejects: Rejected, written_ids: _RecordIds | None,
                 token_input: _TokenInput | None) -> int:
    """Writes the chunk's valid rows and its rejects; returns how many CLKs written have no
    bit set (rows with every field blank)."""
    reasons = {r.index: (";".join(r.fields), r.describe()) for r in encoded.rejects}
    valid = encoded.valid.copy()
    for index, problems in normalizer_rejects.items():
        reasons[index] = (";".join(f for f, _ in problems),
                          "; ".join(f"{f} {r}" for f, r in problems))
        valid[index] = False
    ids = _record_ids(chunk, id_column)
    id_ok = pc.not_equal(ids, "").to_numpy(zero_copy_only=False)
    for index in np.flatnonzero(~id_ok & valid).tolist():
        reasons[index] = (str(id_column), f"{id_column} (the record id) is empty")
    keep = (id_ok & valid)[encoded.valid]
    written = pa.array(valid & id_ok)
    kept_ids = ids.filter(written)
    tokens = None
    if token_input is not None:
        from .opentoken.engine import record_tokens

        tokens = record_tokens({attribute: chunk.columns[column].filter(written)
                                for attribute, column in token_input.sources.items()},
                               len(kept_ids), token_input.secret)
    writer.write(kept_ids, encoded.clks[keep], encoded.popcounts[keep], tokens)
    if written_ids is not None:
        written_ids.add(kept_ids, chunk.rows[valid & id_ok])
    _write_rejects(rejects, chunk, reasons)
    return int(np.count_nonzero(encoded.popcounts[keep] == 0))


class _Bar(Protocol):
    def update(self, count: int) -> object: ...

    def close(self) -> None: ...


class _NoBar:
    """What a run without a progress bar updates (tqdm is not even imported)."""

    def update(self, count: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(total: int | None, name: str) -> _Bar:
    from tqdm import tqdm

    return tqdm(total=total, unit="rec", unit_scale=True, desc=f"tokenizing {name}",
                file=sys.stderr)


def tokenize_file(
    input_path: str | Path,
    schema: Schema,
    secret: bytes,
    output_path: str | Path,
    *,
    output_format: OutputFormat = "parquet",
    id_column: str | None = None,
    strict: bool = False,
    chunk_size: int = 65536,
    provider: str | None = None,
    encoding: str = "utf-8",
    progress: bool | None = None,
    workers: int = 1,
    on_chunk: Callable[[int], None] | None = None,
    kinds: Mapping[str, str] | None = None,
    date_order: DateOrder | None = None,
    delimiter: str | None = None,
    column_map: Mapping[str, str] | None = None,
    token_secret: bytes | None = None,
) -> TokenizeReport:
    """Tokenize every record of ``input_path`` into ``output_path``.

    Args:
        schema: the linkage schema all providers of the project share.
        secret: the linkage secret (bytes); never logged.
        id_column: column holding the record id (a site pseudonym); default: the data-row
            number, 1 for the first row after the header; for FHIR input the Patient's
            logical id (``id``).
        strict: any invalid row makes the run fail, and no encodings file is written.
        progress: show a progress bar; default: only when stderr is a terminal.
        workers: processes encoding chunks in parallel; the output does not depend on it.
        kinds: feature -> normalisation kind; None: the shipped schema's kinds (none for a
            custom schema, which is then encoded exactly as clkhash would); {}: none.
        date_order: how ambiguous dates (``03/04/1980``) are read; None: such rows are
            rejected with that reason.
        delimiter, column_map: see :func:`tokenizer.readers.open_records`.
        token_secret: also write each record's OpenToken tokens T1-T5 (hash-only, keyed
            with this hashing secret), computed from the same rows with the same columns
            `pprl tokens` reads (:func:`tokenizer.opentoken.files.token_sources`).

    Raises:
        InputError: the input cannot be read, lacks columns, or repeats a record id.
        InvalidRowsError: ``strict`` and at least one row was invalid.
        AllRowsRejectedError: the input has rows and every one was rejected.
    """
    started = time.perf_counter()
    input_path, output_path = Path(input_path), Path(output_path)
    id_column = id_column or default_id_column(input_path)
    required = ClkEncoder.columns_of(schema)
    columns = list(dict.fromkeys(([id_column] if id_column else []) + required))
    normalizer = Normalizer(schema, choose_kinds(schema) if kinds is None else kinds,
                            date_order)
    token_input = None
    if token_secret is not None:
        from .opentoken.files import token_sources

        # Token attributes are read from the columns `pprl tokens` would take, found in the
        # header (through --column-map, so a mapped `given_name` is the first name).
        token_input = _TokenInput(token_sources(input_columns(
            input_path, encoding=encoding, delimiter=delimiter,
            column_map=dict(column_map or {}))), token_secret)
        columns = list(dict.fromkeys(columns + list(token_input.sources.values())))
    reader = open_records(input_path, columns, chunk_size=chunk_size, encoding=encoding,
                          delimiter=delimiter, column_map=dict(column_map or {}))
    meta = EncodingsMetadata(schema.bloom_filter_bits, schema.fingerprint, provider,
                             tool_version(), schema.canonical_json,
                             key_check=key_check_value(secret),
                             tokens=TOKEN_RULES if token_secret is not None else (),
                             token_key_check=None if token_secret is None else
                             key_check_value(token_secret, "token secret"))
    writer = EncodingsWriter(output_path, meta, output_format)
    rejects = _RejectsWriter(rejects_path_for(output_path), columns)
    show = sys.stderr.isatty() if progress is None else progress
    bar: _Bar = _progress_bar(reader.total_rows, input_path.name) if show else _NoBar()
    read = 0
    empty = [0]  # CLKs with no bit set, counted on the writing thread
    chunks: deque[RecordChunk] = deque()
    written_ids = _RecordIds() if id_column else None

    def feature_columns() -> Iterator[dict[str, pa.Array]]:
        for chunk in reader:
            chunks.append(chunk)
            yield {c: chunk.columns[c] for c in required}

    def write(chunk: RecordChunk, encoded: EncodedChunk, normalizer_rejects: Rejected) -> None:
        empty[0] += _write_chunk(writer, rejects, chunk, encoded, id_column,
                                 normalizer_rejects, written_ids, token_input)
        bar.update(len(chunk) + len(chunk.malformed))

    try:
        # Reading runs here; normalising and encoding on the encoder threads; writing on its
        # own thread, so the three overlap.
        with InOrderWorker(write, capacity=2) as background:
            for encoded, normalizer_rejects in encode_chunks(schema, secret, feature_columns(),
                                                             workers, normalizer):
                chunk = chunks.popleft()
                read += len(chunk) + len(chunk.malformed)
                background.put(chunk, encoded, normalizer_rejects)
                if on_chunk is not None:
                    on_chunk(read)
        if written_ids is not None and id_column is not None:
            written_ids.check(input_path, id_column)
    except BaseException:
        writer.discard()
        rejects.discard()
        raise
    finally:
        bar.close()
    top = tuple(rejects.reasons.most_common(5))
    if strict and rejects.count:
        writer.discard()
        raise InvalidRowsError(str(input_path), rejects.count, rejects.first or "",
                               str(rejects.finish()))
    if read and not writer.count:
        writer.discard()
        raise AllRowsRejectedError(str(input_path), read, top, str(rejects.finish()))
    writer.commit()
    rejects_file = rejects.finish()
    return TokenizeReport(input_path, output_path, read, writer.count, rejects.count,
                          rejects_file, time.perf_counter() - started, top, empty[0])

