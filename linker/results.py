"""Writing and reading a linkage run's folder: matches.parquet, entities.parquet, run.json.

``matches``: party_a, record_a, party_b, record_b, score (design.md); ``entities``:
entity_id, party, record_id for every record, singletons included. Files are written under
temporary names and renamed, so a failed run never leaves a partial result.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tokenizer.encodings_file import AtomicFile

from .link import LinkResult

__all__ = ["write_results", "read_matches", "read_entities", "MATCHES", "ENTITIES", "RUN"]

MATCHES, ENTITIES, RUN = "matches.parquet", "entities.parquet", "run.json"


def _ids(all_ids: pa.Array, offsets: np.ndarray, parties: np.ndarray,
         records: np.ndarray) -> pa.Array:
    """Record ids of (party index, record index) pairs, ``all_ids`` holding every party's ids
    one party after the other from ``offsets``."""
    return all_ids.take(pa.array(offsets[parties] + records))


def write_results(folder: Path, result: LinkResult, run_info: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    names = pa.array(result.parties, pa.string())
    # Columns built by Arrow, not row by row in Python (a tenth of the run on a large link).
    sizes = np.array([len(ids) for ids in result.record_ids], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    all_ids = pa.array([i for ids in result.record_ids for i in ids], pa.string())
    matches = pa.table({
        "party_a": names.take(pa.array(result.party_a)),
        "record_a": _ids(all_ids, offsets, result.party_a, result.record_a),
        "party_b": names.take(pa.array(result.party_b)),
        "record_b": _ids(all_ids, offsets, result.party_b, result.record_b),
        "score": pa.array(result.score, pa.float64()),
    })
    width = max(len(str(max(result.entity_count - 1, 0))), 6)
    entity_numbers = np.concatenate([*result.entity_of, np.zeros(0, np.int64)]).astype(np.int64)
    entities = pa.table({
        # numpy's string functions: pyarrow.compute's would cost `link` its import (40 ms).
        "entity_id": pa.array(np.strings.add("E", np.strings.zfill(entity_numbers.astype(str),
                                                                   width)), pa.string()),
        "party": names.take(pa.array(np.repeat(np.arange(len(sizes)), sizes))),
        "record_id": all_ids,
    })
    targets = [(MATCHES, matches), (ENTITIES, entities)]
    staged = []
    try:
        for name, table in targets:
            atomic = AtomicFile(folder / name)
            pq.write_table(table, atomic.temp)
            staged.append(atomic)
        run_file = AtomicFile(folder / RUN)
        run_file.temp.write_text(json.dumps({**run_info, **result.stats}, indent=2) + "\n",
                                 encoding="utf-8")
        staged.append(run_file)
    except BaseException:
        for atomic in staged:
            atomic.discard()
        raise
    for atomic in staged:
        atomic.commit()


def read_matches(folder: Path) -> pa.Table:
    return pq.read_table(folder / MATCHES)


def read_entities(folder: Path) -> pa.Table:
    return pq.read_table(folder / ENTITIES)
