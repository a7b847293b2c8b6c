"""``pprl risk``: the re-identification risk of a released table, offline.

Data managers run it before a release and auditors after; both need the same figures from the
same file, so the command reads nothing but the table and its options.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import pyarrow as pa

from .dataset import RiskInputError, check_columns, read_dataset, write_table
from .generalise import Generalisation, GeneralisationError, generalise
from .hierarchies import HierarchyError, hierarchies_for, load_hierarchy_spec
from .report import MODEL_KEYS, RISK_KEYS, build_report, dataset_info, write_html

__all__ = ["risk_command"]


def _summary(document: dict[str, Any]) -> list[str]:
    """The headline figures and the findings, one per line, for a terminal."""
    lines = [f"{document['dataset']['file']}: {document['dataset']['rows']:,} records"]
    for key in (*MODEL_KEYS, *RISK_KEYS):
        value = document[key]
        if isinstance(value, dict):
            shown = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                              for k, v in value.items() if not isinstance(v, dict | list))
            lines.append(f"  {key}: {shown}")
        else:
            lines.append(f"  {key}: {value:.4g}" if isinstance(value, float)
                         else f"  {key}: {value}")
    findings = document["safe_harbor"]
    lines.append(f"Safe Harbor: {len(findings)} finding(s)" if findings
                 else "Safe Harbor: no finding")
    lines += [f"  {f['column']}: {f['identifier']} ({f['paragraph']}): {f['rule']}"
              for f in findings]
    done = document.get("generalisation")
    if done is not None:
        levels = ", ".join(f"{c} {name}" for c, name in done["level_names"].items())
        lines.append(f"Generalised to k >= {done['target']['required_k']}: {levels}; "
                     f"{done['suppressed']:,} records suppressed; loss {done['loss']:.4f} "
                     f"({done['loss_metric']})")
    return lines


def generalised(dataset: Path, table: pa.Table, quasi_identifiers: Sequence[str],
                hierarchies_path: Path | None, target_k: int | None, max_risk: float | None,
                max_suppression: float) -> Generalisation:
    """The least-loss transformation meeting the target; errors name the file and column."""
    try:
        spec = load_hierarchy_spec(hierarchies_path) if hierarchies_path else None
        hierarchies = hierarchies_for(table, quasi_identifiers, spec)
        return generalise(table, quasi_identifiers, hierarchies, target_k=target_k,
                          max_risk=max_risk, max_suppression=max_suppression)
    except (HierarchyError, GeneralisationError) as e:
        raise RiskInputError(f"{dataset}: {e}") from e


@click.command("risk")
@click.argument("dataset", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--quasi-identifier", "-q", "quasi_identifiers", multiple=True, metavar="COL",
              help="A column an attacker could know (age, sex, ZIP3, dates); repeat for each.")
@click.option("--sensitive", "-s", multiple=True, metavar="COL",
              help="A column to protect (diagnosis, finding); repeat for each.")
@click.option("--population-size", type=click.IntRange(min=1), metavar="N",
              help="People in the population the table was drawn from (journalist and "
                   "marketer risk, population uniqueness, which are null without it).")
@click.option("--threshold", type=click.FloatRange(0, 1, min_open=True), default=0.2,
              show_default=True, metavar="R",
              help="A record is at risk when its re-identification probability exceeds R.")
@click.option("--as-of-year", type=click.IntRange(1900, 2200), metavar="YEAR",
              help="Year against which birth years reveal ages over 89; default: this year.")
@click.option("--target-k", type=click.IntRange(min=2), metavar="K",
              help="Generalise the quasi-identifiers (and suppress records) until every class "
                   "holds at least K records, with the least information loss; the report "
                   "then assesses the transformed table.")
@click.option("--max-risk", type=click.FloatRange(0, 1, min_open=True), metavar="R",
              help="Generalise until the highest prosecutor risk is at most R (with or "
                   "instead of --target-k).")
@click.option("--max-suppression", type=click.FloatRange(0, 1), default=0.05,
              show_default=True, help="With a target: the largest share of records that may "
                                      "be suppressed (removed).")
@click.option("--hierarchies", "hierarchies_path",
              type=click.Path(path_type=Path, dir_okay=False, exists=True), metavar="FILE",
              help="With a target: JSON, column -> hierarchy (kind and levels); the other "
                   "quasi-identifiers get defaults by type (see the README).")
@click.option("-t", "--transformed", type=click.Path(path_type=Path, dir_okay=False),
              metavar="OUT", help="With a target: write the transformed table here (.csv or "
                                  ".parquet).")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON document.")
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False),
              metavar="REPORT.html", help="Also write the report as one HTML page.")
def risk_command(dataset: Path, quasi_identifiers: tuple[str, ...], sensitive: tuple[str, ...],
                 population_size: int | None, threshold: float, as_of_year: int | None,
                 target_k: int | None, max_risk: float | None, max_suppression: float,
                 hierarchies_path: Path | None, transformed: Path | None, as_json: bool,
                 output: Path | None) -> None:
    """Re-identification risk of DATASET (CSV or Parquet): k-anonymity, l-diversity,
    t-closeness and the other privacy models (as pycanon computes them), prosecutor,
    journalist and marketer risk and population uniqueness (as ARX defines them), and a HIPAA
    Safe Harbor check of every column. With --target-k/--max-risk it first generalises the
    table to the target, as ARX does, and assesses what would be released."""
    targeted = target_k is not None or max_risk is not None
    if not targeted and (hierarchies_path or transformed):
        raise click.UsageError("--hierarchies and --transformed need --target-k or --max-risk")
    try:
        table = read_dataset(dataset)
        check_columns(dataset, table, quasi_identifiers, sensitive)
        if population_size is not None and population_size < table.num_rows:
            raise RiskInputError(f"{dataset}: --population-size {population_size:,} is smaller "
                                 f"than the table's {table.num_rows:,} records")
        info = dataset_info(dataset, table)
        done = None
        if targeted:
            done = generalised(dataset, table, quasi_identifiers, hierarchies_path,
                               target_k, max_risk, max_suppression)
            table = done.table
            if transformed is not None:
                write_table(table, transformed)
    except RiskInputError as e:
        raise click.ClickException(str(e)) from e
    document, classes = build_report(
        table, info, quasi_identifiers, sensitive,
        population_size=population_size, threshold=threshold, as_of_year=as_of_year)
    if done is not None:
        document["generalisation"] = done.as_dict()
    if output is not None:
        try:
            write_html(document, classes, threshold, output)
        except OSError as e:
            raise click.ClickException(f"{output}: cannot write the report: "
                                       f"{e.strerror or e}") from e
    if as_json:
        click.echo(json.dumps(document, indent=2, allow_nan=False))
    else:
        click.echo("\n".join(_summary(document)))
        if output is not None:
            click.echo(f"Report: {output}")
