"""The database pool under load, in process (exhausting a real service's pool over HTTP
takes its 30-second wait): an upload is checked with no connection held, so concurrent
checks cannot exhaust the pool; a pool that stays exhausted is a 503 to retry, not a 500."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from api.app import create_app
from api.db import make_engine, migrate, session_factory
from api.deps import Principal
from api.schemas import ProjectCreate, UploadOut
from api.services import uploads
from api.services.projects import create_project
from api.settings import Settings
from tests.service_harness import PARTIES, database_kinds, fresh_database, provider_attributes


@pytest.fixture(params=database_kinds())
def database(request: pytest.FixtureRequest, tmp_path: Path
             ) -> Iterator[tuple[Settings, Engine]]:
    """Settings of a fresh database and an engine whose pool holds one connection and waits
    one second for it."""
    with fresh_database(request.param, tmp_path) as url:
        settings = Settings(data_dir=tmp_path / "data", database_url=url)
        settings.prepare()
        engine = make_engine(url, pool_size=1, max_overflow=0, pool_timeout=1.0)
        migrate(engine)
        try:
            yield settings, engine
        finally:
            engine.dispose()


def _spooled(settings: Settings, source: Path) -> uploads.ReceivedBody:
    """``source`` as the router leaves a received body: a temporary file, its size and hash."""
    target = settings.temp_dir / f"upload-{uuid.uuid4().hex}"
    shutil.copyfile(source, target)
    data = target.read_bytes()
    return uploads.ReceivedBody(target, len(data), hashlib.sha256(data).hexdigest())


@pytest.mark.parametrize("kind", ["encodings", "attributes"])
def test_upload_checks_hold_no_database_connection(
        database: tuple[Settings, Engine], provider_files: dict[str, Path],
        monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    """The audit's case: an upload kept its session while its file was checked (tens of
    seconds for a big one), so 15 concurrent checks exhausted the pool. Here every party's
    check waits until all are running at once, over a pool of one connection."""
    settings, engine = database
    sessions = session_factory(engine)
    with sessions() as session:
        created = create_project(session, Principal("admin", "admin"), ProjectCreate(
            name="pool", schema="person", parties=list(PARTIES)))
    project_id = created.project.id
    files = (provider_files if kind == "encodings"
             else provider_attributes(provider_files["ehr"].parent))
    checker = "check_parquet_encodings" if kind == "encodings" else "check_attributes_upload"
    real = getattr(uploads, checker)
    together = threading.Barrier(len(PARTIES), timeout=5)
    held: list[int] = []

    def check(*args: Any) -> Any:
        held.append(engine.pool.checkedout())  # type: ignore[attr-defined]
        together.wait()
        return real(*args)

    monkeypatch.setattr(uploads, checker, check)

    def store(party: str) -> UploadOut:
        principal = Principal(f"upload-{party}", "upload", project_id, party)
        body = _spooled(settings, files[party])
        if kind == "encodings":
            return uploads.store_upload(sessions, settings, principal, project_id, party,
                                        body, "parquet")
        return uploads.store_attributes(sessions, settings, principal, project_id, party,
                                        body)

    with ThreadPoolExecutor(len(PARTIES)) as pool:
        stored = list(pool.map(store, PARTIES))
    assert held == [0] * len(PARTIES)
    assert [(u.party, u.kind) for u in stored] == [(p, kind) for p in PARTIES]


def test_a_pool_that_stays_exhausted_is_a_503_to_retry(
        database: tuple[Settings, Engine]) -> None:
    """SQLAlchemy's pool TimeoutError was not mapped: a 500."""
    settings, engine = database
    app = create_app(settings)  # its lifespan would only migrate: the fixture did
    app.state.sessions = session_factory(engine)

    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://pprl") as client:
            return await client.get("/projects/prj_0123456789abcdef", headers={
                "Authorization": f"Bearer pprl_{'0' * 16}_{'A' * 43}"})

    with engine.connect():  # the pool's only connection, held by someone else
        answer = asyncio.run(get())
    assert answer.status_code == 503 and answer.headers["retry-after"] == "5"
    assert "busy" in answer.json()["detail"]
