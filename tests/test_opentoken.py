"""``pprl tokens`` against OpenToken 1.12.5's own outputs, and its rules as read in its code."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from tokenizer.opentoken import rules
from tokenizer.opentoken.cli import tokens_command

DATA = Path(__file__).parent / "data" / "opentoken"
# Fields that hold versions of the producing tool; everything else must be equal.
VERSION_FIELDS = {"PythonVersion", "JavaVersion", "Platform", "OpenTokenVersion"}
CASES = [("sample.csv", "hashed-output.csv", b"HashingKey", "output.metadata.json"),
         ("test_data.csv", "test_data-hashed.csv", b"Another-Hashing-Secret",
          "test_data-hashed.metadata.json"),
         ("edge_cases/input.csv", "edge_cases/expected-hashed.csv",
          (DATA / "edge_cases/hashing.secret").read_bytes(), "edge_cases/expected.metadata.json")]


@pytest.mark.parametrize(("source", "expected", "secret", "metadata"), CASES,
                         ids=[c[0] for c in CASES])
def test_byte_identical_to_opentoken(tmp_path: Path, source: str, expected: str, secret: bytes,
                                     metadata: str) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_bytes(secret)
    out = tmp_path / "tokens.csv"
    result = CliRunner().invoke(tokens_command, [str(DATA / source), "-o", str(out),
                                                 "--hashing-secret-file", str(secret_file)])
    assert result.exit_code == 0, result.output
    assert secret.decode() not in result.output
    assert out.read_bytes() == (DATA / expected).read_bytes()
    ours = json.loads((tmp_path / "tokens.metadata.json").read_text())
    theirs = json.loads((DATA / metadata).read_text())
    theirs.pop("EncryptionSecretHash", None)   # OpenToken's sample was made encrypted
    assert {k: v for k, v in ours.items() if k not in VERSION_FIELDS} == \
        {k: v for k, v in theirs.items() if k not in VERSION_FIELDS}


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_tokens_in_batches_are_the_tokens_of_one_batch(tmp_path: Path, suffix: str) -> None:
    """A large input is tokenized and written a batch at a time: OpenToken's 2,000 edge cases
    in batches of 7 records give its expected file and metadata counts."""
    import pyarrow.parquet as pq

    from tokenizer.opentoken.engine import Counts, token_batches
    from tokenizer.opentoken.files import read_people, write_metadata, write_tokens
    secret = (DATA / "edge_cases/hashing.secret").read_bytes()
    columns, ids, rows = read_people(DATA / "edge_cases/input.csv")
    counts = Counts()
    out = tmp_path / f"tokens{suffix}"
    write_tokens(out, token_batches(columns, ids, rows, secret, counts, batch_rows=7))
    expected = DATA / "edge_cases/expected-hashed.csv"
    if suffix == ".csv":
        assert out.read_bytes() == expected.read_bytes()
    else:
        assert pq.read_table(out).to_pylist() == [
            dict(zip(("RuleId", "Token", "RecordId"), line.split(","), strict=True))
            for line in expected.read_text().splitlines()[1:]]
    ours = json.loads(write_metadata(out, counts, secret).read_text())
    theirs = json.loads((DATA / "edge_cases/expected.metadata.json").read_text())
    for name in ("TotalRows", "TotalRowsWithInvalidAttributes", "InvalidAttributesByType",
                 "BlankTokensByRule"):
        assert ours[name] == theirs[name], name

def test_parquet_and_person_columns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    people = tmp_path / "people.parquet"
    pq.write_table(pa.table({"record_id": ["a"], "given_name": ["John"], "surname": ["Hopkins"],
                             "date_of_birth": ["1996-05-15"], "sex": ["Female"],
                             "zip": ["86236"], "ssn": ["157-71-1836"]}), people)
    monkeypatch.setenv("OT_SECRET", "Another-Hashing-Secret")
    out = tmp_path / "t.parquet"
    result = CliRunner().invoke(tokens_command, [str(people), "-o", str(out),
                                                 "--hashing-secret-env", "OT_SECRET"])
    assert result.exit_code == 0, result.output
    expected = (DATA / "test_data-hashed.csv").read_text().splitlines()[1:6]
    got = pq.read_table(out).to_pylist()
    assert [f"{r['RuleId']},{r['Token']},{r['RecordId']}" for r in got] == \
        [line.replace("3dead710-9768-4e4e-8883-ff73c24638d5", "a") for line in expected]


@pytest.mark.parametrize(("value", "expected"), [
    ("Dr Emily", (True, "Emily")), ("Dr.John", (True, "DrJohn")), ("Mr. Adam", (True, "Adam")),
    ("José", (True, "Jose")), ("Anne-Marie", (True, "AnneMarie")), ("John Q.", (True, "John")),
    ("Robert III", (True, "Robert")), ("N/A", (False, "")), ("patient", (False, "")),
    ("  ", (False, "")), ("Łukasz", (True, "ukasz"))])
def test_first_name(value: str, expected: tuple[bool, str]) -> None:
    assert rules.first_name(value) == expected


@pytest.mark.parametrize(("value", "normalised"), [  # None: invalid, the rules' tokens blank
    ("Henry III", "Henry"), ("Smith-Jones II", "SmithJones"), ("Ng", "Ng"), ("Li", "Li"),
    ("Xu", "Xu"), ("Wz", None), ("Øster", "ster"), ("Ó Súilleabháin", "OSuilleabhain"),
    ("Test", None), ("Test2", None), ("Jr", None), ("Kowalski Sr", "Kowalski"), ("A", None)])
def test_last_name(value: str, normalised: str | None) -> None:
    ok, norm = rules.last_name(value)
    assert ok is (normalised is not None)
    if ok:
        assert norm == normalised


@pytest.mark.parametrize(("value", "expected"), [
    ("2000-01-31", (True, "2000-01-31")), ("2000/01/31", (True, "2000-01-31")),
    ("01/31/2000", (True, "2000-01-31")), ("01-31-2000", (True, "2000-01-31")),
    ("31.01.2000", (True, "2000-01-31")), ("2000-01-31T10:00:00Z", (True, "2000-01-31")),
    ("2000-01-31T10:00:00", (False, "")), ("20000131", (False, "")),
    ("1909-12-31", (False, "")), ("1910-01-01", (True, "1910-01-01")),
    ("2031-01-01", (False, "")), (" 2000-01-31", (False, "")), ("2000-02-30", (False, ""))])
def test_birth_date(value: str, expected: tuple[bool, str]) -> None:
    assert rules.birth_date(value, today=date(2030, 1, 1)) == expected


@pytest.mark.parametrize(("value", "expected"), [
    ("M", (True, "Male")), (" male ", (True, "Male")), ("f", (True, "Female")),
    ("Female", (True, "Female")), ("FEMALE", (False, "")), ("MALE", (False, "")),
    ("U", (False, "")), ("", (False, ""))])
def test_sex(value: str, expected: tuple[bool, str]) -> None:
    assert rules.sex(value) == expected


@pytest.mark.parametrize(("value", "expected"), [
    ("98101", (True, "98101")), ("98101-1234", (True, "98101")), ("981011234", (True, "98101")),
    ("980", (True, "98000")), ("1740", (True, "17400")), ("00000", (False, "")),
    ("12345", (False, "")), ("55512", (False, "")), ("k1a0b1", (False, "")),
    ("p4l1b5", (True, "P4L 1B5")), ("G2C 2C9", (True, "G2C 2C9")), ("k1a", (True, "k1a")),
    ("1234567", (False, "")), ("", (False, ""))])
def test_postal_code(value: str, expected: tuple[bool, str]) -> None:
    assert rules.postal_code(value) == expected


@pytest.mark.parametrize(("value", "expected"), [
    ("125-22-3895", (True, "125-22-3895")), ("834612579", (True, "834-61-2579")),
    ("900123456", (True, "900-12-3456")), ("900-12-3456", (False, "")),
    ("11569469", (True, "011-56-9469")), ("123-45-6789", (False, "")),
    ("123456789", (True, "123-45-6789")), ("627 29 7635", (False, "")),
    ("123-00-4567", (False, "")), ("123456", (False, ""))])
def test_ssn(value: str, expected: tuple[bool, str]) -> None:
    assert rules.ssn(value) == expected


def test_secret_required(tmp_path: Path) -> None:
    result = CliRunner().invoke(tokens_command, [str(DATA / "sample.csv"), "-o",
                                                 str(tmp_path / "o.csv")])
    assert result.exit_code != 0 and "hashing secret" in result.output
    assert not (tmp_path / "o.csv").exists()


ENCRYPTION_KEY = "Secret-Encryption-Key-Goes-Here."   # OpenToken's sample key (golden README)


def _tokens_cli(tmp_path: Path, *args: str) -> str:
    (tmp_path / "hashing").write_bytes(b"HashingKey")
    (tmp_path / "key").write_text(ENCRYPTION_KEY)
    result = CliRunner().invoke(tokens_command, [a.replace("@", str(tmp_path) + "/")
                                                 for a in args])
    assert result.exit_code == 0, result.output
    assert ENCRYPTION_KEY not in result.output
    return result.output


def test_decrypt_opentoken_encrypted_output(tmp_path: Path) -> None:
    """OpenToken's own encrypted sample decrypts to exactly its hash-only sample."""
    _tokens_cli(tmp_path, str(DATA / "output.csv"), "-o", "@plain.csv", "--decrypt",
                "--encryption-key-file", "@key")
    assert (tmp_path / "plain.csv").read_bytes() == (DATA / "hashed-output.csv").read_bytes()


def test_encrypted_mode(tmp_path: Path) -> None:
    """Decrypted independently (OpenToken's layout: base64(IV 12 | ciphertext | tag 16), key =
    the 32 characters), our encrypted tokens are OpenToken's hash-only ones; blanks stay 64
    zeros; the metadata's secret hashes are OpenToken's; our --decrypt round-trips."""
    import base64

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    _tokens_cli(tmp_path, str(DATA / "sample.csv"), "-o", "@enc.csv", "--hashing-secret-file",
                "@hashing", "--encryption-key-file", "@key")
    ours = [line.split(",") for line in (tmp_path / "enc.csv").read_text().splitlines()]
    expected = [line.split(",") for line in (DATA / "hashed-output.csv").read_text().splitlines()]
    aead = AESGCM(ENCRYPTION_KEY.encode("ascii"))
    decrypted = []
    for rule, token, rid in ours[1:]:
        if token != "0" * 64:
            raw = base64.b64decode(token)
            token = aead.decrypt(raw[:12], raw[12:], None).decode()
        decrypted.append([rule, token, rid])
    assert [ours[0], *decrypted] == expected
    assert len({token for _, token, _ in ours[1:]}) > len({token for _, token, _ in expected})
    meta = json.loads((tmp_path / "enc.metadata.json").read_text())
    theirs = json.loads((DATA / "output.metadata.json").read_text())
    assert meta["EncryptionSecretHash"] == theirs["EncryptionSecretHash"]
    assert meta["HashingSecretHash"] == theirs["HashingSecretHash"]
    _tokens_cli(tmp_path, "@enc.csv", "-o", "@back.csv", "--decrypt", "--encryption-key-file",
                "@key")
    assert (tmp_path / "back.csv").read_bytes() == (DATA / "hashed-output.csv").read_bytes()


@pytest.mark.parametrize(("key", "message"), [
    ("Another-32-character-key-here...", "does not decrypt with this key"),
    ("short", "must be 32 characters")])
def test_decrypt_refuses(tmp_path: Path, key: str, message: str) -> None:
    (tmp_path / "key").write_text(key)
    result = CliRunner().invoke(tokens_command, [str(DATA / "output.csv"), "-o",
                                                 str(tmp_path / "p.csv"), "--decrypt",
                                                 "--encryption-key-file", str(tmp_path / "key")])
    assert result.exit_code != 0 and message in result.output and key not in result.output
    assert not (tmp_path / "p.csv").exists()
    if "decrypt with" in message:
        assert "row 1, column Token" in result.output


def test_fast_rules_agree_with_rules() -> None:
    """Every value a fast (Arrow) rule decides gets the Python rule's verdict and form."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from tokenizer.opentoken.fast_rules import fast_rule
    table = pacsv.read_csv(DATA / "edge_cases/input.csv", convert_options=pacsv.ConvertOptions(
        strings_can_be_null=False, column_types={c: pa.string() for c in rules.ATTRIBUTES}))
    extra = {"FirstName": ["Anne", "NONE", "Test", "a", "Zz", "Jo\n"],
             "LastName": ["Ng", "Li", "Wz", "Abc", "MISSING", "Smith\n"],
             "BirthDate": ["2000-02-29", "2001-02-29", "1909-12-31", "1910-01-01", "0000-01-01",
                           "2999-01-01", "2000-13-01", "2000-1-01", "9999-12-31"],
             "PostalCode": ["12345", "54321x", "00000", "99999", "98101", "000", "5551"],
             "SocialSecurityNumber": ["000-12-3456", "666-12-3456", "900-12-3456",
                                      "123-00-4567", "123-45-0000", "123-45-6789", "1234567",
                                      "12345678", "000000000", "1234567890", "123-45-678"]}
    for attribute, (rule, _) in rules.ATTRIBUTES.items():
        values = sorted(set(table.column(attribute).to_pylist()) | set(extra.get(attribute, [])))
        taken, valid, normalised = fast_rule(attribute, pa.array(values, pa.string()))
        for value, took, ok, norm in zip(values, taken, valid, normalised.to_pylist(),
                                         strict=True):
            if took:
                expected = rule(value)
                assert (bool(ok), norm if ok else "") == (expected[0], expected[1] if ok
                                                          else ""), (attribute, value)
        if attribute != "Sex":
            assert taken.sum() > 0, attribute


@pytest.mark.parametrize("secret", [b"k", b"s" * 64, b"t" * 65, bytes(range(200))])
def test_hash_kernel_matches_hashlib(secret: bytes) -> None:
    """Signatures of every padding case (0-200 bytes, multi-byte UTF-8) and secrets longer
    than a block give hmac/hashlib's tokens; nulls give the blank token."""
    import base64
    import hashlib
    import hmac

    import pyarrow as pa

    from tokenizer.opentoken.engine import BLANK, hash_signatures
    signatures = ["é" * (n // 2) + "x" * (n % 2) for n in range(0, 130)] + ["a" * 200, None]
    expected = [base64.b64encode(hmac.digest(secret, hashlib.sha256(s.encode()).hexdigest()
                                             .encode(), "sha256")).decode() if s is not None
                else BLANK for s in signatures]
    assert hash_signatures(pa.array(signatures, pa.string()), secret).to_pylist() == expected



def test_hash_kernel_lanes_threads_and_repeats() -> None:
    """Enough signatures for several threads, boundaries that are no multiple of the lane
    count, short and long signatures side by side in one lane group, repeats and nulls: every
    token is hmac/hashlib's."""
    import base64
    import hashlib
    import hmac

    import numpy as np
    import pyarrow as pa

    from tokenizer.opentoken.engine import BLANK, hash_signatures
    rng = np.random.default_rng(7)
    sizes = rng.choice([0, 1, 54, 55, 56, 63, 64, 119, 120], size=25_013)
    signatures: list[str | None] = [f"{i}|" + "ü" * (int(n) // 2) + "x" * (int(n) % 2)
                                    for i, n in enumerate(sizes)]
    signatures[100:200] = signatures[0:100]
    signatures[5::997] = [None] * len(signatures[5::997])
    expected = [BLANK if s is None else base64.b64encode(hmac.digest(
        b"secret", hashlib.sha256(s.encode()).hexdigest().encode(), "sha256")).decode()
        for s in signatures]
    assert hash_signatures(pa.array(signatures, pa.string()), b"secret",
                           workers=3).to_pylist() == expected


def test_hash_kernel_compiled_once() -> None:
    """Writable and read-only arrays reach one machine-code version: numba compiles (and
    loads from its cache) one per combination of argument writability, and a second one cost
    a compilation of seconds in the middle of a run."""
    import numpy as np

    from tokenizer.opentoken.kernel_load import hash_kernel
    kernel = hash_kernel()
    out = np.empty((1, kernel.TOKEN_CHARS), dtype=np.uint8)
    read_only = np.frombuffer(b"abc", dtype=np.uint8)
    kernel.hash_tokens(read_only, np.array([0, 3]), 0, 1, kernel.hmac_key(b"k"), out)
    kernel.hash_tokens(read_only.copy(), np.array([0, 3]), 0, 1, kernel.hmac_key(b"k"), out)
    assert len(kernel._hash_range.signatures) == 1


def test_kernel_loads_without_scipy() -> None:
    """Loading the kernel in a fresh process imports no scipy (numba would import it only to
    check for BLAS, half of its start-up), and scipy still imports afterwards."""
    import subprocess
    import sys
    code = ("import sys\n"
            "from tokenizer.opentoken.kernel_load import hash_kernel\n"
            "hash_kernel()\n"
            "print('scipy' in sys.modules)\n"
            "import scipy.linalg\n"
            "print(scipy.linalg.det([[2.0]]))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=Path(__file__).parent.parent)
    assert done.stdout.split() == ["False", "2.0"]


def test_encoding_option_reads_a_cp1252_csv(tmp_path: Path) -> None:
    """`pprl tokens --encoding cp1252`, as `pprl tokenize --encoding`: an Excel export with
    accented names gives the tokens of the same file in UTF-8."""
    text = ("RecordId,FirstName,LastName,BirthDate,Sex,PostalCode\n"
            "r1,José,Müller,1980-02-03,M,10115\nr2,Zoë,Brontë,1975-11-30,F,02139\n")
    (tmp_path / "utf8.csv").write_text(text, encoding="utf-8")
    (tmp_path / "cp1252.csv").write_text(text, encoding="cp1252")
    _tokens_cli(tmp_path, "@utf8.csv", "-o", "@utf8-out.csv", "--hashing-secret-file",
                "@hashing")
    _tokens_cli(tmp_path, "@cp1252.csv", "-o", "@cp1252-out.csv", "--hashing-secret-file",
                "@hashing", "--encoding", "cp1252")
    assert (tmp_path / "cp1252-out.csv").read_text() == (tmp_path / "utf8-out.csv").read_text()
    refused = CliRunner().invoke(tokens_command, [str(tmp_path / "cp1252.csv"), "-o",
                                                  str(tmp_path / "x.csv"),
                                                  "--hashing-secret-file",
                                                  str(tmp_path / "hashing")])
    assert refused.exit_code == 1 and "--encoding" in refused.output
    # given cp1252, a byte cp1252 leaves undefined (0x81) was met with "text in another
    # encoding needs --encoding", the encoding the user had given
    (tmp_path / "bad.csv").write_bytes(text.encode("cp1252") + b"r3,Ann\x81,Lee,1990-01-01,F,"
                                                                  b"10115\n")
    bad = CliRunner().invoke(tokens_command, [str(tmp_path / "bad.csv"), "-o",
                                              str(tmp_path / "y.csv"), "--hashing-secret-file",
                                              str(tmp_path / "hashing"), "--encoding", "cp1252"])
    assert bad.exit_code == 1 and "holds bytes that are not cp1252 text" in bad.output
    assert "needs --encoding" not in bad.output and "Ann" not in bad.output


def _patient(number: int, given: str, family: str, birth: str, gender: str, zip_code: str
             ) -> dict:
    return {"resourceType": "Patient", "id": f"p{number}", "gender": gender,
            "birthDate": birth, "name": [{"use": "official", "family": family,
                                          "given": [given]}],
            "address": [{"use": "home", "line": ["1 Main St"], "city": "Springfield",
                         "postalCode": zip_code}]}


def test_fhir_patients_give_the_tokens_of_the_same_people_as_csv(tmp_path: Path) -> None:
    """FHIR R4 Patient resources (NDJSON, a Bundle) are read as `pprl tokenize` reads them:
    the same people written as an OpenToken CSV get the same tokens; a resource that is not a
    Patient is left out with a warning naming its line, never a value."""
    people = [(1, "John", "Hopkins", "1996-05-15", "male", "86236"),
              (2, "Mary", "O'Neil", "1970-01-31", "female", "02134")]
    csv_file = tmp_path / "people.csv"
    csv_file.write_text("RecordId,FirstName,LastName,BirthDate,Sex,PostalCode\n" + "".join(
        f"p{n},{g},{f},{b},{s},{z}\n" for n, g, f, b, s, z in people))
    ndjson = tmp_path / "people.ndjson"
    ndjson.write_text("\n".join(json.dumps(_patient(*p)) for p in people) + "\n"
                      + json.dumps({"resourceType": "Observation", "id": "o1"}) + "\n")
    bundle = tmp_path / "people.json"
    bundle.write_text(json.dumps({"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": _patient(*p)} for p in people]}))
    (tmp_path / "secret").write_bytes(b"HashingKey")
    outputs = {}
    for source in (csv_file, ndjson, bundle):
        out = tmp_path / f"{source.stem}-{source.suffix[1:]}.csv"
        result = CliRunner().invoke(tokens_command, [str(source), "-o", str(out),
                                                     "--hashing-secret-file",
                                                     str(tmp_path / "secret")])
        assert result.exit_code == 0, result.output
        outputs[source.suffix] = out.read_text()
    assert outputs[".csv"] == outputs[".ndjson"] == outputs[".json"]
    blank = "0" * 64
    assert sum(line.split(",")[1] != blank for line in outputs[".csv"].splitlines()[1:]) == 8
    # T1, T2, T3 and T5 for both people; T4 needs an SSN
    assert outputs[".csv"].count("\n") == 1 + 5 * len(people)
    only_bad = tmp_path / "bad.ndjson"
    only_bad.write_text(json.dumps({"resourceType": "Observation"}) + "\n")
    result = CliRunner().invoke(tokens_command, [str(only_bad), "-o", str(tmp_path / "x.csv"),
                                                 "--hashing-secret-file",
                                                 str(tmp_path / "secret")])
    assert result.exit_code != 0
    assert "line 1" in result.output and "not Patient" in result.output
    assert not (tmp_path / "x.csv").exists()


@pytest.mark.parametrize(("name", "delimiter"), [("people.csv", ";"), ("people.tsv", "\t"),
                                                 ("people.txt", "|")])
def test_other_delimiters_are_found_as_tokenize_finds_them(tmp_path: Path, name: str,
                                                           delimiter: str) -> None:
    """A semicolon file was read as one column: every token blank, exit 0."""
    rows = [["RecordId", "FirstName", "LastName", "BirthDate", "Sex", "PostalCode"],
            ["p1", "John", "Hopkins", "1996-05-15", "male", "86236"]]
    (tmp_path / "secret").write_bytes(b"HashingKey")
    outputs = []
    for source, sep in ((tmp_path / "comma.csv", ","), (tmp_path / name, delimiter)):
        source.write_text("".join(sep.join(row) + "\n" for row in rows))
        out = source.with_suffix(".tokens.csv")
        result = CliRunner().invoke(tokens_command, [str(source), "-o", str(out),
                                                     "--hashing-secret-file",
                                                     str(tmp_path / "secret")])
        assert result.exit_code == 0, result.output
        outputs.append(out.read_text())
    assert outputs[0] == outputs[1]
    assert "0" * 64 not in outputs[1].splitlines()[1]  # T1 is a real token


_PEOPLE_CSV = ("RecordId,FirstName,LastName,BirthDate,Sex,PostalCode\n"
               "r1,José,Müller,1980-02-03,M,10115\nr2,Zoë,Brontë,1975-11-30,F,02139\n")


def test_encoding_option_reads_a_utf16_csv(tmp_path: Path) -> None:
    """The reported case: `--encoding utf-16` (Excel's "Unicode text") could not be read."""
    (tmp_path / "utf8.csv").write_text(_PEOPLE_CSV, encoding="utf-8")
    (tmp_path / "utf16.csv").write_text(_PEOPLE_CSV, encoding="utf-16")
    _tokens_cli(tmp_path, "@utf8.csv", "-o", "@utf8-out.csv", "--hashing-secret-file",
                "@hashing")
    _tokens_cli(tmp_path, "@utf16.csv", "-o", "@utf16-out.csv", "--hashing-secret-file",
                "@hashing", "--encoding", "utf-16")
    assert (tmp_path / "utf16-out.csv").read_text() == (tmp_path / "utf8-out.csv").read_text()


def test_a_ragged_row_is_named_and_the_encoding_not_blamed(tmp_path: Path) -> None:
    """The reported case: a row with too few fields failed the run with advice to pass
    --encoding and no row number. OpenToken's output has no place for skipped rows, so the
    run fails, naming the data row and the field counts, never the row's values."""
    lines = _PEOPLE_CSV.splitlines()
    (tmp_path / "ragged.csv").write_text("\n".join([*lines, "r3,Ann,Lee", lines[1]]) + "\n",
                                         encoding="utf-8")
    (tmp_path / "secret").write_bytes(b"HashingKey")
    result = CliRunner().invoke(tokens_command, [str(tmp_path / "ragged.csv"), "-o",
                                                 str(tmp_path / "out.csv"),
                                                 "--hashing-secret-file",
                                                 str(tmp_path / "secret")])
    assert result.exit_code == 1
    assert "ragged.csv" in result.output and "data row 3" in result.output
    assert "3 fields where the header has 6" in result.output
    assert "--encoding" not in result.output and "Ann" not in result.output
    assert not (tmp_path / "out.csv").exists()


def test_a_pq_file_is_read_as_parquet(tmp_path: Path) -> None:
    """The reported case: `.pq`, which `pprl tokenize` reads as Parquet, was read as CSV."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    (tmp_path / "people.csv").write_text(_PEOPLE_CSV, encoding="utf-8")
    as_text = pacsv.ConvertOptions(column_types=dict.fromkeys(_PEOPLE_CSV.split("\n")[0]
                                                              .split(","), pa.string()))
    pq.write_table(pacsv.read_csv(tmp_path / "people.csv", convert_options=as_text),
                   tmp_path / "people.pq")
    _tokens_cli(tmp_path, "@people.csv", "-o", "@csv-out.csv", "--hashing-secret-file",
                "@hashing")
    _tokens_cli(tmp_path, "@people.pq", "-o", "@pq-out.csv", "--hashing-secret-file",
                "@hashing")
    assert (tmp_path / "pq-out.csv").read_text() == (tmp_path / "csv-out.csv").read_text()
