"""``pprl cohort``: counts, requests, decisions, downloads and relabelled images.

``count`` works offline (a ``pprl link`` output folder and the parties' attribute files, for
the data manager) or against the service (owner or researcher token). ``request``,
``requests``, ``download`` are the researcher's; ``approve`` and ``reject`` the owner's;
``relabel`` a party's (its upload token) and ``dicom`` runs at the imaging site, where the
de-identified images are.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import click

from tokenizer.encodings_file import AtomicFile
from tokenizer.errors import TokenizerError

from .cli import connect, connection_options, emit, with_client
from .http import Client

__all__ = ["cohort_group"]


def _definition(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise click.ClickException(f"{path}: cannot be read as JSON ({e})") from e
    if not isinstance(doc, dict):
        raise click.ClickException(f"{path}: a cohort definition is a JSON object")
    return doc


def _count_text(report: dict[str, Any]) -> str:
    total = report["entities"]
    lines = [f"{report.get('name') or 'cohort'}: "
             + (f"{total:,} entities" if total is not None
                else f"fewer than {report['min_cell']} entities (suppressed)")]
    for dimension, cells in report["breakdown"].items():
        if not cells:  # under a suppressed total, or every group of the dimension hidden
            if total is not None:
                lines.append(f"  {dimension}: every group hidden")
            continue
        shown = ", ".join(f"{c['category']} {'hidden' if c['count'] is None else c['count']}"
                          for c in cells)
        lines.append(f"  {dimension}: {shown}")
    if any(c["count"] is None for cells in report["breakdown"].values() for c in cells):
        # Not "<11": the one cell hidden as the small cells' complement may be large.
        lines.append(f"  hidden: fewer than {report['min_cell']}, or hidden beside such cells "
                     f"so that they cannot be worked out from the total")
    flagged = [f"{r['dimension']}={r['category']} ({r['ratio']})"
               for r in report["representativeness"] if r["under_represented"]]
    lines.append("  under-represented against the reference: "
                 + (", ".join(flagged) if flagged else "none"))
    return "\n".join(lines)


def _offline_count(definition_path: Path, linkage: Path, attribute_files: tuple[str, ...],
                   reference: Path | None, min_cell: int) -> dict[str, Any]:
    from linker.cohorts import CohortDefinitionError
    from linker.cohorts.offline import (
        count_cohort,
        load_definition,
        members_of_linkage,
        reference_shares,
    )
    from tokenizer.attributes_file import read_attributes

    attributes = {}
    for item in attribute_files:
        party, _, file = item.partition("=")
        if not party or not file:
            raise click.BadParameter(f"{item!r}: give PARTY=FILE", param_hint="--attributes")
        attributes[party] = read_attributes(Path(file))
    try:
        definition = load_definition(definition_path, attributes)
    except CohortDefinitionError as e:
        raise click.ClickException(f"{definition_path}: {e}") from e
    report = count_cohort(definition, members_of_linkage(linkage),
                          {p: a.table for p, a in attributes.items()}, min_cell,
                          reference_shares(reference) if reference else None)
    return report.as_dict()


def _chart(report: dict[str, Any], path: Path) -> None:
    from linker.cohorts import GroupShare, plot_representativeness

    rows = [GroupShare(**r) for r in report["representativeness"]]
    plot_representativeness(rows, path, report.get("name") or "cohort")


@click.group("cohort")
def cohort_group() -> None:
    """Cohorts over a finished linkage: counts, requests, exports, relabelled images."""


@cohort_group.command("count")
@click.argument("definition", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--project", "project_id", help="Count on the service, in this project.")
@click.option("--run", "run_id", type=click.IntRange(min=1),
              help="The service's run (default: the project's latest finished run).")
@click.option("--linkage", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Count offline over this `pprl link` output folder instead.")
@click.option("--attributes", "attribute_files", multiple=True, metavar="PARTY=FILE",
              help="Offline: a party's attributes file (repeat per party).")
@click.option("--reference", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Reference shares (CSV: dimension, category, share), e.g. census shares; "
                   "default: every linked entity.")
@click.option("--min-cell", type=click.IntRange(1, 1000), default=11, show_default=True,
              help="Offline: counts below this are suppressed (the service uses the "
                   "project's setting).")
@click.option("--chart", type=click.Path(dir_okay=False, path_type=Path),
              help="Also draw the representativeness chart (PNG).")
@connection_options
def count_command(definition: Path, project_id: str | None, run_id: int | None,
                  linkage: Path | None, attribute_files: tuple[str, ...],
                  reference: Path | None, min_cell: int, chart: Path | None, url: str,
                  token_file: Path | None, token_env: str, as_json: bool) -> None:
    """Count the entities of a cohort DEFINITION (JSON, see the README) with a breakdown by
    sex, age band, race/ethnicity and region, small cells suppressed, beside a reference."""
    if (linkage is None) == (project_id is None):
        raise click.UsageError("give --linkage DIR (offline) or --project ID (service)")
    try:
        if linkage is not None:
            report = _offline_count(definition, linkage, attribute_files, reference, min_cell)
        else:
            shares = None
            if reference is not None:
                from linker.cohorts.offline import reference_shares
                shares = reference_shares(reference)
            with connect(url, token_file, token_env) as client:
                report = client.count_cohort(project_id or "", _definition(definition),
                                             run_id, shares)
    except TokenizerError as e:
        raise click.ClickException(str(e)) from e
    if chart is not None:
        _chart(report, chart)
    emit(report, as_json, _count_text(report))


@cohort_group.command("catalog")
@click.argument("project_id")
@with_client
def catalog_command(client: Client, as_json: bool, project_id: str) -> None:
    """The attribute columns each party declared (what a definition may use) and the latest
    finished run (owner or researcher token)."""
    catalog = client.cohort_catalog(project_id)
    lines = [f"latest finished run: {catalog['run_id'] or 'none yet'}"]
    for party, columns in catalog["parties"].items():
        lines.append(f"{party}: " + ", ".join(f"{c['name']} ({c['type']}, {c['role']})"
                                              for c in columns))
    emit(catalog, as_json, "\n".join(lines))


def _request_line(request: dict[str, Any]) -> str:
    extra = f", {request['entities']:,} entities" if request.get("entities") else ""
    reason = f" - {request['reason']}" if request.get("reason") else ""
    return (f"{request['id']}  run {request['run_id']}  {request['state']}{extra}  "
            f"{request['purpose'][:60]}{reason}")


@cohort_group.command("request")
@click.argument("project_id")
@click.argument("definition", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--purpose", required=True, help="What the cohort is for (the owner decides).")
@click.option("--run", "run_id", type=click.IntRange(min=1),
              help="The run (default: the project's latest finished run).")
@with_client
def request_command(client: Client, as_json: bool, project_id: str, definition: Path,
                    purpose: str, run_id: int | None) -> None:
    """Request the cohort of DEFINITION (researcher token); the owner approves or rejects."""
    request = client.request_cohort(project_id, _definition(definition), purpose, run_id)
    emit(request, as_json, _request_line(request))


@cohort_group.command("requests")
@click.argument("project_id")
@with_client
def requests_command(client: Client, as_json: bool, project_id: str) -> None:
    """List cohort requests (the owner: all; a researcher: their own)."""
    listed = client.cohort_requests(project_id)
    emit(listed, as_json, "\n".join(_request_line(r) for r in listed) or "no requests")


@cohort_group.command("approve")
@click.argument("project_id")
@click.argument("request_id")
@click.option("--wait", is_flag=True, help="Wait until the export is ready.")
@with_client
def approve_command(client: Client, as_json: bool, project_id: str, request_id: str,
                    wait: bool) -> None:
    """Approve a request (owner token): its export is queued; approving a request whose
    export failed queues it again."""
    _emit_export(client, as_json, project_id, request_id,
                 client.decide(project_id, request_id, approve=True), wait)


def _emit_export(client: Client, as_json: bool, project_id: str, request_id: str,
                 request: dict[str, Any], wait: bool) -> None:
    """Show a request whose export was queued, after waiting for it if asked; exit 1 when
    the export failed."""
    if wait:
        request = client.wait_request(project_id, request_id)
    emit(request, as_json, _request_line(request))
    if request["state"] == "failed":
        raise click.ClickException(f"the export of {request_id} failed; see `pprl audit show` "
                                   f"and approve it again to retry")


@cohort_group.command("reject")
@click.argument("project_id")
@click.argument("request_id")
@click.option("--reason", required=True, help="Why (the researcher sees it).")
@with_client
def reject_command(client: Client, as_json: bool, project_id: str, request_id: str,
                   reason: str) -> None:
    """Reject a request, with a reason (owner token)."""
    emit(client.decide(project_id, request_id, approve=False, reason=reason), as_json,
         f"{request_id} rejected")


@cohort_group.command("download")
@click.argument("project_id")
@click.argument("request_id")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="The zip to write (default: REQUEST_ID.zip).")
@click.option("--format", "file_format", type=click.Choice(["parquet", "csv"]),
              default="parquet", show_default=True, help="Table format inside the zip.")
@click.option("--wait", is_flag=True, help="Wait until the export is ready first.")
@with_client
def download_command(client: Client, as_json: bool, project_id: str, request_id: str,
                     output: Path | None, file_format: str, wait: bool) -> None:
    """Download a ready export (researcher token): a zip with the entity table and one
    table per released party, keyed for this request only."""
    if wait:
        client.wait_request(project_id, request_id)
    target = client.download_export(project_id, request_id, output or
                                    Path(f"{request_id}.zip"), file_format)
    emit({"file": str(target)}, as_json, f"wrote {target}")


@cohort_group.command("relabel")
@click.argument("project_id")
@click.argument("request_id")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write it (default: REQUEST_ID.relabel.json).")
@with_client
def relabel_command(client: Client, as_json: bool, project_id: str, request_id: str,
                    output: Path | None) -> None:
    """Fetch your party's relabel file for a ready export (your upload token): your site
    pseudonyms of the cohort with the request's pseudonyms and day offsets, and the UID key.
    It is written readable by you only; keep it at the site."""
    relabel = client.relabel(project_id, request_id)
    target = AtomicFile(output or Path(f"{request_id}.relabel.json"))
    try:
        descriptor = os.open(target.temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(relabel, indent=1) + "\n")
    except BaseException:
        target.discard()
        raise
    target.commit()
    emit({"file": str(target.target), "records": len(relabel["records"])}, as_json,
         f"wrote {target.target}: {len(relabel['records']):,} records of {relabel['party']}")


@cohort_group.command("dicom")
@click.argument("relabel_file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.argument("deid_out", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def dicom_command(relabel_file: Path, deid_out: Path, out_dir: Path, as_json: bool) -> None:
    """Write the cohort's studies of DEID_OUT (a `pprl deid` OUT_DIR) into OUT_DIR with the
    export's PatientID/PatientName, UIDs (references included) and dates, run at the imaging
    site. Atomic and resumable like `pprl deid`; nothing outside the cohort is written."""
    from deid.cohort_relabel import read_relabel, relabel_folder
    from deid.errors import DeidError

    try:
        report = relabel_folder(read_relabel(relabel_file), deid_out, out_dir)
    except DeidError as e:
        raise click.ClickException(str(e)) from e
    summary = {k: v for k, v in vars(report).items() if k != "manifest"}
    emit({**summary, "manifest": str(report.manifest)}, as_json,
         f"{report.instances:,} instances of {report.studies:,} studies of "
         f"{report.entities:,} entities in {out_dir} ({report.written:,} written, "
         f"{report.unchanged:,} unchanged, {report.removed:,} removed); "
         f"{report.entities_without_images:,} entities of the relabel file have no images "
         f"in {deid_out}")


@cohort_group.command("generalise")
@click.argument("project_id")
@click.argument("request_id")
@click.option("--wait", is_flag=True, help="Wait until it is exported and assessed again.")
@with_client
def generalise_command(client: Client, as_json: bool, project_id: str, request_id: str,
                       wait: bool) -> None:
    """Export a request held by the release gate again, with the suggested generalisation
    applied (owner token): quasi-identifiers generalised to the policy, the entities of
    classes still too small suppressed; it is then assessed again."""
    _emit_export(client, as_json, project_id, request_id,
                 client.generalise(project_id, request_id), wait)


@cohort_group.command("risk-report")
@click.argument("project_id")
@click.argument("request_id")
@click.option("--rerun", is_flag=True, help="Assess the export again first, against the "
                                            "policy as it is now, and wait for it.")
@with_client
def risk_report_command(client: Client, as_json: bool, project_id: str, request_id: str,
                        rerun: bool) -> None:
    """An export's latest risk report: the policy, the verdict and why, the figures (owner
    or auditor token; `--json` for the whole `pprl-risk-report/1` document)."""
    if rerun:
        before = len(client.risk_reports(project_id, request_id))
        client.rerun_risk_report(project_id, request_id)
        deadline = time.monotonic() + 600
        while len(client.risk_reports(project_id, request_id)) == before:
            if time.monotonic() > deadline:
                raise click.ClickException("the risk report was not re-run within 10 minutes")
            time.sleep(0.5)
    reports = client.risk_reports(project_id, request_id)
    if not reports:
        raise click.ClickException(f"request {request_id} has no risk report yet")
    report = reports[-1]
    figures = report["report"]
    lines = [f"report {report['id']} ({report['created_at']}): "
             + ("passed" if report["passed"] else "HELD"),
             f"  k-anonymity {figures['k_anonymity']}, highest prosecutor risk "
             f"{figures['prosecutor']['highest_risk']:.4g}, Safe Harbor findings "
             f"{len(figures['safe_harbor'])}",
             "  policy: " + ", ".join(f"{k} {v}" for k, v in report["policy"].items())]
    lines += [f"  held: {reason}" for reason in report["reasons"]]
    emit(report, as_json, "\n".join(lines))
