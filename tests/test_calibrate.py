"""Calibration math against first-principles definitions, and the 'not enough labels' rule."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

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


# ---------------------------------------------------------------- validation on the original run

REPO = Path(__file__).resolve().parents[1]
SEED = REPO.parent / "shared" / "seed-data"
FIXTURES = REPO / "tests" / "fixtures"
VALIDATION_START = "<!-- validation: original run -->"
VALIDATION_END = "<!-- /validation -->"


def documented_validation() -> dict[str, dict[str, str]]:
    """The validation table of docs/METRICS.md: score -> its row (n, positives, AUROC, AUPRC)."""
    text = (REPO / "docs" / "METRICS.md").read_text()
    block = text.split(VALIDATION_START, 1)[1].split(VALIDATION_END, 1)[0]
    lines = [line.strip() for line in block.strip().splitlines() if line.strip().startswith("|")]
    headers = [h.strip() for h in lines[0].strip("|").split("|")]
    rows = {}
    for line in lines[2:]:
        values = [v.strip() for v in line.strip("|").split("|")]
        row = dict(zip(headers, values, strict=True))
        rows[row["score"].strip("`")] = row
    return rows


@pytest.mark.skipif(
    not (SEED / "sweep-output-finetuned.txt").exists(), reason=f"seed data not found at {SEED}"
)
def test_documented_auroc_on_the_original_run_is_what_the_code_measures(
    tmp_path, monkeypatch, capsys
) -> None:
    """Import the two printed logs, import the hand labels from the fixtures, calibrate: the
    numbers must be the ones docs/METRICS.md reports (lexical evidence and similarity)."""
    from cli import main

    monkeypatch.setenv("FT_HALLU_EMBEDDINGS", "0")
    db = str(tmp_path / "ft.db")
    for variant in ("base", "finetuned"):
        log = str(SEED / f"sweep-output-{variant}.txt")
        args = ["--db", db, "import-log", log, "--variant", variant, "--sweep-name", "original", "--entity"]
        assert main([*args, "EGNIVIA", "--dataset", str(SEED / "EGNIVIA-train.jsonl")]) == 0
        labels = str(FIXTURES / f"original-{variant}-labels.csv")
        assert main(["--db", db, "label", "import", labels, "--sweep", "1", "--variant", variant]) == 0
    out = tmp_path / "calibration.json"
    assert main(["--db", db, "calibrate", "--sweep", "1", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "72 labelled generation(s) (faithful 25, hallucinated 10, refusal 36, unclear 1)" in printed
    measured = {r["score"]: r for r in json.loads(out.read_text())["results"]}
    documented = documented_validation()
    assert set(documented) == set(measured)
    for score, row in documented.items():
        result = measured[score]
        assert (str(result["n"]), str(result["n_positive"])) == (row["n"], row["positives"]), score
        assert result["auroc"] == pytest.approx(float(row["AUROC"]), abs=0.0015), score
        assert result["auprc"] == pytest.approx(float(row["AUPRC"]), abs=0.0015), score
    assert measured["claim_grounding"]["auroc"] >= 0.95  # the target
