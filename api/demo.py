"""``pprl demo``: the whole job end to end on built-in sample data, in a local folder.

A synthetic population is generated with three providers' extracts (imaging centre, hospital
EHR, payer claims, each with its own errors and duplicates); each provider tokenizes its
extract with the shipped ``person`` schema and a freshly generated linkage secret; the central
linker, which sees only the encodings, links the three; and the result is measured against
the known truth.
"""

from __future__ import annotations

from pathlib import Path

import click

from tokenizer.keys import write_new_key

__all__ = ["demo_command"]

# On the synthetic population, linking all three providers with each one deduplicated (the
# EHR holds 8% duplicates) at 0.75 gives precision 0.995, recall 0.94 (0.7: 0.979, 0.965).
DEMO_THRESHOLD = 0.75


def _step(text: str) -> None:
    click.secho(f"\n$ {text}", bold=True)


@click.command("demo")
@click.option("--dir", "folder", type=click.Path(path_type=Path), default=Path("demo"),
              show_default=True, help="Folder for the sample data, secret and outputs.")
@click.option("--people", type=click.IntRange(min=100), default=20_000, show_default=True,
              help="Size of the synthetic population.")
def demo_command(folder: Path, people: int) -> None:
    """Generate three providers' data, tokenize each, link them and measure the quality."""
    from linker.cli import evaluate_command, link_command
    from synth.cli import synth_command
    from tokenizer.cli import describe_command, tokenize_command
    from tokenizer.parallel import default_workers

    folder.mkdir(parents=True, exist_ok=True)
    ctx = click.get_current_context()
    _step(f"pprl synth {folder} --people {people}")
    ctx.invoke(synth_command, folder=folder, people=people, seed=0)
    secret = folder / "linkage.secret"
    if not secret.exists():
        _step(f"pprl keygen {secret}")
        write_new_key(secret)
    outputs = []
    for provider in ("imaging", "ehr", "claims"):
        source, output = folder / f"{provider}.parquet", folder / f"{provider}.clks.parquet"
        _step(f"pprl tokenize {source} --schema person --secret-file {secret} "
              f"--id-column record_id --provider {provider} -o {output}")
        ctx.invoke(tokenize_command, input_path=source, schema_ref="person",
                   secret_file=secret, secret_env=None, output=output,
                   output_format="parquet", id_column="record_id", strict=False,
                   provider=provider, encoding="utf-8", chunk_size=65536,
                   workers=default_workers(), progress=None)
        outputs.append(output)
    _step(f"pprl describe {outputs[0]}")
    ctx.invoke(describe_command, path=outputs[0], as_json=False)
    linked = folder / "linkage"
    _step(f"pprl link {' '.join(map(str, outputs))} --threshold {DEMO_THRESHOLD} "
          f"--dedup all -o {linked}")
    ctx.invoke(link_command, paths=tuple(outputs), threshold=DEMO_THRESHOLD, folder=linked,
               dedup_parties=("all",), workers=default_workers(), blocking="none")
    _step(f"pprl evaluate {linked} --truth {folder / 'truth.csv'}")
    ctx.invoke(evaluate_command, folder=linked, truth=folder / "truth.csv", plot=None,
               as_json=False)
    click.echo(f"\ndemo outputs are in {folder}/ (all data synthetic)")
