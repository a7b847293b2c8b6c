"""Scale-out: the Dask backend against the CPU backend on a blocked linkage, same candidates.

Two parties of random 1024-bit CLKs (each row's bit density drawn from 0.3-0.5, as the shipped
schemas set about 40% of the bits), B holding copies of A's rows with 1.5% of bits flipped,
shuffled; LSH blocking (32 bands of 16 bits) at Dice >= 0.8. Each configuration runs in its
own process: the CPU backend with all cores as threads, then the Dask backend on a local
cluster of 1 and of 2 single-threaded worker processes. Timed: candidate generation after a
warm-up (cluster started, kernels loaded), data in memory; the Dask runs leave their
candidates in per-band files, read back as one merged stream (never all in one process) and
solved 1:1 greedily from it, as ``pprl link --backend dask`` does. Peak memory: the whole
process tree (driver and workers, sampled from /proc) and each worker's own peak RSS.
Candidates are compared by a SHA-256 of (left, right, score) rows in anonlink's order: they
must be identical.

``--dedup``: A and B as one party, deduplicated (every record has one duplicate) at the
deduplication default, the whole run timed: candidates and the ``cluster`` solver, in memory
on the CPU backend, from the merged band files on Dask (``link_on``, as ``pprl dedup`` runs
it). Links and entities are compared by a SHA-256 and must be identical.

    python -m benchmarks.bench_dask --records 1000000
    python -m benchmarks.bench_dask --records 10000000 --configs dask2 --tile-rows 131072
    python -m benchmarks.bench_dask --records 1000000 --dedup
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from linker.backends import Backend, candidate_pairs, get_backend
from linker.backends.merge import merged_candidates
from linker.blocking import LshBlocking
from linker.clkset import ClkSet
from linker.link import DEFAULT_DEDUP_THRESHOLD
from linker.link_streamed import greedy_take, link_on
from tokenizer.parallel import default_workers

from .measure import run_measured
from .report import print_table

CONFIGS = {"cpu": ("cpu (threads)", "cpu", 0), "dask1": ("dask, 1 worker", "dask", 1),
           "dask2": ("dask, 2 workers", "dask", 2)}
_ROW = np.dtype([("left", "<i8"), ("right", "<i8"), ("score", "<f8")])


def make_parties(records: int, seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """uint8 CLK bytes of A and of B (noisy copies of A, shuffled), made in chunks."""
    rng = np.random.default_rng(seed)
    a_parts, b_parts = [], []
    for first in range(0, records, 50_000):
        rows = min(50_000, records - first)
        density = rng.uniform(0.3, 0.5, size=(rows, 1))
        bits = rng.random((rows, 1024), dtype=np.float32) < density
        a_parts.append(np.packbits(bits, axis=1))
        flips = rng.random((rows, 1024), dtype=np.float32) < 0.015
        b_parts.append(np.packbits(bits ^ flips, axis=1))
    b = np.vstack(b_parts)
    return np.vstack(a_parts), b[rng.permutation(records)]


def _digest_rows(digest: Any, left: np.ndarray, right: np.ndarray, score: np.ndarray) -> None:
    """Add candidates to ``digest`` row by row, so chunking does not change the digest."""
    rows = np.empty(len(left), dtype=_ROW)
    rows["left"], rows["right"], rows["score"] = left, right, score
    digest.update(rows.tobytes())


def _own_peak_mib() -> float:
    """This process's peak resident memory since it started its program (VmHWM).
    ``getrusage``'s ru_maxrss would do for the driver but not for a worker: it keeps the
    maximum across execve, so a worker spawned by a driver holding 5 GB reports 5 GB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _worker_peaks(backend: Backend) -> list[float]:
    client = backend.client  # type: ignore[attr-defined]
    peaks = client.run(_own_peak_mib)
    return sorted(round(mib, 1) for mib in peaks.values())


def _options(kind: str, workers: int, tile_rows: int) -> dict[str, Any]:
    """The backend's options: all cores as threads (cpu), or the cluster's workers and tiles."""
    return ({"workers": default_workers()} if kind == "cpu" else
            {"workers": workers, "tile_rows": tile_rows})


def run_one(kind: str, workers: int, data: Path, threshold: float, tile_rows: int
            ) -> dict[str, Any]:
    """One configuration, in this process: warm up, then time candidate generation (and,
    on Dask, the greedy 1:1 solve from the merged stream of its files)."""
    with np.load(data) as arrays:
        a, b = ClkSet.from_arrays(arrays["a"]), ClkSet.from_arrays(arrays["b"])
        tiny = ClkSet.from_arrays(arrays["a"][:200])
    blocking = LshBlocking()
    digest = hashlib.sha256()
    with get_backend(kind, **_options(kind, workers, tile_rows)) as backend:
        candidate_pairs(tiny, tiny, threshold, backend=backend, blocking=blocking)
        started = time.perf_counter()
        if kind == "cpu":
            found = candidate_pairs(a, b, threshold, backend=backend, blocking=blocking)
            seconds = time.perf_counter() - started
            _digest_rows(digest, found.left, found.right, found.score)
            candidates, compared, links, solve_s = len(found), found.compared, None, None
        else:
            files = backend.candidate_files(a, b, threshold, blocking)  # type: ignore[attr-defined]
            seconds = time.perf_counter() - started
            used_a, used_b = np.zeros(len(a), np.bool_), np.zeros(len(b), np.bool_)
            candidates = links = 0
            for left, right, score in merged_candidates(files.paths):
                _digest_rows(digest, left, right, score)
                candidates += len(left)
                links += int(greedy_take(left, right, used_a, used_b).sum())
            solve_s = round(time.perf_counter() - started - seconds, 2)
            compared = files.visited
            files.remove()
        peaks = _worker_peaks(backend) if kind == "dask" else []
    driver = _own_peak_mib()
    return {"seconds": round(seconds, 2), "candidates": candidates, "links": links,
            "merge_and_solve_s": solve_s, "sha256": digest.hexdigest(),
            "pairs_compared": compared, "worker_peak_rss_mib": peaks,
            "driver_peak_rss_mib": round(driver, 1)}


def run_one_dedup(kind: str, workers: int, data: Path, threshold: float, tile_rows: int
                  ) -> dict[str, Any]:
    """One configuration of ``--dedup``, in this process: warm up, then time the whole run."""
    with np.load(data) as arrays:
        both = ClkSet.from_arrays(np.vstack([arrays["a"], arrays["b"]]))
        tiny = ClkSet.from_arrays(arrays["a"][:200])
    blocking = LshBlocking()
    digest = hashlib.sha256()
    with get_backend(kind, **_options(kind, workers, tile_rows)) as backend:
        link_on(backend, [tiny], threshold, dedup=[True], blocking=blocking)
        started = time.perf_counter()
        result = link_on(backend, [both], threshold, dedup=[True], blocking=blocking)
        seconds = time.perf_counter() - started
        peaks = _worker_peaks(backend) if kind == "dask" else []
    _digest_rows(digest, result.record_a, result.record_b, result.score)
    digest.update(result.entity_of[0].astype("<i8").tobytes())
    return {"seconds": round(seconds, 2), "candidates": result.stats["candidate_pairs"],
            "links": result.stats["links"], "entities": result.entity_count,
            "sha256": digest.hexdigest(),
            "pairs_compared": result.stats["pairs_compared"], "worker_peak_rss_mib": peaks,
            "driver_peak_rss_mib": round(_own_peak_mib(), 1)}


def run(records: int, threshold: float, folder: Path, configs: list[str], tile_rows: int,
        dedup: bool = False) -> dict[str, Any]:
    a, b = make_parties(records)
    data = folder / "clks.npz"
    np.savez(data, a=a, b=b)
    del a, b
    pairs = records * (2 * records - 1) if dedup else records * records
    rows = []
    for config in configs:
        label, kind, workers = CONFIGS[config]
        measured = run_measured([sys.executable, "-m", "benchmarks.bench_dask", "--one", kind,
                                 "--dask-workers", str(workers), "--data", str(data),
                                 "--threshold", str(threshold), "--tile-rows", str(tile_rows),
                                 *(["--dedup"] if dedup else [])])
        result = json.loads(measured.stdout.strip().splitlines()[-1])
        rows.append({"backend": label, "seconds": result["seconds"],
                     "pairs_per_s": round(pairs / result["seconds"]),
                     "compared_per_s": round(result["pairs_compared"] / result["seconds"]),
                     "candidates": result["candidates"], "links": result["links"],
                     **({"entities": result["entities"]} if dedup else {}),
                     **({} if dedup else {"merge_and_solve_s": result["merge_and_solve_s"]}),
                     "peak_rss_mib_all": round(measured.peak_rss_bytes / 2**20, 1),
                     "driver_peak_rss_mib": result["driver_peak_rss_mib"],
                     "worker_peak_rss_mib": result["worker_peak_rss_mib"],
                     "cpu_s_all": round(measured.cpu_seconds, 1),
                     "sha256": result["sha256"]})
    first_seconds = rows[0]["seconds"]
    for row in rows:
        row["speed_vs_first"] = round(first_seconds / row["seconds"], 2)
    definitions = {
        "seconds": "candidate generation after warm-up (Dask: until every band's merged file "
                   "is written)",
        "pairs_per_s": "n x m / seconds of candidate generation (after warm-up)",
        "merge_and_solve_s": "Dask: reading the band files as one merged stream and solving "
                             "1:1 greedily from it",
    }
    if dedup:
        definitions = {
            "seconds": "the whole deduplication after warm-up: candidates and the cluster "
                       "solver (Dask: from the merged band files)",
            "pairs_per_s": "n (n - 1) / 2 / seconds (n: both parties' records)",
            "entities": "groups found (every record has one duplicate: n / 2 expected)",
        }
    return {
        "benchmark": "dask-dedup" if dedup else "dask",
        "records_per_party": records,
        "deduplicated": "A and B as one party" if dedup else False,
        "threshold": threshold,
        "blocking": "lsh, 32 bands x 16 bits",
        "dask_tile_rows": tile_rows,
        "machine": {"cpus": default_workers(), "platform": platform.platform(),
                    "python": platform.python_version(),
                    "load_average_at_start": os.getloadavg()[0]},
        "definitions": {
            **definitions,
            "compared_per_s": "pairs compared word by word (in some band) / seconds",
            "peak_rss_mib_all": "the whole process tree: driver, scheduler, workers",
            "driver_peak_rss_mib": "the driver process (it holds both sets)",
            "worker_peak_rss_mib": "each Dask worker process's own peak RSS",
            "cpu_s_all": "CPU seconds of the whole process tree, data loading included",
            "speed_vs_first": "the first configuration's seconds / this one's",
        },
        "results": rows,
        "identical_candidates": len({row["sha256"] for row in rows}) == 1,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000, help="records per party")
    parser.add_argument("--threshold", type=float, default=None,
                        help=f"Dice (default 0.8; {DEFAULT_DEDUP_THRESHOLD} with --dedup)")
    parser.add_argument("--dedup", action="store_true",
                        help="deduplicate A and B as one party, candidates and solver timed")
    parser.add_argument("--configs", default="cpu,dask1,dask2",
                        help="comma-separated, of cpu, dask1, dask2 (default: all three)")
    parser.add_argument("--tile-rows", type=int, default=1 << 15,
                        help="A rows per Dask task (default 32768)")
    parser.add_argument("--json", type=Path, default=None,
                        help="results (default benchmarks/results/dask.json; dask_dedup.json "
                             "with --dedup)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="a folder for the generated CLKs (default: a temporary folder)")
    parser.add_argument("--one", choices=["cpu", "dask"], help=argparse.SUPPRESS)
    parser.add_argument("--dask-workers", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threshold is None:
        args.threshold = DEFAULT_DEDUP_THRESHOLD if args.dedup else 0.8
    if args.json is None:
        args.json = Path("benchmarks/results") / ("dask_dedup.json" if args.dedup else
                                                  "dask.json")
    if args.one:
        one = run_one_dedup if args.dedup else run_one
        print(json.dumps(one(args.one, args.dask_workers, args.data, args.threshold,
                             args.tile_rows)))
        return 0
    configs = args.configs.split(",")
    unknown = sorted(set(configs) - set(CONFIGS))
    if unknown:
        parser.error(f"unknown configuration {', '.join(unknown)}: choose from "
                     f"{', '.join(CONFIGS)}")
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        result = run(args.records, args.threshold, Path(tmp), configs, args.tile_rows,
                     args.dedup)
    what = (f"Blocked deduplication of {2 * args.records:,} records" if args.dedup else
            f"Blocked linkage {args.records:,} x {args.records:,}")
    print_table([{k: v for k, v in row.items() if k != "sha256"} for row in result["results"]],
                title=f"{what} at Dice >= {args.threshold}: CPU backend vs Dask (local "
                      f"cluster)")
    print(f"identical {'links and entities' if args.dedup else 'candidates'}: "
          f"{result['identical_candidates']}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0 if result["identical_candidates"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
