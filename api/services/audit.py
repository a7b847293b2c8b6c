"""The project's audit log, for its owner."""

from __future__ import annotations

import json

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..models import AuditEvent
from ..schemas import AuditEventOut, Page
from .lookups import project_or_404

__all__ = ["audit_page"]


def audit_page(session: Session, project_id: str, offset: int, limit: int
               ) -> Page[AuditEventOut]:
    project_or_404(session, project_id)
    where = AuditEvent.project_id == project_id
    total = session.scalar(select(func.count()).select_from(AuditEvent).where(where)) or 0
    events = session.scalars(select(AuditEvent).where(where).order_by(AuditEvent.id)
                             .offset(offset).limit(limit))
    return Page(total=total, offset=offset, items=[
        AuditEventOut(id=e.id, at=e.at, actor=e.actor, role=e.role, action=e.action,
                      detail=json.loads(e.detail)) for e in events])
