"""Service administrator tokens, made on the server machine (whoever can run this there
already controls the service)."""

from __future__ import annotations

from .audit import record
from .db import make_engine, migrate, session_factory
from .models import AdminToken
from .settings import Settings
from .tokens import issue_token

__all__ = ["create_admin_token"]


def create_admin_token(settings: Settings, label: str = "") -> str:
    """A new administrator token; returned once, stored as a hash."""
    settings.prepare()
    engine = make_engine(settings.database_url)
    try:
        migrate(engine)
        token = issue_token()
        with session_factory(engine).begin() as session:
            session.add(AdminToken(id=token.id, secret_hash=token.secret_hash, label=label))
            record(session, actor="server-console", role="admin", action="admin_token.create",
                   token_id=token.id, label=label)
        return token.token
    finally:
        engine.dispose()
