"""Reading a finished run's results; every read is written to the audit log.

The owner sees matches with scores and the groups; a party (its upload token) and a reader
for that party see only the party's record_id -> entity pseudonym mapping. Pages come from
the run's index and the result cache (``results_store``).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from ..deps import Principal
from ..errors import Conflict
from ..models import Job
from ..results_store import ResultStore, run_folder
from ..schemas import GroupOut, MatchOut, MemberOut, Page, PartyEntityOut
from ..security.audit import record
from ..settings import Settings
from .lookups import require_party, run_or_404

__all__ = ["matches_page", "groups_page", "party_entities_page"]


def _finished(session: Session, project_id: str, run_id: int) -> Job:
    job = run_or_404(session, project_id, run_id)
    if job.state != "done":
        raise Conflict(f"run {run_id} is {job.state}; results exist once it is done")
    return job


def _audit_read(session: Session, principal: Principal, project_id: str, run_id: int,
                what: str, party: str | None, offset: int, count: int) -> None:
    record(session, actor=principal.token_id, role=principal.role, action="results.read",
           project_id=project_id, run_id=run_id, what=what, party=party, offset=offset,
           items=count)
    session.commit()


def matches_page(session: Session, settings: Settings, store: ResultStore,
                 principal: Principal, project_id: str, run_id: int, offset: int,
                 limit: int) -> Page[MatchOut]:
    _finished(session, project_id, run_id)
    total, rows = store.matches(run_folder(settings.runs_dir, project_id, run_id), offset,
                                limit)
    _audit_read(session, principal, project_id, run_id, "matches", None, offset, len(rows))
    return Page(total=total, offset=offset, items=[MatchOut(**r) for r in rows])


def groups_page(session: Session, settings: Settings, store: ResultStore,
                principal: Principal, project_id: str, run_id: int, offset: int, limit: int,
                min_size: int) -> Page[GroupOut]:
    _finished(session, project_id, run_id)
    total, groups = store.groups(run_folder(settings.runs_dir, project_id, run_id), min_size,
                                 offset, limit)
    _audit_read(session, principal, project_id, run_id, "groups", None, offset, len(groups))
    return Page(total=total, offset=offset, items=[
        GroupOut(entity=e, members=[MemberOut(**m) for m in members]) for e, members in groups])


def party_entities_page(session: Session, settings: Settings, store: ResultStore,
                        principal: Principal, project_id: str, run_id: int, party: str,
                        offset: int, limit: int) -> Page[PartyEntityOut]:
    _finished(session, project_id, run_id)
    require_party(session, project_id, party)
    total, rows = store.party_entities(run_folder(settings.runs_dir, project_id, run_id),
                                       party, offset, limit)
    _audit_read(session, principal, project_id, run_id, "party_entities", party, offset,
                len(rows))
    return Page(total=total, offset=offset, items=[PartyEntityOut(**r) for r in rows])
