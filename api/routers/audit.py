"""The project's audit log and the head of its hash chain, for its owner and auditors."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from ..deps import AuditReaderDep, ProjectId, SessionDep
from ..schemas import AuditEventOut, AuditHeadOut, Page
from ..services.audit import audit_head, audit_page

router = APIRouter(prefix="/projects/{project_id}", tags=["audit"])


@router.get("/audit", response_model=Page[AuditEventOut],
            summary="Append-only, hash-chained log of everything done in the project: "
                    "creation, uploads, tokens, runs and jobs, cohort steps, result reads, "
                    "refused requests (owner, auditor)")
def get_audit(project_id: ProjectId, session: SessionDep, principal: AuditReaderDep,
              offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
              limit: Annotated[int, Query(ge=1, le=10_000)] = 1000) -> Page[AuditEventOut]:
    return audit_page(session, project_id, offset, limit)


@router.get("/audit/head", response_model=AuditHeadOut,
            summary="The end of the project's audit chain: its length and last hash "
                    "(owner, auditor)")
def get_audit_head(project_id: ProjectId, session: SessionDep, principal: AuditReaderDep
                   ) -> AuditHeadOut:
    """Read it before the events: a log that ends before the head was cut short."""
    return audit_head(session, project_id)
