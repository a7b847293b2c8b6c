"""One normaliser for every reader: which kind each schema feature is, applied to chunks.

The shipped schemas carry their kinds (``SHIPPED_KINDS``, found by schema fingerprint, so a
copy of a shipped schema file is normalised the same way). A custom schema is encoded exactly
as clkhash would unless kinds are asked for (``--normalize feature=kind``).
:func:`choose_kinds` makes that choice for every command that encodes (``pprl tokenize``,
``pprl deid``), so a person's CLK does not depend on which one encoded it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pyarrow as pa

from ..errors import TokenizerError
from ..schema_model import DateFormat, Schema
from .dates import DateOrder
from .kinds import KINDS, KindContext, normalize_kind

__all__ = ["Normalizer", "NormalizedChunk", "SHIPPED_KINDS", "shipped_kinds",
           "parse_kind_specs", "choose_kinds"]

SHIPPED_KINDS: dict[str, dict[str, str]] = {
    "person": {"given_name": "name", "surname": "name", "date_of_birth": "date", "sex": "sex",
               "address": "address", "zip": "zip", "phone": "phone"},
    # FEBRL's date of birth is text on purpose (an impossible date stays linkable) and its
    # postcodes are Australian: both are plain text here.
    "febrl": {"given_name": "name", "surname": "name", "street_number": "text",
              "address_1": "address", "address_2": "address", "suburb": "name",
              "postcode": "text", "state": "text", "date_of_birth": "text",
              "soc_sec_id": "text"},
}
_ISO = "%Y-%m-%d"


@dataclass(frozen=True)
class NormalizedChunk:
    """Normalised columns; ``rejected`` maps a row index to (field, reason) of each value
    that could not be normalised (the value itself is never kept here)."""

    columns: dict[str, pa.Array]
    rejected: dict[int, list[tuple[str, str]]] = field(default_factory=dict)


def shipped_kinds(schema: Schema) -> dict[str, str] | None:
    """The kinds of a shipped schema (by fingerprint), or None for a custom one."""
    from ..catalog import load_schema

    for name, kinds in SHIPPED_KINDS.items():
        if load_schema(name).fingerprint == schema.fingerprint:
            return kinds
    return None


def parse_kind_specs(specs: list[str], schema: Schema) -> dict[str, str]:
    """``feature=kind`` strings as a mapping, checked against the schema and the kinds.

    Raises:
        TokenizerError: a spec is malformed, names no feature of the schema, or no kind.
    """
    features = {f.identifier for f in schema.hashed_features}
    kinds: dict[str, str] = {}
    for spec in ",".join(specs).split(","):
        if not spec.strip():
            continue
        feature, sep, kind = (part.strip() for part in spec.partition("="))
        if not sep or kind not in KINDS:
            raise TokenizerError(f"--normalize {spec!r}: write FEATURE=KIND with KIND one of "
                                 f"{sorted(KINDS)}")
        if feature not in features:
            raise TokenizerError(f"--normalize {spec!r}: the schema has no feature "
                                 f"{feature!r}; its features are {sorted(features)}")
        kinds[feature] = kind
    return kinds


def choose_kinds(schema: Schema, specs: Sequence[str] = (), *,
                 off: bool = False) -> dict[str, str]:
    """The kinds a run normalises with: none if ``off`` (values encoded as written, as clkhash
    does), else the ``feature=kind`` ``specs`` if any, else the shipped schema's own kinds
    (none for a custom schema). Every command that encodes decides here, so two providers
    running different commands with the same options get the same CLK for the same person.

    Raises:
        TokenizerError: both ``specs`` and ``off``, or a malformed spec.
    """
    if off and specs:
        raise TokenizerError("give either --normalize or --no-normalize, not both")
    if off:
        return {}
    return parse_kind_specs(list(specs), schema) if specs else shipped_kinds(schema) or {}


class Normalizer:
    """Normalises the columns of a chunk by kind; columns without a kind pass unchanged."""

    def __init__(self, schema: Schema, kinds: Mapping[str, str],
                 date_order: DateOrder | None = None) -> None:
        unknown = sorted(set(kinds.values()) - set(KINDS))
        if unknown:
            raise TokenizerError(f"unknown normalisation kind(s) {unknown}; kinds: "
                                 f"{sorted(KINDS)}")
        formats = {f.identifier: f.format for f in schema.hashed_features}
        self.kinds = {c: k for c, k in kinds.items() if c in formats}
        self._contexts = {
            column: KindContext(date_order, fmt.strptime_format
                                if isinstance(fmt, DateFormat) else _ISO)
            for column, fmt in formats.items()}

    def __bool__(self) -> bool:
        return bool(self.kinds)

    def apply(self, columns: Mapping[str, pa.Array]) -> NormalizedChunk:
        out = dict(columns)
        rejected: dict[int, list[tuple[str, str]]] = {}
        for column, kind in self.kinds.items():
            if column not in columns:
                continue
            out[column], bad = normalize_kind(kind, columns[column], self._contexts[column])
            for index, reason in bad.items():
                rejected.setdefault(index, []).append((column, reason))
        return NormalizedChunk(out, rejected)
