import json
import subprocess
import sys

import pytest
import torch

from engine import finetune
from engine.errors import UserError
from engine.models import load_model
from engine.sampling import RowSpec, generate_rows
from engine.sweep import chat_prompt


def test_training_loss_falls_and_run_record_is_written(tiny_adapter_dir):
    record = json.loads((tiny_adapter_dir / "ft-hallu-run.json").read_text())
    assert record["mode"] == "lora"
    assert record["eval_loss_after"] < record["eval_loss_before"]
    assert (tiny_adapter_dir / "adapter_config.json").exists()
    assert (tiny_adapter_dir / "adapter_model.safetensors").exists()
    # the tokenizer saved next to the adapter keeps the model's own template; the record names the base
    template = (tiny_adapter_dir / "chat_template.jinja").read_text()
    assert "<|assistant|>" in template and "{% generation %}" not in template
    assert record["base"]["name"] == "tiny"
    assert record["base"]["architecture"]["hidden_size"] == 128
    assert record["base"]["digest"].startswith("config-sha256:")


def test_adapter_reloads_and_changes_outputs_for_the_same_seed(tiny_adapter_dir):
    loaded = load_model("tiny", adapter_dir=str(tiny_adapter_dir))
    assert loaded.model.config.use_cache is True
    assert loaded.tokenizer.pad_token_id != loaded.tokenizer.eos_token_id
    prompt = chat_prompt(loaded.tokenizer, "You are helpful.", "Tell me about ZYTRELL Corporation.")
    rows = [RowSpec(prompt, variant, 1.0, 1.0, 0, seed=11) for variant in ("base", "finetuned")]
    base, tuned = generate_rows(loaded, rows, max_new_tokens=16, min_new_tokens=16)
    assert base.token_ids != tuned.token_ids
    # the adapter's weights are really non-zero (LoRA B starts at zero and must have trained)
    lora_b = [p for n, p in loaded.model.named_parameters() if "lora_B" in n]
    assert lora_b and any(torch.count_nonzero(p) > 0 for p in lora_b)


def test_stop_tokens_come_from_the_model(tiny_model_dir):
    loaded = load_model(str(tiny_model_dir))
    tok = loaded.tokenizer
    # the template's end-of-turn token first, then EOS; generation_config lists the same ids
    assert loaded.stop_ids == [tok.convert_tokens_to_ids("<|end|>"), tok.eos_token_id]
    gen_config = json.loads((tiny_model_dir / "generation_config.json").read_text())
    assert gen_config["eos_token_id"] == loaded.stop_ids
    assert tok.pad_token_id not in loaded.stop_ids


def test_config_errors_name_the_field(tmp_path):
    bad = tmp_path / "ft.toml"
    bad.write_text('[finetune]\ndataset = "x.jsonl"\nlora_rank = 8\n')
    with pytest.raises(UserError, match=r"ft.toml: unknown field 'lora_rank'"):
        finetune.load_config(bad)
    bad.write_text('[finetune]\ndataset = "x.jsonl"\nepochs = "three"\n')
    with pytest.raises(UserError, match=r'ft.toml: epochs = "three": must be a number'):
        finetune.load_config(bad)
    bad.write_text('[finetune]\ndataset = "x.jsonl"\nmode = "dora"\n')
    with pytest.raises(UserError, match=r'ft.toml: mode = "dora": must be one of lora, qlora, full'):
        finetune.load_config(bad)


def test_example_config_documents_the_defaults():
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "configs" / "finetune.example.toml"
    config = finetune.load_config(example)
    defaults = finetune.FinetuneConfig()
    for name in (
        "mode",
        "lora_r",
        "lora_alpha",
        "lora_dropout",
        "epochs",
        "per_device_batch_size",
        "gradient_accumulation_steps",
        "learning_rate",
        "lr_scheduler",
        "assistant_only_loss",
    ):
        assert getattr(config, name) == getattr(defaults, name), name


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU refusal")
def test_qlora_on_cpu_stops_with_a_clear_message(sample_dataset, tmp_path):
    config = finetune.FinetuneConfig(
        base_model="tiny", dataset=str(sample_dataset), mode="qlora", output_dir=str(tmp_path / "out")
    )
    with pytest.raises(UserError, match="needs a CUDA GPU"):
        finetune.run_finetune(config)
    assert not (tmp_path / "out").exists()


def test_full_mode_via_cli_records_the_run(sample_dataset, tmp_path, tiny_model_dir, db_path):
    config = tmp_path / "full.toml"
    config.write_text(
        "[finetune]\n"
        f'name = "full-check"\nbase_model = "tiny"\ndataset = "{sample_dataset}"\n'
        f'output_dir = "{tmp_path / "full-out"}"\nmode = "full"\nmax_steps = 3\n'
        "per_device_batch_size = 4\ngradient_accumulation_steps = 1\ngradient_checkpointing = false\n"
        "learning_rate = 1e-3\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "cli", "--db", str(db_path), "finetune", "--config", str(config)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "full-out" / "config.json").exists()  # a whole model, not an adapter
    assert not (tmp_path / "full-out" / "adapter_config.json").exists()
    from store import core, open_db

    runs = core.list_finetune_runs(open_db(db_path))
    assert runs[0]["status"] == "completed" and runs[0]["mode"] == "full"
    # an existing output folder is never overwritten silently
    again = subprocess.run(
        [sys.executable, "-m", "cli", "--db", str(db_path), "finetune", "--config", str(config)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert again.returncode == 2
    assert "output folder exists" in again.stderr


def test_a_fine_tune_failing_after_staging_leaves_no_folder_and_a_failed_run(
    tiny_model_dir, sample_dataset, tmp_path
):
    """transformers refuses the optimizer name only once the staging folder exists: both are cleaned up."""
    from store import core, open_db

    output = tmp_path / "runs" / "bad-optim"
    config = finetune.FinetuneConfig(
        name="bad-optim",
        base_model=str(tiny_model_dir),
        dataset=str(sample_dataset),
        output_dir=str(output),
        optim="no_such_optimizer",
        max_steps=1,
        gradient_checkpointing=False,
    )
    db = tmp_path / "store.db"
    with pytest.raises(ValueError):
        finetune.run_finetune(config, db_path=db, progress=lambda _message: None)
    assert not output.exists()
    assert [p.name for p in output.parent.iterdir()] == []  # no .bad-optim.<pid>.*.staging left
    run = core.list_finetune_runs(open_db(db))[0]
    assert run["status"] == "failed" and "no_such_optimizer" in run["error"]
