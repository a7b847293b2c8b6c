"""The worker processes of ``pprl serve``, supervised: one that dies, for any reason
(SIGKILL, out of memory, a crash), is replaced within seconds, and the job it held is
retried by a worker once its lease lapses.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.process import BaseProcess

from ..settings import Settings
from .worker import worker_process_main

__all__ = ["Supervisor", "supervised_workers"]

log = logging.getLogger(__name__)

_CHECK_SECONDS = 0.5
# A worker that keeps dying right after it starts is restarted at most this often.
_MIN_RESTART_SECONDS = 2.0


class Supervisor:
    """Keeps ``count`` worker processes alive until :meth:`stop`."""

    def __init__(self, settings: Settings, count: int, poll_seconds: float) -> None:
        self._settings = settings
        self._poll = poll_seconds
        self._spawn = multiprocessing.get_context("spawn")
        self._processes: list[BaseProcess | None] = [None] * count
        self._started: list[float] = [0.0] * count
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="pprl-supervisor",
                                        daemon=True)

    def _start(self, slot: int) -> None:
        process = self._spawn.Process(target=worker_process_main, name=f"pprl-worker-{slot}",
                                      args=(self._settings, self._poll, os.getpid()))
        process.start()
        self._processes[slot] = process
        self._started[slot] = time.monotonic()

    def start(self) -> None:
        for slot in range(len(self._processes)):
            self._start(slot)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stopping.wait(_CHECK_SECONDS):
            for slot, process in enumerate(self._processes):
                if process is None or process.is_alive() or self._stopping.is_set():
                    continue
                if time.monotonic() - self._started[slot] < _MIN_RESTART_SECONDS:
                    continue  # crash loop: give it a moment
                log.warning("worker %s (pid %s) stopped with exit code %s; starting another",
                            process.name, process.pid, process.exitcode)
                self._start(slot)

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        processes = [p for p in self._processes if p is not None]
        for process in processes:
            process.terminate()
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()


@contextmanager
def supervised_workers(settings: Settings, count: int, poll_seconds: float = 0.5
                       ) -> Iterator[None]:
    """``count`` supervised worker processes for the duration of the block."""
    if count <= 0:
        yield
        return
    supervisor = Supervisor(settings, count, poll_seconds)
    supervisor.start()
    try:
        yield
    finally:
        supervisor.stop()
