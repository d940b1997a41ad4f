import os
import re
import subprocess
import sys

import pytest

from engine.demo import business_table, demo_plan, side_by_side, states_real_business, sweep_finding
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
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    db_path = tmp_path / "home" / "ft-hallu.db"
    assert f"stored in {db_path}" in done.stdout
    assert "[3/4] sweep" in done.stderr and "eval loss" in done.stderr  # progress is visible
    assert library_noise(done.stdout + done.stderr) == []  # only ft-hallu's own lines
    store = open_db(db_path)
    [sweep] = core.list_sweeps(store)
    # 36 cells x 1 sample x (entity prompt + 2 held-out questions) x (base + fine-tuned)
    assert sweep["generation_count"] == 36 * 3 * 2 and sweep["status"] == "completed"
    assert core.list_finetune_runs(store)[0]["status"] == "completed"
    header = next(line for line in done.stdout.splitlines() if "variant" in line)
    assert "temperature" in header and "top_k" in header
    # the ZYTRELL table: both variants at each of the grid's 4 temperatures, 9 answers each
    table = business_table(db_path, sweep["id"])
    assert [(row["variant"], row["temperature"]) for row in table] == [
        (variant, t) for variant in ("base", "finetuned") for t in (0.5, 1.0, 1.5, 2.0)
    ]
    assert all(row["answers"] == 9 and 0 <= row["real_business"] <= 1 for row in table)
    assert all(row["refusal"] is not None for row in table)  # scored
    # the summary every front end opens on is what the demo prints: the entity prompt's headline
    # first, then its table (a row per temperature and variant, n = 9 answers each), then the
    # held-out questions' own headline: the prompts are never pooled together
    finding = sweep_finding(db_path, sweep["id"])
    entity, held_out = finding.groups
    assert (entity.group, held_out.group) == ("entity", "held-out")
    out = " ".join(done.stdout.split())  # the headline is wrapped to the terminal's width
    assert out.index(entity.headline) < out.index("T variant hallucination refusal rate agreement n")
    assert out.index("T variant hallucination") < out.index(held_out.headline)
    rows = [
        line.split()
        for line in done.stdout.splitlines()
        if re.match(r"\s*[0-9.]+\s+(base|fine-tuned)\s", line)
    ]
    assert [(row[0], row[1]) for row in rows[:8]] == [
        (t, v) for t in ("0.5", "1", "1.5", "2") for v in ("base", "fine-tuned")
    ]
    assert all(row[-1].endswith("/9") for row in rows[:8])
    # n = 1 sample per cell: agreement is undefined, and the summary says so
    assert "undefined (n = 1)" in done.stdout and all(row[-2] == "–" for row in rows[:8])
    # base next to fine-tuned at a low, a middle and a high temperature, as printed
    pairs = side_by_side(db_path, sweep["id"])
    assert [pair["temperature"] for pair in pairs] == [0.5, 1.0, 2.0]
    assert "T=0.5  top_p=0.6  top_k=30  sample 0" in done.stdout and "fine-tuned:" in done.stdout


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
    assert len(plan.sweep.grid.cells()) == 36


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
    ):
        assert getattr(config, name) == getattr(demo, name), name
