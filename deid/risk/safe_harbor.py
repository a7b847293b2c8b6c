"""Which of HIPAA Safe Harbor's 18 identifier kinds (45 CFR 164.514(b)(2)(i)(A)-(R)) a table
appears to hold.

A release under Safe Harbor may hold none of them, so a data manager needs to know before a
release which columns look like one. A column is looked at twice: by its name (``PatientName``,
``zip_code``, ``date_of_service``) and by the shape of its values (an e-mail address, an SSN, a
date with a month, a ZIP3 of a small area, an age over 89), since names mislead both ways.
Findings name the column, the kind and the rule, never a value: the report is read by people
who may not see the data. The rules are heuristics that find what is typed in the usual
shapes; they cannot prove a table free of identifiers (a name in a free-text column is not
recognised), which is why Safe Harbor also requires no actual knowledge of re-identification.

Names and shapes that also keep direct identifiers out of attributes files are reused from
``tokenizer.identifier_rules``; the rest (the other kinds, dates, ages, ZIP3 areas) are here.
"""

from __future__ import annotations

import csv
import datetime
import ipaddress
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import resources

import pyarrow as pa
import pyarrow.compute as pc

from tokenizer.identifier_rules import IDENTIFIER_NAME_RULES, IDENTIFIER_VALUE_RULES, column_words

__all__ = ["Finding", "IDENTIFIER_KINDS", "RESTRICTED_ZIP3", "safe_harbor_findings"]

# kind -> (paragraph letter of 164.514(b)(2)(i), what the regulation names)
IDENTIFIER_KINDS: dict[str, tuple[str, str]] = {
    "names": ("A", "names"),
    "geographic_subdivisions": ("B", "geographic subdivisions smaller than a state"),
    "dates": ("C", "elements of dates (except year) and ages over 89"),
    "telephone_numbers": ("D", "telephone numbers"),
    "fax_numbers": ("E", "fax numbers"),
    "email_addresses": ("F", "electronic mail addresses"),
    "social_security_numbers": ("G", "social security numbers"),
    "medical_record_numbers": ("H", "medical record numbers"),
    "health_plan_beneficiary_numbers": ("I", "health plan beneficiary numbers"),
    "account_numbers": ("J", "account numbers"),
    "certificate_license_numbers": ("K", "certificate/license numbers"),
    "vehicle_identifiers": ("L", "vehicle identifiers and serial numbers"),
    "device_identifiers": ("M", "device identifiers and serial numbers"),
    "urls": ("N", "web universal resource locators (URLs)"),
    "ip_addresses": ("O", "internet protocol (IP) addresses"),
    "biometric_identifiers": ("P", "biometric identifiers"),
    "full_face_photographs": ("Q", "full-face photographs and comparable images"),
    "other_unique_identifiers": ("R", "other unique identifying numbers, characteristics or "
                                      "codes"),
}


def _load_restricted_zip3() -> frozenset[str]:
    """HHS's list of ZIP3 areas of 20,000 or fewer people (package data, source in its
    README)."""
    text = resources.files("deid").joinpath("data/hipaa_restricted_zip3.csv").read_text("utf-8")
    return frozenset(row["zip3"] for row in csv.DictReader(text.splitlines()))


RESTRICTED_ZIP3 = _load_restricted_zip3()


@dataclass(frozen=True)
class Finding:
    """One identifier kind in one column, and the rule that found it (never a value)."""

    column: str
    identifier: str
    paragraph: str
    rule: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def _finding(column: str, kind: str, rule: str) -> Finding:
    return Finding(column, kind, f"45 CFR 164.514(b)(2)(i)({IDENTIFIER_KINDS[kind][0]})", rule)


# The shared rules, by the identifier kind they stand for.
_KIND_OF_SHARED_RULE = {
    "a person's name": "names",
    "a medical record number": "medical_record_numbers",
    "a social security number": "social_security_numbers",
    "a phone number": "telephone_numbers",
    "an e-mail address": "email_addresses",
    "a street address": "geographic_subdivisions",
    "a full ZIP code": "geographic_subdivisions",
}
_FAX = re.compile(r"(^|_)fax($|_)")
_ZIP3_NAME = re.compile(r"(^|_)(zip_?3|zip3_code|three_digit_zip|zip_prefix)($|_)")
_AGE_NAME = re.compile(r"(^|_)age($|_)")
_BIRTH_YEAR_NAME = re.compile(r"(^|_)(birth_?year|year_of_birth|yob)($|_)")

# (kind, rule, pattern over the column name's words, lower case, joined by "_")
_NAME_RULES: tuple[tuple[str, str, re.Pattern[str]], ...] = tuple(
    (kind, rule, re.compile(pattern)) for kind, rule, pattern in (
        ("geographic_subdivisions", "a city, county or finer place",
         r"(^|_)(city|town|village|county|precinct|municipality|neighbou?rhood|borough|"
         r"census_tract|tract|block_group|geocode|latitude|longitude|lat|lon|lng|gps|"
         r"coordinates|geolocation)($|_)"),
        ("dates", "a date", r"(^|_)(date|dates|dob|dod|birth_?date|birthday|datetime|"
                            r"timestamp|month|day_of_month)($|_)"),
        ("dates", "an age", _AGE_NAME.pattern),
        ("health_plan_beneficiary_numbers", "a health plan beneficiary number",
         r"(^|_)(health_plan|beneficiary|member_(id|number|no)|subscriber(_id|_number)?|"
         r"insurance_(id|number|no)|policy_(id|number|no)|medicare_(id|number|no)|"
         r"medicaid_(id|number|no)|mbi|hicn)($|_)"),
        ("account_numbers", "an account number",
         r"(^|_)(account|acct|iban|credit_card|card_number|card_no|bank_account|"
         r"routing_number)($|_)"),
        ("certificate_license_numbers", "a certificate or licence number",
         r"(^|_)(licen[cs]e|certificate|cert_number|passport|dea_number)(?!_plate)($|_)"),
        ("vehicle_identifiers", "a vehicle identifier",
         r"(^|_)(vin|vehicle|licen[cs]e_plate|plate_number|number_plate)($|_)"),
        ("device_identifiers", "a device identifier or serial number",
         r"(^|_)(device_(id|uid|serial)|serial|serial_number|serial_no|udi|imei|mac_address)"
         r"($|_)"),
        ("urls", "a URL", r"(^|_)(url|urls|uri|website|web_site|homepage|home_page|"
                          r"web_address)($|_)"),
        ("ip_addresses", "an IP address",
         r"(^ip$|(^|_)(ip_address|ip_addr|ipv4|ipv6|client_ip|remote_ip|source_ip)($|_))"),
        ("biometric_identifiers", "a biometric identifier",
         r"(^|_)(biometric|biometrics|fingerprint|finger_print|voiceprint|voice_print|retina|"
         r"retinal_scan|iris|iris_scan|face_template|palm_?print)($|_)"),
        ("full_face_photographs", "a photograph",
         r"(^|_)(photo|photos|photograph|portrait|headshot|mugshot|selfie|face_image|"
         r"facial_image|face_photo)($|_)"),
        ("other_unique_identifiers", "a national, tax or other personal identifier",
         r"(^|_)(national_id|national_insurance(_number)?|nhs_number|health_card_number|"
         r"tax_id|tin|itin|citizen_id|personal_id|personal_number|employee_(id|number)|"
         r"student_id|voter_id|customer_id)($|_)"),
    ))


def _luhn(value: str) -> bool:
    digits = [int(c) for c in value if c.isdigit()][::-1]
    total = sum(d if i % 2 == 0 else (d * 2 - 9 if d > 4 else d * 2)
                for i, d in enumerate(digits))
    return total % 10 == 0


def _iban(value: str) -> bool:
    text = value.replace(" ", "").upper()
    return int("".join(str(int(c, 36)) for c in text[4:] + text[:4])) % 97 == 1


_VIN_VALUES = dict(zip("0123456789ABCDEFGHJKLMNPRSTUVWXYZ",
                       [*range(10), 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 7, 9, 2, 3, 4, 5, 6,
                        7, 8, 9], strict=True))
_VIN_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)


def _vin(value: str) -> bool:
    """The check digit (position 9) of North American VINs, ISO 3779."""
    text = value.upper()
    remainder = sum(_VIN_VALUES[c] * w for c, w in zip(text, _VIN_WEIGHTS, strict=True)) % 11
    return text[8] == ("X" if remainder == 10 else str(remainder))


def _ipv6(value: str) -> bool:
    try:
        return ipaddress.ip_address(value).version == 6
    except ValueError:
        return False


_MONTHS = r"(jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
_MBI_LETTER = "[ac-hjkmnp-rt-y]"
_OCTET = r"(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"


@dataclass(frozen=True)
class _ValueRule:
    """Values shaped like ``kind``: ``pattern`` (RE2, whole value, any case) and ``check``
    for shapes that random codes can take; a column is a finding when at least ``share``
    of its distinct values pass (a single SSN is one too many; a 17-character code is a VIN
    only if most are)."""

    kind: str
    rule: str
    pattern: str
    check: Callable[[str], bool] | None = None
    share: float = 0.0


_VALUE_RULES: tuple[_ValueRule, ...] = (
    *(_ValueRule(_KIND_OF_SHARED_RULE[rule], rule, pattern.pattern)
      for rule, pattern in IDENTIFIER_VALUE_RULES),
    _ValueRule("dates", "a date with its day or month",
               r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}([t ].*)?|\d{1,2}[-/.]\d{1,2}[-/.](\d{2}|\d{4})|"
               r"\d{4}-(0[1-9]|1[0-2])|" + _MONTHS + r"\s+(\d{1,2},?\s+)?\d{4}|"
               r"\d{1,2}\s+" + _MONTHS + r",?\s+\d{4}"),
    _ValueRule("urls", "a URL", r"(https?|ftp)://\S+|www\.[^\s/]+\.[a-z]{2,}\S*"),
    _ValueRule("ip_addresses", "an IPv4 address", rf"({_OCTET}\.){{3}}{_OCTET}"),
    _ValueRule("ip_addresses", "an IPv6 address", r"[0-9a-f]*:[0-9a-f:]*:[0-9a-f:.]*",
               check=_ipv6),
    _ValueRule("device_identifiers", "a MAC address", r"([0-9a-f]{2}[:-]){5}[0-9a-f]{2}"),
    _ValueRule("device_identifiers", "a GS1 unique device identifier", r"\(01\)\d{14}.*"),
    _ValueRule("account_numbers", "a payment card number",
               r"\d{4}[ -]\d{4}[ -]\d{4}[ -]\d{1,7}", check=_luhn),
    _ValueRule("account_numbers", "an IBAN", r"[a-z]{2}\d{2}( ?[a-z0-9]){11,30}", check=_iban),
    _ValueRule("health_plan_beneficiary_numbers", "a Medicare beneficiary identifier",
               rf"[1-9]{_MBI_LETTER}[0-9ac-hjkmnp-rt-y]\d-?{_MBI_LETTER}[0-9ac-hjkmnp-rt-y]\d"
               rf"-?{_MBI_LETTER}{{2}}\d{{2}}", share=0.5),
    _ValueRule("vehicle_identifiers", "a vehicle identification number",
               r"[a-hj-npr-z0-9]{17}", check=_vin, share=0.5),
    _ValueRule("full_face_photographs", "an embedded image", r"data:image/.*"),
)
_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a")
_DISTINCT_LOOKED_AT = 100_000  # per column: the first distinct values, in order of appearance


def _name_kinds(words: str) -> list[tuple[str, str]]:
    """(kind, rule) of every name rule the column's words match."""
    found = []
    for rule, pattern in IDENTIFIER_NAME_RULES:
        if not pattern.search(words) or (rule == "a full ZIP code" and _ZIP3_NAME.search(words)):
            continue
        kind = _KIND_OF_SHARED_RULE[rule]
        if kind == "telephone_numbers" and _FAX.search(words):
            kind, rule = "fax_numbers", "a fax number"
        found.append((kind, rule))
    found += [(kind, rule) for kind, rule, pattern in _NAME_RULES if pattern.search(words)]
    if len(found) > 1:  # "email_address", "ip_address": the other rule says what address
        found = [(kind, rule) for kind, rule in found if rule != "a street address"]
    return found


def _distinct_text(column: pa.ChunkedArray) -> pa.Array | None:
    """The column's first distinct non-empty values as trimmed text, or None if it does not
    hold text."""
    kind = column.type
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
        column = column.cast(kind)
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        return None
    values = pc.utf8_trim_whitespace(pc.unique(column.drop_null()))
    values = values.filter(pc.not_equal(values, ""))
    return values.slice(0, _DISTINCT_LOOKED_AT)


def _shape_findings(name: str, values: pa.Array) -> list[Finding]:
    findings = []
    for rule in _VALUE_RULES:
        matched = values.filter(pc.match_substring_regex(values, f"^(?:{rule.pattern})$",
                                                         ignore_case=True))
        hits = (len(matched) if rule.check is None
                else sum(rule.check(v) for v in matched.to_pylist()))
        if hits and hits >= rule.share * len(values):
            findings.append(_finding(name, rule.kind, f"values shaped like {rule.rule}"))
    return findings


def _zip3_codes(column: pa.ChunkedArray) -> list[str] | None:
    """The distinct values as three-digit ZIP codes (integers zero-padded, as a CSV reader
    turns 036 into 36), or None if any is not one. Coarser values, as `pprl risk --target-k`
    generalises ZIP3 (its first digit, or ``*``), are no ZIP codes and left out."""
    values = pc.unique(column.drop_null()).to_pylist()
    if pa.types.is_integer(column.type):
        return [f"{v:03d}" for v in values] if all(0 <= v < 1000 for v in values) else None
    codes = [c for c in (str(v).strip() for v in values) if c and not re.fullmatch(r"\d|\*", c)]
    return codes if all(re.fullmatch(r"\d{3}", c) for c in codes) else None


_AGE_TEXT = re.compile(r"(?P<op>>=?|≥)?\s*(?P<n>\d+(\.\d+)?)\s*(?P<unit>[dwmy]|years?)?\s*"
                       r"(?P<top>\+|or older|and older|and over)?\s*", re.IGNORECASE)
_AGE_RANGE = re.compile(r"(?P<n>\d+)\s*(-|–|to)\s*\d+\s*(years?)?", re.IGNORECASE)
_UNIT_YEARS = {"d": 1 / 365.25, "w": 7 / 365.25, "m": 1 / 12}


def _age_over_89(value: str) -> bool:
    """Whether an age as written (``92``, ``092Y`` as in DICOM, ``90-94``, ``95+``) tells an
    age over 89 more precisely than one category of 90 or older, which Safe Harbor allows."""
    text = value.strip()
    ranged = _AGE_RANGE.fullmatch(text)
    if ranged:
        return int(ranged["n"]) >= 90
    match = _AGE_TEXT.fullmatch(text)
    if not match:
        return False
    years = float(match["n"]) * _UNIT_YEARS.get((match["unit"] or "y")[0].lower(), 1.0)
    if match["op"] == ">":
        years += 1
    if match["op"] or match["top"]:
        return years > 90  # "90+", ">89", ">= 90": the one category allowed
    return years >= 90


def _age_findings(name: str, column: pa.ChunkedArray, values: pa.Array | None
                  ) -> list[Finding]:
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        over = pc.sum(pc.greater_equal(column, 90)).as_py() or 0
    else:
        over = 0 if values is None else sum(_age_over_89(v) for v in values.to_pylist())
    if not over:
        return []
    return [_finding(name, "dates", "ages over 89 not aggregated into one category of 90 or "
                                    "older")]


def _birth_year_findings(name: str, column: pa.ChunkedArray, as_of_year: int,
                         values: pa.Array | None) -> list[Finding]:
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        earliest = pc.min(column).as_py()  # attributes files hold numbers as float64
        years = [] if earliest is None else [earliest]
    else:
        years = ([] if values is None else
                 [int(v) for v in values.to_pylist() if re.fullmatch(r"\d{4}", v)])
    oldest = as_of_year - 90
    if not any(y <= oldest for y in years):
        return []
    return [_finding(name, "dates", f"birth years of {oldest} or earlier, which reveal ages "
                                    f"over 89 in {as_of_year}")]


def _zip_findings(name: str, column: pa.ChunkedArray) -> list[Finding]:
    codes = _zip3_codes(column)
    if codes is None:
        return [_finding(name, "geographic_subdivisions", "named like a full ZIP code")]
    restricted = len(RESTRICTED_ZIP3.intersection(codes))
    if not restricted:
        return []
    return [_finding(name, "geographic_subdivisions",
                     f"ZIP3 areas of 20,000 or fewer people ({restricted} of the "
                     f"{len(RESTRICTED_ZIP3)} HHS lists), which must be changed to 000")]


def _binary_images(column: pa.ChunkedArray) -> bool:
    if not (pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type)):
        return False
    for value in column.drop_null().slice(0, _DISTINCT_LOOKED_AT).to_pylist():
        if value.startswith(_IMAGE_MAGIC) or value[128:132] == b"DICM":
            return True
    return False


def _column_findings(name: str, column: pa.ChunkedArray, as_of_year: int) -> list[Finding]:
    words = column_words(name)
    values = _distinct_text(column)  # once: several rules look at them
    found: list[Finding] = []
    is_zip = False
    for kind, rule in _name_kinds(words):
        if rule == "a full ZIP code":
            is_zip = True
            found += _zip_findings(name, column)
        elif rule == "an age":
            found += _age_findings(name, column, values)
        else:
            found.append(_finding(name, kind, f"named like {rule}"))
    if _ZIP3_NAME.search(words) and not is_zip:
        found += _zip_findings(name, column)
    if _BIRTH_YEAR_NAME.search(words):
        found += _birth_year_findings(name, column, as_of_year, values)
    kind = column.type
    if pa.types.is_date(kind) or pa.types.is_timestamp(kind):
        found.append(_finding(name, "dates", "values are dates"))
    if _binary_images(column):
        found.append(_finding(name, "full_face_photographs", "values are image files"))
    if values is not None and len(values):
        found += _shape_findings(name, values)
    return found


def safe_harbor_findings(table: pa.Table, *, as_of_year: int | None = None) -> list[Finding]:
    """Every column that is named like, or holds values shaped like, one of the 18 kinds;
    one finding per column and kind (the first rule that found it), in column order.

    Args:
        as_of_year: the year birth years are judged against (ages over 89); default this
            year.
    """
    year = as_of_year if as_of_year is not None else datetime.date.today().year
    findings: list[Finding] = []
    for name in table.column_names:
        seen: set[str] = set()
        for finding in _column_findings(name, table[name], year):
            if finding.identifier not in seen:
                seen.add(finding.identifier)
                findings.append(finding)
    return findings
