"""The patient's identifiers, read from the Patient module before anything is stripped, and
the columns of the shipped ``person`` schema they fill.

:func:`person_columns` decides which DICOM value feeds which column; normalising them is left
to the tokenizer's one normaliser (``tokenizer.normalize``), which every EHR and claims
provider's ``pprl tokenize`` applies too, so the same person gets the same CLK.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.valuerep import PersonName

__all__ = ["PatientIdentity", "identity_of", "name_parts", "person_columns"]

# The last ZIP-like group of the address (5 digits, ZIP+4 allowed), before a country if any.
_ZIP = re.compile(r"(?<!\d)(\d{5}(?:-\d{4})?)(?!\d)")
# Address components: HL7-style "street^city^state^zip" or comma-separated lines.
_ADDRESS_PARTS = re.compile(r"[,^\\]")


@dataclass(frozen=True)
class PatientIdentity:
    """Raw Patient module values (never logged). ``other_ids`` are (issuer, id) pairs from
    OtherPatientIDsSequence and OtherPatientIDs; ``phones`` every PatientTelephoneNumbers
    value; ``group_names`` the names of PatientName's ideographic and phonetic groups, which
    cleaning and verification look for and tokenizing does not use."""

    patient_id: str
    issuer: str
    family_name: str
    given_name: str
    birth_date: str
    sex: str
    address: str
    phones: tuple[str, ...]
    other_ids: tuple[tuple[str, str], ...]
    middle_names: tuple[str, ...] = ()
    group_names: tuple[str, ...] = ()

    @property
    def key(self) -> tuple[str, str]:
        """What makes two files the same patient at this site: issuer and MRN."""
        return (self.issuer, self.patient_id)

    @property
    def phone(self) -> str:
        """The first telephone number (the one tokenized)."""
        return self.phones[0] if self.phones else ""


def _text(dataset: Dataset, keyword: str) -> str:
    value = dataset.get(keyword)
    if value is None or value == "":
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def _group_parts(group: str) -> list[str]:
    """Family, given and middle names of one component group (``family^given^middle^...``)."""
    family, given, middle = (group.split("^") + ["", "", ""])[:3]
    return [p.strip() for p in (family, given, *middle.split()) if p.strip()]


def name_parts(name: PersonName) -> tuple[str, ...]:
    """Family, given and middle names of every component group of ``name``: alphabetic,
    ideographic and phonetic (``Yamada^Tarou=山田^太郎=やまだ^たろう``, PS3.5 6.2.1.2), as a
    person may be named in free text in any of them."""
    return tuple(part for group in name.components for part in _group_parts(group))


def identity_of(dataset: Dataset) -> PatientIdentity:
    """Read the Patient module identifiers of one dataset."""
    raw_name = dataset.get("PatientName")
    name = PersonName(raw_name) if raw_name else PersonName("")
    others = tuple(
        (_text(item, "IssuerOfPatientID"), _text(item, "PatientID"))
        for item in dataset.get("OtherPatientIDsSequence", []))
    others += tuple(("", i) for i in _text(dataset, "OtherPatientIDs").split("\\") if i)
    phones = _text(dataset, "PatientTelephoneNumbers")
    return PatientIdentity(
        patient_id=_text(dataset, "PatientID"),
        issuer=_text(dataset, "IssuerOfPatientID"),
        family_name=str(name.family_name or "").strip(),
        given_name=str(name.given_name or "").strip(),
        birth_date=_text(dataset, "PatientBirthDate"),
        sex=_text(dataset, "PatientSex"),
        address=_text(dataset, "PatientAddress"),
        phones=tuple(p.strip() for p in phones.split("\\") if p.strip()) if phones else (),
        other_ids=others,
        middle_names=tuple(str(name.middle_name or "").split()),
        group_names=tuple(p for group in name.components[1:] for p in _group_parts(group)),
    )


def person_columns(identity: PatientIdentity) -> dict[str, str]:
    """The raw values the Patient module gives each ``person`` column (normalised later).

    - given_name, surname: the given and family components of PatientName (middle names,
      prefixes and suffixes are not used).
    - date_of_birth: PatientBirthDate (DA, ``YYYYMMDD``).
    - sex: PatientSex (M, F, O).
    - address: the street line of PatientAddress (the text before its first comma or ``^``).
    - zip: the last 5-digit group (ZIP+4 allowed) of PatientAddress, else "".
    - phone: the first PatientTelephoneNumbers value.

    Every value may be "" (missing), exactly as an empty CSV cell reaches ``pprl tokenize``.
    """
    zips = _ZIP.findall(identity.address)
    return {
        "given_name": identity.given_name,
        "surname": identity.family_name,
        "date_of_birth": identity.birth_date,
        "sex": identity.sex,
        "address": _ADDRESS_PARTS.split(identity.address)[0].strip(),
        "zip": zips[-1] if zips else "",
        "phone": identity.phone,
    }
