"""The project's audit log and its chain's head, for its owner and auditors."""

from __future__ import annotations

import json

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..models import AuditEvent, AuditHead
from ..schemas import AuditEventOut, AuditHeadOut, Page
from ..security.audit import GENESIS, iso_time
from .lookups import project_or_404

__all__ = ["audit_page", "audit_head"]


def audit_page(session: Session, project_id: str, offset: int, limit: int
               ) -> Page[AuditEventOut]:
    project_or_404(session, project_id)
    where = AuditEvent.project_id == project_id
    total = session.scalar(select(func.count()).select_from(AuditEvent).where(where)) or 0
    events = session.scalars(select(AuditEvent).where(where).order_by(AuditEvent.id)
                             .offset(offset).limit(limit))
    return Page(total=total, offset=offset, items=[
        AuditEventOut(id=e.id, at=iso_time(e.at), actor=e.actor, role=e.role,
                      action=e.action, detail=json.loads(e.detail), prev_hash=e.prev_hash,
                      hash=e.hash) for e in events])


def audit_head(session: Session, project_id: str) -> AuditHeadOut:
    project_or_404(session, project_id)
    head = session.get(AuditHead, project_id)
    return (AuditHeadOut(events=0, last_hash=GENESIS) if head is None
            else AuditHeadOut(events=head.events, last_hash=head.last_hash))
