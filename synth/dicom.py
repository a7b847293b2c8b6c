"""DICOM studies of the synthetic imaging extract: what an imaging site's PACS export looks
like to ``pprl deid``, so that the whole imaging path runs on data no real person is in.

One study per imaging record (its ``study_uid``, ``study_date``, ``modality`` and
``body_part``), one series of a few small images, with the record's identifiers in the
Patient module exactly as a site would hold them (MRN as PatientID, name, birth date, sex,
address with ZIP, phone) and the identifiers' typos and gaps of the extract. Files are named
``<record_id>/<series>/<n>.dcm`` so that the truth of a de-identified file can be traced to
its record. Deterministic for an extract.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, ExplicitVRLittleEndian

from tokenizer.encodings_file import AtomicFile

__all__ = ["write_imaging_dicom", "SOP_CLASSES", "ISSUER"]

# Image storage SOP classes by modality (PS3.4 Annex B).
SOP_CLASSES = {"CT": "1.2.840.10008.5.1.4.1.1.2", "MR": "1.2.840.10008.5.1.4.1.1.4",
               "CR": "1.2.840.10008.5.1.4.1.1.1", "US": "1.2.840.10008.5.1.4.1.1.6.1",
               "MG": "1.2.840.10008.5.1.4.1.1.1.2"}
ISSUER = "SYNTH-IMAGING"
_SIDE = 16  # pixels per side: small files, real pixel data


def _uid(*parts: str) -> str:
    digest = hashlib.sha256("\0".join(parts).encode()).digest()
    return "2.25." + str(int.from_bytes(digest[:16], "big"))


def _da(iso: str) -> str:
    return iso.replace("-", "") if iso else ""


def _dataset(row: Mapping[str, Any], series: int, instance: int) -> Dataset:
    modality = str(row["modality"])
    series_uid = _uid(row["study_uid"], "series", str(series))
    sop_uid = _uid(row["study_uid"], "instance", str(series), str(instance))
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(SOP_CLASSES[modality])
    meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = SOP_CLASSES[modality], sop_uid
    ds.StudyInstanceUID, ds.SeriesInstanceUID = row["study_uid"], series_uid
    ds.FrameOfReferenceUID = _uid(row["study_uid"], "frame")
    ds.PatientName = f"{str(row['surname']).upper()}^{str(row['given_name']).upper()}"
    ds.PatientID, ds.IssuerOfPatientID = row["mrn"], ISSUER
    ds.PatientBirthDate = _da(row["date_of_birth"])
    ds.PatientSex = {"m": "M", "f": "F"}.get(str(row["sex"]), "")
    place = ", ".join(p for p in (str(row["address"]), str(row["state"]).upper()) if p)
    ds.PatientAddress = f"{place} {row['zip']}".strip()
    if row["phone"]:
        ds.PatientTelephoneNumbers = row["phone"]
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = _da(row["study_date"])
    ds.StudyTime, ds.SeriesTime = "093000", f"09{30 + series:02d}00"
    ds.AccessionNumber = f"ACC{hashlib.sha256(row['study_uid'].encode()).hexdigest()[:10]}"
    ds.StudyID, ds.SeriesNumber, ds.InstanceNumber = "1", series, instance
    ds.Modality, ds.BodyPartExamined = modality, row["body_part"]
    ds.ReferringPhysicianName = "SYNTH^REFERRER"
    ds.InstitutionName = "Synthetic Imaging Centre"
    ds.StudyDescription = f"{modality} {row['body_part']}".title()
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows = ds.Columns = _SIDE
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.BurnedInAnnotation = "NO"
    seed = int.from_bytes(hashlib.sha256(sop_uid.encode()).digest()[:8], "big")
    pixels = np.random.default_rng(seed).integers(0, 4096, (_SIDE, _SIDE), dtype=np.uint16)
    ds.PixelData = pixels.tobytes()
    return ds


def write_imaging_dicom(extract: Path, out_dir: Path, *, series: int = 1,
                        instances: int = 2) -> int:
    """Write the studies of the imaging extract under ``out_dir``; returns the files written.
    Each file is written beside its name and renamed, so a stopped run can be repeated."""
    count = 0
    for row in pq.read_table(extract).to_pylist():
        for s in range(1, series + 1):
            folder = out_dir / row["record_id"] / str(s)
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(1, instances + 1):
                target = AtomicFile(folder / f"{i}.dcm")
                try:
                    _dataset(row, s, i).save_as(target.temp, enforce_file_format=True)
                except BaseException:
                    target.discard()
                    raise
                target.commit()
                count += 1
    return count
