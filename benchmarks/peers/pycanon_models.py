"""Run inside the pycanon peer venv: pycanon 1.3.6's privacy-model figures for each job.

Usage: python pycanon_models.py JOBS.json OUT.json
JOBS.json: [{"columns": {name: [value, ...]}, "quasi_identifiers": [...], "sensitive": [...]}]
(columns become a pandas DataFrame as they are: ints int64, floats float64, text object).
OUT.json: one object per job, keyed like ``deid.risk.privacy_models``; NaN becomes null.
"""

import json
import math
import sys

import pandas as pd
from pycanon import anonymity


def _plain(value):
    value = value.item() if hasattr(value, "item") else value
    return None if isinstance(value, float) and math.isnan(value) else value


def figures(job):
    data = pd.DataFrame(job["columns"])
    qi, sa = job["quasi_identifiers"], job["sensitive"]
    c_div, _ = anonymity.recursive_c_l_diversity(data, qi, sa)
    found = {
        "k_anonymity": anonymity.k_anonymity(data, qi),
        "l_diversity": anonymity.l_diversity(data, qi, sa),
        "entropy_l_diversity": anonymity.entropy_l_diversity(data, qi, sa),
        "recursive_cl_diversity": c_div,
        "t_closeness": anonymity.t_closeness(data, qi, sa),
        "beta_likeness": anonymity.basic_beta_likeness(data, qi, sa),
        "enhanced_beta_likeness": anonymity.enhanced_beta_likeness(data, qi, sa),
        "delta_disclosure": anonymity.delta_disclosure(data, qi, sa),
    }
    return {key: _plain(value) for key, value in found.items()}


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as handle:
        jobs = json.load(handle)
    with open(sys.argv[2], "w", encoding="utf-8") as handle:
        json.dump([figures(job) for job in jobs], handle)


if __name__ == "__main__":
    main()
