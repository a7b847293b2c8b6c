"""Dates from the forms people and systems write them in, never guessing an ambiguous one.

``15/02/1980`` can only be day first and ``2/15/1980`` only month first, but ``03/04/1980``
is March in the US and April in Europe: such a value is rejected with that reason unless the
caller says which order the file uses (``--date-format MDY|DMY``). Two-digit years are
rejected (their century is unknown). Reasons never contain the value.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Literal

from ..values import ValueRejected

__all__ = ["DateOrder", "DATE_ORDERS", "parse_date"]

DateOrder = Literal["MDY", "DMY"]
DATE_ORDERS: tuple[DateOrder, ...] = ("MDY", "DMY")

_MONTHS = {name: number for number, names in enumerate(
    [("jan", "january"), ("feb", "february"), ("mar", "march"), ("apr", "april"),
     ("may",), ("jun", "june"), ("jul", "july"), ("aug", "august"),
     ("sep", "sept", "september"), ("oct", "october"), ("nov", "november"),
     ("dec", "december")], start=1) for name in names}
# A time of day after a date (ISO "T10:30:00Z", Excel "0:00", "10:30 PM").
_TIME = r"(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:[AaPp][Mm]|Z|[+-]\d{2}:?\d{2})?)?"
_YEAR_FIRST = re.compile(rf"(\d{{4}})([-/.]?)(\d{{1,2}})\2(\d{{1,2}}){_TIME}")
_YEAR_LAST = re.compile(rf"(\d{{1,2}})([-/.])(\d{{1,2}})\2(\d{{2}}|\d{{4}}){_TIME}")
_ANY_YEAR = r"(\d{2}|\d{4})"
_DAY_MONTH_NAME = re.compile(rf"(\d{{1,2}})[-\s/.]*([A-Za-z]+)\.?[-\s/.,]*{_ANY_YEAR}{_TIME}")
_MONTH_NAME_DAY = re.compile(
    rf"([A-Za-z]+)\.?\s*(\d{{1,2}})(?:st|nd|rd|th)?,?\s*{_ANY_YEAR}{_TIME}")


def _make(year: int, month: int, day: int) -> date:
    try:
        return date(year, month, day)
    except ValueError as e:
        raise ValueRejected("is not a valid calendar date") from e


def _full_year(text: str) -> int:
    if len(text) != 4:
        raise ValueRejected("has a two-digit year, whose century is unknown; write four digits")
    return int(text)


def _month_named(name: str) -> int:
    month = _MONTHS.get(name.lower())
    if month is None:
        raise ValueRejected("is not a date in a recognised form")
    return month


def parse_date(text: str, order: DateOrder | None = None) -> date:
    """Parse one date written as ``YYYY-MM-DD``, ``YYYYMMDD`` (DICOM DA), ``YYYY/MM/DD``,
    ``M/D/YYYY`` or ``D/M/YYYY`` (also with ``-`` or ``.``), ``15 Feb 1980``, ``Feb 15, 1980``,
    optionally followed by a time of day.

    Args:
        order: how to read ``A/B/YYYY`` forms; None: only where the value itself decides
            (one part above 12, or both equal).

    Raises:
        ValueRejected: not a date in these forms, not a real date, a two-digit year, or an
            ambiguous order without ``order``.
    """
    value = text.strip()
    if match := _YEAR_FIRST.fullmatch(value):
        year, _, month, day = match.groups()
        if not match.group(2) and (len(month) != 2 or len(day) != 2):
            raise ValueRejected("is not a date in a recognised form")
        return _make(int(year), int(month), int(day))
    if match := _YEAR_LAST.fullmatch(value):
        first, _, second, year_text = match.groups()
        year = _full_year(year_text)
        a, b = int(first), int(second)
        if order == "MDY":
            return _make(year, a, b)
        if order == "DMY":
            return _make(year, b, a)
        if a > 12 >= b:
            return _make(year, b, a)
        if b > 12 >= a or a == b:
            return _make(year, a, b)
        if a > 12 and b > 12:
            raise ValueRejected("is not a valid calendar date")
        raise ValueRejected("is ambiguous (month first or day first?); give the file's order "
                            "with --date-format MDY or --date-format DMY")
    if match := _DAY_MONTH_NAME.fullmatch(value):
        day, name, year_text = match.groups()
        return _make(_full_year(year_text), _month_named(name), int(day))
    if match := _MONTH_NAME_DAY.fullmatch(value):
        name, day, year_text = match.groups()
        return _make(_full_year(year_text), _month_named(name), int(day))
    raise ValueRejected("is not a date in a recognised form")
