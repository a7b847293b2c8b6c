"""Same candidates, scores and greedy matches as anonlink 0.15.3 (run from .peers/anonlink)."""

from __future__ import annotations

import base64
import json
import subprocess

import numpy as np
import pytest

from benchmarks.peers import SCRIPTS_DIR, peer_python
from linker.backends import candidate_pairs
from linker.backends.cpu import CpuBackend
from linker.clkset import ClkSet
from linker.link import link_sets

from .linker_data import febrl4_sets, random_clks

pytestmark = pytest.mark.oracle


def _anonlink(tmp_path, datasets: list[np.ndarray], threshold: float) -> dict:
    job = {"datasets": [[base64.b64encode(r.tobytes()).decode() for r in d] for d in datasets],
           "threshold": threshold}
    (tmp_path / "job.json").write_text(json.dumps(job))
    python = peer_python("anonlink")
    subprocess.run([str(python), str(SCRIPTS_DIR / "anonlink_link.py"),
                    str(tmp_path / "job.json"), str(tmp_path / "out.json")],
                   check=True, timeout=600)
    return json.loads((tmp_path / "out.json").read_text())


def _assert_same_candidates(ours, theirs) -> None:
    assert ours.score.tolist() == theirs["scores"]
    assert ours.left.tolist() == theirs["rec"][0]
    assert ours.right.tolist() == theirs["rec"][1]


@pytest.mark.parametrize("bits", [64, 512, 1024, 2048])
@pytest.mark.parametrize("threshold", [0.0, 0.5, 2 / 3, 0.8, 0.95, 1.0])
def test_random_clks_same_candidates(tmp_path, bits: int, threshold: float) -> None:
    rng = np.random.default_rng(bits)
    a = random_clks(rng, 150, bits, (0.05, 0.8), zero_rows=3)
    noise = np.packbits(rng.random((150, bits)) < 0.03, axis=1)
    b = np.vstack([a ^ noise, random_clks(rng, 100, bits, (0.05, 0.8), zero_rows=2)])
    theirs = _anonlink(tmp_path, [a, b], threshold)
    for backend in (CpuBackend(1, tile_rows=7, kernel="scalar"),
                    CpuBackend(2, tile_rows=64, kernel="scalar"),
                    CpuBackend(1, tile_rows=7, kernel="lanes"),
                    CpuBackend(2, tile_rows=64, kernel="lanes")):
        ours = candidate_pairs(ClkSet.from_arrays(a), ClkSet.from_arrays(b), threshold,
                               backend=backend)
        _assert_same_candidates(ours, theirs)


@pytest.mark.parametrize("threshold", [0.6, 0.65, 0.8])
def test_febrl4_same_candidates_and_matches(tmp_path, threshold: float) -> None:
    a, b = febrl4_sets()
    raw = [a.words.view(np.uint8), b.words.view(np.uint8)]
    theirs = _anonlink(tmp_path, raw, threshold)
    for kernel in ("scalar", "lanes"):
        _assert_same_candidates(
            candidate_pairs(a, b, threshold, backend=CpuBackend(2, kernel=kernel)), theirs)
    for solver in ("greedy", "cluster"):  # two parties: both are anonlink's greedy 1:1
        result = link_sets([a, b], threshold, solver=solver)
        ours = sorted(sorted([[0, int(i)], [1, int(j)]])
                      for i, j in zip(result.record_a, result.record_b, strict=True))
        assert ours == theirs["groups"], solver


def test_three_parties_same_groups_as_anonlink(tmp_path) -> None:
    rng = np.random.default_rng(7)
    base = random_clks(rng, 120, 512, (0.2, 0.5))
    sets = [base ^ np.packbits(rng.random(base.shape[0:1] + (512,)) < p, axis=1)
            for p in (0.0, 0.04, 0.08)]
    sets[2] = sets[2][rng.permutation(len(sets[2]))]
    theirs = _anonlink(tmp_path, sets, 0.7)
    result = link_sets([ClkSet.from_arrays(s, party=f"p{k}") for k, s in enumerate(sets)], 0.7,
                       solver="greedy")
    groups: dict[int, list[list[int]]] = {}
    for party, entities in enumerate(result.entity_of):
        for record, entity in enumerate(entities.tolist()):
            groups.setdefault(entity, []).append([party, record])
    ours = sorted(sorted(g) for g in groups.values() if len(g) > 1)
    assert ours == theirs["groups"]


@pytest.mark.parametrize("parties", [2, 3])
def test_tied_scores_and_duplicate_clks_solve_as_anonlinks_greedy_solve(tmp_path,
                                                                        parties: int) -> None:
    """Many exact copies within and across parties: every tie is broken as anonlink
    breaks it."""
    rng = np.random.default_rng(parties)
    people = random_clks(rng, 12, 256, (0.3, 0.5))
    sets = [people[rng.integers(0, len(people), 30)] for _ in range(parties)]
    theirs = _anonlink(tmp_path, sets, 0.9)
    solvers = ("greedy", "cluster") if parties == 2 else ("greedy",)
    for solver in solvers:
        result = link_sets([ClkSet.from_arrays(s, party=f"p{k}") for k, s in enumerate(sets)],
                           0.9, solver=solver)
        groups: dict[int, list[list[int]]] = {}
        for party, entities in enumerate(result.entity_of):
            for record, entity in enumerate(entities.tolist()):
                groups.setdefault(entity, []).append([party, record])
        assert sorted(sorted(g) for g in groups.values() if len(g) > 1) == theirs["groups"]
