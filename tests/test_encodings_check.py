"""Checking an encodings file made elsewhere, batch by batch: repeats across batches,
confirmed on the strings; one long value repeated is refused before it is expanded."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tokenizer.encodings_check import (
    EncodingsLimits,
    check_parquet_encodings,
    record_id_hashes,
    repeated_rows,
)
from tokenizer.encodings_file import EncodingsMetadata, EncodingsWriter
from tokenizer.errors import InputError

ROWS = 150_000  # more than two batches of 65,536


def _write(path, ids: list[str]) -> None:
    meta = EncodingsMetadata(64, "f" * 64, "p", "0", None, key_check="0" * 16)
    writer = EncodingsWriter(path, meta)
    clks = np.random.default_rng(1).integers(0, 256, (len(ids), 8), dtype=np.uint8)
    writer.write(ids, clks, np.bitwise_count(clks).sum(axis=1))
    writer.commit()


def test_a_good_file_passes_with_its_summary(tmp_path) -> None:
    _write(tmp_path / "good.parquet", [f"r{i}" for i in range(ROWS)])
    summary = check_parquet_encodings(tmp_path / "good.parquet", "upload", EncodingsLimits())
    assert (summary.records, summary.bloom_filter_bits, summary.key_check) == (
        ROWS, 64, "0" * 16)


def test_repeats_across_batches_are_found_and_named_by_row(tmp_path) -> None:
    ids = [f"r{i}" for i in range(ROWS)]
    ids[140_000], ids[149_999] = ids[3], ids[70_000]
    _write(tmp_path / "dupes.parquet", ids)
    with pytest.raises(InputError) as raised:
        check_parquet_encodings(tmp_path / "dupes.parquet", "upload", EncodingsLimits())
    assert "2 record_id(s) repeat" in str(raised.value)
    assert "rows 4 and 140,001" in str(raised.value) and "rows 70,001 and 150,000" in str(
        raised.value)
    assert "r3" not in str(raised.value)


def test_equal_hashes_of_different_ids_are_not_repeats() -> None:
    hashes = np.array([5, 7, 5, 9, 7], np.uint64)
    assert repeated_rows(hashes).tolist() == [0, 1, 2, 4]
    ids = pa.array(["a", "b", "a"])
    assert record_id_hashes(ids)[0] == record_id_hashes(ids)[2] != record_id_hashes(ids)[1]


def test_limits_are_applied_before_reading(tmp_path) -> None:
    _write(tmp_path / "long.parquet", ["x" * 300])
    with pytest.raises(InputError, match="longer than 256 bytes"):
        check_parquet_encodings(tmp_path / "long.parquet", "upload", EncodingsLimits())
    _write(tmp_path / "many.parquet", [f"r{i}" for i in range(100)])
    with pytest.raises(InputError, match="more than the 99 one upload may hold"):
        check_parquet_encodings(tmp_path / "many.parquet", "upload",
                                EncodingsLimits(max_records=99))
    table = pq.read_table(tmp_path / "many.parquet")
    pq.write_table(table, tmp_path / "big-group.parquet", compression="none")
    with pytest.raises(InputError, match="write smaller row groups"):
        check_parquet_encodings(tmp_path / "big-group.parquet", "upload",
                                EncodingsLimits(max_column_chunk_bytes=500))
