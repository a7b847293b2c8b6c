"""A finished run's folder, and serving its result pages from an index and a cache.

The folder holds the linker's ``matches.parquet`` and ``entities.parquet``, plus what the
service serves: ``parties.parquet`` (party, record_id, entity pseudonym; sorted by party so
that each party's rows are one contiguous range, found in ``index.json``) and
``groups.parquet`` (the members of every entity, in entity order) with ``group_index.parquet``
(entity, size, first row). Pages are slices of these tables; the tables are read once and
kept in a cache bounded in bytes, so reading every page of a result costs about what reading
it once does. Everything is written beside the folder and renamed into place whole.
"""

from __future__ import annotations

import json
import secrets
import shutil
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from linker.link import LinkResult
from linker.results import MATCHES, write_results

from .security.pseudonyms import entity_pseudonym

__all__ = ["run_folder", "write_run_results", "ResultStore", "PARTIES", "MATCHES", "GROUPS",
           "GROUP_INDEX", "INDEX"]

PARTIES = "parties.parquet"
GROUPS = "groups.parquet"
GROUP_INDEX = "group_index.parquet"
INDEX = "index.json"


def run_folder(runs_dir: Path, project_id: str, run_id: int) -> Path:
    return runs_dir / project_id / str(run_id)


def _party_entities(result: LinkResult, service_key: bytes, project_id: str) -> pa.Table:
    """Every record with its entity's pseudonym, sorted by party then record id."""
    canonical: dict[int, tuple[str, str]] = {}
    for party, ids, entities in zip(result.parties, result.record_ids, result.entity_of,
                                    strict=True):
        for record_id, entity in zip(ids, entities.tolist(), strict=True):
            member = (party, record_id)
            if entity not in canonical or member < canonical[entity]:
                canonical[entity] = member
    names = {e: entity_pseudonym(service_key, project_id, *m) for e, m in canonical.items()}
    table = pa.table({
        "party": pa.array([p for p, ids in zip(result.parties, result.record_ids, strict=True)
                           for _ in ids], pa.string()),
        "record_id": pa.array([r for ids in result.record_ids for r in ids], pa.string()),
        "entity": pa.array([names[e] for es in result.entity_of for e in es.tolist()],
                           pa.string()),
    })
    return table.sort_by([("party", "ascending"), ("record_id", "ascending")])


def _groups(parties: pa.Table) -> tuple[pa.Table, pa.Table]:
    """Members in entity order, and per entity its size and first member row."""
    members = parties.sort_by([("entity", "ascending"), ("party", "ascending"),
                               ("record_id", "ascending")])
    entity = members["entity"].combine_chunks()
    if len(entity):
        starts = np.flatnonzero(np.concatenate(
            [[True], pc.not_equal(entity.slice(1), entity.slice(0, len(entity) - 1))
             .to_numpy(zero_copy_only=False)]))
    else:
        starts = np.zeros(0, np.int64)
    sizes = np.diff(np.append(starts, len(entity)))
    index = pa.table({"entity": entity.take(pa.array(starts)),
                      "size": pa.array(sizes, pa.int64()),
                      "start": pa.array(starts, pa.int64())})
    return members, index


def _party_ranges(parties: pa.Table) -> dict[str, list[int]]:
    labels = parties["party"].to_numpy(zero_copy_only=False)
    ranges: dict[str, list[int]] = {}
    for label in dict.fromkeys(labels.tolist()):
        rows = np.flatnonzero(labels == label)
        ranges[label] = [int(rows[0]), len(rows)]
    return ranges


def write_run_results(folder: Path, result: LinkResult, info: dict[str, Any],
                      service_key: bytes, project_id: str, attempt: int,
                      on_staged: Callable[[], None] | None = None,
                      before_publish: Callable[[], None] | None = None) -> None:
    """Write everything beside ``folder`` and rename it into place; what an earlier attempt
    that died left (a staging folder, or a folder whose end was never recorded) is replaced:
    same inputs, same results. Only earlier attempts' staging is removed (a frozen worker
    that resumed removed its successor's as it was written), and this attempt's own if
    writing fails. ``on_staged`` is called once the linker's files are staged, before the
    pseudonyms and indexes are written; ``before_publish`` (which raises to stop) right
    before the folder is replaced."""
    for stale in folder.parent.glob(f".{folder.name}.attempt*"):
        if _attempt_of(stale) < attempt:
            shutil.rmtree(stale, ignore_errors=True)
    staging = folder.with_name(f".{folder.name}.attempt{attempt}")
    try:
        write_results(staging, result, info)
        if on_staged is not None:
            on_staged()
        _write_indexed(staging, _party_entities(result, service_key, project_id))
        if before_publish is not None:
            before_publish()
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _attempt_of(staging: Path) -> int:
    """The attempt a staging folder (``.RUN.attemptN``) belongs to; 0 if unreadable."""
    number = staging.name.rsplit(".attempt", 1)[-1]
    return int(number) if number.isdigit() else 0


def _write_indexed(folder: Path, parties: pa.Table) -> None:
    """parties.parquet (sorted by party), the groups and both indexes; index.json last, as
    the sign that the rest is there. Temporary names are this writer's own: the API and a
    worker may index an old run at the same time (both write the same bytes)."""
    members, index = _groups(parties)
    own = secrets.token_hex(6)
    for table, name in ((parties, PARTIES), (members, GROUPS), (index, GROUP_INDEX)):
        temporary = folder / f".{name}.{own}.tmp"
        pq.write_table(table, temporary)
        temporary.replace(folder / name)
    temporary = folder / f".{INDEX}.{own}.tmp"
    temporary.write_text(json.dumps({"parties": _party_ranges(parties)}) + "\n",
                         encoding="utf-8")
    temporary.replace(folder / INDEX)


def _index_old_run(folder: Path) -> None:
    """A run written before result pages had indexes holds parties.parquet alone (unsorted):
    sort it and write the indexes once, on its first page."""
    parties = pq.read_table(folder / PARTIES)
    _write_indexed(folder, parties.sort_by([("party", "ascending"),
                                            ("record_id", "ascending")]))


@dataclass(frozen=True)
class _Loaded:
    value: Any
    nbytes: int


class ResultStore:
    """Result tables by run folder, read once and kept while they fit in ``max_bytes``
    (least recently used go first). Thread-safe: pages are served from threads."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[str, str], _Loaded] = OrderedDict()
        self._held = 0
        self._lock = threading.Lock()
        self._indexing = threading.Lock()

    def _get(self, folder: Path, name: str) -> Any:
        key = (str(folder), name)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key].value
        loaded = self._load(folder, name)
        with self._lock:
            if loaded.nbytes <= self.max_bytes and key not in self._items:
                self._items[key] = loaded
                self._held += loaded.nbytes
                while self._held > self.max_bytes:
                    _, dropped = self._items.popitem(last=False)
                    self._held -= dropped.nbytes
        return loaded.value

    def _load(self, folder: Path, name: str) -> _Loaded:
        if name in (INDEX, PARTIES, GROUPS, GROUP_INDEX) and not (folder / INDEX).is_file():
            with self._indexing:
                if not (folder / INDEX).is_file():
                    _index_old_run(folder)
        if name == INDEX:
            ranges = json.loads((folder / INDEX).read_text(encoding="utf-8"))["parties"]
            return _Loaded(ranges, 64 * len(ranges))
        if name.startswith("index>="):  # group index rows of entities of at least a size
            index = self._get(folder, GROUP_INDEX)
            picked = index.filter(pc.greater_equal(index["size"], int(name[7:])))
            return _Loaded(picked.combine_chunks(), picked.nbytes)
        # one chunk per column: taking rows from a chunked column would join it every time
        table = pq.read_table(folder / name).combine_chunks()
        return _Loaded(table, table.nbytes)

    def members(self, folder: Path) -> pa.Table:
        """(party, record_id, entity) of every record of the run."""
        table: pa.Table = self._get(folder, PARTIES)
        return table

    def matches(self, folder: Path, offset: int, limit: int) -> tuple[int, list[dict[str, Any]]]:
        table: pa.Table = self._get(folder, MATCHES)
        return table.num_rows, table.slice(offset, limit).to_pylist()

    def party_entities(self, folder: Path, party: str, offset: int, limit: int
                       ) -> tuple[int, list[dict[str, Any]]]:
        start, count = self._get(folder, INDEX).get(party, [0, 0])
        table: pa.Table = self._get(folder, PARTIES)
        rows = table.slice(start + offset, max(0, min(limit, count - offset)))
        return count, rows.select(["record_id", "entity"]).to_pylist()

    def groups(self, folder: Path, min_size: int, offset: int, limit: int
               ) -> tuple[int, list[tuple[str, list[dict[str, str]]]]]:
        index: pa.Table = self._get(folder, f"index>={min_size}")
        members: pa.Table = self._get(folder, GROUPS)
        page = index.slice(offset, limit)
        starts = page["start"].to_numpy()
        sizes = page["size"].to_numpy()
        # every member row of the page's entities, in one take
        before = np.cumsum(sizes) - sizes
        rows = np.repeat(starts - before, sizes) + np.arange(int(sizes.sum()))
        taken = members.take(pa.array(rows))
        pairs = [{"party": p, "record_id": r} for p, r in zip(
            taken["party"].to_pylist(), taken["record_id"].to_pylist(), strict=True)]
        bounds = np.concatenate([[0], np.cumsum(sizes)]).tolist()
        groups = [(entity, pairs[bounds[k]:bounds[k + 1]])
                  for k, entity in enumerate(page["entity"].to_pylist())]
        return index.num_rows, groups
