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


def _ids(result: LinkResult, parties: np.ndarray, records: np.ndarray) -> pa.Array:
    """Record ids of (party index, record index) pairs."""
    return pa.array([result.record_ids[p][r] for p, r in zip(parties.tolist(), records.tolist(),
                                                               strict=True)], pa.string())


def write_results(folder: Path, result: LinkResult, run_info: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    names = pa.array(result.parties, pa.string())
    matches = pa.table({
        "party_a": names.take(pa.array(result.party_a)),
        "record_a": _ids(result, result.party_a, result.record_a),
        "party_b": names.take(pa.array(result.party_b)),
        "record_b": _ids(result, result.party_b, result.record_b),
        "score": pa.array(result.score, pa.float64()),
    })
    width = max(len(str(max(result.entity_count - 1, 0))), 6)
    entity_rows: dict[str, list[str]] = {"entity_id": [], "party": [], "record_id": []}
    for party, ids, entities in zip(result.parties, result.record_ids, result.entity_of,
                                    strict=True):
        entity_rows["entity_id"] += [f"E{e:0{width}d}" for e in entities.tolist()]
        entity_rows["party"] += [party] * len(ids)
        entity_rows["record_id"] += ids
    entities = pa.table({k: pa.array(v, pa.string()) for k, v in entity_rows.items()})
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
