"""A finished run's folder: the linker's matches and entities, plus each record's entity
pseudonym (``parties.parquet``), written under a temporary name and renamed whole."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from linker.link import LinkResult
from linker.results import MATCHES, write_results

from .pseudonyms import entity_pseudonym

__all__ = ["run_folder", "write_run_results", "read_table", "PARTIES", "MATCHES"]

PARTIES = "parties.parquet"


def run_folder(runs_dir: Path, project_id: str, run_id: int) -> Path:
    return runs_dir / project_id / str(run_id)


def _party_entities(result: LinkResult, service_key: bytes, project_id: str) -> pa.Table:
    canonical: dict[int, tuple[str, str]] = {}
    for party, ids, entities in zip(result.parties, result.record_ids, result.entity_of,
                                    strict=True):
        for record_id, entity in zip(ids, entities.tolist(), strict=True):
            member = (party, record_id)
            if entity not in canonical or member < canonical[entity]:
                canonical[entity] = member
    names = {e: entity_pseudonym(service_key, project_id, *m) for e, m in canonical.items()}
    return pa.table({
        "party": pa.array([p for p, ids in zip(result.parties, result.record_ids, strict=True)
                           for _ in ids], pa.string()),
        "record_id": pa.array([r for ids in result.record_ids for r in ids], pa.string()),
        "entity": pa.array([names[e] for es in result.entity_of for e in es.tolist()],
                           pa.string()),
    })


def write_run_results(folder: Path, result: LinkResult, info: dict[str, Any],
                      service_key: bytes, project_id: str, attempt: int) -> None:
    """Write everything beside ``folder`` and rename it into place; what an earlier attempt
    that died left (a staging folder, or a folder whose end was never recorded) is replaced:
    same inputs, same results."""
    for stale in folder.parent.glob(f".{folder.name}.attempt*"):
        shutil.rmtree(stale, ignore_errors=True)
    staging = folder.with_name(f".{folder.name}.attempt{attempt}")
    write_results(staging, result, info)
    pq.write_table(_party_entities(result, service_key, project_id), staging / PARTIES)
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)


def read_table(folder: Path, name: str, party: str | None = None) -> pa.Table:
    """One result table, optionally only one party's rows (for ``parties.parquet``)."""
    table = pq.read_table(folder / name)
    if party is not None:
        table = table.filter(pc.equal(table["party"], party))
    return table

