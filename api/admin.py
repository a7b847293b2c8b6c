"""Service administration on the server machine (whoever can run this there already controls
the service): administrator tokens, pruning old uploads."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from .db import make_engine, migrate, session_factory
from .models import Party
from .schemas import TokenOut
from .services import tokens
from .services.uploads import prune_uploads
from .settings import Settings

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
    """Prune every party's uploads that are neither its latest nor used by a run."""
    def prune(session: Session) -> int:
        pairs = session.execute(select(Party.project_id, Party.label)).all()
        return sum(prune_uploads(session, project_id, label, actor=_CONSOLE, role="admin")
                   for project_id, label in pairs)
    return _with_session(settings, prune)
