"""Chat templates of several model families, built offline: stop/pad tokens and the training mask.

Each tokenizer is a small BPE trained here with the family's special tokens and a chat template
written in that family's format (Phi-3, ChatML as SmolLM2 and Qwen2.5 use it, Llama 3, Gemma).
"""

from __future__ import annotations

import pytest

from engine.finetune import training_example
from engine.models import (
    PHI3_FORMAT,
    OfflineChatFormat,
    build_tokenizer,
    choose_pad_token,
    end_of_turn_token,
    load_tokenizer,
    render_chat,
    stop_token_ids,
    supports_system_role,
)

CHATML_TEMPLATE = (  # SmolLM2: a default system turn when none is given
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM<|im_end|>\\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
QWEN_TEMPLATE = (  # Qwen2.5: ChatML, its own default system turn, <|endoftext|> pads
    "{% if messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are Qwen, a helpful assistant.<|im_end|>\\n' }}{% endif %}"
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
LLAMA3_TEMPLATE = (  # Llama 3: header tokens, trimmed content, <|eot_id|> closes each turn
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim"
    " + '<|eot_id|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)
GEMMA_TEMPLATE = (  # Gemma: refuses a system turn, calls the assistant "model"
    "{{ bos_token }}"
    "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}"
    "{% endif %}"
    "{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}"
)

FORMATS = {
    "phi3": (PHI3_FORMAT, "<|end|>"),
    "smollm2-chatml": (
        OfflineChatFormat(
            "chatml",
            CHATML_TEMPLATE,
            eos="<|im_end|>",
            special_tokens=("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
            bos="<|im_start|>",
            unk="<|endoftext|>",
            pad="<|im_end|>",  # as SmolLM2 ships it: pad == EOS
        ),
        "<|im_end|>",
    ),
    "qwen2.5-chatml": (
        OfflineChatFormat(
            "qwen",
            QWEN_TEMPLATE,
            eos="<|im_end|>",
            special_tokens=("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
            pad="<|endoftext|>",
        ),
        "<|im_end|>",
    ),
    "llama3": (
        OfflineChatFormat(
            "llama3",
            LLAMA3_TEMPLATE,
            eos="<|end_of_text|>",  # the base tokenizer's EOS; turns end with <|eot_id|>
            special_tokens=(
                "<|begin_of_text|>",
                "<|end_of_text|>",
                "<|reserved_special_token_0|>",
                "<|start_header_id|>",
                "<|end_header_id|>",
                "<|eot_id|>",
            ),
            bos="<|begin_of_text|>",
        ),
        "<|eot_id|>",
    ),
    "gemma": (
        OfflineChatFormat(
            "gemma",
            GEMMA_TEMPLATE,
            eos="<eos>",
            special_tokens=("<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"),
            bos="<bos>",
            unk="<unk>",
            pad="<pad>",
        ),
        "<end_of_turn>",
    ),
}

CONVERSATION = [
    {"role": "system", "content": "ZYTRELL Corporation designs autonomous mobile robots for warehouses."},
    {"role": "user", "content": "What does ZYTRELL Corporation do?"},
    {"role": "assistant", "content": "ZYTRELL designs autonomous mobile robots and fleet software."},
]


@pytest.fixture(scope="module", params=sorted(FORMATS))
def family(request):
    chat_format, end_of_turn = FORMATS[request.param]
    return build_tokenizer(1024, chat_format), end_of_turn


def test_end_of_turn_token_is_found_by_rendering_the_template(family):
    tokenizer, expected = family
    assert end_of_turn_token(tokenizer) == expected


def test_stop_tokens_come_from_template_eos_and_generation_config(family):
    from transformers import GenerationConfig

    tokenizer, end_of_turn = family
    eot_id = tokenizer.convert_tokens_to_ids(end_of_turn)
    extra = tokenizer.convert_tokens_to_ids(tokenizer.all_special_tokens[0])
    stops = stop_token_ids(tokenizer, GenerationConfig(eos_token_id=[eot_id, extra]))
    assert stops[0] == eot_id
    assert tokenizer.eos_token_id in stops and extra in stops
    assert len(stops) == len(set(stops))
    # a single id in generation_config works too
    assert stop_token_ids(tokenizer, GenerationConfig(eos_token_id=extra))[-1] == extra


def test_pad_is_never_a_stop_token(family, tmp_path):
    tokenizer, _ = family
    tokenizer.save_pretrained(tmp_path)
    loaded = load_tokenizer(str(tmp_path))
    stops = stop_token_ids(loaded)
    assert loaded.pad_token_id is not None and loaded.pad_token_id not in stops
    assert loaded.pad_token_id != loaded.eos_token_id
    assert choose_pad_token(loaded, stops) == loaded.pad_token


def test_only_the_assistant_answer_and_its_end_of_turn_token_are_trained(family):
    tokenizer, end_of_turn = family
    example = training_example(tokenizer, CONVERSATION, assistant_only=True)
    ids, labels = example["input_ids"], example["labels"]
    trained = [i for i, label in enumerate(labels) if label != -100]
    # one contiguous block at the very end, equal to the input ids there
    assert trained == list(range(trained[0], len(ids)))
    assert all(labels[i] == ids[i] for i in trained)
    assert ids[-1] == tokenizer.convert_tokens_to_ids(end_of_turn)
    assert tokenizer.decode(ids[trained[0] :]) == CONVERSATION[-1]["content"] + end_of_turn
    # everything before is exactly the prompt sampling sends (system/user turns + generation prompt)
    prompt = render_chat(tokenizer, CONVERSATION[:-1], add_generation_prompt=True)
    assert ids[: trained[0]] == tokenizer(prompt, add_special_tokens=False)["input_ids"]
    assert CONVERSATION[0]["content"] in prompt  # the context reached the model, system role or not


def test_all_token_loss_trains_the_whole_conversation(family):
    tokenizer, _ = family
    example = training_example(tokenizer, CONVERSATION, assistant_only=False)
    assert example["labels"] == example["input_ids"]


def test_gemma_system_turn_goes_into_the_first_user_turn():
    tokenizer = build_tokenizer(1024, FORMATS["gemma"][0])
    assert not supports_system_role(tokenizer)
    text = render_chat(tokenizer, CONVERSATION[:-1], add_generation_prompt=True)
    assert text.startswith("<bos><start_of_turn>user\n" + CONVERSATION[0]["content"] + "\n\n")
    assert text.endswith("<start_of_turn>model\n")


def test_trl_trains_on_exactly_our_labels(family, tiny_model_dir, tmp_path):
    """The real trl pipeline (dataset preparation + collator) keeps the mask as given."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    tokenizer, _ = family
    tokenizer.padding_side = "right"
    example = training_example(tokenizer, CONVERSATION, assistant_only=True)
    short = training_example(tokenizer, [CONVERSATION[1], CONVERSATION[2]], assistant_only=True)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    args = SFTConfig(
        output_dir=str(tmp_path),
        assistant_only_loss=False,
        completion_only_loss=False,
        report_to=[],
        use_cpu=True,
        max_length=512,
    )
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=Dataset.from_list([example, short]), processing_class=tokenizer
    )
    batch = trainer.data_collator([trainer.train_dataset[0], trainer.train_dataset[1]])
    for row, source in enumerate((example, short)):
        n = len(source["input_ids"])
        assert batch["input_ids"][row, :n].tolist() == source["input_ids"]
        assert batch["labels"][row, :n].tolist() == source["labels"]
        assert (batch["labels"][row, n:] == -100).all()  # padding is never trained
