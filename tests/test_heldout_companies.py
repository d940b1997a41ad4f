"""Held-out set 2: a company no rule was written on (BRANOVIK, tests/fixtures/branovik_qa.jsonl).

SmolLM2-135M-Instruct, base and a LoRA fine-tuned on the BRANOVIK set with the demo's recipe, over
the original 36-cell grid with 2 samples per cell, in two batches of 144 answers: (a) "Describe
BRANOVIK Holdings in one sentence." with seed 90210, (b) "What does BRANOVIK do?" (the fine-tune's
own overview question) with seed 31337. Each batch was shuffled and labelled blind (texts only) by
two labellers who worked independently with tests/fixtures/heldout2-labelling-guide.md and the
sources; each fixture was frozen (its digest is in docs/METRICS.md) before any score was read.
No rule has been changed since. Figures are recomputed here and compared with docs/METRICS.md.
"""

from __future__ import annotations

import csv
import hashlib
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from statsmodels.stats.inter_rater import cohens_kappa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_demo_labels import documented_table, scored_rows  # noqa: E402

from engine import calibrate as cal  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
DATASET = FIXTURES / "branovik_qa.jsonl"
ENTITY = "BRANOVIK"
BATCHES = {
    "a": FIXTURES / "heldout2-branovik-describe-labels.csv",
    "b": FIXTURES / "heldout2-branovik-whatdoes-labels.csv",
}
LABELS = ("faithful", "hallucinated", "refusal", "unclear")
THRESHOLD = 0.45  # claim_support_min below it reads as hallucinated (docs/METRICS.md)


def metrics_text() -> str:
    return (REPO / "docs" / "METRICS.md").read_text()


def rows_of(batch: str) -> list[dict[str, str]]:
    return list(csv.DictReader(BATCHES[batch].open(newline="")))


@pytest.mark.parametrize("batch", sorted(BATCHES))
def test_each_batch_is_frozen(batch: str) -> None:
    name = re.escape(BATCHES[batch].name)
    match = re.search(rf"{name}` \(sha256 `([0-9a-f]{{64}})`\)", metrics_text())
    assert match, f"docs/METRICS.md names {BATCHES[batch].name}'s digest"
    assert hashlib.sha256(BATCHES[batch].read_bytes()).hexdigest() == match.group(1)


@pytest.mark.parametrize("batch", sorted(BATCHES))
def test_blind_protocol_and_documented_kappa(batch: str) -> None:
    rows = rows_of(batch)
    assert len(rows) == 144 and len({r["blind_item"] for r in rows}) == 144
    assert sum(r["variant"] == "finetuned" for r in rows) == 72
    table = np.zeros((len(LABELS), len(LABELS)), dtype=int)
    for row in rows:
        assert row["label"] == (row["label_a"] if row["label_a"] == row["label_b"] else "")
        table[LABELS.index(row["label_a"]), LABELS.index(row["label_b"])] += 1
    match = re.search(rf"batch {batch}: Cohen's κ = ([0-9.]+) over (\d+) answers", metrics_text())
    assert match, f"docs/METRICS.md gives batch {batch}'s kappa"
    assert cohens_kappa(table).kappa == pytest.approx(float(match.group(1)), abs=0.0005)
    assert int(match.group(2)) == len(rows)


@pytest.fixture(scope="module")
def scored() -> list[dict[str, Any]]:
    """Both batches scored (semantic entropy within each batch: the cells hold one prompt each)."""
    return [
        row
        for batch in sorted(BATCHES)
        for row in scored_rows(BATCHES[batch], dataset=DATASET, entity=ENTITY)
    ]


@pytest.mark.parametrize(
    ("marker", "variants"),
    [
        ("<!-- validation: held-out 2 -->", {"base", "finetuned"}),
        ("<!-- validation: held-out 2, fine-tuned only -->", {"finetuned"}),
    ],
)
def test_documented_auroc_on_the_new_company_is_what_the_code_measures(
    scored: list[dict[str, Any]], marker: str, variants: set[str]
) -> None:
    rows = [row for row in scored if row["variant"] in variants]
    measured = {r.score: r for r in cal.calibrate_rows(rows, resamples=200)}
    documented = documented_table(marker)
    assert documented and set(documented) <= set(measured)
    for score, row in documented.items():
        result = measured[score]
        assert (str(result.n), str(result.n_positive)) == (row["n"], row["positives"]), score
        if row["AUROC"] == "-":
            assert result.auroc is None, score
            continue
        assert result.auroc == pytest.approx(float(row["AUROC"]), abs=0.0015), score
        assert result.auprc == pytest.approx(float(row["AUPRC"]), abs=0.0015), score


def test_documented_decisions_at_the_threshold(scored: list[dict[str, Any]]) -> None:
    """What the main score decides at its threshold, as docs/METRICS.md states it."""
    hallucinated = [r for r in scored if r["label"] == "hallucinated"]
    faithful = [r for r in scored if r["label"] == "faithful"]
    flagged = sum(
        r["claim_support_min"] is not None and r["claim_support_min"] < THRESHOLD for r in hallucinated
    )
    passed = sum(r["claim_support_min"] is not None and r["claim_support_min"] >= THRESHOLD for r in faithful)
    match = re.search(
        r"flags (\d+) of (\d+) agreed hallucinations and passes (\d+) of (\d+) agreed faithful answers",
        " ".join(metrics_text().split()),  # the sentence may wrap
    )
    assert match, "docs/METRICS.md states held-out 2's decisions at the threshold"
    assert tuple(int(g) for g in match.groups()) == (flagged, len(hallucinated), passed, len(faithful))
