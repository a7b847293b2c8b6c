"""Re-identification risk of a large released table: each part's time, and ``pprl risk`` end
to end with its peak memory.

A synthetic table of ``--rows`` records (default 1,000,000) with 5 quasi-identifiers (age,
sex, ZIP3, race, year of the study) and 1 sensitive attribute (a diagnosis code drawn from a
skewed distribution) is written to Parquet. Its parts (read, equivalence classes, privacy
models, ARX risk figures with a population 10 times the table, Safe Harbor check, HTML) are
timed in this process; then ``pprl risk`` runs on the file in a child process, whose wall time
and peak RSS (sampled over its process tree) are what a data manager would see.
"""

from __future__ import annotations

import argparse
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from deid.risk.classes import equivalence_classes
from deid.risk.dataset import read_dataset
from deid.risk.privacy_models import privacy_models
from deid.risk.reidentification import reidentification_risk
from deid.risk.report import dataset_info, risk_document, write_html
from deid.risk.safe_harbor import safe_harbor_findings

from .measure import run_measured
from .report import print_table, write_json

QUASI_IDENTIFIERS = ("age", "sex", "zip3", "race", "study_year")
SENSITIVE = "diagnosis"


def synthetic_table(rows: int, seed: int = 15) -> pa.Table:
    """Roughly census-shaped: ages 0-89 plus a top-coded 90+, 900 ZIP3 areas of skewed size,
    6 race categories, 10 study years, 2,000 diagnosis codes (Zipf-like)."""
    rng = np.random.default_rng(seed)
    age = np.minimum(rng.gamma(4.0, 11.0, rows).astype(np.int64), 90)
    zip3_weights = rng.pareto(1.2, 900) + 1
    zip3 = rng.choice(900, rows, p=zip3_weights / zip3_weights.sum()) + 100
    race_p = np.array([0.6, 0.13, 0.18, 0.06, 0.02, 0.01])
    diagnosis_p = 1.0 / np.arange(1, 2001)
    return pa.table({
        "record_id": pa.array([f"r{i:08d}" for i in range(rows)]),
        "age": pa.array(np.where(age == 90, "90+", age.astype(str))),
        "sex": pa.array(rng.choice(np.array(["F", "M"]), rows)),
        "zip3": pa.array(np.char.zfill(zip3.astype(str), 3)),
        "race": pa.array(rng.choice(np.array(["white", "black", "hispanic", "asian", "other",
                                              "unknown"]), rows, p=race_p)),
        "study_year": pa.array(rng.integers(2015, 2025, rows)),
        "diagnosis": pa.array(np.char.add("D", rng.choice(2000, rows,
                                                          p=diagnosis_p / diagnosis_p.sum())
                                          .astype(str))),
    })


def _timed(parts: list[dict[str, Any]], what: str, run: Any) -> Any:
    started = time.perf_counter()
    result = run()
    parts.append({"part": what, "seconds": round(time.perf_counter() - started, 3)})
    return result


def run(rows: int, workdir: Path) -> dict[str, Any]:
    path = workdir / "released.parquet"
    pq.write_table(synthetic_table(rows), path)
    population = rows * 10
    parts: list[dict[str, Any]] = []
    table = _timed(parts, "read the Parquet file", lambda: read_dataset(path))
    classes = _timed(parts, "equivalence classes",
                     lambda: equivalence_classes(table, QUASI_IDENTIFIERS))
    models = _timed(parts, "privacy models (k, l, t, beta, delta)",
                    lambda: privacy_models(table, classes, [SENSITIVE]))
    risk = _timed(parts, "prosecutor/journalist/marketer, population uniqueness",
                  lambda: reidentification_risk(classes, population_size=population))
    findings = _timed(parts, "Safe Harbor check (every column)",
                      lambda: safe_harbor_findings(table, as_of_year=2025))
    document = _timed(parts, "JSON document (file SHA-256 included)", lambda: risk_document(
        dataset=dataset_info(path, table), quasi_identifiers=QUASI_IDENTIFIERS,
        sensitive=[SENSITIVE], population_size=population, models=models,
        risk=risk, findings=findings))
    _timed(parts, "HTML report with charts",
           lambda: write_html(document, classes, 0.2, workdir / "report.html"))
    in_process_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    command = [sys.executable, "-m", "api.cli", "risk", str(path),
               *(a for q in QUASI_IDENTIFIERS for a in ("-q", q)), "-s", SENSITIVE,
               "--population-size", str(population), "--as-of-year", "2025", "--json",
               "-o", str(workdir / "cli.html")]
    measured = run_measured(command)
    parts.append({"part": "total of the parts", "seconds": round(sum(p["seconds"]
                                                                      for p in parts), 3)})
    return {"benchmark": "risk", "rows": rows, "quasi_identifiers": list(QUASI_IDENTIFIERS),
            "sensitive": [SENSITIVE], "population_size": population,
            "file_mib": round(path.stat().st_size / 2**20, 1),
            "equivalence_classes": classes.count,
            "sample_uniques": int((classes.sizes == 1).sum()),
            "k_anonymity": document["k_anonymity"],
            "safe_harbor_findings": len(findings),
            "parts": parts,
            "cli_seconds": round(measured.seconds, 2),
            "cli_peak_rss_mib": round(measured.peak_rss_bytes / 2**20),
            "in_process_peak_rss_mib": round(in_process_peak),
            "machine": {"platform": platform.platform(), "python": platform.python_version()}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/risk.json"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        result = run(args.rows, Path(tmp))
    print_table(result["parts"], title=f"pprl risk on {result['rows']:,} rows, "
                                       f"{len(QUASI_IDENTIFIERS)} quasi-identifiers "
                                       f"({result['equivalence_classes']:,} classes, "
                                       f"{result['sample_uniques']:,} sample uniques)")
    print(f"pprl risk end to end: {result['cli_seconds']} s, peak RSS "
          f"{result['cli_peak_rss_mib']} MiB (this process: "
          f"{result['in_process_peak_rss_mib']} MiB)")
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
