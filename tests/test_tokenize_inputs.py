"""``tokenize_file`` on real and broken inputs: clear errors, rejects, nothing half-written."""

from __future__ import annotations

import csv
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tokenizer.catalog import load_schema
from tokenizer.encodings_file import read_encodings
from tokenizer.errors import (
    AllRowsRejectedError,
    InputError,
    InvalidRowsError,
    SecretError,
    TokenizerError,
)
from tokenizer.keys import read_secret
from tokenizer.pipeline import rejects_path_for, tokenize_file

from .golden import case

GOLDEN = case("febrl4b_with_invalid_rows")
SCHEMA = load_schema(GOLDEN.schema_path)


def _write_csv(path, header, rows, encoding="utf-8"):
    with path.open("w", encoding=encoding, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_missing_columns_are_named(tmp_path) -> None:
    header, rows = GOLDEN.rows()
    keep = [c for c in header if c not in ("surname", "postcode")]
    source = _write_csv(tmp_path / "short.csv", keep, [[r[c] for c in keep] for r in rows[:5]])
    with pytest.raises(InputError) as raised:
        tokenize_file(source, SCHEMA, GOLDEN.secret, tmp_path / "out.parquet")
    message = str(raised.value)
    assert "short.csv" in message and "surname" in message and "postcode" in message
    assert not (tmp_path / "out.parquet").exists() and _leftovers(tmp_path) == []


def test_empty_file_and_missing_file(tmp_path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty.csv"):
        tokenize_file(empty, SCHEMA, GOLDEN.secret, tmp_path / "out.parquet")
    with pytest.raises(InputError, match="nowhere.csv"):
        tokenize_file(tmp_path / "nowhere.csv", SCHEMA, GOLDEN.secret, tmp_path / "out.parquet")
    assert list(tmp_path.iterdir()) == [empty]


def test_header_only_file_gives_an_empty_encodings_file(tmp_path) -> None:
    header, _ = GOLDEN.rows()
    source = _write_csv(tmp_path / "header.csv", header, [])
    report = tokenize_file(source, SCHEMA, GOLDEN.secret, tmp_path / "out.parquet")
    assert report.records_read == 0 and report.rejected == 0
    assert len(read_encodings(tmp_path / "out.parquet")) == 0


def test_bad_text_encoding_rejects_only_that_row(tmp_path) -> None:
    header, rows = GOLDEN.rows()
    source = tmp_path / "latin1.csv"
    lines = [",".join(header)] + [",".join(r[c] for c in header) for r in rows[:4]]
    data = ("\n".join(lines) + "\n").encode("utf-8")
    data = data.replace(rows[2]["surname"].encode(), rows[2]["surname"].encode() + b"\xe9")
    source.write_bytes(data)
    report = tokenize_file(source, SCHEMA, GOLDEN.secret, tmp_path / "out.parquet")
    assert report.records_written == 3 and report.rejected == 1
    with report.rejects_path.open(encoding="utf-8") as handle:
        (reject,) = list(csv.DictReader(handle))
    assert reject["row"] == "3"
    assert "UTF-8" in reject["reason"] or "utf-8" in reject["reason"]
    expected = GOLDEN.expected_clks()
    written = read_encodings(tmp_path / "out.parquet")
    assert [bytes(c) for c in written.clks] == [expected[0], expected[1], expected[3]]


def test_ragged_rows_are_rejected_with_their_row_number(tmp_path) -> None:
    header, rows = GOLDEN.rows()
    lines = [",".join(header)] + [",".join(r[c] for c in header) for r in rows[:3]]
    lines.insert(2, "only,three,fields")
    (tmp_path / "ragged.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = tokenize_file(tmp_path / "ragged.csv", SCHEMA, GOLDEN.secret,
                           tmp_path / "out.parquet")
    assert report.rejected == 1 and report.records_written == 3
    with report.rejects_path.open(encoding="utf-8") as handle:
        (reject,) = list(csv.DictReader(handle))
    assert reject["row"] == "2" and "only,three,fields" in reject["raw_text"]
    written = read_encodings(tmp_path / "out.parquet")
    assert written.record_ids == ["1", "3", "4"]


def test_strict_writes_nothing_and_names_the_first_bad_row(tmp_path) -> None:
    out = tmp_path / "out.parquet"
    with pytest.raises(InvalidRowsError) as raised:
        tokenize_file(GOLDEN.invalid_path, SCHEMA, GOLDEN.secret, out, strict=True)
    message = str(raised.value)
    assert "86 invalid" in message and "row 1:" in message
    assert not out.exists()
    assert rejects_path_for(out).exists()  # the list of what to fix stays at the site


def test_stale_rejects_file_is_removed_when_a_rerun_is_clean(tmp_path) -> None:
    out = tmp_path / "out.parquet"
    with pytest.raises(AllRowsRejectedError):
        tokenize_file(GOLDEN.invalid_path, SCHEMA, GOLDEN.secret, out)
    assert rejects_path_for(out).exists() and not out.exists()
    tokenize_file(GOLDEN.data_path, SCHEMA, GOLDEN.secret, out)
    assert not rejects_path_for(out).exists()


def test_interrupted_run_leaves_nothing_and_keeps_an_older_output(tmp_path) -> None:
    out = tmp_path / "out.parquet"
    tokenize_file(GOLDEN.data_path, SCHEMA, GOLDEN.secret, out)
    before = out.read_bytes()

    def interrupt(records_done: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        tokenize_file(GOLDEN.data_path, SCHEMA, GOLDEN.secret, out, chunk_size=100,
                      on_chunk=interrupt)
    assert out.read_bytes() == before
    assert _leftovers(tmp_path) == []


def test_parquet_input_and_id_column(tmp_path) -> None:
    header, rows = GOLDEN.rows()
    table = pa.table({c: [r[c] for r in rows] for c in header})
    pq.write_table(table, tmp_path / "in.parquet")
    report = tokenize_file(tmp_path / "in.parquet", SCHEMA, GOLDEN.secret,
                           tmp_path / "out.parquet", id_column="rec_id", chunk_size=333)
    written = read_encodings(tmp_path / "out.parquet")
    assert report.records_written == len(rows)
    assert written.record_ids == [r["rec_id"] for r in rows]
    assert [bytes(c) for c in written.clks] == GOLDEN.expected_clks()


def test_parquet_with_integer_columns_is_read_as_text(tmp_path) -> None:
    header, rows = GOLDEN.rows()
    columns = {c: [r[c] for r in rows[:50]] for c in header}
    columns["postcode"] = [int(v) for v in columns["postcode"]]  # 0800 would lose its 0
    pq.write_table(pa.table(columns), tmp_path / "typed.parquet")
    report = tokenize_file(tmp_path / "typed.parquet", SCHEMA, GOLDEN.secret,
                           tmp_path / "out.parquet")
    expected = GOLDEN.expected_clks()[:50]
    same_text = [str(int(r["postcode"])) == r["postcode"] for r in rows[:50]]
    written = dict(zip(read_encodings(tmp_path / "out.parquet").record_ids,
                       read_encodings(tmp_path / "out.parquet").clks, strict=True))
    for i, same in enumerate(same_text):
        if same:
            assert bytes(written[str(i + 1)]) == expected[i]
    assert report.records_read == 50


def test_empty_record_id_is_rejected(tmp_path) -> None:
    header, rows = GOLDEN.rows()
    rows[1]["rec_id"] = ""
    source = _write_csv(tmp_path / "ids.csv", header, [[r[c] for c in header] for r in rows[:3]])
    report = tokenize_file(source, SCHEMA, GOLDEN.secret, tmp_path / "out.parquet",
                           id_column="rec_id")
    assert report.rejected == 1
    with report.rejects_path.open(encoding="utf-8") as handle:
        (reject,) = list(csv.DictReader(handle))
    assert reject["row"] == "2" and reject["fields"] == "rec_id"


def test_secret_sources(tmp_path, monkeypatch) -> None:
    with pytest.raises(SecretError, match="exactly one"):
        read_secret()
    with pytest.raises(SecretError, match="exactly one"):
        read_secret(file=tmp_path / "s", env="X")
    with pytest.raises(SecretError, match="does not exist"):
        read_secret(file=tmp_path / "absent")
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(SecretError, match="is empty"):
        read_secret(file=tmp_path / "empty")
    monkeypatch.delenv("PPRL_TEST_SECRET", raising=False)
    with pytest.raises(SecretError, match="not set"):
        read_secret(env="PPRL_TEST_SECRET")
    monkeypatch.setenv("PPRL_TEST_SECRET", "")
    with pytest.raises(SecretError, match="is empty"):
        read_secret(env="PPRL_TEST_SECRET")
    monkeypatch.setenv("PPRL_TEST_SECRET", "correct horse")
    assert read_secret(env="PPRL_TEST_SECRET") == b"correct horse"
    (tmp_path / "with-newline").write_bytes(b"correct horse\n")
    assert read_secret(file=tmp_path / "with-newline") == b"correct horse\n"


def test_workers_do_not_change_the_output(tmp_path) -> None:
    header, rows = GOLDEN.rows()
    _, invalid = GOLDEN.rows(GOLDEN.invalid_path)
    mixed = rows[:1000] + invalid[:30] + rows[1000:]
    source = _write_csv(tmp_path / "mixed.csv", header, [[r[c] for c in header] for r in mixed])
    outputs = []
    for workers, chunk in ((1, 65536), (2, 97), (2, 1)):
        out = tmp_path / f"out-{workers}-{chunk}.parquet"
        report = tokenize_file(source, SCHEMA, GOLDEN.secret, out, workers=workers,
                               chunk_size=chunk, id_column="rec_id")
        assert report.rejected == 30
        data = read_encodings(out)
        outputs.append((data.record_ids, data.clks.tobytes(),
                        rejects_path_for(out).read_text(encoding="utf-8")))
    assert outputs[0] == outputs[1] == outputs[2]
    assert os.listdir(tmp_path).count("mixed.csv") == 1


# --- sites' files as they come: delimiters, headers, encodings, duplicate ids ----------------

PERSON = load_schema("person")
PERSON_SECRET = b"reader tests: a secret of some length"
PERSON_HEADER = ["given_name", "surname", "date_of_birth", "sex", "address", "zip", "phone"]
PERSON_ROWS = [["jane", "doe", "1980-02-15", "f", "42 elm street", "62704", "2175550199"],
               ["jose", "garcia", "1975-07-01", "m", "12 oak avenue", "10001", "2125550123"],
               ["zoë", "müller", "2001-12-31", "f", "1 main st", "02134", "6175550000"]]


def _person_clks(path) -> list[bytes]:
    return [bytes(c) for c in read_encodings(path).clks]


@pytest.fixture(scope="module")
def reference_clks(tmp_path_factory) -> list[bytes]:
    folder = tmp_path_factory.mktemp("reference")
    source = _write_csv(folder / "ref.csv", PERSON_HEADER, PERSON_ROWS)
    tokenize_file(source, PERSON, PERSON_SECRET, folder / "ref.parquet")
    return _person_clks(folder / "ref.parquet")


@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_the_delimiter_is_detected(tmp_path, reference_clks, delimiter) -> None:
    """The reported case: a semicolon-separated file was read as one column."""
    source = tmp_path / "site.csv"
    source.write_text("\n".join(delimiter.join(r) for r in [PERSON_HEADER, *PERSON_ROWS]) + "\n",
                      encoding="utf-8")
    tokenize_file(source, PERSON, PERSON_SECRET, tmp_path / "out.parquet")
    assert _person_clks(tmp_path / "out.parquet") == reference_clks


def test_excel_sep_line_and_an_explicit_delimiter(tmp_path, reference_clks) -> None:
    excel = tmp_path / "excel.csv"
    excel.write_text("sep=;\n" + "\n".join(";".join(r) for r in [PERSON_HEADER, *PERSON_ROWS]),
                     encoding="utf-8")
    report = tokenize_file(excel, PERSON, PERSON_SECRET, tmp_path / "excel.parquet")
    assert report.records_read == 3 and _person_clks(tmp_path / "excel.parquet") == reference_clks
    # Commas inside the values would mislead detection: the site says which it is.
    odd = tmp_path / "odd.csv"
    rows = [[*r[:4], r[4].replace(" ", ", "), *r[5:]] for r in PERSON_ROWS]
    odd.write_text("\n".join(";".join(r) for r in [PERSON_HEADER, *rows]) + "\n", "utf-8")
    tokenize_file(odd, PERSON, PERSON_SECRET, tmp_path / "odd.parquet", delimiter=";")
    assert len(_person_clks(tmp_path / "odd.parquet")) == 3


def test_headers_match_after_trimming_and_case_folding(tmp_path, reference_clks) -> None:
    """The reported case: ` Given_Name ` did not match `given_name`."""
    header = [" Given_Name ", "SURNAME", "Date_Of_Birth", "Sex", "Address ", "ZIP", "Phone"]
    source = _write_csv(tmp_path / "site.csv", header, PERSON_ROWS)
    tokenize_file(source, PERSON, PERSON_SECRET, tmp_path / "out.parquet")
    assert _person_clks(tmp_path / "out.parquet") == reference_clks
    clash = _write_csv(tmp_path / "clash.csv", ["given_name", "Given_Name", *PERSON_HEADER[1:]],
                       [[r[0], r[0], *r[1:]] for r in PERSON_ROWS])
    with pytest.raises(InputError, match="ambiguous") as raised:
        tokenize_file(clash, PERSON, PERSON_SECRET, tmp_path / "clash.parquet")
    assert "'given_name'" in str(raised.value) and "--column-map" in str(raised.value)


def test_column_map_reads_a_sites_own_headers(tmp_path, reference_clks) -> None:
    header = ["FirstName", "LastName", "DOB", "Gender", "Street", "PostalCode", "HomePhone"]
    source = _write_csv(tmp_path / "site.csv", header, PERSON_ROWS)
    mapping = dict(zip(PERSON_HEADER, header, strict=True))
    tokenize_file(source, PERSON, PERSON_SECRET, tmp_path / "out.parquet", column_map=mapping)
    assert _person_clks(tmp_path / "out.parquet") == reference_clks
    with pytest.raises(InputError, match=r"date_of_birth \(mapped to 'Birth'\)"):
        tokenize_file(source, PERSON, PERSON_SECRET, tmp_path / "x.parquet",
                      column_map={**mapping, "date_of_birth": "Birth"})
    from click.testing import CliRunner

    from api.cli import cli

    secret = tmp_path / "secret"
    secret.write_bytes(PERSON_SECRET)
    result = CliRunner().invoke(cli, [
        "tokenize", str(source), "--schema", "person", "--secret-file", str(secret), "-o",
        str(tmp_path / "cli.parquet"), "--column-map",
        ",".join(f"{k}={v}" for k, v in list(mapping.items())[:4]),
        "--column-map", ",".join(f"{k}={v}" for k, v in list(mapping.items())[4:])])
    assert result.exit_code == 0, result.output
    assert _person_clks(tmp_path / "cli.parquet") == reference_clks


def test_a_cp1252_file_says_which_encoding_to_pass(tmp_path, reference_clks) -> None:
    """The reported case: a file whose every row is cp1252 died with KeyError."""
    text = "\n".join(",".join(r) for r in [PERSON_HEADER, *PERSON_ROWS]) + "\n"
    source = tmp_path / "windows.csv"
    source.write_bytes(text.replace("jane", "jané").replace("jose", "josé").encode("cp1252"))
    with pytest.raises(AllRowsRejectedError) as raised:
        tokenize_file(source, PERSON, PERSON_SECRET, tmp_path / "out.parquet")
    assert "--encoding cp1252" in str(raised.value)
    tokenize_file(source, PERSON, PERSON_SECRET, tmp_path / "out.parquet", encoding="cp1252")
    assert _person_clks(tmp_path / "out.parquet") == reference_clks  # accents fold away
    header_too = tmp_path / "header.csv"
    header_too.write_bytes(text.replace("surname", "apellído").encode("cp1252"))
    with pytest.raises(InputError, match="--encoding cp1252"):
        tokenize_file(header_too, PERSON, PERSON_SECRET, tmp_path / "h.parquet",
                      column_map={"surname": "apellído"})


def test_a_utf16_file_from_excel_is_read_with_its_encoding(tmp_path, reference_clks) -> None:
    text = "\n".join("\t".join(r) for r in [PERSON_HEADER, *PERSON_ROWS]) + "\n"
    source = tmp_path / "unicode.txt"
    source.write_bytes(text.encode("utf-16"))
    with pytest.raises(TokenizerError, match="utf-16"):
        tokenize_file(source, PERSON, PERSON_SECRET, tmp_path / "out.parquet")
    tokenize_file(source, PERSON, PERSON_SECRET, tmp_path / "out.parquet", encoding="utf-16")
    assert _person_clks(tmp_path / "out.parquet") == reference_clks


def test_duplicate_record_ids_are_refused_naming_the_rows(tmp_path) -> None:
    """The reported case: duplicate record ids passed `tokenize` and failed only later."""
    rows = [["p1", *PERSON_ROWS[0]], ["p2", *PERSON_ROWS[1]], ["p1", *PERSON_ROWS[2]],
            ["p3", *PERSON_ROWS[0]], ["p2", *PERSON_ROWS[1]]]
    source = _write_csv(tmp_path / "dupes.csv", ["pseudonym", *PERSON_HEADER], rows)
    out = tmp_path / "out.parquet"
    with pytest.raises(InputError) as raised:
        tokenize_file(source, PERSON, PERSON_SECRET, out, id_column="pseudonym", chunk_size=2)
    message = str(raised.value)
    assert "2 record id(s)" in message and "rows 1, 3" in message and "rows 2, 5" in message
    assert "p1" not in message and not out.exists() and _leftovers(tmp_path) == []


def test_one_feature_rejecting_for_different_reasons_rejects_every_such_row(tmp_path) -> None:
    """Each distinct reason of a feature has its own code: every code must reject its row,
    not only the first reason's."""
    from tokenizer.schema_loader import schema_from_dict

    schema = schema_from_dict({
        "version": 3, "clkConfig": {"l": 64, "kdf": {"type": "HKDF", "keySize": 64}},
        "features": [{"identifier": "age", "format": {"type": "integer", "minimum": 0,
                                                      "maximum": 120},
                      "hashing": {"comparison": {"type": "exact"},
                                  "strategy": {"bitsPerToken": 4}}}]})
    source = _write_csv(tmp_path / "ages.csv", ["age"],
                        [["41"], ["old"], ["130"], ["-4"], ["7"], ["x"]])
    report = tokenize_file(source, schema, PERSON_SECRET, tmp_path / "ages.parquet")
    assert report.records_written == 2 and report.rejected == 4
    with report.rejects_path.open(encoding="utf-8") as handle:
        reasons = {row["row"]: row["reason"] for row in csv.DictReader(handle)}
    assert reasons == {"2": "age is not a base-10 integer", "3": "age is above the maximum 120",
                       "4": "age is below the minimum 0", "6": "age is not a base-10 integer"}


# --- reviewed defects: headerless files, late ragged rows, nested Parquet, bad bytes --------

def test_a_headerless_file_is_refused_without_its_first_rows_values(tmp_path) -> None:
    """The first row of a file without a header is a patient: the error must not print it."""
    source = tmp_path / "noheader.csv"
    source.write_text("\n".join(",".join(r) for r in PERSON_ROWS) + "\n", encoding="utf-8")
    with pytest.raises(InputError) as raised:
        tokenize_file(source, PERSON, PERSON_SECRET, tmp_path / "out.parquet")
    message = str(raised.value)
    assert "noheader.csv" in message and "given_name" in message and "phone" in message
    assert "7 column" in message and "header row" in message
    assert not any(value in message for value in PERSON_ROWS[0] if len(value) > 1)


def _many_person_lines(count: int, bad: int, with_id: bool) -> str:
    """``count`` person rows (well over a MiB of CSV for a large count), row ``bad`` with
    three fields only."""
    header = (["pseudonym"] if with_id else []) + PERSON_HEADER
    lines = [",".join(header)]
    for number in range(1, count + 1):
        fields = [f"p{number}"] if with_id else []
        base = PERSON_ROWS[number % 3]
        fields += base[:3] if number == bad else [f"{base[0]}{number}", *base[1:]]
        lines.append(",".join(fields))
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("with_id", [False, True])
def test_a_ragged_row_after_the_first_mib_is_rejected(tmp_path, with_id) -> None:
    """The reported case: a bad row past the first MiB crashed the run (numpy broadcast)."""
    count, bad = 40000, 30000
    source = tmp_path / "late.csv"
    source.write_text(_many_person_lines(count, bad, with_id), encoding="utf-8")
    assert source.stat().st_size > 2 * (1 << 20)
    out = tmp_path / "out.parquet"
    report = tokenize_file(source, PERSON, PERSON_SECRET, out,
                           id_column="pseudonym" if with_id else None)
    assert report.records_written == count - 1 and report.rejected == 1
    with report.rejects_path.open(encoding="utf-8") as handle:
        (reject,) = list(csv.DictReader(handle))
    assert reject["row"] == str(bad) and "fields where the header has" in reject["reason"]
    expected = [f"p{n}" if with_id else str(n) for n in range(1, count + 1) if n != bad]
    assert read_encodings(out).record_ids == expected


def test_a_parquet_list_column_is_refused_naming_it(tmp_path) -> None:
    columns = {c: [r[i] for r in PERSON_ROWS] for i, c in enumerate(PERSON_HEADER)}
    columns["phone"] = [[1, 2], [3], []]
    pq.write_table(pa.table(columns), tmp_path / "nested.parquet")
    with pytest.raises(InputError) as raised:
        tokenize_file(tmp_path / "nested.parquet", PERSON, PERSON_SECRET,
                      tmp_path / "out.parquet")
    message = str(raised.value)
    assert "nested.parquet" in message and "'phone'" in message and "list<" in message


@pytest.mark.parametrize("count", [3, 40000])
def test_a_byte_that_is_not_cp1252_rejects_only_its_row(tmp_path, count) -> None:
    """The reported case: one 0x81 (undefined in cp1252) failed the whole run, blaming the
    header in a small file and with a UnicodeDecodeError traceback in a large one."""
    bad = max(2, count - 5)
    lines = _many_person_lines(count, 0, False).replace("jane", "jané").split("\n")
    data = "\n".join(lines).encode("cp1252")
    cut = data.index(b"\n", sum(len(line) + 1 for line in lines[:bad]))
    source = tmp_path / "windows.csv"
    source.write_bytes(data[:cut - 3] + b"\x81" + data[cut - 3:])  # in row `bad`'s phone
    out = tmp_path / "out.parquet"
    report = tokenize_file(source, PERSON, PERSON_SECRET, out, encoding="cp1252")
    assert report.records_written == count - 1 and report.rejected == 1
    with report.rejects_path.open(encoding="utf-8") as handle:
        (reject,) = list(csv.DictReader(handle))
    assert reject["row"] == str(bad) and "cp1252" in reject["reason"]
    assert read_encodings(out).record_ids == [str(n) for n in range(1, count + 1) if n != bad]
