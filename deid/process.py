"""De-identify one file: the unit of work each worker process runs.

Everything about a file is decided from the file and the site key alone (its pseudonym, UIDs
and date offset), so files can be processed in any order and in parallel, and a re-run gives
the same bytes; only the CLK, which needs every patient at once, is left to the caller.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.dataset import Dataset

from .burned_in import burned_in_reason
from .dicom_files import (
    instance_path,
    is_part10,
    lenient_values,
    new_file_meta,
    read_dataset,
    uid_path_names,
    write_atomic,
)
from .errors import UnreadableFileError
from .identity import identity_of, person_columns
from .method import mark_deidentified
from .part10_writer import encode_part10
from .pixels import (
    PixelCleaningError,
    RegionRule,
    blank_regions,
    describe_device,
    matching_rule,
)
from .profile import ProfileOptions
from .scrub import Scrubber
from .site_keys import SiteKeys
from .transform import PatientContext, Transformer

__all__ = ["FileOutcome", "FileProcessor"]

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class FileOutcome:
    """What happened to one input file.

    ``status`` is written, unchanged (an earlier run wrote the same bytes), duplicate
    (another input of the run has the same SOPInstanceUID and comes first), not-dicom,
    quarantined (corrupt or truncated) or withheld (policy: burned-in text, no PatientID).
    ``columns`` are the normalised identifiers for tokenizing; they stay in memory.
    """

    source: str
    status: str
    reason: str = ""
    output: str = ""
    patient: tuple[str, str] | None = None
    columns: dict[str, str] = field(default_factory=dict)
    pseudonym: str = ""
    study_uid: str = ""
    series_uid: str = ""
    sop_uid: str = ""
    modality: str = ""
    study_date: str = ""
    body_part: str = ""


def _text(dataset: Dataset, keyword: str) -> str:
    """An element's value as text; empty if absent or emptied (a removed date is None)."""
    value = dataset.get(keyword)
    return "" if value is None else str(value)


def _holds(target: Path, data: bytes) -> bool:
    """Whether ``target`` already holds exactly ``data`` (an earlier run's identical output)."""
    try:
        return target.stat().st_size == len(data) and target.read_bytes() == data
    except FileNotFoundError:
        return False


class FileProcessor:
    """Reads, de-identifies and writes files of one run."""

    def __init__(self, in_dir: Path, out_dir: Path, options: ProfileOptions, site_key: bytes,
                 allow_burned_in: bool, pixel_rules: list[RegionRule] | None = None) -> None:
        """``pixel_rules``: the Clean Pixel Data option (None: not selected)."""
        self.in_dir = in_dir
        self.out_dir = out_dir
        self.options = options
        self.keys = SiteKeys(site_key)
        self.transformer = Transformer(options, self.keys)
        self.allow_burned_in = allow_burned_in
        self.pixel_rules = pixel_rules

    def __call__(self, source: Path) -> FileOutcome:
        """De-identify ``source``; an output that already holds the same bytes is kept."""
        relative = source.relative_to(self.in_dir).as_posix()
        try:
            handle = source.open("rb")
        except OSError as e:
            return FileOutcome(relative, "not-dicom", f"cannot be opened ({type(e).__name__})")
        try:
            with handle:
                if not is_part10(handle):
                    return FileOutcome(relative, "not-dicom",
                                       "no DICOM Part 10 preamble and DICM prefix")
                with lenient_values():
                    return self._deidentify(read_dataset(handle, source), relative)
        except UnreadableFileError as e:
            return FileOutcome(relative, "quarantined", str(e).replace(str(source), relative))
        except Exception as e:  # pydicom raises many types on a value it cannot convert
            # Its type only: pydicom's messages and tracebacks show the element's bytes.
            log.warning("%s: quarantined: an element cannot be read or written (%s)",
                        relative, type(e).__name__)
            return FileOutcome(relative, "quarantined", f"an element cannot be read or "
                                                        f"written ({type(e).__name__})")

    def _deidentify(self, dataset: Dataset, relative: str) -> FileOutcome:
        identity = identity_of(dataset)
        if not identity.patient_id:
            return FileOutcome(relative, "withheld", "PatientID is empty: no pseudonym can be "
                               "given, so the file could not be linked")
        reason = burned_in_reason(dataset)
        rule = matching_rule(dataset, self.pixel_rules) if self.pixel_rules else None
        if rule is not None:
            try:
                blank_regions(dataset, rule.regions)
            except PixelCleaningError as e:
                return FileOutcome(relative, "withheld", f"{reason or 'pixel region rule'}: "
                                   f"cannot clean: {e}")
        elif reason is not None and not self.allow_burned_in:
            how = (f"no --clean-pixel-data rule matches {describe_device(dataset)}"
                   if self.pixel_rules is not None else "pixel data is not cleaned")
            return FileOutcome(relative, "withheld", f"{reason}; {how} (use "
                               "--allow-burned-in after checking the images)")
        pseudonym = self.keys.pseudonym(identity.issuer, identity.patient_id)
        patient = PatientContext(pseudonym, self.keys.day_offset(pseudonym),
                                 Scrubber(identity))
        transfer_syntax = str(dataset.file_meta.TransferSyntaxUID)
        self.transformer.apply(dataset, patient)
        mark_deidentified(dataset, self.options, pseudonym, pixels_cleaned=rule is not None)
        meta = new_file_meta(dataset, transfer_syntax)
        study, series, sop = uid_path_names(dataset, relative)
        target = self.out_dir / instance_path(pseudonym, study, series, sop)
        data = encode_part10(dataset, meta)
        status = "unchanged" if _holds(target, data) else "written"
        if status == "written":
            write_atomic(data, target)
        return FileOutcome(
            relative, status, output=target.relative_to(self.out_dir).as_posix(),
            patient=identity.key, columns=person_columns(identity), pseudonym=pseudonym,
            study_uid=study, series_uid=series, sop_uid=sop,
            modality=_text(dataset, "Modality"), study_date=_text(dataset, "StudyDate"),
            body_part=_text(dataset, "BodyPartExamined"))
