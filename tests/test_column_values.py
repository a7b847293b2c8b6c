"""Column-wise validation (``tokenizer.column_values``) decides every value as the
one-value-at-a-time ``ValuePreparer`` does: same normal form, same reason, valid or not."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokenizer.column_values import ColumnPreparer, column_preparable
from tokenizer.encoder import ClkEncoder
from tokenizer.schema_model import (
    BitsPerToken,
    DateFormat,
    EnumFormat,
    Feature,
    HashConfig,
    MissingValue,
    NgramComparison,
    StringFormat,
)
from tokenizer.values import ValuePreparer, ValueRejected

DATE_FORMATS = ["%Y/%m/%d", "%d-%m-%Y", "%Y%m%d", "%m.%d.%Y", "%d %b %Y", "%y%m%d"]
# Values near the edges of what strptime accepts: single-digit fields, a space before the
# day, Unicode digits, leap days, years below 1000, impossible dates, other separators.
DATE_VALUES = ["2017/04/10", "2017/4/10", "2017/04/ 1", "2017/02/29", "2016/02/29",
               "2000/02/29", "1900/02/29", "0999/12/31", "1000/01/01", "9999/12/31",
               "2017/13/01", "2017/00/10", "2017/04/31", "2017/04/00", "2017-04-10",
               "\uff12\uff10\uff11\uff17/04/10", "2017/04/10 ", " 2017/04/10", "",
               "10-04-2017", "1-4-2017", "31-04-2017", "29-02-2016", "20170410", "2017041",
               "04.10.2017", "10 Apr 2017", "10 apr 2017", "170410", "N/A", "abcdefghij",
               "2017/04/1x", "2017\\04\\10", "é017/04/10"]


def _feature(fmt: object, missing: MissingValue | None = None) -> Feature:
    return Feature("f", fmt, NgramComparison(2), BitsPerToken(10),  # type: ignore[arg-type]
                   HashConfig(), missing)


def _expected(feature: Feature, values: list[str | None]) -> tuple[list[str], list[str | None]]:
    preparer = ValuePreparer(feature)
    forms: list[str] = []
    reasons: list[str | None] = []
    for value in values:
        try:
            forms.append(preparer.prepare("" if value is None else value))
            reasons.append(None)
        except ValueRejected as e:
            forms.append("")
            reasons.append(e.reason)
    return forms, reasons


def _check(feature: Feature, values: list[str | None]) -> None:
    prepared = ColumnPreparer(feature).prepare(pa.array(values, pa.string()))
    forms, reasons = _expected(feature, values)
    got = [None if c < 0 else prepared.reasons[c] for c in prepared.reject_codes.tolist()]
    assert got == reasons
    assert prepared.values.to_pylist() == forms


@pytest.mark.parametrize("fmt", DATE_FORMATS)
@pytest.mark.parametrize("missing", [None, MissingValue("N/A", ""), MissingValue("N/A", "x")])
def test_dates_decided_as_strptime_decides(fmt: str, missing: MissingValue | None) -> None:
    _check(_feature(DateFormat(fmt), missing), [*DATE_VALUES, None, *DATE_VALUES[::-1]])


def test_canonical_dates_need_no_python_per_value(monkeypatch: pytest.MonkeyPatch) -> None:
    feature = _feature(DateFormat("%Y/%m/%d"))
    preparer = ColumnPreparer(feature)

    def refuse(raw: str) -> str:
        raise AssertionError("a canonical date went through ValuePreparer")

    monkeypatch.setattr(preparer.preparer, "prepare", refuse)
    prepared = preparer.prepare(pa.array(["2017/04/10", "1999/12/31"] * 3))
    assert prepared.values.to_pylist() == ["20170410", "19991231"] * 3
    assert (prepared.reject_codes == -1).all()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(
    st.dates().map(lambda d: d.strftime("%Y/%m/%d") if d.year >= 1000 else str(d)),
    st.from_regex(r"[0-9]{4}/[0-9]{2}/[0-9]{2}", fullmatch=True),
    st.text(alphabet="0123456789/ -", max_size=11)), min_size=1, max_size=30))
def test_any_slash_dates(values: list[str]) -> None:
    _check(_feature(DateFormat("%Y/%m/%d")), values)


@pytest.mark.parametrize("missing", [None, MissingValue("N/A", "missing"), MissingValue("M", "M")])
def test_enums(missing: MissingValue | None) -> None:
    values = ["M", "F", "m", "", "N/A", " M", "MF", "U", None, "F"]
    _check(_feature(EnumFormat(frozenset({"M", "F", "U"})), missing), values)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.none(), st.text(max_size=8)), min_size=1, max_size=20),
       st.one_of(st.none(), st.integers(0, 5)), st.one_of(st.none(), st.integers(0, 6)),
       st.sampled_from([None, "upper", "lower"]),
       st.sampled_from([None, r"[a-z]+", r"\w*\d"]),
       st.sampled_from(["utf-8", "utf-16", "utf_32"]))
def test_strings(values: list[str | None], min_length: int | None, max_length: int | None,
                 case: str | None, pattern: str | None, encoding: str) -> None:
    fmt = StringFormat(encoding, pattern, case or "mixed", min_length,  # type: ignore[arg-type]
                       max_length)
    _check(_feature(fmt), values)
    _check(_feature(fmt, MissingValue("", "none")), values)


def test_only_unicode_encodings_are_taken() -> None:
    assert not column_preparable(_feature(StringFormat("ascii", min_length=2)))
    assert column_preparable(_feature(StringFormat("UTF-8", min_length=2)))


def test_encoder_rejects_rows_column_wise() -> None:
    """A checked n-gram feature now takes the compiled path, with the same rejects and CLKs
    as the cached-value path."""
    from tokenizer.schema_loader import schema_from_dict

    schema = schema_from_dict({
        "version": 3, "clkConfig": {"l": 256, "kdf": {"type": "HKDF", "hash": "SHA256",
                                                       "keySize": 64}},
        "features": [
            {"identifier": "name", "format": {"type": "string", "minLength": 3},
             "hashing": {"comparison": {"type": "ngram", "n": 2},
                         "strategy": {"bitsPerToken": 15}, "hash": {"type": "doubleHash"}}},
            {"identifier": "dob", "format": {"type": "date", "format": "%Y/%m/%d"},
             "hashing": {"comparison": {"type": "ngram", "n": 1, "positional": True},
                         "strategy": {"bitsPerToken": 30}, "hash": {"type": "doubleHash"}}},
            {"identifier": "sex", "format": {"type": "enum", "values": ["M", "F"]},
             "hashing": {"comparison": {"type": "ngram", "n": 1},
                         "strategy": {"bitsPerToken": 60}, "hash": {"type": "doubleHash"}}}]})
    columns = {"name": pa.array(["Ann Lee", "Al", "Bo Ek", None, "Cy Do"]),
               "dob": pa.array(["2017/04/10", "2017/04/10", "2017/4/31", "1980/01/02",
                                "1980/1/2"]),
               "sex": pa.array(["F", "M", "F", "X", "M"])}
    fast = ClkEncoder(schema, b"secret").encode(columns)
    slow = ClkEncoder(schema, b"secret", compiled=False).encode(columns)
    assert fast.valid.tolist() == [True, False, False, False, True]
    assert np.array_equal(fast.clks, slow.clks)
    assert [(r.index, r.fields, r.reasons) for r in fast.rejects] == \
        [(r.index, r.fields, r.reasons) for r in slow.rejects]
    assert [r.fields for r in fast.rejects] == [("name",), ("dob",), ("name", "sex")]
