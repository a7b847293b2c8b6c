"""The append-only audit log: who (token id and role) did what to which project."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.orm import Session

from ..models import AuditEvent

__all__ = ["record"]


def record(session: Session, *, actor: str, role: str, action: str,
           project_id: str | None = None, **detail: Any) -> None:
    """Add an event to the session's transaction, so it commits (or not) with the action."""
    session.add(AuditEvent(project_id=project_id, actor=actor, role=role, action=action,
                           detail=json.dumps(detail, sort_keys=True, default=str)))
