"""The release gate: a cohort export is assessed against the project's risk policy before a
researcher may download it.

The assessment is ``pprl risk``'s, on the export's entity table (the request's pseudonym and
the released demographics: what could single a person out), with the policy's
quasi-identifiers: k-anonymity, the highest prosecutor risk and the HIPAA Safe Harbor check.
An export that meets the policy is ready; one that does not is held with its report, and the
owner either rejects the request or has the suggested generalisation applied (the
quasi-identifiers generalised and the smallest classes' entities suppressed, as ARX does,
with their rows in every table), which is assessed again. Reports are kept, and anyone
allowed to read them may have one re-run: the same export and policy give the same figures.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy import select
from sqlalchemy.orm import Session

from deid.risk.generalise import generalise
from deid.risk.hierarchies import hierarchies_for
from deid.risk.report import build_report, dataset_info
from linker.cohorts import ENTITY_TABLE

from ..deps import Principal
from ..errors import Conflict
from ..models import RISK_REPORT, Job, Project, RiskReport
from ..schemas import RiskPolicy, RiskReportOut
from ..security.audit import iso_time, record
from .lookups import project_or_404

__all__ = ["policy_of", "set_policy", "assess", "generalise_export", "store_report",
           "latest_report", "list_reports", "queue_report", "report_out"]


def policy_of(project: Project) -> RiskPolicy:
    return RiskPolicy.model_validate_json(project.risk_policy_json or "{}")


def set_policy(session: Session, principal: Principal, project_id: str, policy: RiskPolicy
               ) -> RiskPolicy:
    """Change the policy later exports are held to (audited: before and after)."""
    project = project_or_404(session, project_id)
    before = policy_of(project)
    project.risk_policy_json = policy.model_dump_json()
    record(session, actor=principal.token_id, role=principal.role, action="policy.change",
           project_id=project_id, before=before.model_dump(), after=policy.model_dump())
    session.commit()
    return policy


def assess(tables: Path, policy: RiskPolicy) -> tuple[dict[str, Any], list[str]]:
    """The risk document of the export's entity table and the policy's reasons to hold it
    (none: it may be released)."""
    path = tables / f"{ENTITY_TABLE}.parquet"
    table = pq.read_table(path)
    document, _ = build_report(table, dataset_info(path, table), policy.quasi_identifiers)
    reasons = []
    if document["k_anonymity"] < policy.min_k:
        reasons.append(f"k-anonymity {document['k_anonymity']} is below the policy's "
                       f"{policy.min_k}")
    highest = document["prosecutor"]["highest_risk"]
    if highest > policy.max_risk:
        reasons.append(f"the highest prosecutor risk {highest:.4g} is above the policy's "
                       f"{policy.max_risk:g}")
    if policy.safe_harbor:
        reasons += [f"Safe Harbor: column {f['column']!r} holds {f['identifier']} ({f['rule']})"
                    for f in document["safe_harbor"]]
    return document, reasons


def generalise_export(staging: Path, tables: Path, policy: RiskPolicy) -> dict[str, Any]:
    """Generalise the entity table's quasi-identifiers to the policy's target, suppressing
    the entities of classes still too small from every table (the researcher's and the
    relabel tables under ``staging``); what was done, for the report.

    Raises:
        GeneralisationError: no transformation meets the policy within its suppression limit.
    """
    path = tables / f"{ENTITY_TABLE}.parquet"
    entities = pq.read_table(path)
    qis = policy.quasi_identifiers
    done = generalise(entities, qis, hierarchies_for(entities, qis), target_k=policy.min_k,
                      max_risk=policy.max_risk, max_suppression=policy.max_suppression)
    kept = done.table["pseudonym"].combine_chunks()
    pq.write_table(done.table, path)
    for other in (*tables.glob("*.parquet"), *(staging / "relabel").glob("*.parquet")):
        if other != path:
            rows = pq.read_table(other)
            pq.write_table(rows.filter(pc.is_in(rows["pseudonym"], value_set=kept)), other)
    return done.as_dict()


def store_report(session: Session, job: Job, request_id: str, policy: RiskPolicy,
                 document: dict[str, Any], reasons: list[str], actor: str) -> RiskReport:
    """Keep the report and audit its verdict (in the caller's transaction)."""
    report = RiskReport(project_id=job.project_id, request_id=request_id, job_id=job.id,
                        policy_json=policy.model_dump_json(), passed=not reasons,
                        reasons_json=json.dumps(reasons), created_at=time.time(),
                        document_json=json.dumps(document, allow_nan=False))
    session.add(report)
    session.flush()
    record(session, actor=actor, role="worker", action="risk.report",
           project_id=job.project_id, request_id=request_id, report_id=report.id,
           passed=report.passed, k_anonymity=document["k_anonymity"],
           highest_risk=document["prosecutor"]["highest_risk"], reasons=reasons)
    return report


def latest_report(session: Session, request_id: str) -> RiskReport | None:
    return session.scalars(select(RiskReport).where(RiskReport.request_id == request_id)
                           .order_by(RiskReport.id.desc()).limit(1)).first()


def report_out(report: RiskReport) -> RiskReportOut:
    return RiskReportOut(id=report.id, request_id=report.request_id, job_id=report.job_id,
                         created_at=iso_time(report.created_at),
                         policy=RiskPolicy.model_validate_json(report.policy_json),
                         passed=report.passed, reasons=json.loads(report.reasons_json),
                         report=json.loads(report.document_json))


def list_reports(session: Session, request_id: str) -> list[RiskReportOut]:
    return [report_out(r) for r in session.scalars(
        select(RiskReport).where(RiskReport.request_id == request_id).order_by(RiskReport.id))]


def queue_report(session: Session, principal: Principal, project_id: str, request_id: str,
                 exported: bool) -> int:
    """A job that assesses the export again, against the policy as it is now."""
    if not exported:
        raise Conflict(f"request {request_id} has no export to assess yet")
    job = Job(project_id=project_id, kind=RISK_REPORT, state="queued", stage="queued",
              progress=0.0, attempt=0, cancel_requested=False,
              params_json=json.dumps({"request_id": request_id}))
    session.add(job)
    session.flush()
    record(session, actor=principal.token_id, role=principal.role, action="risk.rerun",
           project_id=project_id, request_id=request_id, job_id=job.id)
    session.commit()
    return job.id
