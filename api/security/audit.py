"""The append-only, tamper-evident audit log: who (token id and role) did what to which
project, and when.

Each project's events form a hash chain (the service's own events, such as administrator
token changes, a chain of their own): an event's hash is SHA-256 over the previous event's
hash and the event's canonical text (time as ISO-8601 UTC to the microsecond, project,
actor, role, action, detail as sorted JSON). ``audit_heads`` holds each chain's last hash and
length; appending locks that row, so chains never fork. Whoever reads a project's events can
recompute the chain (``pprl audit verify``): an edited event no longer matches its hash, a
deleted one breaks the link to the next, and a cut at the end no longer reaches the head.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from ..models import AuditEvent, AuditHead

__all__ = ["record", "GENESIS", "iso_time", "event_hash", "verify_chain"]

GENESIS = "0" * 64


def iso_time(at: float) -> str:
    """A stored time as ISO-8601 UTC with microseconds (what the API shows and hashes)."""
    return datetime.datetime.fromtimestamp(at, datetime.UTC).isoformat(
        timespec="microseconds").replace("+00:00", "Z")


def event_hash(prev_hash: str, at: str, project_id: str | None, actor: str, role: str,
               action: str, detail: Mapping[str, Any]) -> str:
    text = json.dumps([prev_hash, at, project_id, actor, role, action,
                       json.dumps(detail, sort_keys=True, default=str)],
                      ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _locked_head(session: Session, chain: str) -> AuditHead:
    """The chain's head, created if new, locked until the transaction ends (PostgreSQL: the
    row; SQLite: the insert takes the database's write lock)."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(insert(AuditHead).values(chain=chain, last_hash=GENESIS, events=0)
                    .on_conflict_do_nothing(index_elements=["chain"]))
    return session.execute(select(AuditHead).where(AuditHead.chain == chain)
                           .with_for_update().execution_options(populate_existing=True)
                           ).scalar_one()


def record(session: Session, *, actor: str, role: str, action: str,
           project_id: str | None = None, **detail: Any) -> None:
    """Append an event to the session's transaction, so it commits (or not) with the action.
    ``detail`` names ids, parties, counts and rules, never a token or an identifier."""
    head = _locked_head(session, project_id or "")
    event = AuditEvent(project_id=project_id, actor=actor, role=role, action=action,
                       detail=json.dumps(detail, sort_keys=True, default=str),
                       prev_hash=head.last_hash)
    event.at = round(datetime.datetime.now(datetime.UTC).timestamp(), 6)
    event.hash = event_hash(head.last_hash, iso_time(event.at), project_id, actor, role,
                            action, json.loads(event.detail))
    head.last_hash, head.events = event.hash, head.events + 1
    session.add(event)
    session.flush()


def verify_chain(project_id: str | None, events: Iterable[Mapping[str, Any]],
                 head: Mapping[str, Any]) -> str | None:
    """Where a project's chain of events (as the API shows them, in order) breaks, or None
    when every event matches its hash, links to the one before and the last is the head."""
    previous, count = GENESIS, 0
    for event in events:
        count += 1
        if event["prev_hash"] != previous:
            return (f"event {event['id']} does not follow the event before it: an event "
                    f"before it was removed or changed")
        expected = event_hash(previous, event["at"], project_id, event["actor"],
                              event["role"], event["action"], event["detail"])
        if event["hash"] != expected:
            return f"event {event['id']} was changed after it was written"
        previous = event["hash"]
    if count != head["events"] or previous != head["last_hash"]:
        return (f"the log holds {count} events but the chain's head records "
                f"{head['events']}: events at its end were removed")
    return None
