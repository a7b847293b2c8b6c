"""The least AND count each popcount sum needs (``dice_kernel.min_counts``, found for all sums
at once around t * s / 2) is the first count whose float64 score reaches the threshold, as
anonlink tests it, found by trying every count."""

from __future__ import annotations

import numpy as np
import pytest

from linker.dice_kernel import min_counts


def _counts_one_by_one(threshold: float, length: int) -> list[int]:
    """For each popcount sum, the first AND count whose float64 score reaches the threshold,
    trying every count (all sums and counts at once: 2c / s as Python computes it, in the same
    float64 operations); sums none reaches get s + 1, the sum 0 scores 0.0."""
    sums = np.arange(1, 2 * length + 1, dtype=np.int64)[:, None]
    counts = np.arange(length + 1, dtype=np.int64)[None, :]
    reaches = (2.0 * counts / sums >= threshold) & (counts <= sums // 2)
    first = np.where(reaches.any(axis=1), reaches.argmax(axis=1), sums[:, 0] + 1)
    return [0 if threshold <= 0.0 else 1, *first.tolist()]


@pytest.mark.parametrize("length", [8, 64, 1000, 1024])
def test_needed_counts_are_the_first_passing_counts(length: int) -> None:
    """Thresholds that are scores themselves (2c/s: on the boundary), thirds, 0, 1, above 1
    and below 0, and random ones."""
    thresholds = [0.0, -0.1, 1.0, 1.0 + 1e-9, 1 / 3, 2 / 3, 0.8, 0.65, 0.95,
                  *np.random.default_rng(length).random(8).tolist(),
                  *(2 * c / s for s in (7, 50, 99, 2 * length - 1)
                    for c in range(0, s // 2 + 1, 3))]
    for threshold in thresholds:
        assert min_counts(threshold, length).tolist() == \
            _counts_one_by_one(threshold, length), threshold
