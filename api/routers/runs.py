"""Linkage runs: start (queued for a worker), watch stage and progress, cancel."""

from __future__ import annotations

from fastapi import APIRouter

from ..deps import OwnerDep, ProjectId, RunId, SessionDep
from ..schemas import RunCreate, RunOut
from ..services import runs
from .error_bodies import error_response

router = APIRouter(prefix="/projects/{project_id}/runs", tags=["runs"])


@router.post("", status_code=201, response_model=RunOut,
             summary="Start a linkage run on every party's latest upload (owner)",
             responses={409: error_response("A party has not uploaded yet, or parties' "
                                            "uploads were made with different secrets")})
def create_run(project_id: ProjectId, body: RunCreate, session: SessionDep,
               principal: OwnerDep) -> RunOut:
    return runs.create_run(session, principal, project_id, body)


@router.get("", response_model=list[RunOut], summary="Every run of the project (owner)")
def list_runs(project_id: ProjectId, session: SessionDep, principal: OwnerDep
              ) -> list[RunOut]:
    return runs.list_runs(session, project_id)


@router.get("/{run_id}", response_model=RunOut, summary="A run's state, stage and progress")
def get_run(project_id: ProjectId, run_id: RunId, session: SessionDep, principal: OwnerDep
            ) -> RunOut:
    return runs.get_run(session, project_id, run_id)


@router.post("/{run_id}/cancel", response_model=RunOut, summary="Cancel a queued or running run")
def cancel_run(project_id: ProjectId, run_id: RunId, session: SessionDep,
               principal: OwnerDep) -> RunOut:
    """A queued run is cancelled at once; a running one stops at its worker's next progress
    report. Cancelling a finished run changes nothing."""
    return runs.cancel_run(session, principal, project_id, run_id)
