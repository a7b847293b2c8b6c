"""Privacy models (deid.risk.privacy_models): hand-worked tables, and pycanon 1.3.6 as oracle.

pycanon runs from its own venv under ``.peers/pycanon`` (created on first use), never in .venv.
"""

from __future__ import annotations

import json
import math
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from benchmarks.peers import SCRIPTS_DIR, peer_python
from deid.risk.classes import equivalence_classes
from deid.risk.privacy_models import privacy_models

FLOATS = ("t_closeness", "beta_likeness", "enhanced_beta_likeness", "delta_disclosure")


def _models(columns: Mapping[str, Any], qi: list[str], sensitive: list[str]) -> dict[str, Any]:
    table = pa.table(columns)
    return privacy_models(table, equivalence_classes(table, qi), sensitive)


# Two classes of a diagnosis: {flu, flu, cold, hiv} and {flu, cold, cold}; the table holds
# flu 3/7, cold 3/7, hiv 1/7.
DIAGNOSES = {"band": ["20-29"] * 4 + ["30-39"] * 3, "zip3": ["021"] * 7,
             "diagnosis": ["flu", "flu", "cold", "hiv", "flu", "cold", "cold"]}


def test_categorical_attribute_by_hand() -> None:
    found = _models(DIAGNOSES, ["band", "zip3"], ["diagnosis"])
    assert found["k_anonymity"] == 3
    assert found["l_diversity"] == 2
    # exp(H): 2 ** 1.5 = 2.83 for the first class, 3 / 2 ** (2/3) = 1.89 for the second
    assert found["entropy_l_diversity"] == 1
    # counts ascending [1, 1, 2] and [1, 2]: floor(1/3 + 1) = floor(1/2 + 1) = 1
    assert found["recursive_cl_diversity"] == 1
    # equal distance: (1/14 + 5/28 + 3/28) / 2 = 5/28 and (2/21 + 5/21 + 3/21) / 2 = 5/21
    assert found["t_closeness"] == pytest.approx(5 / 21, rel=1e-12)
    # hiv in the first class: (1/4 - 1/7) / (1/7) = 3/4; -ln(1/7) is larger
    assert found["beta_likeness"] == pytest.approx(0.75, rel=1e-12)
    assert found["enhanced_beta_likeness"] == pytest.approx(0.75, rel=1e-12)
    assert found["delta_disclosure"] == pytest.approx(math.log(1.75), rel=1e-12)


# Li, Li & Venkatasubramanian (2007), table 3: salaries 3k..11k in three classes.
SALARIES = {"zip": ["4767*"] * 3 + ["4760*"] * 3 + ["479**"] * 3,
            "salary": [3, 4, 5, 6, 8, 11, 7, 9, 10]}


def test_ordered_attribute_by_hand() -> None:
    found = _models(SALARIES, ["zip"], ["salary"])
    assert found["k_anonymity"] == 3
    assert found["l_diversity"] == 3
    # exp(ln 3) is 3, but -3 * (1/3) ln(1/3) rounds to 1.0986122886681096 and exp(1) ** that
    # to 2.9999999999999996, which pycanon truncates to 2
    assert found["entropy_l_diversity"] == 2
    assert found["recursive_cl_diversity"] == 2  # counts [1, 1, 1]: floor(1 / 1 + 1)
    assert found["t_closeness"] == pytest.approx(0.375, rel=1e-12)  # the paper's {3k, 4k, 5k}
    # each value 1/9 of the table, 1/3 of its class: beta (1/3 - 1/9) / (1/9) = 2 < ln 9
    assert found["beta_likeness"] == pytest.approx(2.0, rel=1e-12)
    assert found["enhanced_beta_likeness"] == pytest.approx(2.0, rel=1e-12)
    assert found["delta_disclosure"] == pytest.approx(math.log(3), rel=1e-12)


def test_several_attributes_take_the_weakest() -> None:
    both = dict(DIAGNOSES, salary=[3, 4, 5, 6, 8, 11, 7])
    found = _models(both, ["band"], ["diagnosis", "salary"])
    alone = [_models(both, ["band"], [name]) for name in ("diagnosis", "salary")]
    assert found["l_diversity"] == min(a["l_diversity"] for a in alone) == 2
    assert found["entropy_l_diversity"] == min(a["entropy_l_diversity"] for a in alone)
    for key in FLOATS:
        assert found[key] == max(a[key] for a in alone)


def test_without_sensitive_attributes_or_records() -> None:
    found = _models(DIAGNOSES, ["band"], [])
    assert found["k_anonymity"] == 3
    assert all(found[key] is None for key in found if key != "k_anonymity")
    empty = _models({"band": pa.array([], pa.string()), "d": pa.array([], pa.string())},
                    ["band"], ["d"])
    assert empty["k_anonymity"] == 0 and empty["l_diversity"] is None
    assert _models(SALARIES, ["salary"], ["zip"])["recursive_cl_diversity"] is None  # l = 1


def test_missing_values_are_values_of_their_own() -> None:
    found = _models({"band": ["a", "a", None, "b", "b"], "d": ["x", "y", "x", None, "y"]},
                    ["band"], ["d"])
    assert found["k_anonymity"] == 1  # pycanon would drop the record and say 2
    assert found["l_diversity"] == 1


def test_single_valued_numbers_are_zero_close_and_dictionaries_count_used_values() -> None:
    assert _models({"band": ["a", "a", "b"], "n": [5, 5, 5]}, ["band"], ["n"])[
        "t_closeness"] == 0.0
    plain = _models(DIAGNOSES, ["band"], ["diagnosis"])
    coded = pa.DictionaryArray.from_arrays(
        pa.array([0, 0, 1, 2, 0, 1, 1], pa.int32()), pa.array(["flu", "cold", "hiv", "unused"]))
    assert _models(dict(DIAGNOSES, diagnosis=coded), ["band"], ["diagnosis"]) == plain


def test_unknown_column_and_mismatched_classes() -> None:
    table = pa.table(DIAGNOSES)
    with pytest.raises(KeyError, match="nope"):
        privacy_models(table, equivalence_classes(table, ["band"]), ["nope"])
    with pytest.raises(ValueError, match="records"):
        privacy_models(table.slice(1), equivalence_classes(table, ["band"]), ["diagnosis"])


def _population(rng: np.random.Generator, n: int) -> dict[str, list]:
    """FEBRL-like people with an age, sex, postcode and state, and sensitive attributes of
    each kind: a diagnosis (text), income (integers), BMI (floats, to half a unit), smoker
    (booleans) and a score with many values (classes with 9+ values exercise numpy's pairwise
    sums)."""
    age = rng.integers(0, 100, n)
    return {
        "age": age.tolist(),
        "band10": [f"{a // 10 * 10}-{a // 10 * 10 + 9}" for a in age],
        "band20": [f"{a // 20 * 20}-{a // 20 * 20 + 19}" for a in age],
        "sex": rng.choice(["f", "m"], n).tolist(),
        "postcode": rng.choice([f"{p:04d}" for p in range(2000, 2060)], n).tolist(),
        "state": rng.choice(["nsw", "vic", "qld", "wa", "sa", "tas"], n,
                            p=[0.3, 0.25, 0.2, 0.1, 0.1, 0.05]).tolist(),
        "diagnosis": rng.choice(["I10", "E11", "J45", "C50", "F32", "M54", "K21", "B20"], n,
                                p=[0.3, 0.2, 0.15, 0.1, 0.1, 0.08, 0.05, 0.02]).tolist(),
        "income": (rng.integers(20, 50, n) * 1000).tolist(),
        "bmi": (np.round(rng.normal(26, 4, n) * 2) / 2).tolist(),
        "smoker": (rng.random(n) < 0.2).tolist(),
        "score": rng.integers(0, 40, n).tolist(),
    }


def _uniform() -> dict[str, list]:
    """Classes whose values are equally frequent: exp(H) lands on an integer (ln 3, ln 9), where
    pycanon's truncation depends on the last bit, and c reaches 2."""
    three = [v for v in ("a", "b", "c") for _ in range(2)]
    nine = [str(v) for v in range(9)]
    return {"band": ["x"] * 6 + ["y"] * 9 + ["z"] * 6,
            "value": three + nine + three}


def _jobs() -> list[dict]:
    rng = np.random.default_rng(20261201)
    tiny, small, large = (_population(rng, n) for n in (60, 150, 2000))
    return [
        {"columns": small, "quasi_identifiers": ["age", "sex", "postcode"],
         "sensitive": ["diagnosis"]},
        {"columns": tiny, "quasi_identifiers": ["age", "sex"],
         "sensitive": ["income", "diagnosis"]},
        {"columns": small, "quasi_identifiers": ["band10"], "sensitive": ["postcode"]},
        {"columns": large, "quasi_identifiers": ["band10", "sex"], "sensitive": ["diagnosis"]},
        {"columns": large, "quasi_identifiers": ["band20", "state"], "sensitive": ["income"]},
        {"columns": large, "quasi_identifiers": ["band20", "sex"], "sensitive": ["bmi"]},
        {"columns": large, "quasi_identifiers": ["band20", "sex"],
         "sensitive": ["score", "smoker"]},
        {"columns": _uniform(), "quasi_identifiers": ["band"], "sensitive": ["value"]},
    ]


@pytest.mark.oracle
def test_same_figures_as_pycanon(tmp_path: Path) -> None:
    jobs = _jobs()
    (tmp_path / "jobs.json").write_text(json.dumps(jobs), encoding="utf-8")
    python = peer_python("pycanon")
    subprocess.run([str(python), str(SCRIPTS_DIR / "pycanon_models.py"),
                    str(tmp_path / "jobs.json"), str(tmp_path / "figures.json")],
                   check=True, timeout=600)
    expected = json.loads((tmp_path / "figures.json").read_text(encoding="utf-8"))
    ks = set()
    for job, theirs in zip(jobs, expected, strict=True):
        ours = _models(job["columns"], job["quasi_identifiers"], job["sensitive"])
        context = f"{job['quasi_identifiers']} / {job['sensitive']}"
        assert ours.keys() == theirs.keys()
        for key, value in theirs.items():
            if key in FLOATS:
                assert ours[key] == pytest.approx(value, rel=1e-9, abs=1e-15), (context, key)
            else:
                assert ours[key] == value, (context, key)
        ks.add(ours["k_anonymity"] == 1)
    assert ks == {True, False}  # tables with k = 1 and with k > 1
