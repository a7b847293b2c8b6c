"""API tokens after a project's creation: listed (never a secret), issued with an optional
expiry, revoked. Administrator tokens are managed on the server and through /admin."""

from __future__ import annotations

import time

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..deps import Principal
from ..errors import Conflict, Invalid, NotFound
from ..models import AdminToken, ProjectToken
from ..schemas import TokenCreate, TokenCreated, TokenOut
from ..security.audit import record
from ..security.tokens import issue_token
from .lookups import party_labels, project_or_404

__all__ = ["list_project_tokens", "create_project_token", "revoke_project_token",
           "create_admin_token", "list_admin_tokens", "revoke_admin_token"]

_DAY = 86400.0
_PARTYLESS_ROLES = ("researcher", "auditor", "owner")  # tokens of the project, not of a party


def _out(row: AdminToken | ProjectToken) -> TokenOut:
    return TokenOut(id=row.id, role=row.role if isinstance(row, ProjectToken) else "admin",
                    party=row.party if isinstance(row, ProjectToken) else None,
                    label=row.label, created_at=row.created_at,
                    last_used_at=row.last_used_at, expires_at=row.expires_at,
                    revoked_at=row.revoked_at)


def _expiry(days: float | None) -> float | None:
    return None if days is None else time.time() + days * _DAY


def list_project_tokens(session: Session, project_id: str) -> list[TokenOut]:
    project_or_404(session, project_id)
    rows = session.scalars(select(ProjectToken).where(ProjectToken.project_id == project_id)
                           .order_by(ProjectToken.created_at, ProjectToken.id))
    return [_out(r) for r in rows]


def create_project_token(session: Session, principal: Principal, project_id: str,
                         body: TokenCreate) -> TokenCreated:
    project_or_404(session, project_id)
    if body.role in _PARTYLESS_ROLES:
        if body.party is not None:
            raise Invalid(f"a {body.role} token belongs to no party; leave party out")
    elif body.party not in party_labels(session, project_id):
        raise Invalid(f"project {project_id} has no party {body.party!r}")
    token = issue_token()
    expires_at = _expiry(body.expires_in_days)
    session.add(ProjectToken(id=token.id, project_id=project_id, role=body.role,
                             party=body.party, secret_hash=token.secret_hash,
                             label=body.label, expires_at=expires_at))
    record(session, actor=principal.token_id, role=principal.role, action="token.create",
           project_id=project_id, token_id=token.id, token_role=body.role, party=body.party,
           label=body.label, expires_at=expires_at)
    session.commit()
    return TokenCreated(token=token.token, id=token.id, role=body.role, party=body.party,
                        expires_at=expires_at)


def revoke_project_token(session: Session, principal: Principal, project_id: str,
                         token_id: str) -> TokenOut:
    row = session.get(ProjectToken, token_id)
    if row is None or row.project_id != project_id:
        raise NotFound(f"project {project_id} has no token {token_id!r}")
    if row.id == principal.token_id:
        raise Conflict("a token cannot revoke itself; use another owner token")
    if row.revoked_at is None:
        row.revoked_at = time.time()
        record(session, actor=principal.token_id, role=principal.role, action="token.revoke",
               project_id=project_id, token_id=token_id, token_role=row.role,
               party=row.party)
        session.commit()
    return _out(row)


def create_admin_token(session: Session, actor: str, label: str = "",
                       expires_in_days: float | None = None) -> str:
    """A new administrator token; returned once, stored as a hash."""
    token = issue_token()
    expires_at = _expiry(expires_in_days)
    session.add(AdminToken(id=token.id, secret_hash=token.secret_hash, label=label,
                           expires_at=expires_at))
    record(session, actor=actor, role="admin", action="admin_token.create", token_id=token.id,
           label=label, expires_at=expires_at)
    session.commit()
    return token.token


def list_admin_tokens(session: Session) -> list[TokenOut]:
    return [_out(r) for r in session.scalars(select(AdminToken).order_by(AdminToken.created_at,
                                                                         AdminToken.id))]


def revoke_admin_token(session: Session, actor: str, token_id: str) -> TokenOut:
    row = session.get(AdminToken, token_id)
    if row is None:
        raise NotFound(f"no administrator token {token_id!r}")
    if row.revoked_at is None:
        row.revoked_at = time.time()
        record(session, actor=actor, role="admin", action="admin_token.revoke",
               token_id=token_id)
        session.commit()
    return _out(row)
