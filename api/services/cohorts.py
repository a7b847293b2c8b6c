"""Cohorts in the service: counts for the owner and researchers, requests a researcher makes
and the owner decides, the export a researcher downloads, and the relabel file a party uses
to give its images the export's pseudonyms. Every step is audited.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from sqlalchemy import select
from sqlalchemy.orm import Session

from linker.cohorts import (
    CohortDefinitionError,
    Definition,
    RequestKeys,
    parse_definition,
    select_entities,
)
from linker.cohorts.offline import count_cohort
from tokenizer.attributes_file import AttributeColumn, read_attributes
from tokenizer.errors import TokenizerError

from ..deps import Principal, refused
from ..errors import Conflict, Invalid, NotFound
from ..jobs.queue import enqueue
from ..models import ATTRIBUTES, COHORT_EXPORT, CohortRequest, Job, RiskReport, Upload
from ..results_store import ResultStore, run_folder
from ..schemas import (
    CohortCatalog,
    CohortQuery,
    CohortRequestCreate,
    CohortRequestOut,
    RiskReportOut,
)
from ..security.audit import record
from ..settings import Settings
from . import release
from .lookups import latest_finished_run, latest_uploads, project_or_404, run_or_404

__all__ = ["RunInputs", "run_inputs", "catalog", "count", "create_request", "list_requests",
           "get_request", "approve", "reject", "generalise", "risk_reports",
           "rerun_risk_report", "export_folder", "export_archive", "relabel", "write_relabel",
           "EXPORT_TABLES"]

EXPORT_TABLES, _RELABEL, _UID_KEY = "researcher", "relabel", "uid_key.hex"


@dataclass(frozen=True)
class RunInputs:
    """What a cohort is evaluated over: the run's members, each party's latest attributes
    (table and declared columns) and the uploads they come from."""

    members: pa.Table
    attributes: dict[str, pa.Table]
    columns: dict[str, dict[str, AttributeColumn]]
    upload_ids: list[int]
    as_of_year: int


def export_folder(settings: Settings, project_id: str, request_id: str) -> Path:
    return settings.exports_dir / project_id / request_id


def write_relabel(folder: Path, tables: dict[str, pa.Table], keys: RequestKeys) -> None:
    """The relabel table of each party given (``relabel_parties``; empty where it holds none
    of the cohort) and the request's UID key, under ``folder``/relabel."""
    target = folder / _RELABEL
    target.mkdir(parents=True, exist_ok=True)
    for party, table in tables.items():
        pq.write_table(table, target / f"{party}.parquet")
    (target / _UID_KEY).write_text(keys.uid_key.hex(), encoding="ascii")


def _attributes(uploads: list[Upload]) -> tuple[dict[str, pa.Table],
                                                dict[str, dict[str, AttributeColumn]]]:
    tables, columns = {}, {}
    for upload in uploads:
        try:
            read = read_attributes(Path(upload.path), f"party {upload.party!r}: attributes")
        except TokenizerError as e:
            raise Conflict(str(e).replace(upload.path, "the stored file")) from e
        tables[upload.party] = read.table
        columns[upload.party] = {c.name: c for c in read.columns}
    return tables, columns


def _run(session: Session, project_id: str, run_id: int | None) -> Job:
    if run_id is None:
        job = latest_finished_run(session, project_id)
        if job is None:
            raise Conflict(f"project {project_id}: no linkage run has finished yet; cohorts "
                           f"are drawn from a finished run")
        return job
    job = run_or_404(session, project_id, run_id)
    if job.state != "done":
        raise Conflict(f"run {run_id} is {job.state}; cohorts are drawn from a finished run")
    return job


def run_inputs(session: Session, settings: Settings, store: ResultStore, project_id: str,
               run: Job, upload_ids: list[int] | None = None) -> RunInputs:
    """The inputs of a finished run; ``upload_ids``: those attribute uploads (an approved
    request's), else each party's latest."""
    if upload_ids is None:
        uploads = list(latest_uploads(session, project_id, ATTRIBUTES).values())
    else:
        uploads = list(session.scalars(select(Upload).where(Upload.id.in_(upload_ids))))
    if not uploads:
        raise Conflict(f"project {project_id}: no party has uploaded attributes yet")
    members = store.members(run_folder(settings.runs_dir, project_id, run.id))
    tables, columns = _attributes(sorted(uploads, key=lambda u: u.party))
    return RunInputs(members, tables, columns, sorted(u.id for u in uploads),
                     _as_of(run.finished_at or run.created_at))


def catalog(session: Session, project_id: str) -> CohortCatalog:
    """What a definition may use: each party's declared attribute columns, and the run
    counts and requests default to."""
    project_or_404(session, project_id)
    run = latest_finished_run(session, project_id)
    parties = {party: json.loads(upload.columns_json or "[]") for party, upload in
               sorted(latest_uploads(session, project_id, ATTRIBUTES).items())}
    return CohortCatalog(run_id=run.id if run else None, parties=parties)


def _definition(inputs: RunInputs, doc: dict[str, Any]) -> Definition:
    try:
        return parse_definition(doc, inputs.columns)
    except CohortDefinitionError as e:
        raise Invalid(f"cohort definition: {e}") from e


def _as_of(epoch: float) -> int:
    return datetime.fromtimestamp(epoch, UTC).year


def count(session: Session, settings: Settings, store: ResultStore, principal: Principal,
          project_id: str, query: CohortQuery) -> dict[str, Any]:
    """Counts with small cells suppressed, and representativeness; the same query always
    answers the same (ages are counted at the run's year unless the definition says)."""
    run = _run(session, project_id, query.run_id)
    inputs = run_inputs(session, settings, store, project_id, run)
    definition = _definition(inputs, query.definition)
    project = project_or_404(session, project_id)
    report = count_cohort(definition, inputs.members, inputs.attributes, project.min_cell,
                          query.reference, inputs.as_of_year)
    if report.counts.empty:
        raise Invalid(f"the cohort is empty: no linked entity of run {run.id} meets the "
                      f"definition")
    record(session, actor=principal.token_id, role=principal.role, action="cohort.count",
           project_id=project_id, run_id=run.id,
           definition_sha256=hashlib.sha256(definition.canonical_json.encode()).hexdigest(),
           entities=report.counts.entities)
    session.commit()
    return {"run_id": run.id, **report.as_dict()}


def _state(session: Session, request: CohortRequest
           ) -> tuple[str, Job | None, RiskReport | None]:
    """The request's state: its decision, then its export job's, then (once exported) its
    latest risk report's verdict: ready, or held for the owner; with that job and report."""
    if request.decision != "approved":
        return request.decision, None, None
    job = session.get(Job, request.job_id) if request.job_id else None
    if job is None or job.state in ("queued", "running"):
        return "exporting", job, None
    if job.state != "done":
        return "failed", job, None
    report = release.latest_report(session, request.id)
    return ("ready" if report is None or report.passed else "held"), job, report


def _out(session: Session, principal: Principal, request: CohortRequest) -> CohortRequestOut:
    """The request as ``principal`` may see it: a researcher learns the entities exported only
    once the export is released (ready); held, it may be a count the release gate withholds
    (a small cohort's), which the owner and auditors see."""
    state, job, report = _state(session, request)
    shown = ("ready",) if principal.role == "researcher" else ("ready", "held")
    entities = (json.loads(job.stats_json or "{}").get("entities")
                if job is not None and state in shown else None)
    return CohortRequestOut(id=request.id, project_id=request.project_id,
                            run_id=request.run_id, purpose=request.purpose,
                            definition=json.loads(request.definition_json),
                            state=state, reason=request.reason,  # type: ignore[arg-type]
                            entities=entities, risk_report_id=report.id if report else None,
                            created_at=request.created_at, decided_at=request.decided_at)


def create_request(session: Session, settings: Settings, store: ResultStore,
                   principal: Principal, project_id: str, body: CohortRequestCreate
                   ) -> CohortRequestOut:
    run = _run(session, project_id, body.run_id)
    inputs = run_inputs(session, settings, store, project_id, run)
    definition = _definition(inputs, body.definition)
    if not select_entities(definition, inputs.members, inputs.attributes):
        raise Invalid(f"the cohort is empty: no linked entity of run {run.id} meets the "
                      f"definition")
    request = CohortRequest(id=f"req_{secrets.token_hex(8)}", project_id=project_id,
                            run_id=run.id, researcher=principal.token_id,
                            purpose=body.purpose, definition_json=json.dumps(body.definition),
                            decision="pending")
    session.add(request)
    record(session, actor=principal.token_id, role=principal.role, action="cohort.request",
           project_id=project_id, request_id=request.id, run_id=run.id,
           definition_sha256=hashlib.sha256(definition.canonical_json.encode()).hexdigest(),
           purpose=body.purpose)
    session.commit()
    return _out(session, principal, request)


def _request(session: Session, principal: Principal, project_id: str, request_id: str
             ) -> CohortRequest:
    project_or_404(session, project_id)
    request = session.get(CohortRequest, request_id)
    if request is None or request.project_id != project_id:
        raise NotFound(f"no cohort request {request_id!r} in project {project_id!r}")
    if principal.role == "researcher" and request.researcher != principal.token_id:
        raise refused(principal, project_id, "this request is another researcher's")
    return request


def list_requests(session: Session, principal: Principal, project_id: str
                  ) -> list[CohortRequestOut]:
    project_or_404(session, project_id)
    query = select(CohortRequest).where(CohortRequest.project_id == project_id)
    if principal.role == "researcher":
        query = query.where(CohortRequest.researcher == principal.token_id)
    return [_out(session, principal, r) for r in session.scalars(
        query.order_by(CohortRequest.created_at, CohortRequest.id))]


def get_request(session: Session, principal: Principal, project_id: str, request_id: str
                ) -> CohortRequestOut:
    return _out(session, principal, _request(session, principal, project_id, request_id))


def approve(session: Session, principal: Principal, project_id: str, request_id: str
            ) -> CohortRequestOut:
    """Queue the export job (again, for a request whose export failed) over each party's
    latest attributes, fixed now."""
    request = _request(session, principal, project_id, request_id)
    state = _state(session, request)[0]
    if state not in ("pending", "failed"):
        raise Conflict(f"request {request_id} is {state}; only a pending request, or one "
                       f"whose export failed, can be approved")
    _run(session, project_id, request.run_id)
    upload_ids = sorted(u.id for u in latest_uploads(session, project_id, ATTRIBUTES).values())
    job = _export_job(session, request, upload_ids, generalised=False)
    request.decision, request.decided_at = "approved", time.time()
    record(session, actor=principal.token_id, role=principal.role, action="cohort.approve",
           project_id=project_id, request_id=request_id, job_id=job.id,
           retry=state == "failed")
    session.commit()
    return _out(session, principal, request)


def _export_job(session: Session, request: CohortRequest, upload_ids: list[int],
                generalised: bool) -> Job:
    job = enqueue(session, request.project_id, COHORT_EXPORT,
                  {"request_id": request.id, "run_id": request.run_id,
                   "upload_ids": upload_ids, "generalise": generalised})
    request.job_id = job.id
    return job


def generalise(session: Session, principal: Principal, project_id: str, request_id: str
               ) -> CohortRequestOut:
    """Export a held request again with the suggested generalisation applied (the same
    attribute uploads); it is assessed again."""
    request = _request(session, principal, project_id, request_id)
    if _state(session, request)[0] != "held":
        raise Conflict(f"request {request_id} is not held; only an export held by the release "
                       f"gate is generalised")
    previous = session.get_one(Job, request.job_id)
    job = _export_job(session, request, json.loads(previous.params_json)["upload_ids"],
                      generalised=True)
    record(session, actor=principal.token_id, role=principal.role, action="cohort.generalise",
           project_id=project_id, request_id=request_id, job_id=job.id)
    session.commit()
    return _out(session, principal, request)


def risk_reports(session: Session, principal: Principal, project_id: str, request_id: str
                 ) -> list[RiskReportOut]:
    _request(session, principal, project_id, request_id)
    return release.list_reports(session, request_id)


def rerun_risk_report(session: Session, principal: Principal, project_id: str,
                      request_id: str) -> CohortRequestOut:
    """Queue a risk-report job: the export assessed again against the policy as it is now."""
    request = _request(session, principal, project_id, request_id)
    if _state(session, request)[0] not in ("ready", "held"):
        raise Conflict(f"request {request_id} has no export to assess yet")
    release.queue_report(session, principal, project_id, request_id)
    return _out(session, principal, request)


def reject(session: Session, principal: Principal, project_id: str, request_id: str,
           reason: str) -> CohortRequestOut:
    request = _request(session, principal, project_id, request_id)
    if request.decision != "pending" and _state(session, request)[0] != "held":
        raise Conflict(f"request {request_id} was {request.decision} already (only a "
                       f"pending request, or an export held by the release gate, is rejected)")
    request.decision, request.reason, request.decided_at = "rejected", reason, time.time()
    record(session, actor=principal.token_id, role=principal.role, action="cohort.reject",
           project_id=project_id, request_id=request_id, reason=reason)
    session.commit()
    return _out(session, principal, request)


def _ready(session: Session, principal: Principal, project_id: str, request_id: str
           ) -> CohortRequest:
    request = _request(session, principal, project_id, request_id)
    state = _state(session, request)[0]
    if state == "held":
        raise Conflict(f"request {request_id} is held: its export does not meet the project's "
                       f"risk policy (see its risk report); the owner generalises it "
                       f"(`pprl cohort generalise`) or rejects it")
    if state != "ready":
        raise Conflict(f"request {request_id} is {state}; its export can be fetched once it "
                       f"is approved and ready")
    return request


def _zip_tables(folder: Path, target: Path, file_format: str) -> None:
    """The tables of ``folder`` zipped into ``target`` (as CSV when asked), atomically."""
    partial = target.with_name(f".{target.name}.{secrets.token_hex(4)}.partial")
    try:
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(folder.glob("*.parquet")):
                if file_format == "csv":
                    with archive.open(path.with_suffix(".csv").name, "w") as member:
                        pacsv.write_csv(pq.read_table(path), member)
                else:
                    archive.write(path, path.name)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def export_archive(session: Session, settings: Settings, principal: Principal,
                   project_id: str, request_id: str, file_format: str) -> Path:
    """The export as a zip of its tables (Parquet, or CSV), built once per format."""
    _ready(session, principal, project_id, request_id)
    folder = export_folder(settings, project_id, request_id)
    archive = folder / f"{request_id}-{file_format}.zip"
    if not archive.is_file():
        _zip_tables(folder / EXPORT_TABLES, archive, file_format)
    record(session, actor=principal.token_id, role=principal.role, action="cohort.download",
           project_id=project_id, request_id=request_id, format=file_format,
           sha256=_sha256(archive))
    session.commit()
    return archive


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def relabel(session: Session, settings: Settings, principal: Principal, project_id: str,
            request_id: str) -> dict[str, Any]:
    """For the party of an upload token: its records of the cohort with the request's
    pseudonym and day offset, and the request's UID key; nothing else."""
    request = _ready(session, principal, project_id, request_id)
    party = principal.party
    folder = export_folder(settings, project_id, request.id) / _RELABEL
    path = folder / f"{party}.parquet"
    if not path.is_file():
        raise refused(principal, project_id, f"party {party!r} holds no objects with UIDs: "
                      f"relabel tables go to the parties whose attributes have a *_uid "
                      f"column (imaging)")
    table = pq.read_table(path)
    if not table.num_rows:
        raise NotFound(f"request {request_id}: party {party!r} holds none of the cohort")
    record(session, actor=principal.token_id, role=principal.role, action="cohort.relabel",
           project_id=project_id, request_id=request_id, party=party, records=table.num_rows)
    session.commit()
    return {"format": "pprl-relabel/1", "request_id": request.id, "party": party,
            "uid_key": (folder / _UID_KEY).read_text(encoding="ascii"),
            "records": table.to_pylist()}
