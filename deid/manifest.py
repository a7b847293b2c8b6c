"""What a de-identified export holds beside the images: ``manifest.parquet``, one row per
exported instance, mapping the site pseudonym to the patient's CLK and the instance's remapped
UIDs; ``encodings.parquet``, one row per patient (``record_id`` = the site pseudonym), the
encodings file the imaging site uploads like any provider; and ``attributes.parquet``, one
row per study (remapped study UID, modality, body part, shifted study date, series and
instance counts), its attributes file.

The CLKs are the same bytes ``pprl tokenize`` writes for the same person, so the linkage unit
can link imaging to EHR and claims encodings without ever seeing an identifier.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tokenizer.attributes_file import AttributeColumn, write_attributes
from tokenizer.encodings_file import AtomicFile, EncodingsMetadata, EncodingsWriter, tool_version
from tokenizer.schema_model import Schema

__all__ = ["ManifestRow", "write_manifest", "write_patient_encodings", "write_study_attributes",
           "STUDY_COLUMNS", "MANIFEST_FORMAT"]

MANIFEST_FORMAT = "pprl-deid-manifest/1"

ManifestRow = tuple[str, bytes | None, int | None, str, str, str, str, str, str]
_COLUMNS = [
    ("pseudonym", pa.string()), ("clk", None), ("popcount", pa.uint16()),
    ("study_instance_uid", pa.string()), ("series_instance_uid", pa.string()),
    ("sop_instance_uid", pa.string()), ("modality", pa.string()),
    ("study_date", pa.string()), ("file", pa.string()),
]


def write_manifest(path: Path, rows: Sequence[ManifestRow], schema: Schema,
                   key_check: str) -> None:
    """Write atomically. ``clk``/``popcount`` are null for a patient whose identifiers the
    schema rejected (the run's report says why); ``key_check`` is the linkage secret's key
    check value."""
    types = [t if t is not None else pa.binary(schema.clk_bytes) for _, t in _COLUMNS]
    arrays = [pa.array([row[i] for row in rows], types[i]) for i in range(len(_COLUMNS))]
    metadata = {
        "pprl.format": MANIFEST_FORMAT,
        "pprl.bloom_filter_bits": str(schema.bloom_filter_bits),
        "pprl.schema_fingerprint": schema.fingerprint,
        "pprl.tool_version": tool_version(),
        "pprl.key_check_value": key_check,
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


def write_patient_encodings(path: Path, clks: dict[str, tuple[bytes, int]], schema: Schema,
                            provider: str, key_check: str) -> None:
    """The ``pprl-encodings/1`` file of the export: one row per patient whose identifiers
    could be encoded, by pseudonym, in pseudonym order (so re-runs give the same bytes)."""
    pseudonyms = sorted(clks)
    meta = EncodingsMetadata(schema.bloom_filter_bits, schema.fingerprint, provider,
                             tool_version(), schema.canonical_json, key_check=key_check)
    writer = EncodingsWriter(path, meta)
    try:
        if pseudonyms:
            raw = np.frombuffer(b"".join(clks[p][0] for p in pseudonyms), np.uint8)
            writer.write(pseudonyms, raw.reshape(len(pseudonyms), schema.clk_bytes),
                         np.array([clks[p][1] for p in pseudonyms], np.uint16))
        writer.commit()
    except BaseException:
        writer.discard()
        raise


STUDY_COLUMNS = (AttributeColumn("study_uid", "code", "payload"),
                 AttributeColumn("modality", "code", "payload"),
                 AttributeColumn("body_part", "code", "payload"),
                 AttributeColumn("study_date", "date", "payload"),
                 AttributeColumn("series_count", "number", "payload"),
                 AttributeColumn("instance_count", "number", "payload"))


def write_study_attributes(path: Path, studies: Sequence[tuple[str, str, str, str, str, int,
                                                               int]], provider: str,
                           real_dates: bool) -> None:
    """The export's attributes file: (pseudonym, study UID, modality, body part, study date
    ``YYYYMMDD`` or "", series count, instance count) per study, in that order.

    ``study_date`` is a column only when the dates are the real ones (``--dates full``):
    dates shifted by the site key, one offset per patient, would silently give wrong
    windows against another party's real dates in a cohort definition."""
    columns = STUDY_COLUMNS if real_dates else tuple(
        c for c in STUDY_COLUMNS if c.name != "study_date")
    dates = [None if not s[4] else f"{s[4][:4]}-{s[4][4:6]}-{s[4][6:8]}" for s in studies]
    values = {
        "record_id": pa.array([s[0] for s in studies], pa.string()),
        "study_uid": pa.array([s[1] for s in studies], pa.string()),
        "modality": pa.array([s[2] or None for s in studies], pa.string()),
        "body_part": pa.array([s[3] or None for s in studies], pa.string()),
        "study_date": pa.array(dates, pa.string()).cast(pa.date32()),
        "series_count": pa.array([s[5] for s in studies], pa.float64()),
        "instance_count": pa.array([s[6] for s in studies], pa.float64()),
    }
    table = pa.table({name: values[name] for name in ("record_id", *(c.name for c in columns))})
    write_attributes(path, table, columns, provider)
