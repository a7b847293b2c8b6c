"""``pprl demo``: the whole job end to end on built-in sample data, in a local folder.

A synthetic population is generated with three providers' extracts (imaging centre, hospital
EHR, payer claims, each with its own errors and duplicates) and the imaging centre's studies
as DICOM files. The imaging centre de-identifies its DICOM with ``pprl deid``, which also
tokenizes each patient and lists the studies; the EHR and claims providers tokenize their
extracts and build their attributes files; all with the shipped ``person`` schema and a
freshly generated linkage secret. The central linker, which sees only encodings, links the
three; the result is measured against the known truth; and a cohort is counted across
imaging and EHR, small cells suppressed, with a representativeness chart.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import click

from tokenizer.keys import write_new_key

__all__ = ["demo_command"]

_DEFINITION = "chest_ct_after_lung_cancer.json"


def _step(text: str) -> None:
    click.secho(f"\n$ {text}", bold=True)


def _key(path: Path) -> Path:
    if not path.exists():
        _step(f"pprl keygen {path}")
        write_new_key(path)
    return path


@click.command("demo")
@click.option("--dir", "folder", type=click.Path(path_type=Path), default=Path("demo"),
              show_default=True, help="Folder for the sample data, secret and outputs.")
@click.option("--people", type=click.IntRange(min=100), default=20_000, show_default=True,
              help="Size of the synthetic population.")
def demo_command(folder: Path, people: int) -> None:
    """Generate three providers' data (imaging as DICOM), de-identify and tokenize at each
    provider, link them, measure the quality, and count a cohort across imaging and EHR."""
    from api.client.cohort_cli import count_command
    from deid.cli import deid_command
    from linker.cli import link_command
    from linker.evaluate_cli import evaluate_command
    from synth.cli import synth_command, synth_truth_command
    from tokenizer.cli import attributes_command, describe_command, tokenize_command
    from tokenizer.parallel import default_workers

    folder.mkdir(parents=True, exist_ok=True)
    ctx = click.get_current_context()
    _step(f"pprl synth {folder} --people {people} --dicom --instances 1")
    ctx.invoke(synth_command, folder=folder, people=people, seed=0, with_dicom=True,
               instances=1)
    secret = _key(folder / "linkage.secret")
    site_key = _key(folder / "imaging-site.key")
    deid_out = folder / "imaging-deid"
    _step(f"pprl deid {folder / 'dicom'} {deid_out} --schema person --secret-file {secret} "
          f"--site-key-file {site_key} --dates full")
    ctx.invoke(deid_command, in_dir=folder / "dicom", out_dir=deid_out, schema_ref="person",
               secret_file=secret, site_key_file=site_key, dates="full",
               workers=default_workers(), replace=True)
    outputs, attributes = [deid_out / "encodings.parquet"], {
        "imaging": deid_out / "attributes.parquet"}
    specs = resources.files("synth") / "specs"
    for provider in ("ehr", "claims"):
        source, output = folder / f"{provider}.parquet", folder / f"{provider}.clks.parquet"
        _step(f"pprl tokenize {source} --schema person --secret-file {secret} "
              f"--id-column record_id --provider {provider} -o {output}")
        ctx.invoke(tokenize_command, input_path=source, schema_ref="person",
                   secret_file=secret, secret_env=None, output=output,
                   output_format="parquet", id_column="record_id", strict=False,
                   provider=provider, encoding="utf-8", chunk_size=65536,
                   workers=default_workers(), progress=None)
        outputs.append(output)
        attributes[provider] = folder / f"{provider}.attributes.parquet"
        spec = Path(str(specs / f"{provider}.json"))
        _step(f"pprl attributes {source} --spec {spec} --id-column record_id "
              f"--provider {provider} -o {attributes[provider]}")
        ctx.invoke(attributes_command, input_path=source, spec_path=spec,
                   id_column="record_id", output=attributes[provider], provider=provider)
    _step(f"pprl describe {outputs[0]}")
    ctx.invoke(describe_command, path=outputs[0], as_json=False)
    linked = folder / "linkage"
    _step(f"pprl link {' '.join(map(str, outputs))} --dedup all -o {linked}")
    ctx.invoke(link_command, paths=tuple(outputs), threshold=None, folder=linked,
               dedup_parties=("all",), workers=default_workers(), blocking="none")
    truth = folder / "truth-deid.csv"  # the imaging records as the linkage names them
    _step(f"pprl synth-truth {folder / 'truth.csv'} {deid_out} -o {truth}")
    ctx.invoke(synth_truth_command, truth=folder / "truth.csv", deid_out=deid_out,
               output=truth)
    _step(f"pprl evaluate {linked} --truth {truth} --estimate")
    ctx.invoke(evaluate_command, folder=linked, truth=truth, plot=None, estimate=True,
               as_json=False)
    definition = Path(str(resources.files("linker.cohorts") / "examples" / _DEFINITION))
    chart = folder / "cohort-representativeness.png"
    parties = " ".join(f"--attributes {p}={a}" for p, a in attributes.items())
    _step(f"pprl cohort count {definition} --linkage {linked} {parties} --chart {chart}")
    ctx.invoke(count_command, definition=definition, linkage=linked,
               attribute_files=tuple(f"{p}={a}" for p, a in attributes.items()),
               chart=chart)
    click.echo(f"\ndemo outputs are in {folder}/ (all data synthetic)")
