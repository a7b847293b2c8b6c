"""Token signatures and tokens for a batch of records, column by column.

Rules run once per distinct value of a column (pyarrow dictionary encoding), signatures are
joined with pyarrow, and only the hashing is per signature (once per distinct signature), so
a batch costs a few C-level passes plus two hashes per distinct signature.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import uuid
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .rules import ATTRIBUTES

__all__ = ["BLANK", "RULE_IDS", "TokenBatch", "Counts", "tokenize_batch", "hash_signatures"]

BLANK = "0" * 64
RULE_IDS = ("T1", "T2", "T3", "T4", "T5")

# Each rule's parts in OpenToken's order: (attribute, piece). Order matters twice: it is the
# signature's order, and only the first invalid attribute of a rule is reported.
_RULES: dict[str, tuple[tuple[str, str], ...]] = {
    "T1": (("LastName", "upper"), ("FirstName", "first1"), ("Sex", "upper"),
           ("BirthDate", "plain")),
    "T2": (("LastName", "upper"), ("FirstName", "upper"), ("BirthDate", "plain"),
           ("PostalCode", "first3")),
    "T3": (("LastName", "upper"), ("FirstName", "upper"), ("Sex", "upper"),
           ("BirthDate", "plain")),
    "T4": (("SocialSecurityNumber", "digits"), ("Sex", "upper"), ("BirthDate", "plain")),
    "T5": (("LastName", "upper"), ("FirstName", "first3"), ("Sex", "upper")),
}
_DIGIT_RUN = re.compile(r"\d+")


def _piece(kind: str, value: str) -> str:
    """OpenToken's attribute expressions (T trims first, then S/U/M)."""
    value = value.strip()
    if kind == "upper":
        return value.upper()
    if kind == "first1":
        return value[:1].upper()
    if kind == "first3":
        return value[:3].upper()
    if kind == "digits":
        return "".join(_DIGIT_RUN.findall(value))
    return value


@dataclass
class Counts:
    """The statistics OpenToken puts in its metadata, summed over batches."""

    rows: int = 0
    invalid: dict[str, int] = field(default_factory=lambda: dict.fromkeys(sorted(ATTRIBUTES), 0))
    blank: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RULE_IDS, 0))


@dataclass
class _Column:
    valid: np.ndarray          # per row
    pieces: dict[str, pa.Array]  # piece kind -> per-row string (empty where invalid)


def _column(values: pa.Array, rule_kinds: set[str], attribute: str) -> _Column:
    rule = ATTRIBUTES[attribute][0]
    encoded = pc.dictionary_encode(values.cast(pa.string()))
    dictionary = encoded.dictionary.to_pylist()
    indices = encoded.indices.fill_null(len(dictionary)).to_numpy(zero_copy_only=False)
    results = [rule(value) for value in dictionary] + [(False, "")]  # null: invalid
    valid = np.fromiter((ok for ok, _ in results), dtype=bool, count=len(results))[indices]
    pieces = {}
    for kind in rule_kinds:
        distinct = [_piece(kind, norm) if ok else "" for ok, norm in results]
        pieces[kind] = pa.array(distinct, type=pa.string()).take(pa.array(indices))
    return _Column(valid, pieces)


@dataclass
class TokenBatch:
    """Signatures (None for a blank token) per rule, and the record ids, of one batch."""

    record_ids: list[str]
    signatures: dict[str, pa.Array]


def tokenize_batch(columns: dict[str, pa.Array], record_ids: pa.Array | None, rows: int,
                   counts: Counts) -> TokenBatch:
    """Signatures of every rule for ``rows`` records; ``columns`` maps OpenToken attribute
    names to raw string columns (an attribute missing from the input is absent). Updates
    ``counts`` as OpenToken does: an attribute counts once per row in which some rule reached
    it and found it invalid; TotalRowsWithInvalidAttributes is the sum of those counts."""
    kinds: dict[str, set[str]] = {}
    for parts in _RULES.values():
        for attribute, kind in parts:
            kinds.setdefault(attribute, set()).add(kind)
    prepared = {name: _column(values, kinds[name], name) for name, values in columns.items()}
    invalid_rows = {name: np.zeros(rows, dtype=bool) for name in ATTRIBUTES}
    signatures: dict[str, pa.Array] = {}
    for rule_id, parts in _RULES.items():
        alive = np.ones(rows, dtype=bool)
        pieces = []
        for attribute, kind in parts:
            column = prepared.get(attribute)
            if column is None:   # OpenToken gives up on the rule without blaming anyone
                alive[:] = False
                break
            invalid_rows[attribute] |= alive & ~column.valid
            alive &= column.valid
            pieces.append(column.pieces[kind])
        joined = pa.nulls(rows, pa.string())
        if alive.any():
            # A valid attribute never gives an empty piece, so OpenToken's dropping of blank
            # pieces never applies; invalid rows are masked out whole.
            joined = pc.if_else(pa.array(alive),
                                pc.binary_join_element_wise(*pieces, "|"), joined)
        signatures[rule_id] = joined
        counts.blank[rule_id] += joined.null_count
    for name, flags in invalid_rows.items():
        counts.invalid[name] += int(flags.sum())
    counts.rows += rows
    ids: list[str]
    if record_ids is None:
        ids = [str(uuid.uuid4()) for _ in range(rows)]
    else:
        ids = [value if value else str(uuid.uuid4())
               for value in record_ids.cast(pa.string()).to_pylist()]
    return TokenBatch(ids, signatures)


def hash_signatures(signatures: pa.Array, secret: bytes) -> list[str]:
    """OpenToken's token: base64 HMAC-SHA256, keyed with the secret, of the lowercase hex
    SHA-256 of the signature; a null signature gives the blank token. Each distinct
    signature is hashed once."""
    encoded = pc.dictionary_encode(signatures)
    sha256, digest, b64 = hashlib.sha256, hmac.digest, base64.b64encode
    distinct = [b64(digest(secret, sha256(s.encode()).hexdigest().encode(), "sha256")).decode()
                for s in encoded.dictionary.to_pylist()]
    distinct.append(BLANK)
    indices = encoded.indices.fill_null(len(distinct) - 1).to_numpy(zero_copy_only=False)
    table = np.array(distinct, dtype=object)
    return table[indices].tolist()
