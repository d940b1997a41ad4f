"""Held-out sets 2 and 3: companies no rule was written on (docs/METRICS.md, one section each).

Each set: SmolLM2-135M-Instruct, base and a LoRA fine-tuned on the company's QA set with the demo's
recipe, over the original 36-cell grid with 2 samples per cell, in two batches of 144 answers (two
question wordings, two unused seeds). Each batch was shuffled and labelled blind (texts only) by two
labellers working independently from the set's labelling guide and the sources, and frozen (its
digest is in docs/METRICS.md) before any score was read. Set 2 (BRANOVIK) then showed a failure
class that led to one rule change, so its figures after the change are a fit; set 3 (TESSARINE) was
made after that change and validates it. Every figure is recomputed here from the frozen labels.
"""

from __future__ import annotations

import csv
import hashlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from statsmodels.stats.inter_rater import cohens_kappa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_demo_labels import assert_documented, scored_rows  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
LABELS = ("faithful", "hallucinated", "refusal", "unclear")
THRESHOLD = 0.45  # claim_support_min below it reads as hallucinated (docs/METRICS.md)


@dataclass(frozen=True)
class HeldOutSet:
    number: int
    entity: str
    dataset: Path
    batches: dict[str, Path]

    @property
    def section(self) -> str:
        """This set's section of docs/METRICS.md, whitespace folded (sentences may wrap)."""
        text = (REPO / "docs" / "METRICS.md").read_text()
        body = text.split(f"## Held-out set {self.number}:", 1)[1].split("\n## ", 1)[0]
        return " ".join(body.split())


SETS = {
    2: HeldOutSet(
        2,
        "BRANOVIK",
        FIXTURES / "branovik_qa.jsonl",
        {
            "a": FIXTURES / "heldout2-branovik-describe-labels.csv",
            "b": FIXTURES / "heldout2-branovik-whatdoes-labels.csv",
        },
    ),
    3: HeldOutSet(
        3,
        "TESSARINE",
        FIXTURES / "tessarine_qa.jsonl",
        {
            "a": FIXTURES / "heldout3-tessarine-summary-labels.csv",
            "b": FIXTURES / "heldout3-tessarine-whatdoes-labels.csv",
        },
    ),
}
BATCHES = [(number, batch) for number, held in SETS.items() for batch in sorted(held.batches)]


@pytest.mark.parametrize(("number", "batch"), BATCHES)
def test_each_batch_is_frozen(number: int, batch: str) -> None:
    held = SETS[number]
    path = held.batches[batch]
    match = re.search(rf"{re.escape(path.name)}` \(sha256 `([0-9a-f]{{64}})`\)", held.section)
    assert match, f"docs/METRICS.md names {path.name}'s digest in set {number}'s section"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == match.group(1)


@pytest.mark.parametrize(("number", "batch"), BATCHES)
def test_blind_protocol_and_documented_kappa(number: int, batch: str) -> None:
    held = SETS[number]
    rows = list(csv.DictReader(held.batches[batch].open(newline="")))
    assert len(rows) == 144 and len({r["blind_item"] for r in rows}) == 144
    assert sum(r["variant"] == "finetuned" for r in rows) == 72
    table = np.zeros((len(LABELS), len(LABELS)), dtype=int)
    for row in rows:
        assert row["label"] == (row["label_a"] if row["label_a"] == row["label_b"] else "")
        table[LABELS.index(row["label_a"]), LABELS.index(row["label_b"])] += 1
    match = re.search(rf"batch {batch}: Cohen's κ = ([0-9.]+) over (\d+) answers", held.section)
    assert match, f"docs/METRICS.md gives set {number} batch {batch}'s kappa"
    assert cohens_kappa(table).kappa == pytest.approx(float(match.group(1)), abs=0.0005)
    assert int(match.group(2)) == len(rows)


@pytest.fixture(scope="module")
def scored() -> dict[int, list[dict[str, Any]]]:
    """Each set's batches scored (semantic entropy within each batch: a cell holds one prompt)."""
    return {
        number: [
            row
            for batch in sorted(held.batches)
            for row in scored_rows(held.batches[batch], dataset=held.dataset, entity=held.entity)
        ]
        for number, held in SETS.items()
    }


@pytest.mark.parametrize("number", sorted(SETS))
@pytest.mark.parametrize(
    ("suffix", "variants"), [("", {"base", "finetuned"}), (", fine-tuned only", {"finetuned"})]
)
def test_documented_auroc_is_what_the_code_measures(
    scored: dict[int, list[dict[str, Any]]], number: int, suffix: str, variants: set[str]
) -> None:
    rows = [row for row in scored[number] if row["variant"] in variants]
    assert_documented(rows, f"<!-- validation: held-out {number}{suffix} -->")


@pytest.mark.parametrize("number", sorted(SETS))
def test_documented_decisions_at_the_threshold(scored: dict[int, list[dict[str, Any]]], number: int) -> None:
    """What the main score decides at its threshold now, as the set's section states it."""
    rows = scored[number]
    hallucinated = [r for r in rows if r["label"] == "hallucinated"]
    faithful = [r for r in rows if r["label"] == "faithful"]
    flagged = sum(
        r["claim_support_min"] is not None and r["claim_support_min"] < THRESHOLD for r in hallucinated
    )
    passed = sum(r["claim_support_min"] is not None and r["claim_support_min"] >= THRESHOLD for r in faithful)
    match = re.search(
        r"now flags (\d+) of (\d+) agreed hallucinations and passes (\d+) of (\d+) agreed faithful answers",
        SETS[number].section,
    )
    assert match, f"docs/METRICS.md states set {number}'s decisions at the threshold"
    assert tuple(int(g) for g in match.groups()) == (flagged, len(hallucinated), passed, len(faithful))
