"""Attributes files: built from a provider's extract with a column spec, several rows per
record, declared types and roles; direct identifiers refused by column name and by the shape
of the values, naming the column and the rule, never the value."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tokenizer.attributes_build import build_attributes, load_attribute_spec
from tokenizer.attributes_file import (
    AttributeColumn,
    check_attributes_upload,
    read_attributes,
    write_attributes,
)
from tokenizer.encodings_check import EncodingsLimits
from tokenizer.errors import InputError

from .test_cli import pprl

ROWS = [  # two rows for p1 (two diagnoses), one for p2
    {"id": "p1", "dob": "1980-02-15", "zip": "02134-1234", "state": "MA", "sex": "Female",
     "dx": "C34.1", "seen": "2024-03-01", "hba1c": "6.1"},
    {"id": "p1", "dob": "1980-02-15", "zip": "02134-1234", "state": "MA", "sex": "Female",
     "dx": "E11.9", "seen": "2024-05-20", "hba1c": ""},
    {"id": "p2", "dob": "1931-12-01", "zip": "62704", "state": "IL", "sex": "m",
     "dx": "I10", "seen": "2023-11-30", "hba1c": "8.4"},
]
SPEC = {"columns": [
    {"name": "sex", "derive": "sex", "type": "category", "role": "quasi-identifier"},
    {"name": "birth_year", "from": "dob", "derive": "year", "type": "number",
     "role": "quasi-identifier"},
    {"name": "zip3", "from": "zip", "derive": "zip3", "type": "category",
     "role": "quasi-identifier"},
    {"name": "region", "from": "state", "derive": "region", "type": "category",
     "role": "quasi-identifier"},
    {"name": "diagnosis", "from": "dx", "type": "code", "role": "payload"},
    {"name": "encounter_date", "from": "seen", "type": "date", "role": "payload"},
    {"name": "hba1c", "type": "number", "role": "payload"},
]}


def _write(folder: Path, rows: list[dict], spec: dict) -> tuple[Path, Path]:
    extract, spec_path = folder / "extract.csv", folder / "spec.json"
    with extract.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    spec_path.write_text(json.dumps(spec))
    return extract, spec_path


def test_a_spec_builds_declared_columns_with_several_rows_per_record(tmp_path: Path) -> None:
    extract, spec = _write(tmp_path, ROWS, SPEC)
    output = tmp_path / "ehr.attributes.parquet"
    assert build_attributes(extract, load_attribute_spec(spec), output, id_column="id",
                            provider="ehr") == 3
    read = read_attributes(output)
    assert read.provider == "ehr"
    assert [(c.name, c.type, c.role) for c in read.columns] == [
        (e["name"], e["type"], e["role"]) for e in SPEC["columns"]]
    rows = read.table.to_pylist()
    assert [r["record_id"] for r in rows] == ["p1", "p1", "p2"]
    assert [r["sex"] for r in rows] == ["f", "f", "m"]
    assert [r["birth_year"] for r in rows] == [1980.0, 1980.0, 1931.0]
    assert [r["zip3"] for r in rows] == ["021", "021", "627"]  # leading zero kept
    assert [r["region"] for r in rows] == ["northeast", "northeast", "midwest"]
    assert [str(r["encounter_date"]) for r in rows] == ["2024-03-01", "2024-05-20",
                                                        "2023-11-30"]
    assert [r["hba1c"] for r in rows] == [6.1, None, 8.4]


@pytest.mark.parametrize(("column", "rule"), [
    ("patient_name", "a person's name"), ("FamilyName", "a person's name"),
    ("name", "a person's name"), ("referring_physician_name", "a person's name"),
    ("mrn", "a medical record number"), ("chart_number", "a medical record number"),
    ("ssn", "a social security number"), ("phone", "a phone number"),
    ("e_mail", "an e-mail address"), ("street_address", "a street address"),
    ("zip", "a full ZIP code"), ("postal_code", "a full ZIP code"),
])
def test_columns_named_like_direct_identifiers_are_refused(tmp_path: Path, column: str,
                                                           rule: str) -> None:
    table = pa.table({"record_id": ["p1"], column: ["c1"]})
    with pytest.raises(InputError, match=f"column '{column}' is named like {rule}"):
        write_attributes(tmp_path / "a.parquet", table,
                         (AttributeColumn(column, "code", "payload"),), "ehr")
    assert not list(tmp_path.iterdir())  # nothing written, not even a temporary file


@pytest.mark.parametrize(("value", "rule"), [
    ("jane.doe@example.org", "an e-mail address"),
    ("123-45-6789", "a social security number"),
    ("(217) 555-0199", "a phone number"), ("217.555.0199", "a phone number"),
    ("MRN-0012345", "a medical record number"),
    ("12 Elm Street", "a street address"), ("4 Oak Ave", "a street address"),
    ("62704-1234", "a full ZIP code"),
])
def test_values_shaped_like_direct_identifiers_are_refused(tmp_path: Path, value: str,
                                                           rule: str) -> None:
    table = pa.table({"record_id": ["p1", "p2"], "note_code": ["I10", value]})
    with pytest.raises(InputError) as refused:
        write_attributes(tmp_path / "a.parquet", table,
                         (AttributeColumn("note_code", "code", "payload"),), "ehr")
    assert f"column 'note_code' holds values shaped like {rule}" in str(refused.value)
    assert value not in str(refused.value)


def test_codes_that_are_digits_and_zip3_are_not_identifiers(tmp_path: Path) -> None:
    """CPT procedure codes have five digits and NDC drug codes ten or eleven: bare digits are
    codes, judged by the column's name, not taken for ZIP codes or phone numbers; a drug's
    name is not a person's."""
    table = pa.table({"record_id": ["p1", "p2"], "procedure": ["77067", "71250"],
                      "ndc": ["0002143380", "00002143380"], "zip3": ["021", "627"],
                      "drug_name": ["metformin", "insulin glargine"]})
    columns = (AttributeColumn("procedure", "code", "payload"),
               AttributeColumn("ndc", "code", "payload"),
               AttributeColumn("zip3", "category", "quasi-identifier"),
               AttributeColumn("drug_name", "code", "payload"))
    write_attributes(tmp_path / "a.parquet", table, columns, "claims")
    assert read_attributes(tmp_path / "a.parquet").table.num_rows == 2


def test_pprl_attributes_refuses_an_identifier_naming_column_and_rule(tmp_path: Path) -> None:
    rows = [{**r, "phone": "217-555-0199"} for r in ROWS]
    spec = {"columns": [*SPEC["columns"],
                        {"name": "contact", "from": "phone", "type": "code", "role": "payload"}]}
    extract, spec_path = _write(tmp_path, rows, spec)
    output = tmp_path / "out.parquet"
    done = pprl("attributes", str(extract), "--spec", str(spec_path), "--id-column", "id",
                "-o", str(output), check=False)
    assert done.returncode != 0
    message = done.stdout + done.stderr
    assert "column 'contact' holds values shaped like a phone number" in message
    assert "555" not in message and "Traceback" not in message
    assert not output.exists()


@pytest.mark.parametrize(("entry", "message"), [
    ({"name": "x", "type": "code", "role": "payload", "colour": "red"}, "unknown keys"),
    ({"name": "x", "type": "text", "role": "payload"}, "type must be one of"),
    ({"name": "x", "type": "code", "role": "secret"}, "role one of"),
    ({"name": "x", "type": "code", "role": "payload", "derive": "soundex"}, "derive must be"),
])
def test_bad_specs_name_the_entry(tmp_path: Path, entry: dict, message: str) -> None:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps({"columns": [entry]}))
    with pytest.raises(InputError, match=message) as refused:
        load_attribute_spec(path)
    assert "columns[0] (x)" in str(refused.value)


def test_a_row_without_a_record_id_is_named_by_its_input_row(tmp_path: Path) -> None:
    """It was reported against the output file ("record_id must be a non-empty string in
    every row"), which the provider cannot look up."""
    rows = [dict(ROWS[0]), dict(ROWS[1], id=""), dict(ROWS[2])]
    extract, spec = _write(tmp_path, rows, SPEC)
    output = tmp_path / "ehr.attributes.parquet"
    with pytest.raises(InputError, match=r"extract\.csv: row 2, column id: no record id"):
        build_attributes(extract, load_attribute_spec(spec), output, id_column="id",
                         provider="ehr")
    assert not output.exists()


def test_an_upload_whose_text_decodes_past_the_limit_is_refused(tmp_path: Path) -> None:
    """The reported case: a 46 KB attributes file of one 100 KB code repeated 20,000 times
    passed the upload checks (each column chunk's size counts the dictionary once) and took
    the service to 4 GB decoding it. Here 20 KB x 2,000 rows (40 MB) against a 1 MiB limit."""
    rows = 2000
    table = pa.table({"record_id": [f"r{i}" for i in range(rows)],
                      "diagnosis": ["C" + "1" * 20_000] * rows})
    path = tmp_path / "bomb.attributes.parquet"
    write_attributes(path, table, (AttributeColumn("diagnosis", "code", "payload"),), "ehr")
    assert path.stat().st_size < 100_000
    limits = EncodingsLimits(max_column_chunk_bytes=1 << 20)
    with pytest.raises(InputError, match="column diagnosis decodes to more than 1,048,576"):
        check_attributes_upload(path, "upload", limits)
    small = tmp_path / "small.attributes.parquet"
    write_attributes(small, table.slice(0, 40), (AttributeColumn("diagnosis", "code",
                                                                 "payload"),), "ehr")
    assert check_attributes_upload(small, "upload", limits).table.num_rows == 40
    # as the report made it: the column declared a dictionary in the file's Arrow schema
    declared = pq.read_schema(path).metadata
    hostile = tmp_path / "hostile.parquet"
    pq.write_table(pa.table({
        "record_id": table["record_id"],
        "diagnosis": pa.DictionaryArray.from_arrays(pa.array(np.zeros(rows, np.int32)),
                                                    pa.array(["C" + "1" * 20_000]))},
    ).replace_schema_metadata(declared), hostile)
    assert pq.read_schema(hostile).field("diagnosis").type.id == pa.dictionary(
        pa.int32(), pa.string()).id
    with pytest.raises(InputError, match="column diagnosis decodes to more than"):
        check_attributes_upload(hostile, "upload", limits)
