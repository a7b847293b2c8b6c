"""Deterministic tokens beside the CLKs: `pprl tokenize --with-tokens` writes OpenToken's tokens
of the encoded records, the linker takes pairs agreeing on chosen tokens as candidates, and the
upload check lets exactly the declared token columns through."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from linker.cli import link_command
from linker.clkset import ClkSet, LinkageInputError, load_clk_sets
from linker.link import link_sets
from linker.token_pairs import common_tokens, token_pairs
from tests.service_harness import PLACEHOLDER_RECORDS
from tokenizer.catalog import load_schema
from tokenizer.cli import tokenize_command
from tokenizer.encodings_check import EncodingsLimits, check_parquet_encodings
from tokenizer.encodings_file import EncodingsMetadata, EncodingsWriter, read_encodings
from tokenizer.errors import InputError
from tokenizer.keys import key_check_value
from tokenizer.opentoken.cli import tokens_command
from tokenizer.pipeline import tokenize_file

PEOPLE = [
    ("a1", "John", "Hopkins", "1996-05-15", "F", "86236", "157-71-1836"),
    ("a2", "Mary", "O'Neil", "1980-01-02", "F", "02139", ""),
    ("a3", "Zed", "Bad", "not a date", "M", "10001", ""),   # tokenize rejects it
    ("a4", "Ann", "Lee", "1970-12-31", "", "94110", "123-45-6789"),
]
LINKAGE_SECRET = b"linkage-secret-0123456789abcdef"
HASHING_SECRET = b"hashing-secret-0123456789abcdef"


def _secrets(tmp_path: Path) -> tuple[Path, Path]:
    linkage, hashing = tmp_path / "linkage.key", tmp_path / "hashing.key"
    linkage.write_bytes(LINKAGE_SECRET)
    hashing.write_bytes(HASHING_SECRET)
    return linkage, hashing


def test_tokenize_with_tokens_writes_pprl_tokens_tokens(tmp_path: Path) -> None:
    source = tmp_path / "people.csv"
    with source.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["record_id", "given_name", "surname", "date_of_birth", "sex", "zip",
                         "ssn", "address", "phone"])
        writer.writerows([*row, "1 Main St", ""] for row in PEOPLE)
    linkage, hashing = _secrets(tmp_path)
    out = tmp_path / "enc.parquet"
    result = CliRunner().invoke(tokenize_command, [
        str(source), "--schema", "person", "--secret-file", str(linkage), "--id-column",
        "record_id", "-o", str(out), "--with-tokens", "--hashing-secret-file", str(hashing)])
    assert result.exit_code == 0, result.output
    table = pq.read_table(out)
    meta = table.schema.metadata
    assert meta[b"pprl.tokens"] == b"T1,T2,T3,T4,T5"
    assert meta[b"pprl.token_key_check_value"] == \
        key_check_value(HASHING_SECRET, "token secret").encode()
    assert table.column("record_id").to_pylist() == ["a1", "a2", "a4"]
    tokens_out = tmp_path / "tokens.csv"
    result = CliRunner().invoke(tokens_command, [str(source), "-o", str(tokens_out),
                                                 "--hashing-secret-file", str(hashing)])
    assert result.exit_code == 0, result.output
    expected = {(r["RecordId"], r["RuleId"]): r["Token"]
                for r in csv.DictReader(tokens_out.open())}
    blank = 0
    for row in table.to_pylist():
        for rule in ("T1", "T2", "T3", "T4", "T5"):
            token = row[f"token_{rule}"]
            assert (token or "0" * 64) == expected[(row["record_id"], rule)]
            blank += token is None
    assert blank  # a4 has no sex, a2 no SSN: blank tokens are nulls
    read = read_encodings(out)
    assert read.metadata.tokens == ("T1", "T2", "T3", "T4", "T5")
    assert read.tokens["T1"].tolist() == table.column("token_T1").to_pylist()


def test_with_tokens_reads_mapped_columns(tmp_path: Path) -> None:
    """A site's own headers mapped with --column-map are the token attributes too: the same
    people under other headers get the same tokens (the first name, surname, birth date, sex
    and ZIP are the mapped columns)."""
    linkage, hashing = _secrets(tmp_path)
    site = {"given_name": "Vorname", "surname": "Nachname", "date_of_birth": "Geburtsdatum",
            "sex": "Geschlecht", "zip": "PLZ", "address": "Adresse", "phone": "Telefon"}
    ours = ["record_id", "given_name", "surname", "date_of_birth", "sex", "zip", "ssn",
            "address", "phone"]
    tables = {}
    for name, header, extra in (
            ("ours", ours, []),
            ("site", [site.get(c, c) for c in ours],
             ["--column-map", ",".join(f"{k}={v}" for k, v in site.items())])):
        source = tmp_path / f"{name}.csv"
        with source.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows([*row, "1 Main St", ""] for row in PEOPLE)
        out = tmp_path / f"{name}.parquet"
        result = CliRunner().invoke(tokenize_command, [
            str(source), "--schema", "person", "--secret-file", str(linkage), "--id-column",
            "record_id", "-o", str(out), "--with-tokens", "--hashing-secret-file",
            str(hashing), *extra])
        assert result.exit_code == 0, result.output
        tables[name] = pq.read_table(out)
    assert tables["site"].equals(tables["ours"])
    assert tables["site"].column("token_T2").null_count == 0   # needs no sex, which a4 lacks


def test_with_tokens_reads_a_fhir_bundle_once(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The token columns are found from the header alone: a Bundle (parsed whole when
    opened) is parsed once, and its patients get tokens."""
    import tokenizer.readers
    parsed = []
    real = tokenizer.readers.read_patients

    def counted(*args: object) -> object:
        parsed.append(args)
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(tokenizer.readers, "read_patients", counted)
    bundle = tmp_path / "patients.json"
    bundle.write_text(json.dumps({"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Patient", "id": "p1", "gender": "female",
                      "birthDate": "1980-01-02", "name": [{"use": "official",
                                                           "family": "Hopkins",
                                                           "given": ["Mary"]}]}}]}))
    linkage, hashing = _secrets(tmp_path)
    out = tmp_path / "enc.parquet"
    tokenize_file(bundle, load_schema("person"), LINKAGE_SECRET, out, progress=False,
                  token_secret=HASHING_SECRET)
    assert len(parsed) == 1
    assert pq.read_table(out).column("token_T1").null_count == 0

def _clk_set(bits: list[list[int]], t1: list[str | None], party: str) -> ClkSet:
    clks = np.zeros((len(bits), 8), dtype=np.uint8)
    for row, on in enumerate(bits):
        for bit in on:
            clks[row, bit // 8] |= 1 << (bit % 8)
    return ClkSet.from_arrays(clks, [f"{party}{i}" for i in range(len(bits))], party=party,
                              tokens={"T1": np.array(t1, dtype=object)},
                              token_key_check="k" * 16)


def test_a_low_dice_pair_agreeing_on_t1_is_linked_with_its_dice_score() -> None:
    a = _clk_set([list(range(0, 20)), list(range(30, 50))], ["tok-x", None], "a")
    b = _clk_set([list(range(10, 30)), list(range(30, 50))], ["tok-x", None], "b")
    plain = link_sets([a, b], 0.65)
    assert list(zip(plain.record_a, plain.record_b, strict=True)) == [(1, 1)]
    with_tokens = link_sets([a, b], 0.65, tokens=["T1"])
    pairs = sorted(zip(with_tokens.record_a.tolist(), with_tokens.record_b.tolist(),
                       with_tokens.score.tolist(), strict=True))
    assert pairs == [(0, 0, 0.5), (1, 1, 1.0)]   # Dice 20/40 = 0.5, below the threshold
    assert with_tokens.stats["token_only_pairs"] == 1
    # Within one party (deduplication) the pair is found once, left < right.
    dedup = link_sets([_clk_set([list(range(0, 20)), list(range(10, 30))], ["t", "t"], "d")],
                      0.65, dedup=[True], tokens=["T1"])
    assert dedup.stats["token_only_pairs"] == 1 and dedup.entity_count == 1


def test_tokens_agreeing_only_where_dice_does_change_nothing() -> None:
    rng = np.random.default_rng(3)
    base = [sorted(rng.choice(64, 25, replace=False).tolist()) for _ in range(30)]
    a = _clk_set(base, [f"t{i}" if i % 3 else None for i in range(30)], "a")
    b = _clk_set(base[::-1], [f"t{29 - i}" for i in range(30)], "b")
    plain, tokens = link_sets([a, b], 0.65), link_sets([a, b], 0.65, tokens=["T1"])
    assert tokens.stats["token_only_pairs"] == 0
    for name in ("record_a", "record_b", "score"):
        assert np.array_equal(getattr(plain, name), getattr(tokens, name))
    assert all(np.array_equal(x, y) for x, y in zip(plain.entity_of, tokens.entity_of,
                                                    strict=True))


def test_tokens_without_token_columns_are_refused_naming_the_file() -> None:
    a = _clk_set([[1, 2]], ["x"], "a")
    b = ClkSet.from_arrays(np.zeros((1, 8), np.uint8), party="b", source="b.parquet")
    with pytest.raises(LinkageInputError, match=r"b\.parquet carries no token T1"):
        link_sets([a, b], tokens=["T1"])


def _write_with_tokens(path: Path, token_key_check: str, provider: str,
                       tokens: list[str | None]) -> None:
    meta = EncodingsMetadata(64, "f" * 64, provider, "0", None, key_check="0" * 16,
                             tokens=("T1",), token_key_check=token_key_check)
    writer = EncodingsWriter(path, meta)
    clks = np.random.default_rng(1).integers(0, 256, (len(tokens), 8), dtype=np.uint8)
    writer.write([f"r{i}" for i in range(len(tokens))], clks,
                 np.bitwise_count(clks).sum(axis=1), {"T1": pa.array(tokens, pa.string())})
    writer.commit()


def test_tokens_of_another_hashing_secret_are_refused(tmp_path: Path) -> None:
    token = "t" * 44
    _write_with_tokens(tmp_path / "a.parquet", "1" * 16, "a", [token, None])
    _write_with_tokens(tmp_path / "b.parquet", "2" * 16, "b", [token, None])
    with pytest.raises(LinkageInputError, match="another hashing secret") as raised:
        load_clk_sets([tmp_path / "a.parquet", tmp_path / "b.parquet"])
    assert "a.parquet" in str(raised.value) and "b.parquet" in str(raised.value)
    _write_with_tokens(tmp_path / "c.parquet", "1" * 16, "c", [None, token])
    sets = load_clk_sets([tmp_path / "a.parquet", tmp_path / "c.parquet"])
    assert link_sets(sets, 1.0, tokens=["T1"]).stats["token_only_pairs"] == 1


def test_token_metadata_and_columns_must_agree(tmp_path: Path) -> None:
    _write_with_tokens(tmp_path / "a.parquet", "1" * 16, "a", ["t" * 44])
    table = pq.read_table(tmp_path / "a.parquet")
    metadata = dict(table.schema.metadata)
    metadata[b"pprl.tokens"] = b"T1,T2"
    pq.write_table(table.replace_schema_metadata(metadata), tmp_path / "b.parquet")
    with pytest.raises(InputError, match="column token_T2 and file metadata pprl.tokens"):
        read_encodings(tmp_path / "b.parquet")


def test_upload_check_accepts_declared_token_columns(tmp_path: Path) -> None:
    _write_with_tokens(tmp_path / "a.parquet", "1" * 16, "a", ["t" * 44, None, "u" * 44])
    summary = check_parquet_encodings(tmp_path / "a.parquet", "upload", EncodingsLimits())
    assert summary.records == 3


def test_a_token_value_common_in_a_party_makes_no_candidates(
        token_provider_files: dict[str, Path]) -> None:
    """150 ehr and 130 claims records of the synthetic population share one placeholder
    identity: their T1/T3/T5 tokens agree, 19,500 pairs that would link all of them as one
    person. Over the cap (100 records in a party) the value is no key; the stats say so."""
    ehr, claims = load_clk_sets([token_provider_files["ehr"], token_provider_files["claims"]])
    rules = ("T1", "T3", "T5")
    placeholder = (PLACEHOLDER_RECORDS["ehr"], PLACEHOLDER_RECORDS["claims"])

    def placeholder_pairs(left: np.ndarray, right: np.ndarray) -> int:
        return int(((left < placeholder[0]) & (right < placeholder[1])).sum())

    assert placeholder_pairs(*token_pairs(ehr, claims, rules)) == placeholder[0] * placeholder[1]
    common = common_tokens([ehr, claims], rules, 100)
    assert placeholder_pairs(*token_pairs(ehr, claims, rules, common.excluded(0, 1))) == 0
    assert common.stats == {rule: {"values": 2, "records": sum(placeholder)} for rule in rules}
    # At Dice 0.65 their CLKs (same name, birth date and sex) make those pairs candidates
    # anyway; at 0.95 only tokens can.
    capped = link_sets([ehr, claims], 0.95, tokens=rules)
    uncapped = link_sets([ehr, claims], 0.95, tokens=rules, token_value_cap=0)
    assert capped.stats["token_value_cap"] == 100
    assert capped.stats["token_values_over_cap"] == common.stats
    assert uncapped.stats["token_values_over_cap"]["T1"] == {"values": 0, "records": 0}
    assert (uncapped.stats["token_only_pairs"] - capped.stats["token_only_pairs"]
            > placeholder[0] * placeholder[1] // 2)
    # A value of at most 150 records in each party is under a cap of 150: a key again.
    assert common_tokens([ehr, claims], rules, 150).stats["T1"]["values"] == 0


def test_link_command_warns_and_records_common_token_values(
        token_provider_files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "linked"
    result = CliRunner().invoke(link_command, [
        str(token_provider_files["ehr"]), str(token_provider_files["claims"]), "-o", str(out),
        "--tokens", "T1,T2", "--token-value-cap", "140"])
    assert result.exit_code == 0, result.output
    # 150 ehr records over the cap, 130 claims records under it: one value, not used at all
    assert ("warning: token T1: 1 value(s) held by more than 140 records of one party "
            "(150 records) were not used to make candidates") in result.stderr
    assert "token T2" not in result.stderr   # T2 needs the ZIP code, which differs
    run = json.loads((out / "run.json").read_text())
    assert run["token_value_cap"] == 140
    assert run["token_values_over_cap"] == {"T1": {"values": 1, "records": 150},
                                            "T2": {"values": 0, "records": 0}}
