"""The ``--threshold`` value of the linking commands, local and against the service: a Dice
coefficient, or ``auto`` (chosen from the data); and ``--dedup-threshold PARTY=DICE``, the
threshold of pairs within a deduplicated party."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import click

__all__ = ["AUTO", "ALL_PARTIES", "DiceOrAuto", "party_thresholds", "within_thresholds"]

AUTO = "auto"
ALL_PARTIES = "all"


class DiceOrAuto(click.ParamType):
    """A Dice coefficient in [0, 1], or ``auto``."""

    name = "threshold"

    def convert(self, value: object, param: click.Parameter | None,
                ctx: click.Context | None) -> float | str:
        if isinstance(value, float) or value == AUTO:
            return value  # type: ignore[return-value]
        try:
            number = float(str(value))
        except ValueError:
            number = -1.0
        if not 0.0 <= number <= 1.0:
            self.fail(f"{value!r} is neither a number from 0 to 1 nor '{AUTO}'", param, ctx)
        return number


def party_thresholds(ctx: click.Context | None, param: click.Parameter | None,
                     values: Sequence[str]) -> dict[str, float]:
    """``--dedup-threshold PARTY=DICE`` (repeatable; PARTY ``all``: every deduplicated party
    not named on its own) as party -> Dice."""
    given: dict[str, float] = {}
    for value in values:
        party, _, dice = value.partition("=")
        try:
            number = float(dice)
        except ValueError:
            number = -1.0
        if not party or not 0.0 <= number <= 1.0:
            raise click.BadParameter(f"{value!r} is not PARTY=DICE (a party label or "
                                     f"'{ALL_PARTIES}', and a number from 0 to 1)", ctx, param)
        if party in given:
            raise click.BadParameter(f"party {party!r} is given twice", ctx, param)
        given[party] = number
    return given


def within_thresholds(given: Mapping[str, float], parties: Sequence[str],
                      dedup: Sequence[bool]) -> dict[str, float]:
    """Each deduplicated party's threshold from ``given`` (party -> Dice, ``all`` for those
    not named). ValueError naming a party that is unknown or not deduplicated, or where fewer
    than two parties are linked or none is deduplicated (no pairs within a party beside pairs
    across parties)."""
    if len(parties) < 2 or not any(dedup):
        raise ValueError("thresholds within parties apply to the linkage of two or more "
                         "parties with some deduplicated; give one threshold")
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
