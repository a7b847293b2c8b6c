"""Validation and normalisation of one raw field value, with clkhash 0.18.3's semantics.

Each check uses the same Python primitives clkhash uses (``re.fullmatch``, ``int(s, 10)``,
``datetime.strptime``), so a value is accepted here exactly when clkhash accepts it and is
hashed in the same normal form. Reasons never contain the value itself.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from functools import cached_property

from .schema_model import DateFormat, EnumFormat, Feature, IntegerFormat, StringFormat

__all__ = ["ValueRejected", "ValuePreparer"]

DATE_OUTPUT_FORMAT = "%Y%m%d"


class ValueRejected(ValueError):
    """A value breaks its feature's format; ``reason`` names the rule, not the value."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ValuePreparer:
    """Turns raw strings of one feature into the strings that get tokenized."""

    def __init__(self, feature: Feature) -> None:
        self.feature = feature

    @cached_property
    def _regex(self) -> re.Pattern[str] | None:
        fmt = self.feature.format
        if isinstance(fmt, StringFormat) and fmt.pattern is not None:
            return re.compile(fmt.pattern)
        return None

    @cached_property
    def _unchecked(self) -> bool:
        """True when every Python string passes unchanged: an unconstrained string feature in a
        Unicode encoding (the strings come from valid UTF-8, so none holds a lone surrogate)."""
        fmt = self.feature.format
        return (isinstance(fmt, StringFormat) and fmt.pattern is None
                and fmt.min_length is None and fmt.max_length is None
                and fmt.case in (None, "mixed")
                and self.feature.encoding.replace("-", "").lower() in ("utf8", "utf16", "utf32"))

    def prepare_batch(self, values: Sequence[str]) -> tuple[list[str], list[int],
                                                             list[tuple[int, str]]]:
        """Prepare many values: (normal forms, their indices in ``values``, (index, reason) of
        each rejected value)."""
        missing = self.feature.missing_value
        if self._unchecked:
            if missing is None or missing.sentinel == missing.replace_with:
                return list(values), list(range(len(values))), []
            sentinel, replacement = missing.sentinel, missing.replace_with
            return ([replacement if v == sentinel else v for v in values],
                    list(range(len(values))), [])
        prepared: list[str] = []
        keep: list[int] = []
        rejected: list[tuple[int, str]] = []
        for i, raw in enumerate(values):
            try:
                prepared.append(self.prepare(raw))
                keep.append(i)
            except ValueRejected as e:
                rejected.append((i, e.reason))
        return prepared, keep, rejected

    def prepare(self, raw: str) -> str:
        """Validate ``raw`` and return its normal form.

        A missing-value sentinel bypasses validation and becomes its replacement.

        Raises:
            ValueRejected: the value breaks the feature's format.
        """
        missing = self.feature.missing_value
        if missing is not None and raw == missing.sentinel:
            return missing.replace_with
        encoding = self.feature.encoding
        try:
            raw.encode(encoding)
        except UnicodeEncodeError as e:
            raise ValueRejected(f"cannot be encoded as {encoding}") from e
        fmt = self.feature.format
        if isinstance(fmt, StringFormat):
            self._check_string(fmt, raw)
            return raw
        if isinstance(fmt, IntegerFormat):
            return self._integer(fmt, raw)
        if isinstance(fmt, DateFormat):
            return self._date(fmt, raw)
        assert isinstance(fmt, EnumFormat)
        if raw not in fmt.values:
            raise ValueRejected(f"is not one of the {len(fmt.values)} values the schema allows")
        return raw

    def _check_string(self, fmt: StringFormat, raw: str) -> None:
        if self._regex is not None:
            if self._regex.fullmatch(raw) is None:
                raise ValueRejected(f"does not match the pattern {fmt.pattern!r}")
            return
        if fmt.min_length is not None and len(raw) < fmt.min_length:
            raise ValueRejected(f"is shorter than minLength {fmt.min_length}")
        if fmt.max_length is not None and len(raw) > fmt.max_length:
            raise ValueRejected(f"is longer than maxLength {fmt.max_length}")
        if fmt.case == "upper" and raw.upper() != raw:
            raise ValueRejected("is not upper case")
        if fmt.case == "lower" and raw.lower() != raw:
            raise ValueRejected("is not lower case")

    @staticmethod
    def _integer(fmt: IntegerFormat, raw: str) -> str:
        try:
            value = int(raw, 10)
        except ValueError as e:
            raise ValueRejected("is not a base-10 integer") from e
        if fmt.minimum is not None and value < fmt.minimum:
            raise ValueRejected(f"is below the minimum {fmt.minimum}")
        if fmt.maximum is not None and value > fmt.maximum:
            raise ValueRejected(f"is above the maximum {fmt.maximum}")
        return str(value)

    @staticmethod
    def _date(fmt: DateFormat, raw: str) -> str:
        try:
            parsed = datetime.strptime(raw, fmt.strptime_format)
        except ValueError as e:
            raise ValueRejected(f"is not a valid date in the format {fmt.strptime_format!r}") from e
        return parsed.strftime(DATE_OUTPUT_FORMAT)
