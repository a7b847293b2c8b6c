"""The risk report: one stable JSON document, and the same as a self-contained HTML page.

The JSON document is what auditors compare across re-runs and what the service's release gate
reads, so its keys and their order are fixed by ``FORMAT`` (a new key means a new format
version); the README defines every figure. The HTML page is for people: the same figures and
findings, two charts, and what produced them (the file and its SHA-256, the quasi-identifiers,
the tool version), in one file with inline images so it can be archived or mailed as is.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import html
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from tokenizer.encodings_file import AtomicFile, tool_version

from .classes import EquivalenceClasses, equivalence_classes
from .privacy_models import privacy_models
from .reidentification import reidentification_risk
from .safe_harbor import IDENTIFIER_KINDS, Finding, safe_harbor_findings

__all__ = ["FORMAT", "MODEL_KEYS", "RISK_KEYS", "build_report", "dataset_info",
           "render_html", "risk_document", "write_html"]

FORMAT = "pprl-risk-report/1"
MODEL_KEYS = ("k_anonymity", "l_diversity", "entropy_l_diversity", "recursive_cl_diversity",
              "t_closeness", "beta_likeness", "enhanced_beta_likeness", "delta_disclosure")
RISK_KEYS = ("equivalence_classes", "sample_uniques", "prosecutor", "journalist", "marketer",
             "population_uniqueness")


def _plain(value: Any) -> Any:
    """JSON-ready: numpy scalars as Python numbers, a figure that is not finite as null."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def dataset_info(path: Path, table: pa.Table) -> dict[str, Any]:
    """The file's name (not its folder, which can name a site or a person) and SHA-256, so an
    auditor can tell that a re-run assessed the same bytes, and its shape."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return {"file": path.name, "sha256": digest.hexdigest(), "rows": table.num_rows,
            "columns": list(table.column_names)}


def risk_document(*, dataset: dict[str, Any], quasi_identifiers: Sequence[str],
                  sensitive: Sequence[str], population_size: int | None,
                  models: dict[str, Any], risk: dict[str, Any], findings: Sequence[Finding]
                  ) -> dict[str, Any]:
    """The document in its fixed key order; ``models`` and ``risk`` must hold every key of
    MODEL_KEYS and RISK_KEYS (a KeyError otherwise, never a silently missing figure)."""
    return _plain({
        "format": FORMAT,
        "tool_version": tool_version(),
        "dataset": dataset,
        "quasi_identifiers": list(quasi_identifiers),
        "sensitive": list(sensitive),
        "population_size": population_size,
        **{key: models[key] for key in MODEL_KEYS},
        **{key: risk[key] for key in RISK_KEYS},
        "safe_harbor": [f.as_dict() for f in findings],
    })


def build_report(table: pa.Table, dataset: dict[str, Any], quasi_identifiers: Sequence[str],
                 sensitive: Sequence[str] = (), *, population_size: int | None = None,
                 threshold: float = 0.2, as_of_year: int | None = None
                 ) -> tuple[dict[str, Any], EquivalenceClasses]:
    """Assess ``table``: the document, and the classes its charts are drawn from."""
    classes = equivalence_classes(table, quasi_identifiers)
    document = risk_document(
        dataset=dataset, quasi_identifiers=quasi_identifiers, sensitive=sensitive,
        population_size=population_size,
        models=privacy_models(table, classes, sensitive),
        risk=reidentification_risk(classes, population_size=population_size,
                                   threshold=threshold),
        findings=safe_harbor_findings(table, as_of_year=as_of_year))
    return document, classes


_SIZE_BINS = (1, 2, 3, 5, 11, 21, 51, 101, 1001)


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _charts(classes: EquivalenceClasses, threshold: float) -> tuple[str, str]:
    """Records by the size of their class, and prosecutor risk (1 / class size) per record,
    as base64 PNGs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = classes.sizes
    edges = [*_SIZE_BINS, max(int(sizes.max(initial=0)) + 1, _SIZE_BINS[-1] + 1)]
    labels = [f"{a}+" if i == len(edges) - 2 else (str(a) if b - a == 1 else f"{a}-{b - 1}")
              for i, (a, b) in enumerate(zip(edges[:-1], edges[1:], strict=True))]
    records = np.histogram(sizes, bins=edges, weights=sizes)[0]
    figure, ax = plt.subplots(figsize=(6.4, 3.6), dpi=100)
    ax.bar(labels, records, color="tab:blue")
    ax.tick_params(axis="x", labelrotation=30)
    ax.set_xlabel("size of the record's equivalence class")
    ax.set_ylabel("records")
    ax.set_title("Class-size distribution")
    figure.tight_layout()
    class_sizes = _png(figure)
    plt.close(figure)

    figure, ax = plt.subplots(figsize=(6.4, 3.6), dpi=100)
    risk = 1.0 / sizes.astype(np.float64)
    ax.hist(risk, bins=np.linspace(0, 1, 21).tolist(), weights=sizes, color="tab:red")
    ax.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:g}")
    ax.set_yscale("log")
    ax.set_xlabel("prosecutor risk (1 / class size)")
    ax.set_ylabel("records")
    ax.set_title("Risk per record")
    ax.legend()
    figure.tight_layout()
    per_record = _png(figure)
    plt.close(figure)
    return class_sizes, per_record


def _flat(prefix: str, value: Any) -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [row for k, v in value.items() for row in _flat(f"{prefix}.{k}", v)]
    return [(prefix, value)]


_LIST_SHOWN = 12


def _cell(value: Any) -> str:
    if value is None:
        return "&mdash;"
    if isinstance(value, float):
        return html.escape(f"{value:.6g}")
    if isinstance(value, list):
        if len(value) > _LIST_SHOWN:
            return f"{len(value):,} entries (in the JSON document)"
        return html.escape(", ".join(str(v) for v in value))
    return html.escape(str(value))


_STYLE = """body{font-family:sans-serif;max-width:60em;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.25em .6em;
text-align:left;vertical-align:top}td.n{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#060}.bad{color:#a00}img{max-width:100%}"""


def render_html(document: dict[str, Any], classes: EquivalenceClasses, threshold: float) -> str:
    """The page: what was assessed, the charts (``threshold`` marked on the risk chart), every
    figure, the Safe Harbor findings."""
    e = html.escape
    dataset = document["dataset"]
    class_sizes, per_record = _charts(classes, threshold)
    provenance = [
        ("file", dataset["file"]), ("SHA-256", dataset["sha256"]), ("rows", dataset["rows"]),
        ("columns", dataset["columns"]), ("quasi-identifiers", document["quasi_identifiers"]),
        ("sensitive attributes", document["sensitive"] or None),
        ("population size", document["population_size"]),
        ("risk threshold", threshold),
        ("tool", f"pprl-imaging {document['tool_version']} ({document['format']})"),
        ("generated", datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")),
    ]
    figures = [row for key in (*MODEL_KEYS, *RISK_KEYS) for row in _flat(key, document[key])]
    findings = document["safe_harbor"]
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Re-identification risk: {e(dataset['file'])}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>Re-identification risk: {e(dataset['file'])}</h1>",
        "<h2>What was assessed</h2><table>",
        *(f"<tr><th>{e(k)}</th><td>{_cell(v)}</td></tr>" for k, v in provenance),
        "</table><h2>Charts</h2>",
        f'<img alt="Records by the size of their equivalence class" '
        f'src="data:image/png;base64,{class_sizes}">',
        f'<img alt="Prosecutor risk per record" src="data:image/png;base64,{per_record}">',
        "<h2>Figures</h2><table><tr><th>figure</th><th>value</th></tr>",
        *(f'<tr><td><code>{e(k)}</code></td><td class="n">{_cell(v)}</td></tr>'
          for k, v in figures),
        "</table><h2>HIPAA Safe Harbor (45 CFR 164.514(b)(2))</h2>",
    ]
    if findings:
        parts += [f'<p class="bad">{len(findings)} finding(s): the table holds, or appears to '
                  f"hold, identifiers that Safe Harbor requires removed.</p>",
                  "<table><tr><th>column</th><th>identifier</th><th>paragraph</th>"
                  "<th>rule</th></tr>",
                  *(f"<tr><td><code>{e(f['column'])}</code></td>"
                    f"<td>{e(IDENTIFIER_KINDS[f['identifier']][1])}</td>"
                    f"<td>{e(f['paragraph'])}</td><td>{e(f['rule'])}</td></tr>"
                    for f in findings),
                  "</table>"]
    else:
        parts.append('<p class="ok">No column is named like, or holds values shaped like, '
                     "any of the 18 identifier kinds.</p>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_html(document: dict[str, Any], classes: EquivalenceClasses, threshold: float,
               path: Path) -> None:
    """Write the page under a temporary name and rename it into place: a reader never sees
    half a report, and a failure leaves no file."""
    page = render_html(document, classes, threshold)
    target = AtomicFile(path)
    try:
        target.temp.write_text(page, encoding="utf-8")
        target.commit()
    except BaseException:
        target.discard()
        raise
