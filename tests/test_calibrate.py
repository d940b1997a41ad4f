"""Calibration math against first-principles definitions, and the 'not enough labels' rule."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from engine import calibrate as cal


def _pairwise_auroc(scores, positives):
    """The definition: share of (positive, negative) pairs ordered correctly, ties half."""
    pos = [s for s, p in zip(scores, positives, strict=True) if p]
    neg = [s for s, p in zip(scores, positives, strict=True) if not p]
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def _brute_average_precision(scores, positives):
    """Precision at each distinct threshold times the recall it adds."""
    total = sum(positives)
    ap, previous_recall = 0.0, 0.0
    for cut in sorted(set(scores), reverse=True):
        flagged = [p for s, p in zip(scores, positives, strict=True) if s >= cut]
        recall = sum(flagged) / total
        ap += (recall - previous_recall) * (sum(flagged) / len(flagged))
        previous_recall = recall
    return ap


def test_auroc_matches_pairwise_definition_with_ties():
    rng = np.random.default_rng(7)
    for _ in range(20):
        scores = rng.integers(0, 5, size=30).astype(float).tolist()  # many ties
        positives = (rng.random(30) < 0.4).tolist()
        if not any(positives) or all(positives):
            continue
        assert cal.auroc(scores, positives) == pytest.approx(_pairwise_auroc(scores, positives))


def test_auroc_extremes_and_missing_class():
    assert cal.auroc([0.9, 0.8, 0.1, 0.2], [True, True, False, False]) == 1.0
    assert cal.auroc([0.1, 0.2, 0.9, 0.8], [True, True, False, False]) == 0.0
    assert cal.auroc([0.5, 0.5, 0.5], [True, False, False]) == 0.5
    assert cal.auroc([0.3, 0.4], [True, True]) is None


def test_auprc_matches_definition_and_ignores_tie_order():
    rng = np.random.default_rng(11)
    for _ in range(20):
        scores = rng.integers(0, 4, size=25).astype(float).tolist()
        positives = (rng.random(25) < 0.3).tolist()
        if not any(positives):
            continue
        expected = _brute_average_precision(scores, positives)
        assert cal.auprc(scores, positives) == pytest.approx(expected)
        order = rng.permutation(25)
        shuffled = cal.auprc([scores[i] for i in order], [positives[i] for i in order])
        assert shuffled == pytest.approx(expected)
    assert cal.auprc([1, 2, 3], [False, False, False]) is None


def test_best_threshold_separates_and_reports_rates():
    scores = [0.1, 0.2, 0.3, 0.7, 0.8, 0.9]
    positives = [False, False, False, True, True, True]
    cut = cal.best_threshold(scores, positives)
    assert cut is not None and cut.value == 0.7 and cut.tpr == 1.0 and cut.fpr == 0.0


def test_bootstrap_interval_brackets_the_estimate():
    rng = np.random.default_rng(3)
    positives = (rng.random(60) < 0.5).tolist()
    scores = [float(p) + rng.normal(0, 0.8) for p in positives]
    estimate = cal.auroc(scores, positives)
    low, high = cal.bootstrap_interval(scores, positives, cal.auroc, resamples=300)
    assert low < estimate < high and 0.0 <= low and high <= 1.0


def test_calibrate_score_orients_lower_is_worse_scores():
    spec = cal.ScoreSpec("grounding", "grounding", False, "hallucinated")
    pairs = [(0.2, "hallucinated")] * 10 + [(0.9, "faithful")] * 12 + [(None, "faithful"), (0.5, "refusal")]
    result = cal.calibrate_score(spec, pairs, resamples=200)
    assert result.status == "ok" and result.n == 22 and result.n_positive == 10  # None and refusal left out
    assert result.auroc == 1.0 and result.auprc == 1.0
    assert result.threshold == pytest.approx(0.2)
    assert result.threshold_rule == "grounding <= 0.2 flags hallucinated"


def test_refusal_target_counts_everything_but_unclear():
    spec = cal.ScoreSpec("refusal", "refusal", True, "refusal")
    pairs = [(1, "refusal")] * 12 + [(0, "faithful")] * 6 + [(0, "hallucinated")] * 6 + [(1, "unclear")]
    result = cal.calibrate_score(spec, pairs, resamples=100)
    assert (result.n, result.n_positive, result.auroc) == (24, 12, 1.0)


def test_fewer_than_twenty_labels_says_not_enough():
    spec = cal.ScoreSpec("conflict", "conflict", True, "hallucinated")
    result = cal.calibrate_score(spec, [(1, "hallucinated")] * 9 + [(0, "faithful")] * 10)
    assert result.status == cal.NOT_ENOUGH and result.auroc is None
    line = cal.format_results([result])[1]
    assert "not enough labels" in line and line.startswith("conflict")


def test_judge_scores_only_with_a_judge_and_named():
    rows = [{"label": "faithful", "judge_claim_grounding": 1.0}] * 12
    rows += [{"label": "hallucinated", "judge_claim_grounding": 0.0}] * 12
    without = {r.score for r in cal.calibrate_rows(rows, resamples=50)}
    assert "judge_claim_grounding" not in without
    with_judge = {r.score: r for r in cal.calibrate_rows(rows, judge_model="m-1", resamples=50)}
    judged = with_judge["judge_claim_grounding"]
    assert judged.auroc == 1.0 and judged.judge_model == "m-1"
    assert "(judge: m-1)" in "\n".join(cal.format_results([judged]))
