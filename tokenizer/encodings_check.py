"""Checking an encodings file someone else made, in memory bounded by limits, not by what the
file decodes to.

A receiver (the service, the linker) cannot trust a Parquet file: a 12 KB file can hold
millions of rows of one dictionary value, column types other than the format's, or metadata
that is not text. Everything is checked before the file is kept: the footer's size, the
format's metadata (present, text, numbers that are numbers), the three columns' types (and
that there is no other but the token columns the metadata declares), the number of rows, each
row group's uncompressed size, and then, one batch of rows at a time, record ids (UTF-8,
non-empty, bounded length, unique), CLKs, popcounts and tokens (null or 44 ASCII
characters). Messages name the file as the caller calls it, the column or key, and the rule.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .encodings_file import FORMAT_NAME, TOKEN_CHARS, declared_tokens, token_column
from .errors import InputError

__all__ = ["EncodingsLimits", "EncodingsSummary", "check_parquet_encodings", "check_bounds",
           "record_id_hashes", "repeated_rows"]

_BATCH_ROWS = 65536
_MAX_CONFIRMED = 100_000
_META = "pprl."
_REQUIRED_META = ("format", "bloom_filter_bits", "schema_fingerprint", "key_check_value")


@dataclass(frozen=True)
class EncodingsLimits:
    max_records: int = 20_000_000
    max_record_id_bytes: int = 256
    max_column_chunk_bytes: int = 512 << 20
    max_footer_bytes: int = 4 << 20


@dataclass(frozen=True)
class EncodingsSummary:
    records: int
    bloom_filter_bits: int
    schema_fingerprint: str
    key_check: str
    provider: str | None


@numba.njit(cache=True, nogil=True)
def _fnv1a(offsets: np.ndarray, data: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover
    for i in range(out.shape[0]):
        h = np.uint64(14695981039346656037)
        for k in range(offsets[i], offsets[i + 1]):
            h = (h ^ np.uint64(data[k])) * np.uint64(1099511628211)
        out[i] = h


def record_id_hashes(ids: pa.Array) -> np.ndarray:
    """A 64-bit FNV-1a hash of each string (8 bytes a record, whatever the ids' length)."""
    ids = ids.cast(pa.string()) if not pa.types.is_string(ids.type) else ids
    offsets = np.frombuffer(ids.buffers()[1], dtype=np.int32, count=len(ids) + 1,
                            offset=ids.offset * 4)
    data_buffer = ids.buffers()[2]
    data = (np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None
            else np.zeros(0, np.uint8))
    out = np.empty(len(ids), dtype=np.uint64)
    _fnv1a(offsets, data, out)
    return out


def repeated_rows(hashes: np.ndarray) -> np.ndarray:
    """Rows whose hash another row shares (candidates; confirm on the strings)."""
    order = np.argsort(hashes, kind="stable")
    ordered = hashes[order]
    same = np.zeros(len(hashes), dtype=bool)
    if len(hashes) > 1:
        equal = ordered[1:] == ordered[:-1]
        same[1:] |= equal
        same[:-1] |= equal
    return np.sort(order[same])


def _footer_bytes(path: Path) -> int:
    with path.open("rb") as handle:
        handle.seek(0, 2)
        size = handle.tell()
        if size < 12:
            return -1
        handle.seek(size - 8)
        length, magic = struct.unpack("<I4s", handle.read(8))
    return int(length) if magic == b"PAR1" else -1


def _metadata(name: str, schema: pa.Schema) -> dict[str, str]:
    found: dict[str, str] = {}
    for key, value in (schema.metadata or {}).items():
        if not key.startswith(_META.encode()):
            continue
        try:
            found[key.decode("utf-8")[len(_META):]] = value.decode("utf-8")
        except UnicodeDecodeError as e:
            raise InputError(f"{name}: file metadata key {key[:40]!r} or its value is not "
                             f"UTF-8 text") from e
    if found.get("format") != FORMAT_NAME:
        raise InputError(f"{name}: not a {FORMAT_NAME} encodings file (metadata pprl.format "
                         f"is missing or other); make it with `pprl tokenize` or `pprl deid`")
    missing = [f"pprl.{k}" for k in _REQUIRED_META if not found.get(k)]
    if missing:
        raise InputError(f"{name}: required file metadata {missing} missing; make the file "
                         f"with this version of `pprl tokenize` or `pprl deid`")
    if not found["bloom_filter_bits"].isdigit() or not 8 <= int(found["bloom_filter_bits"]) \
            <= 1 << 16:
        raise InputError(f"{name}: file metadata pprl.bloom_filter_bits must be a whole "
                         f"number of bits (8 to 65536)")
    if declared_tokens(name, found.get("tokens")) and not found.get("token_key_check_value"):
        raise InputError(f"{name}: file metadata pprl.token_key_check_value missing, though "
                         f"pprl.tokens declares tokens")
    return found


def _check_types(name: str, schema: pa.Schema, clk_bytes: int,
                 token_columns: list[str]) -> None:
    """The three columns and the declared token columns, of their types, and no other: an
    extra column is never checked, and one of a few kilobytes can decode to gigabytes
    wherever the file is read whole."""
    expected = {"record_id": "string", "clk": f"fixed_size_binary[{clk_bytes}]",
                "popcount": "uint16", **dict.fromkeys(token_columns, "string")}
    extra = [column for column in schema.names if column not in expected]
    undeclared = [column for column in extra if column.startswith("token_")]
    if undeclared:
        raise InputError(f"{name}: column {undeclared[0][:64]!r} is not declared in file "
                         f"metadata pprl.tokens; write the file with `pprl tokenize "
                         f"--with-tokens`")
    if extra:
        raise InputError(f"{name}: column {extra[0][:64]!r} is not part of an encodings file "
                         f"(record_id, clk and popcount only); write the file with "
                         f"`pprl tokenize` or `pprl deid`")
    for column, wanted in expected.items():
        if column not in schema.names:
            raise InputError(f"{name}: column {column} is missing")
        found = schema.field(column).type
        if pa.types.is_dictionary(found):
            found = found.value_type
        if column == "record_id" and pa.types.is_large_string(found):
            continue
        if str(found) != wanted:
            raise InputError(f"{name}: column {column} must be {wanted}, found {found}")


def check_bounds(path: Path, name: str, limits: EncodingsLimits) -> None:
    """What any Parquet file from elsewhere must pass before it is decoded: a footer within
    bounds, at least one and at most ``max_records`` rows, and no column chunk that
    decodes to more than ``max_column_chunk_bytes``.

    Raises:
        InputError: naming ``name`` and the bound.
    """
    footer = _footer_bytes(path)
    if footer < 0:
        raise InputError(f"{name}: not a Parquet file")
    if footer > limits.max_footer_bytes:
        raise InputError(f"{name}: its Parquet metadata is {footer:,} bytes, more than the "
                         f"{limits.max_footer_bytes:,} allowed")
    try:
        parquet = pq.ParquetFile(path, thrift_string_size_limit=limits.max_footer_bytes,
                                 thrift_container_size_limit=1 << 20)
    except (pa.ArrowException, OSError, ValueError, KeyError) as e:
        raise InputError(f"{name}: cannot be read as Parquet ({type(e).__name__})") from e
    _check_row_groups(name, parquet, limits, parquet.schema_arrow.names)


def _check_row_groups(name: str, parquet: pq.ParquetFile, limits: EncodingsLimits,
                      columns: list[str] | None = None) -> None:
    metadata = parquet.metadata
    if metadata.num_rows == 0:
        raise InputError(f"{name}: holds no records; an empty upload would replace the "
                         f"party's data with nothing")
    if metadata.num_rows > limits.max_records:
        raise InputError(f"{name}: holds {metadata.num_rows:,} records, more than the "
                         f"{limits.max_records:,} one upload may hold")
    checked = set(columns or ("record_id", "clk", "popcount"))
    for group in range(metadata.num_row_groups):
        row_group = metadata.row_group(group)
        for index in range(row_group.num_columns):
            chunk = row_group.column(index)
            column = chunk.path_in_schema.split(".")[0]
            if column in checked and \
                    chunk.total_uncompressed_size > limits.max_column_chunk_bytes:
                raise InputError(
                    f"{name}: row group {group} column {column} decodes to "
                    f"{chunk.total_uncompressed_size:,} bytes, more than the "
                    f"{limits.max_column_chunk_bytes:,} allowed; write smaller row groups")


def _ids_of(name: str, column: pa.Array, first_row: int, limits: EncodingsLimits) -> pa.Array:
    """The batch's record ids as plain strings, each checked; a dictionary is checked before
    it is expanded, so one long value repeated cannot blow up."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    values = column.dictionary if pa.types.is_dictionary(column.type) else column
    if values.null_count or column.null_count:
        raise InputError(f"{name}: column record_id has an empty (null) value near row "
                         f"{first_row + 1:,}")
    try:
        values.validate(full=True)
    except pa.ArrowInvalid as e:
        raise InputError(f"{name}: column record_id holds bytes that are not UTF-8 near row "
                         f"{first_row + 1:,}") from e
    lengths = pc.binary_length(values)
    if len(values) and pc.max(lengths).as_py() > limits.max_record_id_bytes:
        raise InputError(f"{name}: a record_id near row {first_row + 1:,} is longer than "
                         f"{limits.max_record_id_bytes} bytes")
    if len(values) and pc.min(lengths).as_py() == 0:
        raise InputError(f"{name}: a record_id near row {first_row + 1:,} is empty")
    if pa.types.is_dictionary(column.type):
        column = values.take(column.indices)
    return column.cast(pa.string())


def _check_tokens(name: str, column_name: str, column: pa.Array | pa.ChunkedArray,
                  first_row: int) -> None:
    """Each token null or exactly :data:`TOKEN_CHARS` ASCII characters; a dictionary is
    checked before it is expanded (only a flag per row is)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    values = column.dictionary if pa.types.is_dictionary(column.type) else column
    bad = pc.fill_null(pc.or_(pc.not_equal(pc.binary_length(values), TOKEN_CHARS),
                              pc.invert(pc.string_is_ascii(values))), False)
    if pa.types.is_dictionary(column.type):
        bad = pc.fill_null(bad.take(column.indices), False)
    wrong = np.flatnonzero(bad.to_numpy(zero_copy_only=False))
    if len(wrong):
        raise InputError(f"{name}: column {column_name} row {first_row + int(wrong[0]) + 1:,}: "
                         f"a token must be null or {TOKEN_CHARS} ASCII characters")


def check_parquet_encodings(path: Path, name: str, limits: EncodingsLimits
                            ) -> EncodingsSummary:
    """Check ``path`` as a ``pprl-encodings/1`` file, reading one batch of rows at a time.

    Raises:
        InputError: naming ``name``, the column or metadata key, and the rule broken.
    """
    footer = _footer_bytes(path)
    if footer < 0:
        raise InputError(f"{name}: not a Parquet file")
    if footer > limits.max_footer_bytes:
        raise InputError(f"{name}: its Parquet metadata is {footer:,} bytes, more than the "
                         f"{limits.max_footer_bytes:,} allowed")
    def open_parquet(**options: object) -> pq.ParquetFile:
        try:
            return pq.ParquetFile(path, thrift_string_size_limit=limits.max_footer_bytes,
                                  thrift_container_size_limit=1 << 20, **options)
        except (pa.ArrowException, OSError, ValueError, KeyError) as e:
            raise InputError(f"{name}: cannot be read as Parquet ({type(e).__name__})") from e

    schema = open_parquet().schema_arrow
    meta = _metadata(name, schema)
    bits = int(meta["bloom_filter_bits"])
    clk_bytes = (bits + 7) // 8
    token_columns = [token_column(rule) for rule in declared_tokens(name, meta.get("tokens"))]
    _check_types(name, schema, clk_bytes, token_columns)
    # Record ids and tokens stay dictionary-encoded as read: a dictionary is checked before
    # it expands.
    parquet = open_parquet(read_dictionary=["record_id", *token_columns])
    _check_row_groups(name, parquet, limits, ["record_id", "clk", "popcount", *token_columns])
    hashes = np.empty(parquet.metadata.num_rows, dtype=np.uint64)
    row = 0
    try:
        for batch in parquet.iter_batches(batch_size=_BATCH_ROWS,
                                          columns=["record_id", "clk", "popcount",
                                                   *token_columns]):
            ids = _ids_of(name, batch.column("record_id"), row, limits)
            for column_name in token_columns:
                _check_tokens(name, column_name, batch.column(column_name), row)
            clk, popcount = batch.column("clk"), batch.column("popcount")
            if clk.null_count or popcount.null_count:
                raise InputError(f"{name}: columns clk and popcount must not be null "
                                 f"(near row {row + 1:,})")
            if pa.types.is_dictionary(clk.type):
                clk = clk.dictionary.take(clk.indices)
            raw = np.frombuffer(clk.buffers()[1], dtype=np.uint8, count=len(clk) * clk_bytes,
                                offset=clk.offset * clk_bytes).reshape(len(clk), clk_bytes)
            counted = np.bitwise_count(raw).sum(axis=1, dtype=np.uint16)
            wrong = np.flatnonzero(counted != popcount.to_numpy(zero_copy_only=False))
            if len(wrong):
                raise InputError(f"{name}: popcount does not match the CLK in "
                                 f"{len(wrong):,} record(s), first at row "
                                 f"{row + int(wrong[0]) + 1:,}")
            if len(pc.unique(ids)) < len(ids):
                _refuse_repeats_within(name, ids, row)
            hashes[row:row + len(ids)] = record_id_hashes(ids)
            row += len(ids)
    except pa.ArrowException as e:
        raise InputError(f"{name}: cannot be read as Parquet near row {row + 1:,} "
                         f"({type(e).__name__})") from e
    _check_unique(name, parquet, hashes)
    return EncodingsSummary(row, bits, meta["schema_fingerprint"], meta["key_check_value"],
                            meta.get("provider") or None)


def _refuse_repeats_within(name: str, ids: pa.Array, first_row: int) -> None:
    """Repeats inside one batch: named at once, before the rest is read."""
    seen: dict[str, int] = {}
    for offset, value in enumerate(ids.to_pylist()):
        if value in seen:
            raise InputError(f"{name}: record_id of row {first_row + offset + 1:,} repeats row "
                             f"{first_row + seen[value] + 1:,}; record ids must be unique")
        seen[value] = offset


def _check_unique(name: str, parquet: pq.ParquetFile, hashes: np.ndarray) -> None:
    """Record ids are unique: equal hashes are confirmed on the strings (a second pass over
    record_id only, keeping just the candidates). So many candidates that keeping them
    would cost memory cannot be chance (64-bit hashes): they are reported as repeats."""
    candidates = repeated_rows(hashes)
    if not len(candidates):
        return
    if len(candidates) > _MAX_CONFIRMED:
        raise InputError(f"{name}: {len(candidates):,} rows share their record_id with "
                         f"another row; record ids must be unique")
    wanted = set(candidates.tolist())
    seen: dict[str, int] = {}
    repeats: list[tuple[int, int]] = []
    row = 0
    for batch in parquet.iter_batches(batch_size=_BATCH_ROWS, columns=["record_id"]):
        ids = batch.column("record_id")
        if pa.types.is_dictionary(ids.type):
            ids = ids.dictionary.take(ids.indices)
        for offset, value in enumerate(ids.to_pylist()):
            if row + offset in wanted:
                if value in seen:
                    repeats.append((seen[value] + 1, row + offset + 1))
                else:
                    seen[value] = row + offset
        row += len(ids)
    if repeats:
        shown = ", ".join(f"rows {a:,} and {b:,}" for a, b in repeats[:3])
        raise InputError(f"{name}: {len(repeats):,} record_id(s) repeat an earlier one "
                         f"({shown}); record ids must be unique")
