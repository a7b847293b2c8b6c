"""The two n-gram implementations (``ngram_numpy`` first, ``ngram_jit`` on long runs) give the
same filters for any values, and a run that switches between them midway the same CLKs.
(``test_encoding_properties`` checks the encoder against the one-record reference.)"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokenizer import ngram_kernel
from tokenizer.ngram_kernel import NgramKernelEncoder, load_jit
from tokenizer.schema_model import (
    BitsPerToken,
    Feature,
    HashConfig,
    NgramComparison,
    StringFormat,
)

VALUES = st.lists(st.text(st.characters(exclude_categories=("Cs",)), max_size=40) |
                  st.sampled_from(["", "a\x00b", "\x00\x00", "Zoë", "李小龍", "a" * 300]),
                  min_size=1, max_size=30)


def _filters(encoder: NgramKernelEncoder, values: list[str]) -> np.ndarray:
    filters = np.zeros((len(values), encoder.words), dtype=np.uint64)
    encoder.encode_rows(*encoder.column_buffers(pa.array(values, pa.string())), filters)
    return filters


def _encoder(n: int, positional: bool, kind: str) -> NgramKernelEncoder:
    feature = Feature("f", StringFormat(), NgramComparison(n, positional), BitsPerToken(7),
                      HashConfig(kind), None)  # type: ignore[arg-type]
    return NgramKernelEncoder(feature, (b"key one", b"key two"), 512)


@pytest.fixture(scope="module", autouse=True)
def _compiled_loaded() -> None:
    assert load_jit(wait=True) is not None


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(VALUES, st.integers(1, 3), st.booleans(), st.sampled_from(["doubleHash", "blakeHash"]))
def test_numpy_and_compiled_give_the_same_filters(values: list[str], n: int, positional: bool,
                                                  kind: str) -> None:
    numpy_side = _encoder(n, positional, kind)
    compiled = _encoder(n, positional, kind)
    compiled.rows_encoded = ngram_kernel._JIT_AFTER_ROWS  # as after a long run
    expected = _filters(compiled, values)
    assert compiled._compiled is not None
    got = _filters(numpy_side, values)
    if numpy_side._numpy is not None:  # positional trigrams are compiled only
        assert numpy_side._compiled is None
    assert np.array_equal(got, expected)
    assert np.array_equal(_filters(numpy_side, values[::-1]), expected[::-1])  # tokens known


def test_a_run_switches_midway_without_changing_the_output(monkeypatch) -> None:
    values = [f"value {i % 97} {chr(0x41 + i % 26)}" for i in range(500)]
    whole = _filters(_encoder(2, False, "doubleHash"), values)
    monkeypatch.setattr(ngram_kernel, "_JIT_AFTER_ROWS", 200)
    encoder = _encoder(2, False, "doubleHash")
    parts = [_filters(encoder, values[i:i + 100]) for i in range(0, 500, 100)]
    assert encoder._compiled is not None
    assert np.array_equal(np.concatenate(parts), whole)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(VALUES, st.integers(1, 3), st.integers(1, 200))
def test_long_values_go_in_batches_with_the_same_filters(values: list[str], n: int,
                                                        cells: int) -> None:
    """A chunk whose longest value would make the code-point matrix large is split into
    batches by length (here forced by a tiny cell budget)."""
    from tokenizer import ngram_numpy

    expected = _filters(_encoder(n, False, "doubleHash"), values)
    budget = ngram_numpy._BATCH_CELLS
    ngram_numpy._BATCH_CELLS = cells
    try:
        got = _filters(_encoder(n, False, "doubleHash"), values)
    finally:
        ngram_numpy._BATCH_CELLS = budget
    assert np.array_equal(got, expected)
