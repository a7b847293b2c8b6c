"""The threshold of a run given none, or given `auto`: estimated from the data where an
estimate applies, else (given none) the measured default; either way with the reason, as
run.json's ``threshold_choice`` records it.

Three estimates: an all-pairs Dice linkage of two or more parties without deduplication is
fitted (``linker.estimate``); one party deduplicated takes the valley of its pair scores
(``linker.dedup_valley``); two or more parties, all deduplicated, take a threshold of their
own for each kind of pair: the pairs across parties the fit's (without the 1:1 rule), each
party's pairs within it its valley. None describes a blocked run, one given token candidates,
or one where some parties are deduplicated and others not."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from . import floor_pairs
from .backends import Backend
from .clkset import ClkSet
from .dedup_valley import estimate_dedup
from .link import DEFAULT_DEDUP_THRESHOLD, default_threshold

__all__ = ["UNASKED_MAX_FLOOR_PAIRS", "ACROSS_AND_WITHIN", "ThresholdChoice",
           "choose_threshold", "estimate_threshold", "no_estimate_because"]

# Pairs at the estimate's floor one nobody asked for may hold (about 1.5 GiB): a run given no
# threshold should not take the memory of a large `--threshold auto` by surprise.
UNASKED_MAX_FLOOR_PAIRS = 20_000_000
# run.json's threshold_choice ``model`` of a run of several parties, all deduplicated.
ACROSS_AND_WITHIN = "across parties and within each"


@dataclass(frozen=True)
class ThresholdChoice:
    """A run's threshold, the thresholds of pairs within deduplicated parties where they have
    their own (party -> Dice; ``within`` gives them in ``link_sets``'s form), what run.json
    records of the choice (``threshold_choice``) and a line saying which and why."""

    threshold: float
    record: dict[str, object]
    summary: str
    dedup_thresholds: dict[str, float] | None = None

    def within(self, sets: Sequence[ClkSet]) -> list[float | None] | None:
        """``dedup_thresholds`` in the order of ``sets``, as ``link_sets`` takes them."""
        if self.dedup_thresholds is None:
            return None
        return [self.dedup_thresholds.get(s.party) for s in sets]

    def recorded(self) -> dict[str, object]:
        """What a run records and shows of its thresholds (run.json, the service's run)."""
        within = {} if self.dedup_thresholds is None else {
            "dedup_thresholds": self.dedup_thresholds}
        return {"threshold": self.threshold, **within, "threshold_choice": self.record}


def no_estimate_because(dedup: Sequence[bool], blocked: bool, tokens: Sequence[str]
                        ) -> str | None:
    """Why no estimate applies to a run (``dedup``: one flag per party), or None where one
    does."""
    if blocked or tokens:
        return ("the estimate describes an all-pairs Dice run, and this run is "
                + ("blocked" if blocked else "given token candidates"))
    if len(dedup) == 1 and not dedup[0]:
        return "one party without deduplication links nothing"
    if any(dedup) and not all(dedup):
        return ("the estimate holds where every party is deduplicated (--dedup all) or none: "
                "with some deduplicated and others not, it chose thresholds below the "
                "default's F1 (measured on the synthetic providers, the EHR alone "
                "deduplicated)")
    return None


def _shares(progress: Callable[[float], None] | None, weights: Sequence[float]
            ) -> list[Callable[[float], None] | None]:
    """One progress callback per part of a search, each part's share of the whole given by
    ``weights``, all reporting to ``progress`` the share of the whole done."""
    if progress is None:
        return [None] * len(weights)
    total = sum(weights) or 1.0

    def part(start: float, weight: float) -> Callable[[float], None]:
        return lambda share: progress(start + share * weight)

    return [part(sum(weights[:k]) / total, w / total) for k, w in enumerate(weights)]


def _estimate_kinds(sets: list[ClkSet], backend: Backend,
                    progress: Callable[[float], None] | None, limit: int) -> ThresholdChoice:
    """Two or more parties, all deduplicated: the fit's threshold across parties (without the
    1:1 rule), each party's valley within it (the default where it has none, saying why)."""
    from .estimate import estimate_sets  # here: it imports scipy.stats (about 1 s)

    across_rows = float(sum(len(a) for i, a in enumerate(sets) for _ in sets[i + 1:]))
    parts = _shares(progress, [across_rows] + [len(s) / 2 for s in sets])
    across = estimate_sets(sets, backend, parts[0], max_pairs=limit, one_to_one=False)
    within: dict[str, float] = {}
    records: dict[str, object] = {}
    said = []
    for clks, tick in zip(sets, parts[1:], strict=True):
        try:
            valley = estimate_dedup(clks, backend, tick, limit)
        except ValueError as e:  # too few pairs near the valley, or no valley
            within[clks.party] = DEFAULT_DEDUP_THRESHOLD
            reason = f"no valley: {e}; the default for deduplication"
            records[clks.party] = {"method": "default", "threshold": DEFAULT_DEDUP_THRESHOLD,
                                   "reason": reason}
        else:
            within[clks.party], reason = valley.threshold, valley.reason
            records[clks.party] = {**valley.choice(), "threshold": valley.threshold}
        said.append(f"  within {clks.party}: {within[clks.party]} ({reason})")
    record = {**across.choice(), "model": ACROSS_AND_WITHIN, "within": records}
    summary = (f"threshold {across.threshold} across parties chosen from the data: "
               f"{across.reason}; estimated precision {across.precision:.4f}, recall "
               f"{across.recall:.4f} ({across.recall_of}); within each party:\n"
               + "\n".join(said))
    return ThresholdChoice(across.threshold, record, summary, within)


def _with_records(sets: Sequence[ClkSet], dedup: Sequence[bool]
                  ) -> tuple[list[ClkSet], list[bool]]:
    """The parties that hold records, with their flags: an empty input takes part in no link,
    and must not change the others' threshold (it made every fit of its pairs fail)."""
    kept = [i for i, s in enumerate(sets) if len(s)]
    return [sets[i] for i in kept], [dedup[i] for i in kept]


def estimate_threshold(sets: list[ClkSet], dedup: Sequence[bool], backend: Backend,
                       progress: Callable[[float], None] | None = None,
                       max_pairs: int | None = None) -> ThresholdChoice:
    """The estimated threshold(s), what to record and a line saying why: one party
    deduplicated by its valley, two or more parties by the linkage fit, with each party's
    valley within it where all are deduplicated. ``progress``: the share of the candidate search
    done. ValueError (``TooManyFloorPairs`` among them): no estimate of this data; the caller
    has checked ``no_estimate_because``."""
    limit = floor_pairs.MAX_FLOOR_PAIRS if max_pairs is None else max_pairs  # at each call
    sets, dedup = _with_records(sets, dedup)
    if len(sets) == 1 and not dedup[0]:
        raise ValueError("only one party holds records, and it is not deduplicated")
    if len(sets) == 1:  # deduplicated: ``no_estimate_because`` refuses it otherwise
        valley = estimate_dedup(sets[0], backend, progress, limit)
        return ThresholdChoice(valley.threshold, valley.choice(), valley.summary())
    if any(dedup):  # all of them: ``no_estimate_because`` refuses some
        labels = [s.party for s in sets]
        if len(set(labels)) < len(labels):
            raise ValueError(f"the parties' labels repeat ({labels}): each party's threshold "
                             f"is recorded under its label")
        return _estimate_kinds(sets, backend, progress, limit)
    from .estimate import estimate_sets  # here: it imports scipy.stats (about 1 s)

    estimate = estimate_sets(sets, backend, progress, max_pairs=limit)
    return ThresholdChoice(estimate.threshold, estimate.choice(), estimate.summary())


def choose_threshold(sets: list[ClkSet], dedup: Sequence[bool], blocked: bool,
                     tokens: Sequence[str], backend: Backend,
                     progress: Callable[[float], None] | None = None) -> ThresholdChoice:
    """The threshold a run given none takes: the estimate's (``estimate_threshold``, at most
    ``UNASKED_MAX_FLOOR_PAIRS`` pairs) where one applies and succeeds, else
    ``default_threshold`` with the reason there is no estimate."""
    why = no_estimate_because(_with_records(sets, dedup)[1], blocked, tokens)
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
    return ThresholdChoice(threshold, {"method": "default", "reason": reason},
                           f"threshold {threshold}: {reason}")
