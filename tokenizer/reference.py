"""A slow, obviously correct CLK encoder, written from clkhash 0.18.3's specification and
sharing no code with the fast path beyond the schema model.

One record at a time, no caches, no tricks, and its own of everything the fast encoder has:
HKDF (RFC 5869) key derivation, value validation and normal forms, tokens, bit counts, both
hash constructions, XOR folding and serialisation. A bug shared by the two paths would need
to be written twice; the golden vectors pin this one to clkhash itself.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import struct
from collections.abc import Mapping, Sequence
from datetime import datetime

from .schema_model import (
    BitsPerFeature,
    BitsPerToken,
    Comparison,
    DateFormat,
    EnumFormat,
    ExactComparison,
    Feature,
    IntegerFormat,
    KdfConfig,
    NgramComparison,
    NumericComparison,
    Schema,
    StringFormat,
)

__all__ = ["RecordRejected", "encode_record_reference", "encode_records_reference",
           "hkdf_reference"]

_DIGESTS = {"SHA256": hashlib.sha256, "SHA512": hashlib.sha512}


class RecordRejected(ValueError):
    """clkhash would refuse this record: a value breaks its feature's format."""


def hkdf_reference(secret: bytes, kdf: KdfConfig, length: int) -> bytes:
    """RFC 5869: extract with the salt (zeros of the hash's length when absent), then
    expand T(1) | T(2) | ... with the info and a one-byte counter."""
    digest = _DIGESTS[kdf.hash_name]
    size = digest().digest_size
    prk = hmac.new(kdf.salt if kdf.salt is not None else bytes(size), secret, digest).digest()
    output, block, counter = b"", b"", 1
    while len(output) < length:
        block = hmac.new(prk, block + (kdf.info or b"") + bytes([counter]), digest).digest()
        output += block
        counter += 1
    return output[:length]


def _normal_form(feature: Feature, raw: str) -> str:
    """clkhash's validation and ``format_value``: the string that gets tokenized."""
    missing = feature.missing_value
    if missing is not None and raw == missing.sentinel:
        return missing.replace_with
    try:
        raw.encode(feature.encoding)
    except UnicodeEncodeError as e:
        raise RecordRejected(f"{feature.identifier}: not encodable") from e
    fmt = feature.format
    if isinstance(fmt, StringFormat):
        if fmt.pattern is not None:
            if re.fullmatch(fmt.pattern, raw) is None:
                raise RecordRejected(f"{feature.identifier}: pattern")
            return raw
        too_short = fmt.min_length is not None and len(raw) < fmt.min_length
        too_long = fmt.max_length is not None and len(raw) > fmt.max_length
        wrong_case = (fmt.case == "upper" and raw != raw.upper()) or (
            fmt.case == "lower" and raw != raw.lower())
        if too_short or too_long or wrong_case:
            raise RecordRejected(f"{feature.identifier}: length or case")
        return raw
    if isinstance(fmt, IntegerFormat):
        try:
            number = int(raw, 10)
        except ValueError as e:
            raise RecordRejected(f"{feature.identifier}: not an integer") from e
        if (fmt.minimum is not None and number < fmt.minimum) or (
                fmt.maximum is not None and number > fmt.maximum):
            raise RecordRejected(f"{feature.identifier}: out of range")
        return str(number)
    if isinstance(fmt, DateFormat):
        try:
            return datetime.strptime(raw, fmt.strptime_format).strftime("%Y%m%d")
        except ValueError as e:
            raise RecordRejected(f"{feature.identifier}: not a date") from e
    assert isinstance(fmt, EnumFormat)
    if raw not in fmt.values:
        raise RecordRejected(f"{feature.identifier}: not an allowed value")
    return raw


def _tokens(comparison: Comparison, word: str) -> list[str]:
    if word == "":
        return []
    if isinstance(comparison, ExactComparison):
        return [word]
    if isinstance(comparison, NgramComparison):
        n = comparison.n
        padded = " " * (n - 1) + word + " " * (n - 1) if n > 1 else word
        grams = [padded[start:start + n] for start in range(len(padded) - n + 1)]
        if comparison.positional:
            return [f"{position} {gram}" for position, gram in enumerate(grams, start=1)]
        return grams
    assert isinstance(comparison, NumericComparison)
    scale = 10 ** comparison.fractional_precision
    try:
        value = int(word, 10) * (scale if comparison.fractional_precision > 0 else 1)
    except ValueError:
        try:
            as_float = float(word)
            value = (int(round(as_float * scale)) if comparison.fractional_precision > 0
                     else int(as_float))
        except (ValueError, OverflowError) as e:
            raise RecordRejected("not a number for a numeric comparison") from e
    interval = int(round(comparison.threshold_distance * scale))
    value *= 2 * comparison.resolution
    residue = value % interval
    if residue:
        value += -residue if residue < interval / 2 else interval - residue
    return [str(value + step * interval)
            for step in range(-comparison.resolution, comparison.resolution + 1)]


def _bit_counts(feature: Feature, tokens: int) -> list[int]:
    if isinstance(feature.strategy, BitsPerToken):
        return [feature.strategy.bits] * tokens
    assert isinstance(feature.strategy, BitsPerFeature)
    base, extra = divmod(feature.strategy.bits, tokens) if tokens else (0, 0)
    return [base + 1 if i < extra else base for i in range(tokens)]


def _double_hash(token: bytes, keys: tuple[bytes, bytes], count: int, length: int,
                 non_singular: bool) -> list[int]:
    first = int(hmac.new(keys[0], token, hashlib.sha1).hexdigest(), 16) % length
    step = int(hmac.new(keys[1], token, hashlib.md5).hexdigest(), 16) % length
    extra = 0
    while non_singular and step == 0:
        step = int(hmac.new(keys[1], token + chr(extra).encode(), hashlib.md5).hexdigest(),
                   16) % length
        extra += 1
    return [(first + i * step) % length for i in range(count)]


def _blake(token: bytes, key: bytes, count: int, length: int) -> list[int]:
    shorts: list[int] = []
    salt = 0
    while len(shorts) < count:
        digest = hashlib.blake2b(token, key=key, salt=str(salt).encode()).digest()
        shorts += struct.unpack("<32H", digest)
        salt += 1
    return [s % length for s in shorts[:count]]


def encode_record_reference(schema: Schema, secret: bytes, record: Mapping[str, str]
                            ) -> bytes:
    """The CLK of one record as clkhash serialises it (big-endian bits, the last byte padded
    with zero bits).

    Raises:
        RecordRejected: a value breaks its feature's format.
    """
    size = schema.kdf.key_size
    material = hkdf_reference(secret, schema.kdf, 2 * size * len(schema.features))
    length = schema.bloom_filter_bits * 2 ** schema.xor_folds
    filter_bits = [False] * length
    for index, feature in enumerate(schema.features):
        if not isinstance(feature, Feature):
            continue
        keys = (material[2 * index * size:(2 * index + 1) * size],
                material[(2 * index + 1) * size:(2 * index + 2) * size])
        tokens = _tokens(feature.comparison, _normal_form(feature, record[feature.identifier]))
        for token, count in zip(tokens, _bit_counts(feature, len(tokens)), strict=True):
            data = token.encode(feature.encoding)
            if feature.hash.kind == "doubleHash":
                positions = _double_hash(data, keys, count, length,
                                         feature.hash.prevent_singularity)
            else:
                positions = _blake(data, keys[0], count, length)
            for position in positions:
                filter_bits[position] = True
    for _ in range(schema.xor_folds):
        half = len(filter_bits) // 2
        filter_bits = [a != b for a, b in zip(filter_bits[:half], filter_bits[half:],
                                              strict=True)]
    filter_bits += [False] * (-len(filter_bits) % 8)
    return bytes(sum(bit << (7 - i) for i, bit in enumerate(filter_bits[start:start + 8]))
                 for start in range(0, len(filter_bits), 8))


def encode_records_reference(schema: Schema, secret: bytes,
                             records: Sequence[Mapping[str, str]]) -> list[bytes]:
    return [encode_record_reference(schema, secret, r) for r in records]
