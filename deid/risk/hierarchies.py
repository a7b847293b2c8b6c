"""Generalisation hierarchies: how each quasi-identifier is coarsened, one level at a time.

Level 0 is the value as written; each higher level is coarser and the last is ``*`` (every
value, missing ones included, becomes one). Levels nest: a level's value is a function of the
level below's, so generalising only ever merges equivalence classes. That makes k-anonymity
with record suppression monotone along the lattice, which the optimal search in
:mod:`deid.risk.generalise` relies on (ARX's hierarchies have the same property). Below the top
level a missing value stays missing: a value of its own, as in :mod:`deid.risk.classes`.

Kinds (name, levels above 0):

- ``number`` (ages, birth years, any number): bands of ``widths`` (default 5, 10, 20) anchored
  at 0 (``floor(v / w) * w``), then ``*``. Each width must divide the next, so that bands nest.
  Labels are ``40-44`` when every value is a whole number, ``[40, 45)`` otherwise. Optional
  ``top``: values at or above it become ``{top}+`` at every level above 0 (HIPAA Safe
  Harbor's "90 or older").
- ``date`` (ISO ``YYYY-MM-DD``, or an Arrow date/timestamp): month ``YYYY-MM``, year
  ``YYYY``, ``*``.
- ``zip`` (US ZIP code, ``digits`` 5 (default) or 3; integers are zero-padded): ZIP3, then the
  first digit, then ``*``. The first digit is the USPS national area (0 New England ... 9 the
  Pacific), a group of several states, coarser than a state: mapping ZIP3 to states needs a
  table we do not ship.
- ``code`` (ICD-10 ``C34.1``, ATC, ...): the code before its first ``.`` (``C34``), its first
  character (``C``), ``*``; or, with ``lengths`` (strictly decreasing), prefixes of those
  lengths (a trailing ``.`` dropped).
- ``category``: ``*`` only.
- ``explicit``: ``levels`` maps each value (its string form) to its values at levels 1, 2, ...
  (as ARX's hierarchy tables do); ``*`` is added on top unless the last level is one value.

A spec (JSON) maps columns to a kind name or an object ``{"kind": ..., options}``, e.g.
``{"age": {"kind": "number", "widths": [5, 10, 20], "top": 90}, "zip": "zip",
"diagnosis": {"kind": "code", "lengths": [3, 1]}}``. Columns without one get a default: by the
attributes file's declared type (code, category, number, date) when known, else by the Arrow
type; a string or category column whose values all look like 5- or 3-digit ZIPs, ISO dates or
ICD-10 codes gets that kind.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["Hierarchy", "HierarchyError", "KINDS", "hierarchy_from_spec", "default_hierarchy",
           "hierarchies_for", "load_hierarchy_spec"]

KINDS: tuple[str, ...] = ("number", "date", "zip", "code", "category", "explicit")
SUPPRESSED = "*"

LevelFunction = Callable[[pa.Array], pa.Array]


class HierarchyError(ValueError):
    """A hierarchy spec is invalid, or a column's values do not fit its hierarchy. Messages
    name the column and the rule, never a value."""


@dataclass(frozen=True)
class Hierarchy:
    """A column's generalisation levels: ``level_names[0]`` is the value itself,
    ``level_names[-1]`` is ``*``; ``functions[i - 1]`` maps the values to level i."""

    kind: str
    level_names: tuple[str, ...]
    functions: tuple[LevelFunction, ...] = field(repr=False, compare=False)
    options: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def height(self) -> int:
        """The highest level (``*``)."""
        return len(self.level_names) - 1

    def generalise(self, values: pa.Array | pa.ChunkedArray, level: int) -> pa.Array:
        """``values`` at ``level`` (level 0 returns them as they are), vectorised."""
        if not 0 <= level <= self.height:
            raise HierarchyError(f"{self.kind} hierarchy: level {level} is not in 0.."
                                 f"{self.height}")
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        if level == 0:
            return values
        return self.functions[level - 1](values)

    def describe(self) -> dict[str, Any]:
        """JSON-ready: kind, options and level names (for a report)."""
        return {"kind": self.kind, "options": dict(self.options),
                "levels": list(self.level_names)}


def _top(values: pa.Array) -> pa.Array:
    return pa.repeat(pa.scalar(SUPPRESSED, pa.string()), len(values))


def _labelled(groups: np.ndarray, valid: np.ndarray, label: Callable[[float], str]
              ) -> pa.Array:
    """Strings for numeric group keys, formatting each distinct key once."""
    keys, inverse = np.unique(np.where(valid, groups, 0.0), return_inverse=True)
    labels = pa.array([label(float(k)) for k in keys], pa.string())
    return pc.take(labels, pa.array(inverse.astype(np.int64), mask=~valid))


def _number(widths: Sequence[float], top: float | None) -> Hierarchy:
    if not widths or any(not isinstance(w, int | float) or isinstance(w, bool) or w <= 0
                         or not math.isfinite(w) for w in widths):
        raise HierarchyError("number hierarchy: widths must be positive numbers")
    for lower, upper in zip(widths, widths[1:], strict=False):
        ratio = upper / lower
        if ratio <= 1 or abs(ratio - round(ratio)) > 1e-9:
            raise HierarchyError("number hierarchy: each width must divide the next, larger one"
                                 " (bands must nest)")
    if top is not None and (not isinstance(top, int | float) or isinstance(top, bool)
                            or not math.isfinite(top)):
        raise HierarchyError("number hierarchy: top must be a number")

    def bands(width: float) -> LevelFunction:
        def apply(values: pa.Array) -> pa.Array:
            try:
                numbers = values.cast(pa.float64()).to_numpy(zero_copy_only=False)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
                raise HierarchyError("number hierarchy: values are not numbers") from e
            valid = ~np.isnan(numbers)
            whole = bool(np.all(numbers[valid] == np.floor(numbers[valid])))
            low = np.floor(numbers / width) * width
            if top is not None:
                low = np.where(numbers >= top, np.inf, low)

            def label(start: float) -> str:
                if start == np.inf:
                    return f"{top:g}+"
                end = start + width
                if whole:
                    last = end - 1 if top is None else min(end - 1, math.ceil(top) - 1)
                    return f"{start:g}-{last:g}"
                return f"[{start:g}, {end if top is None else min(end, top):g})"

            return _labelled(low, valid, label)
        return apply

    names = tuple(f"{w:g}-wide bands" for w in widths)
    options: dict[str, Any] = {"widths": list(widths)}
    if top is not None:
        options["top"] = top
    return Hierarchy("number", ("value", *names, SUPPRESSED),
                     (*(bands(w) for w in widths), _top), options)


def _iso_strings(values: pa.Array) -> pa.Array:
    if pa.types.is_timestamp(values.type) or pa.types.is_date(values.type):
        return values.cast(pa.date32()).cast(pa.string())
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        raise HierarchyError(f"date hierarchy: values of type {values.type} are not dates")
    ok = pc.match_substring_regex(values, r"^\d{4}-\d{2}-\d{2}")
    if pc.sum(pc.invert(ok)).as_py():
        raise HierarchyError("date hierarchy: values are not ISO dates (YYYY-MM-DD)")
    return values


def _date() -> Hierarchy:
    def prefix(length: int) -> LevelFunction:
        def apply(values: pa.Array) -> pa.Array:
            return pc.utf8_slice_codeunits(_iso_strings(values), 0, length)
        return apply

    return Hierarchy("date", ("day", "month", "year", SUPPRESSED),
                     (prefix(7), prefix(4), _top))


def _prefixes(kind: str, lengths: Sequence[int], pad: int | None,
              names: Sequence[str] | None = None) -> Hierarchy:
    if not lengths or any(not isinstance(n, int) or isinstance(n, bool) or n < 1
                          for n in lengths) or list(lengths) != sorted(set(lengths),
                                                                     reverse=True):
        raise HierarchyError(f"{kind} hierarchy: lengths must be strictly decreasing positive"
                             " integers")

    def strings(values: pa.Array) -> pa.Array:
        if pa.types.is_integer(values.type) and pad is not None:
            return pc.utf8_lpad(values.cast(pa.string()), width=pad, padding="0")
        if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
            return values
        raise HierarchyError(f"{kind} hierarchy: values of type {values.type} are not codes")

    def prefix(length: int) -> LevelFunction:
        def apply(values: pa.Array) -> pa.Array:
            cut = pc.utf8_slice_codeunits(strings(values), 0, length)
            return pc.replace_substring_regex(cut, pattern=r"\.$", replacement="")
        return apply

    labels = tuple(names) if names else tuple(f"first {n}" for n in lengths)
    options: dict[str, Any] = {"lengths": list(lengths)}
    return Hierarchy(kind, ("value", *labels, SUPPRESSED),
                     (*(prefix(n) for n in lengths), _top), options)


def _zip(digits: int) -> Hierarchy:
    if digits == 5:
        found = _prefixes("zip", [3, 1], 5, ["ZIP3", "first digit"])
    elif digits == 3:
        found = _prefixes("zip", [1], 3, ["first digit"])
    else:
        raise HierarchyError("zip hierarchy: digits must be 5 or 3")
    return Hierarchy("zip", found.level_names, found.functions, {"digits": digits})


def _icd_like_code() -> Hierarchy:
    def category(values: pa.Array) -> pa.Array:
        if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
            values = values.cast(pa.string())
        return pc.replace_substring_regex(values, pattern=r"\..*$", replacement="")

    def first(values: pa.Array) -> pa.Array:
        return pc.utf8_slice_codeunits(category(values), 0, 1)

    return Hierarchy("code", ("value", "before '.'", "first character", SUPPRESSED),
                     (category, first, _top))


def _category() -> Hierarchy:
    return Hierarchy("category", ("value", SUPPRESSED), (_top,))


def _explicit(levels: object) -> Hierarchy:
    if not isinstance(levels, Mapping) or not levels:
        raise HierarchyError("explicit hierarchy: levels must map each value to its list of "
                             "generalised values")
    chains = list(levels.values())
    if any(not isinstance(c, list) or not c or any(not isinstance(v, str) for v in c)
           for c in chains) or len({len(c) for c in chains}) != 1:
        raise HierarchyError("explicit hierarchy: every value needs a list of the same "
                             "number of generalised values (strings)")
    depth = len(chains[0])
    for i in range(depth - 1):
        parent: dict[str, str] = {}
        for chain in chains:
            if parent.setdefault(chain[i], chain[i + 1]) != chain[i + 1]:
                raise HierarchyError(f"explicit hierarchy: a value at level {i + 1} has "
                                     f"two parents at level {i + 2} (levels must nest)")
    keys = pa.array([str(k) for k in levels], pa.string())
    columns = [pa.array([c[i] for c in chains], pa.string()) for i in range(depth)]
    with_top = len({c[-1] for c in chains}) > 1

    def known(values: pa.Array) -> pa.Array:
        """Each value's row in the hierarchy (null where missing)."""
        text = values if pa.types.is_string(values.type) else values.cast(pa.string())
        index = pc.index_in(text, value_set=keys)
        if index.null_count != text.null_count:
            raise HierarchyError("explicit hierarchy: some values of the column are not in "
                                 "its hierarchy")
        return index

    def level(i: int) -> LevelFunction:
        def apply(values: pa.Array) -> pa.Array:
            return pc.take(columns[i], known(values))
        return apply

    functions = [level(i) for i in range(depth)]
    names = [f"level {i + 1}" for i in range(depth)]
    if with_top:
        functions.append(_top)
        names.append(SUPPRESSED)
    else:  # the given top: every row, a missing value too, as the built-in ``*`` does
        single = chains[0][-1]

        def top(values: pa.Array) -> pa.Array:
            known(values)  # still refuse values the hierarchy does not list
            return pa.repeat(pa.scalar(single, pa.string()), len(values))
        functions[-1] = top
    return Hierarchy("explicit", ("value", *names), tuple(functions),
                     {"values": len(chains)})


_OPTIONS: dict[str, set[str]] = {"number": {"widths", "top"}, "date": set(),
                                 "zip": {"digits"}, "code": {"lengths"}, "category": set(),
                                 "explicit": {"levels"}}


def hierarchy_from_spec(spec: str | Mapping[str, Any]) -> Hierarchy:
    """One column's hierarchy from its spec: a kind name or ``{"kind": ..., options}``."""
    if isinstance(spec, str):
        spec = {"kind": spec}
    if not isinstance(spec, Mapping) or spec.get("kind") not in KINDS:
        raise HierarchyError(f"a hierarchy spec needs a kind, one of {list(KINDS)}")
    kind = str(spec["kind"])
    unknown = sorted(set(spec) - {"kind"} - _OPTIONS[kind])
    if unknown:
        raise HierarchyError(f"{kind} hierarchy: unknown options {unknown}; known: "
                             f"{sorted(_OPTIONS[kind])}")
    if kind == "number":
        return _number(list(spec.get("widths", [5, 10, 20])), spec.get("top"))
    if kind == "date":
        return _date()
    if kind == "zip":
        return _zip(spec.get("digits", 5))
    if kind == "code":
        return _prefixes("code", spec["lengths"], None) if "lengths" in spec \
            else _icd_like_code()
    if kind == "category":
        return _category()
    return _explicit(spec.get("levels"))


def _all_match(values: pa.Array, pattern: str) -> bool:
    present = values.drop_null()
    return len(present) > 0 and bool(pc.all(pc.match_substring_regex(present, pattern))
                                     .as_py())


def _sniffed(values: pa.Array) -> Hierarchy | None:
    """A ZIP, date or code hierarchy for strings that all look like one, else None."""
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        return None
    if _all_match(values, r"^\d{5}$"):
        return _zip(5)
    if _all_match(values, r"^\d{3}$"):
        return _zip(3)
    if _all_match(values, r"^\d{4}-\d{2}-\d{2}$"):
        return _date()
    if _all_match(values, r"^[A-Z]\d[0-9A-Z](\.[0-9A-Z]{1,4})?$"):
        return _icd_like_code()
    return None


def default_hierarchy(values: pa.Array | pa.ChunkedArray, declared_type: str | None = None
                      ) -> Hierarchy:
    """The default for a column: by its declared attribute type (code, category, number,
    date) when known, else by its Arrow type; strings that all look like ZIPs, ISO dates or
    ICD-10 codes get that kind, any other column ``category`` (``*`` only)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if declared_type == "number":
        return hierarchy_from_spec("number")
    if declared_type == "date":
        return _date()
    if declared_type == "code":
        return _icd_like_code()
    if declared_type not in (None, "category"):
        raise HierarchyError(f"unknown declared type {declared_type!r}")
    sniffed = _sniffed(values)
    if sniffed is not None:
        return sniffed
    kind = values.type
    if declared_type is None and (pa.types.is_integer(kind) or pa.types.is_floating(kind)
                                  or pa.types.is_decimal(kind)):
        return hierarchy_from_spec("number")
    if declared_type is None and (pa.types.is_date(kind) or pa.types.is_timestamp(kind)):
        return _date()
    return _category()


def load_hierarchy_spec(path: str | Path) -> dict[str, Any]:
    """Read a hierarchies JSON file: an object mapping column names to specs."""
    try:
        spec = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise HierarchyError(f"{path}: cannot read a hierarchies JSON file ({e})") from e
    if not isinstance(spec, dict):
        raise HierarchyError(f"{path}: must be a JSON object mapping columns to hierarchies")
    return spec


def hierarchies_for(table: pa.Table, quasi_identifiers: Sequence[str],
                    spec: Mapping[str, Any] | None = None,
                    declared_types: Mapping[str, str] | None = None) -> dict[str, Hierarchy]:
    """A hierarchy for every quasi-identifier: the spec's where given, else the default.

    Raises:
        HierarchyError: the spec names a column that is not a quasi-identifier, or is invalid
            (the column is named).
    """
    spec = spec or {}
    stray = sorted(set(spec) - set(quasi_identifiers))
    if stray:
        raise HierarchyError(f"hierarchies are given for {stray}, which are not "
                             f"quasi-identifiers ({list(quasi_identifiers)})")
    found: dict[str, Hierarchy] = {}
    for name in quasi_identifiers:
        if name not in table.column_names:
            raise KeyError(f"no column {name!r}; columns: {table.column_names}")
        try:
            found[name] = hierarchy_from_spec(spec[name]) if name in spec else \
                default_hierarchy(table[name], (declared_types or {}).get(name))
        except HierarchyError as e:
            raise HierarchyError(f"column {name!r}: {e}") from e
    return found
