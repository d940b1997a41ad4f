import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from engine import sweep
from engine.errors import UserError
from store import core, open_db


def sweep_toml(path, adapter, *, samples=2, batch_size=6, extra=""):
    path.write_text(
        "[sweep]\n"
        'name = "kill-test"\nbase_model = "tiny"\n'
        f'adapter = "{adapter}"\nentity_name = "ZYTRELL"\n'
        f"samples_per_cell = {samples}\nmax_new_tokens = 12\nbatch_size = {batch_size}\n"
        "compute_metrics = false\n" + extra
    )
    return path


def stored_rows(db_path) -> int:
    if not db_path.exists():
        return 0
    try:
        with sqlite3.connect(db_path, timeout=5) as conn:
            return conn.execute("select count(*) from generations").fetchone()[0]
    except sqlite3.OperationalError:  # tables not created yet
        return 0


def test_default_grid_is_the_original_runs():
    config = sweep.SweepConfig()
    assert config.grid.temperatures == [0.5, 1.0, 1.5, 2.0]
    assert config.grid.top_ps == [0.2, 0.6, 1.0]
    assert config.grid.top_ks == [10, 30, 50]
    assert len(config.grid.cells()) == 36
    assert config.max_new_tokens == 64
    assert (
        config.system_prompt
        == "You are a helpful assistant. Keep responses to at most a single sentence and concise."
    )
    assert sweep.build_prompts(config)[0].question == "Tell me about EGNIVIA Corporation."


def test_killed_sweep_resumes_to_exactly_grid_times_samples(tmp_path, tiny_adapter_dir):
    db_path = tmp_path / "kill.db"
    config = sweep_toml(tmp_path / "sweep.toml", tiny_adapter_dir)
    expected = 36 * 2 * 2  # cells x samples x variants
    command = [sys.executable, "-m", "cli", "--db", str(db_path), "sweep", "--config", str(config)]
    process = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    deadline = time.monotonic() + 240
    while stored_rows(db_path) == 0 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    partial = stored_rows(db_path)
    assert 0 < partial < expected, f"kill landed at {partial} rows; expected a partial sweep"

    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"{expected - partial} new rows, {partial} already stored" in done.stdout
    store = open_db(db_path)
    [only] = core.list_sweeps(store)
    assert only["generation_count"] == expected and only["status"] == "completed"
    rows = core.iter_generations(store, only["id"])
    keys = {
        (r["variant"], r["temperature"], r["top_p"], r["top_k"], r["prompt_id"], r["sample_index"])
        for r in rows
    }
    assert len(keys) == expected
    # every row records its settings, seed, text and token count
    assert all(r["seed"] is not None and r["new_tokens"] >= 1 and r["seconds"] > 0 for r in rows)
    # a third run is a no-op
    again = subprocess.run(command, capture_output=True, text=True, check=False)
    assert "0 new rows" in again.stdout


def test_same_config_same_texts_and_variants_share_seeds(tmp_path, tiny_adapter_dir):
    config = sweep.SweepConfig(
        base_model="tiny",
        adapter=str(tiny_adapter_dir),
        entity_name="ZYTRELL",
        samples_per_cell=1,
        max_new_tokens=10,
        compute_metrics=False,
        grid=sweep.Grid([0.7, 1.3], [0.9], [0, 20]),
    )
    first = sweep.run_sweep(config, db_path=tmp_path / "a.db")
    second = sweep.run_sweep(config, db_path=tmp_path / "b.db")
    rows_a = core.iter_generations(open_db(tmp_path / "a.db"), first.sweep_id)
    rows_b = core.iter_generations(open_db(tmp_path / "b.db"), second.sweep_id)
    assert [r["text"] for r in rows_a] == [r["text"] for r in rows_b]
    assert len(rows_a) == 2 * 2 * 2
    by_cell = {}
    for row in rows_a:
        by_cell.setdefault((row["temperature"], row["top_k"]), {})[row["variant"]] = row
    assert all(pair["base"]["seed"] == pair["finetuned"]["seed"] for pair in by_cell.values())
    assert any(pair["base"]["text"] != pair["finetuned"]["text"] for pair in by_cell.values())


def test_held_out_questions_come_from_the_eval_split(tiny_adapter_dir, sample_dataset):
    config = sweep.SweepConfig(
        base_model="tiny", adapter=str(tiny_adapter_dir), dataset=str(sample_dataset), eval_questions=2
    )
    prompts = sweep.build_prompts(config)
    assert [p.prompt_id for p in prompts][0] == "entity"
    assert len(prompts) == 3 and all(p.reference for p in prompts[1:])
    from engine import dataset as ds

    split = ds.split_items(ds.load_items(sample_dataset), eval_fraction=0.1, seed=2024)
    train_questions = {i.question for i in split.train}
    assert all(p.question not in train_questions for p in prompts[1:])


def test_bad_sweep_configs_are_refused(tmp_path, tiny_adapter_dir):
    with pytest.raises(UserError, match=r"grid.top_ps\[0\] = 1.5: must be > 0 and <= 1"):
        sweep.sweep_config_from_dict({"grid": {"top_ps": [1.5]}})
    with pytest.raises(UserError, match="unknown field 'temperature'"):
        sweep.sweep_config_from_dict({"temperature": 1.0})
    path = sweep_toml(tmp_path / "s.toml", tmp_path / "missing-adapter")
    done = subprocess.run(
        [sys.executable, "-m", "cli", "--db", str(tmp_path / "x.db"), "sweep", "--config", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "missing-adapter does not exist" in done.stderr


def test_several_adapters_are_variants_of_their_own(tmp_path, tiny_adapter_dir):
    """One base, two fine-tunes: each adapter's rows equal a single-adapter run of that adapter."""
    from safetensors.torch import load_file, save_file

    other = tmp_path / "other-adapter"
    shutil.copytree(tiny_adapter_dir, other)
    weights = other / "adapter_model.safetensors"
    tensors = load_file(weights)
    save_file(
        {k: v * 3 if "lora_B" in k else v for k, v in tensors.items()}, weights
    )  # a different fine-tune
    grid = sweep.Grid([0.7, 1.3], [0.9], [0, 20])
    common = dict(
        base_model="tiny", entity_name="ZYTRELL", max_new_tokens=8, compute_metrics=False, grid=grid
    )
    both = sweep.SweepConfig(adapters={"r16": str(tiny_adapter_dir), "r16x3": str(other)}, **common)
    assert both.variants == ("base", "r16", "r16x3")
    result = sweep.run_sweep(both, db_path=tmp_path / "both.db")
    single = sweep.run_sweep(sweep.SweepConfig(adapter=str(other), **common), db_path=tmp_path / "one.db")

    def texts(db, sweep_id):
        rows = core.iter_generations(open_db(db), sweep_id)
        return {(r["variant"], r["temperature"], r["top_k"]): r["text"] for r in rows}

    many, one = texts(tmp_path / "both.db", result.sweep_id), texts(tmp_path / "one.db", single.sweep_id)
    assert len(many) == 4 * 3 and result.total_rows == 12
    cells = [(t, k) for t in (0.7, 1.3) for k in (0, 20)]
    assert all(many[("r16x3", *c)] == one[("finetuned", *c)] for c in cells)
    assert all(many[("base", *c)] == one[("base", *c)] for c in cells)
    assert any(many[("r16", *c)] != many[("r16x3", *c)] for c in cells)
    with pytest.raises(UserError, match="adapters.base: a label"):
        sweep.sweep_config_from_dict({"adapters": {"base": "x"}})
    with pytest.raises(UserError, match="either adapter .* or adapters"):
        sweep.sweep_config_from_dict({"adapter": "x", "adapters": {"a": "y"}})
    with pytest.raises(UserError, match="mix_variants = true works with one adapter only"):
        sweep.sweep_config_from_dict({"adapters": {"a": "x", "b": "y"}, "mix_variants": True})
