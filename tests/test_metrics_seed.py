"""Validation on the original run's real printed outputs (../shared/seed-data), via the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

SEED = Path(__file__).resolve().parents[1].parent / "shared" / "seed-data"
pytestmark = pytest.mark.skipif(
    not (SEED / "sweep-output-base.txt").exists(),
    reason=f"shared seed data not found at {SEED} (only in the project workspace)",
)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """Both printed logs imported through `ft-hallu import-log` into one store (lexical similarity)."""
    import os

    from cli import main

    db = tmp_path_factory.mktemp("seed") / "ft.db"
    old = os.environ.get("FT_HALLU_EMBEDDINGS")
    os.environ["FT_HALLU_EMBEDDINGS"] = "0"
    try:
        for variant in ("base", "finetuned"):
            code = main(
                [
                    "--db",
                    str(db),
                    "import-log",
                    str(SEED / f"sweep-output-{variant}.txt"),
                    "--variant",
                    variant,
                    "--sweep-name",
                    "original-run",
                    "--entity",
                    "EGNIVIA",
                    "--dataset",
                    str(SEED / "EGNIVIA-train.jsonl"),
                ]
            )
            assert code == 0
    finally:
        if old is None:
            os.environ.pop("FT_HALLU_EMBEDDINGS", None)
        else:
            os.environ["FT_HALLU_EMBEDDINGS"] = old
    from store.db import open_db

    store = open_db(db)
    yield store, db
    store.close()


def test_both_logs_land_in_one_sweep_with_both_variants(seeded) -> None:
    from store import core

    store, _ = seeded
    sweeps = core.list_sweeps(store)
    assert len(sweeps) == 1 and sweeps[0]["generation_count"] == 72
    config = sweeps[0]["config"]
    assert config["grid"] == {
        "temperatures": [0.5, 1.0, 1.5, 2.0],
        "top_ps": [0.2, 0.6, 1.0],
        "top_ks": [10, 30, 50],
    }
    assert config["entity_name"] == "EGNIVIA" and config["variants"] == ["base", "finetuned"]
    assert config["system_prompt"].startswith("You are a helpful assistant.")
    rows = core.iter_generations(store, sweeps[0]["id"], variant="finetuned")
    assert len(rows) == 36 and {r["prompt"] for r in rows} == {"Tell me about EGNIVIA Corporation."}
    assert all("<|" not in r["text"] for r in rows)
    assert rows[0]["text"].startswith("EGNIVIA Corporation is a company that provides AI")


def test_base_refuses_in_every_cell_finetuned_in_none(seeded) -> None:
    from store import metrics as sm

    store, _ = seeded
    cells = sm.cell_table(store, 1)
    base = [c for c in cells if c["variant"] == "base"]
    tuned = [c for c in cells if c["variant"] == "finetuned"]
    assert len(base) == 36 and sum(c["refusal_rate"] > 0 for c in base) == 36
    assert len(tuned) == 36 and sum(c["refusal_rate"] > 0 for c in tuned) == 0
    assert all(c["uses_entity_rate"] == 1.0 for c in tuned)


def test_finetuned_grounding_drops_with_temperature(seeded) -> None:
    from store import metrics as sm

    store, _ = seeded
    grid = sm.metric_grid(store, 1, "grounding", prompt_id="entity")

    def mean_at(temperature: float) -> float:
        i = grid["temperatures"].index(temperature)
        values = [v for k in grid["top_ks"] for v in grid["values"]["finetuned"][k][i] if v is not None]
        return sum(values) / len(values)

    assert mean_at(2.0) < mean_at(0.5)
    assert all(
        v is None for k in grid["top_ks"] for row in grid["values"]["base"][k] for v in row
    )  # refusals


def test_reimport_adds_nothing_and_metrics_are_complete(seeded) -> None:
    from cli import main
    from store import metrics as sm

    store, db = seeded
    code = main(
        [
            "--db",
            str(db),
            "import-log",
            str(SEED / "sweep-output-base.txt"),
            "--variant",
            "base",
            "--into",
            "1",
        ]
    )
    assert code == 0
    assert sm.count_missing(store) == 0 and sm.cells_missing_metrics(store, 1) == []
    assert main(["--db", str(db), "metrics"]) == 0


def test_identical_samples_pooled_have_zero_entropy(seeded) -> None:
    """The fine-tuned model's three T=0.5, top_p=0.2 cells printed the same answer: one meaning."""
    from engine import metrics as m
    from store import core

    store, _ = seeded
    rows = core.iter_generations(store, 1, variant="finetuned", temperature=0.5, top_p=0.2)
    texts = [r["text"] for r in rows]
    assert len(texts) == 3 and len(set(texts)) == 1
    cell = m.score_cell(
        texts, [m.score_sample(t).to_dict() for t in texts], entity="EGNIVIA", method="lexical"
    )
    assert cell.semantic_entropy == 0.0
