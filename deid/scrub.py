"""Cleaning free text (the C action on descriptors): remove the patient's own identifiers.

Text cleaning cannot know every identifier a person may type into a description; it removes
what the Patient module says about this patient (names in any case and order, ids, the birth
date, address parts and phone, in the forms ``deid.identifiers`` knows) and every date-like
token (a date in a description is an event of this patient), as whole words. Options that
keep text with C therefore keep less than they would with a human reviewer, never more.
"""

from __future__ import annotations

import re
from functools import cached_property

from .identifiers import IdentifierSet, any_date_pattern, fold
from .identity import PatientIdentity

__all__ = ["Scrubber", "patient_identifiers"]

_ANY_DATE = re.compile(any_date_pattern())


def patient_identifiers(identity: PatientIdentity) -> IdentifierSet:
    """The patient's identifiers as the Patient module gives them (names of every
    PatientName group)."""
    names = [identity.family_name, identity.given_name, *identity.middle_names,
             *identity.group_names]
    return IdentifierSet.build(
        names=names, ids=[identity.patient_id, *(i for _, i in identity.other_ids)],
        birth_date=identity.birth_date, phones=identity.phones, address=identity.address)


class Scrubber:
    """Removes one patient's identifiers, and any date, from text. Patterns are compiled on
    first use: most files have nothing to clean."""

    def __init__(self, identity: PatientIdentity) -> None:
        self._identity = identity

    @cached_property
    def _identifiers(self) -> IdentifierSet:
        return patient_identifiers(self._identity)

    def clean(self, text: str) -> str:
        spans = list(self._identifiers.spans(text))
        folded, origin = fold(text)
        spans += [(origin[m.start()], origin[m.end() - 1] + 1)
                  for m in _ANY_DATE.finditer(folded) if m.end() > m.start()]
        if not spans:
            return text
        keep = [True] * len(text)
        for start, end in spans:
            keep[start:end] = [False] * (end - start)
        cleaned = "".join(c for c, k in zip(text, keep, strict=True) if k)
        return re.sub(r"\s{2,}", " ", cleaned).strip()
