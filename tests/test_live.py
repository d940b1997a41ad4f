"""Live scoring (engine/live.py): a batch from the comparison app scored as a sweep cell is, with the
catalogue's reasons for every missing value, and the batch's round trip through the app's state."""

from __future__ import annotations

import pytest

from engine.live import LiveBatch, LiveSample, LiveSettings, score_live
from engine.metrics import catalog
from engine.paths import bundled_data_dir

SETTINGS = LiveSettings(temperature=0.9, top_p=0.95, top_k=40, max_new_tokens=32, seed=3, finetuned_seed=3)
ZYTRELL = bundled_data_dir() / "sample_qa.jsonl"


@pytest.fixture(autouse=True)
def lexical_metrics(monkeypatch):
    monkeypatch.setenv("FT_HALLU_EMBEDDINGS", "0")


def batch(base: list[str], finetuned: list[str]) -> LiveBatch:
    samples = [LiveSample("base", 3 + i, t) for i, t in enumerate(base)]
    samples += [LiveSample("finetuned", 3 + i, t) for i, t in enumerate(finetuned)]
    return LiveBatch.of("What does ZYTRELL Corporation do?", "Be brief.", SETTINGS, samples)


def test_state_round_trip_keeps_every_sample_and_setting() -> None:
    run = batch(["I don't know.", "No idea."], ["ZYTRELL makes robots.", "ZYTRELL builds drones."])
    run.stopped = True
    again = LiveBatch.from_state(run.to_state())
    assert again == run
    assert (again.temperature, again.top_p, again.top_k, again.max_new_tokens) == (0.9, 0.95, 40, 32)
    assert [s.seed for s in again.side("finetuned")] == [3, 4]


def test_without_a_dataset_source_metrics_say_start_with_dataset() -> None:
    run = batch(
        ["I don't know.", "I am not sure."], ["ZYTRELL makes robots.", "ZYTRELL makes robots in 2004."]
    )
    scores = score_live(run, ("base", "finetuned"), entity="ZYTRELL", dataset=None)
    assert [s.index for s in scores.samples["finetuned"]] == [0, 1]
    assert scores.samples["base"][0].metrics["refusal"] is True
    assert scores.value("base", "refusal_rate") == 1.0 and scores.missing("base", "refusal_rate") is None
    assert scores.missing("finetuned", "grounding") is catalog.NO_LIVE_SOURCES
    assert scores.missing("finetuned", "token_f1") is catalog.NO_REFERENCE  # a live prompt has no reference
    assert scores.missing("finetuned", "semantic_entropy") is None  # two samples: defined


def test_with_a_dataset_refusals_and_single_samples_say_so() -> None:
    run = batch(["I don't know."], ["ZYTRELL designs autonomous mobile robots for warehouses."])
    scores = score_live(run, ("base", "finetuned"), entity="ZYTRELL", dataset=str(ZYTRELL))
    assert scores.has_sources
    assert scores.value("finetuned", "grounding") is not None
    assert scores.missing("base", "grounding") is catalog.ALL_REFUSED  # nothing to ground
    for variant in ("base", "finetuned"):  # one sample: a spread says nothing, whatever was stored
        assert scores.value(variant, "semantic_entropy") is not None
        assert scores.missing(variant, "semantic_entropy") is catalog.UNDEFINED_AT_ONE
