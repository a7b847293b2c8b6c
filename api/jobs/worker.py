"""Worker processes: claim jobs from the database and execute them, one at a time.

``pprl serve`` starts and supervises some; ``pprl worker`` runs one alone (on this or another
machine that shares the database and the data folder). A worker killed at any moment loses
nothing: its job's lease lapses and the next worker to look runs it again from its inputs.
No exception of a job ends a worker: the job fails with a message for its owner, and the
worker takes the next one.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
import threading
import time
import uuid
from types import FrameType
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from ..db import make_engine, migrate, session_factory
from ..settings import Settings
from .kinds import JobContext, JobControl, JobInputError, JobStopped, executor_for
from .queue import Claim, claim_job, finish_job, heartbeat, worker_alive, worker_gone

__all__ = ["run_worker", "execute_job", "worker_process_main"]

log = logging.getLogger(__name__)
# Storage errors a data manager can act on, said as such (not "an unexpected error").
_STORAGE_ERRORS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "a disk quota is used up",
                   errno.EROFS: "the file system is read-only",
                   errno.EACCES: "permission denied"}



def _unexpected(kind: str, job_id: int) -> str:
    """The owner's message for an error nobody foresaw; the traceback goes to the log only."""
    reference = uuid.uuid4().hex[:8]
    log.exception("job %s: unexpected error, reference %s", job_id, reference)
    return (f"an unexpected error stopped this {kind} job (reference {reference} in the "
            f"service log); it is not retried")


def _os_error(error: OSError, kind: str, job_id: int) -> str:
    """A full disk, a read-only folder or denied permissions said as such, since the data
    manager can act on them; any other OSError as unexpected."""
    if error.errno not in _STORAGE_ERRORS:
        return _unexpected(kind, job_id)
    message = (f"the service's storage refused this {kind} job's files "
               f"({_STORAGE_ERRORS[error.errno]}); free space or fix the data folder's "
               f"permissions, then start it again")
    log.error("job %s: %s", job_id, message, exc_info=error)
    return message

def _beat(sessions: sessionmaker[Session], claim: Claim, lease: float, control: JobControl
          ) -> None:
    # often enough for live progress, and well inside the lease
    while not control.done.wait(min(lease / 3, 2.0)):
        try:
            ours, cancel = heartbeat(sessions, claim, lease, control.stage, control.progress)
        except Exception:  # a database hiccup: try again next beat, the lease has slack
            log.warning("job %s: heartbeat failed", claim.job_id, exc_info=True)
            continue
        if not ours:
            control.lost.set()
        if cancel:
            control.cancelled.set()


def execute_job(settings: Settings, sessions: sessionmaker[Session], claim: Claim,
                fail_at: str = "") -> str:
    """Run a claimed job to its end; returns the state recorded ("lost" if another worker
    holds it now). Never raises for what the job does (``fail_at``: see JobControl)."""
    control = JobControl(settings.pause_at_stage, settings.pause_seconds, fail_at)
    beat = threading.Thread(target=_beat, name=f"pprl-heartbeat-{claim.job_id}", daemon=True,
                            args=(sessions, claim, settings.lease_seconds, control))
    beat.start()
    started = time.perf_counter()
    stats: dict[str, Any] | None = None
    error: str | None = None
    try:
        stats = executor_for(claim.kind)(JobContext(settings, sessions, claim, control))
        state = "done"
    except JobStopped:
        state = "cancelled"
    except JobInputError as e:
        state, error = "failed", str(e)
        log.warning("job %s failed: %s", claim.job_id, error)
    except OSError as e:
        state, error = "failed", _os_error(e, claim.kind, claim.job_id)
    except Exception:
        state, error = "failed", _unexpected(claim.kind, claim.job_id)
    finally:
        control.done.set()
        beat.join()
    if control.lost.is_set():
        log.warning("job %s: lease lost to another worker; result left to it", claim.job_id)
        return "lost"
    if stats is not None:
        stats["worker_seconds"] = round(time.perf_counter() - started, 3)
    finish_job(sessions, claim, state, stats=stats, error=error)
    log.info("job %s: %s", claim.job_id, state)
    return state


def run_worker(settings: Settings, *, poll_seconds: float = 1.0, once: bool = False,
               stop: threading.Event | None = None) -> int:
    """Execute jobs until ``stop`` is set (or, with ``once``, until the queue is empty);
    returns how many jobs were executed."""
    settings.prepare()
    engine = make_engine(settings.database_url)
    migrate(engine)
    sessions = session_factory(engine)
    stop = stop or threading.Event()
    worker = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"[:64]
    log.info("worker %s ready", worker)
    executed = 0
    try:
        while not stop.is_set():
            try:
                worker_alive(sessions, worker)
                claim = claim_job(sessions, worker, settings.lease_seconds)
            except Exception:  # the database is away for a moment: wait and look again
                log.warning("worker %s: cannot reach the job queue", worker, exc_info=True)
                stop.wait(poll_seconds)
                continue
            if claim is None:
                if once:
                    break
                stop.wait(poll_seconds)
                continue
            log.info("worker %s: job %s (%s), attempt %s", worker, claim.job_id, claim.kind,
                     claim.attempt)
            execute_job(settings, sessions, claim,
                        fail_at=settings.fail_at_stage if executed == 0 else "")
            executed += 1
    finally:
        try:
            worker_gone(sessions, worker)
        except Exception:
            log.warning("worker %s: could not sign off", worker, exc_info=True)
        engine.dispose()
    return executed


def _stop_when_orphaned(parent: int, stop: threading.Event) -> None:
    """A worker of `pprl serve` stops when serve is gone, however it died."""
    while not stop.wait(1.0):
        if os.getppid() != parent:
            stop.set()


def worker_process_main(settings: Settings, poll_seconds: float,
                        parent: int | None = None) -> None:
    """Entry point of a worker process: stops on SIGTERM/SIGINT between jobs (a job in
    progress is finished or, if the process is killed, retried), and, when ``parent`` is
    given, once that process has gone."""
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if parent is not None:
        threading.Thread(target=_stop_when_orphaned, args=(parent, stop), daemon=True,
                         name="pprl-orphan-watch").start()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    run_worker(settings, poll_seconds=poll_seconds, stop=stop)
