"""A patient's identifiers in the forms they take in free text, found in any text value.

The same person's details are written many ways: a birth date as ``19800215``, ``1980-02-15``,
``2/15/1980``, ``15.02.1980`` or ``15 Feb 1980``; a phone number with any punctuation; an
address's street line, city and ZIP each on their own; a name in any case or order, with or
without accents. Both the C (clean) action, which removes them from descriptions it keeps,
and ``pprl deid-verify``, which hunts for them in every output element, use these patterns, so
what one removes is what the other looks for. Matching runs on a folded copy of the text
(case folded, accents removed) whose characters map back to the original's, so removal cuts
exactly the original's characters. Patterns and findings name kinds, never values.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date

__all__ = ["Identifier", "IdentifierSet", "fold", "date_pattern", "any_date_pattern"]

_MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august",
           "september", "october", "november", "december"]
_SEP = r"[\s.\-/()]*"  # between the digits of a phone number
_MIN_TERM = 2
_MIN_PHONE_DIGITS = 7


def _fold_char(char: str) -> str:
    decomposed = unicodedata.normalize("NFKD", char)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def fold(text: str) -> tuple[str, list[int]]:
    """``text`` case folded and without accents, and for each folded character the index of
    the original character it comes from (so a match can be cut from the original)."""
    folded: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(text):
        if char.isascii():
            folded.append(char.lower())
            origin.append(index)
            continue
        for piece in _fold_char(char):
            folded.append(piece)
            origin.append(index)
    return "".join(folded), origin


# Between a phrase's words: white space or punctuation, an apostrophe (O'Brien, O\u2019Brien)
# or nothing (OBrien, as normalisation elsewhere writes it).
_BETWEEN_WORDS = r"[\s,.\-^'`\u2018\u2019]*"


def _words(text: str) -> str:
    """A folded phrase as a pattern: its words in order, any white space, punctuation or
    apostrophe between, or none."""
    words = re.findall(r"\w+", fold(text)[0])
    return _BETWEEN_WORDS.join(re.escape(w) for w in words)


def _bounded(core: str) -> str:
    return rf"(?<![\w]){core}(?![\w])"


def _month_names(month: int) -> str:
    name = _MONTHS[month - 1]
    return f"(?:{name}|{name[:3]}{'t' if month == 9 else ''}?)\\.?"


def date_pattern(day: date) -> str:
    """Every usual written form of one date: DA ``YYYYMMDD``, ISO with ``-`` ``/`` or ``.``,
    US ``M/D/YYYY`` and European ``D.M.YYYY`` (any of ``/ - .``, with or without leading
    zeros, four- or two-digit years), and with the month's name (``15 Feb 1980``,
    ``February 15, 1980``)."""
    y, m, d = day.year, day.month, day.day
    yy = f"{y:04d}"[2:]
    year = f"(?:{y:04d}|{yy})"
    mm, dd = f"0?{m}", f"0?{d}"
    forms = [f"{y:04d}{m:02d}{d:02d}", f"{y:04d}[-/.]{mm}[-/.]{dd}",
             f"{mm}([-/.]){dd}\\1{year}", f"{dd}([-/.]){mm}\\2{year}",
             f"{dd}(?:st|nd|rd|th)?[\\s\\-/.]*{_month_names(m)}[\\s\\-/.,]*{year}",
             f"{_month_names(m)}\\s*{dd}(?:st|nd|rd|th)?,?\\s*{year}"]
    return rf"(?<!\d)(?:{'|'.join(forms)})(?!\d)"


def any_date_pattern() -> str:
    """Any date-like token, whatever the date (for removing dates from kept free text)."""
    month = "(?:" + "|".join(f"{n}|{n[:3]}" for n in _MONTHS) + r"|sept)\.?"
    forms = [r"(?:1[89]|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])",
             r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}", r"\d{1,2}[-/.]\d{1,2}[-/.](?:\d{4}|\d{2})",
             rf"\d{{1,2}}(?:st|nd|rd|th)?[\s\-/.]*{month}[\s\-/.,]*(?:\d{{4}}|\d{{2}})",
             rf"{month}\s*\d{{1,2}}(?:st|nd|rd|th)?,?\s*\d{{4}}"]
    return rf"(?<!\d)(?:{'|'.join(forms)})(?!\d)"


def _phone_pattern(digits: str) -> str:
    """The number with any punctuation between its digits; its last seven digits (the local
    number) suffice, with or without the area and country code before them."""
    local, prefix = digits[-_MIN_PHONE_DIGITS:], digits[:-_MIN_PHONE_DIGITS]
    joined = _SEP.join(local)
    lead = f"(?:(?:\\+?1{_SEP})?{_SEP.join(prefix)}{_SEP})?" if prefix else ""
    return rf"(?<!\d){lead}{joined}(?!\d)"


def _date_of(text: str) -> date | None:
    if len(text) < 8 or not text[:8].isdigit():
        return None
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return None


@dataclass(frozen=True)
class Identifier:
    """One identifier to find: its kind (``name``, ``patient id``, ``birth date``, ``date``,
    ``phone``, ``street``, ``city``, ``zip``, ``person name``, ``uid``) and a pattern on
    folded text."""

    kind: str
    pattern: re.Pattern[str]


class IdentifierSet:
    """The identifiers of one patient (and, for verification, of one original file)."""

    def __init__(self, identifiers: Iterable[Identifier]) -> None:
        self.identifiers = list(identifiers)
        self._combined: re.Pattern[str] | None = None

    @classmethod
    def build(cls, *, names: Iterable[str] = (), ids: Iterable[str] = (),
              birth_date: str = "", dates: Iterable[str] = (), phones: Iterable[str] = (),
              address: str = "", other_names: Iterable[str] = (),
              uids: Iterable[str] = ()) -> IdentifierSet:
        """From raw DICOM values: name components, ids (MRNs), a DA birth date, other DA
        dates, phone numbers, the PatientAddress text, other people's name components and
        UIDs that must not survive."""
        found: list[tuple[str, str]] = []
        found += [("name", _bounded(_words(n))) for n in set(names) if _usable(n)]
        found += [("person name", _bounded(_words(n))) for n in set(other_names) - set(names)
                  if _usable(n)]
        found += [("patient id", rf"(?<![\w-]){re.escape(fold(i)[0])}(?![\w-])")
                  for i in set(ids) if _usable(i)]
        birth = _date_of(birth_date)
        if birth is not None:
            found.append(("birth date", date_pattern(birth)))
        other_dates = {d for d in map(_date_of, dates) if d is not None} - {birth}
        found += [("date", date_pattern(d)) for d in sorted(other_dates)]
        for phone in set(phones):
            digits = "".join(c for c in phone if c.isdigit())
            if len(digits) >= _MIN_PHONE_DIGITS:
                found.append(("phone", _phone_pattern(digits)))
        found += _address_parts(address)
        found += [("uid", rf"(?<![\d.]){re.escape(u)}(?![\d.])") for u in set(uids) if u]
        return cls(Identifier(kind, re.compile(p)) for kind, p in found)

    def __bool__(self) -> bool:
        return bool(self.identifiers)

    def kinds_in(self, text: str) -> set[str]:
        """Kinds of identifier found in ``text``."""
        folded = fold(text)[0]
        return {i.kind for i in self.identifiers if i.pattern.search(folded)}

    def spans(self, text: str) -> Iterator[tuple[int, int]]:
        """(start, end) in ``text`` of every identifier found, possibly overlapping."""
        if not self.identifiers:
            return
        folded, origin = fold(text)
        for identifier in self.identifiers:
            for match in identifier.pattern.finditer(folded):
                if match.end() > match.start():
                    yield origin[match.start()], origin[match.end() - 1] + 1


def _usable(term: str) -> bool:
    term = term.strip()
    return len(term) >= _MIN_TERM and any(c.isalnum() for c in term)


def _address_parts(address: str) -> list[tuple[str, str]]:
    """Street line, city and ZIP of an address written ``street, city, ST 62704`` or
    HL7-style ``street^other^city^state^zip``: each is searched alone."""
    parts = [p.strip() for p in re.split(r"[,^\\]", address) if p.strip()]
    if not parts:
        return []
    found = [("street", _bounded(_words(parts[0])))] if _usable(parts[0]) else []
    for zip_code in re.findall(r"(?<!\d)(\d{5})(?:-\d{4})?(?!\d)", address):
        found.append(("zip", rf"(?<!\d){zip_code}(?!\d)"))
    for part in parts[1:]:
        city = re.sub(r"\b[A-Z]{2}\b|\d[\d-]*", "", part).strip()  # drop state and ZIP
        # A country code (USA) is no city; a state alone is geography above the patient.
        if len(city) >= 3 and any(c.isalpha() for c in city) and not (
                city.isupper() and len(city) <= 3):
            found.append(("city", _bounded(_words(city))))
    return found
