"""When each token was last used, written best-effort.

The write has a connection of its own and waits at most a moment for a lock (a worker's
long write holds SQLite's for as long as it takes), so it never delays or fails the request
being authenticated; a write that could not be made is made by the token's next request.
"""

from __future__ import annotations

import logging

from sqlalchemy import update
from sqlalchemy.exc import SQLAlchemyError

from ..db import make_engine
from ..models import AdminToken, ProjectToken

__all__ = ["LastUsed"]

log = logging.getLogger(__name__)

# Longest a request waits for the connection or a lock before leaving the write undone.
_WAIT_SECONDS = 0.05


class LastUsed:
    def __init__(self, database_url: str) -> None:
        self._engine = make_engine(database_url, pool_size=1, max_overflow=0,
                                   pool_timeout=_WAIT_SECONDS, lock_wait=_WAIT_SECONDS)

    def note(self, table: type[AdminToken] | type[ProjectToken], token_id: str,
             when: float) -> None:
        """Record that ``token_id`` was used at ``when``, unless the database is busy."""
        try:
            with self._engine.begin() as connection:
                connection.execute(update(table).where(table.id == token_id)
                                   .values(last_used_at=when))
        except SQLAlchemyError as e:
            log.info("token %s: its last use was not recorded now (%s)", token_id,
                     type(e).__name__)

    def close(self) -> None:
        self._engine.dispose()
