"""Load and validate clkhash linkage-schema v3 JSON into a :class:`Schema`.

Accepts exactly what clkhash 0.18.3 accepts and encodes, so that a schema written for clkhash
gives byte-identical CLKs here. Two quirks of clkhash are kept on purpose and reported as
warnings: clkhash reads the fold count from ``clkConfig.xor_folds`` and ignores the
``xorFolds`` that its own master schema documents, and it reads ``fractional_precision`` (not
``fractionalPrecision``) in numeric comparisons.

Every problem is collected with its JSON path and raised once as :class:`SchemaError`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import re
from collections.abc import Mapping
from typing import Any

from .errors import SchemaError, SchemaIssue
from .schema_model import (
    BitsPerFeature,
    BitsPerToken,
    Comparison,
    DateFormat,
    EnumFormat,
    ExactComparison,
    Feature,
    FieldFormat,
    HashConfig,
    IgnoredFeature,
    IntegerFormat,
    KdfConfig,
    MissingValue,
    NgramComparison,
    NumericComparison,
    Schema,
    Strategy,
    StringFormat,
)

__all__ = ["schema_from_dict", "schema_from_json_text", "canonical_schema_json"]

log = logging.getLogger(__name__)

SUPPORTED_VERSION = 3
ENCODINGS = ("ascii", "utf-8", "utf-16", "utf-32")
CASES = ("upper", "lower", "mixed")
KDF_DIGEST_BYTES = {"SHA256": 32, "SHA512": 64}
BLAKE2B_MAX_KEY_BYTES = 64
KEYS_PER_FEATURE = 2
# Far beyond any useful filter; bounds the encoder's (token, bit count) cache keys.
MAX_STRATEGY_BITS = (1 << 20) - 1

_FORMAT_KEYS = {
    "string": {"type", "encoding", "case", "minLength", "maxLength", "description"},
    "string-pattern": {"type", "encoding", "pattern", "description"},
    "integer": {"type", "minimum", "maximum", "description"},
    "date": {"type", "format", "description"},
    "enum": {"type", "values", "description"},
}
_HASHING_KEYS = {"hash", "strategy", "comparison", "missingValue"}
_IGNORED_KEYS = {"identifier", "ignored", "description"}
_KNOWN_FEATURE_KEYS = {"identifier", "ignored", "description", "format", "hashing"}


class _Checker:
    """Collects issues while walking the JSON document."""

    def __init__(self) -> None:
        self.issues: list[SchemaIssue] = []

    def fail(self, path: str, message: str) -> None:
        self.issues.append(SchemaIssue(path, message))

    def warn_unknown(self, obj: Mapping[str, Any], known: set[str], path: str) -> None:
        for key in sorted(set(obj) - known):
            log.warning("%s.%s is not part of linkage-schema v3 and is ignored", path, key)

    def reject_unknown(self, obj: Mapping[str, Any], allowed: set[str], path: str) -> None:
        for key in sorted(set(obj) - allowed):
            self.fail(f"{path}.{key}", f"unexpected property; allowed here: {sorted(allowed)}")

    def obj(self, value: Any, path: str) -> Mapping[str, Any] | None:
        if not isinstance(value, Mapping):
            self.fail(path, f"must be an object, not {_json_type(value)}")
            return None
        return value

    def integer(
        self, parent: Mapping[str, Any], key: str, path: str, *, minimum: int | None = None,
        maximum: int | None = None, required: bool = False,
    ) -> int | None:
        if key not in parent:
            if required:
                self.fail(f"{path}.{key}", "is required")
            return None
        value = parent[key]
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(f"{path}.{key}", f"must be an integer, not {_json_type(value)}")
            return None
        if minimum is not None and value < minimum:
            self.fail(f"{path}.{key}", f"must be at least {minimum}, got {value}")
            return None
        if maximum is not None and value > maximum:
            self.fail(f"{path}.{key}", f"must be at most {maximum}, got {value}")
            return None
        return value

    def string(
        self, parent: Mapping[str, Any], key: str, path: str, *, required: bool = False,
        choices: tuple[str, ...] | None = None,
    ) -> str | None:
        if key not in parent:
            if required:
                self.fail(f"{path}.{key}", "is required")
            return None
        value = parent[key]
        if not isinstance(value, str):
            self.fail(f"{path}.{key}", f"must be a string, not {_json_type(value)}")
            return None
        if choices is not None and value not in choices:
            self.fail(f"{path}.{key}", f"must be one of {list(choices)}, got {value!r}")
            return None
        return value

    def boolean(self, parent: Mapping[str, Any], key: str, path: str) -> bool | None:
        if key not in parent:
            return None
        value = parent[key]
        if not isinstance(value, bool):
            self.fail(f"{path}.{key}", f"must be true or false, not {_json_type(value)}")
            return None
        return value


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def _base64(check: _Checker, parent: Mapping[str, Any], key: str, path: str) -> bytes | None:
    text = check.string(parent, key, path)
    if text is None:
        return None
    try:
        # Same decoder as clkhash (non-strict), so both read the same bytes.
        return base64.b64decode(text)
    except (binascii.Error, ValueError):
        check.fail(f"{path}.{key}", "is not valid base64")
        return None


def _parse_kdf(check: _Checker, value: Any, path: str) -> KdfConfig | None:
    kdf = check.obj(value, path)
    if kdf is None:
        return None
    check.warn_unknown(kdf, {"type", "hash", "salt", "info", "keySize"}, path)
    kdf_type = check.string(kdf, "type", path, required=True)
    if kdf_type is not None and kdf_type != "HKDF":
        check.fail(f"{path}.type", f"must be 'HKDF', got {kdf_type!r}")
    hash_name = check.string(kdf, "hash", path, choices=("SHA256", "SHA512")) or "SHA256"
    salt = _base64(check, kdf, "salt", path)
    info = _base64(check, kdf, "info", path)
    key_size = check.integer(kdf, "keySize", path, minimum=1)
    return KdfConfig(
        hash_name=hash_name,  # type: ignore[arg-type]
        salt=salt,
        info=info,
        key_size=64 if key_size is None else key_size,
    )


def _parse_format(check: _Checker, value: Any, path: str) -> FieldFormat | None:
    fmt = check.obj(value, path)
    if fmt is None:
        return None
    kind = check.string(fmt, "type", path, required=True,
                        choices=("string", "integer", "date", "enum"))
    if kind is None:
        return None
    check.string(fmt, "description", path)
    if kind == "string":
        encoding = check.string(fmt, "encoding", path, choices=ENCODINGS) or "utf-8"
        if "pattern" in fmt:
            check.reject_unknown(fmt, _FORMAT_KEYS["string-pattern"], path)
            pattern = check.string(fmt, "pattern", path)
            if pattern is not None:
                try:
                    re.compile(pattern)
                except re.error as e:
                    check.fail(f"{path}.pattern", f"is not a valid regular expression: {e}")
            return StringFormat(encoding=encoding, pattern=pattern)
        check.reject_unknown(fmt, _FORMAT_KEYS["string"], path)
        case = check.string(fmt, "case", path, choices=CASES) or "mixed"
        return StringFormat(
            encoding=encoding,
            case=case,  # type: ignore[arg-type]
            min_length=check.integer(fmt, "minLength", path, minimum=0),
            max_length=check.integer(fmt, "maxLength", path, minimum=1),
        )
    check.reject_unknown(fmt, _FORMAT_KEYS[kind], path)
    if kind == "integer":
        return IntegerFormat(
            minimum=check.integer(fmt, "minimum", path),
            maximum=check.integer(fmt, "maximum", path),
        )
    if kind == "date":
        date_format = check.string(fmt, "format", path, required=True)
        return None if date_format is None else DateFormat(date_format)
    values = fmt.get("values")
    if "values" not in fmt:
        check.fail(f"{path}.values", "is required")
        return None
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        check.fail(f"{path}.values", "must be an array of strings")
        return None
    return EnumFormat(frozenset(values))


def _parse_comparison(check: _Checker, value: Any, path: str) -> Comparison | None:
    comp = check.obj(value, path)
    if comp is None:
        return None
    kind = check.string(comp, "type", path, required=True, choices=("ngram", "exact", "numeric"))
    if kind == "ngram":
        check.warn_unknown(comp, {"type", "n", "positional"}, path)
        n = check.integer(comp, "n", path, minimum=1, required=True)
        positional = check.boolean(comp, "positional", path) or False
        return None if n is None else NgramComparison(n=n, positional=positional)
    if kind == "exact":
        check.warn_unknown(comp, {"type"}, path)
        return ExactComparison()
    if kind == "numeric":
        if "fractionalPrecision" in comp:
            log.warning(
                "%s.fractionalPrecision is ignored, as clkhash 0.18.3 ignores it; "
                "clkhash reads 'fractional_precision'", path)
        check.warn_unknown(
            comp, {"type", "thresholdDistance", "resolution", "fractional_precision",
                   "fractionalPrecision"}, path)
        distance = comp.get("thresholdDistance")
        if "thresholdDistance" not in comp:
            check.fail(f"{path}.thresholdDistance", "is required")
        elif isinstance(distance, bool) or not isinstance(distance, int | float):
            check.fail(f"{path}.thresholdDistance", f"must be a number, not {_json_type(distance)}")
            distance = None
        elif not distance > 0:
            check.fail(f"{path}.thresholdDistance", f"must be greater than 0, got {distance}")
            distance = None
        resolution = check.integer(comp, "resolution", path, minimum=1, required=True)
        precision = check.integer(comp, "fractional_precision", path, minimum=0)
        if distance is None or resolution is None:
            return None
        numeric = NumericComparison(float(distance), resolution, precision or 0)
        if numeric.distance_interval == 0:
            check.fail(f"{path}.thresholdDistance",
                       "rounds to 0 at this fractional_precision; raise fractional_precision")
            return None
        return numeric
    return None


def _parse_strategy(check: _Checker, value: Any, path: str) -> Strategy | None:
    strategy = check.obj(value, path)
    if strategy is None:
        return None
    present = [k for k in ("bitsPerToken", "bitsPerFeature") if k in strategy]
    if len(present) != 1 or len(strategy) != 1:
        check.fail(path, "must hold exactly one of 'bitsPerToken' or 'bitsPerFeature'")
        return None
    bits = check.integer(strategy, present[0], path, minimum=1, maximum=MAX_STRATEGY_BITS)
    if bits is None:
        return None
    return BitsPerToken(bits) if present[0] == "bitsPerToken" else BitsPerFeature(bits)


def _parse_hash(check: _Checker, value: Any, path: str) -> HashConfig | None:
    hash_doc = check.obj(value, path)
    if hash_doc is None:
        return None
    kind = check.string(hash_doc, "type", path, required=True,
                        choices=("blakeHash", "doubleHash"))
    check.warn_unknown(hash_doc, {"type", "prevent_singularity"}, path)
    prevent = check.boolean(hash_doc, "prevent_singularity", path)
    if kind == "blakeHash" and prevent is not None:
        check.fail(f"{path}.prevent_singularity", "only applies to 'doubleHash'")
        return None
    if kind is None:
        return None
    return HashConfig(kind=kind, prevent_singularity=bool(prevent))  # type: ignore[arg-type]


def _parse_missing(check: _Checker, value: Any, path: str) -> MissingValue | None:
    missing = check.obj(value, path)
    if missing is None:
        return None
    check.warn_unknown(missing, {"sentinel", "replaceWith"}, path)
    sentinel = check.string(missing, "sentinel", path, required=True)
    replace_with = check.string(missing, "replaceWith", path)
    if sentinel is None:
        return None
    return MissingValue(sentinel, sentinel if replace_with is None else replace_with)


def _is_number_text(text: str) -> bool:
    try:
        int(text, 10)
        return True
    except ValueError:
        pass
    try:
        return float(text) == float(text) and abs(float(text)) != float("inf")
    except ValueError:
        return False


def _parse_feature(check: _Checker, value: Any, path: str) -> Feature | IgnoredFeature | None:
    doc = check.obj(value, path)
    if doc is None:
        return None
    identifier = check.string(doc, "identifier", path, required=True)
    ignored = check.boolean(doc, "ignored", path)
    check.string(doc, "description", path)
    if ignored and set(doc) <= _IGNORED_KEYS:
        return None if identifier is None else IgnoredFeature(identifier)
    check.warn_unknown(doc, _KNOWN_FEATURE_KEYS, path)
    for key in ("format", "hashing"):
        if key not in doc:
            check.fail(f"{path}.{key}", "is required unless the feature is ignored")
    if "format" not in doc or "hashing" not in doc:
        return None
    fmt = _parse_format(check, doc["format"], f"{path}.format")
    hashing = check.obj(doc["hashing"], f"{path}.hashing")
    if hashing is None:
        return None
    hpath = f"{path}.hashing"
    check.reject_unknown(hashing, _HASHING_KEYS, hpath)
    for key in ("comparison", "strategy"):
        if key not in hashing:
            check.fail(f"{hpath}.{key}", "is required")
    comparison = (_parse_comparison(check, hashing["comparison"], f"{hpath}.comparison")
                  if "comparison" in hashing else None)
    strategy = (_parse_strategy(check, hashing["strategy"], f"{hpath}.strategy")
                if "strategy" in hashing else None)
    hash_config = (_parse_hash(check, hashing["hash"], f"{hpath}.hash")
                   if "hash" in hashing else HashConfig())
    missing = (_parse_missing(check, hashing["missingValue"], f"{hpath}.missingValue")
               if "missingValue" in hashing else None)
    if (isinstance(comparison, NumericComparison) and missing is not None
            and missing.replace_with and not _is_number_text(missing.replace_with)):
        check.fail(f"{hpath}.missingValue.replaceWith",
                   "must be a number or empty for a numeric comparison")
    if (identifier is None or fmt is None or comparison is None or strategy is None
            or hash_config is None):
        return None
    if ignored:
        return IgnoredFeature(identifier)
    return Feature(identifier, fmt, comparison, strategy, hash_config, missing)


def _parse_clk_config(check: _Checker, value: Any) -> tuple[int | None, int, KdfConfig | None]:
    path = "$.clkConfig"
    config = check.obj(value, path)
    if config is None:
        return None, 0, None
    check.warn_unknown(config, {"l", "kdf", "xorFolds", "xor_folds"}, path)
    length = check.integer(config, "l", path, minimum=1, required=True)
    documented_folds = check.integer(config, "xorFolds", path, minimum=0)
    folds = check.integer(config, "xor_folds", path, minimum=0) or 0
    if documented_folds:
        log.warning(
            "%s.xorFolds=%d is not applied: clkhash 0.18.3 ignores this key and CLKs must match "
            "clkhash byte for byte; write 'xor_folds' to fold", path, documented_folds)
    kdf = None
    if "kdf" not in config:
        check.fail(f"{path}.kdf", "is required")
    else:
        kdf = _parse_kdf(check, config["kdf"], f"{path}.kdf")
    return length, folds, kdf


def _check_encodable(check: _Checker, length: int, folds: int, kdf: KdfConfig,
                     features: list[Feature | IgnoredFeature]) -> None:
    """Reject schemas that validate but that clkhash could never encode."""
    hash_bits = length * 2**folds
    for i, feature in enumerate(features):
        if not isinstance(feature, Feature) or feature.hash.kind != "blakeHash":
            continue
        if hash_bits & (hash_bits - 1):
            check.fail("$.clkConfig.l", f"must be a power of two (times 2**xor_folds): feature "
                       f"{feature.identifier!r} at $.features[{i}] uses blakeHash")
        if kdf.key_size > BLAKE2B_MAX_KEY_BYTES:
            check.fail("$.clkConfig.kdf.keySize", f"must be at most {BLAKE2B_MAX_KEY_BYTES} "
                       f"for blakeHash (feature {feature.identifier!r} at $.features[{i}])")
        break
    needed = KEYS_PER_FEATURE * len(features) * kdf.key_size
    limit = 255 * KDF_DIGEST_BYTES[kdf.hash_name]
    if needed > limit:
        check.fail("$.clkConfig.kdf", f"HKDF-{kdf.hash_name} can derive at most {limit} bytes, but "
                   f"{len(features)} features x {KEYS_PER_FEATURE} keys x {kdf.key_size} bytes "
                   f"need {needed}; use SHA512 or a smaller keySize")


def canonical_schema_json(length: int, folds: int, kdf: KdfConfig,
                          features: tuple[Feature | IgnoredFeature, ...]) -> str:
    """The normal form the fingerprint is taken of: defaults explicit, descriptions and
    ignored settings dropped, keys sorted, no whitespace. Schemas that encode identically
    (same features, keys and settings) share it."""

    def b64(data: bytes | None) -> str | None:
        return None if data is None else base64.b64encode(data).decode("ascii")

    def fmt_doc(fmt: FieldFormat) -> dict[str, Any]:
        if isinstance(fmt, StringFormat):
            return {"type": "string", "encoding": fmt.encoding, "pattern": fmt.pattern,
                    "case": fmt.case, "minLength": fmt.min_length, "maxLength": fmt.max_length}
        if isinstance(fmt, IntegerFormat):
            return {"type": "integer", "minimum": fmt.minimum, "maximum": fmt.maximum}
        if isinstance(fmt, DateFormat):
            return {"type": "date", "format": fmt.strptime_format}
        return {"type": "enum", "values": sorted(fmt.values)}

    def comparison_doc(comp: Comparison) -> dict[str, Any]:
        if isinstance(comp, NgramComparison):
            return {"type": "ngram", "n": comp.n, "positional": comp.positional}
        if isinstance(comp, NumericComparison):
            return {"type": "numeric", "thresholdDistance": comp.threshold_distance,
                    "resolution": comp.resolution,
                    "fractional_precision": comp.fractional_precision}
        return {"type": "exact"}

    def feature_doc(feature: Feature | IgnoredFeature) -> dict[str, Any]:
        if isinstance(feature, IgnoredFeature):
            return {"identifier": feature.identifier, "ignored": True}
        strategy = feature.strategy
        return {
            "identifier": feature.identifier,
            "format": fmt_doc(feature.format),
            "hashing": {
                "comparison": comparison_doc(feature.comparison),
                "strategy": {type(strategy).__name__: strategy.bits},
                "hash": {"type": feature.hash.kind,
                         "prevent_singularity": feature.hash.prevent_singularity},
                "missingValue": None if feature.missing_value is None else {
                    "sentinel": feature.missing_value.sentinel,
                    "replaceWith": feature.missing_value.replace_with},
            },
        }

    doc = {
        "version": SUPPORTED_VERSION,
        "clkConfig": {
            "l": length,
            "xorFolds": folds,
            "kdf": {"type": "HKDF", "hash": kdf.hash_name, "salt": b64(kdf.salt),
                    "info": b64(kdf.info), "keySize": kdf.key_size},
        },
        "features": [feature_doc(f) for f in features],
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def schema_from_dict(doc: Any, source: str = "<schema>") -> Schema:
    """Validate a parsed linkage-schema document and resolve it.

    Raises:
        SchemaError: listing every problem with its JSON path.
    """
    check = _Checker()
    if not isinstance(doc, Mapping):
        raise SchemaError(source, [SchemaIssue("$", f"must be an object, not {_json_type(doc)}")])
    check.warn_unknown(doc, {"version", "clkConfig", "features", "description", "$schema"}, "$")
    version = doc.get("version")
    if "version" not in doc:
        check.fail("$.version", "is required")
    elif isinstance(version, bool) or not isinstance(version, int | float):
        check.fail("$.version", f"must be a number, not {_json_type(version)}")
    elif version != SUPPORTED_VERSION:
        check.fail("$.version", f"linkage-schema version {version} is not supported; "
                   f"only version {SUPPORTED_VERSION} is: convert the schema to version 3")
    length, folds, kdf = (None, 0, None)
    if "clkConfig" not in doc:
        check.fail("$.clkConfig", "is required")
    else:
        length, folds, kdf = _parse_clk_config(check, doc["clkConfig"])
    features: list[Feature | IgnoredFeature] = []
    raw_features = doc.get("features")
    if "features" not in doc:
        check.fail("$.features", "is required")
    elif not isinstance(raw_features, list):
        check.fail("$.features", f"must be an array, not {_json_type(raw_features)}")
    else:
        first_use: dict[str, int] = {}
        for i, raw in enumerate(raw_features):
            parsed = _parse_feature(check, raw, f"$.features[{i}]")
            if parsed is not None:
                features.append(parsed)
                if parsed.identifier in first_use:
                    check.fail(f"$.features[{i}].identifier",
                               f"{parsed.identifier!r} is already used by "
                               f"$.features[{first_use[parsed.identifier]}]; columns are "
                               "matched by name, so identifiers must be unique")
                first_use.setdefault(parsed.identifier, i)
        if not any(isinstance(f, Feature) for f in features) and not check.issues:
            check.fail("$.features", "no feature is hashed: every CLK would be all zeros")
    if not check.issues and length is not None and kdf is not None:
        _check_encodable(check, length, folds, kdf, features)
    if check.issues or length is None or kdf is None:
        raise SchemaError(source, check.issues)
    canonical = canonical_schema_json(length, folds, kdf, tuple(features))
    return Schema(
        bloom_filter_bits=length,
        xor_folds=folds,
        kdf=kdf,
        features=tuple(features),
        fingerprint=hashlib.sha256(canonical.encode("utf-8")).hexdigest(),
        canonical_json=canonical,
        name=source,
    )


def schema_from_json_text(text: str, source: str = "<schema>") -> Schema:
    """Parse JSON text and resolve it; a syntax error names line and column."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise SchemaError(source, [SchemaIssue(
            "$", f"is not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}")]) from e
    return schema_from_dict(doc, source)
