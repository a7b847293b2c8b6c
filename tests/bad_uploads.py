"""Encodings files that a careless or hostile party could upload, each made from a good one
with one thing changed: a column's type, a metadata value, the row count, the size it
decodes to."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["BAD_PARQUET", "write_bad", "write_expanding", "with_expanding_column"]


def _with_metadata(table: pa.Table, **changes: bytes | None) -> pa.Table:
    metadata = dict(table.schema.metadata or {})
    for key, value in changes.items():
        name = f"pprl.{key}".encode()
        if value is None:
            metadata.pop(name, None)
        else:
            metadata[name] = value
    return table.replace_schema_metadata(metadata)


def _replace(table: pa.Table, column: str, values: pa.Array) -> pa.Table:
    return table.set_column(table.schema.get_field_index(column), column, values)


def _ints(table: pa.Table) -> pa.Table:
    return _replace(table, "record_id", pa.array(np.arange(table.num_rows), pa.int64()))


def _floats(table: pa.Table) -> pa.Table:
    return _replace(table, "record_id", pa.array(np.arange(table.num_rows) + 0.5))


def _binary(table: pa.Table) -> pa.Table:
    values = [b"\xff\xfe" + str(i).encode() for i in range(table.num_rows)]
    return _replace(table, "record_id", pa.array(values, pa.binary()))


def _lists(table: pa.Table) -> pa.Table:
    return _replace(table, "record_id", pa.array([[str(i)] for i in range(table.num_rows)]))


def _string_popcount(table: pa.Table) -> pa.Table:
    return _replace(table, "popcount", table["popcount"].cast(pa.string()))


def _wrong_popcount(table: pa.Table) -> pa.Table:
    counts = table["popcount"].to_numpy().copy()
    counts[3] += 1
    return _replace(table, "popcount", pa.array(counts, pa.uint16()))


def _narrow_clk(table: pa.Table) -> pa.Table:
    width = table.schema.field("clk").type.byte_width
    cut = [value[:-1] for value in table["clk"].to_pylist()]
    return _replace(table, "clk", pa.array(cut, pa.binary(width - 1)))


def _null_record_id(table: pa.Table) -> pa.Table:
    ids = table["record_id"].to_pylist()
    ids[2] = None
    return _replace(table, "record_id", pa.array(ids, pa.string()))


def _empty_record_id(table: pa.Table) -> pa.Table:
    ids = table["record_id"].to_pylist()
    ids[2] = ""
    return _replace(table, "record_id", pa.array(ids, pa.string()))


def with_expanding_column(table: pa.Table, value_bytes: int = 100_000) -> pa.Table:
    """``table`` and a column ``notes`` holding one long string in every row: Parquet keeps
    it once in a dictionary page (the file grows by kilobytes), a reader of the whole file
    decodes it once a row (``value_bytes`` times the rows)."""
    one = pa.array(["n" * value_bytes])
    return table.append_column("notes", pa.chunked_array([one] * table.num_rows))


def _undeclared_token(table: pa.Table) -> pa.Table:
    return table.append_column("token_T1", pa.array(["t" * 44] * table.num_rows))


def _long_token(table: pa.Table) -> pa.Table:
    tokens = ["t" * 44] * table.num_rows
    tokens[2] = "t" * 45
    return _with_metadata(table.append_column("token_T1", pa.array(tokens)), tokens=b"T1",
                          token_key_check_value=b"0" * 16)


# name -> (how the good table is changed, words the 422 message must hold)
BAD_PARQUET: dict[str, tuple[Callable[[pa.Table], pa.Table], str]] = {
    "int64 record_id": (_ints, "column record_id must be string, found int64"),
    "float64 record_id": (_floats, "column record_id must be string, found double"),
    "binary record_id": (_binary, "column record_id must be string, found binary"),
    "list record_id": (_lists, "column record_id must be string, found list<element: string>"),
    "string popcount": (_string_popcount, "column popcount must be uint16, found string"),
    "popcount not the CLK's": (_wrong_popcount,
                               "popcount does not match the CLK in 1 record(s), first at row 4"),
    "CLK a byte short": (_narrow_clk, "column clk must be fixed_size_binary[128], found "
                                      "fixed_size_binary[127]"),
    "null record_id": (_null_record_id, "column record_id has an empty (null) value"),
    "empty record_id": (_empty_record_id, "is empty"),
    "non-numeric bloom_filter_bits": (
        lambda t: _with_metadata(t, bloom_filter_bits=b"many"),
        "pprl.bloom_filter_bits must be a whole number"),
    "non-UTF-8 metadata": (lambda t: _with_metadata(t, provider=b"\xff\xfe\xfd"),
                           "is not UTF-8 text"),
    "no schema fingerprint": (lambda t: _with_metadata(t, schema_fingerprint=None),
                              "['pprl.schema_fingerprint'] missing"),
    "no key check value": (lambda t: _with_metadata(t, key_check_value=None),
                           "['pprl.key_check_value'] missing"),
    "zero records": (lambda t: t.slice(0, 0), "holds no records"),
    "extra column": (with_expanding_column, "column 'notes' is not part of an encodings file"),
    "undeclared token column": (_undeclared_token,
                                "column 'token_T1' is not declared in file metadata pprl.tokens"),
    "45-character token": (_long_token, "column token_T1 row 3: a token must be null or 44 "
                                        "ASCII characters"),
}


def write_bad(good: Path, name: str, target: Path) -> str:
    """Write the bad file ``name`` made from ``good``; returns what its 422 must say."""
    change, message = BAD_PARQUET[name]
    pq.write_table(change(pq.read_table(good)), target)
    return message


def write_expanding(good: Path, target: Path, rows: int = 8_000_000) -> None:
    """A file of a few kilobytes that decodes to gigabytes: one long record id and one CLK,
    dictionary-encoded, repeated ``rows`` times."""
    table = pq.read_table(good)
    width = table.schema.field("clk").type.byte_width
    ids = pa.DictionaryArray.from_arrays(pa.array(np.zeros(rows, np.int32)),
                                         pa.array(["x" * 250]))
    clk = pa.DictionaryArray.from_arrays(
        pa.array(np.zeros(rows, np.int32)),
        pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), 1,
                                             [None, pa.py_buffer(bytes(width))]))
    expanding = pa.table({"record_id": ids, "clk": clk,
                          "popcount": pa.array(np.zeros(rows, np.uint16))})
    expanding = expanding.replace_schema_metadata(table.schema.metadata)
    pq.write_table(expanding, target, compression="zstd", row_group_size=rows)
