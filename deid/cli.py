"""``pprl deid`` and ``pprl deid-verify``: the imaging site's commands."""

from __future__ import annotations

import json
from pathlib import Path

import click

from tokenizer.catalog import load_schema
from tokenizer.cli import allow_short_secret_option, normalize_options
from tokenizer.errors import TokenizerError
from tokenizer.keys import check_secret_length, read_secret
from tokenizer.normalize import choose_kinds
from tokenizer.parallel import default_workers

from .errors import DeidError
from .pixels import load_region_rules
from .profile import ProfileOptions

__all__ = ["deid_command", "deid_verify_command"]

# deid-verify's exit code when no identifier was found but a value could not be checked
# (1 is "identifier found", and also click's for an error; 2 is click's usage error).
_UNCHECKED = 3

_FLAG_OPTIONS = [
    ("retain_uids", "Retain UIDs option: keep study, series and instance UIDs."),
    ("retain_patient_characteristics",
     "Retain Patient Characteristics option (sex, age, size, weight, ...)."),
    ("retain_device_identity", "Retain Device Identity option."),
    ("retain_institution_identity", "Retain Institution Identity option."),
    ("clean_descriptors",
     "Clean Descriptors option: keep descriptions with this patient's identifiers removed."),
    ("clean_structured_content", "Clean Structured Content option."),
    ("clean_graphics", "Clean Graphics option."),
    ("retain_safe_private",
     "Retain Safe Private option: keep private elements TCIA's knowledge base marks safe."),
]


def _profile_options(func: click.decorators.FC) -> click.decorators.FC:
    for flag, help_text in reversed(_FLAG_OPTIONS):
        func = click.option(f"--{flag.replace('_', '-')}", flag, is_flag=True,
                            help=help_text)(func)
    return func


@click.command("deid")
@click.argument("in_dir", type=click.Path(path_type=Path, file_okay=False))
@click.argument("out_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option("--schema", "schema_ref", required=True, metavar="NAME|FILE",
              help="Linkage schema shared with the EHR and claims providers (e.g. person).")
@normalize_options
@click.option("--secret-file", type=click.Path(path_type=Path),
              help="File whose bytes are the project's linkage secret (keys the CLKs).")
@click.option("--secret-env", metavar="VAR", help="Environment variable holding it.")
@click.option("--site-key-file", type=click.Path(path_type=Path),
              help="File whose bytes are this site's own key (pseudonyms, UIDs, date shifts).")
@click.option("--site-key-env", metavar="VAR", help="Environment variable holding it.")
@click.option("--dates", type=click.Choice(["modified", "full", "remove"]), default="modified",
              show_default=True,
              help="modified: shift by a per-patient offset (Retain Longitudinal Temporal "
                   "Information, Modified Dates); full: keep; remove: basic profile.")
@_profile_options
@click.option("--clean-pixel-data", "pixel_regions", metavar="RULES.json",
              type=click.Path(path_type=Path, dir_okay=False),
              help="Clean Pixel Data option: blank the regions the rules give for matching "
                   "devices (native pixel data) and export those images; see the README.")
@click.option("--allow-burned-in", is_flag=True,
              help="Export images that may show identifiers in their pixels (BurnedInAnnotation"
                   " YES, secondary capture, ultrasound). Pixel data is not cleaned.")
@click.option("--report", "report_path", type=click.Path(path_type=Path),
              help="Per-file report (CSV). Default: OUT_DIR.deid-report.csv beside OUT_DIR; it "
                   "names input files, so keep it at the site.")
@click.option("--provider", default="imaging", show_default=True, metavar="LABEL",
              help="Party label of OUT_DIR/encodings.parquet.")
@click.option("--replace", is_flag=True,
              help="OUT_DIR was made with other settings or keys: rebuild it beside, then "
                   "swap it in whole (without this, such a run is refused).")
@allow_short_secret_option
@click.option("--workers", type=click.IntRange(min=1), default=default_workers,
              show_default="all cores", help="Processes; the output does not depend on it.")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar (default: only on a terminal).")
@click.option("--json", "as_json", is_flag=True, help="Print the run's summary as JSON.")
def deid_command(in_dir: Path, out_dir: Path, schema_ref: str, secret_file: Path | None,
                 secret_env: str | None, site_key_file: Path | None, site_key_env: str | None,
                 normalize_specs: tuple[str, ...], no_normalize: bool, dates: str,
                 pixel_regions: Path | None, allow_burned_in: bool,
                 report_path: Path | None, provider: str, replace: bool,
                 allow_short_secret: bool, workers: int,
                 progress: bool | None, as_json: bool, **flags: bool) -> None:
    """De-identify the DICOM files under IN_DIR into OUT_DIR (PS3.15 Annex E), tokenizing
    each patient first so that studies stay linkable to EHR and claims.

    Writes OUT_DIR/encodings.parquet (one row per patient: the site pseudonym and its CLK,
    uploaded like any provider's), OUT_DIR/manifest.parquet (pseudonym, CLK, remapped UIDs,
    modality, shifted study date per instance), OUT_DIR/attributes.parquet (the studies, for
    cohorts; study_date only with --dates full) and OUT_DIR/deid-settings.json (the options
    and key check values that made it). The Patient module is normalised as `pprl tokenize`
    normalises rows given the same --normalize/--no-normalize choice. Non-DICOM files are
    skipped; corrupt ones quarantined; both reported. An interrupted run leaves OUT_DIR
    marked INCOMPLETE; running the same command again completes it.
    """
    from .run import deidentify_folder

    try:
        secret = read_secret(file=secret_file, env=secret_env)
        site_key = read_secret(file=site_key_file, env=site_key_env, what="site key",
                               option="--site-key")
        check_secret_length(secret, allow_short=allow_short_secret)
        check_secret_length(site_key, "site key", allow_short=allow_short_secret)
        schema = load_schema(schema_ref)
        kinds = choose_kinds(schema, normalize_specs, off=no_normalize)
        options = ProfileOptions(dates=dates, **flags)  # type: ignore[arg-type]
        rules = load_region_rules(pixel_regions) if pixel_regions is not None else None
        report = deidentify_folder(in_dir, out_dir, schema, secret, site_key, options,
                                   allow_burned_in=allow_burned_in, workers=workers,
                                   report_path=report_path, progress=progress,
                                   pixel_rules=rules, provider=provider, replace=replace,
                                   kinds=kinds)
    except (TokenizerError, DeidError) as e:
        raise click.ClickException(str(e)) from e
    counts = {s: report.count(s) for s in
              ("written", "unchanged", "duplicate", "not-dicom", "quarantined",
                        "withheld")}
    if as_json:
        click.echo(json.dumps({"files": len(report.outcomes), **counts,
                               "patients": report.patients,
                               "rejected_patients": report.rejected_patients,
                               "removed": report.removed,
                               "manifest": str(report.manifest),
                               "encodings": str(report.encodings),
                               "report": str(report.report),
                               "seconds": round(report.seconds, 3)}))
        return
    click.echo(f"{len(report.outcomes):,} files in {report.seconds:.1f} s: "
               + ", ".join(f"{n:,} {s}" for s, n in counts.items())
               + f"; {report.patients:,} patients in {report.manifest} and {report.encodings}")
    if report.removed:
        click.echo(f"{report.removed:,} files of an earlier run that are no output of this one "
                   f"were removed", err=True)
    if counts["quarantined"] or counts["withheld"] or counts["duplicate"] \
            or report.rejected_patients:
        click.echo(f"see {report.report} for the reasons (it names input files: keep it at "
                   "the site)", err=True)


@click.command("deid-verify")
@click.argument("original_dir", type=click.Path(path_type=Path, file_okay=False))
@click.argument("out_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option("--report", "report_path", type=click.Path(path_type=Path),
              help="The report `pprl deid` wrote (default: OUT_DIR.deid-report.csv).")
@click.option("--json", "as_json", is_flag=True, help="Print per-file results as JSON.")
def deid_verify_command(original_dir: Path, out_dir: Path, report_path: Path | None,
                        as_json: bool) -> None:
    """Check every element of every file in OUT_DIR against the identifying values of its
    original in ORIGINAL_DIR; exit 1 if any identifier survived, else 3 if a value could not
    be read (so that element was not checked)."""
    from .run import report_path_for
    from .verify import verify_folder

    try:
        result = verify_folder(original_dir, out_dir, report_path or report_path_for(out_dir))
    except DeidError as e:
        raise click.ClickException(str(e)) from e
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
    else:
        for line in result.lines():
            click.echo(line)
    if result.leaks:
        raise SystemExit(1)
    if result.unreadable:
        raise SystemExit(_UNCHECKED)
