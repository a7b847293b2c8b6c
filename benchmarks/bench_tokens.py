"""OpenToken-compatible tokens: speed and memory of ``pprl tokens``.

Two inputs: "random", people whose names, birth dates, ZIPs and SSNs are drawn at random so
values almost never repeat (the worst case for rules run once per distinct value); and
"febrl-like" (:mod:`benchmarks.febrl_like`: names and postcodes repeat as in FEBRL), its
dates written as ISO dates, its 7-digit ids as SSNs and a random sex added, since OpenToken
needs all three. Each is timed as the whole command (a fresh process: start-up, CSV reading,
tokens, CSV and metadata writing; hash-only and encrypted), as the same work without
start-up, and as the engine alone (rules, signatures and hashing of columns already read).
Hashing runs on every core (threads); the machine's other load is not controlled, so each
whole-process run is repeated and the fastest kept, its CPU seconds (user + system, which
other load disturbs less than wall time) reported beside it, and the load average recorded.

OpenToken itself is not timed: its PyPI package (1.12.5) installs without its
``tokens/definitions`` sub-package, so it cannot make tokens when installed from the registry.

    python -m benchmarks.bench_tokens --records 200000
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from tokenizer.opentoken.engine import RULE_IDS, Counts, hash_signatures, tokenize_batch
from tokenizer.opentoken.files import read_people, write_metadata, write_tokens
from tokenizer.opentoken.kernel_load import hash_kernel

from .febrl_like import make_febrl_like
from .measure import run_measured
from .report import print_table, write_json

SECRET = b"benchmark hashing secret, not for real data"
KEY = b"benchmark-encryption-key-32-char"


def _letters(rng: np.random.Generator, count: int, low: int, high: int) -> np.ndarray:
    """Capitalised random words of ``low``..``high`` letters."""
    codes = rng.integers(ord("a"), ord("z") + 1, size=(count, high), dtype=np.uint32)
    codes[:, 0] -= 32
    words = codes.view(f"U{high}").ravel()
    lengths = rng.integers(low, high + 1, size=count)
    return np.array([w[:n] for w, n in zip(words.tolist(), lengths.tolist(), strict=True)])


def _digits(rng: np.random.Generator, count: int, width: int) -> np.ndarray:
    return np.char.zfill(rng.integers(0, 10**width, size=count).astype(str), width)


def random_people(count: int, seed: int = 0) -> pa.Table:
    """OpenToken's input columns, every value drawn at random (names, dates, ZIPs and SSNs
    nearly all distinct)."""
    rng = np.random.default_rng(seed)
    days = rng.integers(0, 365 * 90, size=count)
    dates = (np.datetime64("1930-01-01") + days.astype("timedelta64[D]")).astype(str)
    area = rng.integers(1, 900, size=count)
    area[area == 666] = 667
    ssn = np.char.add(np.char.add(np.char.zfill(area.astype(str), 3), "-"),
                      np.char.add(np.char.add(
                          np.char.zfill(rng.integers(1, 100, size=count).astype(str), 2), "-"),
                          np.char.zfill(rng.integers(1, 10_000, size=count).astype(str), 4)))
    return pa.table({
        "RecordId": pa.array(np.char.add("r", np.arange(count).astype(str)), pa.string()),
        "FirstName": pa.array(_letters(rng, count, 3, 9), pa.string()),
        "LastName": pa.array(_letters(rng, count, 4, 11), pa.string()),
        "BirthDate": pa.array(dates, pa.string()),
        "Sex": pa.array(np.where(rng.random(count) < 0.5, "Female", "Male"), pa.string()),
        "PostalCode": pa.array(_digits(rng, count, 5), pa.string()),
        "SocialSecurityNumber": pa.array(ssn, pa.string()),
    })


def febrl_people(count: int, seed: int = 0) -> pa.Table:
    """FEBRL-like records as OpenToken input: ISO birth dates, the id as SSN, a random sex."""
    febrl = make_febrl_like(count, seed)
    rng = np.random.default_rng(seed)
    iso = [f"{d[:4]}-{d[4:6]}-{d[6:]}" for d in febrl.column("date_of_birth").to_pylist()]
    return pa.table({
        "RecordId": febrl.column("rec_id"),
        "FirstName": febrl.column("given_name"),
        "LastName": febrl.column("surname"),
        "BirthDate": pa.array(iso, pa.string()),
        "Sex": pa.array(np.where(rng.random(count) < 0.5, "F", "M"), pa.string()),
        "PostalCode": febrl.column("postcode"),
        "SocialSecurityNumber": febrl.column("soc_sec_id"),
    })


def _in_process(path: Path, out: Path) -> tuple[float, float]:
    """(engine, run) seconds: rules, signatures and hashing of columns already read; and the
    command's work without interpreter start-up (reading, tokens, writing CSV and metadata)."""
    hash_kernel()   # `pprl tokens` loads it while reading; not part of the engine's time
    started = time.perf_counter()
    columns, ids, rows = read_people(path)
    engine_started = time.perf_counter()
    counts = Counts()
    batch = tokenize_batch(columns, ids, rows, counts)
    tokens = {rule: hash_signatures(batch.signatures[rule], SECRET) for rule in RULE_IDS}
    engine = time.perf_counter() - engine_started
    write_tokens(out, batch.record_ids, tokens)
    write_metadata(out, counts, SECRET)
    return engine, time.perf_counter() - started


def _fastest(command: list[str], repeats: int) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, peak RSS MiB) of the fastest of ``repeats`` runs."""
    runs = [run_measured(command) for _ in range(repeats)]
    best = min(runs, key=lambda measured: measured.seconds)
    return best.seconds, best.cpu_seconds, best.peak_rss_bytes / 2**20


def run(records: int, workdir: Path, repeats: int = 3) -> dict[str, object]:
    (workdir / "secret").write_bytes(SECRET)
    (workdir / "key").write_bytes(KEY)
    rows = []
    load_before = os.getloadavg()
    # A first tiny run fills numba's on-disk cache, so compiling is not timed.
    tiny = workdir / "warm_up.csv"
    pacsv.write_csv(random_people(100), tiny)
    run_measured([sys.executable, "-m", "api.cli", "tokens", str(tiny), "--hashing-secret-file",
                  str(workdir / "secret"), "-o", str(workdir / "warm_up-tokens.csv")])
    for kind, make in (("random", random_people), ("febrl-like", febrl_people)):
        data = workdir / f"{kind}_{records}.csv"
        if not data.exists():
            pacsv.write_csv(make(records), data)
        engine, work = _in_process(data, workdir / f"{kind}-in-process.csv")
        rows.append({"data": kind, "what": "engine (rules, signatures, hashing)",
                     "records": records, "seconds": round(engine, 2),
                     "records_per_s": round(records / engine), "cpu_s": None,
                     "peak_rss_mib": None})
        rows.append({"data": kind, "what": "read + engine + write (no start-up)",
                     "records": records, "seconds": round(work, 2),
                     "records_per_s": round(records / work), "cpu_s": None,
                     "peak_rss_mib": None})
        command = [sys.executable, "-m", "api.cli", "tokens", str(data), "--hashing-secret-file",
                   str(workdir / "secret")]
        for mode, extra in (("hash-only", []),
                            ("encrypted", ["--encryption-key-file", str(workdir / "key")])):
            wall, cpu, peak = _fastest([*command, "-o", str(workdir / f"{kind}-{mode}.csv"),
                                        *extra], repeats)
            rows.append({"data": kind, "what": f"pprl tokens, {mode} (whole process)",
                         "records": records, "seconds": round(wall, 2),
                         "records_per_s": round(records / wall), "cpu_s": round(cpu, 2),
                         "peak_rss_mib": round(peak, 1)})
    return {
        "benchmark": "tokens",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(),
                    "load_average_1min_before_after": [round(load_before[0], 2),
                                                       round(os.getloadavg()[0], 2)]},
        "repeats": repeats,
        "definitions": {
            "engine": "tokenize_batch + hash_signatures on columns already read (CSV reading, "
                      "output and metadata writing not counted), in this process",
            "no start-up": "read_people, the engine, write_tokens and write_metadata in this "
                           "process: the command without interpreter start-up and imports",
            "whole process": "wall seconds of `pprl tokens` as a fresh process: start-up, "
                             "reading, tokens, writing the CSV and metadata; the fastest "
                             "of `repeats` runs",
            "cpu_s": "user + system CPU seconds of that run (all threads)",
            "peak_rss_mib": "peak resident memory of the process tree, sampled every 50 ms",
        },
        "results": rows,
        "opentoken": "not timed: its PyPI package 1.12.5 lacks tokens/definitions",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs of each whole-process case; the fastest is kept")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/tokens.json"))
    parser.add_argument("--workdir", type=Path, default=None,
                        help="keep the generated data here between runs")
    args = parser.parse_args(argv)
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
        result = run(args.records, args.workdir, args.repeats)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            result = run(args.records, Path(tmp), args.repeats)
    print_table(result["results"], title=f"pprl tokens on {args.records:,} records")  # type: ignore[arg-type]
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
