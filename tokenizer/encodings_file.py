"""The encodings file a provider uploads, and clkhash's JSON interchange format.

Parquet layout (design.md): ``record_id`` string, ``clk`` fixed-size binary of l/8 bytes (the
exact bytes clkhash serialises), ``popcount`` uint16; file metadata carries the schema
fingerprint, l, provider label and tool version so that the linker can refuse mismatches.
Writers go to a temporary file in the target folder and rename it on success, so an
interrupted run never leaves a half-written file.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import InputError

__all__ = [
    "FORMAT_NAME",
    "EncodingsMetadata",
    "EncodingSet",
    "AtomicFile",
    "EncodingsWriter",
    "read_encodings",
    "tool_version",
    "INCOMPLETE_MARKER",
    "check_folder_complete",
    "TOKEN_RULES",
    "TOKEN_CHARS",
    "token_column",
    "declared_tokens",
]

FORMAT_NAME = "pprl-encodings/1"
OutputFormat = Literal["parquet", "clkhash-json"]
_META_PREFIX = "pprl."
_COLUMNS = ("record_id", "clk", "popcount")
# OpenToken's rules whose tokens an encodings file may carry, one column each.
TOKEN_RULES = ("T1", "T2", "T3", "T4", "T5")
TOKEN_CHARS = 44  # base64 of an HMAC-SHA256
# A producer that writes a whole folder (``pprl deid``) puts this file in it while it works and
# removes it last: files of a folder holding it are from a run that has not finished.
INCOMPLETE_MARKER = "INCOMPLETE"


def tool_version() -> str:
    from importlib import metadata  # here: a tenth of a second to import, once per run

    try:
        return metadata.version("pprl-imaging")
    except metadata.PackageNotFoundError:
        return "0+unknown"


@dataclass(frozen=True)
class EncodingsMetadata:
    """What an encodings file says about itself (never anything secret)."""

    bloom_filter_bits: int
    schema_fingerprint: str | None
    provider: str | None = None
    tool_version: str | None = None
    schema_json: str | None = None
    source_format: str = FORMAT_NAME
    key_check: str | None = None
    """Key check value of the linkage secret (``tokenizer.keys.key_check_value``)."""
    tokens: tuple[str, ...] = ()
    """OpenToken rules whose tokens the file carries (columns ``token_<rule>``)."""
    token_key_check: str | None = None
    """Key check value of the tokens' hashing secret (purpose ``token secret``)."""

    def as_parquet_metadata(self) -> dict[bytes, bytes]:
        fields = {
            "format": FORMAT_NAME,
            "bloom_filter_bits": str(self.bloom_filter_bits),
            "schema_fingerprint": self.schema_fingerprint or "",
            "provider": self.provider or "",
            "tool_version": self.tool_version or "",
            "schema": self.schema_json or "",
            "key_check_value": self.key_check or "",
        }
        if self.tokens:  # files without tokens stay as they were
            fields["tokens"] = ",".join(self.tokens)
            fields["token_key_check_value"] = self.token_key_check or ""
        return {f"{_META_PREFIX}{k}".encode(): v.encode("utf-8") for k, v in fields.items()}


@dataclass(frozen=True)
class EncodingSet:
    """A whole encodings file in memory.

    Attributes:
        record_ids: one string per record.
        clks: uint8 array (n, ceil(l/8)).
        popcounts: uint16 array (n,).
        tokens: rule -> object array (n,) of 44-character tokens, None where blank.
    """

    record_ids: list[str]
    clks: np.ndarray
    popcounts: np.ndarray
    metadata: EncodingsMetadata
    tokens: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.record_ids)


class AtomicFile:
    """A file written under a temporary name and renamed into place on ``commit``."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self.temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        target.parent.mkdir(parents=True, exist_ok=True)

    def commit(self) -> None:
        os.replace(self.temp, self.target)

    def discard(self) -> None:
        with suppress(FileNotFoundError):
            self.temp.unlink()


def token_column(rule: str) -> str:
    return f"token_{rule}"


def declared_tokens(name: str, value: str | None) -> tuple[str, ...]:
    """The rules of a ``pprl.tokens`` metadata value, each known and named once.

    Raises:
        InputError: an unknown or repeated rule.
    """
    rules = tuple(r for r in (value or "").split(",") if r)
    if any(r not in TOKEN_RULES for r in rules) or len(set(rules)) != len(rules):
        raise InputError(f"{name}: file metadata pprl.tokens must list distinct rules of "
                         f"{','.join(TOKEN_RULES)}")
    return rules


def _arrow_schema(clk_bytes: int, meta: EncodingsMetadata) -> pa.Schema:
    return pa.schema(
        [pa.field("record_id", pa.string(), nullable=False),
         pa.field("clk", pa.binary(clk_bytes), nullable=False),
         pa.field("popcount", pa.uint16(), nullable=False)]
        + [pa.field(token_column(rule), pa.string()) for rule in meta.tokens],
        metadata=meta.as_parquet_metadata(),
    )


class EncodingsWriter:
    """Streams encodings to Parquet or clkhash JSON; nothing appears at ``path`` until
    :meth:`commit`."""

    def __init__(self, path: str | Path, meta: EncodingsMetadata,
                 output_format: OutputFormat = "parquet") -> None:
        self.meta = meta
        self.format = output_format
        self.clk_bytes = (meta.bloom_filter_bits + 7) // 8
        self.count = 0
        self._file = AtomicFile(Path(path))
        self._parquet: pq.ParquetWriter | None = None
        self._json: IO[str] | None = None
        if meta.tokens and output_format != "parquet":
            raise InputError("tokens can be written to a Parquet encodings file only")
        if output_format == "parquet":
            # CLKs are incompressible by design: compressing them only costs time.
            self._parquet = pq.ParquetWriter(
                self._file.temp, _arrow_schema(self.clk_bytes, meta),
                compression={"record_id": "zstd", "clk": "none", "popcount": "zstd",
                             **{token_column(rule): "zstd" for rule in meta.tokens}},
                use_dictionary=False, write_statistics=["record_id", "popcount"])
        else:
            self._json = self._file.temp.open("w", encoding="ascii")
            self._json.write('{"clks": [')

    def write(self, record_ids: list[str] | pa.Array, clks: np.ndarray,
              popcounts: np.ndarray, tokens: dict[str, pa.Array] | None = None) -> None:
        """``tokens``: rule -> string array (null for a blank token), one for each rule of
        the metadata's ``tokens``."""
        if len(clks) == 0:
            return
        if self._parquet is not None:
            flat = pa.py_buffer(np.ascontiguousarray(clks).tobytes())
            clk_array = pa.FixedSizeBinaryArray.from_buffers(
                pa.binary(self.clk_bytes), len(clks), [None, flat])
            given = tokens or {}
            table = pa.table({"record_id": pa.array(record_ids, pa.string()),
                              "clk": clk_array,
                              "popcount": pa.array(popcounts, pa.uint16()),
                              **{token_column(rule): given[rule].cast(pa.string())
                                 for rule in self.meta.tokens}},
                             schema=self._parquet.schema)
            self._parquet.write_table(table)
        else:
            assert self._json is not None
            encoded = (base64.b64encode(row.tobytes()).decode("ascii") for row in clks)
            sep = ", " if self.count else ""
            self._json.write(sep + ", ".join(f'"{e}"' for e in encoded))
        self.count += len(clks)

    def commit(self) -> None:
        if self._parquet is not None:
            self._parquet.close()
        else:
            assert self._json is not None
            self._json.write("]}\n")
            self._json.close()
        self._file.commit()

    def discard(self) -> None:
        with suppress(Exception):
            if self._parquet is not None:
                self._parquet.close()
            if self._json is not None:
                self._json.close()
        self._file.discard()


def _read_parquet(path: Path) -> EncodingSet:
    """Only the format's three columns are read: any other could decode to gigabytes."""
    try:
        parquet = pq.ParquetFile(path)
        schema = parquet.schema_arrow
    except (pa.ArrowInvalid, OSError) as e:
        raise InputError(f"{path}: cannot be read as Parquet: {e}") from e
    raw_meta = {k.decode(): v.decode("utf-8") for k, v in (schema.metadata or {}).items()
                if k.startswith(_META_PREFIX.encode())}
    meta_of = lambda key: raw_meta.get(_META_PREFIX + key) or None  # noqa: E731
    if meta_of("format") != FORMAT_NAME:
        raise InputError(f"{path}: not a {FORMAT_NAME} encodings file (no pprl.format metadata); "
                         f"make it with `pprl tokenize`")
    missing = set(_COLUMNS) - set(schema.names)
    if missing:
        raise InputError(f"{path}: missing column(s) {sorted(missing)}")
    rules = declared_tokens(str(path), meta_of("tokens"))
    _check_token_columns(path, schema, rules, meta_of("token_key_check_value"))
    try:
        table = parquet.read(columns=[*_COLUMNS, *map(token_column, rules)])
    except (pa.ArrowInvalid, OSError) as e:
        raise InputError(f"{path}: cannot be read as Parquet: {e}") from e
    length = int(meta_of("bloom_filter_bits") or 0)
    clk_type = table.schema.field("clk").type
    if not pa.types.is_fixed_size_binary(clk_type) or clk_type.byte_width != (length + 7) // 8:
        raise InputError(f"{path}: column clk must be fixed-size binary of {(length + 7) // 8} "
                         f"bytes for l={length}, found {clk_type}")
    clk_column = table.column("clk").combine_chunks()
    if clk_column.null_count or table.column("record_id").null_count:
        raise InputError(f"{path}: record_id and clk must not be null")
    data = clk_column.buffers()[1]
    width = clk_type.byte_width
    start = clk_column.offset * width
    clks = np.frombuffer(data, dtype=np.uint8, count=len(clk_column) * width, offset=start)
    clks = clks.reshape(len(clk_column), width).copy()
    meta = EncodingsMetadata(length, meta_of("schema_fingerprint"), meta_of("provider"),
                             meta_of("tool_version"), meta_of("schema"),
                             key_check=meta_of("key_check_value"), tokens=rules,
                             token_key_check=meta_of("token_key_check_value"))
    popcounts = table.column("popcount").to_numpy().astype(np.uint16)
    tokens = {rule: table.column(token_column(rule)).to_numpy(zero_copy_only=False)
              for rule in rules}
    return EncodingSet(table.column("record_id").to_pylist(), clks, popcounts, meta, tokens)


def _check_token_columns(path: Path, schema: pa.Schema, rules: tuple[str, ...],
                         key_check: str | None) -> None:
    """The token columns are exactly those the metadata declares, as text, with the key
    check value of their secret: tokens of an unknown secret could never be compared."""
    present = {name for name in schema.names if name.startswith("token_")}
    declared = set(map(token_column, rules))
    if present != declared:
        odd = sorted(present ^ declared)[0]
        raise InputError(f"{path}: column {odd} and file metadata pprl.tokens disagree "
                         f"(declared: {','.join(rules) or 'none'})")
    for name in sorted(declared):
        if not pa.types.is_string(schema.field(name).type):
            raise InputError(f"{path}: column {name} must be string, found "
                             f"{schema.field(name).type}")
    if rules and not key_check:
        raise InputError(f"{path}: file metadata pprl.token_key_check_value missing, though "
                         f"the file carries tokens")


def _read_clkhash_json(path: Path) -> EncodingSet:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: not valid JSON: {e}") from e
    if not isinstance(doc, dict) or not isinstance(doc.get("clks"), list):
        raise InputError(f'{path}: expected clkhash JSON {{"clks": [base64, ...]}}')
    decoded = []
    for i, text in enumerate(doc["clks"]):
        try:
            decoded.append(base64.b64decode(text, validate=True))
        except (binascii.Error, TypeError, ValueError) as e:
            raise InputError(f"{path}: clks[{i}] is not valid base64") from e
    widths = {len(d) for d in decoded}
    if len(widths) > 1:
        raise InputError(f"{path}: CLKs have different lengths {sorted(widths)} bytes")
    width = widths.pop() if widths else 0
    clks = np.frombuffer(b"".join(decoded), dtype=np.uint8).reshape(len(decoded), width).copy()
    popcounts = np.bitwise_count(clks).sum(axis=1, dtype=np.uint16)
    meta = EncodingsMetadata(width * 8, None, source_format="clkhash-json")
    return EncodingSet([str(i) for i in range(len(decoded))], clks, popcounts, meta)


def check_folder_complete(path: str | Path) -> None:
    """Refuse a file whose folder is marked incomplete (see :data:`INCOMPLETE_MARKER`).

    Raises:
        InputError: the marker is there.
    """
    folder = Path(path).parent
    if (folder / INCOMPLETE_MARKER).exists():
        raise InputError(f"{path}: its folder {folder} is marked {INCOMPLETE_MARKER}: the run "
                         f"that writes it did not finish; run the same command again to "
                         f"complete it, then use its files")


def read_encodings(path: str | Path) -> EncodingSet:
    """Read an encodings Parquet file, or clkhash JSON (``.json``; record ids are positions,
    l is taken as 8 x the CLK bytes and there is no fingerprint, nor key check value).

    Raises:
        InputError: missing, unreadable, not an encodings file, or in an incomplete folder.
    """
    path = Path(path)
    check_folder_complete(path)  # first: an interrupted first run has not written it yet
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if path.suffix.lower() == ".json":
        return _read_clkhash_json(path)
    return _read_parquet(path)

