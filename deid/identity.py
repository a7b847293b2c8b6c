"""The patient's identifiers, read from the Patient module before anything is stripped, and
their normalisation into the columns of the shipped ``person`` schema.

:func:`person_columns` is the one place that decides how a DICOM patient becomes a tokenizer
row; an EHR or claims provider normalising its own rows the same way gets the same CLK.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from pydicom.dataset import Dataset
from pydicom.valuerep import PersonName

__all__ = ["PatientIdentity", "identity_of", "person_columns"]

_TRAILING_ZIP = re.compile(r"(?:^|[\s,])(\d{5})(?:-\d{4})?\s*$")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class PatientIdentity:
    """Raw Patient module values (never logged). ``other_ids`` are (issuer, id) pairs from
    OtherPatientIDsSequence."""

    patient_id: str
    issuer: str
    family_name: str
    given_name: str
    birth_date: str
    sex: str
    address: str
    phone: str
    other_ids: tuple[tuple[str, str], ...]

    @property
    def key(self) -> tuple[str, str]:
        """What makes two files the same patient at this site: issuer and MRN."""
        return (self.issuer, self.patient_id)

    @property
    def name_terms(self) -> tuple[str, ...]:
        return tuple(t for t in (self.family_name, self.given_name) if t)


def _text(dataset: Dataset, keyword: str) -> str:
    value = dataset.get(keyword)
    if value is None or value == "":
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def identity_of(dataset: Dataset) -> PatientIdentity:
    """Read the Patient module identifiers of one dataset."""
    raw_name = dataset.get("PatientName")
    name = PersonName(raw_name) if raw_name else PersonName("")
    others = tuple(
        (_text(item, "IssuerOfPatientID"), _text(item, "PatientID"))
        for item in dataset.get("OtherPatientIDsSequence", []))
    phones = _text(dataset, "PatientTelephoneNumbers")
    return PatientIdentity(
        patient_id=_text(dataset, "PatientID"),
        issuer=_text(dataset, "IssuerOfPatientID"),
        family_name=str(name.family_name or "").strip(),
        given_name=str(name.given_name or "").strip(),
        birth_date=_text(dataset, "PatientBirthDate"),
        sex=_text(dataset, "PatientSex"),
        address=_text(dataset, "PatientAddress"),
        phone=phones.split("\\")[0] if phones else "",
        other_ids=others,
    )


def _clean(text: str) -> str:
    return _SPACES.sub(" ", text).strip().lower()


def _iso_date(value: str) -> str:
    try:
        return datetime.strptime(value, "%Y%m%d").strftime("%Y-%m-%d") if len(value) == 8 else ""
    except ValueError:
        return ""


def person_columns(identity: PatientIdentity) -> dict[str, str]:
    """Normalise as the ``person`` schema asks (lower case, digits only for zip and phone).

    - given_name, surname: the given and family components of PatientName (middle names,
      prefixes and suffixes are not used), lower case, runs of spaces collapsed.
    - date_of_birth: PatientBirthDate ``YYYYMMDD`` as ``YYYY-MM-DD``; "" if not a full date.
    - sex: PatientSex M/F as m/f; O, empty or anything else "".
    - address: the street line of PatientAddress (the text before its first comma), lower case.
    - zip: a trailing 5-digit US ZIP (ZIP+4 cut to 5) of PatientAddress, else "".
    - phone: the digits of the first PatientTelephoneNumbers value.

    Every value may be "" (missing), exactly as an empty CSV cell reaches ``pprl tokenize``.
    """
    birth = identity.birth_date
    zip_match = _TRAILING_ZIP.search(identity.address)
    return {
        "given_name": _clean(identity.given_name),
        "surname": _clean(identity.family_name),
        "date_of_birth": _iso_date(birth),
        "sex": {"M": "m", "F": "f"}.get(identity.sex.upper(), ""),
        "address": _clean(identity.address.split(",")[0]),
        "zip": zip_match.group(1) if zip_match else "",
        "phone": "".join(c for c in identity.phone if c.isdigit()),
    }
