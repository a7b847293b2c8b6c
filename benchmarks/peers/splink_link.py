"""Run inside the Splink peer venv: cleartext probabilistic linkage of two extracts.

Usage: python splink_link.py A.parquet B.parquet OUT.parquet
Trains a Fellegi-Sunter model (Splink 4, DuckDB) on the identifiers in the clear and writes
every predicted pair: record_a, record_b, match_probability. Prints one JSON line with the
seconds taken.
"""

import json
import sys
import time

import pandas as pd
import splink.comparison_library as cl
from splink import DuckDBAPI, Linker, SettingsCreator, block_on

COLUMNS = ["record_id", "given_name", "surname", "date_of_birth", "sex", "address", "zip",
           "phone"]


def _load(path: str, source: str) -> pd.DataFrame:
    frame = pd.read_parquet(path, columns=COLUMNS).replace({"": None})
    frame["source_dataset"] = source
    return frame


def main() -> None:
    a_path, b_path, out_path = sys.argv[1:4]
    started = time.perf_counter()
    settings = SettingsCreator(
        link_type="link_only",
        unique_id_column_name="record_id",
        comparisons=[
            cl.NameComparison("given_name"),
            cl.NameComparison("surname"),
            cl.DateOfBirthComparison("date_of_birth", input_is_string=True),
            cl.ExactMatch("sex"),
            cl.LevenshteinAtThresholds("address", [2, 5]),
            cl.ExactMatch("zip"),
            cl.ExactMatch("phone"),
        ],
        blocking_rules_to_generate_predictions=[
            block_on("date_of_birth"), block_on("surname", "given_name"),
            block_on("phone"), block_on("zip", "given_name")],
    )
    linker = Linker([_load(a_path, "a"), _load(b_path, "b")], settings, db_api=DuckDBAPI())
    linker.training.estimate_probability_two_random_records_match(
        [block_on("given_name", "surname", "date_of_birth")], recall=0.8)
    linker.training.estimate_u_using_random_sampling(max_pairs=2e6, seed=1)
    linker.training.estimate_parameters_using_expectation_maximisation(
        block_on("date_of_birth"))
    linker.training.estimate_parameters_using_expectation_maximisation(
        block_on("surname", "given_name"))
    predictions = linker.inference.predict(threshold_match_probability=0.01).as_pandas_dataframe()
    left = predictions["source_dataset_l"] == "a"
    out = pd.DataFrame({
        "record_a": predictions["record_id_l"].where(left, predictions["record_id_r"]),
        "record_b": predictions["record_id_r"].where(left, predictions["record_id_l"]),
        "match_probability": predictions["match_probability"],
    })
    out.to_parquet(out_path)
    print(json.dumps({"seconds": time.perf_counter() - started, "pairs": len(out)}))


if __name__ == "__main__":
    main()
