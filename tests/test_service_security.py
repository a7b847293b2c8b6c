"""Tokens that can be listed, revoked and expire; failed authentication limited and audited;
security headers, docs without a CDN, TLS, private files; stalled uploads that block no one;
bounded integers; each party seeing only its own metadata."""

from __future__ import annotations

import datetime
import json
import os
import socket
import ssl
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from api.client import Client, ServiceError
from tests.service_harness import (
    PPRL,
    PROMPT,
    Service,
    database_kinds,
    free_port,
    project_with_uploads,
    running_service,
    wait_for,
)


@pytest.fixture(scope="module")
def world(service: Service, provider_files: dict[str, Path]) -> dict:
    created = project_with_uploads(service, provider_files, "security")
    return {"created": created, "project_id": created["project"]["id"]}


def _status(service: Service, token: str, path: str = "") -> int:
    return httpx.get(f"{service.url}/projects/{path}", timeout=30,
                     headers={"Authorization": f"Bearer {token}"}).status_code


def test_tokens_are_listed_revoked_and_expire(service: Service, world: dict) -> None:
    project_id = world["project_id"]
    with Client(service.url, world["created"]["owner_token"]) as owner:
        reader = owner.create_token(project_id, "ehr", label="Dr Reader")
        brief = owner.create_token(project_id, "claims", label="brief",
                                   expires_in_days=2 / 86400)
        assert _status(service, reader["token"], project_id) == 200
        listed = {t["id"]: t for t in owner.tokens(project_id)}
        assert listed[reader["id"]]["label"] == "Dr Reader"
        assert listed[reader["id"]]["last_used_at"] is not None
        assert {t["role"] for t in listed.values()} == {"owner", "upload", "reader"}
        assert all("secret" not in t and "token" not in t for t in listed.values())
        assert reader["token"].split("_", 2)[2] not in str(listed)
        owner.revoke_token(project_id, reader["id"])
        assert _status(service, reader["token"], project_id) == 401
        assert owner.tokens(project_id)[-2]["revoked_at"] is not None
        time.sleep(2.5)
        assert _status(service, brief["token"], project_id) == 401
        actions = [(e["action"], e["detail"].get("token_id")) for e in owner.audit(project_id)]
        assert ("token.create", reader["id"]) in actions
        assert ("token.revoke", reader["id"]) in actions
        failed = [e for e in owner.audit(project_id) if e["action"] == "auth.failed"]
        assert {e["detail"]["reason"] for e in failed} >= {"this API token was revoked",
                                                           "this API token has expired"}
        with pytest.raises(ServiceError) as itself:
            owner.revoke_token(project_id, world["created"]["owner_token"].split("_")[1])
        assert itself.value.status == 409


def test_an_upload_token_is_rotated_by_revoking_it(service: Service, world: dict,
                                                   provider_files: dict[str, Path]) -> None:
    project_id = world["project_id"]
    with Client(service.url, world["created"]["owner_token"]) as owner:
        fresh = owner.create_token(project_id, "imaging", role="upload")
        old_id = world["created"]["upload_tokens"]["imaging"].split("_")[1]
        with Client(service.url, fresh["token"]) as imaging:
            assert imaging.upload(project_id, "imaging", provider_files["imaging"])["records"]
        owner.revoke_token(project_id, old_id)
    assert _status(service, world["created"]["upload_tokens"]["imaging"], project_id) == 401


def test_the_owner_token_is_rotated_by_revoking_it(service: Service) -> None:
    """The owner token, which reads every match, could be revoked by no one: it may not revoke
    itself, no other owner token could be made, and the administrator revokes only
    administrator tokens. Now the owner makes another owner token and revokes the old one
    with it."""
    with Client(service.url, service.admin_token) as admin:
        created = admin.create_project("owner rotation", "person", ["ehr", "claims"])
    project_id, old = created["project"]["id"], created["owner_token"]
    fresh = json.loads(service.pprl("project", "token", project_id, "--role", "owner",
                                    "--label", "rotated", "--json", token=old).stdout)
    assert fresh["role"] == "owner" and fresh["party"] is None
    refused = service.pprl("project", "token", project_id, "--role", "owner", "--party", "ehr",
                           token=old, check=False)
    assert refused.returncode == 2 and "takes no --party" in refused.stderr
    with Client(service.url, fresh["token"]) as owner:
        owner.revoke_token(project_id, old.split("_")[1])
        assert _status(service, old, project_id) == 401
        assert _status(service, fresh["token"], project_id) == 200
        events = [(e["action"], e["detail"].get("token_id"), e["detail"].get("token_role"))
                  for e in owner.audit(project_id)]
    assert ("token.create", fresh["id"], "owner") in events
    assert ("token.revoke", old.split("_")[1], "owner") in events
    with httpx.Client(base_url=service.url, timeout=30, headers={
            "Authorization": f"Bearer {fresh['token']}"}) as http:
        answer = http.post(f"/projects/{project_id}/tokens",
                           json={"role": "owner", "party": "ehr"})
    assert answer.status_code == 422 and "no party" in answer.json()["detail"]


def test_admin_tokens_are_listed_and_revoked_from_cli_and_api(service: Service) -> None:
    spare = service.pprl("admin", "token", "--data-dir", str(service.data_dir), "--label",
                         "spare", "--expires-days", "7").stdout.strip()
    listed = service.pprl("admin", "tokens", "--data-dir", str(service.data_dir)).stdout
    spare_id = spare.split("_")[1]
    assert spare_id in listed and "spare" in listed and spare.split("_", 2)[2] not in listed
    # a data folder that is not the service's: it listed nothing and made an empty service
    elsewhere = service.data_dir.parent / "not-the-service"
    for command in (("tokens",), ("revoke", spare_id), ("prune",)):
        wrong = service.pprl("admin", *command, "--data-dir", str(elsewhere), check=False)
        assert wrong.returncode == 1 and "holds no service data" in wrong.stderr, command
    assert not elsewhere.exists()
    with Client(service.url, service.admin_token) as admin:
        ids = [t["id"] for t in admin._call("GET", "/admin/tokens")]
        assert spare_id in ids
    service.pprl("admin", "revoke", "--data-dir", str(service.data_dir), spare_id)
    assert httpx.get(f"{service.url}/admin/tokens", timeout=30, headers={
        "Authorization": f"Bearer {spare}"}).status_code == 401


@pytest.fixture(scope="module", params=database_kinds())
def limited(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Service]:
    with running_service(request.param, tmp_path_factory.mktemp(f"limited-{request.param}"),
                         workers=0, auth_failures_per_minute=5) as live:
        yield live


def test_failed_authentications_are_limited_and_audited(limited: Service) -> None:
    """The reported case: 300 wrong secrets in 2.9 s, none audited. And the audit's: a
    malformed token skipped the limit, so anyone could cause an audit commit per request
    without end; now a limited client's refusals are neither audited nor counted, and a
    fresh one (another loopback address) gets as many tries with malformed tokens as with
    others. A valid token is never refused for failures."""
    with Client(limited.url, limited.admin_token) as admin:
        created = admin.create_project("limited", "person", ["a", "b"])
    project_id = created["project"]["id"]
    token_id = created["owner_token"].split("_")[1]
    wrong = f"pprl_{token_id}_" + "W" * 43
    codes = [_status(limited, wrong, project_id) for _ in range(8)]
    assert codes[:5] == [401] * 5 and set(codes[5:]) == {429}
    answer = httpx.get(f"{limited.url}/projects/{project_id}", timeout=30,
                       headers={"Authorization": f"Bearer {wrong}"})
    assert 1 <= int(answer.headers["retry-after"]) <= 61
    # The security review's case: token ids are no secret (the audit log names them) and
    # behind a proxy all clients share an address, so the limit checked first let anyone
    # lock out the owner, or everyone. Now the right token is let through, from this
    # address and for this token id both over their limits.
    with Client(limited.url, created["owner_token"]) as owner:
        assert owner.audit(project_id)
    log = limited.pprl("admin", "tokens", "--data-dir", str(limited.data_dir)).stdout
    assert log  # the server console is never limited
    from sqlalchemy import create_engine, text

    url, malformed = f"{limited.url}/projects/{project_id}", {
        "Authorization": "Bearer not-a-pprl-token"}
    assert {httpx.get(url, headers=malformed, timeout=30).status_code
            for _ in range(3)} == {429}
    with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2")) as fresh:
        codes = [fresh.get(url, headers=malformed, timeout=30).status_code for _ in range(8)]
    assert codes == [401] * 5 + [429] * 3
    engine = create_engine(limited.env["PPRL_DATABASE_URL"])
    with engine.connect() as connection:
        rows = connection.execute(text(
            "SELECT actor, detail FROM audit_events WHERE action = 'auth.failed' "
            "AND project_id = :p"), {"p": project_id}).all()
        anonymous = connection.execute(text(
            "SELECT actor, detail FROM audit_events WHERE action = 'auth.failed' "
            "AND project_id IS NULL")).all()
    engine.dispose()
    assert len(rows) == 5 and all(actor == token_id for actor, _ in rows)
    assert all("WWWW" not in detail for _, detail in rows)
    assert [(actor, json.loads(detail)["client"]) for actor, detail in anonymous] == [
        ("anonymous", "127.0.0.2")] * 5


def test_security_headers_and_docs_without_a_cdn(service: Service, world: dict) -> None:
    page = httpx.get(f"{service.url}/docs", timeout=30)
    assert page.status_code == 200 and "swagger-ui-bundle.js" in page.text
    assert "http://" not in page.text.replace(service.url, "") and "https://" not in page.text
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert httpx.get(f"{service.url}/docs/assets/{asset}", timeout=30).status_code == 200
    answer = httpx.get(f"{service.url}/projects/{world['project_id']}", timeout=30, headers={
        "Authorization": f"Bearer {world['created']['owner_token']}"})
    headers = answer.headers
    assert headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["cache-control"] == "no-store"
    assert "server" not in headers and "strict-transport-security" not in headers


def test_integers_in_paths_and_queries_are_bounded(service: Service, world: dict) -> None:
    """The reported cases: run_id or offset of 2^63 or more gave a 500."""
    owner = {"Authorization": f"Bearer {world['created']['owner_token']}"}
    base = f"{service.url}/projects/{world['project_id']}/runs"
    for url in (f"{base}/{2**63}", f"{base}/{2**64 + 5}", f"{base}/1/matches?offset={2**63}",
                f"{base}/-1", f"{service.url}/projects/{world['project_id']}/audit?limit=0"):
        assert httpx.get(url, headers=owner, timeout=30).status_code == 422, url


def test_parties_see_only_their_own_partys_metadata(service: Service, world: dict) -> None:
    """The reported case: party and reader tokens saw every party's record count."""
    created = world["created"]
    project_id = world["project_id"]
    with Client(service.url, created["owner_token"]) as owner:
        reader = owner.create_reader_token(project_id, "claims")["token"]
        assert set(owner.project(project_id)["uploads"]) == {"imaging", "ehr", "claims"}
    with Client(service.url, created["upload_tokens"]["ehr"]) as ehr:
        assert set(ehr.project(project_id)["uploads"]) == {"ehr"}
    with Client(service.url, reader) as claims_reader:
        assert set(claims_reader.project(project_id)["uploads"]) == {"claims"}


def _self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    import ipaddress

    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_tls_and_no_plain_http_beyond_loopback(tmp_path: Path) -> None:
    refused = subprocess.run([*PPRL, "serve", "--data-dir", str(tmp_path / "d"), "--host",
                              "0.0.0.0", "--port", str(free_port())], capture_output=True,
                             text=True, timeout=60)
    assert refused.returncode == 2 and "--tls-cert" in refused.stderr
    assert "--allow-insecure-http" in refused.stderr
    cert, key = _self_signed(tmp_path)
    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen([*PPRL, "serve", "--data-dir", str(tmp_path / "d"), "--port",
                                str(port), "--workers", "0", "--tls-cert", str(cert),
                                "--tls-key", str(key)], stdout=log, stderr=subprocess.STDOUT)
    try:
        trusted = ssl.create_default_context(cafile=str(cert))

        def answers() -> bool:
            try:
                return httpx.get(f"https://127.0.0.1:{port}/health", verify=trusted,
                                 timeout=2).status_code in (200, 503)
            except httpx.TransportError:
                return False
        wait_for(answers, timeout=60)
        secure = httpx.get(f"https://127.0.0.1:{port}/health", verify=trusted, timeout=10)
        assert "max-age=" in secure.headers["strict-transport-security"]
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
    finally:
        process.terminate()
        process.wait(timeout=30)


def _modes(folder: Path) -> dict[str, int]:
    modes = {}
    for root, folders, files in os.walk(folder):
        for name in folders + files:
            path = Path(root) / name
            modes[str(path.relative_to(folder))] = stat.S_IMODE(path.lstat().st_mode)
    return modes


def test_every_file_of_the_data_directory_is_private(tmp_path: Path,
                                                     provider_files: dict[str, Path]) -> None:
    """The reported case: data files were 0644 under umask 022."""
    old = os.umask(0o022)
    try:
        with running_service("sqlite", tmp_path / "data") as live:
            created = project_with_uploads(live, provider_files, "private")
            project_id = created["project"]["id"]
            with Client(live.url, created["owner_token"]) as owner:
                run = owner.wait(project_id, owner.start_run(project_id, 0.8)["id"])
            assert run["state"] == "done"
            modes = _modes(tmp_path / "data")
    finally:
        os.umask(old)
    ours = {p: m for p, m in modes.items() if not p.endswith(".log")}  # the test's own logs
    assert any(p.startswith("uploads/") for p in ours) and any(p.startswith("runs/")
                                                               for p in ours)
    assert "pprl.db" in ours and "service.key" in ours
    wrong = {p: oct(m) for p, m in ours.items()
             if m != (0o700 if (tmp_path / "data" / p).is_dir() else 0o600)}
    assert wrong == {}


@pytest.fixture(scope="module", params=database_kinds())
def impatient(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[Service]:
    with running_service(request.param, tmp_path_factory.mktemp(f"idle-{request.param}"),
                         extra_env={"PPRL_UPLOAD_IDLE_SECONDS": "4"}) as live:
        yield live


def test_200_stalled_uploads_stop_no_one(impatient: Service,
                                         provider_files: dict[str, Path]) -> None:
    """The reported cases: 15 open uploads exhausted the database pool (500s after 30 s);
    200 trickling ones made /health time out."""
    stalled = project_with_uploads(impatient, provider_files, "stalled")
    busy = project_with_uploads(impatient, provider_files, "busy")
    path = f"/projects/{stalled['project']['id']}/parties/ehr/encodings"
    port = int(impatient.url.rsplit(":", 1)[1])
    sockets = []
    for _ in range(200):
        connection = socket.create_connection(("127.0.0.1", port), timeout=30)
        connection.sendall(
            f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {stalled['upload_tokens']['ehr']}\r\n"
            f"Content-Type: application/vnd.apache.parquet\r\nContent-Length: 100000\r\n"
            f"\r\nPAR1".encode())
        sockets.append(connection)
    try:
        time.sleep(2.0)  # every upload has been authenticated and waits for its body
        with Client(impatient.url, busy["owner_token"]) as owner:
            for _ in range(5):
                started = time.monotonic()
                assert httpx.get(f"{impatient.url}/health", timeout=5).status_code == 200
                assert time.monotonic() - started < PROMPT
                started = time.monotonic()
                owner.project(busy["project"]["id"])
                assert time.monotonic() - started < PROMPT
        with Client(impatient.url, busy["owner_token"]) as owner:
            project_id = busy["project"]["id"]
            run = owner.wait(project_id, owner.start_run(project_id, 0.8)["id"], timeout=120)
        assert run["state"] == "done"
        sockets[0].settimeout(20)
        answer = sockets[0].recv(4096).decode()
        assert answer.startswith("HTTP/1.1 408"), answer[:200]
    finally:
        for connection in sockets:
            connection.close()
    with Client(impatient.url, stalled["owner_token"]) as owner:
        assert [u["id"] for u in owner._call("GET", f"/projects/{stalled['project']['id']}"
                                                    f"/uploads")] != []
    leftovers = list((impatient.data_dir / "tmp").iterdir())
    assert leftovers == []


def test_request_bodies_other_than_uploads_are_capped(service: Service, world: dict) -> None:
    """FastAPI reads a JSON body whole before authentication: an anonymous 100 MB POST was
    held in memory. A declared length over the cap is refused before anything is read, a
    longer body without one as it arrives; uploads keep their own, larger limits."""
    host, port = service.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as raw:
        raw.sendall(b"POST /projects HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 100000000\r\n\r\n{")
        received = b""
        while b'"}' not in received:  # headers and body may come in separate segments
            chunk = raw.recv(4096)
            if not chunk:
                break
            received += chunk
    answer = received.decode("latin-1")
    assert answer.startswith("HTTP/1.1 413") and "at most 1,048,576 bytes" in answer

    def chunks() -> Iterator[bytes]:
        yield b'{"name": "' + b"x" * (2 << 20) + b'"}'

    streamed = httpx.post(f"{service.url}/projects", content=chunks(), timeout=60,
                          headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413, streamed.text
    with Client(service.url, world["created"]["owner_token"]) as owner:  # still answering
        assert owner.project(world["project_id"])["id"] == world["project_id"]


def test_refusals_fill_no_other_projects_log_and_are_limited(limited: Service) -> None:
    """The security review's case: any token could write access.refused events into another
    project's audit log (which refuses deletion) without limit, and one chain for every
    project id made up. Now a token's refusals elsewhere go to its own project's log, naming
    the project asked for, a made-up id makes no chain, and past the limit (5 here) they are
    429s, neither answered with a 403 nor audited."""
    from sqlalchemy import create_engine, text

    with Client(limited.url, limited.admin_token) as admin:
        victim = admin.create_project("victim", "person", ["a", "b"])
        other = admin.create_project("other", "person", ["a", "b"])
    victim_id, other_id = victim["project"]["id"], other["project"]["id"]
    intruder = other["owner_token"]
    engine = create_engine(limited.env["PPRL_DATABASE_URL"])

    def count(sql: str, **params: str) -> int:
        with engine.connect() as connection:
            return int(connection.execute(text(sql), params).scalar_one())

    heads = count("SELECT count(*) FROM audit_heads")
    codes = [_status(limited, intruder, victim_id) for _ in range(3)]
    codes += [_status(limited, intruder, f"prj_{i:016x}") for i in range(4)]
    assert codes == [403] * 5 + [429] * 2
    refused = "SELECT count(*) FROM audit_events WHERE action = 'access.refused' AND "
    assert count(refused + "project_id = :p", p=victim_id) == 0
    assert count(refused + "project_id = :p", p=other_id) == 5
    assert count("SELECT count(*) FROM audit_heads") == heads
    engine.dispose()
    with Client(limited.url, intruder) as owner:  # the token itself still works
        events = [e for e in owner.audit(other_id) if e["action"] == "access.refused"]
    assert {e["detail"]["asked_project"] for e in events} == {
        victim_id, "prj_0000000000000000", "prj_0000000000000001"}
