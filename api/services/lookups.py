"""Lookups every service needs: a project, a run, a party's label or uploads, or NotFound."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..errors import NotFound
from ..models import ENCODINGS, LINKAGE, Job, Party, Project, Upload

__all__ = ["project_or_404", "run_or_404", "latest_finished_run", "party_labels",
           "require_party", "latest_uploads"]


def project_or_404(session: Session, project_id: str) -> Project:
    project = session.get(Project, project_id)
    if project is None:
        raise NotFound(f"no project {project_id!r}")
    return project


def run_or_404(session: Session, project_id: str, run_id: int) -> Job:
    job = session.get(Job, run_id)
    if job is None or job.project_id != project_id or job.kind != LINKAGE:
        raise NotFound(f"no run {run_id} in project {project_id!r}")
    return job


def latest_finished_run(session: Session, project_id: str) -> Job | None:
    return session.scalars(select(Job).where(Job.project_id == project_id,
                                             Job.kind == LINKAGE, Job.state == "done")
                           .order_by(Job.id.desc()).limit(1)).first()


def party_labels(session: Session, project_id: str) -> list[str]:
    return list(session.scalars(select(Party.label).where(Party.project_id == project_id)
                                .order_by(Party.position)))


def require_party(session: Session, project_id: str, party: str) -> None:
    project_or_404(session, project_id)
    if party not in party_labels(session, project_id):
        raise NotFound(f"project {project_id} has no party {party!r}")


def latest_uploads(session: Session, project_id: str, kind: str = ENCODINGS
                   ) -> dict[str, Upload]:
    """Each party's newest upload of ``kind`` (encodings, or attributes)."""
    newest = (select(Upload.party, func.max(Upload.id).label("id"))
              .where(Upload.project_id == project_id, Upload.kind == kind)
              .group_by(Upload.party).subquery())
    rows = session.scalars(select(Upload).join(newest, Upload.id == newest.c.id))
    return {u.party: u for u in rows}
