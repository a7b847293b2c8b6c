"""What /health reports: workers alive, jobs queued and running, the oldest lease."""

from __future__ import annotations

import time

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tokenizer.encodings_file import tool_version

from ..models import Job, Worker
from ..schemas import Health
from ..settings import Settings

__all__ = ["health"]


def health(session: Session, settings: Settings) -> Health:
    now = time.time()
    alive = session.scalar(select(func.count()).select_from(Worker).where(
        Worker.seen_at >= now - settings.worker_seen_seconds)) or 0
    counts = dict(session.execute(select(Job.state, func.count()).where(
        Job.state.in_(("queued", "running"))).group_by(Job.state)).all())
    oldest = session.scalar(select(func.min(Job.lease_until)).where(Job.state == "running"))
    age = None if oldest is None else round(max(0.0, now - (oldest - settings.lease_seconds)), 1)
    return Health(status="ok" if alive else "no worker", version=tool_version(),
                  workers_alive=int(alive), runs_queued=int(counts.get("queued", 0)),
                  runs_running=int(counts.get("running", 0)), oldest_lease_age_s=age)
