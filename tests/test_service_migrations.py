"""Upgrading a service's database: events written before the audit log was chained are
chained by the migration, in id order per project, and the append-only triggers survive it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from api.db import make_engine
from api.security.audit import iso_time, verify_chain
from tests.service_harness import database_kinds, fresh_database


def _upgrade(url: str, revision: str) -> None:
    engine = make_engine(url)
    config = Config()
    config.set_main_option("script_location", "api:migrations")
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        engine.dispose()


@pytest.mark.parametrize("kind", database_kinds())
def test_events_of_an_earlier_version_are_chained(kind: str, tmp_path: Path) -> None:
    with fresh_database(kind, tmp_path) as url:
        _upgrade(url, "0004")
        engine = create_engine(url)
        try:
            with engine.begin() as c:
                for n, project in enumerate(["prj_a", "prj_b", "prj_a", None, "prj_a"]):
                    c.execute(text("INSERT INTO audit_events (at, project_id, actor, role, "
                                   "action, detail) VALUES (:at, :p, 'tok', 'owner', :a, :d)"),
                              {"at": 1_700_000_000.25 + n, "p": project, "a": f"step{n}",
                               "d": json.dumps({"n": n})})
            _upgrade(url, "head")
            with engine.connect() as c:
                rows = c.execute(text("SELECT id, at, project_id, actor, role, action, detail, "
                                      "prev_hash, hash FROM audit_events ORDER BY id")).all()
                heads = {r.chain: r for r in c.execute(text("SELECT * FROM audit_heads"))}
            for project in ("prj_a", "prj_b"):
                events = [{"id": r.id, "at": iso_time(r.at), "actor": r.actor, "role": r.role,
                           "action": r.action, "detail": json.loads(r.detail),
                           "prev_hash": r.prev_hash, "hash": r.hash}
                          for r in rows if r.project_id == project]
                head = {"events": heads[project].events, "last_hash": heads[project].last_hash}
                assert verify_chain(project, events, head) is None
            assert heads["prj_a"].events == 3 and heads[""].events == 1
            with pytest.raises(DBAPIError, match="append-only"), engine.begin() as c:
                c.execute(text("UPDATE audit_events SET action = 'x'"))
        finally:
            engine.dispose()
