"""The held-out validation set: answers nobody tuned a rule on, labelled blind by two labellers.

144 answers of SmolLM2-135M-Instruct (base and the demo's LoRA fine-tune, 36 cells x 2 samples) to
"Give me a one-sentence overview of ZYTRELL Corporation." with sweep seed 5150: a wording and a
seed no test or rule had used. Two labellers worked independently from a shuffled list of the
texts alone (no variant, settings or scores), following tests/fixtures/heldout-labelling-guide.md.
The fixture is frozen: its digest is written in docs/METRICS.md and checked here, so nobody edits
it after seeing a score. Rules are developed on the other fixtures (dev sets) only.
"""

from __future__ import annotations

import csv
import hashlib
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from statsmodels.stats.inter_rater import cohens_kappa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_demo_labels import assert_documented, scored_rows  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "heldout-smollm2-overview-labels.csv"
LABELS = ("faithful", "hallucinated", "refusal", "unclear")


def documented_digest() -> str:
    text = (REPO / "docs" / "METRICS.md").read_text()
    match = re.search(r"heldout-smollm2-overview-labels\.csv` \(sha256 `([0-9a-f]{64})`\)", text)
    assert match, "docs/METRICS.md names the held-out fixture's digest"
    return match.group(1)


def test_held_out_fixture_is_frozen() -> None:
    assert hashlib.sha256(FIXTURE.read_bytes()).hexdigest() == documented_digest()


def test_held_out_set_shape_and_blind_protocol() -> None:
    rows = list(csv.DictReader(FIXTURE.open(newline="")))
    assert len(rows) == 144 and len({r["blind_item"] for r in rows}) == 144
    variants = Counter(r["variant"] for r in rows)
    assert variants["finetuned"] >= len(rows) / 2
    for row in rows:
        assert row["label_a"] in LABELS and row["label_b"] in LABELS
        # the adjudicated label is the labellers' common one; disagreements stay unlabelled
        assert row["label"] == (row["label_a"] if row["label_a"] == row["label_b"] else "")


def test_documented_kappa_is_what_the_labels_give() -> None:
    rows = list(csv.DictReader(FIXTURE.open(newline="")))
    table = np.zeros((len(LABELS), len(LABELS)), dtype=int)
    for row in rows:
        table[LABELS.index(row["label_a"]), LABELS.index(row["label_b"])] += 1
    kappa = cohens_kappa(table).kappa
    text = (REPO / "docs" / "METRICS.md").read_text()
    match = re.search(r"Cohen's κ = ([0-9.]+) over (\d+) answers", text)
    assert match
    assert kappa == pytest.approx(float(match.group(1)), abs=0.005)
    assert int(match.group(2)) == len(rows)


@pytest.fixture(scope="module")
def heldout_rows() -> list[dict[str, Any]]:
    return scored_rows(FIXTURE)


@pytest.mark.parametrize(
    ("marker", "variants"),
    [
        ("<!-- validation: held-out -->", {"base", "finetuned"}),
        ("<!-- validation: held-out, fine-tuned only -->", {"finetuned"}),
    ],
)
def test_documented_held_out_auroc_is_what_the_code_measures(
    heldout_rows: list[dict[str, Any]], marker: str, variants: set[str]
) -> None:
    rows = [row for row in heldout_rows if row["variant"] in variants]
    assert_documented(rows, marker)
