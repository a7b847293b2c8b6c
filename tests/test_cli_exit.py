"""The fast exit of ``pprl tokenize/describe/link/dedup`` (``api.cli.main``): the process
ends with ``os._exit`` after a success, so its exit code, its printed report and its files
must still be complete; a failure still exits non-zero with its message; and the command
never imports pandas."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

from tokenizer.encodings_file import read_encodings

from .golden import case

GOLDEN = case("febrl4a_bits_per_token")


def _pprl(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-X", "importtime", "-m", "api.cli",
                           *map(str, args)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONUNBUFFERED": ""})


def _imported(stderr: str) -> set[str]:
    """Modules imported, from ``-X importtime`` (a refused import is listed too, so only
    submodules tell that a package was really loaded)."""
    return {line.rsplit("|", 1)[1].strip() for line in stderr.splitlines()
            if line.startswith("import time:") and "|" in line}


def _loaded(stderr: str, package: str) -> bool:
    return any(name.startswith(f"{package}.") for name in _imported(stderr))


def test_tokenize_and_link_exit_zero_with_complete_outputs(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(GOLDEN.secret)
    _, rows = GOLDEN.rows()
    outputs = []
    for party in ("a", "b"):
        out = tmp_path / f"{party}.parquet"
        run = _pprl("tokenize", GOLDEN.data_path, "--schema", GOLDEN.schema_path,
                    "--secret-file", secret, "--no-normalize", "--allow-short-secret",
                    "-o", out, "--json", "--provider", party)
        assert run.returncode == 0, run.stderr[-2000:]
        report = json.loads(run.stdout)  # the whole report was flushed before the exit
        assert report["records_written"] == len(rows)
        assert read_encodings(out).clks.tobytes() == b"".join(GOLDEN.expected_clks())
        assert not _loaded(run.stderr, "pandas")
        outputs.append(out)
    described = _pprl("describe", outputs[0], "--json")
    assert described.returncode == 0 and json.loads(described.stdout)["records"] == len(rows)
    folder = tmp_path / "linked"
    run = _pprl("link", *outputs, "--threshold", "0.9", "-o", folder)
    assert run.returncode == 0, run.stderr[-2000:]
    assert not _loaded(run.stderr, "pandas") and "scipy.stats" not in _imported(run.stderr)
    # The same records on both sides: every record is matched to itself.
    matches = pq.read_table(folder / "matches.parquet")
    assert matches.num_rows == len(rows)
    assert json.loads((folder / "run.json").read_text(encoding="utf-8"))


def test_a_failing_fast_command_still_fails(tmp_path: Path) -> None:
    run = _pprl("tokenize", tmp_path / "missing.csv", "--schema", GOLDEN.schema_path,
                "--secret-env", "NO_SUCH_VARIABLE_SET", "-o", tmp_path / "out.parquet")
    assert run.returncode != 0
    assert "Error" in run.stderr
    usage = _pprl("link")
    assert usage.returncode == 2


def test_fast_exit_only_for_cpu_runs() -> None:
    from api.cli import _fast_exit_allowed

    assert _fast_exit_allowed(["tokenize", "in.csv", "--schema", "febrl"])
    assert _fast_exit_allowed(["-v", "link", "a", "b", "--backend", "cpu"])
    assert not _fast_exit_allowed(["link", "a", "b", "--backend", "dask"])
    assert not _fast_exit_allowed(["dedup", "a", "--backend=gpu"])
    assert not _fast_exit_allowed(["serve"])
