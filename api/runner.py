"""Executing one claimed run: load the parties' latest uploads, link, write the results.

A heartbeat thread keeps the lease and publishes stage and progress; the matching loop's
progress callback is where cancellation (or losing the lease) stops the work.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from linker.blocking import LshBlocking
from linker.clkset import ClkSet, LinkageInputError
from linker.link import link_sets
from linker.similarity import CpuBackend
from tokenizer.encodings_file import read_encodings
from tokenizer.errors import TokenizerError
from tokenizer.parallel import default_workers

from .jobs import Claim, finish_run, heartbeat
from .models import Party, Project, Run, Upload
from .run_results import run_folder, write_run_results
from .settings import Settings

__all__ = ["execute_run"]

log = logging.getLogger(__name__)


class RunStopped(Exception):
    """Raised inside the matching loop when the run is cancelled or no longer ours."""


class _Control:
    """Stage and progress shared between the run and its heartbeat thread."""

    def __init__(self) -> None:
        self.stage, self.progress = "loading", 0.0
        self.cancelled = threading.Event()
        self.lost = threading.Event()
        self.done = threading.Event()

    def check(self) -> None:
        if self.cancelled.is_set() or self.lost.is_set():
            raise RunStopped


def _beat(sessions: sessionmaker[Session], claim: Claim, lease: float, control: _Control
          ) -> None:
    # often enough for live progress, and well inside the lease
    while not control.done.wait(min(lease / 3, 2.0)):
        try:
            ours, cancel = heartbeat(sessions, claim, lease, control.stage, control.progress)
        except Exception:  # a database hiccup: try again next beat, the lease has slack
            log.warning("run %s: heartbeat failed", claim.run_id, exc_info=True)
            continue
        if not ours:
            control.lost.set()
        if cancel:
            control.cancelled.set()


def _load(session: Session, run: Run) -> tuple[Project, list[ClkSet], list[bool]]:
    project = session.get_one(Project, run.project_id)
    parties = session.scalars(select(Party).where(Party.project_id == project.id)
                              .order_by(Party.position)).all()
    uploads = {u.party: u for u in session.scalars(
        select(Upload).where(Upload.id.in_(json.loads(run.upload_ids))))}
    sets = []
    for party in parties:
        upload = uploads[party.label]
        data = read_encodings(Path(upload.path))
        sets.append(ClkSet.from_encodings(data, f"{party.label} upload {upload.id}",
                                          party.label))
    return project, sets, [project.dedup] * len(sets)


def _link(settings: Settings, sessions: sessionmaker[Session], claim: Claim,
          control: _Control) -> dict[str, Any]:
    with sessions() as session:
        run = session.get_one(Run, claim.run_id)
        project, sets, dedup = _load(session, run)
    control.check()
    total = sum(len(sets[i]) * len(sets[j]) for i in range(len(sets))
                for j in range(i, len(sets)) if i != j or dedup[i])

    def progress(_rows: int, pairs_so_far: int) -> None:
        control.progress = 0.05 + 0.85 * min(pairs_so_far / max(total, 1), 1.0)
        control.check()

    control.stage, control.progress = "matching", 0.05
    result = link_sets(sets, run.threshold, dedup=dedup,
                       backend=CpuBackend(default_workers()),
                       blocking=LshBlocking() if run.blocking else None, progress=progress)
    control.check()
    control.stage, control.progress = "writing", 0.9
    info = {"project_id": project.id, "run_id": run.id, "threshold": run.threshold,
            "blocking": run.blocking, "schema_fingerprint": project.schema_fingerprint,
            "inputs": [{"party": s.party, "records": len(s)} for s in sets],
            "entities": result.entity_count}
    folder = run_folder(settings.runs_dir, project.id, run.id)
    write_run_results(folder, result, info, settings.service_key(), project.id,
                      claim.attempt)
    return {**result.stats, "entities": result.entity_count,
            "records": sum(len(s) for s in sets)}


def execute_run(settings: Settings, sessions: sessionmaker[Session], claim: Claim) -> str:
    """Run a claimed run to its end; returns the state recorded."""
    control = _Control()
    beat = threading.Thread(target=_beat, name=f"pprl-heartbeat-{claim.run_id}", daemon=True,
                            args=(sessions, claim, settings.lease_seconds, control))
    beat.start()
    started = time.perf_counter()
    try:
        stats = _link(settings, sessions, claim, control)
        state, error = "done", None
    except RunStopped:
        stats, state, error = None, "cancelled", None
    except (TokenizerError, LinkageInputError, OSError, KeyError) as e:
        stats, state, error = None, "failed", f"{type(e).__name__}: {e}"
        log.warning("run %s failed: %s", claim.run_id, error)
    finally:
        control.done.set()
        beat.join()
    if control.lost.is_set():
        log.warning("run %s: lease lost to another worker; result left to it", claim.run_id)
        return "lost"
    if stats is not None:
        stats["worker_seconds"] = round(time.perf_counter() - started, 3)
    finish_run(sessions, claim, state, stats=stats, error=error)
    log.info("run %s: %s", claim.run_id, state)
    return state
