"""De-identified output is exactly what its settings say: OUT_DIR records them, other settings
or keys are refused or rebuild the folder whole, an interrupted run marks it incomplete and a
re-run completes it, and the tree always agrees with the manifest."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pydicom
import pytest
from click.testing import CliRunner

from api.cli import cli
from deid.cohort_relabel import COHORT_MANIFEST, Relabel, relabel_folder
from deid.dicom_files import lenient_values
from deid.errors import DeidError
from deid.process import FileProcessor
from deid.profile import ProfileOptions
from deid.run import deidentify_folder
from tokenizer.attributes_file import read_attributes
from tokenizer.catalog import load_schema
from tokenizer.encodings_file import INCOMPLETE_MARKER, read_encodings
from tokenizer.errors import InputError
from tokenizer.keys import key_check_value

from .deid_data import pydicom_file, write_planted

SECRET = b"the project's linkage secret, shared"
SITE_KEY = b"this imaging site's own key, kept"
OTHER_SITE_KEY = b"another key this site might have used"
ORIGINAL_DATES = [b"20200110", b"20200120", b"20200105", b"19800215"]


def _inputs(folder: Path, count: int = 2) -> Path:
    folder.mkdir(parents=True)
    for i in range(1, count + 1):
        write_planted(folder / f"planted_{i}.dcm", instance=i, acquisition_date="20200110")
    shutil.copy(pydicom_file("MR_small.dcm"), folder / "mr.dcm")
    return folder


@pytest.fixture()
def site(tmp_path: Path) -> dict[str, Path]:
    for name, value in (("secret", SECRET), ("site", SITE_KEY), ("other", OTHER_SITE_KEY)):
        (tmp_path / name).write_bytes(value)
    return {"root": tmp_path, "in": _inputs(tmp_path / "in"), "out": tmp_path / "out"}


def deid(site: dict[str, Path], *extra: str, site_key: str = "site", code: int = 0,
         out: Path | None = None, in_dir: Path | None = None) -> str:
    result = CliRunner().invoke(cli, [
        "deid", str(in_dir or site["in"]), str(out or site["out"]), "--schema", "person",
        "--workers", "1", "--secret-file", str(site["root"] / "secret"),
        "--site-key-file", str(site["root"] / site_key), *extra])
    assert result.exit_code == code, result.output
    return result.output


def instances(out: Path) -> set[str]:
    return {p.relative_to(out).as_posix() for p in out.rglob("*.dcm")}


def manifest_files(out: Path) -> set[str]:
    return {r["file"] for r in pq.read_table(out / "manifest.parquet").to_pylist()}


def test_settings_are_recorded_without_any_key(site) -> None:
    deid(site, "--dates", "full")
    recorded = json.loads((site["out"] / "deid-settings.json").read_text())
    assert recorded["options"]["dates"] == "full"
    assert recorded["schema_fingerprint"] == load_schema("person").fingerprint
    assert recorded["linkage_key_check"] == key_check_value(SECRET)
    assert recorded["site_key_check"] == key_check_value(SITE_KEY, "site key")
    text = (site["out"] / "deid-settings.json").read_bytes()
    assert SECRET not in text and SITE_KEY not in text
    assert not (site["out"] / INCOMPLETE_MARKER).exists()


def test_full_then_remove_leaves_no_original_date_anywhere(site) -> None:
    """The reported case: the second run said `0 written, 2 unchanged` and the export still
    held the original StudyDate."""
    deid(site, "--dates", "full")
    assert any(d in p.read_bytes() for p in site["out"].rglob("*.dcm") for d in ORIGINAL_DATES)
    refused = deid(site, "--dates", "remove", code=1)
    assert "other settings" in refused and "dates ('full' then, 'remove' now)" in refused
    assert "--replace" in refused
    output = deid(site, "--dates", "remove", "--replace")
    assert "3 written" in output
    for path in site["out"].rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not any(d in data for d in ORIGINAL_DATES), path
    assert instances(site["out"]) == manifest_files(site["out"])
    assert json.loads((site["out"] / "deid-settings.json").read_text())["options"][
        "dates"] == "remove"
    assert not list(site["root"].glob(".out.*"))  # the rebuild folder was swapped in


def test_a_key_change_leaves_no_stale_pseudonym_folder(site) -> None:
    """The reported case: 4 patient folders for 2 patients, the manifest listing 2."""
    deid(site)
    first = {p.name for p in site["out"].iterdir() if p.is_dir()}
    refused = deid(site, site_key="other", code=1)
    assert "the site key" in refused and OTHER_SITE_KEY.decode() not in refused
    deid(site, "--replace", site_key="other")
    folders = {p.name for p in site["out"].iterdir() if p.is_dir()}
    assert len(folders) == len(first) == 2 and not folders & first
    assert instances(site["out"]) == manifest_files(site["out"])
    pseudonyms = {r["pseudonym"] for r in pq.read_table(site["out"] / "manifest.parquet")
                  .to_pylist()}
    assert pseudonyms == folders == set(read_encodings(site["out"] / "encodings.parquet")
                                        .record_ids)


def test_other_secret_or_schema_is_refused_naming_it(site) -> None:
    deid(site)
    (site["root"] / "secret").write_bytes(SECRET + b"\n")
    assert "the linkage secret" in deid(site, code=1)
    (site["root"] / "secret").write_bytes(SECRET)
    assert "the schema" in deid(site, "--schema", "febrl", code=1)


def test_unchanged_only_when_the_input_bytes_are_the_same(site) -> None:
    deid(site)
    assert "3 unchanged" in deid(site)
    ds = pydicom.dcmread(site["in"] / "planted_1.dcm")
    ds.SliceThickness = "2.5"  # same UIDs, so the same output path: another output
    ds.save_as(site["in"] / "planted_1.dcm")
    output = deid(site)
    assert "1 written, 2 unchanged" in output


def test_removed_inputs_leave_no_output_behind(site) -> None:
    deid(site)
    (site["in"] / "mr.dcm").unlink()
    output = deid(site)
    assert "2 unchanged" in output
    assert len(instances(site["out"])) == 2 == len(manifest_files(site["out"]))
    assert instances(site["out"]) == manifest_files(site["out"])


@pytest.mark.parametrize("relation", ["same", "inside", "containing"])
def test_out_dir_must_lie_outside_in_dir(site, relation: str) -> None:
    """The reported case: `pprl deid dd_in dd_in` de-identified its own earlier outputs."""
    out = {"same": site["in"], "inside": site["in"] / "export",
           "containing": site["root"]}[relation]
    message = deid(site, out=out, code=1)
    assert {"same": "is IN_DIR itself", "inside": "is inside IN_DIR",
            "containing": "contains IN_DIR"}[relation] in message
    assert not (site["in"] / "export").exists()
    assert not list(site["in"].rglob("manifest.parquet"))


def test_site_key_equal_to_the_linkage_secret_is_refused(site) -> None:
    message = deid(site, site_key="secret", code=1)
    assert "the site key is the linkage secret" in message and "pprl keygen" in message
    assert not site["out"].exists() or not any(site["out"].iterdir())


def test_short_keys_are_refused_unless_allowed(site, caplog) -> None:
    (site["root"] / "tiny").write_bytes(b"k2")
    message = deid(site, site_key="tiny", code=1)
    assert "site key is 2 bytes" in message and "--allow-short-secret" in message
    deid(site, "--allow-short-secret", site_key="tiny")
    assert "site key is 2 bytes" in caplog.text
    assert "accepted because of --allow-short-secret" in caplog.text and "k2" not in caplog.text


def test_a_folder_deid_did_not_make_is_never_written_or_replaced(site) -> None:
    foreign = site["root"] / "documents"
    foreign.mkdir()
    (foreign / "thesis.txt").write_text("precious")
    for extra in ((), ("--replace",)):
        assert "was not made by `pprl deid`" in deid(site, *extra, out=foreign, code=1)
    assert (foreign / "thesis.txt").read_text() == "precious"
    assert [p.name for p in foreign.iterdir()] == ["thesis.txt"]


class _Interrupt(FileProcessor):
    """Processes files until the given count, then acts as a Ctrl-C would."""

    calls = 0
    stop_after = 2

    def __call__(self, source: Path):
        type(self).calls += 1
        if type(self).calls > self.stop_after:
            raise KeyboardInterrupt
        return super().__call__(source)


def _everything(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in folder.rglob("*") if p.is_file()}


def test_an_interrupted_run_is_marked_refused_and_resumed(site, monkeypatch) -> None:
    """The reported case: Ctrl-C left files, no manifest, nothing marking the folder."""
    deid(site)
    for i in (3, 4, 5):  # new studies arrive; the next run is interrupted part-way
        write_planted(site["in"] / f"planted_{i}.dcm", instance=i, acquisition_date="20200110")
    monkeypatch.setattr("deid.run.FileProcessor", _Interrupt)
    _Interrupt.calls = 0
    with pytest.raises(KeyboardInterrupt):
        deidentify_folder(site["in"], site["out"], load_schema("person"), SECRET, SITE_KEY,
                          ProfileOptions())
    assert (site["out"] / INCOMPLETE_MARKER).exists()
    encodings = site["out"] / "encodings.parquet"
    with pytest.raises(InputError, match="INCOMPLETE"):
        read_encodings(encodings)
    for args in (["describe", str(encodings)],
                 ["link", str(encodings), str(encodings), "-o", str(site["root"] / "l")],
                 ["upload", "p1", "imaging", str(encodings), "--url", "http://127.0.0.1:9"]):
        result = CliRunner().invoke(cli, args, env={"PPRL_TOKEN": "unused"})
        assert result.exit_code != 0 and "INCOMPLETE" in result.output, (args, result.output)
    monkeypatch.undo()
    output = deid(site)
    assert "6 files" in output and not (site["out"] / INCOMPLETE_MARKER).exists()
    fresh = site["root"] / "fresh"
    deid(site, out=fresh)
    assert _everything(site["out"]) == _everything(fresh)
    assert instances(site["out"]) == manifest_files(site["out"])
    assert len(read_encodings(encodings)) == 2  # the planted patient and MR_small's


PPRL = [sys.executable, "-c", "from api.cli import main; main()"]


def _many_inputs(folder: Path, count: int) -> Path:
    """``count`` instances of five patients: enough work to interrupt a run part-way."""
    folder.mkdir()
    ds = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    for i in range(count):
        ds.PatientID, ds.SOPInstanceUID = f"MRN-{i % 5}", f"1.2.826.0.1.3680043.8.498.77.{i}"
        ds.save_as(folder / f"{i:04d}.dcm", enforce_file_format=True)
    return folder


def test_ctrl_c_during_a_first_cli_run_is_marked_refused_and_resumed(site) -> None:
    """The reported case: Ctrl-C during a first `pprl deid` (parallel workers, empty OUT_DIR)
    left 513 files, no manifest, nothing marking the folder incomplete. Workers killed by the
    Ctrl-C also left the run waiting for their results forever, now and then."""
    in_dir, out = _many_inputs(site["root"] / "many", 200), site["root"] / "first"
    process = subprocess.Popen(
        [*PPRL, "deid", str(in_dir), str(out), "--schema", "person", "--workers", "2",
         "--secret-file", str(site["root"] / "secret"),
         "--site-key-file", str(site["root"] / "site")],
        start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline and not (
            out.is_dir() and any(out.rglob("*.dcm"))):
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGINT)  # as Ctrl-C does: the whole process group
    try:
        _, stderr = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail("pprl deid did not stop on Ctrl-C")
    assert process.returncode != 0 and b"Aborted" in stderr, stderr[-500:]
    assert any(out.rglob("*.dcm")) and (out / INCOMPLETE_MARKER).exists()
    encodings = out / "encodings.parquet"
    for args in (["describe", str(encodings)],
                 ["link", str(encodings), str(encodings), "-o", str(site["root"] / "l")]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code != 0 and "INCOMPLETE" in result.output, (args, result.output)
    deid(site, "--workers", "2", in_dir=in_dir, out=out)
    assert not (out / INCOMPLETE_MARKER).exists()
    fresh = site["root"] / "fresh"
    deid(site, "--workers", "2", in_dir=in_dir, out=fresh)
    assert _everything(out) == _everything(fresh)
    assert len(read_encodings(encodings)) == 5


def test_library_callers_get_the_same_refusals(site) -> None:
    with pytest.raises(DeidError, match="is IN_DIR itself"):
        deidentify_folder(site["in"], site["in"], load_schema("person"), SECRET, SITE_KEY,
                          ProfileOptions())


def test_out_dir_given_as_the_current_folder(site, monkeypatch) -> None:
    """The reported case: `pprl deid IN .` died with a traceback (`.` has no name to put the
    report beside)."""
    site["out"].mkdir()
    monkeypatch.chdir(site["out"])
    output = deid(site, out=Path("."))
    assert "3 written" in output
    assert instances(site["out"]) == manifest_files(site["out"])
    assert (site["root"] / "out.deid-report.csv").is_file()
    verified = CliRunner().invoke(cli, ["deid-verify", str(site["in"]), "."])
    assert verified.exit_code == 0, verified.output


@pytest.mark.parametrize("dates", ["modified", "full", "remove"])
def test_the_attributes_hold_study_dates_only_when_they_are_real(site, dates: str) -> None:
    """One row per study. A date shifted by the site key (one offset per patient) cannot be
    compared with another party's real dates, so a cohort window over it would be silently
    wrong: the column is there with --dates full only."""
    deid(site, "--dates", dates)
    attributes = read_attributes(site["out"] / "attributes.parquet")
    rows = attributes.table.to_pylist()
    studies = {(r["pseudonym"], r["study_instance_uid"]) for r in
               pq.read_table(site["out"] / "manifest.parquet").to_pylist()}
    assert {(r["record_id"], r["study_uid"]) for r in rows} == studies
    assert sum(r["instance_count"] for r in rows) == len(instances(site["out"]))
    named = [c.name for c in attributes.columns]
    assert ("study_date" in named) == (dates == "full")
    if dates == "full":
        originals = {pydicom.dcmread(p, stop_before_pixels=True).StudyDate
                     for p in site["in"].iterdir()}
        assert {r["study_date"].strftime("%Y%m%d") for r in rows} == originals


def _report(out: Path) -> dict[str, dict[str, str]]:
    with out.with_name(out.name + ".deid-report.csv").open(encoding="utf-8",
                                                           newline="") as handle:
        return {row["source"]: row for row in csv.DictReader(handle)}


def _with_value(site: dict[str, Path], name: str, keyword: str, value: str) -> None:
    """A planted input whose ``keyword`` holds ``value``."""
    write_planted(site["in"] / name, instance=7, acquisition_date="20200110")
    ds = pydicom.dcmread(site["in"] / name)
    with lenient_values():  # values a UI may not hold, on purpose
        setattr(ds, keyword, value)
    ds.save_as(site["in"] / name)


@pytest.mark.parametrize(("keyword", "value"), [
    ("StudyInstanceUID", "../../../escaped"), ("SeriesInstanceUID", "../escaped"),
    ("SOPInstanceUID", "../../../../escaped"), ("SOPInstanceUID", "1." + "2" * 63)])
def test_a_retained_uid_that_is_no_uid_names_no_output_path(site: dict[str, Path],
                                                             keyword: str, value: str) -> None:
    """The reported case: with --retain-uids, a StudyInstanceUID `../../../escaped` put the
    file outside OUT_DIR."""
    _with_value(site, "bad_uid.dcm", keyword, value)
    out = site["root"] / "deep" / "out"  # so that an escaped file stays in the test's folder
    deid(site, "--retain-uids", out=out)
    row = _report(out)["bad_uid.dcm"]
    assert row["status"] == "quarantined" and row["output"] == ""
    assert keyword in row["reason"] and "not a valid UID" in row["reason"]
    assert value not in row["reason"]
    assert not [p for p in site["root"].rglob("*escaped*")]
    assert (out.with_name("out.quarantine") / "bad_uid.dcm").is_file()
    assert instances(out) == manifest_files(out)
    assert len(instances(out)) == 3  # the others are written


@pytest.mark.parametrize("value", ["", " "])
def test_an_empty_sop_instance_uid_is_a_missing_one(site: dict[str, Path], value: str) -> None:
    """The reported case: two files with an empty SOPInstanceUID were exported as
    `<series>/.dcm`, the second reported as a duplicate of the first."""
    for name in ("empty_a.dcm", "empty_b.dcm"):
        _with_value(site, name, "SOPInstanceUID", value)
    deid(site)
    rows = _report(site["out"])
    for name in ("empty_a.dcm", "empty_b.dcm"):
        assert rows[name]["status"] == "quarantined", rows[name]
        assert "SOPInstanceUID is missing or empty" in rows[name]["reason"]
    assert not [p for p in site["out"].rglob("*.dcm") if p.name == ".dcm"]
    assert len(instances(site["out"])) == 3


def test_an_input_name_that_is_not_utf8_is_reported_as_it_is(site: dict[str, Path]) -> None:
    """The reported case: a file named b'caf\\xe9.dcm' (a Latin-1 system's name) stopped
    every run at the report, leaving a temporary file beside OUT_DIR each time."""
    shutil.copy(os.fsencode(pydicom_file("CT_small.dcm")),
                os.path.join(os.fsencode(site["in"]), b"caf\xe9.dcm"))
    for _ in range(2):
        deid(site)
    report = site["root"] / "out.deid-report.csv"
    assert b"\ncaf\xe9.dcm,unchanged," in report.read_bytes()  # the name's own bytes
    assert not [p for p in site["root"].iterdir() if p.name.endswith(".tmp")]
    verified = CliRunner().invoke(cli, ["deid-verify", str(site["in"]), str(site["out"])])
    assert verified.exit_code == 0, verified.output


def test_a_report_that_cannot_be_written_leaves_no_temporary_file(
        site: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    write_text = Path.write_text

    def full_disk(path: Path, *args: object, **kwargs: object) -> int:
        if "deid-report" not in path.name:
            return write_text(path, *args, **kwargs)  # type: ignore[arg-type]
        path.write_bytes(b"source,")  # opened and partly written, then the disk is full
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full_disk)
    with pytest.raises(OSError):
        deidentify_folder(site["in"], site["out"], load_schema("person"), SECRET, SITE_KEY,
                          ProfileOptions())
    assert not [p for p in site["root"].iterdir() if p.name.endswith(".tmp")]


# --- pprl cohort dicom on such folders -------------------------------------------------------

def _relabel(out: Path) -> Relabel:
    """A relabel file's content taking every patient of ``out`` into a cohort."""
    sites = sorted(set(pq.read_table(out / "manifest.parquet")["pseudonym"].to_pylist()))
    return Relabel("request-1", "imaging", b"the request's uid key".ljust(32, b"."),
                   {p: (f"cohort-{i}", -30) for i, p in enumerate(sites)})


def test_cohort_dicom_relabels_instances_without_a_study_uid(site: dict[str, Path]) -> None:
    """The reported cases: a `pprl deid` output holding a file without a StudyInstanceUID
    (under no-study/) crashed `pprl cohort dicom` with an AttributeError, every time; an
    empty one was written to <pseudonym>//..., listed so, then deleted as no output of the
    run."""
    _with_value(site, "empty_study.dcm", "StudyInstanceUID", "")
    write_planted(site["in"] / "no_study.dcm", instance=8, acquisition_date="20200110")
    ds = pydicom.dcmread(site["in"] / "no_study.dcm")
    del ds.StudyInstanceUID
    ds.save_as(site["in"] / "no_study.dcm")
    deid(site)
    out = site["root"] / "cohort"
    report = relabel_folder(_relabel(site["out"]), site["out"], out)
    listed = {r["file"] for r in pq.read_table(out / COHORT_MANIFEST).to_pylist()}
    assert listed == {p.relative_to(out).as_posix() for p in out.rglob("*.dcm")}
    assert len(listed) == len(instances(site["out"])) == 5
    assert sum("/no-study/" in f for f in listed) == 2
    assert report.removed == 0


def test_cohort_dicom_writes_nothing_outside_its_folder(site: dict[str, Path]) -> None:
    """The reported case: a de-identified file whose StudyInstanceUID is `../../../ESCAPED`
    (written by an older --retain-uids, or changed by hand) was relabelled into a folder
    outside OUT_DIR."""
    deid(site)
    victim = sorted(site["out"].rglob("*.dcm"))[0]
    ds = pydicom.dcmread(victim)
    with lenient_values():
        ds.StudyInstanceUID = "../../../ESCAPED"
    ds.save_as(victim)
    out = site["root"] / "deep" / "cohort"
    with pytest.raises(DeidError, match="StudyInstanceUID .* is not a valid UID") as refused:
        relabel_folder(_relabel(site["out"]), site["out"], out)
    assert "ESCAPED" not in str(refused.value)
    assert not list(site["root"].rglob("*ESCAPED*"))


def test_cohort_dicom_refuses_a_folder_made_with_retain_uids(site: dict[str, Path]) -> None:
    """Under --retain-uids the relabelled images kept the hospital's own UIDs (only 2.25.
    UIDs are remapped), which the export's keyed study_uid did not match and every request
    released unchanged."""
    deid(site, "--retain-uids")
    with pytest.raises(DeidError, match="--retain-uids"):
        relabel_folder(_relabel(site["out"]), site["out"], site["root"] / "cohort")
    assert not (site["root"] / "cohort").exists()


def test_cohort_dicom_counts_the_requests_entities(site: dict[str, Path]) -> None:
    """The new user's case: an entity holding two of the site's records was counted twice
    ("22 entities" where the export held 21)."""
    deid(site)
    relabel = _relabel(site["out"])
    assert len(relabel.entities) >= 2
    one = Relabel(relabel.request_id, relabel.party, relabel.uid_key,
                  {site_id: ("cohort-0", -30) for site_id in relabel.entities})
    report = relabel_folder(one, site["out"], site["root"] / "cohort")
    assert (report.entities, report.entities_without_images) == (1, 0)
