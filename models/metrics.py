"""Classification metrics in plain numpy (no scikit-learn in the dependency set).

Low false-positive rates are what matters for a resolver: a benign name
blocked is an outage for someone. ``threshold_at_fpr`` therefore picks the
lowest threshold whose false positives on the given benign scores stay within
``floor(fpr * n)``; with n benign names the resolution is 1/n, which
``tpr_at_fpr`` reports alongside.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from dnsentinel.verdict_cache.vocabulary import LABELS


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve (Mann-Whitney, ties counted half); None with one class only."""
    labels = np.asarray(labels).astype(bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = pd.Series(np.asarray(scores, dtype=np.float64)).rank(method="average").to_numpy()
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def threshold_at_fpr(negative_scores: np.ndarray, fpr: float) -> float:
    """Lowest threshold t with #(negatives >= t) <= floor(fpr * n)."""
    neg = np.sort(np.asarray(negative_scores, dtype=np.float64))[::-1]
    if neg.size == 0:
        return 0.5
    allowed = int(math.floor(fpr * neg.size))
    if allowed >= neg.size:
        return 0.0
    return float(np.nextafter(neg[allowed], np.inf))


def tpr_at_fpr(labels: np.ndarray, scores: np.ndarray, fpr: float) -> float | None:
    """True-positive rate at the threshold :func:`threshold_at_fpr` picks on the negatives."""
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    if labels.all() or not labels.any():
        return None
    threshold = threshold_at_fpr(scores[~labels], fpr)
    return float(np.mean(scores[labels] >= threshold))


def roc_points(labels: np.ndarray, scores: np.ndarray, max_points: int = 200) -> dict[str, list[float]]:
    """ROC curve points (fpr, tpr, threshold), downsampled to at most ``max_points``.

    Points are kept evenly on a log scale of FPR as well, so the low-FPR end
    that matters stays visible on the dashboard's log axis.
    """
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    if labels.all() or not labels.any():
        return {"fpr": [], "tpr": [], "threshold": []}
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    distinct = np.r_[np.flatnonzero(np.diff(s)), y.size - 1]
    tps = np.cumsum(y)[distinct]
    fps = np.cumsum(~y)[distinct]
    tpr, fpr, thr = tps / labels.sum(), fps / (~labels).sum(), s[distinct]
    if tpr.size > max_points:
        linear = np.linspace(0, tpr.size - 1, max_points // 2).astype(int)
        targets = np.logspace(-5, 0, max_points // 2)
        logged = np.clip(np.searchsorted(fpr, targets), 0, tpr.size - 1)
        keep = np.unique(np.r_[linear, logged])
        tpr, fpr, thr = tpr[keep], fpr[keep], thr[keep]
    return {
        "fpr": [0.0, *map(float, fpr)],
        "tpr": [0.0, *map(float, tpr)],
        "threshold": [1.0, *map(float, thr)],
    }


def binary_report(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, Any]:
    """Confusion matrix ``[[tn, fp], [fn, tp]]`` and accuracy / precision / recall / F1 at ``threshold``."""
    labels = np.asarray(labels).astype(bool)
    predicted = np.asarray(scores) >= threshold
    tp = int(np.sum(predicted & labels))
    fp = int(np.sum(predicted & ~labels))
    fn = int(np.sum(~predicted & labels))
    tn = int(np.sum(~predicted & ~labels))
    total = tp + fp + fn + tn
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "threshold": float(threshold),
        "confusion": [[tn, fp], [fn, tp]],
        "accuracy": (tp + tn) / total if total else 0.0,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "fpr": fp / (fp + tn) if fp + tn else 0.0,
    }


def slice_report(labels: np.ndarray, scores: np.ndarray, thresholds: dict[str, float]) -> dict[str, Any]:
    """Everything reported for one slice (one set of positives against the benign names)."""
    labels = np.asarray(labels).astype(bool)
    return {
        "n": int(labels.size),
        "n_pos": int(labels.sum()),
        "n_neg": int((~labels).sum()),
        "roc_auc": roc_auc(labels, scores),
        "tpr_at_fpr_1e-3": tpr_at_fpr(labels, scores, 1e-3),
        "tpr_at_fpr_1e-4": tpr_at_fpr(labels, scores, 1e-4),
        "at_block": binary_report(labels, scores, thresholds["block"]),
        "at_0.5": binary_report(labels, scores, 0.5),
    }



def fit_platt(logits: np.ndarray, labels: np.ndarray, iterations: int = 100) -> dict[str, float]:
    """Platt scaling ``sigmoid(a * logit + b)`` fitted by Newton's method, classes weighted equally.

    Equal class weights make 0.5 the point where a name is as likely malicious as benign
    in a balanced world; the thresholds, not the weights, encode the operator's budget.
    """
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels).astype(bool)
    if y.all() or not y.any():
        return {"a": 1.0, "b": 0.0}
    w = np.where(y, 0.5 / y.sum(), 0.5 / (~y).sum())
    a, b = _newton_platt(z, y, w, iterations, fit_slope=True)
    if not a > 0:  # a model worse than chance on this data: keep its ranking, only shift it
        a, b = _newton_platt(z, y, w, iterations, fit_slope=False)
    return {"a": float(a), "b": float(b)}


def _newton_platt(z: np.ndarray, y: np.ndarray, w: np.ndarray, iterations: int, fit_slope: bool) -> tuple[float, float]:
    a, b = 1.0, 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(a * z + b, -500, 500)))
        g, h = w * (p - y), w * p * (1 - p)
        if fit_slope:
            grad = np.array([np.sum(g * z), np.sum(g)])
            hess = np.array([[np.sum(h * z * z), np.sum(h * z)], [np.sum(h * z), np.sum(h)]]) + 1e-9 * np.eye(2)
            step = np.linalg.solve(hess, grad)
        else:
            step = np.array([0.0, np.sum(g) / (np.sum(h) + 1e-12)])
        a, b = a - step[0], b - step[1]
        if np.abs(step).max() < 1e-9:
            break
    return a, b


def thresholds_from_budget(
    benign_scores: np.ndarray, block_fpr: float = 5e-4, uncertain_share: float = 0.015
) -> dict[str, float]:
    """``block`` and ``allow`` from an analyst budget on benign names the model must judge.

    ``block``: at most ``block_fpr`` of these benign names score at or above it.
    ``allow``: at most ``uncertain_share`` more score above it (the vetting queue).
    The defaults keep a margin below the product goals (0.1% blocked, 2% uncertain), since
    the names a resolver sees come from other sources again.
    """
    neg = np.asarray(benign_scores, dtype=np.float64)
    block = threshold_at_fpr(neg, block_fpr)
    if neg.size == 0:
        return {"block": block, "allow": 0.5, "block_fpr": block_fpr, "uncertain_share": uncertain_share}
    above = int(math.floor((block_fpr + uncertain_share) * neg.size))
    ordered = np.sort(neg)[::-1]
    allow = float(ordered[min(above, neg.size - 1)]) if above < neg.size else 0.0
    return {
        "block": float(block),
        "allow": float(min(allow, block)),
        "block_fpr": block_fpr,
        "uncertain_share": uncertain_share,
    }


def decision_shares(labels: list[str] | np.ndarray) -> dict[str, float]:
    """Share of each label (malicious / uncertain / benign / unscored) among ``labels``."""
    values = np.asarray(labels, dtype=object)
    n = max(values.size, 1)
    return {label: float(np.sum(values == label)) / n for label in LABELS}
