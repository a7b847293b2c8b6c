"""Database tables (SQLAlchemy 2). The schema itself is created by Alembic migrations.

Tokens are stored as SHA-256 hashes of their secret part only; audit events name the token
id (not secret) that acted, never a token. Jobs (linkage runs, and the cohort and risk-report
jobs to come) share one queue table; ``kind`` says which executor runs them.
"""

from __future__ import annotations

import time

from sqlalchemy import Boolean, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["Base", "AdminToken", "Project", "Party", "ProjectToken", "Upload", "Job",
           "Worker", "CohortRequest", "AuditEvent", "ACTIVE_STATES", "LINKAGE",
           "COHORT_EXPORT", "ENCODINGS", "ATTRIBUTES"]

ACTIVE_STATES = ("queued", "running")
LINKAGE = "linkage"  # the job kind of a linkage run
COHORT_EXPORT = "cohort_export"  # the job kind of an approved cohort request
RISK_REPORT = "risk_report"  # the job kind of a re-run of an export's risk report
ENCODINGS, ATTRIBUTES = "encodings", "attributes"  # what an upload holds


def _now() -> float:
    return time.time()


class Base(DeclarativeBase):
    pass


class _TokenLifetime:
    """When a token was last used, when it expires and whether it was revoked (epoch s)."""

    last_used_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class AdminToken(_TokenLifetime, Base):
    __tablename__ = "admin_tokens"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[float] = mapped_column(Float, default=_now)


class Project(Base):
    __tablename__ = "projects"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    schema_json: Mapped[str] = mapped_column(Text)
    schema_fingerprint: Mapped[str] = mapped_column(String(64))
    bloom_filter_bits: Mapped[int] = mapped_column(Integer)
    dedup: Mapped[bool] = mapped_column(Boolean, default=False)
    # Cohort counts below this are suppressed (11: the CMS cell-size rule).
    min_cell: Mapped[int] = mapped_column(Integer, default=11)
    # What a cohort export must meet before it is released (schemas.RiskPolicy as JSON).
    risk_policy_json: Mapped[str] = mapped_column(Text, default="{}")
    created_at: Mapped[float] = mapped_column(Float, default=_now)


class Party(Base):
    __tablename__ = "parties"
    __table_args__ = (UniqueConstraint("project_id", "label"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    label: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(Integer)


class ProjectToken(_TokenLifetime, Base):
    """role: owner (the data manager), upload (one party's provider), reader (one party's
    results, made by the owner for whoever receives them), researcher (counts and requests
    cohorts; no party)."""

    __tablename__ = "project_tokens"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    party: Mapped[str | None] = mapped_column(String(64), nullable=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[float] = mapped_column(Float, default=_now)


class Upload(Base):
    __tablename__ = "uploads"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    party: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(Text)
    source_format: Mapped[str] = mapped_column(String(32))
    records: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Float, default=_now)
    # Key check value of the linkage secret (None: clkhash JSON, which cannot say).
    key_check: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # When its file was pruned (superseded and used by no run); the row stays for the audit.
    deleted_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    kind: Mapped[str] = mapped_column(String(16), default=ENCODINGS)
    # An attributes upload's column declarations (JSON list of name, type, role).
    columns_json: Mapped[str | None] = mapped_column(Text, nullable=True)


class Job(Base):
    """A job of the queue. ``attempt`` and ``worker`` identify who holds it; ``lease_until``
    is pushed forward by the worker's heartbeat, and a lapsed lease makes the job claimable.
    ``params_json`` holds what the kind needs (a linkage run: threshold, blocking,
    upload_ids)."""

    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32), default=LINKAGE)
    state: Mapped[str] = mapped_column(String(16), index=True, default="queued")
    stage: Mapped[str] = mapped_column(String(32), default="queued")
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    params_json: Mapped[str] = mapped_column(Text, default="{}")
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_until: Mapped[float | None] = mapped_column(Float, nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    stats_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[float] = mapped_column(Float, default=_now)
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class Worker(Base):
    """A worker process's presence: it reports while alive; /health counts the recent ones."""

    __tablename__ = "workers"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    started_at: Mapped[float] = mapped_column(Float, default=_now)
    seen_at: Mapped[float] = mapped_column(Float, default=_now, index=True)


class CohortRequest(Base):
    """A researcher's request for a cohort of a finished run. ``decision``: pending,
    approved or rejected; an approved one has an export job, whose state says whether the
    export is ready."""

    __tablename__ = "cohort_requests"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"))
    researcher: Mapped[str] = mapped_column(String(32))  # the researcher token's id
    purpose: Mapped[str] = mapped_column(Text)
    definition_json: Mapped[str] = mapped_column(Text)
    decision: Mapped[str] = mapped_column(String(16), default="pending")
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"), nullable=True)
    created_at: Mapped[float] = mapped_column(Float, default=_now)
    decided_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class RiskReport(Base):
    """A cohort export's risk report (``pprl-risk-report/1``) against the project's policy
    as it was then: ``passed`` releases the export, else it is held with ``reasons``."""

    __tablename__ = "risk_reports"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("cohort_requests.id"), index=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"))
    policy_json: Mapped[str] = mapped_column(Text)
    passed: Mapped[bool] = mapped_column(Boolean)
    reasons_json: Mapped[str] = mapped_column(Text, default="[]")
    document_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float, default=_now)


class AuditEvent(Base):
    """Append-only: database triggers refuse UPDATE and DELETE on this table. Each event
    carries the hash of the one before it in its project's chain (``security.audit``), so an
    edit or a deletion by someone who gets past the triggers is detected."""

    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[float] = mapped_column(Float, default=_now)
    project_id: Mapped[str | None] = mapped_column(String(32), index=True, nullable=True)
    actor: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(Text, default="{}")
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The end of each audit chain (a project's, or ``""`` for the service's own events):
    its last hash and length. Appending locks this row, so a chain never forks; a chain cut
    short at its end no longer reaches the head."""

    __tablename__ = "audit_heads"
    chain: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_hash: Mapped[str] = mapped_column(String(64))
    events: Mapped[int] = mapped_column(Integer, default=0)
