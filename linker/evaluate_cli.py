"""``pprl evaluate``: a linkage run's quality against ground truth, and beside it what the run
estimated without it."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np
import pyarrow as pa

from tokenizer.errors import TokenizerError

from .evaluate import (
    Quality,
    evaluate_across,
    evaluate_entities,
    one_to_one_reachable,
    plot_curve,
    read_truth,
    threshold_curve,
)
from .results import ENTITIES, MATCHES, RUN, read_entities, read_matches
from .threshold_choice import ACROSS_AND_WITHIN

__all__ = ["evaluate_command"]


def _estimated_beside_truth(choice: dict[str, object], entities: pa.Table,
                            known: dict[tuple[str, str], str], quality: Quality
                            ) -> dict[str, object]:
    """What ``evaluate --estimate`` shows of a run's estimate: a linkage fit's precision and
    recall beside the true recall on their basis (the links a 1:1 linkage can make; with
    deduplication, beside the true precision and recall of the pairs across parties); of a
    deduplication's valley, the threshold's reason only (it estimates neither)."""
    if choice.get("estimated_precision") is None:
        return {"model": choice.get("model"), "reason": choice.get("reason"),
                "precision": None, "recall": None}
    if choice.get("model") == ACROSS_AND_WITHIN:
        across = evaluate_across(entities, known)
        return {"precision": choice["estimated_precision"], "recall": choice["estimated_recall"],
                "true_precision_across": round(across.precision, 6),
                "true_recall_across": round(across.recall, 6), "pairs_across": across.actual}
    reachable = one_to_one_reachable(entities, known)
    return {"precision": choice["estimated_precision"], "recall": choice["estimated_recall"],
            "true_recall_one_to_one": round(quality.true_positives / reachable
                                            if reachable else 1.0, 6),
            "one_to_one_links": reachable}


def _check_truth_names_records(entities: pa.Table, known: dict[tuple[str, str], str],
                               truth: Path) -> None:
    """Refuse a truth that names none of a party's records (every one of its links would
    count as false: after `pprl deid` the imaging records are named by pseudonyms); warn where
    it misses some (they count as records of no one else)."""
    parties, records = entities["party"].to_pylist(), entities["record_id"].to_pylist()
    held: dict[str, list[int]] = {}
    for party, record in zip(parties, records, strict=True):
        held.setdefault(party, [0, 0])[(party, record) in known] += 1
    for party, (missing, found) in sorted(held.items()):
        if not found:
            raise click.ClickException(
                f"{truth} names none of party {party}'s {missing:,} records: is it the truth "
                f"of these record ids? (After `pprl deid`, the imaging records are named by "
                f"the pseudonyms it gave: for `pprl synth --dicom` data, `pprl synth-truth` "
                f"writes the truth that names them.)")
        if missing:
            click.echo(f"warning: {truth} names {found:,} of party {party}'s "
                       f"{missing + found:,} records; the other {missing:,} count as records "
                       f"of no one else", err=True)


@click.command("evaluate")
@click.argument("folder", metavar="OUTDIR", type=click.Path(file_okay=False, path_type=Path))
@click.option("--truth", required=True, type=click.Path(path_type=Path),
              help="CSV or Parquet with columns party, record_id, true_id.")
@click.option("--plot", type=click.Path(path_type=Path),
              help="PNG of precision/recall against the threshold (default: OUTDIR/quality.png).")
@click.option("--estimate", is_flag=True,
              help="Also show the precision and recall the run estimated without the truth "
                   "(a run made with --threshold auto, or none), beside the truth on the "
                   "estimate's basis: the links a 1:1 linkage can make (with --dedup: the "
                   "pairs across parties).")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def evaluate_command(folder: Path, truth: Path, plot: Path | None, estimate: bool,
                     as_json: bool) -> None:
    """Precision, recall and F1 of a linkage run against ground truth."""
    for name in (MATCHES, ENTITIES, RUN):
        if not (folder / name).is_file():
            raise click.ClickException(f"{folder} holds no {name}: is it a `pprl link` output?")
    if plot is not None and not plot.absolute().parent.is_dir():  # before the work
        raise click.ClickException(f"cannot write the plot {plot}: {plot.parent} is no folder")
    try:
        known = read_truth(truth)
    except TokenizerError as e:
        raise click.ClickException(str(e)) from e
    try:
        run = json.loads((folder / RUN).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise click.ClickException(f"{folder / RUN} cannot be read as JSON "
                                   f"({type(e).__name__}): is the run complete?") from e
    run_parties = [i["party"] for i in run.get("inputs", [])]
    truth_parties = sorted({party for party, _ in known})
    missing = [p for p in run_parties if p not in truth_parties]
    if missing:
        raise click.ClickException(
            f"{truth} has no record of the run's part{'y' if len(missing) == 1 else 'ies'} "
            f"{missing}: the truth file's parties are {truth_parties} and the run's "
            f"{run_parties}; give the truth of this run (its party column holds the provider "
            f"labels `pprl link` shows)")
    entities = read_entities(folder)
    _check_truth_names_records(entities, known, truth)
    quality = evaluate_entities(entities, known)
    within = run.get("dedup_thresholds") or {}
    # The curve: one threshold for every pair, from the run's lowest.
    lowest = min([run["threshold"], *within.values()])
    thresholds = np.round(np.arange(lowest, 1.0 + 1e-9, 0.01), 4)
    curve = threshold_curve(read_matches(folder), quality.actual, known, thresholds)
    plot_path = plot or folder / "quality.png"
    try:
        plot_curve(curve, run["threshold"], plot_path)
    except OSError as e:
        raise click.ClickException(f"cannot write the plot {plot_path}: "
                                   f"{e.strerror or type(e).__name__}") from e
    summary = {"threshold": run["threshold"], **({"dedup_thresholds": within} if within else {}),
               "precision": round(quality.precision, 6),
               "recall": round(quality.recall, 6), "f1": round(quality.f1, 6),
               "true_positives": quality.true_positives, "predicted_links": quality.predicted,
               "true_links": quality.actual, "plot": str(plot_path),
               "curve": [{"threshold": t, "precision": round(q.precision, 6),
                          "recall": round(q.recall, 6)} for t, q in curve]}
    choice = run.get("threshold_choice", {})
    if estimate:
        if choice.get("method") != "estimated":
            why = (f"its threshold took the default ({choice.get('reason')})"
                   if choice.get("method") == "default" else "its threshold was given")
            raise click.ClickException(f"{folder} holds no estimate: {why}; link with "
                                       f"--threshold auto or no threshold")
        summary["estimated"] = _estimated_beside_truth(choice, entities, known, quality)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    shown_within = "".join(f", within {party} {t}" for party, t in within.items())
    click.echo(f"threshold {run['threshold']}{shown_within}: precision {quality.precision:.4f}  "
               f"recall {quality.recall:.4f}  F1 {quality.f1:.4f}  "
               f"({quality.true_positives:,} of {quality.predicted:,} predicted links are "
               f"true; {quality.actual:,} true links)")
    shown = summary.get("estimated")
    if shown is not None and shown["precision"] is None:
        click.echo(f"threshold chosen without the truth: {choice['reason']}; deduplication "
                   f"estimates no precision or recall")
    elif shown is not None and "true_recall_across" in shown:
        click.echo(f"estimated without the truth: precision {shown['precision']:.4f}"
                   f"  recall {shown['recall']:.4f} {choice['recall_of']} (true: precision "
                   f"{shown['true_precision_across']:.4f}, recall "
                   f"{shown['true_recall_across']:.4f} of {shown['pairs_across']:,} pairs "
                   f"across parties)")
    elif shown is not None:
        click.echo(f"estimated without the truth: precision {shown['precision']:.4f}"
                   f"  recall {shown['recall']:.4f} {choice['recall_of']} (true: "
                   f"{shown['true_recall_one_to_one']:.4f} of {shown['one_to_one_links']:,}; "
                   f"the recall above also counts duplicates within a party, which 1:1 cannot "
                   f"link)")
    click.echo(f"precision/recall curve: {plot_path}")
