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
