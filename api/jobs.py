"""The run queue in the database: claiming, heartbeats, finishing.

A worker claims a queued run, or a running one whose lease lapsed (its worker died), with a
compare-and-set on ``attempt``; on PostgreSQL the candidate row is first locked with
``FOR UPDATE SKIP LOCKED`` so concurrent workers pass over each other instead of waiting.
Every later write names the attempt, so a worker that lost its run cannot overwrite it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from .models import Run

__all__ = ["Claim", "MAX_ATTEMPTS", "claim_run", "heartbeat", "finish_run"]

# A run whose workers died this many times is failed rather than retried for ever.
MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class Claim:
    run_id: int
    attempt: int
    worker: str


def _claimable(now: float) -> Any:
    return or_(Run.state == "queued", and_(Run.state == "running", Run.lease_until < now))


def claim_run(sessions: sessionmaker[Session], worker: str, lease_seconds: float
              ) -> Claim | None:
    """The next run this worker should execute, or None when there is none."""
    while True:
        with sessions.begin() as session:
            now = time.time()
            row = session.execute(
                select(Run.id, Run.attempt, Run.state, Run.cancel_requested)
                .where(_claimable(now)).order_by(Run.id).limit(1)
                .with_for_update(skip_locked=True)).first()
            if row is None:
                return None
            guard = (Run.id == row.id, Run.attempt == row.attempt, _claimable(now))
            if row.cancel_requested or row.attempt >= MAX_ATTEMPTS:
                state, error = (("cancelled", None) if row.cancel_requested else
                                ("failed", f"its worker stopped {row.attempt} times "
                                           f"without finishing"))
                session.execute(update(Run).where(*guard).values(
                    state=state, error=error, finished_at=now, lease_until=None))
                continue
            claimed = session.execute(update(Run).where(*guard).values(
                state="running", attempt=row.attempt + 1, worker=worker,
                lease_until=now + lease_seconds, started_at=now, stage="loading",
                progress=0.0))
            if claimed.rowcount == 1:  # type: ignore[attr-defined]
                return Claim(row.id, row.attempt + 1, worker)


def heartbeat(sessions: sessionmaker[Session], claim: Claim, lease_seconds: float,
              stage: str, progress: float) -> tuple[bool, bool]:
    """Extend the lease and report progress: (still ours, cancel requested)."""
    with sessions.begin() as session:
        result = session.execute(
            update(Run).where(Run.id == claim.run_id, Run.attempt == claim.attempt,
                              Run.state == "running")
            .values(lease_until=time.time() + lease_seconds, stage=stage,
                    progress=round(progress, 4)))
        ours = result.rowcount == 1  # type: ignore[attr-defined]
        cancel = bool(session.scalar(select(Run.cancel_requested)
                                     .where(Run.id == claim.run_id)))
    return ours, cancel


def finish_run(sessions: sessionmaker[Session], claim: Claim, state: str, *,
               stats: dict[str, Any] | None = None, error: str | None = None) -> bool:
    """Record the outcome if the run is still this attempt's; False if it is not."""
    with sessions.begin() as session:
        result = session.execute(
            update(Run).where(Run.id == claim.run_id, Run.attempt == claim.attempt,
                              Run.state == "running")
            .values(state=state, stage=state, progress=1.0 if state == "done" else Run.progress,
                    stats_json=json.dumps(stats) if stats is not None else None,
                    error=error, finished_at=time.time(), lease_until=None))
        return result.rowcount == 1  # type: ignore[attr-defined]
