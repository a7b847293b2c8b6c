"""``pprl tokens``: OpenToken-compatible deterministic tokens (hash-only mode)."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import TokenizerError
from ..keys import read_secret
from .engine import RULE_IDS, Counts, hash_signatures, tokenize_batch
from .files import read_people, write_metadata, write_tokens

__all__ = ["tokens_command"]


@click.command("tokens")
@click.argument("input_path", metavar="INPUT", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Token file: .csv or .parquet; its metadata JSON is written beside it.")
@click.option("--hashing-secret-file", type=click.Path(dir_okay=False), default=None,
              help="File whose bytes are the hashing secret.")
@click.option("--hashing-secret-env", default=None, metavar="VAR",
              help="Environment variable holding the hashing secret.")
def tokens_command(input_path: Path, output: Path, hashing_secret_file: str | None,
                   hashing_secret_env: str | None) -> None:
    """OpenToken 1.12.5 tokens T1-T5 of each record in INPUT (CSV or Parquet with OpenToken's
    columns or our person columns), byte-identical to OpenToken's hash-only output."""
    try:
        secret = read_secret(file=hashing_secret_file, env=hashing_secret_env,
                             what="hashing secret", option="--hashing-secret")
        columns, record_ids, rows = read_people(input_path)
        counts = Counts()
        batch = tokenize_batch(columns, record_ids, rows, counts)
        tokens = {rule: hash_signatures(batch.signatures[rule], secret) for rule in RULE_IDS}
        write_tokens(output, batch.record_ids, tokens)
        meta = write_metadata(output, counts, secret)
    except TokenizerError as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"{rows:,} records -> {output} ({len(RULE_IDS) * rows:,} tokens), metadata {meta}")
