"""Column-wise validation and normalisation of a feature's raw values (Arrow compute, numpy).

The same accept/reject decisions, normal forms and reasons as ``values.ValuePreparer``, but for
a whole column at once: a value is decided here only where the vectorised rule is certain to
agree with clkhash's primitives; every other value (an unusual date spelling, an integer,
a pattern) goes through ``ValuePreparer`` once per *distinct* value. So random data, where no
value repeats, costs no Python per record.

Vectorised rules:
- enum: membership (``pc.is_in``);
- string length: ``pc.utf8_length`` counts code points, as Python's ``len`` does;
- date with only ``%Y``, ``%m``, ``%d`` and punctuation: a value spelled exactly as the format
  writes it (ASCII digits, two-digit month and day, a year from 1000) is accepted when it is a
  real calendar date, as ``strptime`` does, and becomes ``%Y%m%d`` by moving its digits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .schema_model import DateFormat, EnumFormat, Feature, StringFormat
from .values import ValuePreparer, ValueRejected

__all__ = ["PreparedColumn", "ColumnPreparer", "column_preparable"]

_UNICODE_ENCODINGS = ("utf8", "utf16", "utf32")
_DIRECTIVE_WIDTH = {"Y": 4, "m": 2, "d": 2}
_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)


@dataclass(frozen=True)
class PreparedColumn:
    """A column's normal forms and rejects.

    Attributes:
        values: the normal form of every value (a rejected value's is the empty string).
        reject_codes: -1 where the value is valid, else an index into ``reasons``.
        reasons: texts of the rejection reasons met in this column.
    """

    values: pa.Array
    reject_codes: np.ndarray
    reasons: list[str]


def _unicode_encoding(feature: Feature) -> bool:
    return feature.encoding.replace("-", "").replace("_", "").lower() in _UNICODE_ENCODINGS


def column_preparable(feature: Feature) -> bool:
    """Whether ``ColumnPreparer`` takes this feature: a Unicode encoding (every string of a
    valid UTF-8 column encodes) and a string, date or enum format."""
    return (_unicode_encoding(feature)
            and isinstance(feature.format, (StringFormat, DateFormat, EnumFormat)))


def _date_layout(strptime_format: str) -> list[tuple[str, int]] | None:
    """The format as (directive or literal, width) parts, or None when it holds anything but
    %Y, %m, %d and ASCII punctuation (those are left to ``strptime``)."""
    parts: list[tuple[str, int]] = []
    for token in re.findall(r"%.|.", strptime_format, flags=re.DOTALL):
        if token.startswith("%"):
            if token[1:] not in _DIRECTIVE_WIDTH:
                return None
            parts.append((token, _DIRECTIVE_WIDTH[token[1:]]))
        elif token.isascii() and not token.isalnum() and not token.isspace():
            parts.append((token, 1))
        else:
            return None
    directives = [p for p, _ in parts if p.startswith("%")]
    return parts if sorted(directives) == ["%Y", "%d", "%m"] else None


def _fixed_width_bytes(column: pa.Array, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows whose UTF-8 value is ``width`` ASCII bytes, those values as a uint8 matrix)."""
    lengths = pc.binary_length(column).to_numpy(zero_copy_only=False)
    ascii_ok = pc.string_is_ascii(column).to_numpy(zero_copy_only=False)
    rows = np.flatnonzero((lengths == width) & ascii_ok)
    if not len(rows):
        return rows, np.zeros((0, width), dtype=np.uint8)
    large = column.cast(pa.large_string())
    offsets = np.frombuffer(large.buffers()[1], dtype=np.int64, count=len(large) + 1,
                            offset=large.offset * 8)
    data = np.frombuffer(large.buffers()[2], dtype=np.uint8)
    return rows, data[offsets[rows][:, None] + np.arange(width)]


def _canonical_dates(column: pa.Array, layout: list[tuple[str, int]]) -> tuple[np.ndarray,
                                                                             np.ndarray]:
    """(rows spelled exactly as ``layout`` that are real dates from year 1000, their
    ``%Y%m%d`` forms as an (rows, 8) uint8 matrix)."""
    width = sum(w for _, w in layout)
    rows, chars = _fixed_width_bytes(column, width)
    ok = np.ones(len(rows), dtype=bool)
    fields: dict[str, np.ndarray] = {}
    at = 0
    for part, w in layout:
        piece = chars[:, at:at + w]
        if part.startswith("%"):
            ok &= ((piece >= ord("0")) & (piece <= ord("9"))).all(axis=1)
            fields[part] = piece
        else:
            ok &= piece[:, 0] == ord(part)
        at += w
    digits = {k: (v.astype(np.int64) - ord("0")) @ (10 ** np.arange(v.shape[1] - 1, -1, -1))
              for k, v in fields.items()}
    year, month, day = digits["%Y"], digits["%m"], digits["%d"]
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    days = _DAYS_IN_MONTH[np.clip(month, 0, 12)] + (leap & (month == 2))
    ok &= (year >= 1000) & (month >= 1) & (month <= 12) & (day >= 1) & (day <= days)
    normal = np.concatenate([fields["%Y"], fields["%m"], fields["%d"]], axis=1)
    return rows[ok], normal[ok]


class ColumnPreparer:
    """Validates and normalises whole columns of one feature (see the module docstring)."""

    def __init__(self, feature: Feature) -> None:
        assert column_preparable(feature)
        self.feature = feature
        self.preparer = ValuePreparer(feature)
        fmt = feature.format
        self._date_layout = (_date_layout(fmt.strptime_format)
                             if isinstance(fmt, DateFormat) else None)

    def prepare(self, column: pa.Array | pa.ChunkedArray) -> PreparedColumn:
        """Normal forms and rejects of a column of strings (nulls count as empty strings)."""
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        column = pc.fill_null(column.cast(pa.string()), "")
        count = len(column)
        decided = np.zeros(count, dtype=bool)
        reject_codes = np.full(count, -1, dtype=np.int64)
        reasons: list[str] = []
        replaced = column
        missing = self.feature.missing_value
        if missing is not None:
            sentinel = pc.equal(column, missing.sentinel).to_numpy(zero_copy_only=False)
            decided |= sentinel
            if sentinel.any() and missing.replace_with != missing.sentinel:
                replaced = pc.if_else(pa.array(sentinel), missing.replace_with, column)
        fmt = self.feature.format
        out = replaced
        if isinstance(fmt, EnumFormat):
            allowed = pc.is_in(column, value_set=pa.array(sorted(fmt.values), pa.string()))
            bad = ~allowed.to_numpy(zero_copy_only=False) & ~decided
            if bad.any():
                reasons.append(f"is not one of the {len(fmt.values)} values the schema allows")
                reject_codes[bad] = 0
            decided[:] = True
        elif isinstance(fmt, StringFormat) and self._simple_string(fmt):
            self._check_lengths(fmt, column, decided, reject_codes, reasons)
            decided[:] = True
        elif isinstance(fmt, DateFormat) and self._date_layout is not None:
            rows, forms = _canonical_dates(column, self._date_layout)
            rows_mask = np.zeros(count, dtype=bool)
            rows_mask[rows] = True
            rows_mask &= ~decided
            if rows_mask.any():
                out = _put_fixed_width(replaced, np.flatnonzero(rows_mask),
                                       forms[rows_mask[rows]])
            decided |= rows_mask
        if not decided.all():
            out = self._prepare_rest(column, out, decided, reject_codes, reasons)
        if (reject_codes >= 0).any():
            out = pc.if_else(pa.array(reject_codes < 0), out, "")
        return PreparedColumn(out, reject_codes, reasons)

    @staticmethod
    def _simple_string(fmt: StringFormat) -> bool:
        return fmt.pattern is None and fmt.case in (None, "mixed")

    @staticmethod
    def _check_lengths(fmt: StringFormat, column: pa.Array, decided: np.ndarray,
                       reject_codes: np.ndarray, reasons: list[str]) -> None:
        if fmt.min_length is None and fmt.max_length is None:
            return
        lengths = pc.utf8_length(column).to_numpy(zero_copy_only=False)
        checks = []
        if fmt.min_length is not None:
            checks.append((lengths < fmt.min_length, f"is shorter than minLength {fmt.min_length}"))
        if fmt.max_length is not None:
            checks.append((lengths > fmt.max_length, f"is longer than maxLength {fmt.max_length}"))
        for bad, reason in checks:
            bad = bad & ~decided & (reject_codes < 0)
            if bad.any():
                reject_codes[bad] = len(reasons)
                reasons.append(reason)

    def _prepare_rest(self, column: pa.Array, out: pa.Array, decided: np.ndarray,
                      reject_codes: np.ndarray, reasons: list[str]) -> pa.Array:
        """``ValuePreparer`` once per distinct value not decided column-wise."""
        rest = np.flatnonzero(~decided)
        encoded = pc.dictionary_encode(column.take(pa.array(rest)))
        codes = encoded.indices.to_numpy(zero_copy_only=False)
        forms: list[str] = []
        value_codes: list[int] = []
        reason_ids = {r: i for i, r in enumerate(reasons)}
        for raw in encoded.dictionary.to_pylist():
            try:
                forms.append(self.preparer.prepare(raw))
                value_codes.append(-1)
            except ValueRejected as e:
                forms.append("")
                if e.reason not in reason_ids:
                    reason_ids[e.reason] = len(reasons)
                    reasons.append(e.reason)
                value_codes.append(reason_ids[e.reason])
        reject_codes[rest] = np.array(value_codes, dtype=np.int64)[codes]
        rest_forms = pa.array(forms, pa.string()).take(pa.array(codes))
        return _put(out, rest, rest_forms)


def _put(column: pa.Array, rows: np.ndarray, values: pa.Array) -> pa.Array:
    """``column`` with ``values`` at ``rows`` (ascending)."""
    mask = np.zeros(len(column), dtype=bool)
    mask[rows] = True
    return pc.replace_with_mask(column, pa.array(mask), values)


def _put_fixed_width(column: pa.Array, rows: np.ndarray, chars: np.ndarray) -> pa.Array:
    """``column`` with the fixed-width ASCII strings ``chars`` (one row each) at ``rows``."""
    width = chars.shape[1]
    offsets = pa.py_buffer((np.arange(len(rows) + 1, dtype=np.int32) * width).tobytes())
    strings = pa.Array.from_buffers(pa.string(), len(rows),
                                    [None, offsets, pa.py_buffer(chars.tobytes())])
    if len(rows) == len(column):
        return strings
    return _put(column, rows, strings)
