"""Vectorised CLK encoding of record chunks, byte-identical with clkhash 0.18.3.

A chunk's CLKs are the OR of each feature's bits, XOR-folded and cut to l bits. n-gram
features with bits per token go through `ngram_kernel` (numpy, then compiled loops on long
runs); every other feature through the cached-value path (`feature_encoder`). Per-record
Python work is nil: Python runs once per distinct token, and on the cached path once per
distinct value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from .feature_encoder import FeatureEncoder, words_for_bits
from .keys import derive_feature_keys
from .ngram_kernel import NgramKernelEncoder, kernel_can_encode
from .schema_model import Feature, Schema

__all__ = ["ClkEncoder", "EncodedChunk", "RowReject"]


@dataclass(frozen=True)
class RowReject:
    """A record that could not be encoded: its index in the chunk, each failing field and why
    (in schema order)."""

    index: int
    fields: tuple[str, ...]
    reasons: tuple[str, ...]

    def describe(self) -> str:
        return "; ".join(f"{f} {r}" for f, r in zip(self.fields, self.reasons, strict=True))


@dataclass(frozen=True)
class EncodedChunk:
    """CLKs of the valid records of a chunk.

    Attributes:
        clks: uint8 array (valid records, clk_bytes), clkhash's serialised bytes.
        popcounts: uint16 number of set bits of each CLK.
        valid: bool mask over the chunk's records; False rows are in ``rejects``.
        rejects: one entry per rejected record.
    """

    clks: np.ndarray
    popcounts: np.ndarray
    valid: np.ndarray
    rejects: list[RowReject]


def fold_xor_bytes(filters: np.ndarray, hash_bits: int, folds: int) -> np.ndarray:
    """XOR-fold packed filters (big-endian bits) ``folds`` times; returns packed bytes."""
    length = hash_bits
    for _ in range(folds):
        half = length // 2
        if half % 8 == 0:
            filters = filters[:, :half // 8] ^ filters[:, half // 8:length // 8]
        else:
            bits = np.unpackbits(filters, axis=1, count=length)
            filters = np.packbits(bits[:, :half] ^ bits[:, half:length], axis=1)
        length = half
    return filters


class ClkEncoder:
    """Encodes chunks of records with one schema and secret; keeps per-feature caches."""

    def __init__(self, schema: Schema, secret: bytes, *, max_rows_per_feature: int = 1 << 18,
                 compiled: bool = True):
        """``compiled=False`` keeps every feature on the cached-value path (for testing that
        both paths agree)."""
        self.schema = schema
        keys = derive_feature_keys(secret, schema)
        self.features: list[tuple[Feature, FeatureEncoder | NgramKernelEncoder]] = []
        for feature, feature_keys in zip(schema.features, keys, strict=True):
            if not isinstance(feature, Feature):
                continue
            if compiled and kernel_can_encode(feature):
                self.features.append(
                    (feature, NgramKernelEncoder(feature, feature_keys, schema.hash_bits)))
            else:
                self.features.append((feature, FeatureEncoder(
                    feature, feature_keys, schema.hash_bits, max_rows=max_rows_per_feature)))

    @property
    def required_columns(self) -> list[str]:
        return self.columns_of(self.schema)

    @staticmethod
    def columns_of(schema: Schema) -> list[str]:
        """The input columns a schema hashes (ignored features need no column)."""
        return list(dict.fromkeys(f.identifier for f in schema.hashed_features))

    def encode(self, columns: Mapping[str, pa.Array | pa.ChunkedArray]) -> EncodedChunk:
        """Encode one chunk given as string columns keyed by feature identifier."""
        count = len(next(iter(columns.values()))) if columns else 0
        words = words_for_bits(self.schema.hash_bits)
        filters = np.zeros((count, words), dtype=np.uint64)
        failures: list[tuple[str, np.ndarray, np.ndarray, list[str]]] = []
        for feature, encoder in self.features:
            if isinstance(encoder, NgramKernelEncoder):
                prepared = encoder.encode_column(columns[feature.identifier], filters)
                if prepared is None:
                    continue
                reject_codes, reasons = prepared.reject_codes, prepared.reasons
            else:
                column = encoder.encode(columns[feature.identifier])
                np.bitwise_or(filters, encoder.table[column.rows], out=filters)
                reject_codes, reasons = column.reject_codes, column.reasons
            bad = np.flatnonzero(reject_codes >= 0)
            if len(bad):
                failures.append((feature.identifier, bad, reject_codes[bad], reasons))
        valid = np.ones(count, dtype=bool)
        for _, bad, _, _ in failures:
            valid[bad] = False
        packed = fold_xor_bytes(filters[valid].view(np.uint8), self.schema.hash_bits,
                                self.schema.xor_folds)
        clks = np.ascontiguousarray(packed[:, :self.schema.clk_bytes])
        _mask_tail_bits(clks, self.schema.bloom_filter_bits)
        popcounts = np.bitwise_count(clks).sum(axis=1, dtype=np.uint16)
        return EncodedChunk(clks, popcounts, valid, _collect_rejects(failures))


def _collect_rejects(
    failures: list[tuple[str, np.ndarray, np.ndarray, list[str]]],
) -> list[RowReject]:
    """Group per-field failures by record, fields in schema order."""
    by_row: dict[int, list[tuple[str, str]]] = {}
    for field, bad, codes, reasons in failures:
        for index, code in zip(bad.tolist(), codes.tolist(), strict=True):
            by_row.setdefault(index, []).append((field, reasons[code]))
    return [
        RowReject(index, tuple(f for f, _ in items), tuple(r for _, r in items))
        for index, items in sorted(by_row.items())
    ]


def _mask_tail_bits(clks: np.ndarray, length: int) -> None:
    """Zero the padding bits after bit l in the last byte (l not a multiple of 8)."""
    spare = (-length) % 8
    if spare and clks.size:
        clks[:, -1] &= np.uint8((0xFF << spare) & 0xFF)
