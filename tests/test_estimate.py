"""Quality without ground truth: the mixture recovers known parameters, and on FEBRL 4 the
estimate is within a few points of the truth at a threshold whose F1 is near the best."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from linker.estimate import FLOOR, estimate_link, fit_mixture, floor_links

from .linker_data import febrl4_files, febrl4_sets, febrl_person
from .test_linker import pprl


def test_mixture_recovers_known_beta_and_gumbel() -> None:
    rng = np.random.default_rng(4)
    n, share, mu, beta = 4000, 0.7, 0.6, 0.02
    matched = rng.random(n) < share
    spacing = rng.exponential(size=(n, 2)).cumsum(axis=1)  # Gumbel top-two order statistics
    null1, null2 = mu - beta * np.log(spacing[:, 0]), mu - beta * np.log(spacing[:, 1])
    match = FLOOR + (1 - FLOOR) * rng.beta(6.0, 1.5, size=n)
    best = np.where(matched, match, null1)
    second = np.where(matched, null1, null2)
    fitted = fit_mixture(best, second)
    assert abs(fitted.match_share - share) < 0.03
    assert abs(fitted.mu - mu) < 0.003 and abs(fitted.beta - beta) < 0.002
    assert abs(fitted.a - 6.0) < 0.8 and abs(fitted.b - 1.5) < 0.2
    truth = fitted.posterior(best, second) >= 0.5
    assert (truth == matched).mean() > 0.99


def test_febrl4_estimate_is_close_to_the_truth() -> None:
    a, b = febrl4_sets()
    found = floor_links(a, b)
    left, right, score, accepted = found.left, found.right, found.score, found.accepted
    estimate = estimate_link(left, right, score, accepted, len(a), len(b))
    ids_a = np.array([febrl_person(r) for r in a.record_ids])
    ids_b = np.array([febrl_person(r) for r in b.record_ids])
    correct = ids_a[left[accepted]] == ids_b[right[accepted]]
    links = score[accepted]

    def truth(t: float) -> tuple[float, float, float]:
        kept = links >= t
        p, r = correct[kept].mean(), correct[kept].sum() / len(b)
        return p, r, 2 * p * r / (p + r)

    p, r, f1 = truth(estimate.threshold)
    assert abs(estimate.precision - p) <= 0.05 and abs(estimate.recall - r) <= 0.05
    best = max(truth(t)[2] for t in np.arange(0.55, 0.95, 0.01))
    assert f1 >= best - 0.02
    assert "Gumbel" in estimate.reason and str(estimate.threshold) in estimate.reason


def test_link_chooses_the_threshold_and_evaluate_shows_the_estimate(tmp_path: Path) -> None:
    fa, fb, truth = febrl4_files(tmp_path)
    out = tmp_path / "auto"
    linked = pprl("link", str(fa), str(fb), "--threshold", "auto", "-o", str(out)).stdout
    assert "chosen from the data" in linked and "estimated precision" in linked
    run = json.loads((out / "run.json").read_text())
    assert run["threshold_choice"]["method"] == "estimated" and 0.5 < run["threshold"] < 0.95
    report = json.loads(pprl("evaluate", str(out), "--truth", str(truth), "--estimate",
                             "--json").stdout)
    assert abs(report["estimated"]["precision"] - report["precision"]) <= 0.05
    assert abs(report["estimated"]["recall"] - report["recall"]) <= 0.05
    refused = pprl("dedup", str(fa), "--threshold", "auto", "-o", str(tmp_path / "d"),
                   check=False)
    assert refused.returncode != 0 and "two-party linkage" in refused.stdout + refused.stderr
    blocked = pprl("link", str(fa), str(fb), "--threshold", "auto", "--blocking", "lsh", "-o",
                   str(tmp_path / "b"), check=False)
    assert blocked.returncode != 0 and "without --blocking" in blocked.stderr
    given = tmp_path / "given"
    pprl("link", str(fa), str(fb), "-o", str(given))
    assert json.loads((given / "run.json").read_text())["threshold_choice"] == {
        "method": "given"}
    no_estimate = pprl("evaluate", str(given), "--truth", str(truth), "--estimate",
                       check=False)
    assert no_estimate.returncode != 0 and "--threshold auto" in no_estimate.stderr
