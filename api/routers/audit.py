"""The project's audit log, for its owner."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from ..deps import OwnerDep, ProjectId, SessionDep
from ..schemas import AuditEventOut, Page
from ..services.audit import audit_page

router = APIRouter(prefix="/projects/{project_id}", tags=["audit"])


@router.get("/audit", response_model=Page[AuditEventOut],
            summary="Append-only log of project creation, uploads, runs, tokens and result "
                    "reads (owner)")
def get_audit(project_id: ProjectId, session: SessionDep, principal: OwnerDep,
              offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
              limit: Annotated[int, Query(ge=1, le=10_000)] = 1000) -> Page[AuditEventOut]:
    return audit_page(session, project_id, offset, limit)
