"""Linkage runs: jobs of kind ``linkage`` on every party's latest upload, watched and
cancelled by the project's owner."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

import pyarrow.parquet as pq
from pyarrow import ArrowException
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from linker.threshold_choice import no_estimate_because
from linker.threshold_param import AUTO, within_thresholds
from linker.token_pairs import DEFAULT_TOKEN_VALUE_CAP
from tokenizer.encodings_file import declared_tokens
from tokenizer.errors import InputError

from ..deps import Principal
from ..errors import Conflict, Invalid
from ..jobs.linkage import OLDER_RUNS_SOLVER
from ..jobs.queue import enqueue
from ..models import ACTIVE_STATES, LINKAGE, Job, Upload
from ..schemas import RunCreate, RunOut
from ..security.audit import record
from .lookups import latest_uploads, party_labels, project_or_404, run_or_404
from .uploads import secret_mismatch

__all__ = ["UNSET", "create_run", "list_runs", "get_run", "cancel_run", "run_out"]

UNSET = "unset"  # threshold_choice of a run given no threshold, until the worker chooses


def run_out(job: Job) -> RunOut:
    params = json.loads(job.params_json)
    stats = json.loads(job.stats_json) if job.stats_json else None
    lapsed = job.state == "running" and job.lease_until is not None \
        and job.lease_until < time.time()
    asked = params["threshold"]
    threshold, choice, within = asked, {"method": "given"}, params.get("dedup_thresholds")
    if asked is None or asked == AUTO:  # chosen by the worker when the run starts
        chosen = stats if stats and "threshold" in stats else params.get("chosen", {})
        threshold, within = chosen.get("threshold"), chosen.get("dedup_thresholds")
        choice = chosen.get("threshold_choice", {"method": asked or UNSET})
    return RunOut(id=job.id, project_id=job.project_id, state=job.state,  # type: ignore[arg-type]
                  stage=job.stage, progress=job.progress, threshold=threshold,
                  dedup_thresholds=within, threshold_choice=choice,
                  blocking=params["blocking"], backend=params.get("backend", "cpu"),
                  solver=params.get("solver", OLDER_RUNS_SOLVER),
                  tokens=params.get("tokens", []),
                  token_value_cap=params.get("token_value_cap", DEFAULT_TOKEN_VALUE_CAP),
                  attempt=job.attempt, lease_expired=lapsed,
                  error=job.error, stats=stats,
                  created_at=job.created_at, started_at=job.started_at,
                  finished_at=job.finished_at)


def create_run(session: Session, principal: Principal, project_id: str, body: RunCreate
               ) -> RunOut:
    project = project_or_404(session, project_id)
    uploads = latest_uploads(session, project_id)
    missing = [p for p in party_labels(session, project_id) if p not in uploads]
    if missing:
        raise Conflict(f"no encodings uploaded yet by: {', '.join(missing)}")
    mismatch = secret_mismatch({p: u.key_check for p, u in uploads.items()})
    if mismatch is not None:
        raise Conflict(mismatch)
    _check_tokens(uploads, body.tokens)
    threshold = body.threshold  # None: the worker's estimate where one applies, else default
    refused = no_estimate_because([project.dedup] * len(party_labels(session, project_id)),
                                  body.blocking, body.tokens)
    if threshold == AUTO and refused is not None:
        raise Invalid(f"threshold 'auto': {refused}; give a threshold or leave the default "
                      f"and check it on a sample with known links (`pprl evaluate`)")
    within = {}
    if body.dedup_thresholds:  # refused without deduplication or with one party
        parties = party_labels(session, project_id)
        try:
            within = {"dedup_thresholds": within_thresholds(
                body.dedup_thresholds, parties, [project.dedup] * len(parties))}
        except ValueError as e:
            raise Invalid(f"dedup_thresholds: {e}") from e
    params = {"threshold": threshold, **within, "blocking": body.blocking,
              "backend": body.backend,
              "solver": body.solver, "tokens": body.tokens,
              "token_value_cap": body.token_value_cap,
              "upload_ids": sorted(u.id for u in uploads.values())}
    job = enqueue(session, project_id, LINKAGE, params)
    record(session, actor=principal.token_id, role=principal.role, action="run.create",
           project_id=project_id, run_id=job.id, **params)
    session.commit()
    return run_out(job)


def _check_tokens(uploads: dict[str, Upload], rules: Sequence[str]) -> None:
    """Every party's upload carries the token columns asked for (read from its Parquet
    footer, which the upload check validated).

    Raises:
        Conflict: naming the first party whose upload lacks one.
    """
    if not rules:
        return
    for party, upload in sorted(uploads.items()):
        try:
            metadata = pq.read_schema(upload.path).metadata or {}
            held = declared_tokens(f"party {party!r}",
                                   metadata.get(b"pprl.tokens", b"").decode())
        except (OSError, ArrowException, InputError, UnicodeDecodeError) as e:
            raise Conflict(f"party {party!r}: its latest upload cannot be read for its "
                           f"tokens; upload it again") from e
        lacking = [rule for rule in rules if rule not in held]
        if lacking:
            raise Conflict(f"party {party!r}: its latest upload carries no token "
                           f"{','.join(lacking)} (its tokens: {','.join(held) or 'none'}); "
                           f"upload encodings made with `pprl tokenize --with-tokens`, or "
                           f"run without these tokens")


def list_runs(session: Session, project_id: str) -> list[RunOut]:
    project_or_404(session, project_id)
    return [run_out(j) for j in session.scalars(
        select(Job).where(Job.project_id == project_id, Job.kind == LINKAGE).order_by(Job.id))]


def get_run(session: Session, project_id: str, run_id: int) -> RunOut:
    return run_out(run_or_404(session, project_id, run_id))


def cancel_run(session: Session, principal: Principal, project_id: str, run_id: int
               ) -> RunOut:
    """A queued run is cancelled at once; a running one stops at its worker's next progress
    report. Cancelling a finished run changes nothing."""
    job = run_or_404(session, project_id, run_id)
    if job.state in ACTIVE_STATES:
        # Guarded updates, not the row as read: a worker may claim the run between the read
        # and the write, and "cancelled" written over its claim let it run to the end.
        session.execute(update(Job).where(Job.id == job.id).values(cancel_requested=True))
        session.execute(update(Job).where(Job.id == job.id, Job.state == "queued").values(
            state="cancelled", stage="cancelled", finished_at=time.time()))
        record(session, actor=principal.token_id, role=principal.role, action="run.cancel",
               project_id=project_id, run_id=run_id)
        session.commit()
        session.refresh(job)
    return run_out(job)
