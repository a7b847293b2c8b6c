"""TCIA's private tag knowledge base: which private elements Retain Safe Private may keep.

An element is found by its path: each step is a public tag or a private one named by group,
private creator and element byte (the block is wherever the creator was reserved), so
``(0019,"GEMS_ACQU_01",10)`` matches in any block. Dispositions are k keep, h hash,
o offset (shift like a date); d, na and anything unclean or unknown delete.
"""

from __future__ import annotations

import csv
import io
import re
from functools import cache
from importlib import resources

__all__ = ["PathStep", "private_step", "public_step", "load_private_dispositions",
           "normalise_disposition"]

PathStep = tuple[int, str, int]  # (group, creator or "", element or element byte)

_ITEM = re.compile(r"\[<\d+>\]")
_PUBLIC = re.compile(r"^\(([0-9a-fA-F]{4}),([0-9a-fA-F]{4})\)$")
_PRIVATE = re.compile(r"^\(([0-9a-fA-F]{4}),(.*),([0-9a-fA-F]{2})\)$")
_PRIORITY = {"d": 0, "h": 1, "o": 2, "k": 3}


def normalise_creator(creator: str) -> str:
    return creator.strip().strip('"').strip().lower()


def public_step(tag: int) -> PathStep:
    return (tag >> 16, "", tag & 0xFFFF)


def private_step(tag: int, creator: str) -> PathStep:
    return (tag >> 16, normalise_creator(creator), tag & 0xFF)


def normalise_disposition(raw: str) -> str:
    """``" k"`` and ``"K"`` are k; anything not k, h or o (``"na"``, ``"oi"``, empty) is d."""
    value = raw.strip().lower()
    return value if value in ("k", "h", "o") else "d"


def _parse_path(pattern: str) -> tuple[PathStep, ...] | None:
    steps: list[PathStep] = []
    for part in _ITEM.split(pattern.strip()):
        part = part.strip()
        if not part:
            continue
        public = _PUBLIC.match(part)
        if public:
            steps.append((int(public.group(1), 16), "", int(public.group(2), 16)))
            continue
        private = _PRIVATE.match(part)
        if private is None:
            return None
        steps.append((int(private.group(1), 16), normalise_creator(private.group(2)),
                      int(private.group(3), 16)))
    return tuple(steps) or None


@cache
def load_private_dispositions() -> dict[tuple[PathStep, ...], str]:
    """Path -> disposition; where rows of one path disagree the most protective wins."""
    text = (resources.files("deid.data") / "tcia_private_tag_kb_2024-02-01.csv").read_text(
        encoding="utf-8-sig")
    table: dict[tuple[PathStep, ...], str] = {}
    for row in csv.DictReader(io.StringIO(text)):
        path = _parse_path(row["element_sig_pattern"])
        if path is None:
            continue
        disposition = normalise_disposition(row["private_disposition"] or "")
        previous = table.get(path)
        if previous is None or _PRIORITY[disposition] < _PRIORITY[previous]:
            table[path] = disposition
    return table
