"""Run inside the anonlink peer venv: anonlink's candidate generation on all cores, then its
greedy solve, as one process (the whole job `pprl link` does).

anonlink's kernel holds the GIL, so it scales with processes only: A is split into one slice
per worker process, each compared with all of B (as anonlink-entity-service splits work); the
slices' candidates are merged in anonlink's own order (score descending, then indices) and
solved with ``anonlink.solving.greedy_solve``.
Usage: python anonlink_bench.py A.npy B.npy THRESHOLD WORKERS
Prints one JSON line: seconds (candidate generation, all workers), candidates, the SHA-256 of
the candidate pairs (a row, b row, score: one line each, sorted), so that a benchmark can tell
the pairs themselves are the same, not only their number; solve_seconds, matches and the
SHA-256 of the matched pairs (a row, b row: one line each, sorted).
"""

import array
import hashlib
import json
import sys
import time
from multiprocessing import Pool

import anonlink
import numpy as np
from anonlink.similarities import dice_coefficient_accelerated
from bitarray import bitarray

_B = None


def _bits(rows):
    out = []
    for row in rows:
        value = bitarray()
        value.frombytes(row.tobytes())
        out.append(value)
    return out


def _init(b_path):
    global _B
    _B = _bits(np.load(b_path))


def _slice(args):
    a_path, start, stop, threshold = args
    a = _bits(np.load(a_path, mmap_mode="r")[start:stop])
    started = time.perf_counter()
    sims, _, (rows_a, rows_b) = anonlink.candidate_generation.find_candidate_pairs(
        [a, _B], dice_coefficient_accelerated, threshold)
    seconds = time.perf_counter() - started
    return seconds, [(float(s), int(i) + start, int(j))
                     for s, i, j in zip(sims, rows_a, rows_b, strict=True)]


def _solve(pairs):
    """anonlink's greedy solution of the merged candidates: (a row, b row) of each match."""
    pairs.sort(key=lambda p: (-p[0], p[1], p[2]))
    count = len(pairs)
    candidates = (array.array("d", [p[0] for p in pairs]),
                  (array.array("I", [0] * count), array.array("I", [1] * count)),
                  (array.array("I", [p[1] for p in pairs]),
                   array.array("I", [p[2] for p in pairs])))
    groups = anonlink.solving.greedy_solve(candidates)
    return [tuple(rec for _, rec in sorted(group)) for group in groups if len(group) == 2]


def main() -> None:
    a_path, b_path, threshold, workers = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(
        sys.argv[4])
    n = len(np.load(a_path, mmap_mode="r"))
    bounds = np.linspace(0, n, workers * 4 + 1).astype(int)
    jobs = [(a_path, int(s), int(e), threshold)
            for s, e in zip(bounds[:-1], bounds[1:], strict=True)]
    with Pool(workers, initializer=_init, initargs=(b_path,)) as pool:
        # Tiny jobs first, so that every worker has loaded B before the clock starts.
        pool.map(_slice, [(a_path, 0, 1, threshold)] * (4 * workers), chunksize=1)
        started = time.perf_counter()
        results = pool.map(_slice, jobs, chunksize=1)
        seconds = time.perf_counter() - started
    pairs = [pair for _, found in results for pair in found]
    lines = sorted(f"{i} {j} {s!r}" for s, i, j in pairs)
    digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()
    started = time.perf_counter()
    matches = _solve(pairs)
    solve_seconds = time.perf_counter() - started
    matched = sorted(f"{i} {j}" for i, j in matches)
    print(json.dumps({"seconds": seconds, "candidates": len(lines), "pairs_sha256": digest,
                      "solve_seconds": solve_seconds, "matches": len(matched),
                      "matches_sha256": hashlib.sha256("\n".join(matched).encode()).hexdigest()}))


if __name__ == "__main__":
    main()
