"""Encoding speed and memory: ``pprl tokenize`` against clkhash 0.18.3 on the same records.

Both tools run as separate processes on the same FEBRL-like CSV with the shipped ``febrl``
schema and the same secret, each using every core. The table reports records/s of the
encoding run (ours including CSV reading and Parquet writing, clkhash's ``generate_clks``
alone), records/s of the whole process (start-up included), the peak RSS of each process
tree, and the ratios.
clkhash runs from its own venv in ``.peers/clkhash`` (it pins cryptography < 41, so it never
enters ``.venv``). Both outputs are compared CLK by CLK: a speed-up only counts if the bytes
are identical.

    python -m benchmarks.bench_encoding --records 1000000
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from importlib import resources
from pathlib import Path

from tokenizer.encodings_file import read_encodings
from tokenizer.parallel import default_workers

from .febrl_like import write_febrl_like_csv
from .measure import run_measured
from .peers import SCRIPTS_DIR, peer_python
from .report import print_table, write_json

CLKHASH_REQUIREMENTS = ["clkhash==0.18.3"]
SECRET = b"benchmark secret, not for real data"


def run(records: int, workers: int, workdir: Path) -> dict[str, object]:
    data = workdir / f"febrl_like_{records}.csv"
    if not data.exists():
        write_febrl_like_csv(data, records, seed=1)
    secret_file = workdir / "secret"
    secret_file.write_bytes(SECRET)
    schema_path = Path(str(resources.files("tokenizer.schemas") / "febrl.json"))

    ours_out = workdir / "ours.parquet"
    # A first tiny run fills numba's on-disk cache, so compiling is not timed.
    tiny = workdir / "warm_up.csv"
    with data.open(encoding="utf-8") as source:
        tiny.write_text("".join(next(source) for _ in range(101)), encoding="utf-8")
    run_measured([sys.executable, "-m", "api.cli", "tokenize", str(tiny), "--schema", "febrl",
                  "--secret-file", str(secret_file), "-o", str(workdir / "warm_up.parquet")])
    tokenize = [sys.executable, "-m", "api.cli", "tokenize", str(data), "--schema", "febrl",
                "--secret-file", str(secret_file), "--id-column", "rec_id", "--workers",
                str(workers), "--json"]
    # Like for like: clkhash encodes values as written, so ours does too here; the default
    # run (values normalised first) is timed beside it.
    ours = run_measured([*tokenize, "--no-normalize", "-o", str(ours_out)])
    ours_core = json.loads(ours.stdout)["seconds"]
    normalised = run_measured([*tokenize, "-o", str(workdir / "normalised.parquet")])
    normalised_core = json.loads(normalised.stdout)["seconds"]
    peer_out = workdir / "clkhash.json"
    python = peer_python("clkhash", CLKHASH_REQUIREMENTS)
    peer = run_measured([str(python), str(SCRIPTS_DIR / "clkhash_encode.py"), str(schema_path),
                         str(data), str(secret_file), str(peer_out), str(workers)])
    peer_core = json.loads(peer.stdout)["seconds"]
    ours_clks = read_encodings(ours_out).clks
    peer_clks = read_encodings(peer_out).clks
    identical = ours_clks.shape == peer_clks.shape and bool((ours_clks == peer_clks).all())
    rows = [
        {"tool": "pprl tokenize --no-normalize", "records": records,
         "records_per_s": round(records / ours_core),
         "process_s": round(ours.seconds, 2),
         "process_records_per_s": round(records / ours.seconds),
         "peak_rss_mib": round(ours.peak_rss_bytes / 2**20, 1)},
        {"tool": "pprl tokenize (normalised, the default)", "records": records,
         "records_per_s": round(records / normalised_core),
         "process_s": round(normalised.seconds, 2),
         "process_records_per_s": round(records / normalised.seconds),
         "peak_rss_mib": round(normalised.peak_rss_bytes / 2**20, 1)},
        {"tool": "clkhash 0.18.3", "records": records,
         "records_per_s": round(records / peer_core),
         "process_s": round(peer.seconds, 2),
         "process_records_per_s": round(records / peer.seconds),
         "peak_rss_mib": round(peer.peak_rss_bytes / 2**20, 1)},
    ]
    return {
        "benchmark": "encoding",
        "schema": "febrl (shipped)",
        "workers": workers,
        "machine": {"cpus": default_workers(), "platform": platform.platform(),
                    "python": platform.python_version()},
        "definitions": {
            "records_per_s": "records / seconds of the encoding run: for pprl, reading the CSV, "
                             "encoding and writing the Parquet file (tokenize_file); for "
                             "clkhash, generate_clks alone (its CSV reading and JSON writing "
                             "not counted)",
            "process_records_per_s": "records / wall seconds of the whole process, start-up "
                                     "and imports included",
            "peak_rss_mib": "peak resident memory of the process tree, sampled every 50 ms",
        },
        "results": rows,
        "speedup": round(peer_core / ours_core, 1),
        "process_speedup": round(peer.seconds / ours.seconds, 1),
        "normalised_speedup": round(peer_core / normalised_core, 1),
        "identical_clks": identical,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=default_workers(),
                        help="processes for both tools (default: all cores)")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/encoding.json"))
    parser.add_argument("--workdir", type=Path, default=None,
                        help="keep the generated data here between runs")
    args = parser.parse_args(argv)
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
        result = run(args.records, args.workers, args.workdir)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            result = run(args.records, args.workers, Path(tmp))
    print_table(result["results"], title=f"Encoding {args.records:,} FEBRL-like records, "
                                         f"{args.workers} worker(s)")
    print(f"speed-up over clkhash: {result['speedup']}x records/s, "
          f"{result['process_speedup']}x whole process ({result['normalised_speedup']}x with "
          f"values normalised first); identical CLKs: {result['identical_clks']}")
    write_json(args.json, result)
    return 0 if result["identical_clks"] else 1


if __name__ == "__main__":
    sys.exit(main())
