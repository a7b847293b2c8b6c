"""Byte-identical CLKs with clkhash 0.18.3 on every golden case, through every path."""

from __future__ import annotations

import csv

import numpy as np
import pyarrow as pa
import pytest

from tokenizer.catalog import load_schema
from tokenizer.encoder import ClkEncoder
from tokenizer.encodings_file import read_encodings
from tokenizer.errors import AllRowsRejectedError
from tokenizer.pipeline import rejects_path_for, tokenize_file
from tokenizer.reference import RecordRejected, encode_record_reference, encode_records_reference

from .golden import CASES, case


def _columns(rows: list[dict[str, str]], names: list[str]) -> dict[str, pa.Array]:
    return {n: pa.array([r[n] for r in rows], pa.string()) for n in names}


@pytest.mark.parametrize("name", CASES)
def test_fast_encoder_matches_every_clk(name: str) -> None:
    golden = case(name)
    schema = load_schema(golden.schema_path)
    header, rows = golden.rows()
    encoder = ClkEncoder(schema, golden.secret)
    encoded = encoder.encode(_columns(rows, encoder.required_columns))
    expected = golden.expected_clks()
    assert encoded.valid.all()
    assert len(encoded.clks) == len(expected)
    mismatched = [i for i, (ours, theirs) in enumerate(zip(encoded.clks, expected, strict=True))
                  if ours.tobytes() != theirs]
    assert mismatched == []
    assert encoded.popcounts.tolist() == [int.from_bytes(c).bit_count() for c in expected]


@pytest.mark.parametrize("name", CASES)
def test_reference_encoder_matches_every_clk(name: str) -> None:
    golden = case(name)
    schema = load_schema(golden.schema_path)
    _, rows = golden.rows()
    assert encode_records_reference(schema, golden.secret, rows) == golden.expected_clks()


@pytest.mark.parametrize("name", CASES)
def test_tokenize_file_matches_every_clk(name: str, tmp_path) -> None:
    golden = case(name)
    out = tmp_path / "clks.parquet"
    report = tokenize_file(golden.data_path, load_schema(golden.schema_path), golden.secret, out,
                           chunk_size=997)
    expected = golden.expected_clks()
    assert report.rejected == 0 and report.records_written == len(expected)
    written = read_encodings(out)
    assert [bytes(c) for c in written.clks] == expected
    assert written.record_ids == [str(i) for i in range(1, len(expected) + 1)]


def test_rows_clkhash_rejects_are_rejected_with_row_field_and_reason(tmp_path) -> None:
    golden = case("febrl4b_with_invalid_rows")
    header, invalid = golden.rows(golden.invalid_path)
    out = tmp_path / "out.parquet"
    with pytest.raises(AllRowsRejectedError) as raised:
        tokenize_file(golden.invalid_path, load_schema(golden.schema_path), golden.secret,
                      out, id_column="rec_id")
    assert raised.value.count == len(invalid) == 86
    assert sum(n for _, n in raised.value.reasons) == 86
    assert not out.exists()
    with rejects_path_for(out).open(encoding="utf-8", newline="") as handle:
        rejects = list(csv.DictReader(handle))
    assert [int(r["row"]) for r in rejects] == list(range(1, 87))
    assert [r["rec_id"] for r in rejects] == [r["rec_id"] for r in invalid]
    for reject in rejects:
        assert reject["fields"], reject
        for field in reject["fields"].split(";"):
            assert field in header
            assert field in reject["reason"]


def test_valid_and_invalid_rows_mixed_keep_valid_clks(tmp_path) -> None:
    """Invalid rows interleaved with valid ones: the valid rows still get clkhash's CLKs."""
    golden = case("febrl4b_with_invalid_rows")
    header, valid = golden.rows()
    _, invalid = golden.rows(golden.invalid_path)
    mixed = [row for pair in zip(valid, invalid, strict=False) for row in pair]
    mixed += valid[len(invalid):]
    source = tmp_path / "mixed.csv"
    with source.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, header)
        writer.writeheader()
        writer.writerows(mixed)
    out = tmp_path / "mixed.parquet"
    report = tokenize_file(source, load_schema(golden.schema_path), golden.secret, out,
                           id_column="rec_id", chunk_size=100)
    assert report.rejected == 86
    written = read_encodings(out)
    expected = dict(zip((r["rec_id"] for r in valid), golden.expected_clks(), strict=True))
    assert written.record_ids == [r["rec_id"] for r in valid]
    assert all(bytes(c) == expected[i] for i, c in zip(written.record_ids, written.clks,
                                                        strict=True))
    assert np.array_equal(written.popcounts,
                          np.bitwise_count(written.clks).sum(axis=1))


def test_reference_encoder_rejects_what_clkhash_rejects() -> None:
    golden = case("febrl4b_with_invalid_rows")
    schema = load_schema(golden.schema_path)
    _, invalid = golden.rows(golden.invalid_path)
    for row in invalid:
        with pytest.raises(RecordRejected):
            encode_record_reference(schema, golden.secret, row)
