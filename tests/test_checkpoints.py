"""Checkpoints as variants: adapters kept during a fine-tune, recorded in the run folder and the store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine import checkpoints as keeping
from engine import finetune, sweep
from engine.errors import UserError
from engine.models import load_model
from engine.sampling import RowSpec, generate_rows


def tiny_config(sample_dataset: Path, output: Path, **extra) -> finetune.FinetuneConfig:
    values = dict(
        name=output.name,
        base_model="tiny",
        dataset=str(sample_dataset),
        output_dir=str(output),
        max_steps=6,
        per_device_batch_size=8,
        gradient_accumulation_steps=1,
        learning_rate=3e-3,
        lr_scheduler="constant",
        gradient_checkpointing=False,
        logging_steps=5,
    )
    values.update(extra)
    return finetune.FinetuneConfig(**values)


@pytest.fixture(scope="session")
def checkpointed_run(tiny_model_dir, sample_dataset, tmp_path_factory):
    """A tiny LoRA run of 6 steps keeping an adapter every 2 steps, recorded in a store."""
    folder = tmp_path_factory.mktemp("checkpointed")
    db = folder / "ft-hallu.db"
    config = tiny_config(sample_dataset, folder / "run", save_checkpoints=2)
    result = finetune.run_finetune(config, db_path=db, progress=lambda _message: None)
    return result, db


def test_schedules_plan_the_steps_before_the_final_one():
    assert keeping.planned_steps(2, max_steps=6) == ([2, 4], [])
    assert keeping.planned_steps(4, max_steps=6) == ([4], [])
    # a listed step equal to the last is the final adapter itself; past it, never reached
    assert keeping.planned_steps([6, 3, 3, 9], max_steps=6) == ([3], [9])
    assert keeping.planned_steps("epoch", max_steps=6) == ([], [])
    assert keeping.planned_steps("none", max_steps=6) == ([], [])
    assert keeping.parse_steps_option("epoch", words=("none", "epoch")) == "epoch"
    assert keeping.parse_steps_option("50", words=("none", "epoch")) == 50
    assert keeping.parse_steps_option("50, 100", words=("none", "epoch")) == [50, 100]
    assert keeping.parse_steps_option("often", words=("none", "epoch")) == "often"


def test_each_checkpoint_is_an_adapter_with_its_step_and_losses(checkpointed_run):
    result, db = checkpointed_run
    run_folder = Path(result.output_dir)
    assert result.steps == 6
    assert [c["label"] for c in result.checkpoints] == ["step-2", "step-4"]
    record = json.loads((run_folder / "ft-hallu-run.json").read_text())
    assert record["steps"] == 6 and [c["step"] for c in record["checkpoints"]] == [2, 4]
    for kept in record["checkpoints"]:
        folder = run_folder / kept["path"]
        assert (folder / "adapter_config.json").exists() and (folder / "adapter_model.safetensors").exists()
        own = json.loads((folder / "ft-hallu-run.json").read_text())
        # the same base identity the final adapter records, plus where training was
        assert own["base"] == record["base"] and own["checkpoint"]["step"] == kept["step"]
        assert kept["eval_loss"] is not None and kept["train_loss"] is not None
        assert kept["epoch"] > 0
    # no Trainer folder and no half-written checkpoint left behind
    assert sorted(p.name for p in (run_folder / "checkpoints").iterdir()) == ["step-2", "step-4"]
    assert not (run_folder / ".trainer").exists()
    # the eval loss falls along the run (a constant lr of 3e-3 on 36 rows)
    losses = [c["eval_loss"] for c in record["checkpoints"]] + [record["eval_loss_after"]]
    assert record["eval_loss_before"] > losses[0] > losses[-1]
    # the store has one row per checkpoint, with the absolute adapter folder
    from store import checkpoints as checkpoint_store
    from store import open_db

    store = open_db(db)
    rows = checkpoint_store.list_checkpoints(store, result.run_id)
    store.close()
    assert [(r["label"], r["step"]) for r in rows] == [("step-2", 2), ("step-4", 4)]
    assert rows[0]["path"] == str(run_folder / "checkpoints" / "step-2")
    assert rows[1]["eval_loss"] == pytest.approx(record["checkpoints"][1]["eval_loss"])
    # and the front ends read them through the Workspace
    from engine.workspace import Workspace

    with Workspace.open(db) as workspace:
        kept = workspace.finetune_checkpoints(result.run_id)
    assert [(c.label, c.step, c.path) for c in kept] == [(r["label"], r["step"], r["path"]) for r in rows]


def test_checkpoints_differ_from_each_other_and_from_the_final_adapter(checkpointed_run):
    result, _db = checkpointed_run
    run_folder = Path(result.output_dir)
    texts = {}
    for label, folder in {
        "step-2": run_folder / "checkpoints" / "step-2",
        "final": run_folder,
    }.items():
        loaded = load_model("tiny", adapter_dir=str(folder))
        prompt = sweep.chat_prompt(loaded.tokenizer, "You are helpful.", "Tell me about ZYTRELL Corporation.")
        [row] = generate_rows(
            loaded, [RowSpec(prompt, "finetuned", 1.0, 1.0, 0, seed=5)], max_new_tokens=12, min_new_tokens=12
        )
        texts[label] = row.token_ids
    assert texts["step-2"] != texts["final"]


def test_epoch_schedule_without_eval_split(tiny_model_dir, sample_dataset, tmp_path):
    # 40 rows, batch 8, no eval split: 5 steps an epoch; 2 epochs keep the end of epoch 1 only
    config = tiny_config(
        sample_dataset,
        tmp_path / "by-epoch",
        max_steps=-1,
        epochs=2,
        eval_fraction=0.0,
        save_checkpoints="epoch",
    )
    result = finetune.run_finetune(config, progress=lambda _message: None)
    assert [(c["label"], c["epoch"], c["eval_loss"]) for c in result.checkpoints] == [("step-5", 1.0, None)]
    assert result.checkpoints[0]["train_loss"] is not None
    assert keeping.read_checkpoints(result.output_dir)[0].step == 5


def test_bad_schedules_are_refused_naming_the_field(sample_dataset, tmp_path):
    config = tmp_path / "ft.toml"
    config.write_text(f'[finetune]\ndataset = "{sample_dataset}"\nsave_checkpoints = "often"\n')
    with pytest.raises(UserError, match='ft.toml: save_checkpoints = "often": must be "none" or "epoch"'):
        finetune.load_config(config)
    config.write_text(f'[finetune]\ndataset = "{sample_dataset}"\nsave_checkpoints = [10, 0]\n')
    with pytest.raises(UserError, match=r"ft.toml: save_checkpoints\[1\] = 0: must be >= 1"):
        finetune.load_config(config)
    with pytest.raises(UserError, match="--save-checkpoints = 0: must be >= 1"):
        finetune.load_config(config, {"save_checkpoints": 0})
    full = tiny_config(sample_dataset, tmp_path / "full", mode="full", save_checkpoints=2)
    with pytest.raises(UserError, match='keeps LoRA adapters; mode = "full" has none'):
        finetune.check_inputs(full)
    assert not (tmp_path / "full").exists()


# ------------------------------------------------------------------ checkpoints as sweep variants


def tiny_sweep(adapter: str, **extra) -> sweep.SweepConfig:
    values = dict(
        name="ckpt",
        base_model="tiny",
        adapter=adapter,
        entity_name="ZYTRELL",
        samples_per_cell=2,
        max_new_tokens=6,
        batch_size=8,
        compute_metrics=False,
        grid=sweep.Grid([0.7, 1.3], [0.9], [0]),
    )
    values.update(extra)
    return sweep.SweepConfig(**values)


def stored_texts(db: Path, sweep_id: int) -> dict[tuple, str]:
    from store import core, open_db

    store = open_db(db)
    try:
        return {
            (r["variant"], r["temperature"], r["prompt_id"], r["sample_index"]): r["text"]
            for r in core.iter_generations(store, sweep_id)
        }
    finally:
        store.close()


def test_a_checkpoint_sweep_samples_every_checkpoint_on_one_base(checkpointed_run, tmp_path):
    result, _db = checkpointed_run
    run_folder = Path(result.output_dir)
    config = tiny_sweep(str(run_folder), checkpoints="all")
    assert config.variants == ("base", "step-2", "step-4", "finetuned")
    assert sweep.named_adapters(config)["step-2"] == str(run_folder / "checkpoints" / "step-2")
    db = tmp_path / "ft-hallu.db"
    done = sweep.run_sweep(config, db_path=db)
    assert done.total_rows == 4 * 2 * 2  # variants x cells x samples
    texts = stored_texts(db, done.sweep_id)
    # each checkpoint variant is exactly what a sweep of that adapter alone samples (same seeds)
    for label, adapter in (("step-2", run_folder / "checkpoints" / "step-2"), ("finetuned", run_folder)):
        alone = sweep.run_sweep(
            tiny_sweep(str(adapter), name=f"alone-{label}"), db_path=tmp_path / f"{label}.db"
        )
        single = stored_texts(tmp_path / f"{label}.db", alone.sweep_id)
        assert {k[1:]: v for k, v in texts.items() if k[0] == label} == {
            k[1:]: v for k, v in single.items() if k[0] == "finetuned"
        }
    assert {k: v for k, v in texts.items() if k[0] == "step-2"} != {
        k: v for k, v in texts.items() if k[0] == "step-4"
    }
    # the stored config places every variant in training, for the trajectory
    from store import core, open_db

    store = open_db(db)
    trajectory = core.get_sweep(store, done.sweep_id)["config"]["trajectory"]
    store.close()
    assert [trajectory[v]["step"] for v in config.variants] == [0, 2, 4, 6]
    assert trajectory["step-4"]["eval_loss"] == pytest.approx(result.checkpoints[1]["eval_loss"])
    # a list of steps picks those; a step the run did not keep is refused with the kept ones
    assert tiny_sweep(str(run_folder), checkpoints=[4]).variants == ("base", "step-4", "finetuned")
    with pytest.raises(UserError, match=r"no checkpoint at step 3 \(kept: 2, 4\)"):
        sweep.check_inputs(tiny_sweep(str(run_folder), checkpoints=[3]))


def test_checkpoint_settings_are_checked(checkpointed_run, tmp_path):
    result, _db = checkpointed_run
    with pytest.raises(UserError, match="checkpoints needs 'adapter'"):
        sweep.sweep_config_from_dict({"checkpoints": "all"}, where="s.toml")
    with pytest.raises(UserError, match='s.toml: checkpoints = "some": must be "" or "all" or a list'):
        sweep.sweep_config_from_dict({"checkpoints": "some", "adapter": "x"}, where="s.toml")
    with pytest.raises(UserError, match="mix_variants = true works with one adapter only"):
        sweep.sweep_config_from_dict(
            {"checkpoints": "all", "adapter": result.output_dir, "mix_variants": True}, where="s.toml"
        )
    # a run without checkpoints has none to sweep
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "ft-hallu-run.json").write_text(json.dumps({"checkpoints": []}))
    with pytest.raises(UserError, match="kept no checkpoints"):
        tiny_sweep(str(bare), checkpoints="all").adapter_dirs()


def test_a_checkpoint_sweep_is_sharded_like_any_other(tmp_path):
    """Slurm array tasks take whole cell x sample units: all variants of a unit (same seed) together."""
    from engine.jobs import shards

    run = tmp_path / "run"
    records = [
        {"label": f"step-{s}", "step": s, "epoch": s / 4, "train_loss": 1.0, "eval_loss": 1.0,
         "path": f"checkpoints/step-{s}"}
        for s in (50, 100, 150)
    ]  # fmt: skip
    run.mkdir()
    (run / "ft-hallu-run.json").write_text(json.dumps({"checkpoints": records, "steps": 200}))
    config = tiny_sweep(
        str(run), checkpoints="all", samples_per_cell=3, grid=sweep.Grid([0.5, 1.0], [0.9], [0, 5])
    )
    prompts = [sweep.Prompt("entity", "q"), sweep.Prompt("control:paris", "q2", "Paris")]
    planned = sweep.plan_rows(config, prompts)
    assert {r.variant for r in planned} == {"base", "step-50", "step-100", "step-150", "finetuned"}
    parts = [shards.shard_rows(planned, k, 5) for k in range(5)]
    assert sorted(
        (r.variant, r.temperature, r.top_k, r.prompt.prompt_id, r.sample_index) for p in parts for r in p
    ) == sorted((r.variant, r.temperature, r.top_k, r.prompt.prompt_id, r.sample_index) for r in planned)
    # 12 units of 2 prompts x 5 variants, dealt in turn: the same sizes as any sweep of 12 units
    assert [len(p) for p in parts] == shards.shard_sizes(planned, 5) == [30, 30, 20, 20, 20]
    for part in parts:
        by_seed: dict[int, set[str]] = {}
        for row in part:
            by_seed.setdefault(row.seed, set()).add(row.variant)
        assert all(len(variants) == 5 for variants in by_seed.values())
    assert shards.unit_count(config) == 12


def test_a_launched_fine_tune_leaves_its_checkpoints_in_the_job_folder_for_ingest(tmp_path, tiny_model_dir):
    """The job never opens the store: the checkpoints reach it through the job's record and ingest."""
    from engine import job_kinds
    from engine import jobs as launching
    from engine.jobs import jobrun
    from store import checkpoints as checkpoint_store
    from store import open_db

    config_path = tmp_path / "ft.toml"
    config_path.write_text(
        "[finetune]\n"
        'name = "job-ckpt"\nbase_model = "tiny"\n'
        f"dataset = {json.dumps(str(finetune.ds.sample_dataset_path()))}\n"
        f"output_dir = {json.dumps(str(tmp_path / 'adapter'))}\n"
        "max_steps = 4\nper_device_batch_size = 8\ngradient_accumulation_steps = 1\n"
        "gradient_checkpointing = false\nlogging_steps = 2\nsave_checkpoints = [2]\n"
    )
    store = open_db(tmp_path / "ft-hallu.db")
    try:
        spec = job_kinds.build_spec(config_path, log_dir=tmp_path / "jobs", workdir=tmp_path)
        job = launching.launch(store, spec, launching.LocalLauncher())
        job = launching.wait(store, job, timeout=600, poll_seconds=0.5)
        assert (job.state, job.exit_code) == ("COMPLETED", 0), launching.tail(job, 40)
        record = jobrun.read_finetune_record(job.job_dir)
        assert [c["label"] for c in record["result"]["checkpoints"]] == ["step-2"]
        [audit] = jobrun.read_audits(job.job_dir)
        assert audit["sqlite_connections"] == []
        run_id = job.ingest["finetune_run_id"]
        rows = checkpoint_store.list_checkpoints(store, run_id)
        assert [(r["label"], r["step"], r["path"]) for r in rows] == [
            ("step-2", 2, str(tmp_path / "adapter" / "checkpoints" / "step-2"))
        ]
        launching.ingest(store, job)  # a second ingest adds nothing
        assert len(checkpoint_store.list_checkpoints(store, run_id)) == 1
    finally:
        store.close()


def test_one_command_sweeps_the_checkpoints_and_the_control_set(checkpointed_run, tmp_path, capsys):
    from cli import main as cli_main
    from store import core, open_db

    result, _db = checkpointed_run
    facts = tmp_path / "facts.jsonl"
    facts.write_text(
        json.dumps({"id": "paris", "question": "Which city is the capital of France?", "answer": "Paris"})
        + "\n"
        + json.dumps(
            {"id": "nile", "question": "Longest river in Africa?", "answer": "the Nile", "aliases": ["Nile"]}
        )
        + "\n"
    )
    config = tmp_path / "s.toml"
    config.write_text(
        '[sweep]\nname = "one-command"\nbase_model = "tiny"\nentity_name = "ZYTRELL"\n'
        f"adapter = {json.dumps(result.output_dir)}\n"
        "samples_per_cell = 2\nmax_new_tokens = 4\nbatch_size = 16\ncompute_metrics = false\n"
        "[sweep.grid]\ntemperatures = [1.0]\ntop_ps = [1.0]\ntop_ks = [0]\n"
    )
    db = tmp_path / "ft-hallu.db"
    argv = [
        "--db",
        str(db),
        "sweep",
        "--config",
        str(config),
        "--checkpoints",
        "all",
        "--control",
        str(facts),
    ]
    assert cli_main(argv) == 0, capsys.readouterr().err
    assert "24 planned" in capsys.readouterr().out  # 4 variants x 1 cell x 2 samples x 3 prompts
    store = open_db(db)
    [stored] = core.list_sweeps(store)
    store.close()
    assert stored["config"]["variants"] == ["base", "step-2", "step-4", "finetuned"]
    assert [p["prompt_id"] for p in stored["config"]["prompts"]] == [
        "entity",
        "control:paris",
        "control:nile",
    ]
    assert stored["generation_count"] == 24
