"""Who is calling, and may they do this: typed dependencies that every route but health and
docs declares.

Authentication opens its own short database session and closes it before the route runs,
so no pooled connection is held while an upload's body streams in; its note of a token's
last use is best-effort, so a held database lock never delays or fails a request. Failed
authentications are limited per client address and token id (429 with Retry-After) and
written to the audit log without the secret. Roles: ``admin`` (creates projects),
``owner`` (a project's data manager), ``upload`` (one party: uploads its encodings, reads
its own results), ``reader`` (reads one party's results), ``researcher`` (counts and
requests cohorts). 401 means no valid credential, 403 a valid one without the right to this
project, party or action.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker

from .errors import Forbidden, TooMany, Unauthorized
from .models import AdminToken, ProjectToken
from .results_store import ResultStore
from .security.audit import record
from .security.last_used import LastUsed
from .security.rate_limit import FailureLimiter
from .security.tokens import secret_matches, split_token, unusable_reason
from .settings import Settings

__all__ = ["Principal", "refused", "SessionDep", "SettingsDep", "ResultsDep", "PrincipalDep",
           "AdminDep", "OwnerDep", "MemberDep", "PartyReaderDep", "UploaderDep",
           "ResearcherDep", "CounterDep", "AnyPartyDep", "RequestReaderDep", "AuditReaderDep",
           "ProjectId", "PartyLabel", "RunId", "RequestId"]

_bearer = HTTPBearer(auto_error=False, description="An API token: `Authorization: Bearer "
                                                   "pprl_<id>_<secret>`.")
# A token's last use is written at most this often (a write per request would contend).
_LAST_USED_EVERY_SECONDS = 60.0
_MAX_ID = 2**31 - 1

ProjectId = Annotated[str, Path(max_length=32, pattern=r"^prj_[0-9a-f]{16}$")]
PartyLabel = Annotated[str, Path(max_length=64, pattern=r"^[a-z][a-z0-9_-]{0,63}$")]
RunId = Annotated[int, Path(ge=1, le=_MAX_ID)]
RequestId = Annotated[str, Path(max_length=32, pattern=r"^req_[0-9a-f]{16}$")]


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


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_results(request: Request) -> ResultStore:
    store: ResultStore = request.app.state.results
    return store


SessionDep = Annotated[Session, Depends(get_session)]
ResultsDep = Annotated[ResultStore, Depends(get_results)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def _refuse(session: Session, limiter: FailureLimiter, keys: tuple[str, ...], reason: str,
            token_id: str | None, project_id: str | None, client: str) -> Unauthorized:
    limiter.failed(*keys)
    record(session, actor=token_id or "anonymous", role="none", action="auth.failed",
           project_id=project_id, reason=reason, client=client)
    session.commit()
    return Unauthorized(reason)


def _limited(limiter: FailureLimiter, keys: tuple[str, ...]) -> None:
    """429 once an address or a token id has used up its failures: the refusal is then
    neither audited nor counted (a flood costs no commits)."""
    wait = limiter.retry_after(*keys)
    if wait is not None:
        raise TooMany("too many failed authentications; try again later",
                      headers={"Retry-After": str(wait)})


def _authenticate(session: Session, limiter: FailureLimiter, last_used: LastUsed,
                  token: str, client: str) -> Principal:
    # A valid token is let through whatever others failed: token ids are no secret (the
    # audit log names them) and behind a proxy every client shares its address, so checking
    # the limit first let anyone lock out the owner or everyone. Only refusals are limited.
    parts = split_token(token)
    keys = (f"ip:{client}",) if parts is None else (f"ip:{client}", f"token:{parts[0]}")
    if parts is None:
        _limited(limiter, keys)
        raise _refuse(session, limiter, keys, "malformed API token", None, None, client)
    token_id, secret = parts
    row: AdminToken | ProjectToken | None = session.get(AdminToken, token_id)
    if row is None:
        row = session.get(ProjectToken, token_id)
    project_id = row.project_id if isinstance(row, ProjectToken) else None
    if row is None or not secret_matches(secret, row.secret_hash):
        _limited(limiter, keys)
        raise _refuse(session, limiter, keys, "invalid API token", token_id, project_id,
                      client)
    now = time.time()
    unusable = unusable_reason(row.revoked_at, row.expires_at, now)
    if unusable is not None:
        _limited(limiter, keys)
        raise _refuse(session, limiter, keys, unusable, token_id, project_id, client)
    if row.last_used_at is None or row.last_used_at < now - _LAST_USED_EVERY_SECONDS:
        last_used.note(type(row), token_id, now)
    if isinstance(row, AdminToken):
        return Principal(token_id, "admin")
    return Principal(token_id, row.role, row.project_id, row.party)


def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None:
        raise Unauthorized("an API token is required (Authorization: Bearer ...)")
    client = request.client.host if request.client else "unknown"
    limiter: FailureLimiter = request.app.state.auth_limiter
    factory: sessionmaker[Session] = request.app.state.sessions
    last_used: LastUsed = request.app.state.last_used
    with factory() as session:
        return _authenticate(session, limiter, last_used, credentials.credentials, client)


PrincipalDep = Annotated[Principal, Depends(current_principal)]


def refused(principal: Principal, project_id: str | None, message: str) -> Forbidden:
    """A 403 that names who was refused, for the audit log (``app._audit_refusal``)."""
    return Forbidden(message, actor=principal.token_id, role=principal.role,
                     project_id=project_id, own_project=principal.project_id)


def _role(principal: Principal, roles: tuple[str, ...], project_id: str | None,
          party: str | None = None) -> Principal:
    """Forbidden unless the principal has one of ``roles`` on ``project_id`` (and, for the
    party roles, on ``party``)."""
    def refuse(message: str) -> Forbidden:
        return refused(principal, project_id, message)

    if principal.role not in roles:
        raise refuse(f"a {principal.role} token may not do this (needs: {', '.join(roles)})")
    if principal.role == "admin":
        return principal
    if project_id is not None and principal.project_id != project_id:
        raise refuse("this token belongs to another project")
    if principal.role in ("upload", "reader") and party is not None \
            and principal.party != party:
        raise refuse(f"this token is for party {principal.party!r}, not {party!r}")
    return principal


def require_admin(principal: PrincipalDep) -> Principal:
    return _role(principal, ("admin",), None)


def require_owner(principal: PrincipalDep, project_id: ProjectId) -> Principal:
    return _role(principal, ("owner",), project_id)


def require_member(principal: PrincipalDep, project_id: ProjectId) -> Principal:
    return _role(principal, ("owner", "upload", "reader", "researcher", "auditor"),
                 project_id)


def require_party_reader(principal: PrincipalDep, project_id: ProjectId,
                         party: PartyLabel) -> Principal:
    return _role(principal, ("owner", "upload", "reader"), project_id, party)


def require_uploader(principal: PrincipalDep, project_id: ProjectId,
                     party: PartyLabel) -> Principal:
    return _role(principal, ("upload",), project_id, party)


def require_researcher(principal: PrincipalDep, project_id: ProjectId) -> Principal:
    return _role(principal, ("researcher",), project_id)


def require_counter(principal: PrincipalDep, project_id: ProjectId) -> Principal:
    return _role(principal, ("owner", "researcher"), project_id)


def require_any_party(principal: PrincipalDep, project_id: ProjectId) -> Principal:
    return _role(principal, ("upload",), project_id)


def require_request_reader(principal: PrincipalDep, project_id: ProjectId) -> Principal:
    """Cohort requests: the owner's and an auditor's all, a researcher's own."""
    return _role(principal, ("owner", "researcher", "auditor"), project_id)


def require_audit_reader(principal: PrincipalDep, project_id: ProjectId) -> Principal:
    return _role(principal, ("owner", "auditor"), project_id)


ResearcherDep = Annotated[Principal, Depends(require_researcher)]
CounterDep = Annotated[Principal, Depends(require_counter)]
AnyPartyDep = Annotated[Principal, Depends(require_any_party)]
RequestReaderDep = Annotated[Principal, Depends(require_request_reader)]
AuditReaderDep = Annotated[Principal, Depends(require_audit_reader)]
AdminDep = Annotated[Principal, Depends(require_admin)]
OwnerDep = Annotated[Principal, Depends(require_owner)]
MemberDep = Annotated[Principal, Depends(require_member)]
PartyReaderDep = Annotated[Principal, Depends(require_party_reader)]
UploaderDep = Annotated[Principal, Depends(require_uploader)]
