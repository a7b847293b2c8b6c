"""Linkage quality without ground truth, for two or more parties without deduplication.

Every record of the smaller party is described by its best and second-best Dice score against
the other party (candidates at ``FLOOR``). A record with a true partner has its best score
from the match distribution and its second best from the null: the largest of many
non-matching scores, which extreme-value theory says is Gumbel(mu, beta). A record without a
partner has both from the null: the top two order statistics of the same Gumbel, whose joint
density is exp(-z1 - z2 - exp(-z2)) / beta**2 (z = (s - mu) / beta; e.g. Coles, *An
Introduction to Statistical Modeling of Extreme Values*, 2001, s. 3.5). The second-best
scores pin the null down even when every record has a partner (FEBRL 4), which a plain
two-component mixture of best scores cannot do. The match distribution is a Beta on
(s - FLOOR) / (1 - FLOOR); identical CLKs (Dice 1) are matches and left out of the fit.

The threshold is the smallest score whose posterior match probability (given the best score
alone, as a threshold sees it) reaches 0.5; precision is the mean posterior of the links kept,
recall the posterior mass kept over the posterior mass of all links at the floor.

Three or more parties: each pair is fitted on its own and one threshold taken for all, the one
at which the links of all pairs together have the fewest expected errors (``estimate_parties``);
precision and recall are pooled over the pairs' links.

Measured (benchmarks/bench_estimate.py): within 0.03 of the true precision and recall (of
the links a 1:1 linkage can make) on FEBRL 4 and the synthetic providers' pairs, at
thresholds whose F1 is within 0.01 of the best; the three providers linked together
(20,000 people, seeds 5 and 6; 5,000, seed 7): precision within 0.007, recall within 0.018,
F1 within 0.005 of the best threshold's.

Linkage with deduplication (``estimate_across``): the pairs across parties take the threshold
with the fewest expected errors over all of them, a fitted record's non-matching scores above a
level counted as the Poisson exceedances behind its Gumbel (a partnered record's from
``SCORED_BELOW`` above the threshold), since without the 1:1 rule a record's weaker candidates
are links too; each deduplicated party's pairs within it take its valley
(``linker.threshold_choice``). Measured on the three synthetic providers deduplicated
(3,000-20,000 people, seeds 4-8): F1 0.3-0.8 points above the fixed 0.69, precision and recall
of the pairs across parties within 0.015 of the truth; FEBRL 4 deduplicated too: 0.1 above.
With some parties deduplicated and others not (the EHR alone) it lost 0.2-0.55 points against
0.69 on three populations, whether the pairs between parties not deduplicated were counted 1:1
or not: the one-record-per-party rule refuses most of the pairs counted as errors there, so
``threshold_choice`` gives such runs no estimate.

Not for deduplication alone, where a record's second best is often a duplicate too and
household members score 0.65-0.8: one party deduplicated takes the valley of its pair scores
(``linker.dedup_valley``). Tried
for deduplication before the valley (each record's top scores as 0-5 duplicates plus the null's
largest order statistics): with a Gumbel null the synthetic providers came within 0.02 of
the best threshold but FEBRL 2-3 at 0.75-0.77 against 0.67-0.685 (their non-match tail falls
faster than exponential); with a GEV null (shape about -0.28) FEBRL 2-3 came within 0.01 of
the best and of the true quality, but the synthetic households were taken for duplicates
(0.71 against 0.76-0.785); adding household members as a third component fixed the
synthetic providers and broke FEBRL 2-3 (it took their low-scoring duplicates). A pooled
mixture of all pair scores chose 0.73-0.77 everywhere.
Also tried (synthetic: 20,000 people seeds 5 and 6, 5,000 people seeds 5 and 7; truth is
pairwise over the cluster solver's groups, which pair counts above the threshold match within
0.007): the estimate above on random halves of the file (seed 5) chose within 0.005 of the best
on the EHR and claims extracts, but 0.805-0.825 on FEBRL 2 and 0.86-0.87 on FEBRL 3 (F1
0.73-0.91 against 0.99) and could not fit the imaging extract (too few duplicates cross the
halves). The valley of the pooled pair-score density (Gaussian kernel 0.01, 0.62-0.855), its
minimum taken as the threshold (``dedup_valley`` takes instead the lowest score within one
Poisson standard deviation of the minimum, which is what made it hold), with non-matches above
it from a Poisson fit of binned counts (exp of a quadratic, plus exp of a line
for duplicates) and duplicates below it from a Beta fitted to the scores from it to 0.99, met F1
within 0.017 of the best and precision and recall within 0.035 on FEBRL 1-3 and seed 5, but not
on the other synthetic runs: the valley is flat from 0.78 to 0.85 when an extract holds a few
hundred duplicate pairs, and it chose 0.81-0.855 on six of those nine (F1 up to 0.062 below the
best), with recall overestimated by up to 0.14 (duplicates with a changed name or address hide
among the household pairs at 0.65-0.8, which a fit above the threshold cannot see). Taking the
threshold of the largest estimated F1 instead was within 0.003 of the best on FEBRL 1-3 (quality
within 0.02) but 0.027-0.077 of F1 short on six of the twelve synthetic extracts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numba
import numpy as np
from scipy import optimize, special, stats

from .backends import Backend, candidate_pairs
from .clkset import ClkSet
from .floor_pairs import MAX_FLOOR_PAIRS, check_floor_pairs, search_ticks
from .solve import SCORED_BELOW, greedy_one_to_one

__all__ = ["FLOOR", "RECALL_OF", "RECALL_ACROSS_OF", "Mixture", "Estimate", "LinkFit",
           "top_two", "fit_mixture", "fit_links", "estimate_link", "estimate_parties",
           "estimate_across", "estimate_sets", "FloorLinks", "floor_links"]

FLOOR = 0.5
_EPS = 1e-6
# Records a fit needs: five parameters from ten records chose 0.55 on 10 of FEBRL 4's records
# against 0.625 from all 5,000.
MIN_FIT_RECORDS = 100


@dataclass(frozen=True)
class Mixture:
    """Fitted model: share of records with a partner, their Beta, the null's Gumbel."""

    match_share: float
    a: float
    b: float
    mu: float
    beta: float
    records: int = 0  # the records fitted: two candidates, best below 1

    def _log_parts(self, s1: np.ndarray, s2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = np.clip((s1 - FLOOR) / (1 - FLOOR), _EPS, 1 - _EPS)
        z1, z2 = (s1 - self.mu) / self.beta, (s2 - self.mu) / self.beta
        match = (np.log(self.match_share) + stats.beta.logpdf(x, self.a, self.b)
                 - np.log(1 - FLOOR) - z2 - np.exp(-z2) - np.log(self.beta))
        null = np.log1p(-self.match_share) - z1 - z2 - np.exp(-z2) - 2 * np.log(self.beta)
        return match, null

    def posterior(self, s1: np.ndarray, s2: np.ndarray) -> np.ndarray:
        """P(the record has a partner | its best and second-best scores)."""
        match, null = self._log_parts(np.asarray(s1, float), np.asarray(s2, float))
        return np.where(np.asarray(s1) >= 1.0, 1.0, special.expit(match - null))

    def posterior_of_best(self, s1: np.ndarray) -> np.ndarray:
        """P(partner | best score only): what a threshold on Dice can act on."""
        s1 = np.asarray(s1, float)
        x = np.clip((s1 - FLOOR) / (1 - FLOOR), _EPS, 1 - _EPS)
        z = (s1 - self.mu) / self.beta
        match = (np.log(self.match_share) + stats.beta.logpdf(x, self.a, self.b)
                 - np.log(1 - FLOOR) - np.exp(-z))  # second best below s1
        null = np.log1p(-self.match_share) - z - np.exp(-z) - np.log(self.beta)
        return np.where(s1 >= 1.0, 1.0, special.expit(match - null))

    def threshold(self) -> float:
        """Smallest Dice (to 0.005) where a best score is more likely a match than not."""
        grid = np.round(np.arange(FLOOR + 0.05, 1.0, 0.005), 4)
        above = grid[self.posterior_of_best(grid) >= 0.5]
        return float(above[0]) if len(above) else 1.0


def top_two(record: np.ndarray, score: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Best and second-best score of each of n records over its candidate pairs (NaN: none)."""
    best, second = np.full(n, -np.inf), np.full(n, -np.inf)
    _keep_top_two(record.astype(np.int64), score.astype(np.float64), best, second)
    best[best == -np.inf] = np.nan
    second[second == -np.inf] = np.nan
    return best, second


@numba.njit(cache=True, nogil=True)
def _keep_top_two(record: np.ndarray, score: np.ndarray, best: np.ndarray,
                  second: np.ndarray) -> None:  # pragma: no cover
    """One pass over the pairs, in any order (sorting 7.8M of them took 0.5 s)."""
    for k in range(len(record)):
        r, s = record[k], score[k]
        if s > best[r]:
            second[r] = best[r]
            best[r] = s
        elif s > second[r]:
            second[r] = s


def fit_mixture(best: np.ndarray, second: np.ndarray) -> Mixture:
    """Maximum-likelihood fit on records with two candidates and a best score below 1."""
    usable = ~np.isnan(best) & ~np.isnan(second) & (best < 1.0)
    s1, s2 = best[usable], second[usable]
    if len(s1) < MIN_FIT_RECORDS:
        raise ValueError(f"only {len(s1)} records have two candidates at Dice >= {FLOOR} "
                         f"(the fit takes {MIN_FIT_RECORDS} or more): too few to fit the score "
                         f"distribution")

    def model(p: np.ndarray) -> Mixture:
        a, b = np.exp(p[1:3])
        return Mixture(float(special.expit(p[0])), float(a), float(b), float(p[3]),
                       float(np.exp(p[4])), len(s1))

    def nll(p: np.ndarray) -> float:
        return -float(np.logaddexp(*model(p)._log_parts(s1, s2)).sum())

    start = np.array([0.0, np.log(5.0), np.log(1.5), float(np.median(s2)), np.log(0.02)])
    rough = optimize.minimize(nll, start, method="Nelder-Mead",
                              options={"maxiter": 4000, "xatol": 1e-6, "fatol": 1e-6})
    return model(optimize.minimize(nll, rough.x, method="L-BFGS-B").x)


RECALL_OF = "of the links a 1:1 linkage can make"
RECALL_ACROSS_OF = "of the matching pairs across parties (pairs within a party not estimated)"


@dataclass(frozen=True)
class Estimate:
    threshold: float
    precision: float
    recall: float
    mixtures: tuple[Mixture, ...]
    reason: str
    recall_of: str = RECALL_OF

    def choice(self) -> dict[str, object]:
        """What a run records of how its threshold was chosen (``run.json``)."""
        return {"method": "estimated", "reason": self.reason,
                "estimated_precision": round(self.precision, 6),
                "estimated_recall": round(self.recall, 6), "recall_of": self.recall_of}

    def summary(self) -> str:
        """One line saying what was chosen, why, and the quality expected."""
        return (f"threshold {self.threshold} chosen from the data: {self.reason}; estimated "
                f"precision {self.precision:.4f}, recall {self.recall:.4f} ({self.recall_of})")


@dataclass(frozen=True)
class LinkFit:
    """One pair of parties: the fitted mixture, and the score and match posterior of each link
    greedy 1:1 matching keeps at the floor (a run at a higher threshold keeps exactly those of
    them at or above it)."""

    mixture: Mixture
    score: np.ndarray
    posterior: np.ndarray

    def quality(self, threshold: float) -> tuple[float, float, float]:
        """Expected true links kept, links kept and true links at the floor."""
        kept = self.score >= threshold
        return float(self.posterior[kept].sum()), float(kept.sum()), float(self.posterior.sum())

    def pairs_across(self, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """Without the 1:1 rule (parties deduplicated too, every pair across them a possible
        link): expected non-matching pairs that would be links at each threshold, matching
        pairs at or above it, and matching pairs at the floor. A fitted record's
        non-matching scores above a level whose largest is Gumbel(mu, beta) number exp(-z)
        on average (the Poisson count of exceedances behind the Gumbel limit). A record
        without a partner takes such a pair from the threshold up; one with a partner only
        from ``SCORED_BELOW`` above it, as the cluster solver's average asks of a pair that
        would join a group against a pair not scored (counting them from the threshold too
        put the threshold 0.03 higher and lost 0.6 points of F1 on FEBRL 4); identical CLKs
        are matches."""
        m = self.mixture
        x = np.clip((thresholds - FLOOR) / (1 - FLOOR), _EPS, 1 - _EPS)
        identical = float((self.score >= 1.0).sum())
        matches = m.records * m.match_share
        nulls = (m.records * (1 - m.match_share) * np.exp(-(thresholds - m.mu) / m.beta)
                 + (matches + identical)
                 * np.exp(-(thresholds + SCORED_BELOW - m.mu) / m.beta))
        return nulls, matches * stats.beta.sf(x, m.a, m.b) + identical, matches + identical


def fit_links(left: np.ndarray, right: np.ndarray, score: np.ndarray, accepted: np.ndarray,
              n_left: int, n_right: int) -> LinkFit:
    """Fit the mixture on the smaller party's top two scores and weigh each link by it.

    Args:
        left, right, score: candidate pairs at Dice >= FLOOR.
        accepted: mask of the pairs greedy 1:1 matching keeps at the floor.
    """
    side, other = (left, n_left) if n_left <= n_right else (right, n_right)
    best, second = top_two(side, score, other)
    mixture = fit_mixture(best, second)
    links, linked = side[accepted], score[accepted]
    # A link's competitor is its record's best score, or the second best if the link is it
    # (a duplicate whose partner went to its twin is linked below its best).
    rival = np.where(linked < best[links], best[links], second[links])
    posterior = mixture.posterior(linked, np.where(np.isnan(rival), FLOOR, rival))
    return LinkFit(mixture, linked, posterior)


def _pooled_quality(fits: list[LinkFit], threshold: float) -> tuple[float, float]:
    """Estimated precision and recall of the links of all ``fits`` at ``threshold``."""
    true_kept, kept, true_all = (sum(q) for q in zip(*(f.quality(threshold) for f in fits),
                                                     strict=True))
    return (true_kept / kept if kept else 1.0), (true_kept / true_all if true_all else 1.0)


def _describe(mixture: Mixture) -> str:
    return (f"{mixture.match_share:.1%} records with a partner (Beta {mixture.a:.2f}, "
            f"{mixture.b:.2f} above {FLOOR}) and the rest at most Gumbel(mu={mixture.mu:.3f}, "
            f"beta={mixture.beta:.4f})")


def estimate_link(left: np.ndarray, right: np.ndarray, score: np.ndarray, accepted: np.ndarray,
                  n_left: int, n_right: int) -> Estimate:
    """Threshold and estimated quality of a two-party 1:1 linkage (arguments as
    :func:`fit_links`): the threshold is where a best score is as likely a match as not."""
    return _estimate_pair(fit_links(left, right, score, accepted, n_left, n_right))


def _estimate_pair(fit: LinkFit) -> Estimate:
    threshold = fit.mixture.threshold()
    precision, recall = _pooled_quality([fit], threshold)
    reason = (f"best scores fit as {_describe(fit.mixture)}; at Dice {threshold} a best score "
              f"is as likely a match as not")
    return Estimate(threshold, precision, recall, (fit.mixture,), reason)


def estimate_parties(fits: list[LinkFit], names: list[str]) -> Estimate:
    """One threshold for several pairs of parties, each fitted on its own (``names``: each
    pair's, for the reason): the one at which the links of all pairs together have the fewest
    expected errors, wrong links kept plus true links dropped, each link weighed by the
    probability that its score is a best score's match (``posterior_of_best``, what a
    threshold acts on; for one pair this is where that probability crosses 0.5)."""
    grid = np.round(np.arange(FLOOR + 0.05, 1.0, 0.005), 4)
    weights = [f.mixture.posterior_of_best(f.score) for f in fits]
    errors = [sum(float((1 - w[f.score >= t]).sum() + w[f.score < t].sum())
                  for f, w in zip(fits, weights, strict=True)) for t in grid]
    threshold = float(grid[int(np.argmin(errors))])
    precision, recall = _pooled_quality(fits, threshold)
    each = "; ".join(f"{name}: {_describe(f.mixture)}, as likely a match as not at "
                     f"{f.mixture.threshold()}" for name, f in zip(names, fits, strict=True))
    reason = (f"each pair of parties' best scores fit on their own ({each}); at Dice "
              f"{threshold} the links of all pairs together have the fewest expected errors "
              f"(wrong links kept plus true links dropped)")
    return Estimate(threshold, precision, recall, tuple(f.mixture for f in fits), reason)


def estimate_across(fits: list[LinkFit], names: list[str]) -> Estimate:
    """One threshold for the pairs across parties of a run that deduplicates every party: the one
    with the fewest expected errors over all pairs across parties (``LinkFit.pairs_across``),
    non-matching pairs kept plus matching pairs dropped. Higher than a 1:1 linkage's, whose
    rule sets aside a record's weaker candidates beside its partner: without it they are
    links unless the solver's average refuses them (FEBRL 4 deduplicated too: precision
    0.968 at the 1:1 estimate's 0.625)."""
    grid = np.round(np.arange(FLOOR + 0.05, 1.0, 0.005), 4)
    counts = [f.pairs_across(grid) for f in fits]
    nulls = np.sum([c[0] for c in counts], axis=0)
    kept = np.sum([c[1] for c in counts], axis=0)
    total = sum(c[2] for c in counts)
    k = int(np.argmin(nulls + total - kept))
    threshold = float(grid[k])
    precision = float(kept[k] / (kept[k] + nulls[k])) if kept[k] + nulls[k] else 1.0
    recall = float(kept[k] / total) if total else 1.0
    each = "; ".join(f"{name}: {_describe(f.mixture)}" for name, f in zip(names, fits,
                                                                          strict=True))
    reason = (f"each pair of parties' best scores fit on their own ({each}); at Dice "
              f"{threshold} all pairs across parties together have the fewest expected errors "
              f"(non-matching pairs kept plus matching pairs dropped, with no 1:1 rule)")
    return Estimate(threshold, precision, recall, tuple(f.mixture for f in fits), reason,
                    RECALL_ACROSS_OF)


@dataclass(frozen=True)
class FloorLinks:
    """The candidates of two sets at ``FLOOR`` (in anonlink's order, as ``candidate_pairs``
    gives them) and which of them greedy 1:1 matching keeps."""

    left: np.ndarray
    right: np.ndarray
    score: np.ndarray
    accepted: np.ndarray


def floor_links(a: ClkSet, b: ClkSet, backend: Backend | None = None,
                progress: Callable[[int], None] | None = None) -> FloorLinks:
    """``progress``: called with the A rows done as candidates are found."""
    found = candidate_pairs(a, b, FLOOR, backend=backend, progress=progress)
    return FloorLinks(found.left, found.right, found.score,
                      greedy_one_to_one(found.left, found.right, len(a), len(b)))


def estimate_sets(sets: list[ClkSet], backend: Backend | None = None,
                  progress: Callable[[float], None] | None = None,
                  max_pairs: int | None = None, one_to_one: bool = True) -> Estimate:
    """The estimate for linking ``sets``: two parties 1:1 (:func:`estimate_link`), more on
    one threshold for all their pairs (:func:`estimate_parties`); with ``one_to_one`` False
    (every party deduplicated) the threshold of the pairs across parties
    (:func:`estimate_across`). ``progress``: called with the share of the candidate search
    done (every pair of parties at ``FLOOR``: most of the estimate's time). Refused
    (ValueError) where a pair of parties has more than ``max_pairs`` (``MAX_FLOOR_PAIRS``)
    pairs at ``FLOOR``, projected from a sample first."""
    if len(sets) < 2:
        raise ValueError("an estimate needs two parties or more")
    limit = MAX_FLOOR_PAIRS if max_pairs is None else max_pairs
    for i, a in enumerate(sets):
        for b in sets[i + 1:]:
            check_floor_pairs(f"{a.party}-{b.party}", a, b, FLOOR, backend, limit)
    tick = search_ticks(progress, sum(len(a) for i, a in enumerate(sets) for _ in sets[i + 1:]))
    fits, names = [], []
    for i, a in enumerate(sets):
        for b in sets[i + 1:]:
            names.append(f"{a.party}-{b.party}")
            links = floor_links(a, b, backend, tick)
            try:
                fits.append(fit_links(links.left, links.right, links.score, links.accepted,
                                      len(a), len(b)))
            except ValueError as e:
                raise ValueError(f"{names[-1]}: {e}") from e
    if not one_to_one:
        return estimate_across(fits, names)
    return _estimate_pair(fits[0]) if len(fits) == 1 else estimate_parties(fits, names)
