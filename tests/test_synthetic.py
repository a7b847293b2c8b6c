"""The synthetic population and its provider extracts: truth, realism, determinism."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from linker.clkset import ClkSet
from linker.evaluate import evaluate_entities
from linker.link import link_sets
from synth.population import RACE_ETHNICITY, PopulationConfig, address_pool, make_population
from synth.providers import DEFAULT_PROVIDERS, IDENTIFIER_COLUMNS, make_provider
from tokenizer.catalog import load_schema
from tokenizer.encoder import ClkEncoder


@pytest.fixture(scope="module")
def population() -> pa.Table:
    return make_population(PopulationConfig(people=20_000, seed=11))


@pytest.fixture(scope="module")
def extracts(population) -> dict[str, tuple[pa.Table, pa.Table]]:
    return {spec.name: make_provider(population, spec, 11) for spec in DEFAULT_PROVIDERS}


def test_same_seed_same_data_other_seed_other_data(population, extracts) -> None:
    """Determinism on a smaller population (the same code; 20,000 people twice more took 18 s
    of a CI run), and of an extract of the module's population."""
    small = PopulationConfig(people=3_000, seed=11)
    first = make_population(small)
    assert make_population(small).equals(first)
    spec = DEFAULT_PROVIDERS[1]
    assert make_provider(population, spec, 11)[0].equals(extracts[spec.name][0])
    other = make_population(PopulationConfig(people=3_000, seed=12))
    assert not other.column("given_name").equals(first.column("given_name"))


def test_people_look_like_a_us_population(population) -> None:
    frame = population.to_pandas()
    assert abs((frame.sex == "f").mean() - 0.508) < 0.02
    shares = frame.race_ethnicity.value_counts(normalize=True)
    for group, share in RACE_ETHNICITY.items():
        assert abs(shares[group] - share) < 0.03, group
    assert frame.given_name.nunique() > 300 and frame.surname.nunique() > 800
    # The commonest surname is Smith-like frequent, not uniform.
    assert frame.surname.value_counts().iloc[0] > 5 * frame.surname.value_counts().median()
    years = frame.date_of_birth.str[:4].astype(int)
    assert years.min() >= 1930 and years.max() <= 2023
    assert frame.zip.str.fullmatch(r"\d{5}").all() and frame.phone.str.fullmatch(r"\d{10}").all()


def test_households_share_address_and_mostly_surname(population) -> None:
    frame = population.to_pandas()
    by_household = frame.groupby("household_id")
    assert (by_household.address.nunique() == 1).all()
    sizes = by_household.size()
    assert 1.9 < sizes.mean() < 2.9  # US average household: 2.5 people
    big = frame[frame.household_id.isin(sizes[sizes >= 2].index)]
    same_surname = big.groupby("household_id").surname.agg(lambda s: s.value_counts().iloc[0]
                                                            / len(s))
    assert same_surname.mean() > 0.75


def test_given_names_follow_birth_year_and_sex(population) -> None:
    """SSA counts: Linda peaked around 1947-1950 (about 5% of girls) and was rare after
    2005; Liam was rare before 1970 and the commonest boy's name from 2017."""
    frame = population.to_pandas()
    year = frame.date_of_birth.str[:4].astype(int)
    women, men = frame.sex == "f", frame.sex == "m"
    post_war = women & year.between(1945, 1955)
    recent = women & year.between(2005, 2023)
    assert (frame.given_name[post_war] == "linda").mean() > 0.02
    assert (frame.given_name[recent] == "linda").mean() < 0.002
    assert (frame.given_name[men & year.between(2010, 2023)] == "liam").mean() > 0.005
    assert (frame.given_name[men & year.between(1930, 1969)] == "liam").mean() < 0.001


def test_twins_share_birth_date_and_surname_not_given_name(population) -> None:
    frame = population.to_pandas()
    twins = frame[frame.twin_of >= 0]
    assert 0.01 < len(twins) / len(frame) < 0.025
    first = frame.loc[twins.twin_of]
    assert (twins.date_of_birth.values == first.date_of_birth.values).all()
    assert (twins.surname.values == first.surname.values).all()
    assert (twins.given_name.values != first.given_name.values).all()


def test_extracts_carry_truth_errors_duplicates_and_payloads(population, extracts) -> None:
    people = population.to_pandas().set_index("person_id")
    for spec in DEFAULT_PROVIDERS:
        extract, truth = extracts[spec.name]
        frame = extract.to_pandas()
        true_id = truth.column("true_id").to_numpy(zero_copy_only=False).astype(int)
        assert truth.column("record_id").equals(extract.column("record_id"))
        distinct = len(set(true_id.tolist()))
        assert abs(distinct / len(people) - spec.coverage) < 0.02
        duplicates = (len(true_id) - distinct) / distinct
        assert abs(duplicates - spec.duplicate_rate) < 0.015, spec.name
        original = people.loc[true_id]
        changed = (frame.given_name.values != original.given_name.values).mean()
        assert 0.05 < changed < 0.2, (spec.name, changed)  # nicknames, typos, blanks...
        assert (frame.phone == "").mean() > 0.15
        assert set(IDENTIFIER_COLUMNS) <= set(frame.columns)
    imaging = extracts["imaging"][0]
    assert all(uid.startswith("2.25.") and len(uid) <= 64
               for uid in imaging.column("study_uid").to_pylist())
    assert "diagnosis" in extracts["ehr"][0].column_names
    assert "amount_usd" in extracts["claims"][0].column_names


def test_three_providers_link_with_the_person_schema(extracts) -> None:
    schema = load_schema("person")
    sets = []
    truth = {}
    for name, (extract, rows) in extracts.items():
        encoder = ClkEncoder(schema, b"synthetic test secret")
        encoded = encoder.encode({c: extract.column(c) for c in encoder.required_columns})
        assert encoded.valid.all(), name  # every generated date and value is valid
        ids = extract.column("record_id").to_pylist()
        sets.append(ClkSet.from_arrays(encoded.clks, ids, party=name))
        truth.update(zip(((name, r) for r in ids), rows.column("true_id").to_pylist(),
                         strict=True))
    result = link_sets(sets, 0.7)
    rows = [(f"E{e}", p, r) for p, ids, es in zip(result.parties, result.record_ids,
                                                  result.entity_of, strict=True)
            for r, e in zip(ids, es.tolist(), strict=True)]
    table = pa.table({"entity_id": [x[0] for x in rows], "party": [x[1] for x in rows],
                      "record_id": [x[2] for x in rows]})
    quality = evaluate_entities(table, truth)
    assert quality.precision > 0.98, quality
    assert quality.recall > 0.8, quality
    members = table.to_pandas().groupby("entity_id").party
    assert (members.nunique() == members.size()).all()  # one record per provider


def test_synth_command_writes_extracts_and_truth(tmp_path) -> None:
    result = subprocess.run([sys.executable, "-m", "api.cli", "synth", str(tmp_path),
                             "--people", "3000", "--seed", "4"], capture_output=True,
                            text=True, timeout=300, check=True)
    assert "population 3,000" in result.stdout
    truth = pacsv.read_csv(tmp_path / "truth.csv")
    assert truth.column_names == ["party", "record_id", "true_id"]
    total = 0
    for spec in DEFAULT_PROVIDERS:
        total += pq.read_metadata(tmp_path / f"{spec.name}.parquet").num_rows
    assert truth.num_rows == total
    assert np.isin(np.unique(truth.column("party").to_numpy(zero_copy_only=False)),
                   [s.name for s in DEFAULT_PROVIDERS]).all()


def test_address_pools_are_kept_on_disk_and_read_back_the_same(tmp_path, monkeypatch) -> None:
    """The pool Faker builds is written once and read back equal; a damaged file is built
    again (and replaced)."""
    monkeypatch.setenv("PPRL_CACHE_DIR", str(tmp_path))
    built = address_pool(seed=3, size=300)
    files = list((tmp_path / "address-pools").glob("*seed-3-size-300.parquet"))
    assert len(files) == 1
    address_pool.cache_clear()
    assert address_pool(seed=3, size=300).equals(built)
    files[0].write_bytes(b"not parquet")
    address_pool.cache_clear()
    assert address_pool(seed=3, size=300).equals(built)
    assert pq.read_table(files[0]).equals(built)
    assert not address_pool(seed=4, size=300).equals(built)
    # what is on disk is what a later process gets (not a pool Faker builds again)
    pq.write_table(built.slice(0, 10), files[0])
    address_pool.cache_clear()
    assert address_pool(seed=3, size=300).num_rows == 10
