"""The errors real registration data carries, applied to a column at a given rate.

Each function takes a numpy object array of strings, the share of values to change and a
random generator, and changes that share in place (values that cannot take the error, such as
a name with no known nickname, are left alone). Nicknames come from the ``nicknames`` package
(a curated English name/nickname table); phonetic variants are other names of the same pool
with the same Metaphone code (``jellyfish``).
"""

from __future__ import annotations

from collections import defaultdict
from functools import lru_cache

import numpy as np

__all__ = ["keyboard_typo", "ocr_error", "nickname", "phonetic_variant", "swap_day_month",
           "date_typo", "blank", "pick"]

_ROWS = ["1234567890", "qwertyuiop", "asdfghjkl", "zxcvbnm"]
_OCR = {"o": "0", "0": "o", "l": "1", "1": "l", "i": "l", "s": "5", "5": "s", "b": "8",
        "8": "b", "m": "rn", "rn": "m", "e": "c", "u": "v", "g": "9", "z": "2"}


@lru_cache(maxsize=1)
def _neighbours() -> dict[str, str]:
    """QWERTY keys next to each key (same row, and the rows above and below)."""
    where = {c: (r, i) for r, row in enumerate(_ROWS) for i, c in enumerate(row)}
    near: dict[str, str] = {}
    for c, (r, i) in where.items():
        near[c] = "".join(d for d, (r2, i2) in where.items()
                          if d != c and abs(r2 - r) <= 1 and abs(i2 - i) <= 1)
    return near


def pick(values: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Indices of the non-empty values chosen to change."""
    chosen = np.flatnonzero(rng.random(len(values)) < rate)
    return np.array([i for i in chosen.tolist() if values[i]], dtype=np.int64)


def keyboard_typo(values: np.ndarray, rate: float, rng: np.random.Generator) -> None:
    """One slip of the finger: a neighbouring key, a doubled or dropped letter, or two
    letters swapped."""
    near = _neighbours()
    for i in pick(values, rate, rng).tolist():
        text = values[i]
        k = int(rng.integers(len(text)))
        kind = int(rng.integers(4))
        if kind == 0 and near.get(text[k]):
            keys = near[text[k]]
            text = text[:k] + keys[int(rng.integers(len(keys)))] + text[k + 1:]
        elif kind == 1:
            text = text[:k] + text[k] + text[k:]
        elif kind == 2 and len(text) > 1:
            text = text[:k] + text[k + 1:]
        elif k + 1 < len(text):
            text = text[:k] + text[k + 1] + text[k] + text[k + 2:]
        values[i] = text


def ocr_error(values: np.ndarray, rate: float, rng: np.random.Generator) -> None:
    """A character read as its look-alike (o/0, l/1, rn/m, ...), as from scanned forms."""
    for i in pick(values, rate, rng).tolist():
        text = values[i]
        spots = [(k, a) for a in _OCR for k in range(len(text)) if text.startswith(a, k)]
        if spots:
            k, a = spots[int(rng.integers(len(spots)))]
            values[i] = text[:k] + _OCR[a] + text[k + len(a):]


@lru_cache(maxsize=1)
def _nicknames() -> object:
    from nicknames import NickNamer

    return NickNamer()


def nickname(values: np.ndarray, rate: float, rng: np.random.Generator) -> None:
    """A given name replaced by one of its nicknames (robert -> bob)."""
    namer = _nicknames()
    for i in pick(values, rate, rng).tolist():
        options = sorted(namer.nicknames_of(values[i]))  # type: ignore[attr-defined]
        if options:
            values[i] = options[int(rng.integers(len(options)))]


@lru_cache(maxsize=8)
def _by_sound(pool: tuple[str, ...]) -> dict[str, list[str]]:
    import jellyfish

    groups: defaultdict[str, list[str]] = defaultdict(list)
    for name in pool:
        groups[jellyfish.metaphone(name)].append(name)
    return groups


def phonetic_variant(values: np.ndarray, rate: float, rng: np.random.Generator,
                     pool: tuple[str, ...]) -> None:
    """A name replaced by another of ``pool`` that sounds the same (same Metaphone code)."""
    import jellyfish

    groups = _by_sound(pool)
    for i in pick(values, rate, rng).tolist():
        options = [n for n in groups.get(jellyfish.metaphone(values[i]), []) if n != values[i]]
        if options:
            values[i] = options[int(rng.integers(len(options)))]


def swap_day_month(values: np.ndarray, rate: float, rng: np.random.Generator) -> None:
    """YYYY-MM-DD with day and month exchanged, where that is still a date."""
    for i in pick(values, rate, rng).tolist():
        year, month, day = values[i].split("-")
        if day != month and int(day) <= 12:
            values[i] = f"{year}-{day}-{month}"


def date_typo(values: np.ndarray, rate: float, rng: np.random.Generator) -> None:
    """One digit of a YYYY-MM-DD date mistyped, keeping it a valid date."""
    for i in pick(values, rate, rng).tolist():
        for _ in range(10):
            text = values[i]
            k = int(rng.choice([2, 3, 5, 6, 8, 9]))
            changed = text[:k] + str(int(rng.integers(10))) + text[k + 1:]
            try:
                np.datetime64(changed)
            except ValueError:
                continue
            if changed != text:
                values[i] = changed
                break


def blank(values: np.ndarray, rate: float, rng: np.random.Generator) -> None:
    """A value left empty."""
    values[rng.random(len(values)) < rate] = ""
