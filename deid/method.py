"""Marking a dataset as de-identified (PS3.15 E.1.1 and CID 7050), and the pseudonym.

PatientIdentityRemoved, DeidentificationMethod and DeidentificationMethodCodeSequence say
what was done, so a receiver can tell which options were applied without asking the site.
"""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from .profile import ProfileOptions

__all__ = ["mark_deidentified"]

# CID 7050 De-identification Method: option -> (code value, code meaning).
_BASIC = ("113100", "Basic Application Confidentiality Profile")
_OPTION_CODES = {
    "retain_uids": ("113110", "Retain UIDs Option"),
    "dates_full": ("113106", "Retain Longitudinal Temporal Information Full Dates Option"),
    "dates_modified": ("113107",
                       "Retain Longitudinal Temporal Information Modified Dates Option"),
    "retain_patient_characteristics": ("113108", "Retain Patient Characteristics Option"),
    "retain_device_identity": ("113109", "Retain Device Identity Option"),
    "retain_institution_identity": ("113112", "Retain Institution Identity Option"),
    "clean_descriptors": ("113105", "Clean Descriptors Option"),
    "clean_structured_content": ("113104", "Clean Structured Content Option"),
    "clean_graphics": ("113103", "Clean Graphics Option"),
    "retain_safe_private": ("113111", "Retain Safe Private Option"),
}
_CLEAN_PIXEL_DATA = ("113101", "Clean Pixel Data Option")
_TEMPORAL = {"modified": "MODIFIED", "full": "UNMODIFIED", "remove": "REMOVED"}


def _code(value: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = "DCM"
    item.CodeMeaning = meaning
    return item


def mark_deidentified(dataset: Dataset, options: ProfileOptions, pseudonym: str, *,
                      pixels_cleaned: bool = False) -> None:
    """Set the pseudonym as PatientID and PatientName and record the method used (Clean
    Pixel Data only for an image whose pixels were cleaned)."""
    dataset.PatientID = pseudonym
    dataset.PatientName = pseudonym
    dataset.PatientIdentityRemoved = "YES"
    codes = [_BASIC] + [_OPTION_CODES[name] for name in options.selected]
    if pixels_cleaned:
        codes.append(_CLEAN_PIXEL_DATA)
    # LO values of 64 characters at most, as many as needed (VM 1-n): the method, then each
    # code (one value cut at 64 characters lost codes in the middle of one).
    dataset.DeidentificationMethod = ["PPRL-IMAGING PS3.15 TABLE E.1-1",
                                      *(value for value, _ in codes)]
    dataset.DeidentificationMethodCodeSequence = Sequence([_code(*c) for c in codes])
    dataset.LongitudinalTemporalInformationModified = _TEMPORAL[options.dates]
