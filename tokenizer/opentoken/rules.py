"""OpenToken 1.12.5's attribute rules: which raw values are valid, and what each becomes.

Every function works on one distinct raw value; callers apply them once per distinct value of a
column (values repeat heavily), so these stay plain Python. The rules reproduce OpenToken's
code, quirks included, because a token that differs by one character never matches: e.g. the
placeholder check runs on the raw value, an SSN of 7-9 bare digits skips the area/group/serial
checks, a short Canadian code keeps its case for the blocklist check, and ``FEMALE`` in
capitals is not a valid sex.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from datetime import date, datetime

__all__ = ["ATTRIBUTES", "Rule", "first_name", "last_name", "birth_date", "sex",
           "postal_code", "ssn"]

# (valid, normalised value) of one raw value; the value is meaningless when invalid.
Rule = Callable[[str], tuple[bool, str]]

_NON_ALPHA = re.compile(r"[^a-zA-Z]")
_WHITESPACE = re.compile(r"\s+")
_SUFFIX = re.compile(r"(?i)\s+(jr\.?|junior|sr\.?|senior|I{1,3}|IV|V|VI{0,3}|IX|X|"
                     r"\d+(st|nd|rd|th))$")
_TITLE = re.compile(r"(?i)^\s*(mr|mrs|ms|miss|dr|prof|capt|sir|col|gen|cmdr|lt|rabbi|father|"
                    r"brother|sister|hon|honorable|reverend|rev|doctor)\.?\s+")
_TRAILING_INITIAL = re.compile(r"\s[^\s]\.?$")
_PLACEHOLDERS = frozenset(v.lower() for v in (
    "Unknown", "N/A", "None", "Test", "Sample", "Donor", "Patient", "Automation Test",
    "Automationtest", "patient not found", "patientnotfound", "<masked>", "Anonymous",
    "zzztrash", "Missing", "Unavailable", "Not Available", "NotAvailable"))
_LAST_NAME = re.compile(r"^\s*(?:(?:.{3,})|(?:[^aeiouAEIOU\s][aeiouAEIOU])|"
                        r"(?:[aeiouAEIOU][^aeiouAEIOU\s])|(?:[aeiouAEIOU]{2})|(?:[Nn][Gg]))\s*$")


def _blank(value: str) -> bool:
    return value.strip() == ""


def _strip_diacritics(value: str) -> str:
    """Trim, decompose (NFD) and drop combining marks: letters that do not decompose (Ø, Ł)
    survive here and are removed later as non-alphabetic."""
    decomposed = unicodedata.normalize("NFD", value.strip())
    return "".join(c for c in decomposed if unicodedata.category(c) != "Mn")


def _normalise_first_name(value: str) -> str:
    if not value:
        return value
    name = _strip_diacritics(value)
    untitled = _TITLE.sub("", name).strip()
    if untitled:
        name = untitled
    unsuffixed = _SUFFIX.sub("", name).strip()
    if unsuffixed:
        name = unsuffixed
    name = _TRAILING_INITIAL.sub("", name).strip()
    return _WHITESPACE.sub(" ", _NON_ALPHA.sub("", name))


def first_name(value: str) -> tuple[bool, str]:
    """Placeholders are refused on the raw value; what is left after removing titles,
    suffixes, a trailing initial and non-letters must not be empty."""
    if _blank(value) or value.lower() in _PLACEHOLDERS:
        return False, ""
    normalised = _normalise_first_name(value)
    return normalised.strip() != "", normalised


def _normalise_last_name(value: str) -> str:
    name = _strip_diacritics(value)
    unsuffixed = _SUFFIX.sub("", name)
    if unsuffixed.strip():
        name = unsuffixed
    return _NON_ALPHA.sub("", name)


def last_name(value: str) -> tuple[bool, str]:
    """Placeholders refused before and after normalising; one letter is too short, two
    letters need a vowel (or be Ng)."""
    if _blank(value) or value.lower() in _PLACEHOLDERS:
        return False, ""
    normalised = _normalise_last_name(value)
    if len(normalised) == 1 or normalised.lower() in _PLACEHOLDERS:
        return False, normalised
    return _LAST_NAME.match(normalised) is not None, normalised


_DATE_SHAPE = re.compile(r"^(?:\d{4}[-/]\d{2}[-/]\d{2}|\d{2}[-./]\d{2}[-./]\d{4}|"
                         r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{3})?(?:Z|[+-]\d{2}:\d{2})?)$")
_TIMESTAMP_FORMATS = ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.%f%z",
                      "%Y-%m-%dT%H:%M:%S%z")
_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%m/%d/%Y", "%m-%d-%Y", "%d.%m.%Y")
_MIN_BIRTH_DATE = date(1910, 1, 1)


def _parse_date(value: str, formats: tuple[str, ...]) -> date | None:
    for fmt in formats:
        try:
            return datetime.strptime(value, fmt).date()
        except ValueError:
            continue
    return None


def birth_date(value: str, today: date | None = None) -> tuple[bool, str]:
    """One of five day forms or an ISO timestamp with a zone (a timestamp without one passes
    the shape check but no parser, so it is invalid), from 1910-01-01 to today; written
    ``yyyy-MM-dd``."""
    if _blank(value) or _DATE_SHAPE.match(value) is None:
        return False, ""
    parsed = _parse_date(value.strip(), _DATE_FORMATS + _TIMESTAMP_FORMATS)
    if parsed is None or parsed < _MIN_BIRTH_DATE or parsed > (today or date.today()):
        return False, ""
    return True, f"{parsed.year:04d}-{parsed.month:02d}-{parsed.day:02d}"


_SEX = re.compile(r"^\s*([Mm](ale)?|[Ff](emale)?)\s*$")


def sex(value: str) -> tuple[bool, str]:
    """M, Male, F, Female with only the first letter's case free; Male or Female."""
    if _blank(value) or _SEX.match(value) is None:
        return False, ""
    return True, "Male" if value.strip()[0] in "Mm" else "Female"


_US_ZIP = re.compile(r"^\s*(\d{3,5}|\d{5}-\d{4}|\d{9})\s*$")
_US_BLOCKED = ("11111", "22222", "33333", "66666", "77777", "99999", "01234", "12345",
               "54321", "98765", "000", "555", "888")
_CA_POSTAL = re.compile(r"^\s*[A-Za-z]\d[A-Za-z](\s?\d([A-Za-z]\d?)?)?\s*$")
_CA_BLOCKED = ("A1A 1A1", "X0X 0X0", "Y0Y 0Y0", "Z0Z 0Z0", "A0A 0A0", "B1B 1B1", "C2C 2C2",
               "K1A", "M7A", "H0H")


def _normalise_us_zip(value: str) -> str:
    compact = _WHITESPACE.sub("", value.strip())
    if re.match(r"^\d{3,4}$", compact):
        return compact.ljust(5, "0")
    if re.match(r"\d{5}(-?\d{4})?", compact) or re.match(r"\d{9}", compact):
        return compact[:5]
    return value.strip()


def _normalise_ca_postal(value: str) -> str:
    """Only full six-character codes are reformatted (OpenToken's minimum length is 6); shorter
    ones pass through trimmed, case kept, so the upper-case blocklist misses ``k1a``."""
    compact = _WHITESPACE.sub("", value.strip())
    if re.match(r"[A-Za-z]\d[A-Za-z]\d[A-Za-z]\d", compact):
        upper = compact.upper()
        return f"{upper[:3]} {upper[3:6]}"
    return value.strip()


def postal_code(value: str) -> tuple[bool, str]:
    """A US ZIP (3, 4, 5, 5+4 or 9 digits; short ones padded with zeros on the right, longer
    ones cut to 5) or a Canadian code (A1A, A1A1, A1A1A, A1A 1A1), each with its blocklist
    of prefixes."""
    if _blank(value):
        return False, ""
    if _US_ZIP.match(value) and not value.strip().startswith(_US_BLOCKED):
        return True, _normalise_us_zip(value)
    if _CA_POSTAL.match(value):
        normalised = _normalise_ca_postal(value)
        if not normalised.strip().startswith(_CA_BLOCKED):
            return True, normalised
    return False, ""


_SSN = re.compile(r"^(?:\d{7,9}(?:[.]0*)?)$"
                  r"|(?:^(?!000|666|9\d\d)(\d{3})-?(?!00)(\d{2})-?(?!0000)(\d{4})$)")
_INVALID_SSNS = frozenset((
    "111-11-1111", "222-22-2222", "333-33-3333", "444-44-4444", "555-55-5555", "777-77-7777",
    "888-88-8888", "001-23-4567", "010-10-1010", "012-34-5678", "087-65-4321", "098-76-5432",
    "099-99-9999", "111-22-3333", "121-21-2121", "123-45-6789"))
_DIGITS = re.compile(r"\d+")


def _normalise_ssn(value: str) -> str:
    digits = _WHITESPACE.sub("", value.strip()).replace("-", "")
    point = digits.find(".")
    if point != -1:
        digits = digits[:point]
    if not _DIGITS.fullmatch(digits) or not 7 <= len(digits) <= 9:
        return value
    digits = digits.zfill(9)
    return f"{digits[:3]}-{digits[3:5]}-{digits[5:]}"


def ssn(value: str) -> tuple[bool, str]:
    """The blocklist is compared with the raw value, so it catches only dashed forms; 7-9
    bare digits (optionally ``.0``) pass without the area/group/serial checks and are padded
    to nine digits."""
    if _blank(value) or value.lower() in _INVALID_SSNS or _SSN.match(value) is None:
        return False, ""
    return True, _normalise_ssn(value)


# Attribute name -> (rule, column names OpenToken accepts, matched case-insensitively).
ATTRIBUTES: dict[str, tuple[Rule, tuple[str, ...]]] = {
    "BirthDate": (birth_date, ("BirthDate",)),
    "FirstName": (first_name, ("FirstName", "GivenName")),
    "LastName": (last_name, ("LastName", "Surname")),
    "PostalCode": (postal_code, ("PostalCode", "ZipCode", "ZIP3", "ZIP5")),
    "Sex": (sex, ("Sex", "Gender")),
    "SocialSecurityNumber": (ssn, ("SocialSecurityNumber", "NationalIdentificationNumber")),
}
