"""Worker processes: claim runs from the database and execute them, one at a time.

``pprl serve`` starts some; ``pprl worker`` runs one alone (on this or another machine that
shares the database and the data folder). A worker killed at any moment loses nothing: its
run's lease lapses and the next worker to look runs it again from its inputs.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import uuid
from types import FrameType

from .db import make_engine, migrate, session_factory
from .jobs import claim_run
from .runner import execute_run
from .settings import Settings

__all__ = ["run_worker", "worker_process_main"]

log = logging.getLogger(__name__)


def run_worker(settings: Settings, *, poll_seconds: float = 1.0, once: bool = False,
               stop: threading.Event | None = None) -> int:
    """Execute runs until ``stop`` is set (or, with ``once``, until the queue is empty);
    returns how many runs were executed."""
    settings.prepare()
    engine = make_engine(settings.database_url)
    migrate(engine)
    sessions = session_factory(engine)
    stop = stop or threading.Event()
    worker = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    log.info("worker %s ready", worker)
    executed = 0
    try:
        while not stop.is_set():
            claim = claim_run(sessions, worker, settings.lease_seconds)
            if claim is None:
                if once:
                    break
                stop.wait(poll_seconds)
                continue
            log.info("worker %s: run %s, attempt %s", worker, claim.run_id, claim.attempt)
            execute_run(settings, sessions, claim)
            executed += 1
    finally:
        engine.dispose()
    return executed


def worker_process_main(settings: Settings, poll_seconds: float) -> None:
    """Entry point of a worker process started by ``pprl serve``: stops on SIGTERM/SIGINT
    between runs (a run in progress is finished or, if the process is killed, retried)."""
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    run_worker(settings, poll_seconds=poll_seconds, stop=stop)
