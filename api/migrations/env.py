"""Alembic environment: migrations run on a connection the service hands over
(``config.attributes["connection"]``), never from an ini file with a URL in it."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from api.models import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    if connection.dialect.name == "postgresql":
        # The API and workers may start together: one migrates, the others wait.
        connection.execute(text("SELECT pg_advisory_xact_lock(7263541)"))
    context.run_migrations()
