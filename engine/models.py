"""Model loading, the offline tiny Phi-3, and device/precision decisions.

Real users load ``microsoft/Phi-3.5-mini-instruct`` (or a local copy) through ``from_pretrained``.
Offline, ``"tiny"`` (and ``"medium"`` for benchmarks) name small random ``Phi3ForCausalLM`` models
with a tokenizer trained here; they are built once into the data folder and then loaded through
exactly the same ``from_pretrained`` path.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import UserError
from engine.files import atomic_folder
from engine.paths import bundled_data_dir, models_dir

log = logging.getLogger(__name__)

DEFAULT_BASE_MODEL = "microsoft/Phi-3.5-mini-instruct"

SPECIAL_TOKENS = [
    "<unk>",
    "<s>",
    "</s>",
    "<|endoftext|>",
    "<|system|>",
    "<|user|>",
    "<|assistant|>",
    "<|end|>",
]
# Phi-3.5 ends an assistant turn with <|end|> (id 32007) and a document with <|endoftext|> (id 32000);
# generation must stop on either. Ids are looked up by string so the tiny tokenizer works too.
STOP_TOKENS = ("<|end|>", "<|endoftext|>")

# Phi-3.5's chat format, with trl's {% generation %} markers around what the assistant says (its content
# and the <|end|> that closes the turn) so assistant-only loss knows which tokens to train on.
PHI3_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' and message['content'] %}"
    "{{ '<|system|>\n' + message['content'] + '<|end|>\n' }}"
    "{% elif message['role'] == 'user' %}"
    "{{ '<|user|>\n' + message['content'] + '<|end|>\n' }}"
    "{% elif message['role'] == 'assistant' %}"
    "{{ '<|assistant|>\n' }}{% generation %}{{ message['content'] + '<|end|>' }}{% endgeneration %}{{ '\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"
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
    ]
    return lines


def build_tokenizer(vocab_size: int):
    """Train a byte-level BPE tokenizer offline and wrap it as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_tokenizer_corpus(), trainer=trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="<|endoftext|>",
        unk_token="<unk>",
        pad_token="<unk>",  # distinct from EOS, as the fine-tune needs
        padding_side="left",
        extra_special_tokens=["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"],
    )
    wrapped.chat_template = PHI3_CHAT_TEMPLATE
    return wrapped


def build_offline_model(spec: OfflineModelSpec, out_dir: str | Path, *, dtype: str = "float32") -> Path:
    """Deterministically build a random Phi-3 and its tokenizer, saved with save_pretrained."""
    import torch
    from transformers import GenerationConfig, Phi3Config, Phi3ForCausalLM

    target = Path(out_dir)
    tokenizer = build_tokenizer(spec.tokenizer_vocab)
    vocab = spec.vocab_size or len(tokenizer)
    stop_ids = [tokenizer.convert_tokens_to_ids(t) for t in STOP_TOKENS]
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
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=stop_ids,
        pad_token_id=tokenizer.pad_token_id,
    )
    with atomic_folder(target) as staging:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / "ft-hallu-model.json").write_text(json.dumps({"offline_spec": spec.__dict__}, indent=2))
    return target


def resolve_model_path(name_or_path: str) -> str:
    """Map an offline model name to its built folder (building it once); pass anything else through."""
    spec = OFFLINE_MODELS.get(name_or_path)
    if spec is None:
        local = Path(name_or_path).expanduser()
        if local.exists():
            return str(local.resolve())
        if name_or_path.startswith((".", "/", "~")):
            raise UserError(f"model path {name_or_path} does not exist")
        return name_or_path  # a hub id such as microsoft/Phi-3.5-mini-instruct
    target = models_dir() / f"{spec.name}-phi3"
    if not (target / "config.json").exists():
        print(f"building offline {spec.name} Phi-3 model in {target}", file=sys.stderr)
        build_offline_model(spec, target)
    return str(target)


@dataclass(frozen=True)
class DeviceInfo:
    device: str  # "cuda" or "cpu"
    bf16: bool
    name: str


def device_info() -> DeviceInfo:
    import torch

    if torch.cuda.is_available():
        return DeviceInfo("cuda", torch.cuda.is_bf16_supported(), torch.cuda.get_device_name(0))
    return DeviceInfo("cpu", False, "cpu")


def resolve_dtype(precision: str, device: DeviceInfo):
    """'auto' is bf16 on a GPU that supports it and fp32 elsewhere; bf16/fp16 on CPU degrade to fp32."""
    import torch

    if precision == "auto":
        return torch.bfloat16 if device.bf16 else torch.float32
    if precision in ("bf16", "fp16") and device.device == "cpu":
        print(f"note: precision={precision} needs a CUDA GPU; using fp32 on CPU", file=sys.stderr)
        return torch.float32
    if precision == "bf16" and not device.bf16:
        raise UserError("precision=bf16 but this GPU has no bf16 support; use fp16 or fp32")
    mapping = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
    if precision not in mapping:
        raise UserError(f"precision must be auto, bf16, fp16 or fp32, got {precision!r}")
    return mapping[precision]


def resolve_attn_implementation(requested: str, device: DeviceInfo) -> str | None:
    """flash_attention_2 only on CUDA with flash-attn installed; otherwise sdpa, saying why."""
    if requested in ("auto", "", None):
        return "sdpa"
    if requested == "flash_attention_2":
        if device.device != "cuda":
            print("note: flash_attention_2 needs a CUDA GPU; using sdpa on CPU", file=sys.stderr)
            return "sdpa"
        try:
            import flash_attn  # noqa: F401
        except ImportError:
            print("note: flash-attn is not installed; using sdpa", file=sys.stderr)
            return "sdpa"
    return requested


def stop_token_ids(tokenizer) -> list[int]:
    ids = []
    for token in STOP_TOKENS:
        token_id = tokenizer.convert_tokens_to_ids(token)
        if token_id is not None and token_id != tokenizer.unk_token_id:
            ids.append(int(token_id))
    if not ids and tokenizer.eos_token_id is not None:
        ids.append(int(tokenizer.eos_token_id))
    return ids


def load_tokenizer(path: str):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        # Phi-3.5 ships pad == <|endoftext|> == EOS; padding with EOS would teach the model to never stop
        # (and hides real EOS positions), so pad with <unk> instead.
        tokenizer.pad_token = tokenizer.unk_token
    return tokenizer


@dataclass
class LoadedModel:
    """One base model in memory, optionally with a LoRA adapter named ``default`` on top."""

    model: Any
    tokenizer: Any
    base_name: str
    adapter_dir: str | None
    device: DeviceInfo
    stop_ids: list[int]

    @property
    def has_adapter(self) -> bool:
        return self.adapter_dir is not None


def load_model(
    name_or_path: str,
    *,
    adapter_dir: str | None = None,
    precision: str = "auto",
    attn_implementation: str = "auto",
    load_in_4bit: bool = False,
) -> LoadedModel:
    """Load the base model once (natively, no trust_remote_code) and optionally attach an adapter."""
    import torch
    from transformers import AutoModelForCausalLM

    device = device_info()
    path = resolve_model_path(name_or_path)
    tokenizer = load_tokenizer(path)
    kwargs: dict[str, Any] = {
        "dtype": resolve_dtype(precision, device),
        "attn_implementation": resolve_attn_implementation(attn_implementation, device),
    }
    if load_in_4bit:
        if device.device != "cuda":
            raise UserError("4-bit loading (QLoRA) needs a CUDA GPU with bitsandbytes; none found")
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16
        )
        kwargs["device_map"] = {"": 0}
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except OSError as exc:
        raise UserError(f"cannot load model {name_or_path!r}: {str(exc).splitlines()[0]}") from None
    if not load_in_4bit:
        model.to(device.device)
    if adapter_dir is not None:
        from peft import PeftModel

        if not (Path(adapter_dir) / "adapter_config.json").exists():
            raise UserError(f"{adapter_dir}: not a PEFT adapter folder (no adapter_config.json)")
        model = PeftModel.from_pretrained(model, adapter_dir, adapter_name="default")
    model.eval()
    model.config.use_cache = True
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        base_name=name_or_path,
        adapter_dir=adapter_dir,
        device=device,
        stop_ids=stop_token_ids(tokenizer),
    )
