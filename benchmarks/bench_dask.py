"""Scale-out: the Dask backend against the CPU backend on a blocked linkage, same candidates.

Two parties of random 1024-bit CLKs (each row's bit density drawn from 0.3-0.5, as the shipped
schemas set about 40% of the bits), B holding copies of A's rows with 1.5% of bits flipped,
shuffled; LSH blocking (32 bands of 16 bits) at Dice >= 0.8. Each configuration runs in its
own process: the CPU backend with all cores as threads, then the Dask backend on a local
cluster of 1 and of 2 single-threaded worker processes. Timed: candidate generation after a
warm-up (cluster started, kernels loaded), data in memory. Peak memory: the whole process
tree (driver and workers, sampled from /proc) and each worker's own peak RSS. Candidates are
compared by a SHA-256 of (left, right, score): they must be identical.

    python -m benchmarks.bench_dask --records 1000000
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from linker.backends import Backend, candidate_pairs, get_backend
from linker.blocking import LshBlocking
from linker.clkset import ClkSet
from tokenizer.parallel import default_workers

from .measure import run_measured
from .report import print_table

CONFIGS = {"cpu": ("cpu", 0), "dask, 1 worker": ("dask", 1), "dask, 2 workers": ("dask", 2)}


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


def _sha(found: Any) -> str:
    digest = hashlib.sha256()
    for column in (found.left, found.right, found.score):
        digest.update(np.ascontiguousarray(column).tobytes())
    return digest.hexdigest()


def _worker_peaks(backend: Backend) -> list[float]:
    client = backend.client  # type: ignore[attr-defined]
    peaks = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return sorted(round(kib / 1024, 1) for kib in peaks.values())


def run_one(kind: str, workers: int, data: Path, threshold: float) -> dict[str, Any]:
    """One configuration, in this process: warm up, then time candidate generation."""
    arrays = np.load(data)
    a, b = ClkSet.from_arrays(arrays["a"]), ClkSet.from_arrays(arrays["b"])
    options: dict[str, Any] = ({"workers": default_workers()} if kind == "cpu" else
                               {"workers": workers})
    blocking = LshBlocking()
    with get_backend(kind, **options) as backend:
        tiny = ClkSet.from_arrays(arrays["a"][:200])
        candidate_pairs(tiny, tiny, threshold, backend=backend, blocking=blocking)
        started = time.perf_counter()
        found = candidate_pairs(a, b, threshold, backend=backend, blocking=blocking)
        seconds = time.perf_counter() - started
        peaks = _worker_peaks(backend) if kind == "dask" else []
    return {"seconds": round(seconds, 2), "candidates": len(found), "sha256": _sha(found),
            "pairs_compared": found.compared, "worker_peak_rss_mib": peaks}


def run(records: int, threshold: float, folder: Path) -> dict[str, Any]:
    a, b = make_parties(records)
    data = folder / "clks.npz"
    np.savez(data, a=a, b=b)
    rows = []
    for label, (kind, workers) in CONFIGS.items():
        measured = run_measured([sys.executable, "-m", "benchmarks.bench_dask", "--one", kind,
                                 "--dask-workers", str(workers), "--data", str(data),
                                 "--threshold", str(threshold)])
        result = json.loads(measured.stdout.strip().splitlines()[-1])
        rows.append({"backend": label, "seconds": result["seconds"],
                     "pairs_per_s": round(records * records / result["seconds"]),
                     "compared_per_s": round(result["pairs_compared"] / result["seconds"]),
                     "candidates": result["candidates"],
                     "peak_rss_mib_all": round(measured.peak_rss_bytes / 2**20, 1),
                     "worker_peak_rss_mib": result["worker_peak_rss_mib"],
                     "sha256": result["sha256"]})
    cpu_seconds = rows[0]["seconds"]
    for row in rows:
        row["speed_vs_cpu"] = round(cpu_seconds / row["seconds"], 2)
    return {
        "benchmark": "dask",
        "records_per_party": records,
        "threshold": threshold,
        "blocking": "lsh, 32 bands x 16 bits",
        "machine": {"cpus": default_workers(), "platform": platform.platform(),
                    "python": platform.python_version()},
        "definitions": {
            "pairs_per_s": "n x m / seconds of candidate generation (after warm-up)",
            "compared_per_s": "pairs compared word by word (in some band) / seconds",
            "peak_rss_mib_all": "the whole process tree: driver, scheduler, workers",
            "worker_peak_rss_mib": "each Dask worker process's own peak RSS",
        },
        "results": rows,
        "identical_candidates": len({row["sha256"] for row in rows}) == 1,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000, help="records per party")
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/dask.json"))
    parser.add_argument("--one", choices=["cpu", "dask"], help=argparse.SUPPRESS)
    parser.add_argument("--dask-workers", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.one, args.dask_workers, args.data, args.threshold)))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        result = run(args.records, args.threshold, Path(tmp))
    print_table([{k: v for k, v in row.items() if k != "sha256"} for row in result["results"]],
                title=f"Blocked linkage {args.records:,} x {args.records:,} at Dice >= "
                      f"{args.threshold}: CPU backend vs Dask (local cluster)")
    print(f"identical candidates: {result['identical_candidates']}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0 if result["identical_candidates"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
