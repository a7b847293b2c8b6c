"""Reading a finished run's results; every read is written to the audit log.

The owner sees matches with scores and the groups; a party (its upload token) and a reader
for that party see only the party's record_id -> entity pseudonym mapping.
"""

from __future__ import annotations

from typing import Annotated

import pyarrow as pa
import pyarrow.compute as pc
from fastapi import APIRouter, HTTPException, Query, Request
from sqlalchemy.orm import Session

from ..audit import record
from ..auth import Principal, PrincipalDep, SessionDep, require
from ..models import Run
from ..payloads import GroupOut, MatchOut, MemberOut, Page, PartyEntityOut
from ..run_results import MATCHES, PARTIES, read_table, run_folder
from .common import party_labels, run_or_404, settings_of

router = APIRouter(prefix="/projects/{project_id}/runs/{run_id}", tags=["results"])

Offset = Annotated[int, Query(ge=0, description="Items to skip.")]
Limit = Annotated[int, Query(ge=1, le=100_000, description="Items to return at most.")]


def _finished(session: Session, project_id: str, run_id: int) -> Run:
    run = run_or_404(session, project_id, run_id)
    if run.state != "done":
        raise HTTPException(409, f"run {run_id} is {run.state}; results exist once it is done")
    return run


def _audit_read(session: Session, principal: Principal, project_id: str, run_id: int,
                what: str, party: str | None, offset: int, count: int) -> None:
    record(session, actor=principal.token_id, role=principal.role, action="results.read",
           project_id=project_id, run_id=run_id, what=what, party=party, offset=offset,
           items=count)
    session.commit()


@router.get("/matches", response_model=Page[MatchOut],
            summary="Accepted links with their Dice scores (owner)")
def get_matches(project_id: str, run_id: int, request: Request, session: SessionDep,
                principal: PrincipalDep, offset: Offset = 0, limit: Limit = 1000
                ) -> Page[MatchOut]:
    require(principal, "owner", project_id=project_id)
    _finished(session, project_id, run_id)
    table = read_table(run_folder(settings_of(request).runs_dir, project_id, run_id), MATCHES)
    rows = table.slice(offset, limit).to_pylist()
    _audit_read(session, principal, project_id, run_id, "matches", None, offset, len(rows))
    return Page(total=table.num_rows, offset=offset, items=[MatchOut(**r) for r in rows])


@router.get("/groups", response_model=Page[GroupOut],
            summary="Entities with their member records (owner)")
def get_groups(project_id: str, run_id: int, request: Request, session: SessionDep,
               principal: PrincipalDep, offset: Offset = 0, limit: Limit = 1000,
               min_size: Annotated[int, Query(ge=1, le=1000, description=(
                   "Only entities with at least this many records (1: singletons too)."))] = 2
               ) -> Page[GroupOut]:
    require(principal, "owner", project_id=project_id)
    _finished(session, project_id, run_id)
    table = read_table(run_folder(settings_of(request).runs_dir, project_id, run_id), PARTIES)
    sizes = table.group_by("entity").aggregate([("record_id", "count")])
    wanted = sizes.filter(pc.greater_equal(sizes["record_id_count"], min_size))["entity"]
    entities = pc.unique(wanted).sort() if len(wanted) else pa.array([], pa.string())
    page = entities.slice(offset, limit)
    members = table.filter(pc.is_in(table["entity"], value_set=page)).sort_by(
        [("entity", "ascending"), ("party", "ascending"), ("record_id", "ascending")])
    groups: dict[str, list[MemberOut]] = {e: [] for e in page.to_pylist()}
    for row in members.to_pylist():
        groups[row["entity"]].append(MemberOut(party=row["party"], record_id=row["record_id"]))
    _audit_read(session, principal, project_id, run_id, "groups", None, offset, len(groups))
    return Page(total=len(entities), offset=offset,
                items=[GroupOut(entity=e, members=m) for e, m in groups.items()])


@router.get("/parties/{party}/entities", response_model=Page[PartyEntityOut],
            summary="One party's record_id -> entity pseudonym (owner, the party, its readers)")
def get_party_entities(project_id: str, run_id: int, party: str, request: Request,
                       session: SessionDep, principal: PrincipalDep, offset: Offset = 0,
                       limit: Limit = 1000) -> Page[PartyEntityOut]:
    """Pseudonyms are keyed per project: the same person has different ones in different
    projects. Records of one party that share a pseudonym are duplicates of each other."""
    require(principal, "owner", "upload", "reader", project_id=project_id, party=party)
    _finished(session, project_id, run_id)
    if party not in party_labels(session, project_id):
        raise HTTPException(404, f"project {project_id} has no party {party!r}")
    table = read_table(run_folder(settings_of(request).runs_dir, project_id, run_id), PARTIES,
                       party=party)
    rows = table.slice(offset, limit).select(["record_id", "entity"]).to_pylist()
    _audit_read(session, principal, project_id, run_id, "party_entities", party, offset,
                len(rows))
    return Page(total=table.num_rows, offset=offset, items=[PartyEntityOut(**r) for r in rows])
