"""The FastAPI application of the linkage service: routers, domain errors as HTTP statuses,
security headers, the docs' own assets, and (with ``pprl serve``) supervised workers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from tokenizer.encodings_file import tool_version

from .db import make_engine, migrate, session_factory
from .errors import Busy, Forbidden, ServiceError, TooMany
from .jobs.supervisor import supervised_workers
from .models import Project
from .results_store import ResultStore
from .routers import audit, cohorts, projects, results, runs, service, tokens, uploads
from .routers.error_bodies import COMMON_ERRORS
from .security.audit import record
from .security.body_limit import BodyLimit
from .security.headers import SecurityHeaders
from .security.last_used import LastUsed
from .security.rate_limit import FailureLimiter
from .services.health import HealthProbe
from .settings import Settings

__all__ = ["create_app"]

log = logging.getLogger(__name__)

_DESCRIPTION = """
Privacy-preserving record linkage of imaging, EHR and claims data. Providers upload keyed
Bloom-filter encodings (CLKs) made at their site with `pprl tokenize` or `pprl deid`, and
de-identified attributes for cohorts; the service never receives an identifier or the linkage
secret.

**Roles** (each an API token, `Authorization: Bearer pprl_<id>_<secret>`, shown once and
stored hashed; tokens can expire and be revoked):
- *service administrator* (`pprl admin token` on the server): creates projects;
- *project owner* (the data manager): runs linkage, reads matches, groups and the audit log,
  makes and revokes tokens (another owner token too, to rotate its own);
- *upload token* (one per party): uploads that party's encodings and reads its own results;
- *reader* (per party): reads that party's record -> entity pseudonym mapping;
- *researcher* (one per researcher): lists the attribute catalog, counts cohorts (small
  cells suppressed), requests cohorts and downloads its own approved exports;
- *auditor* (one per auditor, read-only): reads the audit log and its chain head, every
  request with its definition and every risk report, and re-runs risk reports.

Errors answer `{"detail": ...}`: a message naming the project, party, run or field and the
rule (never a token or an identifier), or, for a request the schema refuses, one problem per
field.

Only `/health` and the docs answer without a token. Failed authentications are limited per
client and token (429 with Retry-After) and audited.
"""


def _domain_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ServiceError)
    if isinstance(error, Forbidden) and error.actor is not None:
        limiter: FailureLimiter = request.app.state.auth_limiter
        key = f"refused:{error.actor}"
        wait = limiter.retry_after(key)
        if wait is not None:  # a token refused again and again: neither answered nor audited
            error = TooMany("too many refused requests; try again later",
                            headers={"Retry-After": str(wait)})
        else:
            limiter.failed(key)
            _audit_refusal(request, error)
    return JSONResponse({"detail": error.message}, status_code=error.status,
                        headers=error.headers)


def _audit_refusal(request: Request, error: Forbidden) -> None:
    """A 403 in the audit log (the operation, never the token): of the project asked for
    where the token belongs to it; else of the token's own project, naming the project asked
    for, so that no token fills another project's log (which refuses deletion), and never a
    chain for a project that does not exist. 401s are audited where authentication fails."""
    route = request.scope.get("route")
    operation = f"{request.method} {getattr(route, 'path', request.url.path)}"
    factory: sessionmaker[Session] = request.app.state.sessions
    asked = error.project_id
    with factory() as session:
        chain = asked if error.own_project in (None, asked) else error.own_project
        if chain is not None and session.get(Project, chain) is None:
            chain = None
        elsewhere = {"asked_project": asked} if asked != chain else {}
        record(session, actor=error.actor or "", role=error.role or "",
               action="access.refused", project_id=chain, operation=operation,
               reason=error.message, **elsewhere)
        session.commit()


def _database_busy(request: Request, error: Exception) -> JSONResponse:
    """A database locked for longer than the wait (SQLite under a long writer) is a 503 to
    retry, not a crash; anything else of the database is logged and still not a 500 page
    with internals."""
    if "locked" in str(error).lower() or "busy" in str(error).lower():
        return _domain_error(request, Busy("the database is busy; try again in a moment",
                                           headers={"Retry-After": "5"}))
    log.error("database error on %s %s", request.method, request.url.path, exc_info=error)
    return JSONResponse({"detail": "the service's database failed; try again later"},
                        status_code=503, headers={"Retry-After": "10"})


def _pool_exhausted(request: Request, _error: Exception) -> JSONResponse:
    """Every pooled database connection stayed in use for the pool's whole wait: the service
    is busy, which is a 503 to retry, not a crash."""
    log.warning("no database connection free for %s %s", request.method, request.url.path)
    return _domain_error(request, Busy("the service is busy; try again in a moment",
                                       headers={"Retry-After": "5"}))


def _invalid_request(_request: Request, error: Exception) -> JSONResponse:
    """422 naming each field and rule; never echoing the input (it may be anything)."""
    assert isinstance(error, RequestValidationError)
    problems = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type")}
                for e in error.errors()]
    return JSONResponse({"detail": problems}, status_code=422)


def create_app(settings: Settings, worker_processes: int = 0, tls: bool = False) -> FastAPI:
    """The app; with ``worker_processes`` it also starts that many supervised workers on
    start-up and stops them on shut-down (inside the app's lifespan, which uvicorn completes
    even when a signal ends it)."""
    settings.prepare()
    engine = make_engine(settings.database_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        migrate(engine)
        with supervised_workers(settings, worker_processes):
            yield
        app.state.health.close()
        app.state.last_used.close()
        engine.dispose()

    app = FastAPI(title="pprl-imaging linkage service", version=tool_version(),
                  description=_DESCRIPTION, lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.settings = settings
    app.state.sessions = session_factory(engine)
    app.state.health = HealthProbe(settings)
    app.state.last_used = LastUsed(settings.database_url)
    app.state.results = ResultStore(settings.result_cache_bytes)
    app.state.auth_limiter = FailureLimiter(settings.auth_failures_per_minute)
    app.add_exception_handler(ServiceError, _domain_error)
    app.add_exception_handler(OperationalError, _database_busy)
    app.add_exception_handler(PoolTimeout, _pool_exhausted)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.mount("/docs/assets", StaticFiles(directory=service.DOCS_ASSETS), name="docs-assets")
    app.include_router(service.router)  # /health answers without a token
    for module in (projects, tokens, uploads, runs, results, cohorts, audit):
        app.include_router(module.router, responses=COMMON_ERRORS)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(SecurityHeaders, tls=tls)
    return app
