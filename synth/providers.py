"""Provider extracts of a synthetic population: who each provider sees, with its own errors,
duplicates and de-identified payload, plus the truth that links them.

Defaults (rates per record and field; ``ProviderSpec`` changes them):

- coverage: imaging centre 50%, hospital EHR 70%, payer claims 80% of the population
  (assumed: the claims payer covers most, the imaging centre a subset);
- duplicates within a provider: EHR 8% (AHIMA, "Patient matching in health information
  exchanges", 2014: duplicate rates of 8-12% in hospital record systems), others 2%;
- typos 3% per name field, OCR look-alikes 1% (3% for claims, which are keyed from forms),
  phonetic variants 1%, nicknames 5% of given names, given/family swapped 0.5%, surname change
  on marriage 3% of adult women, day/month swapped 1% and one mistyped digit 1% of birth
  dates, moved address 10%, missing phone 20% and other fields 2% (assumed, in the range the
  record-linkage literature reports, e.g. Christen, "Data Matching", 2012, ch. 11).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pyarrow as pa

from .corruption import (
    blank,
    date_typo,
    keyboard_typo,
    nickname,
    ocr_error,
    phonetic_variant,
    swap_day_month,
)
from .population import name_pools

__all__ = ["ProviderSpec", "DEFAULT_PROVIDERS", "make_provider", "IDENTIFIER_COLUMNS"]

IDENTIFIER_COLUMNS = ["given_name", "surname", "date_of_birth", "sex", "address", "zip",
                      "phone"]


@dataclass(frozen=True)
class ErrorRates:
    typo: float = 0.03
    ocr: float = 0.01
    phonetic: float = 0.01
    nickname: float = 0.05
    swap_names: float = 0.005
    marriage: float = 0.03
    day_month_swap: float = 0.01
    date_typo: float = 0.01
    moved: float = 0.10
    missing: float = 0.02
    missing_phone: float = 0.20


@dataclass(frozen=True)
class ProviderSpec:
    name: str
    kind: str  # imaging | ehr | claims: decides the payload
    coverage: float
    duplicate_rate: float
    errors: ErrorRates = field(default_factory=ErrorRates)


DEFAULT_PROVIDERS = (
    ProviderSpec("imaging", "imaging", 0.5, 0.02),
    ProviderSpec("ehr", "ehr", 0.7, 0.08),
    ProviderSpec("claims", "claims", 0.8, 0.02, replace(ErrorRates(), ocr=0.03)),
)

_MODALITIES = {"CT": 0.3, "MR": 0.2, "CR": 0.3, "US": 0.12, "MG": 0.08}
_BODY_PARTS = {"CT": "CHEST", "MR": "HEAD", "CR": "CHEST", "US": "ABDOMEN", "MG": "BREAST"}
_DIAGNOSES = ["I10", "E11.9", "E78.5", "J45.909", "F32.9", "M54.5", "N18.3", "I25.10",
              "C34.90", "C50.919", "J44.9", "Z00.00"]
_PROCEDURES = ["71046", "71250", "70553", "74177", "77067", "76700", "99213", "99214", "80053"]


def _corrupt(records: dict[str, np.ndarray], spec: ProviderSpec, adult_women: np.ndarray,
             homes: pa.Table, rng: np.random.Generator) -> None:
    rates = spec.errors
    pools = name_pools()
    given_pool = tuple(pools.female.tolist() + pools.male.tolist())
    nickname(records["given_name"], rates.nickname, rng)
    for column, pool in (("given_name", given_pool), ("surname", tuple(pools.surnames))):
        phonetic_variant(records[column], rates.phonetic, rng, pool)
        keyboard_typo(records[column], rates.typo, rng)
        ocr_error(records[column], rates.ocr, rng)
    married = np.flatnonzero(adult_women & (rng.random(len(adult_women)) < rates.marriage))
    records["surname"][married] = rng.choice(pools.surnames, size=len(married),
                                             p=pools.surnames_p)
    swapped = np.flatnonzero(rng.random(len(adult_women)) < rates.swap_names)
    records["given_name"][swapped], records["surname"][swapped] = (
        records["surname"][swapped].copy(), records["given_name"][swapped].copy())
    swap_day_month(records["date_of_birth"], rates.day_month_swap, rng)
    date_typo(records["date_of_birth"], rates.date_typo, rng)
    # Moving house: to the address of another household of the population.
    moved = np.flatnonzero(rng.random(len(adult_women)) < rates.moved)
    new_home = pa.array(rng.integers(0, homes.num_rows, size=len(moved)))
    for column in ("address", "zip", "state"):
        records[column][moved] = homes.column(column).take(new_home).to_pylist()
    keyboard_typo(records["address"], rates.typo, rng)
    for column in IDENTIFIER_COLUMNS:
        blank(records[column], rates.missing_phone if column == "phone" else rates.missing, rng)


def _payload(kind: str, count: int, rng: np.random.Generator) -> dict[str, pa.Array]:
    days = rng.integers(0, 5 * 365, size=count)
    dates = (np.datetime64("2020-01-01") + days).astype(str)
    if kind == "imaging":
        modality = rng.choice(list(_MODALITIES), size=count, p=list(_MODALITIES.values()))
        uids = [f"2.25.{int.from_bytes(rng.bytes(16), 'big')}" for _ in range(count)]
        return {"study_uid": pa.array(uids), "study_date": pa.array(dates),
                "modality": pa.array(modality),
                "body_part": pa.array([_BODY_PARTS[m] for m in modality.tolist()])}
    if kind == "ehr":
        return {"encounter_date": pa.array(dates),
                "diagnosis": pa.array(rng.choice(_DIAGNOSES, size=count)),
                "hba1c": pa.array(np.round(rng.normal(5.9, 0.9, size=count), 1)),
                "ldl_mg_dl": pa.array(np.round(rng.normal(110, 30, size=count)).astype(int))}
    return {"service_date": pa.array(dates),
            "procedure": pa.array(rng.choice(_PROCEDURES, size=count)),
            "amount_usd": pa.array(np.round(rng.lognormal(5.5, 1.0, size=count), 2))}


def make_provider(population: pa.Table, spec: ProviderSpec, seed: int
                  ) -> tuple[pa.Table, pa.Table]:
    """(extract, truth): the provider's records (record_id, mrn, identifiers, payload) and
    (provider, record_id, person_id) for each of them."""
    rng = np.random.default_rng([seed, sum(spec.name.encode())])
    people = np.flatnonzero(rng.random(population.num_rows) < spec.coverage)
    duplicated = people[rng.random(len(people)) < spec.duplicate_rate]
    rows = rng.permutation(np.concatenate([people, duplicated]))
    records = {c: np.array(population.column(c).take(pa.array(rows)).to_pylist(), dtype=object)
               for c in [*IDENTIFIER_COLUMNS, "state"]}
    born = np.array(records["date_of_birth"].tolist(), dtype="datetime64[D]")
    adult_women = (records["sex"] == "f") & (born < np.datetime64("2006-01-01"))
    _corrupt(records, spec, adult_women, population.select(["address", "zip", "state"]), rng)
    count = len(rows)
    record_ids = [f"{spec.name}-{k:08d}" for k in range(count)]
    mrns = np.char.add("MRN", np.char.zfill(rng.permutation(count * 3)[:count].astype(str), 9))
    extract = pa.table({"record_id": pa.array(record_ids), "mrn": pa.array(mrns),
                        **{c: pa.array(records[c], pa.string())
                           for c in [*IDENTIFIER_COLUMNS, "state"]},
                        **_payload(spec.kind, count, rng)})
    if spec.kind == "ehr":  # recorded at registration, 6% missing (own draws: the rest
        # of the extract does not change with it)
        race = population.column("race_ethnicity").take(pa.array(rows)).to_numpy(
            zero_copy_only=False).astype(object)
        race[np.random.default_rng([seed, 6]).random(count) < 0.06] = None
        extract = extract.append_column("race_ethnicity", pa.array(race, pa.string()))
    truth = pa.table({"party": pa.array([spec.name] * count), "record_id": pa.array(record_ids),
                      "true_id": pa.array(population.column("person_id").take(
                          pa.array(rows)).cast(pa.string()))})
    return extract, truth
