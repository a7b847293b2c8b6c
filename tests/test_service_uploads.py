"""Uploads are checked before anything is stored, and a refused upload leaves nothing."""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import create_engine

from api.client import Client, ServiceError
from tests.bad_uploads import BAD_PARQUET, write_bad, write_expanding
from tests.service_harness import PROMPT, SECRET, Service, project_with_uploads
from tokenizer.catalog import load_schema
from tokenizer.keys import key_check_value
from tokenizer.pipeline import tokenize_file


@pytest.fixture(scope="module")
def project(service: Service) -> dict:
    with Client(service.url, service.admin_token) as admin:
        return admin.create_project("uploads", "person", ["imaging", "ehr"])


def _stored_files(service: Service) -> list[Path]:
    return sorted(p for folder in ("uploads", "tmp")
                  for p in (service.data_dir / folder).rglob("*") if p.is_file())


def _refused(service: Service, project: dict, path: Path, status: int, match: str) -> None:
    before = _stored_files(service)
    with Client(service.url, project["upload_tokens"]["ehr"]) as provider:
        with pytest.raises(ServiceError) as refused:
            provider.upload(project["project"]["id"], "ehr", path)
        assert refused.value.status == status, refused.value.message
        assert match in refused.value.message
        assert provider.project(project["project"]["id"])["uploads"]["ehr"] is None
    assert _stored_files(service) == before


def test_encodings_of_another_schema_are_refused_naming_both(
        service: Service, project: dict, provider_files: dict[str, Path],
        tmp_path: Path) -> None:
    """Same length (1024 bits), other schema (febrl): the fingerprints differ."""
    schema = load_schema("febrl")
    people = pq.read_table(provider_files["ehr"].parent / "ehr.parquet")
    columns = {f.identifier: people[f.identifier] if f.identifier in people.column_names
               else pa.array([""] * people.num_rows) for f in schema.hashed_features}
    source, other = tmp_path / "febrl-input.parquet", tmp_path / "febrl.clks.parquet"
    pq.write_table(pa.table({**columns, "record_id": people["record_id"]}), source)
    tokenize_file(source, schema, SECRET, other, id_column="record_id", workers=1,
                  progress=False)
    assert schema.bloom_filter_bits == project["project"]["bloom_filter_bits"]
    _refused(service, project, other, 422, project["project"]["schema_fingerprint"])
    _refused(service, project, other, 422, schema.fingerprint)


def test_duplicate_record_ids_are_refused(service: Service, project: dict,
                                          provider_files: dict[str, Path],
                                          tmp_path: Path) -> None:
    table = pq.read_table(provider_files["ehr"])
    doubled = pa.concat_tables([table, table.slice(0, 2)])
    path = tmp_path / "dupes.parquet"
    pq.write_table(doubled, path)
    _refused(service, project, path, 422,
             f"record_id of row {table.num_rows + 1:,} repeats row 1")


def test_corrupt_and_oversized_uploads_are_refused(service: Service, project: dict,
                                                   tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"PAR1" + os.urandom(5000))
    _refused(service, project, corrupt, 422, "Parquet")
    huge = tmp_path / "huge.parquet"
    huge.write_bytes(os.urandom(9 << 20))  # the test service's limit is 8 MiB
    _refused(service, project, huge, 413, "limit")


def test_oversized_upload_without_length_is_stopped_while_streaming(
        service: Service, project: dict) -> None:
    before = _stored_files(service)

    def body() -> object:
        for _ in range(10):
            yield os.urandom(1 << 20)

    response = httpx.put(
        f"{service.url}/projects/{project['project']['id']}/parties/ehr/encodings",
        content=body(), headers={"Authorization": f"Bearer {project['upload_tokens']['ehr']}",
                                 "Content-Type": "application/vnd.apache.parquet"},
        timeout=60)
    assert response.status_code == 413
    assert _stored_files(service) == before


def test_unsupported_content_type_is_refused(service: Service, project: dict) -> None:
    response = httpx.put(
        f"{service.url}/projects/{project['project']['id']}/parties/ehr/encodings",
        content=b"a,b\n1,2\n", timeout=30,
        headers={"Authorization": f"Bearer {project['upload_tokens']['ehr']}",
                 "Content-Type": "text/csv"})
    assert response.status_code == 415


def test_clkhash_json_upload_is_accepted_and_replaces_the_previous(
        service: Service, project: dict, provider_files: dict[str, Path],
        tmp_path: Path) -> None:
    source = provider_files["imaging"].parent / "imaging.parquet"
    as_json = tmp_path / "imaging.json"
    tokenize_file(source, load_schema("person"), SECRET, as_json, output_format="clkhash-json",
                  id_column="record_id", workers=1, progress=False)
    project_id = project["project"]["id"]
    with Client(service.url, project["upload_tokens"]["imaging"]) as provider:
        first = provider.upload(project_id, "imaging", provider_files["imaging"])
        second = provider.upload(project_id, "imaging", as_json)
        assert second["source_format"] == "clkhash-json"
        assert second["records"] == first["records"] == pq.read_metadata(
            provider_files["imaging"]).num_rows
        assert provider.project(project_id)["uploads"]["imaging"] == second["records"]


def test_encodings_made_with_another_secret_are_refused(service: Service,
                                                       provider_files: dict[str, Path],
                                                       tmp_path: Path) -> None:
    """The reported case, at the service: one provider's secret file had a trailing newline,
    and the run would have found 0 links. The upload is refused naming both parties, a run
    cannot start, and the provider's corrected upload is accepted."""
    with Client(service.url, service.admin_token) as admin:
        created = admin.create_project("secrets", "person", ["imaging", "ehr"])
    project_id = created["project"]["id"]
    with Client(service.url, created["upload_tokens"]["imaging"]) as imaging:
        first = imaging.upload(project_id, "imaging", provider_files["imaging"])
    assert first["key_check"] == key_check_value(SECRET)
    wrong = tmp_path / "ehr-newline.clks.parquet"
    tokenize_file(provider_files["ehr"].parent / "ehr.parquet", load_schema("person"),
                  SECRET + b"\n", wrong, id_column="record_id", provider="ehr", workers=1,
                  progress=False)
    before = _stored_files(service)
    with Client(service.url, created["upload_tokens"]["ehr"]) as ehr:
        with pytest.raises(ServiceError) as refused:
            ehr.upload(project_id, "ehr", wrong)
        assert refused.value.status == 409
        message = refused.value.message
        assert "'ehr'" in message and "'imaging'" in message and "line break" in message
        assert _stored_files(service) == before
        assert ehr.project(project_id)["uploads"]["ehr"] is None
        ehr.upload(project_id, "ehr", provider_files["ehr"])
    with Client(service.url, created["owner_token"]) as owner:
        assert owner.start_run(project_id)["state"] == "queued"


@pytest.mark.parametrize("case", sorted(BAD_PARQUET))
def test_every_column_type_and_metadata_value_is_checked(
        service: Service, project: dict, provider_files: dict[str, Path], tmp_path: Path,
        case: str) -> None:
    """The reported cases: each passed every upload check (201) and some stopped every
    worker later, or gave a 500."""
    bad = tmp_path / "bad.parquet"
    message = write_bad(provider_files["ehr"], case, bad)
    _refused(service, project, bad, 422, message)


def test_an_int64_record_id_upload_stops_no_ones_linkage(
        service: Service, project: dict, provider_files: dict[str, Path],
        tmp_path: Path) -> None:
    """The reported case: such an upload (201) made the worker exit at run time, and every
    project's runs stayed queued."""
    bad = tmp_path / "ints.parquet"
    write_bad(provider_files["ehr"], "int64 record_id", bad)
    _refused(service, project, bad, 422, "record_id must be string")
    other = project_with_uploads(service, provider_files, "after-a-bad-upload")
    with Client(service.url, other["owner_token"]) as owner:
        project_id = other["project"]["id"]
        run = owner.wait(project_id, owner.start_run(project_id, 0.8)["id"], timeout=120)
    assert run["state"] == "done" and run["attempt"] == 1


def test_clkhash_json_is_parsed_as_it_streams(service: Service, project: dict,
                                              tmp_path: Path) -> None:
    """JSON nested 200,000 deep gave a 500 (RecursionError); other shapes are refused with
    the byte where they went wrong."""
    cases = {"deep.json": ("[" * 200_000, "expected '{' at byte 0"),
             "other-key.json": ('{"encodings": []}', 'expected the key "clks"'),
             "empty.json": ('{"clks": []}', "holds no CLK"),
             "numbers.json": ('{"clks": [1, 2]}', "not clkhash JSON at byte 10"),
             "mixed.json": ('{"clks": ["' + "A" * 172 + '==", "AAAA"]}', "clks[1] has 3 bytes")}
    for name, (text, message) in cases.items():
        path = tmp_path / name
        path.write_text(text)
        _refused(service, project, path, 422, message)


def _memory_mib(pid: int, field: str) -> float:
    """VmRSS (now) or VmHWM (peak since the last reset) of a process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field}")


def test_a_file_that_expands_is_refused_in_bounded_memory(
        service: Service, project: dict, provider_files: dict[str, Path],
        tmp_path: Path) -> None:
    """The reported case: a 12 KB Parquet file expanded to 2.2 GB in the API. Checking it
    costs the API (not its workers) no more than a bounded amount above what it held before
    (the peak is reset first, so earlier tests' uploads do not count: 5 > clear_refs)."""
    expanding = tmp_path / "expanding.parquet"
    write_expanding(provider_files["ehr"], expanding)
    assert expanding.stat().st_size < 1 << 20  # decoded: over 80 GB
    pid = service.process.pid
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    before = _memory_mib(pid, "VmRSS")
    _refused(service, project, expanding, 422, "repeats row 1")
    assert _memory_mib(pid, "VmHWM") - before < 200


def test_a_held_database_lock_blocks_no_other_request(service: Service, project: dict,
                                                      provider_files: dict[str, Path],
                                                      tmp_path: Path) -> None:
    """The reported case: while another connection held SQLite's write lock, the async upload
    handler's database calls blocked the event loop, so /health took as long as the lock.
    And the audit's: a token's first use in a minute wrote its last use under the lock (30 s,
    then 503), and /health needed one of the API's worker threads, which uploads waiting for
    the lock can all take. On PostgreSQL the holder locks uploads, and token rows against
    writes."""
    project_id = project["project"]["id"]
    with Client(service.url, project["owner_token"]) as owner:
        fresh = [owner.create_reader_token(project_id, "ehr")["token"] for _ in range(4)]
    small = tmp_path / "small.parquet"
    pq.write_table(pq.read_table(provider_files["imaging"]).slice(0, 20), small)

    def upload(path: Path) -> int:
        return httpx.put(f"{service.url}/projects/{project_id}/parties/imaging/encodings",
                         content=path.read_bytes(), timeout=120, headers={
                             "Authorization": f"Bearer {project['upload_tokens']['imaging']}",
                             "Content-Type": "application/vnd.apache.parquet"}).status_code

    def first_use(token: str) -> tuple[int, float]:
        started = time.monotonic()
        answer = httpx.get(f"{service.url}/projects/{project_id}/schema", timeout=5,
                           headers={"Authorization": f"Bearer {token}"})
        return answer.status_code, time.monotonic() - started

    url = service.env["PPRL_DATABASE_URL"]
    engine = create_engine(url)
    holder = engine.connect()
    if url.startswith("sqlite"):
        holder.exec_driver_sql("BEGIN IMMEDIATE")  # what a long write by a worker holds
    else:
        holder.begin()
        holder.exec_driver_sql("LOCK TABLE uploads IN ACCESS EXCLUSIVE MODE")
        holder.exec_driver_sql("LOCK TABLE project_tokens IN EXCLUSIVE MODE")
    uploads = ThreadPoolExecutor(50)
    try:
        waiting = [uploads.submit(upload, provider_files["imaging"])]
        time.sleep(0.5)
        with ThreadPoolExecutor(len(fresh)) as requests:
            answers = list(requests.map(first_use, fresh))
        assert [code for code, _ in answers] == [200] * len(fresh)
        assert max(seconds for _, seconds in answers) < PROMPT
        # uploads waiting for the lock take every worker thread of the API (40)
        waiting += [uploads.submit(upload, small) for _ in range(45)]
        time.sleep(1.5)
        for _ in range(3):
            started = time.monotonic()
            assert httpx.get(f"{service.url}/health", timeout=5).status_code == 200
            assert time.monotonic() - started < PROMPT
            time.sleep(0.3)
    finally:
        holder.rollback()
        holder.close()
        engine.dispose()
    # each waited for the lock, then went in
    assert [future.result(timeout=120) for future in waiting] == [201] * len(waiting)
    uploads.shutdown()


@pytest.mark.parametrize(("column", "values", "rule"), [
    ("phone", ["c1", "c2"], "is named like a phone number"),
    ("note_code", ["I10", "123-45-6789"], "holds values shaped like a social security number"),
])
def test_attributes_holding_direct_identifiers_are_refused(
        service: Service, project: dict, tmp_path: Path, column: str, values: list[str],
        rule: str) -> None:
    """A file made without `pprl attributes` (which would have refused it) is refused by the
    service with the same rules, naming the column and the rule, never the value."""
    path = tmp_path / "attributes.parquet"
    table = pa.table({"record_id": ["p1", "p2"], column: values})
    metadata = {"pprl.format": "pprl-attributes/1", "pprl.provider": "ehr",
                "pprl.columns": json.dumps([{"name": column, "type": "code",
                                             "role": "payload"}])}
    pq.write_table(table.replace_schema_metadata(metadata), path)
    with (Client(service.url, project["upload_tokens"]["ehr"]) as provider,
          pytest.raises(ServiceError) as refused):
        provider.upload(project["project"]["id"], "ehr", path, "attributes")
    assert refused.value.status == 422
    assert f"column '{column}' {rule}" in refused.value.message
    assert "123-45" not in refused.value.message
