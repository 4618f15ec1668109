"""Metrics: AUC, thresholds at a false-positive budget, confusion matrices."""

from __future__ import annotations

import numpy as np
import pytest

from dnsentinel.models import metrics


def test_auc_perfect_inverted_and_ties():
    y = np.array([0, 0, 1, 1])
    assert metrics.roc_auc(y, np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert metrics.roc_auc(y, np.array([0.9, 0.8, 0.2, 0.1])) == 0.0
    assert metrics.roc_auc(y, np.array([0.5, 0.5, 0.5, 0.5])) == 0.5
    assert metrics.roc_auc(np.array([1, 1]), np.array([0.1, 0.2])) is None


def test_threshold_at_fpr_respects_the_budget():
    neg = np.linspace(0, 1, 10_000, endpoint=False)
    t = metrics.threshold_at_fpr(neg, 1e-3)
    assert np.sum(neg >= t) <= 10
    assert np.sum(neg >= np.nextafter(t, -1)) >= 10  # and it is the lowest such threshold
    assert metrics.threshold_at_fpr(np.array([0.2, 0.9]), 1e-4) > 0.9


def test_binary_report_confusion():
    r = metrics.binary_report(np.array([0, 0, 1, 1, 1]), np.array([0.1, 0.7, 0.9, 0.6, 0.2]), 0.5)
    assert r["confusion"] == [[1, 1], [1, 2]]
    assert r["precision"] == pytest.approx(2 / 3)
    assert r["recall"] == pytest.approx(2 / 3)
    assert r["accuracy"] == pytest.approx(3 / 5)


def test_roc_points_are_monotone_and_bounded():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 5000)
    s = rng.random(5000) + y * 0.3
    pts = metrics.roc_points(y, s, max_points=50)
    assert len(pts["fpr"]) <= 52
    assert pts["fpr"] == sorted(pts["fpr"]) and pts["tpr"] == sorted(pts["tpr"])
    assert pts["fpr"][-1] == 1.0 and pts["tpr"][-1] == 1.0



def test_platt_fit_recovers_a_known_map_and_stays_monotone():
    rng = np.random.default_rng(3)
    z = rng.normal(0, 3, 20_000)
    y = rng.random(z.size) < 1 / (1 + np.exp(-(0.5 * z - 1.0)))
    # balanced weights shift the intercept by the log of the class ratio; the slope is the map's
    fit = metrics.fit_platt(z, y)
    assert abs(fit["a"] - 0.5) < 0.05
    anti = metrics.fit_platt(-z, y)  # a model worse than chance: the ranking is kept, not flipped
    assert anti["a"] == 1.0


def test_thresholds_from_budget_hold_the_budget_on_the_names_they_were_chosen_on():
    benign = np.linspace(0, 1, 10_000, endpoint=False)
    t = metrics.thresholds_from_budget(benign, block_fpr=5e-4, uncertain_share=0.015)
    assert np.mean(benign >= t["block"]) <= 5e-4
    assert np.mean((benign > t["allow"]) & (benign < t["block"])) <= 0.015 + 1e-9
    assert np.mean(benign > t["allow"]) >= 0.015  # and the budget is used, not wasted
    assert t["allow"] <= t["block"]


def test_decision_shares_cover_every_label():
    shares = metrics.decision_shares(["malicious", "benign", "benign", "unscored"])
    assert shares == {"malicious": 0.25, "uncertain": 0.0, "benign": 0.5, "unscored": 0.25}
