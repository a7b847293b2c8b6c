"""The FastAPI application of the linkage service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from tokenizer.encodings_file import tool_version

from .db import make_engine, migrate, session_factory
from .payloads import Health
from .routes import audit_log, encodings, projects, results, runs
from .settings import Settings
from .worker import run_workers

__all__ = ["create_app"]

_DESCRIPTION = """
Privacy-preserving record linkage of imaging, EHR and claims data. Providers upload keyed
Bloom-filter encodings (CLKs) made at their site with `pprl tokenize`; the service never
receives an identifier or the linkage secret.

**Roles** (each an API token, `Authorization: Bearer pprl_<id>_<secret>`, shown once and
stored hashed):
- *service administrator* (`pprl admin token` on the server): creates projects;
- *project owner* (the data manager): runs linkage, reads matches, groups and the audit log,
  makes reader tokens;
- *upload token* (one per party): uploads that party's encodings and reads its own results;
- *reader* (per party): reads that party's record -> entity pseudonym mapping.

Only `/health` and the docs answer without a token.
"""


def create_app(settings: Settings, worker_processes: int = 0) -> FastAPI:
    """The app; with ``worker_processes`` it also starts that many run workers on start-up
    and stops them on shut-down (inside the app's lifespan, which uvicorn completes even
    when a signal ends it)."""
    settings.prepare()
    engine = make_engine(settings.database_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        migrate(engine)
        with run_workers(settings, worker_processes):
            yield
        engine.dispose()

    app = FastAPI(title="pprl-imaging linkage service", version=tool_version(),
                  description=_DESCRIPTION, lifespan=lifespan)
    app.state.settings = settings
    app.state.sessions = session_factory(engine)

    @app.get("/health", response_model=Health, tags=["service"], summary="Liveness (no token)")
    def health() -> Health:
        return Health(version=tool_version())

    for module in (projects, encodings, runs, results, audit_log):
        app.include_router(module.router)
    return app
