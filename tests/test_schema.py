"""Loading and validating linkage-schema v3: every supported feature, every error's JSON path."""

from __future__ import annotations

import copy
import json
import logging

import pytest

from tokenizer.catalog import load_schema, shipped_schemas
from tokenizer.errors import SchemaError
from tokenizer.schema_loader import schema_from_dict, schema_from_json_text
from tokenizer.schema_model import (
    BitsPerFeature,
    BitsPerToken,
    DateFormat,
    EnumFormat,
    ExactComparison,
    IgnoredFeature,
    IntegerFormat,
    NgramComparison,
    NumericComparison,
    StringFormat,
)

from .golden import CASES, case


def _feature(identifier: str, fmt: dict, comparison: dict, strategy: dict | None = None,
             hash_: dict | None = None, **extra: dict) -> dict:
    hashing = {"comparison": comparison, "strategy": strategy or {"bitsPerToken": 10},
               "hash": hash_ or {"type": "doubleHash"}}
    hashing.update(extra)
    return {"identifier": identifier, "format": fmt, "hashing": hashing}


EVERYTHING = {
    "version": 3,
    "clkConfig": {"l": 512, "xor_folds": 1,
                  "kdf": {"type": "HKDF", "hash": "SHA512", "salt": "c2FsdA==", "info": "aW5mbw==",
                          "keySize": 32}},
    "features": [
        {"identifier": "id", "ignored": True},
        _feature("name", {"type": "string", "encoding": "utf-16", "case": "lower",
                          "minLength": 1, "maxLength": 30},
                 {"type": "ngram", "n": 2, "positional": False}),
        _feature("code", {"type": "string", "pattern": "[A-Z]{2}[0-9]+"},
                 {"type": "ngram", "n": 1, "positional": True},
                 hash_={"type": "doubleHash", "prevent_singularity": True}),
        _feature("age", {"type": "integer", "minimum": 0, "maximum": 130},
                 {"type": "numeric", "thresholdDistance": 5, "resolution": 2},
                 {"bitsPerFeature": 40}, {"type": "blakeHash"}),
        _feature("weight", {"type": "string"},
                 {"type": "numeric", "thresholdDistance": 0.5, "resolution": 3,
                  "fractional_precision": 1}),
        _feature("dob", {"type": "date", "format": "%Y-%m-%d"}, {"type": "exact"},
                 missingValue={"sentinel": "", "replaceWith": "19000101"}),
        _feature("sex", {"type": "enum", "values": ["f", "m"]}, {"type": "exact"},
                 {"bitsPerToken": 30}, {"type": "blakeHash"}),
    ],
}


def test_every_feature_kind_loads_into_its_model() -> None:
    schema = schema_from_dict(EVERYTHING, "everything")
    assert schema.bloom_filter_bits == 512
    assert schema.xor_folds == 1 and schema.hash_bits == 1024
    assert schema.kdf.hash_name == "SHA512" and schema.kdf.key_size == 32
    assert schema.kdf.salt == b"salt" and schema.kdf.info == b"info"
    ignored, name, code, age, weight, dob, sex = schema.features
    assert isinstance(ignored, IgnoredFeature)
    assert isinstance(name.format, StringFormat) and name.format.case == "lower"
    assert name.format.min_length == 1 and name.format.max_length == 30
    assert name.encoding == "utf-16"
    assert isinstance(name.comparison, NgramComparison) and name.comparison.n == 2
    assert code.format.pattern == "[A-Z]{2}[0-9]+" and code.hash.prevent_singularity
    assert isinstance(age.format, IntegerFormat) and age.format.maximum == 130
    assert isinstance(age.comparison, NumericComparison)
    assert isinstance(age.strategy, BitsPerFeature) and age.strategy.bits == 40
    assert age.hash.kind == "blakeHash"
    assert weight.comparison.fractional_precision == 1
    assert isinstance(dob.format, DateFormat) and isinstance(dob.comparison, ExactComparison)
    assert dob.missing_value.replace_with == "19000101"
    assert isinstance(sex.format, EnumFormat) and sex.format.values == {"f", "m"}
    assert isinstance(sex.strategy, BitsPerToken) and sex.strategy.bits == 30


@pytest.mark.parametrize("name", CASES)
def test_golden_schemas_load(name: str) -> None:
    schema = load_schema(case(name).schema_path)
    assert schema.features and len(schema.fingerprint) == 64


def test_fingerprint_ignores_descriptions_and_key_order_but_not_content() -> None:
    base = schema_from_dict(EVERYTHING)
    described = copy.deepcopy(EVERYTHING)
    described["description"] = "same encoding"
    described["features"][1]["description"] = "a name"
    reordered = json.loads(json.dumps(described, sort_keys=True))
    assert schema_from_dict(described).fingerprint == base.fingerprint
    assert schema_from_dict(reordered).fingerprint == base.fingerprint
    changed = copy.deepcopy(EVERYTHING)
    changed["features"][1]["hashing"]["strategy"] = {"bitsPerToken": 11}
    assert schema_from_dict(changed).fingerprint != base.fingerprint


def _issues(doc: object) -> dict[str, str]:
    with pytest.raises(SchemaError) as raised:
        schema_from_dict(doc, "bad.json")
    assert "bad.json" in str(raised.value)
    return {issue.path: issue.message for issue in raised.value.issues}


def _broken(path: list, value: object) -> dict:
    doc = copy.deepcopy(EVERYTHING)
    target = doc
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return doc


@pytest.mark.parametrize(("path", "value", "where", "words"), [
    (["version"], 2, "$.version", "not supported"),
    (["version"], KeyError, "$.version", "required"),
    (["clkConfig", "l"], "1024", "$.clkConfig.l", "integer"),
    (["clkConfig", "l"], 0, "$.clkConfig.l", "at least"),
    (["clkConfig", "kdf", "hash"], "MD5", "$.clkConfig.kdf.hash", "SHA256"),
    (["clkConfig", "kdf", "salt"], "not base64!", "$.clkConfig.kdf.salt", "base64"),
    (["clkConfig", "kdf", "type"], "PBKDF2", "$.clkConfig.kdf.type", "HKDF"),
    (["features", 1, "format", "encoding"], "ebcdic", "$.features[1].format.encoding", "ebcdic"),
    (["features", 1, "format", "case"], "title", "$.features[1].format.case", "title"),
    (["features", 1, "hashing", "comparison", "n"], 0, "$.features[1].hashing.comparison.n",
     "at least"),
    (["features", 1, "hashing", "comparison", "type"], "soundex",
     "$.features[1].hashing.comparison.type", "soundex"),
    (["features", 1, "hashing", "strategy"], {"bitsPerToken": 5, "bitsPerFeature": 5},
     "$.features[1].hashing.strategy", "exactly one"),
    (["features", 1, "hashing", "hash", "type"], "sha1", "$.features[1].hashing.hash.type",
     "sha1"),
    (["features", 2, "format", "pattern"], "([a-z", "$.features[2].format.pattern", "regular"),
    (["features", 3, "format", "minimum"], "zero", "$.features[3].format.minimum", "integer"),
    (["features", 3, "hashing", "comparison", "thresholdDistance"], -1,
     "$.features[3].hashing.comparison.thresholdDistance", "greater than 0"),
    (["features", 5, "format", "format"], 19000101, "$.features[5].format.format", "string"),
    (["features", 6, "format", "values"], "f,m", "$.features[6].format.values", "array"),
    (["features", 6, "identifier"], KeyError, "$.features[6].identifier", "required"),
    (["features"], [], "$.features", "no feature"),
])
def test_invalid_schema_names_json_path_and_problem(path, value, where, words) -> None:
    issues = _issues(_broken(path, value))
    assert where in issues, issues
    assert words.lower() in issues[where].lower(), issues[where]


def test_all_problems_are_reported_at_once() -> None:
    doc = _broken(["clkConfig", "l"], -5)
    doc["features"][1]["hashing"]["comparison"]["n"] = -1
    doc["features"][6]["format"]["type"] = "colour"
    issues = _issues(doc)
    assert {"$.clkConfig.l", "$.features[1].hashing.comparison.n",
            "$.features[6].format.type"} <= set(issues)


def test_duplicate_identifiers_are_refused() -> None:
    doc = copy.deepcopy(EVERYTHING)
    doc["features"][2]["identifier"] = "name"
    assert "$.features[2].identifier" in _issues(doc)


def test_blake_hash_needs_a_power_of_two_length() -> None:
    doc = _broken(["clkConfig", "l"], 600)
    issues = _issues(doc)
    assert any("power of two" in message for message in issues.values()), issues


def test_syntax_error_names_line_and_column() -> None:
    with pytest.raises(SchemaError) as raised:
        schema_from_json_text('{"version": 3,\n "features": [}', "typo.json")
    assert "line 2" in str(raised.value) and "typo.json" in str(raised.value)


def test_documented_xor_folds_key_is_warned_about(caplog) -> None:
    doc = copy.deepcopy(EVERYTHING)
    doc["clkConfig"]["xorFolds"] = doc["clkConfig"].pop("xor_folds")
    with caplog.at_level(logging.WARNING):
        schema = schema_from_dict(doc)
    # clkhash 0.18.3 ignores xorFolds; so do we, to stay byte-compatible, and we say so.
    assert schema.xor_folds == 0
    assert "xorFolds" in caplog.text


def test_shipped_schemas_are_listed_and_load() -> None:
    names = {s.name: s.description for s in shipped_schemas()}
    assert {"febrl", "person"} <= set(names)
    assert all(names.values())
    febrl = load_schema("febrl")
    assert [f.identifier for f in febrl.hashed_features] == [
        "given_name", "surname", "street_number", "address_1", "address_2", "suburb",
        "postcode", "state", "date_of_birth", "soc_sec_id"]
    person = load_schema("person")
    assert [f.identifier for f in person.hashed_features] == [
        "given_name", "surname", "date_of_birth", "sex", "address", "zip", "phone"]


def test_unknown_schema_name_lists_the_shipped_ones(tmp_path) -> None:
    with pytest.raises(SchemaError) as raised:
        load_schema("no-such-schema")
    assert "febrl" in str(raised.value) and "person" in str(raised.value)
