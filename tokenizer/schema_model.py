"""The resolved linkage schema (clkhash linkage-schema v3) as frozen dataclasses.

`schema_loader` turns JSON into these objects after validating it; the encoder only ever sees
these, so every default has already been applied.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "StringFormat",
    "IntegerFormat",
    "DateFormat",
    "EnumFormat",
    "FieldFormat",
    "NgramComparison",
    "ExactComparison",
    "NumericComparison",
    "Comparison",
    "BitsPerToken",
    "BitsPerFeature",
    "Strategy",
    "HashConfig",
    "MissingValue",
    "Feature",
    "IgnoredFeature",
    "KdfConfig",
    "Schema",
]

Case = Literal["upper", "lower", "mixed"]


@dataclass(frozen=True)
class StringFormat:
    """Free text, checked either by a regular expression or by length and case."""

    encoding: str = "utf-8"
    pattern: str | None = None
    case: Case = "mixed"
    min_length: int | None = None
    max_length: int | None = None


@dataclass(frozen=True)
class IntegerFormat:
    """A base-10 integer; hashed in its canonical form (``+07`` becomes ``7``)."""

    minimum: int | None = None
    maximum: int | None = None


@dataclass(frozen=True)
class DateFormat:
    """A date parsed with ``strptime`` and hashed as ``%Y%m%d``."""

    strptime_format: str


@dataclass(frozen=True)
class EnumFormat:
    """One of a fixed set of strings."""

    values: frozenset[str]


FieldFormat = StringFormat | IntegerFormat | DateFormat | EnumFormat


@dataclass(frozen=True)
class NgramComparison:
    """Character n-grams; strings padded with n-1 spaces, optionally prefixed by position."""

    n: int
    positional: bool = False


@dataclass(frozen=True)
class ExactComparison:
    """The whole value as one token."""


@dataclass(frozen=True)
class NumericComparison:
    """Neighbourhood tokens so that numbers within ``threshold_distance`` share tokens
    (Vatsalan and Christen 2015, as clkhash implements it)."""

    threshold_distance: float
    resolution: int
    fractional_precision: int = 0

    @property
    def distance_interval(self) -> int:
        """Spacing of the neighbourhood tokens after scaling by 10**fractional_precision."""
        return int(round(self.threshold_distance * pow(10, self.fractional_precision)))


Comparison = NgramComparison | ExactComparison | NumericComparison


@dataclass(frozen=True)
class BitsPerToken:
    """Every token sets ``bits`` bits (the k of Schnell et al. 2009)."""

    bits: int


@dataclass(frozen=True)
class BitsPerFeature:
    """The feature sets ``bits`` bits in total, spread over its tokens."""

    bits: int


Strategy = BitsPerToken | BitsPerFeature


@dataclass(frozen=True)
class HashConfig:
    """How a token becomes bit positions: keyed BLAKE2b, or HMAC-SHA1/MD5 double hashing."""

    kind: Literal["blakeHash", "doubleHash"] = "blakeHash"
    prevent_singularity: bool = False


@dataclass(frozen=True)
class MissingValue:
    """A value equal to ``sentinel`` skips validation and is hashed as ``replace_with``."""

    sentinel: str
    replace_with: str


@dataclass(frozen=True)
class Feature:
    """A column that contributes to the CLK."""

    identifier: str
    format: FieldFormat
    comparison: Comparison
    strategy: Strategy
    hash: HashConfig = field(default_factory=HashConfig)
    missing_value: MissingValue | None = None

    @property
    def encoding(self) -> str:
        """Text encoding used to turn tokens into bytes (only string formats may change it)."""
        return self.format.encoding if isinstance(self.format, StringFormat) else "utf-8"


@dataclass(frozen=True)
class IgnoredFeature:
    """A column named by the schema that is not hashed. It still takes a key slot."""

    identifier: str


@dataclass(frozen=True)
class KdfConfig:
    """HKDF parameters deriving two keys per feature from the linkage secret."""

    hash_name: Literal["SHA256", "SHA512"] = "SHA256"
    salt: bytes | None = None
    info: bytes | None = None
    key_size: int = 64


@dataclass(frozen=True)
class Schema:
    """A validated linkage schema.

    Attributes:
        bloom_filter_bits: l, the CLK length in bits after XOR folding.
        xor_folds: how many times the filter is folded in half before output.
        kdf: key derivation settings.
        features: every feature in schema order; position decides the derived keys.
        fingerprint: SHA-256 (hex) of the canonical JSON, identical for schemas that
            encode identically.
        canonical_json: the normal form the fingerprint is taken of.
        name: shipped schema name or file path it was loaded from.
    """

    bloom_filter_bits: int
    xor_folds: int
    kdf: KdfConfig
    features: tuple[Feature | IgnoredFeature, ...]
    fingerprint: str
    canonical_json: str
    name: str = ""

    @property
    def hash_bits(self) -> int:
        """Length of the filter before XOR folding."""
        return self.bloom_filter_bits * 2**self.xor_folds

    @property
    def clk_bytes(self) -> int:
        """Bytes of one serialised CLK (clkhash pads the last byte with zero bits)."""
        return (self.bloom_filter_bits + 7) // 8

    @property
    def hashed_features(self) -> tuple[Feature, ...]:
        return tuple(f for f in self.features if isinstance(f, Feature))
