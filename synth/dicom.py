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
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, ExplicitVRLittleEndian

from deid.dicom_files import write_atomic
from deid.part10_writer import encode_part10

__all__ = ["write_imaging_dicom", "truth_after_deid", "SOP_CLASSES", "ISSUER"]

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


def _study(row: Mapping[str, Any]) -> Dataset:
    """What every instance of the record's study shares."""
    modality = str(row["modality"])
    ds = Dataset()
    ds.SOPClassUID = SOP_CLASSES[modality]
    ds.StudyInstanceUID = row["study_uid"]
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
    ds.StudyTime = "093000"
    ds.AccessionNumber = f"ACC{hashlib.sha256(row['study_uid'].encode()).hexdigest()[:10]}"
    ds.StudyID = "1"
    ds.Modality, ds.BodyPartExamined = modality, row["body_part"]
    ds.ReferringPhysicianName = "SYNTH^REFERRER"
    ds.InstitutionName = "Synthetic Imaging Centre"
    ds.StudyDescription = f"{modality} {row['body_part']}".title()
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows = ds.Columns = _SIDE
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.BurnedInAnnotation = "NO"
    return ds


def _instance(study: Dataset, series: int, instance: int) -> bytes:
    series_uid = _uid(study.StudyInstanceUID, "series", str(series))
    sop_uid = _uid(study.StudyInstanceUID, "instance", str(series), str(instance))
    ds = Dataset(study)  # shares the study's elements; the ones set below are its own
    ds.SeriesInstanceUID, ds.SOPInstanceUID = series_uid, sop_uid
    ds.SeriesTime = f"09{30 + series:02d}00"
    ds.SeriesNumber, ds.InstanceNumber = series, instance
    seed = int.from_bytes(hashlib.sha256(sop_uid.encode()).digest()[:8], "big")
    pixels = np.random.default_rng(seed).integers(0, 4096, (_SIDE, _SIDE), dtype=np.uint16)
    ds.PixelData = pixels.tobytes()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(study.SOPClassUID)
    meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    return encode_part10(ds, meta)


def write_imaging_dicom(extract: Path, out_dir: Path, *, series: int = 1,
                        instances: int = 2) -> int:
    """Write the studies of the imaging extract under ``out_dir``; returns the files written.
    Each file is written beside its name and renamed, so a stopped run can be repeated."""
    count = 0
    for row in pq.read_table(extract).to_pylist():
        study = _study(row)
        for s in range(1, series + 1):
            for i in range(1, instances + 1):
                write_atomic(_instance(study, s, i),
                             out_dir / row["record_id"] / str(s) / f"{i}.dcm")
                count += 1
    return count


def truth_after_deid(truth_csv: Path, deid_out: Path, report_csv: Path) -> pa.Table:
    """The truth (party, record_id, true_id) with the imaging party's records named as the
    linkage sees them: by the site pseudonyms ``pprl deid`` gave, traced from each exported
    file back to the record it was made from (its path). Records whose files were all
    withheld drop out, as they do from the imaging party's encodings."""
    truth = pacsv.read_csv(truth_csv, convert_options=pacsv.ConvertOptions(
        column_types={"true_id": pa.string()})).to_pylist()
    person = {(t["party"], t["record_id"]): t["true_id"] for t in truth}
    manifest = pq.read_table(deid_out / "manifest.parquet", columns=["pseudonym", "file"])
    pseudonym_of = dict(zip(manifest["file"].to_pylist(), manifest["pseudonym"].to_pylist(),
                            strict=True))
    rows = {(t["party"], t["record_id"], t["true_id"]) for t in truth
            if t["party"] != "imaging"}
    for outcome in pacsv.read_csv(report_csv).to_pylist():
        if outcome["status"] in ("written", "unchanged"):
            record_id = outcome["source"].split("/")[0]
            rows.add(("imaging", pseudonym_of[outcome["output"]],
                      person[("imaging", record_id)]))
    ordered = sorted(rows)
    return pa.table({name: [r[i] for r in ordered]
                     for i, name in enumerate(("party", "record_id", "true_id"))})
