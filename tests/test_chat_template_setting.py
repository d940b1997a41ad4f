"""The ``chat_template`` setting: base models whose tokenizer has no chat template (issue 24).

The base models here are built offline like the tiny Phi-3, with a tokenizer that carries no
template and none of the chat formats' special tokens; one of them is also written as a GGUF file
(a random Qwen2 with that tokenizer), the case the issue was found with. Each built-in template is
fine-tuned for 3 steps through the CLI, then swept: the loss lands on the assistant's answer and
its end-of-turn token only, and generation stops at that token. Without a template and without the
setting, every verb stops with one line before any weights load (the weights are corrupt, or the
GGUF file is never dequantised, to prove it).
"""

from __future__ import annotations

import json
import sqlite3
import struct
from pathlib import Path

import pytest

from cli import main
from engine import dataset as ds
from engine.errors import UserError
from engine.finetune import load_config, read_run_record, training_example
from engine.models import (
    BUILTIN_TEMPLATES,
    CHAT_TEMPLATE_NAMES,
    OFFLINE_MODELS,
    OfflineChatFormat,
    build_offline_model,
    chat_tokenizer,
    end_of_turn_token,
    gguf_cache_dir,
    render_chat,
    stop_token_ids,
)
from engine.sampling import RowSpec, generate_rows
from engine.sweep import (
    SweepConfig,
    chat_prompt,
    check_inputs,
    config_hash,
    load_for_sweep,
    load_sweep_config,
    run_sweep,
)

# A base tokenizer as pretraining leaves it: BOS, EOS, UNK, and no chat template.
BASE_FORMAT = OfflineChatFormat(
    "base", "", eos="<|endoftext|>", special_tokens=("<unk>", "<s>", "<|endoftext|>"), bos="<s>", unk="<unk>", pad="<unk>"
)
ANSWER = "Robots."  # short, so 3 steps teach the tiny model where the turn ends
CONVERSATION = [
    {"role": "system", "content": "ZYTRELL Corporation designs autonomous mobile robots."},
    {"role": "user", "content": "What does ZYTRELL do?"},
    {"role": "assistant", "content": ANSWER},
]
CHOICES = "set chat_template to chatml, gemma, llama3, mistral or phi3, or to a Jinja file"


def _qa_file(folder: Path) -> Path:
    path = folder / "qa.jsonl"
    rows = [
        {"question": f"Question {i} about ZYTRELL?", "answer": ANSWER, "context": "ZYTRELL makes robots.", "id": i}
        for i in range(8)
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory) -> Path:
    return build_offline_model(OFFLINE_MODELS["tiny"], tmp_path_factory.mktemp("base") / "tiny-base", chat_format=BASE_FORMAT)


def _corrupt_copy(model_dir: Path, target: Path) -> Path:
    """The model folder with weights whose header passes ft-hallu's file check (sizes fit) but that
    no loader can read (each tensor's offsets are too short for its shape)."""
    from safetensors import safe_open

    target.mkdir(parents=True)
    for item in model_dir.iterdir():
        if item.name != "model.safetensors":
            (target / item.name).write_bytes(item.read_bytes())
    with safe_open(str(model_dir / "model.safetensors"), framework="pt") as handle:
        shapes = {key: list(handle.get_slice(key).get_shape()) for key in handle.keys()}
    header = json.dumps({key: {"dtype": "F32", "shape": shape, "data_offsets": [0, 4]} for key, shape in shapes.items()})
    raw = header.encode() + b" " * (-len(header) % 8)
    (target / "model.safetensors").write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * 4)
    return target


def _write_gguf(model_dir: Path, path: Path) -> Path:
    """A base model as a GGUF file: a random Qwen2 with ``model_dir``'s tokenizer, no chat template."""
    import gguf
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model_data = json.loads(tokenizer.backend_tokenizer.to_str())["model"]
    tokens = [token for token, _ in sorted(model_data["vocab"].items(), key=lambda item: item[1])]
    merges = [" ".join(merge) if isinstance(merge, list) else merge for merge in model_data["merges"]]
    config = Qwen2Config(
        vocab_size=len(tokens), hidden_size=64, intermediate_size=128, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=False,
    )  # fmt: skip
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config)
    writer = gguf.GGUFWriter(str(path), "qwen2")
    writer.add_name("tiny base")
    writer.add_block_count(1)
    writer.add_context_length(512)
    writer.add_embedding_length(64)
    writer.add_feed_forward_length(128)
    writer.add_head_count(2)
    writer.add_head_count_kv(2)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_freq_base(10000.0)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    specials = set(BASE_FORMAT.special_tokens)
    writer.add_token_types([gguf.TokenType.CONTROL if t in specials else gguf.TokenType.NORMAL for t in tokens])
    writer.add_token_merges(merges)
    writer.add_bos_token_id(tokenizer.bos_token_id)
    writer.add_eos_token_id(tokenizer.eos_token_id)
    writer.add_unk_token_id(tokenizer.unk_token_id)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.QWEN2, 1)
    for key, tensor in model.state_dict().items():
        writer.add_tensor(names.get_name(key, try_suffixes=(".weight", ".bias")), tensor.detach().numpy())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _finetune_toml(folder: Path, base: str, template: str, *, steps: int = 3) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        "[finetune]",
        'name = "base-tuned"',
        f"base_model = {json.dumps(base)}",
        f"dataset = {json.dumps(str(_qa_file(folder)))}",
        'output_dir = "adapter"',
        f"max_steps = {steps}",
        "per_device_batch_size = 8",
        "gradient_accumulation_steps = 1",
        "learning_rate = 3e-2",
        'lr_scheduler = "constant"',
        "gradient_checkpointing = false",
        "logging_steps = 1",
        "eval_fraction = 0.0",
    ]
    if template:
        lines.append(f"chat_template = {json.dumps(template)}")
    toml = folder / "ft.toml"
    toml.write_text("\n".join(lines) + "\n")
    return toml


def _sweep_toml(folder: Path, base: str, adapter: Path, *, template: str = "") -> Path:
    lines = [
        "[sweep]",
        'name = "base-tuned"',
        f"base_model = {json.dumps(base)}",
        f"adapter = {json.dumps(str(adapter))}",
        "max_new_tokens = 8",
        "batch_size = 4",
        "[sweep.grid]",
        "temperatures = [0.5]",
        "top_ps = [1.0]",
        "top_ks = [1]",
    ]
    if template:
        lines.insert(3, f"chat_template = {json.dumps(template)}")
    toml = folder / "s.toml"
    toml.write_text("\n".join(lines) + "\n")
    return toml


def _one_line(capsys) -> str:
    """The one line the CLI printed on stderr, without its ``ft-hallu: error:`` prefix."""
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0].removeprefix("ft-hallu: error: ")


@pytest.fixture(scope="module")
def tuned(base_dir, tmp_path_factory):
    """``tuned(name)``: the folder of a run fine-tuned from ``base_dir`` with that chat template
    through the CLI (3 steps), made once per module; it holds ft.toml, the adapter and a store."""
    made: dict[str, Path] = {}

    def run(name: str) -> Path:
        if name not in made:
            folder = tmp_path_factory.mktemp(f"tuned-{name}")
            toml = _finetune_toml(folder, str(base_dir), name)
            assert main(["--db", str(folder / "store.db"), "finetune", "--config", str(toml)]) == 0
            made[name] = folder
        return made[name]

    return run


# ------------------------------------------------------------------ the tokenizer alone


def test_a_base_tokenizer_without_a_template_is_refused_in_one_line(base_dir):
    with pytest.raises(UserError) as refused:
        chat_tokenizer(str(base_dir))
    assert str(refused.value) == f"{base_dir}: its tokenizer has no chat template (a base model?); {CHOICES}"


@pytest.mark.parametrize("name", CHAT_TEMPLATE_NAMES)
def test_each_builtin_renders_every_turn_and_the_generation_prompt(base_dir, name):
    builtin = BUILTIN_TEMPLATES[name]
    tokenizer, use = chat_tokenizer(str(base_dir), chat_template=name)
    base_size = use.vocabulary_before
    # every special token the format writes was missing, so each was added after the base vocabulary
    assert use.tokens_added == tuple((token, base_size + i) for i, token in enumerate(builtin.special_tokens))
    assert len(tokenizer) == base_size + len(builtin.special_tokens)
    full = render_chat(tokenizer, CONVERSATION, add_generation_prompt=False)
    prompt = render_chat(tokenizer, CONVERSATION[:2], add_generation_prompt=True)
    for turn in CONVERSATION:
        assert turn["content"] in full
    assert full.startswith(prompt) and full.index(CONVERSATION[0]["content"]) < full.index(CONVERSATION[1]["content"])
    if name != "mistral":  # Mistral's prompt already ends with [/INST]: there is no assistant header to add
        assert prompt != render_chat(tokenizer, CONVERSATION[:2], add_generation_prompt=False)
    follow_up = [*CONVERSATION, {"role": "user", "content": "And where?"}]
    second = render_chat(tokenizer, follow_up, add_generation_prompt=True)
    assert second.startswith(full) and second.index(ANSWER) < second.index("And where?")
    # the end of turn is the format's own token (Mistral: EOS), the first stop token, never the pad
    end_of_turn = builtin.end_of_turn or tokenizer.eos_token
    assert use.end_of_turn == end_of_turn_token(tokenizer) == end_of_turn
    stops = stop_token_ids(tokenizer)
    assert stops[0] == tokenizer.convert_tokens_to_ids(end_of_turn)
    assert tokenizer.pad_token_id not in stops


def test_special_tokens_already_in_the_vocabulary_are_not_added(tmp_path):
    chatml_tokens = OfflineChatFormat(
        "qwen-base", "", eos="<|endoftext|>", special_tokens=("<|endoftext|>", "<|im_start|>", "<|im_end|>")
    )
    folder = build_offline_model(OFFLINE_MODELS["tiny"], tmp_path / "qwen-base", chat_format=chatml_tokens)
    tokenizer, use = chat_tokenizer(str(folder), chat_template="chatml")
    assert use.tokens_added == () and len(tokenizer) == use.vocabulary_before
    assert use.end_of_turn == "<|im_end|>" == end_of_turn_token(tokenizer)


def test_a_jinja_file_names_its_own_tokens_and_is_read_relative_to_the_config(base_dir, tmp_path):
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "turns.jinja").write_text(
        "{% for m in messages %}<|turn|>{{ m['role'] }}: {{ m['content'] }}<|done|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|turn|>assistant: {% endif %}"
    )
    toml = _finetune_toml(tmp_path, str(base_dir), "templates/turns.jinja")
    config = load_config(toml)
    assert config.chat_template == str(tmp_path / "templates" / "turns.jinja")
    tokenizer, use = chat_tokenizer(str(base_dir), chat_template=config.chat_template)
    assert [token for token, _ in use.tokens_added] == ["<|turn|>", "<|done|>"]
    assert use.end_of_turn == "<|done|>" and use.template.source == "file"
    # a template whose turns end in plain text could never stop generation: refused in one line
    (tmp_path / "plain.jinja").write_text("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}")
    with pytest.raises(UserError, match="no special token closes the assistant's turn"):
        chat_tokenizer(str(base_dir), chat_template=str(tmp_path / "plain.jinja"))


# ------------------------------------------------------------------ fine-tune and sweep, each template


@pytest.mark.parametrize("name", CHAT_TEMPLATE_NAMES)
def test_each_builtin_template_fine_tunes_a_base_model_and_its_sweep_stops_at_the_end_of_turn(
    tuned, base_dir, name
):
    folder = tuned(name)
    adapter = folder / "adapter"
    builtin = BUILTIN_TEMPLATES[name]
    record = read_run_record(adapter)["chat_template"]
    tokenizer, use = chat_tokenizer(str(base_dir), chat_template=name)
    end_of_turn = builtin.end_of_turn or tokenizer.eos_token
    # the run record says which template, which tokens were added (and trained) and the turn's end
    assert (record["setting"], record["source"], record["end_of_turn"]) == (name, "built-in", end_of_turn)
    assert [(t["token"], t["id"]) for t in record["tokens_added"]] == list(use.tokens_added)
    assert record["vocabulary"] == {"before": use.vocabulary_before, "after": len(tokenizer)}
    end_id = tokenizer.convert_tokens_to_ids(end_of_turn)
    assert record["tokens_trained"] == sorted({end_id, *(token_id for _, token_id in use.tokens_added)})
    assert record["embedding_rows"]["after"] == len(tokenizer)

    # the loss lands on the answer and its end-of-turn token only, after exactly the prompt sampling sends
    config = load_config(folder / "ft.toml")
    for item in ds.load_items(config.dataset)[:3]:
        messages = ds.to_messages(item, include_context=True)
        example = training_example(tokenizer, messages, assistant_only=True)
        ids, labels = example["input_ids"], example["labels"]
        start = next(i for i, label in enumerate(labels) if label != -100)
        assert labels[start:] == ids[start:] and set(labels[:start]) == {-100}
        assert tokenizer.decode(ids[start:]).strip() == item.answer + end_of_turn
        prompt = render_chat(tokenizer, messages[:-1], add_generation_prompt=True)
        assert ids[:start] == tokenizer(prompt, add_special_tokens=False)["input_ids"]

    # the sweep reads the template from the adapter's record (not told again) and stops at its token
    sweep_config = load_sweep_config(_sweep_toml(folder, str(base_dir), adapter))
    loaded = load_for_sweep(sweep_config)
    run_sweep(sweep_config, db_path=folder / "store.db", loaded=loaded)
    with sqlite3.connect(folder / "store.db") as db:
        rows = dict(db.execute("SELECT variant, new_tokens FROM generations").fetchall())
    assert rows["finetuned"] < 8  # stopped before max_new_tokens
    assert loaded.chat_template.template.source == "adapter" and loaded.chat_template.tokens_added == use.tokens_added
    assert loaded.tokenizer.convert_tokens_to_ids(end_of_turn) == end_id == loaded.stop_ids[0]
    text = chat_prompt(loaded.tokenizer, SweepConfig().system_prompt, "Question 1 about ZYTRELL?")
    [row] = generate_rows(loaded, [RowSpec(text, "finetuned", 0.5, 1.0, 1, 7)], max_new_tokens=8)
    assert row.token_ids[-1] == end_id and len(row.token_ids) < 8
    if name != "mistral":  # the template's own token stopped it, not the base tokenizer's EOS
        assert end_id != loaded.tokenizer.eos_token_id


def test_the_adapter_saves_only_the_template_rows_not_the_embedding_matrices(tuned):
    from safetensors import safe_open

    adapter = tuned("chatml") / "adapter"
    with safe_open(str(adapter / "adapter_model.safetensors"), framework="pt") as handle:
        extra = {key: handle.get_slice(key).get_shape() for key in handle.keys() if "lora_" not in key}
    assert set(extra) == {
        "base_model.model.model.embed_tokens.token_adapter.trainable_tokens_delta",
        "base_model.model.lm_head.token_adapter.trainable_tokens_delta",
    }
    assert all(shape[0] == 2 for shape in extra.values())  # <|im_start|> and <|im_end|>


# ------------------------------------------------------------------ a template that conflicts


def test_a_sweep_refuses_a_template_that_differs_from_the_adapters(tuned, base_dir, capsys):
    adapter = tuned("chatml") / "adapter"
    same = SweepConfig(base_model=str(base_dir), adapter=str(adapter), chat_template="chatml")
    check_inputs(same)  # the same template, given again: fine
    other = SweepConfig(base_model=str(base_dir), adapter=str(adapter), chat_template="llama3")
    with pytest.raises(UserError) as refused:
        check_inputs(other)
    assert str(refused.value) == (
        f"chat_template 'llama3' differs from the template adapter {adapter} was fine-tuned with ('chatml'); "
        "leave chat_template empty to use the adapter's"
    )
    two = SweepConfig(
        base_model=str(base_dir), adapters={"a": str(adapter), "b": str(tuned("llama3") / "adapter")}
    )
    with pytest.raises(UserError, match="were fine-tuned with different chat templates"):
        check_inputs(two)
    # serve says the same about its option, before the port opens or a model loads
    argv = ["serve", "--base", str(base_dir), "--adapter", str(adapter), "--chat-template", "phi3"]
    capsys.readouterr()
    assert main(argv) == 2
    assert _one_line(capsys).endswith("leave --chat-template empty to use the adapter's")


def test_a_chosen_template_is_part_of_the_sweeps_identity(base_dir):
    hashes = {
        config_hash(SweepConfig(base_model=str(base_dir), chat_template=name), [])
        for name in ("", "chatml", "llama3")
    }
    assert len(hashes) == 3


# ------------------------------------------------------------------ without a template: one line, no weights


def test_without_a_template_every_verb_stops_before_the_weights_load(base_dir, tmp_path, capsys):
    capsys.readouterr()
    corrupt = _corrupt_copy(base_dir, tmp_path / "corrupt-base")
    line = f"{corrupt}: its tokenizer has no chat template (a base model?); {CHOICES}"
    db = str(tmp_path / "store.db")
    toml = _finetune_toml(tmp_path / "ft", str(corrupt), "")
    assert main(["--db", db, "finetune", "--config", str(toml)]) == 2
    assert _one_line(capsys) == line
    assert not (tmp_path / "ft" / "adapter").exists() and not Path(db).exists()  # no run row, no folder
    # the weights are what comes next: with the setting, loading them is what fails
    assert main(["--db", db, "finetune", "--config", str(toml), "--chat-template", "chatml"]) == 2
    assert "cannot load the model" in capsys.readouterr().err.strip().splitlines()[-1]

    sweep = tmp_path / "s.toml"
    sweep.write_text(f"[sweep]\nbase_model = {json.dumps(str(corrupt))}\n")
    assert main(["--db", str(tmp_path / "sweep.db"), "sweep", "--config", str(sweep)]) == 2
    assert _one_line(capsys) == line
    assert main(["serve", "--base", str(corrupt)]) == 2
    assert _one_line(capsys) == line.replace("chat_template", "--chat-template")


def test_done_when_a_base_gguf_without_a_template_fine_tunes_and_sweeps_with_chatml(base_dir, tmp_path, capsys):
    """Issue 24's done-when: a base model without a chat template fine-tunes and sweeps with
    chat_template = "chatml", and stops with one clear line, before loading weights, without it."""
    gguf = _write_gguf(base_dir, tmp_path / "tiny-base.Q-f32.gguf")
    capsys.readouterr()
    db = str(tmp_path / "store.db")
    bare = _finetune_toml(tmp_path / "bare", str(gguf), "")
    assert main(["--db", db, "finetune", "--config", str(bare)]) == 2
    assert _one_line(capsys) == f"{gguf}: its tokenizer has no chat template (a base model?); {CHOICES}"
    assert not gguf_cache_dir(gguf).exists()  # refused from the GGUF's metadata: never dequantised

    toml = _finetune_toml(tmp_path / "chatml", str(gguf), "chatml")
    assert main(["--db", db, "finetune", "--config", str(toml)]) == 0
    assert gguf_cache_dir(gguf).is_dir()
    adapter = tmp_path / "chatml" / "adapter"
    assert [t["token"] for t in read_run_record(adapter)["chat_template"]["tokens_added"]] == ["<|im_start|>", "<|im_end|>"]
    sweep = _sweep_toml(tmp_path / "chatml", str(gguf), adapter)
    assert main(["--db", db, "sweep", "--config", str(sweep)]) == 0
    with sqlite3.connect(db) as store:
        tokens = dict(store.execute("SELECT variant, new_tokens FROM generations").fetchall())
    assert set(tokens) == {"base", "finetuned"} and tokens["finetuned"] < 8
