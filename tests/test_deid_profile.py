"""The profile comes from PS3.15 Table E.1-1 (package data), options override it, and the
site key's replacements have the properties the issue asks for."""

from __future__ import annotations

import csv
import io
import re
from importlib import resources

import pytest
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset

from deid.dates import shift_date, shift_datetime, shift_value
from deid.identity import identity_of
from deid.private_tags import _parse_path, load_private_dispositions, normalise_disposition
from deid.profile import ProfileOptions, load_profile
from deid.scrub import Scrubber
from deid.site_keys import MAX_SHIFT_DAYS, MIN_SHIFT_DAYS, SiteKeys
from deid.transform import PatientContext, Transformer


def action(keyword: str, **options: object) -> str:
    rule = load_profile().rule_for(tag_for_keyword(keyword))
    assert rule is not None, keyword
    return rule.action(ProfileOptions(**options))  # type: ignore[arg-type]


def test_every_row_of_the_table_becomes_a_rule() -> None:
    profile = load_profile()
    assert profile.row_count == 621
    assert len(profile.exact) + len(profile.masked) + 1 == 621
    # Repeating groups: curve data (50xx,xxxx) and overlay data (60xx,3000) in any group.
    assert profile.rule_for(0x50021234) is not None
    assert profile.rule_for(0x601E3000) is not None
    assert profile.rule_for(0x601E0010) is None  # overlay rows: not in the table
    assert profile.rule_for(0x00291010) is profile.private


@pytest.mark.parametrize(("keyword", "options", "expected"), [
    ("PatientName", {}, "Z"),
    ("StudyDate", {"dates": "remove"}, "Z"),
    ("StudyDate", {"dates": "modified"}, "C"),
    ("StudyDate", {"dates": "full"}, "K"),
    ("SOPInstanceUID", {}, "U"),
    ("SOPInstanceUID", {"retain_uids": True}, "K"),
    ("PatientSex", {}, "Z"),
    ("PatientSex", {"retain_patient_characteristics": True}, "K"),
    ("PatientAge", {}, "X"),
    ("AcquisitionComments", {}, "X"),
    ("AcquisitionComments", {"clean_descriptors": True}, "C"),
    ("ContentSequence", {"clean_structured_content": True}, "C"),
    ("PatientID", {}, "D"),  # Z/D: PatientID is type 1 in some IODs
    ("SourceImageSequence", {}, "U*"),  # X/Z/U*: kept with its UIDs remapped
])
def test_actions_follow_the_table_and_options(keyword: str, options: dict[str, object],
                                              expected: str) -> None:
    assert action(keyword, **options) == expected


def test_private_elements_are_removed_unless_retain_safe_private() -> None:
    private = load_profile().private
    assert private.action(ProfileOptions()) == "X"
    assert private.action(ProfileOptions(retain_safe_private=True)) == "C"


@pytest.mark.parametrize(("raw", "expected"), [
    ("k", "k"), (" k", "k"), ("K", "k"), ("h", "h"), ("o", "o"), ("d", "d"), ("D", "d"),
    ("na", "d"), ("oi", "d"), ("", "d")])
def test_dirty_dispositions_are_normalised_unknown_deletes(raw: str, expected: str) -> None:
    assert normalise_disposition(raw) == expected


def test_knowledge_base_is_parsed_with_creators_and_nested_paths() -> None:
    table = load_private_dispositions()
    text = (resources.files("deid.data") / "tcia_private_tag_kb_2024-02-01.csv").read_text(
        encoding="utf-8-sig")
    patterns = [row["element_sig_pattern"] for row in csv.DictReader(io.StringIO(text))]
    assert len(patterns) == 8787
    assert all(_parse_path(p) in table for p in patterns)
    # Rows read in the CSV: (0019,MMCPrivate",11) is k; (01f7,ELSCINT1",16) is d.
    assert table[((0x0019, "mmcprivate", 0x11),)] == "k"
    assert table[((0x01F7, "elscint1", 0x16),)] == "d"
    assert any(len(path) > 1 for path in table)


def test_uids_are_keyed_valid_and_deterministic() -> None:
    keys, again, other = SiteKeys(b"site A"), SiteKeys(b"site A"), SiteKeys(b"site B")
    original = "1.2.840.113619.2.1.2411.1031152382.365.1.736169244"
    mapped = keys.uid(original)
    assert re.fullmatch(r"2\.25\.(0|[1-9][0-9]*)", mapped) and len(mapped) <= 64
    assert mapped == again.uid(original) != other.uid(original)
    assert keys.uid(original + "1") != mapped


def test_pseudonym_depends_on_issuer_and_day_offset_in_range() -> None:
    keys = SiteKeys(b"site A")
    assert keys.pseudonym("A", "123") != keys.pseudonym("B", "123")
    offsets = {keys.day_offset(keys.pseudonym("A", str(i))) for i in range(200)}
    assert all(-MAX_SHIFT_DAYS <= d <= -MIN_SHIFT_DAYS for d in offsets)
    assert len(offsets) > 150


def test_date_shifts_keep_intervals_and_empty_what_cannot_shift() -> None:
    assert shift_date("20200301", -1) == "20200229"  # leap year
    assert shift_date("20200101-20200131", -365) == "20190101-20190131"
    assert shift_date("2020", -1) == ""
    assert shift_date("20201340", -1) == ""
    assert shift_datetime("20200301101500.5+0100", -1) == "20200229101500.5+0100"
    assert shift_datetime("2020", -1) == ""


def test_retain_safe_private_follows_the_knowledge_base_per_block() -> None:
    """Mutation testing found the private-block handling unchecked: creators (gggg,0010) to
    (gggg,00FF) are kept with the blocks they own; in each block, an element the TCIA
    knowledge base marks k stays as it is, h gets a keyed stand-in, o is shifted like every
    date of the patient, d goes; an element whose creator is missing goes too."""
    dataset = Dataset()
    dataset.add_new(0x00090010, "LO", "FDMS 1.0")  # block 0x10
    dataset.add_new(0x000900FF, "LO", "GEMS_PETD_01")  # block 0xFF, the last one
    dataset.add_new(0x00091008, "UL", 7)  # FDMS 1.0 08: k
    dataset.add_new(0x00091005, "LO", "1.2.3.4")  # FDMS 1.0 05: h
    dataset.add_new(0x0009FF05, "DT", "20200110083000")  # GEMS_PETD_01 05: o
    dataset.add_new(0x0009FF02, "LO", "PLANTED")  # GEMS_PETD_01 02: d
    dataset.add_new(0x00091201, "LO", "NO CREATOR")  # block 0x12 has no creator
    keys = SiteKeys(b"site key of the private tests....")
    offset = keys.day_offset("P")
    Transformer(ProfileOptions(retain_safe_private=True), keys).apply(
        dataset, PatientContext("P", offset, Scrubber(identity_of(Dataset()))))
    kept = {int(e.tag): e.value for e in dataset}
    assert kept[0x00090010] == "FDMS 1.0" and kept[0x000900FF] == "GEMS_PETD_01"
    assert kept[0x00091008] == 7
    assert kept[0x00091005] == keys.hashed_value("1.2.3.4", 16) != "1.2.3.4"
    assert kept[0x0009FF05] == shift_value("DT", "20200110083000", offset) != "20200110083000"
    assert 0x0009FF02 not in kept and 0x00091201 not in kept
