"""Engine, sessions and migrations for the embedded default (SQLite) and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

__all__ = ["make_engine", "migrate", "session_factory"]


_SQLITE_LOCK_WAIT_SECONDS = 30.0


def _sqlite_pragmas(busy_ms: int) -> Callable[[Any, Any], None]:
    """WAL lets the API read while a worker writes; the busy timeout makes concurrent writers
    (API and worker processes) wait for each other instead of failing."""
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()
    return on_connect


def make_engine(url: str, pool_size: int = 5, max_overflow: int = 10,
                pool_timeout: float = 30.0, lock_wait: float | None = None) -> Engine:
    """An engine whose pool holds ``pool_size`` + ``max_overflow`` connections; a request
    that waits ``pool_timeout`` seconds for one gets SQLAlchemy's TimeoutError. A statement
    waits ``lock_wait`` seconds for another's lock, then fails with OperationalError
    (default: 30 s on SQLite, for ever on PostgreSQL)."""
    pool = {"pool_size": pool_size, "max_overflow": max_overflow, "pool_timeout": pool_timeout}
    if url.startswith("sqlite"):
        wait = _SQLITE_LOCK_WAIT_SECONDS if lock_wait is None else lock_wait
        engine = create_engine(url, connect_args={"timeout": wait, "check_same_thread": False},
                               **pool)
        event.listen(engine, "connect", _sqlite_pragmas(int(wait * 1000)))
        return engine
    options = {} if lock_wait is None else {
        "options": f"-c lock_timeout={max(1, int(lock_wait * 1000))}"}
    return create_engine(url, pool_pre_ping=True, connect_args=options, **pool)


def migrate(engine: Engine) -> None:
    """Bring the database schema to the newest revision (idempotent; safe at every start)."""
    config = Config()
    config.set_main_option("script_location", "api:migrations")
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
