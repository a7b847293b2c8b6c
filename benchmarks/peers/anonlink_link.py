"""Run inside the anonlink peer venv: anonlink's candidates and greedy solution.

Usage: python anonlink_link.py JOB.json OUT.json
JOB.json: {"datasets": [[base64 CLK, ...], ...], "threshold": t}
OUT.json: {"scores": [...], "dset": [[...], [...]], "rec": [[...], [...]],
           "groups": [[[d, r], ...]], "seconds": candidate generation time}
"""

import base64
import json
import sys
import time

import anonlink
from anonlink.similarities import dice_coefficient_accelerated
from bitarray import bitarray


def _bits(text):
    value = bitarray()
    value.frombytes(base64.b64decode(text))
    return value


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as handle:
        job = json.load(handle)
    datasets = [[_bits(c) for c in dataset] for dataset in job["datasets"]]
    started = time.perf_counter()
    candidates = anonlink.candidate_generation.find_candidate_pairs(
        datasets, dice_coefficient_accelerated, job["threshold"])
    seconds = time.perf_counter() - started
    groups = anonlink.solving.greedy_solve(candidates)
    scores, dset, rec = candidates
    with open(sys.argv[2], "w", encoding="utf-8") as handle:
        json.dump({"scores": list(scores), "dset": [list(d) for d in dset],
                   "rec": [list(r) for r in rec],
                   "groups": sorted(sorted([list(m) for m in g]) for g in groups),
                   "seconds": seconds}, handle)


if __name__ == "__main__":
    main()
