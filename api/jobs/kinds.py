"""Job kinds and what executes them: one queue, leases, retries and supervision for all.

An executor gets a :class:`JobContext` and returns the job's stats. It reports its stage and
progress through ``context.control`` and calls ``control.check()`` often: that is where a
cancellation or a lost lease stops it. It raises :class:`JobInputError` for inputs that can
never work (the job fails once with that message, naming the party and the problem, and is
not retried); any other exception fails the job with a message that hides internals.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from ..settings import Settings
from .queue import Claim

__all__ = ["JobContext", "JobControl", "JobInputError", "JobStopped", "Executor",
           "register", "executor_for"]


class JobInputError(Exception):
    """The job's inputs cannot work; the message is for the project's owner (it names the
    party and the problem, never a server path)."""


class JobStopped(Exception):
    """Raised inside a job when it was cancelled or is no longer this worker's."""


class JobControl:
    """Stage and progress shared between a job and its heartbeat thread.

    Fault-injection tests only: ``pause_at`` (stages, comma-separated) makes the job wait
    ``pause_seconds`` each time it enters one of them; entering ``fail_at`` raises an
    unexpected error (RuntimeError)."""

    def __init__(self, pause_at: str = "", pause_seconds: float = 0.0,
                 fail_at: str = "") -> None:
        self.stage, self.progress = "loading", 0.0
        self.cancelled = threading.Event()
        self.lost = threading.Event()
        self.done = threading.Event()
        self._pause_at = {s.strip() for s in pause_at.split(",") if s.strip()}
        self._pause_seconds = pause_seconds
        self._fail_at = fail_at.strip()

    def report(self, stage: str, progress: float) -> None:
        if stage == self._fail_at:
            raise RuntimeError(f"fault injected on entering stage {stage!r}")
        if stage in self._pause_at and self.stage != stage:
            self.stage, self.progress = stage, progress
            self.done.wait(self._pause_seconds)
        self.stage, self.progress = stage, progress
        self.check()

    def check(self) -> None:
        if self.cancelled.is_set() or self.lost.is_set():
            raise JobStopped


@dataclass(frozen=True)
class JobContext:
    settings: Settings
    sessions: sessionmaker[Session]
    claim: Claim
    control: JobControl

    def ensure_held(self) -> None:
        """Stop (JobStopped) unless this attempt still holds the job, asked of the database:
        before a step that replaces files another attempt may be writing."""
        from .queue import still_holds

        self.control.check()
        if not still_holds(self.sessions, self.claim):
            self.control.lost.set()
            raise JobStopped


Executor = Callable[[JobContext], dict[str, Any]]
_EXECUTORS: dict[str, Executor] = {}


def register(kind: str) -> Callable[[Executor], Executor]:
    """Register the executor of ``kind`` (a decorator)."""
    def add(executor: Executor) -> Executor:
        _EXECUTORS[kind] = executor
        return executor
    return add


def executor_for(kind: str) -> Executor:
    from . import cohort_export, linkage  # noqa: F401 - register their kinds

    if kind not in _EXECUTORS:
        raise JobInputError(f"this service cannot execute jobs of kind {kind!r}")
    return _EXECUTORS[kind]
