"""The project's audit log, for its owner."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import func, select

from ..auth import PrincipalDep, SessionDep, require
from ..models import AuditEvent
from ..payloads import AuditEventOut, Page
from .common import project_or_404

router = APIRouter(prefix="/projects/{project_id}", tags=["audit"])


@router.get("/audit", response_model=Page[AuditEventOut],
            summary="Append-only log of project creation, uploads, runs and result reads "
                    "(owner)")
def get_audit(project_id: str, session: SessionDep, principal: PrincipalDep,
              offset: Annotated[int, Query(ge=0)] = 0,
              limit: Annotated[int, Query(ge=1, le=10_000)] = 1000) -> Page[AuditEventOut]:
    require(principal, "owner", project_id=project_id)
    project_or_404(session, project_id)
    where = AuditEvent.project_id == project_id
    total = session.scalar(select(func.count()).select_from(AuditEvent).where(where)) or 0
    events = session.scalars(select(AuditEvent).where(where).order_by(AuditEvent.id)
                             .offset(offset).limit(limit))
    return Page(total=total, offset=offset, items=[
        AuditEventOut(id=e.id, at=e.at, actor=e.actor, role=e.role, action=e.action,
                      detail=json.loads(e.detail)) for e in events])
