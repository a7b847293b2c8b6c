"""``pprl link`` and ``pprl dedup``: the data manager's commands that link (``pprl evaluate``
is in ``evaluate_cli``: these two do not import what it needs)."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import click
import numpy as np
from tqdm import tqdm

from tokenizer.encodings_file import TOKEN_RULES
from tokenizer.errors import TokenizerError
from tokenizer.parallel import default_workers

from .backends import BACKENDS, Backend, BackendUnavailableError, get_backend
from .blocking import LshBlocking
from .candidate_memory import run_memory_problem
from .clkset import (
    ClkSet,
    LinkageInputError,
    common_fingerprint,
    common_length,
    load_clk_sets,
)
from .link import DEFAULT_DEDUP_THRESHOLD, DEFAULT_THRESHOLD, link_sets
from .link_streamed import link_on
from .results import write_results
from .shared_clks import SharedClks
from .solve import DEFAULT_SOLVER, SOLVERS
from .threshold_choice import (
    ThresholdChoice,
    choose_threshold,
    estimate_threshold,
    no_estimate_because,
)
from .threshold_param import (
    ALL_PARTIES,
    AUTO,
    DiceOrAuto,
    keyword_clash,
    party_thresholds,
    within_thresholds,
)
from .token_pairs import DEFAULT_TOKEN_VALUE_CAP

__all__ = ["link_command", "dedup_command"]

FC = TypeVar("FC", bound=Callable[..., object])
log = logging.getLogger(__name__)

def _threshold(shown: str) -> Callable[[FC], FC]:
    """``--threshold``, its default (which depends on deduplication) shown as ``shown``."""
    return click.option(
        "--threshold", type=DiceOrAuto(), show_default=shown,
        help="Smallest Dice coefficient for a candidate pair; `auto` (without --blocking or "
             "--tokens) chooses it from the data: linking two or more parties, from a fit "
             "that also estimates precision and recall (with --dedup all, of the pairs across "
             "parties, each party's pairs within it taking a threshold of their own: where "
             "its pair scores bottom out); deduplicating one party (`pprl dedup`), "
             "where its pair scores bottom out. Not given: as `auto` where that applies and "
             "the data suffice, else the default shown; run.json's threshold_choice (and "
             "dedup_thresholds) says which and why.")


_output = click.option("-o", "--output", "folder", required=True,
                       type=click.Path(file_okay=False, path_type=Path),
                       help="Folder for matches.parquet, entities.parquet and run.json.")
_workers = click.option("--workers", type=click.IntRange(min=1), default=default_workers,
                        show_default="all cores",
                        help="Threads comparing CLKs (--backend dask without --scheduler: "
                             "worker processes of the local cluster).")
_kernel = click.option(
    "--kernel", type=click.Choice(["auto", "lanes", "scalar"]), default="auto",
    show_default=True,
    help="Comparison kernel (same results): lanes compares eight records per vector step "
         "(one AVX-512 VPOPCNTQ where the CPU has it, else a table lookup per byte: still "
         "about 2.5x scalar with AVX2); scalar one pair at a time; auto is lanes.")
_backend = click.option(
    "--backend", type=click.Choice(BACKENDS), default="cpu", show_default=True,
    help="Where pairs are compared (same results): cpu (threads here), dask (a Dask "
         "cluster: --scheduler, --shared-dir; needs the `dask` extra), gpu (CuPy on a CUDA "
         "GPU; needs the `gpu` extra).")
_scheduler = click.option(
    "--scheduler", metavar="ADDRESS",
    help="--backend dask: the Dask scheduler (tcp://host:8786); default: a local cluster "
         "of --workers processes.")
_shared_dir = click.option(
    "--shared-dir", type=click.Path(file_okay=False, path_type=Path),
    help="--backend dask: a folder every worker can read and write, for the Parquet tiles "
         "and per-tile candidates (required with --scheduler; default: a temporary folder).")
_blocking = click.option(
    "--blocking", type=click.Choice(["none", "lsh"]), default="none", show_default=True,
    help="lsh: compare only pairs sharing an LSH band of CLK bits (faster on large inputs, "
         "may lose some matches; measure with `pprl evaluate`).")

_solver = click.option(
    "--solver", type=click.Choice(SOLVERS), default=DEFAULT_SOLVER, show_default=True,
    help="How candidate pairs become entities: cluster merges two groups when the pairs "
         "across them score the threshold on average (keeps large duplicate groups); greedy "
         "only when every pair across them is a candidate (anonlink's greedy solver). Two "
         "parties without --dedup: the same 1:1 links either way.")


def _rules(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[str, ...]:
    """``--tokens T1,T3``: known rules, each once, in the order given."""
    rules = tuple(dict.fromkeys(r.strip() for r in (value or "").split(",") if r.strip()))
    unknown = [r for r in rules if r not in TOKEN_RULES]
    if unknown:
        raise click.BadParameter(f"unknown rule(s) {unknown}; choose from "
                                 f"{','.join(TOKEN_RULES)}")
    return rules


_tokens = click.option(
    "--tokens", callback=_rules, metavar="T1,T3,...",
    help="Also make every pair agreeing on one of these OpenToken tokens a candidate "
         "whatever its Dice score (inputs made with `pprl tokenize --with-tokens`).")

_token_value_cap = click.option(
    "--token-value-cap", type=click.IntRange(min=0), default=None, metavar="N",
    help="With --tokens: a token value held by more than N records of one party (a "
         f"placeholder name and birth date, say) is not used to make candidates; 0: no cap "
         f"[default: {DEFAULT_TOKEN_VALUE_CAP}].")


def _make_backend(name: str, workers: int, kernel: str, scheduler: str | None,
                  shared_dir: Path | None) -> Backend:
    """The backend asked for, with the options that apply to it."""
    if name != "dask" and (scheduler or shared_dir):
        raise click.UsageError("--scheduler and --shared-dir apply to --backend dask only")
    if name == "dask" and scheduler and shared_dir is None:
        raise click.UsageError("--scheduler needs --shared-dir: a folder its workers share")
    options: dict[str, object] = {"kernel": kernel}
    if name == "cpu":
        options["workers"] = workers
    elif name == "dask":
        options.update(workers=workers, scheduler=scheduler, shared_dir=shared_dir)
    else:
        options = {}
    try:
        return get_backend(name, **options)
    except BackendUnavailableError as e:
        raise click.ClickException(str(e)) from e


def _warm_up(backend: Backend) -> None:
    """Start numba and load the compiled kernels a link runs first (a quarter of a second of
    mostly Python work), on a thread while the inputs are read: a link of two parties of a few
    random CLKs on the CPU backend. A failure here is left for the real run to report."""
    try:
        rng = np.random.default_rng(0)
        tiny = [ClkSet.from_arrays(np.packbits(rng.random((16, 1024)) < 0.4, axis=1),
                                   party=party) for party in ("a", "b")]
        link_sets(tiny, 0.8, backend=backend)
    except Exception:  # noqa: BLE001 - only a head start; the run itself raises
        log.debug("warming up the kernels failed", exc_info=True)


def _choose(asked: bool, sets: list[ClkSet], dedup: list[bool], blocked: bool,
            tokens: tuple[str, ...], backend: Backend) -> ThresholdChoice:
    """The threshold(s) of a run given `auto` (``asked``: the estimate, or an error saying
    why there is none) or none (the estimate where one applies, else the default), echoing
    which and why."""
    try:
        with _estimate_bar() as progress:
            chosen = (estimate_threshold(sets, dedup, backend, progress) if asked
                      else choose_threshold(sets, dedup, blocked, tokens, backend, progress))
    except ValueError as e:  # `auto`: too few scores to fit, or too many pairs to hold
        raise click.ClickException(f"--threshold auto: {e}; give a threshold") from e
    click.echo(chosen.summary)
    return chosen


@contextmanager
def _estimate_bar() -> Iterator[Callable[[float], None]]:
    """A progress bar (on a terminal) for the estimate's search; yields its share callback."""
    bar = tqdm(total=100, unit="%", disable=not sys.stderr.isatty(), file=sys.stderr,
               desc="estimating the threshold")
    try:
        yield lambda share: bar.update(round(100 * share) - bar.n)
    finally:
        bar.close()


def _check_output(folder: Path) -> None:
    """Refuse, before any work, an output folder that cannot be made or written (it failed
    with a traceback after the whole linkage)."""
    existing = next(p for p in (folder.absolute(), *folder.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise click.ClickException(f"cannot write the results to {folder}: {existing} is a "
                                   f"file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise click.ClickException(f"cannot write the results to {folder}: {existing} is "
                                   f"not writable")


def _run(paths: tuple[Path, ...], folder: Path, threshold: float | str | None,
         dedup: list[bool] | None, workers: int, kernel: str, blocking: str,
         command: str, tokens: tuple[str, ...] | None, *, solver: str = DEFAULT_SOLVER,
         backend_name: str = "cpu", scheduler: str | None = None,
         shared_dir: Path | None = None,
         token_value_cap: int | None = None,
         dedup_thresholds: dict[str, float] | None = None) -> None:
    tokens = tokens or ()  # None when invoked from code (`pprl demo`): callbacks don't run
    if token_value_cap is not None and not tokens:
        raise click.UsageError("--token-value-cap needs --tokens: it caps the token values "
                               "that make candidates")
    cap = DEFAULT_TOKEN_VALUE_CAP if token_value_cap is None else token_value_cap
    _check_output(folder)
    backend = _make_backend(backend_name, workers, kernel, scheduler, shared_dir)
    if backend.name == "cpu":
        threading.Thread(target=_warm_up, args=(backend,), name="pprl-warm-up",
                         daemon=True).start()
    try:
        sets = load_clk_sets(paths)
    except (TokenizerError, LinkageInputError) as e:
        raise click.ClickException(str(e)) from e
    empty = [s.source for s in sets if not len(s)]
    if len(empty) == len(sets):
        raise click.ClickException(
            f"every input is empty ({', '.join(empty)}): there is nothing to {command}; "
            f"check the tokenize runs that made them (their rejects files say why)")
    for source in empty:
        click.echo(f"warning: {source} holds no records; it takes part in no link", err=True)
    dedup_flags = dedup if dedup is not None else [False] * len(sets)
    rows = sum(len(sets[i]) for i in range(len(sets)) for j in range(i + 1, len(sets)))
    rows += sum(len(s) for s, d in zip(sets, dedup_flags, strict=True) if d)
    started = time.perf_counter()
    bar = tqdm(total=rows, unit="rec", disable=not sys.stderr.isatty(), file=sys.stderr,
               desc=command)
    def progress(done_rows: int, pairs_so_far: int) -> None:
        bar.update(done_rows)
        elapsed = time.perf_counter() - started
        bar.set_postfix_str(f"{pairs_so_far / max(elapsed, 1e-9):.3g} pairs/s")

    refused = no_estimate_because(dedup_flags, blocking != "none", tokens)
    if threshold == AUTO and refused is not None:
        raise click.UsageError(f"--threshold auto: {refused}; give a threshold")
    with backend:
        if threshold == AUTO or threshold is None:
            chosen = _choose(threshold == AUTO, sets, dedup_flags, blocking != "none", tokens,
                             backend)
        else:
            assert isinstance(threshold, float)
            chosen = ThresholdChoice(threshold, {"method": "given"}, "", dedup_thresholds)
        lsh = LshBlocking() if blocking == "lsh" else None
        problem = run_memory_problem(backend, sets, chosen.threshold, dedup_flags,
                                     blocked=lsh is not None, tokens=tokens, solver=solver,
                                     dedup_thresholds=chosen.within(sets))
        if problem is not None and problem.refused:
            raise click.ClickException(f"{problem.message}; nothing was written")
        if problem is not None:
            click.echo(f"warning: {problem.message}", err=True)
        try:
            result = link_on(backend, sets, chosen.threshold, dedup=dedup_flags, blocking=lsh,
                             progress=progress, tokens=tokens,
                             token_value_cap=cap, solver=solver,
                             dedup_thresholds=chosen.within(sets))
        except LinkageInputError as e:
            raise click.ClickException(str(e)) from e
    bar.close()
    info = {"command": command, **chosen.recorded(),
            "blocking": blocking, "token_rules": list(tokens), "solver": solver,
            **backend.describe(),
            "inputs": [{"file": s.source, "party": s.party, "records": len(s),
                        "deduplicated": d} for s, d in zip(sets, dedup_flags, strict=True)],
            "l": common_length(sets),
            "schema_fingerprint": common_fingerprint(sets),
            "entities": result.entity_count}
    try:
        write_results(folder, result, info)
    except OSError as e:
        raise click.ClickException(f"cannot write the results to {folder}: "
                                   f"{e.strerror or type(e).__name__}") from e
    stats = result.stats
    pairs_per_s = stats["pairs_total"] / max(float(stats["seconds"]), 1e-9)
    click.echo(f"{folder}: {stats['links']:,} links, {result.entity_count:,} entities from "
               f"{sum(len(s) for s in sets):,} records; {stats['pairs_total']:,} pairs in "
               f"{stats['seconds']} s ({pairs_per_s:.3g} pairs/s; "
               f"{stats['pruned_share']:.1%} skipped by popcount, "
               f"{stats['stopped_halfway_share']:.1%} of the rest stopped halfway)")
    shared = stats.get("shared_clks")
    for warning in SharedClks(**shared).warnings() if shared else ():
        click.echo(f"warning: {warning}", err=True)
    if tokens:
        click.echo(f"{stats['token_only_pairs']:,} candidate pairs from tokens "
                   f"{','.join(tokens)} alone")
        _warn_common_tokens(stats["token_values_over_cap"], cap)


def _warn_common_tokens(over_cap: dict[str, dict[str, int]], cap: int) -> None:
    for rule, found in over_cap.items():
        if found["values"]:
            click.echo(f"warning: token {rule}: {found['values']:,} value(s) held by more "
                       f"than {cap:,} records of one party ({found['records']:,} records) "
                       f"were not used to make candidates (--token-value-cap)", err=True)


@click.command("link")
@click.argument("paths", metavar="A B [C ...]", nargs=-1, required=True,
                type=click.Path(path_type=Path))
@_threshold(f"estimated, else {DEFAULT_THRESHOLD}; {DEFAULT_DEDUP_THRESHOLD} with --dedup")
@_output
@click.option("--dedup", "dedup_parties", multiple=True, metavar="PARTY",
              help="Also deduplicate within this party (repeatable; 'all' for every party).")
@click.option("--dedup-threshold", "dedup_thresholds", multiple=True, metavar="PARTY=DICE",
              callback=party_thresholds,
              help="With --threshold DICE: the threshold of pairs within this deduplicated "
                   "party, --threshold then being that of pairs across parties (repeatable; "
                   "'all' for every deduplicated party not named). Given no threshold, "
                   "--dedup all chooses both kinds from the data; this repeats or adjusts such a "
                   "run (run.json's threshold and dedup_thresholds).")
@_workers
@_kernel
@_backend
@_scheduler
@_shared_dir
@_blocking
@_tokens
@_token_value_cap
@_solver
def link_command(paths: tuple[Path, ...], threshold: float | str | None, folder: Path,
                 dedup_parties: tuple[str, ...], workers: int, kernel: str, backend: str,
                 scheduler: str | None, shared_dir: Path | None, blocking: str,
                 tokens: tuple[str, ...] | None = None,
                 token_value_cap: int | None = None,
                 solver: str = DEFAULT_SOLVER,
                 dedup_thresholds: dict[str, float] | None = None) -> None:
    """Link the encodings files of two or more providers into entities.

    An entity holds at most one record per provider, unless that provider is deduplicated
    with --dedup. Files must come from the same schema (fingerprint) and length.
    """
    if len(paths) < 2:
        raise click.UsageError("give at least two encodings files (use `pprl dedup` for one)")
    dedup, within = None, None
    if dedup_thresholds and not isinstance(threshold, float):
        raise click.UsageError("--dedup-threshold needs --threshold DICE (the threshold of "
                               "pairs across parties)")
    if dedup_parties:
        try:
            parties = [s.party for s in load_clk_sets(paths)]
        except (TokenizerError, LinkageInputError) as e:
            raise click.ClickException(str(e)) from e
        clash = keyword_clash(parties, "--dedup") if ALL_PARTIES in dedup_parties else None
        if clash:
            raise click.UsageError(f"{clash} (`pprl tokenize --provider`, or the file's name "
                                   f"where the label comes from it)")
        unknown = set(dedup_parties) - set(parties) - {ALL_PARTIES}
        if unknown:
            raise click.UsageError(f"--dedup names unknown parties {sorted(unknown)}; "
                                   f"parties: {parties}")
        dedup = [(ALL_PARTIES in dedup_parties) or p in dedup_parties for p in parties]
        if dedup_thresholds:
            try:
                within = within_thresholds(dedup_thresholds, parties, dedup)
            except ValueError as e:
                raise click.UsageError(f"--dedup-threshold: {e}") from e
    elif dedup_thresholds:
        raise click.UsageError("--dedup-threshold needs --dedup: it sets the threshold of "
                               "pairs within a deduplicated party")
    _run(paths, folder, threshold, dedup, workers, kernel, blocking, "link", tokens,
         solver=solver, backend_name=backend, scheduler=scheduler, shared_dir=shared_dir,
         token_value_cap=token_value_cap, dedup_thresholds=within)


@click.command("dedup")
@click.argument("path", metavar="FILE", type=click.Path(path_type=Path))
@_threshold(f"estimated, else {DEFAULT_DEDUP_THRESHOLD}")
@_output
@_workers
@_kernel
@_backend
@_scheduler
@_shared_dir
@_blocking
@_tokens
@_token_value_cap
@_solver
def dedup_command(path: Path, threshold: float | str | None, folder: Path, workers: int,
                  kernel: str, backend: str, scheduler: str | None, shared_dir: Path | None,
                  blocking: str, tokens: tuple[str, ...] | None = None,
                  token_value_cap: int | None = None,
                  solver: str = DEFAULT_SOLVER) -> None:
    """Find records of the same person within one provider's encodings file."""
    _run((path,), folder, threshold, [True], workers, kernel, blocking, "dedup", tokens,
         solver=solver, backend_name=backend, scheduler=scheduler, shared_dir=shared_dir,
         token_value_cap=token_value_cap)
