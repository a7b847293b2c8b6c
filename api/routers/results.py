"""A finished run's results; every read is written to the audit log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from ..deps import (
    OwnerDep,
    PartyLabel,
    PartyReaderDep,
    ProjectId,
    ResultsDep,
    RunId,
    SessionDep,
    SettingsDep,
)
from ..schemas import GroupOut, MatchOut, Page, PartyEntityOut
from ..services import results

router = APIRouter(prefix="/projects/{project_id}/runs/{run_id}", tags=["results"])

Offset = Annotated[int, Query(ge=0, le=2**31 - 1, description="Items to skip.")]
Limit = Annotated[int, Query(ge=1, le=100_000, description="Items to return at most.")]


@router.get("/matches", response_model=Page[MatchOut],
            summary="Accepted links with their Dice scores (owner)")
def get_matches(project_id: ProjectId, run_id: RunId, store: ResultsDep, session: SessionDep,
                settings: SettingsDep, principal: OwnerDep, offset: Offset = 0,
                limit: Limit = 1000) -> Page[MatchOut]:
    return results.matches_page(session, settings, store, principal, project_id,
                                run_id, offset, limit)


@router.get("/groups", response_model=Page[GroupOut],
            summary="Entities with their member records (owner)")
def get_groups(project_id: ProjectId, run_id: RunId, store: ResultsDep, session: SessionDep,
               settings: SettingsDep, principal: OwnerDep, offset: Offset = 0,
               limit: Limit = 1000,
               min_size: Annotated[int, Query(ge=1, le=1000, description=(
                   "Only entities with at least this many records (1: singletons too)."))] = 2
               ) -> Page[GroupOut]:
    return results.groups_page(session, settings, store, principal, project_id,
                               run_id, offset, limit, min_size)


@router.get("/parties/{party}/entities", response_model=Page[PartyEntityOut],
            summary="One party's record_id -> entity pseudonym (owner, the party, its readers)")
def get_party_entities(project_id: ProjectId, run_id: RunId, party: PartyLabel,
                       store: ResultsDep, session: SessionDep, settings: SettingsDep,
                       principal: PartyReaderDep, offset: Offset = 0, limit: Limit = 1000
                       ) -> Page[PartyEntityOut]:
    """Pseudonyms are keyed per project: the same person has different ones in different
    projects. Records of one party that share a pseudonym are duplicates of each other."""
    return results.party_entities_page(session, settings, store, principal,
                                       project_id, run_id, party, offset, limit)
