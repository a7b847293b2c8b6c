"""Matching speed and memory: ``pprl link`` against anonlink 0.15.3 on the same CLKs.

Two providers' FEBRL-like records (half of B re-typed copies of A's people) are tokenized with
the shipped ``febrl`` schema; both tools then find every pair with Dice >= the threshold on
all cores. anonlink runs from its own venv in ``.peers/anonlink``, one process per core (its
kernel holds the GIL). The table reports pairs/s (n x m over the seconds of candidate
generation), candidates found (they must be equal), the share of pairs our popcount window
skipped, and the peak RSS of each process tree.

    python -m benchmarks.bench_matching --records 50000
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from linker.backends import Candidates, candidate_pairs
from linker.backends.cpu import CpuBackend, vector_popcount_available
from linker.clkset import ClkSet
from tokenizer.catalog import load_schema
from tokenizer.encoder import ClkEncoder
from tokenizer.encodings_file import EncodingsMetadata, EncodingsWriter
from tokenizer.parallel import default_workers

from .febrl_like import make_linked_pair
from .measure import run_measured
from .peers import SCRIPTS_DIR, peer_python
from .report import print_table, write_json

SECRET = b"benchmark secret, not for real data"


def _tokenize(table, schema) -> np.ndarray:  # type: ignore[no-untyped-def]
    encoder = ClkEncoder(schema, SECRET)
    encoded = encoder.encode({c: table.column(c) for c in encoder.required_columns})
    return encoded.clks


def _write_encodings(path: Path, clks: np.ndarray, ids: list[str], party: str,
                     fingerprint: str) -> Path:
    writer = EncodingsWriter(path, EncodingsMetadata(clks.shape[1] * 8, fingerprint, party))
    writer.write(ids, clks, np.bitwise_count(clks).sum(axis=1))
    writer.commit()
    return path


def _pairs_sha256(candidates: Candidates) -> str:
    """The digest ``peers/anonlink_bench.py`` prints, of our candidate pairs."""
    lines = sorted(f"{int(i)} {int(j)} {float(s)!r}" for s, i, j in zip(
        candidates.score.tolist(), candidates.left.tolist(), candidates.right.tolist(),
        strict=True))
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def run(records: int, threshold: float, workers: int, workdir: Path) -> dict[str, object]:
    schema = load_schema("febrl")
    first, second = make_linked_pair(records, seed=7)
    a, b = _tokenize(first, schema), _tokenize(second, schema)
    np.save(workdir / "a.npy", a)
    np.save(workdir / "b.npy", b)
    pairs = records * records
    fa = _write_encodings(workdir / "a.parquet", a, first.column("rec_id").to_pylist(), "a",
                          schema.fingerprint)
    fb = _write_encodings(workdir / "b.parquet", b, second.column("rec_id").to_pylist(), "b",
                          schema.fingerprint)
    # In-process timing of candidate generation alone (after compiling), as for anonlink.
    tiny = ClkSet.from_arrays(a[:10])
    candidate_pairs(tiny, tiny, threshold)
    backend = CpuBackend(workers)
    started = time.perf_counter()
    ours_candidates = candidate_pairs(ClkSet.from_arrays(a), ClkSet.from_arrays(b), threshold,
                                      backend=backend)
    ours_seconds = time.perf_counter() - started
    ours_process = run_measured([sys.executable, "-m", "api.cli", "link", str(fa), str(fb),
                                 "--threshold", str(threshold), "--workers", str(workers),
                                 "-o", str(workdir / "out")])
    python = peer_python("anonlink", ["anonlink==0.15.3"])
    peer = run_measured([str(python), str(SCRIPTS_DIR / "anonlink_bench.py"),
                         str(workdir / "a.npy"), str(workdir / "b.npy"), str(threshold),
                         str(workers)])
    peer_result = json.loads(peer.stdout)
    rows = [
        {"tool": f"pprl (CPU, {backend.kernel} kernel)", "pairs": pairs,
         "seconds": round(ours_seconds, 3),
         "pairs_per_s": round(pairs / ours_seconds), "candidates": len(ours_candidates),
         "pruned_share": round(ours_candidates.pruned_share, 4),
         "stopped_halfway": round(1 - ours_candidates.completed / ours_candidates.compared, 4)
         if ours_candidates.compared else 0.0,
         "peak_rss_mib": round(ours_process.peak_rss_bytes / 2**20, 1)},
        {"tool": "anonlink 0.15.3", "pairs": pairs, "seconds": round(peer_result["seconds"], 3),
         "pairs_per_s": round(pairs / peer_result["seconds"]),
         "candidates": peer_result["candidates"], "pruned_share": None,
         "stopped_halfway": None,
         "peak_rss_mib": round(peer.peak_rss_bytes / 2**20, 1)},
    ]
    return {
        "benchmark": "matching",
        "schema": "febrl (shipped)",
        "records_per_party": records,
        "threshold": threshold,
        "workers": workers,
        "machine": {"cpus": default_workers(), "platform": platform.platform(),
                    "python": platform.python_version(),
                    "avx512_vpopcntdq": vector_popcount_available()},
        "definitions": {
            "pairs_per_s": "n x m / seconds of candidate generation (all pairs >= threshold), "
                           "in process, data already loaded, kernels compiled",
            "pruned_share": "share of pairs skipped by the popcount window before any AND",
            "stopped_halfway": "share of the compared pairs dropped after half the words, "
                               "when even a full match of the rest could not reach t",
            "peak_rss_mib": "pprl: the whole `pprl link` process (read, match, solve, write); "
                            "anonlink: its worker pool, sampled every 50 ms",
        },
        "results": rows,
        "speedup": round(peer_result["seconds"] / ours_seconds, 2),
        "same_candidate_count": len(ours_candidates) == peer_result["candidates"],
        "identical_candidates": _pairs_sha256(ours_candidates) == peer_result["pairs_sha256"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=50_000, help="records per party")
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/matching.json"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        result = run(args.records, args.threshold, args.workers, Path(tmp))
    print_table(result["results"], title=f"Matching {args.records:,} x {args.records:,} "
                                         f"CLKs at Dice >= {args.threshold}, "
                                         f"{args.workers} worker(s)")
    print(f"speed-up over anonlink: {result['speedup']}x; same candidates: "
          f"{result['same_candidate_count']}; identical pairs and scores: "
          f"{result['identical_candidates']}")
    write_json(args.json, result)
    return 0 if result["identical_candidates"] else 1


if __name__ == "__main__":
    sys.exit(main())
