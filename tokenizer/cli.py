"""``pprl tokenize``, ``pprl describe``, ``pprl schemas`` and ``pprl keygen``: the provider's
commands."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import numpy as np

from .catalog import load_schema, shipped_schema_text, shipped_schemas
from .encodings_file import EncodingSet, read_encodings
from .errors import TokenizerError
from .keys import check_secret_length, read_secret, write_new_key
from .normalize import DATE_ORDERS, KINDS, choose_kinds
from .parallel import default_workers
from .pipeline import tokenize_file
from .readers import DELIMITERS, parse_column_map

__all__ = ["tokenize_command", "describe_command", "schemas_command", "keygen_command",
           "attributes_command", "allow_short_secret_option", "normalize_options"]

allow_short_secret_option = click.option(
    "--allow-short-secret", is_flag=True,
    help="Accept keys and secrets under 16 bytes (with a warning), only to reproduce other "
         "tools' test vectors (clkhash's examples use 1-byte secrets).")


def normalize_options(func: click.decorators.FC) -> click.decorators.FC:
    """``--normalize``/``--no-normalize``, the same on every command that encodes (decided by
    :func:`tokenizer.normalize.choose_kinds`): the same choice gives the same CLKs."""
    func = click.option(
        "--no-normalize", is_flag=True,
        help="Encode values exactly as written, as clkhash does (shipped schemas too).")(func)
    return click.option(
        "--normalize", "normalize_specs", multiple=True, metavar="FEATURE=KIND,...",
        help=f"Normalise these features of a custom schema (KIND: {', '.join(sorted(KINDS))}); "
             f"the shipped schemas are normalised by default.")(func)


def _delimiter(value: str | None) -> str | None:
    if value is None:
        return None
    named = {name: d for d, name in DELIMITERS.items()}
    value = named.get(value, "\t" if value == "\\t" else value)
    if len(value) != 1:
        raise click.BadParameter("give one character, or comma, semicolon, tab or pipe")
    return value


def _fail(error: Exception) -> click.ClickException:
    return click.ClickException(str(error))


@click.command("tokenize")
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@click.option("--schema", "schema_ref", required=True, metavar="NAME|FILE",
              help="Shipped schema name (see `pprl schemas`) or a linkage-schema v3 JSON file.")
@click.option("--secret-file", type=click.Path(path_type=Path),
              help="File whose bytes are the linkage secret shared by the project's providers.")
@click.option("--secret-env", metavar="VAR",
              help="Environment variable holding the linkage secret (UTF-8).")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
              help="Encodings file to write (rejected rows go to OUTPUT.rejects.csv).")
@click.option("--format", "output_format", type=click.Choice(["parquet", "clkhash-json"]),
              default="parquet", show_default=True,
              help="Parquet encodings file, or clkhash's {\"clks\": [...]} JSON.")
@click.option("--id-column", metavar="COLUMN",
              help="Column holding the record id (a site pseudonym, never an MRN). "
                   "Default: the data-row number, 1 for the first row after the header; for FHIR "
                   "input, the Patient's logical id (column id).")
@click.option("--strict", is_flag=True, help="Fail, writing nothing, if any row is invalid.")
@click.option("--provider", metavar="LABEL", help="Provider label stored in the file metadata.")
@click.option("--encoding", default="utf-8", show_default=True,
              help="Text encoding of a CSV input (e.g. cp1252 for Excel on Windows, utf-16).")
@click.option("--delimiter", metavar="CHAR",
              help="Field delimiter of a CSV input (a character, or comma, semicolon, tab, "
                   "pipe). Default: Excel's sep= line, else detected from the header.")
@click.option("--column-map", "column_map", multiple=True, metavar="SCHEMA_COL=SITE_COL,...",
              help="Read a schema column from a site's own header (repeatable). Headers are "
                   "matched after trimming and case folding anyway.")
@click.option("--date-format", "date_order", type=click.Choice(DATE_ORDERS),
              help="How to read dates such as 03/04/1980: MDY (US) or DMY. Without it, "
                   "rows whose date could be either are rejected with that reason.")
@click.option("--with-tokens", is_flag=True,
              help="Also write each record's OpenToken tokens T1-T5 (hash-only, as `pprl "
                   "tokens` computes them) as columns token_T1..token_T5, for `pprl link "
                   "--tokens`. Needs the hashing secret.")
@click.option("--hashing-secret-file", type=click.Path(dir_okay=False), default=None,
              help="With --with-tokens: file whose bytes are OpenToken's hashing secret.")
@click.option("--hashing-secret-env", default=None, metavar="VAR",
              help="With --with-tokens: environment variable holding the hashing secret.")
@normalize_options
@allow_short_secret_option
@click.option("--chunk-size", type=click.IntRange(min=1), default=65536, show_default=True,
              help="Records per chunk; bounds memory, never changes the output.")
@click.option("--workers", type=click.IntRange(min=1), default=default_workers,
              show_default="all cores", help="Encoding processes.")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar (default: only on a terminal).")
@click.option("--json", "as_json", is_flag=True, help="Print the run's report as JSON.")
def tokenize_command(input_path: Path, schema_ref: str, secret_file: Path | None,
                     secret_env: str | None, output: Path, output_format: str,
                     id_column: str | None, strict: bool, provider: str | None, encoding: str,
                     chunk_size: int, workers: int, progress: bool | None,
                     as_json: bool = False, delimiter: str | None = None,
                     column_map: tuple[str, ...] = (), date_order: str | None = None,
                     normalize_specs: tuple[str, ...] = (), no_normalize: bool = False,
                     allow_short_secret: bool = False, with_tokens: bool = False,
                     hashing_secret_file: str | None = None,
                     hashing_secret_env: str | None = None) -> None:
    """Encode the identifiers in INPUT (CSV, Parquet, or FHIR R4 Patient resources as
    bulk-export .ndjson or a Bundle .json) into CLKs.

    Run it inside the provider's network: the output holds no identifier and can be uploaded;
    the linkage secret never leaves the site and is never taken from the command line.
    Values are normalised first (case, accents, spaces, punctuation, phone digits, ZIP, sex
    codes, dates), the same way `pprl deid` normalises the DICOM Patient module.
    """
    try:
        secret = read_secret(file=secret_file, env=secret_env)
        check_secret_length(secret, allow_short=allow_short_secret)
        token_secret = None
        if with_tokens:
            token_secret = read_secret(file=hashing_secret_file, env=hashing_secret_env,
                                       what="hashing secret", option="--hashing-secret")
        elif hashing_secret_file is not None or hashing_secret_env is not None:
            raise click.UsageError("a hashing secret is used with --with-tokens only")
        schema = load_schema(schema_ref)
        kinds = choose_kinds(schema, normalize_specs, off=no_normalize)
        report = tokenize_file(input_path, schema, secret, output,
                               output_format=output_format,  # type: ignore[arg-type]
                               id_column=id_column, strict=strict, chunk_size=chunk_size,
                               provider=provider, encoding=encoding, progress=progress,
                               workers=workers, kinds=kinds,
                               date_order=date_order,  # type: ignore[arg-type]
                               delimiter=_delimiter(delimiter),
                               column_map=parse_column_map(column_map),
                               token_secret=token_secret)
    except TokenizerError as e:
        raise _fail(e) from e
    if as_json:
        click.echo(json.dumps({
            "output": str(report.output), "records_read": report.records_read,
            "records_written": report.records_written, "rejected": report.rejected,
            "rejects_file": str(report.rejects_path) if report.rejects_path else None,
            "empty_clks": report.empty_clks,
            "seconds": round(report.seconds, 4),
            "records_per_second": round(report.records_per_second),
            "schema_fingerprint": schema.fingerprint}))
        return
    click.echo(f"{report.output}: {report.records_written:,} encodings from "
               f"{report.records_read:,} records in {report.seconds:.1f} s "
               f"({report.records_per_second:,.0f} records/s)")
    if report.empty_clks:
        click.echo(f"warning: {report.empty_clks:,} record(s) hold no identifier (every field "
                   f"blank): their CLKs have no bit set and link with nothing", err=True)
    if report.rejected:
        click.echo(f"{report.rejected:,} invalid rows skipped, each with its reason, in "
                   f"{report.rejects_path}. That file holds identifiers: keep it at the site.",
                   err=True)
        for reason, count in report.reject_reasons:
            click.echo(f"  {count:,} x {reason}", err=True)


def _histogram(popcounts: np.ndarray, length: int, bins: int = 16, width: int = 40) -> list[str]:
    if len(popcounts) == 0:
        return ["(no encodings)"]
    low, high = int(popcounts.min()), int(popcounts.max())
    edges = np.linspace(low, high + 1, min(bins, high - low + 1) + 1)
    counts, _ = np.histogram(popcounts, bins=edges)
    peak = max(int(counts.max()), 1)
    lines = []
    for count, start, stop in zip(counts, edges[:-1], edges[1:], strict=True):
        label = f"{int(np.ceil(start)):>5}-{int(np.ceil(stop)) - 1:<5}"
        bar = "#" * max(int(round(width * count / peak)), 1 if count else 0)
        lines.append(f"  {label} {bar} {count:,}")
    return lines


def _summary(path: Path, data: EncodingSet) -> dict[str, object]:
    pops = data.popcounts.astype(np.int64)
    meta = data.metadata
    return {
        "file": str(path),
        "format": meta.source_format,
        "records": len(data),
        "l": meta.bloom_filter_bits,
        "schema_fingerprint": meta.schema_fingerprint,
        "key_check_value": meta.key_check,
        "provider": meta.provider,
        "tool_version": meta.tool_version,
        "popcount": {
            "min": int(pops.min()) if len(pops) else None,
            "mean": round(float(pops.mean()), 2) if len(pops) else None,
            "max": int(pops.max()) if len(pops) else None,
            "fill": round(float(pops.mean()) / meta.bloom_filter_bits, 4)
            if len(pops) and meta.bloom_filter_bits else None,
        },
    }


@click.command("describe")
@click.argument("path", metavar="FILE", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def describe_command(path: Path, as_json: bool) -> None:
    """Summarise an encodings file (Parquet or clkhash JSON): count, l, schema fingerprint,
    key check value of the linkage secret, popcount histogram.

    Providers compare key check values before uploading: equal values, same secret."""
    try:
        data = read_encodings(path)
    except TokenizerError as e:
        raise _fail(e) from e
    summary = _summary(path, data)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    pop = summary["popcount"]
    assert isinstance(pop, dict)
    click.echo(f"file                {path}")
    click.echo(f"format              {summary['format']}")
    click.echo(f"records             {summary['records']:,}")
    click.echo(f"l (bits)            {summary['l']}")
    click.echo(f"schema fingerprint  {summary['schema_fingerprint'] or '(none: clkhash JSON)'}")
    click.echo(f"key check value     {summary['key_check_value'] or '(none: cannot be checked)'}")
    if summary["provider"]:
        click.echo(f"provider            {summary['provider']}")
    if summary["tool_version"]:
        click.echo(f"made by             pprl-imaging {summary['tool_version']}")
    if pop["mean"] is not None:
        click.echo(f"popcount            min {pop['min']}  mean {pop['mean']}  max {pop['max']}"
                   f"  (fill {pop['fill']:.1%})")
    click.echo("popcount histogram")
    for line in _histogram(data.popcounts, data.metadata.bloom_filter_bits):
        click.echo(line)


@click.command("schemas")
@click.argument("name", required=False)
def schemas_command(name: str | None) -> None:
    """List the shipped linkage schemas, or print one (to copy and adapt)."""
    if name is None:
        for shipped in shipped_schemas():
            schema = load_schema(shipped.name)
            columns = ", ".join(f.identifier for f in schema.hashed_features)
            click.echo(f"{shipped.name}\n  {shipped.description}\n  columns: {columns}\n"
                       f"  l={schema.bloom_filter_bits}  fingerprint {schema.fingerprint}\n")
        return
    try:
        sys.stdout.write(shipped_schema_text(name))
    except TokenizerError as e:
        raise _fail(e) from e


@click.command("keygen")
@click.argument("path", metavar="FILE", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--opentoken-encryption", is_flag=True,
              help="Write an encryption key for `pprl tokens --encryption-key-file` instead: "
                   "32 characters, as OpenToken's keys are (192 random bits).")
def keygen_command(path: Path, opentoken_encryption: bool) -> None:
    """Write a new random 256-bit key to FILE (64 hex digits, no line break, mode 0600).

    Use it for a project's linkage secret (made once, then passed to every provider out of
    band), for each site's own key and for a hashing secret of tokens. An existing file is
    never overwritten.
    """
    try:
        write_new_key(path, opentoken_encryption)
    except TokenizerError as e:
        raise _fail(e) from e
    kind = "32-character encryption key" if opentoken_encryption else "256-bit key"
    click.echo(f"{path}: new {kind}, readable by you only")


@click.command("attributes")
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@click.option("--spec", "spec_path", required=True, type=click.Path(path_type=Path),
              help="JSON column spec: name, type, role, and from/derive per column (README).")
@click.option("--id-column", required=True, metavar="COLUMN",
              help="Column holding the record id (the same as for `pprl tokenize`).")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
              help="Attributes file to write (Parquet).")
@click.option("--provider", metavar="LABEL", help="Provider label stored in the file.")
@click.option("--encoding", default="utf-8", show_default=True,
              help="Text encoding of a CSV input.")
@click.option("--delimiter", metavar="CHAR", help="Field delimiter of a CSV input.")
@click.option("--date-format", "date_order", type=click.Choice(DATE_ORDERS),
              help="How to read dates such as 03/04/1980: MDY (US) or DMY.")
def attributes_command(input_path: Path, spec_path: Path, id_column: str, output: Path,
                       provider: str | None, encoding: str, delimiter: str | None,
                       date_order: str | None) -> None:
    """Build the attributes file a provider releases beside its encodings: the de-identified
    columns of INPUT (CSV or Parquet) its spec declares, each with a type (code, category,
    number, date) and a role (quasi-identifier or payload).

    Columns named like, or holding values shaped like, direct identifiers (names, MRNs,
    SSNs, phone numbers, e-mail, street addresses, full ZIP codes) are refused; derive birth
    year, ZIP3 or region from them instead.
    """
    from .attributes_build import build_attributes, load_attribute_spec

    try:
        rows = build_attributes(input_path, load_attribute_spec(spec_path), output,
                                id_column=id_column, provider=provider, encoding=encoding,
                                delimiter=_delimiter(delimiter),
                                date_order=date_order)  # type: ignore[arg-type]
    except TokenizerError as e:
        raise _fail(e) from e
    click.echo(f"{output}: {rows:,} attribute rows")
