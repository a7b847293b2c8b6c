"""Service administration on the server machine (whoever can run this there already controls
the service): administrator tokens, pruning old uploads."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from .db import make_engine, migrate, session_factory
from .models import Party, Upload
from .schemas import TokenOut
from .services import tokens
from .services.uploads import prune_uploads
from .settings import STALE_SECONDS, Settings

__all__ = ["create_admin_token", "list_admin_tokens", "revoke_admin_token", "prune_all"]

_CONSOLE = "server-console"
T = TypeVar("T")


@contextmanager
def _session(settings: Settings) -> Iterator[Session]:
    settings.prepare()
    engine = make_engine(settings.database_url)
    try:
        migrate(engine)
        with session_factory(engine)() as session:
            yield session
    finally:
        engine.dispose()


def _with_session(settings: Settings, work: Callable[[Session], T]) -> T:
    with _session(settings) as session:
        return work(session)


def create_admin_token(settings: Settings, label: str = "",
                       expires_in_days: float | None = None) -> str:
    """A new administrator token; returned once, stored as a hash."""
    return _with_session(settings, lambda s: tokens.create_admin_token(
        s, _CONSOLE, label, expires_in_days))


def list_admin_tokens(settings: Settings) -> list[TokenOut]:
    return _with_session(settings, tokens.list_admin_tokens)


def revoke_admin_token(settings: Settings, token_id: str) -> TokenOut:
    return _with_session(settings, lambda s: tokens.revoke_admin_token(s, _CONSOLE, token_id))


def prune_all(settings: Settings) -> int:
    """Prune every party's uploads that are neither its latest nor used by a run, and the
    files no upload records: a process killed between keeping an upload's file and
    committing its row left one (a day old at least, so that none still being recorded is
    touched)."""
    def prune(session: Session) -> int:
        pairs = session.execute(select(Party.project_id, Party.label)).all()
        pruned = sum(prune_uploads(session, project_id, label, actor=_CONSOLE, role="admin")
                     for project_id, label in pairs)
        recorded = set(session.scalars(select(Upload.path)))
        cutoff = time.time() - STALE_SECONDS
        for stored in settings.uploads_dir.rglob("*"):
            if (stored.is_file() and str(stored) not in recorded
                    and stored.stat().st_mtime < cutoff):
                stored.unlink()
                pruned += 1
        return pruned
    return _with_session(settings, prune)
