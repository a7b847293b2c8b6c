"""The whole service flow over HTTP against a live `pprl serve`: an administrator creates a
project, three providers upload, the owner runs linkage and reads results, parties read
their own mapping, and everything lands in the audit log."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import DBAPIError

from api.client import Client, ServiceError
from linker.backends import available_backends
from linker.clkset import load_clk_sets
from linker.link import link_sets
from tests.service_harness import PARTIES, PLACEHOLDER_RECORDS, Service, project_with_uploads

THRESHOLD = 0.75


@pytest.fixture(scope="module")
def linked(service: Service, provider_files: dict[str, Path]) -> dict[str, object]:
    """A project created with the CLI, uploads by each party's CLI, one finished run."""
    created = json.loads(service.pprl(
        "project", "create", "--name", "flow", "--schema", "person", "--dedup",
        *[a for p in PARTIES for a in ("--party", p)], "--json",
        token=service.admin_token).stdout)
    project_id = created["project"]["id"]
    for party in PARTIES:
        out = service.pprl("upload", project_id, party, str(provider_files[party]), "--json",
                           token=created["upload_tokens"][party])
        assert json.loads(out.stdout)["party"] == party
    run = json.loads(service.pprl("run", project_id, "--threshold", str(THRESHOLD), "--wait",
                                  "--json", token=created["owner_token"]).stdout)
    return {"created": created, "project_id": project_id, "run": run}


def _partition(pairs: list[tuple[str, str, str]]) -> set[frozenset[tuple[str, str]]]:
    """Entities as sets of (party, record_id), whatever the entity ids are."""
    groups: dict[str, set[tuple[str, str]]] = {}
    for entity, party, record_id in pairs:
        groups.setdefault(entity, set()).add((party, record_id))
    return {frozenset(g) for g in groups.values()}


def test_run_gives_the_linkers_entities_and_matches(service: Service, linked: dict,
                                                    provider_files: dict[str, Path]) -> None:
    run = linked["run"]
    assert run["state"] == "done" and run["progress"] == 1.0 and run["attempt"] == 1
    sets = load_clk_sets([provider_files[p] for p in PARTIES])
    expected = link_sets(sets, THRESHOLD, dedup=[True] * 3)
    with Client(service.url, linked["created"]["owner_token"]) as owner:
        served = [(m["party_a"], m["record_a"], m["party_b"], m["record_b"], m["score"])
                  for m in owner.matches(linked["project_id"], run["id"], page_size=500)]
        groups = owner.groups(linked["project_id"], run["id"], min_size=1, page_size=700)
    names = expected.parties
    wanted = [(names[pa], expected.record_ids[pa][ra], names[pb], expected.record_ids[pb][rb],
               s) for pa, ra, pb, rb, s in zip(expected.party_a.tolist(),
                                               expected.record_a.tolist(),
                                               expected.party_b.tolist(),
                                               expected.record_b.tolist(),
                                               expected.score.tolist(), strict=True)]
    assert served == wanted
    assert run["stats"]["links"] == len(wanted)
    want_partition = _partition([(str(e), p, r) for p, ids, es in
                                 zip(names, expected.record_ids, expected.entity_of, strict=True)
                                 for r, e in zip(ids, es.tolist(), strict=True)])
    assert _partition([(g["entity"], m["party"], m["record_id"]) for g in groups
                       for m in g["members"]]) == want_partition
    assert run["stats"]["entities"] == len(want_partition)


def test_a_run_records_its_backend_and_unknown_or_missing_ones_are_refused(
        service: Service, linked: dict) -> None:
    assert linked["run"]["backend"] == "cpu"
    with Client(service.url, linked["created"]["owner_token"]) as owner:
        refusals = {"tpu": "unknown backend 'tpu': choose from cpu, dask, gpu"}
        if "gpu" not in available_backends():
            refusals["gpu"] = r"backend 'gpu' is not installed on this service \(pip install"
        for name, message in refusals.items():
            with pytest.raises(ServiceError) as refused:
                owner.start_run(linked["project_id"], THRESHOLD, backend=name)
            assert refused.value.status == 422
            assert re.search(message, refused.value.message), refused.value.message
        if "dask" in available_backends():  # the worker runs it on a local cluster
            project_id = linked["project_id"]
            run = owner.wait(project_id, owner.start_run(project_id, THRESHOLD,
                                                         backend="dask")["id"], timeout=600)
            assert (run["state"], run["backend"]) == ("done", "dask"), run.get("error")
            assert owner.matches(project_id, run["id"]) == owner.matches(
                project_id, linked["run"]["id"])
            for stat in ("links", "entities", "candidate_pairs"):
                assert run["stats"][stat] == linked["run"]["stats"][stat], stat


def test_a_run_with_tokens_links_as_the_linker_does(service: Service,
                                                    token_provider_files: dict[str, Path]
                                                    ) -> None:
    """`pprl run --tokens T1,T3 --token-value-cap 100` on uploads carrying tokens: the run
    records its token options and gives the linker's links, token-only candidates and the
    placeholder identity's token values over the cap."""
    created = project_with_uploads(service, token_provider_files, "tokens")
    project_id = created["project"]["id"]
    run = json.loads(service.pprl("run", project_id, "--threshold", "0.95", "--tokens",
                                  "T1,T3", "--token-value-cap", "100", "--wait", "--json",
                                  token=created["owner_token"]).stdout)
    assert run["state"] == "done", run
    assert (run["tokens"], run["token_value_cap"]) == (["T1", "T3"], 100)
    expected = link_sets(load_clk_sets([token_provider_files[p] for p in PARTIES]), 0.95,
                         tokens=["T1", "T3"])
    assert expected.stats["token_only_pairs"] > 0
    for name in ("links", "token_only_pairs", "token_value_cap", "token_values_over_cap"):
        assert run["stats"][name] == expected.stats[name], name
    placeholder = sum(PLACEHOLDER_RECORDS.values())
    assert run["stats"]["token_values_over_cap"]["T1"] == {"values": 2, "records": placeholder}


def test_run_token_options_are_checked(service: Service, provider_files: dict[str, Path],
                                       token_provider_files: dict[str, Path]) -> None:
    """An unknown rule is refused as invalid (422); tokens that a party's upload does not
    carry refuse the run (409), naming the party; the CLI exits non-zero with the reason."""
    plain = project_with_uploads(service, provider_files, "no-tokens")
    with_tokens = project_with_uploads(service, token_provider_files, "with-tokens")
    with Client(service.url, with_tokens["owner_token"]) as owner:
        with pytest.raises(ServiceError) as refused:
            owner.start_run(with_tokens["project"]["id"], tokens=["T9"])
        assert refused.value.status == 422
        with pytest.raises(ServiceError) as refused:
            owner.start_run(with_tokens["project"]["id"], tokens=["T1"], token_value_cap=-1)
        assert refused.value.status == 422
    with Client(service.url, plain["owner_token"]) as owner:
        with pytest.raises(ServiceError, match="party 'claims': its latest upload carries no "
                                               "token T2 \\(its tokens: none\\)") as refused:
            owner.start_run(plain["project"]["id"], tokens=["T2"])
        assert refused.value.status == 409
    answer = service.pprl("run", plain["project"]["id"], "--tokens", "T1", check=False,
                          token=plain["owner_token"])
    assert answer.returncode != 0 and "carries no token T1" in answer.stderr

def test_each_party_reads_its_own_mapping_only(service: Service, linked: dict) -> None:
    created, project_id, run_id = linked["created"], linked["project_id"], linked["run"]["id"]
    with Client(service.url, created["owner_token"]) as owner:
        groups = owner.groups(project_id, run_id, min_size=1)
        reader_token = owner.create_reader_token(project_id, "claims")["token"]
    entity_of = {(m["party"], m["record_id"]): g["entity"] for g in groups
                 for m in g["members"]}
    for party in PARTIES:
        with Client(service.url, created["upload_tokens"][party]) as provider:
            mapping = provider.party_entities(project_id, run_id, party)
            others = [p for p in PARTIES if p != party]
            with pytest.raises(ServiceError) as refused:
                provider.party_entities(project_id, run_id, others[0])
            assert refused.value.status == 403
            with pytest.raises(ServiceError) as refused:
                provider.matches(project_id, run_id)
            assert refused.value.status == 403
        assert mapping and all(entity_of[(party, m["record_id"])] == m["entity"]
                               for m in mapping)
    with Client(service.url, reader_token) as reader:
        assert len(reader.party_entities(project_id, run_id, "claims")) == len(
            [k for k in entity_of if k[0] == "claims"])
    csv_out = service.pprl("results", project_id, str(run_id), "--party", "claims",
                           token=reader_token).stdout.splitlines()
    assert csv_out[0] == "record_id,entity" and len(csv_out) > 1


def test_entity_pseudonyms_differ_between_projects(service: Service, linked: dict,
                                                   provider_files: dict[str, Path]) -> None:
    other = project_with_uploads(service, provider_files, "second", dedup=True)
    project_id = other["project"]["id"]
    with Client(service.url, other["owner_token"]) as owner:
        run = owner.wait(project_id, owner.start_run(project_id, THRESHOLD)["id"])
        second = owner.groups(project_id, run["id"], min_size=1)
    with Client(service.url, linked["created"]["owner_token"]) as owner:
        first = owner.groups(linked["project_id"], linked["run"]["id"], min_size=1)
    assert _partition([(g["entity"], m["party"], m["record_id"]) for g in first
                       for m in g["members"]]) == \
        _partition([(g["entity"], m["party"], m["record_id"]) for g in second
                    for m in g["members"]])
    assert not {g["entity"] for g in first} & {g["entity"] for g in second}


def test_audit_log_records_every_step_and_cannot_be_rewritten(service: Service,
                                                              linked: dict) -> None:
    created, project_id = linked["created"], linked["project_id"]
    with Client(service.url, created["owner_token"]) as owner:
        owner.matches(project_id, linked["run"]["id"])
        events = owner.audit(project_id)
    actions = [e["action"] for e in events]
    assert actions[0] == "project.create"
    assert actions.count("upload") == 3 and "run.create" in actions
    reads = [e for e in events if e["action"] == "results.read"]
    assert reads and reads[-1]["detail"]["what"] == "matches"
    dumped = json.dumps(events)
    assert created["owner_token"] not in dumped
    assert not any(t in dumped for t in created["upload_tokens"].values())
    engine = create_engine(service.env["PPRL_DATABASE_URL"])
    try:
        for statement in ("UPDATE audit_events SET action = 'x'", "DELETE FROM audit_events"):
            with pytest.raises(DBAPIError, match="append-only"), engine.begin() as c:
                c.execute(text(statement))
        with engine.connect() as c:
            stored = c.execute(text("SELECT secret_hash FROM project_tokens")).scalars().all()
        assert created["owner_token"].rsplit("_", 1)[1] not in stored
    finally:
        engine.dispose()


def _without_triggers(engine: Engine, statement: str) -> None:
    """What someone with the database's own credentials could do: lift the append-only
    triggers, change the log, put them back."""
    postgres = engine.dialect.name == "postgresql"
    with engine.begin() as c:
        if postgres:
            c.execute(text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only"))
        else:
            c.execute(text("DROP TRIGGER audit_events_no_update"))
            c.execute(text("DROP TRIGGER audit_events_no_delete"))
        c.execute(text(statement))
        if postgres:
            c.execute(text("ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only"))
        else:
            for event in ("UPDATE", "DELETE"):
                c.execute(text(f"CREATE TRIGGER audit_events_no_{event.lower()} BEFORE {event} "
                               f"ON audit_events BEGIN SELECT RAISE(ABORT, 'append-only'); "
                               f"END"))


def test_an_auditor_reads_and_verifies_the_log_and_finds_tampering(
        service: Service, provider_files: dict[str, Path]) -> None:
    """Times are ISO-8601 UTC; the chain verifies; an edited event, a removed one and a log
    cut short at its end are each found by `pprl audit verify`, naming the event."""
    created = project_with_uploads(service, provider_files, "tampered")
    project_id = created["project"]["id"]
    with Client(service.url, created["owner_token"]) as owner:
        owner.wait(project_id, owner.start_run(project_id, THRESHOLD)["id"])
        auditor = owner.create_token(project_id, role="auditor", label="audit office")["token"]
    with Client(service.url, auditor) as auditing:
        events = auditing.audit(project_id)
        for refused in (lambda: auditing.matches(project_id, 1),
                        lambda: auditing.party_entities(project_id, 1, "ehr")):
            with pytest.raises(ServiceError, match="403"):
                refused()
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", e["at"]) for e in events)
    actions = [e["action"] for e in events]
    assert {"job.start", "job.done", "token.create"} <= set(actions)
    refusals = [e for e in auditing_events(service, auditor, project_id)
                if e["action"] == "access.refused"]
    assert {r["detail"]["operation"] for r in refusals} == {
        "GET /projects/{project_id}/runs/{run_id}/matches",
        "GET /projects/{project_id}/runs/{run_id}/parties/{party}/entities"}
    assert auditor not in json.dumps(refusals)

    def verify() -> subprocess.CompletedProcess[str]:
        return service.pprl("audit", "verify", project_id, token=auditor, check=False)

    intact = verify()
    assert intact.returncode == 0 and "chain intact" in intact.stdout
    engine = create_engine(service.env["PPRL_DATABASE_URL"])
    ids = [e["id"] for e in events]
    try:
        _without_triggers(engine, f"UPDATE audit_events SET detail = '{{}}' WHERE id = {ids[3]}")
        broken = verify()
        assert broken.returncode == 1 and f"event {ids[3]} was changed" in broken.stdout
        original = json.dumps(events[3]["detail"], sort_keys=True)  # put it back as it was
        _without_triggers(engine, "UPDATE audit_events SET detail = "
                                  f"'{original}' WHERE id = {ids[3]}")
        assert verify().returncode == 0
        _without_triggers(engine, f"DELETE FROM audit_events WHERE id = {ids[5]}")
        broken = verify()
        assert broken.returncode == 1 and f"event {ids[6]} does not follow" in broken.stdout
    finally:
        engine.dispose()


def auditing_events(service: Service, token: str, project_id: str) -> list[dict]:
    with Client(service.url, token) as reader:
        return reader.audit(project_id)


def test_a_log_cut_short_at_its_end_is_found(service: Service,
                                             provider_files: dict[str, Path]) -> None:
    created = project_with_uploads(service, provider_files, "cut short")
    project_id = created["project"]["id"]
    owner_token = created["owner_token"]
    assert service.pprl("audit", "verify", project_id, token=owner_token).returncode == 0
    engine = create_engine(service.env["PPRL_DATABASE_URL"])
    try:
        _without_triggers(engine, "DELETE FROM audit_events WHERE id = (SELECT MAX(id) FROM "
                                  f"audit_events WHERE project_id = '{project_id}')")
    finally:
        engine.dispose()
    broken = service.pprl("audit", "verify", project_id, token=owner_token, check=False)
    assert broken.returncode == 1 and "events at its end were removed" in broken.stdout
