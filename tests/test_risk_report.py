"""``pprl risk``: the Safe Harbor check (every identifier kind, by name and by value shape;
ZIP3 areas; ages over 89), the JSON document's keys, the HTML report, and input errors."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result

from api.cli import cli
from deid.risk.safe_harbor import IDENTIFIER_KINDS, RESTRICTED_ZIP3, safe_harbor_findings

NEUTRAL = ["A7", "B3", "C9"]

# kind -> a column name that says it holds that kind (values neutral)
BY_NAME = {
    "names": "PatientName",
    "geographic_subdivisions": "city",
    "dates": "date_of_service",
    "telephone_numbers": "phone",
    "fax_numbers": "fax_number",
    "email_addresses": "email",
    "social_security_numbers": "SSN",
    "medical_record_numbers": "mrn",
    "health_plan_beneficiary_numbers": "member_id",
    "account_numbers": "account_number",
    "certificate_license_numbers": "drivers_license",
    "vehicle_identifiers": "license_plate",
    "device_identifiers": "DeviceSerialNumber",
    "urls": "website",
    "ip_addresses": "ip_address",
    "biometric_identifiers": "fingerprint",
    "full_face_photographs": "photo",
    "other_unique_identifiers": "national_id",
}
# kind -> values of a neutrally named column, shaped like that kind
BY_VALUE = {
    "geographic_subdivisions": ["12 Main Street", "x"],
    "dates": ["2021-03-04", "x"],
    "telephone_numbers": ["(555) 123-4567", "x"],
    "email_addresses": ["someone@example.org", "x"],
    "social_security_numbers": ["123-45-6789", "x"],
    "medical_record_numbers": ["MRN-004711", "x"],
    "health_plan_beneficiary_numbers": ["1EG4-TE5-MK73", "1EG4TE5MK72"],
    "account_numbers": ["4111 1111 1111 1111", "x"],
    "vehicle_identifiers": ["1M8GDM9AXKP042788", "11111111111111111"],
    "device_identifiers": ["00:1a:2b:3c:4d:5e", "x"],
    "urls": ["https://example.org/p/1", "x"],
    "ip_addresses": ["192.168.10.1", "x"],
    "full_face_photographs": ["data:image/png;base64,AAAA", "x"],
}


def kinds(table: pa.Table, **kwargs: int) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for f in safe_harbor_findings(table, **kwargs):
        found.setdefault(f.column, set()).add(f.identifier)
    return found


def test_every_kind_is_covered_by_a_name_rule() -> None:
    assert set(BY_NAME) == set(IDENTIFIER_KINDS)


@pytest.mark.parametrize("kind", sorted(BY_NAME))
def test_findings_by_column_name(kind: str) -> None:
    name = BY_NAME[kind]
    assert kinds(pa.table({name: NEUTRAL, "sex": ["F", "M", "F"]})) == {name: {kind}}


@pytest.mark.parametrize("kind", sorted(BY_VALUE))
def test_findings_by_value_shape(kind: str) -> None:
    values = BY_VALUE[kind]
    findings = safe_harbor_findings(pa.table({"c": values}))
    assert {f.identifier for f in findings} == {kind}
    finding = findings[0]
    assert finding.column == "c" and finding.rule.startswith("values shaped like")
    assert finding.paragraph == f"45 CFR 164.514(b)(2)(i)({IDENTIFIER_KINDS[kind][0]})"
    assert not any(v in text for v in values for text in (finding.rule, finding.paragraph))


def test_findings_by_type() -> None:
    table = pa.table({"c": [datetime.date(2020, 5, 1)],
                      "scan": pa.array([b"\x89PNG\r\n\x1a\n..."], pa.binary())})
    assert kinds(table) == {"c": {"dates"}, "scan": {"full_face_photographs"}}


def test_codes_that_only_look_like_identifiers_are_not_findings() -> None:
    table = pa.table({
        "record_id": ["r1", "r2", "r3"], "sex": ["F", "M", "F"], "birth_year": [1960, 1975, 1990],
        "age_band": ["85-89", "90+", "40-44"], "zip3": ["021", "100", "000"],
        "time": ["10:30:00", "11:00:00", "12:15:00"], "code": ["J45.909", "E11.9", "I10"],
        "token": ["0123456789ABCDEF0", "FEDCBA98765432100", "00000000000000001"],
    })
    assert safe_harbor_findings(table, as_of_year=2025) == []


# HHS OCR, de-identification guidance (2012), section 3.4
HHS_RESTRICTED_ZIP3 = ["036", "059", "063", "102", "203", "556", "692", "790", "821", "823",
                       "830", "831", "878", "879", "884", "890", "893"]


def test_the_shipped_zip3_table_is_hhs_list() -> None:
    assert sorted(RESTRICTED_ZIP3) == HHS_RESTRICTED_ZIP3


@pytest.mark.parametrize("zip3", HHS_RESTRICTED_ZIP3)
def test_each_restricted_zip3_is_a_finding(zip3: str) -> None:
    for column in (pa.array(["100", zip3]), pa.array([100, int(zip3)])):  # 036 read as 36
        findings = safe_harbor_findings(pa.table({"zip3": column}))
        assert [(f.column, f.identifier) for f in findings] == [("zip3",
                                                                 "geographic_subdivisions")]
        assert "1 of the 17" in findings[0].rule and zip3 not in findings[0].rule


def test_zip3_of_a_large_area_is_allowed_and_a_full_zip_is_not() -> None:
    assert safe_harbor_findings(pa.table({"zip": ["021", "100"], "zip_3": [945, 606]})) == []
    # generalised by --target-k (first digit, then *): coarser still, was "a full ZIP code"
    assert safe_harbor_findings(pa.table({"zip3": ["6", "*", "021", None]})) == []
    assert kinds(pa.table({"zip3": ["6", "036"]})) == {"zip3": {"geographic_subdivisions"}}
    assert kinds(pa.table({"zip": ["02134", "10001"]})) == {"zip": {"geographic_subdivisions"}}
    assert kinds(pa.table({"zip3": ["02134", "10001"]})) == {"zip3": {"geographic_subdivisions"}}


@pytest.mark.parametrize(("values", "over_89"), [
    ([45, 89], False), ([45, 90], True), ([45.0, 89.9], False), ([12.0, 97.5], True),
    (["45", "90"], True), (["045Y", "092Y"], True), (["045Y", "089Y", "006M"], False),
    (["85-89", "90+"], False), (["85-89", ">89"], False), (["90-94", "95+"], True),
    (["90 or older", "45"], False), (["95+", "45"], True),
])
def test_ages_over_89(values: list[object], over_89: bool) -> None:
    findings = safe_harbor_findings(pa.table({"PatientAge": values}))
    assert [f.identifier for f in findings] == (["dates"] if over_89 else [])


def test_birth_years_that_reveal_ages_over_89() -> None:
    table = pa.table({"birth_year": [1936, 1980], "YearOfBirth": ["1935", "1980"]})
    assert kinds(table, as_of_year=2025) == {"YearOfBirth": {"dates"}}
    assert kinds(table, as_of_year=2026) == {"birth_year": {"dates"}, "YearOfBirth": {"dates"}}
    # attributes files store numbers as float64: such birth years were never looked at
    floats = pa.table({"birth_year": pa.array([1980.0, None, 1936.0], pa.float64())})
    assert kinds(floats, as_of_year=2025) == {}
    assert kinds(floats, as_of_year=2026) == {"birth_year": {"dates"}}


# --- pprl risk ------------------------------------------------------------------------------

DOCUMENT_KEYS = ["format", "tool_version", "dataset", "quasi_identifiers", "sensitive",
                 "population_size", "k_anonymity", "l_diversity", "entropy_l_diversity",
                 "recursive_cl_diversity", "t_closeness", "beta_likeness",
                 "enhanced_beta_likeness", "delta_disclosure", "equivalence_classes",
                 "sample_uniques", "prosecutor", "journalist", "marketer",
                 "population_uniqueness", "safe_harbor"]
RELEASED = pa.table({
    "record_id": [f"r{i}" for i in range(8)],
    "age_band": ["40-44", "40-44", "40-44", "45-49", "45-49", "45-49", "90+", "90+"],
    "sex": ["F", "F", "F", "M", "M", "M", "F", "F"],
    "zip3": ["021", "021", "021", "100", "100", "100", "036", "036"],
    "diagnosis": ["J45", "E11", "I10", "J45", "J45", "E11", "I10", "C34"],
    "email": ["<b>&x@example.org", None, None, None, None, None, None, None],
})


def risk(*args: str) -> Result:
    return CliRunner().invoke(cli, ["risk", *args], prog_name="pprl")


@pytest.fixture(params=["csv", "parquet"])
def released(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    path = tmp_path / f"released.{request.param}"
    if request.param == "csv":
        pacsv.write_csv(RELEASED, path, pacsv.WriteOptions(delimiter=";"))
    else:
        pq.write_table(RELEASED, path)
    return path


def test_json_document_and_html_report(released: Path, tmp_path: Path) -> None:
    report = tmp_path / "out" / "report.html"
    shown = risk(str(released), "-q", "age_band", "-q", "sex", "-q", "zip3", "-s", "diagnosis",
                 "--population-size", "1000", "--threshold", "0.4", "--json", "-o", str(report))
    assert shown.exit_code == 0, shown.output
    document = json.loads(shown.output)
    assert list(document) == DOCUMENT_KEYS
    assert document["format"] == "pprl-risk-report/1"
    assert document["dataset"]["file"] == released.name and document["dataset"]["rows"] == 8
    assert document["k_anonymity"] == 2 and document["l_diversity"] == 2
    assert document["prosecutor"]["highest_risk"] == 0.5
    assert document["prosecutor"]["records_at_risk"] == 0.25  # the class of 2 is above 0.4
    assert {(f["column"], f["identifier"]) for f in document["safe_harbor"]} == {
        ("zip3", "geographic_subdivisions"), ("email", "email_addresses")}
    page = report.read_text(encoding="utf-8")
    assert page.count('src="data:image/png;base64,') == 2
    for text in ("k_anonymity", "prosecutor.highest_risk", "population_uniqueness",
                 released.name, document["dataset"]["sha256"], "age_band, sex, zip3",
                 document["tool_version"], "164.514(b)(2)(i)(F)"):
        assert text in page
    assert "example.org" not in page  # findings never quote a value
    assert [p.name for p in report.parent.iterdir()] == ["report.html"]  # no temp file left


def test_column_names_are_escaped_in_html(tmp_path: Path) -> None:
    path, report = tmp_path / "t.parquet", tmp_path / "r.html"
    pq.write_table(pa.table({"<script>x</script>": ["a", "a"]}), path)
    assert risk(str(path), "-q", "<script>x</script>", "-o", str(report)).exit_code == 0
    page = report.read_text()
    assert "<script>" not in page and "&lt;script&gt;x&lt;/script&gt;" in page


def test_summary_without_json(released: Path) -> None:
    shown = risk(str(released), "-q", "sex")
    assert shown.exit_code == 0, shown.output
    assert "k_anonymity: 3" in shown.output and "Safe Harbor: 2 finding(s)" in shown.output
    assert "example.org" not in shown.output


@pytest.mark.parametrize(("args", "message"), [
    (["-q", "sex", "-q", "zipcode"], "no column 'zipcode' (--quasi-identifier)"),
    (["-q", "sex", "-s", "dx"], "no column 'dx' (--sensitive)"),
    (["-q", "sex", "-s", "sex"], "column 'sex' is named both"),
    ([], "name at least one --quasi-identifier"),
    (["-q", "sex", "--population-size", "5"], "smaller than the table's 8 records"),
])
def test_bad_options_fail_clearly_and_write_nothing(released: Path, tmp_path: Path,
                                                    args: list[str], message: str) -> None:
    report = tmp_path / "report.html"
    shown = risk(str(released), *args, "-o", str(report))
    assert shown.exit_code == 1 and message in shown.output
    assert "Traceback" not in shown.output and not report.exists()


def test_unreadable_inputs_fail_clearly(tmp_path: Path) -> None:
    empty, header_only, ragged, other = (tmp_path / n for n in (
        "empty.csv", "header.csv", "ragged.csv", "data.xlsx"))
    empty.write_text("")
    header_only.write_text("sex,zip3\n")
    ragged.write_text("sex,zip3\nF,021\nM,100,123-45-6789\n")
    other.write_text("x")
    for path, message in ((empty, "is empty"), (header_only, "has no rows"),
                          (ragged, "data row 2 has 3 fields where the header has 2"),
                          (other, "unknown file type '.xlsx'"),
                          (tmp_path / "missing.csv", "no such file")):
        shown = risk(str(path), "-q", "sex")
        assert shown.exit_code == 1 and message in shown.output, shown.output
        assert str(path) in shown.output and "123-45-6789" not in shown.output


def _ages(rows: int = 60) -> pa.Table:
    """Exact ages and 5-digit ZIPs: almost every record unique until generalised."""
    rng = np.random.default_rng(7)
    return pa.table({"age": rng.integers(20, 80, rows),
                     "zip": [f"{z:05d}" for z in rng.choice([2134, 2139, 10001, 10003], rows)],
                     "sex": rng.choice(["F", "M"], rows),
                     "diagnosis": rng.choice(["J45", "E11", "I10"], rows)})


def test_a_target_generalises_and_the_report_assesses_the_release(tmp_path: Path) -> None:
    source, out = tmp_path / "ages.parquet", tmp_path / "release.csv"
    pq.write_table(_ages(), source)
    before = json.loads(risk(str(source), "-q", "age", "-q", "zip", "-q", "sex",
                             "--json").output)
    assert before["k_anonymity"] == 1
    shown = risk(str(source), "-q", "age", "-q", "zip", "-q", "sex", "-s", "diagnosis",
                 "--target-k", "5", "--max-suppression", "0.1", "-t", str(out), "--json")
    assert shown.exit_code == 0, shown.output
    document = json.loads(shown.output)
    done = document["generalisation"]
    assert done["target"]["required_k"] == 5 and done["k_anonymity"] >= 5
    assert document["k_anonymity"] == done["k_anonymity"]  # the release is what is assessed
    assert document["dataset"]["rows"] == 60 - done["suppressed"]
    assert done["suppressed"] <= 6 and 0 < done["loss"] <= 1
    written = pacsv.read_csv(out)
    assert written.num_rows == 60 - done["suppressed"]
    assert set(written.column_names) == {"age", "zip", "sex", "diagnosis"}
    summary = risk(str(source), "-q", "age", "-q", "zip", "-q", "sex", "--max-risk", "0.2")
    assert summary.exit_code == 0 and "Generalised to k >= 5" in summary.output


def test_an_unreachable_target_fails_clearly_and_writes_nothing(tmp_path: Path) -> None:
    source, out = tmp_path / "ages.parquet", tmp_path / "release.parquet"
    pq.write_table(_ages(8), source)
    shown = risk(str(source), "-q", "age", "-q", "zip", "--target-k", "20",
                 "--max-suppression", "0", "-t", str(out))
    assert shown.exit_code == 1 and "Traceback" not in shown.output
    assert str(source) in shown.output and not out.exists()
    assert "need --target-k" in risk(str(source), "-q", "age", "-t", str(out)).output
