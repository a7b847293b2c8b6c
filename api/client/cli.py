"""Commands that talk to a running service: ``pprl project``, ``upload``, ``run``, ``status``,
``results``, ``audit``. Each has ``--json`` for scripts.

The API token comes from ``--token-file`` or an environment variable (``PPRL_TOKEN`` unless
``--token-env`` names another); never from the command line.
"""

from __future__ import annotations

import csv
import functools
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
import httpx

from linker.backends import BACKENDS
from linker.link import DEFAULT_DEDUP_THRESHOLD, DEFAULT_THRESHOLD
from linker.solver_names import SOLVERS
from linker.threshold_param import DiceOrAuto, party_thresholds
from tokenizer.errors import TokenizerError

from .http import Client, ServiceError

__all__ = ["project_group", "upload_command", "run_command", "status_command",
           "results_command", "audit_group", "token_line", "connection_options", "connect",
           "with_client", "emit"]

F = TypeVar("F", bound=Callable[..., Any])


def _read_token(token_file: Path | None, token_env: str) -> str:
    if token_file is not None:
        token = token_file.read_text(encoding="utf-8").strip()
        if not token:
            raise click.UsageError(f"token file {token_file} is empty")
        return token
    token = os.environ.get(token_env, "").strip()
    if not token:
        raise click.UsageError(f"no API token: set {token_env} or give --token-file")
    return token


def connection_options(command: F) -> F:
    """--url, --token-file, --token-env and --json (the command opens its client itself,
    with :func:`connect`, when it needs one)."""
    command = click.option("--json", "as_json", is_flag=True,
                           help="Print JSON (for scripts).")(command)
    command = click.option("--token-env", default="PPRL_TOKEN", show_default=True,
                           help="Environment variable holding your API token.")(command)
    command = click.option("--token-file", type=click.Path(dir_okay=False, exists=True,
                                                           path_type=Path),
                           help="File holding your API token.")(command)
    return click.option("--url", envvar="PPRL_URL", default="http://127.0.0.1:8000",
                        show_default=True, help="The service. [env: PPRL_URL]")(command)


@contextmanager
def connect(url: str, token_file: Path | None, token_env: str) -> Iterator[Client]:
    """A client of the service; its errors become messages (no traceback)."""
    with Client(url, _read_token(token_file, token_env)) as client:
        try:
            yield client
        except ServiceError as e:
            raise click.ClickException(str(e)) from e
        except httpx.TransportError as e:  # refused, unreachable, timed out
            raise click.ClickException(f"{url}: {e}") from e


def with_client(command: F) -> F:
    """The connection options; passes a ``client`` and ``as_json``."""

    @connection_options
    @functools.wraps(command)
    def wrapper(url: str, token_file: Path | None, token_env: str, **kwargs: Any) -> Any:
        with connect(url, token_file, token_env) as client:
            return command(client=client, **kwargs)

    return wrapper  # type: ignore[return-value]


def emit(value: Any, as_json: bool, text: str) -> None:
    click.echo(json.dumps(value, indent=2) if as_json else text)


@click.group("project")
def project_group() -> None:
    """Create and inspect linkage projects."""


@project_group.command("create")
@click.option("--name", required=True, help="What the project is for.")
@click.option("--schema", "schema_ref", default="person", show_default=True,
              help="Shipped schema name or a linkage-schema v3 JSON file.")
@click.option("--party", "parties", multiple=True, required=True,
              help="Party label (repeat: --party imaging --party ehr --party claims).")
@click.option("--dedup", is_flag=True, help="Also deduplicate within each party.")
@click.option("--min-cell", type=click.IntRange(1, 1000), default=11, show_default=True,
              help="Cohort counts below this are suppressed (11: the CMS cell-size rule).")
@with_client
def project_create_command(client: Client, as_json: bool, name: str, schema_ref: str,
                           parties: tuple[str, ...], dedup: bool, min_cell: int) -> None:
    """Create a project (service administrator token). Prints the owner token and one upload
    token per party: they are shown only now."""
    path = Path(schema_ref)
    schema: str | dict[str, Any] = (json.loads(path.read_text(encoding="utf-8"))
                                    if path.is_file() else schema_ref)
    created = client.create_project(name, schema, list(parties), dedup, min_cell)
    project = created["project"]
    lines = [f"project {project['id']} ({project['name']}), schema "
             f"{project['schema_fingerprint'][:16]}..., l={project['bloom_filter_bits']}",
             f"owner token:  {created['owner_token']}"]
    lines += [f"upload token {p}: {t}" for p, t in created["upload_tokens"].items()]
    lines.append("These tokens are shown only once; hand each upload token to its party.")
    emit(created, as_json, "\n".join(lines))


@project_group.command("policy")
@click.argument("project_id")
@click.option("--min-k", type=click.IntRange(min=1), default=11, show_default=True,
              help="Smallest equivalence class of an export's entity table.")
@click.option("--max-risk", type=click.FloatRange(0, 1, min_open=True), default=0.09,
              show_default=True, help="Highest prosecutor risk (1 / smallest class).")
@click.option("--safe-harbor/--no-safe-harbor", default=True, show_default=True,
              help="Hold an export with any HIPAA Safe Harbor finding.")
@click.option("--quasi-identifier", "quasi_identifiers", multiple=True,
              type=click.Choice(["sex", "age_band", "race_ethnicity", "region"]),
              help="Entity-table columns an attacker may know (default: all four).")
@click.option("--max-suppression", type=click.FloatRange(0, 1), default=0.05,
              show_default=True, help="Share of entities the suggested generalisation may "
                                      "suppress.")
@with_client
def project_policy_command(client: Client, as_json: bool, project_id: str, min_k: int,
                           max_risk: float, safe_harbor: bool,
                           quasi_identifiers: tuple[str, ...], max_suppression: float) -> None:
    """Set the release gate's risk policy (owner token): cohort exports made from now on are
    held unless their entity table meets it. Audited."""
    policy: dict[str, object] = {"min_k": min_k, "max_risk": max_risk,
                                 "safe_harbor": safe_harbor,
                                 "max_suppression": max_suppression}
    if quasi_identifiers:
        policy["quasi_identifiers"] = list(quasi_identifiers)
    set_to = client.set_risk_policy(project_id, policy)
    emit(set_to, as_json, "risk policy: " + ", ".join(f"{k} {v}" for k, v in set_to.items()))


@project_group.command("show")
@click.argument("project_id")
@with_client
def project_show_command(client: Client, as_json: bool, project_id: str) -> None:
    """A project's parties, schema and uploads."""
    project = client.project(project_id)
    uploads = ", ".join(f"{p}: {'-' if n is None else f'{n:,} records'}"
                        for p, n in project["uploads"].items())
    emit(project, as_json, f"{project['id']} {project['name']} dedup={project['dedup']} "
                            f"l={project['bloom_filter_bits']}\nuploads: {uploads}")


@project_group.command("reader-token")
@click.argument("project_id")
@click.option("--party", required=True, help="The party whose results the reader may read.")
@with_client
def project_reader_command(client: Client, as_json: bool, project_id: str,
                           party: str) -> None:
    """Make a token that reads one party's record -> entity mapping (owner token)."""
    created = client.create_reader_token(project_id, party)
    emit(created, as_json, created["token"])


@project_group.command("token")
@click.argument("project_id")
@click.option("--party", help="The party the token is for (reader and upload tokens).")
@click.option("--role", type=click.Choice(["reader", "upload", "researcher", "auditor",
                                           "owner"]),
              default="reader", show_default=True,
              help="reader: reads the party's results; upload: a new upload token (revoke "
                   "the old one to rotate it); researcher: counts and requests cohorts; "
                   "auditor: reads the audit log, requests and risk reports; owner: another "
                   "owner token (rotate the owner token: make one, revoke the old with it).")
@click.option("--label", default="", help="Who it is for (shown in `pprl project tokens`).")
@click.option("--expires-days", type=click.FloatRange(min=0, min_open=True), default=None,
              help="The token stops working after this many days (default: never).")
@with_client
def project_token_command(client: Client, as_json: bool, project_id: str, party: str | None,
                          role: str, label: str, expires_days: float | None) -> None:
    """Make a token for one party, or a researcher's, an auditor's or another owner's (owner
    token); printed once."""
    if (role in ("researcher", "auditor", "owner")) != (party is None):
        raise click.UsageError("a researcher, auditor or owner token takes no --party; the "
                               "others need one")
    created = client.create_token(project_id, party, role, label, expires_days)
    emit(created, as_json, created["token"])


@project_group.command("tokens")
@click.argument("project_id")
@with_client
def project_tokens_command(client: Client, as_json: bool, project_id: str) -> None:
    """List the project's tokens: id, role, party, state, created, last used, expiry, label
    (never a secret; owner token)."""
    listed = client.tokens(project_id)
    emit(listed, as_json, "\n".join(token_line(t) for t in listed))


@project_group.command("revoke")
@click.argument("project_id")
@click.argument("token_id")
@with_client
def project_revoke_command(client: Client, as_json: bool, project_id: str,
                           token_id: str) -> None:
    """Revoke one of the project's tokens by its id (owner token); it gets 401 from then on."""
    revoked = client.revoke_token(project_id, token_id)
    emit(revoked, as_json, f"token {token_id} revoked")


def _when(epoch: float | None) -> str:
    return "-" if epoch is None else time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(epoch))


def token_line(token: dict[str, Any]) -> str:
    """One token as a line of a listing."""
    expired = token["expires_at"] is not None and token["expires_at"] < time.time()
    state = "revoked" if token["revoked_at"] else "expired" if expired else "active"
    party = f" {token['party']}" if token.get("party") else ""
    return (f"{token['id']}  {token['role']}{party}  {state}  created "
            f"{_when(token['created_at'])}  last used {_when(token['last_used_at'])}  "
            f"expires {_when(token['expires_at'])}  {token['label']}")


@click.command("upload")
@click.argument("project_id")
@click.argument("party")
@click.argument("path", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--attributes", "is_attributes", is_flag=True,
              help="PATH is the party's attributes file (`pprl attributes`, or `pprl deid`'s "
                   "OUT_DIR/attributes.parquet), not its encodings.")
@with_client
def upload_command(client: Client, as_json: bool, project_id: str, party: str,
                   path: Path, is_attributes: bool) -> None:
    """Upload a party's encodings file (its upload token): Parquet from `pprl tokenize` or
    `pprl deid` (OUT_DIR/encodings.parquet), or clkhash JSON (.json); with --attributes, its
    attributes file."""
    try:
        upload = client.upload(project_id, party, path,
                               "attributes" if is_attributes else "encodings")
    except TokenizerError as e:
        raise click.ClickException(str(e)) from e
    if is_attributes:
        emit(upload, as_json, f"uploaded {upload['records']:,} attribute rows for {party} "
                               f"(upload {upload['id']})")
        return
    if upload.get("key_check") is None and not as_json:
        click.echo("warning: this file records no key check value (clkhash JSON): whether it "
                   "was made with the project's linkage secret cannot be checked", err=True)
    emit(upload, as_json, f"uploaded {upload['records']:,} records for {party} "
                           f"(upload {upload['id']}, sha256 {upload['sha256'][:16]}...)")


def _describe_run(run: dict[str, Any]) -> str:
    text = f"run {run['id']}: {run['state']} ({run['stage']}, {run['progress']:.0%})"
    if run.get("lease_expired"):
        text += (" - its worker stopped renewing the lease (killed?); the next worker will "
                 "retry it")
    if run.get("error"):
        text += f": {run['error']}"
    stats = run.get("stats") or {}
    if stats:
        text += (f"; {stats.get('links', 0):,} links, {stats.get('entities', 0):,} entities "
                 f"from {stats.get('records', 0):,} records")
    choice = run.get("threshold_choice") or {}
    if choice.get("method") == "estimated" and choice.get("estimated_precision") is None:
        text += (f"; threshold {run['threshold']} chosen from the data (where the pair scores "
                 f"bottom out; deduplication estimates no precision or recall)")
    elif choice.get("method") == "estimated":
        text += (f"; threshold {run['threshold']} chosen from the data (estimated precision "
                 f"{choice['estimated_precision']:.4f}, recall {choice['estimated_recall']:.4f} "
                 f"{choice['recall_of']})")
        if run.get("dedup_thresholds"):
            text += ", within each party: " + _within(run["dedup_thresholds"],
                                                      choice.get("within") or {})
    elif choice.get("method") == "default":
        text += f"; threshold {run['threshold']}: {choice['reason']}"
    elif run.get("dedup_thresholds"):
        text += (f"; threshold {run['threshold']} across parties, within each party: "
                 + _within(run["dedup_thresholds"], {}))
    return text


def _within(thresholds: dict[str, float], chosen: dict[str, dict[str, Any]]) -> str:
    """Each party's threshold within it, and (``chosen``: run.json's ``within``) whether it
    is the party's valley or the default."""
    how = {"estimated": " (its valley)", "default": " (the default: no valley)"}
    return ", ".join(f"{party} {t}{how.get(chosen.get(party, {}).get('method', ''), '')}"
                     for party, t in thresholds.items())


@click.command("run")
@click.argument("project_id")
@click.option("--threshold", type=DiceOrAuto(),
              help="Dice similarity a pair needs; `auto`: the service chooses it from the data "
                   "(without --blocking and --tokens): for several parties with estimated "
                   "precision and recall (of the pairs across parties where the project "
                   "deduplicates, each party's pairs within it then taking a threshold where "
                   "its pair scores bottom out), for one party deduplicated where its pair "
                   "scores bottom out. Not given: as `auto` where that applies "
                   f"and the data suffice, else {DEFAULT_THRESHOLD} "
                   f"({DEFAULT_DEDUP_THRESHOLD} when the project deduplicates); `pprl status` "
                   "says which and why.")
@click.option("--dedup-threshold", "dedup_thresholds", multiple=True, metavar="PARTY=DICE",
              callback=party_thresholds,
              help="With --threshold DICE, in a project that deduplicates: the threshold of "
                   "pairs within this party, --threshold then being that of pairs across "
                   "parties (repeatable; 'all' for every party not named).")
@click.option("--blocking", is_flag=True, help="LSH blocking (faster, may lose matches).")
@click.option("--backend", type=click.Choice(BACKENDS), default="cpu", show_default=True,
              help="Where the service compares pairs (same results); it refuses one it has "
                   "not installed.")
@click.option("--solver", type=click.Choice(SOLVERS),
              help="cluster (the service's default: keeps large duplicate groups) or greedy "
                   "(anonlink's greedy solver); see `pprl link --help`.")
@click.option("--tokens", default="", metavar="T1,T3,...",
              help="Also make every pair agreeing on one of these OpenToken tokens a candidate "
                   "whatever its Dice score (uploads made with `pprl tokenize --with-tokens`).")
@click.option("--token-value-cap", type=click.IntRange(min=0), default=None, metavar="N",
              help="With --tokens: a token value held by more than N records of one party "
                   "makes no candidates (the service's default: 100; 0: no cap).")
@click.option("--wait", is_flag=True, help="Wait until the run has finished.")
@with_client
def run_command(client: Client, as_json: bool, project_id: str,
                threshold: float | str | None,
                dedup_thresholds: dict[str, float], blocking: bool, backend: str,
                solver: str | None, tokens: str, token_value_cap: int | None,
                wait: bool) -> None:
    """Start a linkage run on every party's latest upload (owner token)."""
    rules = [rule.strip() for rule in tokens.split(",") if rule.strip()]
    run = client.start_run(project_id, threshold, blocking, backend=backend, solver=solver,
                           tokens=rules, token_value_cap=token_value_cap,
                           dedup_thresholds=dedup_thresholds)
    if wait:
        def show(update: dict[str, Any]) -> None:
            if not as_json and sys.stderr.isatty():
                click.echo("\r" + _describe_run(update), nl=False, err=True)

        run = client.wait(project_id, run["id"], on_update=show)
    emit(run, as_json, _describe_run(run))
    if run["state"] in ("failed", "cancelled"):
        sys.exit(1)


@click.command("status")
@click.argument("project_id")
@click.argument("run_id", type=int)
@click.option("--cancel", is_flag=True, help="Cancel the run.")
@with_client
def status_command(client: Client, as_json: bool, project_id: str, run_id: int,
                   cancel: bool) -> None:
    """A run's state, stage and progress (owner token)."""
    run = client.cancel(project_id, run_id) if cancel else client.run(project_id, run_id)
    emit(run, as_json, _describe_run(run))


@click.command("results")
@click.argument("project_id")
@click.argument("run_id", type=int)
@click.option("--party", help="One party's record -> entity mapping (party, reader or owner).")
@click.option("--matches", "what", flag_value="matches", help="Links with scores (owner).")
@click.option("--groups", "what", flag_value="groups", help="Entities and members (owner).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write CSV here instead of printing.")
@with_client
def results_command(client: Client, as_json: bool, project_id: str, run_id: int,
                    party: str | None, what: str | None, output: Path | None) -> None:
    """A finished run's results. Every read is recorded in the project's audit log."""
    if party is None and what is None:
        raise click.UsageError("give --party LABEL, --matches or --groups")
    if party is not None:
        rows = client.party_entities(project_id, run_id, party)
    elif what == "matches":
        rows = client.matches(project_id, run_id)
    else:
        rows = [{"entity": g["entity"], "party": m["party"], "record_id": m["record_id"]}
                for g in client.groups(project_id, run_id) for m in g["members"]]
    if output is not None:
        temp = output.with_name(f".{output.name}.tmp")
        with temp.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["empty"])
            writer.writeheader()
            writer.writerows(rows)
        temp.replace(output)
        click.echo(f"{len(rows):,} rows written to {output}", err=True)
    elif as_json:
        click.echo(json.dumps(rows, indent=2))
    else:
        writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]) if rows else ["empty"])
        writer.writeheader()
        writer.writerows(rows)


@click.group("audit")
def audit_group() -> None:
    """A project's audit log: read it, or check its hash chain (owner or auditor token)."""


@audit_group.command("show")
@click.argument("project_id")
@with_client
def audit_show_command(client: Client, as_json: bool, project_id: str) -> None:
    """Every event of the project's audit log, oldest first (times in UTC)."""
    events = client.audit(project_id)
    emit(events, as_json, "\n".join(
        f"{e['id']:>6} {e['at']} {e['role']:<10} {e['actor']:<16} {e['action']:<16} "
        f"{json.dumps(e['detail'], sort_keys=True)}" for e in events))


@audit_group.command("verify")
@click.argument("project_id")
@with_client
def audit_verify_command(client: Client, as_json: bool, project_id: str) -> None:
    """Recompute the project's hash chain: every event must match its hash and follow the
    one before it, and the last must be the chain's head. Exits 1 naming the first event
    where it breaks (an event changed, removed, or events cut from the end)."""
    from api.security.audit import verify_chain

    head = client.audit_head(project_id)  # first: events appended meanwhile come after it
    events = client.audit(project_id)[:head["events"]]
    broken = verify_chain(project_id, events, head)
    emit({"events": len(events), "intact": broken is None, "problem": broken}, as_json,
         f"{len(events):,} events, chain intact" if broken is None else f"BROKEN: {broken}")
    if broken is not None:
        raise SystemExit(1)
