"""Cleaning free text (the C action on descriptors): remove the patient's own identifiers.

Text cleaning cannot know every identifier a person may type into a description; it removes
what the Patient module says about this patient (names, ids, birth date in common spellings,
address parts, phone), as whole words, case-insensitively. Options that keep text with C
therefore keep less than they would with a human reviewer, never more.
"""

from __future__ import annotations

import re

from .identity import PatientIdentity

__all__ = ["Scrubber", "identifying_terms"]

_MIN_TERM = 2


def identifying_terms(identity: PatientIdentity) -> list[str]:
    """The patient's identifying strings, longest first (so a full name goes before a part)."""
    terms: set[str] = set(identity.name_terms)
    terms.update(v for v in (identity.patient_id, identity.phone) if v)
    terms.update(i for _, i in identity.other_ids if i)
    birth = identity.birth_date
    if len(birth) == 8 and birth.isdigit():
        year, month, day = birth[:4], birth[4:6], birth[6:]
        terms.update({birth, f"{year}-{month}-{day}", f"{month}/{day}/{year}",
                      f"{year}.{month}.{day}"})
    if identity.address:
        terms.update(part.strip() for part in re.split(r"[,^\\]", identity.address))
    if identity.family_name and identity.given_name:
        terms.add(f"{identity.given_name} {identity.family_name}")
        terms.add(f"{identity.family_name}, {identity.given_name}")
    return sorted((t for t in terms if len(t) >= _MIN_TERM), key=len, reverse=True)


class Scrubber:
    """Removes one patient's identifying terms from text."""

    def __init__(self, terms: list[str]) -> None:
        self._pattern = (re.compile(
            "|".join(rf"(?<!\w){re.escape(t)}(?!\w)" for t in terms), re.IGNORECASE)
            if terms else None)

    def clean(self, text: str) -> str:
        if self._pattern is None:
            return text
        return re.sub(r"\s{2,}", " ", self._pattern.sub("", text)).strip()
