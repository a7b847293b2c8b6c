"""``pprl tokens``: OpenToken-compatible deterministic tokens, hash-only or encrypted, and
decryption of OpenToken's encrypted token files."""

from __future__ import annotations

import threading
from pathlib import Path

import click
import pyarrow as pa

from ..errors import SecretError, TokenizerError
from ..keys import read_secret
from .crypto import decrypt_tokens, encrypt_tokens, encryption_key
from .engine import RULE_IDS, Counts, hash_signatures, tokenize_batch
from .files import read_people, read_token_rows, write_metadata, write_token_rows, write_tokens
from .kernel_load import hash_kernel

__all__ = ["tokens_command"]


@click.command("tokens")
@click.argument("input_path", metavar="INPUT", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Token file: .csv or .parquet; its metadata JSON is written beside it.")
@click.option("--hashing-secret-file", type=click.Path(dir_okay=False), default=None,
              help="File whose bytes are the hashing secret.")
@click.option("--hashing-secret-env", default=None, metavar="VAR",
              help="Environment variable holding the hashing secret.")
@click.option("--encryption-key-file", type=click.Path(dir_okay=False), default=None,
              help="File holding OpenToken's 32-character encryption key: tokens are "
                   "encrypted (AES-256-GCM) as OpenToken does without --hash-only.")
@click.option("--encryption-key-env", default=None, metavar="VAR",
              help="Environment variable holding the encryption key.")
@click.option("--encoding", default="utf-8", show_default=True,
              help="Text encoding of a CSV input (e.g. cp1252 for Excel on Windows, utf-16).")
@click.option("--decrypt", is_flag=True,
              help="INPUT is an encrypted token file (RuleId,Token,RecordId); write its "
                   "hash-only tokens. Needs the encryption key only.")
def tokens_command(input_path: Path, output: Path, hashing_secret_file: str | None,
                   hashing_secret_env: str | None, encryption_key_file: str | None,
                   encryption_key_env: str | None, encoding: str, decrypt: bool) -> None:
    """OpenToken 1.12.5 tokens T1-T5 of each record in INPUT (CSV or Parquet with OpenToken's
    columns or our person columns, or FHIR R4 Patient resources as NDJSON or a Bundle):
    hash-only tokens byte-identical to OpenToken's, or, with an encryption key, encrypted
    ones that OpenToken decrypts (a random IV each, so never byte-identical). With --decrypt,
    OpenToken's encrypted output back to hash-only tokens."""
    try:
        key_text = None
        if encryption_key_file is not None or encryption_key_env is not None:
            key_text = read_secret(file=encryption_key_file, env=encryption_key_env,
                                   what="encryption key", option="--encryption-key")
        if decrypt:
            if key_text is None:
                raise SecretError("--decrypt needs the encryption key (--encryption-key-file "
                                  "or --encryption-key-env)")
            if hashing_secret_file is not None or hashing_secret_env is not None:
                raise SecretError("--decrypt takes no hashing secret, only the encryption key")
            rule_ids, encrypted, record_ids = read_token_rows(input_path)
            plain = decrypt_tokens(encrypted, encryption_key(key_text), str(input_path))
            write_token_rows(output, pa.array(rule_ids, pa.string()),
                             pa.array(plain, pa.string()), pa.array(record_ids, pa.string()))
            click.echo(f"{len(plain):,} tokens decrypted -> {output}")
            return
        key = None if key_text is None else encryption_key(key_text)
        secret = read_secret(file=hashing_secret_file, env=hashing_secret_env,
                             what="hashing secret", option="--hashing-secret")
        # the hash kernel loads (about a second) while the input is read
        threading.Thread(target=hash_kernel, daemon=True).start()
        columns, ids, rows = read_people(input_path, encoding)
        counts = Counts()
        batch = tokenize_batch(columns, ids, rows, counts)
        tokens = {rule: hash_signatures(batch.signatures[rule], secret) for rule in RULE_IDS}
        if key is not None:
            tokens = {rule: encrypt_tokens(values, key) for rule, values in tokens.items()}
        write_tokens(output, batch.record_ids, tokens)
        meta = write_metadata(output, counts, secret, key_text)
    except TokenizerError as e:
        raise click.ClickException(str(e)) from e
    mode = "encrypted" if key is not None else "hash-only"
    click.echo(f"{rows:,} records -> {output} ({len(RULE_IDS) * rows:,} {mode} tokens), "
               f"metadata {meta}")
