"""The lanes kernel (``linker.dice_lanes``) on boundary cases, against brute force: pairs whose
count sits exactly on the threshold, pairs whose count equals the per-word bound on the rest
(the half-way test must keep them), CLK widths of one to a few words, row counts that are not
multiples of eight, and windows that start and stop inside a lane group; on this CPU, and
compiled for the vector features of older ones (AVX2, AVX-512 without VPOPCNTDQ), where
LLVM counts bits in vectors another way."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from llvmlite import binding as llvm

from benchmarks.bench_matching import COMPILED_FOR
from linker.dice_kernel import min_counts
from linker.dice_lanes import EARLY_TESTS, LaneSide, lane_tile_pairs, least_counts

_HOST = llvm.get_host_cpu_features()
_AVX512 = "+avx,+avx2,+popcnt,+sse4.2,+ssse3,+avx512f,+avx512dq,+avx512vl"


def _popcounts(words: np.ndarray) -> np.ndarray:
    return np.bitwise_count(words).sum(axis=1, dtype=np.int64)


def _kernel_pairs(a: np.ndarray, b: np.ndarray, threshold: float,
                  starts: np.ndarray | None = None, stops: np.ndarray | None = None,
                  early: int = EARLY_TESTS[-1]) -> set[tuple[int, int, int]]:
    """(A row, B row, count) of every pair the kernel finds; B rows in their given order;
    ``early``: the words counted before the first test (1024-bit CLKs only)."""
    a_pops, b_pops = _popcounts(a), _popcounts(b)
    order = np.argsort(b_pops, kind="stable")
    side = LaneSide.of(np.ascontiguousarray(b[order]), b_pops[order])
    needed = min_counts(threshold, a.shape[1] * 64)
    starts = np.zeros(len(a), dtype=np.int64) if starts is None else starts
    stops = np.full(len(a), len(b), dtype=np.int64) if stops is None else stops
    size = len(a) * len(b) + 1
    out_a, out_b, out_c = (np.empty(size, dtype=np.int64) for _ in range(3))
    found, _, _ = lane_tile_pairs(np.ascontiguousarray(a), a_pops,
                                  np.arange(len(a), dtype=np.int64), side.lanes, side.pops,
                                  side.low_pops, order.astype(np.int64), starts, stops, needed,
                                  least_counts(needed), out_a, out_b, out_c, early)
    return set(zip(out_a[:found].tolist(), out_b[:found].tolist(), out_c[:found].tolist(),
                   strict=True))


def _brute_pairs(a: np.ndarray, b: np.ndarray, threshold: float,
                 allowed: np.ndarray | None = None) -> set[tuple[int, int, int]]:
    """anonlink's test, 2c / (a + b) >= t in float64, pair by pair."""
    found = set()
    a_pops, b_pops = _popcounts(a), _popcounts(b)
    for i in range(len(a)):
        for j in range(len(b)):
            if allowed is not None and not allowed[i, j]:
                continue
            count = int(np.bitwise_count(a[i] & b[j]).sum())
            total = int(a_pops[i] + b_pops[j])
            score = 2.0 * count / total if total else 0.0
            if score >= threshold:
                found.add((i, j, count))
    return found


@pytest.mark.parametrize(("words", "early"), [(1, 8), (2, 8), (3, 8), (5, 8), (16, 6),
                                              (16, 7), (16, 8), (17, 6)])
@pytest.mark.parametrize("threshold", [0.5, 0.8, 0.95, 1.0])
def test_random_clks_all_pairs(words: int, early: int, threshold: float) -> None:
    """1024-bit CLKs (16 words) tested first after each of ``EARLY_TESTS``; other widths at
    the half, whatever ``early`` says."""
    rng = np.random.default_rng(words)
    base = rng.integers(0, 2**64, (37, words), dtype=np.uint64)
    noise = rng.integers(0, 2**64, (37, words), dtype=np.uint64) & rng.integers(
        0, 2**64, (37, words), dtype=np.uint64) & rng.integers(0, 2**64, (37, words),
                                                                dtype=np.uint64)
    a = base
    b = np.concatenate([base ^ noise, base[:5], rng.integers(0, 2**64, (11, words),
                                                             dtype=np.uint64)])
    assert _kernel_pairs(a, b, threshold, early=early) == _brute_pairs(a, b, threshold)


@pytest.mark.parametrize(("words", "early"), [(16, 6), (16, 7), (16, 8), (10, 5)])
def test_pairs_on_the_per_word_bound_are_kept(words: int, early: int) -> None:
    """B's words after the first test are subsets of A's: the count equals the per-word
    bound (at the first test and at the half), and the thresholds are chosen so that the
    pair passes with nothing to spare."""
    rng = np.random.default_rng(5)
    a = rng.integers(0, 2**64, (9, words), dtype=np.uint64)
    b = a & rng.integers(0, 2**64, (9, words), dtype=np.uint64)
    first = early if words == 16 else words // 2
    b[:, :first] = a[:, :first]  # the words before the first test identical
    for i in range(len(a)):
        count = int(np.bitwise_count(a[i] & b[i]).sum())
        threshold = 2.0 * count / int(_popcounts(a[i:i + 1])[0] + _popcounts(b[i:i + 1])[0])
        got = _kernel_pairs(a[i:i + 1], b[i:i + 1], threshold, early=early)
        assert got == {(0, 0, count)}
        assert _kernel_pairs(a[i:i + 1], b[i:i + 1], np.nextafter(threshold, 2.0),
                             early=early) == set()


def test_windows_inside_lane_groups() -> None:
    rng = np.random.default_rng(9)
    a = rng.integers(0, 2**64, (13, 4), dtype=np.uint64)
    b = np.concatenate([a, a[::-1] & rng.integers(0, 2**64, (13, 4), dtype=np.uint64)])
    starts = rng.integers(0, 12, len(a)).astype(np.int64)
    stops = starts + rng.integers(0, 15, len(a))
    # Windows are over B sorted by popcount: translate them for the brute force.
    order = np.argsort(_popcounts(b), kind="stable")
    allowed = np.zeros((len(a), len(b)), dtype=bool)
    for i in range(len(a)):
        allowed[i, order[starts[i]:stops[i]]] = True
    assert (_kernel_pairs(a, b, 0.6, starts, stops) == _brute_pairs(a, b, 0.6, allowed))


@pytest.mark.parametrize(("cpu", "features", "needs"), [
    ("icelake-server", f"{_AVX512},+avx512vpopcntdq,-avx512bw", "avx512vpopcntdq"),
    ("icelake-server", f"{_AVX512},+avx512bw,+avx512vpopcntdq", "avx512vpopcntdq"),
    (*COMPILED_FOR["avx512-no-vpopcntdq"].values(), "avx512bw"),
    (*COMPILED_FOR["avx2"].values(), "avx2"),
], ids=["vpopcntdq", "vpopcntdq-bw", "avx512bw", "avx2"])
def test_exact_when_compiled_for_other_vector_features(cpu: str, features: str,
                                                       needs: str) -> None:
    """The vector count is one VPOPCNTQ with VPOPCNTDQ, a table lookup per half byte
    (VPSHUFB) with AVX-512 BW or AVX2; the per-word bound's byte sums one VPSADBW with
    AVX-512 BW, shifts and masks elsewhere: all exact on 1024-bit CLKs (the unrolled path,
    first tests early and at the half) and others. Runs where this CPU can execute that
    code."""
    if not _HOST.get(needs, False):
        pytest.skip(f"this CPU has no {needs}")
    script = (
        "import numpy as np\n"
        "from tests.test_linker_lanes import _brute_pairs, _kernel_pairs\n"
        "rng = np.random.default_rng(3)\n"
        "for words, early in ((16, 6), (16, 7), (16, 8), (5, 8)):\n"
        "    a = rng.integers(0, 2**64, (21, words), dtype=np.uint64)\n"
        "    b = np.concatenate([a & rng.integers(0, 2**64, (21, words), dtype=np.uint64) | "
        "a[::-1], a[:4]])\n"
        "    for t in (0.5, 0.7, 0.9):\n"
        "        assert _kernel_pairs(a, b, t, early=early) == _brute_pairs(a, b, t), "
        "(words, t)\n"
        "print('exact')\n")
    env = {**os.environ, "NUMBA_CPU_NAME": cpu, "NUMBA_CPU_FEATURES": features}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=300, cwd=Path(__file__).parent.parent)
    assert done.stdout.strip() == "exact", done.stderr[-2000:]
