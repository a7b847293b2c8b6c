"""``pprl risk``: the Safe Harbor check (every identifier kind, by name and by value shape;
ZIP3 areas; ages over 89), the JSON document's keys, the HTML report, and input errors."""

from __future__ import annotations

import datetime

import pyarrow as pa
import pytest

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
