"""Cohorts end to end over HTTP, on each database: synthetic providers, DICOM for the imaging
party de-identified by `pprl deid`, EHR and claims tokenized, encodings and attributes
uploaded, linked, counted, requested, approved, downloaded and relabelled; the counts are
checked against the truth, the two exports of one person against each other."""

from __future__ import annotations

import io
import json
import secrets
import shutil
import zipfile
from datetime import date
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pydicom
import pytest

from api.client import Client, ServiceError
from deid.profile import ProfileOptions
from deid.run import deidentify_folder
from linker.cohorts import RequestKeys, parse_definition, select_entities
from synth.dicom import truth_after_deid, write_imaging_dicom
from tests.service_harness import (
    OPEN_POLICY,
    SECRET,
    Service,
    project_with_uploads,
    provider_attributes,
)
from tokenizer.attributes_file import read_attributes
from tokenizer.catalog import load_schema
from tokenizer.keys import keyed_uid

CHEST_AFTER_DIAGNOSIS = {
    "name": "chest imaging within five years after an EHR encounter",
    "require": {"ehr": {"all": [{"column": "diagnosis", "present": True}]},
                "imaging": {"all": [{"column": "modality", "in": ["CT", "CR"]},
                                    {"column": "body_part", "in": ["CHEST"]}]}},
    "within": [{"after": {"party": "ehr", "column": "encounter_date"},
                "then": {"party": "imaging", "column": "study_date"}, "days": [0, 1825]}],
    "release": {"imaging": ["study_uid", "modality", "study_date"],
                "ehr": ["diagnosis", "encounter_date"]},
    "as_of_year": 2026}
DIABETES_CLAIMS = {
    "name": "type 2 diabetes with a claim",
    "require": {"ehr": {"any": [{"column": "diagnosis", "prefix": ["E11"]}]},
                "claims": {"all": [{"column": "procedure", "present": True}]}},
    "as_of_year": 2026}
ONE_PERSON = {"require": {"ehr": {"all": [{"column": "hba1c", "min": 8.3}]}},
              "as_of_year": 2026}


@pytest.fixture(scope="module")
def imaging_site(provider_files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
                 ) -> dict:
    """The imaging party as a site runs it: its studies as DICOM, `pprl deid` with full
    dates (a limited data set for the data manager) into encodings and attributes."""
    folder = provider_files["ehr"].parent
    work = tmp_path_factory.mktemp("imaging-site")
    write_imaging_dicom(folder / "imaging.parquet", work / "dicom")
    deidentify_folder(work / "dicom", work / "deid", load_schema("person"), SECRET,
                      secrets.token_bytes(32), ProfileOptions(dates="full"), workers=2)
    return {"deid": work / "deid", "work": work, "folder": folder}


@pytest.fixture(scope="module")
def cohort_world(service: Service, provider_files: dict[str, Path], imaging_site: dict
                 ) -> dict:
    folder = imaging_site["folder"]
    attributes = provider_attributes(folder, ("ehr", "claims"))
    attributes["imaging"] = imaging_site["deid"] / "attributes.parquet"
    encodings = {**provider_files, "imaging": imaging_site["deid"] / "encodings.parquet"}
    created = project_with_uploads(service, encodings, "cohorts", attributes=attributes,
                                   risk_policy=OPEN_POLICY)
    project_id = created["project"]["id"]
    with Client(service.url, created["owner_token"]) as owner:
        run = owner.wait(project_id, owner.start_run(project_id, 0.7)["id"])
        researchers = [owner.create_token(project_id, role="researcher",
                                          label=f"researcher {n}")["token"] for n in (1, 2)]
    assert run["state"] == "done"
    return {"project_id": project_id, "run_id": run["id"], "owner": created["owner_token"],
            "uploads": created["upload_tokens"], "researchers": researchers,
            "attributes": attributes, "service_key": (service.data_dir / "service.key")
            .read_bytes(), "truth": _truth(folder, imaging_site)}


def _truth(folder: Path, imaging_site: dict) -> dict:
    truth = truth_after_deid(folder / "truth.csv", imaging_site["deid"],
                             imaging_site["deid"].with_name("deid.deid-report.csv"))
    return {"members": pa.table({"party": truth["party"], "record_id": truth["record_id"],
                                 "entity": truth["true_id"]})}


def _client(service: Service, token: str) -> Client:
    return Client(service.url, token)


def _truth_count(world: dict, definition: dict) -> int:
    read = {p: read_attributes(path) for p, path in world["attributes"].items()}
    parsed = parse_definition(definition, {p: {c.name: c for c in a.columns}
                                           for p, a in read.items()})
    return len(select_entities(parsed, world["truth"]["members"],
                               {p: a.table for p, a in read.items()}))


@pytest.mark.parametrize("definition", [CHEST_AFTER_DIAGNOSIS, DIABETES_CLAIMS],
                         ids=["chest-after-encounter", "diabetes-claims"])
def test_counts_equal_the_truth_within_the_linkages_error(service: Service, cohort_world: dict,
                                                          definition: dict) -> None:
    with _client(service, cohort_world["researchers"][0]) as researcher:
        answer = researcher.count_cohort(cohort_world["project_id"], definition)
        again = researcher.count_cohort(cohort_world["project_id"], definition)
    truth = _truth_count(cohort_world, definition)
    assert truth >= 40
    assert answer == again  # deterministic: repeating a query averages nothing away
    assert answer["run_id"] == cohort_world["run_id"]
    assert abs(answer["entities"] - truth) <= 0.1 * truth, (answer["entities"], truth)
    for cells in answer["breakdown"].values():
        shown = [c["count"] for c in cells if not c["suppressed"]]
        assert all(n == 0 or n >= 11 for n in shown)
        assert sum(1 for c in cells if c["suppressed"]) != 1
        assert all(c["count"] is None for c in cells if c["suppressed"])
    assert {r["dimension"] for r in answer["representativeness"]} == \
        {"sex", "age_band", "race_ethnicity", "region"}


def test_a_small_cohort_shows_only_that_it_is_small(service: Service, cohort_world: dict
                                                    ) -> None:
    with _client(service, cohort_world["researchers"][0]) as researcher:
        answer = researcher.count_cohort(cohort_world["project_id"], ONE_PERSON)
    assert 0 < _truth_count(cohort_world, ONE_PERSON) < 11
    assert answer["entities"] is None and answer["min_cell"] == 11
    # No category either: those present would be this person's sex, age, race and region.
    assert answer["breakdown"] == {d: [] for d in ("sex", "age_band", "race_ethnicity",
                                                   "region")}
    assert all(r["cohort_share"] is None and not r["under_represented"]
               for r in answer["representativeness"])


@pytest.mark.parametrize(("definition", "status", "names"), [
    ({"require": {"ehr": {"all": [{"column": "shoe_size", "in": ["9"]}]}}}, 422, "shoe_size"),
    ({"require": {"dentist": {"all": [{"column": "x", "in": ["9"]}]}}}, 422, "dentist"),
    ({"require": {"ehr": {"all": [{"column": "encounter_date", "prefix": ["2"]}]}}}, 422,
     "encounter_date"),
    ({"require": {"ehr": {"all": [{"column": "diagnosis", "in": ["NOT-A-CODE"]}]}}}, 422,
     "empty"),
    ({"require": {"ehr": {"all": [{"column": "hba1c", "min": 10 ** 400}]}}}, 422, "hba1c"),
], ids=["unknown-column", "unknown-party", "operator-misfit", "empty-cohort",
        "bound-beyond-a-float"])
def test_a_bad_definition_is_a_4xx_naming_what_is_wrong(service: Service, cohort_world: dict,
                                                        definition: dict, status: int,
                                                        names: str) -> None:
    for path, body in ((f"/projects/{cohort_world['project_id']}/cohorts/count",
                        {"definition": definition}),
                       (f"/projects/{cohort_world['project_id']}/requests",
                        {"definition": definition, "purpose": "a definition that is wrong"})):
        answer = httpx.post(service.url + path, json=body, timeout=60, headers={
            "Authorization": f"Bearer {cohort_world['researchers'][0]}"})
        assert answer.status_code == status, answer.text
        assert names in answer.json()["detail"]


@pytest.mark.parametrize(("reference", "names"), [
    ({"sex": {"f": -1, "m": 2}}, "sex.f"),  # was 200, a share of -1.0 and a ratio of -0.563
    ({"shoe_size": {"9": 1}}, "shoe_size"),  # was 200, ignored
    ({"sex": {"f": 0, "m": 0}}, "sum to 0"),
])
def test_a_bad_reference_is_a_422_naming_it(service: Service, cohort_world: dict,
                                            reference: dict, names: str) -> None:
    answer = httpx.post(
        f"{service.url}/projects/{cohort_world['project_id']}/cohorts/count", timeout=60,
        json={"definition": ONE_PERSON, "reference": reference},
        headers={"Authorization": f"Bearer {cohort_world['researchers'][0]}"})
    assert answer.status_code == 422, answer.text
    assert names in answer.text


def _export(service: Service, world: dict, definition: dict, researcher: str) -> dict:
    project_id = world["project_id"]
    with _client(service, researcher) as asking:
        request = asking.request_cohort(project_id, definition, "lung nodule detection model")
        assert request["state"] == "pending"
        with pytest.raises(Exception, match="409"):
            asking.download_export(project_id, request["id"], Path("/nonexistent.zip"))
    # what a worker killed mid-export left (attempts of each export job count from 1):
    # removed once the export is published (it stayed for good, outside every quota)
    stale = service.data_dir / "exports" / project_id / f".{request['id']}.attempt2"
    (stale / "tables").mkdir(parents=True)
    (stale / "tables" / "entities.parquet").write_bytes(b"half written")
    with _client(service, world["owner"]) as owner:
        owner.decide(project_id, request["id"], approve=True)
        ready = owner.wait_request(project_id, request["id"], timeout=120)
    assert ready["state"] == "ready", ready
    assert not stale.exists()
    return {"request": ready,
            "tables": _download(service, project_id, request["id"], researcher)}


@pytest.fixture(scope="module")
def two_exports(service: Service, cohort_world: dict) -> list[dict]:
    """The same cohort exported twice, for two researchers."""
    return [_export(service, cohort_world, CHEST_AFTER_DIAGNOSIS, token)
            for token in cohort_world["researchers"]]


def test_the_export_holds_the_cohort_with_its_linked_demographics(
        service: Service, cohort_world: dict, two_exports: list[dict]) -> None:
    export = two_exports[0]
    entities = export["tables"]["entities"]
    with _client(service, cohort_world["researchers"][0]) as researcher:
        counted = researcher.count_cohort(cohort_world["project_id"], CHEST_AFTER_DIAGNOSIS)
    assert entities.num_rows == export["request"]["entities"] == counted["entities"]
    assert len(set(entities["pseudonym"].to_pylist())) == entities.num_rows
    assert all(entities["in_imaging"].to_pylist()) and all(entities["in_ehr"].to_pylist())
    # the imaging attributes hold no race or age: both come from the linked EHR (or claims)
    assert set(entities["race_ethnicity_from"].to_pylist()) <= {"ehr", None}
    assert "ehr" in entities["race_ethnicity_from"].to_pylist()
    assert set(entities["age_band_from"].to_pylist()) <= {"ehr", "claims", None}
    assert set(export["tables"]) == {"entities", "imaging", "ehr"}
    assert export["tables"]["imaging"].column_names == ["pseudonym", "study_uid", "modality",
                                                        "study_date"]
    assert set(export["tables"]["imaging"]["pseudonym"].to_pylist()) <= \
        set(entities["pseudonym"].to_pylist())


def test_two_exports_of_one_person_share_nothing_that_joins_them(
        service: Service, cohort_world: dict, two_exports: list[dict]) -> None:
    first, second = (e["tables"] for e in two_exports)
    for table, column in (("entities", "pseudonym"), ("imaging", "study_uid"),
                          ("ehr", "pseudonym")):
        assert not set(first[table][column].to_pylist()) & set(second[table][column].to_pylist())
    # The same people, paired as only the data manager can (the service key and the run's
    # entities): each export moved a person's dates by its own offset, so no one shift
    # aligns the two, while the interval between a person's imaging and EHR dates survived.
    keys = [RequestKeys(cohort_world["service_key"], e["request"]["id"]) for e in two_exports]
    run = service.data_dir / "runs" / cohort_world["project_id"] / str(cohort_world["run_id"])
    entities = set(pq.read_table(run / "parties.parquet")["entity"].to_pylist())
    pairs = {keys[0].pseudonym(e): keys[1].pseudonym(e) for e in entities}
    paired = first["entities"]["pseudonym"].to_pylist()
    assert {pairs[p] for p in paired} == set(second["entities"]["pseudonym"].to_pylist())

    def first_dates(tables: dict, table: str, column: str) -> dict[str, date]:
        dates: dict[str, date] = {}
        for p, d in zip(tables[table]["pseudonym"].to_pylist(),
                        tables[table][column].to_pylist(), strict=True):
            dates[p] = min(d, dates.get(p, d))
        return dates

    shifts, intervals = set(), []
    imaging = [first_dates(t, "imaging", "study_date") for t in (first, second)]
    ehr = [first_dates(t, "ehr", "encounter_date") for t in (first, second)]
    for p in paired:
        shifts.add((imaging[0][p] - imaging[1][pairs[p]]).days)
        intervals.append(((imaging[0][p] - ehr[0][p]).days,
                          (imaging[1][pairs[p]] - ehr[1][pairs[p]]).days))
    assert len(shifts) > len(paired) // 2
    assert all(a == b for a, b in intervals)


def test_the_imaging_site_relabels_its_images_to_match_the_export(
        service: Service, cohort_world: dict, imaging_site: dict, two_exports: list[dict]
        ) -> None:
    export = two_exports[0]
    request_id = export["request"]["id"]
    relabel = imaging_site["work"] / f"{request_id}.relabel.json"
    service.pprl("cohort", "relabel", cohort_world["project_id"], request_id, "-o",
                 str(relabel), token=cohort_world["uploads"]["imaging"])
    assert relabel.stat().st_mode & 0o077 == 0
    out = imaging_site["work"] / f"cohort-{request_id}"
    args = ("cohort", "dicom", str(relabel), str(imaging_site["deid"]), str(out))
    service.pprl(*args)
    written = pq.read_table(out / "cohort-manifest.parquet")
    studies = export["tables"]["imaging"]
    exported = {(p, u, d.strftime("%Y%m%d")) for p, u, d in zip(
        *(studies[c].to_pylist() for c in ("pseudonym", "study_uid", "study_date")),
        strict=True)}
    on_disk = set(zip(*(written[c].to_pylist() for c in ("pseudonym", "study_uid",
                                                         "study_date")), strict=True))
    assert exported == on_disk
    files = sorted(out.rglob("*.dcm"))
    assert len(files) == written.num_rows
    cohort = set(export["tables"]["entities"]["pseudonym"].to_pylist())
    # every UID the site gave (instance, series, study, frame of reference, references) is
    # the request's remapping of one in the site's de-identified files, never the original
    uid_key = bytes.fromhex(json.loads(relabel.read_text())["uid_key"])
    site_uids = {e.value for p in imaging_site["deid"].rglob("*.dcm")
                 for e in pydicom.dcmread(p, stop_before_pixels=True).iterall()
                 if e.VR == "UI" and str(e.value).startswith("2.25.")}
    remapped = {keyed_uid(uid_key, u) for u in site_uids}
    for path in files[:40]:
        dataset = pydicom.dcmread(path)
        given = {e.value for e in dataset.iterall()
                 if e.VR == "UI" and str(e.value).startswith("2.25.")}
        assert {"SeriesInstanceUID", "FrameOfReferenceUID"} <= set(dataset.dir())
        assert given <= remapped and not given & site_uids, path
        assert dataset.PatientID == str(dataset.PatientName) == path.parts[-4]
        assert dataset.PatientID in cohort
        assert (dataset.PatientID, dataset.StudyInstanceUID, dataset.StudyDate) in exported
        assert dataset.file_meta.MediaStorageSOPInstanceUID == dataset.SOPInstanceUID
        assert dataset.LongitudinalTemporalInformationModified == "MODIFIED"
    # a re-run resumes: the same files, nothing rewritten
    mtimes = {p: p.stat().st_mtime_ns for p in files}
    summary = service.pprl(*args, "--json").stdout
    assert '"written": 0' in summary
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.dcm")} == mtimes
    # another request's relabel file is refused for this folder
    other = two_exports[1]["request"]["id"]
    other_file = imaging_site["work"] / f"{other}.relabel.json"
    service.pprl("cohort", "relabel", cohort_world["project_id"], other, "-o",
                 str(other_file), token=cohort_world["uploads"]["imaging"])
    refused = service.pprl("cohort", "dicom", str(other_file), str(imaging_site["deid"]),
                           str(out), check=False)
    assert refused.returncode != 0 and request_id in refused.stderr


def test_a_retried_export_job_keeps_one_risk_report(service: Service, cohort_world: dict,
                                                    two_exports: list[dict]) -> None:
    """The jobs review's case: a worker killed after keeping the export's risk report but
    before ending the job left the retry to keep a second one (same figures, two
    risk.report events). The retry's report is the one kept."""
    from sqlalchemy import create_engine, func, select
    from sqlalchemy.orm import Session

    from api.models import RiskReport
    from api.schemas import RiskPolicy
    from api.services.release import store_report

    request = two_exports[0]["request"]
    engine = create_engine(service.env["PPRL_DATABASE_URL"])
    try:
        with Session(engine) as session:
            first = session.get_one(RiskReport, request["risk_report_id"])
            again = store_report(session, cohort_world["project_id"], first.job_id,
                                 request["id"], RiskPolicy(), {}, [], "a retry")
            session.commit()
            assert again.id == first.id
            assert session.scalar(select(func.count()).select_from(RiskReport).where(
                RiskReport.request_id == request["id"])) == 1
    finally:
        engine.dispose()


def test_a_researcher_sees_only_their_own_requests(service: Service, cohort_world: dict,
                                                   two_exports: list[dict]) -> None:
    project_id = cohort_world["project_id"]
    mine = two_exports[0]["request"]["id"]
    with _client(service, cohort_world["researchers"][1]) as other:
        assert mine not in {r["id"] for r in other.cohort_requests(project_id)}
        with pytest.raises(Exception, match="403"):
            other.cohort_request(project_id, mine)
        with pytest.raises(Exception, match="403"):
            other.download_export(project_id, mine, Path("/nonexistent.zip"))
    with _client(service, cohort_world["owner"]) as owner:
        assert mine in {r["id"] for r in owner.cohort_requests(project_id)}


def test_a_rejected_request_carries_its_reason_and_cannot_be_approved(
        service: Service, cohort_world: dict) -> None:
    project_id = cohort_world["project_id"]
    with _client(service, cohort_world["researchers"][0]) as asking:
        request = asking.request_cohort(project_id, DIABETES_CLAIMS, "a cohort to be refused")
    with _client(service, cohort_world["owner"]) as owner:
        rejected = owner.decide(project_id, request["id"], approve=False,
                                reason="purpose outside the data use agreement")
        assert rejected["state"] == "rejected"
        with pytest.raises(Exception, match="409"):
            owner.decide(project_id, request["id"], approve=True)
    with _client(service, cohort_world["researchers"][0]) as asking:
        seen = asking.cohort_request(project_id, request["id"])
    assert seen["reason"] == "purpose outside the data use agreement"


def test_a_failed_export_leaves_nothing_and_can_be_retried(service: Service,
                                                           cohort_world: dict) -> None:
    """The EHR's stored attributes vanish before the export runs: the job fails, no export
    folder is left, and once the file is back, approving again exports it."""
    project_id = cohort_world["project_id"]
    with _client(service, cohort_world["researchers"][0]) as asking:
        request = asking.request_cohort(project_id, DIABETES_CLAIMS, "a retried export")
    stored = [u for u in _uploads(service, cohort_world) if u["kind"] == "attributes"
              and u["party"] == "ehr"][-1]
    files = list((service.data_dir / "uploads" / project_id / "ehr").glob("*.parquet"))
    match = [f for f in files if _sha256(f) == stored["sha256"]]
    assert len(match) == 1
    aside = match[0].with_name("aside")
    shutil.move(match[0], aside)
    folder = service.data_dir / "exports" / project_id / request["id"]
    try:
        with _client(service, cohort_world["owner"]) as owner:
            owner.decide(project_id, request["id"], approve=True)
            failed = owner.wait_request(project_id, request["id"], timeout=120)
        assert failed["state"] == "failed"
        assert not folder.exists()
        assert not list(folder.parent.glob(f".{request['id']}*"))
    finally:
        shutil.move(aside, match[0])
    with _client(service, cohort_world["owner"]) as owner:
        owner.decide(project_id, request["id"], approve=True)
        assert owner.wait_request(project_id, request["id"], timeout=120)["state"] == "ready"
    assert folder.is_dir()


def _uploads(service: Service, world: dict) -> list[dict]:
    answer = httpx.get(f"{service.url}/projects/{world['project_id']}/uploads", timeout=60,
                       headers={"Authorization": f"Bearer {world['owner']}"})
    assert answer.status_code == 200
    listed: list[dict] = answer.json()
    return listed


def _sha256(path: Path) -> str:
    import hashlib
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_every_cohort_step_is_in_the_audit_log(service: Service, cohort_world: dict,
                                               two_exports: list[dict]) -> None:
    request_id = two_exports[0]["request"]["id"]
    with _client(service, cohort_world["owner"]) as owner:
        events = owner.audit(cohort_world["project_id"])
    actions = [e["action"] for e in events]
    for action in ("attributes.upload", "cohort.count", "cohort.request", "cohort.approve",
                   "cohort.download"):
        assert action in actions, action
    about = [e for e in events if e["detail"].get("request_id") == request_id]
    assert [e["action"] for e in about][:6] == ["cohort.request", "cohort.approve",
                                               "job.start", "risk.report", "job.done",
                                               "cohort.download"]
    assert about[4]["role"] == "worker" and about[4]["detail"]["kind"] == "cohort_export"
    assert about[3]["detail"]["passed"] is True
    # how every job ended is there too: the linkage run, and the export that failed
    ended = [(e["action"], e["detail"].get("kind")) for e in events
             if e["action"].startswith("job.")]
    assert ("job.done", "linkage") in ended and ("job.failed", "cohort_export") in ended
    researcher_id = cohort_world["researchers"][0].split("_")[1]
    assert about[0]["actor"] == researcher_id and about[0]["role"] == "researcher"
    counted = [e for e in events if e["action"] == "cohort.count"]
    assert all(len(e["detail"]["definition_sha256"]) == 64 for e in counted)
    # the log holds hashes of definitions, never their codes
    assert not any("C34" in str(e["detail"]) or "E11" in str(e["detail"]) for e in events)


def test_the_researchers_commands_request_download_csv_and_see_a_rejection(
        service: Service, cohort_world: dict, two_exports: list[dict],
        tmp_path: Path) -> None:
    """`pprl cohort request|requests|approve|download --format csv|reject` as each role runs
    them; the CSV export holds the same rows as the Parquet one of the same request."""
    project_id = cohort_world["project_id"]
    researcher, owner = cohort_world["researchers"][0], cohort_world["owner"]
    definition = tmp_path / "chest.json"
    definition.write_text(json.dumps(CHEST_AFTER_DIAGNOSIS))
    asked = json.loads(service.pprl("cohort", "request", project_id, str(definition),
                                    "--purpose", "the commands test", "--json",
                                    token=researcher).stdout)
    assert asked["state"] == "pending"
    listed = service.pprl("cohort", "requests", project_id, token=researcher).stdout
    assert asked["id"] in listed and "pending" in listed
    approved = service.pprl("cohort", "approve", project_id, asked["id"], "--wait",
                            token=owner).stdout
    assert "ready" in approved
    target = tmp_path / "chest.zip"
    service.pprl("cohort", "download", project_id, asked["id"], "--format", "csv", "-o",
                 str(target), token=researcher)
    with zipfile.ZipFile(target) as archive:
        tables = {Path(n).stem: pacsv.read_csv(io.BytesIO(archive.read(n)))
                  for n in archive.namelist()}
    parquet = two_exports[0]["tables"]
    assert set(tables) == set(parquet)
    for name, table in tables.items():
        assert table.num_rows == parquet[name].num_rows
        assert table.column_names == parquet[name].column_names
    assert sorted(map(str, tables["imaging"]["modality"].to_pylist())) == sorted(
        parquet["imaging"]["modality"].to_pylist())
    other = json.loads(service.pprl("cohort", "request", project_id, str(definition),
                                    "--purpose", "a request to refuse", "--json",
                                    token=researcher).stdout)
    service.pprl("cohort", "reject", project_id, other["id"], "--reason", "not in the DUA",
                 token=owner)
    seen = service.pprl("cohort", "requests", project_id, token=researcher).stdout
    assert f"{other['id']}" in seen and "rejected" in seen and "not in the DUA" in seen
    refused = service.pprl("cohort", "download", project_id, other["id"], "-o",
                           str(tmp_path / "no.zip"), token=researcher, check=False)
    assert refused.returncode != 0 and "409" in refused.stdout + refused.stderr
    assert not (tmp_path / "no.zip").exists()
    with _client(service, owner) as owning:
        actions = [(e["action"], e["detail"].get("request_id"))
                   for e in owning.audit(project_id)]
    assert ("cohort.reject", other["id"]) in actions


def test_a_project_without_a_finished_run_has_no_cohorts(service: Service,
                                                          provider_files: dict[str, Path]
                                                          ) -> None:
    created = project_with_uploads(service, provider_files, "no run yet",
                                   attributes=provider_attributes(provider_files["ehr"].parent))
    project_id = created["project"]["id"]
    with _client(service, created["owner_token"]) as owner:
        researcher = owner.create_token(project_id, role="researcher")["token"]
    with _client(service, researcher) as asking:
        for ask in (lambda: asking.count_cohort(project_id, DIABETES_CLAIMS),
                    lambda: asking.request_cohort(project_id, DIABETES_CLAIMS,
                                                  "before any linkage")):
            with pytest.raises(ServiceError) as refused:
                ask()
            assert refused.value.status == 409
            assert "no linkage run has finished yet" in refused.value.message


def test_the_release_gate_holds_a_risky_export_until_it_is_generalised(
        service: Service, cohort_world: dict) -> None:
    """With the default policy (k >= 11, highest prosecutor risk <= 0.09, no Safe Harbor
    finding) a small cohort's export is held with its report; the researcher cannot
    download it; the owner has the suggested generalisation applied, which releases it; an
    auditor re-runs the report and gets the same figures; the policy changes are audited."""
    project_id, researcher = cohort_world["project_id"], cohort_world["researchers"][0]
    with _client(service, cohort_world["owner"]) as owner:
        auditor = json.loads(service.pprl("project", "token", project_id, "--role", "auditor",
                                          "--json", token=cohort_world["owner"]).stdout)["token"]
        service.pprl("project", "policy", project_id, token=cohort_world["owner"])  # default
        try:
            with _client(service, researcher) as asking:
                request_id = asking.request_cohort(project_id, CHEST_AFTER_DIAGNOSIS,
                                                   "the release gate test")["id"]
            owner.decide(project_id, request_id, approve=True)
            held = owner.wait_request(project_id, request_id, timeout=120)
            assert held["state"] == "held", held
            shown = service.pprl("cohort", "risk-report", project_id, request_id,
                                 token=auditor).stdout
            assert "HELD" in shown and "held: k-anonymity" in shown
            (report,) = owner.risk_reports(project_id, request_id)
            assert report["id"] == held["risk_report_id"] and not report["passed"]
            assert report["report"]["k_anonymity"] < 11
            assert any(r.startswith("k-anonymity") for r in report["reasons"])
            assert not any(r.startswith("Safe Harbor") for r in report["reasons"])
            assert report["report"]["quasi_identifiers"] == ["sex", "age_band",
                                                             "race_ethnicity", "region"]
            assert held["entities"] > 0  # the owner sees what the gate may withhold
            refused = service.pprl("cohort", "download", project_id, request_id, "-o",
                                   str(Path("/nonexistent.zip")), token=researcher,
                                   check=False)
            assert "held: its export does not meet the project's risk policy" in \
                refused.stderr  # not "once it is approved": it was
            with _client(service, researcher) as asking:
                # ... the researcher not even the count, in the request or in the list
                assert asking.cohort_request(project_id, request_id)["entities"] is None
                assert [r["entities"] for r in asking.cohort_requests(project_id)
                        if r["id"] == request_id] == [None]
                for refused, status in (
                        (lambda: asking.download_export(project_id, request_id,
                                                        Path("/nonexistent.zip")), 409),
                        (lambda: asking.risk_reports(project_id, request_id), 403)):
                    with pytest.raises(ServiceError) as error:
                        refused()
                    assert error.value.status == status
            released = json.loads(service.pprl("cohort", "generalise", project_id, request_id,
                                               "--wait", "--json",
                                               token=cohort_world["owner"]).stdout)
            assert released["state"] == "ready", released
            last = owner.risk_reports(project_id, request_id)[-1]
            assert last["passed"] and last["report"]["k_anonymity"] >= 11
            assert last["report"]["prosecutor"]["highest_risk"] <= 0.09
            done = last["report"]["generalisation"]
            assert done["k_anonymity"] >= 11 and done["released"] == released["entities"]
        finally:
            owner.set_risk_policy(project_id, OPEN_POLICY)
    tables = _download(service, project_id, request_id, researcher)
    kept = set(tables["entities"]["pseudonym"].to_pylist())
    assert len(kept) == released["entities"]
    assert all(set(tables[p]["pseudonym"].to_pylist()) <= kept for p in ("imaging", "ehr"))
    again = json.loads(service.pprl("cohort", "risk-report", project_id, request_id, "--rerun",
                                    "--json", token=auditor).stdout)
    with _client(service, auditor) as auditing:
        assert len(auditing.risk_reports(project_id, request_id)) == 3
        with pytest.raises(ServiceError, match="403"):
            auditing.download_export(project_id, request_id, Path("/nonexistent.zip"))
        events = auditing.audit(project_id)
    # the same export, assessed again under the open policy: the same figures, now passed
    figures = ("k_anonymity", "prosecutor", "equivalence_classes", "dataset")
    assert {k: again["report"][k] for k in figures} == {k: last["report"][k] for k in figures}
    assert again["passed"] and again["policy"]["min_k"] == 1
    changes = [e for e in events if e["action"] == "policy.change"]
    assert [c["detail"]["after"]["min_k"] for c in changes][-2:] == [11, 1]
    verdicts = [e["detail"]["passed"] for e in events if e["action"] == "risk.report"
                and e["detail"]["request_id"] == request_id]
    assert verdicts == [False, True, True]


def _download(service: Service, project_id: str, request_id: str, researcher: str
              ) -> dict[str, pa.Table]:
    answer = httpx.get(f"{service.url}/projects/{project_id}/requests/{request_id}/export",
                       headers={"Authorization": f"Bearer {researcher}"}, timeout=60)
    assert answer.status_code == 200, answer.text
    with zipfile.ZipFile(io.BytesIO(answer.content)) as archive:
        return {Path(n).stem: pq.read_table(io.BytesIO(archive.read(n)))
                for n in archive.namelist()}
