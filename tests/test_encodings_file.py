"""Round trips of both output formats, and reading what clkhash itself wrote."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from tokenizer.catalog import load_schema
from tokenizer.encodings_file import (
    FORMAT_NAME,
    EncodingsMetadata,
    EncodingsWriter,
    read_encodings,
)
from tokenizer.errors import InputError
from tokenizer.pipeline import tokenize_file

from .bad_uploads import with_expanding_column
from .golden import case

GOLDEN = case("febrl4a_bits_per_token")


def test_parquet_round_trip_keeps_ids_clks_and_metadata(tmp_path) -> None:
    schema = load_schema(GOLDEN.schema_path)
    out = tmp_path / "a.parquet"
    tokenize_file(GOLDEN.data_path, schema, GOLDEN.secret, out, id_column="rec_id",
                  provider="imaging")
    data = read_encodings(out)
    _, rows = GOLDEN.rows()
    assert data.record_ids == [r["rec_id"] for r in rows]
    assert [bytes(c) for c in data.clks] == GOLDEN.expected_clks()
    assert np.array_equal(data.popcounts, np.bitwise_count(data.clks).sum(axis=1))
    meta = data.metadata
    assert meta.bloom_filter_bits == 1024 and meta.schema_fingerprint == schema.fingerprint
    assert meta.provider == "imaging" and meta.tool_version
    assert meta.source_format == FORMAT_NAME
    # design.md: fixed-size binary of l/8 bytes, uint16 popcount
    arrow = pq.read_schema(out)
    assert str(arrow.field("clk").type) == "fixed_size_binary[128]"
    assert str(arrow.field("popcount").type) == "uint16"
    assert GOLDEN.secret not in out.read_bytes()


def test_clkhash_json_output_is_what_clkhash_writes(tmp_path) -> None:
    out = tmp_path / "a.json"
    tokenize_file(GOLDEN.data_path, load_schema(GOLDEN.schema_path), GOLDEN.secret, out,
                  output_format="clkhash-json")
    ours = json.loads(out.read_text())
    theirs = json.loads((GOLDEN.folder / "clks.json").read_text())
    assert ours == {"clks": theirs["clks"]}
    back = read_encodings(out)
    assert [bytes(c) for c in back.clks] == GOLDEN.expected_clks()


def test_reads_clkhash_golden_json_directly() -> None:
    data = read_encodings(GOLDEN.folder / "clks.json")
    assert len(data) == 5000 and data.metadata.bloom_filter_bits == 1024
    assert data.metadata.schema_fingerprint is None


def test_empty_outputs_round_trip(tmp_path) -> None:
    meta = EncodingsMetadata(1024, "f" * 64)
    for name, fmt in (("e.parquet", "parquet"), ("e.json", "clkhash-json")):
        writer = EncodingsWriter(tmp_path / name, meta, fmt)
        writer.commit()
        assert len(read_encodings(tmp_path / name)) == 0


@pytest.mark.parametrize(("name", "content", "words"), [
    ("bad.json", "not json", "not valid JSON"),
    ("shape.json", '{"clk": []}', "clks"),
    ("b64.json", '{"clks": ["***"]}', "clks[0]"),
    ("ragged.json", json.dumps({"clks": [base64.b64encode(b"ab").decode(),
                                         base64.b64encode(b"abc").decode()]}), "lengths"),
])
def test_broken_clkhash_json_is_refused_clearly(tmp_path, name, content, words) -> None:
    (tmp_path / name).write_text(content)
    with pytest.raises(InputError) as raised:
        read_encodings(tmp_path / name)
    assert name in str(raised.value) and words in str(raised.value)


def test_foreign_parquet_is_refused(tmp_path) -> None:
    import pyarrow as pa

    pq.write_table(pa.table({"x": [1]}), tmp_path / "other.parquet")
    with pytest.raises(InputError, match="not a pprl-encodings"):
        read_encodings(tmp_path / "other.parquet")


def _memory_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field}")


def test_only_the_formats_columns_are_read(tmp_path) -> None:
    """The audit's case: an upload with an extra column of one long string repeated (a few
    kilobytes that decode to hundreds of megabytes) was read whole by the worker. Other
    columns are never decoded (the peak is reset first: 5 > clear_refs)."""
    out = tmp_path / "a.parquet"
    tokenize_file(GOLDEN.data_path, load_schema(GOLDEN.schema_path), GOLDEN.secret, out,
                  id_column="rec_id")
    table = pq.read_table(out)  # 5,000 rows: 500 MB of notes when decoded
    pq.write_table(with_expanding_column(table), tmp_path / "notes.parquet")
    assert (tmp_path / "notes.parquet").stat().st_size < 2 * out.stat().st_size
    Path("/proc/self/clear_refs").write_text("5")
    before = _memory_mib("VmRSS")
    data = read_encodings(tmp_path / "notes.parquet")
    assert _memory_mib("VmHWM") - before < 200
    assert len(data) == table.num_rows
