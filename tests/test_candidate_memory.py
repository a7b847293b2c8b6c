"""A link that would hold more candidates than the machine's memory is refused before it
searches, saying how many and what to do (it was killed by the system minutes later, nothing
written: clkhash's random names at the default 0.65 held 55 million candidates, 8 GB); one
that would take gigabytes is warned about. Projected from a sample, checked here against the
real counts on FEBRL 4."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from api.cli import cli
from linker.backends import candidate_pairs, get_backend
from linker.candidate_memory import (
    BYTES_PER_CANDIDATE,
    memory_problem,
    projected_candidates,
    run_memory_problem,
)
from linker.clkset import ClkSet
from linker.link import candidate_floors

from .linker_data import febrl4_files, febrl4_sets


def test_the_projection_is_near_the_candidates_link_sets_holds() -> None:
    a, b = febrl4_sets()
    backend = get_backend("cpu")
    for threshold in (0.5, 0.65):
        actual = len(candidate_pairs(a, b, threshold))
        projected = projected_candidates([a, b], threshold, [False, False], "cluster", None,
                                         backend)
        assert abs(projected - actual) <= 0.15 * actual, (threshold, projected, actual)
    # Deduplicated, the cluster solver's candidates start 0.04 under each kind's threshold.
    assert candidate_floors([a, b], 0.7, [True, False], "cluster", [0.8, None]) == [
        (0, 0, pytest.approx(0.76)), (0, 1, pytest.approx(0.66))]
    assert candidate_floors([a, b], 0.7, [False, False], "cluster") == [(0, 1, 0.7)]
    within = len(candidate_pairs(a, None, 0.61)) + len(candidate_pairs(a, b, 0.61))
    projected = projected_candidates([a, b], 0.65, [True, False], "cluster", None, backend)
    assert abs(projected - within) <= 0.15 * within
    empty = ClkSet.from_arrays(np.zeros((0, 128), dtype=np.uint8), party="empty")
    assert projected_candidates([a, empty], 0.65, [True, True], "cluster", None, backend) == \
        len(candidate_pairs(a, None, 0.61))


def test_memory_problem_warns_from_gigabytes_and_refuses_beyond_the_machine() -> None:
    fits = (2 << 30) // BYTES_PER_CANDIDATE - 1
    assert memory_problem(fits, 64 << 30) is None
    message, refused = memory_problem(50_000_000, 64 << 30)  # type: ignore[misc]
    assert not refused
    assert "about 50,000,000 candidate pairs" in message and "7.0 GiB of this machine's 64" \
        in message and "LSH blocking" in message
    assert memory_problem(50_000_000, 4 << 30)[1]  # type: ignore[index]
    assert not memory_problem(50_000_000, None)[1]  # type: ignore[index]
    a, b = febrl4_sets()
    assert run_memory_problem(get_backend("cpu"), [a, b], 0.65, [False, False], blocked=True,
                              tokens=(), solver="cluster", dedup_thresholds=None) is None


def test_pprl_link_refuses_what_would_not_fit_and_writes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a machine as small as the run's candidates (its memory set low here), `pprl link`
    stops before searching; with memory to spare it warns and links."""
    fa, fb, _ = febrl4_files(tmp_path)
    monkeypatch.setattr("linker.candidate_memory._WARN_BYTES", 1)
    monkeypatch.setattr("linker.candidate_memory.physical_memory", lambda: 100_000)
    out = tmp_path / "out"
    refused = CliRunner().invoke(cli, ["link", str(fa), str(fb), "--threshold", "0.6",
                                       "-o", str(out)])
    assert refused.exit_code == 1, refused.output
    assert "candidate pairs (projected from a sample of records) would be held" in \
        refused.output and "nothing was written" in refused.output
    assert not out.exists()
    monkeypatch.setattr("linker.candidate_memory.physical_memory", lambda: 64 << 30)
    warned = CliRunner().invoke(cli, ["link", str(fa), str(fb), "--threshold", "0.6",
                                      "-o", str(out)])
    assert warned.exit_code == 0, warned.output
    assert "warning: about" in warned.output and (out / "matches.parquet").is_file()
