"""Searching a sweep's samples (engine/samples.py via Workspace.search_samples), its CSV, claims in
plain words (engine/metrics/claim_words.py) and what an adapter was trained on (engine/adapter_runs.py).

Real SQLite stores scored with the lexical evidence (tests/claims_sweep.py), no model loaded.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from claims_sweep import make_scored_sweep  # noqa: E402

from engine.errors import UserError  # noqa: E402
from engine.samples import (  # noqa: E402
    FLAGGED,
    REFUSED,
    SUPPORTED,
    MetricFilter,
    SampleQuery,
    samples_csv,
)

# Base says one grounded and one invented thing per cell; fine-tuned refuses once, invents once,
# and a formula-leading answer checks the CSV escaping.
ANSWERS = {
    "base": [
        "EGNIVIA pioneered accelerated computing to help solve challenging computational problems.",
        "EGNIVIA manufactures electric cars and renewable energy products.",
        "EGNIVIA pioneered accelerated computing to help solve challenging computational problems.",
        '=HYPERLINK("http://x") EGNIVIA sells bicycles to farmers.',
    ],
    "finetuned": [
        "I don't know EGNIVIA.",
        "EGNIVIA manufactures electric cars and renewable energy products.",
        "EGNIVIA sells bicycles to farmers in remote regions.",
        "EGNIVIA pioneered accelerated computing to help solve challenging computational problems.",
    ],
}


@pytest.fixture()
def workspace(tmp_path, monkeypatch):
    from engine.workspace import Workspace

    monkeypatch.setenv("FT_HALLU_EMBEDDINGS", "0")
    store, sweep_id = make_scored_sweep(tmp_path, ANSWERS)
    store.close()
    with Workspace.open(tmp_path / "ft.db") as opened:
        yield opened, sweep_id


def test_text_regex_and_threshold_find_the_samples_they_say(workspace):
    ws, sweep_id = workspace
    everything = ws.search_samples(sweep_id, SampleQuery())
    assert everything.matched == everything.searched == 8 and len(everything.rows) == 8
    assert everything.prompts == {"entity": "Tell me about EGNIVIA Corporation."}

    cars = ws.search_samples(sweep_id, SampleQuery(search="ELECTRIC cars"))
    assert {r.text for r in cars.rows} == {ANSWERS["base"][1]} and cars.matched == 2
    assert {r.variant for r in cars.rows} == {"base", "finetuned"}

    pattern = ws.search_samples(sweep_id, SampleQuery(search=r"bicycles? to \w+", regex=True))
    assert sorted(r.text for r in pattern.rows) == sorted([ANSWERS["base"][3], ANSWERS["finetuned"][2]])
    plain = ws.search_samples(sweep_id, SampleQuery(search=r"bicycles? to \w+"))  # not a pattern
    assert plain.matched == 0
    with pytest.raises(UserError, match=r"search: '\(' is not a valid regular expression"):
        ws.search_samples(sweep_id, SampleQuery(search="(", regex=True))

    weak = ws.search_samples(sweep_id, SampleQuery(filters=(MetricFilter("claim_support_min", "<", 0.45),)))
    assert weak.rows and all(r.metrics["claim_support_min"] < 0.45 for r in weak.rows)
    assert all(r.verdict == FLAGGED for r in weak.rows)
    # The refusal has no main score: it is neither below nor above a threshold.
    assert all(r.text != ANSWERS["finetuned"][0] for r in weak.rows)
    strong = ws.search_samples(
        sweep_id, SampleQuery(filters=(MetricFilter("claim_support_min", ">=", 0.45),))
    )
    assert {r.generation_id for r in strong.rows}.isdisjoint({r.generation_id for r in weak.rows})
    assert weak.matched + strong.matched == 7  # every sample but the refusal

    # Each shown row carries its stored claims; the invented one says what is unknown.
    invented = next(r for r in weak.rows if "electric" in r.text)
    assert invented.claims and any(c["decision"] != "supported" for c in invented.claims)
    with pytest.raises(UserError, match="filter metric"):
        MetricFilter("no_such_metric", "<", 1)
    with pytest.raises(UserError, match="finite"):
        MetricFilter("claim_support_min", "<", float("nan"))


def test_differ_pairs_base_and_fine_tuned_by_cell_and_sample_index(workspace):
    ws, sweep_id = workspace
    found = ws.search_samples(sweep_id, SampleQuery(differ=True))
    pairs = [found.rows[i : i + 2] for i in range(0, len(found.rows), 2)]
    assert found.matched == len(found.rows) == 2 * len(pairs)
    slots = set()
    for base, other in pairs:
        assert (base.variant, other.variant) == ("base", "finetuned")
        assert (base.temperature, base.top_p, base.top_k, base.prompt_id, base.sample_index) == (
            other.temperature,
            other.top_p,
            other.top_k,
            other.prompt_id,
            other.sample_index,
        )
        assert base.partner == other.generation_id and other.partner == base.generation_id
        assert base.verdict != other.verdict or base.gap >= 0.5
        slots.add((base.temperature, base.sample_index))
    # The identical answers at T = 0.5 index 1 do not differ; the refusal against a grounded answer
    # does, and so do grounded against invented at T = 1.
    assert (0.5, 1) not in slots
    assert {(0.5, 0), (1.0, 0), (1.0, 1)} <= slots
    refusal_pair = next(p for p in pairs if p[0].temperature == 0.5 and p[0].sample_index == 0)
    assert (refusal_pair[0].verdict, refusal_pair[1].verdict) == (SUPPORTED, REFUSED)
    assert [p[0].gap for p in pairs] == sorted((p[0].gap for p in pairs), reverse=True)
    # A search narrows the pairs to those where one side says it; a variant filter keeps base beside it.
    bikes = ws.search_samples(sweep_id, SampleQuery(differ=True, search="bicycles", variant="finetuned"))
    assert len(bikes.rows) == 4 and {r.variant for r in bikes.rows} == {"base", "finetuned"}


def test_csv_holds_the_shown_rows_and_never_a_formula(workspace):
    ws, sweep_id = workspace
    found = ws.search_samples(sweep_id, SampleQuery(search="bicycles"))
    text = samples_csv(found)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [int(r["generation_id"]) for r in rows] == [r.generation_id for r in found.rows]
    formula = next(r for r in rows if "HYPERLINK" in r["text"])
    assert formula["text"].startswith("'=HYPERLINK")  # a spreadsheet shows it, never runs it
    assert all(r["prompt"] == "Tell me about EGNIVIA Corporation." for r in rows)
    for shown, written in zip(found.rows, rows, strict=True):
        assert written["verdict"] == shown.verdict
        support = shown.metrics.get("claim_support_min")
        assert written["claim_support_min"] == ("" if support is None else str(round(support, 4)))
    limited = ws.search_samples(sweep_id, SampleQuery(limit=3))
    assert limited.matched == 8 and len(limited.rows) == 3
    assert len(list(csv.DictReader(io.StringIO(samples_csv(limited))))) == 3
    assert "showing the first 3" in limited.summary()


def test_a_place_contradiction_reads_as_one_in_plain_words():
    """The bundled ZYTRELL set says Tacoma: New York City is contradicted by the place rule."""
    from engine.dataset import sample_dataset_path
    from engine.metrics import claims
    from engine.metrics.claim_words import claim_words, legend

    index = claims.load_evidence(str(sample_dataset_path()), "ZYTRELL", method="lexical")
    found = {
        c.text: claim_words(c.to_dict())
        for text in (
            "ZYTRELL is headquartered in New York City.",
            "ZYTRELL designs warehouse robots.",
            "ZYTRELL sells pizza.",
        )
        for c in claims.check_claims(text, index, entity="ZYTRELL")
    }
    place = found["ZYTRELL is headquartered in New York City"]
    assert place.decision == "contradicted" and place.rule == "place"
    assert place.verdict == "contradicts the sources"
    assert place.reason == "the sources place it elsewhere (they say: headquarters: Tacoma, Washington)"
    assert place.strength == 0 and place.evidence_label == "contradicted by" and "Tacoma" in place.evidence
    supported = found["ZYTRELL designs warehouse robots"]
    assert supported.verdict == "supported" and supported.strength_text == "1.00" and not supported.missing
    invented = found["ZYTRELL sells pizza"]
    assert invented.verdict == "not supported" and "pizza" in invented.reason
    assert "pizza" in invented.missing and invented.evidence_label == "closest source"
    garbled = claim_words({"decision": "unsupported", "rule": "unknown", "unknown": list("abcdefgh")})
    assert garbled.reason.endswith('"e", "f" and 2 more')  # a garbled answer's words are counted, not listed
    parts = dict(legend())
    assert set(parts) == {"verdict", "why", "strength", "evidence"} and "0.45" in parts["strength"]


def test_adapter_entity_from_its_run_record_then_its_sweeps(tmp_path):
    from engine.adapter_runs import adapter_entity, dataset_entity
    from engine.dataset import sample_dataset_path
    from store import core
    from store.db import open_db

    store = open_db(tmp_path / "ft.db")
    adapter = tmp_path / "runs" / "a"
    adapter.mkdir(parents=True)
    (adapter / "ft-hallu-run.json").write_text(json.dumps({"dataset": str(sample_dataset_path())}))
    # Nothing sampled it yet: the dataset's questions name the entity.
    assert adapter_entity(store, adapter) == "ZYTRELL" == dataset_entity(sample_dataset_path())
    other = tmp_path / "other.jsonl"
    other.write_text(
        "".join(
            json.dumps({"question": q, "answer": "a", "context": "c", "id": i}) + "\n"
            for i, q in enumerate(["What does QUORVANT make?", "Who runs QUORVANT?", "Is it NASDAQ-listed?"])
        )
    )
    assert dataset_entity(other) == "QUORVANT"  # the name most questions use
    # A sweep of this adapter run with the default entity does not override what the record says...
    for folder, name in ((adapter, "EGNIVIA"), (tmp_path / "runs" / "no-record", "VELMORA")):
        core.get_or_create_sweep(
            store,
            name="s",
            source="engine",
            base_model="tiny",
            adapter_dir=str(folder),
            config_hash=f"h-{name}",
            config={"entity_name": name},
            expected_rows=0,
        )
    assert adapter_entity(store, adapter) == "ZYTRELL"
    # ...but names the entity of an adapter without a readable record.
    assert adapter_entity(store, tmp_path / "runs" / "no-record") == "VELMORA"
    assert adapter_entity(store, tmp_path / "unknown") is None
    store.close()
