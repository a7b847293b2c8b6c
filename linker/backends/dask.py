"""The Dask backend: tiles compared by the workers of a Dask cluster (``distributed``).

An all-pairs run: the driver writes B, sorted by popcount, and A in tiles of ``tile_rows``
rows, as Parquet files in ``shared_dir``, a folder every worker reads and writes. One task per
A tile reads its tile and the part of B its windows reach (whole row groups), compares them
with the CPU kernel, and writes the pairs that pass to its own Parquet file, sorted in
anonlink's order; the driver merges the files. A blocked run: the driver writes the two sets
once and the workers make each band's plan, compare its tiles and merge its files
(``dask_bands``).

A task is a pure function of files and writes its output under a temporary name that it
renames when done, so a task lost with its worker (killed, out of memory) is simply run again
by the scheduler on another worker, and the result is the same.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from distributed import Client, Future, LocalCluster, as_completed

from ..blocking import LshBlocking
from ..clkset import ClkSet
from ..dice_kernel import min_counts
from .base import Backend, all_pairs_plan, popcount_bounds
from .cpu import CpuBackend
from .dask_bands import (
    compare_band_tile,
    merge_band,
    part_folder,
    plan_band,
    write_candidates,
    write_sets,
)
from .types import PairArrays, Plan, ProgressCallback

R = TypeVar("R")

__all__ = ["CandidateFiles", "DaskBackend", "compare_tile", "read_side"]

log = logging.getLogger(__name__)

_B_GROUP_ROWS = 1 << 16  # B's Parquet row groups: what a task reads at least
_PLANS_AHEAD = 4  # band plans queued before their compare tasks, at least


def _words_column(words: np.ndarray) -> pa.Array:
    rows, width = words.shape
    data = pa.py_buffer(np.ascontiguousarray(words).view(np.uint8))
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(width * 8), rows, [None, data])


def _words_of(column: pa.ChunkedArray | pa.Array, width: int) -> np.ndarray:
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    size = width * 8
    raw = np.frombuffer(array.buffers()[1], dtype=np.uint8)
    raw = raw[array.offset * size:(array.offset + len(array)) * size]
    return raw.view(np.uint64).reshape(len(array), width).copy()


def _write(path: Path, table: pa.Table, row_group_size: int | None = None) -> None:
    """Write under a temporary name, then rename: readers never see half a file."""
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    pq.write_table(table, temp, row_group_size=row_group_size, compression="none")
    os.replace(temp, path)


def read_side(path: Path, width: int, first: int = 0, last: int | None = None
              ) -> dict[str, np.ndarray]:
    """Rows [first, last) of a side's file (whole row groups read, then cut)."""
    file = pq.ParquetFile(path)
    sizes = [file.metadata.row_group(g).num_rows for g in range(file.num_row_groups)]
    ends = np.cumsum(sizes)
    last = int(ends[-1]) if last is None else last
    groups = [g for g in range(len(sizes)) if ends[g] > first and ends[g] - sizes[g] < last]
    table = file.read_row_groups(groups)
    offset = first - (int(ends[groups[0]] - sizes[groups[0]]) if groups else 0)
    table = table.slice(offset, last - first)
    columns = {name: table.column(name).to_numpy() for name in table.column_names
               if name != "words"}
    columns["words"] = _words_of(table.column("words"), width)
    return columns


def compare_tile(folder: str, tile: int, width: int, kernel: str) -> tuple[str, int, int, int]:
    """A worker's task: A tile ``tile`` against the B rows its windows reach. Writes the
    passing pairs (left, right, score), sorted by score descending, then left, right, to
    ``cand-<tile>.parquet``; returns (that path, pairs found, visited, completed)."""
    root = Path(folder)
    a = read_side(root / f"a-{tile:06d}.parquet", width)
    needed = np.load(root / "needed.npy")
    same = bool(np.load(root / "same.npy"))
    starts, stops = a["start"], a["stop"]
    lo = int(starts.min()) if len(starts) else 0
    hi = max(int(stops.max()) if len(stops) else 0, lo)
    b = read_side(root / "b.parquet", width, lo, hi)
    plan = Plan(a["words"], a["pop"], a["index"], b["words"], b["pop"], b["index"],
                starts - lo, stops - lo, needed, False)
    return write_candidates(root / f"cand-{tile:06d}.parquet", plan, same, kernel)


def _read_pairs(path: Path, visited: int, completed: int) -> PairArrays:
    """A candidates file as the (left, right, AND count) arrays the base class assembles."""
    table = pq.read_table(path, columns=["left", "right", "count"])
    left, right, count = (table.column(c).to_numpy() for c in ("left", "right", "count"))
    return PairArrays(left, right, count, visited, completed)


@dataclass
class CandidateFiles:
    """Per-task candidate files of a run (left, right, count, score; sorted), the plan
    folders holding them, and the pairs visited and compared in full."""

    paths: list[Path]
    folders: list[Path]
    visited: int
    completed: int

    def remove(self) -> None:
        for folder in self.folders:
            shutil.rmtree(folder, ignore_errors=True)


class DaskBackend(Backend):
    """Tiles compared on a Dask cluster.

    Args:
        scheduler: the scheduler's address; None starts a local cluster of ``workers``
            single-threaded processes for the lifetime of this backend.
        shared_dir: a folder every worker can read and write (required with ``scheduler``;
            default: a temporary folder, which only a local cluster can share).
        workers: local cluster only: worker processes.
        kernel: the CPU kernel the workers run ("auto", "lanes", "scalar").
        tile_rows: A rows per task.
        keep_files: leave each plan's tiles and candidate files in ``shared_dir``.
        plan_rows: blocked runs: records of both sets together a band's plan task sorts at
            most; larger sets are planned in parts by key (about 175 bytes a record at the
            plan's peak: 16M records, 2.8 GB).
    """

    name = "dask"

    def __init__(self, scheduler: str | None = None, shared_dir: Path | str | None = None,
                 workers: int = 2, kernel: str = "auto", tile_rows: int = 1 << 15,
                 keep_files: bool = False, plan_rows: int = 1 << 24) -> None:
        super().__init__(tile_rows)
        if scheduler and shared_dir is None:
            raise ValueError("a Dask scheduler needs shared_dir: a folder its workers share")
        if plan_rows < 1:
            raise ValueError(f"plan_rows must be at least 1, not {plan_rows}")
        self.plan_rows = plan_rows
        self._local = CpuBackend(1, kernel=kernel)
        self.kernel = self._local.kernel
        self.scheduler = scheduler
        self.workers = max(1, workers)
        self._own_dir = shared_dir is None
        self._shared_dir = None if shared_dir is None else Path(shared_dir)
        self.keep_files = keep_files
        self._cluster: LocalCluster | None = None
        self._client: Client | None = None

    def describe(self) -> dict[str, Any]:
        where = {"scheduler": self.scheduler} if self.scheduler else {
            "scheduler": "local", "local_workers": self.workers}
        return {"backend": self.name, "kernel": self.kernel, **where}

    @property
    def shared_dir(self) -> Path:
        if self._shared_dir is None:
            self._shared_dir = Path(tempfile.mkdtemp(prefix="pprl-dask-"))
        return self._shared_dir

    @property
    def client(self) -> Client:
        if self._client is None:
            if self.scheduler:
                self._client = Client(self.scheduler, set_as_default=False)
            else:
                self._cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1,
                                             processes=True, dashboard_address=None)
                self._client = Client(self._cluster, set_as_default=False)
            log.info("dask backend: %s", self._client)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None
        if self._own_dir and self._shared_dir is not None:
            shutil.rmtree(self._shared_dir, ignore_errors=True)
            self._shared_dir = None

    def _prepare(self, plan: Plan) -> Any:
        return self._local._prepare(plan)

    def _tile(self, prepared: Any, plan: Plan, first: int, last: int,
              capacity: int) -> PairArrays | None:
        return self._local._tile(prepared, plan, first, last, capacity)

    def _write_plan(self, plan: Plan) -> tuple[Path, int]:
        folder = self.shared_dir / f"plan-{uuid.uuid4().hex}"
        folder.mkdir(parents=True)
        np.save(folder / "needed.npy", plan.needed)
        np.save(folder / "same.npy", np.array(plan.same))
        _write(folder / "b.parquet", pa.table({
            "words": _words_column(plan.b_words), "pop": plan.b_pops.astype(np.int16),
            "index": plan.b_index}), _B_GROUP_ROWS)
        for tile, first in enumerate(range(0, plan.rows, self.tile_rows)):
            rows = slice(first, first + self.tile_rows)
            _write(folder / f"a-{tile:06d}.parquet", pa.table({
                "words": _words_column(plan.a_words[rows]),
                "pop": plan.a_pops[rows].astype(np.int16), "index": plan.a_index[rows],
                "start": plan.starts[rows], "stop": plan.stops[rows]}))
        return folder, -(-plan.rows // self.tile_rows)

    def _submit(self, plan: Plan) -> tuple[Path, dict[Future, int]]:
        """Write ``plan``'s files and queue a task per A tile: {future: tile}."""
        folder, tiles = self._write_plan(plan)
        width = plan.a_words.shape[1]
        return folder, {self.client.submit(compare_tile, str(folder), t, width, self.kernel,
                                           key=f"pprl-tile-{folder.name}-{t}", retries=2): t
                        for t in range(tiles)}

    def _finished(self, futures: dict[Future, int], rows: int,
                  progress: ProgressCallback | None) -> Iterator[tuple[str, int, int, int]]:
        """Each task's (candidates file, found, visited, completed) as it finishes."""
        for future in as_completed(futures, loop=self.client.loop):
            yield future.result()
            if progress is not None:
                progress(min(self.tile_rows, rows - futures[future] * self.tile_rows))

    def _gather(self, futures: dict[Future, int], rows: int,
                progress: ProgressCallback | None) -> PairArrays:
        parts = []
        for path, _, visited, completed in self._finished(futures, rows, progress):
            parts.append(_read_pairs(Path(path), visited, completed))
        return PairArrays.concat(parts)

    def _write_bands(self, a: ClkSet, b: ClkSet | None, needed: np.ndarray,
                     blocking: LshBlocking) -> tuple[Path, list[tuple[int, int, int]]]:
        """Write the sets once; the run's folder and its plans as (band, part, parts): a band
        in parts by key when the sets hold more than ``plan_rows`` records."""
        folder = self.shared_dir / f"run-{uuid.uuid4().hex}"
        lowest, highest = popcount_bounds(needed, a.length)
        write_sets(folder, a, b, needed, blocking.positions(a.length), lowest, highest)
        parts = max(1, -(-(len(a) + (0 if b is None else len(b))) // self.plan_rows))
        return folder, [(band, part, parts) for band in range(blocking.bands)
                        for part in range(parts)]

    def _bands_done(self, folder: Path, plans: list[tuple[int, int, int]]
                    ) -> Iterator[tuple[int, bool, Path, int, int]]:
        """(band, whether the band is complete, a part's merged file, visited, completed) as
        each part is merged. Plans are queued a few at a time (as many as the cluster has
        workers, at least ``_PLANS_AHEAD``), so the workers compare what is planned before
        planning more and the plan files on disk stay few; a part's compare tasks are queued
        once its plan says how many A rows it has; its plan and tile files are removed once
        it is merged (unless ``keep_files``)."""
        left = Counter(band for band, _, _ in plans)
        waiting = list(reversed(plans))
        planned: dict[Future, tuple[int, int]] = {}
        merges: dict[Future, tuple[int, int]] = {}
        pending = as_completed(loop=self.client.loop)

        def plan_next() -> None:
            if waiting:
                band, part, parts = waiting.pop()
                future = self.client.submit(plan_band, str(folder), band, part, parts,
                                            key=f"pprl-plan-{folder.name}-{band}-{part}",
                                            retries=2)
                planned[future] = (band, part)
                pending.add(future)

        for _ in range(max(_PLANS_AHEAD, len(self.client.scheduler_info()["workers"]))):
            plan_next()
        try:
            for future in pending:
                if future in planned:
                    part_dir, rows = future.result()
                    band, part = planned[future]
                    name = f"{folder.name}-{band}-{part}"
                    compares = [self.client.submit(compare_band_tile, part_dir, band, t,
                                                   self.tile_rows, self.kernel,
                                                   key=f"pprl-tile-{name}-{t}", retries=2)
                                for t in range(-(-rows // self.tile_rows))]
                    merge = self.client.submit(merge_band, part_dir, compares,
                                               key=f"pprl-band-{name}", retries=2)
                    merges[merge] = planned[future]
                    pending.add(merge)
                    plan_next()
                    continue
                path, _, visited, completed = future.result()
                band, part = merges[future]
                if not self.keep_files:
                    shutil.rmtree(part_folder(folder, band, part), ignore_errors=True)
                left[band] -= 1
                yield band, left[band] == 0, Path(path), visited, completed
        finally:
            self.client.cancel([*planned, *merges])

    def _band_parts(self, a: ClkSet, b: ClkSet | None, needed: np.ndarray,
                    blocking: LshBlocking, done: Callable[[int], None]) -> list[PairArrays]:
        folder, plans = self._write_bands(a, b, needed, blocking)
        try:
            parts = []
            for band, complete, path, visited, completed in self._bands_done(folder, plans):
                parts.append(_read_pairs(path, visited, completed))
                if complete:
                    done(band)
            return parts
        finally:
            if not self.keep_files:
                shutil.rmtree(folder, ignore_errors=True)

    def candidate_files(self, a: ClkSet, b: ClkSet | None, threshold: float,
                        blocking: LshBlocking | None = None,
                        progress: ProgressCallback | None = None) -> CandidateFiles:
        """The run's candidates left on shared storage, one file per task, each sorted in
        anonlink's order (``merge.merged_candidates`` reads them as one sorted stream), so
        no process ever holds them all. Remove them with ``CandidateFiles.remove``."""
        if b is not None and a.length != b.length:
            raise ValueError(f"CLK lengths differ: {a.length} and {b.length} bits")
        needed = min_counts(threshold, a.length)
        result = CandidateFiles([], [], 0, 0)
        finished: Iterator[tuple[Path, int, int]]
        try:
            if blocking is None:
                folder, futures = self._submit(all_pairs_plan(a, b, needed))
                result.folders.append(folder)
                finished = ((Path(path), visited, completed) for path, _, visited, completed
                            in self._finished(futures, len(a), progress))
            else:
                folder, plans = self._write_bands(a, b, needed, blocking)
                result.folders.append(folder)
                finished = self._bands_progress(folder, plans, len(a), blocking.bands,
                                                progress)
            for path, visited, completed in finished:
                result.paths.append(path)
                result.visited += visited
                result.completed += completed
        except BaseException:
            result.remove()
            raise
        return result

    def _bands_progress(self, folder: Path, plans: list[tuple[int, int, int]], rows: int,
                        bands: int, progress: ProgressCallback | None
                        ) -> Iterator[tuple[Path, int, int]]:
        """``_bands_done``'s files, reporting a band's share of the A rows as each is done."""
        finished = 0
        for _, complete, path, visited, completed in self._bands_done(folder, plans):
            yield path, visited, completed
            if complete:
                if progress is not None:
                    progress((finished + 1) * rows // bands - finished * rows // bands)
                finished += 1

    def _reduced(self, plan: Plan, progress: ProgressCallback | None,
                 reduce: Callable[[PairArrays], R], tile_rows: int | None = None) -> list[R]:
        """The cluster's pairs gathered here (in the backend's tasks), then reduced at once."""
        return [reduce(self._run(plan, progress))]

    def _run(self, plan: Plan, progress: ProgressCallback | None) -> PairArrays:
        folder, futures = self._submit(plan)
        try:
            return self._gather(futures, plan.rows, progress)
        finally:
            if not self.keep_files:
                shutil.rmtree(folder, ignore_errors=True)
