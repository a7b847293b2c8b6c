"""PS3.15 Table E.1-1 as rules, and the action each rule takes under the chosen options.

The rules come from the standard's own table (package data), never from a hand-typed tag
list: every one of its rows, repeating groups such as ``(50xx,xxxx)`` included, becomes a
:class:`ProfileRule` matching a tag by mask.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, fields
from functools import cache
from importlib import resources
from typing import Literal

from .errors import ProfileError

__all__ = ["ProfileOptions", "ProfileRule", "Profile", "load_profile", "DateMode"]

DateMode = Literal["remove", "modified", "full"]

# Option columns of the table, keyed by the ProfileOptions flag that selects them.
_OPTION_COLUMNS = {
    "retain_uids": "rtnUIDsOpt",
    "retain_patient_characteristics": "rtnPatCharsOpt",
    "retain_device_identity": "rtnDevIdOpt",
    "retain_institution_identity": "rtnInstIdOpt",
    "clean_descriptors": "cleanDescOpt",
    "clean_structured_content": "cleanStructContOpt",
    "clean_graphics": "cleanGraphOpt",
    "retain_safe_private": "rtnSafePrivOpt",
}
_DATE_COLUMNS = {"modified": "rtnLongModifDatesOpt", "full": "rtnLongFullDatesOpt"}
_TAG = re.compile(r"^\(([0-9A-FX]{4}),([0-9A-FX]{4})\)$")
_SINGLE_ACTIONS = {"D", "Z", "X", "K", "C", "U", "U*"}


@dataclass(frozen=True)
class ProfileOptions:
    """The profile options (PS3.15 E.3) a site selects. Dates default to shifting (Retain
    Longitudinal Temporal Information with Modified Dates), which keeps intervals within a
    patient; ``remove`` is the basic profile, ``full`` keeps dates unchanged."""

    retain_uids: bool = False
    dates: DateMode = "modified"
    retain_patient_characteristics: bool = False
    retain_device_identity: bool = False
    retain_institution_identity: bool = False
    clean_descriptors: bool = False
    clean_structured_content: bool = False
    clean_graphics: bool = False
    retain_safe_private: bool = False

    @property
    def option_columns(self) -> tuple[str, ...]:
        """The table columns whose actions override the basic profile."""
        chosen = [column for flag, column in _OPTION_COLUMNS.items() if getattr(self, flag)]
        if self.dates in _DATE_COLUMNS:
            chosen.append(_DATE_COLUMNS[self.dates])
        return tuple(chosen)

    @property
    def selected(self) -> tuple[str, ...]:
        """Names of the selected options (for DeidentificationMethod), in a fixed order."""
        names = [f.name for f in fields(self) if f.name != "dates" and getattr(self, f.name)]
        if self.dates != "remove":
            names.append(f"dates_{self.dates}")
        return tuple(names)


@dataclass(frozen=True)
class ProfileRule:
    """One row of Table E.1-1: which tags it matches and what it does to them."""

    name: str
    mask: int
    value: int
    basic: str
    options: tuple[tuple[str, str], ...]
    in_standard_iod: bool

    def matches(self, tag: int) -> bool:
        return tag & self.mask == self.value

    def action(self, options: ProfileOptions) -> str:
        """The single action for this rule: a selected option overrides the basic profile
        (C beats K where two selected options disagree, cleaning being the safer), and a
        combination such as X/Z/D is resolved by the element's type (see ``_resolve``)."""
        chosen = {code for column, code in self.options if column in options.option_columns}
        if chosen:
            return "C" if "C" in chosen else "K"
        return _resolve(self.basic, self.in_standard_iod)


def _resolve(basic: str, in_standard_iod: bool) -> str:
    """Pick one action of a combination by the element's type (X for type 3, Z for type 2,
    D for type 1). Without the IOD module tables the type is not known, so an attribute that
    no standard composite IOD uses is taken as type 3 (removed) and any other as the worst
    case the combination allows (D, else Z), which keeps the object valid; U* (a sequence
    of references) keeps the sequence with its UIDs remapped."""
    codes = basic.split("/")
    if len(codes) == 1:
        return codes[0]
    if "U*" in codes:
        return "U*"
    if not in_standard_iod and "X" in codes:
        return "X"
    return "D" if "D" in codes else "Z"


def _parse_tag(text: str) -> tuple[int, int]:
    """Mask and value of a tag such as ``(0010,0010)`` or ``(60XX,3000)``."""
    match = _TAG.match(text.upper())
    if match is None:
        raise ProfileError(f"profile table: tag {text!r} is not of the form (gggg,eeee)")
    digits = match.group(1) + match.group(2)
    mask = int("".join("0" if c == "X" else "F" for c in digits), 16)
    value = int(digits.replace("X", "0"), 16)
    return mask, value


@dataclass(frozen=True)
class Profile:
    """All rules of the table: exact tags in a dict, repeating groups scanned in order; the
    private-attributes row applies to every odd group."""

    exact: dict[int, ProfileRule]
    masked: tuple[ProfileRule, ...]
    private: ProfileRule
    row_count: int

    def rule_for(self, tag: int) -> ProfileRule | None:
        rule = self.exact.get(tag)
        if rule is not None:
            return rule
        for masked in self.masked:
            if masked.matches(tag):
                return masked
        return self.private if (tag >> 16) % 2 == 1 else None


@cache
def load_profile() -> Profile:
    """Parse the packaged table (once per process)."""
    text = (resources.files("deid.data") / "confidentiality_profile_attributes.json").read_text(
        encoding="utf-8")
    rows = json.loads(text)
    option_names = set(_OPTION_COLUMNS.values()) | set(_DATE_COLUMNS.values())
    exact: dict[int, ProfileRule] = {}
    masked: list[ProfileRule] = []
    private: ProfileRule | None = None
    for row in rows:
        codes = row["basicProfile"].split("/")
        if not set(codes) <= _SINGLE_ACTIONS:
            raise ProfileError(f"profile table: row {row['tag']} has unknown action "
                               f"{row['basicProfile']!r}")
        options = tuple(sorted((k, v) for k, v in row.items() if k in option_names))
        is_private_row = row["tag"].upper().startswith("(GGGG,EEEE)")
        mask, value = (0, 0) if is_private_row else _parse_tag(row["tag"])
        rule = ProfileRule(row["name"], mask, value, row["basicProfile"], options,
                           row["stdCompIOD"] == "Y")
        if is_private_row:
            private = rule
        elif mask == 0xFFFFFFFF:
            exact[value] = rule
        else:
            masked.append(rule)
    if private is None:
        raise ProfileError("profile table: the private attributes row is missing")
    return Profile(exact, tuple(masked), private, len(rows))
