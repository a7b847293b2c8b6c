"""Identifiers normalised one way everywhere: each raw form of a person gives the CLK of its
normalised form, through CSV, Parquet, FHIR Patient resources and the DICOM Patient module
alike."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pydicom
import pytest
from click.testing import CliRunner

from api.cli import cli
from tokenizer.catalog import load_schema, shipped_schema_text
from tokenizer.encodings_file import read_encodings
from tokenizer.errors import AllRowsRejectedError
from tokenizer.normalize import Normalizer, parse_date
from tokenizer.normalize.kinds import KindContext, normalize_kind
from tokenizer.pipeline import rejects_path_for, tokenize_file
from tokenizer.values import ValueRejected

from .deid_data import pydicom_file
from .golden import case

SECRET = b"normalisation tests: one secret for all"
SITE_KEY = b"normalisation tests: the site key"
COLUMNS = ["given_name", "surname", "date_of_birth", "sex", "address", "zip", "phone"]
# The README's normalised form of the person of the reported case.
NORMALISED = ["jose", "garcia", "1980-02-15", "m", "12 elm street", "62704", "2175550199"]
RAW_FORMS = [
    ["JOSE", "GARCIA", "2/15/1980", "M", "12 Elm Street", "62704", "217-555-0199"],
    ["  José ", "García", "1980-02-15", "male", "12  ELM STREET", "62704-1234",
     "(217) 555-0199"],
    ["Jose", "GARCIA", "15.02.1980", "Male", "12 Elm Street.", "62704", "+1 217 555 0199"],
    ["JOSÉ", "Garcia", "15 Feb 1980", "m", "12 elm street", " 62704 ", "217.555.0199 x12"],
    ["jose", "garcia", "19800215", "M", "12, Elm Street", "627041234", "12175550199"],
]


def _csv(path: Path, rows: list[list[str]], header: list[str] = COLUMNS,
         delimiter: str = ",") -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _clks(path: Path) -> list[bytes]:
    return [bytes(c) for c in read_encodings(path).clks]


@pytest.fixture(scope="module")
def normalised_clk(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    folder = tmp_path_factory.mktemp("normalised")
    out = folder / "n.parquet"
    tokenize_file(_csv(folder / "n.csv", [NORMALISED]), load_schema("person"), SECRET, out)
    (clk,) = _clks(out)
    return clk


def test_raw_csv_forms_give_the_clk_of_the_normalised_form(tmp_path, normalised_clk) -> None:
    out = tmp_path / "raw.parquet"
    report = tokenize_file(_csv(tmp_path / "raw.csv", RAW_FORMS), load_schema("person"), SECRET,
                           out)
    assert report.rejected == 0
    assert _clks(out) == [normalised_clk] * len(RAW_FORMS)


def test_raw_parquet_forms_give_the_same_clks(tmp_path, normalised_clk) -> None:
    """Parquet columns of other types too: an integer ZIP (leading zeros lost by a
    spreadsheet are padded back), a date32 birth date."""
    columns = {c: [row[i] for row in RAW_FORMS] for i, c in enumerate(COLUMNS)}
    source = tmp_path / "raw.parquet"
    pq.write_table(pa.table(columns), source)
    out = tmp_path / "out.parquet"
    tokenize_file(source, load_schema("person"), SECRET, out)
    assert _clks(out) == [normalised_clk] * len(RAW_FORMS)
    import datetime

    typed = tmp_path / "typed.parquet"
    pq.write_table(pa.table({**{c: [v] for c, v in zip(COLUMNS, NORMALISED, strict=True)},
                             "date_of_birth": pa.array([datetime.date(1980, 2, 15)]),
                             "zip": pa.array([62704], pa.int64())}), typed)
    tokenize_file(typed, load_schema("person"), SECRET, tmp_path / "typed.out.parquet")
    assert _clks(tmp_path / "typed.out.parquet") == [normalised_clk]
    boston = {**dict(zip(COLUMNS, NORMALISED, strict=True)), "zip": "02134"}
    as_text, as_number = tmp_path / "text-zip.parquet", tmp_path / "number-zip.parquet"
    pq.write_table(pa.table({c: [v] for c, v in boston.items()}), as_text)
    pq.write_table(pa.table({**{c: [v] for c, v in boston.items()},
                             "zip": pa.array([2134], pa.int64())}), as_number)
    for path in (as_text, as_number):
        tokenize_file(path, load_schema("person"), SECRET, path.with_suffix(".out.parquet"))
    assert _clks(as_number.with_suffix(".out.parquet")) == _clks(
        as_text.with_suffix(".out.parquet")) != [normalised_clk]


def _dicom_patient(path: Path, *, name: str, birth: str, sex: str, address: str,
                   phone: str) -> None:
    ds = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = name, "MRN-1", birth
    ds.PatientSex, ds.PatientAddress, ds.PatientTelephoneNumbers = sex, address, phone
    ds.save_as(path, enforce_file_format=True)


def _deid_clk(tmp_path: Path, schema: str, *extra: str, name: str = "GARCIA^JOSE",
              address: str = "12 Elm Street, Springfield, IL 62704",
              phone: str = "217-555-0199") -> bytes:
    """The CLK `pprl deid` gives the person of the reported case from the Patient module;
    the manifest holds the same bytes."""
    in_dir, out = tmp_path / "in", tmp_path / "out"
    in_dir.mkdir(parents=True)
    _dicom_patient(in_dir / "ct.dcm", name=name, birth="19800215", sex="M", address=address,
                   phone=phone)
    (tmp_path / "secret").write_bytes(SECRET)
    (tmp_path / "site").write_bytes(SITE_KEY)
    result = CliRunner().invoke(cli, [
        "deid", str(in_dir), str(out), "--schema", schema, "--workers", "1",
        "--secret-file", str(tmp_path / "secret"), "--site-key-file", str(tmp_path / "site"),
        *extra])
    assert result.exit_code == 0, result.output
    (clk,) = _clks(out / "encodings.parquet")
    (row,) = pq.read_table(out / "manifest.parquet").to_pylist()
    assert row["clk"] == clk
    return clk


def _tokenize_clk(tmp_path: Path, schema: str, header: list[str], row: list[str],
                  *extra: str) -> bytes:
    """The CLK `pprl tokenize` gives one CSV row."""
    source, out = _csv(tmp_path / "row.csv", [row], header), tmp_path / "row.parquet"
    result = CliRunner().invoke(cli, ["tokenize", str(source), "--schema", schema, "-o",
                                      str(out), "--secret-env", "S", "--workers", "1", *extra],
                                env={"S": SECRET.decode()})
    assert result.exit_code == 0, result.output
    (clk,) = _clks(out)
    return clk


@pytest.mark.parametrize(("name", "address", "phone"), [
    ("GARCIA^JOSE", "12 Elm Street, Springfield, IL 62704", "217-555-0199"),
    ("García^José^Luis", "12 ELM STREET^^Springfield^IL^62704-1234^USA", "(217) 555-0199"),
])
def test_the_dicom_patient_module_gives_the_same_clk(tmp_path, normalised_clk, name, address,
                                                     phone) -> None:
    assert _deid_clk(tmp_path, "person", name=name, address=address,
                     phone=phone) == normalised_clk


def fhir_patient(given: str, family: str, birth: str, gender: str, street: str, zip_code: str,
                 phone: str) -> dict[str, object]:
    """A Patient whose current official name, home address and home phone are the given
    values, beside an old name, an ended home address, a work address, a work phone and an
    email that must not be used."""
    return {
        "resourceType": "Patient", "id": f"p-{family}-{zip_code}-{phone}",
        "identifier": [{"type": {"coding": [{"system": "http://terminology.hl7.org/"
                                                       "CodeSystem/v2-0203", "code": "MR"}]},
                        "value": "MRN-1"}],
        "name": [{"use": "old", "family": "Smith", "given": ["Maria"]},
                 {"use": "official", "family": family, "given": [given, "Luis"]}],
        "gender": gender, "birthDate": birth,
        "address": [{"use": "home", "line": ["1 Old Road"], "postalCode": "99999",
                     "period": {"end": "2001-06-30"}},
                    {"use": "work", "line": ["5 Work Avenue"], "postalCode": "11111"},
                    {"use": "home", "line": [street, "Apt 2"], "city": "Springfield",
                     "state": "IL", "postalCode": zip_code}],
        "telecom": [{"system": "email", "value": "jose@example.org"},
                    {"system": "phone", "use": "work", "value": "312-555-0100"},
                    {"system": "phone", "use": "home", "value": phone}],
    }


# RAW_FORMS as FHIR writes them: birthDate is always YYYY-MM-DD, gender a code.
FHIR_FORMS = [fhir_patient(r[0], r[1], "1980-02-15", "male", r[4], r[5], r[6])
              for r in RAW_FORMS]


def test_fhir_patients_give_the_same_clks(tmp_path, normalised_clk) -> None:
    ndjson, bundle = tmp_path / "patients.ndjson", tmp_path / "bundle.json"
    ndjson.write_text("".join(json.dumps(p) + "\n" for p in FHIR_FORMS), encoding="utf-8")
    bundle.write_text(json.dumps({"resourceType": "Bundle", "type": "searchset", "entry": [
        {"fullUrl": f"urn:uuid:{i}", "resource": p} for i, p in enumerate(FHIR_FORMS)]}),
        encoding="utf-8")
    for source in (ndjson, bundle):
        out = source.with_suffix(".out.parquet")
        report = tokenize_file(source, load_schema("person"), SECRET, out)
        assert report.rejected == 0
        assert _clks(out) == [normalised_clk] * len(FHIR_FORMS)


def test_a_fhir_patient_its_csv_row_and_its_dicom_module_give_one_clk(tmp_path) -> None:
    """The same person through `pprl tokenize` (FHIR NDJSON, CSV) and `pprl deid`."""
    (tmp_path / "fhir").mkdir()
    source, out = tmp_path / "fhir" / "p.ndjson", tmp_path / "fhir" / "p.parquet"
    source.write_text(json.dumps(fhir_patient(
        "José", "García", "1980-02-15", "male", "12 Elm Street", "62704-1234",
        "(217) 555-0199")), encoding="utf-8")
    result = CliRunner().invoke(cli, ["tokenize", str(source), "--schema", "person", "-o",
                                      str(out), "--secret-env", "S", "--workers", "1"],
                                env={"S": SECRET.decode()})
    assert result.exit_code == 0, result.output
    (fhir_clk,) = _clks(out)
    assert read_encodings(out).record_ids == ["p-García-62704-1234-(217) 555-0199"]
    csv_clk = _tokenize_clk(tmp_path, "person", COLUMNS, RAW_FORMS[1])
    assert fhir_clk == csv_clk == _deid_clk(tmp_path / "dicom", "person",
                                           name="García^José^Luis")


FEBRL_COLUMNS = ["rec_id", "given_name", "surname", "street_number", "address_1", "address_2",
                 "suburb", "postcode", "state", "date_of_birth", "soc_sec_id"]


def test_deid_and_tokenize_normalise_a_febrl_person_alike(tmp_path) -> None:
    """The reported case: with `--schema febrl` deid wrote the birth date as 1980-02-15 (the
    person rules) while tokenize keeps FEBRL's text 19800215: 0 links, no warning."""
    row = ["r1", "José", "Garcia", "", "", "", "", "", "", "19800215", ""]
    assert _deid_clk(tmp_path, "febrl") == _tokenize_clk(tmp_path, "febrl", FEBRL_COLUMNS, row)


@pytest.fixture()
def custom_schema(tmp_path: Path) -> Path:
    """The person schema with its own salt and DICOM's DA date format: a custom schema."""
    doc = json.loads(shipped_schema_text("person"))
    doc["clkConfig"]["kdf"]["salt"] = "Y3VzdG9tIHNjaGVtYQ=="
    for feature in doc["features"]:
        if feature["identifier"] == "date_of_birth":
            feature["format"]["format"] = "%Y%m%d"
    path = tmp_path / "custom.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


CUSTOM_KINDS = ("--normalize", "given_name=name,surname=name,date_of_birth=date,sex=sex,"
                               "address=address,zip=zip,phone=phone")


def test_deid_and_tokenize_encode_a_custom_schema_alike(tmp_path, custom_schema) -> None:
    """Custom schemas: as clkhash would (values as written) in both, unless normalisation is
    asked for, then the same in both; the choice is recorded, and a changed one refused."""
    schema = str(custom_schema)
    as_written = ["JOSE", "GARCIA", "19800215", "M", "12 Elm Street", "62704", "217-555-0199"]
    plain = _deid_clk(tmp_path / "plain", schema)
    assert plain == _tokenize_clk(tmp_path, schema, COLUMNS, as_written)
    asked = _deid_clk(tmp_path / "asked", schema, *CUSTOM_KINDS)
    assert asked == _tokenize_clk(tmp_path, schema, COLUMNS, RAW_FORMS[1], *CUSTOM_KINDS)
    assert asked != plain
    recorded = json.loads((tmp_path / "asked" / "out" / "deid-settings.json").read_text())
    assert recorded["normalization"]["surname"] == "name"
    changed = CliRunner().invoke(cli, [
        "deid", str(tmp_path / "asked" / "in"), str(tmp_path / "asked" / "out"),
        "--schema", schema, "--no-normalize", "--workers", "1",
        "--secret-file", str(tmp_path / "asked" / "secret"),
        "--site-key-file", str(tmp_path / "asked" / "site")])
    assert changed.exit_code == 1
    assert "other settings" in changed.output and "normalisation" in changed.output


def test_an_ambiguous_date_is_never_guessed(tmp_path) -> None:
    row = ["ana", "lima", "03/04/1980", "f", "", "", ""]
    source = _csv(tmp_path / "eu.csv", [row, ["ana", "lima", "1980-03-04", "f", "", "", ""]])
    schema = load_schema("person")
    out = tmp_path / "out.parquet"
    report = tokenize_file(source, schema, SECRET, out)
    assert report.rejected == 1 and report.records_written == 1
    with rejects_path_for(out).open(encoding="utf-8") as handle:
        (reject,) = csv.DictReader(handle)
    assert reject["row"] == "1" and reject["fields"] == "date_of_birth"
    assert "ambiguous" in reject["reason"] and "--date-format" in reject["reason"]
    us, eu = tmp_path / "us.parquet", tmp_path / "eu.parquet"
    tokenize_file(source, schema, SECRET, us, date_order="MDY")
    tokenize_file(source, schema, SECRET, eu, date_order="DMY")
    march = _clks(out)[0]  # written 1980-03-04
    assert _clks(us) == [march, march]
    assert _clks(eu)[0] != march and _clks(eu)[1] == march


def test_us_dates_are_read_and_a_file_of_bad_dates_fails(tmp_path) -> None:
    """The reported case: `2/15/1980` gave `0 encodings from 3 records` with exit 0."""
    rows = [["a", "b", d, "", "", "", ""] for d in ("2/15/1980", "12/31/1979", "1/20/2001")]
    out = tmp_path / "us.parquet"
    report = tokenize_file(_csv(tmp_path / "us.csv", rows), load_schema("person"), SECRET, out)
    assert report.records_written == 3 and report.rejected == 0
    bad = [["a", "b", d, "", "", "", ""] for d in ("2/15/80", "1980-13-01", "soon")]
    with pytest.raises(AllRowsRejectedError) as raised:
        tokenize_file(_csv(tmp_path / "bad.csv", bad), load_schema("person"), SECRET,
                      tmp_path / "bad.parquet")
    reasons = " ".join(r for r, _ in raised.value.reasons)
    assert "two-digit year" in reasons and "not a valid calendar date" in reasons
    assert "2/15/80" not in str(raised.value) and "soon" not in str(raised.value)
    result = CliRunner().invoke(cli, ["tokenize", str(tmp_path / "bad.csv"), "--schema",
                                      "person", "--secret-env", "S", "-o",
                                      str(tmp_path / "cli.parquet")],
                                env={"S": SECRET.decode()})
    assert result.exit_code == 1 and "all 3 rows were rejected" in result.output


def test_custom_schemas_are_encoded_exactly_as_clkhash_unless_asked(tmp_path) -> None:
    golden = case("febrl4a_bits_per_token")
    header, rows = golden.rows()
    shouted = [{**r, "given_name": r["given_name"].upper(), "surname": r["surname"].title()}
               for r in rows[:50]]
    source = tmp_path / "shouted.csv"
    with source.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, header)
        writer.writeheader()
        writer.writerows(shouted)
    schema = load_schema(golden.schema_path)
    plain = tmp_path / "plain.parquet"
    tokenize_file(source, schema, golden.secret, plain)
    expected = golden.expected_clks()[:50]
    assert all(a != b for a, b in zip(_clks(plain), expected, strict=True))  # as clkhash
    asked = tmp_path / "asked.parquet"
    tokenize_file(source, schema, golden.secret, asked,
                  kinds={"given_name": "text", "surname": "text"})
    assert _clks(asked) == expected  # FEBRL's values are lower case


@pytest.mark.parametrize(("kind", "raw", "expected"), [
    ("name", "O'Brien-Smith", "obrien smith"),
    ("name", "STRASSE", "strasse"),
    ("name", "Straße", "strasse"),
    ("name", "Ｊｏｓｅ", "jose"),  # full-width letters (NFKC)
    ("name", "Garcia^Jose", "garcia jose"),
    ("name", "Zoë\u00a0 Lee", "zoe lee"),
    ("text", " A  b ", "a b"),
    ("phone", "+1 (217) 555-0199 ext. 5", "2175550199"),
    ("phone", "217 555 0199", "2175550199"),
    ("zip", "2134", "02134"),
    ("zip", "62704-1234", "62704"),
    ("sex", "FEMALE", "f"),
    ("sex", "U", ""),
    ("sex", "unknown", ""),
    ("date", "Feb 15, 1980", "1980-02-15"),
    ("date", "1980-02-15T08:30:00Z", "1980-02-15"),
])
def test_each_kind(kind: str, raw: str, expected: str) -> None:
    values, rejected = normalize_kind(kind, pa.array([raw]), KindContext(None, "%Y-%m-%d"))
    assert rejected == {} and values.to_pylist() == [expected]


@pytest.mark.parametrize(("kind", "raw", "rule"), [
    ("zip", "SW1A 1AA", "not a US ZIP code"),
    ("sex", "2", "not a recognised sex code"),
    ("date", "31/31/1980", "not a valid calendar date"),
])
def test_values_a_kind_cannot_normalise_are_rejected_by_rule(kind: str, raw: str,
                                                              rule: str) -> None:
    values, rejected = normalize_kind(kind, pa.array(["", raw]), KindContext(None, "%Y-%m-%d"))
    assert list(rejected) == [1] and rule in rejected[1] and raw not in rejected[1]
    assert values.to_pylist()[0] == ""


def test_date_forms() -> None:
    import datetime

    day = datetime.date(1980, 2, 15)
    for text in ("1980-02-15", "19800215", "1980/2/15", "2/15/1980", "15/2/1980",
                 "15.02.1980", "15-FEB-1980", "February 15th, 1980", "2/15/1980 0:00"):
        assert parse_date(text) == day, text
    with pytest.raises(ValueRejected, match="ambiguous"):
        parse_date("03/04/1980")
    assert parse_date("03/04/1980", "DMY") == datetime.date(1980, 4, 3)


def test_the_normaliser_leaves_columns_without_a_kind_alone() -> None:
    schema = load_schema("person")
    chunk = Normalizer(schema, {"surname": "name"}).apply(
        {"given_name": pa.array(["JOSE"]), "surname": pa.array(["GARCIA"])})
    assert chunk.columns["given_name"].to_pylist() == ["JOSE"]
    assert chunk.columns["surname"].to_pylist() == ["garcia"]


@pytest.mark.parametrize("kind", ["name", "address", "text"])
def test_a_value_normalises_the_same_beside_any_other(kind: str) -> None:
    """ASCII-only columns take a faster path: it must give what the Unicode path gives."""
    values = ["O'Brien-Smith", "  St. John  ", "a_b\tc", "ELM  STREET, apt 4"]
    context = KindContext(None, "%Y-%m-%d")
    alone, _ = normalize_kind(kind, pa.array(values), context)
    beside, _ = normalize_kind(kind, pa.array([*values, "Zoë"]), context)
    assert alone.to_pylist() == beside.to_pylist()[:len(values)]
