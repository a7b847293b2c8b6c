"""Property tests: the fast encoder equals the one-record-at-a-time reference for any schema
and values, and the output never depends on chunking, workers or which path encoded it."""

from __future__ import annotations

import base64

import numpy as np
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokenizer.encoder import ClkEncoder
from tokenizer.parallel import encode_chunks
from tokenizer.reference import encode_record_reference
from tokenizer.schema_loader import schema_from_dict

TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=24)
DIGITS = st.integers(-99999, 99999).map(str)
# Decimal numbers as a site writes them: whole ones too, both signs, a few decimal places.
DECIMALS = st.one_of(DIGITS, st.decimals(-9999, 9999, places=3, allow_nan=False,
                                         allow_infinity=False).map(str))


@st.composite
def features(draw, index: int) -> tuple[dict, st.SearchStrategy[str]]:
    kind = draw(st.sampled_from(["ngram", "exact", "numeric", "decimal"]))
    hash_ = draw(st.sampled_from([{"type": "doubleHash"},
                                  {"type": "doubleHash", "prevent_singularity": True},
                                  {"type": "blakeHash"}]))
    strategy = draw(st.one_of(st.builds(lambda b: {"bitsPerToken": b}, st.integers(1, 40)),
                              st.builds(lambda b: {"bitsPerFeature": b}, st.integers(1, 300))))
    values: st.SearchStrategy[str] = TEXT
    if kind == "ngram":
        comparison = {"type": "ngram", "n": draw(st.integers(1, 4)),
                      "positional": draw(st.booleans())}
        fmt = draw(st.sampled_from([{"type": "string"}, {"type": "string", "encoding": "utf-16"},
                                    {"type": "string", "encoding": "utf-32"}]))
    elif kind == "exact":
        comparison = {"type": "exact"}
        fmt = {"type": "string"}
    elif kind == "numeric":
        comparison = {"type": "numeric", "thresholdDistance": draw(st.integers(1, 20)),
                      "resolution": draw(st.integers(1, 4))}
        fmt = {"type": "integer"}
        values = DIGITS
    else:  # decimals with a fractional precision (the key clkhash reads), 0 included
        precision = draw(st.integers(0, 2))
        comparison = {"type": "numeric", "resolution": draw(st.integers(1, 4)),
                      "thresholdDistance": draw(st.integers(1, 20)) / 10 ** precision,
                      "fractional_precision": precision}
        fmt = {"type": "string", "pattern": r"-?[0-9]+(\.[0-9]+)?"}
        values = DECIMALS
    feature = {"identifier": f"f{index}", "format": fmt,
               "hashing": {"comparison": comparison, "strategy": strategy, "hash": hash_}}
    if draw(st.booleans()):
        replacement = ("0" if kind in ("numeric", "decimal")
                       else draw(st.sampled_from(["", "missing"])))
        feature["hashing"]["missingValue"] = {"sentinel": "N/A", "replaceWith": replacement}
        values = st.one_of(values, st.just("N/A"))
    return feature, values


@st.composite
def schemas_and_records(draw):
    count = draw(st.integers(1, 4))
    drawn = [draw(features(i)) for i in range(count)]
    folds = draw(st.integers(0, 1))
    doc = {"version": 3,
           "clkConfig": {"l": draw(st.sampled_from([256, 512, 1024])), "xor_folds": folds,
                         "kdf": {"type": "HKDF", "hash": draw(st.sampled_from(["SHA256",
                                                                              "SHA512"])),
                                 "salt": base64.b64encode(draw(st.binary(max_size=8))).decode(),
                                 "keySize": 64}},
           "features": [f for f, _ in drawn]}
    records = draw(st.lists(st.fixed_dictionaries({f"f{i}": v for i, (_, v) in
                                                   enumerate(drawn)}),
                            min_size=1, max_size=12))
    return schema_from_dict(doc), records


def _columns(records: list[dict[str, str]], names: list[str]) -> dict[str, pa.Array]:
    return {n: pa.array([r[n] for r in records], pa.string()) for n in names}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schemas_and_records(), st.binary(min_size=1, max_size=16))
def test_fast_encoder_equals_reference(drawn, secret) -> None:
    schema, records = drawn
    expected = [encode_record_reference(schema, secret, r) for r in records]
    for compiled in (True, False):
        encoder = ClkEncoder(schema, secret, compiled=compiled)
        encoded = encoder.encode(_columns(records, encoder.required_columns))
        assert encoded.valid.all()
        assert [c.tobytes() for c in encoded.clks] == expected
        assert encoded.popcounts.tolist() == [int.from_bytes(e).bit_count() for e in expected]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schemas_and_records(), st.integers(1, 7), st.integers(1, 3))
def test_chunking_and_workers_never_change_the_output(drawn, chunk, workers) -> None:
    schema, records = drawn
    records = records * 5  # repeats exercise the caches
    encoder = ClkEncoder(schema, b"secret")
    names = encoder.required_columns
    whole = encoder.encode(_columns(records, names)).clks
    chunks = [_columns(records[i:i + chunk], names) for i in range(0, len(records), chunk)]
    pieces = [encoded for encoded, _ in encode_chunks(schema, b"secret", chunks, workers)]
    assert np.array_equal(np.concatenate([p.clks for p in pieces]), whole)
    again = ClkEncoder(schema, b"secret").encode(_columns(records, names)).clks
    assert np.array_equal(again, whole)
