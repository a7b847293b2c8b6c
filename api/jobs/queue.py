"""The job queue in the database: claiming, heartbeats, finishing, and worker presence.

A worker claims a queued job of any kind, or a running one whose lease lapsed (its worker
died), with a compare-and-set on ``attempt``; on PostgreSQL the candidate row is first locked
with ``FOR UPDATE SKIP LOCKED`` so concurrent workers pass over each other instead of
waiting. Every later write names the attempt, so a worker that lost its job cannot overwrite
it. Workers also record that they are alive (``workers``), which /health counts.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from ..models import Job, Worker
from ..security.audit import record

__all__ = ["enqueue", "Claim", "MAX_ATTEMPTS", "claim_job", "heartbeat", "note_params",
           "finish_job", "worker_alive", "worker_gone"]

# A job whose workers died this many times is failed rather than retried for ever.
MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class Claim:
    job_id: int
    kind: str
    attempt: int
    worker: str


def _claimable(now: float) -> Any:
    return or_(Job.state == "queued", and_(Job.state == "running", Job.lease_until < now))


def enqueue(session: Session, project_id: str, kind: str, params: dict[str, Any]) -> Job:
    """A new queued job of ``kind`` (flushed, so it has its id), in the caller's
    transaction."""
    job = Job(project_id=project_id, kind=kind, state="queued", stage="queued", progress=0.0,
              attempt=0, cancel_requested=False, params_json=json.dumps(params))
    session.add(job)
    session.flush()
    return job


def claim_job(sessions: sessionmaker[Session], worker: str, lease_seconds: float
              ) -> Claim | None:
    """The next job this worker should execute, or None when there is none."""
    while True:
        with sessions.begin() as session:
            now = time.time()
            row = session.execute(
                select(Job.id, Job.kind, Job.attempt, Job.state, Job.cancel_requested)
                .where(_claimable(now)).order_by(Job.id).limit(1)
                .with_for_update(skip_locked=True)).first()
            if row is None:
                return None
            guard = (Job.id == row.id, Job.attempt == row.attempt, _claimable(now))
            if row.cancel_requested or row.attempt >= MAX_ATTEMPTS:
                state, error = (("cancelled", None) if row.cancel_requested else
                                ("failed", f"its worker stopped {row.attempt} times without "
                                           f"finishing (killed, or out of memory?); the "
                                           f"service log says more"))
                ended = session.execute(update(Job).where(*guard).values(
                    state=state, stage=state, error=error, finished_at=now, lease_until=None))
                if ended.rowcount == 1:  # type: ignore[attr-defined]
                    _audit(session, row.id, f"job.{state}", worker, error)
                continue
            claimed = session.execute(update(Job).where(*guard).values(
                state="running", attempt=row.attempt + 1, worker=worker,
                lease_until=now + lease_seconds, started_at=now, stage="loading",
                progress=0.0))
            if claimed.rowcount == 1:  # type: ignore[attr-defined]
                _audit(session, row.id, "job.start" if row.attempt == 0 else "job.retry",
                       worker)
                return Claim(row.id, row.kind, row.attempt + 1, worker)


def still_holds(sessions: sessionmaker[Session], claim: Claim) -> bool:
    """Whether this attempt still holds its job: asked of the database right before a worker
    replaces files, since a worker frozen past its lease (a paused VM) resumes before its
    heartbeat can tell it that another attempt took over."""
    with sessions() as session:
        return session.scalar(select(Job.id).where(
            Job.id == claim.job_id, Job.attempt == claim.attempt,
            Job.state == "running")) is not None


def heartbeat(sessions: sessionmaker[Session], claim: Claim, lease_seconds: float,
              stage: str, progress: float) -> tuple[bool, bool]:
    """Extend the lease and report progress: (still ours, cancel requested)."""
    with sessions.begin() as session:
        now = time.time()
        result = session.execute(
            update(Job).where(Job.id == claim.job_id, Job.attempt == claim.attempt,
                              Job.state == "running")
            .values(lease_until=now + lease_seconds, stage=stage,
                    progress=round(progress, 4)))
        ours = result.rowcount == 1  # type: ignore[attr-defined]
        cancel = bool(session.scalar(select(Job.cancel_requested)
                                     .where(Job.id == claim.job_id)))
        _seen(session, claim.worker, now)
    return ours, cancel


def note_params(sessions: sessionmaker[Session], claim: Claim, **values: Any) -> bool:
    """Add ``values`` to the job's params while this attempt runs it (what it decided on the
    way, shown even if it fails later); False if the job is no longer this attempt's."""
    with sessions.begin() as session:
        job = session.get(Job, claim.job_id)
        if job is None or job.attempt != claim.attempt or job.state != "running":
            return False
        job.params_json = json.dumps({**json.loads(job.params_json or "{}"), **values})
        return True


def finish_job(sessions: sessionmaker[Session], claim: Claim, state: str, *,
               stats: dict[str, Any] | None = None, error: str | None = None) -> bool:
    """Record the outcome if the job is still this attempt's; False if it is not."""
    with sessions.begin() as session:
        result = session.execute(
            update(Job).where(Job.id == claim.job_id, Job.attempt == claim.attempt,
                              Job.state == "running")
            .values(state=state, stage=state, progress=1.0 if state == "done" else Job.progress,
                    stats_json=json.dumps(stats) if stats is not None else None,
                    error=error, finished_at=time.time(), lease_until=None))
        if result.rowcount != 1:  # type: ignore[attr-defined]
            return False
        _audit(session, claim.job_id, f"job.{state}", claim.worker, error)
        return True


def _audit(session: Session, job_id: int, action: str, worker: str,
           error: str | None = None) -> None:
    """A job's start (``job.start``; ``job.retry`` when an earlier attempt's worker died) and
    end (``job.done``, ``job.failed``, ``job.cancelled``) in the project's audit log, in the
    transaction that records it. Job errors name parties and problems, never values or
    server paths, so the message is kept."""
    job = session.get_one(Job, job_id)
    params = json.loads(job.params_json or "{}")
    detail: dict[str, Any] = {"job_id": job.id, "kind": job.kind, "attempt": job.attempt}
    if "request_id" in params:
        detail["request_id"] = params["request_id"]
    if error:
        detail["error"] = error
    record(session, actor=worker, role="worker", action=action, project_id=job.project_id,
           **detail)


def _seen(session: Session, worker: str, now: float) -> None:
    updated = session.execute(update(Worker).where(Worker.id == worker).values(seen_at=now))
    if updated.rowcount == 0:  # type: ignore[attr-defined]
        session.add(Worker(id=worker, started_at=now, seen_at=now))


def worker_alive(sessions: sessionmaker[Session], worker: str) -> None:
    """Record that ``worker`` is alive (it does so while idle and with every heartbeat)."""
    with sessions.begin() as session:
        _seen(session, worker, time.time())


def worker_gone(sessions: sessionmaker[Session], worker: str) -> None:
    """A worker stopping cleanly removes itself; a killed one just stops being seen."""
    with sessions.begin() as session:
        session.execute(delete(Worker).where(Worker.id == worker))
