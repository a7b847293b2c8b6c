"""The rules of :mod:`.rules` for the plain forms most values take, over whole Arrow arrays.

Each fast rule takes only values whose outcome it can state exactly, shown by reading the
Python rule: a name of ASCII letters only (no title, suffix, initial or diacritic can
apply, so it is its own normal form), a ``yyyy-MM-dd`` date that is a real calendar day,
a five-digit ZIP, an SSN as ``ddd-dd-dddd`` or 7-9 bare digits. Every other value is left
to the Python rule, so the output does not change; the patterns are RE2's, stricter than
Python's ``re`` (``$`` is the end of the text, ``[0-9]`` only ASCII digits), which only sends
more values the slow way. Tests compare both paths value by value.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import rules

__all__ = ["fast_rule"]

# (taken, valid, normalised): per distinct value, whether the fast rule decided it, its
# validity, and its normal form ("" where not taken).
Fast = tuple[np.ndarray, np.ndarray, pa.Array]


def _mask(values: pa.Array) -> np.ndarray:
    return np.asarray(values.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


def _matches(values: pa.Array, pattern: str) -> np.ndarray:
    return _mask(pc.match_substring_regex(values, pattern))


def _placeholder(values: pa.Array) -> np.ndarray:
    return _mask(pc.is_in(pc.ascii_lower(values), pa.array(sorted(rules._PLACEHOLDERS))))


def _first_name(values: pa.Array) -> Fast:
    taken = _matches(values, r"^[A-Za-z]+$")
    return taken, taken & ~_placeholder(values), values


def _last_name(values: pa.Array) -> Fast:
    taken = _matches(values, r"^[A-Za-z]{3,}$")   # two letters need the vowel rule
    return taken, taken & ~_placeholder(values), values


def _birth_date(values: pa.Array) -> Fast:
    shaped = _matches(values, r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
    parsed = pc.strptime(values, format="%Y-%m-%d", unit="s", error_is_null=True)
    # Arrow rolls 02-30 over to 03-01: a day that prints back as written is a real one.
    taken = shaped & _mask(pc.equal(pc.strftime(parsed, format="%Y-%m-%d"), values))
    in_range = _mask(pc.and_(pc.greater_equal(values, rules._MIN_BIRTH_DATE.isoformat()),
                             pc.less_equal(values, date.today().isoformat())))
    return taken, taken & in_range, values


def _postal_code(values: pa.Array) -> Fast:
    taken = _matches(values, r"^[0-9]{5}$")
    blocked = np.zeros(len(values), dtype=bool)
    for prefix in rules._US_BLOCKED:
        blocked |= _mask(pc.starts_with(values, prefix))
    return taken, taken & ~blocked, values


def _ssn(values: pa.Array) -> Fast:
    dashed = _matches(values, r"^[0-9]{3}-[0-9]{2}-[0-9]{4}$")
    bare = _matches(values, r"^[0-9]{7,9}$")   # the area/group/serial checks are skipped
    area = pc.utf8_slice_codeunits(values, 0, 3)
    refused = (_mask(pc.is_in(area, pa.array(["000", "666"]))) | _matches(area, "^9")
               | _mask(pc.equal(pc.utf8_slice_codeunits(values, 4, 6), "00"))
               | _mask(pc.equal(pc.utf8_slice_codeunits(values, 7, 11), "0000"))
               | _mask(pc.is_in(values, pa.array(sorted(rules._INVALID_SSNS)))))
    nine = pc.utf8_lpad(values, 9, "0")
    formatted = pc.binary_join_element_wise(pc.utf8_slice_codeunits(nine, 0, 3),
                                            pc.utf8_slice_codeunits(nine, 3, 5),
                                            pc.utf8_slice_codeunits(nine, 5, 9), "-")
    normalised = pc.if_else(pa.array(bare), formatted, values)
    return dashed | bare, (dashed & ~refused) | bare, normalised


_FAST = {"FirstName": _first_name, "LastName": _last_name, "BirthDate": _birth_date,
         "PostalCode": _postal_code, "SocialSecurityNumber": _ssn}


def fast_rule(attribute: str, values: pa.Array) -> Fast:
    """The fast rule of ``attribute`` over distinct non-null ``values`` (none for Sex, whose
    handful of distinct values the Python rule handles)."""
    fast = _FAST.get(attribute)
    if fast is None:
        return (np.zeros(len(values), dtype=bool), np.zeros(len(values), dtype=bool),
                pa.nulls(len(values), pa.string()).fill_null(""))
    taken, valid, normalised = fast(values)
    return taken, valid.copy(), pc.if_else(pa.array(taken), normalised, "")
