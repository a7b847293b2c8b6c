"""``pprl deid`` and ``pprl deid-verify`` on real and planted files, as a site runs them."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pydicom
import pytest
from click.testing import CliRunner
from pydicom.dataelem import RawDataElement

from api.cli import cli
from deid.dicom_files import IMPLEMENTATION_CLASS_UID
from tokenizer.encodings_file import read_encodings

from .deid_data import (
    PLANTED,
    PLANTED_STRINGS,
    STUDY_UID,
    build_input_folder,
    deid_data_files,
    pydicom_file,
    write_un_sequence,
)

SECRET = b"project linkage secret"
SITE_KEY = b"imaging site key, never shared"


def deid(in_dir: Path, out_dir: Path, keys: Path, *extra: str) -> str:
    result = CliRunner().invoke(cli, [
        "deid", str(in_dir), str(out_dir), "--schema", "person",
        "--secret-file", str(keys / "secret"), "--site-key-file", str(keys / "site"), *extra])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("deid")
    (root / "secret").write_bytes(SECRET)
    (root / "site").write_bytes(SITE_KEY)
    in_dir = build_input_folder(root / "in")
    deid(in_dir, root / "out", root, "--retain-safe-private", "--workers", "2")
    return {"root": root, "in": in_dir, "out": root / "out"}


def report(out_dir: Path) -> dict[str, dict[str, str]]:
    path = out_dir.with_name(out_dir.name + ".deid-report.csv")
    with path.open(encoding="utf-8") as handle:
        return {row["source"]: row for row in csv.DictReader(handle)}


def output_of(run: dict[str, Path], source: str) -> Path:
    return run["out"] / report(run["out"])[source]["output"]


def test_every_input_is_reported_with_its_outcome(run: dict[str, Path]) -> None:
    rows = report(run["out"])
    assert rows["notes.txt"]["status"] == "not-dicom"
    assert rows["truncated.dcm"]["status"] == "quarantined"
    assert "PixelData is truncated" in rows["truncated.dcm"]["reason"]
    assert rows["garbage.dcm"]["status"] == "quarantined"
    quarantine = run["out"].with_name("out.quarantine")
    assert sorted(p.name for p in quarantine.rglob("*") if p.is_file()) == [
        "garbage.dcm", "truncated.dcm"]
    for name in ("garbage.dcm", "truncated.dcm"):
        assert (quarantine / name).read_bytes() == (run["in"] / name).read_bytes()
    assert rows["cookies/GREYSCALE_IMAGE.dcm"]["status"] == "withheld"  # ultrasound
    assert "BurnedInAnnotation is YES" in rows["cookies/GREYSCALE_IMAGE.dcm"]["reason"]
    assert rows["JPEG2000.dcm"]["status"] == "withheld"  # secondary capture
    for name in ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "planted_1.dcm"):
        assert rows[name]["status"] == "written"
    leftovers = [p for p in run["out"].rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []


def test_planted_phi_is_gone_from_every_byte(run: dict[str, Path]) -> None:
    for path in run["out"].rglob("*.dcm"):
        data = path.read_bytes()
        assert data[:128] == b"\x00" * 128 and data[128:132] == b"DICM"
        for planted in PLANTED_STRINGS:
            assert planted.encode().lower() not in data.lower(), (path.name, planted)


def test_identity_replaced_and_method_recorded(run: dict[str, Path]) -> None:
    ds = pydicom.dcmread(output_of(run, "planted_1.dcm"))
    assert ds.PatientID == str(ds.PatientName) and len(ds.PatientID) == 32
    assert ds.PatientIdentityRemoved == "YES"
    codes = {item.CodeValue for item in ds.DeidentificationMethodCodeSequence}
    assert codes == {"113100", "113107", "113111"}  # basic, modified dates, safe private
    assert sorted(ds.DeidentificationMethod[1:]) == sorted(codes)  # every code, whole
    assert ds.file_meta.ImplementationClassUID == IMPLEMENTATION_CLASS_UID
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert "OtherPatientIDsSequence" not in ds and "PatientAddress" not in ds
    # OperatorsName is X/Z/D in the table: resolved to D (a dummy), also inside a sequence.
    assert ds.SourceImageSequence[0].OperatorsName == "ANONYMIZED"
    # Retain Safe Private: TCIA's KB says MMCPrivate (0019,xx11) is safe; unknown creators go.
    assert ds[0x00191011].value == "safe value"
    assert 0x00091001 not in ds and 0x00091002 not in ds and 0x00090010 not in ds


def test_dates_shift_per_patient_and_uids_stay_consistent(run: dict[str, Path]) -> None:
    one = pydicom.dcmread(output_of(run, "planted_1.dcm"))
    two = pydicom.dcmread(output_of(run, "planted_2.dcm"))
    assert one.StudyInstanceUID == two.StudyInstanceUID != STUDY_UID
    assert one.StudyInstanceUID.startswith("2.25.") and len(one.StudyInstanceUID) <= 64
    assert one.SOPInstanceUID != two.SOPInstanceUID
    assert one.StudyDate == two.StudyDate != "20200110"
    # planted: acquisitions on 2020-01-10 and 2020-01-20, nested content date 2020-01-05
    day = np.datetime64
    shifted = [day(f"{v[:4]}-{v[4:6]}-{v[6:]}") for v in
               (one.AcquisitionDate, two.AcquisitionDate, one.SourceImageSequence[0].ContentDate)]
    assert (shifted[1] - shifted[0]).astype(int) == 10
    assert (shifted[0] - shifted[2]).astype(int) == 5


def test_manifest_maps_pseudonym_to_clk_and_remapped_uids(run: dict[str, Path]) -> None:
    table = pq.read_table(run["out"] / "manifest.parquet").to_pylist()
    planted = [r for r in table if r["file"] == report(run["out"])["planted_1.dcm"]["output"]]
    assert len(table) == 5 and len(planted) == 1
    row = planted[0]
    ds = pydicom.dcmread(output_of(run, "planted_1.dcm"))
    assert row["pseudonym"] == ds.PatientID
    assert (row["study_instance_uid"], row["sop_instance_uid"], row["study_date"]) == (
        ds.StudyInstanceUID, ds.SOPInstanceUID, ds.StudyDate)
    assert row["modality"] == "CT" and len(row["clk"]) == 128
    assert row["popcount"] == int(np.unpackbits(np.frombuffer(row["clk"], np.uint8)).sum())


def test_removed_dates_are_empty_in_file_and_manifest(run: dict[str, Path],
                                                      tmp_path: Path) -> None:
    in_dir = tmp_path / "in"
    in_dir.mkdir()
    shutil.copy(run["in"] / "planted_1.dcm", in_dir)
    deid(in_dir, tmp_path / "out", run["root"], "--dates", "remove")
    (row,) = pq.read_table(tmp_path / "out" / "manifest.parquet").to_pylist()
    ds = pydicom.dcmread(tmp_path / "out" / row["file"])
    assert row["study_date"] == "" and ds.StudyDate == "" and ds.AcquisitionDate == ""


def tokenize_ehr(folder: Path, secret_file: Path) -> Path:
    """The EHR provider's row for the planted patient, normalised as the README documents,
    through `pprl tokenize` with the deid run's schema."""
    ehr = folder / "ehr.csv"
    columns = list(PLANTED)
    ehr.write_text(",".join(columns) + "\n" + ",".join(PLANTED[c] for c in columns) + "\n")
    out = folder / "ehr.parquet"
    result = CliRunner().invoke(cli, ["tokenize", str(ehr), "--schema", "person",
                                      "--secret-file", str(secret_file),
                                      "-o", str(out), "--workers", "1"])
    assert result.exit_code == 0, result.output
    return out


def test_manifest_clk_equals_tokenize_clk_of_the_ehr_row(run: dict[str, Path],
                                                         tmp_path: Path) -> None:
    """Linkability: the EHR provider's row for the same person, tokenized by `pprl tokenize`
    with the same schema and secret, gives the same CLK, and the export's manifest and
    encodings file record the key check value tokenize records."""
    out = tokenize_ehr(tmp_path, run["root"] / "secret")
    key_check = pq.read_schema(out).metadata[b"pprl.key_check_value"]
    for name in ("manifest.parquet", "encodings.parquet"):
        assert pq.read_schema(run["out"] / name).metadata[b"pprl.key_check_value"] == key_check
    ehr_clk = read_encodings(out).clks[0].tobytes()
    table = pq.read_table(run["out"] / "manifest.parquet").to_pylist()
    pseudonym = pydicom.dcmread(output_of(run, "planted_1.dcm")).PatientID
    manifest_clks = {r["clk"] for r in table if r["pseudonym"] == pseudonym}
    assert manifest_clks == {ehr_clk}
    others = {r["clk"] for r in table if r["pseudonym"] != pseudonym}
    assert ehr_clk not in others


def test_link_refuses_the_export_beside_encodings_of_another_secret(run: dict[str, Path],
                                                                    tmp_path: Path) -> None:
    (tmp_path / "other.secret").write_bytes(SECRET + b"\n")
    ehr = tokenize_ehr(tmp_path, tmp_path / "other.secret")
    imaging = run["out"] / "encodings.parquet"
    result = CliRunner().invoke(cli, ["link", str(imaging), str(ehr), "-o",
                                      str(tmp_path / "linked")])
    assert result.exit_code == 1
    assert str(imaging) in result.output and str(ehr) in result.output
    assert "another linkage secret" in result.output
    assert not (tmp_path / "linked").exists()


def test_rerun_resumes_and_gives_identical_output(run: dict[str, Path], tmp_path: Path) -> None:
    before = {p: p.read_bytes() for p in run["out"].rglob("*") if p.is_file()}
    output = deid(run["in"], run["out"], run["root"], "--retain-safe-private")
    assert "5 unchanged" in output
    after = {p: p.read_bytes() for p in run["out"].rglob("*") if p.is_file()}
    assert after == before
    fresh = tmp_path / "fresh"
    deid(run["in"], fresh, run["root"], "--retain-safe-private")
    assert {p.relative_to(fresh): p.read_bytes() for p in fresh.rglob("*") if p.is_file()} == {
        p.relative_to(run["out"]): b for p, b in before.items()}


def test_verify_passes_clean_output_and_catches_a_planted_leak(run: dict[str, Path],
                                                               tmp_path: Path) -> None:
    clean = CliRunner().invoke(cli, ["deid-verify", str(run["in"]), str(run["out"])])
    assert clean.exit_code == 0, clean.output
    assert "score 1.0000" in clean.output and "text removed" in clean.output
    assert "date shifted" in clean.output and "uid consistent" in clean.output
    leaky = tmp_path / "out"
    shutil.copytree(run["out"], leaky)
    shutil.copy(run["out"].with_name("out.deid-report.csv"), tmp_path / "out.deid-report.csv")
    target = leaky / report(run["out"])["planted_2.dcm"]["output"]
    ds = pydicom.dcmread(target)
    ds.SourceImageSequence[0].ImageComments = "seen by Jane Doe"
    ds.StudyDate = "20200110"
    ds.save_as(target)
    result = CliRunner().invoke(cli, ["deid-verify", str(run["in"]), str(leaky)])
    assert result.exit_code == 1
    assert "FAIL text retained (name): SourceImageSequence[0].ImageComments" in result.output
    assert result.output.count("FAIL text retained (name)") == 1  # Jane and Doe: one finding
    assert "FAIL date retained (date): StudyDate" in result.output


def test_secrets_are_read_from_files_or_env_never_argv(run: dict[str, Path],
                                                       tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, [
        "deid", str(run["in"]), str(tmp_path / "o"), "--schema", "person",
        "--secret-env", "PPRL_TEST_SECRET", "--site-key-env", "PPRL_TEST_SITE"],
        env={"PPRL_TEST_SECRET": SECRET.decode(), "PPRL_TEST_SITE": ""})
    assert result.exit_code != 0
    assert "environment variable PPRL_TEST_SITE is empty" in result.output
    missing = CliRunner().invoke(cli, [
        "deid", str(run["in"]), str(tmp_path / "o"), "--schema", "person",
        "--secret-env", "PPRL_TEST_SECRET"], env={"PPRL_TEST_SECRET": SECRET.decode()})
    assert "give the site key with exactly one of --site-key-file or --site-key-env" in \
        missing.output
    assert "--site-key-file" in CliRunner().invoke(cli, ["deid", "--help"]).output
    assert "ORIGINAL_DIR" in CliRunner().invoke(cli, ["deid-verify", "--help"]).output


def test_every_deid_data_file_passes_verification(tmp_path: Path) -> None:
    """All of the deid-data package's fake-PHI files (CT, cookies, ultrasound, animal),
    exported with --allow-burned-in: nothing identifying survives, two files sharing a
    SOPInstanceUID give one output, and a second run changes nothing."""
    in_dir = tmp_path / "in"
    for folder in ("humans", "dicom-cookies", "ultrasounds", "animals"):
        for path in deid_data_files(folder):
            (in_dir / folder).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, in_dir / folder / path.name)
    (tmp_path / "secret").write_bytes(SECRET)
    (tmp_path / "site").write_bytes(SITE_KEY)
    out = tmp_path / "out"
    deid(in_dir, out, tmp_path, "--allow-burned-in", "--workers", "2")
    rows = report(out)
    assert len(rows) == 13
    assert {r["status"] for n, r in rows.items() if n != "humans/ctbrain2.dcm"} == {"written"}
    assert rows["humans/ctbrain2.dcm"]["status"] == "duplicate"
    first = {p: p.read_bytes() for p in out.rglob("*.dcm")}
    assert len(first) == 12
    verified = CliRunner().invoke(cli, ["deid-verify", str(in_dir), str(out), "--json"])
    assert verified.exit_code == 0, verified.output
    assert json.loads(verified.output)["leaks"] == 0
    deid(in_dir, out, tmp_path, "--allow-burned-in", "--workers", "2")
    assert {r["status"] for r in report(out).values()} == {"unchanged", "duplicate"}
    assert {p: p.read_bytes() for p in out.rglob("*.dcm")} == first


def test_a_known_sequence_sent_as_un_is_walked(tmp_path: Path) -> None:
    """The reported case: ReferencedSeriesSequence encoded with VR UN kept the patient's name
    and the study's UIDs as they were."""
    in_dir = tmp_path / "in"
    in_dir.mkdir()
    original = write_un_sequence(in_dir / "un.dcm")
    with (in_dir / "un.dcm").open("rb") as handle:  # the input really holds a UN element
        assert b"\x08\x00\x15\x11UN" in handle.read()
    (tmp_path / "secret").write_bytes(SECRET)
    (tmp_path / "site").write_bytes(SITE_KEY)
    out = tmp_path / "out"
    deid(in_dir, out, tmp_path)
    (written,) = out.rglob("*.dcm")
    data = written.read_bytes()
    for value in (original.SOPInstanceUID, original.SeriesInstanceUID, "CompressedSamples"):
        assert value.encode() not in data, value
    item = pydicom.dcmread(written).ReferencedSeriesSequence[0]
    assert item.ReferencedSOPInstanceUID.startswith("2.25.")
    assert "PatientName" not in item or "CompressedSamples" not in str(item.PatientName)
    verified = CliRunner().invoke(cli, ["deid-verify", str(in_dir), str(out)])
    assert verified.exit_code == 0, verified.output


def test_a_quarantined_file_is_logged_without_its_values(tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture
                                                         ) -> None:
    """The reported case: a Rows (US) of 3 bytes quarantined the file, and the warning
    carried the traceback, whose message shows the element's bytes."""
    in_dir = tmp_path / "in"
    in_dir.mkdir()
    ds = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    ds[0x00280010] = RawDataElement(pydicom.tag.Tag(0x00280010), "US", 3, b"DOE", 0, False,
                                    True)
    ds.save_as(in_dir / "bad_rows.dcm", enforce_file_format=True)
    (tmp_path / "secret").write_bytes(SECRET)
    (tmp_path / "site").write_bytes(SITE_KEY)
    with caplog.at_level("DEBUG"):
        deid(in_dir, tmp_path / "out", tmp_path, "--workers", "1")
    assert report(tmp_path / "out")["bad_rows.dcm"]["status"] == "quarantined"
    assert "bad_rows.dcm: quarantined" in caplog.text
    assert "BytesLengthException" in caplog.text
    assert "DOE" not in caplog.text and "Traceback" not in caplog.text


@pytest.mark.parametrize(("options", "kept"), [((), False),
                                               (("--clean-structured-content",), True)])
def test_a_report_narrative_is_dummied_unless_cleaned(tmp_path: Path, options: tuple[str, ...],
                                                      kept: bool) -> None:
    """The differential review's case: ContentSequence is D in the basic profile, but its items
    were walked and their TextValues (no row of their own) kept as they were: the report's
    narrative, the patient's name in it, left the site. D now leaves one empty item; under
    Clean Structured Content (C) the items stay and their text is cleaned of the patient."""
    in_dir = tmp_path / "in"
    in_dir.mkdir()
    ds = pydicom.dcmread(pydicom_file("test-SR.dcm"))
    ds.PatientID = "SR-0001"
    texts = [e for e in ds.iterall() if e.keyword == "TextValue"]
    texts[-1].value = "Findings discussed with patient S R Test on 2004-01-19."
    ds.save_as(in_dir / "sr.dcm")
    (tmp_path / "secret").write_bytes(SECRET)
    (tmp_path / "site").write_bytes(SITE_KEY)
    deid(in_dir, tmp_path / "out", tmp_path, *options)
    (written,) = (tmp_path / "out").rglob("*.dcm")
    out = pydicom.dcmread(written)
    narrative = [str(e.value) for e in out.iterall() if e.keyword == "TextValue"]
    if not kept:
        assert len(out.ContentSequence) == 1 and len(out.ContentSequence[0]) == 0
        assert narrative == []
    else:
        assert len(narrative) == len(texts)
        assert "Findings discussed with patient" in narrative[-1]
        assert "S R Test" not in narrative[-1] and "Test" not in narrative[-1].split()
    verified = CliRunner().invoke(cli, ["deid-verify", str(in_dir), str(tmp_path / "out")])
    # (test-SR.dcm's patient is Test^S R and its title's coding scheme designator TEST:
    # verify's known false finding on a code, not a narrative)
    assert "TextValue" not in verified.output, verified.output


@pytest.mark.parametrize("dates", ["modified", "full", "remove"])
def test_a_private_date_follows_the_dates_option(tmp_path: Path, dates: str) -> None:
    """The differential review's case: a private date TCIA marks "o" (offset) was shifted
    under every --dates: kept beside the true StudyDate with --dates full, it gave the
    patient's day offset away; with --dates remove it stayed (shifted) while every public
    date went."""
    in_dir = tmp_path / "in"
    in_dir.mkdir()
    ds = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    ds.private_block(0x0009, "GEMS_PETD_01", create=True).add_new(0x05, "DT",
                                                                   "20040119072730")
    ds.save_as(in_dir / "petd.dcm")
    (tmp_path / "secret").write_bytes(SECRET)
    (tmp_path / "site").write_bytes(SITE_KEY)
    deid(in_dir, tmp_path / "out", tmp_path, "--retain-safe-private", "--dates", dates)
    (written,) = (tmp_path / "out").rglob("*.dcm")
    out = pydicom.dcmread(written)
    try:
        value = out.private_block(0x0009, "GEMS_PETD_01")[0x05].value
    except KeyError:  # no such creator, or no such element in its block
        value = None
    if dates == "remove":
        assert value is None
    elif dates == "full":
        assert value == "20040119072730" and out.StudyDate == ds.StudyDate
    else:
        assert value is not None and value != "20040119072730"
        assert value[:8] != ds.StudyDate and out.StudyDate != ds.StudyDate



def test_clean_graphics_leaves_no_overlay_bitmap(tmp_path: Path) -> None:
    """The differential review's case: Overlay Data is X in the basic profile and C under
    Clean Graphics, but C did nothing to a bitmap, which may hold rendered text: the overlay
    left unchanged. Now removed; and with every option the method lists every code whole (it
    was cut at 64 characters in the middle of one)."""
    in_dir = tmp_path / "in"
    in_dir.mkdir()
    ds = pydicom.dcmread(pydicom_file("examples_overlay.dcm"))
    ds.PatientID = "OV-0001"
    ds.save_as(in_dir / "overlay.dcm")
    assert (0x6000, 0x3000) in ds
    (tmp_path / "secret").write_bytes(SECRET)
    (tmp_path / "site").write_bytes(SITE_KEY)
    deid(in_dir, tmp_path / "out", tmp_path, "--clean-graphics", "--clean-descriptors",
         "--clean-structured-content", "--retain-device-identity",
         "--retain-institution-identity", "--retain-patient-characteristics",
         "--retain-safe-private", "--retain-uids", "--allow-burned-in")
    (written,) = (tmp_path / "out").rglob("*.dcm")
    out = pydicom.dcmread(written)
    assert (0x6000, 0x3000) not in out
    codes = [item.CodeValue for item in out.DeidentificationMethodCodeSequence]
    assert len(codes) >= 8 and list(out.DeidentificationMethod)[1:] == codes
