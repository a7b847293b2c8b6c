"""The benchmark suite's tiny run (what CI can afford): every part runs, peers included, and
writes its table, JSON, plots and Markdown."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.oracle


def test_tiny_suite_runs_every_part(tmp_path) -> None:
    out = tmp_path / "results"
    markdown = tmp_path / "BENCHMARKS.md"
    # sections written by standalone benchmarks survive; the suite's own are replaced
    markdown.write_text("# Benchmarks\n\n## encoding\n\nstale table\n\n"
                        "## token linkage\n\n| kept | table |\n\n## plots\n\nstale_plot.png\n")
    done = subprocess.run([sys.executable, "-m", "benchmarks.suite", "--max-size", "2000",
                           "--out", str(out), "--markdown", str(markdown)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    encoding = json.loads((out / "encoding.json").read_text())
    assert encoding["identical_clks"] == {"febrl-like": True, "random names": True}
    matching = json.loads((out / "matching.json").read_text())
    # the candidate count and the matched pairs themselves, on both data sets
    assert matching["identical_candidates_and_matches"] == {"febrl-like": True,
                                                            "random names": True}
    e2e = json.loads((out / "end_to_end.json").read_text())
    assert e2e["results"][0]["precision"] > 0.9
    quality = {(r["case"], r["tool"]): r
               for r in json.loads((out / "quality.json").read_text())["results"]}
    assert quality[("FEBRL4, 2 parties", "pprl (CLKs)")]["precision"] >= 0.999
    assert ("synthetic imaging-claims", "Splink 4 (cleartext)") in quality
    dedup = json.loads((out / "deduplication.json").read_text())
    tools = {(r["data"], r["tool"]) for r in dedup["results"]}
    assert {("FEBRL 1", "pprl cluster"), ("FEBRL 1", "pprl greedy"),
            ("FEBRL 1", "Splink 4 (cleartext)")} <= tools
    assert next(s for s in dedup["summary"] if s["data"] == "FEBRL 1")["cluster_default"] > 0.98
    cohorts = json.loads((out / "cohorts.json").read_text())
    broadest = cohorts["results"][-1]
    assert broadest["truth"] > 1000 and 0.95 < broadest["ratio"] < 1.05
    assert broadest["precision"] > 0.99 and broadest["recall"] > 0.95
    assert cohorts["export"]["entities"] == broadest["linkage"]
    assert cohorts["export"]["peak_rss_mib"] > 0
    deid = json.loads((out / "deid.json").read_text())
    assert [r["files"] for r in deid["results"]] == [200, 200]
    assert deid["ours_verified"]["leaks"] == 0 and deid["ours_verified"]["checks"] >= 200
    for plot in ("throughput.png", "precision_recall.png"):
        assert (out / plot).read_bytes()[:4] == b"\x89PNG"
    text = markdown.read_text()
    assert "## encoding" in text and "## quality" in text and "Splink" in text
    assert "random names" in text and "process_speedup: febrl-like" in text
    assert "## deid" in text and "dicognito" in text
    assert "## cohorts" in text and "peak RSS" in text
    assert "stale table" not in text and text.count("## encoding") == 1
    assert "## token linkage\n\n| kept | table |" in text
    assert text.count("## plots") == 1 and "stale_plot.png" not in text
    assert "## deduplication" in text and "gap" in text
