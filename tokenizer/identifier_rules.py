"""Rules that keep direct identifiers out of what a provider releases.

A column is refused when its name says it holds a direct identifier (names, MRNs, SSNs,
phone numbers, e-mail, street addresses, full ZIP codes), or when its text values take the
shape of one (an e-mail address, an SSN, a punctuated phone number, an MRN, a street line, a
ZIP+4). Messages name the column and the rule, never a value. Rules cannot know every
identifier: a name typed into a free-text column of codes is not recognised as a name, which
is why attributes are declared codes and categories, not free text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

import pyarrow as pa
import pyarrow.compute as pc

from .errors import InputError

__all__ = ["refuse_identifiers", "column_words", "IDENTIFIER_NAME_RULES", "IDENTIFIER_VALUE_RULES"]


class _Column(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def type(self) -> str: ...


# (rule, pattern over the column name's words, lower case, joined by "_")
IDENTIFIER_NAME_RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (rule, re.compile(pattern)) for rule, pattern in (
        # "name" alone, or a person's: drug_name and procedure_name are not identifiers
        ("a person's name", r"^(full_)?names?$|(^|_)(surname|forename|firstname|lastname|"
                            r"given_?name|family_?name|first_name|last_name|middle_name|"
                            r"maiden_name|nickname|(patient|person|member|subscriber|"
                            r"mother|father|guardian|contact|physician|doctor)_name)($|_)"),
        ("a medical record number", r"(^|_)(mrn|medical_record(_number)?|patient_id|"
                                    r"chart_number)($|_)"),
        ("a social security number", r"(^|_)(ssn|social_security(_number)?)($|_)"),
        ("a phone number", r"(^|_)(phone|telephone|tel|mobile|cell|fax)($|_)"),
        ("an e-mail address", r"(^|_)(e_?mail|email_address)($|_)"),
        ("a street address", r"(^|_)(address|street|address_line\d?|addr)($|_)"),
        ("a full ZIP code", r"(^|_)(zip|zipcode|zip_code|postcode|postal_code|zip5)($|_)"),
    ))
IDENTIFIER_VALUE_RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (rule, re.compile(pattern, re.IGNORECASE)) for rule, pattern in (
        ("an e-mail address", r"[^@\s]+@[^@\s]+\.[a-z]{2,}"),
        ("a social security number", r"\d{3}-\d{2}-\d{4}"),
        ("a phone number", r"(\+?1[\s.-]?)?\(?\d{3}\)?[\s.-]\d{3}[\s.-]\d{4}"),
        ("a medical record number", r"mrn[-_ ]?\d+"),
        ("a street address", r"\d+\s+(\w+\s+)+(street|st|avenue|ave|road|rd|drive|dr|lane|"
                             r"ln|boulevard|blvd|court|ct|way|place|pl|terrace|circuit)\.?"),
        ("a full ZIP code", r"\d{5}-\d{4}"),
    ))
_SAMPLE = 20_000  # distinct values looked at per column


def column_words(name: str) -> str:
    """A column name as its lower-case words joined by ``_`` (``PatientName`` -> patient_name),
    what the name rules match against."""
    return "_".join(re.findall(r"[a-z0-9]+", re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()))


def refuse_identifiers(source: str, table: pa.Table, columns: Sequence[_Column]) -> None:
    """Raises InputError naming the first column that holds, or is named for, a direct
    identifier, and the rule; ``zip3``-like names (three digits) are geography, allowed."""
    for column in columns:
        words = column_words(column.name)
        for rule, pattern in IDENTIFIER_NAME_RULES:
            if pattern.search(words) and not re.search(r"(^|_)zip_?3($|_)", words):
                raise InputError(f"{source}: column {column.name!r} is named like {rule}, a "
                                 f"direct identifier, which never leaves the site; release a "
                                 f"derived value instead (birth year, ZIP3, age band)")
        if column.type not in ("code", "category"):
            continue
        values = pc.unique(table[column.name].combine_chunks().drop_null()).slice(0, _SAMPLE)
        for value in values.to_pylist():
            for rule, pattern in IDENTIFIER_VALUE_RULES:
                if pattern.fullmatch(value.strip()):
                    raise InputError(f"{source}: column {column.name!r} holds values shaped "
                                     f"like {rule}, a direct identifier, which never leaves "
                                     f"the site")
