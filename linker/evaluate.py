"""Linkage quality against ground truth: precision, recall, F1 and their curve over thresholds.

Truth is a CSV (or Parquet) with columns ``party``, ``record_id``, ``true_id``; records without
a truth row count as their own entity. Quality is pairwise: a pair of records is a true link
when they share a true id, a predicted link when they share an entity.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from tokenizer.errors import InputError

__all__ = ["Quality", "read_truth", "evaluate_entities", "evaluate_across", "labels_quality",
           "labels_quality_across", "one_to_one_reachable", "threshold_curve", "plot_curve"]

TRUTH_COLUMNS = ("party", "record_id", "true_id")


@dataclass(frozen=True)
class Quality:
    true_positives: int
    predicted: int
    actual: int

    @property
    def precision(self) -> float:
        return self.true_positives / self.predicted if self.predicted else 1.0

    @property
    def recall(self) -> float:
        return self.true_positives / self.actual if self.actual else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def read_truth(path: Path) -> dict[tuple[str, str], str]:
    """(party, record_id) -> true id."""
    if not path.is_file():
        raise InputError(f"{path}: no such truth file")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            table = pq.read_table(path)
        else:
            table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
                column_types={c: pa.string() for c in TRUTH_COLUMNS}))
    except (pa.ArrowInvalid, OSError) as e:
        raise InputError(f"{path}: cannot be read: {e}") from e
    missing = [c for c in TRUTH_COLUMNS if c not in table.column_names]
    if missing:
        raise InputError(f"{path}: truth needs columns {list(TRUTH_COLUMNS)}; missing {missing}")
    columns = [table.column(c).cast(pa.string()).to_pylist() for c in TRUTH_COLUMNS]
    return {(p, r): t for p, r, t in zip(*columns, strict=True)}


def _pairs_within(labels: np.ndarray) -> int:
    _, counts = np.unique(labels, return_counts=True)
    return int((counts * (counts - 1) // 2).sum())


def _true_labels(parties: list[str], records: list[str],
                 truth: dict[tuple[str, str], str]) -> np.ndarray:
    codes: dict[str, int] = {}
    labels = np.empty(len(records), dtype=np.int64)
    for k, key in enumerate(zip(parties, records, strict=True)):
        true_id = truth.get(key)
        label = f"\x00{k}" if true_id is None else true_id  # unknown: an entity of its own
        labels[k] = codes.setdefault(label, len(codes))
    return labels


def _label_columns(entities: pa.Table, truth: dict[tuple[str, str], str]
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per record of the entities table: predicted entity, true entity and party, as codes."""
    parties = entities.column("party").to_pylist()
    records = entities.column("record_id").to_pylist()
    predicted = pc.dictionary_encode(entities.column("entity_id")).combine_chunks()
    predicted_labels = predicted.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    _, party = np.unique(np.array(parties, dtype=object).astype(str), return_inverse=True)
    return predicted_labels, _true_labels(parties, records, truth), party


def _joint(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """One label per pair of labels (codes from 0): records share it when they share both."""
    return first * (int(second.max(initial=0)) + 1) + second


def labels_quality(predicted: np.ndarray, true: np.ndarray) -> Quality:
    """Pairwise quality of records labelled with predicted and true entities (codes from 0)."""
    return Quality(_pairs_within(_joint(predicted, true)), _pairs_within(predicted),
                   _pairs_within(true))


def labels_quality_across(predicted: np.ndarray, true: np.ndarray,
                          party: np.ndarray) -> Quality:
    """``labels_quality`` of the pairs across parties alone (two records of one party left
    out): what the estimate of a run that deduplicates too describes."""

    def across(labels: np.ndarray) -> int:
        return _pairs_within(labels) - _pairs_within(_joint(labels, party))

    return Quality(across(_joint(predicted, true)), across(predicted), across(true))


def evaluate_entities(entities: pa.Table, truth: dict[tuple[str, str], str]) -> Quality:
    """Pairwise quality of the entities table (entity_id, party, record_id)."""
    predicted, true, _ = _label_columns(entities, truth)
    return labels_quality(predicted, true)


def evaluate_across(entities: pa.Table, truth: dict[tuple[str, str], str]) -> Quality:
    """``evaluate_entities`` of the pairs across parties alone."""
    return labels_quality_across(*_label_columns(entities, truth))


def one_to_one_reachable(entities: pa.Table, truth: dict[tuple[str, str], str]) -> int:
    """True links a linkage without deduplication can make: per pair of parties and person,
    the fewer of their records in either party (groups hold one record of each party at most).
    Pairwise ``actual`` also counts duplicates within a party and every cross pair of a
    duplicated person, which no such linkage can find; an estimate of its recall is
    comparable with this basis only."""
    parties = entities.column("party").to_pylist()
    records = entities.column("record_id").to_pylist()
    names = sorted(set(parties))
    if len(names) < 2:
        raise ValueError(f"a 1:1 basis needs two parties or more; the run has {len(names)}")
    column = {name: k for k, name in enumerate(names)}
    held: dict[str, list[int]] = {}
    for party, record in zip(parties, records, strict=True):
        person = truth.get((party, record))
        if person is not None:
            held.setdefault(person, [0] * len(names))[column[party]] += 1
    return sum(min(counts[i], counts[j]) for counts in held.values()
               for i in range(len(names)) for j in range(i + 1, len(names)))


def threshold_curve(matches: pa.Table, actual: int, truth: dict[tuple[str, str], str],
                    thresholds: np.ndarray) -> list[tuple[float, Quality]]:
    """Quality of the links scoring at least each threshold (for two parties solved 1:1,
    exactly what a run at that threshold would give: greedy decisions on a prefix of the
    sorted candidates do not change)."""
    scores = matches.column("score").to_numpy()
    keys = zip(matches.column("party_a").to_pylist(), matches.column("record_a").to_pylist(),
               matches.column("party_b").to_pylist(), matches.column("record_b").to_pylist(),
               strict=True)
    correct = np.array([truth.get((pa_, ra)) is not None and truth.get((pa_, ra))
                        == truth.get((pb, rb)) for pa_, ra, pb, rb in keys], dtype=bool)
    curve = []
    for t in thresholds.tolist():
        kept = scores >= t
        curve.append((t, Quality(int((kept & correct).sum()), int(kept.sum()), actual)))
    return curve


def plot_curve(curve: list[tuple[float, Quality]], threshold: float, path: Path) -> None:
    """Precision and recall against the threshold, as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ts = [t for t, _ in curve]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    ax.plot(ts, [q.precision for _, q in curve], label="precision")
    ax.plot(ts, [q.recall for _, q in curve], label="recall")
    ax.plot(ts, [q.f1 for _, q in curve], label="F1", linestyle=":")
    ax.axvline(threshold, color="grey", linestyle="--", linewidth=1, label="run threshold")
    ax.set_xlabel("Dice threshold")
    ax.set_ylabel("pairwise quality")
    ax.set_ylim(min(0.9, *(min(q.precision, q.recall) for _, q in curve)) - 0.01, 1.005)
    ax.legend(loc="lower left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
