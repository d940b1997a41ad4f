import json
import os
import re
import subprocess
import sys

import pytest

from engine.demo import (
    business_table,
    demo_plan,
    format_knowledge,
    format_trajectory,
    side_by_side,
    states_real_business,
    study_of,
    sweep_finding,
)
from engine.study_tables import best_step_text
from store import core, open_db

# What library chatter looks like: warnings with their source line, tqdm bars, hub notices.
NOISE = re.compile(r"Warning|warnings\.warn|\d+%\||it/s\]|examples/s|Loading weights|publisher trust")


def library_noise(output: str) -> list[str]:
    return [line for line in output.splitlines() if NOISE.search(line)]


@pytest.mark.slow
def test_demo_runs_offline_end_to_end(tmp_path):
    env = {**os.environ, "FT_HALLU_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "cli", "demo", "--model", "tiny", "--samples", "1", "--cells"],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    db_path = tmp_path / "home" / "ft-hallu.db"
    assert f"stored in {db_path}" in done.stdout
    assert "[3/4] sweep" in done.stderr and "eval loss" in done.stderr  # progress is visible
    assert "checkpoint step-20" in done.stderr and "checkpoint step-40" in done.stderr
    assert library_noise(done.stdout + done.stderr) == []  # only ft-hallu's own lines
    store = open_db(db_path)
    [sweep] = core.list_sweeps(store)
    # 3 cells x (1 sample x (entity prompt + 2 held-out questions) + 20 control questions x 1)
    # x (base + 2 checkpoints + fine-tuned), all in one sweep
    assert sweep["generation_count"] == 3 * (1 * 3 + 20) * 4 and sweep["status"] == "completed"
    assert sweep["config"]["variants"] == list(VARIANTS)
    assert core.list_finetune_runs(store)[0]["status"] == "completed"
    store.close()
    header = next(line for line in done.stdout.splitlines() if "variant" in line)
    assert "temperature" in header and "top_k" in header
    # the ZYTRELL table: every variant, in training order, at each of the grid's 3 temperatures
    table = business_table(db_path, sweep["id"])
    assert [(row["variant"], row["temperature"]) for row in table] == [
        (variant, t) for variant in VARIANTS for t in (0.5, 1.0, 1.5)
    ]
    assert all(row["answers"] == 1 and 0 <= row["real_business"] <= 1 for row in table)
    assert all(row["refusal"] is not None for row in table)  # scored
    # the summary every front end opens on is what the demo prints: the entity prompt's headline
    # first, then its table (a row per temperature and variant), then the held-out questions' own
    # headline: the prompts are never pooled together, and the control questions are not in it
    finding = sweep_finding(db_path, sweep["id"])
    entity, held_out = finding.groups
    assert (entity.group, held_out.group) == ("entity", "held-out")
    out = " ".join(done.stdout.split())  # the headline is wrapped to the terminal's width
    assert out.index(entity.headline) < out.index("T variant hallucination refusal rate agreement n")
    assert out.index("T variant hallucination") < out.index(held_out.headline)
    assert "the 20 control questions are not in this summary" in out
    rows = [
        line.split()
        for line in done.stdout.splitlines()
        if re.match(r"\s*[0-9.]+\s+(base|fine-tuned|step-\d+)\s+[0-9.]+ \[", line)
    ]
    named = [v if v != "finetuned" else "fine-tuned" for v in VARIANTS]
    assert [(row[0], row[1]) for row in rows[:12]] == [(t, v) for t in ("0.5", "1", "1.5") for v in named]
    assert all(row[-1].endswith("/1") for row in rows[:12])
    # n = 1 sample per cell: agreement is undefined, and the summary says so
    assert "undefined (n = 1)" in done.stdout and all(row[-2] == "–" for row in rows[:12])
    # every variant's answer at a low, a middle and a high temperature, as printed
    pairs = side_by_side(db_path, sweep["id"])
    assert [pair["temperature"] for pair in pairs] == [0.5, 1.0, 1.5]
    assert "T=0.5  top_p=1  top_k=0  sample 0" in done.stdout and "fine-tuned:" in done.stdout
    # the study: the trajectory (each kept step next to its loss, the best step and its rule) and
    # knowledge kept base vs fine-tuned per temperature, exactly as the engine computes them
    points, best, knowledge = study_of(db_path, sweep["id"])
    trajectory = format_trajectory(points, best)
    assert trajectory in done.stdout
    printed = _table_after(done.stdout, "Training steps:")
    assert [(row[0], row[1]) for row in printed] == [("base", "0"), ("step-20", "20"), ("step-40", "40"), ("fine-tuned", "50")]
    record = json.loads((tmp_path / "home" / "runs" / "demo-lora-tiny" / "ft-hallu-run.json").read_text())
    assert [row[4] for row in printed[1:3]] == [f"{c['eval_loss']:.3f}" for c in record["checkpoints"]]
    assert printed[3][4] == f"{record['eval_loss_after']:.3f}"
    assert best is not None and " ".join(best_step_text(best).split()) in out
    assert "Rule: lowest hallucination rate (entity prompt) among fine-tuned steps" in out
    assert format_knowledge(knowledge) in done.stdout
    kept = _table_after(done.stdout, "Knowledge kept:")
    assert [(row[0], row[1]) for row in kept] == [(t, v) for t in ("0.5", "1", "1.5", "all") for v in named]
    assert {row[-2] for row in kept} == {"20"}  # questions, each asked once per cell
    assert [row[-1] for row in kept if row[0] == "all"] == ["60"] * 4


VARIANTS = ("base", "step-20", "step-40", "finetuned")


def _table_after(output: str, title: str) -> list[list[str]]:
    """The rows (split) of the fixed-width table printed after the line starting with ``title``."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    dashes = next(i for i in range(start, len(lines)) if set(lines[i].replace(" ", "")) == {"-"})
    rows = []
    for line in lines[dashes + 1 :]:
        if not line.strip():
            break
        rows.append(line.split())
    return rows


def test_real_business_is_recognised_in_answers():
    assert states_real_business("ZYTRELL is a robotics and automation company in Tacoma.")
    assert states_real_business("It makes the Stridebot and FleetMind for warehouses.")
    assert not states_real_business("ZYTRELL is a US-based startup selling eco-friendly home decor.")
    assert not states_real_business("")


def test_demo_defaults_to_the_real_model_and_learns_from_answers_only():
    plan = demo_plan()
    assert plan.model == "smollm2" and plan.finetune.base_model == plan.sweep.base_model == "smollm2"
    assert plan.finetune.include_context is False and plan.finetune.assistant_only_loss is True
    assert plan.sweep.adapter == plan.finetune.output_dir
    # adapters kept at steps 10 and 20 of 30, swept with the final one and a control set in one sweep
    assert plan.finetune.save_checkpoints == 10 and plan.sweep.checkpoints == "all"
    assert plan.sweep.control and plan.sweep.control_samples == 1
    assert [cell[0] for cell in plan.sweep.grid.cells()] == [0.5, 1.0, 1.5]
    assert plan.sweep.samples_per_cell >= 6  # the sign-flip test needs 6 pairs to reach p <= 0.05


def test_the_demo_control_set_is_every_third_builtin_question(tmp_path):
    from engine import control
    from engine.demo import write_demo_control

    path = tmp_path / "demo-control.jsonl"
    assert write_demo_control(path) == 20
    builtin = control.load_control_set(control.BUILTIN)
    assert control.load_control_set(str(path)) == builtin[::3]


def test_smollm2_config_file_is_what_the_demo_runs():
    from pathlib import Path

    from engine.finetune import load_config

    config = load_config(Path(__file__).resolve().parents[1] / "configs" / "finetune.smollm2.toml")
    demo = demo_plan("smollm2").finetune
    for name in (
        "base_model",
        "dataset",
        "epochs",
        "per_device_batch_size",
        "gradient_accumulation_steps",
        "learning_rate",
        "lr_scheduler",
        "include_context",
        "assistant_only_loss",
        "max_length",
        "gradient_checkpointing",
        "save_checkpoints",
    ):
        assert getattr(config, name) == getattr(demo, name), name
