"""The ``--threshold`` value of the linking commands, local and against the service: a Dice
coefficient, or ``auto`` (chosen from the data); and ``--dedup-threshold PARTY=DICE``, the
threshold of pairs within a deduplicated party."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import click

__all__ = ["AUTO", "ALL_PARTIES", "DiceOrAuto", "keyword_clash", "party_thresholds",
           "within_thresholds"]

AUTO = "auto"
ALL_PARTIES = "all"


def _dice(text: str) -> float | None:
    """A threshold in (0, 1], as the service takes it (0 would make every pair a candidate:
    n x m pairs in memory), else None."""
    try:
        number = float(text)
    except ValueError:
        return None
    return number if 0.0 < number <= 1.0 else None


class DiceOrAuto(click.ParamType):
    """A Dice coefficient in (0, 1], or ``auto``."""

    name = "threshold"

    def convert(self, value: object, param: click.Parameter | None,
                ctx: click.Context | None) -> float | str:
        if isinstance(value, float) or value == AUTO:
            return value  # type: ignore[return-value]
        number = _dice(str(value))
        if number is None:
            self.fail(f"{value!r} is neither a number above 0 and at most 1 nor '{AUTO}'",
                      param, ctx)
        return number


def party_thresholds(ctx: click.Context | None, param: click.Parameter | None,
                     values: Sequence[str]) -> dict[str, float]:
    """``--dedup-threshold PARTY=DICE`` (repeatable; PARTY ``all``: every deduplicated party
    not named on its own) as party -> Dice."""
    given: dict[str, float] = {}
    for value in values:
        party, _, dice = value.partition("=")
        number = _dice(dice)
        if not party or number is None:
            raise click.BadParameter(f"{value!r} is not PARTY=DICE (a party label or "
                                     f"'{ALL_PARTIES}', and a number above 0 and at most 1)",
                                     ctx, param)
        if party in given:
            raise click.BadParameter(f"party {party!r} is given twice", ctx, param)
        given[party] = number
    return given


def keyword_clash(parties: Sequence[str], option: str) -> str | None:
    """Why ``option`` naming ``all`` cannot be read, where a party is labelled ``all``: the
    keyword for every party and that party's label would be the same word."""
    if ALL_PARTIES not in parties:
        return None
    return (f"{option} {ALL_PARTIES!r} is ambiguous: a party is labelled {ALL_PARTIES!r}, "
            f"the keyword for every party; give that party another label")


def within_thresholds(given: Mapping[str, float], parties: Sequence[str],
                      dedup: Sequence[bool]) -> dict[str, float]:
    """Each deduplicated party's threshold from ``given`` (party -> Dice, ``all`` for those
    not named). ValueError naming a party that is unknown or not deduplicated, or where fewer
    than two parties are linked or none is deduplicated (no pairs within a party beside pairs
    across parties), or where ``all`` is given and also a party's label."""
    if len(parties) < 2 or not any(dedup):
        raise ValueError("thresholds within parties apply to the linkage of two or more "
                         "parties with some deduplicated; give one threshold")
    clash = keyword_clash(parties, "a threshold for") if ALL_PARTIES in given else None
    if clash:
        raise ValueError(clash)
    named = set(given) - {ALL_PARTIES}
    unknown = sorted(named - set(parties))
    if unknown:
        raise ValueError(f"the thresholds within parties name unknown parties {unknown}; "
                         f"parties: {list(parties)}")
    apart = sorted(named - {p for p, d in zip(parties, dedup, strict=True) if d})
    if apart:
        raise ValueError(f"the thresholds within parties name {apart}, which are not "
                         f"deduplicated")
    return {p: given[p] if p in given else given[ALL_PARTIES]
            for p, d in zip(parties, dedup, strict=True)
            if d and (p in given or ALL_PARTIES in given)}
