"""The threshold of a run given none, or given `auto`: estimated from the data where an
estimate applies, else (given none) the measured default; either way with the reason, as
run.json's ``threshold_choice`` records it.

Two estimates: an all-pairs Dice linkage of two or more parties without deduplication is
fitted (``linker.estimate``); one party deduplicated takes the valley of its pair scores
(``linker.dedup_valley``). Neither describes a blocked run, one given token candidates, or
linkage and deduplication on one threshold together."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from . import floor_pairs
from .backends import Backend
from .clkset import ClkSet
from .dedup_valley import estimate_dedup
from .link import default_threshold

__all__ = ["UNASKED_MAX_FLOOR_PAIRS", "choose_threshold", "estimate_threshold",
           "no_estimate_because"]

# Pairs at the estimate's floor one nobody asked for may hold (about 1.5 GiB): a run given no
# threshold should not take the memory of a large `--threshold auto` by surprise.
UNASKED_MAX_FLOOR_PAIRS = 20_000_000


def no_estimate_because(dedup: Sequence[bool], blocked: bool, tokens: Sequence[str]
                        ) -> str | None:
    """Why no estimate applies to a run (``dedup``: one flag per party), or None where one
    does."""
    if blocked or tokens:
        return ("the estimate describes an all-pairs Dice run, and this run is "
                + ("blocked" if blocked else "given token candidates"))
    if len(dedup) == 1 and not dedup[0]:
        return "one party without deduplication links nothing"
    if any(dedup) and len(dedup) > 1:
        return ("no estimate holds for linkage and deduplication on one threshold: within a "
                "provider relatives of a household score like duplicates, across providers "
                "the 1:1 rule sets them aside; deduplicate each provider on its own "
                "(`pprl dedup`) to have its threshold estimated")
    return None


def estimate_threshold(sets: list[ClkSet], dedup: Sequence[bool], backend: Backend,
                       progress: Callable[[float], None] | None = None,
                       max_pairs: int | None = None) -> tuple[float, dict[str, object], str]:
    """The estimated threshold, its ``threshold_choice`` and a line saying why: one party
    deduplicated by its valley, two or more parties by the linkage fit. ``progress``: the
    share of the candidate search done. ValueError (``TooManyFloorPairs`` among them): no
    estimate of this data; the caller has checked ``no_estimate_because``."""
    limit = floor_pairs.MAX_FLOOR_PAIRS if max_pairs is None else max_pairs  # at each call
    if len(sets) == 1:  # deduplicated: ``no_estimate_because`` refuses it otherwise
        valley = estimate_dedup(sets[0], backend, progress, limit)
        return valley.threshold, valley.choice(), valley.summary()
    from .estimate import estimate_sets  # here: it imports scipy.stats (about 1 s)

    estimate = estimate_sets(sets, backend, progress, max_pairs=limit)
    return estimate.threshold, estimate.choice(), estimate.summary()


def choose_threshold(sets: list[ClkSet], dedup: Sequence[bool], blocked: bool,
                     tokens: Sequence[str], backend: Backend,
                     progress: Callable[[float], None] | None = None
                     ) -> tuple[float, dict[str, object], str]:
    """The threshold a run given none takes, its ``threshold_choice`` and a line saying
    which and why: the estimate's (``estimate_threshold``, at most
    ``UNASKED_MAX_FLOOR_PAIRS`` pairs) where one applies and succeeds, else
    ``default_threshold`` with the reason there is no estimate."""
    why = no_estimate_because(dedup, blocked, tokens)
    if why is None:
        try:
            return estimate_threshold(sets, dedup, backend, progress, UNASKED_MAX_FLOOR_PAIRS)
        except floor_pairs.TooManyFloorPairs as e:
            why = (f"no estimate: {e}; --threshold auto takes up to "
                   f"{floor_pairs.MAX_FLOOR_PAIRS:,}")
        except ValueError as e:  # too few scores to fit
            why = f"no estimate: {e}"
    threshold = default_threshold(dedup)
    reason = f"{why}; the default, from the measurements in the README"
    return threshold, {"method": "default", "reason": reason}, f"threshold {threshold}: {reason}"
