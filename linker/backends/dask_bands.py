"""A blocked run's work as tasks on a cluster's workers, the driver only writing each CLK set
once. Per band: one task sorts both sets by band key and popcount and writes the band's
orders and windows (``plan_band``), in parts by key where the sets are large; one task per
tile of A rows gathers its rows and the B rows its windows reach and compares them
(``compare_band_tile``); one task merges a part's tile files into one sorted file
(``merge_band``).

Why: when the driver made each band's plan and wrote sorted copies of both sets per band,
a 1M x 1M run wrote 10 GB from one process and 10M would have written 100 GB; now the
driver writes the two sets (1.3 GB each at 10M records of 1024 bits) and the band files
hold indices. The sets are ``.npy`` files: a band's keys are computed from plain reads a
chunk at a time, and a tile's rows gathered through a memory map, so a worker holds one
band's keys and orders and one tile's rows, not the sets.

Every task is a pure function of files and writes under a temporary name it then renames, so
a task lost with its worker is run again with the same result; the driver removes a band's
plan and tile files only once the band's merged file is in hand.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..blocking import band_plan, reported_by_band, words_band_keys
from ..clkset import ClkSet
from .cpu import CpuBackend
from .merge import merged_candidates
from .order import anonlink_order
from .types import PairArrays, Plan

__all__ = ["write_sets", "plan_band", "compare_band_tile", "merge_band", "write_candidates",
           "part_folder"]

_KEY_CHUNK_ROWS = 1 << 19  # rows read at a time for a band's keys: 64 MiB at 1024 bits
_GATHER_ROWS = 1 << 14  # wanted rows per memory map: at most 64 MiB of pages touched
_CANDIDATES = pa.schema([("left", pa.int64()), ("right", pa.int64()), ("count", pa.int64()),
                         ("score", pa.float64())])


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{uuid.uuid4().hex}")


def _save(path: Path, array: np.ndarray) -> None:
    temp = _temporary(path)
    with temp.open("wb") as out:
        np.save(out, array)
    os.replace(temp, path)


def write_sets(folder: Path, a: ClkSet, b: ClkSet | None, needed: np.ndarray,
               positions: np.ndarray, lowest: np.ndarray, highest: np.ndarray) -> None:
    """What every task of a run reads: the sets (words and popcounts), the least counts, the
    bands' bit positions and the popcount bounds. Within one set there is no B."""
    folder.mkdir(parents=True)
    for side, clks in (("a", a), ("b", b)):
        if clks is not None:
            _save(folder / f"{side}_words.npy", np.ascontiguousarray(clks.words))
            _save(folder / f"{side}_pops.npy", clks.popcounts.astype(np.int64))
    for name, array in (("needed", needed), ("positions", positions), ("lowest", lowest),
                        ("highest", highest), ("same", np.array(b is None))):
        _save(folder / f"{name}.npy", array)


def part_folder(run: Path, band: int, part: int) -> Path:
    return run / f"band-{band:04d}-{part:03d}"


def _chunks(path: Path, rows: int) -> Iterator[np.ndarray]:
    """The rows of a 2-D ``.npy`` file, ``rows`` at a time, by plain reads (pages read
    through a memory map would stay counted in the worker's memory)."""
    (total, width), dtype, offset = _npy_layout(path)
    with path.open("rb") as source:
        source.seek(offset)
        for first in range(0, total, rows):
            count = min(rows, total - first)
            yield np.fromfile(source, dtype=dtype, count=count * width).reshape(count, width)


def _keys(path: Path, positions: np.ndarray) -> np.ndarray:
    parts = [words_band_keys(chunk, positions)[:, 0] for chunk in _chunks(path, _KEY_CHUNK_ROWS)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint64)


def _part_of(keys: np.ndarray, parts: int) -> np.ndarray:
    """Each key's part: a multiplicative hash's high bits modulo ``parts``. The key's own low
    bits would split unevenly: a sampled CLK bit is 0 about 60% of the time."""
    with np.errstate(over="ignore"):
        mixed = keys.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    return ((mixed >> np.uint64(32)) % np.uint64(parts)).astype(np.int64)


def plan_band(run: str, band: int, part: int = 0, parts: int = 1) -> tuple[str, int]:
    """A worker's task: the plan (``blocking.band_plan``) of band ``band``'s records whose key
    falls in part ``part`` of ``parts`` (``_part_of``; pairs only meet within a key, so the
    parts are independent and a plan task's memory is a part's), as ``a_order``, ``b_order``
    (original row numbers), ``starts`` and ``stops`` files in the part's folder. Returns (the
    folder, its A rows)."""
    root = Path(run)
    out = part_folder(root, band, part)
    out.mkdir(exist_ok=True)
    positions = np.load(root / "positions.npy")[band:band + 1]
    same = bool(np.load(root / "same.npy"))

    def side(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        keys = _keys(root / f"{name}_words.npy", positions)
        rows = (np.arange(len(keys), dtype=np.int64) if parts == 1
                else np.flatnonzero(_part_of(keys, parts) == part))
        return rows, keys[rows], np.load(root / f"{name}_pops.npy")[rows]

    a_rows, a_keys, a_pops = side("a")
    b_rows, b_keys, b_pops = (a_rows, None, None) if same else side("b")
    a_order, b_order, starts, stops = band_plan(a_pops, b_pops, a_keys, b_keys,
                                                np.load(root / "lowest.npy"),
                                                np.load(root / "highest.npy"))
    for name, array in (("a_order", a_rows[a_order]), ("b_order", b_rows[b_order]),
                        ("starts", starts), ("stops", stops)):
        _save(out / f"{name}.npy", array)
    return str(out), len(a_order)


def _npy_layout(path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, offset of the data) of a ``.npy`` file."""
    with path.open("rb") as source:
        major, _ = np.lib.format.read_magic(source)
        header = (np.lib.format.read_array_header_1_0 if major == 1
                  else np.lib.format.read_array_header_2_0)
        shape, _, dtype = header(source)
        return shape, dtype, source.tell()


def _gather(path: Path, rows: np.ndarray) -> np.ndarray:
    """Rows ``rows`` of a ``.npy`` file (of words, or of popcounts), through memory maps of at
    most ``_GATHER_ROWS`` of the wanted rows' span at a time: the pages a map touches count in
    the worker's memory until it is closed, so one map over a tile's rows scattered through a
    10M-row set would hold a page per row."""
    shape, dtype, offset = _npy_layout(path)
    row_shape = shape[1:]
    row_bytes = int(np.prod(row_shape, dtype=np.int64)) * dtype.itemsize
    by_row = np.argsort(rows, kind="stable")
    wanted = rows[by_row]
    out = np.empty((len(rows), *row_shape), dtype=dtype)
    for first in range(0, len(wanted), _GATHER_ROWS):
        part = wanted[first:first + _GATHER_ROWS]
        low, high = int(part[0]), int(part[-1]) + 1
        span = np.memmap(path, dtype=dtype, mode="r", offset=offset + low * row_bytes,
                         shape=(high - low, *row_shape))
        out[by_row[first:first + _GATHER_ROWS]] = span[part - low]
        del span
    return out


def _slice(path: Path, first: int, last: int) -> np.ndarray:
    return np.array(np.load(path, mmap_mode="r")[first:last])


def compare_band_tile(band_dir: str, band: int, tile: int, tile_rows: int, kernel: str
                      ) -> tuple[str, int, int, int]:
    """A worker's task: A rows [tile * tile_rows, +tile_rows) of a band part's order against
    the B rows their windows reach; writes the passing pairs an earlier band does not report
    (``blocking.reported_by_band``) as ``write_candidates`` does to ``cand-<tile>.parquet`` in
    the part's folder and returns (path, found, visited, completed)."""
    folder = Path(band_dir)
    root = folder.parent
    same = bool(np.load(root / "same.npy"))
    first, last = tile * tile_rows, (tile + 1) * tile_rows
    a_order = _slice(folder / "a_order.npy", first, last)
    starts = _slice(folder / "starts.npy", first, last)
    stops = _slice(folder / "stops.npy", first, last)
    lo = int(starts.min()) if len(starts) else 0
    hi = max(int(stops.max()) if len(stops) else 0, lo)
    b_order = _slice(folder / "b_order.npy", lo, hi)
    b_side = "a" if same else "b"
    a_pops, b_pops = root / "a_pops.npy", root / f"{b_side}_pops.npy"
    plan = Plan(_gather(root / "a_words.npy", a_order), _gather(a_pops, a_order), a_order,
                _gather(root / f"{b_side}_words.npy", b_order), _gather(b_pops, b_order),
                b_order, starts - lo, stops - lo, np.load(root / "needed.npy"), False)
    positions = np.load(root / "positions.npy")

    def reported(left: np.ndarray, right: np.ndarray) -> np.ndarray:  # rows the plan holds
        return reported_by_band(_rows_by_index(plan.a_index, plan.a_words, left),
                                _rows_by_index(plan.b_index, plan.b_words, right), positions,
                                band)

    return write_candidates(folder / f"cand-{tile:06d}.parquet", plan, same, kernel,
                            (a_pops, b_pops), reported)


def write_candidates(out: Path, plan: Plan, same: bool, kernel: str,
                     pops: tuple[Path, Path] | None = None,
                     reported: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
                     ) -> tuple[str, int, int, int]:
    """Compare ``plan`` on this process's CPU and write the passing pairs (left, right, AND
    count, score), sorted by score descending, then left, right; within one set each pair as
    (smaller, larger). ``pops``: the files of both sets' popcounts by original index, where
    there are; ``reported``: which of the pairs (original indices) to write. Returns (path,
    pairs found, visited, completed)."""
    found = CpuBackend(1, tile_rows=1024, kernel=kernel)._run(plan, None)
    if reported is not None:
        keep = reported(found.left, found.right)
        found = PairArrays(found.left[keep], found.right[keep], found.counts[keep],
                           found.visited, found.completed)
    left, right = found.left, found.right
    if same:
        left, right = np.minimum(left, right), np.maximum(left, right)
    if pops is None:
        a_pop = _rows_by_index(plan.a_index, plan.a_pops, found.left)
        b_pop = _rows_by_index(plan.b_index, plan.b_pops, found.right)
    else:
        a_pop, b_pop = _gather(pops[0], found.left), _gather(pops[1], found.right)
    order, score = anonlink_order(left, right, found.counts, a_pop.astype(np.int64) + b_pop)
    table = pa.table({"left": left[order], "right": right[order], "count": found.counts[order],
                      "score": score}, schema=_CANDIDATES)
    temp = _temporary(out)
    pq.write_table(table, temp, compression="none")
    os.replace(temp, out)
    return str(out), len(left), found.visited, found.completed


def _rows_by_index(index: np.ndarray, rows: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """The rows (popcounts, words) of a plan's side whose original index is ``wanted``."""
    order = np.argsort(index, kind="stable")
    return rows[order[np.searchsorted(index[order], wanted)]]


def merge_band(band_dir: str, tiles: list[tuple[str, int, int, int]]
               ) -> tuple[str, int, int, int]:
    """A worker's task: a band part's tile files merged into one file beside its folder
    (``band-<n>-<part>.parquet``), sorted as they are, a batch per file at a time. Returns
    (path, pairs, visited, completed)."""
    band = Path(band_dir)
    out = band.with_name(f"{band.name}.parquet")
    temp = _temporary(out)
    pairs = 0
    with pq.ParquetWriter(temp, _CANDIDATES, compression="none") as writer:
        for left, right, score, count in merged_candidates([Path(t[0]) for t in tiles],
                                                           with_count=True):
            writer.write_table(pa.table({"left": left, "right": right, "count": count,
                                         "score": score}, schema=_CANDIDATES))
            pairs += len(left)
    os.replace(temp, out)
    return str(out), pairs, sum(t[2] for t in tiles), sum(t[3] for t in tiles)
