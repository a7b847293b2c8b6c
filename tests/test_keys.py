"""Secrets that must match: key check values, `pprl keygen`, short secrets refused, and the
linker refusing inputs made with different linkage secrets."""

from __future__ import annotations

import json
import re
import stat

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from api.cli import cli
from tokenizer.catalog import load_schema
from tokenizer.encodings_file import read_encodings
from tokenizer.errors import SecretError
from tokenizer.keys import MIN_SECRET_BYTES, check_secret_length, key_check_value, read_secret
from tokenizer.pipeline import tokenize_file

from .golden import case

GOLDEN = case("febrl4a_bits_per_token")
SECRET = b"a project secret of more than sixteen bytes"


def invoke(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(cli, list(args), env=env)


def test_keygen_writes_a_256_bit_key_readable_by_its_owner_only(tmp_path) -> None:
    target = tmp_path / "linkage.secret"
    result = invoke("keygen", str(target))
    assert result.exit_code == 0, result.output
    text = target.read_text(encoding="ascii")
    assert re.fullmatch(r"[0-9a-f]{64}", text)  # 32 random bytes as hex, no line break
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    other = tmp_path / "site.key"
    invoke("keygen", str(other))
    assert other.read_text(encoding="ascii") != text


def test_keygen_makes_an_opentoken_encryption_key_that_encrypts(tmp_path) -> None:
    """The new user's case: `pprl tokens --encryption-key-file` takes OpenToken's
    32-character key, which `pprl keygen` (64 hex digits) could not make."""
    key = tmp_path / "tokens.key"
    made = invoke("keygen", str(key), "--opentoken-encryption")
    assert made.exit_code == 0 and "32-character encryption key" in made.output
    assert re.fullmatch(r"[A-Za-z0-9_-]{32}", key.read_text(encoding="ascii"))
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    hashing = tmp_path / "hashing.secret"
    invoke("keygen", str(hashing))
    people = tmp_path / "people.csv"
    people.write_text("RecordId,FirstName,LastName,BirthDate,Sex,PostalCode,"
                      "SocialSecurityNumber\nr1,Jane,Doe,1980-02-15,F,62704,\n")
    out = tmp_path / "tokens.csv"
    done = invoke("tokens", str(people), "-o", str(out), "--hashing-secret-file", str(hashing),
                  "--encryption-key-file", str(key))
    assert done.exit_code == 0, done.output
    wrong = invoke("tokens", str(people), "-o", str(tmp_path / "t2.csv"),
                   "--hashing-secret-file", str(hashing), "--encryption-key-file", str(hashing))
    assert wrong.exit_code != 0 and "pprl keygen --opentoken-encryption" in wrong.output


def test_keygen_never_overwrites(tmp_path) -> None:
    target = tmp_path / "linkage.secret"
    target.write_bytes(b"an existing secret, precious")
    result = invoke("keygen", str(target))
    assert result.exit_code == 1 and "already exists" in result.output
    assert target.read_bytes() == b"an existing secret, precious"


def test_short_secrets_are_refused_unless_allowed(tmp_path, caplog) -> None:
    short = tmp_path / "short"
    short.write_bytes(b"k2")
    args = ["tokenize", str(GOLDEN.data_path), "--schema", str(GOLDEN.schema_path),
            "--secret-file", str(short), "-o", str(tmp_path / "o.parquet")]
    refused = invoke(*args)
    assert refused.exit_code == 1
    assert "2 bytes; at least 16 are needed" in refused.output and "pprl keygen" in refused.output
    assert not (tmp_path / "o.parquet").exists()
    allowed = invoke(*args, "--allow-short-secret")
    assert allowed.exit_code == 0, allowed.output
    assert "accepted because of --allow-short-secret" in caplog.text
    with pytest.raises(SecretError, match="at least 16"):
        check_secret_length(b"x" * (MIN_SECRET_BYTES - 1))
    check_secret_length(b"x" * MIN_SECRET_BYTES)


def test_key_check_value_is_stable_short_and_tells_secrets_apart() -> None:
    value = key_check_value(SECRET)
    assert re.fullmatch(r"[0-9a-f]{16}", value)
    assert key_check_value(SECRET) == value
    assert key_check_value(SECRET + b"\n") != value
    assert key_check_value(SECRET, "site key") != value  # its own context per purpose
    assert value.encode() not in SECRET and SECRET.hex()[:16] != value


def test_every_encodings_file_records_the_key_check_value(tmp_path) -> None:
    out = tmp_path / "a.parquet"
    tokenize_file(GOLDEN.data_path, load_schema(GOLDEN.schema_path), SECRET, out)
    metadata = pq.read_schema(out).metadata
    assert metadata[b"pprl.key_check_value"] == key_check_value(SECRET).encode()
    assert read_encodings(out).metadata.key_check == key_check_value(SECRET)
    assert SECRET not in out.read_bytes()


def test_a_trailing_newline_in_a_secret_file_is_kept_and_warned_about(tmp_path,
                                                                      caplog) -> None:
    path = tmp_path / "secret"
    path.write_bytes(SECRET + b"\n")
    assert read_secret(file=path) == SECRET + b"\n"
    assert "ends with a line break" in caplog.text
    assert SECRET.decode() not in caplog.text


def _tokenized(tmp_path, name: str, secret: bytes, provider: str, output_format: str = "parquet"):
    secret_file = tmp_path / f"{name}.secret"
    secret_file.write_bytes(secret)
    suffix = ".json" if output_format == "clkhash-json" else ".parquet"
    out = tmp_path / f"{name}{suffix}"
    result = invoke("tokenize", str(GOLDEN.data_path), "--schema", str(GOLDEN.schema_path),
                    "--secret-file", str(secret_file), "--provider", provider,
                    "--format", output_format, "-o", str(out), "--workers", "1")
    assert result.exit_code == 0, result.output
    return out


def test_link_refuses_files_made_with_different_secrets(tmp_path) -> None:
    """The reported case: one provider's secret file had a trailing newline, and `pprl link`
    gave 0 links with exit 0."""
    hospital = _tokenized(tmp_path, "hospital", SECRET, "hospital")
    imaging = _tokenized(tmp_path, "imaging", SECRET + b"\n", "imaging")
    result = invoke("link", str(hospital), str(imaging), "-o", str(tmp_path / "linked"))
    assert result.exit_code == 1
    assert "hospital.parquet" in result.output and "imaging.parquet" in result.output
    assert "another linkage secret" in result.output and "line break" in result.output
    assert not (tmp_path / "linked").exists()
    same_secret = invoke("link", str(hospital), str(_tokenized(tmp_path, "same", SECRET, "b")),
                         "-o", str(tmp_path / "ok"))
    assert same_secret.exit_code == 0, same_secret.output
    assert json.loads((tmp_path / "ok" / "run.json").read_text())["entities"] > 0


def test_clkhash_json_is_linked_with_a_warning_that_the_secret_cannot_be_checked(
        tmp_path, caplog) -> None:
    ours = _tokenized(tmp_path, "ours", SECRET, "ours")
    theirs = _tokenized(tmp_path, "theirs", SECRET, "theirs", "clkhash-json")
    result = invoke("link", str(ours), str(theirs), "-o", str(tmp_path / "linked"))
    assert result.exit_code == 0, result.output
    assert "theirs.json records no key check value" in caplog.text
    assert "cannot be checked" in caplog.text
