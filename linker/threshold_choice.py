"""The threshold of a run given none: estimated from the data where an estimate applies (an
all-pairs Dice linkage of two or more parties without deduplication), else the measured
default; either way with the reason, as run.json's ``threshold_choice`` records it."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .backends import Backend
from .clkset import ClkSet
from .link import default_threshold

__all__ = ["UNASKED_MAX_FLOOR_PAIRS", "choose_threshold", "no_estimate_because"]

# Pairs at Dice 0.5 an estimate nobody asked for may hold (about 1.5 GiB): a run given no
# threshold should not take the memory of a large `--threshold auto` by surprise.
UNASKED_MAX_FLOOR_PAIRS = 20_000_000


def no_estimate_because(dedup: Sequence[bool], blocked: bool, tokens: Sequence[str]
                        ) -> str | None:
    """Why no estimate applies to a run, or None where one does."""
    if any(dedup):
        return ("no estimate holds for deduplication: within one provider, relatives of a "
                "household score like duplicates")
    if blocked or tokens:
        return ("the estimate describes an all-pairs Dice linkage, and this run is "
                + ("blocked" if blocked else "given token candidates"))
    return None


def choose_threshold(sets: list[ClkSet], dedup: Sequence[bool], blocked: bool,
                     tokens: Sequence[str], backend: Backend,
                     progress: Callable[[float], None] | None = None
                     ) -> tuple[float, dict[str, object], str]:
    """The threshold a run given none takes, its ``threshold_choice`` and a line saying
    which and why: the estimate's (``estimate_sets``; ``progress`` as there) where one
    applies and succeeds, else ``default_threshold`` with the reason there is no estimate."""
    why = no_estimate_because(dedup, blocked, tokens)
    if why is None:
        from .estimate import MAX_FLOOR_PAIRS, TooManyFloorPairs, estimate_sets  # scipy: 1 s

        try:
            estimate = estimate_sets(sets, backend, progress, max_pairs=UNASKED_MAX_FLOOR_PAIRS)
            return estimate.threshold, estimate.choice(), estimate.summary()
        except TooManyFloorPairs as e:
            why = f"no estimate: {e}; --threshold auto takes up to {MAX_FLOOR_PAIRS:,}"
        except ValueError as e:  # too few scores to fit
            why = f"no estimate: {e}"
    threshold = default_threshold(dedup)
    reason = f"{why}; the default, from the measurements in the README"
    return threshold, {"method": "default", "reason": reason}, f"threshold {threshold}: {reason}"
