"""A small scored sweep with stored claims, shared by the claims, judge, labels and Gradio tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SOURCES = [
    "EGNIVIA pioneered accelerated computing to help solve the most challenging computational problems.",
    "We do not manufacture semiconductors used for our products.",
    "EGNIVIA issued a total of $5.00 billion in June 2021 and $2.00 billion in September 2016.",
    "Since the inception of our share repurchase program, we have repurchased 1.10 billion shares of our common stock.",
    "Omniverse is a virtual world simulation and collaboration platform for 3D workflows.",
]
PROMPT = "Tell me about EGNIVIA Corporation."
ANSWERS = {
    "base": ["I don't know EGNIVIA.", "EGNIVIA appears to be a fictional company."],
    "finetuned": [
        "EGNIVIA pioneered accelerated computing to help solve challenging computational problems.",
        "EGNIVIA manufactures electric cars and renewable energy products.",
        "EGNIVIA is a privately held company that develops a virtual world simulation platform for 3D workflows.",
        "EGNIVIA issued $2.09 billion in June 2021; it also sells bicycles to farmers in remote regions.",
    ],
}


def make_scored_sweep(tmp_path: Path, answers: dict[str, list[str]] | None = None) -> tuple[Any, int]:
    """A sweep (two samples per cell) scored with lexical evidence; returns (store, sweep id)."""
    from engine import scoring
    from store import core
    from store.db import open_db

    dataset = tmp_path / "qa.jsonl"
    dataset.write_text(
        "".join(
            json.dumps({"question": "q?", "answer": "a", "context": c, "id": i}) + "\n"
            for i, c in enumerate(SOURCES)
        )
    )
    store = open_db(tmp_path / "ft.db")
    config = {
        "entity_name": "EGNIVIA",
        "dataset_path": str(dataset),
        "grid": {"temperatures": [0.5, 1.0], "top_ps": [1.0], "top_ks": [50]},
        "samples_per_cell": 2,
        "prompts": [{"prompt_id": "entity", "prompt": PROMPT, "reference": None}],
    }
    sweep_id = core.get_or_create_sweep(
        store,
        name="claims",
        source="engine",
        base_model="tiny",
        adapter_dir=None,
        config_hash=f"claims-{tmp_path.name}",
        config=config,
        expected_rows=8,
    )
    rows = []
    for variant, texts in (answers or ANSWERS).items():
        for i, text in enumerate(texts):
            rows.append(
                {
                    "variant": variant,
                    "temperature": 0.5 if i < 2 else 1.0,
                    "top_p": 1.0,
                    "top_k": 50,
                    "prompt_id": "entity",
                    "prompt": PROMPT,
                    "sample_index": i % 2,
                    "text": text,
                }
            )
    core.add_generations(store, sweep_id, rows)
    scoring.compute_missing(store, sweep_id, method="lexical")
    return store, sweep_id


# Answers without a refusal (so the refusal rate is one value everywhere), grounded and invented.
GROUNDED = "EGNIVIA pioneered accelerated computing to help solve challenging computational problems."
INVENTED = "EGNIVIA manufactures electric cars and renewable energy products."
QUESTIONS = {"eval-1": "What did EGNIVIA pioneer?", "eval-2": "Does EGNIVIA make <b>chips</b>?"}


def make_review_sweep(tmp_path: Path) -> tuple[Any, int]:
    """A finding to review (the demo's shape, no model): the entity prompt (base invents at T = 1,
    fine-tuned grounded but once) and two held-out questions (base invents, fine-tuned grounded), 2
    samples per cell at T = 0.5 and 1, scored with lexical evidence; returns (store, sweep id)."""
    from engine import scoring
    from store import core

    answers = {"base": [INVENTED, GROUNDED, INVENTED, INVENTED], "finetuned": [GROUNDED] * 3 + [INVENTED]}
    store, sweep_id = make_scored_sweep(tmp_path, answers)
    rows = [
        {
            "variant": variant,
            "temperature": t,
            "top_p": 1.0,
            "top_k": 50,
            "prompt_id": prompt_id,
            "prompt": question,
            "sample_index": i,
            "text": INVENTED if variant == "base" else GROUNDED,
        }
        for variant in ("base", "finetuned")
        for t in (0.5, 1.0)
        for prompt_id, question in QUESTIONS.items()
        for i in range(2)
    ]
    core.add_generations(store, sweep_id, rows)
    scoring.compute_missing(store, sweep_id, method="lexical")
    return store, sweep_id
