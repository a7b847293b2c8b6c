"""What /health reports: workers alive, jobs queued and running, the oldest lease.

It is asked on a thread and a database connection of its own, with a short wait for each,
so it answers while every worker thread and pooled connection of the API is taken (uploads
waiting for a lock, say) and says so quickly when the database does not answer.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tokenizer.encodings_file import tool_version

from ..db import make_engine, session_factory
from ..errors import Busy
from ..models import Job, Worker
from ..schemas import Health
from ..settings import Settings

__all__ = ["health", "HealthProbe"]

_WAIT_SECONDS = 5.0


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


class HealthProbe:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._engine = make_engine(settings.database_url, pool_size=1, max_overflow=0,
                                   pool_timeout=_WAIT_SECONDS, lock_wait=_WAIT_SECONDS)
        self._sessions = session_factory(self._engine)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pprl-health")

    def _ask(self) -> Health:
        with self._sessions() as session:
            return health(session, self._settings)

    async def report(self) -> Health:
        """The report, or Busy when the database has not answered within a few seconds."""
        asked = asyncio.get_running_loop().run_in_executor(self._thread, self._ask)
        try:
            return await asyncio.wait_for(asked, _WAIT_SECONDS)
        except TimeoutError as e:
            raise Busy(f"the database did not answer within {_WAIT_SECONDS:g} s",
                       headers={"Retry-After": "5"}) from e

    def close(self) -> None:
        self._thread.shutdown(wait=False, cancel_futures=True)
        self._engine.dispose()
