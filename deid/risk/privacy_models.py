"""Privacy models of a released table, with pycanon 1.3.6's figures.

Each figure is defined as pycanon 1.3.6 computes it (Sáinz-Pardo Díaz & López García, "A Python
library to check the level of anonymity of a dataset", Scientific Data 9, 2022), so an auditor can
reproduce a report with that tool:

- k-anonymity (Sweeney 2002): the size of the smallest equivalence class.
- distinct l-diversity (Machanavajjhala et al. 2007): the fewest distinct sensitive values in a
  class.
- entropy l-diversity (ibid.): ``floor(exp(H))`` for the smallest entropy H (natural log) of a
  class's sensitive values; pycanon truncates to an integer, and so do we, bit for bit.
- recursive (c,l)-diversity: pycanon's ``c`` for the achieved distinct l. pycanon sorts a class's
  value counts ascending, so ``c = floor(r_1 / (r_l + ... + r_m) + 1)`` divides the *least*
  frequent count by the l-th smallest onwards (the paper takes the most frequent); c is 1 or 2.
  ``None`` when l <= 1 (pycanon gives NaN).
- t-closeness (Li, Li & Venkatasubramanian 2007): the largest earth mover's distance between a
  class's and the table's sensitive distribution; ordered distance for numbers (pycanon: numeric
  pandas dtype, booleans included), equal distance for text.
- basic and enhanced beta-likeness (Cao & Karras 2012): basic is the largest ``(q - p) / p`` over
  classes and values; enhanced is, as pycanon computes it, ``min(basic, -ln(smallest p))``.
- delta-disclosure privacy (Brickell & Shmatikov 2008): the largest ``|ln(q / p)|`` over classes
  and the values present in them.

With several sensitive attributes we follow pycanon's default (``gen=True``): the classes stay
those of the quasi-identifiers; l and entropy l take the minimum over the attributes, c, t, beta
and delta the maximum.

Where pycanon fails or drops data, we still answer: a record whose quasi-identifier is missing
forms a class with the other such records (pandas' groupby drops it in pycanon, hiding it); a
missing sensitive value is a value of its own (pycanon's counts are undefined); t-closeness of an
attribute with a single value is 0 (pycanon divides by zero); decimals, dates and times are
ordered like numbers (pycanon refuses them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from deid.risk.classes import EquivalenceClasses, column_codes

__all__ = ["privacy_models"]


@dataclass(frozen=True)
class _Counts:
    """One sensitive attribute's counts: a row per (class, value) present, sorted by class and
    then by value (the order pycanon's ``np.unique`` visits them in)."""

    cls: np.ndarray  # class of each row
    value: np.ndarray  # rank of the value among the table's distinct values
    count: np.ndarray  # records of the class with that value
    starts: np.ndarray  # first row of each class
    overall: np.ndarray  # records with each value in the whole table
    ordered: bool  # numbers (ordered distance) rather than categories

    @property
    def records(self) -> int:
        return int(self.overall.sum())


def _is_ordered(kind: pa.DataType) -> bool:
    """Whether pycanon's ``is_numeric_dtype`` would hold for the column (decimals and temporal
    types, which pycanon refuses, are ordered too)."""
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return bool(pa.types.is_integer(kind) or pa.types.is_floating(kind)
                or pa.types.is_boolean(kind) or pa.types.is_decimal(kind)
                or pa.types.is_temporal(kind))


def _counts(table: pa.Table, classes: EquivalenceClasses, name: str) -> _Counts:
    column = table[name]
    codes, distinct = column_codes(column, ordered=True)
    overall = np.bincount(codes, minlength=distinct)
    used = overall > 0
    if not used.all():  # a dictionary column may hold values no record has
        codes = (np.cumsum(used) - 1)[codes]
        overall = overall[used]
    pairs, count = np.unique(classes.class_of * overall.size + codes, return_counts=True)
    cls = pairs // overall.size
    starts = np.flatnonzero(np.r_[True, cls[1:] != cls[:-1]])
    return _Counts(cls, pairs % overall.size, count, starts, overall, _is_ordered(column.type))


def _class_lengths(counts: _Counts) -> np.ndarray:
    return np.diff(np.append(counts.starts, counts.count.size))


def _entropy(counts: _Counts, sizes: np.ndarray) -> np.ndarray:
    """Each class's entropy, summed exactly as pycanon's ``np.sum`` does.

    numpy's pairwise summation depends on the number of terms, and pycanon truncates
    ``exp(H)``, so a last-bit difference can change entropy l by one: classes with the same
    number of values are summed together as rows of one matrix, which numpy sums like ``np.sum``
    sums each row.
    """
    share = counts.count / sizes[counts.cls]
    terms = share * np.log(share)
    lengths = _class_lengths(counts)
    order = np.argsort(lengths, kind="stable")
    bounds = np.flatnonzero(np.r_[True, np.diff(lengths[order]) != 0, True])
    entropy = np.empty(lengths.size)
    for first, end in zip(bounds[:-1], bounds[1:], strict=True):  # one pass per class length
        which = order[first:end]
        rows = counts.starts[which, None] + np.arange(lengths[which[0]])
        entropy[which] = -terms[rows].sum(axis=1)
    return entropy


def _recursive_c(counts: _Counts, l_div: int) -> int:
    """pycanon's c: counts sorted ascending, ``floor(r[0] / sum(r[l-1:]) + 1)``, largest class."""
    order = np.lexsort((counts.count, counts.cls))
    ascending = counts.count[order]
    position = np.arange(ascending.size) - counts.starts[counts.cls]
    tail = np.bincount(counts.cls, weights=np.where(position >= l_div - 1, ascending, 0))
    return int(np.floor(ascending[counts.starts] / tail + 1).max())


def _t_closeness(counts: _Counts, sizes: np.ndarray) -> float:
    """The largest EMD between a class's distribution and the table's.

    Ordered distance: ``sum_i |Q(i) - P(i)| / (m - 1)`` over the m distinct values, Q and P the
    cumulative distributions. Q is constant between a class's values and P only rises, so each
    such run is summed in closed form from prefix sums of P, without a class × value matrix.
    Equal distance: half the L1 distance; values absent from the class add their whole share.
    """
    n, m = counts.records, counts.overall.size
    share = counts.count / sizes[counts.cls]
    if not counts.ordered:
        present = np.bincount(counts.cls, weights=np.abs(share - counts.overall[counts.value] / n))
        absent = (n - np.bincount(counts.cls, weights=counts.overall[counts.value])) / n
        return float((0.5 * (present + absent)).max())
    if m == 1:
        return 0.0
    table_cdf = np.cumsum(counts.overall) / n
    prefix = np.r_[0.0, np.cumsum(table_cdf)]  # prefix[i]: sum of P(j) for j < i
    within = np.cumsum(counts.count)
    level = (within - np.r_[0, within][counts.starts][counts.cls]) / sizes[counts.cls]
    start = counts.value
    end = np.append(counts.value[1:], m)
    end[_class_lengths(counts).cumsum() - 1] = m  # each class's last run reaches the last value
    split = np.clip(np.searchsorted(table_cdf, level, side="right"), start, end)
    runs = (level * (split - start) - (prefix[split] - prefix[start])
            + (prefix[end] - prefix[split]) - level * (end - split))
    below_first = prefix[counts.value[counts.starts]]  # Q = 0 before a class's first value
    emd = (np.bincount(counts.cls, weights=runs) + below_first) * (1 / (m - 1))
    return float(emd.max())


def _beta_delta(counts: _Counts, sizes: np.ndarray) -> tuple[float, float, float]:
    """Basic beta, pycanon's enhanced beta and delta. Values absent from a class give -1 to beta
    (never the largest: some value has q >= p) and are skipped by delta, so only the values
    present are visited."""
    n = counts.records
    table_share = counts.overall[counts.value] / n
    share = counts.count / sizes[counts.cls]
    basic = float(((share - table_share) / table_share).max())
    enhanced = min(basic, float(-np.log(counts.overall.min() / n)))
    delta = float(np.abs(np.log(share / table_share)).max())
    return basic, enhanced, delta


def privacy_models(table: pa.Table, classes: EquivalenceClasses, sensitive: Sequence[str]
                   ) -> dict[str, object]:
    """The privacy-model figures of ``table`` grouped into ``classes``, as pycanon 1.3.6 gives
    them (see the module's notes); JSON-ready.

    Keys: ``k_anonymity`` (int), ``l_diversity`` (int), ``entropy_l_diversity`` (int, pycanon
    truncates), ``recursive_cl_diversity`` (c, int; None when l <= 1), ``t_closeness``,
    ``beta_likeness``, ``enhanced_beta_likeness``, ``delta_disclosure`` (floats). All but k are
    None without a sensitive attribute; all but k (0) are None for an empty table.

    Raises:
        KeyError: a sensitive attribute that is not a column (named).
        ValueError: classes computed on another number of records.
    """
    missing = [s for s in sensitive if s not in table.column_names]
    if missing:
        raise KeyError(f"no column {missing[0]!r}; columns: {table.column_names}")
    if classes.records != table.num_rows:
        raise ValueError(f"classes cover {classes.records} records, the table has "
                         f"{table.num_rows}")
    figures: dict[str, object] = {
        "k_anonymity": int(classes.sizes.min()) if classes.count else 0,
        "l_diversity": None, "entropy_l_diversity": None, "recursive_cl_diversity": None,
        "t_closeness": None, "beta_likeness": None, "enhanced_beta_likeness": None,
        "delta_disclosure": None,
    }
    if not sensitive or not classes.count:
        return figures
    attributes = [_counts(table, classes, name) for name in sensitive]
    l_div = min(int(_class_lengths(a).min()) for a in attributes)
    entropy = np.min([_entropy(a, classes.sizes) for a in attributes], axis=0)
    beta_delta = [_beta_delta(a, classes.sizes) for a in attributes]
    figures.update({
        "l_diversity": l_div,
        # exp(1) ** array, as pycanon writes it: numpy's vector power, truncated
        "entropy_l_diversity": int((np.exp(1) ** entropy).min()),
        "recursive_cl_diversity": (max(_recursive_c(a, l_div) for a in attributes)
                                   if l_div > 1 else None),
        "t_closeness": max(_t_closeness(a, classes.sizes) for a in attributes),
        "beta_likeness": max(b for b, _, _ in beta_delta),
        "enhanced_beta_likeness": max(e for _, e, _ in beta_delta),
        "delta_disclosure": max(d for _, _, d in beta_delta),
    })
    return figures
