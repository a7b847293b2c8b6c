"""What each kind of identifier becomes before it is tokenized, on whole Arrow columns.

Every provider and every reader (CSV, Parquet, the DICOM Patient module) goes through these
functions, so the same person written ``JOSE GARCIA, 217-555-0199`` at one site and
``jose garcia, 2175550199`` at another gives the same CLK. Text work runs in Arrow's compiled
kernels; only values that need Python (non-ASCII case folding, dates, sex codes) are handled
one distinct value at a time. A kind returns the normalised column and, for the values it
cannot normalise, their positions with a reason that names the rule, never the value.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from datetime import date

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..values import ValueRejected
from .dates import DateOrder, parse_date

__all__ = ["KINDS", "Kind", "KindContext", "Rejected", "KindResult", "normalize_kind"]

Rejected = dict[int, str]
KindResult = tuple[pa.Array, Rejected]
Kind = Callable[[pa.Array, "KindContext"], KindResult]

_SPACES = r"[\s\p{Z}]+"
# Apostrophes and dots vanish inside names (O'Brien = OBrien, St. = St); every other mark is
# a word break (Smith-Jones = Smith Jones, Garcia^Jose = Garcia Jose).
_VANISHING = r"['’‘`´.]"
_VANISHING_ASCII = r"['`.]"
_NOT_WORD = r"[^\p{L}\p{N}]+"  # punctuation and white space: one space
_SEX = {"m": "m", "male": "m", "f": "f", "female": "f",
        # HL7 v2 table 0001 / FHIR AdministrativeGender codes that say nothing about sex at
        # birth, and the usual spellings of unknown: missing, like an empty cell.
        "o": "", "other": "", "u": "", "unknown": "", "unk": "", "un": "", "a": "",
        "ambiguous": "", "n": "", "not applicable": "", "x": "", "": ""}
_ZIP = r"^(\d{5})(?:-?\d{4})?$"
_SHORT_ZIP = r"^\d{3,4}$"
_PHONE_EXTENSION = r"(?i)\s*(?:x|ext\.?|extension)\s*\d+\s*$"


class KindContext:
    """What a kind may need beyond the values: the date order and output format."""

    def __init__(self, date_order: DateOrder | None, date_format: str) -> None:
        self.date_order = date_order
        self.date_format = date_format


def _python_per_distinct(values: pa.Array, convert: Callable[[str], str]) -> KindResult:
    """Apply ``convert`` once per distinct value; positions of rejected values with reasons."""
    encoded = pc.dictionary_encode(values).combine_chunks() \
        if isinstance(values, pa.ChunkedArray) else pc.dictionary_encode(values)
    converted: list[str] = []
    reasons: dict[int, str] = {}
    for code, raw in enumerate(encoded.dictionary.to_pylist()):
        try:
            converted.append(convert(raw))
        except ValueRejected as e:
            converted.append("")
            reasons[code] = e.reason
    indices = encoded.indices.to_numpy(zero_copy_only=False)
    result = pa.array(converted, pa.string()).take(encoded.indices)
    rejected: Rejected = {}
    if reasons:
        for code, reason in reasons.items():
            for position in np.flatnonzero(indices == code).tolist():
                rejected[position] = reason
    return result, rejected


def _all_ascii(values: pa.Array) -> bool:
    """ASCII text is its own NFKC and NFKD form and folds by lower-casing: the common case,
    which then skips the Unicode passes."""
    return bool(pc.all(pc.string_is_ascii(values)).as_py() is not False)


def _casefold(values: pa.Array) -> pa.Array:
    """Unicode case folding: Arrow's lower case for ASCII values, Python's ``casefold`` (then
    NFKC again) for the others (``Straße`` = ``STRASSE``)."""
    ascii_mask = pc.string_is_ascii(values)
    if pc.all(ascii_mask).as_py() is not False:
        return pc.ascii_lower(values)
    lowered = pc.utf8_lower(values)
    folded, _ = _python_per_distinct(
        values.filter(pc.invert(ascii_mask)),
        lambda s: unicodedata.normalize("NFKC", s.casefold()))
    positions = np.flatnonzero(~ascii_mask.to_numpy(zero_copy_only=False))
    merged = lowered.to_pylist()
    for position, value in zip(positions.tolist(), folded.to_pylist(), strict=True):
        merged[position] = value
    return pa.array(merged, pa.string())


def _squeeze(values: pa.Array) -> pa.Array:
    return pc.utf8_trim_whitespace(pc.replace_substring_regex(values, _SPACES, " "))


def text(values: pa.Array, _: KindContext) -> KindResult:
    """NFKC, case folded, runs of white space as one space, none at the ends."""
    if _all_ascii(values):
        return _squeeze(pc.ascii_lower(values)), {}
    return _squeeze(_casefold(pc.utf8_normalize(values, "NFKC"))), {}


def name(values: pa.Array, _: KindContext) -> KindResult:
    """``text``, without accents (José = JOSE), apostrophes and dots dropped, every other
    punctuation mark a space (``GARCIA-LOPEZ`` = ``garcia lopez``)."""
    if _all_ascii(values):
        folded = pc.ascii_lower(values)
        words = pc.replace_substring_regex(
            pc.replace_substring_regex(folded, _VANISHING_ASCII, ""), r"[^a-z0-9]+", " ")
        return pc.utf8_trim_whitespace(words), {}
    stripped = pc.replace_substring_regex(pc.utf8_normalize(values, "NFKD"), r"\p{Mn}", "")
    folded = _casefold(pc.utf8_normalize(stripped, "NFKC"))
    words = pc.replace_substring_regex(pc.replace_substring_regex(folded, _VANISHING, ""),
                                       _NOT_WORD, " ")
    return pc.utf8_trim_whitespace(words), {}


def phone(values: pa.Array, _: KindContext) -> KindResult:
    """Digits only, an extension (``x12``, ``ext. 12``) dropped, and a North American
    number's country code 1 dropped (``+1 (217) 555-0199`` = ``2175550199``)."""
    digits = pc.replace_substring_regex(
        pc.replace_substring_regex(pc.utf8_normalize(values, "NFKC"), _PHONE_EXTENSION, ""),
        r"[^0-9]", "")
    national = pc.and_(pc.equal(pc.utf8_length(digits), 11), pc.starts_with(digits, "1"))
    return pc.if_else(national, pc.utf8_slice_codeunits(digits, 1), digits), {}


def zip_code(values: pa.Array, _: KindContext) -> KindResult:
    """A US ZIP code as its 5 digits: ZIP+4 cut to 5, and 3 or 4 digits zero-padded (a
    spreadsheet drops the leading zeros of ``02134``). Anything else is rejected."""
    trimmed = pc.utf8_trim_whitespace(pc.utf8_normalize(values, "NFKC"))
    five = pc.replace_substring_regex(trimmed, _ZIP, r"\1")
    padded = pc.utf8_lpad(trimmed, 5, "0")
    short = pc.match_substring_regex(trimmed, _SHORT_ZIP)
    full = pc.match_substring_regex(trimmed, _ZIP)
    result = pc.if_else(short, padded, pc.if_else(full, five, pa.scalar("", pa.string())))
    bad = pc.and_(pc.invert(pc.or_(short, full)), pc.not_equal(trimmed, ""))
    rejected = {int(i): "is not a US ZIP code (5 digits, or ZIP+4)"
                for i in np.flatnonzero(bad.to_numpy(zero_copy_only=False))}
    return result, rejected


def sex(values: pa.Array, _: KindContext) -> KindResult:
    """``m`` or ``f`` from M/F/male/female (any case); the HL7 and FHIR codes for other,
    unknown or not applicable give "" (missing). Anything else is rejected."""
    def convert(raw: str) -> str:
        code = " ".join(unicodedata.normalize("NFKC", raw).casefold().split())
        if code not in _SEX:
            raise ValueRejected("is not a recognised sex code (M, F, male, female, or an HL7/"
                                "FHIR code such as O, U, unknown)")
        return _SEX[code]
    return _python_per_distinct(values, convert)


def date_value(values: pa.Array, context: KindContext) -> KindResult:
    """A date in any form :func:`parse_date` reads, written in the schema's format."""
    def convert(raw: str) -> str:
        if not raw.strip():
            return ""
        parsed: date = parse_date(unicodedata.normalize("NFKC", raw), context.date_order)
        return parsed.strftime(context.date_format)
    return _python_per_distinct(values, convert)


KINDS: dict[str, Kind] = {"text": text, "name": name, "address": name, "phone": phone,
                          "zip": zip_code, "sex": sex, "date": date_value}


def normalize_kind(kind: str, values: pa.Array, context: KindContext) -> KindResult:
    """Normalise one column as ``kind``; nulls count as empty."""
    return KINDS[kind](pc.fill_null(values, ""), context)
