"""Lookups shared by the routers: a project or run, or a 404 naming it."""

from __future__ import annotations

import json

from fastapi import HTTPException, Request
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..models import Party, Project, Run, Upload
from ..payloads import ProjectOut, RunOut
from ..settings import Settings

__all__ = ["settings_of", "project_or_404", "run_or_404", "party_labels", "latest_uploads",
           "project_out", "run_out"]


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def project_or_404(session: Session, project_id: str) -> Project:
    project = session.get(Project, project_id)
    if project is None:
        raise HTTPException(404, f"no project {project_id!r}")
    return project


def run_or_404(session: Session, project_id: str, run_id: int) -> Run:
    run = session.get(Run, run_id)
    if run is None or run.project_id != project_id:
        raise HTTPException(404, f"no run {run_id} in project {project_id!r}")
    return run


def party_labels(session: Session, project_id: str) -> list[str]:
    return list(session.scalars(select(Party.label).where(Party.project_id == project_id)
                                .order_by(Party.position)))


def latest_uploads(session: Session, project_id: str) -> dict[str, Upload]:
    newest = (select(Upload.party, func.max(Upload.id).label("id"))
              .where(Upload.project_id == project_id).group_by(Upload.party).subquery())
    rows = session.scalars(select(Upload).join(newest, Upload.id == newest.c.id))
    return {u.party: u for u in rows}


def secret_mismatch(uploads: dict[str, str | None]) -> str | None:
    """Why parties' uploads cannot be linked together because their key check values (party
    -> value; None: cannot say) differ; None if they agree."""
    known = [(party, value) for party, value in uploads.items() if value]
    for party, value in known[1:]:
        first, first_value = known[0]
        if value != first_value:
            return (f"party {party!r} uploaded encodings made with another linkage secret "
                    f"than party {first!r} (key check values {value} and {first_value}): "
                    f"every provider must tokenize with the same secret bytes; check that "
                    f"their secret files are identical (a trailing line break in one is "
                    f"enough to differ) and upload again")
    return None


def project_out(session: Session, project: Project) -> ProjectOut:
    uploads = latest_uploads(session, project.id)
    labels = party_labels(session, project.id)
    return ProjectOut(id=project.id, name=project.name,
                      schema_fingerprint=project.schema_fingerprint,
                      bloom_filter_bits=project.bloom_filter_bits, parties=labels,
                      dedup=project.dedup, created_at=project.created_at,
                      uploads={p: uploads[p].records if p in uploads else None for p in labels})


def run_out(run: Run) -> RunOut:
    return RunOut(id=run.id, project_id=run.project_id, state=run.state,  # type: ignore[arg-type]
                  stage=run.stage, progress=run.progress, threshold=run.threshold,
                  blocking=run.blocking, attempt=run.attempt, error=run.error,
                  stats=json.loads(run.stats_json) if run.stats_json else None,
                  created_at=run.created_at, started_at=run.started_at,
                  finished_at=run.finished_at)
