"""The fast Part 10 reader and writer, and the transform's byte-level actions, are checked
against pydicom itself on every DICOM file the tests have: pydicom's bundled files (every
transfer syntax it ships, implicit and explicit VR, big endian, deflated, character sets,
sequences of undefined length), the deid-data files and the planted-PHI files."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_files
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset

from deid.dicom_files import lenient_values, new_file_meta
from deid.identity import identity_of
from deid.method import mark_deidentified
from deid.part10_reader import read_part10_bytes
from deid.part10_writer import encode_part10
from deid.profile import ProfileOptions
from deid.scrub import Scrubber
from deid.site_keys import SiteKeys
from deid.transform import PatientContext, Transformer

from .deid_data import deid_data_files, write_planted

OPTION_SETS = [ProfileOptions(), ProfileOptions(retain_safe_private=True, dates="full"),
               ProfileOptions(dates="remove", clean_descriptors=True)]
# Bundled files pydicom itself refuses to read as Part 10 (a file of the list that reads, or
# a file outside it that does not, fails the test).
NOT_PART10 = {"rtstruct.dcm": "a DICOM JSON-like dump saved as .dcm", "rtplan.dump": "text dump",
              "rtstruct.dump": "text dump", "zipMR.gz": "gzip archive",
              "crayons.icc": "ICC profile", "README.txt": "text", "test_PN.json": "DICOM JSON",
              "test1.json": "DICOM JSON", "ExplVR_LitEndNoMeta.dcm": "no preamble or meta",
              "ExplVR_BigEndNoMeta.dcm": "no preamble or meta", "no_meta.dcm": "no meta"}
# Files that cannot be de-identified, each for a reason `pprl deid` quarantines it for.
UNPROCESSABLE = {
    "UN_sequence.dcm": "no SOPClassUID", "no_meta_group_length.dcm": "no SOPClassUID",
    "nested_priv_SQ.dcm": "no SOPClassUID", "priv_SQ.dcm": "no SOPClassUID",
    "empty_charset_LEI.dcm": "no SOPClassUID",
    "meta_missing_tsyntax.dcm": "no TransferSyntaxUID in the file meta",
}
# pydicom's writer cannot write this file's ImageType (0008,0008) as read, without the
# conversion our writer does first (ours writes it, and dcmwrite agrees afterwards).
DCMWRITE_ALONE_FAILS = {"SC_rgb_jpeg.dcm"}


@pytest.fixture(scope="module")
def dicom_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Every Part 10 file pydicom can read, by name."""
    planted = tmp_path_factory.mktemp("planted")
    write_planted(planted / "planted.dcm", instance=1, acquisition_date="20200112")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns that it cannot download extra files
        bundled = [Path(p) for p in get_testdata_files("*")]
    paths = bundled + [p for folder in ("dicom-cookies", "ultrasounds", "animals", "humans")
                       for p in deid_data_files(folder)] + [planted / "planted.dcm"]
    files, refused = {}, set()
    with lenient_values():
        for path in paths:
            if not path.is_file():
                continue
            data = path.read_bytes()
            try:
                pydicom.dcmread(io.BytesIO(data))
            except pydicom.errors.InvalidDicomError:
                refused.add(path.name)
                continue
            files[path.name] = data
    assert refused == set(NOT_PART10)
    assert len(files) > 60
    return files


def _elements(dataset: Dataset) -> dict[int, object]:
    """Each element as read: raw ones by everything pydicom records of them."""
    found: dict[int, object] = {}
    for tag in dataset.keys():  # noqa: SIM118 (iterating a Dataset would convert)
        element = dataset.get_item(tag)
        found[tag] = (tuple(element)[:7] if isinstance(element, RawDataElement)
                      else (element.VR, element.value))
    return found


def test_fast_reader_builds_what_dcmread_builds(dicom_files: dict[str, bytes]) -> None:
    fast = []
    with lenient_values():
        for name, data in dicom_files.items():
            ours = read_part10_bytes(data, name)
            if ours is None:
                continue
            fast.append(name)
            theirs = pydicom.dcmread(io.BytesIO(data))
            assert _elements(ours) == _elements(theirs), name
            assert ours.original_encoding == theirs.original_encoding, name
            assert ours.original_character_set == theirs.original_character_set, name
            assert ours.preamble == theirs.preamble, name
            assert {e.tag: e.value for e in ours.file_meta} == {
                e.tag: e.value for e in theirs.file_meta}, name
    # explicit and implicit VR, with and without a character set, take the fast path
    assert {"CT_small.dcm", "MR_small_implicit.dcm", "planted.dcm", "rtplan.dcm"} <= set(fast)
    assert "MR_small_bigendian.dcm" not in fast and "image_dfl.dcm" not in fast


def _deidentified(data: bytes, options: ProfileOptions, *, fast_read: bool
                  ) -> tuple[Dataset, object]:
    dataset = (read_part10_bytes(data, "input") if fast_read else None) or pydicom.dcmread(
        io.BytesIO(data))
    keys = SiteKeys(b"site key of the part 10 tests")
    identity = identity_of(dataset)
    pseudonym = keys.pseudonym(identity.issuer, identity.patient_id or "none")
    syntax = str(dataset.file_meta.TransferSyntaxUID)
    Transformer(options, keys).apply(dataset, PatientContext(
        pseudonym, keys.day_offset(pseudonym), Scrubber(identity)))
    mark_deidentified(dataset, options, pseudonym)
    return dataset, new_file_meta(dataset, syntax)


def _dcmwrite(dataset: Dataset, meta: object) -> bytes:
    dataset.file_meta = meta
    dataset.preamble = b"\x00" * 128
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, dataset, enforce_file_format=True)
    return buffer.getvalue()


@pytest.mark.parametrize("options", OPTION_SETS, ids=["default", "private-full", "remove"])
def test_fast_writer_writes_what_dcmwrite_writes(dicom_files: dict[str, bytes],
                                                 options: ProfileOptions) -> None:
    compared, failed = 0, set()
    with lenient_values():
        for name, data in dicom_files.items():
            for fast_read in (True, False):
                try:
                    dataset, meta = _deidentified(data, options, fast_read=fast_read)
                except (AttributeError, TypeError):
                    failed.add(name)
                    continue
                assert encode_part10(dataset, meta) == _dcmwrite(dataset, meta), name
                compared += 1
    assert failed == set(UNPROCESSABLE)
    assert compared == 2 * (len(dicom_files) - len(UNPROCESSABLE))


@pytest.mark.parametrize("options", OPTION_SETS, ids=["default", "private-full", "remove"])
def test_actions_on_bytes_equal_actions_on_converted_values(
        dicom_files: dict[str, bytes], options: ProfileOptions,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The transform empties, remaps, shifts and replaces raw elements on their bytes; the
    files must be those it writes when it converts each such element and changes its
    value instead."""
    with lenient_values():
        dataset, _ = _deidentified(dicom_files["CT_small.dcm"], options, fast_read=True)
    for keyword in ("StudyInstanceUID", "StudyDate", "AccessionNumber"):  # U, C or K, Z
        assert isinstance(dataset.get_item(keyword), RawDataElement), keyword
    on_bytes, failed = {}, set()
    with lenient_values():
        for name, data in dicom_files.items():
            try:
                on_bytes[name] = _dcmwrite(*_deidentified(data, options, fast_read=True))
            except (AttributeError, TypeError):
                failed.add(name)
                continue
        monkeypatch.setattr(Transformer, "_act_on_bytes", lambda *_: False)
        for name, written in on_bytes.items():
            converted = _dcmwrite(*_deidentified(dicom_files[name], options, fast_read=True))
            assert written == converted, name
    assert failed == set(UNPROCESSABLE) | DCMWRITE_ALONE_FAILS
    assert len(on_bytes) == len(dicom_files) - len(failed)
