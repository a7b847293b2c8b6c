"""A real linkage service for the tests: `pprl serve` in its own process over HTTP, on a
fresh SQLite file or (when PPRL_TEST_DATABASE_URL is set) a fresh PostgreSQL database."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
from click.testing import CliRunner
from sqlalchemy import create_engine, make_url, text

from api.admin import create_admin_token
from api.cli import cli
from api.client import Client
from api.settings import Settings
from synth.cli import synthesize
from tokenizer.attributes_build import build_attributes, load_attribute_spec
from tokenizer.catalog import load_schema
from tokenizer.pipeline import tokenize_file

PPRL = [sys.executable, "-c", "from api.cli import main; main()"]
PARTIES = ("imaging", "ehr", "claims")
SPECS = Path(__file__).resolve().parent.parent / "synth" / "specs"
SECRET = b"service tests: the linkage secret all three providers share"
# Seconds a request may take while others hold the service up (stalled uploads, a held
# database lock): the failures guarded against waited 30 s or never answered, and the tests'
# clients give up at 5 s; CI on 2 loaded cores once took 1.3 s.
PROMPT = 3.0


def database_kinds() -> list[str]:
    return ["sqlite"] + (["postgresql"] if os.environ.get("PPRL_TEST_DATABASE_URL") else [])


@contextmanager
def fresh_database(kind: str, data_dir: Path) -> Iterator[str]:
    """A database URL nobody else uses; a PostgreSQL one is dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{data_dir / 'pprl.db'}"
        return
    server = make_url(os.environ["PPRL_TEST_DATABASE_URL"])
    name = f"pprl_test_{secrets.token_hex(6)}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Service:
    url: str
    data_dir: Path
    env: dict[str, str]
    admin_token: str
    process: subprocess.Popen[bytes]
    log: Path

    def pprl(self, *args: str, token: str | None = None, check: bool = True
             ) -> subprocess.CompletedProcess[str]:
        """Run a `pprl` command against this service, the token in PPRL_TOKEN. It runs in this
        process (click's runner: the real command, options, output and exit code, over HTTP
        to the live service): a process of its own costs half a second of start-up each, and
        the service tests make about ninety such calls. `pprl` as a process of its own is
        tested by test_cli, test_cli_exit and the serve/worker processes here."""
        changed: dict[str, str | None] = {k: v for k, v in self.env.items()
                                          if os.environ.get(k) != v}
        changed |= {"PPRL_URL": self.url, "PPRL_TOKEN": token}  # None: unset
        result = CliRunner().invoke(cli, list(args), env=changed)
        failure = result.exception if not isinstance(result.exception, SystemExit) else None
        # an unexpected exception: its traceback on stderr, as the process would print it
        stderr = result.stderr + ("".join(traceback.format_exception(failure)) if failure
                                  else "")
        if check and result.exit_code != 0:
            raise AssertionError(f"pprl {' '.join(args)} failed:\n{stderr}")
        return subprocess.CompletedProcess(["pprl", *args], result.exit_code, result.stdout,
                                           stderr)

    def start_worker(self, *args: str, env: dict[str, str] | None = None,
                     log: Path | None = None) -> subprocess.Popen[bytes]:
        """A worker process with ``args``, the service's environment and ``env``, writing to
        ``log`` (default: a new file in the data folder)."""
        output = (log or self.data_dir / f"worker-{time.monotonic_ns()}.log").open("wb")
        return subprocess.Popen([*PPRL, "worker", "--data-dir", str(self.data_dir), *args],
                                env={**self.env, **(env or {})}, stdout=output,
                                stderr=subprocess.STDOUT)


@contextmanager
def running_service(kind: str, data_dir: Path, *, workers: int = 1,
                    max_upload_bytes: int = 8 << 20, lease_seconds: float = 3.0,
                    auth_failures_per_minute: int = 1_000_000,
                    extra_env: dict[str, str] | None = None, serve_args: tuple[str, ...] = ()
                    ) -> Iterator[Service]:
    data_dir.mkdir(parents=True, exist_ok=True)
    with fresh_database(kind, data_dir) as database_url:
        env = {**os.environ, "PPRL_DATABASE_URL": database_url,
               "PPRL_MAX_UPLOAD_BYTES": str(max_upload_bytes),
               "PPRL_LEASE_SECONDS": str(lease_seconds),
               # the tests make many failed authentications on purpose; one test sets a
               # real limit on a service of its own
               "PPRL_AUTH_FAILURES_PER_MINUTE": str(auth_failures_per_minute)}
        env.update(extra_env or {})
        env.pop("PPRL_TOKEN", None)
        port = free_port()
        log = data_dir / "serve.log"
        process = subprocess.Popen(
            [*PPRL, "serve", "--data-dir", str(data_dir), "--port", str(port),
             "--workers", str(workers), *serve_args], env=env, stdout=log.open("wb"),
            stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_healthy(url, process, log, workers)
            # what `pprl admin token` does (tested as a command in test_service_security), in
            # this process: a subprocess would load the whole service again (about 2 s)
            admin_token = create_admin_token(Settings(data_dir=data_dir,
                                                      database_url=database_url))
            yield Service(url, data_dir, env, admin_token, process, log)
        finally:
            stop_process(process, timeout=30)


def stop_process(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout`` seconds."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path, workers: int
                  ) -> None:
    """Until /health says the workers are up (200), or, with none of its own, answers."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"pprl serve exited:\n{log.read_text()}")
        try:
            answer = httpx.get(f"{url}/health", timeout=2)
            if answer.status_code == 200 or (workers == 0 and answer.status_code == 503):
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"pprl serve did not answer within 60 s:\n{log.read_text()}")


def make_providers(folder: Path, people: int, seed: int = 3) -> dict[str, Path]:
    """Synthetic extracts of the three providers, tokenized with the `person` schema;
    ``folder/truth.csv`` holds the truth."""
    synthesize(folder, people, seed)
    schema = load_schema("person")
    outputs = {}
    for party in PARTIES:
        output = folder / f"{party}.clks.parquet"
        tokenize_file(folder / f"{party}.parquet", schema, SECRET, output,
                      id_column="record_id", provider=party, workers=1, progress=False)
        outputs[party] = output
    return outputs


TOKEN_SECRET = b"service tests: the OpenToken hashing secret all providers share"
# Records of ehr and claims given one placeholder identity, as registration systems give
# unnamed newborns: every such record shares the same T1, T3 and T5 tokens.
PLACEHOLDER = {"given_name": "Baby", "surname": "Doe", "date_of_birth": "2020-01-01",
               "sex": "f"}
PLACEHOLDER_RECORDS = {"ehr": 150, "claims": 130}


def make_token_providers(extracts: Path, folder: Path) -> dict[str, Path]:
    """The synthetic extracts in ``extracts`` (see :func:`make_providers`), tokenized with
    OpenToken tokens as well, after giving the first PLACEHOLDER_RECORDS records of ehr and
    claims the PLACEHOLDER identity."""
    schema = load_schema("person")
    outputs = {}
    for party in PARTIES:
        table = pq.read_table(extracts / f"{party}.parquet")
        count = PLACEHOLDER_RECORDS.get(party, 0)
        for column, value in PLACEHOLDER.items():
            values = table.column(column).to_pylist()
            values[:count] = [value] * count
            table = table.set_column(table.schema.get_field_index(column), column,
                                     pa.array(values, pa.string()))
        source = folder / f"{party}.parquet"
        pq.write_table(table, source)
        outputs[party] = folder / f"{party}.tokens.parquet"
        tokenize_file(source, schema, SECRET, outputs[party], id_column="record_id",
                      provider=party, workers=1, progress=False, token_secret=TOKEN_SECRET)
    return outputs

def provider_attributes(folder: Path, parties: tuple[str, ...] = PARTIES) -> dict[str, Path]:
    """Each party's attributes file, built from its extract in ``folder`` with the shipped
    synthetic spec (made once, then reused)."""
    outputs = {}
    for party in parties:
        output = folder / f"{party}.attributes.parquet"
        if not output.exists():
            build_attributes(folder / f"{party}.parquet",
                             load_attribute_spec(SPECS / f"{party}.json"), output,
                             id_column="record_id", provider=party)
        outputs[party] = output
    return outputs


# A policy every export meets, for tests about something else than the release gate.
OPEN_POLICY = {"min_k": 1, "max_risk": 1.0, "safe_harbor": False}


def project_with_uploads(service: Service, files: dict[str, Path], name: str,
                         dedup: bool = False, attributes: dict[str, Path] | None = None,
                         risk_policy: dict[str, Any] | None = None) -> dict[str, Any]:
    """A project of the three parties (as the service's administrator), each party having
    uploaded its file (and its attributes, if given) with its own token; the service's
    creation answer."""
    with Client(service.url, service.admin_token) as admin:
        created: dict[str, Any] = admin.create_project(name, "person", list(PARTIES), dedup,
                                                       risk_policy=risk_policy)
    for party in PARTIES:
        with Client(service.url, created["upload_tokens"][party]) as provider:
            provider.upload(created["project"]["id"], party, files[party])
            if attributes is not None:
                provider.upload(created["project"]["id"], party, attributes[party],
                                "attributes")
    return created


def wait_for(predicate: Callable[[], bool], timeout: float = 120.0, poll: float = 0.05
             ) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(poll)
    raise AssertionError(f"condition not met within {timeout} s")
