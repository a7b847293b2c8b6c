"""Run inside the Splink peer venv: cleartext probabilistic deduplication of one extract.

Usage: python splink_dedup.py IN.parquet KIND OUT.parquet P1,P2,...
KIND: ``febrl`` (FEBRL's columns) or ``person`` (the synthetic extracts' columns). Trains a
Fellegi-Sunter model (Splink 4, DuckDB) on the identifiers in the clear, predicts pairs and
clusters them with Splink's own clustering at each match probability P. Writes record_id and
one cluster column per P (``p0.9`` ...); prints one JSON line with the seconds taken.
"""

import json
import sys
import time

import pandas as pd
import splink.comparison_library as cl
from splink import DuckDBAPI, Linker, SettingsCreator, block_on

SETTINGS = {
    "febrl": {
        "comparisons": [
            cl.NameComparison("given_name"), cl.NameComparison("surname"),
            cl.LevenshteinAtThresholds("date_of_birth", [1, 2]),
            cl.LevenshteinAtThresholds("soc_sec_id", [1, 2]),
            cl.ExactMatch("street_number"), cl.LevenshteinAtThresholds("address_1", [2, 5]),
            cl.LevenshteinAtThresholds("suburb", [2]), cl.LevenshteinAtThresholds("postcode", [1]),
            cl.ExactMatch("state")],
        "blocking": [block_on("date_of_birth"), block_on("soc_sec_id"),
                     block_on("given_name", "surname"), block_on("postcode", "surname")],
        "train": [block_on("date_of_birth"), block_on("given_name", "surname")],
        "prior": [block_on("given_name", "surname", "date_of_birth")],
    },
    "person": {
        "comparisons": [
            cl.NameComparison("given_name"), cl.NameComparison("surname"),
            cl.DateOfBirthComparison("date_of_birth", input_is_string=True),
            cl.ExactMatch("sex"), cl.LevenshteinAtThresholds("address", [2, 5]),
            cl.ExactMatch("zip"), cl.ExactMatch("phone")],
        "blocking": [block_on("date_of_birth"), block_on("surname", "given_name"),
                     block_on("phone"), block_on("zip", "given_name")],
        "train": [block_on("date_of_birth"), block_on("surname", "given_name")],
        "prior": [block_on("given_name", "surname", "date_of_birth")],
    },
}


def main() -> None:
    in_path, kind, out_path, levels = sys.argv[1:5]
    chosen = SETTINGS[kind]
    started = time.perf_counter()
    frame = pd.read_parquet(in_path).astype(str).replace({"": None, "nan": None})
    settings = SettingsCreator(link_type="dedupe_only", unique_id_column_name="record_id",
                               comparisons=chosen["comparisons"],
                               blocking_rules_to_generate_predictions=chosen["blocking"])
    linker = Linker(frame, settings, db_api=DuckDBAPI())
    linker.training.estimate_probability_two_random_records_match(chosen["prior"], recall=0.8)
    linker.training.estimate_u_using_random_sampling(max_pairs=2e6, seed=1)
    for rule in chosen["train"]:
        linker.training.estimate_parameters_using_expectation_maximisation(rule)
    predictions = linker.inference.predict(threshold_match_probability=0.01)
    out = pd.DataFrame({"record_id": frame["record_id"]})
    for level in (float(p) for p in levels.split(",")):
        clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
            predictions, threshold_match_probability=level).as_pandas_dataframe()
        labels = dict(zip(clusters["record_id"], clusters["cluster_id"], strict=True))
        out[f"p{level}"] = out["record_id"].map(labels).astype(str)
    out.to_parquet(out_path)
    print(json.dumps({"seconds": time.perf_counter() - started}))


if __name__ == "__main__":
    main()
