"""Run inside the anonlink peer venv: time anonlink's candidate generation on all cores.

anonlink's kernel holds the GIL, so it scales with processes only: A is split into one slice
per worker process, each compared with all of B (as anonlink-entity-service splits work).
Usage: python anonlink_bench.py A.npy B.npy THRESHOLD WORKERS
Prints one JSON line: seconds (candidate generation, all workers), candidates, and the
SHA-256 of the candidate pairs (a row, b row, score: one line each, sorted), so that a
benchmark can tell the pairs themselves are the same, not only their number.
"""

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
    return seconds, [f"{int(i) + start} {int(j)} {float(s)!r}"
                     for s, i, j in zip(sims, rows_a, rows_b, strict=True)]


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
    lines = sorted(line for _, pairs in results for line in pairs)
    digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()
    print(json.dumps({"seconds": seconds, "candidates": len(lines), "pairs_sha256": digest}))


if __name__ == "__main__":
    main()
