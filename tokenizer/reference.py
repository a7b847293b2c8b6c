"""A slow, obviously correct CLK encoder: one record at a time, no caches, no tricks.

It mirrors clkhash's algorithm step by step and is the oracle the fast encoder is tested
against (the golden vectors pin both to clkhash itself).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .hashing import TokenHasher
from .keys import derive_feature_keys
from .schema_model import Feature, Schema
from .tokens import bits_per_token, tokenize
from .values import ValuePreparer

__all__ = ["encode_record_reference", "fold_xor_bits"]


def fold_xor_bits(bits: np.ndarray, folds: int) -> np.ndarray:
    """XOR the first half of a bool vector onto the second, ``folds`` times."""
    for _ in range(folds):
        half = bits.shape[-1] // 2
        bits = bits[..., :half] ^ bits[..., half:]
    return bits


def encode_record_reference(
    schema: Schema, secret: bytes, record: Mapping[str, str]
) -> bytes:
    """The CLK of one record as clkhash serialises it (big-endian bit order).

    Raises:
        ValueRejected: a value breaks its feature's format.
    """
    keys = derive_feature_keys(secret, schema)
    bits = np.zeros(schema.hash_bits, dtype=bool)
    for feature, feature_keys in zip(schema.features, keys, strict=True):
        if not isinstance(feature, Feature):
            continue
        value = ValuePreparer(feature).prepare(record[feature.identifier])
        tokens = tokenize(feature.comparison, value)
        hasher = TokenHasher(feature.hash, feature_keys, schema.hash_bits)
        for token, k in zip(tokens, bits_per_token(feature.strategy, len(tokens)), strict=True):
            bits[hasher.positions(token.encode(feature.encoding), k)] = True
    return np.packbits(fold_xor_bits(bits, schema.xor_folds)).tobytes()


def encode_records_reference(
    schema: Schema, secret: bytes, records: Sequence[Mapping[str, str]]
) -> list[bytes]:
    return [encode_record_reference(schema, secret, r) for r in records]
