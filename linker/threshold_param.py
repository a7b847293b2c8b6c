"""The ``--threshold`` value of the linking commands, local and against the service: a Dice
coefficient, or ``auto`` (chosen from the data)."""

from __future__ import annotations

import click

__all__ = ["AUTO", "DiceOrAuto"]

AUTO = "auto"


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
