"""``manifest.parquet``: one row per exported instance, mapping the site pseudonym to the
patient's CLK and the instance's remapped UIDs.

The CLK column is the same bytes ``pprl tokenize`` writes for the same person, so the
linkage unit can link imaging to EHR and claims encodings without ever seeing an identifier.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tokenizer.encodings_file import AtomicFile, tool_version
from tokenizer.schema_model import Schema

__all__ = ["ManifestRow", "write_manifest", "MANIFEST_FORMAT"]

MANIFEST_FORMAT = "pprl-deid-manifest/1"

ManifestRow = tuple[str, bytes | None, int | None, str, str, str, str, str, str]
_COLUMNS = [
    ("pseudonym", pa.string()), ("clk", None), ("popcount", pa.uint16()),
    ("study_instance_uid", pa.string()), ("series_instance_uid", pa.string()),
    ("sop_instance_uid", pa.string()), ("modality", pa.string()),
    ("study_date", pa.string()), ("file", pa.string()),
]


def write_manifest(path: Path, rows: Sequence[ManifestRow], schema: Schema) -> None:
    """Write atomically. ``clk``/``popcount`` are null for a patient whose identifiers the
    schema rejected (the run's report says why)."""
    types = [t if t is not None else pa.binary(schema.clk_bytes) for _, t in _COLUMNS]
    arrays = [pa.array([row[i] for row in rows], types[i]) for i in range(len(_COLUMNS))]
    metadata = {
        "pprl.format": MANIFEST_FORMAT,
        "pprl.bloom_filter_bits": str(schema.bloom_filter_bits),
        "pprl.schema_fingerprint": schema.fingerprint,
        "pprl.tool_version": tool_version(),
    }
    table = pa.table(arrays, names=[name for name, _ in _COLUMNS]).replace_schema_metadata(
        {k.encode(): v.encode() for k, v in metadata.items()})
    file = AtomicFile(path)
    try:
        pq.write_table(table, file.temp)
        file.commit()
    except BaseException:
        file.discard()
        raise
