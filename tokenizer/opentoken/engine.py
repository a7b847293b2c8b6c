"""Token signatures and tokens for a batch of records, column by column.

Rules run once per distinct value of a column (pyarrow dictionary encoding), signatures are
joined with pyarrow, and only the hashing is per signature (once per distinct signature), so
a batch costs a few C-level passes plus two hashes per distinct signature.
"""

from __future__ import annotations

import os
import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..encodings_file import TOKEN_CHARS, TOKEN_RULES
from .fast_rules import fast_rule
from .kernel_load import hash_kernel
from .rules import ATTRIBUTES

__all__ = ["BLANK", "RULE_IDS", "TokenBatch", "Counts", "tokenize_batch", "hash_signatures",
           "record_tokens"]

BLANK = "0" * 64
RULE_IDS = TOKEN_RULES  # the encodings file names its token columns by them

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


def _fast_pieces(kind: str, normalised: pa.Array) -> pa.Array:
    """``_piece`` for values a fast rule took: ASCII without whitespace, where Arrow's ASCII
    kernels and Python's str methods agree."""
    if kind == "upper":
        return pc.ascii_upper(normalised)
    if kind in ("first1", "first3"):
        return pc.ascii_upper(pc.utf8_slice_codeunits(normalised, 0, 1 if kind == "first1" else 3))
    if kind == "digits":
        return pc.replace_substring(normalised, "-", "")
    return normalised


def _column(values: pa.Array, rule_kinds: set[str], attribute: str) -> _Column:
    """Validity and pieces of each row: the rules run once per distinct value, the common
    plain forms in Arrow (:mod:`.fast_rules`), every other value through the Python rule."""
    rule = ATTRIBUTES[attribute][0]
    encoded = pc.dictionary_encode(values.cast(pa.string()))
    dictionary = encoded.dictionary
    size = len(dictionary)
    indices = encoded.indices.fill_null(size).to_numpy(zero_copy_only=False)
    taken, valid, normalised = fast_rule(attribute, dictionary)
    slow = np.flatnonzero(~taken)
    results = [rule(value) for value in dictionary.take(pa.array(slow)).to_pylist()]
    valid[slow] = [ok for ok, _ in results]
    valid = np.append(valid, False)   # a null value: invalid
    slow_mask = pa.array(np.append(~taken, False))
    padded = pa.concat_arrays([normalised, pa.array([""], pa.string())])
    row_indices = pa.array(indices)
    pieces = {}
    for kind in rule_kinds:
        distinct = pc.replace_with_mask(
            _fast_pieces(kind, padded), slow_mask,
            pa.array([_piece(kind, norm) if ok else "" for ok, norm in results], pa.string()))
        pieces[kind] = distinct.take(row_indices)
    return _Column(valid[indices], pieces)


@dataclass
class TokenBatch:
    """Signatures (None for a blank token) per rule, and the record ids, of one batch."""

    record_ids: pa.Array
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
    if record_ids is None:
        record_ids = pa.nulls(rows, pa.string())
    ids = record_ids.cast(pa.string())
    missing = _mask(pc.equal(ids, ""))   # null or empty
    if missing.any():   # OpenToken gives a record without an id a random UUID
        ids = pc.replace_with_mask(ids, pa.array(missing), pa.array(
            [str(uuid.uuid4()) for _ in range(int(missing.sum()))], pa.string()))
    return TokenBatch(ids, signatures)


def _mask(flags: pa.Array) -> np.ndarray:
    return np.asarray(flags.fill_null(True).to_numpy(zero_copy_only=False), dtype=bool)


def _workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def hash_signatures(signatures: pa.Array, secret: bytes, workers: int | None = None) -> pa.Array:
    """OpenToken's token: base64 HMAC-SHA256, keyed with the secret, of the lowercase hex
    SHA-256 of the signature; a null signature gives the blank token. Every row is hashed,
    repeats included, by the compiled kernel on ``workers`` threads (all cores): hashing
    costs about as much as finding the distinct values would, and runs on every core."""
    signatures = signatures.cast(pa.large_string())
    count = len(signatures)
    offsets = np.frombuffer(signatures.buffers()[1], dtype=np.int64)[
        signatures.offset:signatures.offset + count + 1]
    data_buffer = signatures.buffers()[2]
    data = (np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None
            else np.zeros(0, dtype=np.uint8))
    out = np.empty((count, TOKEN_CHARS), dtype=np.uint8)
    kernel = hash_kernel()
    key = kernel.hmac_key(secret)
    parts = max(1, min(workers or _workers(), count // 10_000))
    bounds = np.linspace(0, count, parts + 1).astype(int).tolist()
    with ThreadPoolExecutor(parts) as pool:
        list(pool.map(lambda b: kernel.hash_tokens(data, offsets, b[0], b[1], key, out),
                      zip(bounds[:-1], bounds[1:], strict=True)))
    hashed = pa.Array.from_buffers(
        pa.large_string(), count,
        [None, pa.py_buffer(np.arange(count + 1, dtype=np.int64) * TOKEN_CHARS),
         pa.py_buffer(out)])
    if signatures.null_count == 0:
        return hashed
    return pc.if_else(signatures.is_valid(), hashed, pa.scalar(BLANK, pa.large_string()))


def record_tokens(columns: dict[str, pa.Array], rows: int, secret: bytes) -> dict[str, pa.Array]:
    """Each rule's hash-only token of ``rows`` records, null where the token is blank (a
    blank token says only that the record lacks something, so it must never match)."""
    placeholder_ids = pa.repeat(pa.scalar("-", pa.string()), rows)  # spares a UUID per row
    batch = tokenize_batch(columns, placeholder_ids, rows, Counts())
    tokens = {}
    for rule in RULE_IDS:
        signatures = batch.signatures[rule]
        hashed = hash_signatures(signatures, secret).cast(pa.string())
        tokens[rule] = pc.if_else(pc.is_null(signatures), pa.scalar(None, pa.string()), hashed)
    return tokens
