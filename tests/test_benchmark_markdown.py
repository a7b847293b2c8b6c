"""``benchmarks.suite --only``: re-run parts replace their own sections of BENCHMARKS.md and
keep every other section, hand-written ones included."""

from __future__ import annotations

from benchmarks.suite import _replace_sections

PAGE = """# Benchmarks

Run earlier.

## encoding

| tool | records |
| --- | --- |
| old | 1 |

## token linkage

Written by hand: keep me.

## plots

![peers_speed](benchmarks/results/peers_speed.png)
"""


def test_only_the_rerun_sections_change() -> None:
    part = {"results": [{"data": "random names", "tool": "pprl", "records": 2}],
            "process_speedup": {"febrl-like": 30.1, "random names": 29.9},
            "rerun": "Run now."}
    text = _replace_sections(PAGE, {"encoding": part, "matching": part})
    assert "| old | 1 |" not in text
    assert "| random names | pprl | 2 |" in text
    assert "process_speedup: febrl-like 30.1x, random names 29.9x" in text
    assert "Written by hand: keep me." in text
    assert text.index("## encoding") < text.index("## token linkage")
    # A part the page did not have yet goes before the plots.
    assert text.index("## token linkage") < text.index("## matching") < text.index("## plots")
    assert text.count("## encoding") == 1
    assert _replace_sections(text, {"encoding": part}) == text
