"""``benchmarks.bench_gpu`` end to end on the CPU backend (CI has no GPU): the steps a GPU run
takes, so the script is known to work before device time is spent on it."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.bench_gpu import main


def test_every_step_runs_and_a_big_run_stops_at_its_deadline(tmp_path: Path) -> None:
    out = tmp_path / "gpu.json"
    assert main(["--backend", "cpu", "--records", "3000", "--check-records", "2000",
                 "--dedup-records", "2000", "--cli-records", "2000", "--big", "20000",
                 "--deadline", "0", "--json", str(out)]) == 0
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["check"]["identical_candidates"] and result["check"]["candidates"] == 2000
    dedup, linked, big = result["sizes"]
    # every record of B is a noisy copy of one of A: each is found, and linked 1:1
    assert (dedup["records_a"], dedup["candidates"]) == (2000, 1000)
    assert linked["finished"] and linked["candidates"] == 3000
    assert result["whole_process"]["links"] == 2000
    assert result["whole_process"]["backend"] == "cpu"
    assert not big["finished"] and big["projected_seconds"] > big["seconds"]
