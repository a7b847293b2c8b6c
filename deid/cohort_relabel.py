"""``pprl cohort dicom``: give the imaging site's de-identified studies of a cohort the
identifiers and dates of the researcher's export, where those images live.

The relabel file (``pprl cohort relabel``, fetched with the site's upload token for an
approved request) holds the site's own pseudonyms of the cohort, each with the request's
pseudonym and day offset, and the request's UID key; nothing else. For every instance of
``pprl deid``'s OUT_DIR whose pseudonym is in it, this writes a copy with PatientID and
PatientName set to the request's pseudonym, every UID the site gave (``2.25.``: its
instance, series, study and frame of reference UIDs, and every reference to them) remapped
with the request's UID key exactly as the export's ``study_uid`` column was, and every date
(DA, DT) moved by the entity's offset, as the export's dates were. Nothing outside the
cohort is written. Like ``pprl deid``, OUT_DIR is marked INCOMPLETE while it is written, files
are written beside their names and renamed, a re-run resumes, and files that are not outputs
of the run are removed at the end.
"""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from tokenizer.encodings_file import INCOMPLETE_MARKER, AtomicFile
from tokenizer.keys import keyed_uid

from .dates import shift_value
from .dicom_files import instance_path, new_file_meta, read_dataset, uid_path_names, write_atomic
from .errors import DeidError
from .output_folder import SETTINGS_NAME, DeidSettings
from .part10_writer import encode_part10

__all__ = ["RELABEL_FORMAT", "Relabel", "RelabelReport", "read_relabel", "relabel_folder",
           "COHORT_MANIFEST"]

RELABEL_FORMAT = "pprl-relabel/1"
COHORT_MANIFEST = "cohort-manifest.parquet"
_RECORD = "cohort-settings.json"
_OWN_FILES = {_RECORD, INCOMPLETE_MARKER, COHORT_MANIFEST}


@dataclass(frozen=True)
class Relabel:
    request_id: str
    party: str
    uid_key: bytes
    entities: dict[str, tuple[str, int]]  # site pseudonym -> (request pseudonym, day offset)

    @property
    def fingerprint(self) -> str:
        """Names this relabel file's content without showing the key."""
        digest = hashlib.sha256(self.request_id.encode() + b"\0" + self.uid_key)
        return digest.hexdigest()[:16]


@dataclass(frozen=True)
class RelabelReport:
    instances: int
    written: int
    unchanged: int
    studies: int
    entities: int
    entities_without_images: int
    removed: int
    manifest: Path


def _fail(path: Path, where: str, what: str) -> DeidError:
    return DeidError(f"{path}: {where}: {what}; fetch it again with `pprl cohort relabel`")


def read_relabel(path: Path) -> Relabel:
    """Read and check a relabel file.

    Raises:
        DeidError: naming the file, the record and the field that is wrong.
    """
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DeidError(f"{path}: cannot be read as a relabel file ({type(e).__name__})") \
            from e
    if not isinstance(doc, dict) or doc.get("format") != RELABEL_FORMAT:
        raise _fail(path, "format", f"not a {RELABEL_FORMAT} file")
    try:
        uid_key = bytes.fromhex(str(doc.get("uid_key", "")))
    except ValueError:
        uid_key = b""
    if len(uid_key) < 16:
        raise _fail(path, "uid_key", "missing or not a hex key of 16 bytes or more")
    records = doc.get("records")
    if not isinstance(records, list):
        raise _fail(path, "records", "missing")
    entities: dict[str, tuple[str, int]] = {}
    for index, record in enumerate(records, start=1):
        where = f"record {index}"
        if not isinstance(record, dict):
            raise _fail(path, where, "not an object")
        site, pseudonym, offset = (record.get(k) for k in ("record_id", "pseudonym",
                                                           "day_offset"))
        if not isinstance(site, str) or not site:
            raise _fail(path, f"{where} field record_id", "missing")
        if not isinstance(pseudonym, str) or not pseudonym:
            raise _fail(path, f"{where} field pseudonym", "missing")
        if not isinstance(offset, int) or isinstance(offset, bool):
            raise _fail(path, f"{where} field day_offset", "not a whole number of days")
        entities[site] = (pseudonym, offset)
    return Relabel(str(doc.get("request_id", "")), str(doc.get("party", "")), uid_key,
                   entities)


def _remap_uids(value: Any, uid_key: bytes) -> Any:
    def one(uid: str) -> str:
        return keyed_uid(uid_key, uid) if uid.startswith("2.25.") else uid
    if isinstance(value, MultiValue | list):
        return [one(str(v)) for v in value]
    return one(str(value))


def _shift(vr: str, value: Any, days: int) -> Any:
    if isinstance(value, MultiValue | list):
        return [shift_value(vr, str(v), days) for v in value]
    return shift_value(vr, str(value), days)


def _relabel_dataset(dataset: Dataset, uid_key: bytes, days: int) -> None:
    for element in dataset:
        if element.VR == "SQ":
            for item in element.value:
                _relabel_dataset(item, uid_key, days)
        elif element.value in (None, "", b""):
            continue
        elif element.VR == "UI":
            element.value = _remap_uids(element.value, uid_key)
        elif element.VR in ("DA", "DT"):
            element.value = _shift(element.VR, element.value, days)


def _relabel_file(source: Path, pseudonym: str, days: int, uid_key: bytes
                  ) -> tuple[bytes, Dataset]:
    with source.open("rb") as handle:
        dataset = read_dataset(handle, source)
    transfer_syntax = str(dataset.file_meta.TransferSyntaxUID)
    _relabel_dataset(dataset, uid_key, days)
    dataset.PatientID = pseudonym
    dataset.PatientName = pseudonym
    if days:
        dataset.LongitudinalTemporalInformationModified = "MODIFIED"
    return encode_part10(dataset, new_file_meta(dataset, transfer_syntax)), dataset


def _prepare(out_dir: Path, relabel: Relabel) -> None:
    record = out_dir / _RECORD
    if out_dir.exists() and any(out_dir.iterdir()):
        try:
            recorded = json.loads(record.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            raise DeidError(f"OUT_DIR {out_dir} is not empty and was not made by "
                            f"`pprl cohort dicom`: give an empty or new folder") from None
        if recorded.get("fingerprint") != relabel.fingerprint:
            raise DeidError(f"OUT_DIR {out_dir} holds request {recorded.get('request_id')!r}"
                            f", not {relabel.request_id!r}: give a new folder per request")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / INCOMPLETE_MARKER).write_text(
        "A `pprl cohort dicom` run writing this folder has not finished: its files are not "
        "to be used. Run the same command again to complete it.\n", encoding="utf-8")
    target = AtomicFile(record)
    target.temp.write_text(json.dumps({"format": "pprl-cohort-dicom/1",
                                       "request_id": relabel.request_id,
                                       "party": relabel.party,
                                       "fingerprint": relabel.fingerprint}, indent=2) + "\n",
                           encoding="utf-8")
    target.commit()


def _prune(out_dir: Path, keep: set[str]) -> int:
    removed = 0
    for root, folders, files in os.walk(out_dir, topdown=False):
        here = Path(root)
        for name in files:
            relative = (here / name).relative_to(out_dir).as_posix()
            if relative not in keep and not (here == out_dir and name in _OWN_FILES):
                (here / name).unlink()
                removed += 1
        for name in folders:
            with suppress(OSError):
                (here / name).rmdir()
    return removed


def relabel_folder(relabel: Relabel, deid_out: Path, out_dir: Path) -> RelabelReport:
    """Write the cohort's instances of ``deid_out`` into ``out_dir``, relabelled.

    Raises:
        DeidError: ``deid_out`` is not a complete ``pprl deid`` output (or one made with
            --retain-uids, or a file whose UIDs cannot name a path), or ``out_dir`` holds
            another request's images or files ``pprl cohort dicom`` did not make.
    """
    manifest_path = deid_out / "manifest.parquet"
    if (deid_out / INCOMPLETE_MARKER).exists():
        raise DeidError(f"{deid_out} is marked INCOMPLETE: finish its `pprl deid` run first")
    if not manifest_path.is_file():
        raise DeidError(f"{deid_out} holds no manifest.parquet: is it a `pprl deid` OUT_DIR?")
    if out_dir.resolve() == deid_out.resolve() or deid_out.resolve() in \
            out_dir.resolve().parents:
        raise DeidError("OUT_DIR must not be the de-identified folder or inside it")
    settings = DeidSettings.from_file(deid_out / SETTINGS_NAME)
    if settings is not None and settings.options.get("retain_uids"):
        raise DeidError(f"{deid_out} was made with --retain-uids: its UIDs are the hospital's "
                        f"own, which the export's keyed study_uid would not match and every "
                        f"request would release unchanged; de-identify again without "
                        f"--retain-uids for cohorts")
    manifest = pq.read_table(manifest_path, columns=["pseudonym", "modality", "file"])
    _prepare(out_dir, relabel)
    rows: list[dict[str, Any]] = []
    written = unchanged = 0
    seen: set[str] = set()
    for site, modality, file in zip(*(manifest[c].to_pylist() for c in
                                      ("pseudonym", "modality", "file")), strict=True):
        if site not in relabel.entities:
            continue
        seen.add(site)
        pseudonym, days = relabel.entities[site]
        data, dataset = _relabel_file(deid_out / file, pseudonym, days, relabel.uid_key)
        study, series, sop = uid_path_names(dataset, file)
        if not sop:
            raise DeidError(f"{file}: no SOPInstanceUID (0008,0018): not a `pprl deid` output")
        relative = instance_path(pseudonym, study, series, sop)
        target = out_dir / relative
        if target.is_file() and target.stat().st_size == len(data) \
                and target.read_bytes() == data:
            unchanged += 1
        else:
            write_atomic(data, target)
            written += 1
        rows.append({"pseudonym": pseudonym, "study_uid": study, "series_uid": series,
                     "sop_uid": sop, "modality": modality,
                     "study_date": str(dataset.get("StudyDate") or ""), "file": relative})
    removed = _prune(out_dir, {r["file"] for r in rows})
    table = pa.Table.from_pylist(rows, schema=pa.schema(
        [(name, pa.string()) for name in ("pseudonym", "study_uid", "series_uid", "sop_uid",
                                          "modality", "study_date", "file")]))
    target_manifest = AtomicFile(out_dir / COHORT_MANIFEST)
    pq.write_table(table, target_manifest.temp)
    target_manifest.commit()
    (out_dir / INCOMPLETE_MARKER).unlink()
    # Entities are the request's pseudonyms: one may hold several of the site's records.
    imaged = {relabel.entities[site][0] for site in seen}
    everyone = {pseudonym for pseudonym, _ in relabel.entities.values()}
    return RelabelReport(len(rows), written, unchanged, len({r["study_uid"] for r in rows}),
                         len(imaged), len(everyone - imaged), removed,
                         out_dir / COHORT_MANIFEST)
