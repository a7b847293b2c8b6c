"""The ``linkage`` job: load the parties' uploads, link them, write the results.

Uploads were checked when they arrived, but a file that still cannot be read (or an
upload made before the checks existed) fails the run once, naming the party and the upload,
never a server path.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from linker.backends import Backend, BackendUnavailableError, get_backend
from linker.blocking import LshBlocking
from linker.candidate_memory import run_memory_problem
from linker.clkset import ClkSet, LinkageInputError
from linker.link_streamed import link_on
from linker.solver_names import Solver
from linker.threshold_choice import (
    ThresholdChoice,
    choose_threshold,
    estimate_threshold,
    no_estimate_because,
)
from linker.threshold_param import AUTO
from linker.token_pairs import DEFAULT_TOKEN_VALUE_CAP
from tokenizer.encodings_file import read_encodings
from tokenizer.errors import TokenizerError
from tokenizer.parallel import default_workers

from ..models import LINKAGE, Job, Party, Project, Upload
from ..results_store import run_folder, write_run_results
from ..settings import Settings
from .kinds import JobContext, JobInputError, register
from .queue import note_params

log = logging.getLogger(__name__)

__all__ = ["execute_linkage", "OLDER_RUNS_SOLVER"]

# Runs queued before the `solver` option existed were solved by what is now `greedy`.
OLDER_RUNS_SOLVER: Solver = "greedy"


def _load(session: Session, job: Job, params: dict[str, Any]
          ) -> tuple[Project, list[ClkSet], list[bool]]:
    project = session.get_one(Project, job.project_id)
    parties = session.scalars(select(Party).where(Party.project_id == project.id)
                              .order_by(Party.position)).all()
    uploads = {u.party: u for u in session.scalars(
        select(Upload).where(Upload.id.in_(params["upload_ids"])))}
    sets = []
    for party in parties:
        upload = uploads.get(party.label)
        if upload is None or upload.deleted_at is not None:
            raise JobInputError(f"party {party.label!r}: the upload this run uses is gone")
        where = f"party {party.label!r} upload {upload.id}"
        try:
            data = read_encodings(Path(upload.path))
            sets.append(ClkSet.from_encodings(data, where, party.label))
        except (TokenizerError, OSError, ValueError, TypeError) as e:
            message = str(e).replace(upload.path, "the file")
            raise JobInputError(f"{where} cannot be linked: {message}") from e
    return project, sets, [project.dedup] * len(sets)


def _backend(name: str, settings: Settings) -> Backend:
    """The run's backend: CPU threads, the service's Dask cluster (or a local one), a GPU."""
    try:
        if name == "cpu":
            return get_backend("cpu", workers=default_workers())
        if name == "dask":
            return get_backend("dask", scheduler=settings.dask_scheduler or None,
                               shared_dir=settings.data_dir / "dask-tiles",
                               workers=default_workers())
        return get_backend(name)
    except BackendUnavailableError as e:
        raise JobInputError(f"this worker cannot run backend {name!r}: {e}") from e


@register(LINKAGE)
def execute_linkage(context: JobContext) -> dict[str, Any]:
    control, claim = context.control, context.claim
    with context.sessions() as session:
        job = session.get_one(Job, claim.job_id)
        params = json.loads(job.params_json)
        project, sets, dedup = _load(session, job, params)
    control.check()
    total = sum(len(sets[i]) * len(sets[j]) for i in range(len(sets))
                for j in range(i, len(sets)) if i != j or dedup[i])

    threshold = params["threshold"]  # None: the estimate where one applies, else the default
    tokens = params.get("tokens", [])
    estimating = threshold == AUTO or (threshold is None and no_estimate_because(
        dedup, params["blocking"], tokens) is None)
    # An estimate searches first (every pair of parties at Dice 0.5, or a deduplicated party
    # within itself from 0.58): about as long as linking.
    start = 0.45 if estimating else 0.05

    def progress(_rows: int, pairs_so_far: int) -> None:
        share = min(pairs_so_far / max(total, 1), 1.0)
        control.report("matching", start + (0.9 - start) * share)

    try:
        with _backend(params.get("backend", "cpu"), context.settings) as backend:
            def estimated(share: float) -> None:
                control.report("estimating", 0.02 + (start - 0.02) * share)

            if estimating:
                control.report("estimating", 0.02)
            if threshold == AUTO:
                chosen = _estimate(sets, dedup, backend, estimated)
            elif threshold is None:
                chosen = choose_threshold(sets, dedup, params["blocking"], tokens, backend,
                                          estimated)
            else:
                chosen = ThresholdChoice(threshold, {"method": "given"}, "",
                                         params.get("dedup_thresholds"))
            if chosen.record["method"] != "given":  # shown by the run even if it fails later
                note_params(context.sessions, claim, chosen=chosen.recorded())
            solver = params.get("solver", OLDER_RUNS_SOLVER)
            problem = run_memory_problem(backend, sets, chosen.threshold, dedup,
                                         blocked=bool(params["blocking"]), tokens=tokens,
                                         solver=solver, dedup_thresholds=chosen.within(sets),
                                         limit=context.settings.run_memory_bytes or None)
            if problem is not None and problem.refused:
                raise JobInputError(problem.message)
            if problem is not None:
                log.warning("run %s: %s", job.id, problem.message)
            control.report("matching", start)
            result = link_on(backend, sets, chosen.threshold, dedup=dedup,
                             blocking=LshBlocking() if params["blocking"] else None,
                             progress=progress, tokens=tokens,
                             token_value_cap=params.get("token_value_cap",
                                                        DEFAULT_TOKEN_VALUE_CAP),
                             solver=solver, dedup_thresholds=chosen.within(sets))
    except LinkageInputError as e:
        raise JobInputError(str(e)) from e
    control.report("writing", 0.9)
    info = {"project_id": project.id, "run_id": job.id, **chosen.recorded(),
            "blocking": params["blocking"], **backend.describe(),
            "solver": params.get("solver", OLDER_RUNS_SOLVER),
            "token_rules": tokens,
            "schema_fingerprint": project.schema_fingerprint,
            "inputs": [{"party": s.party, "records": len(s)} for s in sets],
            "entities": result.entity_count}
    folder = run_folder(context.settings.runs_dir, project.id, job.id)
    write_run_results(folder, result, info, context.settings.service_key(), project.id,
                      claim.attempt, on_staged=lambda: control.report("indexing", 0.95),
                      before_publish=context.ensure_held)
    return {**result.stats, "entities": result.entity_count,
            "records": sum(len(s) for s in sets),
            **(chosen.recorded() if chosen.record["method"] != "given" else {})}


def _estimate(sets: list[ClkSet], dedup: list[bool], backend: Backend,
              progress: Callable[[float], None]) -> ThresholdChoice:
    """The threshold(s) the data suggests (``--threshold auto``) and what to record of it."""
    try:
        return estimate_threshold(sets, dedup, backend, progress)
    except ValueError as e:  # too few scores to fit, or too many pairs to hold
        raise JobInputError(f"threshold 'auto': {e}; give a threshold") from e
