"""The ``pprl`` command as a user runs it: real processes, real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from api.cli import cli

from .golden import case

GOLDEN = case("febrl4b_with_invalid_rows")
COMMANDS = ["tokenize", "attributes", "describe", "schemas", "keygen", "demo", "link",
            "dedup", "evaluate", "synth", "synth-truth", "deid", "deid-verify", "serve",
            "worker", "admin", "project", "upload", "run", "status", "results", "cohort",
            "audit", "risk", "tokens"]
SUBCOMMANDS = {"admin": ["prune", "revoke", "token", "tokens"], "audit": ["show", "verify"],
               "project": ["create", "policy", "reader-token", "revoke", "show", "token",
                           "tokens"],
               "cohort": ["approve", "catalog", "count", "dicom", "download", "generalise",
                          "reject", "relabel", "request", "requests", "risk-report"]}


def pprl(*args: str, env: dict[str, str] | None = None, check: bool = True
         ) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "api.cli", *args], capture_output=True,
                            text=True, env={**os.environ, **(env or {})}, timeout=300)
    if check and result.returncode:
        raise AssertionError(f"pprl {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def test_every_command_has_help() -> None:
    top = pprl("--help").stdout
    listed = [line.split()[0] for line in top.split("Commands:", 1)[1].splitlines()
              if line.startswith("  ") and not line.startswith("   ")]
    assert listed == sorted(COMMANDS)
    context = click.Context(cli)
    loaded = {name: cli.get_command(context, name) for name in COMMANDS}
    groups = {name: sorted(command.commands) for name, command in loaded.items()
              if isinstance(command, click.Group)}
    assert groups == SUBCOMMANDS
    runner = CliRunner()
    for command in COMMANDS:
        for sub in SUBCOMMANDS.get(command, [""]):
            args = [command, sub] if sub else [command]
            shown = runner.invoke(cli, [*args, "--help"], prog_name="pprl")
            assert shown.exit_code == 0, shown.output
            assert f"Usage: pprl {' '.join(args)}" in shown.output


def test_tokenize_with_secret_from_environment_never_leaks_it(tmp_path) -> None:
    secret = GOLDEN.secret.decode()
    out = tmp_path / "out.parquet"
    result = pprl("-vv", "tokenize", str(GOLDEN.data_path), "--schema", str(GOLDEN.schema_path),
                  "--secret-env", "PPRL_SECRET_UNDER_TEST", "-o", str(out),
                  env={"PPRL_SECRET_UNDER_TEST": secret})
    assert "2,414 encodings" in result.stdout
    for text in (result.stdout, result.stderr, out.read_bytes().decode("latin-1")):
        assert secret not in text


def test_tokenize_reports_rejects_and_strict_fails(tmp_path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_bytes(GOLDEN.secret)
    out = tmp_path / "bad.parquet"
    args = ["tokenize", str(GOLDEN.invalid_path), "--schema", str(GOLDEN.schema_path),
            "--secret-file", str(secret_file), "-o", str(out)]
    result = pprl(*args, check=False)
    assert result.returncode == 1 and not out.exists()
    assert "all 86 rows were rejected" in result.stderr
    assert "52 x state is not one of the 9 values the schema allows" in result.stderr
    assert "bad.parquet.rejects.csv" in result.stderr and "keep it at the site" in result.stderr
    strict = pprl(*args, "--strict", check=False)
    assert strict.returncode == 1
    assert "--strict" in strict.stderr and "row 1:" in strict.stderr


@pytest.mark.parametrize(("extra", "message"), [
    ([], "exactly one of --secret-file or --secret-env"),
    (["--secret-file", "/nonexistent/secret"], "does not exist"),
    (["--secret-env", "PPRL_UNSET_VARIABLE_FOR_TEST"], "not set"),
])
def test_secret_problems_are_clear_errors(tmp_path, extra, message) -> None:
    result = pprl("tokenize", str(GOLDEN.data_path), "--schema", "febrl", "-o",
                  str(tmp_path / "o.parquet"), *extra, check=False)
    assert result.returncode == 1 and message in result.stderr
    assert "Traceback" not in result.stderr


def test_schema_errors_name_the_json_path(tmp_path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"version": 3, "clkConfig": {"l": "big"}, "features": []}))
    secret = tmp_path / "s"
    secret.write_bytes(b"x" * 16)
    result = pprl("tokenize", str(GOLDEN.data_path), "--schema", str(bad), "--secret-file",
                  str(secret), "-o", str(tmp_path / "o.parquet"), check=False)
    assert result.returncode == 1
    assert "$.clkConfig.l" in result.stderr and "bad.json" in result.stderr


def test_describe_shows_count_length_fingerprint_key_check_and_histogram(tmp_path) -> None:
    secret = tmp_path / "s"
    secret.write_bytes(GOLDEN.secret)
    out = tmp_path / "o.parquet"
    pprl("tokenize", str(GOLDEN.data_path), "--schema", str(GOLDEN.schema_path),
         "--secret-file", str(secret), "-o", str(out))
    text = pprl("describe", str(out)).stdout
    assert "2,414" in text and "1024" in text and "popcount histogram" in text and "#" in text
    summary = json.loads(pprl("describe", str(out), "--json").stdout)
    from tokenizer.catalog import load_schema
    from tokenizer.keys import key_check_value

    assert summary["records"] == 2414 and summary["l"] == 1024
    assert summary["schema_fingerprint"] == load_schema(GOLDEN.schema_path).fingerprint
    assert summary["key_check_value"] == key_check_value(GOLDEN.secret)
    assert f"key check value     {key_check_value(GOLDEN.secret)}" in text


def test_schemas_lists_and_prints_shipped_schemas() -> None:
    listing = pprl("schemas").stdout
    assert "febrl" in listing and "person" in listing and "fingerprint" in listing
    febrl = json.loads(pprl("schemas", "febrl").stdout)
    assert febrl["version"] == 3
    assert pprl("schemas", "nope", check=False).returncode == 1


def test_demo_runs_end_to_end(tmp_path) -> None:
    result = pprl("demo", "--dir", str(tmp_path / "demo"), "--people", "4000")
    assert result.stdout.count("encodings from") == 2  # EHR and claims; imaging by deid
    assert "patients in" in result.stdout  # pprl deid's summary
    assert "popcount histogram" in result.stdout and "links" in result.stdout
    linked = result.stdout.split("$ pprl link")[1].split("$ pprl evaluate")[0]
    assert "across parties chosen from the data" in linked and "  within ehr: 0." in linked
    evaluated = result.stdout.split("$ pprl evaluate")[1]
    quality = evaluated.split("precision ")[1].split()
    assert float(quality[0]) > 0.97 and float(quality[2]) > 0.95
    assert "pairs across parties)" in evaluated  # the estimate beside the truth
    assert (tmp_path / "demo" / "linkage" / "entities.parquet").is_file()
    assert oct((tmp_path / "demo" / "linkage.secret").stat().st_mode & 0o777) == "0o600"
    cohort = result.stdout.split("$ pprl cohort count")[1]
    assert int(cohort.split("diagnosis: ")[1].split()[0]) >= 11  # entities, not suppressed
    assert (tmp_path / "demo" / "cohort-representativeness.png").read_bytes()[:4] == \
        b"\x89PNG"
