"""The pure math of calibration (numpy only, no sklearn): AUROC, AUPRC, the best threshold by
Youden's J, and percentile bootstrap intervals over (score, label) pairs."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 2024


def _as_arrays(scores: Sequence[float], positives: Sequence[bool]) -> tuple[np.ndarray, np.ndarray]:
    if len(scores) != len(positives):
        raise ValueError("one label per score")
    return np.asarray(scores, dtype=float), np.asarray(positives, dtype=bool)


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their mean rank (what the Mann-Whitney statistic needs)."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=float)
    sorted_values = values[order]
    start = 0
    while start < len(values):
        end = start
        while end + 1 < len(values) and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def auroc(scores: Sequence[float], positives: Sequence[bool]) -> float | None:
    """Probability that a random positive scores above a random negative (ties count half).

    Higher score = more likely positive. None when either class is absent.
    """
    values, labels = _as_arrays(scores, positives)
    n_pos = int(labels.sum())
    n_neg = len(labels) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = _average_ranks(values)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def auprc(scores: Sequence[float], positives: Sequence[bool]) -> float | None:
    """Average precision: sum over distinct thresholds (high to low) of precision x recall gained.

    Tied scores enter together, so the result does not depend on their order. None without positives.
    """
    values, labels = _as_arrays(scores, positives)
    n_pos = int(labels.sum())
    if n_pos == 0 or len(labels) == 0:
        return None
    order = np.argsort(-values, kind="mergesort")
    values, labels = values[order], labels[order]
    # The last index of each run of equal scores: a threshold admits the whole run at once.
    run_ends = np.r_[np.nonzero(np.diff(values))[0], len(values) - 1]
    true_positives = np.cumsum(labels)[run_ends]
    admitted = run_ends + 1
    precision = true_positives / admitted
    recall = true_positives / n_pos
    recall_gain = np.diff(np.r_[0.0, recall])
    return float((recall_gain * precision).sum())


@dataclass(frozen=True)
class Threshold:
    value: float  # flag a sample as positive when its (oriented) score is >= value
    tpr: float
    fpr: float
    precision: float


def best_threshold(scores: Sequence[float], positives: Sequence[bool]) -> Threshold | None:
    """The cut that maximises Youden's J = TPR - FPR (ties: the higher cut, i.e. fewer flags)."""
    values, labels = _as_arrays(scores, positives)
    n_pos = int(labels.sum())
    n_neg = len(labels) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    best: Threshold | None = None
    best_j = -math.inf
    for cut in sorted(set(values.tolist()), reverse=True):
        flagged = values >= cut
        tp = int((flagged & labels).sum())
        fp = int((flagged & ~labels).sum())
        tpr, fpr = tp / n_pos, fp / n_neg
        j = tpr - fpr
        if j > best_j + 1e-12:
            best_j = j
            best = Threshold(float(cut), tpr, fpr, tp / max(1, tp + fp))
    return best


def bootstrap_interval(
    scores: Sequence[float],
    positives: Sequence[bool],
    statistic: Callable[[Sequence[float], Sequence[bool]], float | None],
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    level: float = 0.95,
) -> tuple[float, float] | None:
    """Percentile bootstrap of a statistic over (score, label) pairs; resamples lacking a class are skipped."""
    values, labels = _as_arrays(scores, positives)
    if len(values) == 0:
        return None
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(values), size=(resamples, len(values)))
    estimates = [result for index in draws if (result := statistic(values[index], labels[index])) is not None]
    if not estimates:
        return None
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(estimates, [tail, 100 - tail])
    return float(low), float(high)
