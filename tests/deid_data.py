"""Test inputs for de-identification: real files (pydicom's bundled ones and the deid-data
package's fake-PHI files) plus files built here with PHI planted in nested sequences, private
elements and descriptions."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import deid_data
import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.sequence import Sequence

__all__ = ["PLANTED", "pydicom_file", "deid_data_files", "write_planted", "build_input_folder",
           "write_un_sequence"]

# What the planted patient's EHR row holds, normalised by hand as the README documents.
PLANTED = {"given_name": "jane", "surname": "doe", "date_of_birth": "1980-02-15", "sex": "f",
           "address": "42 elm street", "zip": "62704", "phone": "2175550199"}
PLANTED_STRINGS = ["Doe", "Jane", "MRN-4711", "OTHER-99", "19800215", "Elm Street", "555-0199",
                   "PlantedOperator", "Planted private text", "Springfield", "Follow-up"]
STUDY_UID = "1.2.826.0.1.3680043.8.498.4711"


def pydicom_file(name: str) -> Path:
    path = get_testdata_file(name, download=False)
    assert path is not None, f"pydicom test file {name} is not bundled"
    return Path(str(path))


def deid_data_files(folder: str) -> list[Path]:
    root = Path(deid_data.__file__).parent / "data" / folder
    return sorted(root.glob("*.dcm"))


def write_planted(path: Path, *, instance: int, acquisition_date: str) -> None:
    """CT_small with the planted patient and PHI in every hiding place the issue lists."""
    ds = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    ds.PatientName = "Doe^Jane^Q"
    ds.PatientID = "MRN-4711"
    ds.IssuerOfPatientID = "GOOD HOSPITAL"
    ds.PatientBirthDate = "19800215"
    ds.PatientSex = "F"
    ds.PatientAddress = "42 Elm Street, Springfield, IL 62704"
    ds.PatientTelephoneNumbers = "(217) 555-0199"
    other = Dataset()
    other.PatientID = "OTHER-99"
    ds.OtherPatientIDsSequence = Sequence([other])
    ds.StudyDescription = "Follow-up for Jane Doe, born 19800215"
    ds.StudyInstanceUID = STUDY_UID
    ds.SeriesInstanceUID = f"{STUDY_UID}.{instance}"
    ds.SOPInstanceUID = f"{STUDY_UID}.{instance}.1"
    ds.StudyDate = "20200110"
    ds.AcquisitionDate = acquisition_date
    source = Dataset()
    source.ReferencedSOPClassUID = ds.SOPClassUID
    source.ReferencedSOPInstanceUID = f"{STUDY_UID}.99.1"
    source.OperatorsName = "PlantedOperator^Nested"
    source.ContentDate = "20200105"
    ds.SourceImageSequence = Sequence([source])
    ds.add_new(0x00090010, "LO", "PLANTED CREATOR")
    ds.add_new(0x00091001, "LO", "Planted private text")
    inner = Dataset()
    inner.PatientName = "Doe^Jane"
    ds.add_new(0x00091002, "SQ", Sequence([inner]))
    ds.add_new(0x00190010, "LO", "MMCPrivate")
    ds.add_new(0x00191011, "LO", "safe value")
    ds.save_as(path, enforce_file_format=True)


def write_un_sequence(path: Path) -> Dataset:
    """CT_small whose ReferencedSeriesSequence (0008,1115) is encoded with VR UN, as a node
    that does not know the element sends it (PS3.5 6.2.2: its item in Implicit VR Little
    Endian), holding the patient's name and the file's own UIDs. Returns the original."""
    ds = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    item = Dataset()
    item.PatientName = ds.PatientName
    item.SeriesInstanceUID = ds.SeriesInstanceUID
    item.ReferencedSOPInstanceUID = ds.SOPInstanceUID
    encoded = DicomBytesIO()
    encoded.is_little_endian, encoded.is_implicit_VR = True, True
    write_dataset(encoded, item)
    body = encoded.getvalue()
    value = struct.pack("<HHL", 0xFFFE, 0xE000, len(body)) + body
    tag = pydicom.tag.Tag(0x00081115)
    ds[tag] = RawDataElement(tag, "UN", len(value), value, 0, False, True)
    ds.save_as(path, enforce_file_format=True)  # a raw element is written as it is
    return ds


def build_input_folder(root: Path) -> Path:
    """Real files, planted files, a non-DICOM file and two damaged ones."""
    root.mkdir(parents=True)
    for name in ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "JPEG2000.dcm"):
        shutil.copy(pydicom_file(name), root / name)
    cookies = root / "cookies"
    cookies.mkdir()
    for path in deid_data_files("dicom-cookies")[:3] + deid_data_files("ultrasounds")[:1]:
        shutil.copy(path, cookies / path.name)
    write_planted(root / "planted_1.dcm", instance=1, acquisition_date="20200110")
    write_planted(root / "planted_2.dcm", instance=2, acquisition_date="20200120")
    (root / "notes.txt").write_text("not an image\n")
    data = pydicom_file("CT_small.dcm").read_bytes()
    (root / "truncated.dcm").write_bytes(data[:20000])
    (root / "garbage.dcm").write_bytes(b"\x00" * 128 + b"DICM" + b"\xff" * 50)
    return root
