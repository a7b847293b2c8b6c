"""`pprl deid-verify` finds each identifier in the forms it takes elsewhere, in nested
sequences and private elements, names the element path and the kind once, and does not
count values that are not this patient's identifiers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pydicom
import pytest
from click.testing import CliRunner
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from api.cli import cli

from .deid_data import pydicom_file, write_planted

SECRET = b"verification tests: linkage secret"
SITE_KEY = b"verification tests: site key here"

# Each form of one of the planted patient's identifiers (Doe^Jane, born 1980-02-15, phone
# (217) 555-0199, 42 Elm Street, Springfield, IL 62704, studied on 2020-01-10), planted in its
# own element of a de-identified output: (where, VR, text, kind).
PLANTED_FORMS = [
    ("ImageComments", "LT", "DOB 1980-02-15", "birth date"),
    ("SourceImageSequence[0].ImageComments", "LT", "born 02/15/1980", "birth date"),
    ("SourceImageSequence[0].DerivationDescription", "ST", "15.02.1980", "birth date"),
    ("(0011,1001)", "LO", "15 Feb 1980", "birth date"),
    ("(0011,1002)", "LO", "call 2175550199", "phone"),
    ("SourceImageSequence[0].(0011,1003)", "LO", "217.555.0199", "phone"),
    ("AdditionalPatientHistory", "LT", "lives at 42 ELM STREET now", "street"),
    ("PatientComments", "LT", "moved to springfield", "city"),
    ("ReferencedImageSequence[0].DerivationDescription", "ST",
     "chart says dob19800215, confirmed", "birth date"),
    ("(0011,1008)", "DA", "19800215", "birth date"),
    ("FrameComments", "LT", "born 15/02/1980", "birth date"),
    ("SourceImageSequence[0].(0011,1009)", "LO", "dob 2/15/80", "birth date"),
    ("(0011,1004)", "LO", "zip 62704", "zip"),
    ("ContentDescription", "LO", "JANE DOE", "name"),
    ("(0011,1005)", "LO", "Doe, Jane", "name"),
    ("SourceImageSequence[0].(0011,1006)", "LO", "Doe^Jane", "name"),
    ("ReferencedImageSequence[0].(0011,1007)", "LO", "jane", "name"),
    ("RequestedProcedureDescription", "LO", "scan on 01/10/2020", "date"),
]


def _deid(in_dir: Path, out: Path, keys: Path, *extra: str) -> None:
    result = CliRunner().invoke(cli, [
        "deid", str(in_dir), str(out), "--schema", "person", "--workers", "1",
        "--secret-file", str(keys / "secret"), "--site-key-file", str(keys / "site"), *extra])
    assert result.exit_code == 0, result.output


def _verify(in_dir: Path, out: Path) -> tuple[int, dict]:
    result = CliRunner().invoke(cli, ["deid-verify", str(in_dir), str(out), "--json"])
    return result.exit_code, json.loads(result.output)


@pytest.fixture()
def exported(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "secret").write_bytes(SECRET)
    (tmp_path / "site").write_bytes(SITE_KEY)
    in_dir = tmp_path / "in"
    in_dir.mkdir()
    write_planted(in_dir / "planted.dcm", instance=1, acquisition_date="20200110")
    _deid(in_dir, tmp_path / "out", tmp_path)
    (output,) = (tmp_path / "out").rglob("*.dcm")
    return {"in": in_dir, "out": tmp_path / "out", "file": output}


def _item(ds: Dataset, path: str) -> tuple[Dataset, str]:
    """The dataset holding ``path``'s last element (items created as needed)."""
    *items, last = path.split(".")
    for step in items:
        keyword, index = step[:-3], int(step[-2])
        if keyword not in ds:
            setattr(ds, keyword, Sequence([Dataset()]))
        ds = getattr(ds, keyword)[index]
    return ds, last


def test_every_planted_form_is_found_once_with_its_path_and_kind(exported) -> None:
    code, clean = _verify(exported["in"], exported["out"])
    assert code == 0 and clean["leaks"] == 0 and clean["score"] == 1.0
    ds = pydicom.dcmread(exported["file"])
    for path, vr, text, _ in PLANTED_FORMS:
        holder, name = _item(ds, path)
        if name.startswith("("):
            group, element = (int(part, 16) for part in name.strip("()").split(","))
            holder.add_new((group << 16) | 0x0010, "LO", "PLANTED LEAKS")
            holder.add_new((group << 16) | element, vr, text)
        else:
            setattr(holder, name, text)
    ds.save_as(exported["file"])
    code, result = _verify(exported["in"], exported["out"])
    assert code == 1
    (failed,) = [f["failed"] for f in result["files"].values()]
    expected = sorted(f"text retained ({kind}): {path}" for path, _, _, kind in PLANTED_FORMS)
    assert sorted(failed) == expected  # each once, nothing else
    assert result["leaks"] == len(PLANTED_FORMS)
    output = json.dumps(result)
    for _, _, text, _ in PLANTED_FORMS:
        assert text not in output  # findings never show the value


def test_a_clean_output_with_kept_descriptors_is_no_leak(tmp_path: Path) -> None:
    """The reported case: with --clean-descriptors, `ISOVUE300/100` and `Uncompressed`
    were counted as identifiers left."""
    (tmp_path / "secret").write_bytes(SECRET)
    (tmp_path / "site").write_bytes(SITE_KEY)
    in_dir = tmp_path / "in"
    in_dir.mkdir()
    write_planted(in_dir / "planted.dcm", instance=1, acquisition_date="20200110")
    ds = pydicom.dcmread(in_dir / "planted.dcm")
    ds.ContrastBolusAgent = "ISOVUE300/100"
    ds.DerivationDescription = "Uncompressed"
    ds.ManufacturerModelName = "Aquilion"
    ds.ImageComments = "Jane Doe, DOB 02/15/1980, seen 2020-01-10: no change"
    ds.save_as(in_dir / "planted.dcm")
    shutil.copy(pydicom_file("MR_small.dcm"), in_dir / "mr.dcm")
    _deid(in_dir, tmp_path / "out", tmp_path, "--clean-descriptors",
          "--retain-device-identity")
    code, result = _verify(in_dir, tmp_path / "out")
    assert code == 0, result
    assert result["leaks"] == 0 and result["score"] == 1.0
    (output,) = [p for p in (tmp_path / "out").rglob("*.dcm")
                 if pydicom.dcmread(p).Modality == "CT"]
    kept = pydicom.dcmread(output)
    assert kept.ContrastBolusAgent == "ISOVUE300/100"
    assert kept.DerivationDescription == "Uncompressed"
    assert kept.ImageComments == ", DOB , seen : no change"  # names and dates cut out


def test_kept_dates_are_not_leaks_but_the_birth_date_always_is(exported, tmp_path) -> None:
    full = tmp_path / "full"
    _deid(exported["in"], full, tmp_path, "--dates", "full")
    code, result = _verify(exported["in"], full)
    assert code == 0 and result["leaks"] == 0
    (output,) = full.rglob("*.dcm")
    ds = pydicom.dcmread(output)
    assert ds.StudyDate == "20200110"
    ds.ImageComments = "born 1980-02-15"
    ds.save_as(output)
    code, result = _verify(exported["in"], full)
    assert code == 1
    assert [f["failed"] for f in result["files"].values()] == [
        ["text retained (birth date): ImageComments"]]


def test_a_value_that_cannot_be_read_is_reported_not_a_crash(tmp_path: Path) -> None:
    """The reported case: an AcquisitionMatrix (US) of 3 bytes, kept by `pprl deid` as it
    was, made `deid-verify` die with a traceback showing the bytes. It is a finding naming
    the element, the other checks still run, and the exit code says "not checked" (3), not
    "identifier found" (1)."""
    (tmp_path / "secret").write_bytes(SECRET)
    (tmp_path / "site").write_bytes(SITE_KEY)
    in_dir = tmp_path / "in"
    in_dir.mkdir()
    ds = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    ds[0x00181310] = RawDataElement(pydicom.tag.Tag(0x00181310), "US", 3, b"DOE", 0, False,
                                    True)
    ds.save_as(in_dir / "odd_length.dcm", enforce_file_format=True)
    _deid(in_dir, tmp_path / "out", tmp_path)
    result = CliRunner().invoke(cli, ["deid-verify", str(in_dir), str(tmp_path / "out")])
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.exit_code == 3, result.output
    assert "FAIL value unreadable (US): AcquisitionMatrix (0018,1310)" in result.output
    assert "DOE" not in result.output and "text removed" in result.output
    code, as_json = _verify(in_dir, tmp_path / "out")
    assert code == 3 and as_json["leaks"] == 0 and as_json["unreadable"] == 1


def _patient_named(in_dir: Path, name: str, descriptions: dict[str, str]) -> None:
    """CT_small (UTF-8) of the patient ``name`` whose descriptions name the patient."""
    in_dir.mkdir()
    ds = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName, ds.PatientID = name, "MRN-77"
    for keyword, text in descriptions.items():
        setattr(ds, keyword, text)
    ds.save_as(in_dir / "named.dcm", enforce_file_format=True)


def _cleaned_then_planted(tmp_path: Path, descriptions: dict[str, str], planted: str,
                          hidden: list[str]) -> None:
    """With --clean-descriptors, no description keeps any of ``hidden`` and verification
    passes; ``planted`` in ImageComments of the output is then found as the name."""
    (tmp_path / "secret").write_bytes(SECRET)
    (tmp_path / "site").write_bytes(SITE_KEY)
    out = tmp_path / "out"
    _deid(tmp_path / "in", out, tmp_path, "--clean-descriptors")
    (output,) = out.rglob("*.dcm")
    ds = pydicom.dcmread(output)
    for keyword in descriptions:
        kept = str(ds.get(keyword, "")).casefold()
        assert not any(h.casefold() in kept for h in hidden), keyword
    code, result = _verify(tmp_path / "in", out)
    assert code == 0 and result["leaks"] == 0, result
    ds.ImageComments = planted
    ds.save_as(output)
    code, result = _verify(tmp_path / "in", out)
    assert code == 1
    assert [f["failed"] for f in result["files"].values()] == [
        ["text retained (name): ImageComments"]]


@pytest.mark.parametrize("planted", ["Mrs O'Brien", "seen by O\u2019Brien", "OBRIEN, M"])
def test_a_name_with_an_apostrophe_is_cleaned_and_found(tmp_path: Path, planted: str) -> None:
    """The reported case: O'Brien^Mary was left in kept descriptions and not found by
    verification, written with either apostrophe or without one."""
    descriptions = {"StudyDescription": "CT head, pt O'Brien",
                    "SeriesDescription": "for Mary O\u2019Brien",
                    "ImageComments": "OBrien follow-up"}
    _patient_named(tmp_path / "in", "O'Brien^Mary", descriptions)
    _cleaned_then_planted(tmp_path, descriptions, planted, ["brien", "mary"])


@pytest.mark.parametrize("planted", ["患者 山田 様", "たろう くん"])
def test_ideographic_and_phonetic_names_are_cleaned_and_found(tmp_path: Path,
                                                              planted: str) -> None:
    """The reported case: of Yamada^Tarou=山田^太郎=やまだ^たろう (PS3.5 6.2.1.2) only the
    alphabetic group was looked for; descriptions naming the patient in the other two
    were kept as they were, and verification passed them."""
    descriptions = {"StudyDescription": "頭部CT 山田 太郎 様",
                    "SeriesDescription": "やまだ たろう"}
    _patient_named(tmp_path / "in", "Yamada^Tarou=山田^太郎=やまだ^たろう", descriptions)
    _cleaned_then_planted(tmp_path, descriptions, planted, ["山田", "太郎", "やまだ", "たろう"])


def test_a_placeholder_birth_date_is_not_the_dummy_date_found(tmp_path: Path) -> None:
    """The differential review's case: a birth date of 19000101 (a common placeholder for an
    unknown one) is also the date D writes for a date it removes, so every file of such a
    patient failed verify with "text retained (birth date)" on a date correctly replaced."""
    in_dir = tmp_path / "in"
    in_dir.mkdir()
    ds = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    ds.PatientBirthDate = "19000101"
    ds.ContentDate = "20220930"
    ds.save_as(in_dir / "ct.dcm")
    (tmp_path / "secret").write_bytes(SECRET)
    (tmp_path / "site").write_bytes(SITE_KEY)
    _deid(in_dir, tmp_path / "out", tmp_path, "--dates", "remove")
    code, report = _verify(in_dir, tmp_path / "out")
    assert code == 0, report
