"""CLK sets as the linker holds them: packed uint64 words plus popcounts (design.md).

The linker reads encodings files only; it never sees an identifier or the linkage secret.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from tokenizer.encodings_file import EncodingSet, read_encodings

__all__ = ["ClkSet", "LinkageInputError", "load_clk_sets", "pack_words", "check_key_checks"]

log = logging.getLogger(__name__)


class LinkageInputError(ValueError):
    """Inputs that cannot be linked together (different schema or length, duplicate ids)."""


def pack_words(clks: np.ndarray) -> np.ndarray:
    """uint8 CLK bytes (n, bytes) as uint64 words (n, ceil(bytes / 8)), zero-padded.

    AND and popcount do not depend on byte order, so any consistent packing will do.
    """
    n, width = clks.shape
    words = -(-width // 8)
    padded = np.zeros((n, words * 8), dtype=np.uint8)
    padded[:, :width] = clks
    return padded.view(np.uint64)


@dataclass(frozen=True)
class ClkSet:
    """One party's CLKs.

    Attributes:
        words: uint64 array (n, l/64), contiguous.
        popcounts: int32 array (n,).
        record_ids: the party's record ids (site pseudonyms), one per row.
        length: l in bits.
        fingerprint: schema fingerprint, None for clkhash JSON input.
        party: label (provider label from the file, else the file name).
        source: where it was read from, for messages.
        key_check: key check value of the linkage secret it was made with; None when the
            file does not say (clkhash JSON).
        tokens: OpenToken rule -> object array (n,) of tokens, None where blank; empty when
            the file carries none.
        token_key_check: key check value of the tokens' hashing secret.
    """

    words: np.ndarray
    popcounts: np.ndarray
    record_ids: list[str]
    length: int
    fingerprint: str | None
    party: str
    source: str
    key_check: str | None = None
    tokens: dict[str, np.ndarray] = field(default_factory=dict)
    token_key_check: str | None = None

    def __len__(self) -> int:
        return len(self.record_ids)

    @classmethod
    def from_arrays(cls, clks: np.ndarray, record_ids: Sequence[str] | None = None, *,
                    length: int | None = None, party: str = "party",
                    fingerprint: str | None = None, source: str = "<memory>",
                    key_check: str | None = None, tokens: dict[str, np.ndarray] | None = None,
                    token_key_check: str | None = None) -> ClkSet:
        """From uint8 CLK bytes (n, bytes); record ids default to positions."""
        words = np.ascontiguousarray(pack_words(np.asarray(clks, dtype=np.uint8)))
        popcounts = np.bitwise_count(words).sum(axis=1, dtype=np.int32)
        ids = [str(i) for i in range(len(clks))] if record_ids is None else list(record_ids)
        return cls(words, popcounts, ids, length or clks.shape[1] * 8, fingerprint, party,
                   source, key_check, dict(tokens or {}), token_key_check)

    @classmethod
    def from_encodings(cls, data: EncodingSet, source: str, party: str) -> ClkSet:
        return cls.from_arrays(data.clks, data.record_ids, length=data.metadata.bloom_filter_bits,
                               party=party, fingerprint=data.metadata.schema_fingerprint,
                               source=source, key_check=data.metadata.key_check,
                               tokens=data.tokens,
                               token_key_check=data.metadata.token_key_check)


def load_clk_sets(paths: Sequence[str | Path]) -> list[ClkSet]:
    """Read encodings files and check they can be linked together.

    Raises:
        LinkageInputError: different schema fingerprints, lengths, linkage secrets or token
            hashing secrets (key check values), naming both files; duplicate record ids
            within a file; the same party label twice.
        InputError: a file cannot be read.
    """
    sets: list[ClkSet] = []
    for path in map(Path, paths):
        data = read_encodings(path)
        party = data.metadata.provider or path.name.split(".")[0]
        sets.append(ClkSet.from_encodings(data, str(path), party))
    _check_compatible(sets)
    check_key_checks([(s.source, s.key_check) for s in sets])
    _check_token_key_checks(sets)
    length = common_length(sets)
    return [s if s.length or length is None else _sized(s, length) for s in sets]


def _sized(empty: ClkSet, length: int) -> ClkSet:
    """An empty set of unknown length (an empty clkhash JSON file) given the others' length:
    it takes part in no link, but the kernels compare lengths."""
    return replace(empty, length=length,  # as pack_words packs them: whole words, padded
                   words=np.zeros((0, -(-length // 64)), dtype=np.uint64))


def _check_token_key_checks(sets: Sequence[ClkSet]) -> None:
    """Tokens hashed with different secrets never agree: refuse rather than match nothing."""
    with_tokens = [s for s in sets if s.tokens]
    for other in with_tokens[1:]:
        first = with_tokens[0]
        if other.token_key_check != first.token_key_check:
            raise LinkageInputError(
                f"{other.source} holds tokens made with another hashing secret than "
                f"{first.source} (token key check values {other.token_key_check} and "
                f"{first.token_key_check}): every provider must use the same hashing secret "
                f"bytes with `pprl tokenize --with-tokens`")


def check_key_checks(inputs: Sequence[tuple[str, str | None]]) -> None:
    """Refuse inputs made with different linkage secrets; warn about those that cannot say.

    Args:
        inputs: (name of the file or party, its key check value or None) per input.

    Raises:
        LinkageInputError: two key check values differ, naming both inputs.
    """
    known = [(name, value) for name, value in inputs if value]
    for name, value in inputs:
        if not value:
            log.warning("%s records no key check value (clkhash JSON or an older file): "
                        "whether it was made with the same linkage secret cannot be checked",
                        name)
    for name, value in known[1:]:
        first_name, first_value = known[0]
        if value != first_value:
            raise LinkageInputError(
                f"{name} was made with another linkage secret than {first_name} (key check "
                f"values {value} and {first_value}): every provider must use the same secret "
                f"bytes; check that the secret files are identical, e.g. that one does not end "
                f"with a line break the others lack")


def common_length(sets: Sequence[ClkSet]) -> int | None:
    """The sets' CLK length in bits: the first that says (an empty clkhash JSON file does
    not)."""
    return next((s.length for s in sets if s.length or len(s)), None)


def common_fingerprint(sets: Sequence[ClkSet]) -> str | None:
    """The sets' schema fingerprint: the first that records one (clkhash JSON does not)."""
    return next((s.fingerprint for s in sets if s.fingerprint), None)


def _check_compatible(sets: Sequence[ClkSet]) -> None:
    """Same length and schema, each compared with the first set that says (so a clkhash JSON
    file, which records no schema, given first no longer let any schema through)."""
    sized = [s for s in sets if s.length or len(s)]
    for other in sized[1:]:
        if other.length != sized[0].length:
            raise LinkageInputError(
                f"{other.source} has l={other.length} bits but {sized[0].source} has "
                f"l={sized[0].length}: encodings of different lengths cannot be compared")
    marked = [(s.source, s.fingerprint) for s in sets if s.fingerprint]
    for source, fingerprint in marked[1:]:
        if fingerprint != marked[0][1]:
            raise LinkageInputError(
                f"{source} was made with schema {fingerprint[:16]}... but {marked[0][0]} "
                f"with schema {marked[0][1][:16]}...: every provider must tokenize with the "
                f"same schema")
    seen: dict[str, str] = {}
    for clk_set in sets:
        if clk_set.party in seen:
            raise LinkageInputError(
                f"{clk_set.source} and {seen[clk_set.party]} have the same party label "
                f"{clk_set.party!r}; give each provider its own --provider label")
        seen[clk_set.party] = clk_set.source
        counts = Counter(clk_set.record_ids)
        if len(counts) != len(clk_set.record_ids):
            dupes = sorted(i for i, c in counts.items() if c > 1)
            raise LinkageInputError(f"{clk_set.source} has {len(dupes)} duplicate record "
                                    f"id(s), for example {dupes[:3]}")
