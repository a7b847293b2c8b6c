"""ARX's re-identification risk figures of a released table: its equivalence classes, sample
uniques, prosecutor, journalist and marketer risk, and population uniqueness.

The attacker models follow El Emam, "Guide to the De-Identification of Personal Health
Information" (2013), "Measuring the probability of re-identification", as ARX implements them in
``RiskModelSampleSummary``: a record's risk is 1 / the size of its equivalence class; "records at
risk" is the share of records whose risk exceeds the threshold (strictly, ``1/size > t``), the
highest risk is 1 / the smallest class, the average risk (ARX's "success rate") the number of
classes over the number of records.
"""

from __future__ import annotations

import numpy as np

from deid.risk.classes import EquivalenceClasses
from deid.risk.population import SizeHistogram, population_uniqueness

__all__ = ["reidentification_risk"]


def _attacker(histogram: SizeHistogram, threshold: float) -> dict[str, float]:
    """Records at risk, highest and average risk when each record's risk is 1 / its class size
    (ARX's prosecutor risk; its journalist risk when the population's classes are the sample's)."""
    n = histogram.records
    if n == 0:  # ARX reports an empty table's risks as 0
        return {"highest_risk": 0.0, "average_risk": 0.0, "records_at_risk": 0.0,
                "threshold": threshold}
    at_risk = 1.0 / histogram.sizes > threshold
    return {"highest_risk": 1.0 / int(histogram.sizes[0]),
            "average_risk": histogram.count / n,
            "records_at_risk": int(np.dot(histogram.sizes[at_risk],
                                          histogram.classes[at_risk])) / n,
            "threshold": threshold}


def reidentification_risk(classes: EquivalenceClasses, *, population_size: int | None = None,
                          threshold: float = 0.2) -> dict[str, object]:
    """ARX's re-identification risk figures of the table whose equivalence classes are
    ``classes``, as a JSON-ready dict (keys: ``equivalence_classes``, ``sample_uniques``,
    ``prosecutor``, ``journalist``, ``marketer``, ``population_uniqueness``).

    ``journalist``, ``marketer`` and ``population_uniqueness`` need the size of the population
    the table was drawn from and are None without it. ARX computes journalist and marketer risk
    from the population's class sizes, read from a population table (its research-subset
    superset); with no table it takes the table's own classes as the population's
    (``RiskModelSampleSummary`` with ``population == sample``), and so does this: journalist
    risk then equals prosecutor risk, an upper bound, since a population class holds at least
    its sample class; marketer risk, ``sum_j (f_j / F_j) / n``, is the number of classes over the
    number of records. The population size drives the uniqueness models
    (``deid.risk.population``).

    Raises:
        ValueError: a threshold outside [0, 1], or a population smaller than the table.
    """
    if not 0 <= threshold <= 1:
        raise ValueError(f"the risk threshold is a probability, got {threshold}")
    histogram = SizeHistogram.of(classes.sizes)
    n, u = histogram.records, histogram.count
    if population_size is not None and population_size < max(n, 1):
        raise ValueError(f"a population of {population_size} cannot hold the table's {n} records")
    uniques = histogram.of_size(1)
    prosecutor = _attacker(histogram, threshold)
    return {
        "equivalence_classes": {
            "count": u,
            "min_size": int(histogram.sizes[0]) if u else 0,
            "max_size": int(histogram.sizes[-1]) if u else 0,
            "average_size": n / u if u else 0.0,
            "size_histogram": [[int(size), int(count)] for size, count
                               in zip(histogram.sizes, histogram.classes, strict=True)],
        },
        "sample_uniques": {"records": uniques, "share": uniques / n if n else 0.0},
        "prosecutor": prosecutor,
        "journalist": None if population_size is None else dict(prosecutor),
        "marketer": None if population_size is None else {
            "average_risk": prosecutor["average_risk"]},
        "population_uniqueness": None if population_size is None
        else population_uniqueness(histogram, population_size),
    }
