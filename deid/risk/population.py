"""Population uniqueness: the share of the population that is unique on the quasi-identifiers,
estimated from the sample's class sizes and the size of the population it was drawn from.

The models and the rule choosing between them are those of ARX (``RiskModelPopulationUniqueness``
with ``ModelZayatz``, ``ModelPitman`` and ``ModelSNB``), written here from their published
definitions, as collected in Dankar, El Emam, Neisa & Roffey, "Estimating the re-identification
risk of clinical data sets", BMC Med Inform Decis Mak 12:66 (2012), appendix A. Every model reads
only the class-size histogram, so the work is proportional to the number of distinct class sizes
(at most about sqrt(2 n) of them), not to the number of records.

Notation: n records in u sample classes, ``s_j`` classes of size j (``c1 = s_1``, ``c2 = s_2``),
population size N, sampling fraction f = n / N. Each model estimates the number of population
uniques; the figures reported are that number over N (ARX's ``getFractionOfUniqueTuples*``).
An estimate is unavailable (``None``) where its equations have no admissible solution; ARX
reports such an estimate as 0 with ``isAvailableEstimate`` false.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special, stats

__all__ = ["SizeHistogram", "zayatz", "pitman_parameters", "pitman", "snb_population_classes",
           "snb", "population_uniqueness"]

# Dankar et al.'s rule: Pitman's model up to this sampling fraction, Zayatz/SNB above it.
DANKAR_PITMAN_MAX_FRACTION = 0.1


@dataclass(frozen=True)
class SizeHistogram:
    """``classes[i]`` sample classes have ``sizes[i]`` records (sizes ascending, as in ARX's
    ``RiskModelHistogram``)."""

    sizes: np.ndarray
    classes: np.ndarray

    @classmethod
    def of(cls, class_sizes: np.ndarray) -> SizeHistogram:
        sizes, classes = np.unique(np.asarray(class_sizes, np.int64), return_counts=True)
        return cls(sizes, classes.astype(np.int64))

    @property
    def records(self) -> int:
        return int(np.dot(self.sizes, self.classes))

    @property
    def count(self) -> int:
        return int(self.classes.sum())

    def of_size(self, size: int) -> int:
        """The number of classes of exactly ``size`` records."""
        return int(self.classes[self.sizes == size].sum())


def _root(equations: Callable[[np.ndarray], list[float]], starts: list[list[float]]
          ) -> np.ndarray | None:
    """The first root scipy's MINPACK hybrid method finds from ``starts``; a stop that is not a
    root (every equation within 1e-8 of 0) does not count."""
    for start in starts:
        with np.errstate(all="ignore"):
            solution = optimize.root(equations, start, method="hybr")
        if (solution.success and np.all(np.isfinite(solution.x))
                and np.max(np.abs(solution.fun)) <= 1e-8):
            return np.asarray(solution.x)
    return None


def _admissible(uniques: float, population_size: int) -> float | None:
    """An estimate of population uniques, or None where it is not a count the population can
    hold (ARX's ``isValid`` also drops 0 and NaN)."""
    return uniques if np.isfinite(uniques) and 0 < uniques <= population_size else None


def zayatz(histogram: SizeHistogram, population_size: int) -> float:
    """Zayatz (1991): by Bayes' rule a sample unique is a population unique with probability
    ``P(F=1 | f=1) = p_1 P(f=1 | F=1) / sum_j p_j P(f=1 | F=j)``, the population's class-size
    shares ``p_j`` taken from the sample's (``s_j / u``) and ``P(f=1 | F=j)`` hypergeometric
    (drawing n of N records, j of them in the class). Population uniques = ``c1 P(F=1|f=1) / f``;
    with ``P(f=1 | F=1) = f`` this is ``c1**2 / sum_j s_j P(f=1 | F=j)``."""
    c1 = histogram.of_size(1)
    if c1 == 0:
        return 0.0
    one_drawn = stats.hypergeom.pmf(1, population_size, histogram.sizes, histogram.records)
    return float(c1 * c1 / np.dot(histogram.classes, one_drawn))


def pitman_parameters(histogram: SizeHistogram) -> tuple[float, float] | None:
    """Maximum-likelihood (theta, alpha) of Pitman's sampling formula for the sample's partition
    into classes (Hoshino 2001, as in Dankar et al. and ARX), or None where the likelihood has no
    stationary point with theta > 0 and 0 < alpha < 1 (ARX constrains theta >= 0), or the sample
    has no uniques (the start below needs them; the estimate is then 0 anyway).

    The log-likelihood is ``sum_{i<u} log(theta + i alpha) - sum_{i<n} log(theta + i)
    + sum_j s_j sum_{k<j} log(k - alpha)``; its score is written with digamma functions and its
    root found by scipy's MINPACK hybrid method (ARX uses Newton-Raphson on the same score) in
    (log theta, logit alpha), which keeps every iterate admissible. It starts from the
    asymptotics of the model: ``E[s_1] / E[u] -> alpha`` and
    ``E[s_1] ~ Gamma(theta+1) / Gamma(theta+alpha) n^alpha ~ theta^(1-alpha) n^alpha``.
    """
    n, u = histogram.records, histogram.count
    c1 = histogram.of_size(1)
    if c1 == 0:
        return None
    sizes, classes = histogram.sizes.astype(float), histogram.classes.astype(float)

    def score(x: np.ndarray) -> list[float]:
        theta, alpha = np.exp(x[0]), special.expit(x[1])
        ratio = theta / alpha
        inverse_sum = (special.digamma(ratio + u) - special.digamma(ratio + 1)) / alpha
        d_theta = inverse_sum - (special.digamma(theta + n) - special.digamma(theta + 1))
        d_alpha = ((u - 1) - theta * inverse_sum) / alpha - np.dot(
            classes, special.digamma(sizes - alpha) - special.digamma(1 - alpha))
        return [float(d_theta) / u, float(d_alpha) / u]  # relative to the u - 1 terms

    alpha0 = min(max(c1 / u, 0.01), 0.99)
    log_theta0 = min((np.log(c1) - alpha0 * np.log(n)) / (1 - alpha0), 40.0)
    root = _root(score, [[log_theta0, float(special.logit(alpha0))]])
    if root is None:
        return None
    theta, alpha = float(np.exp(root[0])), float(special.expit(root[1]))
    return (theta, alpha) if 0 < alpha < 1 else None


def pitman(histogram: SizeHistogram, population_size: int) -> float | None:
    """Pitman's model: with the fitted (theta, alpha) the expected number of uniques in a
    population of N is ``Gamma(theta+1) / Gamma(theta+alpha) N^alpha`` (Hoshino 2001)."""
    if histogram.of_size(1) == 0:
        return 0.0
    parameters = pitman_parameters(histogram)
    if parameters is None:
        return None
    theta, alpha = parameters
    uniques = np.exp(special.gammaln(theta + 1) - special.gammaln(theta + alpha)
                     + alpha * np.log(population_size))
    return _admissible(float(uniques), population_size)


def snb_population_classes(histogram: SizeHistogram, sampling_fraction: float) -> float:
    """K, the number of non-empty population classes, by Shlosser's estimator in the form ARX's
    ``ModelSNB`` cites (Haas & Stokes 1998; Haas et al. 1995's Sh3), with q = f:
    ``u + c1 * [sum_j j q^2 (1-q^2)^(j-1) s_j / sum_j ((1-q^2)^j - (1-q)^j) s_j]
    * [sum_j (1-q)^j s_j / sum_j j q (1-q)^(j-1) s_j]^2``. A census (q = 1) sees every class:
    K = u, the estimator's limit.

    ARX's code subtracts 1 per distinct size instead of ``(1-q)^j s_j`` in the second sum (a
    misplaced parenthesis); this follows the formula.
    """
    u = histogram.count
    if sampling_fraction >= 1:
        return float(u)
    q = sampling_fraction
    sizes, classes = histogram.sizes.astype(float), histogram.classes.astype(float)
    kept = np.exp(sizes * np.log1p(-q))  # (1-q)^j
    kept_squared = np.exp(sizes * np.log1p(-q * q))  # (1-q^2)^j
    first = (np.dot(classes, sizes * q * q * kept_squared / (1 - q * q))
             / np.dot(classes, kept_squared - kept))
    second = np.dot(classes, kept) / np.dot(classes, sizes * q * kept / (1 - q))
    return float(u + histogram.of_size(1) * first * second * second)


def _snb_equations(population_classes: float, f: float, c1: int, c2: int
                   ) -> Callable[[np.ndarray], list[float]]:
    """The SNB model's moment equations as log(expected / observed), in (log alpha, logit beta).

    Population class sizes are 1 + NegBin(alpha, beta) and a class keeps each record with
    probability f (Chen & Keller-McNulty 1998). With d = (1-f)(1-beta) and D = 1 - d:
    ``E[s_1] = K f (beta/D)^alpha (1 + alpha d / D)`` and
    ``E[s_2] = K f^2 / 2 alpha beta^alpha (1-beta) D^-(alpha+2) (2 - (1-alpha) d)``.
    ARX's ``ModelSNB`` multiplies by ``D^(alpha+2)`` in the second; the model divides
    (checked against the model by summation in the tests).
    """
    log_k, log_f = np.log(population_classes), np.log(f)

    def equations(x: np.ndarray) -> list[float]:
        alpha, beta = np.exp(x[0]), special.expit(x[1])
        log_beta, log_rest = -np.logaddexp(0, -x[1]), -np.logaddexp(0, x[1])  # log b, log 1-b
        d = (1 - f) * (1 - beta)
        log_d_complement = np.log1p(-d)
        singles = (log_k + log_f + alpha * (log_beta - log_d_complement)
                   + np.log1p(alpha * d / (1 - d)) - np.log(c1))
        pairs = (log_k + 2 * log_f + x[0] + alpha * log_beta + log_rest
                 - (alpha + 2) * log_d_complement + np.log(2 - (1 - alpha) * d) - np.log(2)
                 - np.log(c2))
        return [float(singles), float(pairs)]

    return equations


def snb(histogram: SizeHistogram, population_size: int) -> float | None:
    """Slide negative binomial model (Chen & Keller-McNulty 1998): population uniques
    ``K beta^alpha``, (alpha, beta) solving the model's equations for the observed uniques and
    pairs (scipy's MINPACK hybrid method from a few starting points; ARX uses Newton-Raphson).
    None without sample pairs (the second equation then has no interior solution) or without a
    solution."""
    c1, c2 = histogram.of_size(1), histogram.of_size(2)
    if c1 == 0:
        return 0.0
    if c2 == 0:
        return None
    f = histogram.records / population_size
    population_classes = snb_population_classes(histogram, f)
    if not np.isfinite(population_classes) or population_classes <= 0:
        return None
    root = _root(_snb_equations(population_classes, f, c1, c2),
                 [[np.log(alpha0), float(special.logit(beta0))]
                  for alpha0 in (0.5, 0.1, 2.0) for beta0 in (0.2, 0.02, 0.8)])
    if root is None:
        return None
    alpha, beta = np.exp(root[0]), special.expit(root[1])
    return _admissible(float(population_classes * beta**alpha), population_size)


def population_uniqueness(histogram: SizeHistogram, population_size: int) -> dict[str, object]:
    """The three models' uniqueness and Dankar et al.'s choice among them, as ARX applies it:
    f <= 0.1: Pitman, or Zayatz where Pitman has no solution; f > 0.1: the smaller of Zayatz and
    SNB, or Zayatz where SNB has no solution. Without sample uniques every estimate is 0 and no
    model is chosen (``model`` None)."""
    f = histogram.records / population_size
    estimates = {"pitman": pitman(histogram, population_size),
                 "zayatz": zayatz(histogram, population_size),
                 "snb": snb(histogram, population_size)}
    shares = {name: None if value is None else value / population_size
              for name, value in estimates.items()}
    model: str | None
    if histogram.of_size(1) == 0:
        model = None
    elif f <= DANKAR_PITMAN_MAX_FRACTION:
        model = "pitman" if shares["pitman"] is not None else "zayatz"
    else:
        snb_share, zayatz_share = shares["snb"], shares["zayatz"]
        model = ("snb" if snb_share is not None and zayatz_share is not None
                 and snb_share <= zayatz_share else "zayatz")
    return {"sampling_fraction": f, **shares,
            "dankar": {"model": model,
                       "uniqueness": 0.0 if model is None else shares[model]}}
