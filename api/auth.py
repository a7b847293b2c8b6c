"""Who is calling, and may they do this? Every endpoint but health and docs goes through here.

Roles: ``admin`` (service administrator: creates projects), ``owner`` (a project's data
manager), ``upload`` (one party of a project: uploads its encodings, reads its own results),
``reader`` (reads one party's results). 401 means no valid credential, 403 a valid one
without the right to this project, party or action.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker

from .models import AdminToken, ProjectToken
from .tokens import secret_matches, split_token

__all__ = ["Principal", "get_session", "current_principal", "require", "SessionDep",
           "PrincipalDep"]

_bearer = HTTPBearer(auto_error=False, description="An API token: `Authorization: Bearer "
                                                   "pprl_<id>_<secret>`.")


@dataclass(frozen=True)
class Principal:
    token_id: str
    role: str
    project_id: str | None = None
    party: str | None = None


def get_session(request: Request) -> Iterator[Session]:
    factory: sessionmaker[Session] = request.app.state.sessions
    with factory() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


def current_principal(
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None:
        raise _unauthorized("an API token is required (Authorization: Bearer ...)")
    parts = split_token(credentials.credentials)
    if parts is None:
        raise _unauthorized("malformed API token")
    token_id, secret = parts
    admin = session.get(AdminToken, token_id)
    if admin is not None:
        if secret_matches(secret, admin.secret_hash):
            return Principal(token_id, "admin")
        raise _unauthorized("invalid API token")
    token = session.get(ProjectToken, token_id)
    if not secret_matches(secret, token.secret_hash if token else None) or token is None:
        raise _unauthorized("invalid API token")
    return Principal(token_id, token.role, token.project_id, token.party)


PrincipalDep = Annotated[Principal, Depends(current_principal)]


def require(principal: Principal, *roles: str, project_id: str | None = None,
            party: str | None = None) -> None:
    """403 unless the principal has one of ``roles`` on ``project_id`` (and, for the party
    roles, on ``party``)."""
    if principal.role not in roles:
        raise HTTPException(403, f"a {principal.role} token may not do this "
                                 f"(needs: {', '.join(roles)})")
    if principal.role == "admin":
        return
    if project_id is not None and principal.project_id != project_id:
        raise HTTPException(403, "this token belongs to another project")
    if principal.role in ("upload", "reader") and party is not None \
            and principal.party != party:
        raise HTTPException(403, f"this token is for party {principal.party!r}, not {party!r}")
