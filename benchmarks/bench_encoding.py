"""Encoding speed and memory: ``pprl tokenize`` against clkhash 0.18.3 on the same records, on
two data sets side by side.

- FEBRL-like records with the shipped ``febrl`` schema: names, suburbs and postcodes repeat as
  in FEBRL; dates of birth and ids are nearly unique;
- clkhash's own random-names data with its example schema (a name as bigrams, a date of birth
  as positional unigrams, a sex): almost no value repeats, so nothing is saved by encoding a
  repeated value once.

Both tools run as separate processes on the same CSV and the same secret, each using every
core. The table reports records/s of the encoding run (ours including CSV reading and Parquet
writing, clkhash's ``generate_clks`` alone), records/s of the whole process (start-up
included), the peak RSS of each process tree, and the ratios.
clkhash runs from its own venv in ``.peers/clkhash`` (it pins cryptography < 41, so it never
enters ``.venv``). Both outputs are compared CLK by CLK: a speed-up only counts if the bytes
are identical.

    python -m benchmarks.bench_encoding --records 200000
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

from tokenizer.encodings_file import read_encodings
from tokenizer.parallel import default_workers

from .febrl_like import write_febrl_like_csv
from .measure import Measured, run_measured
from .peers import SCRIPTS_DIR, peer_python
from .random_names import randomnames_schema, write_randomnames
from .report import print_table, write_json

__all__ = ["run", "DATASETS"]

SECRET = b"benchmark secret, not for real data"
DATASETS = ("febrl-like", "random names")


def _data(data: str, records: int, workdir: Path) -> tuple[Path, Path, str]:
    """(CSV, schema file, id column) of a data set."""
    if data == "febrl-like":
        path = workdir / f"febrl_like_{records}.csv"
        if not path.exists():
            write_febrl_like_csv(path, records, seed=1)
        return path, Path(str(resources.files("tokenizer.schemas") / "febrl.json")), "rec_id"
    path = write_randomnames(workdir / f"randomnames_{records}.csv", records, seed=1)
    return path, randomnames_schema(workdir), "INDEX"


def _row(data: str, tool: str, records: int, measured: Measured, core_s: float,
         peer: Measured | None = None) -> dict[str, Any]:
    return {"data": data, "tool": tool, "records": records,
            "records_per_s": round(records / core_s),
            "process_s": round(measured.seconds, 2),
            "process_records_per_s": round(records / measured.seconds),
            "process_speedup": round(peer.seconds / measured.seconds, 1) if peer else None,
            "process_cpu_s": round(measured.cpu_seconds, 2),
            "cpu_speedup": round(peer.cpu_seconds / measured.cpu_seconds, 1) if peer else None,
            "peak_rss_mib": round(measured.peak_rss_bytes / 2**20, 1)}


def _warm_up(data_path: Path, schema: Path, secret_file: Path, workdir: Path) -> None:
    """A first tiny run fills numba's on-disk cache, so compiling is not timed."""
    tiny = workdir / f"warm_up_{data_path.stem}.csv"
    with data_path.open(encoding="utf-8") as source:
        tiny.write_text("".join(next(source) for _ in range(101)), encoding="utf-8")
    run_measured([sys.executable, "-m", "api.cli", "tokenize", str(tiny), "--schema",
                  str(schema), "--secret-file", str(secret_file), "-o",
                  str(workdir / "warm_up.parquet")])


def run(records: int, workers: int, workdir: Path) -> dict[str, object]:
    secret_file = workdir / "secret"
    secret_file.write_bytes(SECRET)
    python = peer_python("clkhash")
    rows: list[dict[str, Any]] = []
    identical: dict[str, bool] = {}
    speedups: dict[str, float] = {}
    cpu_speedups: dict[str, float] = {}
    for data in DATASETS:
        data_path, schema, id_column = _data(data, records, workdir)
        _warm_up(data_path, schema, secret_file, workdir)
        ours_out = workdir / "ours.parquet"
        tokenize = [sys.executable, "-m", "api.cli", "tokenize", str(data_path), "--schema",
                    str(schema), "--secret-file", str(secret_file), "--id-column", id_column,
                    "--workers", str(workers), "--json"]
        # Like for like: clkhash encodes values as written, so ours does too here; on the
        # shipped schema the default run (values normalised first) is timed beside it.
        ours = run_measured([*tokenize, "--no-normalize", "-o", str(ours_out)])
        peer_out = workdir / "clkhash.json"
        peer = run_measured([str(python), str(SCRIPTS_DIR / "clkhash_encode.py"), str(schema),
                             str(data_path), str(secret_file), str(peer_out), str(workers)])
        rows.append(_row(data, "pprl tokenize --no-normalize", records, ours,
                         json.loads(ours.stdout)["seconds"], peer))
        if data == "febrl-like":
            normalised = run_measured([*tokenize, "-o", str(workdir / "normalised.parquet")])
            rows.append(_row(data, "pprl tokenize (normalised, the default)", records,
                             normalised, json.loads(normalised.stdout)["seconds"], peer))
        rows.append(_row(data, "clkhash 0.18.3", records, peer,
                         json.loads(peer.stdout)["seconds"]))
        ours_clks, peer_clks = read_encodings(ours_out).clks, read_encodings(peer_out).clks
        identical[data] = (ours_clks.shape == peer_clks.shape
                           and bool((ours_clks == peer_clks).all()))
        speedups[data] = round(peer.seconds / ours.seconds, 1)
        cpu_speedups[data] = round(peer.cpu_seconds / ours.cpu_seconds, 1)
    return {
        "benchmark": "encoding",
        "records": records,
        "workers": workers,
        "machine": {"cpus": default_workers(), "platform": platform.platform(),
                    "python": platform.python_version()},
        "definitions": {
            "data": "febrl-like: the shipped febrl schema on FEBRL-like records; random names: "
                    "clkhash's random-names data and example schema",
            "records_per_s": "records / seconds of the encoding run: for pprl, reading the CSV, "
                             "encoding and writing the Parquet file (tokenize_file); for "
                             "clkhash, generate_clks alone (its CSV reading and JSON writing "
                             "not counted)",
            "process_records_per_s": "records / wall seconds of the whole process, start-up "
                                     "and imports included",
            "process_speedup": "clkhash's whole-process seconds / ours, in the same run",
            "process_cpu_s": "CPU seconds (user + system) of the whole process tree: steadier "
                             "than wall time on a shared machine",
            "cpu_speedup": "clkhash's whole-process CPU seconds / ours",
            "peak_rss_mib": "peak resident memory of the process tree, sampled every 50 ms",
        },
        "results": rows,
        "process_speedup": speedups,
        "cpu_speedup": cpu_speedups,
        "identical_clks": identical,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
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
    print_table(result["results"], title=f"Encoding {args.records:,} records, "  # type: ignore[arg-type]
                                         f"{args.workers} worker(s)")
    print(f"whole-process speed-up over clkhash: {result['process_speedup']}; identical "
          f"CLKs: {result['identical_clks']}")
    write_json(args.json, result)
    return 0 if all(result["identical_clks"].values()) else 1  # type: ignore[attr-defined]


if __name__ == "__main__":
    sys.exit(main())
