"""Linkage runs: start (queued for a worker), watch stage and progress, cancel."""

from __future__ import annotations

import json
import time

from fastapi import APIRouter, HTTPException
from sqlalchemy import select

from ..audit import record
from ..auth import PrincipalDep, SessionDep, require
from ..models import ACTIVE_STATES, Run
from ..payloads import RunCreate, RunOut
from .common import (
    latest_uploads,
    party_labels,
    project_or_404,
    run_or_404,
    run_out,
    secret_mismatch,
)

router = APIRouter(prefix="/projects/{project_id}/runs", tags=["runs"])


@router.post("", status_code=201, response_model=RunOut,
             summary="Start a linkage run on every party's latest upload (owner)",
             responses={409: {"description": "A party has not uploaded yet, or parties' "
                                             "uploads were made with different secrets"}})
def create_run(project_id: str, body: RunCreate, session: SessionDep,
               principal: PrincipalDep) -> RunOut:
    require(principal, "owner", project_id=project_id)
    project_or_404(session, project_id)
    uploads = latest_uploads(session, project_id)
    missing = [p for p in party_labels(session, project_id) if p not in uploads]
    if missing:
        raise HTTPException(409, f"no encodings uploaded yet by: {', '.join(missing)}")
    mismatch = secret_mismatch({p: u.key_check for p, u in uploads.items()})
    if mismatch is not None:
        raise HTTPException(409, mismatch)
    run = Run(project_id=project_id, state="queued", stage="queued", progress=0.0,
              threshold=body.threshold, blocking=body.blocking, attempt=0,
              cancel_requested=False,
              upload_ids=json.dumps(sorted(u.id for u in uploads.values())))
    session.add(run)
    session.flush()
    record(session, actor=principal.token_id, role=principal.role, action="run.create",
           project_id=project_id, run_id=run.id, threshold=body.threshold,
           blocking=body.blocking, upload_ids=json.loads(run.upload_ids))
    session.commit()
    return run_out(run)


@router.get("", response_model=list[RunOut], summary="Every run of the project (owner)")
def list_runs(project_id: str, session: SessionDep, principal: PrincipalDep) -> list[RunOut]:
    require(principal, "owner", project_id=project_id)
    project_or_404(session, project_id)
    return [run_out(r) for r in session.scalars(select(Run).where(Run.project_id == project_id)
                                                .order_by(Run.id))]


@router.get("/{run_id}", response_model=RunOut, summary="A run's state, stage and progress")
def get_run(project_id: str, run_id: int, session: SessionDep,
            principal: PrincipalDep) -> RunOut:
    require(principal, "owner", project_id=project_id)
    return run_out(run_or_404(session, project_id, run_id))


@router.post("/{run_id}/cancel", response_model=RunOut, summary="Cancel a queued or running run")
def cancel_run(project_id: str, run_id: int, session: SessionDep,
               principal: PrincipalDep) -> RunOut:
    """A queued run is cancelled at once; a running one stops at its worker's next progress
    report. Cancelling a finished run changes nothing."""
    require(principal, "owner", project_id=project_id)
    run = run_or_404(session, project_id, run_id)
    if run.state in ACTIVE_STATES:
        run.cancel_requested = True
        if run.state == "queued":
            run.state, run.stage, run.finished_at = "cancelled", "cancelled", time.time()
        record(session, actor=principal.token_id, role=principal.role, action="run.cancel",
               project_id=project_id, run_id=run_id)
        session.commit()
    return run_out(run)
