"""Deterministic tokens against CLKs on the synthetic population: pairwise precision and recall
of linking the imaging, EHR and claims extracts (`pprl link`, no deduplication) with tokens
alone, CLKs alone at the default threshold, and both (`pprl link --tokens`).

"Tokens alone" is how OpenToken networks link: a pair agreeing on any of T1-T5 is a match;
here those pairs go through the linker's own solver (one record per provider per entity),
with no Dice candidate (a threshold above 1). Every configuration with tokens runs with the
linker's default --token-value-cap (100), recorded with the values over it. The extracts
carry no SSN, so T4 is always blank. Truth pairs inside one extract (a provider's own
duplicates) count against recall in every row alike: `pprl link` without --dedup never
joins them.

    python -m benchmarks.bench_token_linkage --people 20000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from linker.clkset import ClkSet, load_clk_sets
from linker.evaluate import evaluate_entities, read_truth
from linker.link import DEFAULT_THRESHOLD, link_sets
from linker.results import read_entities, write_results
from synth.cli import synthesize
from tokenizer.catalog import load_schema
from tokenizer.encodings_file import TOKEN_RULES
from tokenizer.pipeline import tokenize_file

RESULTS = Path(__file__).parent / "results" / "token_linkage.json"
PROVIDERS = ("imaging", "ehr", "claims")
_LINKAGE_SECRET = b"benchmark linkage secret, 32 by"
_HASHING_SECRET = b"benchmark hashing secret, 32 by"
# name -> (Dice threshold, token rules); a threshold above 1 admits no Dice candidate.
CONFIGS: dict[str, tuple[float, tuple[str, ...]]] = {
    "tokens alone (T1-T5)": (1.01, TOKEN_RULES),
    f"CLKs alone ({DEFAULT_THRESHOLD})": (DEFAULT_THRESHOLD, ()),
    f"CLKs {DEFAULT_THRESHOLD} + tokens T1-T5": (DEFAULT_THRESHOLD, TOKEN_RULES),
    f"CLKs {DEFAULT_THRESHOLD} + tokens T1-T3": (DEFAULT_THRESHOLD, ("T1", "T2", "T3")),
}


def _encode(folder: Path) -> list[ClkSet]:
    schema = load_schema("person")
    paths = []
    for name in PROVIDERS:
        out = folder / f"{name}.enc.parquet"
        tokenize_file(folder / f"{name}.parquet", schema, _LINKAGE_SECRET, out,
                      id_column="record_id", provider=name, progress=False,
                      token_secret=_HASHING_SECRET)
        paths.append(out)
    return load_clk_sets(paths)


def run(people: int, seed: int) -> tuple[dict[str, object], list[dict[str, object]]]:
    """The run's facts, and one row per configuration."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        counts = synthesize(folder, people, seed)
        truth = read_truth(folder / "truth.csv")
        sets = _encode(folder)
        rows: list[dict[str, object]] = []
        for name, (threshold, rules) in CONFIGS.items():
            started = time.perf_counter()
            result = link_sets(sets, threshold, tokens=rules)
            seconds = time.perf_counter() - started
            out = folder / name.replace(" ", "_")
            write_results(out, result, {})
            quality = evaluate_entities(read_entities(out), truth)
            rows.append({"config": name, "threshold": threshold if threshold <= 1 else None,
                         "tokens": list(rules), "precision": round(quality.precision, 4),
                         "recall": round(quality.recall, 4), "f1": round(quality.f1, 4),
                         "true_positives": quality.true_positives,
                         "predicted_pairs": quality.predicted, "true_pairs": quality.actual,
                         "candidate_pairs": result.stats["candidate_pairs"],
                         "token_only_pairs": result.stats["token_only_pairs"],
                         "token_value_cap": result.stats.get("token_value_cap"),
                         "token_values_over_cap": result.stats.get("token_values_over_cap"),
                         "seconds": round(seconds, 2)})
    return ({"people": people, "seed": seed, "records": {k: counts[k] for k in PROVIDERS},
             "schema": "person"}, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    facts, rows = run(args.people, args.seed)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({**facts, "rows": rows}, indent=2) + "\n", encoding="utf-8")
    print(f"{'config':<28} {'precision':>9} {'recall':>7} {'F1':>7} {'token-only pairs':>17}")
    for row in rows:
        print(f"{row['config']:<28} {row['precision']:>9.4f} {row['recall']:>7.4f} "
              f"{row['f1']:>7.4f} {row['token_only_pairs']:>17,}")
    print(f"-> {RESULTS}")


if __name__ == "__main__":
    main()
