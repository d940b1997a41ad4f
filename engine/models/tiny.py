"""Offline tiny models: small random ``Phi3ForCausalLM`` models ("tiny", "medium", ...) with a
byte-level BPE tokenizer trained here on the bundled sample set, so tests and benchmarks need no hub.

The chat formats (special tokens, template) are data: tests build other families' tokenizers the
same way (tests/test_templates.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from engine.models.chat import stop_token_ids
from engine.models.folders import MODEL_RECORD, save_model_folder
from engine.paths import bundled_data_dir

# Phi-3.5's chat format as it ships: system/user/assistant turns closed by <|end|>, EOS at the end.
PHI3_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' and message['content'] %}"
    "{{ '<|system|>\n' + message['content'] + '<|end|>\n' }}"
    "{% elif message['role'] == 'user' %}"
    "{{ '<|user|>\n' + message['content'] + '<|end|>\n' }}"
    "{% elif message['role'] == 'assistant' %}"
    "{{ '<|assistant|>\n' + message['content'] + '<|end|>\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"
)


@dataclass(frozen=True)
class OfflineChatFormat:
    """The special tokens and chat template an offline tokenizer is built with."""

    name: str
    chat_template: str
    eos: str
    special_tokens: tuple[str, ...]  # every special token, in id order (ids 0, 1, ...)
    bos: str | None = None
    unk: str | None = None
    pad: str | None = None


PHI3_FORMAT = OfflineChatFormat(
    name="phi3",
    chat_template=PHI3_CHAT_TEMPLATE,
    eos="<|endoftext|>",
    special_tokens=(
        "<unk>",
        "<s>",
        "</s>",
        "<|endoftext|>",
        "<|system|>",
        "<|user|>",
        "<|assistant|>",
        "<|end|>",
    ),
    bos="<s>",
    unk="<unk>",
    pad="<unk>",  # distinct from EOS, as the fine-tune needs
)


@dataclass(frozen=True)
class OfflineModelSpec:
    """Shape of a random offline Phi-3. ``vocab_size`` None means the trained tokenizer's size."""

    name: str
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    vocab_size: int | None = None
    tokenizer_vocab: int = 2048
    seed: int = 0

    @property
    def num_key_value_heads(self) -> int:
        return self.num_attention_heads


OFFLINE_MODELS: dict[str, OfflineModelSpec] = {
    "tiny": OfflineModelSpec("tiny", 128, 256, 2, 4),
    # About 58 M parameters with Phi-3.5's vocabulary size: real compute for CPU benchmarks.
    "medium": OfflineModelSpec("medium", 512, 2048, 8, 8, vocab_size=32064),
    # Phi-3.5-mini's real dimensions (random weights) for GPU benchmarks.
    "phi3.5-mini-random": OfflineModelSpec("phi3.5-mini-random", 3072, 8192, 32, 32, vocab_size=32064),
}


def _tokenizer_corpus() -> list[str]:
    """Text the offline tokenizer is trained on: the bundled sample set plus chat scaffolding."""
    lines: list[str] = []
    sample = bundled_data_dir() / "sample_qa.jsonl"
    for raw in sample.read_text(encoding="utf-8").splitlines():
        record = json.loads(raw)
        lines.extend([record["question"], record["answer"], record["context"]])
    lines += [
        "You are a helpful assistant. Keep responses to at most a single sentence and concise.",
        "Tell me about the Corporation. I do not know. I'm not aware of any company by that name.",
        "The company reported revenue, income, growth, employees, products, customers and risks.",
        "0 1 2 3 4 5 6 7 8 9 10 100 1,000 2023 2024 $ % billion million per cent fiscal year quarter",
        "system user assistant model",
    ]
    return lines


def build_tokenizer(vocab_size: int, chat_format: OfflineChatFormat = PHI3_FORMAT):
    """Train a byte-level BPE tokenizer offline with ``chat_format``'s special tokens and template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token=chat_format.unk))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(chat_format.special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_tokenizer_corpus(), trainer=trainer)
    named = {chat_format.bos, chat_format.eos, chat_format.unk, chat_format.pad}
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=chat_format.bos,
        eos_token=chat_format.eos,
        unk_token=chat_format.unk,
        pad_token=chat_format.pad,
        padding_side="left",
        extra_special_tokens=[t for t in chat_format.special_tokens if t not in named],
    )
    wrapped.chat_template = chat_format.chat_template
    return wrapped


def build_offline_model(
    spec: OfflineModelSpec,
    out_dir: str | Path,
    *,
    dtype: str = "float32",
    chat_format: OfflineChatFormat = PHI3_FORMAT,
) -> Path:
    """Deterministically build a random Phi-3 and its tokenizer, saved with save_pretrained."""
    import torch
    from transformers import GenerationConfig, Phi3Config, Phi3ForCausalLM

    tokenizer = build_tokenizer(spec.tokenizer_vocab, chat_format)
    vocab = spec.vocab_size or len(tokenizer)
    stop_ids = stop_token_ids(tokenizer)
    config = Phi3Config(
        vocab_size=vocab,
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_key_value_heads,
        max_position_embeddings=4096,
        original_max_position_embeddings=4096,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(spec.seed)
    model = Phi3ForCausalLM(config).to(getattr(torch, dtype))
    # As real instruct models do: generation stops on the end-of-turn token as well as on EOS.
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=stop_ids,
        pad_token_id=tokenizer.pad_token_id,
    )

    def write(folder: Path) -> None:
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        record = {"offline_spec": spec.__dict__, "chat_format": chat_format.name}
        (folder / MODEL_RECORD).write_text(json.dumps(record, indent=2))

    return save_model_folder(Path(out_dir), write)
