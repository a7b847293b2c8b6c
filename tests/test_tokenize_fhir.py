"""FHIR R4 Patient input to ``pprl tokenize``: which element feeds which column, record ids,
and malformed resources rejected by line or entry number without their values."""

from __future__ import annotations

import csv
import json
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from api.cli import cli
from tokenizer.catalog import load_schema
from tokenizer.encodings_file import read_encodings
from tokenizer.errors import AllRowsRejectedError, InputError
from tokenizer.fhir import MalformedResource, patient_columns
from tokenizer.pipeline import rejects_path_for, tokenize_file

from .test_normalize import FHIR_FORMS, fhir_patient

SECRET = b"fhir tests: a linkage secret long enough"
TODAY = date(2024, 6, 1)
PERSON = load_schema("person")


def _ndjson(path: Path, lines: list[object | str]) -> Path:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n"
                            for line in lines), encoding="utf-8")
    return path


def _rejects(out: Path) -> list[dict[str, str]]:
    with rejects_path_for(out).open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_the_mapping_of_a_patient() -> None:
    assert patient_columns(fhir_patient("José", "García", "1980-02-15", "male",
                                        "12 Elm Street", "62704", "217-555-0199"), TODAY) == {
        "id": "p-García-62704-217-555-0199", "mrn": "MRN-1", "given_name": "José",
        "surname": "García", "date_of_birth": "1980-02-15", "sex": "male",
        "address": "12 Elm Street", "city": "Springfield", "zip": "62704",
        "phone": "217-555-0199"}


def test_fallbacks_when_nothing_is_marked() -> None:
    """No official name: the first that is not old or a maiden name; no current home address
    or home phone: the first current one (by rank for phones); only old ones: the first."""
    patient = {
        "resourceType": "Patient",
        "identifier": [{"type": {"coding": [{"code": "PI"}]}, "value": "other"},
                       {"type": {"coding": [{"system": "elsewhere", "code": "MR"}]},
                        "value": "not v2-0203"}],
        "name": [{"use": "maiden", "family": "Old"}, {"family": "Now", "given": ["Ann"]}],
        "address": [{"use": "home", "line": ["ended"], "period": {"end": "2024-05"}},
                    {"use": "temp", "line": ["current"], "period": {"end": "2024-06"}}],
        "telecom": [{"system": "phone", "use": "work", "value": "2", "rank": 2},
                    {"system": "phone", "use": "temp", "value": "1", "rank": 1}],
    }
    columns = patient_columns(patient, TODAY)
    assert (columns["surname"], columns["given_name"], columns["address"], columns["phone"],
            columns["mrn"], columns["id"]) == ("Now", "Ann", "current", "1", "", "")
    only_old = {"resourceType": "Patient", "name": [{"use": "old", "family": "Was"}],
                "telecom": [{"system": "phone", "use": "old", "value": "9"}]}
    assert patient_columns(only_old, TODAY)["surname"] == "Was"
    assert patient_columns(only_old, TODAY)["phone"] == "9"


@pytest.mark.parametrize(("resource", "reason"), [
    ([1], "is not a JSON object"),
    ({"name": []}, "has no resourceType"),
    ({"resourceType": "Observation"}, "has resourceType Observation, not Patient"),
    ({"resourceType": "José García"}, "has a resourceType that is not a FHIR resource type"),
    ({"resourceType": "Patient", "birthDate": 19800215}, "has Patient.birthDate that is not a "
                                                         "string"),
    ({"resourceType": "Patient", "name": {"family": "X"}}, "has Patient.name that is not a "
                                                           "list"),
    ({"resourceType": "Patient", "name": [{"given": "Jose"}]},
     "has Patient.name.given that is not a list"),
    ({"resourceType": "Patient", "telecom": [{"system": "phone", "rank": "1"}]},
     "has Patient.telecom.rank that is not an integer"),
])
def test_wrong_types_are_named_without_their_value(resource: object, reason: str) -> None:
    with pytest.raises(MalformedResource) as raised:
        patient_columns(resource, TODAY)
    assert raised.value.reason == reason


def test_malformed_lines_go_to_the_rejects_file_by_line_number(tmp_path) -> None:
    good = FHIR_FORMS[:2]
    source = _ndjson(tmp_path / "p.ndjson", [
        good[0], "{not json", "", {"resourceType": "Observation", "id": "o"},
        {"resourceType": "Patient", "id": "x", "gender": ["male"]}, good[1]])
    out = tmp_path / "out.parquet"
    report = tokenize_file(source, PERSON, SECRET, out, chunk_size=1)
    assert (report.records_written, report.rejected) == (2, 3)
    assert read_encodings(out).record_ids == [good[0]["id"], good[1]["id"]]
    assert [(r["row"], r["reason"], r["raw_text"]) for r in _rejects(out)] == [
        ("2", "is not JSON (Expecting property name enclosed in double quotes)", ""),
        ("4", "has resourceType Observation, not Patient", ""),
        ("5", "has Patient.gender that is not a string", "")]
    assert tokenize_file(source, PERSON, SECRET, tmp_path / "big.parquet").records_written == 2
    assert read_encodings(tmp_path / "big.parquet").clks.tobytes() == \
        read_encodings(out).clks.tobytes()


def test_bundle_entries_are_numbered_and_the_mrn_can_be_the_record_id(tmp_path) -> None:
    bundle = tmp_path / "b.json"
    bundle.write_text(json.dumps({"resourceType": "Bundle", "entry": [
        {"resource": FHIR_FORMS[0]}, {"request": {"method": "POST"}}, "x"]}), encoding="utf-8")
    out = tmp_path / "out.parquet"
    report = tokenize_file(bundle, PERSON, SECRET, out, id_column="mrn")
    assert read_encodings(out).record_ids == ["MRN-1"]
    assert report.rejected == 2
    assert [(r["row"], r["reason"]) for r in _rejects(out)] == [
        ("2", "has no resource"), ("3", "is not a JSON object")]


def test_a_patient_without_an_id_is_rejected_and_ids_must_be_unique(tmp_path) -> None:
    nameless = {**FHIR_FORMS[0]}
    del nameless["id"]
    out = tmp_path / "out.parquet"
    report = tokenize_file(_ndjson(tmp_path / "p.ndjson", [nameless, FHIR_FORMS[1]]), PERSON,
                           SECRET, out)
    assert report.records_written == 1
    assert _rejects(out)[0]["reason"] == "id (the record id) is empty"
    with pytest.raises(InputError, match=r"appear more than once \(rows 1, 2\)"):
        tokenize_file(_ndjson(tmp_path / "twice.ndjson", FHIR_FORMS[:1] * 2), PERSON, SECRET,
                      tmp_path / "twice.parquet")


def test_a_file_of_only_malformed_resources_fails(tmp_path) -> None:
    source = _ndjson(tmp_path / "bad.ndjson", ["[]", "nope", {"resourceType": "Observation"}])
    with pytest.raises(AllRowsRejectedError):
        tokenize_file(source, PERSON, SECRET, tmp_path / "out.parquet")
    result = CliRunner().invoke(cli, ["tokenize", str(source), "--schema", "person", "-o",
                                      str(tmp_path / "out.parquet"), "--secret-env", "S",
                                      "--workers", "1"], env={"S": SECRET.decode()})
    assert result.exit_code == 1
    assert "all 3 rows were rejected" in result.output
    assert "1 x row has resourceType Observation, not Patient" in result.output
    assert not (tmp_path / "out.parquet").exists()


@pytest.mark.parametrize(("text", "message"), [
    ("{", "is not JSON"),
    ('{"resourceType": "Patient"}', "must be a FHIR Bundle"),
    ('{"resourceType": "Bundle", "entry": {}}', "entry is not a list"),
])
def test_a_json_file_must_be_a_bundle(tmp_path, text: str, message: str) -> None:
    (tmp_path / "b.json").write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match=message):
        tokenize_file(tmp_path / "b.json", PERSON, SECRET, tmp_path / "out.parquet")


def test_a_byte_order_mark_is_accepted(tmp_path) -> None:
    """The reported case: with a UTF-8 BOM (Windows editors write one) a Bundle was refused
    and an NDJSON file's first Patient was rejected."""
    plain = _ndjson(tmp_path / "plain.ndjson", FHIR_FORMS[:2])
    tokenize_file(plain, PERSON, SECRET, tmp_path / "plain.parquet")
    expected = read_encodings(tmp_path / "plain.parquet").clks.tobytes()
    ndjson = tmp_path / "bom.ndjson"
    ndjson.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())
    bundle = tmp_path / "bom.json"
    bundle.write_bytes(b"\xef\xbb\xbf" + json.dumps({"resourceType": "Bundle", "entry": [
        {"resource": r} for r in FHIR_FORMS[:2]]}).encode())
    for source in (ndjson, bundle):
        out = tmp_path / f"{source.suffix[1:]}.parquet"
        report = tokenize_file(source, PERSON, SECRET, out)
        assert report.records_written == 2 and report.rejected == 0
        assert read_encodings(out).clks.tobytes() == expected
