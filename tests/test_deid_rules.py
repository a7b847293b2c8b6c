"""De-identification checked rule by rule against PS3.15 Table E.1-1 itself, independent of
``deid.profile`` and ``deid.verify``.

One generated file holds an element for every row of the table (the repeating groups 50xx
and 60xx included), each with its own sentinel value; for each option set, the outcome of
every element in the output is asserted from the table's own columns: X removed, Z emptied,
D replaced by a dummy, K kept byte for byte, C cleaned (dates shifted, the patient's
identifiers cut from text), U a new 2.25 UID.
"""

from __future__ import annotations

import datetime
import json
from importlib import resources
from pathlib import Path

import pydicom
import pytest
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

from deid.profile import ProfileOptions
from deid.run import deidentify_folder
from tokenizer.catalog import load_schema

SECRET = b"rule by rule: the linkage secret"
SITE_KEY = b"rule by rule: the site key here"
TABLE = json.loads((resources.files("deid.data") / "confidentiality_profile_attributes.json")
                   .read_text(encoding="utf-8"))
# The patient of the file: cleaning (C) on text must remove these.
NAME, BIRTH = ("Doe", "Jane"), "19800215"
# Replaced after the profile by the site pseudonym (README, "What is written"), so their
# outcome is not the table's Z and Z/D: checked by the pseudonym tests instead.
AFTER_THE_PROFILE = {"(0010,0010)", "(0010,0020)"}
# Not dataset elements of a Part 10 file: command elements (group 0000) exist only in DIMSE
# messages, and (0002,0003) is file meta information, which is written anew (its test is
# test_identity_replaced_and_method_recorded).
NOT_IN_A_FILE = {"(0000,1000)", "(0000,1001)", "(0002,0003)"}
# Option flag -> the table column it selects.
COLUMNS = {"retain_uids": "rtnUIDsOpt", "retain_patient_characteristics": "rtnPatCharsOpt",
           "retain_device_identity": "rtnDevIdOpt", "retain_institution_identity":
           "rtnInstIdOpt", "clean_descriptors": "cleanDescOpt",
           "clean_structured_content": "cleanStructContOpt", "clean_graphics": "cleanGraphOpt",
           "retain_safe_private": "rtnSafePrivOpt"}
DATES = {"modified": "rtnLongModifDatesOpt", "full": "rtnLongFullDatesOpt"}
OPTION_SETS = [{"dates": "remove"}, {}, {"dates": "full"}, *({flag: True} for flag in COLUMNS),
               {flag: True for flag in COLUMNS}]


def _tag(text: str) -> int:
    """A concrete tag of a row: repeating groups (50xx, 60xx) in their first group."""
    group, element = text.strip("()").upper().split(",")
    return int(group.replace("XX", "00") + element.replace("XXXX", "3000").replace("XX", "00"),
               16)


ROWS = [r for r in TABLE if not r["tag"].upper().startswith("(GGGG")
        and r["tag"] not in NOT_IN_A_FILE]


def _sentinel(index: int, vr: str, descriptor: bool) -> object:
    text = f"S{index:04d}Z"
    day = datetime.date(1990, 1, 1) + datetime.timedelta(days=index)
    if vr == "SH" and descriptor:  # 16 characters at most
        return f"{text} {NAME[1]} {NAME[0]}"
    if vr in ("LO", "LT", "ST", "UT", "UC") and descriptor:
        return f"{text} {NAME[1]} {NAME[0]} {BIRTH}"
    return {
        "AE": text, "CS": text, "LO": text, "LT": text, "SH": text, "ST": text, "UT": text,
        "UC": text, "PN": f"{text}^Q", "DA": day.strftime("%Y%m%d"),
        "DT": day.strftime("%Y%m%d") + "101010", "TM": f"{index % 24:02d}{index % 60:02d}11",
        "UI": f"1.2.826.0.1.3680043.9.7.{index}", "DS": f"{index}.5", "IS": str(index),
        "AS": f"{index % 900 + 10:03d}D", "US": index, "UR": f"http://s{index}.example",
        "OB": text.encode() + b"\0", "UN": text.encode() + b"\0",
    }[vr]


def _descriptor(row: dict[str, str]) -> bool:
    return row.get("cleanDescOpt") == "C"


def _build(path: Path) -> None:
    ds = Dataset()
    for index, row in enumerate(ROWS):
        tag = _tag(row["tag"])
        vr = dictionary_VR(tag).split(" or ")[0]
        if vr == "SQ":
            item = Dataset()
            item.CodeMeaning = f"S{index:04d}Z"
            ds.add_new(tag, vr, Sequence([item]))
        else:
            ds.add_new(tag, vr, _sentinel(index, vr, _descriptor(row)))
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = "^".join(NAME), "MRN-1", BIRTH
    ds.SOPClassUID = CTImageStorage
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.save_as(path, enforce_file_format=True)


def expected_action(row: dict[str, str], options: dict[str, object]) -> str:
    """From the table's columns alone: a selected option's code wins (C over K where two
    selected options disagree); a combined basic action is resolved as the README says."""
    columns = [c for flag, c in COLUMNS.items() if options.get(flag)]
    dates = options.get("dates", "modified")
    if dates in DATES:
        columns.append(DATES[dates])
    chosen = {row[c] for c in columns if c in row}
    if chosen:
        return "C" if "C" in chosen else "K"
    codes = row["basicProfile"].split("/")
    if len(codes) == 1:
        return codes[0]
    if "U*" in codes:
        return "U*"
    if row["stdCompIOD"] == "N" and "X" in codes:
        return "X"
    return "D" if "D" in codes else "Z"


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("every-attribute") / "in"
    folder.mkdir()
    _build(folder / "all.dcm")
    return folder


def _outcome_problem(row: dict[str, str], action: str, before: pydicom.DataElement,
                     after: pydicom.DataElement | None) -> str | None:
    """Why the output element does not show ``action``, or None."""
    vr = before.VR
    overlay = action == "C" and vr in ("OB", "OW") and before.tag >> 24 == 0x60
    if action == "X" or (vr == "UN" and action not in ("K", "Z")) or overlay:
        # (C on an overlay's bitmap, which may show rendered text, removes it)
        return None if after is None else "still present"
    if after is None:
        return "removed"
    old, new = before.value, after.value
    if action == "Z":
        return None if new in (None, "", b"") or (vr == "SQ" and len(new) == 0) else "not empty"
    if action == "K" or (action == "C" and vr in ("TM", "DS", "IS", "AS", "US", "OB")):
        return None if new == old else "changed"
    if vr == "SQ" and action == "D":  # a dummy: one empty item, the content gone
        return None if len(new) == 1 and len(new[0]) == 0 else "content kept"
    if vr == "SQ":  # C, U* on a sequence: kept, its items walked by their own rules
        return None if len(new) == len(old) else "items lost"
    if vr == "UI":  # U, U*, D, C: remapped
        return None if str(new).startswith("2.25.") and new != old else "not remapped"
    if action == "D":
        return None if new not in (None, "", b"") and new != old else "no dummy"
    assert action == "C"
    if vr in ("DA", "DT"):
        return None if new and new != old and len(str(new)) == len(str(old)) else "not shifted"
    text = str(new)
    if _descriptor(row) and vr in ("SH", "LO", "LT", "ST", "UT", "UC"):
        cut = all(part.lower() not in text.lower() for part in (*NAME, BIRTH))
        return None if cut and text.startswith(str(old)[:6]) else "identifiers not cut"
    return None if text == str(old) else "changed"


@pytest.mark.parametrize("options", OPTION_SETS, ids=lambda o: ",".join(
    f"{k}={v}" for k, v in o.items()) or "default")
def test_every_element_meets_its_tables_action(source: Path, tmp_path: Path,
                                               options: dict[str, object]) -> None:
    out = tmp_path / "out"
    report = deidentify_folder(source, out, load_schema("person"), SECRET, SITE_KEY,
                               ProfileOptions(**options))  # type: ignore[arg-type]
    assert [o.status for o in report.outcomes] == ["written"], report.outcomes
    before = pydicom.dcmread(source / "all.dcm")
    (written,) = out.rglob("*.dcm")
    after = pydicom.dcmread(written)
    problems = {}
    for row in ROWS:
        if row["tag"] in AFTER_THE_PROFILE:
            continue
        tag = _tag(row["tag"])
        action = expected_action(row, options)
        problem = _outcome_problem(row, action, before[tag], after.get(tag))
        if problem is not None:
            problems[f"{row['tag']} {row['name']} ({action})"] = problem
    assert problems == {}
    # every row but the private one (its own tests) and those that cannot be in a file
    assert len(ROWS) == 621 - 1 - len(NOT_IN_A_FILE)


def test_descriptors_are_scrubbed_by_name(source: Path, tmp_path: Path) -> None:
    """With Clean Descriptors, each descriptor the table marks C keeps its text without the
    patient's names and birth date; without it, none keeps its text (each is removed,
    emptied or replaced by a dummy)."""
    descriptors = [r for r in ROWS if _descriptor(r)
                   and dictionary_VR(_tag(r["tag"])) in ("LO", "LT", "ST", "UT", "UC")]
    assert len(descriptors) > 20
    cleaned, basic = tmp_path / "cleaned", tmp_path / "basic"
    for out, options in ((cleaned, ProfileOptions(clean_descriptors=True)),
                         (basic, ProfileOptions())):
        deidentify_folder(source, out, load_schema("person"), SECRET, SITE_KEY, options)
    kept = pydicom.dcmread(next(cleaned.rglob("*.dcm")))
    dropped = pydicom.dcmread(next(basic.rglob("*.dcm")))
    for row in descriptors:
        tag = _tag(row["tag"])
        text = str(kept[tag].value)
        assert text.startswith("S") and text.endswith("Z"), (row["name"], text)
        assert not any(p.lower() in text.lower() for p in (*NAME, BIRTH)), row["name"]
        marker = f"S{ROWS.index(row):04d}Z"
        assert tag not in dropped or marker not in str(dropped[tag].value), row["name"]
