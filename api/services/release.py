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

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy import select
from sqlalchemy.orm import Session

from deid.risk.generalise import Generalisation, generalise
from deid.risk.hierarchies import hierarchies_for
from linker.cohorts import ENTITY_TABLE

from ..deps import Principal
from ..jobs.queue import enqueue
from ..models import RISK_REPORT, Project, RiskReport
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


def assess(tables: Path, policy: RiskPolicy, table: pa.Table | None = None
           ) -> tuple[dict[str, Any], list[str]]:
    """The risk document of the export's entity table (``table``, when the caller holds it)
    and the policy's reasons to hold it (none: it may be released)."""
    # imported here: the risk models load scipy (about 1 s), which every `pprl serve` and
    # worker would otherwise pay at start
    from deid.risk.report import build_report, dataset_info

    path = tables / f"{ENTITY_TABLE}.parquet"
    table = pq.read_table(path) if table is None else table
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


def generalise_export(tables: Path, policy: RiskPolicy) -> Generalisation:
    """Generalise the entity table's quasi-identifiers to the policy's target, suppressing
    the entities of classes still too small from every researcher's table under ``tables``
    (the caller filters what it has not written yet: ``kept``).

    Raises:
        GeneralisationError: no transformation meets the policy within its suppression limit.
    """
    path = tables / f"{ENTITY_TABLE}.parquet"
    entities = pq.read_table(path)
    qis = policy.quasi_identifiers
    done = generalise(entities, qis, hierarchies_for(entities, qis), target_k=policy.min_k,
                      max_risk=policy.max_risk, max_suppression=policy.max_suppression)
    pq.write_table(done.table, path)
    for other in tables.glob("*.parquet"):
        if other != path:
            pq.write_table(kept(pq.read_table(other), done.table), other)
    return done


def kept(rows: pa.Table, entities: pa.Table) -> pa.Table:
    """The rows of ``rows`` whose pseudonym is still in ``entities``."""
    return rows.filter(pc.is_in(rows["pseudonym"],
                                value_set=entities["pseudonym"].combine_chunks()))


def store_report(session: Session, project_id: str, job_id: int, request_id: str,
                 policy: RiskPolicy, document: dict[str, Any], reasons: list[str], actor: str
                 ) -> RiskReport:
    """Keep the report and audit its verdict (in the caller's transaction). A job keeps one:
    its retry after a worker was killed between keeping the report and ending the job (the
    same export, the same figures) gets the report kept, not a second one."""
    kept = session.scalars(select(RiskReport).where(RiskReport.job_id == job_id)).first()
    if kept is not None:
        return kept
    report = RiskReport(project_id=project_id, request_id=request_id, job_id=job_id,
                        policy_json=policy.model_dump_json(), passed=not reasons,
                        reasons_json=json.dumps(reasons), created_at=time.time(),
                        document_json=json.dumps(document, allow_nan=False))
    session.add(report)
    session.flush()
    record(session, actor=actor, role="worker", action="risk.report",
           project_id=project_id, request_id=request_id, report_id=report.id,
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


def queue_report(session: Session, principal: Principal, project_id: str, request_id: str
                 ) -> None:
    """A job that assesses the export again, against the policy as it is now."""
    job = enqueue(session, project_id, RISK_REPORT, {"request_id": request_id})
    record(session, actor=principal.token_id, role=principal.role, action="risk.rerun",
           project_id=project_id, request_id=request_id, job_id=job.id)
    session.commit()
