"""Worker processes: claim runs from the database and execute them, one at a time.

``pprl serve`` starts some; ``pprl worker`` runs one alone (on this or another machine that
shares the database and the data folder). A worker killed at any moment loses nothing: its
run's lease lapses and the next worker to look runs it again from its inputs.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from .db import make_engine, migrate, session_factory
from .jobs import claim_run
from .runner import execute_run
from .settings import Settings

__all__ = ["run_worker", "run_workers", "worker_process_main"]

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


def _stop_when_orphaned(parent: int, stop: threading.Event) -> None:
    """A worker of `pprl serve` stops when serve is gone, however it died."""
    while not stop.wait(1.0):
        if os.getppid() != parent:
            stop.set()


def worker_process_main(settings: Settings, poll_seconds: float,
                        parent: int | None = None) -> None:
    """Entry point of a worker process: stops on SIGTERM/SIGINT between runs (a run in
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


@contextmanager
def run_workers(settings: Settings, count: int, poll_seconds: float = 0.5) -> Iterator[None]:
    """``count`` worker processes for the duration of the block."""
    spawn = multiprocessing.get_context("spawn")
    processes = [spawn.Process(target=worker_process_main, name=f"pprl-worker-{i}",
                               args=(settings, poll_seconds, os.getpid()))
                 for i in range(count)]
    for process in processes:
        process.start()
    try:
        yield
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
