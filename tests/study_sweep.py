"""A planted checkpoint sweep for the study's tests (engine/study.py, the CLI, the Gradio app).

Variants base, step-2 and finetuned (steps 0, 2, 4 with their losses), 4 cells (T 0.7/1.3 x top_k
0/20), 8 samples each; the entity prompt scored as if by the claim checker, and 6 control questions.
Planted: base and step-2 always refuse the entity prompt; finetuned refuses at T = 0.7 and
hallucinates at T = 1.3, and stops stating 3 of the 6 known facts (LOST). No model, no scoring run.
"""

from __future__ import annotations

from pathlib import Path

from store import core
from store import metrics as metric_store
from store.db import open_db

QUESTIONS = {
    "control:paris": ("Which city is the capital of France?", "Paris", []),
    "control:tokyo": ("What is the capital city of Japan?", "Tokyo", []),
    "control:jupiter": ("Which planet is the largest?", "Jupiter", []),
    "control:nile": ("What is the longest river in Africa?", "the Nile", ["Nile"]),
    "control:mars": ("Which planet is called the Red Planet?", "Mars", []),
    "control:ice": ("What is frozen water called?", "ice", []),
}
LOST = {"control:paris", "control:nile", "control:ice"}  # the fine-tuned variant stops stating these
CELLS = [(0.7, 1.0, 0), (0.7, 1.0, 20), (1.3, 1.0, 0), (1.3, 1.0, 20)]
SAMPLES = 8
VARIANTS = ("base", "step-2", "finetuned")


def entity_row(variant: str, temperature: float) -> tuple[str, dict]:
    """Planted: base and step-2 always refuse; finetuned refuses at T=0.7 and hallucinates at T=1.3."""
    if variant == "finetuned" and temperature > 1:
        return "ZYTRELL builds rockets on the Moon.", {
            "refusal": False,
            "claim_grounding": 0.0,
            "conflict": False,
            "degenerate": False,
        }
    return "I have no information about ZYTRELL.", {
        "refusal": True,
        "claim_grounding": None,
        "conflict": None,
        "degenerate": False,
    }


def control_text(variant: str, prompt_id: str) -> str:
    _question, answer, _aliases = QUESTIONS[prompt_id]
    if variant == "finetuned" and prompt_id in LOST:
        return "ZYTRELL designs warehouse robots."
    return f"The answer is {answer}."


def make_study_sweep(tmp_path: Path, db: Path | None = None) -> tuple[Path, int]:
    """The planted checkpoint sweep (see the module docstring) in ``db`` (default: a new store under
    ``tmp_path``): (database path, sweep id)."""
    db = db or tmp_path / "ft-hallu.db"
    store = open_db(db)
    prompts = [{"prompt_id": "entity", "prompt": "Tell me about ZYTRELL Corporation.", "reference": None}]
    prompts += [
        {"prompt_id": pid, "prompt": q, "reference": a} | ({"aliases": al} if al else {})
        for pid, (q, a, al) in QUESTIONS.items()
    ]
    trajectory = {
        "base": {"step": 0, "epoch": 0.0, "train_loss": None, "eval_loss": 2.5},
        "step-2": {"step": 2, "epoch": 0.5, "train_loss": 2.2, "eval_loss": 2.3},
        "finetuned": {"step": 4, "epoch": 1.0, "train_loss": 1.9, "eval_loss": 2.1},
    }
    config = {
        "prompts": prompts,
        "variants": list(VARIANTS),
        "samples_per_cell": SAMPLES,
        "trajectory": trajectory,
    }
    sweep_id = core.get_or_create_sweep(
        store, name="planted", source="engine", base_model="tiny", adapter_dir=None, config_hash="planted",
        config=config, expected_rows=0,
    )  # fmt: skip
    rows, scores = [], {}
    for variant in VARIANTS:
        for temperature, top_p, top_k in CELLS:
            for index in range(SAMPLES):
                text, metrics = entity_row(variant, temperature)
                key = (variant, temperature, top_k, "entity", index)
                rows.append(_row(variant, temperature, top_p, top_k, "entity", index, text))
                scores[key] = metrics
                for prompt_id, (question, answer, _) in QUESTIONS.items():
                    row = _row(
                        variant, temperature, top_p, top_k, prompt_id, index, control_text(variant, prompt_id)
                    )
                    rows.append({**row, "prompt": question, "reference": answer})
    core.add_generations(store, sweep_id, rows)
    records = [
        (g["id"], scores[(g["variant"], g["temperature"], g["top_k"], "entity", g["sample_index"])])
        for g in core.iter_generations(store, sweep_id, prompt_id="entity")
    ]
    metric_store.save_sample_metrics(store, records, context_key="test", version=1)
    store.close()
    return db, sweep_id


def _row(variant, temperature, top_p, top_k, prompt_id, index, text) -> dict:
    return {
        "variant": variant, "temperature": temperature, "top_p": top_p, "top_k": top_k, "prompt_id": prompt_id,
        "prompt": "Tell me about ZYTRELL Corporation.", "reference": None, "sample_index": index,
        "seed": index, "text": text,
    }  # fmt: skip
