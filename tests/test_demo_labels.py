"""Validation on the SmolLM2 demo's real answers: every score recomputed from the labelled texts.

The fixture holds the 144 answers of one `ft-hallu demo` run to "Tell me about ZYTRELL
Corporation." with a hand label each, so nothing here needs the run's store: the answers are
scored again with the project's own functions against the bundled sample set's contexts
(lexical evidence and similarity), calibrated with engine.calibrate, and compared with the table
of docs/METRICS.md.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

from engine import calibrate as cal
from engine.metrics import claims as claim_metrics
from engine.metrics import load_sources, score_cell, score_sample

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "demo-smollm2-labels.csv"
DATASET = REPO / "engine" / "data" / "sample_qa.jsonl"
ENTITY = "ZYTRELL"
TABLE_END = "<!-- /validation -->"


def documented_table(marker: str) -> dict[str, dict[str, str]]:
    """One demo validation table of docs/METRICS.md (after its marker comment): score -> its row."""
    text = (REPO / "docs" / "METRICS.md").read_text()
    block = text.split(marker, 1)[1].split(TABLE_END, 1)[0]
    lines = [line.strip() for line in block.strip().splitlines() if line.strip().startswith("|")]
    headers = [h.strip() for h in lines[0].strip("|").split("|")]
    rows = {}
    for line in lines[2:]:
        row = dict(zip(headers, [v.strip() for v in line.strip("|").split("|")], strict=True))
        rows[row["score"].strip("`")] = row
    return rows

def assert_documented(rows: list[dict[str, Any]], marker: str) -> None:
    """The docs/METRICS.md table after ``marker`` is what engine.calibrate measures on ``rows``:
    n, positives, AUROC and AUPRC of every score it lists (bootstrap intervals are not compared)."""
    measured = {r.score: r for r in cal.calibrate_rows(rows, resamples=200)}
    documented = documented_table(marker)
    assert documented and set(documented) <= set(measured), marker
    for score, row in documented.items():
        result = measured[score]
        assert (str(result.n), str(result.n_positive)) == (row["n"], row["positives"]), score
        if row["AUROC"] == "-":
            assert result.auroc is None, score
            continue
        assert result.auroc == pytest.approx(float(row["AUROC"]), abs=0.0015), score
        assert result.auprc == pytest.approx(float(row["AUPRC"]), abs=0.0015), score


def scored_rows(
    fixture: Path = FIXTURE, *, dataset: Path = DATASET, entity: str = ENTITY
) -> list[dict[str, Any]]:
    """One row per labelled answer with the scores `ft-hallu calibrate` reads (as sweep_score_rows).

    ``fixture`` is a CSV of answers about ``entity`` (whose sources are ``dataset``'s contexts) with
    ``variant, temperature, top_p, top_k, text, label`` (and ``reason``); rows with an empty label
    (labellers disagreed) are left out.
    """
    labelled = [row for row in csv.DictReader(fixture.open(newline="")) if row["label"]]
    sources = load_sources(str(dataset), entity)
    index = claim_metrics.load_evidence(str(dataset), entity, method="lexical")
    assert sources is not None and index is not None and index.method == "lexical"
    samples = [score_sample(r["text"], sources=sources, entity=entity) for r in labelled]
    claims = claim_metrics.answer_claims(
        [r["text"] for r in labelled], refusals=[s.refusal for s in samples], index=index, entity=entity
    )
    rows: list[dict[str, Any]] = []
    for source, sample, answer_claims in zip(labelled, samples, claims, strict=True):
        rows.append(
            {
                "variant": source["variant"],
                "cell": (float(source["temperature"]), float(source["top_p"]), int(source["top_k"])),
                "text": source["text"],
                "label": source["label"],
                "reason": source.get("reason", ""),
                "metrics": sample.to_dict(),
                "claim_support_min": claim_metrics.claim_support_min(answer_claims),
                "claim_grounding": claim_metrics.claim_grounding(answer_claims),
                "grounding": sample.grounding,
                "conflict": float(sample.conflict),
                "degenerate": float(sample.degenerate),
                "refusal": float(sample.refusal),
            }
        )
    # Cell entropy over a cell's two samples; pooled over a variant's 18 samples at one temperature.
    for name, key in (("semantic_entropy", "cell"), ("semantic_entropy_pooled", "temperature")):
        groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
        for row in rows:
            group = row["cell"] if key == "cell" else row["cell"][0]
            groups.setdefault((row["variant"], group), []).append(row)
        for members in groups.values():
            cell = score_cell(
                [m["text"] for m in members], [m["metrics"] for m in members], entity=entity, method="lexical"
            )
            for member in members:
                member[name] = cell.semantic_entropy
    return rows


def test_fixture_covers_the_whole_demo_grid() -> None:
    rows = list(csv.DictReader(FIXTURE.open(newline="")))
    cells = {(r["variant"], r["temperature"], r["top_p"], r["top_k"], r["sample_index"]) for r in rows}
    assert len(rows) == len(cells) == 2 * 4 * 3 * 3 * 2
    assert {r["label"] for r in rows} <= {"faithful", "hallucinated", "refusal", "unclear"}
    assert all(r["text"].strip() and r["reason"].strip() for r in rows)


@pytest.fixture(scope="module")
def demo_rows() -> list[dict[str, Any]]:
    return scored_rows()


# The answers whose only error is calling ZYTRELL a start-up say so in their reason.
START_UP_ONLY = "is no start-up"


def forgiving_start_up(row: dict[str, Any]) -> dict[str, Any]:
    """The row relabelled faithful when calling the company a start-up is its only error."""
    if row["label"] == "hallucinated" and START_UP_ONLY in row["reason"]:
        return {**row, "label": "faithful"}
    return row


@pytest.mark.parametrize(
    ("marker", "variants", "forgive_start_up"),
    [
        ("<!-- validation: SmolLM2 demo -->", {"base", "finetuned"}, False),
        ("<!-- validation: SmolLM2 demo, fine-tuned only -->", {"finetuned"}, False),
        ("<!-- validation: SmolLM2 demo, fine-tuned, start-up forgiven -->", {"finetuned"}, True),
    ],
)
def test_documented_auroc_on_the_demo_answers_is_what_the_code_measures(
    demo_rows: list[dict[str, Any]], marker: str, variants: set[str], forgive_start_up: bool
) -> None:
    rows = [row for row in demo_rows if row["variant"] in variants]
    if forgive_start_up:
        rows = [forgiving_start_up(row) for row in rows]
    assert_documented(rows, marker)
